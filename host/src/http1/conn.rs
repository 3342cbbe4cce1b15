//! One HTTP/1.1 connection. The connection task owns the socket's read half: it reads request
//! heads, has each request admitted and started, feeds the guest its body (`super::feed`),
//! polls the request's run when it started on this thread, and, while the guest runs, keeps
//! watching the socket, so that a client's FIN or RST is seen at once (prompt abort detection)
//! even if the guest never reads its body or the client pipelined another request first. The
//! response sink (`super::sink`) owns the write half while the guest runs and hands it back
//! when the response is over.

use super::encode;
use super::feed::Feed;
use super::handback::{Taker, handback};
use super::keep_alive::KeepAlive;
use super::parse::{self, Framing, HeadLimits, ParseError, Parsed, Version};
use super::sink::{Returned, Sink};
use crate::dispatch::{Arrival, Dispatcher, Refusal, Run, Start};
use crate::net::{ReadHalf, SocketEvent, SocketReader, SocketWork, Stream, write_all_vectored};
use crate::request::{AbortDetection, PeerClose, Protocol, RequestHead, RequestState};
use bytes::Buf as _;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

/// Time allowed for skipping an unread body or for a lingering close.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves requests on `stream` until the client or the server ends the connection.
pub async fn serve<S: Stream>(stream: S, dispatcher: Arc<Dispatcher>, shutdown: CancellationToken) {
    let (peer, local) = (stream.peer(), stream.local());
    let (rd, wr) = stream.split();
    let settings = dispatcher.settings();
    let limits = HeadLimits { max_bytes: settings.max_header_bytes, max_headers: settings.max_headers };
    let mut conn = Connection {
        reader: SocketReader::new(rd),
        peer_closed: None,
        limits,
        body_timeout: settings.body_timeout,
        keep_alive_timeout: settings.keep_alive_timeout,
        idle_since: tokio::time::Instant::now(),
        peer,
        local,
        id: dispatcher.next_conn_id(),
    };
    drop(settings);
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

impl<R: ReadHalf> Connection<R> {
    /// Reads and serves one request. Returns the write half if the connection stays open.
    async fn serve_one<W>(&mut self, mut wr: W, dispatcher: &Arc<Dispatcher>, shutdown: &CancellationToken, first: bool) -> Option<W>
    where
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let (header_timeout, send_timeout) = {
            let settings = dispatcher.settings();
            (settings.header_timeout, settings.send_timeout)
        };
        let idle = if first { header_timeout } else { self.keep_alive_timeout };
        let parsed = self.read_head(idle, header_timeout, shutdown).await;
        let arrival = Arrival { protocol: Protocol::Http, conn_id: self.id, at: Instant::now() };
        let parsed = match parsed {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return None,
            Err(error) => {
                tracing::info!(%error, status = error.status(), "rejected a malformed request");
                let refusal = Refusal::malformed(error.status(), &error);
                Self::refuse(&mut wr, dispatcher, &arrival, None, &refusal, Version::Http11, false).await;
                self.linger(wr, false).await;
                return None;
            }
        };
        let Parsed { mut head, version, framing, expect_continue, keep_alive } = parsed;
        head.remote_addr.clone_from(&self.peer);
        head.local_addr.clone_from(&self.local);
        let keep_alive = KeepAlive::new(keep_alive, shutdown.clone());
        let declared = match framing {
            Framing::Empty => Some(0),
            Framing::Length(n) => Some(n),
            Framing::Chunked => None,
        };
        let admitted = match dispatcher.admit(arrival, head.path(), declared).await {
            Ok(admitted) => admitted,
            Err(refusal) => {
                let keeps = keep_alive.after_refusal(framing);
                Self::refuse(&mut wr, dispatcher, &arrival, Some(&head), &refusal, version, keeps).await;
                if keeps {
                    self.idle_since = tokio::time::Instant::now();
                    return Some(wr);
                }
                self.linger(wr, false).await;
                return None;
            }
        };

        let state = admitted.state().clone();
        // A request pipelined before the client half-closed: the close already happened, and
        // this request's route says what it means.
        if let Some(how) = self.peer_closed {
            state.peer_closed(how);
        }
        let (mut feed, body) = Feed::new(framing, admitted.max_body_size());
        let (giver, taker) = handback();
        let is_head = head.is_head();
        // A client sending no body waits for nothing.
        let expect_continue = expect_continue && framing != Framing::Empty;
        let keep_alive = keep_alive.with_body(feed.broken());
        let sink = Sink::new(wr, giver, version, is_head, keep_alive, expect_continue, send_timeout);
        let mut run = dispatcher.start(Start { admitted, head, body, sink: Box::new(sink) });
        let returned = self.drive(&mut feed, &state, &taker, &mut run, shutdown).await;
        // The response is over (or the request died) and the guest still runs: it goes on
        // without the connection.
        if let Some(run) = run {
            run.detach();
        }
        feed.close();
        let Returned { writer, reusable, at } = returned?;
        self.idle_since = at;
        let pipelined = !self.reader.buf.is_empty();
        if KeepAlive::goes_on(reusable, self.peer_closed, pipelined, feed.is_broken())
            && feed.skip_rest(&mut self.reader, DRAIN_TIMEOUT).await
        {
            return Some(writer);
        }
        self.linger(writer, feed.is_complete() && self.reader.buf.is_empty()).await;
        None
    }

    /// Answers a request the host refuses (only its head for a HEAD request) and logs it.
    async fn refuse<W: AsyncWrite + Unpin>(
        wr: &mut W,
        dispatcher: &Dispatcher,
        arrival: &Arrival,
        head: Option<&RequestHead>,
        refusal: &Refusal,
        version: Version,
        keep_alive: bool,
    ) {
        let is_head = head.is_some_and(RequestHead::is_head);
        let response = encode::error_response(version, refusal.status, &refusal.message, keep_alive, is_head);
        let mut written = 0;
        let send_timeout = dispatcher.settings().send_timeout;
        let _ = write_all_vectored(wr, &mut [IoSlice::new(&response)], send_timeout, &mut written).await;
        dispatcher.log_refused(arrival, head, refusal, written);
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

    /// Runs while the guest has the response: feeds the body, polls the request's `run` (when
    /// it started on this thread, until it ended or moved) and watches the socket, until the
    /// sink hands the write half back (or is dropped, if the request died).
    ///
    /// The hand-back wakes this task only when nothing else would (`handback`): a client on a
    /// kept connection wakes it with its next request. An idle client must still time out, so
    /// a timer looks at the hand-back once per `keep_alive_timeout`, and a shutdown asks for the
    /// wake-up from then on.
    async fn drive<W>(
        &mut self,
        feed: &mut Feed,
        state: &RequestState,
        taker: &Taker<Returned<W>>,
        run: &mut Option<Run>,
        shutdown: &CancellationToken,
    ) -> Option<Returned<W>> {
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
            } else if state.detection() == AbortDetection::Write {
                // PHP-exact: nobody looks at the socket while the guest runs; only a failing
                // write tells. A pipelined request waits in the kernel until this one is done.
                SocketWork::Nothing
            } else if open && !feed.is_open() && self.reader.buf.len() < self.limits.max_bytes {
                SocketWork::Read
            } else if open {
                SocketWork::Watch
            } else if self.peer_closed == Some(PeerClose::Fin) && !state.is_aborted() {
                SocketWork::WatchReset
            } else {
                SocketWork::Nothing
            };
            // Whether the hand-back must wake this task: unless it waits for the client's next
            // bytes with nothing buffered, nothing else would. A broken body (malformed, or past
            // `max_body_size`) closes the connection after the response, so there is no next
            // request to wait for.
            let wake_wanted =
                shutting_down || feed.is_open() || feed.is_broken() || !self.reader.buf.is_empty() || !matches!(socket, SocketWork::Read);
            tokio::select! {
                biased;
                returned = std::future::poll_fn(|cx| taker.poll_take(cx, wake_wanted)) => return returned,
                () = async { run.as_mut().expect("run").await }, if run.is_some() => *run = None,
                () = &mut shutdown_started, if !shutting_down => shutting_down = true,
                () = &mut idle_check => match taker.try_take() {
                    Some(returned) => return returned,
                    None => idle_check.as_mut().reset(tokio::time::Instant::now() + self.keep_alive_timeout),
                },
                () = feed.room(), if feed.is_held_up() => {}
                event = self.reader.work(socket) => match event {
                    SocketEvent::Data => body_deadline = None,
                    SocketEvent::Spurious => {}
                    SocketEvent::Closed(how) => self.closed(how, state, feed),
                },
                // An async block, so that no timer is made unless the branch is polled.
                () = async { match body_deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                } }, if awaiting_body => {
                    // nginx's client_body_timeout: the client is taken for gone.
                    tracing::info!(timeout = ?self.body_timeout, "the request body stalled; closing as if the client had left");
                    self.closed(PeerClose::Reset, state, feed);
                }
            }
        }
    }

    /// The client's side ended: tell the request (which decides whether it is an abort) and
    /// the body, and stop reading.
    fn closed(&mut self, how: PeerClose, state: &RequestState, feed: &mut Feed) {
        self.peer_closed = Some(how);
        let aborted = state.peer_closed(how);
        tracing::debug!(?how, aborted, "client side closed");
        feed.abort();
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
