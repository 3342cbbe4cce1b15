//! The `wasmtime::Engine`: its configuration (pooling allocator when the machine allows,
//! epoch interruption, async support), its epoch ticker thread, and what its instance pool
//! holds. There is one at a time; an idle server may replace it to give its pool back.

use anyhow::Context as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the engine's epoch advances while guests run. A guest running Wasm checks its
/// request state and time budget once per tick, and one that computes (runs Wasm at two ticks
/// in a row) yields the CPU and the scheduler; it is also the resolution of
/// `max_execution_time`. Aborts do not wait for a tick (they bump the epoch themselves), but a
/// thread that must run to *see* an abort (Tether's I/O thread, or nginx's worker) can wait up
/// to a tick behind a computing guest (measured through nginx: abort p99 1 ms with a 1 ms tick,
/// 0.44 ms with this one).
pub const EPOCH_TICK: Duration = Duration::from_micros(100);

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

/// Shared with the ticker thread, which only ticks while guests run and sleeps otherwise.
#[derive(Debug, Default)]
struct TickerState {
    /// Tells the ticker to stop.
    stop: AtomicBool,
    /// Guests running now.
    running: AtomicUsize,
    /// Ticks so far.
    ticks: AtomicU64,
}

/// Lets guests tell the epoch ticker that they run.
#[derive(Debug)]
struct Ticker {
    /// The ticker's state.
    state: Arc<TickerState>,
    /// The ticker thread, to wake when the first guest starts.
    thread: std::thread::Thread,
}

impl Ticker {
    /// Marks a guest as running until the returned guard is dropped; the ticker ticks while
    /// any guest runs.
    fn running(&self) -> RunningGuest {
        if self.state.running.fetch_add(1, Ordering::AcqRel) == 0 {
            self.thread.unpark();
        }
        RunningGuest { state: self.state.clone(), last_tick: u64::MAX }
    }
}

/// Counts a running guest for the epoch ticker while alive.
#[derive(Debug)]
pub struct RunningGuest {
    /// The ticker's state.
    state: Arc<TickerState>,
    /// The tick at which this guest last ran Wasm.
    last_tick: u64,
}

impl RunningGuest {
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

impl Drop for RunningGuest {
    fn drop(&mut self) {
        self.state.running.fetch_sub(1, Ordering::AcqRel);
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
                .spawn(move || {
                    // Same priority, short slice: a tick must preempt an I/O thread that runs
                    // a computing guest (nice 0, default slice; a guest starting on an I/O thread)
                    // to move it off that thread; waiting out the I/O thread's slice cost
                    // milliseconds of abort latency.
                    crate::sched::demote_current_thread(0);
                    while !state.stop.load(Ordering::Acquire) {
                        if state.running.load(Ordering::Acquire) == 0 {
                            // Idle: a starting guest unparks this thread.
                            std::thread::park();
                            continue;
                        }
                        std::thread::sleep(EPOCH_TICK);
                        state.ticks.fetch_add(1, Ordering::Relaxed);
                        engine.increment_epoch();
                    }
                })
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

    /// Marks a guest as running until the returned guard is dropped; the ticker ticks while
    /// any guest runs.
    pub fn running(&self) -> RunningGuest {
        self.ticker.running()
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
        let ticker = Ticker { state: state.clone(), thread: std::thread::current() };
        let mut guest = ticker.running();
        let at = |tick: u64, guest: &mut RunningGuest| {
            state.ticks.store(tick, Ordering::Relaxed);
            guest.computing_at_tick()
        };
        assert!(!at(5, &mut guest), "one tick in Wasm is not computing");
        assert!(at(6, &mut guest), "the next tick too: computing");
        assert!(!at(6, &mut guest), "an abort's extra epoch bump is not a tick");
        assert!(!at(9, &mut guest), "ticks apart (a guest that slept in between)");
        assert!(!at(10, &mut ticker.running()), "another guest's first tick");
        assert_eq!(state.running.load(Ordering::Relaxed), 1, "the other guest's guard is gone");
        drop(guest);
        assert_eq!(state.running.load(Ordering::Relaxed), 0);
    }
}
