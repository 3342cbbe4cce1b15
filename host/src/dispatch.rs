//! Runs requests: routes them, admits them against the instance limit, runs each in a fresh
//! guest instance under its route's limits, ends the response according to how the guest
//! ended, and writes the access-log line.
//!
//! Front ends call [`Dispatcher::route`], [`Dispatcher::admit`] and then
//! [`Dispatcher::start`], which spawns the request's task and returns at once: the front end
//! keeps watching its socket while the guest runs.

use crate::heap::{Busy, IdleTrim};
use crate::manifest::{GuestStart, Manifest, ServerSettings};
use crate::request::{
    AccessRecord, BodyReceiver, ConnState, Failure, KillReason, Outcome, Output, RequestHead, ResponseSink, abort_latency, monotonic_ns,
};
use crate::routes::{CacheChoice, Route, Routes};
use crate::runtime::{GuestFailure, Invocation, Spent};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

/// The body of a 503: every instance is busy, or the machine has no room for another.
pub const OVERLOADED: &str = "server overloaded, retry later\n";
/// How long a request waits for a free instance before it is refused with 503. An instance
/// holds its slot until it is torn down, after its response: a keep-alive client's next request
/// can arrive microseconds before that, and must not be refused for it. Short, so that a
/// server that is really full still answers at once.
const ADMISSION_WAIT: Duration = Duration::from_millis(100);

/// Everything needed to run requests. Shared by all connections.
#[derive(Debug)]
pub struct Dispatcher {
    /// The routes, with the runtime they are loaded into.
    routes: Arc<Routes>,
    /// One permit per guest instance alive (`max_instances`).
    instances: Arc<Semaphore>,
    /// Counts requests in flight, to give memory back once the server is idle.
    idle_trim: Arc<IdleTrim>,
    /// Request ids.
    next_id: AtomicU64,
    /// Connection ids.
    next_conn: AtomicU64,
    /// Server settings, for the front ends.
    server: ServerSettings,
    /// Request tasks, so that shutdown can wait for them.
    tasks: TaskTracker,
    /// The requests not finished yet, so that shutdown can stop them when its grace runs out.
    live: Arc<LiveRequests>,
    /// Where request tasks run.
    executors: Executors,
}

/// The runtimes request tasks run on, apart from the front ends' I/O runtime, so that a guest
/// busy in Wasm never delays the sockets (accepting, parsing, seeing a client leave), or, with
/// `guests_start_on = "io-threads"`, by no more than an epoch tick.
#[derive(Clone, Debug)]
pub struct Executors {
    /// Runs guests (with `guests_start_on = "io-threads"`, those an epoch tick found computing
    /// on an I/O thread).
    pub guests: tokio::runtime::Handle,
    /// Finishes requests whose guest was stopped while it waited in a host call: tears the
    /// guest down, ends the response and logs it. Apart from the guest threads, and below
    /// them in priority, so that when many clients leave at once every guest is stopped
    /// before any is cleaned up after (measured: see `bench/notes.md`).
    pub reaper: tokio::runtime::Handle,
}

/// The connection states of the requests whose task has not finished, by request id.
#[derive(Debug, Default)]
struct LiveRequests(Mutex<HashMap<u64, Arc<ConnState>>>);

impl LiveRequests {
    fn insert(&self, id: u64, conn: Arc<ConnState>) {
        self.0.lock().expect("live requests").insert(id, conn);
    }

    fn remove(&self, id: u64) {
        self.0.lock().expect("live requests").remove(&id);
    }

    fn all(&self) -> Vec<Arc<ConnState>> {
        self.0.lock().expect("live requests").values().cloned().collect()
    }
}

/// A request that got an instance slot.
#[derive(Debug)]
pub struct Admission {
    /// Held for its drop, which frees the slot.
    _permit: OwnedSemaphorePermit,
    /// Held for its drop, which may leave the server idle.
    _busy: Busy,
}

/// A request ready to start.
pub struct Start {
    /// The route.
    pub route: Arc<Route>,
    /// The instance slot.
    pub admission: Admission,
    /// The request line and headers.
    pub head: RequestHead,
    /// The request body.
    pub body: BodyReceiver,
    /// Where the response goes.
    pub sink: Box<dyn ResponseSink>,
    /// The connection state, which the front end keeps up to date.
    pub conn: Arc<ConnState>,
    /// When the request head arrived.
    pub arrived: Instant,
    /// `http` or `fastcgi`, for the log.
    pub protocol: &'static str,
    /// The connection's id, for the log.
    pub conn_id: u64,
}

impl Dispatcher {
    /// Builds the runtime and loads every route's component. Requests will run on `executors`.
    pub fn new(manifest: &Manifest, cache: &CacheChoice, executors: Executors) -> Result<Self, anyhow::Error> {
        let server = manifest.server.clone();
        let routes = Arc::new(Routes::load(manifest, cache)?);
        let idle_trim = Arc::new(IdleTrim::default());
        let releaser = routes.clone();
        executors.reaper.spawn(idle_trim.clone().run(move || releaser.release_pool()));
        Ok(Self {
            routes,
            instances: Arc::new(Semaphore::new(server.max_instances as usize)),
            idle_trim,
            next_id: AtomicU64::new(1),
            next_conn: AtomicU64::new(1),
            server,
            tasks: TaskTracker::new(),
            live: Arc::default(),
            executors,
        })
    }

    /// Server settings.
    pub fn server(&self) -> &ServerSettings {
        &self.server
    }

    /// The route for `path`, if any.
    pub fn route(&self, path: &str) -> Option<Arc<Route>> {
        self.routes.route(path)
    }

    /// How many routes there are.
    pub fn route_count(&self) -> usize {
        self.routes.count()
    }

    /// An instance slot, or `None` (logged) when all `max_instances` stay busy for
    /// [`ADMISSION_WAIT`]: answer 503.
    pub async fn admit(&self) -> Option<Admission> {
        let permit = match self.instances.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => match tokio::time::timeout(ADMISSION_WAIT, self.instances.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => {
                    tracing::warn!("all guest instances are busy; answering 503");
                    return None;
                }
            },
        };
        Some(Admission { _permit: permit, _busy: self.idle_trim.busy() })
    }

    /// A new request id.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A new connection id, for telling in the log which requests shared a connection.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Spawns the request's task and returns at once. The task runs on the guest runtime, or,
    /// with `guests_start_on = "io-threads"`, starts on the calling thread's runtime (the front
    /// end's I/O thread) and moves to the guest runtime if its guest computes there (see
    /// [`crate::sched`]).
    pub fn start(self: &Arc<Self>, id: u64, start: Start) {
        let this = self.clone();
        let task = async move { this.run(id, start).await };
        match self.server.guests_start_on {
            GuestStart::GuestThreads => {
                self.tasks.spawn_on(task, &self.executors.guests);
            }
            GuestStart::IoThreads => {
                let tasks = self.tasks.clone();
                let guests = self.executors.guests.clone();
                self.tasks.spawn(async move {
                    // Boxed, so that the task can move to another runtime once it was polled.
                    if let Some(rest) = crate::sched::until_leaving(Box::pin(task)).await {
                        tasks.spawn_on(rest, &guests);
                    }
                });
            }
        }
    }

    /// Stops every request still running, when the shutdown's grace ran out: each ends as a
    /// timeout, with a 503 if its head was not sent yet, and its access line.
    pub fn stop_running(&self) {
        for conn in self.live.all() {
            conn.time_out(KillReason::ShutdownGrace);
        }
    }

    /// Waits for every request task (after the listeners stopped).
    pub async fn drain(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Logs a request the front end answered itself.
    #[allow(clippy::too_many_arguments)]
    pub fn log_rejected(
        &self,
        protocol: &'static str,
        conn_id: u64,
        head: Option<&RequestHead>,
        status: u16,
        bytes: u64,
        arrived: Instant,
        detail: &str,
    ) {
        AccessRecord {
            id: self.next_id(),
            conn: conn_id,
            protocol,
            route: "",
            method: head.map_or("", |h| h.method.as_str()),
            target: head.map_or("", |h| h.target.as_str()),
            status,
            outcome: Outcome::Rejected,
            bytes,
            duration: arrived.elapsed(),
            abort_latency: None,
            stopped_mono_ns: None,
            detail: Some(detail),
        }
        .log();
    }

    /// The request's task: runs the guest against the kill switch and the wall-clock limit,
    /// then finishes the request (here, or on the reaper).
    async fn run(&self, id: u64, start: Start) {
        let Start { route, admission, head, body, sink, conn, arrived, protocol, conn_id } = start;
        let method = head.method.clone();
        let target = head.target.clone();
        let stderr = sink.stderr();
        let output = Arc::new(tokio::sync::Mutex::new(Output::new(sink, conn.clone(), route.output_buffer)));
        let invocation = Invocation { id, head, body, output: output.clone(), conn: conn.clone(), stderr };
        self.live.insert(id, conn.clone());
        let deadline = async {
            match route.request_timeout {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        // The future owns its (cheap, shared) guest handle, so that it can be torn down elsewhere.
        let component = route.guest.clone();
        let mut guest = Box::pin(async move { component.handle(invocation).await });
        // Polled only through the gate, so that a kill that finds it parked stops it at once.
        let gated = std::future::poll_fn(|cx| {
            if !conn.enter_guest() {
                return Poll::Pending;
            }
            let polled = guest.as_mut().poll(cx);
            if polled.is_pending() {
                conn.leave_guest();
            }
            polled
        });
        let (result, spent) = tokio::select! {
            biased;
            () = conn.killed() => (Err(GuestFailure::Killed), None),
            () = deadline => {
                conn.time_out(KillReason::RequestTimeout);
                (Err(GuestFailure::Killed), None)
            }
            finished = gated => finished,
        };
        // From here the guest never runs again: its future is not polled any more. If the kill
        // found it parked, it stopped then.
        let (stopped, stopped_mono_ns) = conn.stopped_at().unwrap_or_else(|| (Instant::now(), monotonic_ns()));
        let ending = Ending {
            id,
            conn_id,
            protocol,
            route,
            method,
            target,
            arrived,
            conn,
            output,
            result,
            stopped,
            stopped_mono_ns,
            spent,
            live: self.live.clone(),
            _admission: admission,
        };
        let stopped_in_host_call = ending.spent.is_none();
        // A guest stopped inside a host call is torn down with its future, which must go before
        // the output is touched (the call may hold it).
        let finish = async move {
            drop(guest);
            ending.finish().await;
        };
        if stopped_in_host_call {
            self.tasks.spawn_on(finish, &self.executors.reaper);
        } else {
            finish.await;
        }
    }
}

/// A request whose guest will not run again: what finishing it needs.
struct Ending {
    /// Request id, for the log.
    id: u64,
    /// Connection id, for the log.
    conn_id: u64,
    /// `http` or `fastcgi`, for the log.
    protocol: &'static str,
    /// The route it ran on.
    route: Arc<Route>,
    /// The request method, for the log.
    method: String,
    /// The request target, for the log.
    target: String,
    /// When the request head arrived.
    arrived: Instant,
    /// The connection state: why the guest was stopped, if it was.
    conn: Arc<ConnState>,
    /// The response, to end.
    output: Arc<tokio::sync::Mutex<Output>>,
    /// How the guest ended.
    result: Result<(), GuestFailure>,
    /// When it was stopped, for the abort latency.
    stopped: Instant,
    /// The same on CLOCK_MONOTONIC, for the log (benchmarks compare it with clients' clocks).
    stopped_mono_ns: u64,
    /// The instance, when the guest returned or trapped on its own.
    spent: Option<Spent>,
    /// Where the request is registered as not finished.
    live: Arc<LiveRequests>,
    /// Held until the instance is gone, which frees the slot.
    _admission: Admission,
}

impl Ending {
    /// Ends the response according to how the guest ended, writes the access-log line, then
    /// tears the instance down.
    async fn finish(self) {
        let Ending { conn, route, result, .. } = &self;
        let mut output = self.output.lock().await;
        let (outcome, detail) = match result {
            Ok(()) => {
                output.end().await;
                let outcome = if output.finished_early() {
                    Outcome::FinishedEarly
                } else if conn.is_aborted() {
                    Outcome::AbortedIgnored
                } else {
                    Outcome::Completed
                };
                (outcome, None)
            }
            Err(failure) => {
                let (outcome, failure_response, detail) = classify(conn.kill_reason(), failure, route);
                output.fail(failure_response).await;
                (outcome, Some(detail))
            }
        };
        let killed = result.is_err() && conn.kill_reason() == Some(KillReason::Aborted);
        AccessRecord {
            id: self.id,
            conn: self.conn_id,
            protocol: self.protocol,
            route: &route.path,
            method: &self.method,
            target: &self.target,
            status: output.status(),
            outcome,
            bytes: output.bytes_sent(),
            duration: self.arrived.elapsed(),
            abort_latency: if killed { abort_latency(conn.abort_seen_at(), self.stopped) } else { None },
            stopped_mono_ns: result.is_err().then_some(self.stopped_mono_ns),
            detail: detail.as_deref(),
        }
        .log();
        drop(output);
        self.live.remove(self.id);
        // `self` goes now: its fields drop in order, the instance (`spent`) before its slot.
    }
}

/// The outcome, the response and the log detail for a guest that did not return normally.
fn classify(kill: Option<KillReason>, failure: &GuestFailure, route: &Route) -> (Outcome, Failure, String) {
    match kill {
        Some(KillReason::Aborted) => (Outcome::AbortedTrapped, Failure::ClientGone, "client aborted".to_owned()),
        Some(KillReason::ExecutionTime) => (
            Outcome::Timeout,
            Failure::Error { status: 500, message: "maximum execution time exceeded\n".to_owned() },
            "max_execution_time exceeded".to_owned(),
        ),
        Some(KillReason::ShutdownGrace) => (
            Outcome::Timeout,
            Failure::Error { status: 503, message: "server shutting down\n".to_owned() },
            "shutdown_grace exceeded".to_owned(),
        ),
        Some(KillReason::RequestTimeout) => (
            Outcome::Timeout,
            Failure::Error { status: 504, message: "request timed out\n".to_owned() },
            format!("request_timeout ({:?}) exceeded", route.request_timeout.unwrap_or_default()),
        ),
        None if matches!(failure, GuestFailure::OutOfResources(_)) => {
            tracing::warn!(route = &*route.path, error = %failure, "no resources for a new instance; answering 503");
            (Outcome::Rejected, Failure::Error { status: 503, message: OVERLOADED.to_owned() }, failure.to_string())
        }
        None => {
            tracing::warn!(route = &*route.path, error = %failure, "guest failed");
            (Outcome::Trapped, Failure::Error { status: 500, message: "internal server error\n".to_owned() }, failure.to_string())
        }
    }
}
