//! The request body on its way from the socket to the guest: the framing decoder, fed from the
//! connection's read buffer, and the request's body feed it passes the decoded bytes to.

use super::body::{Decoded, Decoder};
use super::parse::Framing;
use crate::net::{ReadHalf, SocketReader};
use crate::request::body::{self, BodyError, BodyFeed, BodyReceiver};
use std::time::Duration;

/// Unread request body the connection discards after a response to stay reusable (as Go's
/// net/http); a larger rest closes the connection instead.
const MAX_DRAIN: u64 = 256 * 1024;

/// One request's body: where it is in its framing, and the feed to the guest.
pub(super) struct Feed {
    /// Where the body is in its framing.
    decoder: Decoder,
    /// The guest's body, held to the route's `max_body_size`.
    body: BodyFeed,
}

impl Feed {
    /// A feed for a body with `framing`, of at most `limit` bytes, and the guest's end of it.
    pub fn new(framing: Framing, limit: u64) -> (Self, BodyReceiver) {
        let decoder = match framing {
            Framing::Empty => Decoder::Done,
            Framing::Length(n) => Decoder::length(n),
            Framing::Chunked => Decoder::chunked(),
        };
        let (body, rx) = if decoder.is_done() { (BodyFeed::ended(), BodyReceiver::empty()) } else { body::channel(limit) };
        (Self { decoder, body }, rx)
    }

    /// Decodes from `buf` into the body while it takes more. Stops when the channel is full (a
    /// message waits for room), the buffer runs dry, or the body ended.
    pub fn pump(&mut self, buf: &mut bytes::BytesMut) {
        if !self.body.retry() {
            return;
        }
        while self.body.wants_input() {
            let decoded = self.decoder.decode(buf);
            // A chunk that can never fit `max_body_size` is refused as soon as its size line is
            // read, before any of it is passed on or waited for.
            let piece = match &decoded {
                Ok(Decoded::Data(bytes)) => bytes.len() as u64,
                _ => 0,
            };
            if !self.body.fits(piece.saturating_add(self.decoder.pending())) {
                self.body.fail(BodyError::TooLarge);
                return;
            }
            match decoded {
                Ok(Decoded::NeedMore) => return,
                Ok(Decoded::End) => self.body.end(),
                Ok(Decoded::Data(bytes)) => self.body.data(bytes),
                Err(error) => {
                    tracing::debug!(%error, "bad request body");
                    self.body.fail(BodyError::Malformed);
                }
            }
        }
    }

    /// Whether decoding waits for more bytes from the socket.
    pub fn wants_input(&self) -> bool {
        self.body.wants_input()
    }

    /// Whether the guest's body is still open (more of it may come).
    pub fn is_open(&self) -> bool {
        self.body.is_open()
    }

    /// Whether a decoded message waits for room in the channel.
    pub fn is_held_up(&self) -> bool {
        self.body.is_held_up()
    }

    /// Waits for room in the channel (resolves only while a message is held up).
    pub async fn room(&self) {
        self.body.room().await;
    }

    /// Whether the body's framing (or its size) broke it: the connection cannot be reused.
    pub fn is_broken(&self) -> bool {
        self.body.failed()
    }

    /// The body's [`body::Broken`] flag, for the response sink's keep-alive promise.
    pub fn broken(&self) -> body::Broken {
        self.body.broken()
    }

    /// Whether the socket delivered the whole body.
    pub fn is_complete(&self) -> bool {
        self.decoder.is_done()
    }

    /// The client went away mid-body.
    pub fn abort(&mut self) {
        if !self.decoder.is_done() {
            self.body.fail(BodyError::Aborted);
        }
    }

    /// The response is over: the guest's body closes (a guest that finished its response early
    /// and reads on finds the rest unavailable).
    pub fn close(&mut self) {
        self.body.close();
    }

    /// Discards what is left of the body, if it is small, so the connection can serve the next
    /// request. Returns whether the body is now fully consumed.
    pub async fn skip_rest<R: ReadHalf>(&mut self, reader: &mut SocketReader<R>, within: Duration) -> bool {
        let mut discarded = 0u64;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match self.decoder.decode(&mut reader.buf) {
                Ok(Decoded::End) => return true,
                Ok(Decoded::Data(bytes)) => {
                    discarded += bytes.len() as u64;
                    if discarded > MAX_DRAIN {
                        return false;
                    }
                }
                Ok(Decoded::NeedMore) => match tokio::time::timeout_at(deadline, reader.read_more()).await {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => return false,
                },
                Err(_) => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_that_can_never_fit_is_refused_at_its_size_line() {
        let size_line = |line: &'static [u8]| {
            let (mut feed, _guest) = Feed::new(Framing::Chunked, 16);
            feed.pump(&mut bytes::BytesMut::from(line));
            feed.is_broken()
        };
        assert!(!size_line(b"10\r\n"), "16 bytes fit");
        assert!(size_line(b"11\r\n"), "17 bytes never do, whether or not they are sent");
    }
}
