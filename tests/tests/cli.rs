//! The command line: `tether check`, start-up errors for bad manifests and components, and
//! graceful shutdown.

use std::process::Command;
use tests::{Manifest, Options, Server, fresh_dir, get, guest, scratch_dir, tether_bin};

/// Runs `tether <args>` and returns (exit code, stdout + stderr).
fn tether(args: &[&str]) -> (i32, String) {
    let output =
        Command::new(tether_bin()).args(args).arg("--cache-dir").arg(scratch_dir().join("cache")).output().expect("running tether");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

fn manifest(text: &str) -> String {
    let dir = fresh_dir("cli");
    let path = dir.join("tether.toml");
    std::fs::write(&path, text).expect("writing the manifest");
    path.display().to_string()
}

#[test]
fn check_accepts_a_good_manifest() {
    let path = manifest(&Manifest::new().route("/", "hello", "").to_string());
    let (code, out) = tether(&["check", &path]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok, 1 route(s)"), "{out}");
    // The log goes to a pipe here, so it carries no colour escape codes.
    assert!(out.contains("routes loaded") && !out.contains('\x1b'), "{out}");
}

#[test]
fn a_bad_manifest_fails_with_file_line_and_field() {
    let path = manifest(&format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[[route]]\npath = \"/\"\ncomponent = \"{}\"\noutput_bufer = 10\n",
        guest("hello")
    ));
    for command in ["check", "serve"] {
        let (code, out) = tether(&[command, &path]);
        assert_eq!(code, 78, "{command}: {out}");
        assert!(out.contains(&format!("{path}:7:1: field `route[1].output_bufer`: unknown field `output_bufer`")), "{command}: {out}");
    }
}

#[test]
fn a_missing_component_names_its_field_and_line() {
    let path = manifest("[[route]]\npath = \"/\"\n\ncomponent = \"nowhere.wasm\"\n");
    let (code, out) = tether(&["check", &path]);
    assert_eq!(code, 78, "{out}");
    assert!(out.contains(":4:13: field `route[1].component`: component file not found:"), "{out}");
}

#[test]
fn a_broken_component_names_its_field_and_line() {
    let dir = fresh_dir("broken");
    std::fs::write(dir.join("broken.wasm"), b"\0asm\x0d\0\x01\0garbage").expect("writing");
    std::fs::write(dir.join("text.wasm"), b"this is not wasm").expect("writing");
    std::fs::write(dir.join("module.wasm"), b"\0asm\x01\0\0\0").expect("writing");
    for (file, says) in
        [("broken.wasm", "unexpected end-of-file"), ("text.wasm", "not WebAssembly"), ("module.wasm", "core WebAssembly module")]
    {
        let path = dir.join(format!("{file}.toml"));
        std::fs::write(&path, format!("[[route]]\npath = \"/x\"\ncomponent = \"{file}\"\n")).expect("writing");
        let (code, out) = tether(&["check", &path.display().to_string()]);
        assert_eq!(code, 78, "{out}");
        assert!(out.contains(":3:13: field `route[1].component`:") && out.contains("not a valid wasm component"), "{out}");
        assert!(out.contains(says), "{file}: {out}");
    }
}

#[test]
fn a_component_of_another_world_is_refused() {
    // An empty component is valid wasm, but it does not export `handle`.
    let dir = fresh_dir("world");
    let empty = dir.join("empty.wasm");
    std::fs::write(&empty, b"\0asm\x0d\x00\x01\x00").expect("writing");
    let path = manifest(&format!("[[route]]\npath = \"/x\"\ncomponent = \"{}\"\n", empty.display()));
    let (code, out) = tether(&["check", &path]);
    assert_eq!(code, 78, "{out}");
    assert!(out.contains("field `route[1].component`") && out.contains("does not match the tether:guest/handler world"), "{out}");
}

#[test]
fn a_route_names_the_world_of_its_component_or_is_refused_at_its_world_field() {
    for (fixture, world, refusal) in [
        ("proxy", "wasi-http", None),
        ("hello", "tether", None),
        ("proxy", "tether", Some("the route is for `tether` components, but")),
        ("hello", "wasi-http", Some("the route is for `wasi-http` components, but")),
    ] {
        let path = manifest(&format!("[[route]]\npath = \"/\"\ncomponent = \"{}\"\nworld = \"{world}\"\n", guest(fixture)));
        let (code, out) = tether(&["check", &path]);
        match refusal {
            None => assert_eq!(code, 0, "{fixture} as {world}: {out}"),
            Some(says) => {
                assert_eq!(code, 78, "{fixture} as {world}: {out}");
                assert!(out.contains(":4:9: field `route[1].world`: ") && out.contains(says), "{fixture} as {world}: {out}");
            }
        }
    }
}

#[test]
fn serve_without_a_manifest_serves_the_examples() {
    let server = Server::start_with_builtin();
    // The Rust examples at the top, each other language's component under its prefix.
    for prefix in ["", "/js", "/python", "/c"] {
        assert_eq!(get(server.addr(), &format!("{prefix}/hello")).text(), "hello\n", "{prefix}/hello");
        assert_eq!(get(server.addr(), &format!("{prefix}/seed-a?ms=1")).status, 200, "{prefix}/seed-a");
    }
    // The index at `/` lists every route of the built-in manifest (a language's routes by its
    // prefix); a path no route serves gets it with a 404.
    let manifest = include_str!("../../host/src/example.toml");
    let routes: Vec<&str> =
        manifest.lines().filter_map(|line| line.strip_prefix("path = \"/")?.strip_suffix('"')).filter(|path| !path.is_empty()).collect();
    let index = get(server.addr(), "/");
    assert_eq!(index.status, 200);
    for route in &routes {
        let listed = route.split('/').next().expect("a first segment");
        assert!(index.text().contains(&format!("\n/{listed} ")), "/{route} is not in the index: {}", index.text());
    }
    let missing = get(server.addr(), "/nowhere");
    assert_eq!(missing.status, 404);
    assert!(missing.text().starts_with("no route for /nowhere\n"), "{}", missing.text());
}

#[test]
fn a_stale_unix_socket_is_replaced_and_anything_else_is_refused() {
    let dir = std::env::temp_dir().join(format!("tether-stale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    // A socket file nobody listens on: what a crashed server leaves behind.
    let stale = dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    assert!(stale.exists());
    let hello = Manifest::new().route("/", "hello", "");
    let server = Server::start_with(&hello, &["--fastcgi", &format!("unix:{}", stale.display())]);
    let mut client = tests::fcgi::FcgiClient::connect(&format!("unix:{}", stale.display()));
    client.request(1, "GET", "/", b"");
    assert_eq!(client.reply(1).body(), "hello\n");
    // A live socket is not taken over, and a regular file is not removed.
    let path = manifest(&hello.to_string());
    let (code, out) = tether(&["serve", &path, "--fastcgi", &format!("unix:{}", stale.display())]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("is in use by another server"), "{out}");
    drop(server);
    let regular = dir.join("regular");
    std::fs::write(&regular, "data").expect("write");
    let (code, out) = tether(&["serve", &path, "--fastcgi", &format!("unix:{}", regular.display())]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("exists and is not a socket"), "{out}");
    assert_eq!(std::fs::read_to_string(&regular).expect("still there"), "data");
}

#[test]
fn sigterm_lets_running_requests_finish_and_refuses_new_connections() {
    let mut server = Server::start(&Manifest::new().route("/", "seed_a", ""));
    let addr = server.addr().to_owned();
    let mut client = tests::Client::connect(&addr);
    client.get("/?ms=1000");
    server.started("/");
    server.terminate();
    server.wait_for("the shutdown line", |events| {
        events.iter().any(|e| e["message"].as_str().is_some_and(|m| m.starts_with("shutting down"))).then_some(())
    });
    // The running request ends normally, and says the connection will not be kept.
    let response = client.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), Some("close"));
    // The listener closed at the signal, a second before that answer.
    assert!(std::net::TcpStream::connect(&addr).is_err(), "a new connection was accepted during shutdown");
    assert_eq!(server.wait_exit(), Some(0));
    assert_eq!(server.access("/?ms=1000")["outcome"], "completed");
}

/// SIGINT and SIGTERM find their handlers from the first `listening` line on: sent at once,
/// they shut the server down gracefully, never by their default action (the process killed).
#[test]
fn a_stop_signal_as_soon_as_the_server_listens_shuts_it_down_gracefully() {
    for signal in [rustix::process::Signal::TERM, rustix::process::Signal::INT] {
        let mut server = Server::start(&Manifest::new().route("/", "seed_a", ""));
        let pid = rustix::process::Pid::from_raw(i32::try_from(server.pid()).expect("a pid")).expect("a pid");
        rustix::process::kill_process(pid, signal).expect("sending the signal");
        assert_eq!(server.wait_exit(), Some(0), "{signal:?}");
    }
}

#[test]
fn probe_scripts_a_disconnect_and_shows_what_the_guest_saw() {
    let path = manifest(&Manifest::new().route("/", "seed_a", "").to_string());
    let probe = |args: &[&str]| {
        let output = Command::new(tether_bin())
            .args(["probe", "--serve", &path])
            .args(args)
            .env("TETHER_CACHE_DIR", scratch_dir().join("cache"))
            .output()
            .expect("running tether probe");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{args:?}: {text}{}", String::from_utf8_lossy(&output.stderr));
        text
    };
    for how in ["fin", "rst", "close", "half-close"] {
        let text = probe(&["http://x/?ms=20000", "--close-after", "100ms", "--how", how]);
        assert!(text.contains("disconnecting: "), "{how}: {text}");
        assert!(text.contains("--- what the server saw ---") && text.contains("outcome aborted-trapped"), "{how}: {text}");
    }
    // drain reads the whole response, until the server closes.
    let text = probe(&["http://x/?ms=200", "--how", "drain"]);
    assert!(text.contains("server closed the connection") && text.contains("outcome completed"), "{text}");
    // With --close-after, drain stops waiting then.
    let text = probe(&["http://x/?ms=20000", "--how", "drain", "--close-after", "100ms"]);
    assert!(text.contains("disconnecting: Drain") && text.contains("outcome aborted-trapped"), "{text}");
}

#[test]
fn the_compile_cache_serves_a_restart_and_replaces_a_corrupt_entry() {
    let path = manifest(&Manifest::new().route("/", "hello", "").to_string());
    let cache = fresh_dir("cache");
    // How `tether check` got the route's component: "Compiled" or "Cached".
    let provenance = || {
        let output = Command::new(tether_bin())
            .args(["--log-format", "json", "check", &path, "--cache-dir"])
            .arg(&cache)
            .env("TETHER_LOG", "host::runtime=debug")
            .output()
            .expect("running tether check");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let loaded = text.lines().find(|l| l.contains("component loaded")).unwrap_or_else(|| panic!("no load line: {text}"));
        (serde_json::from_str::<serde_json::Value>(loaded).expect("a JSON line")["provenance"].as_str().unwrap_or("").to_owned(), text)
    };
    assert_eq!(provenance().0, "Compiled");
    assert_eq!(provenance().0, "Cached");
    let entries: Vec<_> = std::fs::read_dir(&cache).expect("the cache").map(|e| e.expect("an entry").path()).collect();
    assert_eq!(entries.len(), 1, "one entry, no temporary files left: {entries:?}");
    std::fs::write(&entries[0], b"\x7fELF but not really").expect("corrupting the entry");
    let (how, text) = provenance();
    assert_eq!(how, "Compiled", "{text}");
    assert!(text.contains("ignoring unusable cache entry"), "{text}");
    assert_eq!(provenance().0, "Cached");
}

#[test]
fn requests_still_running_when_shutdown_grace_ends_are_stopped_and_logged() {
    let mut server = Server::start(&Manifest::new().server("shutdown_grace = \"300ms\"").route("/", "seed_a", ""));
    let mut client = tests::Client::connect(server.addr());
    client.get("/?ms=60000");
    server.started("/");
    server.terminate();
    let response = client.read_response();
    assert_eq!(response.status, 503);
    assert_eq!(response.text(), "server shutting down\n");
    let access = server.access("/?ms=60000");
    assert_eq!(access["outcome"], "timeout", "{access}");
    assert_eq!(access["detail"], "shutdown_grace exceeded", "{access}");
    assert_eq!(server.wait_exit(), Some(0));
}

#[test]
fn routes_serving_one_component_load_it_once() {
    let route = |path: &str, name: &str| format!("[[route]]\npath = \"{path}\"\ncomponent = \"{}\"\n", guest(name));
    let path = manifest(&format!("{}{}{}{}", route("/a", "hello"), route("/b", "hello"), route("/c", "echo"), route("/d", "hello")));
    let output = Command::new(tether_bin())
        .args(["--log-format", "json", "check", &path, "--cache-dir"])
        .arg(scratch_dir().join("cache"))
        .env("TETHER_LOG", "host::runtime=debug")
        .output()
        .expect("running tether check");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    let loaded: Vec<&str> = text.lines().filter(|line| line.contains("component loaded")).collect();
    assert_eq!(loaded.len(), 2, "hello once for /a, /b and /d, echo once: {loaded:#?}");
}

/// `TETHER_PERFMAP`: the server writes perf's map of the guest code it loads, from a compile or
/// from the cache, naming the guests' functions.
#[test]
fn perfmap_names_the_guests_functions_for_perf() {
    let manifest = Manifest::new().route("/hello", "hello", "");
    let cache_dir = fresh_dir("perfmap-cache");
    for cache in ["a cold compile", "the compile cache"] {
        let options = Options { env: &[("TETHER_PERFMAP", "1")], cache_dir: Some(cache_dir.clone()), ..Options::default() };
        let server = Server::start_options(&manifest, &options);
        assert_eq!(get(server.addr(), "/hello").text(), "hello\n");
        let map = std::path::PathBuf::from(format!("/tmp/perf-{}.map", server.pid()));
        let text = std::fs::read_to_string(&map).unwrap_or_default();
        let _ = std::fs::remove_file(&map);
        assert!(text.lines().any(|line| line.ends_with("::handle")), "no guest function in {} after {cache}:\n{text}", map.display());
    }
}
