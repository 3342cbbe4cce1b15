//! Maps CGI parameters (RFC 3875 §4.1, as a web server sends them in FastCGI `PARAMS`, spec
//! §5.2) to the request the guest sees, and the guest's response head to a CGI response
//! header block (RFC 3875 §6.3), which FastCGI carries on `STDOUT` (spec §6.2).

use super::record::PairSpans;
use crate::manifest::RouteBy;
use crate::request::{CgiVars, RequestHead, ResponseHead, reason_phrase};
use std::io::Write as _;
use thiserror::Error;

/// A request described by CGI parameters.
#[derive(Debug, PartialEq, Eq)]
pub struct CgiRequest {
    /// What the guest sees.
    pub head: RequestHead,
    /// The path that picks the route.
    pub route_path: String,
    /// RFC 3875 §4.1.2 `CONTENT_LENGTH`, if given.
    pub content_length: Option<u64>,
}

/// Why the parameters do not describe a request.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MappingError {
    /// A required parameter is missing or not text.
    #[error("missing or invalid CGI parameter {0}")]
    Missing(&'static str),
    /// `CONTENT_LENGTH` is not a number.
    #[error("invalid CONTENT_LENGTH")]
    ContentLength,
}

fn text(value: &[u8], name: &'static str) -> Result<String, MappingError> {
    std::str::from_utf8(value).map(str::to_owned).map_err(|_| MappingError::Missing(name))
}

/// Builds the request from the PARAMS stream `params`, whose pairs lie at `pairs`. The stream
/// stays whole as the request's CGI variables.
pub fn request(params: Vec<u8>, pairs: PairSpans, route_by: RouteBy) -> Result<CgiRequest, MappingError> {
    let mut method = None;
    let mut request_uri = None;
    let mut script_name = None;
    let mut path_info = None;
    let mut query = None;
    let mut protocol = None;
    let mut content_length = None;
    let mut remote_addr = None;
    let mut remote_port = None;
    let mut https = false;
    let mut headers = Vec::new();
    let mut vars = Vec::with_capacity(pairs.len());
    for (name_at, value_at) in pairs {
        let (name, value) = (&params[name_at.clone()], &params[value_at.clone()]);
        // RFC 3875 §4.1.18: protocol-specific meta-variables carry the request headers. Those
        // that CONTENT_LENGTH and CONTENT_TYPE carry are not repeated (nginx sends both), so the
        // guest gets each header once.
        if let Some(field) = name.strip_prefix(b"HTTP_") {
            if field != b"CONTENT_LENGTH" && field != b"CONTENT_TYPE" {
                headers.push((String::from_utf8_lossy(field).to_ascii_lowercase().replace('_', "-"), value.to_vec()));
            }
            continue;
        }
        match name {
            // RFC 3875 §4.1.12.
            b"REQUEST_METHOD" => method = Some(text(value, "REQUEST_METHOD")?),
            // Not in RFC 3875; every common server sends the original target as REQUEST_URI.
            b"REQUEST_URI" => request_uri = Some(text(value, "REQUEST_URI")?),
            // RFC 3875 §4.1.13.
            b"SCRIPT_NAME" => script_name = Some(text(value, "SCRIPT_NAME")?),
            // RFC 3875 §4.1.5.
            b"PATH_INFO" => path_info = Some(text(value, "PATH_INFO")?),
            // RFC 3875 §4.1.7.
            b"QUERY_STRING" => query = Some(text(value, "QUERY_STRING")?),
            // RFC 3875 §4.1.16.
            b"SERVER_PROTOCOL" => protocol = Some(text(value, "SERVER_PROTOCOL")?),
            // RFC 3875 §4.1.8; REMOTE_PORT is not in it, but web servers send it.
            b"REMOTE_ADDR" if !value.is_empty() => remote_addr = Some(text(value, "REMOTE_ADDR")?),
            b"REMOTE_PORT" if !value.is_empty() => remote_port = Some(text(value, "REMOTE_PORT")?),
            // Not in RFC 3875: web servers set HTTPS to a non-empty value (`on`; IIS says `off`
            // otherwise) for a TLS client, and nginx also sends REQUEST_SCHEME.
            b"HTTPS" => https |= !value.is_empty() && !value.eq_ignore_ascii_case(b"off"),
            b"REQUEST_SCHEME" => https |= value.eq_ignore_ascii_case(b"https"),
            // RFC 3875 §4.1.2: the body length; also the guest's content-length header.
            b"CONTENT_LENGTH" => {
                let length = text(value, "CONTENT_LENGTH")?;
                if !length.is_empty() {
                    content_length = Some(length.trim().parse().map_err(|_| MappingError::ContentLength)?);
                    headers.push(("content-length".to_owned(), value.to_vec()));
                }
            }
            // RFC 3875 §4.1.3.
            b"CONTENT_TYPE" if !value.is_empty() => headers.push(("content-type".to_owned(), value.to_vec())),
            _ => {}
        }
        // Every other variable (SCRIPT_FILENAME, DOCUMENT_ROOT, SERVER_NAME, a `fastcgi_param`
        // of the web server's own...) reaches the guest as it came, and so do the ones above.
        vars.push((name_at, value_at));
    }
    let method = method.ok_or(MappingError::Missing("REQUEST_METHOD"))?;
    let target = match request_uri {
        Some(uri) if uri.starts_with('/') => uri,
        _ => {
            let mut target = format!("{}{}", script_name.as_deref().unwrap_or(""), path_info.as_deref().unwrap_or(""));
            if !target.starts_with('/') {
                return Err(MappingError::Missing("REQUEST_URI or SCRIPT_NAME"));
            }
            if let Some(query) = query.filter(|q| !q.is_empty()) {
                target.push('?');
                target.push_str(&query);
            }
            target
        }
    };
    let remote_addr = remote_addr.map(|addr| match remote_port {
        Some(port) if addr.contains(':') => format!("[{addr}]:{port}").into(),
        Some(port) => format!("{addr}:{port}").into(),
        None => addr.into(),
    });
    let head = RequestHead {
        method,
        target,
        protocol: protocol.unwrap_or_else(|| "HTTP/1.1".to_owned()),
        remote_addr,
        local_addr: None,
        cgi_vars: Some(CgiVars::new(params, vars)),
        https,
        headers,
    };
    let route_path = match (route_by, script_name) {
        (RouteBy::ScriptName, Some(script)) if script.starts_with('/') => script,
        _ => head.path().to_owned(),
    };
    Ok(CgiRequest { head, route_path, content_length })
}

/// The status a CGI response without a `Status` field has (RFC 3875 §6.3.3: "200 OK").
const DEFAULT_STATUS: u16 = 200;

/// Appends the CGI response header block: `Status` (RFC 3875 §6.3.3) unless it is 200, the
/// guest's headers, `Content-Length` when the whole body is known (and the status has one), and
/// the blank line. A 200 goes without `Status`, as php-fpm sends it: Caddy's FastCGI transport
/// passes a `Status` field on to the client as a response header, and nginx and Apache take its
/// absence for 200. A 200 with no other field still says its status, as a CGI response has at
/// least one field (§6.2): Apache takes an empty header block for part of the body. With a
/// length the web server passes the response on as it is instead of chunking it, as the HTTP
/// front end frames a response whose guest never flushed (or that declared its length).
pub fn response_head(out: &mut Vec<u8>, head: &ResponseHead, body_len: Option<usize>) {
    let declared = head.declared_length.and_then(|length| usize::try_from(length).ok());
    let length = body_len.or(declared).filter(|_| !head.bodiless());
    if head.status != DEFAULT_STATUS || (head.headers.is_empty() && length.is_none()) {
        let _ = write!(out, "Status: {} {}\r\n", head.status, reason_phrase(head.status));
    }
    for (name, value) in &head.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(len) = length {
        let _ = write!(out, "Content-Length: {len}\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pairs` as a PARAMS stream, mapped.
    fn request(pairs: &[(&str, &str)], route_by: RouteBy) -> Result<CgiRequest, MappingError> {
        let mut params = Vec::new();
        for (name, value) in pairs {
            crate::fastcgi::record::encode_pair(&mut params, name.as_bytes(), value.as_bytes());
        }
        let spans = crate::fastcgi::record::parse_pairs(&params, pairs.len()).expect("pairs");
        super::request(params, spans, route_by)
    }

    #[test]
    fn nginx_parameters_become_the_same_request_as_over_http() {
        let request = request(
            &[
                ("REQUEST_METHOD", "POST"),
                ("REQUEST_URI", "/seed-a?iua=1"),
                ("SCRIPT_NAME", "/seed-a"),
                ("QUERY_STRING", "iua=1"),
                ("SERVER_PROTOCOL", "HTTP/1.0"),
                ("CONTENT_TYPE", "text/plain"),
                ("CONTENT_LENGTH", "4"),
                ("HTTP_HOST", "example"),
                ("REMOTE_ADDR", "::1"),
                ("REMOTE_PORT", "4711"),
                ("HTTP_CONTENT_TYPE", "text/plain"),
                ("HTTP_CONTENT_LENGTH", "4"),
                ("HTTP_X_FORWARDED_FOR", "1.2.3.4"),
                ("GATEWAY_INTERFACE", "CGI/1.1"),
            ],
            RouteBy::RequestUri,
        )
        .unwrap();
        assert_eq!(request.head.method, "POST");
        assert_eq!(request.head.target, "/seed-a?iua=1");
        assert_eq!(request.head.protocol, "HTTP/1.0");
        assert_eq!(request.content_length, Some(4));
        assert_eq!(request.head.remote_addr.as_deref(), Some("[::1]:4711"));
        assert!(!request.head.https, "no HTTPS parameter: a plain HTTP client");
        assert_eq!(request.route_path, "/seed-a");
        let names: Vec<_> = request.head.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["content-type", "content-length", "host", "x-forwarded-for"]);
        // Every variable but the headers reaches the guest as it came, in order.
        let vars: Vec<_> = request.head.server_vars().into_iter().map(|(n, _)| n).collect();
        let expected = [
            "REQUEST_METHOD",
            "REQUEST_URI",
            "SCRIPT_NAME",
            "QUERY_STRING",
            "SERVER_PROTOCOL",
            "CONTENT_TYPE",
            "CONTENT_LENGTH",
            "REMOTE_ADDR",
            "REMOTE_PORT",
            "GATEWAY_INTERFACE",
        ];
        assert_eq!(vars, expected);
    }

    #[test]
    fn https_is_what_the_web_server_says() {
        let https = |pairs: &[(&str, &str)]| {
            let mut all = vec![("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/")];
            all.extend_from_slice(pairs);
            request(&all, RouteBy::RequestUri).unwrap().head.https
        };
        assert!(https(&[("HTTPS", "on")]));
        assert!(https(&[("REQUEST_SCHEME", "https")]));
        assert!(https(&[("HTTPS", "1"), ("REQUEST_SCHEME", "http")]), "either says TLS");
        assert!(!https(&[("HTTPS", "off")]), "IIS's way of saying no");
        assert!(!https(&[("HTTPS", ""), ("REQUEST_SCHEME", "http")]), "nginx's `$https` is empty without TLS");
        assert!(!https(&[]));
    }

    #[test]
    fn without_request_uri_the_target_is_rebuilt() {
        let request = request(
            &[("REQUEST_METHOD", "GET"), ("SCRIPT_NAME", "/app"), ("PATH_INFO", "/x"), ("QUERY_STRING", "a=1")],
            RouteBy::ScriptName,
        )
        .unwrap();
        assert_eq!(request.head.target, "/app/x?a=1");
        assert_eq!(request.route_path, "/app");
        assert_eq!(request.content_length, None);
    }

    #[test]
    fn missing_or_bad_parameters_are_errors() {
        assert_eq!(request(&[("REQUEST_URI", "/")], RouteBy::RequestUri), Err(MappingError::Missing("REQUEST_METHOD")));
        assert_eq!(
            request(&[("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/"), ("CONTENT_LENGTH", "x")], RouteBy::RequestUri),
            Err(MappingError::ContentLength)
        );
        assert!(request(&[("REQUEST_METHOD", "GET")], RouteBy::RequestUri).is_err());
    }

    #[test]
    fn the_response_head_is_a_cgi_header_block() {
        /// A response head and what it must become.
        struct Case {
            /// The guest's status.
            status: u16,
            /// The guest's headers.
            headers: &'static [(&'static str, &'static str)],
            /// A length the guest declared.
            declared: Option<u64>,
            /// The body's length, when the whole body is known.
            body_len: Option<usize>,
            /// The header block.
            expected: &'static str,
            /// What the case shows.
            why: &'static str,
        }
        const TEXT: &[(&str, &str)] = &[("content-type", "text/plain")];
        let case = |status, headers, declared, body_len, expected, why| Case { status, headers, declared, body_len, expected, why };
        let cases = [
            case(404, TEXT, None, None, "Status: 404 Not Found\r\ncontent-type: text/plain\r\n\r\n", "a streamed head"),
            case(
                404,
                TEXT,
                None,
                Some(6),
                "Status: 404 Not Found\r\ncontent-type: text/plain\r\nContent-Length: 6\r\n\r\n",
                "a whole body",
            ),
            case(204, TEXT, None, Some(6), "Status: 204 No Content\r\ncontent-type: text/plain\r\n\r\n", "a 204 has no body to measure"),
            case(
                200,
                TEXT,
                None,
                Some(6),
                "content-type: text/plain\r\nContent-Length: 6\r\n\r\n",
                "a 200 goes without Status, as from php-fpm",
            ),
            case(200, TEXT, None, None, "content-type: text/plain\r\n\r\n", "a streamed 200"),
            case(200, TEXT, Some(10), None, "content-type: text/plain\r\nContent-Length: 10\r\n\r\n", "a declared length, streamed"),
            case(200, &[], None, Some(6), "Content-Length: 6\r\n\r\n", "the length is a field"),
            case(200, &[], None, None, "Status: 200 OK\r\n\r\n", "a streamed 200 without headers still has a field"),
        ];
        for Case { status, headers, declared, body_len, expected, why } in cases {
            let mut head = ResponseHead::default();
            head.set_status(status).unwrap();
            for (name, value) in headers {
                head.set_header(name, value).unwrap();
            }
            head.declared_length = declared;
            let mut out = Vec::new();
            response_head(&mut out, &head, body_len);
            assert_eq!(String::from_utf8_lossy(&out), expected, "{why}");
        }
    }
}
