//! The `wasmtime::Engine`: its configuration (pooling allocator when the machine allows,
//! epoch interruption, async support), its epoch ticker thread, and what its instance pool
//! holds. There is one at a time; an idle server may replace it to give its pool back.

use anyhow::Context as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the engine's epoch advances while a guest runs on a guest thread. A guest running
/// Wasm checks its request state and time budget once per tick, and one that computes (runs
/// Wasm at two ticks in a row) yields the CPU and the scheduler; it is also the resolution of
/// `max_execution_time`. Aborts do not wait for a tick (they bump the epoch themselves), but a
/// thread that must run to *see* an abort (Tether's I/O thread, or nginx's worker) can wait up
/// to a tick behind a computing guest (measured through nginx: abort p99 1 ms with a 1 ms tick,
/// 0.44 ms with this one).
pub const EPOCH_TICK: Duration = Duration::from_micros(100);

/// How often the epoch advances while guests run on I/O threads only. Those are the requests of
/// routes that run short (a route whose requests compute starts them on the guest threads), and
/// a tick only interrupts them; what a tick does there is move a guest that turns out to compute
/// to a guest thread, so this is how long an I/O thread runs one guest's Wasm at most. Each tick
/// wakes the ticker thread, which costs 15-20 µs of CPU on a virtual machine (a timer interrupt
/// and two context switches): at [`EPOCH_TICK`] that was a sixth of a hello request's CPU under
/// load (BENCHMARKS.md, "The epoch ticker keeps pace with where guests run").
pub const IO_EPOCH_TICK: Duration = Duration::from_micros(500);

/// Core Wasm instances one component may create. A Rust guest built for wasm32-wasip2 has a
/// handful (its module plus the adapter shims); this leaves room for larger toolchains.
const CORE_INSTANCES_PER_COMPONENT: u32 = 20;
/// Linear memories one component may have.
const MEMORIES_PER_COMPONENT: u32 = 4;
/// Tables one component may have.
const TABLES_PER_COMPONENT: u32 = 10;
/// Elements per table; Rust guests need a few hundred.
const TABLE_ELEMENTS: usize = 20_000;
/// Size of a component instance's runtime metadata (vmctx) in the pool.
const MAX_COMPONENT_INSTANCE_SIZE: usize = 1 << 20;
/// Size of a core instance's runtime metadata (vmctx) in the pool.
const MAX_CORE_INSTANCE_SIZE: usize = 1 << 20;
/// Guard pages after each linear memory, so that out-of-bounds accesses fault instead of
/// needing explicit bounds checks up to this size.
const MEMORY_GUARD: u64 = 32 << 20;
/// Stack for each running guest's fiber.
const ASYNC_STACK: usize = 1 << 20;
/// Wasm stack a guest may use, inside [`ASYNC_STACK`] (the rest is for host calls).
const MAX_WASM_STACK: usize = 512 << 10;

/// Memory mappings each guest in flight can add to the process: its linear memory's image, two
/// anonymous ranges and the reserved rest, its fiber stack and the stack's guard page. Six
/// each in `/proc/<pid>/maps` with 10,000 in flight; one more for margin, as a run failed there.
const MAPPINGS_PER_INSTANCE: u64 = 7;
/// Memory mappings the rest of the server uses (binary, libraries, thread stacks, heap arenas:
/// about 1,000 measured), with room to spare.
const MAPPINGS_BASE: u64 = 2_000;
/// Where Linux says how many memory mappings a process may have (65,530 by default). Past it,
/// `mmap` and `mprotect` fail with ENOMEM: new instances cannot be created (503), and wasmtime
/// aborts the process if a thread it has not seen before cannot set up its signal stack.
const MAX_MAP_COUNT: &str = "/proc/sys/vm/max_map_count";

/// Memory mappings the process may need with `max_instances` guests in flight.
fn mappings_needed(max_instances: u32) -> u64 {
    u64::from(max_instances) * MAPPINGS_PER_INSTANCE + MAPPINGS_BASE
}

/// How many guests can be in flight before the process runs out of memory mappings, if fewer
/// than `max_instances`.
fn mapping_shortfall(max_instances: u32, max_map_count: u64) -> Option<u64> {
    (mappings_needed(max_instances) > max_map_count).then(|| max_map_count.saturating_sub(MAPPINGS_BASE) / MAPPINGS_PER_INSTANCE)
}

/// Warns, once per process (the idle server builds engines again), when `max_instances`
/// guests in flight would exceed the kernel's limit on memory mappings, naming the setting
/// that fixes it.
fn check_mapping_limit(max_instances: u32) {
    static CHECKED: std::sync::Once = std::sync::Once::new();
    CHECKED.call_once(|| warn_of_mapping_limit(max_instances));
}

fn warn_of_mapping_limit(max_instances: u32) {
    let Some(max_map_count) = std::fs::read_to_string(MAX_MAP_COUNT).ok().and_then(|text| text.trim().parse().ok()) else {
        return;
    };
    if let Some(fits) = mapping_shortfall(max_instances, max_map_count) {
        tracing::warn!(
            max_instances,
            max_map_count,
            fits,
            "about {fits} guests in flight use up the memory mappings the kernel allows a process \
             (vm.max_map_count); requests beyond that get 503 and the process may abort: raise it \
             (sysctl -w vm.max_map_count={}) or lower max_instances",
            mappings_needed(max_instances).next_power_of_two()
        );
    }
}

/// What the engine must accommodate.
#[derive(Clone, Debug)]
pub struct EngineLimits {
    /// Guest instances alive at once (the pool's size when pooling).
    pub max_instances: u32,
    /// The largest linear memory any route allows, in bytes.
    pub max_memory: u64,
    /// Whether to try the pooling allocator at all.
    pub pooling: bool,
    /// Bytes of each pool slot's linear memory, table and fiber stack kept resident when the
    /// slot is freed: dirty pages are then reset in place (found with Linux's PAGEMAP_SCAN)
    /// instead of unmapped, saving an `madvise` and the next request's page faults; but a slot
    /// keeps that memory after a burst. 0 returns everything to the OS.
    pub keep_resident: usize,
}

/// The engine plus its ticker; dropping it stops the ticker. Every guest loaded into it holds
/// it (in an `Arc`), so that the ticker runs as long as any of them can.
pub struct TetherEngine {
    /// The engine all components are compiled for.
    pub engine: Engine,
    /// Whether the pooling allocator is in use (for logs and benchmarks).
    pub pooling: bool,
    /// How guests tell the ticker thread that they run.
    ticker: Ticker,
    /// The thread that advances the epoch, joined on drop.
    join: Option<JoinHandle<()>>,
}

/// How fast the ticker ticks: as fast as the guests polled since its last look need. Ordered
/// from the slowest, so that a greater pace is a faster one and the ticker starts parked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Pace {
    /// No guest ran for a whole period (those in flight wait in host calls, where no tick
    /// reaches them): parked until one is polled.
    Parked,
    /// Guests run on I/O threads only: a tick every [`IO_EPOCH_TICK`].
    Slow,
    /// A guest runs on a guest thread: a tick every [`EPOCH_TICK`].
    Fast,
}

impl Pace {
    /// The time between ticks at this pace; `None` when parked.
    fn period(self) -> Option<Duration> {
        match self {
            Pace::Fast => Some(EPOCH_TICK),
            Pace::Slow => Some(IO_EPOCH_TICK),
            Pace::Parked => None,
        }
    }
}

/// Polls of guests on one kind of thread, counted as they start and end: the difference is how
/// many are polled now, and a change in `started` shows that one was polled since a look.
#[derive(Debug, Default)]
struct PollCount {
    /// Polls started so far.
    started: AtomicUsize,
    /// Polls ended so far.
    ended: AtomicUsize,
}

impl PollCount {
    /// Whether a guest is polled now or was since `seen`, the polls started at the last look;
    /// updates `seen`.
    fn busy_since(&self, seen: &mut usize) -> bool {
        let ended = self.ended.load(Ordering::SeqCst);
        let started = self.started.load(Ordering::SeqCst);
        let busy = started != ended || started != *seen;
        *seen = started;
        busy
    }

    /// Whether a poll started since `seen` polls had.
    fn started_since(&self, seen: usize) -> bool {
        self.started.load(Ordering::SeqCst) != seen
    }
}

/// Shared with the ticker thread.
#[derive(Debug, Default)]
struct TickerState {
    /// Tells the ticker to stop.
    stop: AtomicBool,
    /// Polls of guests on I/O threads.
    on_io: PollCount,
    /// Polls of guests on guest threads.
    on_guest: PollCount,
    /// The pace the ticker keeps (a [`Pace`]), so that a guest that needs a faster one wakes it.
    pace: AtomicU8,
    /// Ticks so far.
    ticks: AtomicU64,
}

/// The polls of each kind the ticker saw started at its last look.
#[derive(Debug, Default)]
struct Seen {
    /// On I/O threads.
    on_io: usize,
    /// On guest threads.
    on_guest: usize,
}

impl TickerState {
    /// The pace the guests polled since the last look (`seen`, which this updates) need.
    fn wanted(&self, seen: &mut Seen) -> Pace {
        // Both looks happen, so that `seen` is up to date for each kind.
        let on_guest = self.on_guest.busy_since(&mut seen.on_guest);
        let on_io = self.on_io.busy_since(&mut seen.on_io);
        if on_guest {
            Pace::Fast
        } else if on_io {
            Pace::Slow
        } else {
            Pace::Parked
        }
    }

    /// Publishes the pace the guests polled since the last look need, and returns it. A guest
    /// whose poll starts meanwhile either is seen by the look after the publication or finds
    /// the published pace and wakes the ticker if it needs a faster one (both sides use
    /// sequentially consistent operations).
    fn settle(&self, seen: &mut Seen) -> Pace {
        loop {
            let pace = self.wanted(seen);
            self.pace.store(pace as u8, Ordering::SeqCst);
            if !self.on_guest.started_since(seen.on_guest) && !self.on_io.started_since(seen.on_io) {
                return pace;
            }
        }
    }

    /// The ticker thread: ticks at the pace the polled guests need, parks while none is.
    fn run(&self, engine: &Engine) {
        // Same priority, short slice: a tick must preempt an I/O thread that runs a computing
        // guest (nice 0, default slice; a guest starting on an I/O thread) to move it off that
        // thread; waiting out the I/O thread's slice cost milliseconds of abort latency.
        crate::sched::demote_current_thread(0);
        let mut seen = Seen::default();
        let mut last_tick = Instant::now();
        while !self.stop.load(Ordering::Acquire) {
            let Some(period) = self.settle(&mut seen).period() else {
                std::thread::park();
                // A guest's first tick comes a period after it starts, not after the last tick
                // before the ticker parked.
                last_tick = Instant::now();
                continue;
            };
            let now = Instant::now();
            let due = last_tick + period;
            if now < due {
                // Woken early when a guest needs a faster pace.
                std::thread::park_timeout(due - now);
                continue;
            }
            last_tick = now;
            self.ticks.fetch_add(1, Ordering::Relaxed);
            engine.increment_epoch();
        }
    }
}

/// Lets guests tell the epoch ticker that they run.
#[derive(Debug)]
struct Ticker {
    /// The ticker's state.
    state: Arc<TickerState>,
    /// The ticker thread, to wake when a guest needs a faster pace than it keeps.
    thread: std::thread::Thread,
}

impl Ticker {
    /// Counts a guest's poll, on an I/O thread or on a guest thread, until the returned guard
    /// is dropped, and wakes the ticker if it keeps a slower pace than that needs.
    fn polled(&self, on_io_thread: bool) -> Polled<'_> {
        let (count, needs) = if on_io_thread { (&self.state.on_io, Pace::Slow) } else { (&self.state.on_guest, Pace::Fast) };
        count.started.fetch_add(1, Ordering::SeqCst);
        if self.state.pace.load(Ordering::SeqCst) < needs as u8 {
            self.thread.unpark();
        }
        Polled { count }
    }
}

/// Counts a guest's poll for the epoch ticker while alive.
struct Polled<'a> {
    /// The count it is in.
    count: &'a PollCount,
}

impl Drop for Polled<'_> {
    fn drop(&mut self) {
        self.count.ended.fetch_add(1, Ordering::SeqCst);
    }
}

/// What one guest's epoch callback knows of the ticks: whether it ran Wasm at the last one.
#[derive(Debug)]
pub struct GuestTicks {
    /// The ticker's state.
    state: Arc<TickerState>,
    /// The tick at which this guest last ran Wasm.
    last_tick: u64,
}

impl GuestTicks {
    /// Called from the guest's epoch callback, which runs when the epoch advanced while the guest
    /// was running Wasm. Whether the guest computes: it also ran Wasm at the previous tick. A
    /// guest that answers in microseconds (most requests) is caught by a tick now and then, never
    /// twice in a row.
    pub fn computing_at_tick(&mut self) -> bool {
        let tick = self.state.ticks.load(Ordering::Relaxed);
        let computing = tick == self.last_tick.wrapping_add(1);
        self.last_tick = tick;
        computing
    }
}

impl std::fmt::Debug for TetherEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TetherEngine").field("pooling", &self.pooling).finish()
    }
}

/// The environment variable that turns on wasmtime's perf map: with it set (to anything), the
/// engine writes `/tmp/perf-<pid>.map` as it loads guest code, so that `perf record` and `perf
/// report` name the guests' functions instead of showing anonymous addresses.
pub const PERFMAP_ENV: &str = "TETHER_PERFMAP";

fn base_config() -> Config {
    let mut config = Config::new();
    if std::env::var_os(PERFMAP_ENV).is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.async_stack_size(ASYNC_STACK);
    config.max_wasm_stack(MAX_WASM_STACK);
    config.parallel_compilation(true);
    config
}

impl TetherEngine {
    /// Builds the engine, with the pooling allocator if the machine can reserve its address
    /// space (falling back, with a log line, if not), and starts the epoch ticker.
    pub fn new(limits: &EngineLimits) -> anyhow::Result<Self> {
        check_mapping_limit(limits.max_instances);
        let (engine, pooling) = if limits.pooling {
            match Engine::new(&pooling_config(limits)) {
                Ok(engine) => (engine, true),
                Err(error) => {
                    tracing::warn!(
                        %error,
                        "the pooling allocator is unavailable on this machine; \
                         falling back to on-demand allocation"
                    );
                    (Engine::new(&base_config()).map_err(anyhow::Error::from).context("creating the wasm engine")?, false)
                }
            }
        } else {
            (Engine::new(&base_config()).map_err(anyhow::Error::from).context("creating the wasm engine")?, false)
        };
        let state = Arc::new(TickerState::default());
        let join = {
            let engine = engine.clone();
            let state = state.clone();
            std::thread::Builder::new()
                .name("tether-epoch".into())
                .spawn(move || state.run(&engine))
                .context("starting the epoch ticker")?
        };
        let ticker = Ticker { state, thread: join.thread().clone() };
        Ok(Self { engine, pooling, ticker, join: Some(join) })
    }

    /// Bytes the instance pool keeps resident in slots no instance uses: what the linear
    /// memories and tables of freed instances left behind under `keep_resident` (`None`
    /// without the pooling allocator). Fiber stacks are not counted (wasmtime tracks them
    /// only with stack zeroing); the slots a burst used hold theirs too.
    pub fn pool_unused_resident(&self) -> Option<u64> {
        let metrics = self.engine.pooling_allocator_metrics()?;
        let bytes = metrics.unused_memory_bytes_resident().saturating_add(metrics.unused_table_bytes_resident());
        Some(u64::try_from(bytes).unwrap_or(u64::MAX))
    }

    /// What a new guest's epoch callback needs to know of the ticks.
    pub fn guest_ticks(&self) -> GuestTicks {
        GuestTicks { state: self.ticker.state.clone(), last_tick: u64::MAX }
    }

    /// Runs `guest`, a guest's future, counting each of its polls for the ticker, which ticks
    /// as fast as the guests polled now need: every [`EPOCH_TICK`] while one is polled on a
    /// guest thread, every [`IO_EPOCH_TICK`] while guests are polled on I/O threads only, and
    /// not at all while none is (a guest waiting in a host call is not polled).
    pub async fn ticking<F: Future>(&self, guest: F) -> F::Output {
        let mut guest = std::pin::pin!(guest);
        std::future::poll_fn(|cx| {
            let _polled = self.ticker.polled(crate::sched::on_io_thread());
            guest.as_mut().poll(cx)
        })
        .await
    }
}

fn pooling_config(limits: &EngineLimits) -> Config {
    let instances = limits.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
        .total_memories(instances.saturating_mul(MEMORIES_PER_COMPONENT))
        .total_tables(instances.saturating_mul(TABLES_PER_COMPONENT))
        .total_stacks(instances)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .table_elements(TABLE_ELEMENTS)
        .max_component_instance_size(MAX_COMPONENT_INSTANCE_SIZE)
        .max_core_instance_size(MAX_CORE_INSTANCE_SIZE)
        .max_memory_size(usize::try_from(limits.max_memory).unwrap_or(usize::MAX))
        .linear_memory_keep_resident(limits.keep_resident)
        .table_keep_resident(limits.keep_resident)
        .async_stack_keep_resident(limits.keep_resident)
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut config = base_config();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // Without zeroing, freed fiber stacks are never decommitted: `keep_resident = 0` would
    // still leave every stack a burst touched resident.
    config.async_stack_zeroing(limits.keep_resident == 0);
    // Each slot reserves exactly the largest allowed memory plus a guard, so that thousands of
    // slots fit in the address space; accesses beyond are bounds-checked.
    config.memory_reservation(limits.max_memory);
    config.memory_guard_size(MEMORY_GUARD);
    config.memory_reservation_for_growth(0);
    config
}

impl Drop for TetherEngine {
    fn drop(&mut self) {
        self.ticker.state.stop.store(true, Ordering::Release);
        if let Some(ticker) = self.join.take() {
            ticker.thread().unpark();
            let _ = ticker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_instances_for_the_kernels_mapping_limit_are_told() {
        // Linux's default limit fits the default pool, not 10,000 guests in flight.
        assert_eq!(mapping_shortfall(1_000, 65_530), None);
        assert_eq!(mapping_shortfall(10_000, 65_530), Some(9_075));
        assert_eq!(mapping_shortfall(10_000, 262_144), None);
    }

    #[test]
    fn a_guest_computes_when_it_runs_wasm_at_two_ticks_in_a_row() {
        let state = Arc::new(TickerState::default());
        let guest_ticks = || GuestTicks { state: state.clone(), last_tick: u64::MAX };
        let mut guest = guest_ticks();
        let at = |tick: u64, guest: &mut GuestTicks| {
            state.ticks.store(tick, Ordering::Relaxed);
            guest.computing_at_tick()
        };
        assert!(!at(5, &mut guest), "one tick in Wasm is not computing");
        assert!(at(6, &mut guest), "the next tick too: computing");
        assert!(!at(6, &mut guest), "an abort's extra epoch bump is not a tick");
        assert!(!at(9, &mut guest), "ticks apart (a guest that slept in between)");
        assert!(!at(10, &mut guest_ticks()), "another guest's first tick");
    }

    #[test]
    fn the_ticker_keeps_the_pace_the_guests_polled_since_its_last_look_need() {
        let state = Arc::new(TickerState::default());
        let ticker = Ticker { state: state.clone(), thread: std::thread::current() };
        let mut seen = Seen::default();
        assert_eq!(state.settle(&mut seen), Pace::Parked, "no guest polled");
        let on_io = ticker.polled(true);
        assert_eq!(state.settle(&mut seen), Pace::Slow, "a guest on an I/O thread");
        let on_guest_thread = ticker.polled(false);
        let another_on_io = ticker.polled(true);
        assert_eq!(state.settle(&mut seen), Pace::Fast, "and one on a guest thread");
        assert_eq!(state.pace.load(Ordering::SeqCst), Pace::Fast as u8, "published for the next guest");
        drop(on_guest_thread);
        drop(on_io);
        assert_eq!(state.settle(&mut seen), Pace::Slow, "the guest thread's guest left");
        drop(another_on_io);
        assert_eq!(state.settle(&mut seen), Pace::Parked, "the last poll ended, and none started since");
        drop(ticker.polled(false));
        assert_eq!(state.settle(&mut seen), Pace::Fast, "a poll that began and ended between looks");
        assert_eq!(state.settle(&mut seen), Pace::Parked);
    }
}
