//! Encodes HTTP/1.x responses: the status line and headers (with the host-owned framing
//! headers), chunk framing, and the host's own error responses.

use super::parse::Version;
use crate::request::{ResponseHead, reason_phrase};
use std::cell::RefCell;
use std::io::Write as _;
use std::time::SystemTime;

/// How the response body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// `Content-Length: n` (the body was complete before the head went out).
    Length(usize),
    /// `Transfer-Encoding: chunked` (HTTP/1.1 streaming).
    Chunked,
    /// The body ends when the connection closes (HTTP/1.0 streaming).
    CloseDelimited,
    /// A response to HEAD: headers only. `Some(n)` advertises the length the body would have.
    Headless(Option<usize>),
}

/// The final chunk of a chunked body, with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
/// The line ending after chunk data.
pub const CRLF: &[u8] = b"\r\n";
/// The interim response to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

thread_local! {
    /// The formatted `Date` value and the second it is for; formatting once per second per
    /// thread keeps it off the per-request path.
    static DATE: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
}

fn with_date<R>(f: impl FnOnce(&str) -> R) -> R {
    let now = SystemTime::now();
    let second = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.0 != second || cell.1.is_empty() {
            *cell = (second, httpdate::fmt_http_date(now));
        }
        f(&cell.1)
    })
}

/// Appends the status line and headers to `out`. `keep_alive` is whether the connection stays
/// open after this response; HTTP/1.1 says `connection: close` when it does not, HTTP/1.0 says
/// `connection: keep-alive` when it does.
pub fn head(out: &mut Vec<u8>, version: Version, head: &ResponseHead, framing: BodyFraming, keep_alive: bool) {
    let _ = write!(out, "{} {} {}\r\n", version.as_str(), head.status, reason_phrase(head.status));
    // The guest's own `date`, if it set one, replaces the host's.
    if !head.headers.iter().any(|(name, _)| name == "date") {
        with_date(|date| {
            out.extend_from_slice(b"date: ");
            out.extend_from_slice(date.as_bytes());
            out.extend_from_slice(CRLF);
        });
    }
    for (name, value) in &head.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(CRLF);
    }
    match framing {
        BodyFraming::Length(n) | BodyFraming::Headless(Some(n)) => {
            let _ = write!(out, "content-length: {n}\r\n");
        }
        BodyFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        BodyFraming::CloseDelimited | BodyFraming::Headless(None) => {}
    }
    match (version, keep_alive) {
        (Version::Http11, false) => out.extend_from_slice(b"connection: close\r\n"),
        (Version::Http10, true) => out.extend_from_slice(b"connection: keep-alive\r\n"),
        _ => {}
    }
    out.extend_from_slice(CRLF);
}

/// The size line that starts a chunk of `len` bytes.
pub fn chunk_size_line(len: usize) -> Vec<u8> {
    format!("{len:x}\r\n").into_bytes()
}

/// A complete host-generated response: a short plain-text body with a length, or (`is_head`,
/// the answer to a HEAD request) only the head that advertises it.
pub fn error_response(version: Version, status: u16, message: &str, keep_alive: bool, is_head: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + message.len());
    let framing = if is_head { BodyFraming::Headless(Some(message.len())) } else { BodyFraming::Length(message.len()) };
    head(&mut out, version, &ResponseHead::host_error(status), framing, keep_alive);
    if !is_head {
        out.extend_from_slice(message.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_carry_the_host_framing() {
        let mut out = Vec::new();
        let mut h = ResponseHead::default();
        h.set_header("x-a", "1").unwrap();
        head(&mut out, Version::Http11, &h, BodyFraming::Chunked, true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\ndate: "), "{text}");
        assert!(text.ends_with("x-a: 1\r\ntransfer-encoding: chunked\r\n\r\n"), "{text}");

        let mut out = Vec::new();
        h.set_header("date", "Thu, 01 Jan 1970 00:00:00 GMT").unwrap();
        head(&mut out, Version::Http11, &h, BodyFraming::Length(0), true);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("date: ").count(), 1, "the guest's date replaces the host's: {text}");

        let mut out = Vec::new();
        head(&mut out, Version::Http10, &ResponseHead::default(), BodyFraming::Length(5), true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("content-length: 5\r\nconnection: keep-alive\r\n\r\n"), "{text}");
    }

    #[test]
    fn error_responses_are_complete() {
        let text = String::from_utf8(error_response(Version::Http11, 404, "no route\n", false, false)).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.contains("content-length: 9\r\n"));
        assert!(text.contains("connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nno route\n"));
        let text = String::from_utf8(error_response(Version::Http11, 404, "no route\n", true, true)).unwrap();
        assert!(text.contains("content-length: 9\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "a HEAD answer has no body: {text}");
        assert_eq!(chunk_size_line(255), b"ff\r\n");
    }
}
