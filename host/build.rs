//! Builds every guest in `guest/` (the examples and the test fixtures) for `wasm32-wasip2` with
//! the workspace's `guest` profile, assembles the hand-written `guest/fixtures/*.wat` next to
//! them, and tells the crate where they are (`TETHER_GUEST_DIR`).
//! The host embeds the example guests, and the tests load the fixtures from there (the `tests`
//! crate finds them by this layout: `<target>/guests/wasm32-wasip2/guest/examples`).
//!
//! Then it runs `scripts/build-langs`, which builds the JavaScript, Python and C examples with
//! the toolchains `scripts/setup-langs` installs into `<target>/lang-guests/` (leaving a
//! language whose inputs have not changed as it is), and PHP's component with
//! `scripts/build-php` (cached per machine under `target/php-build/`), and tells the crate
//! where they are (`TETHER_LANG_GUEST_DIR`): the host embeds the examples too.
//!
//! The guests get their own target directory, so this nested cargo never waits on the lock the
//! outer build holds.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The guests' target triple.
const GUEST_TARGET: &str = "wasm32-wasip2";
/// The cargo profile guests are built with (see the workspace `Cargo.toml`).
const GUEST_PROFILE: &str = "guest";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().expect("host/ sits in the workspace").to_path_buf();
    for watched in [
        "guest/src",
        "guest/examples",
        "guest/fixtures",
        "guest/Cargo.toml",
        "guest/sdk",
        "guest/tools",
        "guest/php",
        "wit",
        "scripts/build-langs",
        "scripts/build-php",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is <target>/<profile>/build/host-<hash>/out; share one guest build per target dir.
    let cargo_target_dir = out_dir.ancestors().nth(4).unwrap_or(&out_dir).to_path_buf();
    let target_dir = cargo_target_dir.join("guests");

    check_target_installed();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--package", "guest", "--examples", "--target", GUEST_TARGET, "--profile", GUEST_PROFILE])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's flags are for the host target, not for the guests.
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR", "CARGO_BUILD_RUSTFLAGS"] {
        command.env_remove(var);
    }
    let output = command.output().expect("running cargo to build the guests");
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        panic!("building the guests in guest/ failed (see the cargo output above)");
    }
    let guest_dir = target_dir.join(GUEST_TARGET).join(GUEST_PROFILE).join("examples");
    assemble_wat_fixtures(&workspace.join("guest/fixtures"), &guest_dir);
    println!("cargo:rustc-env=TETHER_GUEST_DIR={}", guest_dir.display());

    let lang_guest_dir = cargo_target_dir.join("lang-guests");
    build_lang_guests(&workspace, &lang_guest_dir);
    println!("cargo:rustc-env=TETHER_LANG_GUEST_DIR={}", lang_guest_dir.display());
}

/// Runs `scripts/build-langs all` into `out`; fails with its output and what to do.
fn build_lang_guests(workspace: &Path, out: &Path) {
    let script = workspace.join("scripts/build-langs");
    let output = Command::new(&script)
        .arg("all")
        .env("TETHER_LANG_GUESTS", out)
        .output()
        .unwrap_or_else(|error| panic!("running {}: {error}", script.display()));
    if !output.status.success() {
        panic!(
            "building the JavaScript, Python, C and PHP guests failed:\n{}{}\n\
             The toolchains come from `scripts/setup-langs` (the README's `make run` and `make test` run it).",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Assembles each `NAME.wat` in `fixtures` into `NAME.wasm` in `guest_dir`.
fn assemble_wat_fixtures(fixtures: &Path, guest_dir: &Path) {
    let entries = std::fs::read_dir(fixtures).unwrap_or_else(|error| panic!("reading {}: {error}", fixtures.display()));
    for entry in entries {
        let source = entry.expect("listing guest/fixtures").path();
        if source.extension().is_some_and(|ext| ext == "wat") {
            let binary = wat::parse_file(&source).unwrap_or_else(|error| panic!("assembling {}: {error}", source.display()));
            let target = guest_dir.join(source.with_extension("wasm").file_name().expect("a file name"));
            std::fs::write(&target, binary).unwrap_or_else(|error| panic!("writing {}: {error}", target.display()));
        }
    }
}

/// Fails with instructions if the Rust standard library for the guest target is missing.
fn check_target_installed() {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc).args(["--print", "sysroot"]).output().expect("running rustc --print sysroot");
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if !Path::new(&sysroot).join("lib/rustlib").join(GUEST_TARGET).exists() {
        panic!(
            "the {GUEST_TARGET} target is not installed; run `rustup target add {GUEST_TARGET}` \
             (the README's `make run` and `make test` do this for you)"
        );
    }
}
