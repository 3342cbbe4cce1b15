//! The guest's output: the response head it is building, PHP's output buffer, and what happens
//! to output once the client is gone or the response was finished early.
//!
//! This is where both abort-detection modes meet output: a failing socket write sets ABORTED
//! (the only signal in `write` mode), and every output call first checks whether the client is
//! gone, trapping the guest unless it ignores user aborts and discarding the output if it does.

use super::head::{HeadError, ResponseHead};
use super::sink::{Failure, ResponseSink};
use super::state::RequestState;
use std::sync::Arc;
use thiserror::Error;

/// Why output was not delivered, as the guest sees it. Mirrors the WIT `output-error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum OutputError {
    /// The client is gone; output is discarded.
    #[error("client aborted")]
    Aborted,
    /// The response was finished early; output is discarded.
    #[error("response already finished")]
    Finished,
}

/// The guest must trap now: its client is gone and it does not ignore user aborts, or a limit
/// killed it while it was in a host call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("the request was killed")]
pub struct MustTrap;

/// The access-log status of a request whose client left before any response (nginx's 499).
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

/// Where the response stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The response is being produced.
    Open,
    /// `finish-request` completed it; the guest runs on detached.
    Finished,
    /// A write failed or the client is gone; output is discarded.
    Lost,
}

/// The result of an output call that did not trap.
pub type OutputResult = Result<(), OutputError>;

/// One request's output. See the module docs.
pub struct Output {
    /// The front end's writer.
    sink: Box<dyn ResponseSink>,
    /// The request's state (abort bits, ignore-user-abort).
    conn: Arc<RequestState>,
    /// The head the guest is building; frozen once sent.
    head: ResponseHead,
    /// Whether the head is on the wire.
    head_sent: bool,
    /// PHP's output buffer.
    buffer: Vec<u8>,
    /// The route's `output_buffer`: the buffer is flushed when it holds this many bytes
    /// (0 sends every write at once).
    buffer_size: usize,
    /// Where the response stands.
    phase: Phase,
    /// Whether [`ResponseSink::body_wanted`] was called.
    body_wanted: bool,
    /// The status that reached the wire, for the access log.
    sent_status: Option<u16>,
    /// Whether the guest finished the response with `finish-request`.
    finished_early: bool,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("head", &self.head)
            .field("head_sent", &self.head_sent)
            .field("buffered", &self.buffer.len())
            .field("phase", &self.phase)
            .finish()
    }
}

impl Output {
    /// Output for a request whose response goes to `sink`.
    pub fn new(sink: Box<dyn ResponseSink>, conn: Arc<RequestState>, buffer_size: usize) -> Self {
        Self {
            sink,
            conn,
            head: ResponseHead::default(),
            head_sent: false,
            buffer: Vec::with_capacity(buffer_size.min(64 * 1024)),
            buffer_size,
            phase: Phase::Open,
            body_wanted: false,
            sent_status: None,
            finished_early: false,
        }
    }

    /// Checks the connection before an output call: traps if the client is gone and not
    /// ignored, and reports `Err` if output must be discarded.
    fn check(&mut self) -> Result<OutputResult, MustTrap> {
        if self.conn.output_must_trap() {
            return Err(MustTrap);
        }
        if self.conn.is_aborted() {
            self.phase = Phase::Lost;
        }
        Ok(match self.phase {
            Phase::Open => Ok(()),
            Phase::Finished => Err(OutputError::Finished),
            Phase::Lost => Err(OutputError::Aborted),
        })
    }

    /// PHP's `echo`: appends to the buffer and flushes once the buffer is full.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<OutputResult, MustTrap> {
        if let Err(refused) = self.check()? {
            return Ok(Err(refused));
        }
        self.buffer.extend_from_slice(bytes);
        // An empty write sends nothing, even unbuffered (PHP's `echo ''`): the head stays open.
        if !bytes.is_empty() && self.buffer.len() >= self.buffer_size { self.send_buffer().await } else { Ok(Ok(())) }
    }

    /// PHP's `ob_flush(); flush();`: sends the head (first time) and the buffer.
    pub async fn flush(&mut self) -> Result<OutputResult, MustTrap> {
        if let Err(refused) = self.check()? {
            return Ok(Err(refused));
        }
        self.send_buffer().await
    }

    /// Records that the head went out (or was attempted: either way it can no longer change).
    fn mark_head_sent(&mut self) {
        if !self.head_sent {
            self.head_sent = true;
            self.sent_status = Some(self.head.status);
        }
    }

    /// Sends whatever is buffered; a failure marks the client gone. The head counts as sent from
    /// the start of the write: a write cut short (a failure, or the guest stopped while blocked
    /// in it) may have put part of it on the wire.
    async fn send_buffer(&mut self) -> Result<OutputResult, MustTrap> {
        let first = !self.head_sent;
        self.mark_head_sent();
        let result = self.sink.send(first.then_some(&self.head), &self.buffer).await;
        self.buffer.clear();
        match result {
            Ok(()) => Ok(Ok(())),
            Err(error) => {
                tracing::debug!(%error, "write to client failed");
                self.phase = Phase::Lost;
                if self.conn.write_failed() { Err(MustTrap) } else { Ok(Err(OutputError::Aborted)) }
            }
        }
    }

    /// PHP's `fastcgi_finish_request()`: completes the response and hands the connection back.
    /// Returns whether it did; false if it was already finished or the client is gone.
    pub async fn finish_request(&mut self) -> Result<bool, MustTrap> {
        if self.check()?.is_err() {
            return Ok(false);
        }
        match self.complete().await {
            Ok(()) => {
                self.finished_early = true;
                Ok(true)
            }
            Err(()) if self.conn.write_failed() => Err(MustTrap),
            Err(()) => Ok(false),
        }
    }

    /// wasi:http's `outgoing-body.finish`: completes the response from inside the guest's call,
    /// as [`Output::end`] does after a guest returned. It never stops the guest: completing the
    /// response is the host's business, as under `wasmtime serve`, and a client that leaves
    /// while the complete response is on its way has not aborted it. Returns whether the
    /// response completed now. Not an early finish: every wasi:http response ends this way.
    pub async fn finish_body(&mut self) -> bool {
        match self.phase {
            Phase::Open if !self.conn.is_aborted() => self.complete().await.is_ok(),
            Phase::Open | Phase::Finished | Phase::Lost => false,
        }
    }

    /// Completes an open response; output is lost if that fails (the caller tells the request
    /// state).
    async fn complete(&mut self) -> Result<(), ()> {
        self.conn.mark_responded();
        let first = !self.head_sent;
        self.mark_head_sent();
        let result = self.sink.complete(first.then_some(&self.head), &self.buffer).await;
        self.buffer.clear();
        match result {
            Ok(()) => {
                self.phase = Phase::Finished;
                Ok(())
            }
            Err(error) => {
                tracing::debug!(%error, "completing the response failed");
                self.phase = Phase::Lost;
                Err(())
            }
        }
    }

    /// Ends the response after the guest returned normally.
    pub async fn end(&mut self) {
        match self.phase {
            Phase::Open if !self.conn.is_aborted() => {
                if self.complete().await.is_err() {
                    self.conn.write_failed();
                }
            }
            Phase::Open | Phase::Lost => self.sink.fail(Failure::ClientGone).await,
            Phase::Finished => {}
        }
    }

    /// Ends the response after the guest was killed or trapped.
    pub async fn fail(&mut self, failure: Failure) {
        match self.phase {
            Phase::Open if !self.conn.is_aborted() => {
                if let (false, Failure::Error { status, .. }) = (self.head_sent, &failure) {
                    self.sent_status = Some(*status);
                }
                self.sink.fail(failure).await;
            }
            Phase::Open | Phase::Lost => self.sink.fail(Failure::ClientGone).await,
            Phase::Finished => {}
        }
    }

    /// Whether the response was completed early with `finish-request`.
    pub fn finished_early(&self) -> bool {
        self.finished_early
    }

    /// The status that reached the client, or 499 (nginx's "client closed request") if the
    /// client went away before any of the response reached the socket.
    pub fn status(&self) -> u16 {
        match self.sent_status {
            Some(status) if self.sink.bytes_sent() > 0 => status,
            _ => CLIENT_CLOSED_REQUEST,
        }
    }

    /// Bytes put on the wire so far.
    pub fn bytes_sent(&self) -> u64 {
        self.sink.bytes_sent()
    }

    /// Whether the head is on the wire (PHP's `headers_sent()`).
    pub fn headers_sent(&self) -> bool {
        self.head_sent
    }

    /// The head as set so far, or as sent.
    pub fn head(&self) -> &ResponseHead {
        &self.head
    }

    /// The head, for changing it; refused once sent.
    pub fn head_mut(&mut self) -> Result<&mut ResponseHead, HeadError> {
        if self.head_sent { Err(HeadError::HeadersSent) } else { Ok(&mut self.head) }
    }

    /// Tells the front end, once, that the guest is about to read the body.
    pub async fn body_wanted(&mut self) {
        if !self.body_wanted {
            self.body_wanted = true;
            if !self.head_sent
                && self.phase == Phase::Open
                && let Err(error) = self.sink.body_wanted().await
            {
                tracing::debug!(%error, "sending 100 Continue failed");
            }
        }
    }
}
