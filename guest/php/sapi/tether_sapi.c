/*
 * Tether's PHP server API: PHP 8.2 as a Tether guest. It owns the `sapi_module_struct` that
 * connects PHP's engine to Tether's WIT interfaces (wit/tether.wit), PHP's start-up, the
 * request's start-up from those interfaces, the document root, and the PHP functions whose
 * meaning Tether takes over. The component exports `handle`: one request, in a fresh instance,
 * like every Tether guest.
 *
 * Start-up comes in two halves. Everything that does not depend on the request (the SAPI's,
 * then PHP's module start-up: the engine, the built-in extensions, the ini settings, the
 * functions Tether takes over) is `php_startup`, exported as PHP_STARTUP_EXPORT:
 * scripts/build-php runs it once, at build time, with `componentize-c snapshot` (Wizer), and
 * the component's memory is that snapshot. Every instance starts after PHP's module start-up,
 * and `handle` begins at the request's start-up. The snapshot ran with an empty WASI context,
 * so `handle` first has wasi-libc read the request's: its environment and its preopened
 * directories. Module start-up seeds nothing random: PHP seeds mt_rand, rand and lcg_value at
 * their first use in a request (the random extension's request start-up clears its seeds),
 * and the snapshot tool fails a build whose start-up draws random bytes.
 *
 *   ub_write           → output.write; `aborted` goes through php_handle_aborted_connection()
 *   flush              → output.flush, the same
 *   send_headers       → response.set-status and response.append-header
 *   read_post          → request.read-body
 *   $_SERVER           → request.server-vars and request.headers (HTTP_*), then the script's
 *                        own SCRIPT_FILENAME, SCRIPT_NAME, PHP_SELF and DOCUMENT_ROOT
 *   connection_status(), connection_aborted(), ignore_user_abort()
 *                      → conn.*, at every call, so PHP and the host always agree
 *   fastcgi_finish_request() → lifecycle.finish-request
 *   set_time_limit()   → lifecycle.set-time-limit (PHP's own timer is off: max_execution_time
 *                        is 0 at start-up, and WASI has no setitimer)
 *
 * The script is the request's path (over FastCGI its SCRIPT_NAME) under the document root: the
 * guest directory the route preopens and names in its `DOCUMENT_ROOT` environment variable
 * (DEFAULT_DOCUMENT_ROOT if unset). A route that sets `SCRIPT_NAME` in its environment serves
 * every request with that script instead (a front controller, as nginx's `try_files $uri
 * /index.php` does for php-fpm). A path with a `..` segment or a NUL is refused with 404,
 * as is a script that does not exist; WASI gives the guest no file outside its preopens, so
 * no path leaves them. What PHP itself decides stays PHP's: an abort bails out through
 * zend_bailout(), shutdown functions run, errors go to the log (stderr, the host's log). In
 * write mode the host reports the write that finds the client gone (conn.report-aborted-writes)
 * instead of trapping the guest there, so that the bailout and the shutdown functions run as
 * under php-fpm; in prompt mode the host stops the script wherever it is.
 */
#include "tether.h"

#include "php.h"
#include "php_main.h"
#include "php_variables.h"
#include "SAPI.h"
#include "ext/standard/head.h"
#include "main/php_output.h"
#include "zend_ini.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <wasi/libc-environ.h>

/* The document root when the route sets no DOCUMENT_ROOT: the guest path to preopen. */
#define DEFAULT_DOCUMENT_ROOT "/www"
/* The longest script path accepted, document root included (PATH_MAX on Linux). */
#define MAX_SCRIPT_PATH 4096

/* PHP_STARTUP_EXPORT, the name of the export that runs PHP's start-up, is scripts/build-php's:
 * it snapshots the module after that export. */
#ifndef PHP_STARTUP_EXPORT
#error "PHP_STARTUP_EXPORT, the start-up export's name, comes from scripts/build-php"
#endif

/* wasi-libc's, for pre-initialised programs such as this one; its headers do not declare it. */
void __wasilibc_reset_preopens(void);

/* PHP's settings for a Tether request: php.ini-production's output buffering and error
 * handling (errors to the log, not the page), and no PHP timer (Tether's limits replace it).
 * PHP reads no php.ini file (php_ini_ignore): these are its settings, fixed at start-up, which
 * is build time. Not const: the SAPI struct takes a char *. */
static char INI_DEFAULTS[] =
    "output_buffering=4096\n"
    "implicit_flush=0\n"
    "max_execution_time=0\n"
    "display_errors=0\n"
    "display_startup_errors=0\n"
    "log_errors=1\n"
    "html_errors=0\n"
    "register_argc_argv=0\n";

/* The request's document root, script path (both guest paths) and script name (the URL path). */
static const char *document_root;
static char script_filename[MAX_SCRIPT_PATH];
static char *script_name;

/* Output. */

/* What an output call's failure means to PHP: an abort goes through PHP's own handling
 * (output disabled, a bailout unless the script ignores user aborts); a finished response
 * only discards the output, as the host does. */
static void output_failed(tether_output_error_t err) {
    if (err == TETHER_OUTPUT_ABORTED) {
        php_handle_aborted_connection();
    }
}

static size_t tether_ub_write(const char *str, size_t len) {
    tether_output_error_t err;
    if (!tether_write(str, len, &err)) {
        output_failed(err);
    }
    return len;
}

static void tether_flush_sapi(void *server_context) {
    (void)server_context;
    tether_output_error_t err;
    /* A flush is a socket write, and the host's first one carries the head: PHP's head goes
     * first, so that header() after it fails in PHP ("headers already sent") as it would in
     * the host. */
    php_header();
    if (!tether_flush(&err)) {
        output_failed(err);
    }
}

/* The response head. */

/* Passes one "Name: value" header line to the host; one it refuses (a framing header such as
 * content-length, which the host owns, or an invalid one) is logged and left out. */
static void send_header_line(const char *line, size_t len) {
    const char *colon = memchr(line, ':', len);
    if (colon == NULL) {
        return;
    }
    char *name = estrndup(line, colon - line);
    const char *value = colon + 1;
    while (value < line + len && (*value == ' ' || *value == '\t')) {
        value++;
    }
    char *value_copy = estrndup(value, line + len - value);
    tether_head_error_t err;
    if (!tether_response_append_header(name, value_copy, &err)) {
        fprintf(stderr, "PHP header \"%s\" not sent: %s\n", name, tether_head_error_name(err));
    }
    efree(name);
    efree(value_copy);
}

static int tether_send_headers(sapi_headers_struct *headers) {
    tether_head_error_t err;
    if (headers->http_response_code > 0 && !tether_response_set_status((uint16_t)headers->http_response_code, &err)) {
        fprintf(stderr, "PHP status %d not sent: %s\n", headers->http_response_code, tether_head_error_name(err));
    }
    zend_llist_position position;
    for (sapi_header_struct *header = zend_llist_get_first_ex(&headers->headers, &position); header != NULL;
         header = zend_llist_get_next_ex(&headers->headers, &position)) {
        send_header_line(header->header, header->header_len);
    }
    return SAPI_HEADER_SENT_SUCCESSFULLY;
}

/* The request. */

static size_t tether_read_post(char *buffer, size_t count) {
    size_t read = 0;
    tether_body_error_t err;
    if (!tether_request_read_body(buffer, (uint32_t)count, &read, &err)) {
        fprintf(stderr, "PHP request body: %s\n", tether_body_error_name(err));
        return 0;
    }
    return read;
}

static char *tether_read_cookies(void) {
    /* PHP keeps the pointer for the request; the instance ends with it. */
    return tether_request_header("cookie");
}

/* Registers `name` = `len` bytes of `value` through PHP's input filter, as php-cgi does. */
static void register_bytes(const char *name, const uint8_t *value, size_t len, zval *track) {
    char *copy = estrndup((const char *)value, len);
    size_t new_len = len;
    if (sapi_module.input_filter(PARSE_SERVER, (char *)name, &copy, len, &new_len)) {
        php_register_variable_safe((char *)name, copy, new_len, track);
    }
    efree(copy);
}

static void tether_register_variables(zval *track) {
    tether_fields_t fields;
    tether_request_server_vars(&fields);
    for (size_t i = 0; i < fields.len; i++) {
        char *name = estrndup((const char *)fields.ptr[i].f0.ptr, fields.ptr[i].f0.len);
        register_bytes(name, fields.ptr[i].f1.ptr, fields.ptr[i].f1.len, track);
        efree(name);
    }
    tether_fields_free(&fields);

    /* Headers as CGI variables (RFC 3875, section 4.1.18): HTTP_ and the name in upper case,
     * '-' as '_'. */
    tether_request_headers(&fields);
    for (size_t i = 0; i < fields.len; i++) {
        size_t len = fields.ptr[i].f0.len;
        char *name = emalloc(len + sizeof("HTTP_"));
        memcpy(name, "HTTP_", 5);
        for (size_t j = 0; j < len; j++) {
            char c = (char)fields.ptr[i].f0.ptr[j];
            name[5 + j] = c == '-' ? '_' : (char)toupper((unsigned char)c);
        }
        name[5 + len] = '\0';
        register_bytes(name, fields.ptr[i].f1.ptr, fields.ptr[i].f1.len, track);
        efree(name);
    }
    tether_fields_free(&fields);

    /* The script as the guest sees it, in place of the web server's host paths. */
    php_register_variable("DOCUMENT_ROOT", (char *)document_root, track);
    php_register_variable("SCRIPT_FILENAME", script_filename, track);
    php_register_variable("SCRIPT_NAME", script_name, track);
    php_register_variable("PHP_SELF", script_name, track);
}

static void tether_log_message(const char *message, int syslog_type) {
    (void)syslog_type;
    fprintf(stderr, "%s\n", message);
}

/* The functions Tether takes over. */

/* PHP: connection_status(). The host's status bits, which PHP's own then match. */
static ZEND_FUNCTION(tether_connection_status) {
    ZEND_PARSE_PARAMETERS_NONE();
    PG(connection_status) = tether_connection_status();
    RETURN_LONG(PG(connection_status));
}

/* PHP: connection_aborted(). */
static ZEND_FUNCTION(tether_connection_aborted) {
    ZEND_PARSE_PARAMETERS_NONE();
    PG(connection_status) = tether_connection_status();
    RETURN_LONG(tether_connection_aborted());
}

/* PHP's own ignore_user_abort(), kept to run after the host's. */
static zif_handler php_ignore_user_abort;

/* PHP: ignore_user_abort(?bool $enable = null). The host's setting first (turning it off
 * after an abort may stop the guest there, as PHP would at its next output), then PHP's ini
 * value, which the function returns as PHP does. */
static ZEND_FUNCTION(tether_ignore_user_abort) {
    bool enable = false;
    bool enable_is_null = true;
    ZEND_PARSE_PARAMETERS_START(0, 1)
        Z_PARAM_OPTIONAL
        Z_PARAM_BOOL_OR_NULL(enable, enable_is_null)
    ZEND_PARSE_PARAMETERS_END();
    tether_ignore_user_abort(enable_is_null ? TETHER_KEEP : enable ? TETHER_SET_TRUE : TETHER_SET_FALSE);
    php_ignore_user_abort(execute_data, return_value);
}

/* PHP's own set_time_limit(), which keeps the ini value (ini_get('max_execution_time')). */
static zif_handler php_set_time_limit;

/* PHP: set_time_limit(int $seconds). Tether's execution-time budget restarts with it. */
static ZEND_FUNCTION(tether_set_time_limit) {
    zend_long seconds;
    ZEND_PARSE_PARAMETERS_START(1, 1)
        Z_PARAM_LONG(seconds)
    ZEND_PARSE_PARAMETERS_END();
    php_set_time_limit(execute_data, return_value);
    if (Z_TYPE_P(return_value) == IS_TRUE) {
        tether_set_time_limit(seconds < 0 ? 0 : (uint32_t)seconds);
    }
}

/* PHP: fastcgi_finish_request(), as php-fpm has it: the output buffers and the head go out,
 * then the host completes the response; the script runs on. */
static ZEND_FUNCTION(fastcgi_finish_request) {
    ZEND_PARSE_PARAMETERS_NONE();
    php_output_end_all();
    php_header();
    RETURN_BOOL(tether_finish_request());
}

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_fastcgi_finish_request, 0, 0, _IS_BOOL, 0)
ZEND_END_ARG_INFO()

static const zend_function_entry tether_functions[] = {
    ZEND_FE(fastcgi_finish_request, arginfo_fastcgi_finish_request)
    ZEND_FE_END
};

/* A PHP function whose handler Tether replaces, and where PHP's own is kept (if it is). */
typedef struct {
    const char *name;
    zif_handler handler;
    zif_handler *original;
} takeover_t;

static const takeover_t TAKEOVERS[] = {
    {"connection_status", ZEND_FN(tether_connection_status), NULL},
    {"connection_aborted", ZEND_FN(tether_connection_aborted), NULL},
    {"ignore_user_abort", ZEND_FN(tether_ignore_user_abort), &php_ignore_user_abort},
    {"set_time_limit", ZEND_FN(tether_set_time_limit), &php_set_time_limit},
};

static int tether_startup(sapi_module_struct *module) {
    if (php_module_startup(module, NULL) == FAILURE) {
        return FAILURE;
    }
    for (size_t i = 0; i < sizeof(TAKEOVERS) / sizeof(TAKEOVERS[0]); i++) {
        zend_function *function = zend_hash_str_find_ptr(CG(function_table), TAKEOVERS[i].name, strlen(TAKEOVERS[i].name));
        if (function == NULL || function->type != ZEND_INTERNAL_FUNCTION) {
            fprintf(stderr, "PHP has no function %s to take over\n", TAKEOVERS[i].name);
            return FAILURE;
        }
        if (TAKEOVERS[i].original != NULL) {
            *TAKEOVERS[i].original = function->internal_function.handler;
        }
        function->internal_function.handler = TAKEOVERS[i].handler;
    }
    return SUCCESS;
}

static sapi_module_struct tether_sapi_module = {
    "tether",                        /* name: PHP_SAPI */
    "Tether",                        /* pretty name */
    tether_startup,                  /* startup */
    php_module_shutdown_wrapper,     /* shutdown */
    NULL,                            /* activate */
    NULL,                            /* deactivate */
    tether_ub_write,                 /* unbuffered write */
    tether_flush_sapi,               /* flush */
    NULL,                            /* get uid */
    NULL,                            /* getenv */
    php_error,                       /* error handler */
    NULL,                            /* header handler */
    tether_send_headers,             /* send headers handler */
    NULL,                            /* send header handler */
    tether_read_post,                /* read POST data */
    tether_read_cookies,             /* read cookies */
    tether_register_variables,       /* register server variables */
    tether_log_message,              /* log message */
    NULL,                            /* get request time */
    NULL,                            /* terminate process */
    STANDARD_SAPI_MODULE_PROPERTIES
};

/* The script. */

/* Percent-decodes `len` bytes of `path` (RFC 3986, section 2.1) into a new string; NULL if
 * it decodes to a NUL. */
static char *percent_decode(const char *path, size_t len) {
    char *out = malloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (path[i] == '%' && i + 2 < len && isxdigit((unsigned char)path[i + 1]) && isxdigit((unsigned char)path[i + 2])) {
            char hex[3] = {path[i + 1], path[i + 2], '\0'};
            out[n++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            out[n++] = path[i];
        }
    }
    out[n] = '\0';
    if (strlen(out) != n) {
        free(out);
        return NULL;
    }
    return out;
}

/* Whether `path` has a `..` segment. */
static bool has_dot_dot(const char *path) {
    for (const char *p = path; (p = strstr(p, "..")) != NULL; p += 2) {
        bool starts = p == path || p[-1] == '/';
        bool ends = p[2] == '\0' || p[2] == '/';
        if (starts && ends) {
            return true;
        }
    }
    return false;
}

/* Finds the request's script: its URL path (the route's SCRIPT_NAME, else the request's over
 * FastCGI, else the target's path, decoded) into `script_name`, and its file under the
 * document root into `script_filename`. False, with nothing sent, if there is no such script. */
static bool find_script(void) {
    document_root = getenv("DOCUMENT_ROOT");
    if (document_root == NULL || document_root[0] == '\0') {
        document_root = DEFAULT_DOCUMENT_ROOT;
    }
    const char *front_controller = getenv("SCRIPT_NAME");
    if (front_controller != NULL && front_controller[0] != '\0') {
        script_name = strdup(front_controller);
    } else {
        script_name = tether_request_server_var("SCRIPT_NAME");
    }
    if (script_name == NULL) {
        char *target = tether_request_target();
        size_t len = strcspn(target, "?#");
        script_name = percent_decode(target, len);
        free(target);
    }
    if (script_name == NULL || script_name[0] != '/' || has_dot_dot(script_name)) {
        return false;
    }
    size_t root_len = strlen(document_root);
    while (root_len > 0 && document_root[root_len - 1] == '/') {
        root_len--;
    }
    int written = snprintf(script_filename, sizeof(script_filename), "%.*s%s", (int)root_len, document_root, script_name);
    if (written < 0 || (size_t)written >= sizeof(script_filename)) {
        return false;
    }
    struct stat st;
    return stat(script_filename, &st) == 0 && S_ISREG(st.st_mode);
}

/* Answers 404 as php-fpm does for a script it cannot find. */
static void not_found(void) {
    tether_log("PHP: primary script unknown: %s", script_name != NULL ? script_name : "(none)");
    tether_response_set_status(404, NULL);
    tether_response_set_header("content-type", "text/plain", NULL);
    tether_echo("File not found.\n");
}

/* The SAPI's fields of the request, from the host's. PHP frees none of them: they live as long
 * as the instance, which is the request. */
static void fill_request_info(void) {
    char *method = tether_request_method();
    char *target = tether_request_target();
    char *protocol = tether_request_protocol();
    char *query = tether_request_query_string();
    char *content_type = tether_request_header("content-type");
    char *content_length = tether_request_header("content-length");

    SG(request_info).request_method = method;
    SG(request_info).request_uri = target;
    SG(request_info).query_string = query;
    SG(request_info).path_translated = script_filename;
    SG(request_info).content_type = content_type;
    SG(request_info).content_length = content_length != NULL ? ZEND_STRTOL(content_length, NULL, 10) : 0;
    SG(request_info).proto_num = strcmp(protocol, "HTTP/1.0") == 0 ? 1000 : 1100;
    /* As php-cgi and php-fpm start a response: PHP answers a fatal error before any output
     * with 500 only when the status is still 200. */
    SG(sapi_headers).http_response_code = 200;
    SG(server_context) = &tether_sapi_module;
    free(protocol);
    free(content_length);
}

/* PHP's start-up, up to the request: the SAPI's and PHP's module start-up, and the functions
 * Tether takes over. Run once, at build time (the file's opening comment says how); a failure
 * traps, and the build stops there. */
__attribute__((export_name(PHP_STARTUP_EXPORT))) void php_startup(void) {
    sapi_startup(&tether_sapi_module);
    /* After sapi_startup, which clears them. */
    tether_sapi_module.ini_entries = INI_DEFAULTS;
    tether_sapi_module.php_ini_ignore = 1;
    tether_sapi_module.additional_functions = tether_functions;
    if (tether_sapi_module.startup(&tether_sapi_module) == FAILURE) {
        __builtin_trap();
    }
}

/* Has wasi-libc read the request's WASI context, in place of the snapshot's empty one: its
 * environment (DOCUMENT_ROOT, at the next getenv) and its preopened directories (the document
 * root, at the next path). */
static void read_request_context(void) {
    __wasilibc_deinitialize_environ();
    __wasilibc_maybe_reinitialize_environ_eagerly();
    __wasilibc_reset_preopens();
}

static void handle(void) {
    read_request_context();
    tether_report_aborted_writes();
    if (!find_script()) {
        not_found();
        return;
    }
    fill_request_info();
    if (php_request_startup() == FAILURE) {
        tether_response_set_status(500, NULL);
        tether_log("PHP: request start-up failed");
        return;
    }
    /* The route's ignore_user_abort is PHP's starting value. */
    if (tether_ignore_user_abort(TETHER_KEEP)) {
        zend_string *key = zend_string_init("ignore_user_abort", sizeof("ignore_user_abort") - 1, 0);
        zend_alter_ini_entry_chars(key, "1", 1, PHP_INI_SYSTEM, PHP_INI_STAGE_RUNTIME);
        zend_string_release_ex(key, 0);
    }
    zend_file_handle file;
    zend_stream_init_filename(&file, script_filename);
    php_execute_script(&file);
    zend_destroy_file_handle(&file);
    php_request_shutdown(NULL);
}
TETHER_EXPORT_HANDLER(handle)
