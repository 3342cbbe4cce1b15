//! The request body as a bounded stream of chunks from the front end (which decodes HTTP framing
//! or FastCGI STDIN records) to the guest (which reads it on demand).
//!
//! A [`channel`] holds at most [`BODY_CHANNEL_CHUNKS`] chunks, so a guest that does not read its
//! body exerts TCP backpressure on the client instead of making the host buffer it. An
//! [`unbounded`] one is for front ends whose peer must not be held up (FastCGI: the web server
//! writes the whole body before it reads the response, so holding it up can deadlock); there
//! the route's `max_body_size` bounds what is buffered.

use bytes::Bytes;
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
pub enum BodyMsg {
    /// The next bytes of the body (never empty).
    Data(Bytes),
    /// The body is complete.
    End,
    /// The body stopped early.
    Error(BodyError),
}

/// Creates the two ends of a bounded body stream.
pub fn channel() -> (BodySender, BodyReceiver) {
    let (tx, rx) = mpsc::channel(BODY_CHANNEL_CHUNKS);
    (BodySender(Tx::Bounded(tx)), BodyReceiver::new(Rx::Bounded(rx)))
}

/// Creates the two ends of an unbounded body stream (see the module docs).
pub fn unbounded() -> (BodySender, BodyReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    (BodySender(Tx::Unbounded(tx)), BodyReceiver::new(Rx::Unbounded(rx)))
}

#[derive(Debug)]
enum Tx {
    Bounded(mpsc::Sender<BodyMsg>),
    Unbounded(mpsc::UnboundedSender<BodyMsg>),
}

#[derive(Debug)]
enum Rx {
    Bounded(mpsc::Receiver<BodyMsg>),
    Unbounded(mpsc::UnboundedReceiver<BodyMsg>),
}

/// The front end's end of the body stream.
#[derive(Debug)]
pub struct BodySender(Tx);

impl BodySender {
    /// Sends without waiting; gives the message back if a bounded channel is full.
    /// A receiver that went away (the guest finished) silently swallows the message.
    pub fn try_send(&self, msg: BodyMsg) -> Result<(), BodyMsg> {
        match &self.0 {
            Tx::Bounded(tx) => match tx.try_send(msg) {
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
                Err(mpsc::error::TrySendError::Full(msg)) => Err(msg),
            },
            Tx::Unbounded(tx) => {
                let _ = tx.send(msg);
                Ok(())
            }
        }
    }

    /// Waits until the channel has room (or the receiver is gone).
    pub async fn ready(&self) {
        match &self.0 {
            // A reserved permit is dropped at once: only the wake-up matters, and this sender
            // is the only one, so the room stays.
            Tx::Bounded(tx) => drop(tx.reserve().await),
            Tx::Unbounded(_) => {}
        }
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
        let max = max.max(1);
        while self.pending.is_empty() {
            if let Some(outcome) = self.outcome {
                return outcome.map(|()| Bytes::new());
            }
            let msg = match self.rx.as_mut() {
                Some(Rx::Bounded(rx)) => rx.recv().await,
                Some(Rx::Unbounded(rx)) => rx.recv().await,
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
        Ok(self.pending.split_to(n))
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
        let (tx, mut rx) = channel();
        tx.try_send(BodyMsg::Data(Bytes::from_static(b"hello"))).unwrap();
        tx.try_send(BodyMsg::End).unwrap();
        assert_eq!(&rx.read(3).await.unwrap()[..], b"hel");
        assert_eq!(&rx.read(10).await.unwrap()[..], b"lo");
        assert!(rx.read(10).await.unwrap().is_empty());
        assert!(rx.is_exhausted());
    }

    #[tokio::test]
    async fn errors_stick_and_a_vanished_sender_is_unavailable() {
        let (tx, mut rx) = channel();
        tx.try_send(BodyMsg::Error(BodyError::Aborted)).unwrap();
        assert_eq!(rx.read(1).await, Err(BodyError::Aborted));
        assert_eq!(rx.read(1).await, Err(BodyError::Aborted));

        let (tx, mut rx) = channel();
        drop(tx);
        assert_eq!(rx.read(1).await, Err(BodyError::Unavailable));
    }

    #[tokio::test]
    async fn an_unbounded_channel_takes_everything() {
        let (tx, mut rx) = unbounded();
        for _ in 0..10 * BODY_CHANNEL_CHUNKS {
            tx.try_send(BodyMsg::Data(Bytes::from_static(b"x"))).unwrap();
        }
        tx.try_send(BodyMsg::End).unwrap();
        assert_eq!(rx.read(1000).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn full_channel_gives_the_message_back() {
        let (tx, _rx) = channel();
        for _ in 0..BODY_CHANNEL_CHUNKS {
            tx.try_send(BodyMsg::Data(Bytes::from_static(b"x"))).unwrap();
        }
        assert!(tx.try_send(BodyMsg::End).is_err());
    }
}
