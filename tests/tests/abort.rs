//! Client aborts beyond the seeds' table (`tests/tests/abort_matrix.rs`): where the guest is
//! when its client leaves (computing, blocked in a write, reading a body), pipelining, a
//! half-close a route lets continue, ignore-user-abort turned off after an abort, and
//! finish-request.

use tests::{Client, Close, Manifest, Server, cs, get, has, leave_after_line, line};

/// The fixtures in prompt mode (`/p/...`), and those also in write mode (`/w/...`).
fn server() -> Server {
    Server::start(
        &Manifest::new()
            .in_both_modes(&[("/finish", "finish", ""), ("/iua-toggle", "iua_toggle", "")])
            .route("/p/seed-a", "seed_a", "abort_detection = \"prompt\"")
            .route("/p/spin", "spin", "max_execution_time = 0")
            .route("/p/flood", "flood", "")
            .route("/p/body", "body_reader", "")
            .route("/p/half-continue", "seed_a", "half_close = \"continue\"")
            .route("/hello", "hello", ""),
    )
}

#[test]
fn half_close_is_not_an_abort_where_the_route_says_continue() {
    let server = server();
    let mut client = Client::connect(server.addr());
    client.get("/p/half-continue?ms=1500");
    server.started("/p/half-continue");
    client.half_close();
    let response = client.read_response();
    assert_eq!(response.status, 200);
    let (access, lines) = server.finished("/p/half-continue?ms=1500");
    assert_eq!(access["outcome"], "completed");
    assert_eq!(cs(line(&lines, "end")), Some(0));

    // Requests pipelined before the half-close are all answered, then the connection closes.
    let mut client = Client::connect(server.addr());
    client.send("GET /p/half-continue?ms=100&n=1 HTTP/1.1\r\nHost: t\r\n\r\nGET /p/half-continue?ms=1&n=2 HTTP/1.1\r\nHost: t\r\n\r\n");
    client.half_close();
    assert_eq!(client.read_response().status, 200);
    assert_eq!(client.read_response().status, 200);
    assert!(client.closed_by_server());
    assert_eq!(server.access("/p/half-continue?ms=1&n=2")["outcome"], "completed");
}

// --- Where the guest is when the client leaves ----------------------------------------------

#[test]
fn a_spinning_guest_is_trapped() {
    let server = server();
    let uri = "/p/spin?ms=20000";
    leave_after_line(&server, server.addr(), uri, "/p/spin", "start", Close::Rst);
    let (access, lines) = server.finished(uri);
    assert_eq!(access["outcome"], "aborted-trapped");
    assert!(!has(&lines, "end"), "{lines:?}");
}

#[test]
fn a_guest_blocked_in_a_write_is_trapped() {
    let server = server();
    let uri = "/p/flood?mb=32";
    let mut client = Client::connect(server.addr());
    client.get(uri);
    let req = server.started("/p/flood");
    server.guest_line(req, "writing");
    // The head leaves with the first bytes of the 32 MiB write, which cannot finish while
    // nobody reads: the guest is inside it now.
    client.read_head();
    client.close_rst();
    let (access, lines) = server.finished(uri);
    assert_eq!(access["outcome"], "aborted-trapped", "{lines:?}");
    assert!(!has(&lines, "wrote"), "trapped inside the write: {lines:?}");
}

#[test]
fn a_guest_blocked_reading_a_body_the_client_abandons_is_trapped() {
    let server = server();
    let mut client = Client::connect(server.addr());
    client.send("POST /p/body?chunk=1000 HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n");
    client.send([b'b'; 1000]);
    let req = server.started("/p/body");
    server.guest_line(req, "read 1000");
    client.close_fin();
    let (access, lines) = server.finished("/p/body?chunk=1000");
    assert_eq!(access["outcome"], "aborted-trapped", "{lines:?}");
    assert!(!has(&lines, "end"), "{lines:?}");
}

#[test]
fn a_guest_that_never_reads_its_body_still_sees_the_close() {
    let server = server();
    // A small body (fits the buffers) and a large one (the client is blocked by flow control
    // while the host is not reading): the close is seen either way.
    for (i, size) in [100usize, 4 << 20].into_iter().enumerate() {
        let uri = format!("/p/seed-a?ms=20000&body={i}");
        let mark = server.log_len();
        let mut client = Client::connect(server.addr());
        client.send(format!("POST {uri} HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n"));
        server.started_since(mark, "/p/seed-a");
        // Send what the socket takes without blocking, then go away.
        client.stream.set_nonblocking(true).expect("nonblocking");
        let body = vec![b'x'; size];
        let _ = std::io::Write::write(&mut client.stream, &body);
        client.close_rst();
        let (access, lines) = server.finished(&uri);
        assert_eq!(access["outcome"], "aborted-trapped", "body of {size}: {lines:?}");
    }
}

#[test]
fn a_pipelined_request_does_not_hide_the_close() {
    let server = server();
    let uri = "/p/seed-a?ms=20000";
    let mut client = Client::connect(server.addr());
    client.get(uri);
    server.started("/p/seed-a");
    client.get("/hello");
    client.close_fin();
    let (access, _) = server.finished(uri);
    assert_eq!(access["outcome"], "aborted-trapped");
}

#[test]
fn pipelined_requests_are_not_mistaken_for_a_close() {
    let server = server();
    let mut client = Client::connect(server.addr());
    client.send("GET /p/seed-a?ms=200 HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(client.read_response().status, 200);
    assert_eq!(client.read_response().text(), "hello\n");
    let (access, lines) = server.finished("/p/seed-a?ms=200");
    assert_eq!(access["outcome"], "completed");
    assert_eq!(cs(line(&lines, "end")), Some(0));
}

// --- ignore-user-abort turned off after the abort -----------------------------------------

#[test]
fn turning_ignore_user_abort_off_after_an_abort_traps_at_once_in_prompt_mode() {
    let server = server();
    let uri = "/p/iua-toggle?ms=20";
    leave_after_line(&server, server.addr(), uri, "/p/iua-toggle", "start", Close::Fin);
    let (access, lines) = server.finished(uri);
    assert_eq!(access["outcome"], "aborted-trapped", "{lines:?}");
    assert_eq!(cs(line(&lines, "saw abort")), Some(1));
    assert!(!has(&lines, "iua off"), "trapped inside ignore_user_abort(false): {lines:?}");
}

#[test]
fn turning_ignore_user_abort_off_after_an_abort_traps_at_the_next_output_in_write_mode() {
    let server = server();
    let uri = "/w/iua-toggle?ms=20";
    leave_after_line(&server, server.addr(), uri, "/w/iua-toggle", "start", Close::Fin);
    let (access, lines) = server.finished(uri);
    assert_eq!(access["outcome"], "aborted-trapped", "{lines:?}");
    assert!(has(&lines, "iua off (was true)"), "{lines:?}");
    assert!(!has(&lines, "after output"), "trapped at its next output: {lines:?}");
}

// --- finish-request ------------------------------------------------------------------------

#[test]
fn finish_request_answers_then_keeps_working_while_the_connection_serves_the_next_request() {
    let server = server();
    let uri = "/p/finish?ms=2000";
    let mut client = Client::connect(server.addr());
    client.get(uri);
    let response = client.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "response-body\n");
    assert_eq!(response.header("content-length"), Some("14"));
    // The same connection serves another request while the finished guest still runs.
    client.get("/hello");
    assert_eq!(client.read_response().text(), "hello\n");
    let (access, lines) = server.finished(uri);
    assert_eq!(access["outcome"], "finished-early");
    assert_eq!(cs(line(&lines, "after_sleep")), Some(0));
    let req = access["req"].as_u64().expect("req");
    assert!(server.access_logged_before("/hello", req, "after_sleep"), "/hello was answered while the guest slept");
}

#[test]
fn output_after_finish_request_is_discarded_without_an_abort() {
    let server = server();
    for prefix in ["/p", "/w"] {
        let uri = format!("{prefix}/finish?ms=10&post_echo=1");
        let response = get(server.addr(), &uri);
        assert_eq!(response.text(), "response-body\n");
        let (access, lines) = server.finished(&uri);
        assert_eq!(access["outcome"], "finished-early", "{lines:?}");
        let post = line(&lines, "post_echo");
        assert!(post.contains("write=Err(\"finished\")"), "{post}");
        assert_eq!(cs(post), Some(0), "{post}");
    }
}
