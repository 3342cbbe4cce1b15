//! wasi:http proxy components: served over HTTP and behind nginx, their responses framed as
//! they declared them, their flushes on the wire while they sleep, stopped wherever they are
//! when the client leaves (with their outbound requests), held to the route's limits, and their
//! outbound requests denied unless the route allows the host. The toolchain is a column
//! ([`Toolchain`]: Rust's `wasip2` crate, componentize-py): hello, echo, streaming and the
//! traps on a client leaving run over each; the rest over the Rust fixture
//! (`guest/fixtures/proxy.rs`), which has every behaviour. The abort table's `wasi-http-*`
//! columns cover the seeds.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use tests::nginx::{self, Nginx};
use tests::proxy::Toolchain;
use tests::{Client, Close, Manifest, Server, get, has, leave_after_line};

/// Every toolchain's proxy on its [`route`], compiled into the tests' compile cache once per
/// process before the first server starts.
fn toolchains() -> Manifest {
    static COMPILED: OnceLock<()> = OnceLock::new();
    let manifest = Toolchain::ALL
        .iter()
        .fold(Manifest::new(), |manifest, &toolchain| manifest.route_to(&route(toolchain), &toolchain.component(), ""));
    COMPILED.get_or_init(|| tests::compile_ahead(&manifest));
    manifest
}

/// The route of `toolchain`'s proxy in [`toolchains`]: `/<toolchain>`.
fn route(toolchain: Toolchain) -> String {
    format!("/{}", toolchain.name())
}

/// The target of `behaviour` (with its query) on `toolchain`'s route.
fn on(toolchain: Toolchain, behaviour: &str) -> String {
    format!("{}/{behaviour}", route(toolchain))
}

/// The Rust proxy fixture on `/` and on routes with settings of their own.
fn manifest(upstream: &str) -> Manifest {
    Manifest::new()
        .route("/", "proxy", "")
        .route("/allowed", "proxy", &format!("allowed_outbound_hosts = [\"{upstream}\"]"))
        .route("/cpu", "proxy", "max_execution_time = \"300ms\"")
        .route("/wall", "proxy", "request_timeout = \"300ms\"")
        .route("/small", "proxy", "max_memory = \"16MiB\"")
}

/// An upstream on 127.0.0.1 that accepts one connection, reads a request head, says so on the
/// returned channel, and answers `answer` (or nothing, if `None`), then waits for the peer to
/// close; the thread returns what it read after the head (nothing, for a client that only
/// closes). Join it only once the guest's request arrived (the channel, or the guest's answer):
/// a guest that never connects leaves it waiting in `accept`.
fn upstream(answer: Option<&'static str>) -> (String, Receiver<()>, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the upstream");
    let addr = listener.local_addr().expect("its address").to_string();
    let (requested, request) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("the guest's connection");
        stream.set_read_timeout(Some(tests::TIMEOUT)).expect("read timeout");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).expect("reading the request"), 1, "the request ended early");
            head.push(byte[0]);
        }
        let _ = requested.send(());
        if let Some(answer) = answer {
            stream.write_all(answer.as_bytes()).expect("answering");
        }
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        rest
    });
    (addr, request, thread)
}

#[test]
fn hello_and_echo_over_http_and_behind_nginx() {
    let server = Server::start_fastcgi(&toolchains());
    let nginx = Nginx::start("", &[nginx::pass(server.fastcgi_unix(), false, true)]);
    for toolchain in Toolchain::ALL {
        for addr in [server.addr().to_owned(), nginx.addr(0)] {
            let hello = get(&addr, &on(toolchain, "hello"));
            let head = (hello.status, hello.text(), hello.header("content-length"), hello.header("content-type"));
            assert_eq!(head, (200, "hello\n".to_owned(), Some("6"), Some("text/plain")), "{toolchain:?} {addr}");

            let mut client = Client::connect(&addr);
            let body = "x".repeat(100_000);
            client.send(format!("POST {} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}", on(toolchain, "echo"), body.len()));
            let echo = client.read_response();
            assert_eq!((echo.status, echo.body.len()), (200, body.len()), "{toolchain:?} {addr}");
            assert!(echo.text() == body, "{toolchain:?} {addr}");
        }
    }
}

#[test]
fn a_declared_length_frames_a_flushed_body() {
    let server = Server::start(&manifest("127.0.0.1:9"));
    let length = get(server.addr(), "/length?n=10");
    assert_eq!((length.header("content-length"), length.header("transfer-encoding")), (Some("10"), None));
    assert_eq!(server.access("/length?n=10")["outcome"], "completed");
}

#[test]
fn a_body_short_of_its_declared_length_fails_the_request() {
    let server = Server::start(&manifest("127.0.0.1:9"));
    let mut client = Client::connect(server.addr());
    client.get("/length?n=4");
    let (status, headers) = client.read_head();
    assert_eq!(status, 200);
    assert!(headers.contains(&("content-length".to_owned(), "10".to_owned())), "{headers:?}");
    // Four bytes, then the connection ends: the client can tell the body is incomplete.
    assert_eq!(client.read_to_end(), b"xxxx");
    let (access, lines) = server.finished("/length?n=4");
    assert_eq!(access["outcome"], "trapped");
    assert!(access["detail"].as_str().is_some_and(|d| d.contains("not the 10 of its content-length")), "{access}");
    assert!(has(&lines, "finish failed"), "{lines:?}");
}

#[test]
fn a_guest_that_leaves_its_response_unset_or_unfinished_fails_the_request() {
    let server = Server::start(&manifest("127.0.0.1:9"));
    for (uri, detail) in
        [("/unanswered", "never called response-outparam.set"), ("/dropped", "dropped the response body without finishing it")]
    {
        assert_eq!(get(server.addr(), uri).status, 500, "{uri}");
        let access = server.access(uri);
        assert_eq!(access["outcome"], "trapped", "{uri}: {access}");
        assert!(access["detail"].as_str().is_some_and(|d| d.contains(detail)), "{uri}: {access}");
    }
}

#[test]
fn a_flush_reaches_the_client_while_the_guest_sleeps() {
    let server = Server::start(&toolchains());
    for toolchain in Toolchain::ALL {
        let uri = on(toolchain, "stream?n=2&ms=1500");
        let mut client = Client::connect(server.addr());
        client.get(&uri);
        let (status, headers) = client.read_head();
        assert_eq!(status, 200, "{toolchain:?}");
        assert!(headers.contains(&("transfer-encoding".to_owned(), "chunked".to_owned())), "{toolchain:?}: {headers:?}");
        assert_eq!(client.read_chunk().as_deref(), Some(&b"chunk 1\n"[..]), "{toolchain:?}");
        // The guest is in its 1.5 s sleep after that flush.
        assert!(!server.has_access(&uri), "{toolchain:?}: the first chunk arrived only when the guest ended");
        assert_eq!(client.read_chunk().as_deref(), Some(&b"chunk 2\n"[..]), "{toolchain:?}");
        assert_eq!(client.read_chunk(), None, "{toolchain:?}");
        assert_eq!(server.access(&uri)["outcome"], "completed", "{toolchain:?}");
    }
}

#[test]
fn a_finished_body_completes_the_response_while_the_guest_runs_on() {
    let server = Server::start(&manifest("127.0.0.1:9"));
    let uri = "/background?ms=1500";
    let response = get(server.addr(), uri);
    assert_eq!((response.status, response.text().as_str(), response.header("content-length")), (200, "done\n", Some("5")));
    assert!(!server.has_access(uri), "the response came only when the guest ended");
    let (access, lines) = server.finished(uri);
    assert_eq!((access["outcome"].as_str(), lines.as_slice()), (Some("completed"), &["end".to_owned()][..]));
}

/// Checks that the request for `uri` ended with its guest trapped for its client leaving while
/// it waited after logging `line` (which, when the test waited for something else, it may not
/// have reached).
fn trapped_waiting_after(server: &Server, uri: &str, line: &str) {
    let (access, lines) = server.finished(uri);
    assert_eq!(access["outcome"], "aborted-trapped", "{uri}: {access}");
    assert!(access["abort_latency_us"].is_u64(), "{uri}: {access}");
    assert!(lines.iter().all(|logged| logged == line), "{uri}: trapped after `{line}` at the latest: {lines:?}");
}

#[test]
fn a_write_the_guest_stopped_waiting_for_still_goes_out_whole() {
    let server = Server::start(&manifest("127.0.0.1:9"));
    let uri = "/poll-flood?mb=32";
    let mut client = Client::connect(server.addr());
    client.get(uri);
    // Nobody reads: a socket write blocks, and the guest's `poll` returns on its timer instead.
    let req = server.started("/");
    server.guest_line(req, "timer won");
    let response = client.read_response();
    assert!(response.complete && response.body.len() == 32 << 20, "{} bytes, complete: {}", response.body.len(), response.complete);
    for (i, chunk) in response.body.chunks(4096).enumerate() {
        assert!(chunk.iter().all(|&byte| usize::from(byte) == i % 251), "chunk {i} is not what the guest wrote");
    }
    let (access, lines) = server.finished(uri);
    assert_eq!((access["outcome"].as_str(), lines.as_slice()), (Some("completed"), &["timer won".to_owned(), "wrote".to_owned()][..]));
}

#[test]
fn a_guest_sleeping_in_a_pollable_or_spinning_is_trapped_when_its_client_leaves() {
    let server = Server::start(&toolchains());
    for toolchain in Toolchain::ALL {
        for (behaviour, line, how) in [("sleep?ms=20000", "sleeping", Close::Fin), ("spin", "spinning", Close::Rst)] {
            let uri = on(toolchain, behaviour);
            leave_after_line(&server, server.addr(), &uri, &route(toolchain), line, how);
            trapped_waiting_after(&server, &uri, line);
        }
    }
}

#[test]
fn a_guest_blocked_reading_its_body_or_writing_its_response_is_trapped_when_its_client_leaves() {
    let server = Server::start(&toolchains());
    for toolchain in Toolchain::ALL {
        let (echo, flood) = (on(toolchain, "echo"), on(toolchain, "flood"));
        let abandoned_body = format!("POST {echo} HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\nonly the start");
        for (uri, request, line) in
            [(&echo, abandoned_body, "reading"), (&flood, format!("GET {flood} HTTP/1.1\r\nHost: t\r\n\r\n"), "writing")]
        {
            let mark = server.log_len();
            let mut client = Client::connect(server.addr());
            client.send(request);
            let req = server.started_since(mark, &route(toolchain));
            server.guest_line(req, line);
            if uri == &flood {
                // The head leaves with the first bytes of 32 MiB that nobody reads: the guest is
                // inside a blocking write from here on.
                client.read_head();
            }
            client.close_rst();
            trapped_waiting_after(&server, uri, line);
        }
    }
}

#[test]
fn a_guest_awaiting_an_outbound_response_is_trapped_and_its_request_cancelled_when_its_client_leaves() {
    let (silent, request, upstream) = upstream(None);
    let server = Server::start(&manifest(&silent));
    let uri = format!("/allowed/outbound?to={silent}");
    let mut client = Client::connect(server.addr());
    client.get(&uri);
    // The guest waits on the response's pollable once the upstream has its request.
    request.recv_timeout(tests::TIMEOUT).expect("the outbound request at the upstream");
    client.close_fin();
    trapped_waiting_after(&server, &uri, "outbound sent");
    // The outbound request went with its guest: the upstream's connection closed.
    assert_eq!(upstream.join().expect("the upstream"), b"");
}

#[test]
fn outbound_requests_are_denied_unless_the_route_allows_the_host() {
    let (allowed, _, upstream) = upstream(Some("HTTP/1.1 201 Created\r\ncontent-length: 8\r\nconnection: close\r\n\r\nupstream"));
    let server = Server::start(&manifest(&allowed));
    let denied = get(server.addr(), &format!("/outbound?to={allowed}"));
    assert_eq!((denied.status, denied.text().as_str()), (502, "ErrorCode::HttpRequestDenied\n"));
    let lines = server.finished(&format!("/outbound?to={allowed}")).1;
    assert_eq!(lines, ["outbound sent", "outbound error ErrorCode::HttpRequestDenied"]);
    let log = server.events();
    assert!(
        log.iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.starts_with("outbound request denied")) && e["host"] == allowed.as_str())
    );

    let answered = get(server.addr(), &format!("/allowed/outbound?to={allowed}"));
    assert_eq!((answered.status, answered.text().as_str()), (201, "upstream"));
    upstream.join().expect("the upstream");
}

#[test]
fn time_and_memory_limits_stop_a_proxy_guest() {
    let server = Server::start(&manifest("127.0.0.1:9"));
    for (uri, status, outcome, detail) in [
        ("/cpu/spin", 500, "timeout", "max_execution_time exceeded"),
        ("/wall/sleep?ms=20000", 504, "timeout", "request_timeout (300ms) exceeded"),
        ("/small/grow?mb=64", 500, "trapped", "guest exceeded its memory limit"),
    ] {
        let response = get(server.addr(), uri);
        assert_eq!(response.status, status, "{uri}");
        let access = server.access(uri);
        assert_eq!((access["outcome"].as_str(), access["detail"].as_str()), (Some(outcome), Some(detail)), "{uri}");
    }
    assert_eq!(get(server.addr(), "/grow?mb=4").text(), "4194304\n", "within the default max_memory");
}
