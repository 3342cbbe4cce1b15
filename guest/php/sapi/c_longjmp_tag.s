# The exception tag clang's setjmp/longjmp lowering throws and catches (-mllvm -wasm-enable-sjlj
# with the exnref form): zig's wasi-libc has the setjmp runtime but does not define the tag.
# Its payload is the i32 pointer to the longjmp arguments.
.globl __c_longjmp
.tagtype __c_longjmp i32
__c_longjmp:
