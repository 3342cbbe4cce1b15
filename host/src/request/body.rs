//! The request body as a stream of chunks from the front end (which decodes HTTP framing or
//! FastCGI STDIN records) to the guest (which reads it on demand), held to the route's
//! `max_body_size` on the way.
//!
//! A [`channel`] holds at most [`BODY_CHANNEL_CHUNKS`] chunks, so a guest that does not read its
//! body exerts TCP backpressure on the client instead of making the host buffer it; the front
//! end feeds it through a [`BodyFeed`], which counts the bytes against that limit. A
//! [`WholeBody`] is for front ends whose peer must not be held up and whose guest starts only
//! once the body is complete (FastCGI: the web server writes the whole body before it reads the
//! response, so holding it up can deadlock): it collects the body, held to the same limit, and
//! the guest then reads it from memory.

use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use thiserror::Error;
use tokio::sync::mpsc;

/// Decoded chunks in flight between front end and guest. Small: it only smooths the hand-off.
pub const BODY_CHANNEL_CHUNKS: usize = 4;

/// Why the body cannot be read. Mirrors the WIT `body-error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum BodyError {
    /// The client went away mid-body.
    #[error("client aborted the request body")]
    Aborted,
    /// The body exceeds the route's `max_body_size`.
    #[error("request body too large")]
    TooLarge,
    /// The body framing was invalid.
    #[error("malformed request body")]
    Malformed,
    /// The response was finished early; the body is gone.
    #[error("request body no longer available")]
    Unavailable,
}

/// One message from the front end: a chunk, the clean end, or why the body stopped.
#[derive(Debug)]
enum BodyMsg {
    /// The next bytes of the body (never empty).
    Data(Bytes),
    /// The body is complete.
    End,
    /// The body stopped early.
    Error(BodyError),
}

/// Creates the two ends of a bounded body stream for a body of at most `limit` bytes.
pub fn channel(limit: u64) -> (BodyFeed, BodyReceiver) {
    let (tx, rx) = mpsc::channel(BODY_CHANNEL_CHUNKS);
    (BodyFeed::new(tx, limit), BodyReceiver::new(Rx::Channel(rx)))
}

/// Where the guest's end reads from.
#[derive(Debug)]
enum Rx {
    /// A [`channel`].
    Channel(mpsc::Receiver<BodyMsg>),
    /// A [`WholeBody`]'s chunks, then how it ended.
    Whole { chunks: std::vec::IntoIter<Bytes>, end: Result<(), BodyError> },
}

/// The front end's end of the body stream: passes chunks on while the body stays within its
/// limit, and holds back a message a full bounded channel cannot take yet.
#[derive(Debug)]
pub struct BodyFeed {
    /// The channel; `None` once the body ended for the guest (completely, or with an error).
    tx: Option<mpsc::Sender<BodyMsg>>,
    /// A message that did not fit in a full bounded channel yet.
    pending: Option<BodyMsg>,
    /// Body bytes passed on so far.
    received: u64,
    /// The route's `max_body_size`.
    limit: u64,
    /// Whether the body ended with an error: the stream it came in is not to be trusted.
    failed: Broken,
}

/// Whether a request body ended with an error (too large, malformed, aborted), for whoever
/// answers the request as well as the feed: set before the guest can learn of the error, so a
/// response the guest writes about it already knows. A request without a body never breaks,
/// and has no flag to share.
#[derive(Clone, Debug, Default)]
pub struct Broken(Option<Arc<AtomicBool>>);

impl Broken {
    /// Whether the body broke.
    pub fn get(&self) -> bool {
        self.0.as_ref().is_some_and(|broken| broken.load(Ordering::Acquire))
    }

    fn set(&self) {
        if let Some(broken) = &self.0 {
            broken.store(true, Ordering::Release);
        }
    }
}

impl BodyFeed {
    fn new(tx: mpsc::Sender<BodyMsg>, limit: u64) -> Self {
        Self { tx: Some(tx), pending: None, received: 0, limit, failed: Broken(Some(Arc::default())) }
    }

    /// A feed for a request without a body: ended before it began.
    pub fn ended() -> Self {
        Self { tx: None, pending: None, received: 0, limit: 0, failed: Broken::default() }
    }

    /// Passes on the next bytes of the body, or [`BodyError::TooLarge`] instead once they take
    /// it past the limit.
    pub fn data(&mut self, bytes: Bytes) {
        self.received += bytes.len() as u64;
        if self.received > self.limit { self.fail(BodyError::TooLarge) } else { self.offer(BodyMsg::Data(bytes)) }
    }

    /// Whether `more` bytes beyond those passed on still fit the limit: the framing announces
    /// them (a chunk's size line) before they arrive.
    pub fn fits(&self, more: u64) -> bool {
        self.received.saturating_add(more) <= self.limit
    }

    /// The body is complete.
    pub fn end(&mut self) {
        self.offer(BodyMsg::End);
    }

    /// The body stops early; the guest's next read fails with `error`.
    pub fn fail(&mut self, error: BodyError) {
        if self.tx.is_some() {
            self.failed.set();
            // Ahead of anything still pending: the body is over.
            self.pending = None;
            self.offer(BodyMsg::Error(error));
        }
    }

    /// Sends `msg`, or keeps it pending while the channel is full. A receiver that went away
    /// (the guest finished) swallows it.
    fn offer(&mut self, msg: BodyMsg) {
        let Some(tx) = &self.tx else { return };
        let last = !matches!(msg, BodyMsg::Data(_));
        let sent = match tx.try_send(msg) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => true,
            Err(mpsc::error::TrySendError::Full(msg)) => {
                self.pending = Some(msg);
                false
            }
        };
        if sent && last {
            self.tx = None;
        }
    }

    /// Sends the held-back message if the channel has room now; returns whether nothing is
    /// held back any more.
    pub fn retry(&mut self) -> bool {
        if let Some(msg) = self.pending.take() {
            self.offer(msg);
        }
        self.pending.is_none()
    }

    /// Whether the body is still open for the guest (not ended, not failed).
    pub fn is_open(&self) -> bool {
        self.tx.is_some()
    }

    /// Whether the feed takes more bytes now: open, with nothing held back.
    pub fn wants_input(&self) -> bool {
        self.tx.is_some() && self.pending.is_none()
    }

    /// Whether a message waits for room in the channel.
    pub fn is_held_up(&self) -> bool {
        self.pending.is_some()
    }

    /// Whether the body ended with an error (too large, malformed, aborted).
    pub fn failed(&self) -> bool {
        self.failed.get()
    }

    /// The body's [`Broken`] flag, to share with whoever answers the request.
    pub fn broken(&self) -> Broken {
        self.failed.clone()
    }

    /// Body bytes passed on so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Waits until the channel has room for the held-back message (or the receiver is gone);
    /// never resolves while nothing is held back.
    pub async fn room(&self) {
        match (&self.tx, &self.pending) {
            // A reserved permit is dropped at once: only the wake-up matters, and this feed is
            // the only sender, so the room stays.
            (Some(tx), Some(_)) => drop(tx.reserve().await),
            _ => std::future::pending().await,
        }
    }

    /// Closes the feed without a word to the guest: its next read finds the body
    /// [`BodyError::Unavailable`] unless the body had ended.
    pub fn close(&mut self) {
        self.tx = None;
        self.pending = None;
    }
}

/// A body collected whole before its guest starts (see the module docs), held to its route's
/// `max_body_size` as a [`BodyFeed`] holds a streamed one.
#[derive(Debug)]
pub struct WholeBody {
    /// The chunks so far.
    chunks: Vec<Bytes>,
    /// Body bytes taken so far.
    received: u64,
    /// The route's `max_body_size`.
    limit: u64,
    /// Why the body stopped early, if it did: the guest reads what came before, then this.
    failed: Option<BodyError>,
}

impl WholeBody {
    /// An empty body of at most `limit` bytes.
    pub fn new(limit: u64) -> Self {
        Self { chunks: Vec::new(), received: 0, limit, failed: None }
    }

    /// Takes the next bytes of the body, or ends it [`BodyError::TooLarge`] once they take it
    /// past the limit.
    pub fn data(&mut self, bytes: Bytes) {
        self.received += bytes.len() as u64;
        if self.received > self.limit {
            self.fail(BodyError::TooLarge);
        } else if self.failed.is_none() {
            self.chunks.push(bytes);
        }
    }

    /// The body stops early; the guest reads `error` after what came before.
    pub fn fail(&mut self, error: BodyError) {
        self.failed.get_or_insert(error);
    }

    /// Body bytes taken so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The body is complete: the guest's end, which reads it from memory.
    pub fn receiver(self) -> BodyReceiver {
        if self.chunks.is_empty() && self.failed.is_none() {
            return BodyReceiver::empty();
        }
        BodyReceiver::new(Rx::Whole { chunks: self.chunks.into_iter(), end: self.failed.map_or(Ok(()), Err) })
    }
}

/// The guest's end of the body stream.
#[derive(Debug)]
pub struct BodyReceiver {
    /// `None` for a request without a body.
    rx: Option<Rx>,
    /// The unread rest of the last chunk.
    pending: Bytes,
    /// How the body ended, once it did.
    outcome: Option<Result<(), BodyError>>,
}

impl BodyReceiver {
    fn new(rx: Rx) -> Self {
        Self { rx: Some(rx), pending: Bytes::new(), outcome: None }
    }

    /// A receiver for a request without a body.
    pub fn empty() -> Self {
        Self { rx: None, pending: Bytes::new(), outcome: Some(Ok(())) }
    }

    /// The next at most `max` bytes; empty at the end of the body.
    pub async fn read(&mut self, max: usize) -> Result<Bytes, BodyError> {
        std::future::poll_fn(|cx| self.poll_read(cx, max)).await
    }

    /// [`BodyReceiver::read`] for a reader that polls (an `http_body::Body`).
    pub fn poll_read(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<Result<Bytes, BodyError>> {
        let max = max.max(1);
        while self.pending.is_empty() {
            if let Some(outcome) = self.outcome {
                return Poll::Ready(outcome.map(|()| Bytes::new()));
            }
            let msg = match self.rx.as_mut() {
                Some(Rx::Channel(rx)) => ready!(rx.poll_recv(cx)),
                Some(Rx::Whole { chunks, end }) => Some(match chunks.next() {
                    Some(bytes) => BodyMsg::Data(bytes),
                    None => end.map_or_else(BodyMsg::Error, |()| BodyMsg::End),
                }),
                None => None,
            };
            match msg {
                Some(BodyMsg::Data(bytes)) => self.pending = bytes,
                Some(BodyMsg::End) => self.outcome = Some(Ok(())),
                Some(BodyMsg::Error(error)) => self.outcome = Some(Err(error)),
                // The front end stopped feeding without saying why: the request is over for it.
                None => self.outcome = Some(Err(BodyError::Unavailable)),
            }
        }
        let n = max.min(self.pending.len());
        Poll::Ready(Ok(self.pending.split_to(n)))
    }

    /// Whether the guest might still read: false once the body ended and was consumed.
    pub fn is_exhausted(&self) -> bool {
        self.pending.is_empty() && self.outcome.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunks_are_split_to_the_readers_size_and_end_cleanly() {
        let (mut feed, mut rx) = channel(100);
        feed.data(Bytes::from_static(b"hello"));
        feed.end();
        assert!(!feed.is_open() && !feed.failed());
        assert_eq!(&rx.read(3).await.unwrap()[..], b"hel");
        assert_eq!(&rx.read(10).await.unwrap()[..], b"lo");
        assert!(rx.read(10).await.unwrap().is_empty());
        assert!(rx.is_exhausted());
    }

    #[tokio::test]
    async fn errors_stick_and_a_vanished_feed_is_unavailable() {
        let (mut feed, mut rx) = channel(100);
        feed.fail(BodyError::Aborted);
        assert_eq!(rx.read(1).await, Err(BodyError::Aborted));
        assert_eq!(rx.read(1).await, Err(BodyError::Aborted));

        let (feed, mut rx) = channel(100);
        drop(feed);
        assert_eq!(rx.read(1).await, Err(BodyError::Unavailable));
    }

    #[tokio::test]
    async fn a_body_past_its_limit_ends_too_large() {
        let (mut feed, mut streamed) = channel(4);
        let mut whole = WholeBody::new(4);
        for chunk in [&b"abc"[..], b"de"] {
            feed.data(Bytes::from_static(chunk));
            whole.data(Bytes::from_static(chunk));
        }
        assert!(feed.failed() && !feed.is_open());
        assert_eq!((feed.received(), whole.received()), (5, 5));
        for rx in [&mut streamed, &mut whole.receiver()] {
            assert_eq!(&rx.read(10).await.unwrap()[..], b"abc");
            assert_eq!(rx.read(10).await, Err(BodyError::TooLarge));
            assert_eq!(rx.read(10).await, Err(BodyError::TooLarge));
        }
    }

    #[tokio::test]
    async fn a_whole_body_is_read_from_memory_in_the_readers_sizes() {
        let mut whole = WholeBody::new(u64::MAX);
        for _ in 0..10 * BODY_CHANNEL_CHUNKS {
            whole.data(Bytes::from_static(b"xy"));
        }
        let mut rx = whole.receiver();
        let mut read = 0;
        loop {
            let chunk = rx.read(3).await.unwrap();
            if chunk.is_empty() {
                break;
            }
            assert!(chunk.len() <= 2, "no read spans two chunks");
            read += chunk.len();
        }
        assert_eq!(read, 20 * BODY_CHANNEL_CHUNKS);
        assert!(rx.is_exhausted());
        assert!(WholeBody::new(0).receiver().is_exhausted(), "an empty body needs nothing read");
    }

    #[tokio::test]
    async fn a_full_channel_holds_the_message_back_until_there_is_room() {
        let (mut feed, mut rx) = channel(u64::MAX);
        for _ in 0..BODY_CHANNEL_CHUNKS {
            feed.data(Bytes::from_static(b"x"));
        }
        feed.end();
        assert!(feed.is_held_up() && !feed.wants_input());
        assert!(!feed.retry(), "still no room");
        assert_eq!(&rx.read(1).await.unwrap()[..], b"x");
        feed.room().await;
        assert!(feed.retry());
        assert!(!feed.is_open(), "the end went through");
    }
}
