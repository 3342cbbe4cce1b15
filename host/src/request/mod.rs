//! The request core: the protocol-neutral pieces every front end feeds and the runtime
//! consumes. A request is a [`RequestHead`], a body stream ([`body`]), an [`Output`] writing
//! through a front end's [`ResponseSink`], and a [`RequestState`] that the front end keeps up to
//! date from the socket.
//!
//! **Nothing here knows HTTP framing, FastCGI records or wasmtime.**

pub mod body;
mod head;
mod outcome;
mod output;
mod sink;
mod state;

pub use body::{BodyError, BodyFeed, BodyReceiver};
pub use head::{CgiVars, HeadError, RequestHead, ResponseHead, is_tchar, reason_phrase};
pub use outcome::{AccessRecord, Outcome, SlowRecord, abort_latency, monotonic_ns};
pub use output::{CLIENT_CLOSED_REQUEST, MustTrap, Output, OutputError, OutputResult};
pub use sink::{Failure, ResponseSink, StderrSink};
pub use state::{ABORTED, AbortDetection, InterruptHook, KillReason, PeerClose, RequestState, TIMEOUT};

/// The front end a request came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/1.1, from Tether's own listener.
    Http,
    /// FastCGI, from a web server in front.
    FastCgi,
}

impl Protocol {
    /// `http` or `fastcgi`, as the log names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::FastCgi => "fastcgi",
        }
    }
}
