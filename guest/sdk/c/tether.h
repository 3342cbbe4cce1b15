/*
 * The C SDK for Tether guests: a thin convenience layer over `handler.h`, the bindings
 * wit-bindgen's C generator writes from wit/tether.wit at every build (generated, never
 * edited; `componentize-c bindings`). Everything in `handler.h` stays available for what this
 * header does not cover.
 *
 * A guest is a Wasm component that handles one request per instance: it reads the request,
 * sets the response head, writes the body and returns. The API follows PHP's request-lifetime
 * functions, so a PHP programmer finds `echo`, `flush`, `connection_status`,
 * `ignore_user_abort`, `finish_request` and `set_time_limit` where they expect them; the names
 * are the Rust SDK's (guest/src/lib.rs) with a `tether_` prefix:
 *
 *     #include "tether.h"
 *
 *     static void handle(void) {
 *         tether_response_set_header("content-type", "text/plain", NULL);
 *         tether_echo("hello\n");                          // PHP: echo
 *         tether_flush(NULL);                              // PHP: ob_flush(); flush(); a socket write
 *         tether_log("status %u", tether_connection_status());
 *     }
 *     TETHER_EXPORT_HANDLER(handle)
 *
 * Build for wasm32-wasi (clang --target=wasm32-wasi -mexec-model=reactor) with handler.c and
 * tether.c, then make the core module a component with `componentize-c component`
 * (`scripts/build-langs c` shows how). `tether_log` writes to stdout, which the host copies
 * into its log, tagged with the request; stderr goes to the log too and, over FastCGI, to the
 * web server. `usleep`/`nanosleep` sleep in the host (WASI), where an abort stops the guest at
 * once.
 *
 * Errors: functions that can be refused return true on success and, on failure, false with
 * the reason in `*err` when `err` is not NULL (the generated error enums; `*_error_name` gives
 * the WIT name). Strings returned by the SDK are NUL-terminated, malloc'd, and the caller's to
 * free; NULL means "none".
 *
 * Aborts: unless the guest calls `tether_ignore_user_abort(TETHER_SET_TRUE)`, a client abort
 * traps the guest wherever it is; no code after that point runs. With it, the guest keeps
 * running, output is discarded (write and flush fail with TETHER_OUTPUT_ABORTED) and
 * `tether_connection_status()` reports TETHER_CONNECTION_ABORTED. In write mode a guest that
 * calls `tether_report_aborted_writes()` gets TETHER_OUTPUT_ABORTED from the write that fails,
 * and stops itself.
 */
#ifndef TETHER_H
#define TETHER_H

#include "handler.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Makes `fn` (a `void fn(void)`) the component's `handle` export (Rust: `export_handler!`). */
#define TETHER_EXPORT_HANDLER(fn) \
    void exports_handler_handle(void) { fn(); }

/* Connection status bits (PHP: CONNECTION_NORMAL, CONNECTION_ABORTED, CONNECTION_TIMEOUT). */
#define TETHER_CONNECTION_NORMAL 0
#define TETHER_CONNECTION_ABORTED 1
#define TETHER_CONNECTION_TIMEOUT 2

/* The error cases, as generated (WIT enums). */
typedef tether_guest_output_output_error_t tether_output_error_t;
#define TETHER_OUTPUT_ABORTED TETHER_GUEST_OUTPUT_OUTPUT_ERROR_ABORTED
#define TETHER_OUTPUT_FINISHED TETHER_GUEST_OUTPUT_OUTPUT_ERROR_FINISHED
typedef tether_guest_request_body_error_t tether_body_error_t;
#define TETHER_BODY_ABORTED TETHER_GUEST_REQUEST_BODY_ERROR_ABORTED
#define TETHER_BODY_TOO_LARGE TETHER_GUEST_REQUEST_BODY_ERROR_TOO_LARGE
#define TETHER_BODY_MALFORMED TETHER_GUEST_REQUEST_BODY_ERROR_MALFORMED
#define TETHER_BODY_UNAVAILABLE TETHER_GUEST_REQUEST_BODY_ERROR_UNAVAILABLE
typedef tether_guest_response_head_error_t tether_head_error_t;
#define TETHER_HEAD_HEADERS_SENT TETHER_GUEST_RESPONSE_HEAD_ERROR_HEADERS_SENT
#define TETHER_HEAD_INVALID TETHER_GUEST_RESPONSE_HEAD_ERROR_INVALID
#define TETHER_HEAD_RESERVED TETHER_GUEST_RESPONSE_HEAD_ERROR_RESERVED

/* The WIT names of the error cases: "aborted", "finished", "too-large", "headers-sent"... */
const char *tether_output_error_name(tether_output_error_t err);
const char *tether_body_error_name(tether_body_error_t err);
const char *tether_head_error_name(tether_head_error_t err);

/* A list of (name, raw bytes) pairs, as generated: `.ptr[i].f0` the name, `.f1` the value.
 * Free with tether_fields_free. */
typedef handler_list_tuple2_string_list_u8_t tether_fields_t;
void tether_fields_free(tether_fields_t *fields);
/* A list of (name, value) string pairs, as generated. Free with tether_string_pairs_free. */
typedef handler_list_tuple2_string_string_t tether_string_pairs_t;
void tether_string_pairs_free(tether_string_pairs_t *pairs);

/* Output (PHP: echo, ob_flush(); flush();). */

/* Appends a NUL-terminated string to the output buffer, ignoring whether the client still
 * listens, like PHP's echo. */
void tether_echo(const char *text);
/* The same for `len` bytes. */
void tether_echo_bytes(const void *data, size_t len);
/* Echoes printf-formatted text (PHP: printf). */
void tether_printf(const char *format, ...) __attribute__((format(printf, 1, 2)));
/* Appends `len` bytes to the output buffer; a full buffer (the route's output_buffer) is
 * flushed to the client. */
bool tether_write(const void *data, size_t len, tether_output_error_t *err);
/* Sends the buffered output (and, the first time, the response head) to the client and returns
 * once the socket write returned (PHP: ob_flush(); flush();). */
bool tether_flush(tether_output_error_t *err);

/* Connection and lifecycle. */

/* The status bits, TETHER_CONNECTION_* (PHP: connection_status()). */
uint8_t tether_connection_status(void);
/* Whether the client went away (PHP: connection_aborted()). */
bool tether_connection_aborted(void);
/* What tether_ignore_user_abort changes the setting to. */
typedef enum { TETHER_KEEP = -1, TETHER_SET_FALSE = 0, TETHER_SET_TRUE = 1 } tether_setting_t;
/* Returns the previous setting and changes it unless `setting` is TETHER_KEEP
 * (PHP: ignore_user_abort()). */
bool tether_ignore_user_abort(tether_setting_t setting);
/* In write mode, the write that finds the client gone fails with TETHER_OUTPUT_ABORTED instead
 * of trapping, and so does all later output: the guest stops itself (PHP: the bailout that runs
 * shutdown functions). Prompt mode still traps. */
void tether_report_aborted_writes(void);
/* Completes the response and releases the connection; the guest keeps running
 * (PHP: fastcgi_finish_request()). False if already finished or the client is gone. */
bool tether_finish_request(void);
/* Restarts the execution-time budget, 0 meaning unlimited (PHP: set_time_limit()). */
void tether_set_time_limit(uint32_t seconds);
/* Writes one printf-formatted line to stdout in a single write: the host's log, tagged with
 * the request, and nowhere else. */
void tether_log(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* The request (PHP: $_SERVER, $_GET, getallheaders(), php://input). */

/* The method, e.g. GET (PHP: $_SERVER['REQUEST_METHOD']). */
char *tether_request_method(void);
/* Path plus query (PHP: $_SERVER['REQUEST_URI']). */
char *tether_request_target(void);
/* HTTP/1.0, HTTP/1.1, or over FastCGI the web server's (PHP: $_SERVER['SERVER_PROTOCOL']). */
char *tether_request_protocol(void);
/* The client's IP:PORT; NULL over a Unix socket (PHP: $_SERVER['REMOTE_ADDR']). */
char *tether_request_remote_addr(void);
/* https behind a web server that terminated TLS and says so, else http. */
char *tether_request_scheme(void);
/* The path part of the target. */
char *tether_request_path(void);
/* The query string without the '?'; NULL if there is none (PHP: $_SERVER['QUERY_STRING']). */
char *tether_request_query_string(void);
/* The query parameter `name` as PHP's $_GET[name]: decoded ('+' is a space), the last of
 * several wins; NULL if absent. */
char *tether_request_query_param(const char *name);
/* The query parameter `name` as a non-negative integer, or `fallback`. */
uint64_t tether_request_query_u64(const char *name, uint64_t fallback);
/* All headers in arrival order, names lowercased, values raw (PHP: getallheaders()). */
void tether_request_headers(tether_fields_t *out);
/* The header `name` (case-insensitive), several joined with ", "; NULL if absent or not UTF-8. */
char *tether_request_header(const char *name);
/* The CGI variables besides the headers (PHP: $_SERVER without HTTP_*). */
void tether_request_server_vars(tether_fields_t *out);
/* The CGI variable `name` (PHP: $_SERVER[name]); NULL if absent or not UTF-8. */
char *tether_request_server_var(const char *name);
/* Reads the next body chunk of at most `max` bytes (at least 1: the size of `buf`) into `buf`;
 * `*len` 0 means the end (PHP: php://input). */
bool tether_request_read_body(void *buf, uint32_t max, size_t *len, tether_body_error_t *err);

/* The response head: changes fail with TETHER_HEAD_HEADERS_SENT once it is sent. */

/* Sets the status, 200 by default (PHP: http_response_code($code)). */
bool tether_response_set_status(uint16_t code, tether_head_error_t *err);
/* Sets a header, replacing earlier ones (PHP: header("Name: value")). */
bool tether_response_set_header(const char *name, const char *value, tether_head_error_t *err);
/* Adds a header, keeping earlier ones (PHP: header("Name: value", false)). */
bool tether_response_append_header(const char *name, const char *value, tether_head_error_t *err);
/* Removes every header called `name` (PHP: header_remove($name)). */
bool tether_response_remove_header(const char *name, tether_head_error_t *err);
/* Whether the head was sent (PHP: headers_sent()). */
bool tether_response_headers_sent(void);
/* The status set so far, or sent (PHP: http_response_code()). */
uint16_t tether_response_status(void);
/* The headers set so far, or sent, names lowercased (PHP: headers_list()). */
void tether_response_headers(tether_string_pairs_t *out);

#ifdef __cplusplus
}
#endif

#endif
