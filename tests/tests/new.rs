//! `tether new`: for every guest language, a new project that `tether build` builds and
//! `tether serve` serves, answering a request, with the toolchains `scripts/setup-langs`
//! installs on `PATH` as a user has them.

use std::process::Command;
use tests::{Client, Server, fresh_dir, path_with_lang_tools, tether_bin};

/// Runs `tether <args>` in `dir` with the guest toolchains on `PATH`; panics with its output
/// unless it succeeds.
fn tether_in(dir: &std::path::Path, args: &[&str]) {
    let output =
        Command::new(tether_bin()).args(args).current_dir(dir).env("PATH", path_with_lang_tools()).output().expect("running tether");
    assert!(
        output.status.success(),
        "tether {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_new_project_in_every_language_builds_and_serves() {
    for (lang, greeting) in
        [("rust", "hello from Rust\n"), ("js", "hello from JavaScript\n"), ("python", "hello from Python\n"), ("c", "hello from C\n")]
    {
        let parent = fresh_dir("new");
        tether_in(&parent, &["new", "--lang", lang, "shop"]);
        let project = parent.join("shop");
        tether_in(&project, &["build"]);
        // A debug host may take longer than the start-up timeout to compile a fresh JavaScript
        // or Python component: it is compiled into the cache first, with no time limit.
        tests::compile(Some(&project.join("tether.toml")));
        let server = Server::start_file(&project.join("tether.toml"));
        let mut client = Client::connect(server.addr());
        client.get("/?sleep=1");
        let response = client.read_response();
        assert_eq!(response.status, 200, "{lang}");
        assert_eq!(response.text(), format!("{greeting}slept\n"), "{lang}");
    }
}

#[test]
fn new_refuses_a_directory_that_is_not_empty() {
    let dir = fresh_dir("new");
    std::fs::write(dir.join("keep.txt"), "mine").expect("writing a file");
    let output = Command::new(tether_bin()).args(["new", "--lang", "js"]).arg(&dir).output().expect("running tether");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not empty"), "{output:?}");
    assert_eq!(std::fs::read_to_string(dir.join("keep.txt")).expect("the file stays"), "mine");
}
