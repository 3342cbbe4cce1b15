//! Tether behind the web servers people run: nginx, Apache and Caddy, each as a FastCGI client
//! and as an HTTP reverse proxy (`tests::front`). Every test runs the same requests through
//! every pair; the abort test asserts what each pair guarantees when its client leaves (the
//! timings are `bench/run fronts`' business).

use tests::front::{Fronts, Guest, Pair, Via};
use tests::{Client, Close, Manifest, Server, get, leave_after_line, run_rows};

/// The guests the nginx tests use, and a route per abort row (`abort_route`).
fn manifest() -> Manifest {
    let manifest = Manifest::new()
        .route("/hello", "hello", "")
        .route("/echo", "echo", "max_body_size = \"4MiB\"")
        .route("/headers", "headers", "")
        .route("/seed-a2", "seed_a2", "");
    abort_rows().iter().fold(manifest, |manifest, row| manifest.route(&row.route(), row.guest.fixture(), ""))
}

/// Tether with its FastCGI and HTTP listeners, and the three web servers in front of it.
fn stack() -> (Server, Fronts) {
    let server = Server::start_fastcgi(&manifest());
    let fronts = Fronts::start(&server);
    (server, fronts)
}

#[test]
fn hello_a_mebibyte_echo_and_a_guest_404_through_every_front_server() {
    let (_server, fronts) = stack();
    let body: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    for pair in Pair::ALL {
        let name = pair.name();
        let addr = fronts.addr(pair);
        let response = get(&addr, "/hello");
        assert_eq!((response.status, response.text().as_str()), (200, "hello\n"), "{name}");
        assert_eq!(response.header("content-type"), Some("text/plain"), "{name}");
        // A 200 has no CGI Status line, which Caddy would pass on as a header.
        assert_eq!(response.header("status"), None, "{name}: {:?}", response.headers);

        let mut client = Client::connect(&addr);
        client.send(format!("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n", body.len()));
        client.send(&body);
        let response = client.read_response();
        assert_eq!(response.status, 200, "{name}");
        assert!(response.body == body, "{name}: the echo differs ({} bytes back)", response.body.len());

        let response = get(&addr, "/headers?status=404");
        assert_eq!(response.status, 404, "{name}");
        assert_eq!(response.header("x-tether-guest"), Some("headers"), "{name}");
        assert!(response.text().starts_with("GET /headers?status=404 HTTP/1.1\n"), "{name}: {}", response.text());
        // No route: Tether's own 404.
        assert_eq!(get(&addr, "/nowhere").status, 404, "{name}");
    }
}

#[test]
fn request_heads_and_cgi_variables_through_every_front_server() {
    let (_server, fronts) = stack();
    for pair in Pair::ALL {
        let name = pair.name();
        let uri = "/headers?vars=1&var=APP_ENV";
        let text = get(&fronts.addr(pair), uri).text();
        assert!(text.starts_with(&format!("GET {uri} HTTP/1.1\n")), "{name}: {text}");
        assert!(text.contains("\nhost: test\n"), "{name}: the client's host: {text}");
        assert!(text.contains("\nremote Some(\"127.0.0.1:"), "{name}: {text}");
        let expected: &[&str] = match pair.via {
            // The web server's CGI variables, its configuration's own too (PHP's $_SERVER).
            Via::FastCgi => &[
                "\nvar REQUEST_URI=/headers?vars=1&var=APP_ENV\n",
                "\nvar REMOTE_ADDR=127.0.0.1\n",
                "\nserver var \"APP_ENV\" = Some(\"tested\")\n",
            ],
            // The client's address, from the proxy.
            Via::Http => &["\nx-forwarded-for: 127.0.0.1\n"],
        };
        for line in expected {
            assert!(text.contains(line), "{name}: {line:?} in {text}");
        }
        assert!(!text.contains("var HTTP_"), "{name}: headers come once, as headers: {text}");
    }
}

#[test]
fn a_flush_reaches_the_client_through_every_front_server_while_the_guest_sleeps() {
    let (server, fronts) = stack();
    for pair in Pair::ALL {
        let uri = format!("/seed-a2?n=2&ms=20000&pair={}", pair.name());
        let mut client = Client::connect(&fronts.addr(pair));
        client.get(&uri);
        let (status, _) = client.read_head();
        assert_eq!(status, 200, "{}", pair.name());
        // Whatever the framing, the flushed bytes arrive while the guest sleeps after them.
        client.read_until(b"22222");
        assert!(!server.has_access(&uri), "{}: the guest has ended already", pair.name());
        client.close_fin();
    }
}

/// A client leaving a request through a front server.
struct AbortRow {
    /// The front server and how it reaches Tether.
    pair: Pair,
    /// How the client leaves.
    close: Close,
    /// What its guest does.
    guest: Guest,
}

impl AbortRow {
    /// Its name (`apache-fastcgi-rst-silent`), for failures.
    fn name(&self) -> String {
        format!("{}-{}-{}", self.pair.name(), self.close.name(), self.guest.name())
    }

    /// Its own route, so that rows running at once never take each other's request.
    fn route(&self) -> String {
        format!("/{}", self.name())
    }

    /// The outcome the pair guarantees ([`Pair::stops`]); a guest it does not stop runs to its
    /// end.
    fn outcome(&self) -> &'static str {
        if self.pair.stops(self.guest) { "aborted-trapped" } else { "completed" }
    }
}

/// Every pair × FIN or RST × a silent or a streaming guest.
fn abort_rows() -> Vec<AbortRow> {
    let mut rows = Vec::new();
    for pair in Pair::ALL {
        for close in [Close::Fin, Close::Rst] {
            for guest in Guest::ALL {
                rows.push(AbortRow { pair, close, guest });
            }
        }
    }
    rows
}

#[test]
fn a_client_leaving_through_every_front_server_stops_the_guest_where_the_server_says_so() {
    let (server, fronts) = stack();
    run_rows(&abort_rows(), AbortRow::name, |row| {
        let route = row.route();
        let uri = format!("{route}?{}", row.guest.query());
        leave_after_line(&server, &fronts.addr(row.pair), &uri, &route, row.guest.leave_after(), row.close);
        let (access, lines) = server.finished(&uri);
        if access["outcome"] == row.outcome() {
            Ok(())
        } else {
            Err(format!("outcome {} (expected {}); the guest logged {lines:?}", access["outcome"], row.outcome()))
        }
    });
}
