/* The C SDK for Tether guests: see tether.h. */
#include "tether.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static handler_string_t borrowed(const char *text) {
    handler_string_t s;
    s.ptr = (uint8_t *)text;
    s.len = strlen(text);
    return s;
}

/* A NUL-terminated copy of `len` bytes. */
static char *copy_n(const uint8_t *data, size_t len) {
    char *out = malloc(len + 1);
    if (out == NULL) abort();
    if (len) memcpy(out, data, len);
    out[len] = '\0';
    return out;
}

/* Takes a generated string and returns it NUL-terminated. */
static char *take(handler_string_t *s) {
    char *out = copy_n(s->ptr, s->len);
    handler_string_free(s);
    return out;
}

const char *tether_output_error_name(tether_output_error_t err) {
    switch (err) {
    case TETHER_OUTPUT_ABORTED: return "aborted";
    case TETHER_OUTPUT_FINISHED: return "finished";
    default: return "unknown";
    }
}

const char *tether_body_error_name(tether_body_error_t err) {
    switch (err) {
    case TETHER_BODY_ABORTED: return "aborted";
    case TETHER_BODY_TOO_LARGE: return "too-large";
    case TETHER_BODY_MALFORMED: return "malformed";
    case TETHER_BODY_UNAVAILABLE: return "unavailable";
    default: return "unknown";
    }
}

const char *tether_head_error_name(tether_head_error_t err) {
    switch (err) {
    case TETHER_HEAD_HEADERS_SENT: return "headers-sent";
    case TETHER_HEAD_INVALID: return "invalid";
    case TETHER_HEAD_RESERVED: return "reserved";
    default: return "unknown";
    }
}

void tether_fields_free(tether_fields_t *fields) { handler_list_tuple2_string_list_u8_free(fields); }

void tether_string_pairs_free(tether_string_pairs_t *pairs) { handler_list_tuple2_string_string_free(pairs); }

/* Output. */

void tether_echo(const char *text) { tether_echo_bytes(text, strlen(text)); }

void tether_echo_bytes(const void *data, size_t len) {
    /* Like `echo`, delivery problems are not the writer's concern: an abort traps the guest
     * unless it ignores aborts, and then tether_connection_status tells. */
    tether_write(data, len, NULL);
}

/* printf into a fresh buffer of the right size; `*len` gets the length, without the NUL. */
static char *vformat(const char *format, va_list args, size_t extra, size_t *len) {
    va_list again;
    va_copy(again, args);
    int n = vsnprintf(NULL, 0, format, args);
    if (n < 0) {
        va_end(again);
        return NULL;
    }
    char *text = malloc((size_t)n + 1 + extra);
    if (text == NULL) abort();
    vsnprintf(text, (size_t)n + 1, format, again);
    va_end(again);
    *len = (size_t)n;
    return text;
}

void tether_printf(const char *format, ...) {
    va_list args;
    va_start(args, format);
    size_t len;
    char *text = vformat(format, args, 0, &len);
    va_end(args);
    if (text == NULL) return;
    tether_echo_bytes(text, len);
    free(text);
}

bool tether_write(const void *data, size_t len, tether_output_error_t *err) {
    handler_list_u8_t bytes;
    bytes.ptr = (uint8_t *)data;
    bytes.len = len;
    tether_output_error_t e;
    if (tether_guest_output_write(&bytes, &e)) return true;
    if (err) *err = e;
    return false;
}

bool tether_flush(tether_output_error_t *err) {
    tether_output_error_t e;
    if (tether_guest_output_flush(&e)) return true;
    if (err) *err = e;
    return false;
}

/* Connection and lifecycle. */

uint8_t tether_connection_status(void) { return tether_guest_conn_status(); }

bool tether_connection_aborted(void) { return tether_guest_conn_aborted(); }

bool tether_ignore_user_abort(tether_setting_t setting) {
    bool value = setting == TETHER_SET_TRUE;
    return tether_guest_conn_ignore_user_abort(setting == TETHER_KEEP ? NULL : &value);
}

void tether_report_aborted_writes(void) { tether_guest_conn_report_aborted_writes(); }

bool tether_finish_request(void) { return tether_guest_lifecycle_finish_request(); }

void tether_set_time_limit(uint32_t seconds) { tether_guest_lifecycle_set_time_limit(seconds); }

void tether_log(const char *format, ...) {
    va_list args;
    va_start(args, format);
    size_t len;
    char *line = vformat(format, args, 1, &len);
    va_end(args);
    if (line == NULL) return;
    line[len] = '\n';
    /* One write, so that lines never interleave; whatever stdio buffered goes first. A guest
     * has nowhere better to report a failed log write. */
    fflush(stdout);
    size_t done = 0;
    while (done < len + 1) {
        ssize_t n = write(STDOUT_FILENO, line + done, len + 1 - done);
        if (n <= 0) break;
        done += (size_t)n;
    }
    free(line);
}

/* The request. */

/* An accessor that returns the host's string as a NUL-terminated copy the caller frees. */
#define STRING_ACCESSOR(name, binding) \
    char *name(void) {                 \
        handler_string_t s;            \
        binding(&s);                   \
        return take(&s);               \
    }

STRING_ACCESSOR(tether_request_method, tether_guest_request_method)
STRING_ACCESSOR(tether_request_target, tether_guest_request_target)
STRING_ACCESSOR(tether_request_protocol, tether_guest_request_protocol)
STRING_ACCESSOR(tether_request_scheme, tether_guest_request_scheme)

char *tether_request_remote_addr(void) {
    handler_string_t s;
    if (!tether_guest_request_remote_addr(&s)) return NULL;
    return take(&s);
}

char *tether_request_path(void) {
    char *target = tether_request_target();
    char *q = strchr(target, '?');
    if (q) *q = '\0';
    return target;
}

char *tether_request_query_string(void) {
    char *target = tether_request_target();
    char *q = strchr(target, '?');
    char *query = q ? copy_n((const uint8_t *)q + 1, strlen(q + 1)) : NULL;
    free(target);
    return query;
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* `application/x-www-form-urlencoded` decoding of `len` bytes as the Rust SDK does it: '+' is
 * a space, %XX a byte, a '%' without two hex digits stays. Bytes are kept as decoded (the
 * Rust SDK turns invalid UTF-8 into U+FFFD; C strings are bytes). */
static char *form_decode(const char *text, size_t len) {
    char *out = malloc(len + 1);
    if (out == NULL) abort();
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        if (text[i] == '%' && i + 2 < len && hex_value(text[i + 1]) >= 0 && hex_value(text[i + 2]) >= 0) {
            out[n++] = (char)(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
            i += 3;
        } else {
            out[n++] = text[i] == '+' ? ' ' : text[i];
            i += 1;
        }
    }
    out[n] = '\0';
    return out;
}

char *tether_request_query_param(const char *name) {
    char *query = tether_request_query_string();
    if (query == NULL) return NULL;
    char *found = NULL;
    /* Every pair is looked at; the last match wins. */
    const char *pair = query;
    for (;;) {
        const char *end = strchr(pair, '&');
        size_t pair_len = end ? (size_t)(end - pair) : strlen(pair);
        const char *eq = memchr(pair, '=', pair_len);
        size_t key_len = eq ? (size_t)(eq - pair) : pair_len;
        char *key = form_decode(pair, key_len);
        if (strcmp(key, name) == 0) {
            free(found);
            found = eq ? form_decode(eq + 1, pair_len - key_len - 1) : copy_n((const uint8_t *)"", 0);
        }
        free(key);
        if (end == NULL) break;
        pair = end + 1;
    }
    free(query);
    return found;
}

uint64_t tether_request_query_u64(const char *name, uint64_t fallback) {
    char *value = tether_request_query_param(name);
    if (value == NULL) return fallback;
    const char *digits = value[0] == '+' ? value + 1 : value;
    uint64_t number = 0;
    bool ok = *digits != '\0';
    for (const char *c = digits; ok && *c; c++) {
        if (*c < '0' || *c > '9' || number > (UINT64_MAX - (uint64_t)(*c - '0')) / 10) ok = false;
        else number = number * 10 + (uint64_t)(*c - '0');
    }
    free(value);
    return ok ? number : fallback;
}

void tether_request_headers(tether_fields_t *out) { tether_guest_request_headers(out); }

void tether_request_server_vars(tether_fields_t *out) { tether_guest_request_server_vars(out); }

/* Whether `len` bytes are valid UTF-8. */
static bool is_utf8(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t extra;
        uint32_t min;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            extra = 1, min = 0x80, cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            extra = 2, min = 0x800, cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            extra = 3, min = 0x10000, cp = c & 0x07;
        } else {
            return false;
        }
        if (i + extra >= len) return false;
        for (size_t k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += extra + 1;
    }
    return true;
}

char *tether_request_header(const char *name) {
    size_t name_len = strlen(name);
    char *lower = copy_n((const uint8_t *)name, name_len);
    for (size_t i = 0; i < name_len; i++)
        if (lower[i] >= 'A' && lower[i] <= 'Z') lower[i] = (char)(lower[i] - 'A' + 'a');
    tether_fields_t fields;
    tether_guest_request_headers(&fields);
    size_t total = 0;
    size_t count = 0;
    bool valid = true;
    for (size_t i = 0; i < fields.len; i++) {
        handler_tuple2_string_list_u8_t *f = &fields.ptr[i];
        if (f->f0.len == name_len && memcmp(f->f0.ptr, lower, name_len) == 0) {
            valid = valid && is_utf8(f->f1.ptr, f->f1.len);
            total += f->f1.len + 2;
            count++;
        }
    }
    char *joined = NULL;
    if (count > 0 && valid) {
        joined = malloc(total + 1);
        if (joined == NULL) abort();
        size_t at = 0;
        for (size_t i = 0; i < fields.len; i++) {
            handler_tuple2_string_list_u8_t *f = &fields.ptr[i];
            if (f->f0.len == name_len && memcmp(f->f0.ptr, lower, name_len) == 0) {
                if (at) {
                    memcpy(joined + at, ", ", 2);
                    at += 2;
                }
                if (f->f1.len) memcpy(joined + at, f->f1.ptr, f->f1.len);
                at += f->f1.len;
            }
        }
        joined[at] = '\0';
    }
    tether_fields_free(&fields);
    free(lower);
    return joined;
}

char *tether_request_server_var(const char *name) {
    size_t name_len = strlen(name);
    tether_fields_t vars;
    tether_guest_request_server_vars(&vars);
    char *value = NULL;
    for (size_t i = vars.len; i-- > 0;) {
        handler_tuple2_string_list_u8_t *v = &vars.ptr[i];
        if (v->f0.len == name_len && memcmp(v->f0.ptr, name, name_len) == 0) {
            if (is_utf8(v->f1.ptr, v->f1.len)) value = copy_n(v->f1.ptr, v->f1.len);
            break;
        }
    }
    tether_fields_free(&vars);
    return value;
}

bool tether_request_read_body(void *buf, uint32_t max, size_t *len, tether_body_error_t *err) {
    /* The host reads at least one byte even for a `max` of 0, which `buf` has no room for: a
     * programming error, as PHP's fread($h, 0) is. */
    if (max == 0) {
        fputs("tether_request_read_body: max must be at least 1\n", stderr);
        abort();
    }
    handler_list_u8_t chunk;
    tether_body_error_t e;
    if (!tether_guest_request_read_body(max, &chunk, &e)) {
        *len = 0;
        if (err) *err = e;
        return false;
    }
    if (chunk.len > max) abort(); /* the host returns at most `max` bytes */
    if (chunk.len) memcpy(buf, chunk.ptr, chunk.len);
    *len = chunk.len;
    handler_list_u8_free(&chunk);
    return true;
}

/* The response head. */

bool tether_response_set_status(uint16_t code, tether_head_error_t *err) {
    tether_head_error_t e;
    if (tether_guest_response_set_status(code, &e)) return true;
    if (err) *err = e;
    return false;
}

bool tether_response_set_header(const char *name, const char *value, tether_head_error_t *err) {
    handler_string_t n = borrowed(name), v = borrowed(value);
    tether_head_error_t e;
    if (tether_guest_response_set_header(&n, &v, &e)) return true;
    if (err) *err = e;
    return false;
}

bool tether_response_append_header(const char *name, const char *value, tether_head_error_t *err) {
    handler_string_t n = borrowed(name), v = borrowed(value);
    tether_head_error_t e;
    if (tether_guest_response_append_header(&n, &v, &e)) return true;
    if (err) *err = e;
    return false;
}

bool tether_response_remove_header(const char *name, tether_head_error_t *err) {
    handler_string_t n = borrowed(name);
    tether_head_error_t e;
    if (tether_guest_response_remove_header(&n, &e)) return true;
    if (err) *err = e;
    return false;
}

bool tether_response_headers_sent(void) { return tether_guest_response_headers_sent(); }

uint16_t tether_response_status(void) { return tether_guest_response_status(); }

void tether_response_headers(tether_string_pairs_t *out) { tether_guest_response_headers(out); }
