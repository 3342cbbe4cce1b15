//! FastCGI 1.0 records: decoding and encoding, per the FastCGI Specification (Open Market,
//! 1996). Section numbers below are that document's. Pure: bytes in, records out, so it can be
//! fuzzed; "need more bytes" is `Ok(None)`.

use bytes::{Buf as _, Bytes, BytesMut};
use std::io::IoSlice;
use std::ops::Range;
use thiserror::Error;

/// §3.3: `FCGI_VERSION_1`, the only version.
pub const VERSION_1: u8 = 1;
/// §3.3: the fixed header before every record's content.
pub const HEADER_LEN: usize = 8;
/// §3.3: `contentLength` is 16 bits.
pub const MAX_CONTENT: usize = 65_535;
/// The content carried per stream record when splitting a long stream: the largest multiple
/// of 8 under [`MAX_CONTENT`], so records stay 8-byte aligned without padding (§3.3
/// recommends aligned records).
pub const STREAM_CHUNK: usize = 65_528;
/// §3.3: request id 0 is for management records (§4).
pub const MANAGEMENT_ID: u16 = 0;

/// §8: record types.
pub mod kind {
    /// §5.1.
    pub const BEGIN_REQUEST: u8 = 1;
    /// §5.4.
    pub const ABORT_REQUEST: u8 = 2;
    /// §5.5.
    pub const END_REQUEST: u8 = 3;
    /// §5.2.
    pub const PARAMS: u8 = 4;
    /// §5.3.
    pub const STDIN: u8 = 5;
    /// §5.3.
    pub const STDOUT: u8 = 6;
    /// §5.3.
    pub const STDERR: u8 = 7;
    /// §5.3 (Filter role only).
    pub const DATA: u8 = 8;
    /// §4.1.
    pub const GET_VALUES: u8 = 9;
    /// §4.1.
    pub const GET_VALUES_RESULT: u8 = 10;
    /// §4.2.
    pub const UNKNOWN_TYPE: u8 = 11;
}

/// §8: `FCGI_RESPONDER`, the role Tether plays (§6.2).
pub const ROLE_RESPONDER: u16 = 1;
/// §5.1: `FCGI_KEEP_CONN`: keep the connection open after the request.
pub const FLAG_KEEP_CONN: u8 = 1;

/// §5.5: the `protocolStatus` values Tether sends. It never sends `FCGI_CANT_MPX_CONN` (1: it
/// multiplexes). A full instance pool answers 503 on STDOUT, which the web server passes on,
/// where `FCGI_OVERLOADED` would turn into a 502; that is only for a peer opening more requests
/// on one connection than it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolStatus {
    /// `FCGI_REQUEST_COMPLETE` (0): normal end of request.
    RequestComplete,
    /// `FCGI_OVERLOADED` (2): the application ran out of a resource.
    Overloaded,
    /// `FCGI_UNKNOWN_ROLE` (3): the application does not play the requested role.
    UnknownRole,
}

impl ProtocolStatus {
    /// §5.5: the body of `FCGI_END_REQUEST` with this status and an `appStatus` of 0.
    fn end_request_body(self) -> &'static [u8; 8] {
        match self {
            ProtocolStatus::RequestComplete => &[0, 0, 0, 0, 0, 0, 0, 0],
            ProtocolStatus::Overloaded => &[0, 0, 0, 0, 2, 0, 0, 0],
            ProtocolStatus::UnknownRole => &[0, 0, 0, 0, 3, 0, 0, 0],
        }
    }
}

/// §4.1: the variables `FCGI_GET_VALUES` may ask for.
pub const MAX_CONNS: &[u8] = b"FCGI_MAX_CONNS";
/// §4.1.
pub const MAX_REQS: &[u8] = b"FCGI_MAX_REQS";
/// §4.1.
pub const MPXS_CONNS: &[u8] = b"FCGI_MPXS_CONNS";

/// A malformed record or stream; the connection cannot continue.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RecordError {
    /// §3.3: a version other than 1.
    #[error("unsupported FastCGI version {0}")]
    Version(u8),
    /// A record's content does not have the layout its type requires.
    #[error("malformed {0} record")]
    Layout(&'static str),
    /// §3.4: a name-value pair runs past the end of its stream.
    #[error("truncated name-value pair")]
    TruncatedPair,
    /// More name-value pairs than allowed.
    #[error("more than {0} parameters")]
    TooManyPairs(usize),
}

/// One decoded record (§3.3), padding removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The record type ([`kind`]).
    pub kind: u8,
    /// The request it belongs to; [`MANAGEMENT_ID`] for management records.
    pub request_id: u16,
    /// The content.
    pub content: Bytes,
}

/// §3.3: decodes the record at the start of `buf`, consuming it and its padding.
pub fn decode(buf: &mut BytesMut) -> Result<Option<Record>, RecordError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if buf[0] != VERSION_1 {
        return Err(RecordError::Version(buf[0]));
    }
    let kind = buf[1];
    let request_id = u16::from_be_bytes([buf[2], buf[3]]);
    let content_len = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
    let padding = usize::from(buf[6]);
    if buf.len() < HEADER_LEN + content_len + padding {
        return Ok(None);
    }
    buf.advance(HEADER_LEN);
    let content = buf.split_to(content_len).freeze();
    buf.advance(padding);
    Ok(Some(Record { kind, request_id, content }))
}

/// §3.3: a record header. `padding` follows the content.
pub fn header(kind: u8, request_id: u16, content_len: usize, padding: u8) -> [u8; HEADER_LEN] {
    let len = u16::try_from(content_len).expect("record content fits in 16 bits").to_be_bytes();
    let id = request_id.to_be_bytes();
    [VERSION_1, kind, id[0], id[1], len[0], len[1], padding, 0]
}

/// Zero bytes for padding records to 8-byte alignment.
const PADDING: [u8; 8] = [0; 8];

/// §3.3: padding that brings `content_len` to a multiple of 8.
fn padding_for(content_len: usize) -> u8 {
    ((8 - content_len % 8) % 8) as u8
}

/// Encodes streams of records without copying their content: headers and padding are kept
/// here, content is referenced, and [`Frames::slices`] gives one `writev`'s worth.
#[derive(Debug, Default)]
pub struct Frames<'a> {
    /// Record headers, in order.
    headers: Vec<[u8; HEADER_LEN]>,
    /// For each record: its content and padding length.
    parts: Vec<(&'a [u8], u8)>,
}

impl<'a> Frames<'a> {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one record with `content` (at most [`MAX_CONTENT`] bytes).
    pub fn record(&mut self, kind: u8, request_id: u16, content: &'a [u8]) -> &mut Self {
        let padding = padding_for(content.len());
        self.headers.push(header(kind, request_id, content.len(), padding));
        self.parts.push((content, padding));
        self
    }

    /// §5.3: adds `data` to a byte stream, split into records; nothing if `data` is empty (an
    /// empty record would end the stream: use [`Frames::end_stream`] for that).
    pub fn stream(&mut self, kind: u8, request_id: u16, data: &'a [u8]) -> &mut Self {
        for chunk in data.chunks(STREAM_CHUNK) {
            self.record(kind, request_id, chunk);
        }
        self
    }

    /// §5.3: the empty record that ends a byte stream.
    pub fn end_stream(&mut self, kind: u8, request_id: u16) -> &mut Self {
        self.record(kind, request_id, &[])
    }

    /// §5.5: adds the `FCGI_END_REQUEST` record that ends request `request_id` with `status`;
    /// the web server may reuse the id from then on.
    pub fn end_request(&mut self, request_id: u16, status: ProtocolStatus) -> &mut Self {
        self.record(kind::END_REQUEST, request_id, status.end_request_body())
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// The whole plan as slices for one vectored write.
    pub fn slices(&self) -> Vec<IoSlice<'_>> {
        let mut slices = Vec::with_capacity(self.headers.len() * 3);
        for (header, (content, padding)) in self.headers.iter().zip(&self.parts) {
            slices.push(IoSlice::new(header));
            slices.push(IoSlice::new(content));
            slices.push(IoSlice::new(&PADDING[..usize::from(*padding)]));
        }
        slices
    }
}

/// §5.1: the body of `FCGI_BEGIN_REQUEST`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BeginRequest {
    /// The role the web server wants ([`ROLE_RESPONDER`]).
    pub role: u16,
    /// Flags ([`FLAG_KEEP_CONN`]).
    pub flags: u8,
}

impl BeginRequest {
    /// Parses the 8-byte body.
    pub fn parse(content: &[u8]) -> Result<Self, RecordError> {
        if content.len() != 8 {
            return Err(RecordError::Layout("BEGIN_REQUEST"));
        }
        Ok(Self { role: u16::from_be_bytes([content[0], content[1]]), flags: content[2] })
    }

    /// Whether the connection stays open after this request.
    pub fn keep_conn(&self) -> bool {
        self.flags & FLAG_KEEP_CONN != 0
    }
}

/// §4.2: the body of `FCGI_UNKNOWN_TYPE`.
pub fn unknown_type_body(kind: u8) -> [u8; 8] {
    [kind, 0, 0, 0, 0, 0, 0, 0]
}

/// §3.4: reads a name or value length: one byte if the high bit is clear, else four bytes
/// with the high bit masked off.
fn pair_len(bytes: &mut &[u8]) -> Result<usize, RecordError> {
    let first = *bytes.first().ok_or(RecordError::TruncatedPair)?;
    if first >> 7 == 0 {
        *bytes = &bytes[1..];
        return Ok(usize::from(first));
    }
    if bytes.len() < 4 {
        return Err(RecordError::TruncatedPair);
    }
    let len = u32::from_be_bytes([first & 0x7f, bytes[1], bytes[2], bytes[3]]);
    *bytes = &bytes[4..];
    usize::try_from(len).map_err(|_| RecordError::TruncatedPair)
}

/// Where each name-value pair's name and value lie in the bytes they were parsed from (§3.4 puts
/// no encoding on either), in order.
pub type PairSpans = Vec<(Range<usize>, Range<usize>)>;

/// §3.4: parses a whole name-value pair stream (the concatenated PARAMS or GET_VALUES
/// content), allowing at most `max_pairs` pairs. The pairs stay where they are in `bytes`.
pub fn parse_pairs(bytes: &[u8], max_pairs: usize) -> Result<PairSpans, RecordError> {
    let mut pairs = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if pairs.len() == max_pairs {
            return Err(RecordError::TooManyPairs(max_pairs));
        }
        let name_len = pair_len(&mut rest)?;
        let value_len = pair_len(&mut rest)?;
        let total = name_len.checked_add(value_len).ok_or(RecordError::TruncatedPair)?;
        if rest.len() < total {
            return Err(RecordError::TruncatedPair);
        }
        let name_start = bytes.len() - rest.len();
        let value_start = name_start + name_len;
        pairs.push((name_start..value_start, value_start..value_start + value_len));
        rest = &rest[total..];
    }
    Ok(pairs)
}

/// §3.4: appends one name-value pair.
pub fn encode_pair(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    for len in [name.len(), value.len()] {
        if len < 0x80 {
            out.push(len as u8);
        } else {
            out.extend_from_slice(&(len as u32 | 0x8000_0000).to_be_bytes());
        }
    }
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(frames: &Frames<'_>) -> Vec<u8> {
        frames.slices().iter().flat_map(|s| s.to_vec()).collect()
    }

    #[test]
    fn records_round_trip_with_padding() {
        let mut frames = Frames::new();
        frames.record(kind::STDOUT, 7, b"hello").end_stream(kind::STDOUT, 7);
        let mut buf = BytesMut::from(&bytes_of(&frames)[..]);
        assert_eq!(buf.len(), 8 + 5 + 3 + 8, "content padded to 8 bytes");
        let first = decode(&mut buf).unwrap().unwrap();
        assert_eq!((first.kind, first.request_id, &first.content[..]), (kind::STDOUT, 7, &b"hello"[..]));
        let end = decode(&mut buf).unwrap().unwrap();
        assert!(end.content.is_empty());
        assert!(buf.is_empty());
    }

    #[test]
    fn partial_records_need_more_and_bad_versions_fail() {
        let mut frames = Frames::new();
        frames.record(kind::STDIN, 1, b"abcdefgh");
        let all = bytes_of(&frames);
        for cut in 0..all.len() {
            let mut buf = BytesMut::from(&all[..cut]);
            assert_eq!(decode(&mut buf), Ok(None), "cut at {cut}");
            assert_eq!(buf.len(), cut, "nothing consumed");
        }
        let mut buf = BytesMut::from(&[2u8, 1, 0, 1, 0, 0, 0, 0][..]);
        assert_eq!(decode(&mut buf), Err(RecordError::Version(2)));
    }

    #[test]
    fn long_streams_split_into_aligned_records() {
        let data = vec![b'x'; STREAM_CHUNK * 2 + 10];
        let mut frames = Frames::new();
        frames.stream(kind::STDOUT, 1, &data);
        let mut buf = BytesMut::from(&bytes_of(&frames)[..]);
        let mut total = 0;
        while let Some(record) = decode(&mut buf).unwrap() {
            assert!(record.content.len() <= MAX_CONTENT);
            total += record.content.len();
        }
        assert_eq!(total, data.len());
        let mut empty = Frames::new();
        empty.stream(kind::STDOUT, 1, &[]);
        assert!(empty.is_empty(), "an empty stream write must not end the stream");
    }

    #[test]
    fn name_value_pairs_use_one_and_four_byte_lengths() {
        let long = vec![b'v'; 300];
        let mut out = Vec::new();
        encode_pair(&mut out, b"SCRIPT_NAME", b"/x");
        encode_pair(&mut out, b"HTTP_LONG", &long);
        assert_eq!(out[0], 11);
        assert_eq!(out[15], 9, "1-byte name length");
        assert_eq!(&out[16..20], &(300u32 | 0x8000_0000).to_be_bytes(), "4-byte value length");
        let pairs = parse_pairs(&out, 10).unwrap();
        assert_eq!((&out[pairs[0].0.clone()], &out[pairs[0].1.clone()]), (&b"SCRIPT_NAME"[..], &b"/x"[..]));
        assert_eq!(&out[pairs[1].1.clone()], &long[..]);
        assert_eq!(parse_pairs(&out, 1), Err(RecordError::TooManyPairs(1)));
        assert_eq!(parse_pairs(&out[..out.len() - 1], 10), Err(RecordError::TruncatedPair));
        assert_eq!(parse_pairs(&[0x80, 0, 0], 10), Err(RecordError::TruncatedPair));
        assert_eq!(parse_pairs(&[0xff, 0xff, 0xff, 0xff, 0], 10), Err(RecordError::TruncatedPair));
    }

    #[test]
    fn begin_and_end_request_bodies() {
        let begin = BeginRequest::parse(&[0, 1, 1, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(begin.role, ROLE_RESPONDER);
        assert!(begin.keep_conn());
        assert!(BeginRequest::parse(&[0, 1]).is_err());
        let mut frames = Frames::new();
        frames.end_request(9, ProtocolStatus::UnknownRole);
        assert_eq!(bytes_of(&frames), [1, kind::END_REQUEST, 0, 9, 0, 8, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(unknown_type_body(99)[0], 99);
    }

    /// A small deterministic fuzz: arbitrary bytes never panic the decoder or the pair parser.
    #[test]
    fn arbitrary_input_never_panics() {
        let mut arbitrary = crate::arbitrary::Arbitrary::new();
        for _ in 0..20_000 {
            let mut input = arbitrary.bytes(63);
            let keep_version = arbitrary.below(3) == 0;
            if let Some(first) = input.first_mut() {
                *first = if keep_version { *first } else { VERSION_1 };
            }
            let mut buf = BytesMut::from(&input[..]);
            while let Ok(Some(_)) = decode(&mut buf) {}
            let _ = parse_pairs(&input, 16);
            let _ = BeginRequest::parse(&input);
        }
    }
}
