//! Reloading on SIGHUP: under load from wrk, ten reloads (one of a broken manifest) fail no
//! request, requests under way end as they would have, new requests get the new generation,
//! and listeners the manifest adds open and those it drops close. With `--watch`, a changed
//! manifest or component file reloads too.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use tests::{Client, Close, Manifest, Server};

/// How many reloads the load sees, and which of them reads a broken manifest.
const RELOADS: usize = 10;
const BROKEN_RELOAD: usize = 5;
/// How long the requests under way sleep: longer than the reloads take.
const SLEEP_MS: u64 = 4000;

/// The manifest of version `version`: `/v` answers with the hello guest in even versions and
/// the headers guest in odd ones; the other routes stay.
fn manifest(version: usize) -> Manifest {
    let v = if version.is_multiple_of(2) { "hello" } else { "headers" };
    Manifest::new().route("/v", v, "").route("/seed-a", "seed_a", "").route("/finish", "finish", "")
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("writing the manifest");
}

/// Whether `/v` answered with the hello guest (else the headers guest).
fn serves_hello(server: &Server) -> bool {
    let response = tests::get(server.addr(), "/v");
    assert_eq!(response.status, 200);
    response.text() == "hello\n"
}

/// Runs wrk against `url` until the returned child is sent SIGINT, when it prints its summary.
fn start_wrk(url: &str) -> std::process::Child {
    Command::new("wrk")
        .args(["-t1", "-c8", "-d600s", url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting wrk (scripts/setup --test installs it)")
}

/// Stops wrk and returns its summary.
fn stop_wrk(mut wrk: std::process::Child) -> String {
    let pid = rustix::process::Pid::from_child(&wrk);
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("sending SIGINT to wrk");
    let mut summary = String::new();
    wrk.stdout.take().expect("piped").read_to_string(&mut summary).expect("reading wrk's output");
    wrk.wait().expect("waiting for wrk");
    summary
}

#[test]
fn reloads_under_load_fail_no_request_and_requests_under_way_end_as_they_would_have() {
    let dir = tests::fresh_dir("reload");
    let path = dir.join("tether.toml");
    write(&path, &manifest(0).to_string());
    let server = Server::start_file(&path);
    assert!(serves_hello(&server));

    // Requests under way across every reload: a sleeper, a guest that finished its response
    // early and works on, and one whose client left while it ignores user aborts.
    let mut sleeper = Client::connect(server.addr());
    let sleeping = format!("/seed-a?ms={SLEEP_MS}");
    sleeper.get(&sleeping);
    server.guest_line(server.started("/seed-a"), "start");
    let finishing = format!("/finish?ms={SLEEP_MS}");
    let mut finisher = Client::connect(server.addr());
    finisher.get(&finishing);
    let finished_early = finisher.read_response();
    let ignoring = format!("/seed-a?ms={SLEEP_MS}&iua=1");
    let left = tests::leave_after_line(&server, server.addr(), &ignoring, "/seed-a", "start", Close::Fin);

    let wrk = start_wrk(&format!("http://{}/v", server.addr()));
    for version in 1..=RELOADS {
        if version == BROKEN_RELOAD {
            write(&path, &format!("{}\n[[route]]\npath = 7\n", manifest(version)));
            let error = server.reload().expect_err("a broken manifest does not load");
            assert!(error.contains("tether.toml:") && error.contains("`route[4].path`"), "the error points at the field: {error}");
            // The generation in force stays: /v answers as before.
            assert_eq!(serves_hello(&server), (version - 1).is_multiple_of(2));
            continue;
        }
        write(&path, &manifest(version).to_string());
        server.reload().expect("the reload succeeds");
        // New requests get the new generation at once.
        assert_eq!(serves_hello(&server), version.is_multiple_of(2), "version {version}");
    }
    let summary = stop_wrk(wrk);
    let requests: u64 = summary
        .lines()
        .find_map(|line| line.trim().split_once(" requests in ")?.0.parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk's summary:\n{summary}"));
    assert!(requests > 0, "{summary}");
    assert!(!summary.contains("Non-2xx") && !summary.contains("Socket errors"), "a request failed:\n{summary}");

    let response = sleeper.read_response();
    assert_eq!((response.status, server.access(&sleeping)["outcome"].as_str()), (200, Some("completed")));
    assert_eq!((finished_early.status, finished_early.text().as_str()), (200, "response-body\n"));
    let (access, lines) = server.finished(&finishing);
    assert_eq!(access["outcome"], "finished-early");
    assert!(tests::has(&lines, "end cs=0"), "{lines:?}");
    assert_eq!(server.access(&ignoring)["outcome"], "aborted-ignored");
    assert!(tests::has(&server.guest_lines(left.req), "end"), "{:?}", server.guest_lines(left.req));
}

#[test]
fn a_reload_opens_the_listeners_the_manifest_adds_and_closes_those_it_drops() {
    let dir = tests::fresh_dir("reload-listeners");
    let path = dir.join("tether.toml");
    let plain = Manifest::new().route("/", "hello", "");
    write(&path, &plain.to_string());
    let server = Server::start_file(&path);

    let mark = server.log_len();
    write(&path, &plain.clone().server("fastcgi = [\"127.0.0.1:0\"]").to_string());
    server.reload().expect("the reload succeeds");
    let fastcgi = server.wait_for_since(mark, "the new FastCGI listener", |events| {
        events
            .iter()
            .find(|e| e["message"] == "listening" && e["protocol"] == "fastcgi")
            .and_then(|e| e["addr"].as_str().map(str::to_owned))
    });
    std::net::TcpStream::connect(&fastcgi).expect("the added listener accepts");

    write(&path, &plain.to_string());
    server.reload().expect("the reload succeeds");
    let refused = std::net::TcpStream::connect(&fastcgi).expect_err("the dropped listener is closed");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    // The HTTP listener the command line gave stays.
    assert_eq!(tests::get(server.addr(), "/").text(), "hello\n");
}

/// Writes `bytes` to `path` as a build does: into a file beside it, renamed over it.
fn replace(path: &Path, bytes: &[u8]) {
    let staged = path.with_extension("new");
    std::fs::write(&staged, bytes).expect("writing");
    std::fs::rename(&staged, path).expect("renaming");
}

#[test]
fn watch_reloads_when_the_manifest_or_a_component_changes() {
    let dir = tests::fresh_dir("watch");
    let (path, component) = (dir.join("tether.toml"), dir.join("v.wasm"));
    let guest = |name: &str| std::fs::read(tests::guest(name)).expect("a built guest");
    replace(&component, &guest("hello"));
    let manifest = |extra: &str| format!("[[route]]\npath = \"/v\"\ncomponent = \"v.wasm\"\n{extra}\n");
    write(&path, &manifest(""));
    let server = Server::start_file_with(&path, &["--watch"]);
    assert!(serves_hello(&server));

    // A new component file: the next generation serves it.
    let mark = server.log_len();
    replace(&component, &guest("headers"));
    server.wait_for_since(mark, "the reload the component's change starts", |events| {
        events.iter().find(|e| e["message"] == tests::RELOADED).cloned()
    });
    assert!(!serves_hello(&server));

    // A changed manifest: its settings are in force.
    let mark = server.log_len();
    write(&path, &manifest("max_body_size = 10"));
    server.wait_for_since(mark, "the reload the manifest's change starts", |events| {
        events.iter().find(|e| e["message"] == tests::RELOADED).cloned()
    });
    let mut client = Client::connect(server.addr());
    client.send("POST /v HTTP/1.1\r\nHost: test\r\nContent-Length: 11\r\n\r\nhello world");
    assert_eq!(client.read_response().status, 413);
}
