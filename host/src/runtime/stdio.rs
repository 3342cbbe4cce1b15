//! Guest stdout and stderr: each complete line becomes a log event tagged with the request id
//! and the stream, so an operator (and the tests) can read what a guest saw; stderr lines also
//! go to the front end when its protocol carries them (FastCGI `STDERR`).

use crate::request::StderrSink;
use bytes::Bytes;
use std::pin::Pin;
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line logged as one event; longer lines are split. Bounds what one guest line costs.
const MAX_LINE: usize = 8 * 1024;
/// How much a guest may write per `check-write` round.
const WRITE_PERMIT: usize = 64 * 1024;

/// Which guest stream a line came from.
#[derive(Clone, Copy, Debug)]
pub enum Stdio {
    /// `stdout`.
    Stdout,
    /// `stderr`.
    Stderr,
}

impl Stdio {
    fn name(self) -> &'static str {
        match self {
            Stdio::Stdout => "stdout",
            Stdio::Stderr => "stderr",
        }
    }
}

/// A WASI output stream that logs lines. See the module docs.
pub struct GuestLog {
    /// The request the lines belong to.
    request: u64,
    /// Which stream this is.
    stream: Stdio,
    /// The route, for the log.
    route: std::sync::Arc<str>,
    /// The unterminated rest of the output.
    partial: Vec<u8>,
    /// Where complete lines go besides the log.
    forward: Option<StderrSink>,
}

impl GuestLog {
    /// A logger for `stream` of request `request` on `route`, forwarding lines to `forward`.
    pub fn new(request: u64, route: std::sync::Arc<str>, stream: Stdio, forward: Option<StderrSink>) -> Self {
        Self { request, stream, route, partial: Vec::new(), forward }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        while let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&bytes[..newline]);
            self.emit();
            bytes = &bytes[newline + 1..];
        }
        self.partial.extend_from_slice(bytes);
        while self.partial.len() > MAX_LINE {
            let rest = self.partial.split_off(MAX_LINE);
            self.emit();
            self.partial = rest;
        }
    }

    fn emit(&mut self) {
        if let Some(forward) = &self.forward {
            self.partial.push(b'\n');
            forward(&self.partial);
            self.partial.pop();
        }
        let line = String::from_utf8_lossy(&self.partial);
        tracing::info!(
            target: "tether::guest",
            req = self.request,
            route = &*self.route,
            stream = self.stream.name(),
            "{}",
            line.trim_end_matches('\r')
        );
        self.partial.clear();
    }

    fn clone_empty(&self) -> Self {
        Self::new(self.request, self.route.clone(), self.stream, self.forward.clone())
    }
}

impl Drop for GuestLog {
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            self.emit();
        }
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone_empty())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone_empty())
    }
}

impl tokio::io::AsyncWrite for GuestLog {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.get_mut().push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl OutputStream for GuestLog {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestLog {
    async fn ready(&mut self) {}
}
