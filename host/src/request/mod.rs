//! The request/connection core: the protocol-neutral pieces every front end feeds and the
//! runtime consumes. A request is a [`RequestHead`], a body stream ([`body`]), an [`Output`]
//! writing through a front end's [`ResponseSink`], and a [`ConnState`] that the front end keeps
//! up to date from the socket.
//!
//! **Nothing here knows HTTP framing, FastCGI records or wasmtime.**

pub mod body;
mod conn_state;
mod head;
mod outcome;
mod output;
mod sink;

pub use body::{BodyError, BodyReceiver, BodySender};
pub use conn_state::{ABORTED, AbortDetection, ConnState, InterruptHook, KillReason, PeerClose, TIMEOUT};
pub use head::{HeadError, RequestHead, ResponseHead, is_tchar, reason_phrase};
pub use outcome::{AccessRecord, Outcome, abort_latency, monotonic_ns};
pub use output::{CLIENT_CLOSED_REQUEST, MustTrap, Output, OutputError, OutputResult};
pub use sink::{Failure, ResponseSink, StderrSink};
