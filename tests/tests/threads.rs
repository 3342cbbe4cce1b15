//! Where guests run (ARCHITECTURE.md, *Threads*): with `guests_start_on = "guest-threads"` on
//! the guest threads; with `"io-threads"` a request starts on the I/O thread that read it, a
//! short one runs to its end there, and a guest that computes leaves the I/O threads at the
//! first epoch tick that finds it in Wasm after 20 µs there; by default (`"auto"`) the same,
//! except that a route whose last two requests computed starts its next one on the guest
//! threads. Read from each access record's `started_on` (the thread the request's task started
//! on) and `guest_thread` (the thread that last polled the guest). And the epoch ticker, which
//! runs only while guests do.

use tests::{Client, Close, Manifest, Server, get, leave_after_line};

/// The name of the threads that serve sockets (and start guests of routes that run short).
const IO_THREAD: &str = "tether-io";
/// The name of the threads that run computing guests.
const GUEST_THREAD: &str = "tether-guest";
/// The name of the thread that advances the engine's epoch.
const TICKER_THREAD: &str = "tether-epoch";

/// Hello requests a test makes: enough that one landing on the wrong thread now and then is
/// seen, and that some end on an I/O thread even where ticks catch most of them (a slow build on
/// a loaded machine).
const HELLOS: usize = 60;

/// The settings under which a guest starts on the I/O thread that read its request: the
/// default for a route whose last requests did not compute, and the explicit one.
const STARTING_ON_IO_THREADS: [&str; 2] = ["", "guests_start_on = \"io-threads\""];

/// A server with `manifest`'s routes and `setting` in its `[server]` table.
fn serving(setting: &str, manifest: Manifest) -> Server {
    Server::start(&manifest.server(setting))
}

/// The thread the task of each of `requests` requests to `path` started on, and the thread that
/// last polled its guest.
fn threads(server: &Server, path: &str, requests: usize) -> Vec<(String, String)> {
    (0..requests)
        .map(|i| {
            let uri = format!("{path}{}n={i}", if path.contains('?') { '&' } else { '?' });
            assert_eq!(get(server.addr(), &uri).status, 200, "{uri}");
            let access = server.access(&uri);
            let thread = |field: &str| access[field].as_str().unwrap_or_else(|| panic!("no {field} in {access}")).to_owned();
            (thread("started_on"), thread("guest_thread"))
        })
        .collect()
}

/// The thread that last polled the guest of each of `requests` requests to `path`.
fn guest_threads(server: &Server, path: &str, requests: usize) -> Vec<String> {
    threads(server, path, requests).into_iter().map(|(_, last)| last).collect()
}

#[test]
fn with_guest_threads_guests_run_on_the_guest_threads() {
    let server = serving("guests_start_on = \"guest-threads\"", Manifest::new().route("/hello", "hello", ""));
    let threads = guest_threads(&server, "/hello", HELLOS);
    assert!(threads.iter().all(|t| t == GUEST_THREAD), "{threads:?}");
}

/// A short request runs to its end on the I/O thread that read it, unless an epoch tick (every
/// 500 µs while guests run on I/O threads only) finds it in Wasm after it held the thread for 20
/// µs: then it moves to a guest thread like a computing guest. That is the server's rule, and
/// how often a hello is caught depends on the build and the machine (rarely on a release build;
/// a debug build's hello holds its thread for about a millisecond), so this asserts that hellos
/// do end on an I/O thread, and nowhere but there or on a guest thread; with `"guest-threads"`
/// none does (above).
///
/// With `"io-threads"` only: by default, on a slow build, two hellos caught in a row move the
/// route to the guest threads, as they should (`where_computing_requests_start` below).
#[test]
fn short_requests_run_to_their_end_on_the_io_threads() {
    let server = serving("guests_start_on = \"io-threads\"", Manifest::new().route("/hello", "hello", ""));
    let threads = guest_threads(&server, "/hello", HELLOS);
    assert!(threads.iter().any(|t| t == IO_THREAD), "{threads:?}");
    assert!(threads.iter().all(|t| t == IO_THREAD || t == GUEST_THREAD), "{threads:?}");
}

#[test]
fn a_computing_guest_leaves_the_io_threads() {
    for setting in STARTING_ON_IO_THREADS {
        // 100 ms of Wasm: hundreds of epoch ticks, the first of which to find it in Wasm moves it.
        let server = serving(setting, Manifest::new().route("/spin", "spin", ""));
        let threads = guest_threads(&server, "/spin?ms=100", 5);
        assert!(threads.iter().all(|t| t == GUEST_THREAD), "[server] {setting}: {threads:?}");
    }
}

/// Where three requests in a row start when each computes (5 ms of Wasm: an epoch tick finds it
/// in Wasm at the tick before, wherever it runs), per setting. By default a route starts its
/// requests on the I/O thread that read them until two in a row computed (the host's
/// `sched::COMPUTED_IN_A_ROW`).
#[test]
fn where_computing_requests_start() {
    let cases = [
        ("", [IO_THREAD, IO_THREAD, GUEST_THREAD]),
        ("guests_start_on = \"io-threads\"", [IO_THREAD; 3]),
        ("guests_start_on = \"guest-threads\"", [GUEST_THREAD; 3]),
    ];
    for (setting, expected) in cases {
        let server = serving(setting, Manifest::new().route("/spin", "spin", ""));
        let started: Vec<String> = threads(&server, "/spin?ms=5", expected.len()).into_iter().map(|(first, _)| first).collect();
        assert_eq!(started, expected, "[server] {setting}");
    }
}

#[test]
fn a_client_leaving_is_seen_when_its_guest_started_on_an_io_thread() {
    for setting in STARTING_ON_IO_THREADS {
        let server = serving(setting, Manifest::new().route("/spin", "spin", "max_execution_time = 0").route("/sleep", "seed_a", ""));
        // A computing guest (moved to a guest thread at its first tick) and a sleeping one (parked
        // where it started): both are stopped when the client leaves.
        for (uri, route) in [("/spin?ms=20000", "/spin"), ("/sleep?ms=20000", "/sleep")] {
            leave_after_line(&server, server.addr(), uri, route, "start", Close::Rst);
            assert_eq!(server.access(uri)["outcome"], "aborted-trapped", "[server] {setting}: {uri}");
        }
    }
}

/// How many times so far the server's threads named `name` went to sleep (their voluntary
/// context switches, from `/proc`; being preempted does not count).
fn sleeps(server: &Server, name: &str) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", server.pid())).expect("the server's threads");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("status")).ok())
        .filter(|status| status.lines().next().and_then(|line| line.strip_prefix("Name:")).is_some_and(|n| n.trim() == name))
        .filter_map(|status| status.lines().find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))?.trim().parse::<u64>().ok())
        .sum()
}

/// The epoch ticker runs only while guests run: while every guest in flight waits in a host
/// call (here, sleeping), it stays parked, and a server holding long requests spends no CPU on
/// ticks. Counted from the times the ticker went to sleep while another guest sleeps for a
/// second: ticking through it, even at the slower pace for guests on I/O threads, would be
/// thousands; starting and ending that guest wake it a few times (a tick each 500 µs while it
/// is polled: this allows a quarter of a second of that, for a debug build on a busy machine).
#[test]
fn the_epoch_ticker_parks_while_guests_wait() {
    let server = serving("", Manifest::new().route("/sleep", "seed_a", ""));
    let mut waiting = Client::connect(server.addr());
    waiting.get("/sleep?ms=60000");
    server.started("/sleep");
    let before = sleeps(&server, TICKER_THREAD);
    assert_eq!(get(server.addr(), "/sleep?ms=1000").status, 200);
    let sleeps = sleeps(&server, TICKER_THREAD) - before;
    assert!(sleeps <= 500, "the ticker slept {sleeps} times while guests slept");
}
