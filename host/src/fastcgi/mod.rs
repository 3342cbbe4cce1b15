//! The FastCGI front end (Responder role), for running behind nginx or any FastCGI web server:
//! the record codec ([`record`]), CGI parameter mapping ([`mapping`]) and the multiplexed
//! connection ([`conn`]).
//!
//! **The front ends never touch wasmtime types**: like HTTP/1.1, a FastCGI request becomes a
//! [`crate::request::RequestHead`], a body stream fed from STDIN records, a
//! [`crate::request::ResponseSink`] writing STDOUT records, and a
//! [`crate::request::ConnState`] that the connection keeps up to date.

pub mod conn;
pub mod mapping;
pub mod record;

pub use conn::serve;
