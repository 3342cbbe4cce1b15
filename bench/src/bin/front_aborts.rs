//! Abort propagation through the web servers in front of Tether (`tests::front`): for nginx,
//! Apache and Caddy, each as a FastCGI client and as an HTTP reverse proxy, a client that
//! leaves with FIN or RST while its guest sleeps, silent (seed A: nothing written yet) or
//! streaming (seed A2: one flush written, seven more 150 ms apart to come).
//!
//! Each trial is one request: the client waits until the guest logged the line it leaves
//! after, takes a CLOCK_MONOTONIC timestamp and closes. The access record gives the outcome
//! and, for a stopped guest, `stopped_mono_ns`; the difference is how long after the client's
//! close the guest was stopped. One JSON line per pair, way of leaving and guest:
//! `{"bench": "front-aborts", "pair", "close", "guest", "trapped", "completed", ...}` with the
//! latency's percentiles when any trial was trapped. `bench/run fronts` turns them into a table.

use bench::{quick, report, summarize};
use tests::front::{Fronts, Guest, Pair};
use tests::{Client, Close, Manifest, Server};

fn main() {
    let trials = if quick() { 3 } else { 10 };
    let manifest =
        Guest::ALL.iter().fold(Manifest::new(), |manifest, guest| manifest.route(&format!("/{}", guest.name()), guest.fixture(), ""));
    let server = Server::start_fastcgi(&manifest);
    let fronts = Fronts::start(&server);
    for pair in Pair::ALL {
        for close in [Close::Fin, Close::Rst] {
            for guest in Guest::ALL {
                let route = format!("/{}", guest.name());
                let mut latencies = Vec::new();
                let mut completed = 0;
                for trial in 0..trials {
                    let uri = format!("{route}?{}&pair={}&close={}&trial={trial}", guest.query(), pair.name(), close.name());
                    let mark = server.log_len();
                    let mut client = Client::connect(&fronts.addr(pair));
                    client.get(&uri);
                    let req = server.started_since(mark, &route);
                    server.guest_line(req, guest.leave_after());
                    let closed_at = host::request::monotonic_ns();
                    client.close(close);
                    let access = server.access(&uri);
                    match access["stopped_mono_ns"].as_u64() {
                        Some(stopped) if access["outcome"] == "aborted-trapped" => {
                            latencies.push(stopped.saturating_sub(closed_at) as f64 / 1e3);
                        }
                        _ => completed += usize::from(access["outcome"] == "completed"),
                    }
                }
                let mut fields = serde_json::json!({
                    "pair": pair.name(), "close": close.name(), "guest": guest.name(),
                    "trials": trials, "trapped": latencies.len(), "completed": completed,
                });
                if latencies.is_empty() {
                    fields["bench"] = "front-aborts".into();
                    println!("{fields}");
                } else {
                    report("front-aborts", fields, summarize(&mut latencies));
                }
            }
        }
    }
}
