//! One HTTP/1.1 connection. The connection task owns the socket's read half: it reads request
//! heads, starts each request, feeds the guest its body, and — while the guest runs — keeps
//! watching the socket, so that a client's FIN or RST is seen at once (prompt abort detection)
//! even if the guest never reads its body or the client pipelined another request first. The
//! response [`Sink`] owns the write half while the guest runs and hands it back when the
//! response is over, possibly long before the guest ends (`finish-request`).

use super::body::{Decoded, Decoder};
use super::encode::{self, BodyFraming, CONTINUE, CRLF, LAST_CHUNK};
use super::handback::{Giver, Taker, handback};
use super::parse::{self, Framing, HeadLimits, ParseError, Parsed, Version};
use crate::dispatch::{Dispatcher, OVERLOADED, Start};
use crate::net::{ReadHalf, SocketEvent, SocketReader, SocketWork, Stream, write_all_vectored};
use crate::request::body::{self, BodyMsg};
use crate::request::{AbortDetection, BodyError, ConnState, Failure, PeerClose, ResponseHead, ResponseSink};
use bytes::{Buf as _, BytesMut};
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

/// Unread request body the connection discards after a response to stay reusable (as Go's
/// net/http); a larger rest closes the connection instead.
const MAX_DRAIN: u64 = 256 * 1024;
/// Time allowed for draining or for a lingering close.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The write half coming back from a finished response.
#[derive(Debug)]
struct Release<W> {
    /// The write half.
    writer: W,
    /// Whether the response left the connection usable for another request.
    reusable: bool,
    /// When the response was complete: the keep-alive idle time runs from here.
    at: tokio::time::Instant,
}

/// Serves requests on `stream` until the client or the server ends the connection.
pub async fn serve<S: Stream>(stream: S, dispatcher: Arc<Dispatcher>, shutdown: CancellationToken) {
    let (peer, local) = (stream.peer(), stream.local());
    let (rd, wr) = stream.split();
    let server = dispatcher.server();
    let limits = HeadLimits { max_bytes: server.max_header_bytes, max_headers: server.max_headers };
    let mut conn = Connection {
        reader: SocketReader::new(rd),
        peer_closed: None,
        limits,
        body_timeout: server.body_timeout,
        keep_alive_timeout: server.keep_alive_timeout,
        idle_since: tokio::time::Instant::now(),
        peer,
        local,
        id: dispatcher.next_conn_id(),
    };
    let mut writer = Some(wr);
    let mut first = true;
    while let Some(wr) = writer.take() {
        writer = conn.serve_one(wr, &dispatcher, &shutdown, first).await;
        first = false;
    }
}

/// The connection task's state between requests.
struct Connection<R> {
    /// The socket's read half and the bytes read and not yet consumed: the rest of a body, or
    /// pipelined requests.
    reader: SocketReader<R>,
    /// Set once the client's side ended; nothing more will be read.
    peer_closed: Option<PeerClose>,
    /// Request head limits.
    limits: HeadLimits,
    /// The server's `body_timeout`.
    body_timeout: Duration,
    /// The server's `keep_alive_timeout`.
    keep_alive_timeout: Duration,
    /// Since when the connection has had no request: accepted, or the last response complete.
    idle_since: tokio::time::Instant,
    /// The client's address, for the requests' heads.
    peer: Option<Arc<str>>,
    /// The server's side of the connection, for the requests' heads.
    local: Option<Arc<str>>,
    /// The connection id, for the log.
    id: u64,
}

/// The request body on its way to the guest.
struct Feed {
    /// Where the body is in its framing.
    decoder: Decoder,
    /// The channel to the guest; `None` once the body ended (or failed) for the guest.
    tx: Option<body::BodySender>,
    /// A message that did not fit in the channel yet.
    pending: Option<BodyMsg>,
    /// Body bytes decoded so far.
    received: u64,
    /// The route's `max_body_size`.
    limit: u64,
    /// Whether the framing broke; the connection cannot be reused.
    broken: bool,
}

impl Feed {
    fn new(framing: Framing, limit: u64) -> (Self, crate::request::BodyReceiver) {
        let decoder = match framing {
            Framing::Empty => Decoder::Done,
            Framing::Length(n) => Decoder::length(n),
            Framing::Chunked => Decoder::chunked(),
        };
        let (tx, rx) = if decoder.is_done() {
            (None, crate::request::BodyReceiver::empty())
        } else {
            let (tx, rx) = body::channel();
            (Some(tx), rx)
        };
        (Self { decoder, tx, pending: None, received: 0, limit, broken: false }, rx)
    }

    /// Decodes from `buf` into the channel while there is room. Stops when the channel is full
    /// (a message waits in `pending`), the buffer runs dry, or the body ended.
    fn pump(&mut self, buf: &mut BytesMut) {
        loop {
            let Some(tx) = &self.tx else { return };
            let msg = match self.pending.take() {
                Some(msg) => msg,
                None => match self.decoder.decode(buf) {
                    Ok(Decoded::NeedMore) => return,
                    Ok(Decoded::End) => BodyMsg::End,
                    Ok(Decoded::Data(bytes)) => {
                        self.received += bytes.len() as u64;
                        if self.received > self.limit {
                            self.broken = true;
                            BodyMsg::Error(BodyError::TooLarge)
                        } else {
                            BodyMsg::Data(bytes)
                        }
                    }
                    Err(error) => {
                        tracing::debug!(%error, "bad request body");
                        self.broken = true;
                        BodyMsg::Error(BodyError::Malformed)
                    }
                },
            };
            let last = !matches!(msg, BodyMsg::Data(_));
            match tx.try_send(msg) {
                Ok(()) if last => self.tx = None,
                Ok(()) => {}
                Err(msg) => {
                    self.pending = Some(msg);
                    return;
                }
            }
        }
    }

    /// Whether decoding waits for more bytes from the socket.
    fn wants_input(&self) -> bool {
        self.tx.is_some() && self.pending.is_none()
    }

    /// The client went away mid-body.
    fn abort(&mut self) {
        if self.tx.is_some() {
            self.pending = Some(BodyMsg::Error(BodyError::Aborted));
        }
    }

    /// Waits for room in the channel (only called when a message is pending).
    async fn room(&self) {
        match &self.tx {
            Some(tx) => tx.ready().await,
            None => std::future::pending().await,
        }
    }
}

impl<R: ReadHalf> Connection<R> {
    /// Reads and serves one request. Returns the write half if the connection stays open.
    async fn serve_one<W>(&mut self, mut wr: W, dispatcher: &Arc<Dispatcher>, shutdown: &CancellationToken, first: bool) -> Option<W>
    where
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let server = dispatcher.server();
        let idle = if first { server.header_timeout } else { self.keep_alive_timeout };
        let parsed = match self.read_head(idle, server.header_timeout, shutdown).await {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return None,
            Err(error) => {
                let arrived = Instant::now();
                let status = error.status();
                tracing::info!(%error, status, "rejected a malformed request");
                let bytes = reject(&mut wr, Version::Http11, status, &format!("{error}\n"), false, false, server.send_timeout).await;
                dispatcher.log_rejected("http", self.id, None, status, bytes, arrived, &error.to_string());
                self.linger(wr, false).await;
                return None;
            }
        };
        let arrived = Instant::now();
        let keep_alive = parsed.keep_alive && !shutdown.is_cancelled();
        let Parsed { mut head, version, framing, expect_continue, .. } = parsed;
        head.remote_addr.clone_from(&self.peer);
        head.local_addr.clone_from(&self.local);
        // A request the host refuses keeps the connection only if it has no body to skip.
        let reject_keeps = keep_alive && framing == Framing::Empty;
        let is_head = head.is_head();

        let refusal = match dispatcher.route(head.path()) {
            None => Err((404, "no route for this path\n", "no route", reject_keeps)),
            Some(route) if matches!(framing, Framing::Length(n) if n > route.max_body_size) => {
                Err((413, "request body too large\n", "body larger than max_body_size", false))
            }
            Some(route) => {
                dispatcher.admit().await.map(|admission| (route, admission)).ok_or((503, OVERLOADED, "max_instances reached", reject_keeps))
            }
        };
        let (route, admission) = match refusal {
            Ok(admitted) => admitted,
            Err((status, message, detail, keeps)) => {
                let bytes = reject(&mut wr, version, status, message, keeps, is_head, server.send_timeout).await;
                dispatcher.log_rejected("http", self.id, Some(&head), status, bytes, arrived, detail);
                if keeps {
                    self.idle_since = tokio::time::Instant::now();
                    return Some(wr);
                }
                self.linger(wr, false).await;
                return None;
            }
        };

        let conn = route.conn_state();
        // A request pipelined before the client half-closed: the close already happened, and
        // this request's route says what it means.
        if let Some(how) = self.peer_closed {
            conn.peer_closed(how);
        }
        let (mut feed, body) = Feed::new(framing, route.max_body_size);
        let (release_tx, release_rx) = handback();
        let sink = Sink {
            writer: Some(wr),
            release: Some(release_tx),
            version,
            is_head,
            keep_alive,
            // A client sending no body waits for nothing.
            expect_continue: expect_continue && framing != Framing::Empty,
            framing: None,
            bytes: 0,
            scratch: Vec::new(),
            send_timeout: server.send_timeout,
            shutdown: shutdown.clone(),
        };
        let id = dispatcher.next_id();
        dispatcher.start(
            id,
            Start { route, admission, head, body, sink: Box::new(sink), conn: conn.clone(), arrived, protocol: "http", conn_id: self.id },
        );
        let release = self.drive(&mut feed, &conn, &release_rx, shutdown).await;
        drop(feed.tx.take());
        let Release { writer, reusable, at } = release?;
        self.idle_since = at;
        // After a half-close (FIN) the client can still read: requests it pipelined before it
        // are served, then the connection closes (`read_head` finds nothing more).
        let readable = self.peer_closed.is_none() || (self.peer_closed == Some(PeerClose::Fin) && !self.reader.buf.is_empty());
        if reusable && readable && !feed.broken && self.drain(&mut feed).await {
            return Some(writer);
        }
        self.linger(writer, feed.decoder.is_done() && self.reader.buf.is_empty()).await;
        None
    }

    /// Reads until a whole request head is buffered. `Ok(None)` means the connection ended
    /// cleanly: the client closed, it stayed idle too long, or the server is shutting down.
    async fn read_head(
        &mut self,
        idle: Duration,
        header_timeout: Duration,
        shutdown: &CancellationToken,
    ) -> Result<Option<Parsed>, ParseError> {
        let mut deadline = (!self.reader.buf.is_empty()).then(|| tokio::time::Instant::now() + header_timeout);
        loop {
            if !self.reader.buf.is_empty() {
                if let Some((parsed, len)) = parse::parse(&self.reader.buf, self.limits)? {
                    self.reader.buf.advance(len);
                    return Ok(Some(parsed));
                }
                deadline.get_or_insert_with(|| tokio::time::Instant::now() + header_timeout);
            }
            if self.peer_closed.is_some() {
                return Ok(None);
            }
            let until = deadline.unwrap_or(self.idle_since + idle);
            tokio::select! {
                () = shutdown.cancelled(), if self.reader.buf.is_empty() => return Ok(None),
                () = tokio::time::sleep_until(until) => return Ok(None),
                read = self.reader.read_more() => match read {
                    Ok(0) => self.peer_closed = Some(PeerClose::Fin),
                    Ok(_) => {}
                    Err(_) => self.peer_closed = Some(PeerClose::Reset),
                },
            }
        }
    }

    /// Runs while the guest has the response: feeds the body and watches the socket, until the
    /// sink hands the write half back (or is dropped, if the request died).
    ///
    /// The hand-back wakes this task only when nothing else would (`handback`): a client on a
    /// kept connection wakes it with its next request. An idle client must still time out, so
    /// a timer looks at the hand-back once per `keep_alive_timeout`, and a shutdown asks for the
    /// wake-up from then on.
    async fn drive<W>(
        &mut self,
        feed: &mut Feed,
        conn: &ConnState,
        release: &Taker<Release<W>>,
        shutdown: &CancellationToken,
    ) -> Option<Release<W>> {
        // When `body_timeout` runs out: set once the guest waits for body bytes, cleared by each
        // arrival (and set again from then). Requests without a body never read the clock for it.
        let mut body_deadline = None;
        // Made once per request, not per turn of the loop (a body streams in many turns).
        let idle_check = tokio::time::sleep(self.keep_alive_timeout);
        let shutdown_started = shutdown.cancelled();
        tokio::pin!(idle_check, shutdown_started);
        let mut shutting_down = false;
        loop {
            feed.pump(&mut self.reader.buf);
            let open = self.peer_closed.is_none();
            // The body has room to go on and the client sends nothing: `body_timeout` runs.
            let awaiting_body = open && feed.wants_input();
            if awaiting_body {
                body_deadline.get_or_insert_with(|| tokio::time::Instant::now() + self.body_timeout);
            }
            // Read when the body needs bytes, or (prompt mode) to buffer a pipelined request;
            // otherwise only watch for the client going away, leaving its bytes queued in the
            // kernel. After a FIN that did not count as an abort, a reset still does.
            let socket = if awaiting_body {
                SocketWork::Read
            } else if conn.detection() == AbortDetection::Write {
                // PHP-exact: nobody looks at the socket while the guest runs; only a failing
                // write tells. A pipelined request waits in the kernel until this one is done.
                SocketWork::Nothing
            } else if open && feed.tx.is_none() && self.reader.buf.len() < self.limits.max_bytes {
                SocketWork::Read
            } else if open {
                SocketWork::Watch
            } else if self.peer_closed == Some(PeerClose::Fin) && !conn.is_aborted() {
                SocketWork::WatchReset
            } else {
                SocketWork::Nothing
            };
            // Whether the hand-back must wake this task: unless it waits for the client's next
            // bytes with nothing buffered, nothing else would.
            let wake_wanted = shutting_down || feed.tx.is_some() || !self.reader.buf.is_empty() || !matches!(socket, SocketWork::Read);
            tokio::select! {
                biased;
                released = std::future::poll_fn(|cx| release.poll_take(cx, wake_wanted)) => return released,
                () = &mut shutdown_started, if !shutting_down => shutting_down = true,
                () = &mut idle_check => match release.try_take() {
                    Some(released) => return released,
                    None => idle_check.as_mut().reset(tokio::time::Instant::now() + self.keep_alive_timeout),
                },
                () = feed.room(), if feed.pending.is_some() => {}
                event = self.reader.work(socket) => match event {
                    SocketEvent::Data => body_deadline = None,
                    SocketEvent::Spurious => {}
                    SocketEvent::Closed(how) => self.closed(how, conn, feed),
                },
                // An async block, so that no timer is made unless the branch is polled.
                () = async { match body_deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                } }, if awaiting_body => {
                    // nginx's client_body_timeout: the client is taken for gone.
                    tracing::info!(timeout = ?self.body_timeout, "the request body stalled; closing as if the client had left");
                    self.closed(PeerClose::Reset, conn, feed);
                }
            }
        }
    }

    /// The client's side ended: tell the request (which decides whether it is an abort) and
    /// the body, and stop reading.
    fn closed(&mut self, how: PeerClose, conn: &ConnState, feed: &mut Feed) {
        self.peer_closed = Some(how);
        let aborted = conn.peer_closed(how);
        tracing::debug!(?how, aborted, "client side closed");
        if !feed.decoder.is_done() {
            feed.abort();
        }
    }

    /// Discards what is left of the request body, if it is small, so the connection can serve
    /// the next request. Returns whether the body is now fully consumed.
    async fn drain(&mut self, feed: &mut Feed) -> bool {
        let mut discarded = 0u64;
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        loop {
            match feed.decoder.decode(&mut self.reader.buf) {
                Ok(Decoded::End) => return true,
                Ok(Decoded::Data(bytes)) => {
                    discarded += bytes.len() as u64;
                    if discarded > MAX_DRAIN {
                        return false;
                    }
                }
                Ok(Decoded::NeedMore) => match tokio::time::timeout_at(deadline, self.reader.read_more()).await {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => return false,
                },
                Err(_) => return false,
            }
        }
    }

    /// Closes the connection. If the client may still be sending (an unread body), shuts down
    /// the write side first and reads for a while, so that the close does not turn into a
    /// reset that destroys the response in flight.
    async fn linger<W: AsyncWrite + Unpin>(&mut self, mut writer: W, quiet: bool) {
        if quiet || self.peer_closed.is_some() {
            return;
        }
        let _ = writer.shutdown().await;
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while matches!(self.reader.read_more().await, Ok(n) if n > 0) {
                self.reader.buf.clear();
            }
        })
        .await;
    }
}

/// Writes a host-generated response (only its head for a HEAD request) and returns the bytes
/// written.
async fn reject<W: AsyncWrite + Unpin>(
    wr: &mut W,
    version: Version,
    status: u16,
    message: &str,
    keep_alive: bool,
    is_head: bool,
    send_timeout: Duration,
) -> u64 {
    let response = encode::error_response(version, status, message, keep_alive, is_head);
    let mut written = 0;
    let _ = write_all_vectored(wr, &mut [IoSlice::new(&response)], send_timeout, &mut written).await;
    written
}

/// The write half while a sink holds it.
fn held<W>(writer: &mut Option<W>) -> io::Result<&mut W> {
    writer.as_mut().ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "response already released"))
}

/// The HTTP/1.x response writer for one request.
struct Sink<W> {
    /// The write half; `None` once handed back.
    writer: Option<W>,
    /// Where the write half goes back to.
    release: Option<Giver<Release<W>>>,
    /// The request's version, which the response uses.
    version: Version,
    /// A HEAD request: the body is never sent (nor for a 204 or 304, `ResponseHead::bodiless`).
    is_head: bool,
    /// Whether the connection may stay open after this response.
    keep_alive: bool,
    /// The client waits for `100 Continue`.
    expect_continue: bool,
    /// Set (before writing) when the head goes out.
    framing: Option<BodyFraming>,
    /// Bytes written.
    bytes: u64,
    /// Reused buffer for heads and chunk lines.
    scratch: Vec<u8>,
    /// The server's `send_timeout`.
    send_timeout: Duration,
    /// The server's shutdown: a response whose head goes out after it closes the connection.
    shutdown: CancellationToken,
}

impl<W: AsyncWrite + Send + Unpin + 'static> Sink<W> {
    fn writer(&mut self) -> io::Result<&mut W> {
        held(&mut self.writer)
    }

    fn release(&mut self, reusable: bool) {
        if let (Some(writer), Some(release)) = (self.writer.take(), self.release.take()) {
            // A connection that stays open is taken back when its client next sends or leaves;
            // one that must close is taken back now.
            release.give(Release { writer, reusable, at: tokio::time::Instant::now() }, !reusable);
        }
    }

    /// Writes `prefix`, `body` and `suffix` in one go and counts them.
    async fn write_parts(&mut self, prefix: &[u8], body: &[u8], suffix: &[u8]) -> io::Result<()> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend_from_slice(prefix);
        // By field, not `self.writer()`: `self.bytes` is borrowed next to it.
        let writer = held(&mut self.writer)?;
        let slices = &mut [IoSlice::new(&scratch), IoSlice::new(body), IoSlice::new(suffix)];
        let result = write_all_vectored(writer, slices, self.send_timeout, &mut self.bytes).await;
        self.scratch = scratch;
        result
    }

    /// Encodes the head with `framing` into a fresh buffer, recording the framing first so that
    /// a cancelled write still counts the head as sent. The connection closes after a body
    /// delimited by closing it, during a shutdown, and after a response that never asked for
    /// the body the client was told to wait with (`Expect: 100-continue`): whether the client
    /// then sends that body is up to it, so the next bytes cannot be trusted to start a request.
    fn encode_head(&mut self, head: &ResponseHead, framing: BodyFraming) -> Vec<u8> {
        self.framing = Some(framing);
        if framing == BodyFraming::CloseDelimited || self.expect_continue || self.shutdown.is_cancelled() {
            self.keep_alive = false;
        }
        let mut out = Vec::with_capacity(256);
        encode::head(&mut out, self.version, head, framing, self.keep_alive);
        out
    }
}

#[async_trait::async_trait]
impl<W: AsyncWrite + Send + Unpin + 'static> ResponseSink for Sink<W> {
    async fn send(&mut self, head: Option<&ResponseHead>, body: &[u8]) -> io::Result<()> {
        if let Some(head) = head {
            let framing = match (self.is_head || head.bodiless(), self.version) {
                (true, _) => BodyFraming::Headless(None),
                (false, Version::Http11) => BodyFraming::Chunked,
                (false, Version::Http10) => BodyFraming::CloseDelimited,
            };
            let mut prefix = self.encode_head(head, framing);
            return match framing {
                BodyFraming::Chunked if !body.is_empty() => {
                    prefix.extend_from_slice(&encode::chunk_size_line(body.len()));
                    self.write_parts(&prefix, body, CRLF).await
                }
                BodyFraming::CloseDelimited => self.write_parts(&prefix, body, &[]).await,
                _ => self.write_parts(&prefix, &[], &[]).await,
            };
        }
        match self.framing {
            Some(BodyFraming::Chunked) if !body.is_empty() => {
                let line = encode::chunk_size_line(body.len());
                self.write_parts(&line, body, CRLF).await
            }
            Some(BodyFraming::CloseDelimited) if !body.is_empty() => self.write_parts(&[], body, &[]).await,
            // Nothing to send (or a HEAD body to drop): still a real, zero-length write, like
            // PHP's empty flush.
            _ => self.writer()?.write(&[]).await.map(drop),
        }
    }

    async fn complete(&mut self, head: Option<&ResponseHead>, body: &[u8]) -> io::Result<()> {
        let result = match head {
            Some(head) => {
                let framing = if head.bodiless() {
                    BodyFraming::Headless(None)
                } else if self.is_head {
                    BodyFraming::Headless(Some(body.len()))
                } else {
                    BodyFraming::Length(body.len())
                };
                let prefix = self.encode_head(head, framing);
                let body = if matches!(framing, BodyFraming::Headless(_)) { &[][..] } else { body };
                self.write_parts(&prefix, body, &[]).await
            }
            None => match self.framing {
                Some(BodyFraming::Chunked) if !body.is_empty() => {
                    let line = encode::chunk_size_line(body.len());
                    let mut suffix = CRLF.to_vec();
                    suffix.extend_from_slice(LAST_CHUNK);
                    self.write_parts(&line, body, &suffix).await
                }
                Some(BodyFraming::Chunked) => self.write_parts(LAST_CHUNK, &[], &[]).await,
                Some(BodyFraming::CloseDelimited) => {
                    let written = self.write_parts(&[], body, &[]).await;
                    let shut = self.writer()?.shutdown().await;
                    written.and(shut)
                }
                _ => Ok(()),
            },
        };
        let reusable = result.is_ok() && self.keep_alive;
        self.release(reusable);
        result
    }

    async fn fail(&mut self, failure: Failure) {
        match failure {
            Failure::Error { status, message } if self.framing.is_none() => {
                let head = ResponseHead::host_error(status);
                let prefix = self.encode_head(&head, BodyFraming::Length(message.len()));
                let body = if self.is_head { "" } else { message.as_str() };
                let ok = self.write_parts(&prefix, body.as_bytes(), &[]).await.is_ok();
                self.release(ok && self.keep_alive);
            }
            // The head is out (or the client is gone): end the connection without the final
            // chunk, so the client can tell the body is incomplete.
            _ => self.release(false),
        }
    }

    async fn body_wanted(&mut self) -> io::Result<()> {
        if std::mem::take(&mut self.expect_continue) && self.framing.is_none() {
            self.write_parts(CONTINUE, &[], &[]).await?;
        }
        Ok(())
    }

    fn bytes_sent(&self) -> u64 {
        self.bytes
    }
}
