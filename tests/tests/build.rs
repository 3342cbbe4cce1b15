//! `tether build`: a manifest's `[route.build]` commands run in their directories, once each,
//! and the components they make are then served.

use std::process::Command;
use tests::{fresh_dir, guest, scratch_dir, tether_bin};

/// Writes a manifest of two routes served by one built component, built by `command`, and
/// runs `tether build` on it; returns the manifest, the exit code and the output.
fn build(command: &str) -> (String, i32, String) {
    let dir = fresh_dir("build");
    std::fs::create_dir_all(dir.join("src")).expect("the build directory");
    let route = |path: &str| {
        format!(
            "[[route]]\npath = \"{path}\"\ncomponent = \"out/hello.wasm\"\n[route.build]\ncommand = \"{command}\"\nworkdir = \"src\"\n\n"
        )
    };
    let manifest = dir.join("tether.toml");
    std::fs::write(&manifest, format!("{}{}", route("/a"), route("/b"))).expect("writing the manifest");
    let output = Command::new(tether_bin()).arg("build").arg(&manifest).output().expect("running tether build");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (manifest.display().to_string(), output.status.code().unwrap_or(-1), text)
}

#[test]
fn build_runs_each_command_once_where_the_manifest_says_and_the_result_serves() {
    // A build that records where and how often it ran, then "compiles" by copying a guest.
    let (manifest, code, out) = build(&format!("pwd >> ../runs && mkdir -p ../out && cp {} ../out/hello.wasm", guest("hello")));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("built 1 command(s)"), "{out}");
    let dir = std::path::Path::new(&manifest).parent().expect("the manifest's directory").to_owned();
    let runs = std::fs::read_to_string(dir.join("runs")).expect("the build ran");
    assert_eq!(runs.lines().collect::<Vec<_>>(), [dir.join("src").display().to_string()], "once, in workdir");
    let check = Command::new(tether_bin())
        .args(["check", &manifest, "--cache-dir"])
        .arg(scratch_dir().join("cache"))
        .output()
        .expect("running tether check");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
}

#[test]
fn a_build_that_fails_or_makes_nothing_names_its_route() {
    for (command, says) in [("exit 3", "`exit 3` failed (exit status: 3)"), ("true", "/out/hello.wasm is still missing after the build")] {
        let (_, code, out) = build(command);
        assert_eq!(code, 1, "{command}: {out}");
        assert!(out.contains("error: route[1] /a: ") && out.contains(says), "{command}: {out}");
    }
}
