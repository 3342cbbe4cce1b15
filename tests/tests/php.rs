//! PHP as a guest: the PHP component (`builtin:php`, which `scripts/build-php` builds) on a
//! route whose document root is the PHP-FPM reference's script directory (its copy in the
//! repository, `tests/php-reference/www`), preopened read-only, so its scripts run unmodified. Their
//! logger writes `/tmp/phpref/log/events.jsonl`; the route preopens a fresh directory there.
//!
//! Each table row is one request, over Tether's HTTP listener or through a real nginx passing
//! FastCGI over TCP or a Unix socket, and says what the client gets and which events the script
//! logs, with the `connection_status()` it read at each. A request is over when the server
//! logs its access record, which it writes after the guest ended; the events are read then.
//!
//! The last tests serve scripts of this file's own, from a document root of their own: what a
//! request must not inherit from the snapshot every instance starts from (PHP after its module
//! start-up, taken at build time): its entropy, its route's settings, its clock.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tests::matrix::Transport;
use tests::nginx::Nginx;
use tests::{Client, Manifest, Server, TIMEOUT, compile_ahead, fresh_dir, get, php_document_root, run_rows};

/// Where the scripts' logger writes, inside the guest (common.php's path, unmodified).
const GUEST_LOG_DIR: &str = "/tmp/phpref/log";
/// The guest path of the document root (the PHP component's `DOCUMENT_ROOT`).
const GUEST_DOCUMENT_ROOT: &str = "/www";
/// How often a wait for a script's event rereads its log file: the file is the only sign of
/// progress a script that writes nothing gives.
const EVENT_POLL: Duration = Duration::from_millis(5);

/// The reference's scripts: `tests/php-reference/www`.
fn reference_www() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("php-reference/www")
}

/// A server with one PHP route on `/`, and the front end its requests go through.
struct Site {
    /// The server.
    server: Server,
    /// The host directory the route maps to the scripts' log directory.
    log_dir: PathBuf,
    /// nginx in front, for the FastCGI transports; kept running while the site is.
    _nginx: Option<Nginx>,
    /// Where clients connect: Tether's HTTP listener or nginx.
    addr: String,
}

/// The route's output buffer: php-fpm's FastCGI buffer (8 KiB, `fcgi_request.out_buf`), behind
/// PHP's own output buffer as it is in php-fpm, so that a socket write happens where php-fpm
/// makes one: at `flush()`, or when 8 KiB are pending.
const OUTPUT_BUFFER: &str = "8KiB";

/// The PHP route's manifest in `mode`, logging into `log_dir`.
fn manifest(mode: &str, log_dir: &Path) -> Manifest {
    let settings = format!(
        "abort_detection = \"{mode}\"\noutput_buffer = \"{OUTPUT_BUFFER}\"\n{}\
         [[route.preopen]]\nhost = \"{}\"\nguest = \"{GUEST_LOG_DIR}\"\nwritable = true\n",
        php_document_root(&reference_www(), GUEST_DOCUMENT_ROOT, &[]),
        log_dir.display()
    );
    Manifest::new().route_to("/", "builtin:php", &settings)
}

/// Compiles the PHP component ahead, once per process (the compile cache keeps it), for the
/// route of `manifest`.
fn compile_php_once(manifest: &Manifest) {
    static COMPILED: std::sync::Once = std::sync::Once::new();
    COMPILED.call_once(|| compile_ahead(manifest));
}

/// Starts a site in `mode` behind `front`, its component compiled ahead.
fn site(mode: &str, front: Transport) -> Site {
    let log_dir = fresh_dir("php-log");
    let manifest = manifest(mode, &log_dir);
    compile_php_once(&manifest);
    let (server, nginx, addr) = front.serve(&manifest);
    Site { server, log_dir, _nginx: nginx, addr }
}

impl Site {
    /// The events the scripts logged with `tag`, in order.
    fn events(&self, tag: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(self.log_dir.join("events.jsonl")).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap_or_else(|error| panic!("event {line:?}: {error}")))
            .filter(|event| event["tag"] == tag)
            .collect()
    }

    /// Waits until the script logged the event `name` with `tag`.
    fn wait_for_event(&self, tag: &str, name: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.events(tag).iter().any(|event| event["ev"] == name) {
            assert!(Instant::now() < deadline, "timed out waiting for the event {name} of {tag}");
            std::thread::sleep(EVENT_POLL);
        }
    }
}

impl Site {
    /// Requests `uri` (which carries `tag`), leaves with a FIN once the script has logged the
    /// event `name`, and returns the script's events, `name:cs`, once the request has ended.
    fn leave_after_event(&self, uri: &str, tag: &str, name: &str) -> Vec<String> {
        let mut client = Client::connect(&self.addr);
        client.get(uri);
        self.wait_for_event(tag, name);
        client.close_fin();
        self.server.access(uri);
        summary(&self.events(tag))
    }
}

/// `name` and connection status of each event, as `name:cs`.
fn summary(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| format!("{}:{}", e["ev"].as_str().unwrap_or("?"), e["cs"])).collect()
}

/// A request whose client reads the whole response.
struct Row {
    /// The script and its query, without `tag` (the row adds its own).
    uri: &'static str,
    /// The status the client gets.
    status: u16,
    /// The body the client gets.
    body: String,
    /// The events the script logs, `name:cs`, in order.
    events: Vec<&'static str>,
    /// Whether the row needs Tether's HTTP listener: nginx refuses some requests itself.
    direct_only: bool,
}

fn rows() -> Vec<Row> {
    vec![
        Row { uri: "/hello.php", status: 200, body: "hello".into(), events: vec![], direct_only: false },
        Row { uri: "/missing.php", status: 404, body: "File not found.\n".into(), events: vec![], direct_only: false },
        // tests/php-reference/README.md is one level above the document root: not reachable
        // (nginx answers such a path with 400 itself).
        Row { uri: "/%2e%2e/README.md", status: 404, body: "File not found.\n".into(), events: vec![], direct_only: true },
        // Seed A1: no output; it runs to its end (RESULTS.md, key fact 4).
        Row {
            uri: "/seed_a1.php?iua=0",
            status: 200,
            body: String::new(),
            events: vec!["start:0", "end:0", "shutdown:0"],
            direct_only: false,
        },
        Row {
            uri: "/seed_a2.php?n=2",
            status: 200,
            body: "22222".repeat(2),
            events: vec!["start:0", "w:0", "iter:0", "w:0", "iter:0", "end:0", "shutdown:0"],
            direct_only: false,
        },
        Row {
            uri: "/seed_b.php?iua=1&sleep_ms=10",
            status: 200,
            body: "a".repeat(6 * 4096),
            events: ["start:0"].into_iter().chain(["iter:0", "w:0"].repeat(6)).chain(["done:0", "shutdown:0"]).collect(),
            direct_only: false,
        },
        Row {
            uri: "/fast_writer.php?iua=1&n=3&ms=1",
            status: 200,
            body: "x".repeat(300),
            events: vec!["start:0", "w:0", "w:0", "w:0", "end:0", "shutdown:0"],
            direct_only: false,
        },
        // set_time_limit(1), then a 3 s sleep: not stopped, the limit counts time in guest code
        // (RESULTS.md, fact 12: php-fpm's counts CPU time).
        Row {
            uri: "/timeout.php?mode=sleep&lim=1",
            status: 200,
            body: "completed\n".into(),
            events: vec!["start:0", "end:0", "shutdown:0", "sdf:0"],
            direct_only: false,
        },
        // set_time_limit(1), then a busy loop: stopped once it has run 1 s in guest code, with
        // a 500 before any output (as php-fpm's); a stopped guest runs no shutdown function
        // (php-fpm's run, reading TIMEOUT).
        Row {
            uri: "/timeout.php?mode=busy&lim=1",
            status: 500,
            body: "maximum execution time exceeded\n".into(),
            events: vec!["start:0"],
            direct_only: false,
        },
        // fastcgi_finish_request(): the client has its response while the script sleeps on.
        Row {
            uri: "/finish.php",
            status: 200,
            body: "response-body\n".into(),
            events: vec!["start:0", "finished:0", "after_sleep:0", "end:0", "shutdown:0"],
            direct_only: false,
        },
    ]
}

/// Runs `row` on `site` with the tag `tag`.
fn check(site: &Site, front: Transport, row: &Row) -> Result<(), String> {
    let tag = format!("{}-{}", front.name(), row.uri.trim_start_matches('/').replace(['?', '&', '=', '.', '%'], "_"));
    let separator = if row.uri.contains('?') { '&' } else { '?' };
    let uri = format!("{}{separator}tag={tag}", row.uri);
    let mut client = Client::connect(&site.addr);
    client.send(format!("GET {uri} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"));
    let response = client.read_response();
    if response.status != row.status || response.text() != row.body {
        return Err(format!("got {} {:?}, expected {} {:?}", response.status, response.text(), row.status, row.body));
    }
    site.server.access(&uri);
    let events = summary(&site.events(&tag));
    if events != row.events {
        return Err(format!("events {events:?}, expected {:?}", row.events));
    }
    Ok(())
}

#[test]
fn reference_scripts_run_unmodified_in_write_mode() {
    for front in Transport::ALL {
        let site = site("write", front);
        let rows: Vec<Row> = rows().into_iter().filter(|row| front == Transport::Http || !row.direct_only).collect();
        run_rows(&rows, |row| format!("{} {}", front.name(), row.uri), |row| check(&site, front, row));
    }
}

/// A route's `SCRIPT_NAME` serves every path with one script (a front controller), which stays
/// inside the document root.
#[test]
fn a_route_s_script_name_serves_every_path_with_one_script() {
    let front_controller = |script: &str| php_document_root(&reference_www(), GUEST_DOCUMENT_ROOT, &[("SCRIPT_NAME", script)]);
    let manifest = Manifest::new()
        .route_to("/front", "builtin:php", &front_controller("/hello.php"))
        .route_to("/missing", "builtin:php", &front_controller("/nothing-here.php"))
        .route_to("/escape", "builtin:php", &front_controller("/../README.md"));
    let server = Server::start(&manifest);
    let cases = [
        ("/front", 200, "hello"),
        ("/front/any/path/at/all?x=1", 200, "hello"),
        ("/front/missing.php", 200, "hello"),
        ("/missing/hello.php", 404, "File not found.\n"),
        ("/escape", 404, "File not found.\n"),
    ];
    run_rows(
        &cases,
        |(uri, ..)| uri.to_string(),
        |&(uri, status, body)| {
            let mut client = Client::connect(server.addr());
            client.get(uri);
            let response = client.read_response();
            if (response.status, response.text()) == (status, body.to_owned()) {
                Ok(())
            } else {
                Err(format!("got {} {:?}, expected {status} {body:?}", response.status, response.text()))
            }
        },
    );
}

#[test]
fn the_response_head_is_php_s() {
    let site = site("write", Transport::Http);
    let mut client = Client::connect(&site.addr);
    client.get("/hello.php");
    let response = client.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("text/html; charset=UTF-8"));
    assert_eq!(response.header("x-powered-by"), Some("PHP/8.2.32"));
}

/// Prompt mode: a script that writes nothing is stopped where it sleeps when its client
/// leaves (no `end`, no shutdown function), unless it ignores user aborts: then it runs to its
/// end and reads ABORTED.
#[test]
fn prompt_mode_stops_a_script_that_writes_nothing() {
    let site = site("prompt", Transport::Http);
    for (iua, expected) in [("0", &["start:0"][..]), ("1", &["start:0", "end:1", "shutdown:1"][..])] {
        let tag = format!("prompt-a1-{iua}");
        let uri = format!("/seed_a1.php?iua={iua}&tag={tag}");
        // The script logs `start` before its sleep: leave once it is there.
        assert_eq!(site.leave_after_event(&uri, &tag, "start"), expected, "iua={iua}");
    }
}

/// Seed B behind nginx in write mode, its client leaving (FIN) before the first of its six
/// 4 KiB writes, each after a 300 ms sleep: as under php-fpm (RESULTS.md, fact 2 and the B
/// rows), the first write after the close fails over a Unix socket, the second over TCP, and
/// from then on `connection_status()` reads ABORTED. Ignoring user aborts, the script runs to
/// its end (and logs `stop` at each later iteration); not ignoring them, it bails out of the
/// failing write and runs its shutdown function, reading ABORTED, as under php-fpm.
#[test]
fn seed_b_learns_of_the_abort_at_the_write_php_fpm_does() {
    for front in [Transport::NginxTcp, Transport::NginxUnix] {
        let site = site("write", front);
        let writes_before_failure = if front == Transport::NginxTcp { 1 } else { 0 };
        let rows = [true, false];
        run_rows(
            &rows,
            |iua| format!("{} iua={iua}", front.name()),
            |&iua| {
                let tag = format!("abort-{}-{iua}", front.name());
                let uri = format!("/seed_b.php?iua={}&sleep_ms=300&tag={tag}", u8::from(iua));
                let events = site.leave_after_event(&uri, &tag, "start");
                let mut expected = vec!["start:0".to_owned()];
                let mut cs = 0;
                for i in 0..6 {
                    expected.push(format!("iter:{cs}"));
                    if cs == 1 {
                        expected.push("stop:1".to_owned());
                    }
                    if i >= writes_before_failure {
                        if !iua {
                            break;
                        }
                        cs = 1;
                    }
                    expected.push(format!("w:{cs}"));
                }
                if iua {
                    expected.push("done:1".to_owned());
                }
                expected.push("shutdown:1".to_owned());
                if events != expected { Err(format!("events {events:?}, expected {expected:?}")) } else { Ok(()) }
            },
        );
    }
}

/// shutdown_fn.php behind nginx in write mode, not ignoring user aborts: 100 bytes and a flush
/// every 10 ms until its client leaves. As under php-fpm (RESULTS.md, fact 9), the script bails
/// out of the write that fails and runs its shutdown functions, which read ABORTED: common.php's,
/// then the script's own. That one sleeps a second and logs its exit; told to flush first, it
/// bails out again at that flush, and nothing after it runs. The request ends as
/// `aborted-returned`: the guest stopped itself, nothing trapped it.
#[test]
fn a_script_that_bails_out_of_an_aborted_write_runs_its_shutdown_functions() {
    for front in [Transport::NginxTcp, Transport::NginxUnix] {
        let site = site("write", front);
        for (flush, after) in [("1", &[][..]), ("0", &["sdf_exit:1"][..])] {
            let tag = format!("sdf-{}-{flush}", front.name());
            let uri = format!("/shutdown_fn.php?flush={flush}&tag={tag}");
            let events = site.leave_after_event(&uri, &tag, "w");
            let writes = events.iter().skip(1).take_while(|event| *event == "w:0").count();
            let mut expected = vec!["start:0".to_owned()];
            expected.extend(std::iter::repeat_n("w:0".to_owned(), writes));
            expected.extend(["shutdown:1", "sdf_enter:1"].iter().chain(after).map(|event| (*event).to_owned()));
            assert_eq!(events, expected, "{} flush={flush}", front.name());
            assert_eq!(site.server.access(&uri)["outcome"], "aborted-returned", "{} flush={flush}", front.name());
        }
    }
}

/// Seed A2 behind nginx in write mode, ignoring user aborts: "22222" and `flush()` once a
/// second, its client leaving after the first. PHP's 4 KiB buffer keeps the five bytes, so
/// each `flush()` writes no bytes: as under php-fpm (RESULTS.md, fact 3), that empty write
/// fails over a Unix socket whose peer closed, and never over TCP.
#[test]
fn seed_a2_sees_the_abort_through_an_empty_flush_where_php_fpm_does() {
    for front in [Transport::NginxTcp, Transport::NginxUnix] {
        let site = site("write", front);
        let tag = format!("a2-{}", front.name());
        let uri = format!("/seed_a2.php?iua=1&n=3&tag={tag}");
        let events = site.leave_after_event(&uri, &tag, "w");
        let cs = if front == Transport::NginxUnix { 1 } else { 0 };
        let mut expected = vec!["start:0".to_owned(), "w:0".into(), "iter:0".into()];
        for _ in 1..3 {
            expected.extend([format!("w:{cs}"), format!("iter:{cs}")]);
        }
        expected.extend([format!("end:{cs}"), format!("shutdown:{cs}")]);
        assert_eq!(events, expected, "{}", front.name());
    }
}

/// The guest path of the own scripts' document root. Not the component's default (`/www`): a
/// script found there shows that the request's `DOCUMENT_ROOT` and preopens were read, not the
/// snapshot's empty ones.
const OWN_DOCUMENT_ROOT: &str = "/site";

/// A route setting the own scripts read back: an environment variable of the route's.
const GREETING: &str = "hello from the route";

/// The own scripts, by name.
const OWN_SCRIPTS: &[(&str, &str)] = &[
    // Every generator PHP seeds by itself, at its first use in a request.
    (
        "random.php",
        "<?php echo mt_rand(), ' ', rand(), ' ', lcg_value(), ' ', bin2hex(random_bytes(16)), ' ', \
         random_int(PHP_INT_MIN, PHP_INT_MAX);",
    ),
    // PHP's settings and the route's, as the script sees them.
    (
        "settings.php",
        "<?php echo json_encode([ini_get('output_buffering'), ini_get('implicit_flush'), \
         ini_get('display_errors'), ini_get('max_execution_time'), ini_get('ignore_user_abort'), \
         getenv('GREETING'), $_SERVER['DOCUMENT_ROOT']]);",
    ),
    // The process time the guest has used, in microseconds (wasi-libc's clock()).
    ("rusage.php", "<?php $u = getrusage(); echo $u['ru_utime.tv_sec'] * 1000000 + $u['ru_utime.tv_usec'];"),
];

/// A server with one PHP route on `/` serving the own scripts, ignoring user aborts and with
/// an environment variable, so that its settings differ from the defaults.
fn own_site() -> Server {
    let root = fresh_dir("php-own");
    for (name, text) in OWN_SCRIPTS {
        std::fs::write(root.join(name), text).expect("writing a PHP script");
    }
    let settings = format!("ignore_user_abort = true\n{}", php_document_root(&root, OWN_DOCUMENT_ROOT, &[("GREETING", GREETING)]));
    let manifest = Manifest::new().route_to("/", "builtin:php", &settings);
    compile_php_once(&manifest);
    Server::start(&manifest)
}

/// The body of a 200 answer to `GET path`.
fn body_of(server: &Server, path: &str) -> String {
    let response = get(server.addr(), path);
    assert_eq!(response.status, 200, "{path}: {}", response.text());
    response.text()
}

/// Two requests draw different values from each of PHP's generators: nothing the snapshot
/// holds seeds them (PHP seeds them at first use in each request, from WASI's random_get).
#[test]
fn each_request_draws_its_own_random_values() {
    let server = own_site();
    let [first, second] = [(); 2].map(|()| body_of(&server, "/random.php"));
    let names = ["mt_rand", "rand", "lcg_value", "random_bytes", "random_int"];
    let first: Vec<&str> = first.split(' ').collect();
    let second: Vec<&str> = second.split(' ').collect();
    assert_eq!(first.len(), names.len(), "{first:?}");
    for (i, name) in names.iter().enumerate() {
        assert_ne!(first[i], second[i], "{name} gave two requests the same value");
    }
}

/// PHP's own ini defaults and Tether's, and the route's settings (its environment, its document
/// root, its ignore_user_abort), all as a request sees them: the snapshot was taken with no
/// route at all.
#[test]
fn a_request_sees_php_s_defaults_and_its_route_s_settings() {
    let server = own_site();
    let settings: Vec<Value> = serde_json::from_str(&body_of(&server, "/settings.php")).expect("the script's JSON");
    let expected = ["4096", "0", "0", "0", "1", GREETING, OWN_DOCUMENT_ROOT];
    assert_eq!(settings, expected.map(Value::from));
}

/// getrusage()'s time (wasi-libc's clock(), the guest's monotonic clock less its reading at
/// start-up) counts from the request's instance: not negative, and no more than the request
/// took. The start-up reading is the snapshot's, taken with its clock stopped at zero; a reading
/// of the build's clock would make it negative here (or, wrapped, some 10^15 µs).
#[test]
fn getrusage_counts_from_the_request() {
    let server = own_site();
    let started = Instant::now();
    let micros: f64 = body_of(&server, "/rusage.php").parse().expect("a number of microseconds");
    let took = started.elapsed().as_secs_f64() * 1e6;
    assert!((0.0..=took).contains(&micros), "getrusage() read {micros} µs of a request that took {took} µs");
}
