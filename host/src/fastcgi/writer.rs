//! The write half of a FastCGI connection, shared by the connection task and its requests'
//! sinks: whole records only, one vectored write at a time, and once a write broke off half way
//! (its request was stopped inside it, or the socket failed), nothing more, since the record
//! stream may be torn.

use super::record::{Frames, ProtocolStatus};
use crate::net::write_all_vectored;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};

/// The shared write half. See the module docs.
pub(super) struct Writer<W> {
    /// The write half; `broken` once a write failed or was cut short.
    state: tokio::sync::Mutex<WriterState<W>>,
    /// The server's `send_timeout`: a web server that takes no bytes for that long breaks the
    /// connection (every request on it fails its next write).
    send_timeout: Duration,
}

struct WriterState<W> {
    /// The socket's write half.
    io: W,
    /// A write failed or was cancelled half way, so the record stream may be torn: nothing
    /// more may be written.
    broken: bool,
}

impl<W: AsyncWrite + Send + Unpin> Writer<W> {
    pub fn new(io: W, send_timeout: Duration) -> Self {
        Self { state: tokio::sync::Mutex::new(WriterState { io, broken: false }), send_timeout }
    }

    /// Writes `frames` in one vectored write; returns the bytes written.
    pub async fn write(&self, frames: &Frames<'_>) -> io::Result<u64> {
        let mut written = 0;
        self.write_counting(frames, &mut written).await.map(|()| written)
    }

    /// Writes `frames` in one vectored write, adding the bytes to `written` as they go (also
    /// when the write fails or is cancelled half way).
    pub async fn write_counting(&self, frames: &Frames<'_>, written: &mut u64) -> io::Result<()> {
        let mut state = self.state.lock().await;
        if state.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        // Stays set if this future is dropped mid-write.
        state.broken = true;
        let result = write_all_vectored(&mut state.io, &mut frames.slices(), self.send_timeout, written).await;
        state.broken = result.is_err();
        result
    }

    /// §5.5: ends request `id` with `status` and nothing else. A failure means the connection
    /// is gone, which ends the request too.
    pub async fn end_request(&self, id: u16, status: ProtocolStatus) {
        let mut frames = Frames::new();
        frames.end_request(id, status);
        let _ = self.write(&frames).await;
    }

    /// A zero-length write on the socket: PHP's empty `flush()`.
    pub async fn zero_length_write(&self) -> io::Result<()> {
        let mut state = self.state.lock().await;
        if state.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        state.io.write(&[]).await.map(drop)
    }

    /// The write half, once nothing else holds the writer.
    pub fn into_io(self) -> W {
        self.state.into_inner().io
    }

    /// Closes the connection for writing; nothing more will be written.
    pub async fn close(&self) {
        let mut state = self.state.lock().await;
        state.broken = true;
        let _ = state.io.shutdown().await;
    }
}
