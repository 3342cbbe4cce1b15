//! The FastCGI front end (Responder role), for running behind nginx or any FastCGI web server:
//! the record codec ([`record`]) and CGI parameter mapping ([`mapping`]) are pure; the
//! multiplexed connection ([`conn`]) ties them to the request core, with each request's response
//! writer (`sink`) and the record writer they share (`writer`).
//!
//! **The front ends never touch wasmtime types**: like HTTP/1.1, a FastCGI request becomes a
//! [`crate::request::RequestHead`], a body stream fed from STDIN records, a
//! [`crate::request::ResponseSink`] writing STDOUT records, and a
//! [`crate::request::RequestState`] that the connection keeps up to date.

pub mod conn;
pub mod mapping;
pub mod record;
mod sink;
mod writer;

pub use conn::serve;
