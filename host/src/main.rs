//! The `tether` binary: see [`host::cli`].

fn main() -> std::process::ExitCode {
    host::cli::main()
}
