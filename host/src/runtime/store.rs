//! One request's store, whatever the guest's world: the state it holds (the request, its
//! output, its state, WASI with only what the route grants, the memory limiter and the
//! execution-time budget) and its set-up, which every world shares: the memory limiter, the
//! call hooks that count time in Wasm, the epoch callback that stops a killed guest and keeps a
//! computing one from holding its thread, and the interrupt hook that makes a running guest
//! look at its kill switch now.

use super::engine::TetherEngine;
use super::limits::{CpuBudget, MemoryLimiter};
use super::stdio::{GuestLog, Stdio};
use super::worlds::wasi_http::ProxyState;
use super::{GuestSettings, Invocation};
use crate::request::{BodyReceiver, InterruptHook, KillReason, MustTrap, Output, RequestHead, RequestState, SlowRecord, StderrSink};
use anyhow::Context as _;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Everything one request's store holds.
pub struct HostState {
    /// WASI, with only what the route grants.
    wasi: Wasi,
    /// WASI's resources (and wasi:http's).
    pub(super) table: ResourceTable,
    /// Caps linear memory.
    pub limiter: MemoryLimiter,
    /// `max_execution_time` accounting.
    pub budget: CpuBudget,
    /// The request line and headers.
    pub head: RequestHead,
    /// The request body.
    pub body: BodyReceiver,
    /// The response.
    pub output: Arc<tokio::sync::Mutex<Output>>,
    /// PHP's status bits and the kill switch.
    pub state: Arc<RequestState>,
    /// A wasi:http proxy request's own state; `None` in other worlds.
    pub http: Option<Box<ProxyState>>,
    /// Request id, route and arrival, for the slow log.
    id: u64,
    route: Arc<str>,
    arrived: Instant,
    /// When the guest last called into the host: the slow log tells a guest that waited in a
    /// host call from one that called it after its time was up.
    host_called: Instant,
    /// Whether the guest's last exit to the host was the epoch callback making it yield (a
    /// computing guest), rather than a host call it waits in.
    yielded: bool,
}

/// A request's WASI context, built when the guest first calls into WASI. Most requests never do
/// (a guest written with the SDK answers through the Tether interfaces alone), and building one
/// costs about half a microsecond. A route that grants directories builds it before the guest
/// runs, because opening them can fail and that must fail the request.
enum Wasi {
    /// Not built yet: what building it needs.
    Deferred {
        /// Request id, for the guest's log lines.
        id: u64,
        /// The route's settings (environment, directories, name).
        settings: Arc<GuestSettings>,
        /// Where the guest's stderr lines go besides the log, if anywhere.
        stderr: Option<StderrSink>,
    },
    /// Built (boxed: a context is large, and most requests never build one).
    Built(Box<WasiCtx>),
}

impl Wasi {
    /// The context for request `id` under `settings`: built now if the route grants directories.
    fn new(id: u64, settings: &Arc<GuestSettings>, stderr: Option<StderrSink>) -> anyhow::Result<Self> {
        if settings.preopens.is_empty() {
            Ok(Self::Deferred { id, settings: settings.clone(), stderr })
        } else {
            Ok(Self::Built(Self::build(id, settings, stderr)?))
        }
    }

    /// Builds the context: stdout and stderr to the log, the route's environment and directories.
    /// A guest's file-system calls run on its own thread, as PHP's do in a php-fpm worker:
    /// handing each to tokio's blocking pool and back took more CPU than the call (a `stat` or
    /// a read from the page cache), in futex wake-ups on both sides.
    fn build(id: u64, settings: &GuestSettings, stderr: Option<StderrSink>) -> anyhow::Result<Box<WasiCtx>> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_blocking_current_thread(true);
        wasi.stdout(GuestLog::new(id, settings.route.clone(), Stdio::Stdout, None));
        wasi.stderr(GuestLog::new(id, settings.route.clone(), Stdio::Stderr, stderr));
        wasi.envs(&settings.env);
        for preopen in &settings.preopens {
            let perms = if preopen.writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
            wasi.preopened_dir(&preopen.host, &preopen.guest, perms)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("opening the granted directory {}", preopen.host.display()))?;
        }
        Ok(Box::new(wasi.build()))
    }

    /// The context, built if it was deferred.
    fn get(&mut self) -> &mut WasiCtx {
        if let Self::Deferred { id, settings, stderr } = self {
            let built = Self::build(*id, settings, stderr.take()).expect("a route without directories builds its WASI context infallibly");
            *self = Self::Built(built);
        }
        match self {
            Self::Built(ctx) => ctx,
            Self::Deferred { .. } => unreachable!("built above"),
        }
    }
}

impl HostState {
    /// The state for `invocation` under `settings`.
    pub fn new(invocation: Invocation, settings: &Arc<GuestSettings>) -> anyhow::Result<Self> {
        Ok(Self {
            wasi: Wasi::new(invocation.id, settings, invocation.stderr)?,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(settings.max_memory),
            budget: CpuBudget::new(settings.max_execution_time),
            head: invocation.head,
            body: invocation.body,
            output: invocation.output,
            state: invocation.state,
            http: None,
            id: invocation.id,
            route: settings.route.clone(),
            arrived: invocation.arrived,
            host_called: invocation.arrived,
            yielded: false,
        })
    }

    /// Traps if the request was killed while the guest was on its way into a host call.
    pub fn alive(&self) -> wasmtime::Result<()> {
        match self.state.kill_reason() {
            Some(_) => Err(trap(MustTrap)),
            None => Ok(()),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: self.wasi.get(), table: &mut self.table }
    }
}

/// How many epoch ticks a computing guest runs between the turns it gives its executor (1 ms
/// with the 100 µs tick): the other tasks on its worker wait at most this long for it.
const TICKS_PER_EXECUTOR_TURN: u32 = 10;

/// The trap that stops a guest inside a host call.
pub fn trap(error: MustTrap) -> wasmtime::Error {
    wasmtime::Error::new(error)
}

/// A store for one request, set up as every world's guest runs: its memory capped, its time in
/// Wasm counted, and an epoch callback that traps it once it was killed or its budget ran out,
/// moves it off an I/O thread, and makes it yield while it computes.
pub fn new_store(engine: &TetherEngine, state: HostState) -> Store<HostState> {
    let mut store = Store::new(&engine.engine, state);
    store.limiter(|state| &mut state.limiter);
    store.call_hook(|mut cx, hook| {
        let now = Instant::now();
        let data = cx.data_mut();
        if hook.entering_host() {
            data.budget.leave(now);
            data.host_called = now;
        } else {
            data.budget.enter(now);
            // Back from a host call, where the slow log may have found it waiting (its stack is
            // the one it waited with), or from a yield, which a computing guest makes.
            let yielded = std::mem::take(&mut data.yielded);
            if let Some(wanted) = data.state.take_stack_wish() {
                let doing = if !yielded && data.host_called <= wanted { "in a host call" } else { "running" };
                log_slow(&cx, doing);
            }
        }
        Ok(())
    });
    store.set_epoch_deadline(1);
    let mut ticks = engine.guest_ticks();
    let mut computing_ticks: u32 = 0;
    store.epoch_deadline_callback(move |mut cx| {
        if cx.data().state.take_stack_wish().is_some() {
            log_slow(&cx, "running");
        }
        let state = cx.data_mut();
        if state.state.kill_reason().is_some() {
            return Ok(UpdateDeadline::Interrupt);
        }
        if state.budget.exhausted(Instant::now()) {
            state.state.time_out(KillReason::ExecutionTime);
            return Ok(UpdateDeadline::Interrupt);
        }
        // Whether it ran Wasm at the previous tick too (counted wherever it runs).
        let computing = ticks.computing_at_tick();
        // On an I/O thread a guest runs only until a tick finds it in Wasm after its task held
        // the thread for `IO_THREAD_HOLD`: it yields to its executor there, and its task moves
        // to the guest threads. A short request caught earlier finishes where it is.
        if crate::sched::on_io_thread() {
            if !crate::sched::held_io_thread_long() {
                return Ok(UpdateDeadline::Continue(1));
            }
            crate::sched::leave_io_thread();
            state.yielded = true;
            return Ok(UpdateDeadline::Yield(1));
        }
        // A guest that computes gives up the CPU for a moment at each tick: the kernel only
        // preempts it at its own (4 ms) tick otherwise, delaying the I/O thread (or nginx)
        // that would see its client leave. Every few ticks it also gives the executor a turn,
        // so it cannot starve the other tasks on its worker (including its own request
        // timeout); at every tick, a guest that needs a millisecond (an interpreter's hello)
        // would take turns with all the other requests queued on its worker, each resuming
        // with cold caches. A guest merely caught by a tick carries on: yielding it too costs
        // hello 2K kernel instructions and 0.2 context switches per request.
        if computing {
            state.state.mark_computed();
            crate::sched::yield_cpu();
            // The yield is what lets the I/O thread see a close, and a kill then bumps the
            // epoch while this callback runs: the deadline set below would swallow that bump,
            // and the guest would run on to the next tick.
            if state.state.kill_reason().is_some() {
                return Ok(UpdateDeadline::Interrupt);
            }
            computing_ticks = computing_ticks.wrapping_add(1);
            if computing_ticks.is_multiple_of(TICKS_PER_EXECUTOR_TURN) {
                state.yielded = true;
                return Ok(UpdateDeadline::Yield(1));
            }
        }
        Ok(UpdateDeadline::Continue(1))
    });
    store
}

/// Logs the slow-log record of the store's request, with its guest's Wasm stack now.
fn log_slow(cx: &impl wasmtime::AsContext<Data = HostState>, state: &'static str) {
    let stack = wasmtime::WasmBacktrace::force_capture(cx)
        .frames()
        .iter()
        .map(|frame| frame.func_name().map_or_else(|| format!("<function {}>", frame.func_index()), str::to_owned))
        .collect();
    let data = cx.as_context().data();
    SlowRecord { id: data.id, route: &data.route, age: data.arrived.elapsed(), state, stack: Some(stack) }.log();
}

/// The hook that makes the running guests of `engine` look at their kill switches now: it
/// bumps the engine's epoch, so each reaches its epoch callback within nanoseconds.
pub fn interrupt_hook(engine: &Engine) -> InterruptHook {
    let engine = engine.clone();
    Arc::new(move || engine.increment_epoch())
}
