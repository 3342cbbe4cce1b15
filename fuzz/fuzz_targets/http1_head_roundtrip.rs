//! A structured, differential target for the HTTP/1.1 head parser: the fuzzer's bytes choose a
//! valid request head (method, origin-form target, version, fields, framing, `Connection`),
//! which an encoder written here, not the host's, serialises per RFC 9112. The parser must take
//! all of it back: the same method, target, version, fields (names lowercased), framing and
//! keep-alive, and exactly the bytes of the head.

#![no_main]

use host::http1::parse::{Framing, HeadLimits, Version, parse};
use host::manifest::{DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADERS};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const LIMITS: HeadLimits = HeadLimits { max_bytes: DEFAULT_MAX_HEADER_BYTES as usize, max_headers: DEFAULT_MAX_HEADERS };

/// RFC 9110 §5.6.2: `tchar`, what a method and a field name are made of.
const TCHAR: &[u8] = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// RFC 3986 `pchar` and the `/` and `?` of a path and query, as an origin-form target holds.
const TARGET_CHAR: &[u8] = b"-._~!$&'()*+,;=:@/?%0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Longest generated token, target or value; with the field count below, a head stays within
/// the default limits.
const MAX_LEN: usize = 64;
/// Most generated fields besides the framing ones.
const MAX_FIELDS: usize = 40;
/// Fields the generator sets itself, with the framing and keep-alive they mean.
const FRAMING_FIELDS: [&str; 5] = ["content-length", "transfer-encoding", "host", "connection", "expect"];

/// 1 to `MAX_LEN` bytes drawn from `set`.
fn word(u: &mut Unstructured, set: &[u8]) -> Result<String> {
    let len = u.int_in_range(1..=MAX_LEN)?;
    (0..len).map(|_| u.choose(set).map(|&b| char::from(b))).collect()
}

/// RFC 9110 §5.5: a field value with no leading or trailing whitespace: visible ASCII, with
/// spaces and tabs inside. (obs-text is left out: the head's values are compared as text.)
fn value(u: &mut Unstructured) -> Result<Vec<u8>> {
    let len = u.int_in_range(0..=MAX_LEN)?;
    let mut out: Vec<u8> = (0..len).map(|_| u.int_in_range(0x20..=0x7e)).collect::<Result<_>>()?;
    if u.ratio(1, 8)? && !out.is_empty() {
        let at = u.choose_index(out.len())?;
        out[at] = b'\t';
    }
    while out.first().is_some_and(|b| b" \t".contains(b)) {
        out.remove(0);
    }
    while out.last().is_some_and(|b| b" \t".contains(b)) {
        out.pop();
    }
    Ok(out)
}

/// A generated head and what it means.
struct Head {
    method: String,
    target: String,
    version: Version,
    fields: Vec<(String, Vec<u8>)>,
    framing: Framing,
    keep_alive: bool,
}

fn head(u: &mut Unstructured) -> Result<Head> {
    let method = word(u, TCHAR)?;
    let target = format!("/{}", if u.arbitrary()? { word(u, TARGET_CHAR)? } else { String::new() });
    let version = if u.ratio(1, 4)? { Version::Http10 } else { Version::Http11 };
    let mut fields = Vec::new();
    if version == Version::Http11 || u.arbitrary()? {
        fields.push(("Host".to_owned(), value(u)?));
    }
    for _ in 0..u.int_in_range(0..=MAX_FIELDS)? {
        let name = word(u, TCHAR)?;
        if !FRAMING_FIELDS.contains(&name.to_ascii_lowercase().as_str()) {
            fields.push((name, value(u)?));
        }
    }
    let framing = match u.int_in_range(0..=2)? {
        1 if version == Version::Http11 => Framing::Chunked,
        2 => Framing::Length(u.arbitrary()?),
        _ => Framing::Empty,
    };
    match framing {
        Framing::Chunked => fields.push(("Transfer-Encoding".to_owned(), b"chunked".to_vec())),
        Framing::Length(n) => fields.push(("Content-Length".to_owned(), n.to_string().into_bytes())),
        Framing::Empty => {}
    }
    let connection = *u.choose(&[None, Some("close"), Some("keep-alive")])?;
    if let Some(token) = connection {
        fields.push(("Connection".to_owned(), token.as_bytes().to_vec()));
    }
    let keep_alive = match version {
        Version::Http11 => connection != Some("close"),
        Version::Http10 => connection == Some("keep-alive"),
    };
    let framing = if framing == Framing::Length(0) { Framing::Empty } else { framing };
    Ok(Head { method, target, version, fields, framing, keep_alive })
}

/// RFC 9112 §2.1: request line, field lines, an empty line; CRLF throughout.
fn encode(head: &Head) -> Vec<u8> {
    let version = match head.version {
        Version::Http10 => "HTTP/1.0",
        Version::Http11 => "HTTP/1.1",
    };
    let mut out = format!("{} {} {version}\r\n", head.method, head.target).into_bytes();
    for (name, value) in &head.fields {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(head) = head(&mut Unstructured::new(data)) else {
        return;
    };
    let bytes = encode(&head);
    let (parsed, len) = match parse(&bytes, LIMITS) {
        Ok(Some(parsed)) => parsed,
        other => panic!("a valid head was not parsed: {other:?}\n{}", String::from_utf8_lossy(&bytes)),
    };
    assert_eq!(len, bytes.len());
    assert_eq!(parsed.head.method, head.method);
    assert_eq!(parsed.head.target, head.target);
    assert_eq!(parsed.version, head.version);
    assert_eq!(parsed.framing, head.framing);
    assert_eq!(parsed.keep_alive, head.keep_alive);
    let expected: Vec<(String, Vec<u8>)> = head.fields.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.clone())).collect();
    assert_eq!(parsed.head.headers, expected);
});
