//! Faults, each with what the server does about it: nginx killed mid-request (its guests are
//! stopped and the server's file descriptors and threads go back to where they were), an RST
//! storm of thousands of connections during load, the instance pool exhausted under load (503
//! with `retry-after`, logged once for the run, then recovery), out of file descriptors on
//! accept (logged once, retried, recovered), an unwritable compile cache (served, compiled in
//! memory), guests that ignore aborts and never return at a SIGTERM (stopped when
//! `shutdown_grace` ends), and SIGKILL and a restart under load (the Unix socket replaced,
//! serving resumed).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tests::nginx::{Nginx, pass};
use tests::{Client, Manifest, Options, Server, TIMEOUT, get};

/// What the server logs when accepting starts failing, and when it works again (the host's
/// `net::ACCEPT_FAILING` and `net::ACCEPTING_AGAIN`).
const ACCEPT_FAILING: &str = "accept failed; retrying until it works again";
const ACCEPTING_AGAIN: &str = "accepting again";
/// What the server logs when it cannot store a compiled component (the host's
/// `runtime::cache`).
const CACHE_UNWRITABLE: &str = "cannot write the compile cache";
/// The body of the server's 503 for want of an instance (the host's
/// `dispatch::OVERLOADED_MESSAGE`).
const OVERLOADED: &str = "server overloaded, retry later\n";
/// What the server logs when it starts refusing requests with 503, and when it serves again
/// (the host's `dispatch::OVERLOADED` and `dispatch::SERVING_AGAIN`).
const REFUSING: &str = "refusing requests with 503 until a guest can run again";
const SERVING_AGAIN: &str = "serving again after refusing requests";

/// A request whose guest sleeps for an hour: it only ends when it is stopped.
const SLEEPER: &str = "/seed-a?ms=3600000";

/// Waits until `n` requests on `route` logged since log position `mark` have started (their
/// guest's first line, `start`).
fn wait_started(server: &Server, mark: usize, route: &str, n: usize) {
    let mut started = 0;
    server.wait_for_event(mark, &format!("{n} requests on {route} to start"), |e| {
        let start = e["target"] == "tether::guest" && e["route"] == route && e["message"].as_str().is_some_and(|m| m.starts_with("start"));
        started += usize::from(start);
        (started >= n).then_some(())
    });
}

/// Waits until `n` requests logged since `mark` have ended with `outcome`.
fn wait_ended(server: &Server, mark: usize, outcome: &str, n: usize) {
    let mut ended = 0;
    server.wait_for_event(mark, &format!("{n} requests to end {outcome}"), |e| {
        ended += usize::from(e["target"] == "tether::access" && e["outcome"] == outcome);
        (ended >= n).then_some(())
    });
}

/// Clients that each send `uri` and keep their connection.
fn send_all(addr: &str, uri: &str, n: usize) -> Vec<Client> {
    (0..n)
        .map(|_| {
            let mut client = Client::connect(addr);
            client.get(uri);
            client
        })
        .collect()
}

/// Hello requests on one keep-alive connection after another until `stop`, each answered 200
/// `hello`; says so on `running` after the first, so that what the caller does next happens
/// under load. Returns the first request that was not answered so.
fn hello_load(addr: &str, running: mpsc::Sender<()>, stop: &AtomicBool) -> Result<(), String> {
    let mut client = Client::connect(addr);
    for served in 0.. {
        client.get("/hello");
        let response = client.read_response();
        if (response.status, response.text().as_str()) != (200, "hello\n") {
            return Err(format!("request {served} of the load got {} {:?}", response.status, response.text()));
        }
        let _ = running.send(());
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    Ok(())
}

/// Sets its flag when dropped: the load threads of a scope stop when the scope's body ends,
/// whether it returns or fails (a failure would otherwise wait for them for ever).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Guests through nginx, over each FastCGI transport, when nginx dies.
const NGINX_GUESTS: usize = 8;

#[test]
fn nginx_killed_mid_request_stops_its_guests_and_leaks_nothing() {
    let server = Server::start_fastcgi(&Manifest::new().route("/seed-a", "seed_a", ""));
    for upstream in [server.fastcgi_tcp(), server.fastcgi_unix()] {
        let mut nginx = Nginx::start("", &[pass(upstream, false, true)]);
        let addr = nginx.addr(0);
        assert_eq!(get(&addr, "/seed-a?ms=0").status, 200, "through {upstream}");
        let baseline = server.usage();
        let mark = server.log_len();
        let _clients = send_all(&addr, SLEEPER, NGINX_GUESTS);
        wait_started(&server, mark, "/seed-a", NGINX_GUESTS);
        nginx.kill();
        wait_ended(&server, mark, "aborted-trapped", NGINX_GUESTS);
        server.settles_to(baseline);
    }
}

/// Connections in the RST storm, each with a guest in flight.
const STORM: usize = 2_000;

#[test]
fn an_rst_storm_during_load_stops_every_guest_and_fails_no_other_request() {
    // The storm's client sockets, on top of the test's own.
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    rustix::process::setrlimit(rustix::process::Resource::Nofile, rustix::process::Rlimit { current: limit.maximum, ..limit })
        .expect("raising the test's open-file limit");
    let manifest =
        Manifest::new().server(&format!("max_instances = {}", STORM + 100)).route("/hello", "hello", "").route("/seed-a", "seed_a", "");
    let server = Server::start(&manifest);
    assert_eq!(get(server.addr(), "/hello").status, 200);
    let baseline = server.usage();
    let stop = AtomicBool::new(false);
    let (running, load_runs) = mpsc::channel();
    std::thread::scope(|scope| {
        let stopping = StopOnDrop(&stop);
        let load = scope.spawn(|| hello_load(server.addr(), running, &stop));
        load_runs.recv_timeout(TIMEOUT).expect("the load's first request");
        let mark = server.log_len();
        let storm = send_all(server.addr(), SLEEPER, STORM);
        wait_started(&server, mark, "/seed-a", STORM);
        for client in storm {
            client.close_rst();
        }
        wait_ended(&server, mark, "aborted-trapped", STORM);
        drop(stopping);
        load.join().expect("the load's thread").unwrap_or_else(|failure| panic!("{failure}"));
    });
    server.settles_to(baseline);
}

/// `max_instances` when the pool is exhausted, and the requests refused meanwhile.
const POOL: usize = 4;
const REFUSED_CLIENTS: usize = 8;
const REFUSED_EACH: usize = 5;
/// Requests that must all succeed once the pool has room again.
const RECOVERED: usize = 20;

#[test]
fn an_exhausted_pool_answers_503_with_retry_after_and_recovers() {
    let manifest = Manifest::new().server(&format!("max_instances = {POOL}")).route("/hello", "hello", "").route("/seed-a", "seed_a", "");
    let server = Server::start_fastcgi(&manifest);
    let nginx = Nginx::start("", &[pass(server.fastcgi_tcp(), false, true)]);
    let mark = server.log_len();
    let sleepers = send_all(server.addr(), SLEEPER, POOL);
    wait_started(&server, mark, "/seed-a", POOL);
    // Half the clients straight to Tether, half through nginx, which passes the 503 on.
    let fronts = [server.addr().to_owned(), nginx.addr(0)];
    std::thread::scope(|scope| {
        for front in fronts.iter().cycle().take(REFUSED_CLIENTS) {
            scope.spawn(|| {
                let mut client = Client::connect(front);
                for _ in 0..REFUSED_EACH {
                    client.get("/hello");
                    let response = client.read_response();
                    assert_eq!((response.status, response.header("retry-after"), response.text().as_str()), (503, Some("1"), OVERLOADED));
                }
            });
        }
    });
    for sleeper in sleepers {
        sleeper.close_rst();
    }
    wait_ended(&server, mark, "aborted-trapped", POOL);
    // A slot is free once its instance is torn down, just after its access line: admission
    // waits a moment for it, and the first request might still find none.
    let deadline = Instant::now() + TIMEOUT;
    let mut refused = REFUSED_CLIENTS * REFUSED_EACH;
    while get(server.addr(), "/hello").status != 200 {
        assert!(Instant::now() < deadline, "still 503 after {TIMEOUT:?}");
        refused += 1;
    }
    let mut client = Client::connect(server.addr());
    for _ in 0..RECOVERED {
        client.get("/hello");
        assert_eq!(client.read_response().status, 200);
    }
    // The refusals are one run in the log: its start, and its end with their number.
    let again = server.wait_for_since(mark, "the server to log that it serves again", |events| {
        events.iter().find(|e| e["message"] == SERVING_AGAIN).cloned()
    });
    assert_eq!(again["refused"].as_u64(), Some(refused as u64), "{again}");
    let events = server.events();
    let logged = |message: &str| events[mark..].iter().filter(|e| e["message"] == message).count();
    assert_eq!((logged(REFUSING), logged(SERVING_AGAIN)), (1, 1), "one run of refusals, logged at its start and its end");
}

/// How long accepting stays impossible: long enough for several retries, which must not each
/// be logged. It is how long the fault lasts, not a wait for anything.
const FAULT_LASTS: Duration = Duration::from_millis(400);

/// The highest file descriptor process `pid` has open.
fn highest_fd(pid: u32) -> u64 {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("the server's /proc/PID/fd");
    entries.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok()).max().expect("an open descriptor")
}

#[test]
fn out_of_file_descriptors_on_accept_is_logged_once_retried_and_recovered() {
    let server = Server::start(&Manifest::new().route("/hello", "hello", ""));
    // A connection open before the fault, which must be served throughout it.
    let mut open = Client::connect(server.addr());
    open.get("/hello");
    assert_eq!(open.read_response().status, 200);
    // A new descriptor gets the lowest free number, and the limit bounds numbers: with the
    // limit just above the highest one open, connections are accepted while free numbers
    // below it last (each held open), and then no more.
    let limit = highest_fd(server.pid()) + 1;
    let pid = rustix::process::Pid::from_raw(server.pid().try_into().expect("a pid")).expect("a pid");
    let set_limit = |current| {
        let maximum = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
        rustix::process::prlimit(Some(pid), rustix::process::Resource::Nofile, rustix::process::Rlimit { current, maximum })
            .expect("setting the server's open-file limit")
    };
    let original = set_limit(Some(limit));
    let mark = server.log_len();
    let mut held = Vec::new();
    let mut waiting = loop {
        let uri = format!("/hello?{}", held.len());
        let mut client = Client::connect(server.addr());
        client.get(&uri);
        let refused = server.wait_for_since(mark, "the request to be served or accepting to fail", |events| {
            events.iter().find_map(|e| {
                if e["message"] == ACCEPT_FAILING {
                    Some(true)
                } else {
                    (e["target"] == "tether::access" && e["uri"] == uri.as_str()).then_some(false)
                }
            })
        });
        if refused {
            break client;
        }
        held.push(client);
    };
    std::thread::sleep(FAULT_LASTS);
    open.get("/hello");
    assert_eq!(open.read_response().status, 200, "a connection accepted before the fault is served during it");
    // As an operator would (connections closing would do too, but each would let one accept
    // through into a full table again, a new run of failures).
    set_limit(original.current);
    // Accepting failed either for this connection or, the last free number just taken, with
    // nothing queued (Linux takes the number before it looks at the queue): both are served
    // now, and so are new ones.
    assert_eq!(waiting.read_response().status, 200, "the connection that was refused is served");
    assert_eq!(get(server.addr(), "/hello").status, 200);
    let again =
        server.wait_for_since(mark, "accepting to work again", |events| events.iter().find(|e| e["message"] == ACCEPTING_AGAIN).cloned());
    assert!(again["failures"].as_u64() >= Some(1), "{again}");
    let failing = server.events()[mark..].iter().filter(|e| e["message"] == ACCEPT_FAILING).count();
    assert_eq!(failing, 1, "one failing run is logged once");
}

#[test]
fn an_unwritable_compile_cache_still_serves_compiling_in_memory() {
    // A path below a regular file: no directory can be made there, whoever the tests run as.
    let dir = tests::fresh_dir("unwritable-cache");
    let file = dir.join("a-file");
    std::fs::write(&file, b"").expect("writing a file");
    let options = Options { cache_dir: Some(file.join("cache")), ..Options::default() };
    let server = Server::start_options(&Manifest::new().route("/hello", "hello", ""), &options);
    assert_eq!(get(server.addr(), "/hello").text(), "hello\n");
    let warned = server.events().iter().filter(|e| e["message"] == CACHE_UNWRITABLE).count();
    assert_eq!(warned, 1, "the component that could not be stored is named once");
}

/// `shutdown_grace` for guests that never return.
const GRACE: &str = "1s";

#[test]
fn guests_that_ignore_aborts_and_never_return_are_stopped_when_shutdown_grace_ends() {
    // Parked in a host call and computing in Wasm: both ignore their clients leaving.
    let rows = [("/seed-a", "seed_a", "/seed-a?iua=1&ms=3600000"), ("/spin", "spin", "/spin?iua=1&ms=3600000")];
    let manifest = rows.iter().fold(Manifest::new().server(&format!("shutdown_grace = \"{GRACE}\"")), |manifest, (route, guest, _)| {
        manifest.route(route, guest, "")
    });
    let mut server = Server::start(&manifest);
    for (route, _, uri) in rows {
        let mark = server.log_len();
        let client = send_all(server.addr(), uri, 1).pop().expect("a client");
        wait_started(&server, mark, route, 1);
        client.close_rst();
    }
    server.terminate();
    server.wait_for("the server to exit", |events| events.iter().any(|e| e["message"] == "<server exited>").then_some(()));
    assert_eq!(server.wait_exit(), Some(0));
    for (_, _, uri) in rows {
        let access = server.access(uri);
        assert_eq!((access["outcome"].as_str(), access["detail"].as_str()), (Some("timeout"), Some("shutdown_grace exceeded")), "{uri}");
    }
}

/// The status of `GET /hello` on a connection of its own, or 0 if the connection ended without
/// one: nginx closes the connection when the server behind it dies mid-response.
fn status_once(addr: &str) -> u16 {
    let mut client = Client::connect(addr);
    client.send("GET /hello HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    let response = client.read_to_end();
    let status_line = response.split(|&b| b == b'\r').next().unwrap_or_default();
    std::str::from_utf8(status_line).ok().and_then(|line| line.split(' ').nth(1)?.parse().ok()).unwrap_or(0)
}

/// Consecutive requests through nginx that must succeed once the restarted server listens.
const RESUMED: usize = 50;

#[test]
fn sigkill_and_restart_under_load_replace_the_unix_socket_and_serving_resumes() {
    let socket = tests::socket_path();
    let unix = format!("unix:{}", socket.display());
    let manifest = Manifest::new().server("socket_mode = 0o666").route("/hello", "hello", "");
    let args = ["--listen", "127.0.0.1:0", "--fastcgi", &unix];
    let mut first = Server::start_with(&manifest, &args);
    let nginx = Nginx::start("", &[pass(&unix, false, true)]);
    let addr = nginx.addr(0);
    let stop = AtomicBool::new(false);
    let (statuses, answered) = mpsc::channel();
    std::thread::scope(|scope| {
        let _stopping = StopOnDrop(&stop);
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let _ = statuses.send(status_once(&addr));
            }
        });
        // One client, so the statuses come in the order the requests went: 200 while the first
        // server serves, 502 (or a closed connection) once it is killed, until the second
        // accepts; from its first 200 on, every request is served.
        let next = || answered.recv_timeout(TIMEOUT).expect("nginx answers");
        while next() != 200 {}
        first.kill();
        assert!(socket.exists(), "a killed server leaves its socket file");
        while next() == 200 {}
        let _second = Server::start_with(&manifest, &args);
        while next() != 200 {}
        let resumed: Vec<u16> = (0..RESUMED).map(|_| next()).collect();
        assert!(resumed.iter().all(|&status| status == 200), "after serving resumed: {resumed:?}");
    });
}
