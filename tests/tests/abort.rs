//! Client aborts, as the seeds' experiments: real client sockets that close with FIN, RST or a
//! half-close while the guest runs, in both detection modes, with ignore-user-abort on and off.
//! Write mode must reproduce PHP-FPM's TCP rows (../shared/reference/php-fpm/RESULTS.md);
//! prompt mode must trap the guest without any write.

use tests::{Client, Server, cs, get, has, in_both_modes, line, route};

/// The abort fixtures in both modes (`/p/...` prompt, `/w/...` write), and those only prompt mode has.
fn server() -> Server {
    let mut manifest = in_both_modes(&[
        ("/seed-a", "seed_a", ""),
        ("/seed-a2", "seed_a2", ""),
        ("/seed-b", "seed_b", "output_buffer = \"64KiB\""),
        ("/finish", "finish", ""),
        ("/iua-toggle", "iua_toggle", ""),
    ]);
    manifest += &route("/p/spin", "spin", "max_execution_time = 0");
    manifest += &route("/p/flood", "flood", "");
    manifest += &route("/p/body", "body_reader", "");
    manifest += &route("/p/half-continue", "seed_a", "half_close = \"continue\"");
    manifest += &route("/hello", "hello", "");
    Server::start(&manifest)
}

#[derive(Clone, Copy, Debug)]
enum Close {
    Fin,
    Rst,
    Half,
}

fn close(client: Client, how: Close) {
    match how {
        Close::Fin => client.close_fin(),
        Close::Rst => client.close_rst(),
        Close::Half => client.half_close(),
    }
}

// --- Seed A: no output --------------------------------------------------------------------

#[test]
fn seed_a_in_write_mode_runs_to_completion_as_under_php() {
    let server = server();
    let uri = "/w/seed-a?ms=1500";
    let mut client = Client::connect(server.addr());
    client.get(uri);
    server.started("/w/seed-a");
    client.close_fin();
    let (access, lines) = server.finished(uri);
    assert_eq!(access["outcome"], "completed", "{access}");
    assert_eq!(cs(line(&lines, "end")), Some(0), "nothing was written, so nothing was noticed");
}

#[test]
fn seed_a_in_prompt_mode_is_trapped_on_fin_rst_and_half_close() {
    let server = server();
    for (i, how) in [Close::Fin, Close::Rst, Close::Half].into_iter().enumerate() {
        let uri = format!("/p/seed-a?ms=20000&case={i}");
        let mut client = Client::connect(server.addr());
        client.get(&uri);
        let before = if i == 0 { 0 } else { server.access(&format!("/p/seed-a?ms=20000&case={}", i - 1))["req"].as_u64().unwrap_or(0) };
        server.started_after("/p/seed-a", before);
        close(client, how);
        let (access, lines) = server.finished(&uri);
        assert_eq!(access["outcome"], "aborted-trapped", "{how:?}: {access}");
        assert_eq!(access["status"], 499, "{how:?}");
        assert!(access["abort_latency_us"].is_u64(), "{how:?}: {access}");
        assert!(!has(&lines, "end"), "{how:?}: the guest must not finish its sleep: {lines:?}");
    }
}

#[test]
fn seed_a_with_ignore_user_abort_runs_on_and_sees_aborted() {
    let server = server();
    let uri = "/p/seed-a?ms=1500&iua=1";
    let mut client = Client::connect(server.addr());
    client.get(uri);
    server.started("/p/seed-a");
    client.close_fin();
    let (access, lines) = server.finished(uri);
    assert_eq!(access["outcome"], "aborted-ignored");
    assert_eq!(cs(line(&lines, "end")), Some(1));
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

// --- Seed A2: write, flush, sleep ----------------------------------------------------------

/// Starts seed A2 on `prefix`, reads its first flush, and closes with FIN.
fn seed_a2_closed_after_first_write(server: &Server, uri: &str) {
    let mut client = Client::connect(server.addr());
    client.get(uri);
    client.read_head();
    assert_eq!(client.read_chunk().as_deref(), Some(&b"22222"[..]));
    client.close_fin();
}

#[test]
fn seed_a2_in_write_mode_dies_at_the_second_write_after_the_close() {
    let server = server();
    let uri = "/w/seed-a2?first_ms=1500&ms=200&n=6";
    seed_a2_closed_after_first_write(&server, uri);
    let (access, lines) = server.finished(uri);
    assert_eq!(access["outcome"], "aborted-trapped", "{lines:?}");
    // Write 2 is the first after the close: it succeeds and draws the RST. Write 3 fails.
    assert_eq!(cs(line(&lines, "w 2")), Some(0), "{lines:?}");
    assert!(has(&lines, "iter 2"), "{lines:?}");
    assert!(!has(&lines, "w 3"), "the guest must die inside its third flush: {lines:?}");
}

#[test]
fn seed_a2_in_write_mode_with_ignore_user_abort_sees_aborted_after_the_second_write() {
    let server = server();
    let uri = "/w/seed-a2?first_ms=1500&ms=100&n=5&iua=1";
    seed_a2_closed_after_first_write(&server, uri);
    let (access, lines) = server.finished(uri);
    assert_eq!(access["outcome"], "aborted-ignored", "{lines:?}");
    assert_eq!(cs(line(&lines, "w 2")), Some(0), "{lines:?}");
    let w3 = line(&lines, "w 3");
    assert_eq!(cs(w3), Some(1), "{lines:?}");
    assert!(w3.contains("flush=Err(\"aborted\")"), "{w3}");
    assert_eq!(cs(line(&lines, "end")), Some(1));
}

#[test]
fn seed_a2_in_prompt_mode_is_trapped_before_its_next_write() {
    let server = server();
    let uri = "/p/seed-a2?ms=20000&n=6";
    seed_a2_closed_after_first_write(&server, uri);
    let (access, lines) = server.finished(uri);
    assert_eq!(access["outcome"], "aborted-trapped");
    assert!(!has(&lines, "iter 1"), "trapped in its first sleep: {lines:?}");

    let uri = "/p/seed-a2?first_ms=1500&ms=200&n=3&iua=1";
    seed_a2_closed_after_first_write(&server, uri);
    let (access, lines) = server.finished(uri);
    assert_eq!(access["outcome"], "aborted-ignored");
    assert_eq!(cs(line(&lines, "iter 1")), Some(1), "aborted is seen without a write: {lines:?}");
    assert!(line(&lines, "w 2").contains("Err(\"aborted\")"), "{lines:?}");
}

// --- Seed B: sleep, write 4 KiB, log, flush ---------------------------------------------

fn seed_b_closed_during_the_first_sleep(server: &Server, uri: &str, route: &str) {
    let mut client = Client::connect(server.addr());
    client.get(uri);
    server.started(route);
    client.close_fin();
}

#[test]
fn seed_b_in_write_mode_matches_php_fpm_over_tcp() {
    let server = server();
    // iua=0, abort during the first sleep: two iterations logged, died at the second flush.
    let uri = "/w/seed-b?first_ms=1500&ms=150";
    seed_b_closed_during_the_first_sleep(&server, uri, "/w/seed-b");
    let (access, lines) = server.finished(uri);
    assert_eq!(access["outcome"], "aborted-trapped", "{lines:?}");
    assert_eq!(cs(line(&lines, "iter 0")), Some(0));
    assert!(has(&lines, "w 0"), "{lines:?}");
    assert_eq!(cs(line(&lines, "iter 1")), Some(0));
    assert!(!has(&lines, "w 1") && !has(&lines, "iter 2"), "{lines:?}");
}

#[test]
fn seed_b_in_write_mode_with_ignore_user_abort_sees_aborted_in_the_third_iteration() {
    let server = server();
    let uri = "/w/seed-b?first_ms=1500&ms=100&iua=1";
    seed_b_closed_during_the_first_sleep(&server, uri, "/w/seed-b");
    let (access, lines) = server.finished(uri);
    assert_eq!(access["outcome"], "aborted-ignored", "{lines:?}");
    assert_eq!(cs(line(&lines, "iter 1")), Some(0));
    assert_eq!(cs(line(&lines, "iter 2")), Some(1), "{lines:?}");
    assert!(has(&lines, "stop 2") && !has(&lines, "stop 1"), "{lines:?}");
    assert_eq!(cs(line(&lines, "done")), Some(1));
}

#[test]
fn seed_b_in_prompt_mode_is_trapped_before_any_write() {
    let server = server();
    let uri = "/p/seed-b?ms=5000";
    seed_b_closed_during_the_first_sleep(&server, uri, "/p/seed-b");
    let (access, lines) = server.finished(uri);
    assert_eq!(access["outcome"], "aborted-trapped");
    assert!(!has(&lines, "iter 0"), "{lines:?}");
    assert_eq!(access["bytes"], 0);

    let uri = "/p/seed-b?first_ms=1500&ms=50&iua=1";
    let mut client = Client::connect(server.addr());
    client.get(uri);
    server.started_after("/p/seed-b", server.access("/p/seed-b?ms=5000")["req"].as_u64().unwrap_or(0));
    client.close_fin();
    let (access, lines) = server.finished(uri);
    assert_eq!(access["outcome"], "aborted-ignored");
    assert_eq!(cs(line(&lines, "iter 0")), Some(1), "{lines:?}");
    assert!(has(&lines, "stop 0"), "{lines:?}");
}

// --- Where the guest is when the client leaves ----------------------------------------------

#[test]
fn a_spinning_guest_is_trapped() {
    let server = server();
    let uri = "/p/spin?ms=20000";
    let mut client = Client::connect(server.addr());
    client.get(uri);
    server.started("/p/spin");
    client.close_rst();
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
        let mut client = Client::connect(server.addr());
        client.send(format!("POST {uri} HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n"));
        let after = if i == 0 { 0 } else { server.access("/p/seed-a?ms=20000&body=0")["req"].as_u64().unwrap_or(0) };
        server.started_after("/p/seed-a", after);
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
    let mut client = Client::connect(server.addr());
    client.get(uri);
    server.started("/p/iua-toggle");
    client.close_fin();
    let (access, lines) = server.finished(uri);
    assert_eq!(access["outcome"], "aborted-trapped", "{lines:?}");
    assert_eq!(cs(line(&lines, "saw abort")), Some(1));
    assert!(!has(&lines, "iua off"), "trapped inside ignore_user_abort(false): {lines:?}");
}

#[test]
fn turning_ignore_user_abort_off_after_an_abort_traps_at_the_next_output_in_write_mode() {
    let server = server();
    let uri = "/w/iua-toggle?ms=20";
    let mut client = Client::connect(server.addr());
    client.get(uri);
    server.started("/w/iua-toggle");
    client.close_fin();
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
