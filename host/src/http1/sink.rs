//! The HTTP/1.x response sink of one request: it owns the connection's write half while the
//! guest runs, frames the response (a length when the guest never flushed, chunks or a body
//! delimited by closing once it did), and hands the write half back to the connection task when
//! the response is over, possibly long before the guest ends (`finish-request`).

use super::encode::{self, BodyFraming, CONTINUE, CRLF, LAST_CHUNK};
use super::handback::Giver;
use super::keep_alive::KeepAlive;
use super::parse::Version;
use crate::net::write_all_vectored;
use crate::request::{Failure, ResponseHead, ResponseSink};
use std::io::{self, IoSlice};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};

/// The write half coming back to the connection task from a finished response.
#[derive(Debug)]
pub(super) struct Returned<W> {
    /// The write half.
    pub writer: W,
    /// Whether the response went out whole under a head that promised to keep the connection.
    pub reusable: bool,
    /// When the response was complete: the keep-alive idle time runs from here.
    pub at: tokio::time::Instant,
}

/// The HTTP/1.x response writer for one request.
pub(super) struct Sink<W> {
    /// The write half; `None` once handed back.
    writer: Option<W>,
    /// Where the write half goes back to.
    giver: Option<Giver<Returned<W>>>,
    /// The request's version, which the response uses.
    version: Version,
    /// A HEAD request: the body is never sent (nor for a 204 or 304, `ResponseHead::bodiless`).
    is_head: bool,
    /// Whether the connection may stay open, decided when the head goes out.
    keep_alive: KeepAlive,
    /// Whether the head that went out promised to keep the connection.
    promised: bool,
    /// The client waits for `100 Continue` and has not been sent it.
    expect_continue: bool,
    /// Set (before writing) when the head goes out.
    framing: Option<BodyFraming>,
    /// Bytes written.
    bytes: u64,
    /// Reused buffer for heads and chunk lines.
    scratch: Vec<u8>,
    /// The server's `send_timeout`.
    send_timeout: Duration,
}

/// The write half while a sink holds it.
fn held<W>(writer: &mut Option<W>) -> io::Result<&mut W> {
    writer.as_mut().ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "response already handed back"))
}

impl<W: AsyncWrite + Send + Unpin + 'static> Sink<W> {
    /// A sink writing to `writer` and handing it back through `giver`. `expect_continue`: the
    /// client waits for `100 Continue` before it sends its body.
    pub fn new(
        writer: W,
        giver: Giver<Returned<W>>,
        version: Version,
        is_head: bool,
        keep_alive: KeepAlive,
        expect_continue: bool,
        send_timeout: Duration,
    ) -> Self {
        Self {
            writer: Some(writer),
            giver: Some(giver),
            version,
            is_head,
            keep_alive,
            promised: false,
            expect_continue,
            framing: None,
            bytes: 0,
            scratch: Vec::new(),
            send_timeout,
        }
    }

    fn writer(&mut self) -> io::Result<&mut W> {
        held(&mut self.writer)
    }

    /// Hands the write half back; `whole`: the response went out completely.
    fn hand_back(&mut self, whole: bool) {
        if let (Some(writer), Some(giver)) = (self.writer.take(), self.giver.take()) {
            let reusable = whole && self.promised;
            // A connection that stays open is taken back when its client next sends or leaves;
            // one that must close is taken back now.
            giver.give(Returned { writer, reusable, at: tokio::time::Instant::now() }, !reusable);
        }
    }

    /// Writes `prefix`, `body` and `suffix` in one go and counts them.
    async fn write_parts(&mut self, prefix: &[u8], body: &[u8], suffix: &[u8]) -> io::Result<()> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend_from_slice(prefix);
        // By field, not `self.writer()`: `self.bytes` is borrowed next to it.
        let writer = held(&mut self.writer)?;
        let slices = &mut [IoSlice::new(&scratch), IoSlice::new(body), IoSlice::new(suffix)];
        let result = write_all_vectored(writer, slices, self.send_timeout, &mut self.bytes).await;
        self.scratch = scratch;
        result
    }

    /// Encodes the head with `framing` into a fresh buffer, recording the framing first so that
    /// a cancelled write still counts the head as sent.
    fn encode_head(&mut self, head: &ResponseHead, framing: BodyFraming) -> Vec<u8> {
        self.framing = Some(framing);
        self.promised = self.keep_alive.promise(framing, self.expect_continue);
        let mut out = Vec::with_capacity(256);
        encode::head(&mut out, self.version, head, framing, self.promised);
        out
    }
}

#[async_trait::async_trait]
impl<W: AsyncWrite + Send + Unpin + 'static> ResponseSink for Sink<W> {
    async fn send(&mut self, head: Option<&ResponseHead>, body: &[u8]) -> io::Result<()> {
        if let Some(head) = head {
            let framing = match (self.is_head || head.bodiless(), head.declared_length, self.version) {
                (true, _, _) => BodyFraming::Headless(None),
                (false, Some(length), _) => BodyFraming::Length(usize::try_from(length).unwrap_or(usize::MAX)),
                (false, None, Version::Http11) => BodyFraming::Chunked,
                (false, None, Version::Http10) => BodyFraming::CloseDelimited,
            };
            let mut prefix = self.encode_head(head, framing);
            return match framing {
                BodyFraming::Chunked if !body.is_empty() => {
                    prefix.extend_from_slice(&encode::chunk_size_line(body.len()));
                    self.write_parts(&prefix, body, CRLF).await
                }
                BodyFraming::CloseDelimited | BodyFraming::Length(_) => self.write_parts(&prefix, body, &[]).await,
                _ => self.write_parts(&prefix, &[], &[]).await,
            };
        }
        match self.framing {
            Some(BodyFraming::Chunked) if !body.is_empty() => {
                let line = encode::chunk_size_line(body.len());
                self.write_parts(&line, body, CRLF).await
            }
            Some(BodyFraming::CloseDelimited | BodyFraming::Length(_)) if !body.is_empty() => self.write_parts(&[], body, &[]).await,
            // Nothing to send (or a HEAD body to drop): still a real, zero-length write, like
            // PHP's empty flush.
            _ => self.writer()?.write(&[]).await.map(drop),
        }
    }

    async fn complete(&mut self, head: Option<&ResponseHead>, body: &[u8]) -> io::Result<()> {
        let result = match head {
            Some(head) => {
                let framing = if head.bodiless() {
                    BodyFraming::Headless(None)
                } else if self.is_head {
                    BodyFraming::Headless(Some(body.len()))
                } else {
                    BodyFraming::Length(body.len())
                };
                let prefix = self.encode_head(head, framing);
                let body = if matches!(framing, BodyFraming::Headless(_)) { &[][..] } else { body };
                self.write_parts(&prefix, body, &[]).await
            }
            None => match self.framing {
                Some(BodyFraming::Chunked) if !body.is_empty() => {
                    let line = encode::chunk_size_line(body.len());
                    let mut suffix = CRLF.to_vec();
                    suffix.extend_from_slice(LAST_CHUNK);
                    self.write_parts(&line, body, &suffix).await
                }
                Some(BodyFraming::Chunked) => self.write_parts(LAST_CHUNK, &[], &[]).await,
                Some(BodyFraming::CloseDelimited) => {
                    let written = self.write_parts(&[], body, &[]).await;
                    let shut = self.writer()?.shutdown().await;
                    written.and(shut)
                }
                // A declared length: the runtime has held the body to it.
                Some(BodyFraming::Length(_)) if !body.is_empty() => self.write_parts(&[], body, &[]).await,
                _ => Ok(()),
            },
        };
        self.hand_back(result.is_ok());
        result
    }

    async fn fail(&mut self, failure: Failure) {
        match failure {
            Failure::Error { status, message } if self.framing.is_none() => {
                let head = ResponseHead::host_error(status);
                let prefix = self.encode_head(&head, BodyFraming::Length(message.len()));
                let body = if self.is_head { "" } else { message.as_str() };
                let whole = self.write_parts(&prefix, body.as_bytes(), &[]).await.is_ok();
                self.hand_back(whole);
            }
            // The head is out (or the client is gone): end the connection without the final
            // chunk, so the client can tell the body is incomplete.
            _ => self.hand_back(false),
        }
    }

    async fn body_wanted(&mut self) -> io::Result<()> {
        if std::mem::take(&mut self.expect_continue) && self.framing.is_none() {
            self.write_parts(CONTINUE, &[], &[]).await?;
        }
        Ok(())
    }

    fn bytes_sent(&self) -> u64 {
        self.bytes
    }
}
