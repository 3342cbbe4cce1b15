//! One FastCGI request's response sink: STDOUT records carrying the CGI response (§5.3, §6.2),
//! then `FCGI_END_REQUEST` (§5.5), through the connection's shared [`Writer`]; and the guest's
//! stderr lines on their way to the connection, which writes them as STDERR records while the
//! request is open.

use super::mapping;
use super::record::{Frames, ProtocolStatus, kind};
use super::writer::Writer;
use crate::request::{Failure, ResponseHead, ResponseSink, StderrSink};
use bytes::Bytes;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::AsyncWrite;
use tokio::sync::{mpsc, oneshot};

/// A request on the connection: its id, and the serial that tells it apart from a later request
/// with the same id.
pub(super) type RequestKey = (u16, u64);

/// What a request's sink and its connection tell each other without waiting, in one
/// allocation per request.
#[derive(Debug, Default)]
pub(super) struct Flags {
    /// Set by the sink just before it writes END_REQUEST: from then on the web server may reuse
    /// the id, possibly before the sink's "done" message arrives at the connection.
    pub ended: AtomicBool,
    /// Set by the connection on `FCGI_ABORT_REQUEST`: the request's writes fail from then on.
    pub aborted: AtomicBool,
    /// Whether the guest wrote to stderr (then the end of the response waits for the lines).
    pub stderr_used: AtomicBool,
}

/// What a request's sink sends the connection about its guest's stderr.
pub(super) enum Stderr {
    /// A line, to write as a STDERR record while the request is open.
    Line(Bytes),
    /// Answered once every line sent before it was written: the sink waits for this before it
    /// writes END_REQUEST, after which the web server would drop the request's records.
    Barrier(oneshot::Sender<()>),
}

/// One request's response writer. See the module docs.
pub(super) struct Sink<W> {
    /// The request id and slot serial.
    key: RequestKey,
    /// Shared with the connection.
    flags: Arc<Flags>,
    /// The connection's writer.
    writer: Arc<Writer<W>>,
    /// Tells the connection the request ended.
    done: mpsc::UnboundedSender<RequestKey>,
    /// Forwards guest stderr lines to the connection.
    stderr: mpsc::Sender<(RequestKey, Stderr)>,
    /// Whether the CGI header block went out.
    head_sent: bool,
    /// Whether END_REQUEST went out (or the request is over anyway).
    ended: bool,
    /// Bytes written.
    bytes: u64,
}

impl<W: AsyncWrite + Send + Unpin + 'static> Sink<W> {
    /// The sink of request `key`, writing through `writer`. `flags` are shared with the
    /// connection; `done` and `stderr` lead to it.
    pub fn new(
        key: RequestKey,
        flags: Arc<Flags>,
        writer: Arc<Writer<W>>,
        done: mpsc::UnboundedSender<RequestKey>,
        stderr: mpsc::Sender<(RequestKey, Stderr)>,
    ) -> Self {
        Self { key, flags, writer, done, stderr, head_sent: false, ended: false, bytes: 0 }
    }

    fn id(&self) -> u16 {
        self.key.0
    }

    fn check_aborted(&self) -> io::Result<()> {
        if self.flags.aborted.load(Ordering::Acquire) {
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "the web server aborted the request"));
        }
        Ok(())
    }

    /// Writes the head (if given), the body and, when `end`, the end of STDOUT and END_REQUEST.
    async fn write(&mut self, head: Option<&ResponseHead>, body: &[u8], end: bool) -> io::Result<()> {
        let mut cgi = Vec::new();
        if let Some(head) = head {
            self.head_sent = true;
            // The head goes out with the end of the response: the body is all there is.
            mapping::response_head(&mut cgi, head, end.then_some(body.len()));
        }
        let mut frames = Frames::new();
        frames.stream(kind::STDOUT, self.id(), &cgi).stream(kind::STDOUT, self.id(), body);
        if end {
            frames.end_stream(kind::STDOUT, self.id()).end_request(self.id(), ProtocolStatus::RequestComplete);
            self.flags.ended.store(true, Ordering::Release);
        }
        self.writer.write_counting(&frames, &mut self.bytes).await
    }

    /// Waits until the connection wrote the STDERR records of every line the guest wrote so
    /// far: they must precede END_REQUEST.
    async fn stderr_written(&self) {
        if !self.flags.stderr_used.load(Ordering::Acquire) {
            return;
        }
        let (reached, wait) = oneshot::channel();
        if self.stderr.send((self.key, Stderr::Barrier(reached))).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Writes END_REQUEST with no more STDOUT: the answer to `FCGI_ABORT_REQUEST` (§5.4).
    async fn end_request_only(&mut self) {
        self.flags.ended.store(true, Ordering::Release);
        self.writer.end_request(self.id(), ProtocolStatus::RequestComplete).await;
    }

    /// Tells the connection, once, that the request is over.
    fn end(&mut self) {
        if !std::mem::replace(&mut self.ended, true) {
            let _ = self.done.send(self.key);
        }
    }
}

#[async_trait::async_trait]
impl<W: AsyncWrite + Send + Unpin + 'static> ResponseSink for Sink<W> {
    async fn send(&mut self, head: Option<&ResponseHead>, body: &[u8]) -> io::Result<()> {
        self.check_aborted()?;
        if head.is_none() && body.is_empty() {
            return self.writer.zero_length_write().await;
        }
        self.write(head, body, false).await
    }

    async fn complete(&mut self, head: Option<&ResponseHead>, body: &[u8]) -> io::Result<()> {
        self.stderr_written().await;
        let result = match self.check_aborted() {
            Ok(()) => self.write(head, body, true).await,
            Err(error) => {
                // The web server aborted the request and waits for its END_REQUEST (§5.4),
                // also when the guest ignored the abort and ran to the end.
                self.end_request_only().await;
                Err(error)
            }
        };
        self.end();
        result
    }

    async fn fail(&mut self, failure: Failure) {
        self.stderr_written().await;
        match failure {
            Failure::Error { status, message } if !self.head_sent => {
                let _ = self.write(Some(&ResponseHead::host_error(status)), message.as_bytes(), true).await;
            }
            // The head is out: only closing the link tells the web server the response is
            // incomplete (an END_REQUEST would make it look whole).
            Failure::Error { .. } => self.writer.close().await,
            // Answers an FCGI_ABORT_REQUEST; after the web server closed the link, it fails
            // harmlessly.
            Failure::ClientGone => self.end_request_only().await,
        }
        self.end();
    }

    async fn body_wanted(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn bytes_sent(&self) -> u64 {
        self.bytes
    }

    fn stderr(&self) -> Option<StderrSink> {
        let (key, tx, flags) = (self.key, self.stderr.clone(), self.flags.clone());
        Some(Arc::new(move |line: &[u8]| {
            flags.stderr_used.store(true, Ordering::Release);
            // A full queue drops the line here; it is in the host log either way.
            let _ = tx.try_send((key, Stderr::Line(Bytes::copy_from_slice(line))));
        }))
    }
}

impl<W> Drop for Sink<W> {
    fn drop(&mut self) {
        if !self.ended {
            let _ = self.done.send(self.key);
        }
    }
}
