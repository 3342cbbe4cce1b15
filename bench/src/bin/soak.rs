//! The soak (`tests::soak`) on a release server: 1,000,000 requests (100,000 with `QUICK=1`;
//! `REQUESTS=N` for another number) over mixed routes from 16 keep-alive clients, a tenth of
//! them aborted by FIN or RST at a random point, after a warm-up of 10,000. Prints one JSON line
//! per checkpoint (at the start, every 100,000 requests, and at the end once the server is idle:
//! file descriptors, threads, resident memory, instance pool slots in use), then one with the
//! totals: requests aborted, responses other than expected, outcomes no guest allows, the
//! server's requests by outcome, the growth from the first checkpoint under load to the last,
//! from the idle start to the idle end, and from the settled start to the settled end (idle for
//! `SETTLE`, once the server has trimmed its heap and, if the pool kept enough, given the pool
//! back), and the rate.

use serde_json::json;
use std::time::{Duration, Instant};
use tests::soak::{self, Soak};
use tests::{LOG_QUIET, Options, Server, Usage};

/// The soak, and the warm-up before it.
const SOAK: Soak = Soak { requests: 1_000_000, clients: 16, abort_percent: 10, every: 100_000 };
const WARM_UP: Soak = Soak { requests: 10_000, ..SOAK };

/// How long the server is left idle before a settled reading: it trims its heap, and gives
/// its pool back, after a quiet second (`heap::IDLE_TRIM_DELAY`).
const SETTLE: Duration = Duration::from_secs(3);

/// How much `to` holds beyond `from`, per cent, by each measure.
fn growth(from: &Usage, to: &Usage) -> serde_json::Value {
    let percent = |a: u64, b: u64| (b as f64 - a as f64) * 100.0 / (a.max(1) as f64);
    json!({
        "fds_percent": percent(from.fds as u64, to.fds as u64),
        "threads_percent": percent(from.threads as u64, to.threads as u64),
        "rss_percent": percent(from.rss_kib, to.rss_kib),
    })
}

/// What the server holds once it has been idle for `SETTLE`.
fn settled(server: &Server) -> Usage {
    std::thread::sleep(SETTLE);
    server.usage()
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
    let settled_start = settled(&server);
    let started = Instant::now();
    let report = soak::run(&server, soak);
    let seconds = started.elapsed().as_secs_f64();
    let settled_end = settled(&server);
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
        (Some(from), Some(to)) => growth(&from.usage, &to.usage),
        _ => json!(null),
    };
    println!(
        "{}",
        json!({"bench": "soak", "requests": soak.requests, "clients": soak.clients, "abort_percent": soak.abort_percent,
               "aborted": report.aborted, "unexpected_responses": report.unexpected, "unexpected_outcomes": report.unexpected_outcomes(),
               "examples": report.examples, "outcomes": report.outcomes, "growth_under_load": load_growth,
               "growth_idle": growth(&first.usage, &last.usage), "settled_start": json!({"fds": settled_start.fds,
               "threads": settled_start.threads, "rss_kib": settled_start.rss_kib}), "settled_end": json!({"fds": settled_end.fds,
               "threads": settled_end.threads, "rss_kib": settled_end.rss_kib}), "growth_settled": growth(&settled_start, &settled_end),
               "seconds": seconds, "rps": soak.requests as f64 / seconds})
    );
}
