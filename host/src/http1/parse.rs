//! Parses an HTTP/1.x request head (RFC 9112) into a [`RequestHead`] plus what the connection
//! needs: body framing, keep-alive and `Expect: 100-continue`. Pure: bytes in, result out.
//!
//! "Need more bytes" is `Ok(None)`, not an error.

use crate::request::{RequestHead, is_tchar};
use thiserror::Error;

/// Limits on a request head.
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    /// Request line plus headers, in bytes (exceeding it is 431).
    pub max_bytes: usize,
    /// Number of header fields (exceeding it is 431).
    pub max_headers: usize,
}

/// The protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1.
    Http11,
}

impl Version {
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head.
#[derive(Debug)]
pub struct Parsed {
    /// What the guest sees.
    pub head: RequestHead,
    /// The version.
    pub version: Version,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the client wants the connection kept open.
    pub keep_alive: bool,
    /// Whether the client waits for `100 Continue` before sending the body.
    pub expect_continue: bool,
}

/// Why a head was rejected; each maps to a status.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ParseError {
    /// Syntax or semantics the server cannot accept (400).
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// The head exceeds `max_header_bytes` (431).
    #[error("request head larger than {0} bytes")]
    HeadTooLarge(usize),
    /// More than `max_headers` fields (431).
    #[error("more than {0} header fields")]
    TooManyHeaders(usize),
    /// A transfer coding other than `chunked` (501).
    #[error("unsupported transfer coding")]
    UnsupportedTransferCoding,
    /// An `Expect` other than `100-continue` (417).
    #[error("unsupported expectation")]
    ExpectationFailed,
    /// Not HTTP/1.0 or HTTP/1.1 (505).
    #[error("unsupported HTTP version")]
    UnsupportedVersion,
}

impl ParseError {
    /// The response status for this error.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::Malformed(_) => 400,
            ParseError::HeadTooLarge(_) | ParseError::TooManyHeaders(_) => 431,
            ParseError::UnsupportedTransferCoding => 501,
            ParseError::ExpectationFailed => 417,
            ParseError::UnsupportedVersion => 505,
        }
    }
}

/// httparse reports a bad method and a bad request target alike (`Error::Token`); the message
/// tells them apart. The method is the line's first token, ended by a space (RFC 9112 §3).
fn token_error(buf: &[u8]) -> ParseError {
    let method_end = buf.iter().position(|&b| b == b' ');
    let method_ok = method_end.is_some_and(|end| end > 0 && buf[..end].iter().copied().all(is_tchar));
    ParseError::Malformed(if method_ok { "invalid request target, or no HTTP version after it" } else { "invalid method" })
}

/// Parses the head at the start of `buf`. Returns the head and its length in bytes, or `None`
/// if more bytes are needed.
pub fn parse(buf: &[u8], limits: HeadLimits) -> Result<Option<(Parsed, usize)>, ParseError> {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut request = httparse::Request::new(&mut headers);
    let status = request.parse(buf).map_err(|error| match error {
        httparse::Error::TooManyHeaders => ParseError::TooManyHeaders(limits.max_headers),
        httparse::Error::Version => ParseError::UnsupportedVersion,
        httparse::Error::HeaderName => ParseError::Malformed("invalid header name"),
        httparse::Error::HeaderValue => ParseError::Malformed("invalid header value"),
        httparse::Error::Token => token_error(buf),
        httparse::Error::NewLine => ParseError::Malformed("invalid line ending"),
        httparse::Error::Status => ParseError::Malformed("invalid request line"),
    })?;
    let len = match status {
        httparse::Status::Complete(len) if len <= limits.max_bytes => len,
        httparse::Status::Complete(_) => return Err(ParseError::HeadTooLarge(limits.max_bytes)),
        httparse::Status::Partial if buf.len() >= limits.max_bytes => {
            return Err(ParseError::HeadTooLarge(limits.max_bytes));
        }
        httparse::Status::Partial => return Ok(None),
    };
    let version = match request.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(ParseError::UnsupportedVersion),
    };
    let method = request.method.ok_or(ParseError::Malformed("missing method"))?.to_owned();
    let target = normalize_target(request.path.ok_or(ParseError::Malformed("missing target"))?)?;

    let mut fields = Vec::with_capacity(request.headers.len());
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut hosts = 0usize;
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    let mut expect_continue = false;
    for header in request.headers.iter() {
        let name = header.name.to_ascii_lowercase();
        let value = header.value;
        match name.as_str() {
            "content-length" => {
                // RFC 9112 §6.3: differing or invalid lengths are unrecoverable.
                let text = std::str::from_utf8(value).map_err(|_| ParseError::Malformed("invalid content-length"))?;
                for part in text.split(',') {
                    let part = part.trim();
                    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(ParseError::Malformed("invalid content-length"));
                    }
                    let n: u64 = part.parse().map_err(|_| ParseError::Malformed("invalid content-length"))?;
                    if content_length.is_some_and(|existing| existing != n) {
                        return Err(ParseError::Malformed("conflicting content-length"));
                    }
                    content_length = Some(n);
                }
            }
            "transfer-encoding" => {
                if version == Version::Http10 {
                    return Err(ParseError::Malformed("transfer-encoding in an HTTP/1.0 request"));
                }
                transfer_encoding = true;
                let codings = std::str::from_utf8(value).map_err(|_| ParseError::Malformed("invalid transfer-encoding"))?;
                for coding in codings.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                    // Only `chunked`, once, is supported; anything else would need decoding.
                    if !coding.eq_ignore_ascii_case("chunked") || chunked {
                        return Err(ParseError::UnsupportedTransferCoding);
                    }
                    chunked = true;
                }
            }
            "host" => hosts += 1,
            "connection" => {
                for token in String::from_utf8_lossy(value).split(',').map(str::trim) {
                    connection_close |= token.eq_ignore_ascii_case("close");
                    connection_keep_alive |= token.eq_ignore_ascii_case("keep-alive");
                }
            }
            "expect" => {
                if value.eq_ignore_ascii_case(b"100-continue") {
                    expect_continue = version == Version::Http11;
                } else {
                    return Err(ParseError::ExpectationFailed);
                }
            }
            _ => {}
        }
        fields.push((name, value.to_vec()));
    }
    // RFC 9112 §3.2: no Host in HTTP/1.1, or more than one in any version, is a 400.
    if version == Version::Http11 && hosts == 0 {
        return Err(ParseError::Malformed("missing host header"));
    }
    if hosts > 1 {
        return Err(ParseError::Malformed("more than one host header"));
    }
    // RFC 9112 §6.3: a Transfer-Encoding whose final coding is not chunked (here: one with no
    // coding at all) leaves the body's length unknown.
    if transfer_encoding && !chunked {
        return Err(ParseError::Malformed("transfer-encoding without a coding"));
    }
    let framing = match (chunked, content_length) {
        (true, Some(_)) => return Err(ParseError::Malformed("both content-length and transfer-encoding")),
        (true, None) => Framing::Chunked,
        (false, Some(0) | None) => Framing::Empty,
        (false, Some(n)) => Framing::Length(n),
    };
    let keep_alive = match version {
        Version::Http11 => !connection_close,
        Version::Http10 => connection_keep_alive && !connection_close,
    };
    // The connection, which knows both ends' addresses, fills in `remote_addr` and
    // `local_addr`. The listener speaks plain HTTP: TLS, if any, ends in front of it.
    let head = RequestHead {
        method,
        target,
        protocol: version.as_str().to_owned(),
        remote_addr: None,
        local_addr: None,
        cgi_vars: None,
        https: false,
        headers: fields,
    };
    Ok(Some((Parsed { head, version, framing, keep_alive, expect_continue }, len)))
}

/// Accepts origin-form (`/path?query`) and absolute-form (`http://host/path`) targets
/// (RFC 9112 §3.2) and returns origin-form.
fn normalize_target(target: &str) -> Result<String, ParseError> {
    if target.starts_with('/') {
        return Ok(target.to_owned());
    }
    for scheme in ["http://", "https://"] {
        // By bytes: the target may hold UTF-8, and `scheme.len()` need not fall on a character
        // boundary.
        if target.as_bytes().get(..scheme.len()).is_some_and(|prefix| prefix.eq_ignore_ascii_case(scheme.as_bytes())) {
            let rest = &target[scheme.len()..];
            return Ok(match rest.find(['/', '?']) {
                Some(i) if rest.as_bytes()[i] == b'/' => rest[i..].to_owned(),
                Some(i) => format!("/{}", &rest[i..]),
                None => "/".to_owned(),
            });
        }
    }
    Err(ParseError::Malformed("request target must be a path"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits { max_bytes: 1024, max_headers: 8 };

    fn ok(raw: &str) -> Parsed {
        parse(raw.as_bytes(), LIMITS).unwrap().unwrap().0
    }

    fn err(raw: &str) -> ParseError {
        parse(raw.as_bytes(), LIMITS).unwrap_err()
    }

    #[test]
    fn parses_a_simple_get() {
        let raw = "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Y: z\r\n\r\nrest";
        let (parsed, len) = parse(raw.as_bytes(), LIMITS).unwrap().unwrap();
        assert_eq!(len, raw.len() - 4);
        assert_eq!(parsed.head.method, "GET");
        assert_eq!(parsed.head.target, "/a?b=1");
        assert_eq!(parsed.head.headers[1], ("x-y".to_owned(), b"z".to_vec()));
        assert_eq!(parsed.framing, Framing::Empty);
        assert!(parsed.keep_alive);
    }

    #[test]
    fn partial_heads_need_more() {
        assert!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n", LIMITS).unwrap().is_none());
    }

    #[test]
    fn framing_and_keep_alive() {
        assert_eq!(ok("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n").framing, Framing::Length(5));
        assert_eq!(ok("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n").framing, Framing::Length(5));
        assert_eq!(ok("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").framing, Framing::Chunked);
        assert!(!ok("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!ok("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(ok("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n").expect_continue);
        assert_eq!(ok("GET http://example.com/p?q HTTP/1.1\r\nHost: x\r\n\r\n").head.target, "/p?q");
        assert_eq!(ok("GET http://example.com HTTP/1.1\r\nHost: x\r\n\r\n").head.target, "/");
    }

    #[test]
    fn rejects_what_could_smuggle_or_confuse() {
        assert_eq!(err("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n").status(), 400);
        assert_eq!(err("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n").status(), 400);
        assert_eq!(err("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n").status(), 400);
        assert_eq!(err("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").status(), 501);
        assert_eq!(err("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n").status(), 400);
        assert_eq!(err("GET / HTTP/1.1\r\n\r\n").status(), 400);
        assert_eq!(err("GET / HTTP/1.1\r\nHost: x\r\nExpect: tea\r\n\r\n").status(), 417);
        assert_eq!(err("GET * HTTP/1.1\r\nHost: x\r\n\r\n").status(), 400);
        assert_eq!(err("G@T / HTTP/1.1\r\nHost: x\r\n\r\n"), ParseError::Malformed("invalid method"));
        assert_eq!(err("GET /hello\r\n\r\n"), ParseError::Malformed("invalid request target, or no HTTP version after it"));
        assert_eq!(
            err("GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n"),
            ParseError::Malformed("invalid request target, or no HTTP version after it")
        );
        assert_eq!(err("GET / HTTP/2.0\r\nHost: x\r\n\r\n").status(), 505);
        assert_eq!(err("BLAH\r\n\r\n").status(), 400);
        assert_eq!(err("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\nContent-Length: 5\r\n\r\n").status(), 400);
        assert_eq!(err("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,\r\n\r\n").status(), 400);
        assert_eq!(err("GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n").status(), 400);
        assert_eq!(err("GET / HTTP/1.0\r\nHost: x\r\nhost: x\r\n\r\n").status(), 400);
    }

    #[test]
    fn a_target_with_utf8_is_refused_not_a_panic() {
        // httparse passes bytes 0x80..=0xFF in the target; "é" straddles byte 7 here, where the
        // scheme check ("http://") ends.
        assert_eq!(err("GET aaaaaa\u{e9} HTTP/1.1\r\nHost: x\r\n\r\n").status(), 400);
        assert_eq!(err("GET http:/\u{e9}x HTTP/1.1\r\nHost: x\r\n\r\n").status(), 400);
        assert_eq!(ok("GET /caf\u{e9} HTTP/1.1\r\nHost: x\r\n\r\n").head.target, "/caf\u{e9}");
    }

    /// A small deterministic fuzz: near-HTTP heads are parsed, refused or found incomplete,
    /// never a panic, and a parsed head never claims more bytes than it was given.
    #[test]
    fn arbitrary_heads_never_panic() {
        let mut arbitrary = crate::arbitrary::Arbitrary::new();
        let tokens = [
            "GET ",
            "POST ",
            "/",
            "/a?b",
            "http://h/p",
            "*",
            " HTTP/1.1",
            " HTTP/1.0",
            "\r\n",
            "\n",
            "Host: x",
            "Content-Length: ",
            "5",
            "+1",
            ", ",
            "Transfer-Encoding: ",
            "chunked",
            "gzip",
            "Connection: ",
            "close",
            "Expect: 100-continue",
            ": ",
            " ",
            "\u{e9}",
            "h\u{e9}",
        ];
        for _ in 0..20_000 {
            let input = arbitrary.tokens(&tokens, 24);
            if let Ok(Some((_, len))) = parse(&input, LIMITS) {
                assert!(len <= input.len());
            }
        }
    }

    #[test]
    fn limits_give_431() {
        let many: String = (0..9).map(|i| format!("h{i}: v\r\n")).collect();
        assert_eq!(err(&format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n")).status(), 431);
        let long = "a".repeat(2000);
        assert_eq!(err(&format!("GET / HTTP/1.1\r\nHost: x\r\nX: {long}")).status(), 431);
        assert_eq!(err(&format!("GET / HTTP/1.1\r\nHost: x\r\nX: {long}\r\n\r\n")).status(), 431);
    }
}
