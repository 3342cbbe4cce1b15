/*
 * A Tether handler: one request per fresh instance. `tether build` makes the component the
 * manifest serves (clang and componentize-c, their commands in tether.toml).
 */
#include "tether.h"

#include <time.h>

static void handle(void) {
    tether_response_set_header("content-type", "text/plain", NULL);
    tether_echo("hello from C\n");
    /* `?sleep=MS` waits before it finishes: a client that leaves meanwhile stops the guest here. */
    uint64_t ms = tether_request_query_u64("sleep", 0);
    if (ms > 0) {
        tether_flush(NULL);
        struct timespec wait = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
        nanosleep(&wait, NULL);
        tether_echo("slept\n");
    }
}

TETHER_EXPORT_HANDLER(handle)
