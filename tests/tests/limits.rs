//! Request-lifetime limits and the sandbox: `max_execution_time` (guest CPU time, restarted by
//! `set-time-limit`), `request_timeout` (wall clock), `body_timeout` and `send_timeout` (a
//! client that stalls), `max_memory`, and what a guest can reach; and `max_connections`.

use std::time::{Duration, Instant};
use tests::fcgi::FcgiClient;
use tests::{Client, IDLE_TRIMMED, Manifest, POOL_RELEASED, Server, fresh_dir, get};

fn server() -> Server {
    Server::start(
        &Manifest::new()
            .route("/met/spin", "spin", "max_execution_time = \"300ms\"")
            .route("/met/sleep", "seed_a", "max_execution_time = \"300ms\"")
            .route("/rt/sleep", "seed_a", "request_timeout = \"2s\"")
            .route("/rt/stream", "seed_a2", "request_timeout = \"2s\"")
            .route("/rt/flood", "flood", "request_timeout = \"2s\"")
            .route("/mem/hog", "hog", "max_memory = \"32MiB\""),
    )
}

#[test]
fn max_execution_time_stops_a_spinning_guest_with_500() {
    let server = server();
    let response = get(server.addr(), "/met/spin?ms=20000");
    assert_eq!(response.status, 500);
    assert_eq!(response.text(), "maximum execution time exceeded\n");
    let access = server.access("/met/spin?ms=20000");
    assert_eq!(access["outcome"], "timeout");
    let req = access["req"].as_u64().expect("req");
    assert!(!server.guest_lines(req).iter().any(|l| l.starts_with("end")));
}

#[test]
fn max_execution_time_does_not_count_sleeping() {
    let server = server();
    // Sleeps twice the CPU limit: PHP's limit counts CPU time, so does Tether's.
    let response = get(server.addr(), "/met/sleep?ms=600");
    assert_eq!(response.status, 200);
    assert_eq!(server.access("/met/sleep?ms=600")["outcome"], "completed");
}

#[test]
fn set_time_limit_restarts_the_budget() {
    let server = server();
    // Spin 700 ms after raising the limit from 300 ms to 1 s: it completes.
    let response = get(server.addr(), "/met/spin?ms=700&limit=1");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(server.access("/met/spin?ms=700&limit=1")["outcome"], "completed");
    // set_time_limit(0) removes the limit.
    assert_eq!(get(server.addr(), "/met/spin?ms=700&limit=0").status, 200);
}

/// Three computing guests share one guest thread, taking turns at each epoch tick. Each is
/// charged only for its own turns, as PHP's CPU-time limit would: the three budgets of 300 ms
/// are spent one turn at a time on that one thread, so the client, whose clock starts before
/// any of them and stops after all, waits at least 900 ms. Only that bound below is asserted,
/// which a slow machine cannot break; charged for each other's turns, all three would end
/// after about 300 ms.
#[test]
fn max_execution_time_does_not_count_other_guests_turns() {
    const BUDGET: Duration = Duration::from_millis(300);
    let server = Server::start(&Manifest::new().server("guest_threads = 1").route("/met/spin", "spin", "max_execution_time = \"300ms\""));
    let targets: Vec<String> = (0..3).map(|n| format!("/met/spin?ms=20000&n={n}")).collect();
    let started = Instant::now();
    let mut clients: Vec<Client> = targets
        .iter()
        .map(|target| {
            let mut client = Client::connect(server.addr());
            client.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n"));
            client
        })
        .collect();
    for client in &mut clients {
        assert_eq!(client.read_response().status, 500);
    }
    let all_ended = started.elapsed();
    for target in &targets {
        assert_eq!(server.access(target)["outcome"], "timeout", "{target}");
    }
    assert!(all_ended >= BUDGET * 3, "all three guests ended within {all_ended:?}: they were charged for each other's turns");
}

#[test]
fn request_timeout_stops_a_sleeping_guest_with_504() {
    let server = server();
    let response = get(server.addr(), "/rt/sleep?ms=20000");
    assert_eq!(response.status, 504);
    let access = server.access("/rt/sleep?ms=20000");
    assert_eq!(access["outcome"], "timeout");
}

#[test]
fn request_timeout_after_the_head_was_sent_ends_the_body_incomplete() {
    let server = server();
    let mut client = Client::connect(server.addr());
    client.get("/rt/stream?ms=20000&n=3");
    let response = client.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "22222");
    assert!(!response.complete, "the client must be able to tell the body was cut short");
    assert_eq!(server.access("/rt/stream?ms=20000&n=3")["outcome"], "timeout");
}

#[test]
fn request_timeout_inside_a_blocked_write_logs_what_the_client_got() {
    let server = server();
    let mut client = Client::connect(server.addr());
    // The client takes the head and the first 64 KiB of the body, then reads nothing: the
    // guest's 32 MiB write (more than any socket buffers hold) blocks until request_timeout
    // stops it there.
    client.get("/rt/flood?mb=32");
    let head = client.read_until(b"\r\n\r\n");
    assert!(head.starts_with(b"HTTP/1.1 200 "), "{}", String::from_utf8_lossy(&head));
    let chunk_size_line = client.read_until(b"\r\n");
    let body = client.read_exact(64 << 10);
    let received = (head.len() + chunk_size_line.len() + body.len()) as u64;
    let access = server.access("/rt/flood?mb=32");
    assert_eq!(access["outcome"], "timeout");
    assert_eq!(access["status"], 200, "the client got a 200 head: {access}");
    // What the client received had reached the socket; what the kernel buffers hold beyond it
    // depends on the machine.
    assert!(access["bytes"].as_u64().unwrap_or(0) >= received, "the {received} bytes the client got count: {access}");
}

#[test]
fn a_guest_over_its_memory_limit_traps_and_the_server_lives_on() {
    let server = server();
    let response = get(server.addr(), "/mem/hog");
    assert_eq!(response.status, 500);
    let access = server.access("/mem/hog");
    assert_eq!(access["outcome"], "trapped");
    assert!(access["detail"].as_str().unwrap_or("").contains("memory limit"), "{access}");
    // Within the limit it works.
    assert_eq!(get(server.addr(), "/mem/hog?mb=8").text(), "allocated 8 MiB\n");
}

/// The heap trim comes once the last request ended, after its access record, and once per
/// idle period: an idle server is trimmed once, not periodically. What it gives back is logged
/// (`rss_before_kib`, `rss_after_kib`), but not asserted: the resident set can grow by a page
/// during the trim itself. How long the server stays quiet here, three times the second it
/// waits before trimming, is the subject, not synchronisation; the next request's access
/// record then marks the end of that period in the log.
#[test]
fn an_idle_server_gives_freed_memory_back_once_per_idle_period() {
    /// The host's `heap::IDLE_TRIM_DELAY`.
    const IDLE_TRIM_DELAY: Duration = Duration::from_secs(1);
    let server = server();
    assert_eq!(get(server.addr(), "/mem/hog?mb=8").text(), "allocated 8 MiB\n");
    let trimmed = server.wait_for("the idle server to trim its heap", |events| events.iter().find(|e| is_trim(e)).cloned());
    for field in ["rss_before_kib", "rss_after_kib"] {
        assert!(trimmed[field].as_u64().is_some_and(|kib| kib > 0), "{field}: {trimmed}");
    }
    std::thread::sleep(IDLE_TRIM_DELAY * 3);
    assert_eq!(get(server.addr(), "/mem/hog?mb=1").text(), "allocated 1 MiB\n");
    server.wait_for("the second idle period's trim", |events| {
        let second = events.iter().position(|e| is_access(e, "/mem/hog?mb=1"))?;
        events[second..].iter().any(is_trim).then_some(())
    });
    let events = server.events();
    let first = events.iter().position(|e| is_access(e, "/mem/hog?mb=8")).expect("the first access record");
    let second = events.iter().position(|e| is_access(e, "/mem/hog?mb=1")).expect("the second access record");
    let trims = |range: &[serde_json::Value]| range.iter().filter(|e| is_trim(e)).count();
    assert_eq!(trims(&events[..first]), 0, "trimmed before the first request ended: {events:#?}");
    assert_eq!(trims(&events[first..second]), 1, "one trim for the first idle period, of three seconds: {events:#?}");
    assert_eq!(trims(&events[second..]), 1, "one trim for the second: {events:#?}");
    // One request leaves a few pool slots warm, far below the default `idle_pool_resident`.
    assert!(!events.iter().any(|e| e["message"] == POOL_RELEASED), "no reload for one request");
}

/// Whether `event` is the idle server's heap trim.
fn is_trim(event: &serde_json::Value) -> bool {
    event["message"] == IDLE_TRIMMED
}

/// Whether `event` is the access record of `uri`.
fn is_access(event: &serde_json::Value, uri: &str) -> bool {
    event["target"] == "tether::access" && event["uri"] == uri
}

/// Puts `clients` requests on `route` in flight at once (each guest logs a line, then sleeps
/// for a minute; `query` adds to their query string), then has every client leave; returns the
/// log position before the burst.
fn burst(server: &Server, route: &str, query: &str, clients: usize) -> usize {
    let mark = server.log_len();
    let connections: Vec<Client> = (0..clients)
        .map(|_| {
            let mut client = Client::connect(server.addr());
            client.get(&format!("{route}?ms=60000&{query}"));
            client
        })
        .collect();
    server.wait_for_since(mark, "every guest of the burst to start", |events| {
        let started: std::collections::HashSet<_> =
            events.iter().filter(|e| e["target"] == "tether::guest" && e["route"] == route).map(|e| e["req"].clone()).collect();
        (started.len() >= clients).then_some(())
    });
    connections.into_iter().for_each(Client::close_rst);
    mark
}

#[test]
fn an_idle_server_gives_its_instance_pool_back_after_a_burst_and_serves_on() {
    const CLIENTS: usize = 100;
    // The routes are checked on /hello: a request on /sleep could log after the next burst began.
    let manifest = Manifest::new().server("idle_pool_resident = \"256KiB\"").route("/sleep", "seed_a", "").route("/hello", "hello", "");
    let server = Server::start(&manifest);
    for round in 0..2 {
        let events = idle_after(&server, burst(&server, "/sleep", "", CLIENTS));
        let released =
            events.iter().find(|e| e["message"] == POOL_RELEASED).unwrap_or_else(|| panic!("round {round}: no release in {events:#?}"));
        assert!(released["pool_kib"].as_u64().unwrap_or(0) > 256, "round {round}: {released}");
        assert_eq!(
            events.iter().filter(|e| e["target"] == "tether::access" && e["outcome"] == "aborted-trapped").count(),
            CLIENTS,
            "round {round}: every guest of the burst was stopped"
        );
        // The routes, loaded again into the new runtime, serve as before.
        assert_eq!(get(server.addr(), "/hello").status, 200, "round {round}");
    }
}

/// The log from `mark` to the end of the next idle period's heap trim, which comes after the
/// pool's release, if any.
fn idle_after(server: &Server, mark: usize) -> Vec<serde_json::Value> {
    server.wait_for_since(mark, "the idle server to trim its heap", |events| {
        events.iter().any(|e| e["message"] == IDLE_TRIMMED).then(|| events.to_vec())
    })
}

#[test]
fn the_idle_server_counts_what_deep_guests_leave_on_their_pool_slots_fiber_stacks() {
    // Above what 40 shallow guests leave (their slots' memories and tables, about 1 MiB, and the
    // heap's own growth), below what 40 guests 3,000 calls deep leave on their fiber stacks
    // (about 14 MiB), which wasmtime does not report.
    const CLIENTS: usize = 40;
    let server = Server::start(&Manifest::new().server("idle_pool_resident = \"6MiB\"").route("/deep", "deep", ""));
    let shallow = idle_after(&server, burst(&server, "/deep", "depth=0", CLIENTS));
    assert!(!shallow.iter().any(|e| e["message"] == POOL_RELEASED), "shallow guests leave little: {shallow:#?}");
    let deep = idle_after(&server, burst(&server, "/deep", "depth=3000", CLIENTS));
    let released = deep.iter().find(|e| e["message"] == POOL_RELEASED).unwrap_or_else(|| panic!("no release in {deep:#?}"));
    assert!(released["pool_kib"].as_u64().unwrap_or(0) > 6 << 10, "{released}");
    assert_eq!(get(server.addr(), "/deep?depth=3000").text(), "depth 3000\n");
}

#[test]
fn without_a_compile_cache_the_idle_server_keeps_its_pool_and_says_why() {
    let manifest = Manifest::new().server("idle_pool_resident = \"256KiB\"").route("/sleep", "seed_a", "");
    let server = Server::start_with(&manifest, &["--listen", "127.0.0.1:0", "--no-cache"]);
    let mark = burst(&server, "/sleep", "", 100);
    let kept = server.wait_for_since(mark, "the idle server to say why it keeps its pool", |events| {
        events.iter().find(|e| e["message"].as_str().is_some_and(|m| m.starts_with("idle: the instance pool keeps its memory"))).cloned()
    });
    assert!(kept["error"].as_str().unwrap_or("").contains("no compile cache"), "{kept}");
    assert_eq!(get(server.addr(), "/sleep?ms=0").status, 200);
}

#[test]
fn a_guest_reaches_only_its_preopens_and_environment() {
    let dir = fresh_dir("sandbox");
    std::fs::create_dir_all(dir.join("data")).expect("data dir");
    std::fs::write(dir.join("data/in.txt"), "inside").expect("in.txt");
    std::fs::write(dir.join("secret"), "outside").expect("secret");
    let manifest = Manifest::new()
        .route(
            "/escape",
            "escape",
            &format!("[route.env]\nGREETING = \"hi\"\n[[route.preopen]]\nhost = \"{}\"\nguest = \"data\"", dir.join("data").display()),
        )
        .route("/no-dirs", "escape", "[route.env]\nGREETING = \"no dirs\"");
    let server = Server::start(&manifest);
    // The escape guest's report, one line per attempt: `line(name)` is the one starting with it.
    let report = |target: &str| {
        let report = get(server.addr(), target).text();
        move |name: &str| report.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no `{name}` in {report}")).to_owned()
    };
    let line = report("/escape?file=/etc/passwd");
    assert!(line("read /etc/passwd").contains("denied"));
    assert!(line("read ../secret").contains("denied"));
    assert!(line("list /").contains("denied"));
    assert!(line("write data/out.txt").contains("denied"), "read-only preopen");
    assert_eq!(line("read data/in.txt"), "read data/in.txt: ok 6");
    assert_eq!(line("env"), "env: GREETING=hi", "no host environment leaks in");
    assert!(line("connect").contains("denied"));
    // A route that grants no directory builds WASI at the guest's first WASI call instead of
    // before it runs: the same sandbox, with its own environment.
    let line = report("/no-dirs");
    assert!(line("read /etc/passwd").contains("denied"));
    assert!(line("read data/in.txt").contains("denied"));
    assert_eq!(line("env"), "env: GREETING=no dirs");
}

#[test]
fn a_granted_directory_that_vanished_fails_the_request_before_the_guest_runs() {
    let dir = fresh_dir("vanishing");
    let manifest = Manifest::new()
        .route("/escape", "escape", &format!("[[route.preopen]]\nhost = \"{}\"\nguest = \"data\"", dir.display()))
        .route("/hello", "hello", "");
    let server = Server::start(&manifest);
    assert_eq!(get(server.addr(), "/escape?before").status, 200);
    std::fs::remove_dir_all(&dir).expect("removing the granted directory");
    let response = get(server.addr(), "/escape?after");
    assert_eq!(response.status, 500);
    assert_eq!(response.text(), "internal server error\n");
    let access = server.access("/escape?after");
    assert_eq!(access["outcome"], "trapped");
    assert!(access["detail"].as_str().is_some_and(|d| d.contains(&*dir.to_string_lossy())), "the log names the directory: {access}");
    assert_eq!(get(server.addr(), "/hello").status, 200);
}

#[test]
fn a_full_instance_pool_answers_503_until_a_slot_frees() {
    let server = Server::start(&Manifest::new().server("max_instances = 1").route("/sleep", "seed_a", "").route("/hello", "hello", ""));
    let mut sleeper = Client::connect(server.addr());
    sleeper.get("/sleep?ms=60000");
    server.started("/sleep");
    let response = get(server.addr(), "/hello?while-full");
    assert_eq!(response.status, 503);
    assert_eq!(response.text(), "server overloaded, retry later\n");
    assert_eq!(server.access("/hello?while-full")["outcome"], "rejected");
    // The sleeper's client leaves: its guest is stopped, and once its instance is torn down
    // (after its access line; the server logs going idle a second later) the slot serves again.
    let mark = server.log_len();
    sleeper.close_fin();
    assert_eq!(server.access("/sleep?ms=60000")["outcome"], "aborted-trapped");
    server.wait_for_since(mark, "the server to go idle", |events| events.iter().any(|e| e["message"] == IDLE_TRIMMED).then_some(()));
    assert_eq!(get(server.addr(), "/hello?after").status, 200);
}

#[test]
fn a_machine_out_of_memory_for_instances_gets_503_and_the_server_lives_on() {
    // Below the 4 GiB an instance's linear memory reserves (and far below the pooling
    // allocator's reservation), above what the server itself needs.
    const ADDRESS_SPACE_KIB: u64 = 3 << 20;
    let server = Server::start_with_address_space(&Manifest::new().route("/hello", "hello", ""), ADDRESS_SPACE_KIB);
    server.wait_for("the fallback to on-demand allocation", |events| {
        events.iter().any(|e| e["message"].as_str().is_some_and(|m| m.starts_with("the pooling allocator is unavailable"))).then_some(())
    });
    for attempt in ["/hello?first", "/hello?second"] {
        let response = get(server.addr(), attempt);
        assert_eq!(response.status, 503, "{attempt}");
        assert_eq!(response.text(), "server overloaded, retry later\n");
        let access = server.access(attempt);
        assert_eq!(access["outcome"], "rejected");
        assert!(access["detail"].as_str().is_some_and(|d| d.starts_with("out of resources for a new instance")), "{access}");
    }
}

#[test]
fn an_instance_still_being_torn_down_does_not_refuse_the_next_request() {
    // One slot, one keep-alive client: each answer frees the connection a few microseconds
    // before the instance behind it is torn down, and the next request must wait for that.
    let server = Server::start(&Manifest::new().server("max_instances = 1").route("/hello", "hello", ""));
    let mut client = Client::connect(server.addr());
    for i in 0..500 {
        client.get("/hello");
        assert_eq!(client.read_response().status, 200, "request {i}");
    }
}

#[test]
fn a_client_that_stalls_its_body_or_stops_reading_is_taken_for_gone() {
    let server = Server::start(
        &Manifest::new()
            .server("body_timeout = \"200ms\"")
            .server("send_timeout = \"200ms\"")
            .route("/count", "body_reader", "")
            .route("/flood", "flood", ""),
    );
    // Three of ten promised bytes, then silence: the guest waiting for the rest is stopped.
    let mut client = Client::connect(server.addr());
    client.send("POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    let access = server.access("/count");
    assert_eq!(access["outcome"], "aborted-trapped", "{access}");
    assert!(client.read_to_end().is_empty(), "the connection closes without a response");
    // A client that never reads a 32 MiB response: the guest blocked in its flush is stopped.
    let mut client = Client::connect(server.addr());
    client.get("/flood?mb=32");
    let access = server.access("/flood?mb=32");
    assert_eq!(access["outcome"], "aborted-trapped", "{access}");
    let req = access["req"].as_u64().expect("req");
    assert!(!server.guest_lines(req).iter().any(|l| l.starts_with("wrote")), "stopped inside the write");
    drop(client);
    assert_eq!(get(server.addr(), "/count").status, 200, "the server serves on");
}

/// How long a client that must wait for `max_connections` is watched for an early answer.
const WAITING: Duration = Duration::from_millis(300);

#[test]
fn max_connections_holds_across_every_listener_and_io_thread() {
    let server = Server::start_fastcgi(&Manifest::new().server("max_connections = 1\nio_threads = 2").route("/hello", "hello", ""));
    // Every I/O thread accepts on all three listeners; the one connection allowed goes to
    // whichever is used, rather than to an idle accept loop of another.
    for _ in 0..2 {
        assert_eq!(get(server.addr(), "/hello").text(), "hello\n");
        for addr in [server.fastcgi_tcp(), server.fastcgi_unix()] {
            let mut client = FcgiClient::connect(addr);
            client.request(1, "GET", "/hello", b"");
            assert_eq!(client.reply(1).body(), "hello\n", "{addr}");
        }
    }
    // A second client is read only once the first has gone.
    let mut first = Client::connect(server.addr());
    first.get("/hello");
    assert_eq!(first.read_response().text(), "hello\n");
    let mut second = Client::connect(server.addr());
    second.get("/hello");
    assert!(second.silent_for(WAITING), "answered while the one connection allowed was open");
    drop(first);
    assert_eq!(second.read_response().text(), "hello\n");
}
