//! Sockets for the front ends: TCP and Unix listeners (binding, replacing a stale socket file,
//! setting its mode), and the [`Stream`] abstraction the front ends serve over either.
//!
//! A front end splits a stream into a read half, which it keeps to watch the client, and a write
//! half, which the request's response sink owns while the guest runs.

use crate::manifest::ListenAddr;
use crate::request::PeerClose;
use anyhow::Context as _;
use bytes::BytesMut;
use std::future::Future;
use std::io::{self, IoSlice};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, Interest, Ready};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// The read half of a stream, with what the front ends need beyond reading: waiting for
/// readiness without consuming data, to see a client's FIN or RST while its unread bytes stay
/// queued.
pub trait ReadHalf: AsyncRead + Send + Unpin + 'static {
    /// Waits for readiness (`READABLE` includes the peer's FIN, `ERROR` its RST).
    fn ready(&self, interest: Interest) -> impl Future<Output = io::Result<Ready>> + Send;
    /// Forgets cached read readiness, so that the next [`ReadHalf::ready`] waits for a new event
    /// instead of returning at once for data that is already queued. Afterwards, reads must go
    /// through [`ReadHalf::read_now`] until it reports `WouldBlock`: bytes that were already
    /// queued will not produce another readiness event.
    fn clear_read_readiness(&self);
    /// Reads whatever is queued without waiting, bypassing the cached readiness.
    fn read_now(&self, buf: &mut [u8]) -> io::Result<usize>;
}

fn recv_now(fd: impl std::os::fd::AsFd, buf: &mut [u8]) -> io::Result<usize> {
    rustix::net::recv(fd, buf, rustix::net::RecvFlags::DONTWAIT).map(|(n, _)| n).map_err(io::Error::from)
}

/// A connected stream (TCP or Unix).
pub trait Stream: Send + 'static {
    /// The read half.
    type Read: ReadHalf;
    /// The write half.
    type Write: WriteHalf;
    /// Splits the stream.
    fn split(self) -> (Self::Read, Self::Write);
    /// The peer's address, `IP:PORT`; `None` for a Unix socket, whose peer has none to name.
    fn peer(&self) -> Option<std::sync::Arc<str>>;
    /// This side's address, `IP:PORT`; `None` for a Unix socket.
    fn local(&self) -> Option<std::sync::Arc<str>>;
}

/// The write half of a connected stream.
pub trait WriteHalf: AsyncWrite + Send + Unpin + 'static {
    /// Lets go of the write half without shutting its direction down (which dropping it does):
    /// the socket closes with its read half, in one `close` instead of a `shutdown` first.
    fn release(self);
}

fn would_block() -> io::Result<()> {
    Err(io::ErrorKind::WouldBlock.into())
}

/// [`Stream`] for a tokio stream type and [`ReadHalf`] for its owned read half: TCP and Unix
/// sockets behave the same here.
macro_rules! stream {
    ($stream:ty, $module:ident, $peer:expr, $local:expr) => {
        impl ReadHalf for tokio::net::$module::OwnedReadHalf {
            fn ready(&self, interest: Interest) -> impl Future<Output = io::Result<Ready>> + Send {
                self.as_ref().ready(interest)
            }
            fn clear_read_readiness(&self) {
                let _ = self.as_ref().try_io(Interest::READABLE, would_block);
            }
            fn read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
                recv_now(self.as_ref(), buf)
            }
        }

        impl WriteHalf for tokio::net::$module::OwnedWriteHalf {
            fn release(self) {
                self.forget();
            }
        }

        impl Stream for $stream {
            type Read = tokio::net::$module::OwnedReadHalf;
            type Write = tokio::net::$module::OwnedWriteHalf;
            fn split(self) -> (Self::Read, Self::Write) {
                self.into_split()
            }
            fn peer(&self) -> Option<std::sync::Arc<str>> {
                $peer(self)
            }
            fn local(&self) -> Option<std::sync::Arc<str>> {
                $local(self)
            }
        }
    };
}

/// One end's address of a TCP stream, as `IP:PORT`.
fn tcp_addr(addr: io::Result<std::net::SocketAddr>) -> Option<std::sync::Arc<str>> {
    addr.ok().map(|addr| addr.to_string().into())
}

stream!(TcpStream, tcp, |s: &TcpStream| tcp_addr(s.peer_addr()), |s: &TcpStream| tcp_addr(s.local_addr()));
stream!(UnixStream, unix, |_: &UnixStream| None, |_: &UnixStream| None);

/// Connections the kernel queues before they are accepted: enough for a burst of thousands of
/// clients connecting at once (the kernel caps it at `net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 4096;

/// Pause after a failed `accept` (for example out of file descriptors), so that the loop does
/// not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What the log says when accepting starts failing (with `error`, `protocol` and `backoff_ms`):
/// once per run of failures, however long it lasts.
pub const ACCEPT_FAILING: &str = "accept failed; retrying until it works again";
/// What the log says when accepting works again after failing (with `protocol`, `failures` and
/// `failing_ms`).
pub const ACCEPTING_AGAIN: &str = "accepting again";

/// A bound listener, registered with the runtime it was made on.
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// A Unix socket, with its path, and its file when the server bound it itself (not one it
    /// inherited): the file goes with the listener.
    Unix(UnixListener, std::path::PathBuf, Option<SocketFile>),
}

/// The file of a Unix socket the server bound itself, removed when this goes.
#[derive(Debug)]
pub struct SocketFile(std::path::PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A listening socket that every I/O thread accepts on, each through a copy registered with its
/// own runtime ([`SharedListener::copy`]): each connection goes to the thread that takes it
/// first. For a Unix socket the server bound, it owns the file, which goes when this does.
#[derive(Debug)]
pub struct SharedListener {
    /// The socket, registered with no runtime.
    socket: SharedSocket,
    /// Its address as [`Listener::local_addr`] prints it.
    addr: String,
}

/// A [`SharedListener`]'s socket.
#[derive(Debug)]
enum SharedSocket {
    /// TCP.
    Tcp(std::net::TcpListener),
    /// A Unix socket, with its path.
    Unix {
        /// The socket.
        listener: std::os::unix::net::UnixListener,
        /// Its path.
        path: std::path::PathBuf,
        /// Its file, held for its drop (see [`Listener::Unix`]).
        _file: Option<SocketFile>,
    },
}

impl SharedListener {
    /// A copy of the socket (its file descriptor duplicated), registered with the calling
    /// thread's runtime.
    pub fn copy(&self) -> io::Result<Listener> {
        Ok(match &self.socket {
            SharedSocket::Tcp(listener) => Listener::Tcp(TcpListener::from_std(listener.try_clone()?)?),
            SharedSocket::Unix { listener, path, .. } => Listener::Unix(UnixListener::from_std(listener.try_clone()?)?, path.clone(), None),
        })
    }

    /// The bound address, for printing (`127.0.0.1:PORT` or `unix:/path`).
    pub fn local_addr(&self) -> &str {
        &self.addr
    }
}

/// A run of failed `accept`s on one socket, whichever thread met them: since when, and how
/// many tries failed ([`Listener::accept_until`]).
#[derive(Debug, Default)]
pub struct AcceptFailures {
    /// Whether a run is under way: read on every accept, which locks `run` only then.
    failing: std::sync::atomic::AtomicBool,
    /// Since when, and how many tries failed.
    run: std::sync::Mutex<Option<(Instant, u64)>>,
}

impl AcceptFailures {
    /// A try failed with `error`: the first of a run is logged.
    fn failed(&self, error: &io::Error, protocol: &str) {
        let mut run = self.run.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (_, failures) = run.get_or_insert_with(|| {
            tracing::warn!(%error, protocol, backoff_ms = ACCEPT_BACKOFF.as_millis(), "{ACCEPT_FAILING}");
            self.failing.store(true, std::sync::atomic::Ordering::Relaxed);
            (Instant::now(), 0)
        });
        *failures += 1;
    }

    /// A try worked: a run under way ends, and is logged.
    fn succeeded(&self, protocol: &str) {
        if !self.failing.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let mut run = self.run.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((since, failures)) = run.take() {
            self.failing.store(false, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(protocol, failures, failing_ms = since.elapsed().as_millis(), "{ACCEPTING_AGAIN}");
        }
    }
}

/// An accepted connection.
#[derive(Debug)]
pub enum Accepted {
    /// TCP.
    Tcp(TcpStream),
    /// Unix.
    Unix(UnixStream),
}

/// An accepted connection on its way to another thread's runtime, registered with none.
#[derive(Debug)]
pub enum HandedOver {
    /// TCP.
    Tcp(std::net::TcpStream),
    /// Unix.
    Unix(std::os::unix::net::UnixStream),
}

impl Accepted {
    /// The connection, taken off this thread's runtime.
    pub fn hand_over(self) -> io::Result<HandedOver> {
        Ok(match self {
            Accepted::Tcp(stream) => HandedOver::Tcp(stream.into_std()?),
            Accepted::Unix(stream) => HandedOver::Unix(stream.into_std()?),
        })
    }
}

impl HandedOver {
    /// The connection, registered with the calling thread's runtime.
    pub fn take(self) -> io::Result<Accepted> {
        Ok(match self {
            HandedOver::Tcp(stream) => Accepted::Tcp(TcpStream::from_std(stream)?),
            HandedOver::Unix(stream) => Accepted::Unix(UnixStream::from_std(stream)?),
        })
    }
}

impl Listener {
    /// Binds `addr`. A Unix socket path that exists is replaced only if it is a socket nobody
    /// listens on (a leftover of a crashed server); `mode` sets the new file's permissions.
    pub async fn bind(addr: &ListenAddr, mode: u32) -> anyhow::Result<Listener> {
        match addr {
            ListenAddr::Tcp(addr) => {
                let bind = || -> io::Result<TcpListener> {
                    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
                    socket.set_reuseaddr(true)?;
                    socket.bind(*addr)?;
                    socket.listen(LISTEN_BACKLOG)
                };
                let listener = bind().with_context(|| format!("cannot listen on {addr}"))?;
                Ok(Listener::Tcp(listener))
            }
            ListenAddr::Unix(path) => {
                remove_stale_socket(path).await?;
                let listener = UnixListener::bind(path).with_context(|| format!("cannot listen on unix:{}", path.display()))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                    .with_context(|| format!("cannot set the mode of {}", path.display()))?;
                Ok(Listener::Unix(listener, path.clone(), Some(SocketFile(path.clone()))))
            }
        }
    }

    /// A listening socket the server inherited (systemd's socket activation), with its
    /// address. Its file, for a Unix socket, stays when the listener goes: it is the service
    /// manager's.
    pub fn inherit(fd: std::os::fd::OwnedFd) -> anyhow::Result<(ListenAddr, Listener)> {
        use rustix::net::AddressFamily;
        let domain = rustix::net::sockopt::socket_domain(&fd).context("an inherited file descriptor is not a socket")?;
        if domain == AddressFamily::UNIX {
            let listener = std::os::unix::net::UnixListener::from(fd);
            listener.set_nonblocking(true)?;
            let path = listener.local_addr()?.as_pathname().map(Path::to_path_buf).context("an inherited Unix socket has no path")?;
            Ok((ListenAddr::Unix(path.clone()), Listener::Unix(UnixListener::from_std(listener)?, path, None)))
        } else if domain == AddressFamily::INET || domain == AddressFamily::INET6 {
            let listener = std::net::TcpListener::from(fd);
            listener.set_nonblocking(true)?;
            Ok((ListenAddr::Tcp(listener.local_addr()?), Listener::Tcp(TcpListener::from_std(listener)?)))
        } else {
            anyhow::bail!("an inherited socket is neither TCP nor a Unix socket")
        }
    }

    /// The bound address, for printing (`127.0.0.1:PORT` or `unix:/path`).
    pub fn local_addr(&self) -> String {
        match self {
            Listener::Tcp(listener) => listener.local_addr().map_or_else(|e| format!("<{e}>"), |a| a.to_string()),
            Listener::Unix(_, path, _) => format!("unix:{}", path.display()),
        }
    }

    /// The next connection, or `None` once `stop` is cancelled. A failed `accept` (out of file
    /// descriptors, say) is tried again after `ACCEPT_BACKOFF`, for as long as it fails: the
    /// first failure of such a run is logged ([`ACCEPT_FAILING`], with the listener's
    /// `protocol`), and so is its end ([`ACCEPTING_AGAIN`], with how many tries failed), not
    /// every try. `failing` is the run, shared by every loop accepting on the same socket.
    pub async fn accept_until(
        &self,
        stop: &tokio_util::sync::CancellationToken,
        protocol: &str,
        failing: &AcceptFailures,
    ) -> Option<Accepted> {
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => return None,
                accepted = self.accept() => accepted,
            };
            match accepted {
                Ok(stream) => {
                    failing.succeeded(protocol);
                    return Some(stream);
                }
                Err(error) => {
                    failing.failed(&error, protocol);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }

    /// Accepts one connection; TCP connections get `TCP_NODELAY`, because every flush is meant
    /// to reach the client now.
    pub async fn accept(&self) -> io::Result<Accepted> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, _) = listener.accept().await?;
                stream.set_nodelay(true)?;
                Ok(Accepted::Tcp(stream))
            }
            Listener::Unix(listener, _, _) => listener.accept().await.map(|(stream, _)| Accepted::Unix(stream)),
        }
    }

    /// The socket, taken off this runtime, for every I/O thread to accept on.
    pub fn share(self) -> io::Result<SharedListener> {
        let addr = self.local_addr();
        let socket = match self {
            Listener::Tcp(listener) => SharedSocket::Tcp(listener.into_std()?),
            Listener::Unix(listener, path, file) => SharedSocket::Unix { listener: listener.into_std()?, path, _file: file },
        };
        Ok(SharedListener { socket, addr })
    }
}

async fn remove_stale_socket(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::FileTypeExt as _;
    let Ok(meta) = std::fs::symlink_metadata(path) else { return Ok(()) };
    if !meta.file_type().is_socket() {
        anyhow::bail!("{} exists and is not a socket; not replacing it", path.display());
    }
    if UnixStream::connect(path).await.is_ok() {
        anyhow::bail!("{} is in use by another server", path.display());
    }
    std::fs::remove_file(path).with_context(|| format!("removing the stale socket {}", path.display()))
}

/// Read buffer growth step.
pub const READ_CHUNK: usize = 8 * 1024;

/// What a front end does with the socket while a request runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketWork {
    /// Read into the buffer.
    Read,
    /// Wait for the client's FIN or RST without consuming queued bytes.
    Watch,
    /// The client sent FIN without it counting as an abort: wait for a reset.
    WatchReset,
    /// Nothing to do with the socket.
    Nothing,
}

/// What [`SocketWork`] produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketEvent {
    /// Bytes were read into the buffer.
    Data,
    /// A readiness change that means nothing (new data while only watching).
    Spurious,
    /// The client's side ended.
    Closed(PeerClose),
}

/// The read side of a connection as the front ends use it: a buffer, and reads and watches
/// that stay correct when watching had to clear the cached readiness.
#[derive(Debug)]
pub struct SocketReader<R> {
    /// The socket's read half.
    rd: R,
    /// Bytes read and not yet consumed.
    pub buf: BytesMut,
    /// The cached read readiness was cleared while bytes may be queued: read from the kernel
    /// directly until it is drained (see [`ReadHalf::clear_read_readiness`]).
    readiness_cleared: bool,
}

impl<R: ReadHalf> SocketReader<R> {
    /// A reader with an empty buffer.
    pub fn new(rd: R) -> Self {
        Self { rd, buf: BytesMut::with_capacity(READ_CHUNK), readiness_cleared: false }
    }

    /// Reads more bytes into the buffer; `Ok(0)` is the peer's FIN.
    pub async fn read_more(&mut self) -> io::Result<usize> {
        if self.readiness_cleared {
            let mut chunk = [0u8; READ_CHUNK];
            match self.rd.read_now(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => self.readiness_cleared = false,
                Err(error) => return Err(error),
            }
        }
        self.buf.reserve(READ_CHUNK);
        self.rd.read_buf(&mut self.buf).await
    }

    /// Does one piece of socket work and reports what happened.
    pub async fn work(&mut self, work: SocketWork) -> SocketEvent {
        match work {
            SocketWork::Read => match self.read_more().await {
                Ok(0) => SocketEvent::Closed(PeerClose::Fin),
                Ok(_) => SocketEvent::Data,
                Err(_) => SocketEvent::Closed(PeerClose::Reset),
            },
            SocketWork::Watch => match self.rd.ready(Interest::READABLE | Interest::ERROR).await {
                Ok(ready) if ready.is_error() => SocketEvent::Closed(PeerClose::Reset),
                Ok(ready) if ready.is_read_closed() => SocketEvent::Closed(PeerClose::Fin),
                Ok(_) => {
                    self.rd.clear_read_readiness();
                    self.readiness_cleared = true;
                    SocketEvent::Spurious
                }
                Err(_) => SocketEvent::Closed(PeerClose::Reset),
            },
            SocketWork::WatchReset => match self.rd.ready(Interest::ERROR).await {
                Ok(ready) if !ready.is_error() => SocketEvent::Spurious,
                _ => SocketEvent::Closed(PeerClose::Reset),
            },
            SocketWork::Nothing => std::future::pending().await,
        }
    }
}

/// Writes every slice, looping over short writes; one `writev` in the common case. Adds each
/// write's bytes to `written` as it goes, so that a write that fails or is cancelled half way
/// still counts what reached the socket. Fails with `TimedOut` when the peer takes no bytes for
/// `stall` (`send_timeout`): a client that stops reading cannot hold the writer forever. (The
/// timer only starts when a write has to wait.)
pub async fn write_all_vectored<W: AsyncWrite + Unpin>(
    w: &mut W,
    bufs: &mut [IoSlice<'_>],
    stall: Duration,
    written: &mut u64,
) -> io::Result<()> {
    let mut bufs = &mut bufs[..];
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let n = tokio::time::timeout(stall, w.write_vectored(bufs))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("the peer took no bytes for {stall:?}")))??;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        *written += n as u64;
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}
