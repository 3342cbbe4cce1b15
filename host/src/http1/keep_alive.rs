//! Whether an HTTP/1.x connection serves another request after this one. Every reason to close
//! it is decided here: what the client asked for, the server shutting down, a body delimited by
//! closing, an expectation left unanswered, a refused request's unread body, a response that did
//! not go out whole, a client that left, and a request body that broke or is too large to skip.

use super::encode::BodyFraming;
use super::parse::Framing;
use crate::request::PeerClose;
use crate::request::body::Broken;
use tokio_util::sync::CancellationToken;

/// What one request's connection may do after its response.
#[derive(Clone, Debug)]
pub(super) struct KeepAlive {
    /// The client allows it: HTTP/1.1 without `Connection: close`, HTTP/1.0 with `keep-alive`.
    client_allows: bool,
    /// The server's shutdown: a response whose head goes out after it closes the connection.
    shutdown: CancellationToken,
    /// The request body's: a response whose head goes out after it broke closes the connection
    /// (the connection does, whatever the head said), and says so.
    body: Broken,
}

impl KeepAlive {
    /// For a request whose client allows keep-alive or not.
    pub fn new(client_allows: bool, shutdown: CancellationToken) -> Self {
        Self { client_allows, shutdown, body: Broken::default() }
    }

    /// The same, for a request whose body's flag is `body`.
    pub fn with_body(self, body: Broken) -> Self {
        Self { body, ..self }
    }

    /// Whether a response head going out now with `framing` promises to keep the connection.
    /// Not for a body delimited by closing the connection, not during a shutdown, not after the
    /// request body broke, and not when
    /// the client was told it may wait with its body (`Expect: 100-continue`) and was never
    /// asked for it: whether it sends that body after all is up to it, so the next bytes cannot
    /// be trusted to start a request.
    pub fn promise(&self, framing: BodyFraming, continue_unanswered: bool) -> bool {
        self.client_allows
            && !self.shutdown.is_cancelled()
            && !self.body.get()
            && framing != BodyFraming::CloseDelimited
            && !continue_unanswered
    }

    /// Whether a request the host refuses keeps the connection: only if it has no body to skip.
    pub fn after_refusal(&self, body: Framing) -> bool {
        body == Framing::Empty && self.promise(BodyFraming::Length(0), false)
    }

    /// Whether the connection reads the next request after a response that went out whole
    /// (`complete`, under a head that promised keep-alive), given how the client's side stands
    /// (`peer`; after a FIN the client can still read the answers to requests it pipelined
    /// before it, `pipelined`) and whether the body broke. The caller then skips the rest of a
    /// small unread body, or closes if it cannot.
    pub fn goes_on(complete: bool, peer: Option<PeerClose>, pipelined: bool, body_broken: bool) -> bool {
        let readable = peer.is_none() || (peer == Some(PeerClose::Fin) && pipelined);
        complete && readable && !body_broken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_to_close_closes() {
        let open = KeepAlive::new(true, CancellationToken::new());
        assert!(open.promise(BodyFraming::Chunked, false));
        assert!(!KeepAlive::new(false, CancellationToken::new()).promise(BodyFraming::Length(1), false), "the client's choice");
        assert!(!open.promise(BodyFraming::CloseDelimited, false), "a body delimited by closing");
        assert!(!open.promise(BodyFraming::Length(1), true), "an expectation left unanswered");
        assert!(open.after_refusal(Framing::Empty));
        assert!(!open.after_refusal(Framing::Length(10)), "an unread body");
        let shutdown = CancellationToken::new();
        let closing = KeepAlive::new(true, shutdown.clone());
        shutdown.cancel();
        assert!(!closing.promise(BodyFraming::Chunked, false) && !closing.after_refusal(Framing::Empty), "a shutdown");
        let (mut body, _guest) = crate::request::body::channel(1);
        let broken = KeepAlive::new(true, CancellationToken::new()).with_body(body.broken());
        assert!(broken.promise(BodyFraming::Length(1), false));
        body.fail(crate::request::body::BodyError::Malformed);
        assert!(!broken.promise(BodyFraming::Length(1), false), "a request body that broke");
        assert!(KeepAlive::goes_on(true, None, false, false));
        assert!(!KeepAlive::goes_on(false, None, false, false), "a response that did not go out whole");
        assert!(!KeepAlive::goes_on(true, Some(PeerClose::Reset), true, false), "a client that left");
        assert!(KeepAlive::goes_on(true, Some(PeerClose::Fin), true, false), "requests pipelined before a half-close");
        assert!(!KeepAlive::goes_on(true, Some(PeerClose::Fin), false, false), "nothing more after a half-close");
        assert!(!KeepAlive::goes_on(true, None, false, true), "a broken body");
    }
}
