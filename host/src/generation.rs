//! A generation: what one reading of the manifest builds, all together: the server settings,
//! the routes (each manifest route's component loaded into the runtime, with its request
//! settings, behind the router), the runtime with its instance pool, and admission (one permit
//! per instance, `max_instances`). Start-up builds the first; a reload (SIGHUP) builds the next
//! from the manifest read again; and when the server is idle after a burst, the same routes are
//! loaded again into a fresh runtime from the compile cache, so that the old runtime's instance
//! pool, with the memory the burst left resident in it, is unmapped. Each replaces the
//! generation in force whole. Requests under way keep the generation they started with (their
//! route, guest, runtime and instance permit), which goes when the last of them ends.

use crate::heap;
use crate::manifest::{ComponentSource, Manifest, ManifestError, RouteSpec, ServerSettings};
use crate::request::{AbortDetection, RequestState};
use crate::router::Router;
use crate::runtime::{CompileCache, EngineLimits, Guest, GuestSettings, Preopen, Runtime};
use crate::sched::Placement;
use anyhow::Context as _;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// The message logged when the idle server has given its instance pool back (with `pool_kib`,
/// what the old pool's unused slots held as [`Generations::pool_resident`] tells it, and
/// `elapsed_ms`). Tests and benchmarks wait for it (the `tests` crate spells it out again).
const POOL_RELEASED: &str = "idle: released the instance pool";

/// A route, ready to serve.
#[derive(Clone, Debug)]
pub struct Route {
    /// The path prefix.
    pub path: Arc<str>,
    /// The loaded component.
    pub(crate) guest: Guest,
    /// PHP's output buffer size.
    pub output_buffer: usize,
    /// How aborts are detected.
    pub abort_detection: AbortDetection,
    /// Whether a half-close aborts.
    pub half_close_aborts: bool,
    /// Whether its requests start out ignoring user aborts (PHP's ini `ignore_user_abort`).
    pub ignore_user_abort: bool,
    /// The wall-clock limit.
    pub request_timeout: Option<Duration>,
    /// When a request still running is logged with its guest's stack.
    pub slowlog_timeout: Option<Duration>,
    /// The request body limit.
    pub max_body_size: u64,
    /// Where its requests start under `guests_start_on = "auto"`, as its guests have shown;
    /// kept when the same routes are loaded again into a fresh runtime.
    pub placement: Arc<Placement>,
}

impl Route {
    /// The state of a new request on this route.
    pub fn request_state(&self) -> Arc<RequestState> {
        let state = RequestState::new(self.abort_detection, self.half_close_aborts, self.guest.interrupt_hook());
        if self.ignore_user_abort {
            state.set_ignore_user_abort(true);
        }
        Arc::new(state)
    }
}

/// How the compile cache is configured.
#[derive(Clone, Debug)]
pub enum CacheChoice {
    /// The manifest's `cache_dir`, else the default location.
    Default,
    /// This directory.
    Dir(PathBuf),
    /// No cache.
    Off,
}

/// One generation: settings, routes, runtime and admission, built together.
#[derive(Debug)]
pub struct Generation {
    /// 1 for the one start-up builds, one more for each reload (an idle pool release keeps
    /// the number: it loads the same routes again).
    pub number: u64,
    /// The `[server]` settings.
    pub settings: Arc<ServerSettings>,
    /// Routes by path prefix.
    router: Router<Arc<Route>>,
    /// The sandbox, with its engine and instance pool.
    runtime: Runtime,
    /// One permit per guest instance alive (`max_instances`).
    instances: Arc<Semaphore>,
    /// What the engine accommodates.
    limits: EngineLimits,
    /// The compile cache, if any.
    cache: Option<CompileCache>,
}

impl Generation {
    /// Builds the runtime for `manifest` and loads every route's component into it.
    fn build(number: u64, manifest: &Manifest, cache: &CacheChoice) -> anyhow::Result<Self> {
        let server = &manifest.server;
        let limits = EngineLimits {
            max_instances: server.max_instances,
            max_memory: manifest.routes.iter().map(|r| r.max_memory).max().unwrap_or(0),
            pooling: server.pooling,
            keep_resident: server.keep_resident,
        };
        let cache = match cache {
            CacheChoice::Off => None,
            CacheChoice::Dir(dir) => Some(CompileCache::new(dir)),
            CacheChoice::Default => server.cache_dir.clone().or_else(CompileCache::default_dir).map(CompileCache::new),
        };
        let runtime = Runtime::new(&limits, cache.clone())?;
        let mut routes = Vec::with_capacity(manifest.routes.len());
        // Each component is loaded once, however many routes serve it.
        let mut loaded = HashMap::new();
        for spec in &manifest.routes {
            routes.push((spec.path.clone(), Arc::new(load_route(&runtime, manifest, spec, &mut loaded)?)));
        }
        tracing::info!(
            generation = number,
            routes = routes.len(),
            pooling = runtime.pooling(),
            max_instances = server.max_instances,
            "routes loaded"
        );
        Ok(Self {
            number,
            settings: Arc::new(server.clone()),
            router: Router::new(routes),
            runtime,
            instances: Arc::new(Semaphore::new(server.max_instances as usize)),
            limits,
            cache,
        })
    }

    /// The route for `path`, if any.
    pub fn route(&self, path: &str) -> Option<&Arc<Route>> {
        self.router.route(path).map(|(_, route)| route)
    }

    /// How many routes there are.
    pub fn route_count(&self) -> usize {
        self.router.iter().count()
    }

    /// The instance permits (`max_instances`) of this generation's requests.
    pub fn instances(&self) -> &Arc<Semaphore> {
        &self.instances
    }

    /// The same routes, settings and admission, loaded into a fresh runtime from the compile
    /// cache.
    fn reloaded(&self) -> anyhow::Result<Self> {
        anyhow::ensure!(self.cache.is_some(), "there is no compile cache");
        let runtime = Runtime::new(&self.limits, self.cache.clone())?;
        anyhow::ensure!(runtime.pooling(), "a new instance pool cannot be reserved now");
        // Each cache entry is loaded once, however many routes serve its component.
        let mut reloaded: HashMap<PathBuf, Guest> = HashMap::new();
        let routes = self
            .router
            .iter()
            .map(|(prefix, route)| {
                let guest = match route.guest.cache_entry().and_then(|entry| reloaded.get(entry)) {
                    Some(done) => done.with_settings_of(&route.guest),
                    None => {
                        let guest = runtime.reload(&route.guest).with_context(|| format!("route {prefix}"))?;
                        if let Some(entry) = guest.cache_entry() {
                            reloaded.insert(entry.to_owned(), guest.clone());
                        }
                        guest
                    }
                };
                Ok((prefix.to_owned(), Arc::new(Route { guest, ..Route::clone(route) })))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            number: self.number,
            settings: self.settings.clone(),
            router: Router::new(routes),
            runtime,
            instances: self.instances.clone(),
            limits: self.limits.clone(),
            cache: self.cache.clone(),
        })
    }
}

/// The `[server]` settings of the generation in force, for a short look (see
/// [`Generations::in_force`]).
pub struct SettingsView(arc_swap::Guard<Arc<Generation>>);

impl std::ops::Deref for SettingsView {
    type Target = ServerSettings;

    fn deref(&self) -> &ServerSettings {
        &self.0.settings
    }
}

/// The generation in force, and what it takes to build the next.
#[derive(Debug)]
pub struct Generations {
    /// The generation in force; replaced whole by [`Generations::reload`] and
    /// [`Generations::release_pool`]. Read by every request on every thread: an `ArcSwap`
    /// read writes to no memory the threads share (a lock's or a reference count's would).
    current: ArcSwap<Generation>,
    /// How the command line configured the compile cache.
    cache: CacheChoice,
    /// The process's anonymous memory when the current pool was fresh: once the routes were
    /// loaded, or after the last release.
    fresh_anonymous: AtomicU64,
}

impl Generations {
    /// Builds the first generation from `manifest`.
    pub fn load(manifest: &Manifest, cache: &CacheChoice) -> anyhow::Result<Self> {
        let first = Generation::build(1, manifest, cache)?;
        Ok(Self {
            current: ArcSwap::from_pointee(first),
            cache: cache.clone(),
            fresh_anonymous: AtomicU64::new(heap::anonymous_resident()),
        })
    }

    /// The generation in force, to keep.
    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// The generation in force, for a short look (not held across waits: a thread has few
    /// such views before they fall back to a reference count).
    pub fn in_force(&self) -> arc_swap::Guard<Arc<Generation>> {
        self.current.load()
    }

    /// The `[server]` settings in force, for a short look.
    pub fn settings(&self) -> SettingsView {
        SettingsView(self.in_force())
    }

    /// Builds the next generation from `manifest` and puts it in force; returns it. On an
    /// error the generation in force stays.
    pub fn reload(&self, manifest: &Manifest) -> anyhow::Result<Arc<Generation>> {
        let number = self.current().number + 1;
        let next = Arc::new(Generation::build(number, manifest, &self.cache)?);
        self.current.store(next.clone());
        self.fresh_pool();
        Ok(next)
    }

    /// Gives the instance pool's memory back if its unused slots hold more than
    /// `idle_pool_resident`: loads every route again, from the compile cache, into a fresh
    /// runtime, and swaps it in; the old runtime and its pool go when the last request on
    /// them ends, and the heap is trimmed of what they freed. Called when no request is in
    /// flight, once the heap is trimmed (`heap::IdleTrim`). Without the compile cache (or with an
    /// entry gone from it) the pool stays as it is, rather than compile every component again
    /// or load a component file that may have changed since the generation was built.
    pub fn release_pool(&self) {
        let old = self.current();
        let Some(resident) = self.pool_resident(&old.runtime).filter(|&bytes| bytes > old.settings.idle_pool_resident) else {
            return;
        };
        let started = Instant::now();
        match old.reloaded() {
            Ok(fresh) => {
                // A reload since `old` was read has put a fresh pool in force already.
                let replaced = self.current.compare_and_swap(&old, Arc::new(fresh));
                if !Arc::ptr_eq(&replaced, &old) {
                    return;
                }
                drop(replaced);
                drop(old);
                self.fresh_pool();
                tracing::info!(pool_kib = resident / 1024, elapsed_ms = started.elapsed().as_secs_f64() * 1e3, "{POOL_RELEASED}");
            }
            Err(error) => tracing::info!(
                pool_kib = resident / 1024,
                error = format!("{error:#}"),
                "idle: the instance pool keeps its memory (it is released by loading the routes again from the compile cache)"
            ),
        }
    }

    /// A fresh pool is in force: trims the heap and takes the process's anonymous memory as the
    /// baseline [`Self::pool_resident`] measures growth from (on a trimmed heap, as the next
    /// check will be).
    fn fresh_pool(&self) {
        heap::trim();
        self.fresh_anonymous.store(heap::anonymous_resident(), Ordering::Relaxed);
    }

    /// What the unused slots of `runtime`'s pool keep resident, as far as it can be told, or
    /// `None` if they keep nothing (no pooling allocator, or `keep_resident = 0`). wasmtime
    /// reports what their linear memories and tables keep, but not their fiber stacks: it
    /// tracks those only when it zeroes them, which would cost every request a `memset` and an
    /// `madvise`, and a guest that recursed deeply leaves hundreds of KiB of stack per slot. So
    /// how much the process's anonymous memory has grown since the pool was fresh counts too,
    /// when it is larger. After the heap trim, nearly all of that growth is the pool; where it
    /// is not (idle kept-alive connections keep their tasks and read buffers), one reload is spent
    /// in vain, and the baseline it takes afterwards includes that memory.
    fn pool_resident(&self, runtime: &Runtime) -> Option<u64> {
        let reported = runtime.pool_unused_resident().filter(|&bytes| bytes > 0)?;
        let grown = heap::anonymous_resident().saturating_sub(self.fresh_anonymous.load(Ordering::Relaxed));
        Some(reported.max(grown))
    }
}

/// Loads `spec`'s route; its component comes from `loaded` if an earlier route loaded it, and
/// goes there otherwise.
fn load_route(
    runtime: &Runtime,
    manifest: &Manifest,
    spec: &RouteSpec,
    loaded: &mut HashMap<ComponentSource, Guest>,
) -> Result<Route, ManifestError> {
    let settings = GuestSettings {
        route: spec.path.as_str().into(),
        max_memory: spec.max_memory,
        max_execution_time: spec.max_execution_time,
        env: spec.env.clone(),
        preopens: spec.preopens.iter().map(|p| Preopen { host: p.host.clone(), guest: p.guest.clone(), writable: p.writable }).collect(),
        allowed_outbound_hosts: spec.allowed_outbound_hosts.clone(),
    };
    let guest = match loaded.get(&spec.component) {
        Some(guest) => guest.with_settings(settings),
        None => {
            let wasm = spec
                .component
                .read()
                .map_err(|error| manifest.component_error(spec, format!("cannot read {}: {error}", spec.component)))?;
            let guest =
                runtime.load(&wasm, settings).map_err(|error| manifest.component_error(spec, format!("{}: {error}", spec.component)))?;
            loaded.insert(spec.component.clone(), guest.clone());
            guest
        }
    };
    if let Some(declared) = spec.world.filter(|&declared| declared != guest.world()) {
        let message =
            format!("the route is for `{}` components, but {} is a `{}` component", declared.name(), spec.component, guest.world().name());
        return Err(manifest.world_error(spec, message));
    }
    Ok(Route {
        path: spec.path.as_str().into(),
        guest,
        output_buffer: spec.output_buffer,
        abort_detection: spec.abort_detection,
        half_close_aborts: spec.half_close_aborts,
        ignore_user_abort: spec.ignore_user_abort,
        request_timeout: spec.request_timeout,
        slowlog_timeout: spec.slowlog_timeout,
        max_body_size: spec.max_body_size,
        placement: Arc::default(),
    })
}
