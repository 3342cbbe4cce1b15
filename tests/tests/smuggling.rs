//! The request smuggling and desync corpus: every shape on which two HTTP/1.1 parsers are known
//! to disagree about where a request ends, sent to Tether directly and through nginx in front of
//! its FastCGI listener. Each shape gets its defined answers (statuses, and whether the
//! connection closes after them, which the last answer's head then says), and the server runs
//! exactly as many requests as it answered: never two where the client sent one. A request
//! hidden in a body targets `/smuggled`, which no access record may ever name.

use serde_json::Value;
use tests::nginx::{Nginx, pass};
use tests::{Client, Manifest, Server, get, run_rows};

/// What a front answers to one shape.
#[derive(Clone, Copy, Debug)]
struct Answer {
    /// The statuses of the responses, in order.
    statuses: &'static [u16],
    /// Whether the front closes the connection after them.
    closes: bool,
    /// How many requests reach Tether (access records): what it answered itself, directly;
    /// what nginx forwarded, behind nginx.
    requests: usize,
}

/// One shape: the bytes a client sends and each front's answer. `{row}` in the bytes becomes a
/// marker unique to the row and the front, in every request target.
struct Shape {
    /// What the shape is.
    name: &'static str,
    /// The bytes on the wire.
    bytes: &'static str,
    /// Tether's own HTTP/1.1 listener.
    direct: Answer,
    /// nginx, passing what it accepts to Tether over FastCGI.
    nginx: Answer,
}

/// A refusal that closes the connection, with nothing run.
const fn refused(status: &'static [u16]) -> Answer {
    Answer { statuses: status, closes: true, requests: 1 }
}

/// Refused by nginx itself: nothing reaches Tether.
const fn refused_by_nginx(status: &'static [u16]) -> Answer {
    Answer { statuses: status, closes: true, requests: 0 }
}

/// Closed by nginx without an answer (after its `client_body_timeout`): nothing reaches Tether.
const fn dropped_by_nginx() -> Answer {
    Answer { statuses: &[], closes: true, requests: 0 }
}

/// Answered, one request per status, with the connection kept.
const fn served(statuses: &'static [u16]) -> Answer {
    Answer { statuses, closes: false, requests: statuses.len() }
}

/// Answered, one request per status, and then closed (a body the guest found broken).
const fn served_then_closed(statuses: &'static [u16]) -> Answer {
    Answer { statuses, closes: true, requests: statuses.len() }
}

const SHAPES: &[Shape] = &[
    Shape {
        name: "CL.TE",
        bytes: "POST /echo?{row} HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
        direct: refused(&[400]),
        nginx: refused_by_nginx(&[400]),
    },
    Shape {
        name: "TE.CL",
        bytes: "POST /echo?{row} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n\
                5c\r\nGPOST /smuggled?{row} HTTP/1.1\r\nHost: t\r\nContent-Length: 15\r\n\r\nx=1\r\n0\r\n\r\n",
        direct: refused(&[400]),
        nginx: refused_by_nginx(&[400]),
    },
    Shape {
        name: "duplicate Content-Length, differing",
        bytes: "POST /echo?{row} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        direct: refused(&[400]),
        nginx: refused_by_nginx(&[400]),
    },
    Shape {
        name: "duplicate Content-Length, equal",
        bytes: "POST /echo?{row} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        direct: served(&[200]),
        nginx: refused_by_nginx(&[400]),
    },
    Shape {
        name: "comma-joined Content-Length, equal",
        bytes: "POST /echo?{row} HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nhello",
        direct: served(&[200]),
        nginx: refused_by_nginx(&[400]),
    },
    Shape {
        name: "comma-joined Content-Length, differing",
        bytes: "POST /echo?{row} HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 6\r\n\r\nhello!",
        direct: refused(&[400]),
        nginx: refused_by_nginx(&[400]),
    },
    Shape {
        name: "Content-Length with a sign",
        bytes: "POST /echo?{row} HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello",
        direct: refused(&[400]),
        nginx: refused_by_nginx(&[400]),
    },
    Shape {
        name: "Transfer-Encoding: chunked, identity",
        bytes: "POST /echo?{row} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        direct: refused(&[501]),
        nginx: refused_by_nginx(&[501]),
    },
    Shape {
        name: "Transfer-Encoding: xchunked",
        bytes: "POST /echo?{row} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\nhello",
        direct: refused(&[501]),
        nginx: refused_by_nginx(&[501]),
    },
    Shape {
        name: "Transfer-Encoding twice",
        bytes: "POST /echo?{row} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        direct: refused(&[501]),
        nginx: refused_by_nginx(&[400]),
    },
    Shape {
        name: "a space before the colon",
        bytes: "POST /echo?{row} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello",
        direct: refused(&[400]),
        nginx: refused_by_nginx(&[400]),
    },
    Shape {
        name: "a tab before the colon",
        bytes: "POST /echo?{row} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding\t: chunked\r\nContent-Length: 5\r\n\r\nhello",
        direct: refused(&[400]),
        nginx: refused_by_nginx(&[400]),
    },
    Shape {
        name: "a tab as the whitespace after the colon",
        bytes: "POST /echo?{row} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\tchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        direct: served(&[200]),
        nginx: refused_by_nginx(&[501]),
    },
    Shape {
        name: "obs-fold",
        bytes: "POST /echo?{row} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\n chunked\r\nContent-Length: 5\r\n\r\nhello",
        direct: refused(&[400]),
        nginx: refused_by_nginx(&[400]),
    },
    Shape {
        name: "bare LF in the head",
        bytes: "POST /echo?{row} HTTP/1.1\nHost: t\nContent-Length: 5\n\nhello",
        direct: served(&[200]),
        nginx: served(&[200]),
    },
    Shape {
        name: "bare LF after a chunk size",
        bytes: "POST /echo?{row} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        direct: served_then_closed(&[400]),
        nginx: served(&[200]),
    },
    Shape {
        name: "NUL in a header value",
        bytes: "GET /echo?{row} HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n",
        direct: refused(&[400]),
        nginx: refused_by_nginx(&[400]),
    },
    Shape {
        name: "NUL in the request target",
        bytes: "GET /echo?{row}\0 HTTP/1.1\r\nHost: t\r\n\r\n",
        direct: refused(&[400]),
        nginx: refused_by_nginx(&[400]),
    },
    Shape {
        name: "a chunk size past 64 bits",
        bytes: "POST /echo?{row} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n",
        direct: served_then_closed(&[400]),
        nginx: refused_by_nginx(&[400]),
    },
    Shape {
        name: "a chunk size past max_body_size",
        bytes: "POST /echo?{row} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nmore than sixteen bytes",
        direct: served_then_closed(&[400]),
        nginx: refused_by_nginx(&[400]),
    },
    Shape {
        name: "a chunk size past max_body_size, its data withheld",
        bytes: "POST /echo?{row} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n",
        direct: served_then_closed(&[400]),
        nginx: dropped_by_nginx(),
    },
    Shape {
        name: "chunk extensions",
        bytes: "POST /echo?{row} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b;c=\"d\"\r\nhello\r\n0;e\r\n\r\n",
        direct: served(&[200]),
        nginx: served(&[200]),
    },
    Shape {
        name: "trailers",
        bytes: "POST /echo?{row} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\nContent-Length: 40\r\n\r\n",
        direct: served(&[200]),
        nginx: served(&[200]),
    },
    Shape {
        name: "HTTP/1.0 with Transfer-Encoding",
        bytes: "POST /echo?{row} HTTP/1.0\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        direct: refused(&[400]),
        nginx: refused_by_nginx(&[400]),
    },
    Shape {
        name: "a request pipelined after a body",
        bytes: "POST /echo?{row} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET /echo?{row} HTTP/1.1\r\nHost: t\r\n\r\n",
        direct: served(&[200, 200]),
        nginx: served(&[200, 200]),
    },
    Shape {
        name: "a request pipelined after a refused one without a body",
        bytes: "GET /nowhere?{row} HTTP/1.1\r\nHost: t\r\n\r\nGET /echo?{row} HTTP/1.1\r\nHost: t\r\n\r\n",
        direct: served(&[404, 200]),
        nginx: served(&[404, 200]),
    },
    Shape {
        name: "a request pipelined after a refused one with a body",
        bytes: "POST /nowhere?{row} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET /echo?{row} HTTP/1.1\r\nHost: t\r\n\r\n",
        direct: refused(&[404]),
        nginx: served(&[404, 200]),
    },
    Shape {
        name: "a request pipelined after a malformed one",
        bytes: "GET /echo?{row} HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\nGET /echo?{row} HTTP/1.1\r\nHost: t\r\n\r\n",
        direct: refused(&[400]),
        nginx: refused_by_nginx(&[400]),
    },
];

/// The echo route's `max_body_size` and nginx's `client_max_body_size`, in bytes: room for the
/// corpus's bodies and not for the one that a huge chunk size announces.
const MAX_BODY: u64 = 16;

/// nginx's `client_body_timeout`: how long nginx waits for a body that does not come, before it
/// gives up on the request (its default is a minute).
const NGINX_BODY_TIMEOUT: &str = "2s";

fn manifest() -> Manifest {
    Manifest::new().route("/echo", "echo", &format!("max_body_size = \"{MAX_BODY}\""))
}

/// Sends `shape` on a fresh connection to `addr` (after `probe`, a request on the same
/// connection, if given) and checks the answers; a connection kept open is then closed with one
/// more request, which `Answer::requests` does not count.
fn exchange(addr: &str, bytes: &str, answer: Answer, probe: Option<&str>) -> Result<(), String> {
    let mut client = Client::connect(addr);
    if let Some(probe) = probe {
        client.get(probe);
        let status = client.read_response().status;
        if status != 200 {
            return Err(format!("the probe got {status}"));
        }
    }
    client.send(bytes);
    let responses: Vec<_> = answer.statuses.iter().map(|_| client.read_response()).collect();
    let statuses: Vec<u16> = responses.iter().map(|response| response.status).collect();
    if statuses != answer.statuses {
        return Err(format!("statuses {statuses:?}, expected {:?}", answer.statuses));
    }
    let says_close = responses.last().and_then(|last| last.header("connection")).is_some_and(|c| c.eq_ignore_ascii_case("close"));
    if answer.closes && !responses.is_empty() && !says_close {
        return Err("the connection closes after an answer without `connection: close`".to_owned());
    }
    if !answer.closes {
        client.send("GET /echo?closing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let status = client.read_response().status;
        if status != 200 {
            return Err(format!("the closing request got {status}: the connection was not kept"));
        }
    }
    let rest = client.read_to_end();
    if !rest.is_empty() {
        return Err(format!("more after the answers: {:?}", String::from_utf8_lossy(&rest)));
    }
    Ok(())
}

/// The marker of `shape` on front `front`.
fn marker(front: &str, shape: &Shape) -> String {
    let index = SHAPES.iter().position(|s| s.name == shape.name).expect("a shape of the table");
    format!("{front}{index}")
}

/// The access records in the server's log so far.
fn access_records(server: &Server) -> Vec<Value> {
    server.events().into_iter().filter(|e| e["target"] == "tether::access").collect()
}

/// Waits for a request sent after every row to be logged: every row's requests were answered
/// before it was sent, so a request a row should not have caused is logged by then, as a rule.
fn barrier(server: &Server, addr: &str) {
    assert_eq!(get(addr, "/echo?barrier").status, 200);
    server.access("/echo?barrier");
}

/// The shapes whose `count` of access records is not what `expected` says, once every count
/// has reached it (or as they are after the harness's timeout): a request's access line
/// follows its response, and may come after the barrier's. `what` names what is counted.
fn miscounted(server: &Server, count: impl Fn(&[Value], &Shape) -> usize, expected: impl Fn(&Shape) -> usize, what: &str) -> Vec<String> {
    let records = server
        .try_wait_for_since(0, |events| {
            let records: Vec<Value> = events.iter().filter(|e| e["target"] == "tether::access").cloned().collect();
            SHAPES.iter().all(|shape| count(&records, shape) >= expected(shape)).then_some(records)
        })
        .unwrap_or_else(|_| access_records(server));
    SHAPES
        .iter()
        .filter(|shape| count(&records, shape) != expected(shape))
        .map(|shape| format!("{}: {} {what}, expected {}", shape.name, count(&records, shape), expected(shape)))
        .collect()
}

/// No access record names a request hidden in a body.
fn nothing_smuggled(server: &Server) {
    let smuggled: Vec<_> =
        access_records(server).into_iter().filter(|e| e["uri"].as_str().is_some_and(|u| u.starts_with("/smuggled"))).collect();
    assert!(smuggled.is_empty(), "requests hidden in bodies were run: {smuggled:#?}");
}

#[test]
fn every_shape_gets_its_answer_and_one_request_per_answer_directly() {
    let server = Server::start(&manifest());
    run_rows(
        SHAPES,
        |shape| shape.name.to_owned(),
        |shape| {
            let row = marker("direct", shape);
            exchange(server.addr(), &shape.bytes.replace("{row}", &row), shape.direct, Some(&format!("/echo?probe-{row}")))
        },
    );
    barrier(&server, server.addr());
    // The connection is the probe's; a head refused unparsed has no target to find it by.
    let on_connection = |records: &[Value], shape: &Shape| {
        let probe = format!("/echo?probe-{}", marker("direct", shape));
        let conn = records.iter().find(|e| e["uri"] == probe.as_str()).map(|e| e["conn"].clone());
        conn.map_or(0, |conn| records.iter().filter(|e| e["conn"] == conn).count())
    };
    let expected = |shape: &Shape| 1 + shape.direct.requests + usize::from(!shape.direct.closes);
    let failures = miscounted(&server, on_connection, expected, "requests on the connection");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    nothing_smuggled(&server);
}

#[test]
fn nginx_and_tether_agree_on_every_boundary() {
    let server = Server::start_fastcgi(&manifest());
    let nginx = Nginx::start(
        &format!("    client_max_body_size {MAX_BODY};\n    client_body_timeout {NGINX_BODY_TIMEOUT};"),
        &[pass(server.fastcgi_tcp(), false, true)],
    );
    let addr = nginx.addr(0);
    run_rows(
        SHAPES,
        |shape| shape.name.to_owned(),
        |shape| exchange(&addr, &shape.bytes.replace("{row}", &marker("nginx", shape)), shape.nginx, None),
    );
    barrier(&server, &addr);
    let run_by_tether = |records: &[Value], shape: &Shape| {
        let row = format!("?{}", marker("nginx", shape));
        records.iter().filter(|e| e["uri"].as_str().is_some_and(|u| u.ends_with(&row))).count()
    };
    let failures = miscounted(&server, run_by_tether, |shape| shape.nginx.requests, "requests run by Tether, of those nginx forwarded");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    nothing_smuggled(&server);
}
