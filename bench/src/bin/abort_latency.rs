//! Abort detection latency: from the client's `close()` to the guest being stopped, over HTTP
//! directly and through nginx to Tether's FastCGI listener (Unix socket), for Tether guests and
//! for a wasi:http proxy component (`guest/fixtures/proxy.rs`) sleeping in a pollable or
//! spinning.
//!
//! For each trial a fresh connection asks for a guest that sleeps (or spins) for a minute,
//! waits until the guest logged that it started, takes a CLOCK_MONOTONIC timestamp and closes
//! (FIN and RST alternating). The server logs, per request, the CLOCK_MONOTONIC time at which
//! the guest was seen stopped; the difference is the latency. The same method as the Go
//! reference (../shared/reference/go-nethttp). `GUESTS_START_ON` sets the manifest's
//! `guests_start_on`; each row counts the trials whose guest started on an I/O thread
//! (`started_on_io`).

use bench::{guests_start_on, quick, report, summarize};
use std::time::Duration;
use tests::nginx::{FASTCGI_PARAMS, Nginx};
use tests::{Client, Manifest, Server};

fn monotonic_ns() -> u64 {
    host::request::monotonic_ns()
}

fn main() {
    let trials = if quick() { 200 } else { 1_000 };
    let manifest = guests_start_on(Manifest::new()).routes(&[
        ("/sleep", "seed_a", "abort_detection = \"prompt\""),
        ("/spin", "spin", "abort_detection = \"prompt\"\nmax_execution_time = 0"),
        ("/wasi-http/sleep", "proxy", "abort_detection = \"prompt\""),
        ("/wasi-http/spin", "proxy", "abort_detection = \"prompt\"\nmax_execution_time = 0"),
    ]);
    let server = Server::start_fastcgi(&manifest);
    measure(&server, server.addr(), "http", trials);
    let nginx = Nginx::start(
        "",
        &[format!("        location / {{\n{FASTCGI_PARAMS}\n            fastcgi_pass {};\n        }}", server.fastcgi_unix())],
    );
    measure(&server, &nginx.addr(0), "nginx-fastcgi", trials);
}

/// Runs `trials` aborts of a sleeping and of a spinning guest through `addr` and reports them.
fn measure(server: &Server, addr: &str, via: &str, trials: usize) {
    for (guest, path) in [
        ("sleeping", "/sleep"),
        ("spinning", "/spin"),
        ("wasi-http sleeping", "/wasi-http/sleep"),
        ("wasi-http spinning", "/wasi-http/spin"),
    ] {
        let mut client_side = Vec::with_capacity(trials);
        let mut server_side = Vec::with_capacity(trials);
        let mut started_on_io = 0;
        for trial in 0..trials {
            let mark = server.log_len();
            let mut client = Client::connect(addr);
            client.get(&format!("{path}?ms=60000&trial={trial}"));
            let req = server.wait_for_since(mark, "the guest to start", |events| {
                events.iter().find(|e| e["target"] == "tether::guest" && e["route"] == path).and_then(|e| e["req"].as_u64())
            });
            let stream = client.stream;
            if trial % 2 == 1 {
                socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)).expect("linger");
            }
            let closed_at = monotonic_ns();
            drop(stream);
            let access = server.wait_for_since(mark, "the access record", |events| {
                events.iter().find(|e| e["target"] == "tether::access" && e["req"] == req).cloned()
            });
            assert_eq!(access["outcome"], "aborted-trapped", "{access}");
            started_on_io += usize::from(access["started_on"] == "tether-io");
            let stopped = access["stopped_mono_ns"].as_u64().expect("stopped_mono_ns");
            client_side.push(stopped.saturating_sub(closed_at) as f64 / 1e3);
            server_side.push(access["abort_latency_us"].as_f64().expect("abort_latency_us"));
        }
        let fields = |side: &str| serde_json::json!({ "guest": guest, "via": via, "side": side, "started_on_io": started_on_io });
        report("abort-latency", fields("client-close-to-stopped"), summarize(&mut client_side));
        report("abort-latency", fields("seen-to-stopped"), summarize(&mut server_side));
    }
}
