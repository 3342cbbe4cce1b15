/*
 * The Rust example guests and the finish fixture, in C, in one component.
 *
 * The behaviour is picked by the last segment of the request path: `hello`, `echo`, `headers`,
 * `seed-a`, `seed-a2`, `seed-b` and `finish` do what guest/examples/ *.rs and
 * guest/fixtures/finish.rs do, with the same query parameters, output and log lines (Rust's
 * `{:?}` of a result or an option is spelt out where a line shows one). Any other path gets a
 * 404. Build: `scripts/build-langs c`.
 */
#include "tether.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Rust's `{:?}` of a string: quoted, with the escapes `char::escape_debug` makes for ASCII and
 * control characters. The caller frees the result. */
static char *debug_str(const char *text) {
    size_t len = strlen(text);
    char *out = malloc(len * 8 + 3);
    if (out == NULL) abort();
    char *o = out;
    *o++ = '"';
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        switch (*c) {
        case '\\': o += sprintf(o, "\\\\"); break;
        case '"': o += sprintf(o, "\\\""); break;
        case '\n': o += sprintf(o, "\\n"); break;
        case '\r': o += sprintf(o, "\\r"); break;
        case '\t': o += sprintf(o, "\\t"); break;
        default:
            if (*c < 0x20 || *c == 0x7f) o += sprintf(o, "\\u{%x}", *c);
            else *o++ = (char)*c;
        }
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

/* Rust's `{:?}` of an `Option<String>`; frees `value`. The caller frees the result. */
static char *debug_option(char *value) {
    if (value == NULL) return strdup("None");
    char *quoted = debug_str(value);
    char *out = malloc(strlen(quoted) + 7);
    if (out == NULL) abort();
    sprintf(out, "Some(%s)", quoted);
    free(quoted);
    free(value);
    return out;
}

/* Rust's `{:?}` of `result.map_err(|e| e.name())`: `Ok(())` or `Err("aborted")`. */
static const char *outcome(bool ok, tether_output_error_t err) {
    if (ok) return "Ok(())";
    return err == TETHER_OUTPUT_ABORTED ? "Err(\"aborted\")" : "Err(\"finished\")";
}

static void sleep_ms(uint64_t ms) {
    struct timespec t = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* `iua=1`: ignore user aborts; `report=1`: have an aborted write reported, not trapped. */
static void abort_settings_as_asked(void) {
    if (tether_request_query_u64("iua", 0) == 1) tether_ignore_user_abort(TETHER_SET_TRUE);
    if (tether_request_query_u64("report", 0) == 1) tether_report_aborted_writes();
}

/* Answers `hello`: the smallest useful guest, used for throughput figures. */
static void hello(void) {
    tether_response_set_header("content-type", "text/plain", NULL);
    tether_echo("hello\n");
}

/* Sends the request body back, with the request's content type. */
static void echo(void) {
    char *content_type = tether_request_header("content-type");
    if (content_type != NULL) tether_response_set_header("content-type", content_type, NULL);
    free(content_type);
    enum { CHUNK = 64 * 1024 };
    char *buf = malloc(CHUNK);
    if (buf == NULL) abort();
    for (;;) {
        size_t len;
        tether_body_error_t err;
        if (!tether_request_read_body(buf, CHUNK, &len, &err)) {
            tether_log("body error: %s", tether_body_error_name(err));
            tether_response_set_status(400, NULL);
            break;
        }
        if (len == 0) break;
        tether_echo_bytes(buf, len);
    }
    free(buf);
}

/* `value` as Rust's `u16::from_str`: digits with an optional leading '+'; -1 if it fails. */
static long parse_u16(const char *value) {
    const char *d = value[0] == '+' ? value + 1 : value;
    if (*d == '\0') return -1;
    long n = 0;
    for (; *d; d++) {
        if (*d < '0' || *d > '9') return -1;
        n = n * 10 + (*d - '0');
        if (n > 0xffff) return -1;
    }
    return n;
}

/* Echoes `label NAME = VALUE` lines as headers.rs does for `?param=`, `?header=`, `?var=`. */
static void echo_lookup(const char *label, char *(*lookup)(const char *), const char *query) {
    char *name = tether_request_query_param(query);
    if (name == NULL) return;
    char *quoted = debug_str(name);
    char *value = debug_option(lookup(name));
    tether_printf("%s %s = %s\n", label, quoted, value);
    free(value);
    free(quoted);
    free(name);
}

static void echo_fields(const char *prefix, const char *separator, tether_fields_t *fields) {
    for (size_t i = 0; i < fields->len; i++) {
        handler_tuple2_string_list_u8_t *f = &fields->ptr[i];
        tether_printf("%s%.*s%s", prefix, (int)f->f0.len, (const char *)f->f0.ptr, separator);
        /* Rust's `String::from_utf8_lossy`; the values the tests send are UTF-8. */
        tether_echo_bytes(f->f1.ptr, f->f1.len);
        tether_echo("\n");
    }
}

/* Lists the request line and headers; `?status=N`, `?flush=1`, `?vars=1`, `?param=NAME`,
 * `?header=NAME`, `?var=NAME` as headers.rs. */
static void headers(void) {
    tether_response_set_header("content-type", "text/plain", NULL);
    tether_response_set_header("x-tether-guest", "headers", NULL);
    char *status = tether_request_query_param("status");
    long code = status ? parse_u16(status) : -1;
    if (code >= 0) tether_response_set_status((uint16_t)code, NULL);
    free(status);
    char *flush = tether_request_query_param("flush");
    if (flush != NULL) tether_flush(NULL);
    free(flush);
    char *method = tether_request_method(), *target = tether_request_target(), *protocol = tether_request_protocol();
    tether_printf("%s %s %s\n", method, target, protocol);
    free(method);
    free(target);
    free(protocol);
    tether_fields_t fields;
    tether_request_headers(&fields);
    echo_fields("", ": ", &fields);
    tether_fields_free(&fields);
    char *remote = debug_option(tether_request_remote_addr());
    char *scheme = tether_request_scheme();
    tether_printf("remote %s\nscheme %s\n", remote, scheme);
    free(remote);
    free(scheme);
    char *vars = tether_request_query_param("vars");
    if (vars != NULL) {
        tether_request_server_vars(&fields);
        echo_fields("var ", "=", &fields);
        tether_fields_free(&fields);
    }
    free(vars);
    echo_lookup("param", tether_request_query_param, "param");
    echo_lookup("header", tether_request_header, "header");
    echo_lookup("server var", tether_request_server_var, "var");
}

/* Seed A: log, sleep (`ms`, default 3000), log: a request that produces no output. */
static void seed_a(void) {
    abort_settings_as_asked();
    uint64_t ms = tether_request_query_u64("ms", 3000);
    tether_log("start cs=%u", tether_connection_status());
    sleep_ms(ms);
    tether_log("end cs=%u", tether_connection_status());
}

/* Seed A2: `n` times { write "22222"; flush; log; sleep; log the status }. */
static void seed_a2(void) {
    abort_settings_as_asked();
    uint64_t n = tether_request_query_u64("n", 6);
    uint64_t ms = tether_request_query_u64("ms", 1000);
    uint64_t first_ms = tether_request_query_u64("first_ms", ms);
    tether_log("start cs=%u", tether_connection_status());
    for (uint64_t i = 1; i <= n && i != 0; i++) {
        tether_echo("22222");
        tether_output_error_t err;
        bool ok = tether_flush(&err);
        tether_log("w %llu cs=%u flush=%s", (unsigned long long)i, tether_connection_status(), outcome(ok, err));
        sleep_ms(i == 1 ? first_ms : ms);
        tether_log("iter %llu cs=%u", (unsigned long long)i, tether_connection_status());
    }
    tether_log("end cs=%u", tether_connection_status());
}

/* Seed B: 6 times { sleep; write 4096 bytes; log the status; flush }; `outk` limits the
 * iterations that write. */
static void seed_b(void) {
    abort_settings_as_asked();
    uint64_t ms = tether_request_query_u64("ms", 2000);
    uint64_t first_ms = tether_request_query_u64("first_ms", ms);
    uint64_t outk = tether_request_query_u64("outk", 6);
    static char four_kib[4096];
    memset(four_kib, 'a', sizeof four_kib);
    tether_log("start cs=%u", tether_connection_status());
    for (uint64_t i = 0; i < 6; i++) {
        sleep_ms(i == 0 ? first_ms : ms);
        if (i < outk) tether_echo_bytes(four_kib, sizeof four_kib);
        tether_log("iter %llu cs=%u", (unsigned long long)i, tether_connection_status());
        if (tether_connection_aborted()) tether_log("stop %llu", (unsigned long long)i);
        if (i < outk) {
            tether_output_error_t err;
            bool ok = tether_flush(&err);
            tether_log("w %llu cs=%u flush=%s", (unsigned long long)i, tether_connection_status(), outcome(ok, err));
        }
    }
    tether_log("done cs=%u", tether_connection_status());
}

/* Answers, calls `finish_request`, keeps working: `ms` (default 2000), `post_echo=1`,
 * `stderr=1`, `iua=1`, `report=1`. */
static void finish(void) {
    abort_settings_as_asked();
    tether_echo("response-body\n");
    bool finished = tether_finish_request();
    tether_log("finished %s cs=%u", finished ? "true" : "false", tether_connection_status());
    sleep_ms(tether_request_query_u64("ms", 2000));
    if (tether_request_query_u64("stderr", 0) == 1) {
        fputs("late stderr\n", stderr);
        fflush(stderr);
    }
    tether_log("after_sleep cs=%u", tether_connection_status());
    if (tether_request_query_u64("post_echo", 0) == 1) {
        static const char late[] = "late output\n";
        tether_output_error_t write_err, flush_err;
        bool wrote = tether_write(late, sizeof late - 1, &write_err);
        bool flushed = tether_flush(&flush_err);
        tether_log("post_echo write=%s flush=%s cs=%u", outcome(wrote, write_err), outcome(flushed, flush_err),
                   tether_connection_status());
    }
    tether_log("end cs=%u", tether_connection_status());
}

static const struct {
    const char *name;
    void (*run)(void);
} BEHAVIOURS[] = {
    {"hello", hello},   {"echo", echo},       {"headers", headers}, {"seed-a", seed_a},
    {"seed-a2", seed_a2}, {"seed-b", seed_b}, {"finish", finish},
};

static void handle(void) {
    char *path = tether_request_path();
    size_t len = strlen(path);
    while (len > 0 && path[len - 1] == '/') path[--len] = '\0';
    const char *slash = strrchr(path, '/');
    const char *last = slash ? slash + 1 : path;
    for (size_t i = 0; i < sizeof BEHAVIOURS / sizeof BEHAVIOURS[0]; i++) {
        if (strcmp(last, BEHAVIOURS[i].name) == 0) {
            free(path);
            BEHAVIOURS[i].run();
            return;
        }
    }
    free(path);
    tether_response_set_status(404, NULL);
    tether_echo("no such behaviour:");
    for (size_t i = 0; i < sizeof BEHAVIOURS / sizeof BEHAVIOURS[0]; i++) tether_printf(" %s", BEHAVIOURS[i].name);
    tether_echo("\n");
}

TETHER_EXPORT_HANDLER(handle)
