/*
 * The functions PHP links against that wasi-libc declares but does not define: user and group
 * databases, host name look-up and syslog. A Tether guest has no users and no DNS; each of
 * those fails the way POSIX says it fails (NULL, an error code), so PHP reports the usual
 * warning. Its syslog is the host's log: a message goes to standard output, which Tether logs
 * and sends nowhere else. The compile-time half (calls wasi-libc does not even declare) is
 * guest/php/stubs.h.
 */
#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

struct passwd *getpwnam(const char *name) {
    (void)name;
    return NULL;
}

struct passwd *getpwuid(uid_t uid) {
    (void)uid;
    return NULL;
}

struct group *getgrnam(const char *name) {
    (void)name;
    return NULL;
}

int gethostbyname_r(const char *name, struct hostent *result, char *buf, size_t len, struct hostent **out, int *h_errnop) {
    (void)name, (void)result, (void)buf, (void)len;
    *out = NULL;
    *h_errnop = NO_RECOVERY;
    return ENOSYS;
}

int getnameinfo(const struct sockaddr *address, socklen_t length, char *host, socklen_t host_length, char *service,
                socklen_t service_length, int flags) {
    (void)address, (void)length, (void)host, (void)host_length, (void)service, (void)service_length, (void)flags;
    return EAI_SYSTEM;
}

/* PHP's syslog() and `error_log = syslog`: one line of the host's log per message, through
 * standard output. Unlike stderr (PHP's default error log), which behind FastCGI also becomes
 * STDERR records to the web server, it never touches the client's connection. */
void openlog(const char *ident, int option, int facility) {
    (void)ident, (void)option, (void)facility;
}

void syslog(int priority, const char *format, ...) {
    (void)priority;
    va_list args;
    va_start(args, format);
    vfprintf(stdout, format, args);
    va_end(args);
    fputc('\n', stdout);
    fflush(stdout);
}

void closelog(void) {}
