//! Fails the build if a fixture guest has no test: every `guest/fixtures/NAME.rs` and
//! `NAME.wat` must be named, as the quoted string `"NAME"`, in some file of `tests/tests/` or
//! `tests/src/` (where the tests load it, `guest("NAME")` or a route to it). A fixture is one
//! behaviour; one that no test loads shows nothing.

use std::path::{Path, PathBuf};

/// The fixtures' source extensions: Rust guests and hand-written components.
const FIXTURE_EXTENSIONS: [&str; 2] = ["rs", "wat"];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let fixtures_dir = manifest_dir.parent().expect("tests/ sits in the workspace").join("guest/fixtures");
    let test_dirs = [manifest_dir.join("tests"), manifest_dir.join("src")];
    println!("cargo:rerun-if-changed={}", fixtures_dir.display());
    for dir in &test_dirs {
        println!("cargo:rerun-if-changed={}", dir.display());
    }

    let fixtures: Vec<String> = files(&fixtures_dir)
        .into_iter()
        .filter(|path| path.extension().is_some_and(|ext| FIXTURE_EXTENSIONS.iter().any(|known| ext == *known)))
        .filter_map(|path| path.file_stem().map(|stem| stem.to_string_lossy().into_owned()))
        .collect();
    let sources: Vec<String> = test_dirs
        .iter()
        .flat_map(|dir| files(dir))
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .map(|path| std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display())))
        .collect();
    let mut untested: Vec<&String> =
        fixtures.iter().filter(|name| !sources.iter().any(|source| source.contains(&format!("\"{name}\"")))).collect();
    untested.sort();
    untested.dedup();
    // Each is an error cargo reports, failing the build once this script ends.
    for name in untested {
        println!(
            "cargo::error=the fixture guest `{name}` ({}/{name}.*) has no test: no file in tests/tests/ or tests/src/ names \"{name}\"",
            fixtures_dir.display()
        );
    }
}

/// The files in `dir`, not descending into subdirectories.
fn files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("listing {}: {error}", dir.display()))
        .map(|entry| entry.unwrap_or_else(|error| panic!("listing {}: {error}", dir.display())).path())
        .filter(|path| path.is_file())
        .collect()
}
