//! The HTTP/1.1 front end: parsing ([`parse`]), body decoding ([`body`]), response encoding
//! ([`encode`]), the connection that ties them to the request core ([`conn`]) and the hand-back
//! of its write half from a response to the connection ([`handback`]).
//!
//! **The front ends never touch wasmtime types**: a request leaves here as a
//! [`crate::request::RequestHead`], a body stream, a [`crate::request::ResponseSink`] and a
//! [`crate::request::ConnState`].

pub mod body;
pub mod conn;
pub mod encode;
pub mod handback;
pub mod parse;

pub use conn::serve;
