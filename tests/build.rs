//! Fails the build if a fixture guest in `guest/fixtures/` is not used by any test: each
//! fixture exists for one behaviour, and a fixture without a test is a behaviour nobody checks.

use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures = root.join("../guest/fixtures");
    let tests = root.join("tests");
    println!("cargo:rerun-if-changed={}", fixtures.display());
    println!("cargo:rerun-if-changed={}", tests.display());
    let mut sources = String::new();
    for entry in std::fs::read_dir(&tests).expect("reading tests/tests") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            sources.push_str(&std::fs::read_to_string(&path).expect("reading a test file"));
        }
    }
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&fixtures).expect("reading guest/fixtures") {
        let path = entry.expect("a directory entry").path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else { continue };
        if !sources.contains(&format!("\"{name}\"")) {
            missing.push(name.to_owned());
        }
    }
    if !missing.is_empty() {
        panic!("fixture guest(s) without a test: {} (use each in tests/tests/*.rs)", missing.join(", "));
    }
}
