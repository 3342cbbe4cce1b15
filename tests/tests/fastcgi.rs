//! FastCGI: Tether behind a real nginx (TCP and Unix upstreams, the reference's
//! `fastcgi_ignore_client_abort` / `fastcgi_buffering` combinations, upstream keep-alive), a
//! direct FastCGI client for what nginx never sends, `cgi-fcgi` as a second real client, and
//! several hosts behind one nginx upstream. The seeds behind nginx's default settings are rows
//! of the abort table (`tests/tests/abort_matrix.rs`).

use std::process::Command;
use tests::fcgi::{FcgiClient, kind};
use tests::nginx::{FASTCGI_PARAMS, Nginx, pass};
use tests::{Client, Close, Manifest, Server, cs, get, has, leave_after_line, line};

/// The seeds in both modes (`/p/...` prompt, `/w/...` write), and the other fixtures.
fn manifest() -> Manifest {
    Manifest::new()
        .in_both_modes(&[("/seed-a", "seed_a", ""), ("/seed-a2", "seed_a2", "")])
        .route("/hello", "hello", "")
        .route("/echo", "echo", "max_body_size = \"4MiB\"")
        .route("/headers", "headers", "")
        .route("/trap", "trap", "")
        .route("/finish", "finish", "")
}

/// nginx server blocks, by index.
const TCP: usize = 0;
const UNIX: usize = 1;
const TCP_UNBUFFERED: usize = 2;
const UNIX_UNBUFFERED: usize = 3;
const TCP_IGNORE: usize = 4;
const TCP_IGNORE_UNBUFFERED: usize = 5;
const TCP_KEEPALIVE: usize = 6;

/// Tether with FastCGI on TCP and Unix, and nginx in front with each configuration.
fn stack() -> (Server, Nginx) {
    let server = Server::start_fastcgi(&manifest());
    let tcp = server.fastcgi_tcp().to_owned();
    let unix = server.fastcgi_unix().to_owned();
    let http = format!("    upstream tether_pool {{\n        server {tcp};\n        keepalive 4;\n    }}\n");
    let keepalive = format!(
        "        location / {{\n{FASTCGI_PARAMS}\n            fastcgi_keep_conn on;\n            fastcgi_buffering off;\n            fastcgi_pass tether_pool;\n        }}"
    );
    let nginx = Nginx::start(
        &http,
        &[
            pass(&tcp, false, true),
            pass(&unix, false, true),
            pass(&tcp, false, false),
            pass(&unix, false, false),
            pass(&tcp, true, true),
            pass(&tcp, true, false),
            keepalive,
        ],
    );
    (server, nginx)
}

#[test]
fn hello_and_a_mebibyte_echo_through_nginx_over_tcp_and_unix() {
    let (server, nginx) = stack();
    let body: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    for block in [TCP, UNIX] {
        let response = get(&nginx.addr(block), "/hello");
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), "hello\n");
        assert_eq!(response.header("content-type"), Some("text/plain"));
        // The guest never flushed, so the host knew the length and said so: nginx passes it on
        // instead of chunking the body.
        assert_eq!(response.header("content-length"), Some("6"));
        assert_eq!(response.header("transfer-encoding"), None);

        let mut client = Client::connect(&nginx.addr(block));
        client.send(format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", body.len()));
        client.send(&body);
        let response = client.read_response();
        assert_eq!(response.status, 200);
        assert!(response.body == body, "the echo through nginx differs (block {block})");
    }
    let protocols = server.wait_for("the four access records", |events| {
        let protocols: Vec<_> = events.iter().filter(|e| e["target"] == "tether::access").map(|e| e["protocol"].clone()).collect();
        (protocols.len() == 4).then_some(protocols)
    });
    assert!(protocols.iter().all(|p| p == "fastcgi"), "{protocols:?}");
}

#[test]
fn request_headers_and_errors_map_like_http() {
    let (_server, nginx) = stack();
    let response = get(&nginx.addr(TCP), "/headers?q=1");
    assert_eq!(response.header("x-tether-guest"), Some("headers"));
    let text = response.text();
    assert!(text.starts_with("GET /headers?q=1 HTTP/1.1\n"), "{text}");
    assert!(text.contains("host: test\n"), "{text}");
    assert!(text.contains("remote Some(\"127.0.0.1:"), "nginx's REMOTE_ADDR and REMOTE_PORT: {text}");
    assert!(text.contains("\nscheme http\n"), "nginx's REQUEST_SCHEME, and no HTTPS without TLS: {text}");
    // Every CGI variable but the headers reaches the guest as nginx sent it, its
    // configuration's own `fastcgi_param` too (PHP's $_SERVER).
    let text = get(&nginx.addr(TCP), "/headers?vars=1&var=APP_ENV").text();
    let port = nginx.addr(TCP).rsplit_once(':').map(|(_, port)| port.to_owned()).expect("a port");
    for var in [
        "var REQUEST_URI=/headers?vars=1&var=APP_ENV\n".to_owned(),
        "var DOCUMENT_URI=/headers\n".to_owned(),
        format!("var SERVER_PORT={port}\n"),
        "var SERVER_ADDR=127.0.0.1\n".to_owned(),
        "var APP_ENV=tested\n".to_owned(),
        "server var \"APP_ENV\" = Some(\"tested\")\n".to_owned(),
    ] {
        assert!(text.contains(&var), "{var:?} in {text}");
    }
    assert!(!text.contains("var HTTP_"), "headers come once, as headers: {text}");
    assert_eq!(get(&nginx.addr(TCP), "/nowhere").status, 404);
    // nginx passes CONTENT_LENGTH and CONTENT_TYPE and the same headers again as HTTP_
    // variables: the guest sees each once, as over HTTP.
    let mut client = Client::connect(&nginx.addr(TCP));
    client.send("POST /headers HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nbody");
    let text = client.read_response().text();
    assert_eq!(text.matches("content-length: 4\n").count(), 1, "{text}");
    assert_eq!(text.matches("content-type: text/plain\n").count(), 1, "{text}");
    // nginx picks its location by the normalised path (/headers); Tether routes the same way,
    // whatever the raw REQUEST_URI says.
    let response = get(&nginx.addr(TCP), "/hello/../headers");
    assert_eq!(response.header("x-tether-guest"), Some("headers"), "{}", response.text());
}

#[test]
fn routing_by_script_name_serves_a_front_controller() {
    // nginx sends every URI under /blog/ to one "script", as PHP sites do with index.php; the
    // guest still sees the URI the client asked for.
    let server = Server::start_fastcgi(&Manifest::new().server("fastcgi_route_by = \"script-name\"").route("/headers", "headers", ""));
    let front_controller = FASTCGI_PARAMS.replace("$fastcgi_script_name", "/headers");
    let nginx = Nginx::start(
        "",
        &[
            format!("        location /blog/ {{\n{front_controller}\n            fastcgi_pass {};\n        }}", server.fastcgi_tcp()),
            pass(server.fastcgi_tcp(), false, true),
        ],
    );
    let response = get(&nginx.addr(0), "/blog/2026/hello?draft=1");
    assert_eq!(response.status, 200);
    let text = response.text();
    assert!(text.starts_with("GET /blog/2026/hello?draft=1 HTTP/1.1\n"), "{text}");
    let access = server.access("/blog/2026/hello?draft=1");
    assert_eq!(access["route"], "/headers", "{access}");
    // Without the rewrite, SCRIPT_NAME is the path itself: no route for it.
    assert_eq!(get(&nginx.addr(1), "/blog/2026/hello").status, 404);
    assert_eq!(get(&nginx.addr(1), "/headers").status, 200);
}

#[test]
fn a_flush_reaches_the_browser_through_unbuffered_nginx_while_the_guest_sleeps() {
    let (server, nginx) = stack();
    for block in [TCP_UNBUFFERED, UNIX_UNBUFFERED] {
        let uri = format!("/p/seed-a2?n=2&ms=5000&block={block}");
        let mut client = Client::connect(&nginx.addr(block));
        client.get(&uri);
        let (status, _) = client.read_head();
        assert_eq!(status, 200);
        assert_eq!(client.read_chunk().as_deref(), Some(&b"22222"[..]));
        // The guest sleeps 5 s after that flush: leaving now stops it there, which a flush
        // held back until the guest's end would not.
        client.close_fin();
        let (access, lines) = server.finished(&uri);
        assert_eq!(access["outcome"], "aborted-trapped", "{lines:?}");
        assert!(!has(&lines, "iter 1"), "{lines:?}");
    }
}

#[test]
fn with_ignore_client_abort_and_buffering_nginx_hides_the_abort() {
    let (server, nginx) = stack();
    // nginx keeps the upstream link and only writes to the client when its buffer fills: the
    // guest never learns, in either mode (as php-fpm's seed A2 under ign=on buf=on).
    for mode in ["p", "w"] {
        let uri = format!("/{mode}/seed-a2?first_ms=1500&ms=50&n=4&iua=1");
        leave_after_line(&server, &nginx.addr(TCP_IGNORE), &uri, &format!("/{mode}/seed-a2"), "w 1", Close::Fin);
        let (access, lines) = server.finished(&uri);
        assert_eq!(access["outcome"], "completed", "{uri}: {lines:?}");
        assert_eq!(cs(line(&lines, "end")), Some(0), "{lines:?}");
    }
}

#[test]
fn with_ignore_client_abort_unbuffered_the_abort_shows_one_write_later() {
    let (server, nginx) = stack();
    // nginx closes upstream only when its own write to the client fails; Tether then sees the
    // close, as php-fpm does, one or two writes later than with the default settings.
    let uri = "/w/seed-a2?first_ms=1500&ms=150&n=8&iua=1";
    leave_after_line(&server, &nginx.addr(TCP_IGNORE_UNBUFFERED), uri, "/w/seed-a2", "w 1", Close::Fin);
    let (access, lines) = server.finished(uri);
    assert_eq!(access["outcome"], "aborted-ignored", "{lines:?}");
    let first_aborted = (1..=8).find(|i| cs(line(&lines, &format!("w {i} "))) == Some(1)).expect("the abort was seen");
    assert!(first_aborted >= 4, "seen at write {first_aborted}, later than the default's write 3: {lines:?}");
    // In prompt mode the close of the upstream link is seen without a write.
    let uri = "/p/seed-a2?first_ms=1500&ms=150&n=8&iua=1";
    leave_after_line(&server, &nginx.addr(TCP_IGNORE_UNBUFFERED), uri, "/p/seed-a2", "w 1", Close::Fin);
    let (access, lines) = server.finished(uri);
    assert_eq!(access["outcome"], "aborted-ignored");
    // nginx closes the link when its own write fails, after one of the guest's flushes; in
    // prompt mode ABORTED then shows at once, not through a failed flush as in write mode.
    let first_aborted = lines.iter().find(|l| cs(l) == Some(1)).expect("the abort was seen");
    assert!(!first_aborted.contains("flush=Err"), "seen through a failing write: {lines:?}");
}

#[test]
fn nginx_upstream_keepalive_serves_requests_and_drops_a_connection_whose_client_left() {
    // Whether nginx reuses an upstream connection depends on whether END_REQUEST arrives in the
    // same read as the end of the body (nginx's timing, not Tether's); that one connection
    // serves several requests is shown by the direct client below.
    let (server, nginx) = stack();
    let mut client = Client::connect(&nginx.addr(TCP_KEEPALIVE));
    for i in 0..3 {
        client.get(&format!("/hello?i={i}"));
        assert_eq!(client.read_response().text(), "hello\n");
    }
    // A client abort on a pooled connection: nginx closes it, the guest is trapped, and the
    // pool goes on without that connection.
    let uri = "/p/seed-a?ms=20000";
    leave_after_line(&server, &nginx.addr(TCP_KEEPALIVE), uri, "/p/seed-a", "start", Close::Fin);
    let aborted = server.access(uri);
    assert_eq!(aborted["outcome"], "aborted-trapped");
    assert_eq!(get(&nginx.addr(TCP_KEEPALIVE), "/hello?after=1").text(), "hello\n");
    assert_ne!(server.access("/hello?after=1")["conn"], aborted["conn"], "the closed connection is not reused");
}

// --- A direct FastCGI client: what nginx never sends ----------------------------------------

#[test]
fn multiplexed_requests_on_one_connection() {
    let server = Server::start_fastcgi(&manifest());
    for addr in [server.fastcgi_tcp(), server.fastcgi_unix()] {
        let mut client = FcgiClient::connect(addr);
        // Request 1 sleeps while request 2 is answered on the same connection.
        client.request(1, "GET", "/p/seed-a?ms=20000&mpx=1", b"");
        client.request(2, "POST", "/echo", b"second");
        let second = client.reply(2);
        assert_eq!(second.body(), "second");
        assert!(client.replies.get(&1).is_none_or(|r| r.end.is_none()), "request 1 still runs");
        client.record(kind::ABORT_REQUEST, 1, &[]);
        assert_eq!(client.reply(1).end, Some((0, 0)));
    }
}

#[test]
fn finish_request_ends_the_fastcgi_request_while_the_guest_runs_on() {
    let server = Server::start_fastcgi(&manifest());
    let mut client = FcgiClient::connect(server.fastcgi_unix());
    // Without FCGI_KEEP_CONN: END_REQUEST comes at finish-request, then the connection closes.
    client.begin(1, false);
    client.params(1, "GET", "/finish?ms=3000", 0);
    client.stdin(1, b"");
    let reply = client.reply(1);
    assert_eq!(reply.body(), "response-body\n");
    assert_eq!(reply.end, Some((0, 0)));
    client.wait_closed();
    // Answered after that close, while the finished guest sleeps on.
    let mut other = FcgiClient::connect(server.fastcgi_unix());
    other.request(1, "GET", "/hello", b"");
    assert_eq!(other.reply(1).body(), "hello\n");
    let (access, _) = server.finished("/finish?ms=3000");
    assert_eq!(access["outcome"], "finished-early");
    let req = access["req"].as_u64().expect("req");
    assert!(server.access_logged_before("/hello", req, "after_sleep"), "END_REQUEST and the close came before the guest's end");
}

#[test]
fn guest_stderr_becomes_stderr_records() {
    let server = Server::start_fastcgi(&manifest());
    let mut client = FcgiClient::connect(server.fastcgi_tcp());
    client.request(1, "GET", "/trap", b"");
    let reply = client.reply(1);
    assert_eq!(reply.status(), 500);
    let stderr = String::from_utf8_lossy(&reply.stderr).into_owned();
    assert!(stderr.contains("the trap fixture traps"), "the panic message as STDERR: {stderr:?}");
    // The SDK's log lines go to the host log only.
    assert!(!stderr.contains("about to trap"), "{stderr:?}");
    let req = server.access("/trap")["req"].as_u64().expect("req");
    assert!(server.guest_lines(req).iter().any(|l| l == "about to trap"));
}

#[test]
fn abort_request_stops_the_guest_and_is_answered() {
    let server = Server::start_fastcgi(&manifest());
    let mut client = FcgiClient::connect(server.fastcgi_tcp());
    client.request(1, "GET", "/p/seed-a?ms=20000", b"");
    server.started("/p/seed-a");
    client.record(kind::ABORT_REQUEST, 1, &[]);
    let reply = client.reply(1);
    assert_eq!(reply.end.map(|e| e.1), Some(0), "END_REQUEST answers the abort");
    assert_eq!(server.access("/p/seed-a?ms=20000")["outcome"], "aborted-trapped");

    // Write mode: the next write fails, as if the link had closed.
    client.request(3, "GET", "/w/seed-a2?first_ms=1500&ms=100", b"");
    let req = server.started("/w/seed-a2");
    server.guest_line(req, "w 1");
    client.record(kind::ABORT_REQUEST, 3, &[]);
    client.reply(3);
    let (access, lines) = server.finished("/w/seed-a2?first_ms=1500&ms=100");
    assert_eq!(access["outcome"], "aborted-trapped");
    assert!(!has(&lines, "w 2"), "died at its next write: {lines:?}");
    // The connection is still good.
    client.request(5, "GET", "/hello", b"");
    assert_eq!(client.reply(5).body(), "hello\n");

    // Write mode, a guest that never writes: it runs to its end, and its END_REQUEST still
    // answers the abort.
    client.request(7, "GET", "/w/seed-a?ms=1500", b"");
    server.started("/w/seed-a");
    client.record(kind::ABORT_REQUEST, 7, &[]);
    assert_eq!(client.reply(7).end, Some((0, 0)), "END_REQUEST answers the abort");
}

#[test]
fn late_stderr_never_lands_in_the_next_request_with_the_same_id() {
    let server = Server::start_fastcgi(&manifest());
    let mut client = FcgiClient::connect(server.fastcgi_tcp());
    // nginx with fastcgi_keep_conn uses id 1 for every request on a connection.
    client.request(1, "GET", "/finish?ms=100&stderr=1", b"");
    assert_eq!(client.reply(1).body(), "response-body\n");
    client.replies.clear();
    client.request(1, "GET", "/p/seed-a?ms=20000", b"");
    let first = server.started("/finish");
    // The finished guest's stderr line (after its END_REQUEST) has been handed over by now.
    server.guest_line(first, "after_sleep");
    server.started("/p/seed-a");
    client.record(kind::ABORT_REQUEST, 1, &[]);
    let second = client.reply(1);
    assert!(second.stderr.is_empty(), "{:?}", String::from_utf8_lossy(&second.stderr));
    assert!(server.guest_lines(first).iter().any(|l| l == "late stderr"), "the line is in the host log");
}

#[test]
fn stdin_is_held_to_content_length() {
    let server = Server::start_fastcgi(&manifest());
    let mut client = FcgiClient::connect(server.fastcgi_unix());
    // Longer than CONTENT_LENGTH: the guest reads CONTENT_LENGTH bytes (spec §6.2).
    client.begin(1, true);
    client.params(1, "POST", "/echo", 3);
    client.stdin(1, b"abcdef");
    assert_eq!(client.reply(1).body(), "abc");
    // Shorter: the body is broken, and the guest is told so.
    client.begin(2, true);
    client.params(2, "POST", "/echo", 10);
    client.stdin(2, b"abc");
    assert_eq!(client.reply(2).status(), 400);
    let short = server.wait_for("both echoes", |events| {
        let reqs: Vec<u64> =
            events.iter().filter(|e| e["target"] == "tether::access" && e["uri"] == "/echo").filter_map(|e| e["req"].as_u64()).collect();
        (reqs.len() == 2).then(|| reqs.into_iter().max()).flatten()
    });
    assert!(server.guest_lines(short).iter().any(|l| l == "body error: malformed"), "{:?}", server.guest_lines(short));
}

#[test]
fn a_peer_opening_too_many_requests_is_refused_with_overloaded() {
    let server = Server::start_fastcgi(&manifest());
    let mut client = FcgiClient::connect(server.fastcgi_tcp());
    // MAX_REQUESTS_PER_CONNECTION (256) requests begun and never given their parameters.
    for id in 1..=256 {
        client.begin(id, true);
    }
    client.begin(257, true);
    assert_eq!(client.reply(257).end, Some((0, 2)), "FCGI_OVERLOADED");
    // Another connection is served as usual.
    let mut other = FcgiClient::connect(server.fastcgi_tcp());
    other.request(1, "GET", "/hello", b"");
    assert_eq!(other.reply(1).body(), "hello\n");
}

#[test]
fn management_records_are_answered() {
    let server = Server::start_fastcgi(&manifest());
    let mut client = FcgiClient::connect(server.fastcgi_unix());
    let query = FcgiClient::pairs(&[("FCGI_MPXS_CONNS", ""), ("FCGI_MAX_REQS", ""), ("FCGI_MAX_CONNS", ""), ("OTHER", "")]);
    client.record(kind::GET_VALUES, 0, &query);
    let (kind_, content) = client.management_reply();
    assert_eq!(kind_, kind::GET_VALUES_RESULT);
    let text = String::from_utf8_lossy(&content).into_owned();
    assert!(text.contains("FCGI_MPXS_CONNS1"), "{text:?}");
    assert!(text.contains("FCGI_MAX_REQS1000"), "{text:?}");
    assert!(text.contains("FCGI_MAX_CONNS10000"), "{text:?}");
    assert!(!text.contains("OTHER"), "{text:?}");
    client.record(42, 0, &[]);
    let (kind_, content) = client.management_reply();
    assert_eq!((kind_, content[0]), (kind::UNKNOWN_TYPE, 42));
    // A role other than Responder.
    client.record(kind::BEGIN_REQUEST, 9, &[0, 2, 1, 0, 0, 0, 0, 0]);
    assert_eq!(client.reply(9).end, Some((0, 3)), "FCGI_UNKNOWN_ROLE");
}

#[test]
fn malformed_records_close_the_connection_and_the_server_keeps_serving() {
    let server = Server::start_fastcgi(&manifest());
    let addr = server.fastcgi_tcp();
    // A bad version.
    let mut client = FcgiClient::connect(addr);
    client.raw(&[2, kind::BEGIN_REQUEST, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
    client.wait_closed();
    // A truncated record, then the client goes away.
    let mut client = FcgiClient::connect(addr);
    client.raw(&[1, kind::PARAMS, 0, 1, 0, 100, 0, 0, 1, 2, 3]);
    drop(client);
    // Oversized parameters: an error response, not a crash.
    let mut client = FcgiClient::connect(addr);
    client.begin(1, true);
    let big = "x".repeat(60_000);
    let pairs = FcgiClient::pairs(&[("HTTP_A", &big), ("HTTP_B", &big)]);
    for chunk in pairs.chunks(60_000) {
        client.record(kind::PARAMS, 1, chunk);
    }
    let reply = client.reply(1);
    assert_eq!(reply.status(), 431);
    // A malformed name-value pair.
    client.begin(2, true);
    client.record(kind::PARAMS, 2, &[0x80, 0, 0]);
    client.record(kind::PARAMS, 2, &[]);
    assert_eq!(client.reply(2).status(), 400);
    // BEGIN_REQUEST for an id in use is a protocol error.
    client.begin(3, true);
    client.begin(3, true);
    client.wait_closed();
    // Still serving.
    let mut client = FcgiClient::connect(addr);
    client.request(1, "GET", "/hello", b"");
    assert_eq!(client.reply(1).body(), "hello\n");
}

/// Runs `cgi-fcgi` against `server` with `params` as its environment (which it sends as CGI
/// parameters) and returns what it printed.
fn cgi_fcgi(server: &Server, params: &[(&str, &str)]) -> String {
    let output = Command::new("cgi-fcgi")
        .args(["-bind", "-connect", server.fastcgi_tcp()])
        .env_clear()
        .envs(params.iter().copied())
        .output()
        .expect("cgi-fcgi is installed by scripts/setup --test (Debian's libfcgi-bin)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn cgi_fcgi_from_libfcgi_is_a_second_real_client() {
    let server = Server::start_fastcgi(&manifest());
    let text = cgi_fcgi(&server, &[("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/hello"), ("SERVER_PROTOCOL", "HTTP/1.1")]);
    // A 200 goes without a Status line, as from php-fpm.
    assert!(text.starts_with("content-type: text/plain\r\nContent-Length: 6\r\n"), "{text:?}");
    assert!(text.ends_with("\r\n\r\nhello\n"), "{text:?}");
    // A web server that terminated TLS says so; the guest sees the scheme its client used.
    let text = cgi_fcgi(&server, &[("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/headers"), ("HTTPS", "on")]);
    assert!(text.contains("\nscheme https\n"), "{text:?}");
}

#[test]
fn several_hosts_behind_one_upstream_survive_losing_one() {
    let manifest = Manifest::new().route("/hello", "hello", "");
    let mut first = Server::start_fastcgi(&manifest);
    let second = Server::start_fastcgi(&manifest);
    let http =
        format!("    upstream tethers {{\n        server {};\n        server {};\n    }}\n", first.fastcgi_tcp(), second.fastcgi_tcp());
    let nginx = Nginx::start(
        &http,
        &[format!(
            "        location / {{\n{FASTCGI_PARAMS}\n            fastcgi_next_upstream error timeout;\n            fastcgi_pass tethers;\n        }}"
        )],
    );
    let mut answered = 0;
    for i in 0..40 {
        if i == 10 {
            first.kill();
        }
        let response = get(&nginx.addr(0), &format!("/hello?i={i}"));
        assert_eq!(response.status, 200, "request {i}");
        assert_eq!(response.text(), "hello\n");
        answered += 1;
    }
    assert_eq!(answered, 40);
    assert_eq!(second.access("/hello?i=39")["status"], 200, "the surviving host answered after the other died");
}
