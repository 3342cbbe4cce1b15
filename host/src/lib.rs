//! Tether: a WebAssembly request sandbox that keeps PHP's request model and fixes its
//! client-abort handling.
//!
//! A request flows through the layers in this order; each module's docs say what it owns:
//!
//! ```text
//! socket → net → front end (http1, fastcgi) → request core (request) + dispatch → runtime → guest
//! ```
//!
//! - [`manifest`], [`router`], [`units`]: configuration and routing, pure.
//! - [`net`]: listeners and the stream abstraction the front ends share.
//! - [`http1`], [`fastcgi`]: the front ends.
//! - [`request`]: the protocol-neutral request: heads, body stream, output buffer, response
//!   sink, request state (PHP's status bits, the kill switch) and outcomes.
//! - [`generation`]: what one reading of the manifest builds (settings, the routes loaded into
//!   the runtime, admission), replaced whole on a reload and when the idle server gives its
//!   instance pool back.
//! - [`dispatch`]: admits requests (or refuses them), runs them, ends and logs them.
//! - [`runtime`]: wasmtime — engine, compile cache, the store every world shares, the worlds.
//! - [`server`], [`cli`], [`build`], [`probe`]: the process around it; [`admin`]: its status
//!   page and metrics; [`systemd`]: socket activation and readiness notification; [`watch`]:
//!   `--watch`, reloading when a file changes.
//!
//! # Cancel safety
//! What happens when a future is dropped:
//! - **A guest's future** ([`runtime::Guest::handle`]) is dropped by the dispatcher to kill a
//!   guest that is inside a host call. The guest stops where it is; its store and instance are
//!   freed; the [`request::Output`] it was writing to stays with the dispatcher, which ends the
//!   response. A write cut short counts as having sent the head, so the response is then ended
//!   by closing the connection rather than by appending an error page to half a chunk. A
//!   wasi:http guest's outbound requests are tasks its store's resource table holds: they are
//!   aborted, and their connections closed, with the store.
//! - **A response sink** dropped without completing (its request task died) drops the write
//!   half it held, which closes the connection; the connection task sees its hand-back close
//!   and stops.
//! - **A connection task** is only ever stopped between requests (idle timeout, shutdown); while
//!   a request runs it waits for the response to be released.

pub mod admin;
#[cfg(test)]
mod arbitrary;
pub mod build;
pub mod cli;
pub mod dispatch;
pub mod examples;
pub mod fastcgi;
pub mod generation;
pub mod heap;
pub mod http1;
pub mod manifest;
pub mod net;
pub mod probe;
pub mod request;
pub mod router;
pub mod runtime;
pub mod scaffold;
pub mod sched;
pub mod server;
pub mod systemd;
pub mod units;
pub mod watch;
