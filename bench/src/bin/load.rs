//! Concurrency and aborts under load. Phase 1: `N` clients (10,000; 2,000 with `QUICK=1`) each
//! keep one request in flight whose guest sleeps 5 s; reports the time until all are answered and
//! the server's RSS before, at its peak and after. Phase 2: the same load, and once every guest
//! is asleep a tenth of the clients (those that connected last) close at once; reports, per
//! aborted request, the time from its client's `close()` to its guest being stopped. After each
//! phase, once the idle server has trimmed its heap (it logs that), its RSS again. The pre-load
//! RSS is taken the same way after one warm-up request: measured at start-up instead, it would
//! lack the code and the lazily built state that any first request pages in. Each idle RSS is
//! also split into anonymous memory (heap, instance pool) and file-backed pages (the binary's
//! code, the compile cache's mapped entries), which the kernel can drop at any time.
//! `KEEP_RESIDENT=<bytes>` sets the manifest's `keep_resident`, which decides how much of each
//! pool slot stays resident after a burst (until the idle server gives the pool back, which
//! phase 1 reports too). `GUESTS_START_ON` sets the manifest's `guests_start_on`.

use bench::{guests_start_on, quick, report, summarize};
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tests::{IDLE_TRIMMED, Manifest, POOL_RELEASED, Server};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long each guest sleeps.
const GUEST_SLEEP_MS: u64 = 5_000;
/// Connections opened at once, so the burst does not overflow the listen backlog.
const CONNECT_BATCH: usize = 500;

/// A field of `/proc/<pid>/status`, in KiB (0 if absent).
fn status_kib(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    Rss::of(pid).total_kib
}

/// The server's resident set, whole and split by kind.
#[derive(Clone, Copy)]
struct Rss {
    total_kib: u64,
    /// Anonymous and shared-memory pages: heap, thread stacks, the instance pool.
    anon_kib: u64,
    /// Pages of mapped files: the binary's and libraries' code, compile-cache entries.
    file_kib: u64,
}

impl Rss {
    fn of(pid: u32) -> Self {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        Rss {
            total_kib: status_kib(&status, "VmRSS"),
            anon_kib: status_kib(&status, "RssAnon") + status_kib(&status, "RssShmem"),
            file_kib: status_kib(&status, "RssFile"),
        }
    }
}

/// Samples the server's RSS until `stop`; returns the peak.
fn sample_peak(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(rss_kib(pid));
            std::thread::sleep(Duration::from_millis(50));
        }
        peak
    })
}

/// Waits for the server to go idle and trim its heap after the log line `since`; returns its
/// RSS then.
fn rss_when_idle(server: &Server, since: usize) -> Rss {
    idle(server, since).rss
}

/// What the server did once idle after a load.
struct Idle {
    /// Its RSS once it had trimmed its heap.
    rss: Rss,
    /// How much of its instance pool it gave back (0 if it kept the pool), and how long the
    /// reload that did so took.
    pool_released_kib: u64,
    pool_release_ms: f64,
}

/// Waits for the idle server to trim its heap, after the log position `since`.
fn idle(server: &Server, since: usize) -> Idle {
    let (pool_released_kib, pool_release_ms) = server.wait_for_since(since, "the idle server to trim its heap", |events| {
        let trimmed = events.iter().position(|e| e["message"] == IDLE_TRIMMED)?;
        let released = events[..trimmed].iter().rev().find(|e| e["message"] == POOL_RELEASED);
        Some((released.and_then(|e| e["pool_kib"].as_u64()).unwrap_or(0), released.and_then(|e| e["elapsed_ms"].as_f64()).unwrap_or(0.0)))
    });
    Idle { rss: Rss::of(server.pid()), pool_released_kib, pool_release_ms }
}

/// Opens `n` connections and sends each a request whose guest sleeps `sleep_ms`; returns the
/// streams.
async fn connect_all(addr: &str, n: usize, sleep_ms: u64, phase: &str) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(n);
    for batch in (0..n).collect::<Vec<_>>().chunks(CONNECT_BATCH) {
        let opened = futures_join(batch.iter().map(|&i| {
            let addr = addr.to_owned();
            let request = format!("GET /sleep?ms={sleep_ms}&phase={phase}&c={i} HTTP/1.1\r\nHost: load\r\nConnection: close\r\n\r\n");
            async move {
                let mut stream = TcpStream::connect(&addr).await.expect("connect");
                stream.write_all(request.as_bytes()).await.expect("send");
                stream
            }
        }))
        .await;
        streams.extend(opened);
    }
    streams
}

async fn futures_join<F: Future<Output = T> + Send + 'static, T: Send + 'static>(futures: impl Iterator<Item = F>) -> Vec<T> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}

/// Reads each stream to its end; returns how many got a 200.
async fn read_all(streams: Vec<TcpStream>) -> usize {
    futures_join(streams.into_iter().map(|mut stream| async move {
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        response.starts_with(b"HTTP/1.1 200")
    }))
    .await
    .into_iter()
    .filter(|ok| *ok)
    .count()
}

fn main() {
    let clients = if quick() { 2_000 } else { 10_000 };
    let aborts = clients / 10;
    // KEEP_RESIDENT (bytes) overrides the server's keep_resident, to compare RSS after load.
    let keep_resident = std::env::var("KEEP_RESIDENT").ok();
    let mut manifest =
        Manifest::new().server(&format!("max_instances = {}", clients + 100)).server(&format!("max_connections = {}", clients + 1_000));
    if let Some(value) = &keep_resident {
        manifest = manifest.server(&format!("keep_resident = {value}"));
    }
    let keep_resident = keep_resident.unwrap_or_else(|| "default".to_owned());
    // A sleeping guest needs little memory; a smaller limit makes each pool slot smaller.
    let manifest = guests_start_on(manifest).route("/sleep", "seed_a", "max_memory = \"16MiB\"");
    let server = Server::start(&manifest);
    let pid = server.pid();
    let addr = server.addr().to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let rss_idle = {
        let mark = server.log_len();
        let answered = runtime.block_on(async { read_all(connect_all(&addr, 1, 0, "warm-up").await).await });
        assert_eq!(answered, 1, "the warm-up request failed");
        rss_when_idle(&server, mark)
    };

    // Phase 1: everything completes.
    let mark = server.log_len();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_peak(pid, stop.clone());
    let started = Instant::now();
    let answered = runtime.block_on(async {
        let streams = connect_all(&addr, clients, GUEST_SLEEP_MS, "complete").await;
        read_all(streams).await
    });
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let rss_peak = sampler.join().expect("sampler");
    let after = idle(&server, mark);
    println!(
        "{}",
        serde_json::json!({
            "bench": "concurrency", "keep_resident": keep_resident, "clients": clients, "answered": answered, "guest_sleep_ms": GUEST_SLEEP_MS,
            "seconds": elapsed.as_secs_f64(), "rss_idle_kib": rss_idle.total_kib, "rss_peak_kib": rss_peak, "rss_after_kib": after.rss.total_kib,
            "pool_released_kib": after.pool_released_kib, "pool_release_ms": after.pool_release_ms,
        })
    );

    // Phase 2: a tenth of the clients leave while every guest sleeps.
    let mark = server.log_len();
    let closed_at: Arc<Vec<AtomicU64>> = Arc::new((0..aborts).map(|_| AtomicU64::new(0)).collect());
    let (answered, rss_loaded) = runtime.block_on(async {
        let mut streams = connect_all(&addr, clients, GUEST_SLEEP_MS, "abort").await;
        // Counted incrementally: rescanning 10,000 events at each new one took seconds. A
        // request that ends without its guest having started (a 503, say) is counted too, so
        // that the wait ends and says what happened instead of timing out.
        let (mut scanned, mut started, mut ended_unstarted) = (0, HashSet::new(), Vec::new());
        let waited = server.try_wait_for_since(mark, |events| {
            for event in &events[scanned..] {
                let req = event["req"].as_u64();
                if event["target"] == "tether::guest" && event["message"].as_str().is_some_and(|m| m.starts_with("start")) {
                    started.extend(req);
                } else if event["target"] == "tether::access" && !req.is_some_and(|r| started.contains(&r)) {
                    ended_unstarted.push(event.clone());
                }
            }
            scanned = events.len();
            (started.len() + ended_unstarted.len() >= clients).then_some(())
        });
        if let Err(recent) = waited {
            panic!(
                "timed out: {} of {clients} guests started, {} requests ended without one; the last log events: {recent:#?}",
                started.len(),
                ended_unstarted.len()
            );
        }
        assert!(
            ended_unstarted.is_empty(),
            "{} requests ended before their guest started, first: {:#?}",
            ended_unstarted.len(),
            &ended_unstarted[..3.min(ended_unstarted.len())]
        );
        let rss_loaded = rss_kib(pid);
        // The clients that connected last leave: on a slow run, the first guests may be close to
        // the end of their sleep by the time the last one starts.
        let leaving: Vec<TcpStream> = streams.split_off(clients - aborts);
        for (i, stream) in leaving.into_iter().enumerate() {
            closed_at[i].store(host::request::monotonic_ns(), Ordering::Relaxed);
            drop(stream);
        }
        (read_all(streams).await, rss_loaded)
    });
    let mut latencies = Vec::with_capacity(aborts);
    let mut server_side = Vec::with_capacity(aborts);
    for i in 0..aborts {
        let uri = format!("/sleep?ms={GUEST_SLEEP_MS}&phase=abort&c={}", clients - aborts + i);
        let access = server.access(&uri);
        assert_eq!(access["outcome"], "aborted-trapped", "{access}");
        let stopped = access["stopped_mono_ns"].as_u64().expect("stopped_mono_ns");
        latencies.push(stopped.saturating_sub(closed_at[i].load(Ordering::Relaxed)) as f64 / 1e3);
        server_side.push(access["abort_latency_us"].as_f64().expect("abort_latency_us"));
    }
    report(
        "aborts-under-load",
        serde_json::json!({ "side": "seen-to-stopped", "keep_resident": keep_resident }),
        summarize(&mut server_side),
    );
    let rss_end = rss_when_idle(&server, mark);
    report(
        "aborts-under-load",
        serde_json::json!({
            "side": "client-close-to-stopped", "keep_resident": keep_resident, "clients": clients, "aborted": aborts, "answered": answered,
            "rss_idle_kib": rss_idle.total_kib, "rss_loaded_kib": rss_loaded, "rss_after_kib": rss_end.total_kib,
            "anon_idle_kib": rss_idle.anon_kib, "anon_after_kib": rss_end.anon_kib,
            "file_idle_kib": rss_idle.file_kib, "file_after_kib": rss_end.file_kib,
        }),
        summarize(&mut latencies),
    );
}
