//! Where guests run (ARCHITECTURE.md, *Threads*): on the guest threads by default; with
//! `guests_start_on = "io-threads"`, a short request runs to its end on the I/O thread that
//! read it, and a guest that computes leaves the I/O threads at the first epoch tick that finds
//! it in Wasm. Read from each access record's `guest_thread`: the name of the thread that last
//! polled the guest.

use tests::{Close, Manifest, Server, get, leave_after_line};

/// The name of the threads that serve sockets (and, with `guests_start_on = "io-threads"`,
/// start guests).
const IO_THREAD: &str = "tether-io";
/// The name of the threads that run computing guests.
const GUEST_THREAD: &str = "tether-guest";

/// Hello requests a test makes: enough that one landing on the wrong thread now and then is
/// seen.
const HELLOS: usize = 20;

/// A server whose guests start on the I/O threads, with `manifest`'s routes.
fn starting_on_io_threads(manifest: Manifest) -> Server {
    Server::start(&manifest.server("guests_start_on = \"io-threads\""))
}

/// The thread that last polled the guest of each of `requests` requests to `path`.
fn guest_threads(server: &Server, path: &str, requests: usize) -> Vec<String> {
    (0..requests)
        .map(|i| {
            let uri = format!("{path}{}n={i}", if path.contains('?') { '&' } else { '?' });
            assert_eq!(get(server.addr(), &uri).status, 200, "{uri}");
            let access = server.access(&uri);
            access["guest_thread"].as_str().unwrap_or_else(|| panic!("no guest_thread in {access}")).to_owned()
        })
        .collect()
}

#[test]
fn by_default_guests_run_on_the_guest_threads() {
    let server = Server::start(&Manifest::new().route("/hello", "hello", ""));
    let threads = guest_threads(&server, "/hello", HELLOS);
    assert!(threads.iter().all(|t| t == GUEST_THREAD), "{threads:?}");
}

/// A short request runs to its end on the I/O thread that read it, unless an epoch tick (every
/// 100 µs while guests run) happens to find it in Wasm: then it moves to a guest thread like a
/// computing guest. That is the server's rule, and how often a hello is caught depends on the
/// machine (a few in a hundred on a debug build, more on a loaded machine), so this asserts
/// that hellos do end on an I/O thread, and nowhere but there or on a guest thread; by default
/// none does (above).
#[test]
fn short_requests_run_to_their_end_on_the_io_threads() {
    let server = starting_on_io_threads(Manifest::new().route("/hello", "hello", ""));
    let threads = guest_threads(&server, "/hello", HELLOS);
    assert!(threads.iter().any(|t| t == IO_THREAD), "{threads:?}");
    assert!(threads.iter().all(|t| t == IO_THREAD || t == GUEST_THREAD), "{threads:?}");
}

#[test]
fn a_computing_guest_leaves_the_io_threads() {
    // 100 ms of Wasm: a thousand epoch ticks, the first of which to find it in Wasm moves it.
    let server = starting_on_io_threads(Manifest::new().route("/spin", "spin", ""));
    let threads = guest_threads(&server, "/spin?ms=100", 5);
    assert!(threads.iter().all(|t| t == GUEST_THREAD), "{threads:?}");
}

#[test]
fn a_client_leaving_is_seen_when_its_guest_started_on_an_io_thread() {
    let server = starting_on_io_threads(Manifest::new().route("/spin", "spin", "max_execution_time = 0").route("/sleep", "seed_a", ""));
    // A computing guest (moved to a guest thread at its first tick) and a sleeping one (parked
    // where it started): both are stopped when the client leaves.
    for (uri, route) in [("/spin?ms=20000", "/spin"), ("/sleep?ms=20000", "/sleep")] {
        leave_after_line(&server, server.addr(), uri, route, "start", Close::Rst);
        assert_eq!(server.access(uri)["outcome"], "aborted-trapped", "{uri}");
    }
}
