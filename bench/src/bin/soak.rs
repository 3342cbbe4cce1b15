//! The soak (`tests::soak`) on a release server: 1,000,000 requests (100,000 with `QUICK=1`;
//! `REQUESTS=N` for another number) over mixed routes from 16 keep-alive clients, a tenth of
//! them aborted by FIN or RST at a random point, after a warm-up of 10,000. Prints one JSON line
//! per checkpoint (at the start, every 100,000 requests, and at the end once the server is idle:
//! file descriptors, threads, resident memory, instance pool slots in use), then one with the
//! totals: requests aborted, responses other than expected, outcomes no guest allows, the
//! server's requests by outcome, the growth from the first checkpoint under load to the last
//! and from the idle start to the idle end, and the rate.

use serde_json::json;
use std::time::Instant;
use tests::soak::{self, Checkpoint, Soak};
use tests::{LOG_QUIET, Options, Server};

/// The soak, and the warm-up before it.
const SOAK: Soak = Soak { requests: 1_000_000, clients: 16, abort_percent: 10, every: 100_000 };
const WARM_UP: Soak = Soak { requests: 10_000, ..SOAK };

/// How much `to` holds beyond `from`, per cent, by each measure.
fn growth(from: &Checkpoint, to: &Checkpoint) -> serde_json::Value {
    let percent = |a: u64, b: u64| (b as f64 - a as f64) * 100.0 / (a.max(1) as f64);
    json!({
        "fds_percent": percent(from.usage.fds as u64, to.usage.fds as u64),
        "threads_percent": percent(from.usage.threads as u64, to.usage.threads as u64),
        "rss_percent": percent(from.usage.rss_kib, to.usage.rss_kib),
    })
}

fn main() {
    let requests = std::env::var("REQUESTS").ok().and_then(|n| n.parse().ok()).unwrap_or(if bench::quick() {
        SOAK.requests / 10
    } else {
        SOAK.requests
    });
    let soak = Soak { requests, every: SOAK.every.min(requests), ..SOAK };
    let server = Server::start_options(&soak::manifest(), &Options { log: Some(LOG_QUIET), ..Options::default() });
    soak::run(&server, WARM_UP);
    let started = Instant::now();
    let report = soak::run(&server, soak);
    let seconds = started.elapsed().as_secs_f64();
    for checkpoint in &report.checkpoints {
        let usage = checkpoint.usage;
        println!(
            "{}",
            json!({"bench": "soak-checkpoint", "requests": checkpoint.requests, "fds": usage.fds, "threads": usage.threads,
                   "rss_kib": usage.rss_kib, "pool_in_use": checkpoint.pool_in_use})
        );
    }
    let (first, last) = (&report.checkpoints[0], &report.checkpoints[report.checkpoints.len() - 1]);
    let under_load = &report.checkpoints[1..report.checkpoints.len() - 1];
    let load_growth = match (under_load.first(), under_load.last()) {
        (Some(from), Some(to)) => growth(from, to),
        _ => json!(null),
    };
    println!(
        "{}",
        json!({"bench": "soak", "requests": soak.requests, "clients": soak.clients, "abort_percent": soak.abort_percent,
               "aborted": report.aborted, "unexpected_responses": report.unexpected, "unexpected_outcomes": report.unexpected_outcomes(),
               "examples": report.examples, "outcomes": report.outcomes, "growth_under_load": load_growth,
               "growth_idle": growth(first, last), "seconds": seconds, "rps": soak.requests as f64 / seconds})
    );
}
