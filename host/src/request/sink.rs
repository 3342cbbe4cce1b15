//! The seam between the request core and a front end: a [`ResponseSink`] puts a response on the
//! wire in its protocol's framing (HTTP/1.1 chunks, FastCGI STDOUT records) and hands the
//! connection back to its front end when the response is over.

use super::head::ResponseHead;
use std::io;
use std::sync::Arc;

/// Where a guest's stderr lines go besides the host log, for protocols that carry them
/// (FastCGI `STDERR` records). Called with each complete line, newline included.
pub type StderrSink = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// How a response that cannot complete normally ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The client is gone; there is no one to answer.
    ClientGone,
    /// The request failed. If the head is not on the wire yet, the client gets this status with
    /// `message` as a short plain-text body; otherwise the front end ends the response so the
    /// client can tell it is incomplete.
    Error {
        /// The status for the error response.
        status: u16,
        /// A short explanation for the client.
        message: String,
    },
}

/// A front end's response writer for one request. Every method that writes returns only after
/// the write system calls returned, so a guest's `flush` really is a socket write.
#[async_trait::async_trait]
pub trait ResponseSink: Send {
    /// Sends `head` (`Some` on the first send only) and `body`. With no head and an empty body
    /// this still makes a zero-length write, as PHP's empty `flush()` does: on a Unix socket it
    /// fails once the peer closed, on TCP it never does.
    async fn send(&mut self, head: Option<&ResponseHead>, body: &[u8]) -> io::Result<()>;

    /// Completes the response and hands the connection back to the front end. `head` is `Some`
    /// when nothing was sent yet, in which case `body` is the entire body.
    async fn complete(&mut self, head: Option<&ResponseHead>, body: &[u8]) -> io::Result<()>;

    /// Ends the response unsuccessfully (see [`Failure`]) and hands the connection back.
    async fn fail(&mut self, failure: Failure);

    /// Called once, before the guest first reads the request body (HTTP sends `100 Continue` if
    /// the client asked for it and the head is not sent yet).
    async fn body_wanted(&mut self) -> io::Result<()>;

    /// Bytes put on the wire for this response so far: head, framing and body.
    fn bytes_sent(&self) -> u64;

    /// Where the guest's stderr should go too, if the protocol carries it.
    fn stderr(&self) -> Option<StderrSink> {
        None
    }
}
