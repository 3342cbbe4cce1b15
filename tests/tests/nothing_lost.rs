//! Nothing lost: the work a guest does after its client may have gone, having called
//! ignore-user-abort(true) or finish-request, happens exactly once, whatever happens to the
//! connection meanwhile: the client leaving with FIN or RST (directly, and through nginx over
//! FastCGI), a SIGTERM within `shutdown_grace`, and hundreds of such requests at once with
//! clients leaving at random. The `record` fixture appends one line per request to a file in
//! its preopened directory; the tests count the lines.

use std::collections::BTreeMap;
use std::path::Path;
use tests::nginx::{Nginx, pass};
use tests::{Client, Close, Manifest, Server};

/// The ways the fixture keeps working after its client may have gone.
#[derive(Clone, Copy, Debug)]
enum How {
    /// ignore-user-abort(true), then a flushed answer; the response stays open while it works.
    IgnoreAbort,
    /// An answer, then finish-request.
    Finish,
}

impl How {
    /// The fixture's `how`.
    fn query(self) -> &'static str {
        match self {
            How::IgnoreAbort => "iua",
            How::Finish => "finish",
        }
    }
}

/// One request of a table: how its guest works on, and how its client leaves once the answer
/// arrived (`None`: it stays and reads the response to its end).
#[derive(Clone, Copy, Debug)]
struct Row {
    how: How,
    leave: Option<Close>,
}

impl Row {
    /// Every combination of how the guest works on and how its client leaves.
    fn all() -> Vec<Row> {
        let leaves = [None, Some(Close::Fin), Some(Close::Rst)];
        [How::IgnoreAbort, How::Finish].into_iter().flat_map(|how| leaves.map(|leave| Row { how, leave })).collect()
    }

    /// The outcome its access line must have: a guest ignoring aborts whose client left ends
    /// `aborted-ignored`; after finish-request a client leaving is no abort.
    fn outcome(self) -> &'static str {
        match (self.how, self.leave) {
            (How::IgnoreAbort, None) => "completed",
            (How::IgnoreAbort, Some(_)) => "aborted-ignored",
            (How::Finish, _) => "finished-early",
        }
    }
}

/// A `/record` route that may write into `dir` (its `data`).
fn manifest(dir: &Path) -> Manifest {
    let preopen = format!("[[route.preopen]]\nhost = \"{}\"\nguest = \"data\"\nwritable = true", dir.display());
    Manifest::new().route("/record", "record", &preopen)
}

/// The target of request `id`.
fn uri(id: usize, how: How, wait: bool) -> String {
    format!("/record?id={id}&how={}&wait={}", how.query(), u8::from(wait))
}

/// Sends `uri` on `client` and reads until its answer, `working`, arrived.
fn answered(client: &mut Client, uri: &str) {
    client.get(uri);
    client.read_until(b"working\n");
}

/// How often each record id appears in `dir`'s record file.
fn records(dir: &Path) -> BTreeMap<usize, usize> {
    let text = std::fs::read_to_string(dir.join("records")).unwrap_or_default();
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let id = line.parse().unwrap_or_else(|_| panic!("a torn record {line:?} in {text:?}"));
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

/// Asserts that each of the ids `0..n` was recorded exactly once, and nothing else.
fn assert_each_recorded_once(dir: &Path, n: usize) {
    let counts = records(dir);
    let wrong: Vec<_> = (0..n).map(|id| (id, counts.get(&id).copied().unwrap_or(0))).filter(|&(_, count)| count != 1).collect();
    assert!(wrong.is_empty(), "records written other than once (id, count): {wrong:?}");
    assert_eq!(counts.len(), n, "records of requests never sent: {counts:?}");
}

/// Sends every row's request through `addr` (the server, or a web server in front of it),
/// their guests held (`wait=1`) until every client that leaves has left and every guest
/// ignoring aborts has seen it; then `before_work` runs, the guests are let go, and
/// `after_work` waits for them to end. Each record is then written exactly once, each request
/// ends with its row's outcome, and each client that stayed reads its response to the end.
fn run_table(dir: &Path, server: &mut Server, addr: &str, before_work: impl FnOnce(&Server), after_work: impl FnOnce(&mut Server)) {
    let rows = Row::all();
    let mut stayed = Vec::new();
    for (id, row) in rows.iter().enumerate() {
        let mut client = Client::connect(addr);
        answered(&mut client, &uri(id, row.how, true));
        match row.leave {
            Some(how) => {
                client.close(how);
                if let How::IgnoreAbort = row.how {
                    let gone = format!("client gone {id}");
                    server.wait_for_event(0, &gone, |e| (e["target"] == "tether::guest" && e["message"] == gone.as_str()).then_some(()));
                }
            }
            None => stayed.push((*row, client)),
        }
    }
    before_work(&*server);
    std::fs::write(dir.join("go"), b"").expect("letting the guests go");
    for (row, mut client) in stayed {
        if let How::IgnoreAbort = row.how {
            // The rest of the chunked body, up to its last chunk (which fails if the connection
            // ends first): the working guest's response ends when it does.
            client.read_until(b"0\r\n\r\n");
        }
    }
    after_work(server);
    for (id, row) in rows.iter().enumerate() {
        assert_eq!(server.access(&uri(id, row.how, true))["outcome"], row.outcome(), "{row:?}");
    }
    assert_each_recorded_once(dir, rows.len());
}

#[test]
fn work_after_an_abort_or_finish_request_is_done_exactly_once() {
    let dir = tests::fresh_dir("nothing-lost-aborts");
    let mut server = Server::start(&manifest(&dir));
    let addr = server.addr().to_owned();
    run_table(&dir, &mut server, &addr, |_| {}, |_| {});
}

#[test]
fn work_after_an_abort_or_finish_request_behind_nginx_is_done_exactly_once() {
    let dir = tests::fresh_dir("nothing-lost-nginx");
    let mut server = Server::start_fastcgi(&manifest(&dir));
    // Unbuffered, so that the flushed answer reaches the client while the guest works on.
    let nginx = Nginx::start("", &[pass(server.fastcgi_unix(), false, false)]);
    run_table(&dir, &mut server, &nginx.addr(0), |_| {}, |_| {});
}

#[test]
fn work_under_way_at_sigterm_within_shutdown_grace_is_done_exactly_once() {
    let dir = tests::fresh_dir("nothing-lost-sigterm");
    let mut server = Server::start(&manifest(&dir));
    let addr = server.addr().to_owned();
    let before_work = |server: &Server| {
        let mark = server.log_len();
        server.terminate();
        server.wait_for_since(mark, "the shutdown to begin", |events| {
            events.iter().any(|e| e["message"].as_str().is_some_and(|m| m.starts_with("shutting down"))).then_some(())
        });
    };
    // The server exits once every guest has done its work, well within `shutdown_grace`.
    let after_work = |server: &mut Server| assert_eq!(server.wait_exit(), Some(0));
    run_table(&dir, &mut server, &addr, before_work, after_work);
}

/// Clients at once in the load test, and requests each sends.
const LOAD_CLIENTS: usize = 16;
const LOAD_REQUESTS: usize = 40;

#[test]
fn work_under_load_with_clients_leaving_at_random_is_done_exactly_once() {
    let dir = tests::fresh_dir("nothing-lost-load");
    let server = Server::start(&manifest(&dir));
    let addr = server.addr();
    let rows = Row::all();
    std::thread::scope(|scope| {
        for client_no in 0..LOAD_CLIENTS {
            let rows = &rows;
            scope.spawn(move || {
                let mut client = None;
                for n in 0..LOAD_REQUESTS {
                    let id = client_no * LOAD_REQUESTS + n;
                    // Every row in turn, each client starting at another one.
                    let row = rows[(client_no + n) % rows.len()];
                    let mut connection = client.take().unwrap_or_else(|| Client::connect(addr));
                    answered(&mut connection, &uri(id, row.how, false));
                    match row.leave {
                        Some(how) => drop(connection.close(how)),
                        None => {
                            if let How::IgnoreAbort = row.how {
                                connection.read_until(b"0\r\n\r\n");
                            }
                            client = Some(connection);
                        }
                    }
                }
            });
        }
    });
    let total = LOAD_CLIENTS * LOAD_REQUESTS;
    server.wait_for("every request's access line", |events| {
        (events.iter().filter(|e| e["target"] == "tether::access").count() >= total).then_some(())
    });
    let events = server.events();
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e["target"] == "tether::access")
        .filter(|e| !["completed", "aborted-ignored", "finished-early"].contains(&e["outcome"].as_str().unwrap_or_default()))
        .collect();
    assert!(failed.is_empty(), "requests that did not end as their guest chose: {failed:#?}");
    assert_each_recorded_once(&dir, total);
}
