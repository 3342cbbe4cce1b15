//! Where a request leaves its front end: admission (routing, the body limit, an instance slot)
//! and the request's task, which runs the guest against its kill switch and wall-clock limit.
//!
//! A front end calls [`Dispatcher::admit`] with the request's path and declared body length and
//! gets either an [`Admitted`] request or a [`Refusal`] it only has to encode. It then
//! [`Dispatcher::start`]s the admitted request: a request that starts on the front end's I/O
//! thread comes back as a [`Run`], which the connection task polls alongside its socket, so
//! that a short request needs no task of its own; one that starts on the guest threads is a
//! task there. Either way the front end keeps watching its socket while the guest runs. How
//! the request ends (its outcome, the end of its response, its access line) is `ending`'s.

mod ending;
mod overload;

pub use ending::LiveRequest;
pub use overload::{OVERLOADED, SERVING_AGAIN};

use crate::admin::Metrics;
use crate::generation::{CacheChoice, Generation, Generations, Route, SettingsView};
use crate::heap::{Busy, IdleTrim};
use crate::manifest::{GuestStart, Manifest};
use crate::request::{
    AccessRecord, BodyReceiver, KillReason, Outcome, Output, Protocol, RequestHead, RequestState, ResponseSink, monotonic_ns,
};
use crate::runtime::{GuestFailure, Invocation};
use crate::sched::IoRun;
use ending::{Ending, LiveRequests};
use overload::Overload;
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::task::TaskTracker;

/// The body of a 503 for want of an instance: every one is busy, or the machine has no room for
/// another.
pub const OVERLOADED_MESSAGE: &str = "server overloaded, retry later\n";
/// How long a request waits for a free instance before it is refused with 503. An instance
/// holds its slot until it is torn down, after its response: a keep-alive client's next request
/// can arrive microseconds before that, and must not be refused for it. Short, so that a
/// server that is really full still answers at once.
const ADMISSION_WAIT: Duration = Duration::from_millis(100);

/// Everything needed to run requests. Shared by all connections.
#[derive(Debug)]
pub struct Dispatcher {
    /// The generation in force: settings, routes, runtime and admission.
    generations: Arc<Generations>,
    /// Counts requests in flight, to give memory back once the server is idle.
    idle_trim: Arc<IdleTrim>,
    /// Request ids.
    next_id: AtomicU64,
    /// Connection ids.
    next_conn: AtomicU64,
    /// Request tasks, so that shutdown can wait for them.
    tasks: TaskTracker,
    /// The requests not finished yet, so that shutdown can stop them when its grace runs out.
    live: LiveRequests,
    /// Where request tasks run.
    executors: Executors,
    /// What the admin listener reports; `None` when it is off, and nothing is counted.
    metrics: Option<Arc<Metrics>>,
    /// Runs of 503s, for the log.
    overload: Overload,
}

/// The runtimes request tasks run on, apart from the front ends' I/O threads, so that a guest
/// busy in Wasm delays the sockets (accepting, parsing, seeing a client leave) by no more than
/// its first epoch tick on an I/O thread.
#[derive(Clone, Debug)]
pub struct Executors {
    /// Runs computing guests: those an epoch tick found computing on an I/O thread, and, as
    /// `guests_start_on` says, those of routes whose last requests computed, or all.
    pub guests: tokio::runtime::Handle,
    /// Finishes requests whose guest was stopped while it waited in a host call: tears the
    /// guest down, ends the response and logs it. Apart from the guest threads, and below
    /// them in priority, so that when many clients leave at once every guest is stopped
    /// before any is cleaned up after (BENCHMARKS.md, "A mass abort still waited behind
    /// teardowns").
    pub reaper: tokio::runtime::Handle,
}

/// A request started on the front end's thread ([`Dispatcher::start`]): ready once the request
/// ended there or moved to the guest threads. A front end that stops polling it first (its
/// connection goes on to the next request, or ends) [`Run::detach`]es it.
pub struct Run {
    /// The request, until it ends here or moves.
    future: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    /// Where a detached run is tracked, so that shutdown waits for it.
    tasks: TaskTracker,
}

impl Run {
    /// Lets the request go on as a task of its own on this thread's runtime.
    pub fn detach(self) {
        self.tasks.spawn(self.future);
    }
}

impl Future for Run {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        self.future.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run").finish_non_exhaustive()
    }
}

/// Where a request came from and when, for its access line.
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    /// The front end.
    pub protocol: Protocol,
    /// The connection's id: requests with the same one shared a connection.
    pub conn_id: u64,
    /// When the request head was complete.
    pub at: Instant,
}

/// Why the host answers a request itself, with what, and what the access line says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The status: 400, 404, 413, 431, 503...
    pub status: u16,
    /// A short plain-text body for the client.
    pub message: Cow<'static, str>,
    /// Why, for the access line.
    pub detail: Cow<'static, str>,
}

impl Refusal {
    /// A request its front end could not accept (malformed, oversized head, unsupported
    /// version...), answered with `status` and `error` as text.
    pub fn malformed(status: u16, error: impl std::fmt::Display) -> Self {
        let detail = error.to_string();
        Self { status, message: format!("{detail}\n").into(), detail: detail.into() }
    }

    /// No route serves the path.
    fn no_route() -> Self {
        Self { status: 404, message: "no route for this path\n".into(), detail: "no route".into() }
    }

    /// The declared body is larger than the route's `max_body_size`.
    fn too_large() -> Self {
        Self { status: 413, message: "request body too large\n".into(), detail: "body larger than max_body_size".into() }
    }

    /// Every instance stayed busy for `ADMISSION_WAIT`.
    fn overloaded() -> Self {
        Self { status: 503, message: OVERLOADED_MESSAGE.into(), detail: "max_instances reached".into() }
    }
}

/// An instance slot, held by an admitted request until its instance is torn down.
#[derive(Debug)]
struct InstanceSlot {
    /// Held for its drop, which frees the slot.
    _permit: OwnedSemaphorePermit,
    /// Held for its drop, which may leave the server idle.
    _busy: Busy,
}

/// A request that may run: its route, its instance slot, and the state its front end keeps up
/// to date from the socket while the guest runs.
#[derive(Debug)]
pub struct Admitted {
    /// Where and when it came from.
    arrival: Arrival,
    /// Its route.
    route: Arc<Route>,
    /// Its instance slot.
    slot: InstanceSlot,
    /// PHP's status bits and the kill switch, shared with the front end.
    state: Arc<RequestState>,
}

impl Admitted {
    /// The state the front end keeps up to date (a client leaving, `FCGI_ABORT_REQUEST`).
    pub fn state(&self) -> &Arc<RequestState> {
        &self.state
    }

    /// The route's `max_body_size`, for the body feed.
    pub fn max_body_size(&self) -> u64 {
        self.route.max_body_size
    }
}

/// An admitted request with everything its guest needs, ready to start.
pub struct Start {
    /// The admission.
    pub admitted: Admitted,
    /// The request line and headers.
    pub head: RequestHead,
    /// The request body.
    pub body: BodyReceiver,
    /// Where the response goes.
    pub sink: Box<dyn ResponseSink>,
}

impl Dispatcher {
    /// A dispatcher over `routes`. Requests will run on `executors`.
    pub fn new(manifest: &Manifest, cache: &CacheChoice, executors: Executors) -> anyhow::Result<Self> {
        let metrics = manifest.server.admin.is_some().then(|| Arc::new(Metrics::default()));
        let generations = Arc::new(Generations::load(manifest, cache)?);
        let idle_trim = Arc::new(IdleTrim::default());
        let releaser = generations.clone();
        executors.reaper.spawn(idle_trim.clone().run(move || releaser.release_pool()));
        Ok(Self {
            generations,
            idle_trim,
            next_id: AtomicU64::new(1),
            next_conn: AtomicU64::new(1),
            tasks: TaskTracker::new(),
            live: LiveRequests::default(),
            overload: Overload::default(),
            executors,
            metrics,
        })
    }

    /// The `[server]` settings in force, for a short look (not held across waits).
    pub fn settings(&self) -> SettingsView {
        self.generations.settings()
    }

    /// The generation in force.
    pub fn generation(&self) -> Arc<Generation> {
        self.generations.current()
    }

    /// What the admin listener reports, if it is on.
    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.as_ref()
    }

    /// The requests not finished yet, by id.
    pub fn live_requests(&self) -> Vec<(u64, LiveRequest)> {
        self.live.snapshot()
    }

    /// Builds the next generation from `manifest` and puts it in force: new requests use it,
    /// requests under way finish on theirs. On an error the generation in force stays.
    pub fn reload(&self, manifest: &Manifest) -> anyhow::Result<Arc<Generation>> {
        self.generations.reload(manifest)
    }

    /// A new connection id, for telling in the log which requests shared a connection.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Admits a request for `path` whose body declares `declared_body` bytes (`None`: unknown
    /// yet, as for a chunked body): finds its route, holds the declared length to the route's
    /// `max_body_size`, and takes an instance slot, waiting up to `ADMISSION_WAIT` for one.
    pub async fn admit(&self, arrival: Arrival, path: &str, declared_body: Option<u64>) -> Result<Admitted, Refusal> {
        let generation = self.generations.in_force();
        let route = generation.route(path).ok_or_else(Refusal::no_route)?.clone();
        if declared_body.is_some_and(|length| length > route.max_body_size) {
            return Err(Refusal::too_large());
        }
        let instances = generation.instances();
        let permit = match instances.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => match tokio::time::timeout(ADMISSION_WAIT, instances.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => {
                    if let Some(metrics) = &self.metrics {
                        metrics.max_instances_reached();
                    }
                    self.overload.refused(&"every guest instance is busy");
                    return Err(Refusal::overloaded());
                }
            },
        };
        let state = route.request_state();
        Ok(Admitted { arrival, route, slot: InstanceSlot { _permit: permit, _busy: self.idle_trim.busy() }, state })
    }

    /// Logs a request the front end answered with `refusal`, after `bytes` went out.
    pub fn log_refused(&self, arrival: &Arrival, head: Option<&RequestHead>, refusal: &Refusal, bytes: u64) {
        let record = AccessRecord {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            conn: arrival.conn_id,
            protocol: arrival.protocol,
            route: "",
            method: head.map_or("", |h| h.method.as_str()),
            target: head.map_or("", |h| h.target.as_str()),
            status: refusal.status,
            outcome: Outcome::Rejected,
            bytes,
            duration: arrival.at.elapsed(),
            abort_latency: None,
            stopped_mono_ns: None,
            detail: Some(&refusal.detail),
            guest_thread: None,
            started_on: None,
        };
        count_and_log(self.metrics.as_deref(), None, &record);
    }

    /// Starts the request. On the guest threads (as `guests_start_on` and what its route has
    /// shown say, see [`crate::sched::Placement`]) it runs as a task of its own and this returns
    /// `None`. On the calling thread (the front end's I/O thread) it returns the request's
    /// [`Run`], which the front end polls alongside its socket: a short request then runs to
    /// its end inside the connection's task, with no task of its own. The run moves to the
    /// guest threads if its guest computes there (see [`crate::sched`]).
    #[must_use = "a run started on this thread makes progress only while polled"]
    pub fn start(self: &Arc<Self>, start: Start) -> Option<Run> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let on_io_thread = match self.settings().guests_start_on {
            GuestStart::GuestThreads => false,
            GuestStart::IoThreads => true,
            GuestStart::Auto => start.admitted.route.placement.starts_on_io_thread(),
        };
        let state = start.admitted.state.clone();
        let this = self.clone();
        let task = async move { this.run(id, start).await };
        if !on_io_thread {
            self.tasks.spawn_on(task, &self.executors.guests);
            return None;
        }
        let tasks = self.tasks.clone();
        let guests = self.executors.guests.clone();
        Some(Run {
            future: Box::pin(async move {
                // Boxed, so that the task can move to another runtime once it was polled.
                if let IoRun::Left { rest } = crate::sched::until_leaving(Box::pin(task)).await {
                    state.mark_computed();
                    tasks.spawn_on(rest, &guests);
                }
            }),
            tasks: self.tasks.clone(),
        })
    }

    /// Stops every request still running, when the shutdown's grace ran out: each ends as a
    /// timeout, with a 503 if its head was not sent yet, and its access line.
    pub fn stop_running(&self) {
        self.live.stop_all(KillReason::ShutdownGrace);
    }

    /// Waits for every request task (after the listeners stopped).
    pub async fn drain(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// The request's task: runs the guest against the kill switch and the wall-clock limit,
    /// then finishes the request (here, or on the reaper).
    async fn run(self: Arc<Self>, id: u64, start: Start) {
        let started_on = std::thread::current();
        let Start { admitted: Admitted { arrival, route, slot, state }, head, body, sink } = start;
        let method = head.method.clone();
        let target = head.target.clone();
        let stderr = sink.stderr();
        let output = Arc::new(tokio::sync::Mutex::new(Output::new(sink, state.clone(), route.output_buffer)));
        let invocation = Invocation { id, arrived: arrival.at, head, body, output: output.clone(), state: state.clone(), stderr };
        let live = LiveRequest {
            route: route.path.clone(),
            method: method.clone(),
            target: target.clone(),
            since: arrival.at,
            state: state.clone(),
        };
        let live_shard = self.live.insert(id, live);
        let deadline = async {
            match route.request_timeout {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        // Past the route's `slowlog_timeout`, the request is counted slow and its guest asked
        // for its stack; the timer then waits for ever, as the guest decides when it ends.
        let slow = async {
            if let Some(limit) = route.slowlog_timeout {
                tokio::time::sleep_until((arrival.at + limit).into()).await;
                if let Some(metrics) = &self.metrics {
                    metrics.slow_request(&route.path);
                }
                state.want_stack();
            }
            std::future::pending::<()>().await;
        };
        // The future owns its (cheap, shared) guest handle, so that it can be torn down elsewhere.
        let component = route.guest.clone();
        let mut guest = Box::pin(async move { component.handle(invocation).await });
        // Polled only through the gate, so that a kill that finds it parked stops it at once.
        let gated = std::future::poll_fn(|cx| {
            if !state.enter_guest() {
                return Poll::Pending;
            }
            let polled = guest.as_mut().poll(cx);
            if polled.is_pending() {
                state.leave_guest();
            }
            polled
        });
        let (result, spent) = tokio::select! {
            biased;
            () = state.killed() => (Err(GuestFailure::Killed), None),
            () = deadline => {
                state.time_out(KillReason::RequestTimeout);
                (Err(GuestFailure::Killed), None)
            }
            finished = gated => finished,
            () = slow => unreachable!("the slow-log timer never ends"),
        };
        // From here the guest never runs again: its future is not polled any more. If the kill
        // found it parked, it stopped then.
        route.placement.learn(state.computed(), state.kill_reason().is_some());
        let (stopped, stopped_mono_ns) = state.stopped_at().unwrap_or_else(|| (Instant::now(), monotonic_ns()));
        let ending = Ending {
            id,
            arrival,
            route,
            method,
            target,
            state,
            output,
            result,
            stopped,
            stopped_mono_ns,
            guest_thread: std::thread::current(),
            started_on,
            spent,
            live_shard,
            dispatcher: self,
            _slot: slot,
        };
        // A guest stopped inside a host call is torn down with its future, which must go before
        // the output is touched (the call may hold it), on the reaper.
        let reaper = ending.stopped_in_host_call().then(|| ending.dispatcher.clone());
        let finish = async move {
            drop(guest);
            ending.finish().await;
        };
        match reaper {
            Some(dispatcher) => drop(dispatcher.tasks.spawn_on(finish, &dispatcher.executors.reaper)),
            None => finish.await,
        }
    }
}

/// Counts a request when the admin listener is on, then writes its access line (in that
/// order: whoever reads the line finds the request counted); `route` is its route's prefix
/// (none for a request refused before routing).
fn count_and_log(metrics: Option<&Metrics>, route: Option<&Arc<str>>, record: &AccessRecord<'_>) {
    if let Some(metrics) = metrics {
        metrics.request_ended(route, record);
    }
    record.log();
}
