//! The HTTP/1.1 front end, in hyper's `proto/h1` shape: parsing ([`parse`]) and body decoding
//! ([`body`]) are pure codecs, [`encode`] writes response heads and chunk framing; the connection
//! loop ([`conn`]) ties them to the request core, with the body pump (`feed`), the response
//! writer (`sink`), the one place that decides whether a connection goes on (`keep_alive`),
//! and the hand-back of the write half from a response to the connection ([`handback`]).
//!
//! **The front ends never touch wasmtime types**: a request leaves here as a
//! [`crate::request::RequestHead`], a body stream, a [`crate::request::ResponseSink`] and a
//! [`crate::request::RequestState`].

pub mod body;
pub mod conn;
pub mod encode;
mod feed;
pub mod handback;
mod keep_alive;
pub mod parse;
mod sink;

pub use conn::serve;
