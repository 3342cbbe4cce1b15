//! One FastCGI connection from a web server, in the Responder role (spec §6.2), with several
//! requests multiplexed on it (§3.3, `FCGI_MPXS_CONNS` = 1).
//!
//! The connection task owns the read half and never stops reading while requests run: that is
//! how it sees the web server close the link (nginx's reaction to its client leaving) and
//! `FCGI_ABORT_REQUEST`, and feeds both to the requests' states. It decodes records, collects
//! each request's PARAMS, has the request admitted, feeds it STDIN, polls the requests it
//! started on its thread (their `Run`s), and writes their guests' stderr lines. Every request's
//! sink (`super::sink`) writes whole records through the shared `Writer`; a flush is a socket
//! write before it returns.

use super::mapping;
use super::record::{self, BeginRequest, Frames, ProtocolStatus, Record, RecordError, kind};
use super::sink::{Flags, RequestKey, Sink, Stderr};
use super::writer::Writer;
use crate::dispatch::{Arrival, Dispatcher, Refusal, Run, Start};
use crate::net::{ReadHalf, SocketEvent, SocketReader, SocketWork, Stream, WriteHalf};
use crate::request::body::{BodyError, BodyReceiver, WholeBody};
use crate::request::{PeerClose, Protocol, RequestHead, RequestState, ResponseHead};
use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Instant;
use tokio::sync::mpsc;
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

/// Serves requests on `stream` until the web server closes it (or, without `FCGI_KEEP_CONN`,
/// until its request ends).
pub async fn serve<S: Stream>(stream: S, dispatcher: Arc<Dispatcher>, shutdown: CancellationToken) {
    let (rd, wr) = stream.split();
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let (stderr_tx, stderr_rx) = mpsc::channel::<(RequestKey, Stderr)>(STDERR_QUEUE);
    let mut conn = Connection {
        reader: SocketReader::new(rd),
        writer: Arc::new(Writer::new(wr, dispatcher.settings().send_timeout)),
        requests: HashMap::new(),
        dispatcher: dispatcher.clone(),
        done_tx,
        stderr_tx,
        closing: false,
        next_serial: 0,
        id: dispatcher.next_conn_id(),
    };
    let mut runs = FuturesUnordered::new();
    conn.run(&mut runs, done_rx, stderr_rx, shutdown).await;
    // Requests still running when the connection ends go on without it.
    for run in runs {
        run.detach();
    }
    // Nothing else holds the write half: the socket closes with the read half, without a
    // shutdown first (see `Connection::close_writer`).
    if let Ok(writer) = Arc::try_unwrap(conn.writer) {
        writer.into_io().release();
    }
}

/// Polls `work` of the connection task while polling the requests it runs on its thread: they
/// make progress only while polled, and `work` may wait for them (for the shared writer).
async fn alongside<F: Future>(runs: &mut FuturesUnordered<Run>, work: F) -> F::Output {
    let mut work = std::pin::pin!(work);
    std::future::poll_fn(|cx| {
        while let Poll::Ready(Some(())) = runs.poll_next_unpin(cx) {}
        work.as_mut().poll(cx)
    })
    .await
}

/// A request the connection knows, from its BEGIN_REQUEST until it ended.
struct OpenRequest {
    /// Tells this request apart from a later one with the same id.
    serial: u64,
    /// Shared with the request's sink: whether END_REQUEST went out, and whether the web server
    /// aborted the request.
    flags: Arc<Flags>,
    /// Its BEGIN_REQUEST.
    begin: BeginRequest,
    /// The PARAMS stream so far (§5.2), until it ends and the request is admitted.
    params: Vec<u8>,
    /// Set once the request is admitted.
    admitted: Option<AdmittedRequest>,
}

/// A request past its PARAMS, as the connection task sees it.
struct AdmittedRequest {
    /// The guest's start, held back until STDIN is complete: nginx stops sending the request
    /// body once the response begins, so a guest answering before it read everything could
    /// wait forever for the rest (php-fpm, too, reads the whole body before the script runs).
    /// Its body is an empty stand-in until then.
    start: Option<Start>,
    /// Its state, for aborts.
    state: Arc<RequestState>,
    /// Its STDIN, on the way to the guest.
    stdin: Stdin,
}

/// STDIN records (§5.3) on their way to the guest, collected whole: the web server writes the
/// whole body before it reads the response, and the guest starts once it is complete (see
/// [`WholeBody`]).
struct Stdin {
    /// The guest's body, held to the route's `max_body_size`; `None` once the stream ended.
    body: Option<WholeBody>,
    /// `CONTENT_LENGTH`, if the web server sent it: the body's length (§6.2).
    expected: Option<u64>,
}

impl Stdin {
    /// Takes a STDIN record's content; at the end of the stream (an empty record), the guest's
    /// end of the body. The guest reads at most `CONTENT_LENGTH` bytes (§6.2), and a stream
    /// ending short of it is a broken body.
    fn push(&mut self, mut data: Bytes) -> Option<BodyReceiver> {
        let body = self.body.as_mut()?;
        if let Some(expected) = self.expected {
            let room = expected.saturating_sub(body.received());
            if !data.is_empty() && room == 0 {
                return None;
            }
            data.truncate(usize::try_from(room).unwrap_or(usize::MAX));
        }
        if !data.is_empty() {
            body.data(data);
            return None;
        }
        if self.expected.is_some_and(|expected| body.received() < expected) {
            body.fail(BodyError::Malformed);
        }
        self.body.take().map(WholeBody::receiver)
    }
}

/// The connection task's state.
struct Connection<R, W> {
    /// The read half and its buffer.
    reader: SocketReader<R>,
    /// The write half, shared with the requests' sinks.
    writer: Arc<Writer<W>>,
    /// Requests by id.
    requests: HashMap<u16, OpenRequest>,
    /// Routes and runtime.
    dispatcher: Arc<Dispatcher>,
    /// Sinks report finished requests here.
    done_tx: mpsc::UnboundedSender<RequestKey>,
    /// The next request serial.
    next_serial: u64,
    /// Sinks forward guest stderr lines here.
    stderr_tx: mpsc::Sender<(RequestKey, Stderr)>,
    /// A request without `FCGI_KEEP_CONN` ended: close once the others have (§3.5).
    closing: bool,
    /// The connection id, for the log.
    id: u64,
}

impl<R: ReadHalf, W: WriteHalf> Connection<R, W> {
    async fn run(
        &mut self,
        runs: &mut FuturesUnordered<Run>,
        mut done_rx: mpsc::UnboundedReceiver<RequestKey>,
        mut stderr_rx: mpsc::Receiver<(RequestKey, Stderr)>,
        shutdown: CancellationToken,
    ) {
        loop {
            loop {
                match record::decode(&mut self.reader.buf) {
                    Ok(Some(record)) => match alongside(runs, self.handle(record)).await {
                        Ok(Some(run)) => runs.push(run),
                        Ok(None) => {}
                        Err(error) => {
                            tracing::warn!(%error, "FastCGI protocol error; closing the connection");
                            return alongside(runs, self.abandon(PeerClose::Closed)).await;
                        }
                    },
                    Ok(None) => break,
                    Err(error) => {
                        tracing::warn!(%error, "malformed FastCGI record; closing the connection");
                        return alongside(runs, self.abandon(PeerClose::Closed)).await;
                    }
                }
            }
            if (self.closing || shutdown.is_cancelled()) && self.requests.is_empty() {
                return alongside(runs, self.close_writer()).await;
            }
            tokio::select! {
                biased;
                Some((id, serial)) = done_rx.recv() => self.finished(id, serial),
                Some((key, message)) = stderr_rx.recv() => match message {
                    Stderr::Line(line) => alongside(runs, self.write_stderr(key, line)).await,
                    Stderr::Barrier(reached) => drop(reached.send(())),
                },
                Some(()) = runs.next(), if !runs.is_empty() => {}
                () = shutdown.cancelled(), if self.requests.is_empty() => {}
                event = self.reader.work(SocketWork::Read) => match event {
                    SocketEvent::Data | SocketEvent::Spurious => {}
                    SocketEvent::Closed(_) => return alongside(runs, self.abandon(PeerClose::Closed)).await,
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
        for (id, request) in self.requests.drain() {
            if let Some(admitted) = request.admitted {
                running_requests = true;
                let aborted = admitted.state.peer_closed(how);
                tracing::debug!(id, aborted, "FastCGI connection closed under a running request");
            }
        }
        if !running_requests {
            self.close_writer().await;
        }
    }

    /// Closes the connection for writing. While a request's sink still holds the write half (a
    /// guest that runs on after its END_REQUEST), a shutdown tells the web server that nothing
    /// more comes; otherwise the connection's end closes the socket ([`serve`]), which tells it
    /// as much for one system call fewer.
    async fn close_writer(&mut self) {
        if Arc::strong_count(&self.writer) > 1 {
            self.writer.close().await;
        }
    }

    /// Handles one record; the end of a request's STDIN starts it, and a request started on
    /// this thread comes back as its [`Run`].
    async fn handle(&mut self, record: Record) -> Result<Option<Run>, RecordError> {
        let id = record.request_id;
        if id == record::MANAGEMENT_ID {
            return self.management(record).await.map(|()| None);
        }
        match record.kind {
            // §5.1.
            kind::BEGIN_REQUEST => {
                let begin = BeginRequest::parse(&record.content)?;
                if let Some(open) = self.requests.get(&id) {
                    if !open.flags.ended.load(Ordering::Acquire) {
                        return Err(RecordError::Layout("BEGIN_REQUEST for a request id in use"));
                    }
                    // The previous request with this id wrote END_REQUEST; its "done" is on
                    // its way and will find a newer serial.
                    self.requests.remove(&id);
                }
                // §5.5: a role the application does not play, or more requests than it takes.
                let refusal = if begin.role != record::ROLE_RESPONDER {
                    Some(ProtocolStatus::UnknownRole)
                } else if self.requests.len() >= MAX_REQUESTS_PER_CONNECTION {
                    Some(ProtocolStatus::Overloaded)
                } else {
                    None
                };
                if let Some(status) = refusal {
                    self.writer.end_request(id, status).await;
                    self.closing |= !begin.keep_conn();
                    return Ok(None);
                }
                self.next_serial += 1;
                let open = OpenRequest { serial: self.next_serial, flags: Arc::default(), begin, params: Vec::new(), admitted: None };
                self.requests.insert(id, open);
            }
            // §5.2: the stream ends with an empty record.
            kind::PARAMS => {
                let Some(open) = self.requests.get_mut(&id).filter(|open| open.admitted.is_none()) else { return Ok(None) };
                if record.content.is_empty() {
                    self.admit(id).await;
                } else if open.params.len() + record.content.len() > MAX_PARAMS_BYTES {
                    self.refuse(id, None, Refusal::malformed(431, "request parameters too large"), self.arrival()).await;
                } else {
                    open.params.extend_from_slice(&record.content);
                }
            }
            // §5.3: the stream ends with an empty record, and then the guest starts.
            kind::STDIN => {
                if let Some(admitted) = self.requests.get_mut(&id).and_then(|open| open.admitted.as_mut())
                    && let Some(body) = admitted.stdin.push(record.content)
                    && let Some(mut start) = admitted.start.take()
                {
                    start.body = body;
                    return Ok(self.dispatcher.start(start));
                }
            }
            // §5.4: honoured (php-fpm ignores it). In prompt mode the guest is stopped at once;
            // in write mode its next write fails, as if the link had closed.
            kind::ABORT_REQUEST => match self.requests.get_mut(&id) {
                Some(OpenRequest { admitted: Some(admitted), flags, .. }) if admitted.start.is_none() => {
                    flags.aborted.store(true, Ordering::Release);
                    admitted.state.peer_closed(PeerClose::Closed);
                }
                // Not started yet: nothing ran, END_REQUEST ends it.
                Some(_) => {
                    let open = self.requests.remove(&id);
                    self.writer.end_request(id, ProtocolStatus::RequestComplete).await;
                    self.closing |= open.is_some_and(|open| !open.begin.keep_conn());
                }
                None => {}
            },
            // DATA belongs to the Filter role; anything else a web server should not send.
            other => tracing::debug!(kind = other, id, "ignoring a FastCGI record"),
        }
        Ok(None)
    }

    /// §4: management records.
    async fn management(&mut self, record: Record) -> Result<(), RecordError> {
        let mut content = Vec::new();
        let reply = if record.kind == kind::GET_VALUES {
            // §4.1: answer the variables asked for that we know.
            let settings = self.dispatcher.settings();
            for (name, _) in record::parse_pairs(&record.content, MAX_PARAMS)? {
                let name = &record.content[name];
                let value = match name {
                    record::MAX_CONNS => settings.max_connections.to_string(),
                    record::MAX_REQS => settings.max_instances.to_string(),
                    record::MPXS_CONNS => "1".to_owned(),
                    _ => continue,
                };
                record::encode_pair(&mut content, name, value.as_bytes());
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

    /// The PARAMS stream ended: map the request and have it admitted; it starts when STDIN
    /// ends.
    async fn admit(&mut self, id: u16) {
        let Some(open) = self.requests.get_mut(&id) else { return };
        let params = std::mem::take(&mut open.params);
        let arrival = self.arrival();
        let request = match record::parse_pairs(&params, MAX_PARAMS) {
            Ok(pairs) => {
                mapping::request(params, pairs, self.dispatcher.settings().fastcgi_route_by).map_err(|error| Refusal::malformed(400, error))
            }
            Err(error) => Err(Refusal::malformed(400, error)),
        };
        let request = match request {
            Ok(request) => request,
            Err(refusal) => return self.refuse(id, None, refusal, arrival).await,
        };
        let admitted = match self.dispatcher.admit(arrival, &request.route_path, request.content_length).await {
            Ok(admitted) => admitted,
            Err(refusal) => return self.refuse(id, Some(&request.head), refusal, arrival).await,
        };
        let Some(open) = self.requests.get_mut(&id) else { return };
        let state = admitted.state().clone();
        let body = WholeBody::new(admitted.max_body_size());
        let sink = Sink::new((id, open.serial), open.flags.clone(), self.writer.clone(), self.done_tx.clone(), self.stderr_tx.clone());
        let start = Start { admitted, head: request.head, body: BodyReceiver::empty(), sink: Box::new(sink) };
        let stdin = Stdin { body: Some(body), expected: request.content_length };
        open.admitted = Some(AdmittedRequest { start: Some(start), state, stdin });
    }

    /// A request of this connection, complete now.
    fn arrival(&self) -> Arrival {
        Arrival { protocol: Protocol::FastCgi, conn_id: self.id, at: Instant::now() }
    }

    /// Answers a request the host refuses, and forgets it.
    async fn refuse(&mut self, id: u16, head: Option<&RequestHead>, refusal: Refusal, arrival: Arrival) {
        let open = self.requests.remove(&id);
        let mut cgi = Vec::new();
        mapping::response_head(&mut cgi, &ResponseHead::host_error(refusal.status), Some(refusal.message.len()));
        let mut frames = Frames::new();
        frames.stream(kind::STDOUT, id, &cgi).stream(kind::STDOUT, id, refusal.message.as_bytes()).end_stream(kind::STDOUT, id);
        frames.end_request(id, ProtocolStatus::RequestComplete);
        let bytes = self.writer.write(&frames).await.unwrap_or(0);
        self.closing |= open.is_some_and(|open| !open.begin.keep_conn());
        self.dispatcher.log_refused(&arrival, head, &refusal, bytes);
    }

    /// A request's sink ended its response: the id is free again (unless a newer request
    /// already took it).
    fn finished(&mut self, id: u16, serial: u64) {
        if self.requests.get(&id).is_some_and(|open| open.serial == serial)
            && let Some(open) = self.requests.remove(&id)
        {
            self.closing |= !open.begin.keep_conn();
        }
    }

    /// §5.3: a guest stderr line as a STDERR record, while its request is open. A line written
    /// after END_REQUEST (after `finish-request`, or an unfinished line flushed at teardown) is
    /// only logged: the id may already belong to the web server's next request.
    async fn write_stderr(&mut self, (id, serial): RequestKey, line: Bytes) {
        if self.requests.get(&id).is_some_and(|open| open.serial == serial && !open.flags.ended.load(Ordering::Acquire)) {
            let mut frames = Frames::new();
            frames.stream(kind::STDERR, id, &line);
            let _ = self.writer.write(&frames).await;
        }
    }
}
