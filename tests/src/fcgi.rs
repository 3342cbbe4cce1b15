//! A FastCGI client written for the tests, independently of the host's codec (from the FastCGI
//! specification, §3.3 records and §3.4 name-value pairs), so that a codec bug cannot pass on
//! both sides.

use crate::TIMEOUT;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;

/// Record types (§8).
pub mod kind {
    #![allow(missing_docs)]
    pub const BEGIN_REQUEST: u8 = 1;
    pub const ABORT_REQUEST: u8 = 2;
    pub const END_REQUEST: u8 = 3;
    pub const PARAMS: u8 = 4;
    pub const STDIN: u8 = 5;
    pub const STDOUT: u8 = 6;
    pub const STDERR: u8 = 7;
    pub const GET_VALUES: u8 = 9;
    pub const GET_VALUES_RESULT: u8 = 10;
    pub const UNKNOWN_TYPE: u8 = 11;
}

trait Io: Read + Write + Send {}
impl<T: Read + Write + Send> Io for T {}

/// What came back for one request.
#[derive(Debug, Default, Clone)]
pub struct Reply {
    /// All STDOUT content.
    pub stdout: Vec<u8>,
    /// All STDERR content.
    pub stderr: Vec<u8>,
    /// END_REQUEST's appStatus and protocolStatus, once it arrived.
    pub end: Option<(u32, u8)>,
}

impl Reply {
    /// The STDOUT text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The CGI `Status` code (200 if absent).
    pub fn status(&self) -> u16 {
        self.text()
            .lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix("Status: "))
            .and_then(|s| s.split(' ').next()?.parse().ok())
            .unwrap_or(200)
    }

    /// The body after the CGI header block.
    pub fn body(&self) -> String {
        let text = self.text();
        text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()
    }
}

/// A raw FastCGI connection.
pub struct FcgiClient {
    io: Box<dyn Io>,
    /// Bytes read and not yet consumed.
    buf: Vec<u8>,
    /// Replies so far, by request id.
    pub replies: HashMap<u16, Reply>,
    /// Management records received (type, content).
    pub management: Vec<(u8, Vec<u8>)>,
}

impl FcgiClient {
    /// Connects to `HOST:PORT` or `unix:/path`.
    pub fn connect(addr: &str) -> FcgiClient {
        let io: Box<dyn Io> = match addr.strip_prefix("unix:") {
            Some(path) => {
                let s = UnixStream::connect(path).expect("connecting to the FastCGI socket");
                s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
                s.set_write_timeout(Some(TIMEOUT)).expect("timeout");
                Box::new(s)
            }
            None => {
                let s = TcpStream::connect(addr).expect("connecting to the FastCGI port");
                s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
                s.set_write_timeout(Some(TIMEOUT)).expect("timeout");
                Box::new(s)
            }
        };
        FcgiClient { io, buf: Vec::new(), replies: HashMap::new(), management: Vec::new() }
    }

    /// Sends raw bytes.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).expect("writing to the FastCGI server");
    }

    /// Sends one record, padded to 8 bytes.
    pub fn record(&mut self, kind: u8, id: u16, content: &[u8]) {
        let padding = (8 - content.len() % 8) % 8;
        let mut bytes = vec![1, kind, (id >> 8) as u8, id as u8, (content.len() >> 8) as u8, content.len() as u8, padding as u8, 0];
        bytes.extend_from_slice(content);
        bytes.extend(std::iter::repeat_n(0, padding));
        self.raw(&bytes);
    }

    /// Encodes name-value pairs (§3.4).
    pub fn pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in pairs {
            for len in [name.len(), value.len()] {
                if len < 128 {
                    out.push(len as u8);
                } else {
                    out.extend_from_slice(&((len as u32) | 1 << 31).to_be_bytes());
                }
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        out
    }

    /// BEGIN_REQUEST as a Responder (role 1).
    pub fn begin(&mut self, id: u16, keep_conn: bool) {
        self.record(kind::BEGIN_REQUEST, id, &[0, 1, u8::from(keep_conn), 0, 0, 0, 0, 0]);
    }

    /// The PARAMS stream and its end, for `method` on `uri`.
    pub fn params(&mut self, id: u16, method: &str, uri: &str, body_len: usize) {
        let length = body_len.to_string();
        let pairs = Self::pairs(&[
            ("REQUEST_METHOD", method),
            ("REQUEST_URI", uri),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("CONTENT_LENGTH", if body_len > 0 { &length } else { "" }),
            ("HTTP_HOST", "test"),
        ]);
        for chunk in pairs.chunks(100) {
            self.record(kind::PARAMS, id, chunk);
        }
        self.record(kind::PARAMS, id, &[]);
    }

    /// The STDIN stream and its end.
    pub fn stdin(&mut self, id: u16, body: &[u8]) {
        for chunk in body.chunks(60_000) {
            self.record(kind::STDIN, id, chunk);
        }
        self.record(kind::STDIN, id, &[]);
    }

    /// A whole request: BEGIN_REQUEST, PARAMS, STDIN.
    pub fn request(&mut self, id: u16, method: &str, uri: &str, body: &[u8]) {
        self.begin(id, true);
        self.params(id, method, uri, body.len());
        self.stdin(id, body);
    }

    /// Reads one record into `replies`/`management`; false at EOF or on a reset. Panics if
    /// nothing arrives within [`TIMEOUT`].
    pub fn read_record(&mut self) -> bool {
        while self.buf.len() < 8 || self.buf.len() < 8 + self.content_len() + usize::from(self.buf[6]) {
            let mut chunk = [0u8; 65536];
            match self.io.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    panic!("no data from the FastCGI server within {TIMEOUT:?}")
                }
                Err(_) => return false,
            }
        }
        assert_eq!(self.buf[0], 1, "a FastCGI version 1 record");
        let kind = self.buf[1];
        let id = u16::from_be_bytes([self.buf[2], self.buf[3]]);
        let len = self.content_len();
        let content: Vec<u8> = self.buf[8..8 + len].to_vec();
        self.buf.drain(..8 + len + usize::from(self.buf[6]));
        if id == 0 {
            self.management.push((kind, content));
            return true;
        }
        let reply = self.replies.entry(id).or_default();
        match kind {
            kind::STDOUT => reply.stdout.extend_from_slice(&content),
            kind::STDERR => reply.stderr.extend_from_slice(&content),
            kind::END_REQUEST => {
                let app = u32::from_be_bytes([content[0], content[1], content[2], content[3]]);
                reply.end = Some((app, content[4]));
            }
            other => panic!("unexpected record type {other} from the server"),
        }
        true
    }

    fn content_len(&self) -> usize {
        usize::from(u16::from_be_bytes([self.buf[4], self.buf[5]]))
    }

    /// Reads until request `id` has ended; returns its reply.
    pub fn reply(&mut self, id: u16) -> Reply {
        while self.replies.get(&id).is_none_or(|r| r.end.is_none()) {
            assert!(self.read_record(), "the connection ended before END_REQUEST for {id}; got {:?}", self.replies.get(&id));
        }
        self.replies.get(&id).cloned().unwrap_or_default()
    }

    /// Reads until a management record arrives.
    pub fn management_reply(&mut self) -> (u8, Vec<u8>) {
        while self.management.is_empty() {
            assert!(self.read_record(), "the connection ended before a management reply");
        }
        self.management.remove(0)
    }

    /// Reads until the server closes the connection (panics if it does not within
    /// [`TIMEOUT`]).
    pub fn wait_closed(&mut self) {
        while self.read_record() {}
    }
}
