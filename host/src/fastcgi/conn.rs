//! One FastCGI connection from a web server, in the Responder role (spec §6.2), with several
//! requests multiplexed on it (§3.3, `FCGI_MPXS_CONNS` = 1).
//!
//! The connection task owns the read half and never stops reading while requests run: that is
//! how it sees the web server close the link — nginx's reaction to its client leaving — and
//! `FCGI_ABORT_REQUEST`, and feeds both to the requests' connection states. Every request's [`Sink`] writes whole records through the
//! shared [`Writer`]; a flush is a socket write before it returns.

use super::mapping;
use super::record::{self, BeginRequest, Frames, Record, RecordError, kind, status};
use crate::dispatch::{Dispatcher, OVERLOADED, Start};
use crate::net::{ReadHalf, SocketEvent, SocketReader, SocketWork, Stream, write_all_vectored};
use crate::request::body::{self, BodyMsg, BodySender};
use crate::request::{BodyError, ConnState, Failure, PeerClose, RequestHead, ResponseHead, ResponseSink, StderrSink};
use bytes::Bytes;
use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Most bytes of one request's PARAMS stream (all CGI variables and headers).
pub const MAX_PARAMS_BYTES: usize = 64 * 1024;
/// Most name-value pairs in one request's PARAMS stream.
pub const MAX_PARAMS: usize = 512;
/// Guest stderr lines waiting to become STDERR records; beyond it lines only go to the log.
const STDERR_QUEUE: usize = 256;
/// Most requests open at once on one connection (begun and not yet ended). A web server sends
/// one request at a time per connection (nginx) or a few; a peer opening more gets
/// END_REQUEST with `FCGI_OVERLOADED` (§5.5), so that it cannot hold up to 65,535 PARAMS
/// buffers.
pub const MAX_REQUESTS_PER_CONNECTION: usize = 256;

/// A request on the connection: its id, and the serial that tells it apart from a later request
/// with the same id.
type RequestKey = (u16, u64);

/// What a request's sink sends the connection about its guest's stderr.
enum Stderr {
    /// A line, to write as a STDERR record while the request is open.
    Line(Bytes),
    /// Answered once every line sent before it was written: the sink waits for this before it
    /// writes END_REQUEST, after which the web server would drop the request's records.
    Barrier(oneshot::Sender<()>),
}

/// Serves requests on `stream` until the web server closes it (or, without `FCGI_KEEP_CONN`,
/// until its request ends).
pub async fn serve<S: Stream>(stream: S, dispatcher: Arc<Dispatcher>, shutdown: CancellationToken) {
    let (rd, wr) = stream.split();
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let (stderr_tx, stderr_rx) = mpsc::channel::<(RequestKey, Stderr)>(STDERR_QUEUE);
    let mut conn = Connection {
        reader: SocketReader::new(rd),
        writer: Arc::new(Writer::new(wr, dispatcher.server().send_timeout)),
        requests: HashMap::new(),
        dispatcher: dispatcher.clone(),
        done_tx,
        stderr_tx,
        closing: false,
        next_serial: 0,
        id: dispatcher.next_conn_id(),
    };
    conn.run(done_rx, stderr_rx, shutdown).await;
}

/// A request the connection knows.
struct Slot {
    /// Tells this request apart from a later one with the same id.
    serial: u64,
    /// Set by the request's sink just before it writes END_REQUEST: from then on the web server
    /// may reuse the id, possibly before the sink's "done" message arrives here.
    ended: Arc<AtomicBool>,
    /// Its BEGIN_REQUEST.
    begin: BeginRequest,
    /// The PARAMS stream so far (§5.2), until it ends and the request starts.
    params: Vec<u8>,
    /// Set once the request runs.
    running: Option<Running>,
}

/// A request past its PARAMS, as the connection task sees it.
struct Running {
    /// The guest's start, held back until STDIN is complete: nginx stops sending the request
    /// body once the response begins, so a guest answering before it read everything could
    /// wait forever for the rest (php-fpm, too, reads the whole body before the script runs).
    start: Option<Start>,
    /// Its connection state, for aborts.
    conn: Arc<ConnState>,
    /// Its STDIN, on the way to the guest.
    stdin: Stdin,
    /// Set on `FCGI_ABORT_REQUEST`: the request's writes fail from then on.
    aborted: Arc<AtomicBool>,
}

/// STDIN records (§5.3) on their way to the guest. Never held up: the web server writes the
/// whole body before it reads the response (see [`crate::request::body::unbounded`]).
struct Stdin {
    /// The body channel; `None` once the body ended for the guest.
    tx: Option<BodySender>,
    /// Body bytes received so far.
    received: u64,
    /// The route's `max_body_size`.
    limit: u64,
    /// `CONTENT_LENGTH`, if the web server sent it: the body's length (§6.2).
    expected: Option<u64>,
}

impl Stdin {
    /// Passes on a STDIN record's content (empty: the end of the stream). The guest reads at
    /// most `CONTENT_LENGTH` bytes (§6.2), and a stream ending short of it is a broken body.
    fn push(&mut self, mut data: Bytes) {
        if let Some(expected) = self.expected {
            let room = expected.saturating_sub(self.received);
            if !data.is_empty() && room == 0 {
                return;
            }
            data.truncate(usize::try_from(room).unwrap_or(usize::MAX));
        }
        let msg = if data.is_empty() {
            if self.expected.is_some_and(|expected| self.received < expected) { BodyMsg::Error(BodyError::Malformed) } else { BodyMsg::End }
        } else {
            self.received += data.len() as u64;
            if self.received > self.limit { BodyMsg::Error(BodyError::TooLarge) } else { BodyMsg::Data(data) }
        };
        self.send(msg);
    }

    fn send(&mut self, msg: BodyMsg) {
        let last = !matches!(msg, BodyMsg::Data(_));
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(msg);
        }
        if last {
            self.tx = None;
        }
    }

    /// The body ends early.
    fn abort(&mut self) {
        self.send(BodyMsg::Error(BodyError::Aborted));
    }
}

/// The connection task's state.
struct Connection<R, W> {
    /// The read half and its buffer.
    reader: SocketReader<R>,
    /// The write half, shared with the requests' sinks.
    writer: Arc<Writer<W>>,
    /// Requests by id.
    requests: HashMap<u16, Slot>,
    /// Routes and runtime.
    dispatcher: Arc<Dispatcher>,
    /// Sinks report finished requests here.
    done_tx: mpsc::UnboundedSender<RequestKey>,
    /// The next slot serial.
    next_serial: u64,
    /// Sinks forward guest stderr lines here.
    stderr_tx: mpsc::Sender<(RequestKey, Stderr)>,
    /// A request without `FCGI_KEEP_CONN` ended: close once the others have (§3.5).
    closing: bool,
    /// The connection id, for the log.
    id: u64,
}

impl<R: ReadHalf, W: AsyncWrite + Send + Unpin + 'static> Connection<R, W> {
    async fn run(
        &mut self,
        mut done_rx: mpsc::UnboundedReceiver<RequestKey>,
        mut stderr_rx: mpsc::Receiver<(RequestKey, Stderr)>,
        shutdown: CancellationToken,
    ) {
        loop {
            loop {
                match record::decode(&mut self.reader.buf) {
                    Ok(Some(record)) => {
                        if let Err(error) = self.handle(record).await {
                            tracing::warn!(%error, "FastCGI protocol error; closing the connection");
                            return self.abandon(PeerClose::Closed).await;
                        }
                    }
                    Ok(None) => break,
                    Err(error) => {
                        tracing::warn!(%error, "malformed FastCGI record; closing the connection");
                        return self.abandon(PeerClose::Closed).await;
                    }
                }
            }
            if (self.closing || shutdown.is_cancelled()) && self.requests.is_empty() {
                self.writer.close().await;
                return;
            }
            tokio::select! {
                biased;
                Some((id, serial)) = done_rx.recv() => self.finished(id, serial),
                Some((key, message)) = stderr_rx.recv() => match message {
                    Stderr::Line(line) => self.write_stderr(key, line).await,
                    Stderr::Barrier(reached) => drop(reached.send(())),
                },
                () = shutdown.cancelled(), if self.requests.is_empty() => {}
                event = self.reader.work(SocketWork::Read) => match event {
                    SocketEvent::Data | SocketEvent::Spurious => {}
                    SocketEvent::Closed(_) => return self.abandon(PeerClose::Closed).await,
                },
            }
        }
    }

    /// The connection is over (the web server closed it, or it broke): every request on it
    /// has lost its client. The write half stays as it is while requests run: in write mode
    /// their next writes must meet the socket as it really is (on TCP the first one after the
    /// peer closed still succeeds).
    async fn abandon(&mut self, how: PeerClose) {
        let mut running_requests = false;
        for (id, slot) in self.requests.drain() {
            if let Some(mut running) = slot.running {
                running_requests = true;
                let aborted = running.conn.peer_closed(how);
                tracing::debug!(id, aborted, "FastCGI connection closed under a running request");
                running.stdin.abort();
            }
        }
        if !running_requests {
            self.writer.close().await;
        }
    }

    /// Handles one record.
    async fn handle(&mut self, record: Record) -> Result<(), RecordError> {
        let id = record.request_id;
        if id == record::MANAGEMENT_ID {
            return self.management(record).await;
        }
        match record.kind {
            // §5.1.
            kind::BEGIN_REQUEST => {
                let begin = BeginRequest::parse(&record.content)?;
                if let Some(slot) = self.requests.get(&id) {
                    if !slot.ended.load(Ordering::Acquire) {
                        return Err(RecordError::Layout("BEGIN_REQUEST for a request id in use"));
                    }
                    // The previous request with this id wrote END_REQUEST; its "done" is on
                    // its way and will find a newer serial.
                    self.requests.remove(&id);
                }
                // §5.5: a role the application does not play, or more requests than it takes.
                let refusal = if begin.role != record::ROLE_RESPONDER {
                    Some(status::UNKNOWN_ROLE)
                } else if self.requests.len() >= MAX_REQUESTS_PER_CONNECTION {
                    Some(status::OVERLOADED)
                } else {
                    None
                };
                if let Some(protocol_status) = refusal {
                    let body = record::end_request_body(0, protocol_status);
                    let mut frames = Frames::new();
                    frames.record(kind::END_REQUEST, id, &body);
                    let _ = self.writer.write(&frames).await;
                    self.closing |= !begin.keep_conn();
                    return Ok(());
                }
                self.next_serial += 1;
                let slot = Slot { serial: self.next_serial, ended: Arc::default(), begin, params: Vec::new(), running: None };
                self.requests.insert(id, slot);
            }
            // §5.2: the stream ends with an empty record.
            kind::PARAMS => {
                let Some(slot) = self.requests.get_mut(&id).filter(|slot| slot.running.is_none()) else { return Ok(()) };
                if record.content.is_empty() {
                    self.start(id).await;
                } else if slot.params.len() + record.content.len() > MAX_PARAMS_BYTES {
                    self.reject(id, None, 431, "request parameters too large\n").await;
                } else {
                    slot.params.extend_from_slice(&record.content);
                }
            }
            // §5.3: the stream ends with an empty record, and then the guest starts.
            kind::STDIN => {
                if let Some(running) = self.requests.get_mut(&id).and_then(|slot| slot.running.as_mut()) {
                    let end = record.content.is_empty();
                    running.stdin.push(record.content);
                    if end && let Some(start) = running.start.take() {
                        let req = self.dispatcher.next_id();
                        self.dispatcher.start(req, start);
                    }
                }
            }
            // §5.4: honoured (php-fpm ignores it). In prompt mode the guest is stopped at once;
            // in write mode its next write fails, as if the link had closed.
            kind::ABORT_REQUEST => match self.requests.get_mut(&id) {
                Some(Slot { running: Some(running), .. }) if running.start.is_none() => {
                    running.aborted.store(true, Ordering::Release);
                    running.conn.peer_closed(PeerClose::Closed);
                    running.stdin.abort();
                }
                Some(_) => {
                    let slot = self.requests.remove(&id);
                    self.end_request(id, slot.map(|s| s.begin)).await;
                }
                None => {}
            },
            // DATA belongs to the Filter role; anything else a web server should not send.
            other => tracing::debug!(kind = other, id, "ignoring a FastCGI record"),
        }
        Ok(())
    }

    /// §4: management records.
    async fn management(&mut self, record: Record) -> Result<(), RecordError> {
        let mut content = Vec::new();
        let reply = if record.kind == kind::GET_VALUES {
            // §4.1: answer the variables asked for that we know.
            let server = self.dispatcher.server();
            for (name, _) in record::parse_pairs(&record.content, MAX_PARAMS)? {
                let value = match name.as_slice() {
                    record::MAX_CONNS => server.max_connections.to_string(),
                    record::MAX_REQS => server.max_instances.to_string(),
                    record::MPXS_CONNS => "1".to_owned(),
                    _ => continue,
                };
                record::encode_pair(&mut content, &name, value.as_bytes());
            }
            kind::GET_VALUES_RESULT
        } else {
            // §4.2.
            content.extend_from_slice(&record::unknown_type_body(record.kind));
            kind::UNKNOWN_TYPE
        };
        let mut frames = Frames::new();
        frames.record(reply, record::MANAGEMENT_ID, &content);
        let _ = self.writer.write(&frames).await;
        Ok(())
    }

    /// The PARAMS stream ended: map, route and admit the request; it starts when STDIN ends.
    async fn start(&mut self, id: u16) {
        let Some(slot) = self.requests.get_mut(&id) else { return };
        let params = std::mem::take(&mut slot.params);
        let arrived = Instant::now();
        let pairs = match record::parse_pairs(&params, MAX_PARAMS) {
            Ok(pairs) => pairs,
            Err(error) => return self.reject(id, None, 400, &format!("{error}\n")).await,
        };
        let request = match mapping::request(pairs, self.dispatcher.server().fastcgi_route_by) {
            Ok(request) => request,
            Err(error) => return self.reject(id, None, 400, &format!("{error}\n")).await,
        };
        let Some(route) = self.dispatcher.route(&request.route_path) else {
            return self.reject(id, Some(&request.head), 404, "no route for this path\n").await;
        };
        if request.content_length.is_some_and(|n| n > route.max_body_size) {
            return self.reject(id, Some(&request.head), 413, "request body too large\n").await;
        }
        let Some(admission) = self.dispatcher.admit().await else {
            return self.reject(id, Some(&request.head), 503, OVERLOADED).await;
        };
        let conn = route.conn_state();
        let (tx, body) = body::unbounded();
        let aborted = Arc::new(AtomicBool::new(false));
        let sink = Sink {
            id,
            serial: slot.serial,
            ended_flag: slot.ended.clone(),
            writer: self.writer.clone(),
            done: self.done_tx.clone(),
            stderr: self.stderr_tx.clone(),
            stderr_used: Arc::default(),
            aborted: aborted.clone(),
            head_sent: false,
            ended: false,
            bytes: 0,
        };
        let stdin = Stdin { tx: Some(tx), received: 0, limit: route.max_body_size, expected: request.content_length };
        let start = Start {
            route,
            admission,
            head: request.head,
            body,
            sink: Box::new(sink),
            conn: conn.clone(),
            arrived,
            protocol: "fastcgi",
            conn_id: self.id,
        };
        slot.running = Some(Running { start: Some(start), conn, stdin, aborted });
    }

    /// Answers a request the host refuses, and forgets it.
    async fn reject(&mut self, id: u16, head: Option<&RequestHead>, status: u16, message: &str) {
        let arrived = Instant::now();
        let slot = self.requests.remove(&id);
        let mut cgi = Vec::new();
        mapping::response_head(&mut cgi, &ResponseHead::host_error(status), Some(message.len()));
        let end = record::end_request_body(0, status::REQUEST_COMPLETE);
        let mut frames = Frames::new();
        frames.stream(kind::STDOUT, id, &cgi).stream(kind::STDOUT, id, message.as_bytes()).end_stream(kind::STDOUT, id);
        frames.record(kind::END_REQUEST, id, &end);
        let bytes = self.writer.write(&frames).await.unwrap_or(0);
        self.closing |= slot.is_some_and(|s| !s.begin.keep_conn());
        self.dispatcher.log_rejected("fastcgi", self.id, head, status, bytes, arrived, message.trim_end());
    }

    /// §5.5: ends a request that never ran.
    async fn end_request(&mut self, id: u16, begin: Option<BeginRequest>) {
        let body = record::end_request_body(0, status::REQUEST_COMPLETE);
        let mut frames = Frames::new();
        frames.record(kind::END_REQUEST, id, &body);
        let _ = self.writer.write(&frames).await;
        self.closing |= begin.is_some_and(|b| !b.keep_conn());
    }

    /// A request's sink ended its response: the id is free again (unless a newer request
    /// already took it).
    fn finished(&mut self, id: u16, serial: u64) {
        if self.requests.get(&id).is_some_and(|slot| slot.serial == serial)
            && let Some(slot) = self.requests.remove(&id)
        {
            self.closing |= !slot.begin.keep_conn();
        }
    }

    /// §5.3: a guest stderr line as a STDERR record, while its request is open. A line written
    /// after END_REQUEST (after `finish-request`, or an unfinished line flushed at teardown) is
    /// only logged: the id may already belong to the web server's next request.
    async fn write_stderr(&mut self, (id, serial): RequestKey, line: Bytes) {
        if self.requests.get(&id).is_some_and(|slot| slot.serial == serial && !slot.ended.load(Ordering::Acquire)) {
            let mut frames = Frames::new();
            frames.stream(kind::STDERR, id, &line);
            let _ = self.writer.write(&frames).await;
        }
    }
}

/// The write half, shared by the connection and its requests, writing whole records.
struct Writer<W> {
    /// The write half; `broken` once a write failed or was cut short.
    state: tokio::sync::Mutex<WriterState<W>>,
    /// The server's `send_timeout`: a web server that takes no bytes for that long breaks the
    /// connection (every request on it fails its next write).
    send_timeout: Duration,
}

struct WriterState<W> {
    /// The socket's write half.
    io: W,
    /// A write failed or was cancelled half way (its request was killed), so the record stream
    /// may be torn: nothing more may be written.
    broken: bool,
}

impl<W: AsyncWrite + Send + Unpin> Writer<W> {
    fn new(io: W, send_timeout: Duration) -> Self {
        Self { state: tokio::sync::Mutex::new(WriterState { io, broken: false }), send_timeout }
    }

    /// Writes `frames` in one vectored write; returns the bytes written.
    async fn write(&self, frames: &Frames<'_>) -> io::Result<u64> {
        let mut written = 0;
        self.write_counting(frames, &mut written).await.map(|()| written)
    }

    /// Writes `frames` in one vectored write, adding the bytes to `written` as they go (also
    /// when the write fails or is cancelled half way).
    async fn write_counting(&self, frames: &Frames<'_>, written: &mut u64) -> io::Result<()> {
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

    /// A zero-length write on the socket: PHP's empty `flush()`.
    async fn zero_length_write(&self) -> io::Result<()> {
        let mut state = self.state.lock().await;
        if state.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        state.io.write(&[]).await.map(drop)
    }

    /// Closes the connection for writing; nothing more will be written.
    async fn close(&self) {
        let mut state = self.state.lock().await;
        state.broken = true;
        let _ = state.io.shutdown().await;
    }
}

/// One request's response writer: STDOUT records, then END_REQUEST (§5.3, §5.5).
struct Sink<W> {
    /// The request id.
    id: u16,
    /// The request's slot serial.
    serial: u64,
    /// The slot's "END_REQUEST written" flag.
    ended_flag: Arc<AtomicBool>,
    /// The connection's writer.
    writer: Arc<Writer<W>>,
    /// Tells the connection the request ended.
    done: mpsc::UnboundedSender<RequestKey>,
    /// Forwards guest stderr lines to the connection.
    stderr: mpsc::Sender<(RequestKey, Stderr)>,
    /// Whether the guest wrote to stderr (then the end of the response waits for the lines).
    stderr_used: Arc<AtomicBool>,
    /// `FCGI_ABORT_REQUEST` arrived.
    aborted: Arc<AtomicBool>,
    /// Whether the CGI header block went out.
    head_sent: bool,
    /// Whether END_REQUEST went out (or the request is over anyway).
    ended: bool,
    /// Bytes written.
    bytes: u64,
}

impl<W: AsyncWrite + Send + Unpin + 'static> Sink<W> {
    fn check_aborted(&self) -> io::Result<()> {
        if self.aborted.load(Ordering::Acquire) {
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "the web server aborted the request"));
        }
        Ok(())
    }

    /// Writes the head (if given), the body and, when `end`, the end of STDOUT and END_REQUEST.
    async fn write(&mut self, head: Option<&ResponseHead>, body: &[u8], end: bool) -> io::Result<()> {
        let mut cgi = Vec::new();
        if let Some(head) = head {
            self.head_sent = true;
            // The head goes out with the end of the response: the body is all there is.
            mapping::response_head(&mut cgi, head, end.then_some(body.len()));
        }
        let end_body = record::end_request_body(0, status::REQUEST_COMPLETE);
        let mut frames = Frames::new();
        frames.stream(kind::STDOUT, self.id, &cgi).stream(kind::STDOUT, self.id, body);
        if end {
            frames.end_stream(kind::STDOUT, self.id).record(kind::END_REQUEST, self.id, &end_body);
            self.ended_flag.store(true, Ordering::Release);
        }
        self.writer.write_counting(&frames, &mut self.bytes).await
    }

    /// Waits until the connection wrote the STDERR records of every line the guest wrote so
    /// far: they must precede END_REQUEST.
    async fn stderr_written(&self) {
        if !self.stderr_used.load(Ordering::Acquire) {
            return;
        }
        let (reached, wait) = oneshot::channel();
        if self.stderr.send(((self.id, self.serial), Stderr::Barrier(reached))).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Writes END_REQUEST with no more STDOUT: the answer to `FCGI_ABORT_REQUEST` (§5.4).
    async fn end_request_only(&mut self) {
        let body = record::end_request_body(0, status::REQUEST_COMPLETE);
        let mut frames = Frames::new();
        frames.record(kind::END_REQUEST, self.id, &body);
        self.ended_flag.store(true, Ordering::Release);
        let _ = self.writer.write(&frames).await;
    }

    fn end(&mut self) {
        if !std::mem::replace(&mut self.ended, true) {
            let _ = self.done.send((self.id, self.serial));
        }
    }
}

#[async_trait::async_trait]
impl<W: AsyncWrite + Send + Unpin + 'static> ResponseSink for Sink<W> {
    async fn send(&mut self, head: Option<&ResponseHead>, body: &[u8]) -> io::Result<()> {
        self.check_aborted()?;
        if head.is_none() && body.is_empty() {
            return self.writer.zero_length_write().await;
        }
        self.write(head, body, false).await
    }

    async fn complete(&mut self, head: Option<&ResponseHead>, body: &[u8]) -> io::Result<()> {
        self.stderr_written().await;
        let result = match self.check_aborted() {
            Ok(()) => self.write(head, body, true).await,
            Err(error) => {
                // The web server aborted the request and waits for its END_REQUEST (§5.4),
                // also when the guest ignored the abort and ran to the end.
                self.end_request_only().await;
                Err(error)
            }
        };
        self.end();
        result
    }

    async fn fail(&mut self, failure: Failure) {
        self.stderr_written().await;
        match failure {
            Failure::Error { status, message } if !self.head_sent => {
                let _ = self.write(Some(&ResponseHead::host_error(status)), message.as_bytes(), true).await;
            }
            // The head is out: only closing the link tells the web server the response is
            // incomplete (an END_REQUEST would make it look whole).
            Failure::Error { .. } => self.writer.close().await,
            // Answers an FCGI_ABORT_REQUEST; after the web server closed the link, it fails
            // harmlessly.
            Failure::ClientGone => self.end_request_only().await,
        }
        self.end();
    }

    async fn body_wanted(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn bytes_sent(&self) -> u64 {
        self.bytes
    }

    fn stderr(&self) -> Option<StderrSink> {
        let (key, tx, used) = ((self.id, self.serial), self.stderr.clone(), self.stderr_used.clone());
        Some(Arc::new(move |line: &[u8]| {
            used.store(true, Ordering::Release);
            // A full queue drops the line here; it is in the host log either way.
            let _ = tx.try_send((key, Stderr::Line(Bytes::copy_from_slice(line))));
        }))
    }
}

impl<W> Drop for Sink<W> {
    fn drop(&mut self) {
        if !self.ended {
            let _ = self.done.send((self.id, self.serial));
        }
    }
}
