//! The `tether` binary: see [`host::cli`].

fn main() -> std::process::ExitCode {
    no_backtraces_in_routine_errors();
    host::cli::main()
}

/// Turns off native backtraces in errors unless `RUST_LIB_BACKTRACE` asks for them.
///
/// With `RUST_BACKTRACE=1` (common on development machines and CI runners) every error that
/// anyhow or wasmtime creates captures one, and a server's errors are routine: each guest
/// stopped because its client left comes back from wasmtime as an error. Capturing its
/// backtrace costs about 45 µs of the time from a client's close to its spinning guest being
/// stopped (BENCHMARKS.md, "A native backtrace for every stopped guest"). Panics still print
/// backtraces under `RUST_BACKTRACE`.
#[allow(unsafe_code)]
fn no_backtraces_in_routine_errors() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: called first in `main`, before any thread exists, so no other thread reads
        // or writes the environment meanwhile.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}
