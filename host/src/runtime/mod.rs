//! The sandbox: compiles and caches components, links each guest world and WASI, and runs one
//! request in one fresh `Store` and instance.
//!
//! **The runtime knows nothing of HTTP or FastCGI.** It sees a [`RequestHead`], a body stream,
//! an [`Output`] and a [`RequestState`], all from [`crate::request`], and reports how the guest
//! ended. Everything wasmtime stays inside this module: the engine and its pool (`engine`),
//! the compile cache (`cache`), the store every world shares (`store`, with `limits` and
//! `stdio`), and the worlds themselves (`worlds`).

mod cache;
mod engine;
mod limits;
mod stdio;
mod store;
mod worlds;

pub use cache::CompileCache;
pub use engine::EngineLimits;
pub use worlds::World;
pub use worlds::wasi_http::outbound_key;

use crate::request::{BodyReceiver, InterruptHook, Output, RequestHead, RequestState, StderrSink};
use anyhow::Context as _;
use cache::Provenance;
use engine::TetherEngine;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::HostState;
use thiserror::Error;
use wasmtime::Store;
use wasmtime::component::Component;
use worlds::{Failed, Linkers, WorldPre};

/// A directory a route's guest may use, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preopen {
    /// The directory on the host.
    pub host: PathBuf,
    /// Its name inside the guest.
    pub guest: String,
    /// Whether the guest may create, change and delete files in it.
    pub writable: bool,
}

/// A route's sandbox settings: what its guest may use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestSettings {
    /// The route name, for logs.
    pub route: Arc<str>,
    /// Most bytes a linear memory may grow to (PHP's `memory_limit`).
    pub max_memory: u64,
    /// Guest CPU time allowed (PHP's `max_execution_time`); `None` is unlimited.
    pub max_execution_time: Option<Duration>,
    /// Environment variables the guest sees; nothing else of the host's environment.
    pub env: Vec<(String, String)>,
    /// Directories the guest may open; nothing else of the host's filesystem.
    pub preopens: Vec<Preopen>,
    /// The `host:port` authorities a wasi:http guest may send requests to ([`outbound_key`]);
    /// nothing else of the network.
    pub allowed_outbound_hosts: Vec<String>,
}

/// One request, handed to a guest.
pub struct Invocation {
    /// Request id, for the guest's log lines.
    pub id: u64,
    /// When the request head was complete, for the slow log's age.
    pub arrived: Instant,
    /// The request line and headers.
    pub head: RequestHead,
    /// The request body.
    pub body: BodyReceiver,
    /// Where the response goes; shared with the dispatcher, which ends the response when the
    /// guest is gone.
    pub output: Arc<tokio::sync::Mutex<Output>>,
    /// PHP's status bits and the kill switch.
    pub state: Arc<RequestState>,
    /// Where the guest's stderr lines go besides the log, if anywhere.
    pub stderr: Option<StderrSink>,
}

/// How a guest failed to handle its request.
#[derive(Debug, Error)]
pub enum GuestFailure {
    /// The guest trapped: a bug in the guest (a panic, an out-of-bounds access...).
    #[error("guest trapped: {0}")]
    Trap(String),
    /// The guest ran out of memory under its `max_memory`.
    #[error("guest exceeded its memory limit")]
    MemoryLimit,
    /// The host stopped the guest (an abort or a time limit; see the request state).
    #[error("guest was stopped by the host")]
    Killed,
    /// The instance could not be created.
    #[error("instantiation failed: {0}")]
    Instantiate(String),
    /// The instance could not be created for want of a resource that frees up as other
    /// requests end: the kernel refused memory or mappings (`vm.max_map_count`), or file
    /// descriptors. Not the guest's fault; the client may retry.
    #[error("out of resources for a new instance: {0}")]
    OutOfResources(String),
}

impl GuestFailure {
    /// Classifies an error from creating the store's state or the instance.
    fn instantiation(error: &anyhow::Error) -> Self {
        use rustix::io::Errno;
        /// OS errors that say a resource is used up for now, not that anything is wrong.
        const EXHAUSTED: [Errno; 3] = [Errno::NOMEM, Errno::MFILE, Errno::NFILE];
        let exhausted = error.chain().any(|cause| {
            let errno = cause
                .downcast_ref::<Errno>()
                .copied()
                .or_else(|| cause.downcast_ref::<std::io::Error>()?.raw_os_error().map(Errno::from_raw_os_error));
            errno.is_some_and(|errno| EXHAUSTED.contains(&errno)) || cause.is::<wasmtime::PoolConcurrencyLimitError>()
        });
        let text = format!("{error:#}");
        if exhausted { Self::OutOfResources(text) } else { Self::Instantiate(text) }
    }
}

/// A guest that is done. Dropping it frees its instance (memory reset, pool slot); the
/// dispatcher holds it until the response is over, which keeps teardown off the response's
/// path.
pub struct Spent {
    /// The store of the finished request.
    _store: Store<HostState>,
}

/// Why a component could not be loaded.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The file is not a valid component, or not for this engine.
    #[error("not a valid wasm component: {0}")]
    Invalid(String),
    /// The component fits no world Tether serves (a missing export or an unknown import).
    #[error("component does not match the {world} world: {message}")]
    World {
        /// The world its exports make it: `tether:guest/handler` or `wasi:http/proxy`.
        world: &'static str,
        /// What does not fit.
        message: String,
    },
}

/// The engine, the linkers and the compile cache.
pub struct Runtime {
    /// The engine and its epoch ticker; the guests loaded here hold it too.
    engine: Arc<TetherEngine>,
    /// Each world's imports, WASI included.
    linkers: Linkers,
    /// Where compiled components are kept, if anywhere.
    cache: Option<CompileCache>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("engine", &self.engine).field("cache", &self.cache).finish()
    }
}

impl Runtime {
    /// Builds the engine and linker.
    pub fn new(limits: &EngineLimits, cache: Option<CompileCache>) -> anyhow::Result<Self> {
        let engine = Arc::new(TetherEngine::new(limits)?);
        let linkers = Linkers::new(&engine.engine)?;
        Ok(Self { engine, linkers, cache })
    }

    /// Whether the pooling allocator is in use.
    pub fn pooling(&self) -> bool {
        self.engine.pooling
    }

    /// Bytes the linear memories and tables of the instance pool's unused slots keep resident
    /// (`None` without the pooling allocator); their fiber stacks are not counted.
    pub fn pool_unused_resident(&self) -> Option<u64> {
        self.engine.pool_unused_resident()
    }

    /// Compiles (or loads from the cache) a component and prepares it for instantiation.
    pub fn load(&self, wasm: &[u8], settings: GuestSettings) -> Result<Guest, LoadError> {
        let started = Instant::now();
        check_header(wasm)?;
        let (component, provenance, cache_entry) = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine.engine, wasm),
            None => Component::new(&self.engine.engine, wasm).map(|c| (c, Provenance::Compiled, None)).map_err(anyhow::Error::from),
        }
        .map_err(|error| LoadError::Invalid(format!("{error:#}")))?;
        let guest = self.prepare(&component, Arc::new(settings), cache_entry)?;
        tracing::debug!(
            route = &*guest.settings.route,
            ?provenance,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "component loaded"
        );
        Ok(guest)
    }

    /// The same guest as `guest` (loaded by another runtime with the same limits), loaded into
    /// this runtime from the compile cache: the very code `guest` runs, even if its file has
    /// changed since. Fails if `guest` did not come through the cache, or its entry is gone.
    pub fn reload(&self, guest: &Guest) -> anyhow::Result<Guest> {
        let entry = guest.cache_entry.as_ref().context("the component is not in the compile cache")?;
        let component = CompileCache::load(&self.engine.engine, entry).with_context(|| format!("loading {}", entry.display()))?;
        Ok(self.prepare(&component, guest.settings.clone(), Some(entry.clone()))?)
    }

    /// Links a compiled component and type-checks it against its world.
    fn prepare(&self, component: &Component, settings: Arc<GuestSettings>, cache_entry: Option<PathBuf>) -> Result<Guest, LoadError> {
        let pre = WorldPre::new(&self.linkers, &self.engine.engine, component)?;
        let interrupt = store::interrupt_hook(&self.engine.engine);
        Ok(Guest { pre, settings, interrupt, cache_entry, engine: self.engine.clone() })
    }
}

/// The first four bytes of every WebAssembly binary, core module or component.
const WASM_MAGIC: &[u8] = b"\0asm";
/// The four bytes after the magic in a core module (version 1, layer 0); a component's differ.
const CORE_MODULE_VERSION: &[u8] = &[1, 0, 0, 0];

/// Tells apart, before compiling, the files that are no component at all, with an error that
/// says what the file is and what to do (wasmtime's own would be about a parser's expectations).
fn check_header(wasm: &[u8]) -> Result<(), LoadError> {
    let problem = if wasm.is_empty() {
        "the file is empty"
    } else if wasm.trim_ascii_start().starts_with(b"(") {
        "the file is WebAssembly text; assemble it first (`wasm-tools parse guest.wat -o guest.wasm`)"
    } else if !wasm.starts_with(WASM_MAGIC) {
        "the file is not WebAssembly (it does not start with `\\0asm`)"
    } else if wasm[WASM_MAGIC.len()..].starts_with(CORE_MODULE_VERSION) {
        "the file is a core WebAssembly module, not a component; build the guest for `wasm32-wasip2`, \
         or wrap the module (`wasm-tools component new`)"
    } else {
        return Ok(());
    };
    Err(LoadError::Invalid(problem.to_owned()))
}

/// A component ready to serve requests: one `InstancePre`, shared by all its requests.
#[derive(Clone)]
pub struct Guest {
    /// The linked, type-checked component.
    pre: WorldPre,
    /// What the guest may use.
    settings: Arc<GuestSettings>,
    /// Makes this guest's running instances look at their kill switches now.
    interrupt: InterruptHook,
    /// Where the compile cache holds the component, if it does.
    cache_entry: Option<PathBuf>,
    /// The engine, whose epoch ticker ticks while guests run, as long as this guest can.
    engine: Arc<TetherEngine>,
}

impl std::fmt::Debug for Guest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guest").field("settings", &self.settings).finish()
    }
}

impl Guest {
    /// Runs `handle` in a fresh instance and returns how it ended, with the spent instance
    /// (if one was created) for the caller to drop when convenient. The future may be dropped
    /// at any await point: that cancels the guest and frees its instance (see the crate docs on
    /// cancel safety).
    pub async fn handle(&self, invocation: Invocation) -> (Result<(), GuestFailure>, Option<Spent>) {
        let state = match HostState::new(invocation, &self.settings) {
            Ok(state) => state,
            Err(error) => return (Err(GuestFailure::instantiation(&error)), None),
        };
        let mut store = store::new_store(&self.engine, state);
        let result = self.engine.ticking(self.pre.run(&mut store, &self.settings)).await.map_err(|failed| match failed {
            Failed::Instantiating(error) => GuestFailure::instantiation(&error.into()),
            Failed::Running(error) => {
                let state = store.data();
                if state.state.kill_reason().is_some() {
                    GuestFailure::Killed
                } else if state.limiter.hit {
                    GuestFailure::MemoryLimit
                } else {
                    GuestFailure::Trap(format!("{error:#}"))
                }
            }
        });
        (result, Some(Spent { _store: store }))
    }

    /// The same component with the sandbox settings of `route`'s guest: routes that serve one
    /// component share its compiled code and pre-instance.
    pub fn with_settings_of(&self, route: &Guest) -> Guest {
        Guest { settings: route.settings.clone(), ..self.clone() }
    }

    /// The same component with other sandbox settings.
    pub fn with_settings(&self, settings: GuestSettings) -> Guest {
        Guest { settings: Arc::new(settings), ..self.clone() }
    }

    /// The world the component is served in.
    pub fn world(&self) -> World {
        self.pre.world()
    }

    /// Where the compile cache holds the component, if it does.
    pub fn cache_entry(&self) -> Option<&std::path::Path> {
        self.cache_entry.as_deref()
    }

    /// A hook that makes this guest's running instances look at their kill switches now.
    pub fn interrupt_hook(&self) -> InterruptHook {
        self.interrupt.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::{GuestFailure, LoadError, check_header};

    #[test]
    fn files_that_are_no_component_say_what_they_are() {
        let problem = |wasm: &[u8]| match check_header(wasm) {
            Err(LoadError::Invalid(problem)) => problem,
            other => panic!("{other:?}"),
        };
        assert!(problem(b"").contains("empty"));
        assert!(problem(b"  (component)").contains("WebAssembly text"));
        assert!(problem(b"#!/bin/sh").contains("not WebAssembly"));
        assert!(problem(b"\0asm\x01\0\0\0").contains("core WebAssembly module"));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok(), "a component's header");
        assert!(check_header(b"\0asm").is_ok(), "too short to tell: wasmtime reports it");
    }

    #[test]
    fn exhausted_resources_are_told_apart_from_broken_instantiations() {
        // As wasmtime reports a failed `mmap`: its own error type around rustix's, with context.
        let mmap = wasmtime::Error::from(rustix::io::Errno::NOMEM).context("mapping a linear memory");
        assert!(matches!(GuestFailure::instantiation(&mmap.into()), GuestFailure::OutOfResources(_)));
        let fds = anyhow::Error::from(std::io::Error::from_raw_os_error(libc::EMFILE)).context("opening a preopen");
        assert!(matches!(GuestFailure::instantiation(&fds), GuestFailure::OutOfResources(_)));
        let missing = anyhow::Error::from(std::io::Error::from_raw_os_error(libc::ENOENT)).context("opening a preopen");
        assert!(matches!(GuestFailure::instantiation(&missing), GuestFailure::Instantiate(_)));
        let trap = anyhow::anyhow!("start function trapped");
        assert!(matches!(GuestFailure::instantiation(&trap), GuestFailure::Instantiate(_)));
    }
}
