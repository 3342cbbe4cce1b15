/*
 * Force-included (-include) into every PHP source file of Tether's wasm32-wasi build: the POSIX
 * declarations PHP's sources use that WASI preview1 and its libc do not have. Each call fails
 * the way POSIX says a call fails (-1 or NULL with errno ENOSYS), so PHP reports the usual
 * warning ("failed to open stream", "unable to connect"); nothing here pretends to work.
 * The link-time half (functions that libc declares but does not define) is sapi/wasi_stubs.c.
 *
 *  - Sockets: a guest has no sockets (main/network.c, main/streams/xp_socket.c); Tether's
 *    request, response and output interfaces are its only I/O with the client.
 *  - Unix-domain addresses: wasi-libc's struct sockaddr_un has no sun_path; the real layout is
 *    declared here (its own include guard keeps wasi-libc's out) so xp_socket.c compiles.
 *  - Processes and users: no popen, dup, umask, chown, groups or temporary names (mktemp).
 *    getuid and getgid answer 0, the owner WASI reports for every file.
 */
#ifndef TETHER_PHP_STUBS_H
#define TETHER_PHP_STUBS_H

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>
#include <__typedef_sa_family_t.h>

#define __wasilibc___struct_sockaddr_un_h
struct sockaddr_un {
    sa_family_t sun_family;
    char sun_path[108];
};

#include <sys/socket.h>

#ifndef PF_UNIX
#define PF_UNIX AF_UNIX
#endif
#ifndef SO_ERROR
#define SO_ERROR 4
#endif
#ifndef SOL_IP
#define SOL_IP 0
#endif
#ifndef MSG_OOB
#define MSG_OOB 0x0001
#endif
#ifndef POLLPRI
#define POLLPRI 0x002
#endif

/* Fails with ENOSYS: the return value of each stub below. */
#define TETHER_ENOSYS(value) (errno = ENOSYS, (value))

static inline int socket(int domain, int type, int protocol) {
    (void)domain, (void)type, (void)protocol;
    return TETHER_ENOSYS(-1);
}
static inline int connect(int fd, const struct sockaddr *address, socklen_t length) {
    (void)fd, (void)address, (void)length;
    return TETHER_ENOSYS(-1);
}
static inline int bind(int fd, const struct sockaddr *address, socklen_t length) {
    (void)fd, (void)address, (void)length;
    return TETHER_ENOSYS(-1);
}
static inline int listen(int fd, int backlog) {
    (void)fd, (void)backlog;
    return TETHER_ENOSYS(-1);
}
static inline int setsockopt(int fd, int level, int name, const void *value, socklen_t length) {
    (void)fd, (void)level, (void)name, (void)value, (void)length;
    return TETHER_ENOSYS(-1);
}
static inline int getpeername(int fd, struct sockaddr *address, socklen_t *length) {
    (void)fd, (void)address, (void)length;
    return TETHER_ENOSYS(-1);
}
static inline int getsockname(int fd, struct sockaddr *address, socklen_t *length) {
    (void)fd, (void)address, (void)length;
    return TETHER_ENOSYS(-1);
}
static inline ssize_t sendto(int fd, const void *bytes, size_t length, int flags, const struct sockaddr *to, socklen_t to_length) {
    (void)fd, (void)bytes, (void)length, (void)flags, (void)to, (void)to_length;
    return TETHER_ENOSYS(-1);
}
static inline ssize_t recvfrom(int fd, void *bytes, size_t length, int flags, struct sockaddr *from, socklen_t *from_length) {
    (void)fd, (void)bytes, (void)length, (void)flags, (void)from, (void)from_length;
    return TETHER_ENOSYS(-1);
}

static inline FILE *popen(const char *command, const char *mode) {
    (void)command, (void)mode;
    return TETHER_ENOSYS((FILE *)NULL);
}
static inline int pclose(FILE *stream) {
    (void)stream;
    return TETHER_ENOSYS(-1);
}
static inline int dup(int fd) {
    (void)fd;
    return TETHER_ENOSYS(-1);
}
static inline int getdtablesize(void) {
    return TETHER_ENOSYS(-1);
}
static inline mode_t umask(mode_t mask) {
    (void)mask;
    return 0;
}
static inline int chown(const char *path, uid_t owner, gid_t group) {
    (void)path, (void)owner, (void)group;
    return TETHER_ENOSYS(-1);
}
static inline uid_t getuid(void) {
    return 0;
}
static inline gid_t getgid(void) {
    return 0;
}
static inline int getgroups(int size, gid_t list[]) {
    (void)size, (void)list;
    return 0;
}
static inline char *mktemp(char *template) {
    template[0] = '\0';
    return TETHER_ENOSYS(template);
}

#endif
