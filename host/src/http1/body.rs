//! Decodes a request body delimited by `Content-Length` or chunked transfer coding
//! (RFC 9112 §7.1). Pure and incremental: it consumes what it can from a buffer and says when it
//! needs more, so the connection can keep reading (and watching) the socket in between.

use bytes::{Bytes, BytesMut};

/// Longest chunk-size line (size plus extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// Most trailer bytes accepted after the last chunk, CRLFs included.
const MAX_TRAILERS: usize = 16 * 1024;
/// Largest piece handed out at once.
pub const MAX_PIECE: usize = 64 * 1024;

/// What one decoding step produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// The next bytes of the body.
    Data(Bytes),
    /// The buffer holds no decodable bytes; read more.
    NeedMore,
    /// The body is complete.
    End,
}

/// Why the body framing is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body: {0}")]
pub struct Malformed(&'static str);

/// Where a chunked decoder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunked {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data, with this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk, reading trailer lines; counts trailer bytes so far (never more
    /// than `MAX_TRAILERS`).
    Trailers(usize),
}

/// A body decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoder {
    /// `Content-Length`, with this many bytes left.
    Length(u64),
    /// Chunked.
    Chunked(Chunked),
    /// The body is complete.
    Done,
}

impl Decoder {
    /// A decoder for a `Content-Length` body.
    pub fn length(n: u64) -> Self {
        if n == 0 { Decoder::Done } else { Decoder::Length(n) }
    }

    /// A decoder for a chunked body.
    pub fn chunked() -> Self {
        Decoder::Chunked(Chunked::Size)
    }

    /// Whether the whole body was consumed.
    pub fn is_done(&self) -> bool {
        *self == Decoder::Done
    }

    /// Body bytes the framing has announced and not yet delivered: the rest of the
    /// `Content-Length`, or of the chunk whose size line was read.
    pub fn pending(&self) -> u64 {
        match *self {
            Decoder::Length(left) | Decoder::Chunked(Chunked::Data(left)) => left,
            _ => 0,
        }
    }

    /// Consumes bytes from `buf` and returns the next piece of body, if any.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, Malformed> {
        loop {
            match *self {
                Decoder::Done => return Ok(Decoded::End),
                Decoder::Length(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = take(left, buf.len());
                    *self = Decoder::length(left - n as u64);
                    return Ok(Decoded::Data(buf.split_to(n).freeze()));
                }
                Decoder::Chunked(Chunked::Size) => {
                    let Some(line) = take_line(buf, MAX_CHUNK_LINE, "chunk-size line too long")? else {
                        return Ok(Decoded::NeedMore);
                    };
                    let size_text = line[..].split(|&b| b == b';').next().unwrap_or(&[]);
                    let size_text = trim_ows(size_text);
                    if size_text.is_empty() || size_text.len() > 16 || !size_text.iter().all(u8::is_ascii_hexdigit) {
                        return Err(Malformed("invalid chunk size"));
                    }
                    let size = u64::from_str_radix(std::str::from_utf8(size_text).unwrap_or("x"), 16)
                        .map_err(|_| Malformed("invalid chunk size"))?;
                    *self = Decoder::Chunked(if size == 0 { Chunked::Trailers(0) } else { Chunked::Data(size) });
                }
                Decoder::Chunked(Chunked::Data(left)) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = take(left, buf.len());
                    let left = left - n as u64;
                    *self = Decoder::Chunked(if left == 0 { Chunked::DataEnd } else { Chunked::Data(left) });
                    return Ok(Decoded::Data(buf.split_to(n).freeze()));
                }
                Decoder::Chunked(Chunked::DataEnd) => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(Malformed("chunk data not followed by CRLF"));
                    }
                    let _ = buf.split_to(2);
                    *self = Decoder::Chunked(Chunked::Size);
                }
                Decoder::Chunked(Chunked::Trailers(seen)) => {
                    // A line ending at index `lf` takes `lf + 1` bytes of what is left.
                    let Some(line) = take_line(buf, (MAX_TRAILERS - seen).saturating_sub(1), "trailers too long")? else {
                        return Ok(Decoded::NeedMore);
                    };
                    // Trailers are read and dropped: the guest only sees the head's fields.
                    *self = if line.is_empty() { Decoder::Done } else { Decoder::Chunked(Chunked::Trailers(seen + line.len() + 2)) };
                }
            }
        }
    }
}

/// How many bytes to take: at most `left`, `available` and [`MAX_PIECE`].
fn take(left: u64, available: usize) -> usize {
    usize::try_from(left).unwrap_or(usize::MAX).min(available).min(MAX_PIECE)
}

/// Removes a CRLF-terminated line from `buf` (without the CRLF), if a whole one is there.
/// A bare LF is rejected: lenient line endings are how request smuggling starts.
fn take_line(buf: &mut BytesMut, limit: usize, too_long: &'static str) -> Result<Option<BytesMut>, Malformed> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(lf) if lf > limit => Err(Malformed(too_long)),
        Some(lf) => {
            if lf == 0 || buf[lf - 1] != b'\r' {
                return Err(Malformed("line not terminated by CRLF"));
            }
            let mut line = buf.split_to(lf + 1);
            line.truncate(lf - 1);
            Ok(Some(line))
        }
        None if buf.len() > limit => Err(Malformed(too_long)),
        None => Ok(None),
    }
}

fn trim_ows(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b" \t".contains(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !b" \t".contains(b)).map_or(start, |i| i + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(mut decoder: Decoder, input: &[u8], step: usize) -> Result<(Vec<u8>, usize), Malformed> {
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match decoder.decode(&mut buf)? {
                Decoded::Data(bytes) => body.extend_from_slice(&bytes),
                Decoded::End => return Ok((body, input.len() - fed + buf.len())),
                Decoded::NeedMore if fed == input.len() => return Err(Malformed("truncated")),
                Decoded::NeedMore => {
                    let n = step.min(input.len() - fed);
                    buf.extend_from_slice(&input[fed..fed + n]);
                    fed += n;
                }
            }
        }
    }

    #[test]
    fn content_length_stops_at_the_length() {
        for step in [1, 3, 100] {
            let (body, left) = decode_all(Decoder::length(5), b"helloGET /", step).unwrap();
            assert_eq!(body, b"hello");
            assert_eq!(left, 5, "pipelined bytes stay in the buffer");
        }
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let input = b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for step in [1, 2, 7, 1000] {
            let (body, left) = decode_all(Decoder::chunked(), input, step).unwrap();
            assert_eq!(body, b"helloabcdefghijklmnopqrstuvwxyz");
            assert_eq!(left, 4);
        }
    }

    #[test]
    fn malformed_chunked_bodies_are_rejected() {
        for bad in [&b"g\r\n"[..], b"5\r\nhelloXX0\r\n\r\n", b"5\nhello\r\n0\r\n\r\n", b"-1\r\n", b"11111111111111111\r\n", b"\r\n"] {
            assert!(decode_all(Decoder::chunked(), bad, 1).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let long_line = format!("5;{}\r\n", "x".repeat(5000));
        assert!(decode_all(Decoder::chunked(), long_line.as_bytes(), 100).is_err());
    }

    #[test]
    fn trailers_are_bounded_to_the_byte() {
        // Trailer bytes, CRLFs included, up to MAX_TRAILERS; `line` is a trailer line that takes
        // `len` bytes with its CRLF.
        let line = |len: usize| format!("X: {}\r\n", "y".repeat(len - 5));
        let body = |trailers: &str| format!("0\r\n{trailers}\r\n");
        let at_limit = line(MAX_TRAILERS - 2);
        assert!(decode_all(Decoder::chunked(), body(&at_limit).as_bytes(), 4096).is_ok());
        let over = line(MAX_TRAILERS - 1);
        assert!(decode_all(Decoder::chunked(), body(&over).as_bytes(), 4096).is_err());
        let split = line(MAX_TRAILERS - 100) + &line(100);
        assert!(decode_all(Decoder::chunked(), body(&split).as_bytes(), 4096).is_err());
        // A first line past the limit by one byte must not leave a limit below zero (a panic,
        // or no limit at all in a release build).
        let past = line(MAX_TRAILERS + 1);
        assert!(decode_all(Decoder::chunked(), body(&past).as_bytes(), 4096).is_err());
    }

    /// A small deterministic fuzz: near-chunked input, fed in arbitrary steps, is decoded or
    /// refused, never a panic; a body chunked in arbitrary pieces comes back whole.
    #[test]
    fn arbitrary_chunked_input_never_panics_and_round_trips() {
        let mut arbitrary = crate::arbitrary::Arbitrary::new();
        let tokens = ["0", "5", "a", "F", "10", ";x=1", "\r\n", "\r", "\n", "hello", "X: y", " ", "\t"];
        for _ in 0..20_000 {
            let input = arbitrary.tokens(&tokens, 24);
            let step = 1 + arbitrary.below(16);
            let _ = decode_all(Decoder::chunked(), &input, step);
        }
        for _ in 0..2_000 {
            let body = arbitrary.bytes(300);
            let mut encoded = Vec::new();
            let mut rest = &body[..];
            while !rest.is_empty() {
                let (chunk, after) = rest.split_at(1 + arbitrary.below(rest.len()));
                let extension = if arbitrary.below(2) == 0 { "" } else { " ;a=b" };
                encoded.extend_from_slice(format!("{:x}{extension}\r\n", chunk.len()).as_bytes());
                encoded.extend_from_slice(chunk);
                encoded.extend_from_slice(b"\r\n");
                rest = after;
            }
            encoded.extend_from_slice(b"0\r\nX: y\r\n\r\nNEXT");
            let (decoded, left) = decode_all(Decoder::chunked(), &encoded, 1 + arbitrary.below(64)).unwrap();
            assert_eq!(decoded, body);
            assert_eq!(left, 4, "the pipelined bytes stay");
        }
    }

    #[test]
    fn pieces_are_bounded() {
        let mut decoder = Decoder::length(1 << 20);
        let mut buf = BytesMut::from(&vec![0u8; 1 << 20][..]);
        match decoder.decode(&mut buf).unwrap() {
            Decoded::Data(bytes) => assert_eq!(bytes.len(), MAX_PIECE),
            other => panic!("{other:?}"),
        }
    }
}
