//! The soak: many requests over mixed routes (hello, echo with bodies, finish-request,
//! ignore-user-abort, a guest that traps) from keep-alive clients, a share of them aborted by
//! FIN or RST at a random point (in the head, in the body, before the response, after its
//! first byte), against one server, with what the server holds (file descriptors, threads,
//! resident memory, instance pool slots in use) read at checkpoints. Every request that is not
//! aborted must get its route's exact response; every request the server ran must end with an
//! outcome its guest allows. The test suite runs a short soak (`tests/tests/soak.rs`), the
//! benchmark a million requests (`bench/src/bin/soak.rs`).

use crate::{Client, Manifest, Server, Usage, get};
use serde_json::Value;
use std::io::{Read as _, Write as _};
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The largest echo body, in bytes.
const ECHO_MAX: usize = 16 * 1024;
/// The outcomes a soak's requests may end with: their guests' own (`trapped` is the trap
/// route's) and those of a client leaving. `timeout` or `rejected` (a 503, a refused head)
/// would mean the server failed a request.
pub const EXPECTED_OUTCOMES: [&str; 5] = ["completed", "finished-early", "aborted-trapped", "aborted-ignored", "trapped"];
/// How many unexpected responses a report keeps the details of.
const KEPT_EXAMPLES: usize = 10;

/// The soak's server: its routes, and the admin listener whose `/status` gives the pool's use.
pub fn manifest() -> Manifest {
    Manifest::new().server("admin = \"127.0.0.1:0\"").routes(&[
        ("/hello", "hello", ""),
        ("/echo", "echo", ""),
        ("/finish", "finish", ""),
        ("/iua", "seed_a", ""),
        ("/trap", "trap", ""),
    ])
}

/// One request of the mix.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Hello,
    /// A POST whose body of this many bytes comes back.
    Echo(usize),
    /// An answer, then finish-request.
    Finish,
    /// ignore-user-abort(true), 3 ms of sleep (where an abort may land), an empty answer.
    IgnoreAbort,
    /// A guest that traps: 500.
    Trap,
}

impl Kind {
    /// The request's kind for the random number `r`: hello, echo, finish-request,
    /// ignore-user-abort and trap at 30, 25, 15, 15 and 15 %.
    fn pick(r: u64) -> Kind {
        match r % 100 {
            0..30 => Kind::Hello,
            30..55 => Kind::Echo(usize::try_from((r >> 8) % (ECHO_MAX as u64 + 1)).unwrap_or(0)),
            55..70 => Kind::Finish,
            70..85 => Kind::IgnoreAbort,
            _ => Kind::Trap,
        }
    }

    /// The request's bytes and the response it must get (status, body).
    fn exchange(self, r: u64) -> (Vec<u8>, u16, Vec<u8>) {
        let get = |target: &str| format!("GET {target} HTTP/1.1\r\nHost: soak\r\n\r\n").into_bytes();
        match self {
            Kind::Hello => (get("/hello"), 200, b"hello\n".to_vec()),
            Kind::Echo(n) => {
                let body: Vec<u8> = (0..n).map(|i| b'a' + ((r as usize + i) % 26) as u8).collect();
                let mut request = format!("POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: {n}\r\n\r\n").into_bytes();
                request.extend_from_slice(&body);
                (request, 200, body)
            }
            Kind::Finish => (get("/finish?ms=0"), 200, b"response-body\n".to_vec()),
            Kind::IgnoreAbort => (get("/iua?iua=1&ms=3"), 200, Vec::new()),
            Kind::Trap => (get("/trap"), 500, b"internal server error\n".to_vec()),
        }
    }
}

/// SplitMix64: the random numbers of request `n`, the same in every run.
fn random(n: u64, salt: u64) -> u64 {
    let mut z = n.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(salt.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A soak's size.
#[derive(Clone, Copy, Debug)]
pub struct Soak {
    /// Requests in all.
    pub requests: u64,
    /// Clients at once, each on a thread of its own.
    pub clients: usize,
    /// Per cent of requests aborted.
    pub abort_percent: u64,
    /// Requests between checkpoints.
    pub every: u64,
}

/// What the server held after some requests.
#[derive(Clone, Copy, Debug)]
pub struct Checkpoint {
    /// Requests started so far.
    pub requests: u64,
    /// The server's file descriptors, threads and resident memory.
    pub usage: Usage,
    /// Instance pool slots in use (`/status`).
    pub pool_in_use: u64,
}

/// What a soak found.
#[derive(Debug, Default)]
pub struct Report {
    /// At the start, every `Soak::every` requests, and at the end.
    pub checkpoints: Vec<Checkpoint>,
    /// Requests aborted by their clients.
    pub aborted: u64,
    /// Requests not aborted that did not get their exact response.
    pub unexpected: u64,
    /// What the first few of those got.
    pub examples: Vec<String>,
    /// The server's requests by outcome (`/status`).
    pub outcomes: serde_json::Map<String, Value>,
}

impl Report {
    /// Requests the server ended with an outcome no guest of the soak allows.
    pub fn unexpected_outcomes(&self) -> u64 {
        self.outcomes.iter().filter(|(outcome, _)| !EXPECTED_OUTCOMES.contains(&outcome.as_str())).filter_map(|(_, n)| n.as_u64()).sum()
    }
}

/// The server's `/status` as JSON.
fn status(admin: &str) -> Value {
    serde_json::from_slice(&get(admin, "/status?json").body).expect("/status?json is JSON")
}

/// A checkpoint after `requests` requests.
fn checkpoint(server: &Server, admin: &str, requests: u64) -> Checkpoint {
    let pool_in_use = status(admin)["instances_in_use"].as_u64().expect("instances_in_use");
    Checkpoint { requests, usage: server.usage(), pool_in_use }
}

/// Runs `soak` against `server` (started with [`manifest`]), taking checkpoints as it goes,
/// and the last one once the server has no request in flight and no connection open.
pub fn run(server: &Server, soak: Soak) -> Report {
    let admin = server.admin();
    let report = Mutex::new(Report { checkpoints: vec![checkpoint(server, &admin, 0)], ..Report::default() });
    let next = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..soak.clients {
            scope.spawn(|| {
                let mut client = None;
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= soak.requests {
                        return;
                    }
                    if n > 0 && n.is_multiple_of(soak.every) {
                        let checkpoint = checkpoint(server, &admin, n);
                        report.lock().expect("the report").checkpoints.push(checkpoint);
                    }
                    let (request, status, body) = Kind::pick(random(n, 0)).exchange(random(n, 1));
                    if random(n, 2) % 100 < soak.abort_percent {
                        abort(server.addr(), &request, random(n, 3));
                        report.lock().expect("the report").aborted += 1;
                        continue;
                    }
                    let connection = client.take().unwrap_or_else(|| Client::connect(server.addr()));
                    match exchange(connection, &request, status, &body) {
                        Ok(kept) => client = kept,
                        Err(failure) => {
                            let mut report = report.lock().expect("the report");
                            report.unexpected += 1;
                            if report.examples.len() < KEPT_EXAMPLES {
                                report.examples.push(format!("request {n}: {failure}"));
                            }
                        }
                    }
                }
            });
        }
    });
    let mut report = report.into_inner().expect("the report");
    // Requests whose clients left may still be ending (a guest ignoring the abort sleeps on),
    // and connections closing.
    let deadline = std::time::Instant::now() + crate::TIMEOUT;
    let idle = loop {
        let status = status(&admin);
        if status["requests_in_flight"] == 0 && status["open_connections"] == 0 {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "the server is not idle after the soak: {status}");
        std::thread::sleep(crate::POLL);
    };
    report.outcomes = idle["requests_by_outcome"].as_object().cloned().unwrap_or_default();
    report.checkpoints.push(checkpoint(server, &admin, soak.requests));
    report
}

/// Sends `request` on `client` and checks the response; returns the client if the connection
/// stays open.
fn exchange(mut client: Client, request: &[u8], status: u16, body: &[u8]) -> Result<Option<Client>, String> {
    let response = std::panic::catch_unwind(AssertUnwindSafe(|| {
        client.send(request);
        client.read_response()
    }))
    .map_err(|panic| panic.downcast_ref::<String>().cloned().unwrap_or_else(|| "the exchange failed".to_owned()))?;
    if (response.status, response.body.as_slice()) != (status, body) {
        return Err(format!("{} {:?}, expected {status}", response.status, String::from_utf8_lossy(&response.body)));
    }
    Ok((response.header("connection") != Some("close")).then_some(client))
}

/// Sends part of `request` on a new connection and leaves with FIN or RST: `r` picks how, and
/// where: after any number of its bytes, or once the response's first byte arrived.
fn abort(addr: &str, request: &[u8], r: u64) {
    let mut client = Client::connect(addr);
    let point = usize::try_from((r >> 1) % (request.len() as u64 + 2)).unwrap_or(0);
    // The server may have answered and closed already: what matters is that the client leaves.
    let _ = client.stream.write_all(&request[..point.min(request.len())]);
    if point > request.len() {
        let _ = client.stream.read(&mut [0u8; 1]);
    }
    if r & 1 == 0 { client.close_fin() } else { client.close_rst() }
}
