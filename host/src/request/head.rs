//! The protocol-neutral request and response heads: what a guest sees of the request line and
//! headers whichever front end received them, and the status and headers it answers with.

use std::ops::Range;
use std::sync::Arc;
use thiserror::Error;

/// The request line and headers, as the guest sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// The method, for example `GET`.
    pub method: String,
    /// Path plus query, for example `/seed-a?iua=1`.
    pub target: String,
    /// `HTTP/1.0` or `HTTP/1.1` (over FastCGI, what the web server says).
    pub protocol: String,
    /// The client's address (`IP:PORT`), if the front end knows one.
    pub remote_addr: Option<Arc<str>>,
    /// The server's address the client reached (`IP:PORT`), if the front end knows one: the
    /// HTTP listener's side of a TCP connection. Over FastCGI the web server's variables say it.
    pub local_addr: Option<Arc<str>>,
    /// The CGI variables a web server sent besides the headers (FastCGI's `PARAMS` other than
    /// `HTTP_*`), in arrival order; `None` for a request that came with none (HTTP).
    pub cgi_vars: Option<CgiVars>,
    /// Whether the client's connection was TLS: never over Tether's plain HTTP listener; over
    /// FastCGI, whether the web server says so.
    pub https: bool,
    /// Headers in arrival order, names lowercased, values as raw bytes.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl RequestHead {
    /// The path part of the target, which routing uses.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target.as_str(), |(path, _)| path)
    }

    /// Whether this is a HEAD request, whose response carries no body.
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// The scheme the client used: `https` when its connection was TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }

    /// The request's CGI variables besides the headers (PHP's `$_SERVER` without `HTTP_*`):
    /// what the web server sent, or for a request that came without any, the ones this head
    /// knows (RFC 3875 §4.1 names).
    pub fn server_vars(&self) -> Vec<(String, Vec<u8>)> {
        if let Some(vars) = &self.cgi_vars {
            return vars.iter().map(|(name, value)| (String::from_utf8_lossy(name).into_owned(), value.to_vec())).collect();
        }
        let query = self.target.split_once('?').map_or("", |(_, query)| query);
        let mut vars: Vec<(&str, &str)> = vec![
            ("SERVER_SOFTWARE", SERVER_SOFTWARE),
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("SERVER_PROTOCOL", &self.protocol),
            ("REQUEST_SCHEME", self.scheme()),
            ("REQUEST_METHOD", &self.method),
            ("REQUEST_URI", &self.target),
            ("QUERY_STRING", query),
        ];
        for (addr, [host_var, port_var]) in
            [(&self.local_addr, ["SERVER_ADDR", "SERVER_PORT"]), (&self.remote_addr, ["REMOTE_ADDR", "REMOTE_PORT"])]
        {
            if let Some((host, port)) = addr.as_deref().and_then(split_host_port) {
                vars.extend([(host_var, host), (port_var, port)]);
            }
        }
        vars.into_iter().map(|(name, value)| (name.to_owned(), value.as_bytes().to_vec())).collect()
    }
}

/// CGI variables as a web server sent them, left where they came: the bytes of its parameter
/// stream and where each variable's name and value lie in them. Guests rarely ask for them, so
/// they are not copied into strings per request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgiVars {
    /// The parameter stream.
    bytes: Vec<u8>,
    /// Each variable's name and value in `bytes`, in arrival order.
    vars: Vec<(Range<usize>, Range<usize>)>,
}

impl CgiVars {
    /// The variables at `vars` in `bytes`. Panics if one lies outside `bytes`.
    pub fn new(bytes: Vec<u8>, vars: Vec<(Range<usize>, Range<usize>)>) -> Self {
        assert!(vars.iter().all(|(name, value)| name.end <= bytes.len() && value.end <= bytes.len()), "a variable outside its bytes");
        Self { bytes, vars }
    }

    /// Each variable's name and value, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.vars.iter().map(|(name, value)| (&self.bytes[name.clone()], &self.bytes[value.clone()]))
    }
}

/// `SERVER_SOFTWARE` for requests that came without CGI variables.
const SERVER_SOFTWARE: &str = concat!("tether/", env!("CARGO_PKG_VERSION"));

/// Splits `IP:PORT` or `[IPv6]:PORT` into the address (without brackets) and the port.
fn split_host_port(addr: &str) -> Option<(&str, &str)> {
    let (host, port) = addr.rsplit_once(':')?;
    Some((host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host), port))
}

/// Why a change to the response head was refused. Mirrors the WIT `head-error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum HeadError {
    /// The head is already on the wire.
    #[error("headers already sent")]
    HeadersSent,
    /// Not a valid status code, header name or header value.
    #[error("invalid status or header")]
    Invalid,
    /// The header frames the response and belongs to the host.
    #[error("header is reserved for the host")]
    Reserved,
}

/// Headers that frame the message on the wire, and `status`, which carries the status in a CGI
/// response (FastCGI) and would let a guest pass `set_status`'s check; the front end owns them.
const RESERVED_HEADERS: &[&str] = &["content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "trailer", "status"];

/// The response status and headers a guest sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code, 200 unless the guest changes it.
    pub status: u16,
    /// Header names (lowercased) and values, in the order set.
    pub headers: Vec<(String, String)>,
    /// The body's length, when the guest declared it before the body (a wasi:http response's
    /// `content-length`) and the runtime holds it to that: the front ends then frame a streamed
    /// body with it instead of chunks. `None` for Tether guests, whose framing is the host's.
    pub declared_length: Option<u64>,
}

impl Default for ResponseHead {
    fn default() -> Self {
        Self { status: 200, headers: Vec::new(), declared_length: None }
    }
}

/// The `retry-after` of the host's own 503s (every instance busy, no room for another, shutting
/// down), in seconds: a client or proxy that honours it comes back once a burst has had time to
/// pass instead of at once (RFC 9110 §10.2.3).
pub const RETRY_AFTER_SECONDS: &str = "1";

impl ResponseHead {
    /// A plain-text head for a response the host itself generates; a 503 says when to retry.
    pub fn host_error(status: u16) -> Self {
        let mut headers = vec![("content-type".to_owned(), "text/plain; charset=utf-8".to_owned())];
        if status == 503 {
            headers.push(("retry-after".to_owned(), RETRY_AFTER_SECONDS.to_owned()));
        }
        Self { status, headers, declared_length: None }
    }

    /// Whether a response with this status never has a body on the wire: 204 and 304 (RFC 9110
    /// §6.4.1; the guest cannot set 1xx). Such a response gets no `content-length` or
    /// `transfer-encoding`, and the guest's output for it is dropped, as for HEAD.
    pub fn bodiless(&self) -> bool {
        matches!(self.status, 204 | 304)
    }

    /// Sets the status. HTTP status codes are three digits; 1xx are informational and not a
    /// final response, so a guest may not choose them.
    pub fn set_status(&mut self, status: u16) -> Result<(), HeadError> {
        if !(200..=999).contains(&status) {
            return Err(HeadError::Invalid);
        }
        self.status = status;
        Ok(())
    }

    /// Replaces every header called `name` with one `name: value`.
    pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), HeadError> {
        let name = validate_header(name, value)?;
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.to_owned()));
        Ok(())
    }

    /// Adds `name: value`, keeping earlier headers of the same name.
    pub fn append_header(&mut self, name: &str, value: &str) -> Result<(), HeadError> {
        let name = validate_header(name, value)?;
        self.headers.push((name, value.to_owned()));
        Ok(())
    }

    /// Removes every header called `name`; the name is checked as [`ResponseHead::set_header`]
    /// checks it.
    pub fn remove_header(&mut self, name: &str) -> Result<(), HeadError> {
        let name = validate_header(name, "")?;
        self.headers.retain(|(n, _)| *n != name);
        Ok(())
    }
}

/// Whether `b` may appear in a `token` (RFC 9110 §5.6.2): a method or a header name.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks a header against RFC 9110 §5.1 (a name is a `token`) and §5.5 (a value is visible
/// characters, spaces and tabs, never CR, LF or NUL, which would split the response) and returns
/// the lowercased name.
fn validate_header(name: &str, value: &str) -> Result<String, HeadError> {
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(HeadError::Invalid);
    }
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0 || (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(HeadError::Invalid);
    }
    let name = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&name.as_str()) {
        return Err(HeadError::Reserved);
    }
    Ok(name)
}

/// The reason phrase for common statuses (RFC 9110 §15); others get none, which is valid.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_validation_blocks_response_splitting() {
        let mut head = ResponseHead::default();
        assert_eq!(head.set_header("x-a", "ok\r\nset-cookie: evil"), Err(HeadError::Invalid));
        assert_eq!(head.set_header("bad name", "v"), Err(HeadError::Invalid));
        assert_eq!(head.set_header("", "v"), Err(HeadError::Invalid));
        assert_eq!(head.set_header("Content-Length", "5"), Err(HeadError::Reserved));
        assert_eq!(head.set_header("Status", "100 Continue"), Err(HeadError::Reserved));
        assert_eq!(head.set_header("X-A", "1\t2"), Ok(()));
        assert_eq!(head.append_header("x-a", "3"), Ok(()));
        assert_eq!(head.headers.len(), 2);
        assert_eq!(head.set_header("x-a", "4"), Ok(()));
        assert_eq!(head.headers, vec![("x-a".to_owned(), "4".to_owned())]);
    }

    #[test]
    fn remove_header_removes_every_field_of_the_name() {
        let mut head = ResponseHead::default();
        head.append_header("x-a", "1").unwrap();
        head.append_header("x-b", "2").unwrap();
        head.append_header("x-a", "3").unwrap();
        assert_eq!(head.remove_header("X-A"), Ok(()));
        assert_eq!(head.headers, vec![("x-b".to_owned(), "2".to_owned())]);
        assert_eq!(head.remove_header("x-absent"), Ok(()), "nothing to remove is not an error");
        assert_eq!(head.remove_header("content-length"), Err(HeadError::Reserved));
        assert_eq!(head.remove_header("bad name"), Err(HeadError::Invalid));
    }

    #[test]
    fn status_must_be_a_final_three_digit_code() {
        let mut head = ResponseHead::default();
        assert_eq!(head.set_status(101), Err(HeadError::Invalid));
        assert_eq!(head.set_status(1000), Err(HeadError::Invalid));
        assert_eq!(head.set_status(404), Ok(()));
        assert_eq!(head.status, 404);
    }

    #[test]
    fn path_drops_the_query() {
        let head = RequestHead {
            method: "GET".into(),
            target: "/a/b?x=1".into(),
            protocol: "HTTP/1.1".into(),
            remote_addr: None,
            local_addr: None,
            cgi_vars: None,
            https: false,
            headers: vec![],
        };
        assert_eq!(head.path(), "/a/b");
    }

    #[test]
    fn server_vars_are_what_the_web_server_sent_or_what_the_head_knows() {
        let mut head = RequestHead {
            method: "POST".into(),
            target: "/a/b?x=1&y".into(),
            protocol: "HTTP/1.1".into(),
            remote_addr: Some("[::1]:50000".into()),
            local_addr: Some("127.0.0.1:8080".into()),
            cgi_vars: None,
            https: false,
            headers: vec![("host".into(), b"t".to_vec())],
        };
        let vars = head.server_vars();
        let var = |name: &str| vars.iter().find(|(n, _)| n == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned());
        assert_eq!(var("REQUEST_METHOD").as_deref(), Some("POST"));
        assert_eq!(var("REQUEST_URI").as_deref(), Some("/a/b?x=1&y"));
        assert_eq!(var("QUERY_STRING").as_deref(), Some("x=1&y"));
        assert_eq!(var("REQUEST_SCHEME").as_deref(), Some("http"));
        assert_eq!(var("SERVER_ADDR").as_deref(), Some("127.0.0.1"));
        assert_eq!(var("SERVER_PORT").as_deref(), Some("8080"));
        assert_eq!(var("REMOTE_ADDR").as_deref(), Some("::1"));
        assert_eq!(var("REMOTE_PORT").as_deref(), Some("50000"));
        assert!(vars.iter().all(|(name, _)| !name.starts_with("HTTP_")), "headers are not repeated");
        head.cgi_vars = Some(CgiVars::new(b"APP_ENVprod".to_vec(), vec![(0..7, 7..11)]));
        assert_eq!(head.server_vars(), vec![("APP_ENV".to_owned(), b"prod".to_vec())]);
    }
}
