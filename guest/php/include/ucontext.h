/*
 * ucontext.h for PHP on wasm32-wasi: WebAssembly has no way to switch stacks, so there is no
 * ucontext in wasi-libc and PHP's configure would stop ("fibers not available on this
 * platform"). This header lets Zend/zend_fibers.c build with ZEND_FIBER_UCONTEXT. Fiber::start
 * fails before it gets here, with a catchable Error ("Fiber stack protect failed": WASI's
 * mprotect refuses the guard page); swapcontext, should anything reach it, traps with a
 * message on stderr. Fibers are listed as unsupported in the README's PHP section.
 */
#ifndef TETHER_PHP_UCONTEXT_H
#define TETHER_PHP_UCONTEXT_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    void *ss_sp;
    int ss_flags;
    size_t ss_size;
} stack_t;

typedef struct ucontext_t {
    struct ucontext_t *uc_link;
    stack_t uc_stack;
} ucontext_t;

static inline int getcontext(ucontext_t *context) {
    (void)context;
    return 0;
}

static inline void makecontext(ucontext_t *context, void (*function)(void), int argc, ...) {
    (void)context;
    (void)function;
    (void)argc;
}

static inline int swapcontext(ucontext_t *from, const ucontext_t *to) {
    (void)from;
    (void)to;
    fputs("PHP Fatal error: fibers are not supported in a Tether sandbox (WebAssembly cannot switch stacks)\n", stderr);
    abort();
}

#endif
