//! The admin listener: `/ping`, `/status` in each of its views (the HTML one rendered by
//! headless Chromium, with a screenshot), and `/metrics` read by Python's prometheus_client
//! OpenMetrics parser; and the slow log, which it counts.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;
use tests::{Client, Close, Manifest, Server};

/// A guest's sleep or spin that outlasts the test: the server is killed at its end.
const FOREVER_MS: u64 = 600_000;
/// The slow-log test's `slowlog_timeout`: its slow guests run for several times as long.
const SLOWLOG_MS: u64 = 100;

fn start() -> Server {
    let manifest = Manifest::new()
        .server("admin = \"127.0.0.1:0\"")
        .route("/hello", "hello", "")
        .route("/seed-a", "seed_a", "")
        .route("/finish", "finish", "")
        .route("/spin", "spin", "");
    Server::start(&manifest)
}

/// A server (and its admin address) that has answered three hellos, each on a connection of its
/// own, and a 404 for a path no route serves.
fn start_after_hellos_and_a_404() -> (Server, String) {
    let server = start();
    let admin = server.admin();
    for _ in 0..3 {
        assert_eq!(tests::get(server.addr(), "/hello").status, 200);
    }
    assert_eq!(tests::get(server.addr(), "/nowhere").status, 404);
    (server, admin)
}

/// GETs `path` from the admin listener at `admin` and returns the response.
fn admin_get(admin: &str, path: &str) -> tests::Response {
    tests::get(admin, path)
}

/// `/status?json&full`, parsed.
fn status(admin: &str) -> Value {
    let response = admin_get(admin, "/status?json&full");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    serde_json::from_str(&response.text()).expect("the status is JSON")
}

/// Polls the status until `ready` holds for it, as a state change inside the server (a client's
/// close seen, a guest scheduled) has no event of its own to wait for.
fn status_when(admin: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + tests::TIMEOUT;
    loop {
        let status = status(admin);
        if ready(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "the status never showed {what}: {status:#}");
        std::thread::yield_now();
    }
}

/// The state `/status?json&full` gives the request whose target is `uri`.
fn state_of<'a>(status: &'a Value, uri: &str) -> Option<&'a str> {
    status["requests"].as_array()?.iter().find(|r| r["uri"] == uri)?["state"].as_str()
}

#[test]
fn ping_answers_pong_and_anything_else_is_a_404() {
    let server = start();
    let admin = server.admin();
    assert_eq!(admin_get(&admin, "/ping").text(), "pong\n");
    assert_eq!(admin_get(&admin, "/nothing").status, 404);
    // The admin listener runs no guest: the guests' routes are not there.
    assert_eq!(admin_get(&admin, "/hello").status, 404);
}

#[test]
fn status_shows_each_request_in_flight_with_its_state_and_the_totals() {
    let (server, admin) = start_after_hellos_and_a_404();

    // One request in each state.
    let sleeping = format!("/seed-a?ms={FOREVER_MS}");
    let mut sleeper = Client::connect(server.addr());
    sleeper.get(&sleeping);
    server.guest_line(server.started("/seed-a"), "start");
    let finished = format!("/finish?ms={FOREVER_MS}");
    let mut finisher = Client::connect(server.addr());
    finisher.get(&finished);
    assert_eq!(finisher.read_response().status, 200);
    let ignoring = format!("/seed-a?ms={FOREVER_MS}&iua=1");
    let _left = tests::leave_after_line(&server, server.addr(), &ignoring, "/seed-a", "start", Close::Fin);
    let spinning = format!("/spin?ms={FOREVER_MS}");
    let mut spinner = Client::connect(server.addr());
    spinner.get(&spinning);

    let expected = [(&sleeping, "in-host-call"), (&finished, "finished-early"), (&ignoring, "ignoring-abort"), (&spinning, "running")];
    let status = status_when(&admin, "every request in its state, and their instances only in use", |status| {
        expected.iter().all(|(uri, state)| state_of(status, uri) == Some(*state)) && status["instances_in_use"] == 4
    });
    assert_eq!(status["requests_in_flight"], 4, "{status:#}");
    assert_eq!(status["in_flight_by_route"]["/seed-a"], serde_json::json!({ "in-host-call": 1, "ignoring-abort": 1 }));
    assert_eq!(status["requests_by_outcome"]["completed"], 3);
    assert_eq!(status["requests_by_outcome"]["rejected"], 1);
    assert_eq!(status["accepted_connections"], 8);
    assert!(status["open_connections"].as_i64().is_some_and(|open| open >= 2), "{status:#}");
    assert_eq!(status["generation"], 1);
    for request in status["requests"].as_array().expect("requests") {
        assert!(request["age_ms"].as_u64().is_some() && request["method"] == "GET", "{request}");
    }

    // The text view, as php-fpm's: the same figures, and with `full` a block per request.
    let text = admin_get(&admin, "/status").text();
    assert!(text.lines().any(|line| line.split_whitespace().eq(["requests", "in", "flight:", "4"])), "{text}");
    assert!(!text.contains("request URI:"), "{text}");
    let full = admin_get(&admin, "/status?full").text();
    for (uri, _) in &expected {
        assert!(full.lines().any(|line| line.starts_with("request URI:") && line.ends_with(uri.as_str())), "{uri} in {full}");
    }
    // `?openmetrics` is /metrics.
    let openmetrics = admin_get(&admin, "/status?openmetrics");
    assert!(openmetrics.header("content-type").is_some_and(|t| t.starts_with("application/openmetrics-text")));
    assert!(openmetrics.text().ends_with("# EOF\n"));

    // The HTML view, rendered by a real browser.
    let (dom, screenshot) = chromium(&format!("http://{admin}/status?html&full"));
    assert!(dom.contains("<table id=\"summary\">") && dom.contains("<table id=\"requests\">"), "{dom}");
    for (uri, _) in &expected {
        assert!(dom.contains(&format!("<td>{}</td>", uri.replace('&', "&amp;"))), "{uri} in {dom}");
    }
    let png = std::fs::read(&screenshot).expect("chromium's screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000, "{}", screenshot.display());
}

/// Loads `url` in headless Chromium: returns the DOM it built and the path of its screenshot.
fn chromium(url: &str) -> (String, PathBuf) {
    let dir = tests::fresh_dir("chromium");
    let screenshot = dir.join("status.png");
    let run = |extra: &str| {
        let output = Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,1024"])
            .arg(format!("--user-data-dir={}", dir.join("profile").display()))
            .arg(extra)
            .arg(url)
            .stderr(Stdio::null())
            .output()
            .expect("running chromium (scripts/setup --test installs it)");
        assert!(output.status.success(), "chromium {extra} {url} failed");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    run(&format!("--screenshot={}", screenshot.display()));
    (run("--dump-dom"), screenshot)
}

/// Every sample of `/metrics`, parsed by prometheus_client's OpenMetrics parser.
fn parsed_metrics(admin: &str) -> Vec<Value> {
    let response = admin_get(admin, "/metrics");
    assert_eq!(response.status, 200);
    let python = tests::target_dir().join("test-tools/venv/bin/python");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/parse_metrics.py");
    let mut parser = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("running {} (scripts/setup --test installs it): {error}", python.display()));
    std::io::Write::write_all(&mut parser.stdin.take().expect("piped"), response.text().as_bytes()).expect("feeding the parser");
    let output = parser.wait_with_output().expect("the parser");
    assert!(output.status.success(), "/metrics does not parse: {}\n{}", String::from_utf8_lossy(&output.stderr), response.text());
    String::from_utf8_lossy(&output.stdout).lines().map(|line| serde_json::from_str(line).expect("a JSON sample")).collect()
}

/// The value of the sample `name` whose labels include `labels`.
fn sample(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| s["name"] == name && labels.iter().all(|(key, value)| s["labels"][key] == *value))
        .and_then(|s| s["value"].as_f64())
        .unwrap_or_else(|| panic!("no {name} {labels:?} in {samples:#?}"))
}

#[test]
fn metrics_count_requests_by_route_protocol_and_outcome_and_parse_as_openmetrics() {
    let (server, admin) = start_after_hellos_and_a_404();
    let aborted = format!("/seed-a?ms={FOREVER_MS}");
    tests::leave_after_line(&server, server.addr(), &aborted, "/seed-a", "start", Close::Rst);
    assert_eq!(server.access(&aborted)["outcome"], "aborted-trapped");
    server.reload().expect("the reload succeeds");

    let samples = parsed_metrics(&admin);
    let requests =
        |route, outcome| sample(&samples, "tether_requests_total", &[("route", route), ("protocol", "http"), ("outcome", outcome)]);
    assert_eq!(requests("/hello", "completed"), 3.0);
    assert_eq!(requests("", "rejected"), 1.0);
    assert_eq!(requests("/seed-a", "aborted-trapped"), 1.0);
    assert_eq!(sample(&samples, "tether_request_duration_seconds_count", &[("route", "/hello")]), 3.0);
    assert_eq!(sample(&samples, "tether_request_duration_seconds_bucket", &[("route", "/hello"), ("le", "+Inf")]), 3.0);
    assert_eq!(sample(&samples, "tether_abort_latency_seconds_count", &[("route", "/seed-a")]), 1.0);
    assert_eq!(sample(&samples, "tether_connections_accepted_total", &[("protocol", "http")]), 5.0);
    assert_eq!(sample(&samples, "tether_reloads_total", &[("result", "ok")]), 1.0);
    assert_eq!(sample(&samples, "tether_max_instances_reached_total", &[]), 0.0);
    assert!(sample(&samples, "tether_start_time_seconds", &[]) > 1.0e9);
}

#[test]
fn a_request_past_its_slowlog_timeout_is_logged_once_with_its_guests_stack() {
    let slow = format!("slowlog_timeout = \"{SLOWLOG_MS}ms\"");
    let slow = slow.as_str();
    let manifest = Manifest::new().server("admin = \"127.0.0.1:0\"").route("/spin", "spin", slow).route("/seed-a", "seed_a", slow);
    let server = Server::start(&manifest);
    let admin = server.admin();
    // A guest computing when its time is up (with no host call in its loop), one sleeping (its
    // stack comes when it wakes), and one that ends before its time.
    let cases = [("/spin?rounds=3000", Some("running"), "handle"), ("/seed-a?ms=400", Some("in a host call"), "clock_nanosleep <- handle")];
    for (uri, _, _) in &cases {
        assert_eq!(tests::get(server.addr(), uri).status, 200);
    }
    assert_eq!(tests::get(server.addr(), "/seed-a?ms=0").status, 200);
    for (uri, state, stack) in cases {
        let req = server.access(uri)["req"].as_u64().expect("a request id");
        let records: Vec<Value> = server.events().into_iter().filter(|e| e["target"] == "tether::slow" && e["req"] == req).collect();
        assert_eq!(records.len(), 1, "{uri}: {records:#?}");
        let record = &records[0];
        assert_eq!(record["state"].as_str(), state, "{uri}: {record}");
        assert!(record["stack"].as_str().is_some_and(|s| s.contains(stack)), "{uri}: {record}");
        assert!(record["age_ms"].as_u64().is_some_and(|age| age >= SLOWLOG_MS), "{uri}: {record}");
    }
    let fast = server.access("/seed-a?ms=0")["req"].clone();
    assert!(!server.events().iter().any(|e| e["target"] == "tether::slow" && e["req"] == fast));
    assert_eq!(status(&admin)["slow_requests"], 2);
    let samples = parsed_metrics(&admin);
    assert_eq!(sample(&samples, "tether_slow_requests_total", &[("route", "/spin")]), 1.0);
    assert_eq!(sample(&samples, "tether_slow_requests_total", &[("route", "/seed-a")]), 1.0);
}
