//! The server: its threads (a runtime per I/O thread, the guest and reaper runtimes at their
//! priorities, and the control runtime on the main thread), its listeners, accepting
//! connections on every I/O thread (at most `max_connections` at once) and handing each to its
//! front end on the thread that accepted it; reloading on SIGHUP (and, with `--watch`, when a
//! file changes): the manifest read again becomes the next generation (see
//! [`crate::generation`]), listeners it adds open and listeners it drops close; and shutting
//! down gracefully on SIGINT or SIGTERM: listeners close, idle connections end, running
//! requests get `shutdown_grace` to finish and are stopped after it.

use crate::dispatch::{Dispatcher, Executors};
use crate::generation::{CacheChoice, Generation};
use crate::manifest::{ListenAddr, Manifest, ManifestError, ServerSettings};
use crate::net::{AcceptFailures, Accepted, Listener, SharedListener};
use crate::request::Protocol;
use crate::watch::Watch;
use crate::{admin, fastcgi, http1, sched, systemd};
use anyhow::Context as _;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::signal::unix::Signal;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Reads the manifest: at start-up, and again at each reload.
pub type ManifestReader = Arc<dyn Fn() -> Result<Manifest, ManifestError> + Send + Sync>;

/// The message logged when a reload has put the next generation in force (with `generation`,
/// `routes` and `elapsed_ms`). Tests wait for it.
const RELOADED: &str = "reloaded";
/// The message logged when a reload failed and the generation in force stays (with `error`,
/// located for a manifest error, and `failed_reloads`). Tests wait for it.
const RELOAD_FAILED: &str = "reload failed; serving on with the generation in force";

/// Serves the manifest `read` gives until SIGINT or SIGTERM, then shuts down gracefully; a
/// second signal exits at once. SIGHUP reloads, and with `watch` so does a change to the
/// manifest or a component file it names. Builds the server's runtimes: sockets on the
/// `tether-io` threads ([`IoThreads`]), guests on `tether-guest` below them in priority, the
/// reaper below those (see [`crate::sched`]), and the control runtime on this thread.
pub fn serve(read: ManifestReader, cache: &CacheChoice, watch: bool) -> anyhow::Result<()> {
    raise_file_limit();
    let manifest = read()?;
    let passed = systemd::passed_sockets()?;
    let settings = &manifest.server;
    let guests = runtime("tether-guest", settings.guest_threads, || sched::demote_current_thread(sched::GUEST_NICENESS))?;
    let reaper = runtime("tether-reaper", 1, || sched::demote_current_thread(sched::REAPER_NICENESS))?;
    let executors = Executors { guests: guests.handle().clone(), reaper: reaper.handle().clone() };
    let io = IoThreads::start(settings.io_threads)?;
    // Binding, signals, reloads and the admin listener: on this thread, apart from the sockets'.
    let control = tokio::runtime::Builder::new_current_thread().enable_all().thread_name("tether-control").build()?;
    control.block_on(async {
        // Before the server binds: from then on SIGINT and SIGTERM shut it down gracefully,
        // where their default action would end the process at once.
        let signals = shutdown_signals();
        let server = Server::bind(&manifest, cache, executors, passed).await?;
        let watch = if watch {
            let mut watch = Watch::new()?;
            watch.files(manifest.files());
            Some(watch)
        } else {
            None
        };
        let shutdown = CancellationToken::new();
        tokio::spawn(signal_shutdown(signals, shutdown.clone()));
        server.run(read, shutdown, watch, &io).await
    })
}

/// The I/O threads (`io_threads`). Each runs a tokio runtime of its own and accepts on every
/// listener. A new connection is served by the thread that accepted it, or handed once to the
/// thread that serves fewest when the accepting one serves more than [`BALANCE_SLACK`] more
/// ([`Balance`]); it then stays there with its requests to the end, and no thread takes work
/// from another (BENCHMARKS.md, "Each I/O thread runs a runtime of its own"). The threads end
/// when this goes.
struct IoThreads {
    /// Each thread's runtime.
    handles: Vec<tokio::runtime::Handle>,
    /// Ends the threads.
    stop: CancellationToken,
    /// The threads, joined when this goes.
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl IoThreads {
    /// Starts `count` I/O threads (at least one).
    fn start(count: usize) -> anyhow::Result<Self> {
        let mut io = IoThreads { handles: Vec::new(), stop: CancellationToken::new(), threads: Vec::new() };
        for _ in 0..count.max(1) {
            let (handle_tx, handle_rx) = std::sync::mpsc::channel();
            let stop = io.stop.clone();
            let thread = std::thread::Builder::new().name("tether-io".to_owned()).spawn(move || {
                sched::mark_io_thread();
                // Its blocking pool (a guest's file access through WASI) counts as I/O threads too.
                let built = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .thread_name("tether-io")
                    .on_thread_start(sched::mark_io_thread)
                    .build();
                let runtime = match built {
                    Ok(runtime) => runtime,
                    Err(error) => return drop(handle_tx.send(Err(error))),
                };
                let _ = handle_tx.send(Ok(runtime.handle().clone()));
                runtime.block_on(stop.cancelled());
            })?;
            io.threads.push(thread);
            io.handles.push(handle_rx.recv()??);
        }
        Ok(io)
    }
}

impl Drop for IoThreads {
    fn drop(&mut self) {
        self.stop.cancel();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Loads `manifest`'s routes, compiling (and caching) their components, without serving;
/// returns how many routes there are.
pub fn check(manifest: &Manifest, cache: &CacheChoice) -> anyhow::Result<usize> {
    // No request runs: one thread serves as both executors.
    let idle = runtime("tether-check", 1, || {})?;
    let executors = Executors { guests: idle.handle().clone(), reaper: idle.handle().clone() };
    Ok(Dispatcher::new(manifest, cache, executors)?.generation().route_count())
}

/// A tokio runtime with `threads` workers named `name`, each running `on_start` first.
fn runtime(name: &str, threads: usize, on_start: impl Fn() + Send + Sync + 'static) -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .thread_name(name)
        .on_thread_start(on_start)
        .build()?)
}

/// Raises the soft limit on open files to the hard limit: every connection is a file
/// descriptor, and the default soft limit (often 1024) is far below what `max_connections`
/// allows. Servers such as nginx and Go's runtime do the same.
fn raise_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = Rlimit { current: limit.maximum, maximum: limit.maximum };
        if let Err(error) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(%error, "cannot raise the open-file limit");
        }
    }
}

/// SIGINT and SIGTERM, caught from now on; `None` where the handlers cannot be installed.
fn shutdown_signals() -> Option<(Signal, Signal)> {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(interrupt), Ok(terminate)) => Some((interrupt, terminate)),
        _ => {
            tracing::warn!("cannot install signal handlers; stop the server with SIGKILL");
            None
        }
    }
}

/// Cancels `shutdown` on the first of `signals` (SIGINT or SIGTERM); a second signal exits at
/// once, without waiting for running requests.
async fn signal_shutdown(signals: Option<(Signal, Signal)>, shutdown: CancellationToken) {
    let Some((mut interrupt, mut terminate)) = signals else { return };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    shutdown.cancel();
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    // Straight to stderr: the log's writer thread may not get to run again.
    eprintln!("second signal: exiting without waiting for running requests");
    std::process::exit(i32::from(crate::cli::EXIT_FAILURE));
}

/// After `shutdown_grace`, how long the requests stopped then get to send their last bytes
/// and log their access lines.
const STOPPED_WAIT: Duration = Duration::from_secs(5);

/// A server with its routes loaded and its listeners bound.
#[derive(Debug)]
pub struct Server {
    /// Generations and requests.
    dispatcher: Arc<Dispatcher>,
    /// Bound listeners, by protocol and the address the manifest gives.
    listeners: Vec<(Protocol, ListenAddr, Listener)>,
    /// The admin listener, if it is on.
    admin: Option<Listener>,
    /// Whether the listeners are sockets systemd passed, which reloads leave alone.
    activated: bool,
    /// The settings the server started with, for those a reload cannot change.
    started: Arc<ServerSettings>,
}

/// A `[server]` setting, read from the settings and shown as the log shows it.
type Setting = fn(&ServerSettings) -> String;

/// The settings only a restart changes: the thread pools, the connection limit and the admin
/// listener are made once.
const RESTART_SETTINGS: &[(&str, Setting)] = &[
    ("io_threads", |s| s.io_threads.to_string()),
    ("guest_threads", |s| s.guest_threads.to_string()),
    ("max_connections", |s| s.max_connections.to_string()),
    ("admin", |s| format!("{:?}", s.admin)),
];

/// The listeners `settings` asks for, by protocol and address.
fn wanted_listeners(settings: &ServerSettings) -> impl Iterator<Item = (Protocol, &ListenAddr)> {
    let http = settings.listen.iter().map(|addr| (Protocol::Http, addr));
    http.chain(settings.fastcgi.iter().map(|addr| (Protocol::FastCgi, addr)))
}

/// Binds the listeners `settings` asks for that `open` does not have yet.
async fn bind_new(
    settings: &ServerSettings,
    open: impl Fn(Protocol, &ListenAddr) -> bool,
) -> anyhow::Result<Vec<(Protocol, ListenAddr, Listener)>> {
    let mut bound = Vec::new();
    for (protocol, addr) in wanted_listeners(settings).filter(|&(protocol, addr)| !open(protocol, addr)) {
        bound.push((protocol, addr.clone(), Listener::bind(addr, settings.socket_mode).await?));
    }
    Ok(bound)
}

/// What accepting takes, shared by every accept loop.
#[derive(Clone)]
struct Acceptor {
    /// Where each connection's requests go.
    dispatcher: Arc<Dispatcher>,
    /// Ends idle connections and accept loops at shutdown.
    shutdown: CancellationToken,
    /// The accept loops, so that shutdown can wait for them to stop before it waits for the
    /// connections.
    accepting: TaskTracker,
    /// The connections, so that shutdown can wait for them.
    connections: TaskTracker,
    /// One permit per open connection (`max_connections`).
    limit: Arc<Semaphore>,
    /// The I/O threads' runtimes, each of which accepts on every listener.
    io: Arc<[tokio::runtime::Handle]>,
    /// How many connections each I/O thread serves.
    balance: Arc<Balance>,
}

/// A listener's accept loops, one per I/O thread, and how to stop them.
struct Accepting {
    /// Stops the loops.
    stop: CancellationToken,
    /// The loops.
    loops: TaskTracker,
    /// The listening socket, which closes (and for a Unix socket the server bound, whose file
    /// goes) once this and the loops' copies have gone.
    _listener: SharedListener,
}

impl Acceptor {
    /// Starts accepting on `listener`, on every I/O thread, until shutdown or until a reload
    /// drops it; its connections carry on either way until they end.
    fn start(&self, protocol: Protocol, listener: Listener) -> anyhow::Result<Accepting> {
        let listener = listener.share().context("cannot share a listening socket between the I/O threads")?;
        tracing::info!(protocol = protocol.as_str(), addr = %listener.local_addr(), "listening");
        let stop = self.shutdown.child_token();
        let loops = TaskTracker::new();
        let failing = Arc::new(AcceptFailures::default());
        for (thread, io) in self.io.iter().enumerate() {
            let copy = {
                // Registered with that thread's runtime.
                let _entered = io.enter();
                listener.copy()?
            };
            let accept = accept_loop(protocol, copy, thread, failing.clone(), self.clone(), stop.clone());
            loops.spawn_on(self.accepting.track_future(accept), io);
        }
        loops.close();
        Ok(Accepting { stop, loops, _listener: listener })
    }
}

impl Server {
    /// Loads the manifest's routes and binds its listeners (on the current runtime, which
    /// serves the sockets), or, with socket activation, takes the `passed` sockets instead;
    /// requests will run on `executors`.
    pub async fn bind(
        manifest: &Manifest,
        cache: &CacheChoice,
        executors: Executors,
        passed: Vec<(Protocol, OwnedFd)>,
    ) -> anyhow::Result<Server> {
        let dispatcher = Arc::new(Dispatcher::new(manifest, cache, executors)?);
        let server = &manifest.server;
        let activated = !passed.is_empty();
        let listeners = if activated {
            tracing::info!(
                sockets = passed.len(),
                "socket activation: serving the sockets the service manager passed, not the manifest's listen and fastcgi"
            );
            passed
                .into_iter()
                .map(|(protocol, fd)| Listener::inherit(fd).map(|(addr, listener)| (protocol, addr, listener)))
                .collect::<anyhow::Result<Vec<_>>>()?
        } else {
            if server.listen.is_empty() && server.fastcgi.is_empty() {
                anyhow::bail!("nothing to listen on: set [server] listen or fastcgi, or pass --listen / --fastcgi");
            }
            bind_new(server, |_, _| false).await?
        };
        let admin = match &server.admin {
            Some(addr) => Some(Listener::bind(addr, server.socket_mode).await?),
            None => None,
        };
        Ok(Server { dispatcher, listeners, admin, activated, started: Arc::new(server.clone()) })
    }

    /// Serves until `shutdown` is cancelled, then drains; reloads with `read` on SIGHUP, and
    /// when `watch` sees a file of the manifest in force change.
    async fn run(self, read: ManifestReader, shutdown: CancellationToken, mut watch: Option<Watch>, io: &IoThreads) -> anyhow::Result<()> {
        // Before the first `listening` line: from then on a SIGHUP reloads, where its default
        // action would end the process.
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(hangup) => Some(hangup),
            Err(error) => {
                tracing::warn!(%error, "cannot install the SIGHUP handler; SIGHUP does not reload");
                None
            }
        };
        let acceptor = Acceptor {
            dispatcher: self.dispatcher.clone(),
            shutdown: shutdown.clone(),
            accepting: TaskTracker::new(),
            connections: TaskTracker::new(),
            limit: Arc::new(Semaphore::new(self.started.max_connections)),
            io: io.handles.clone().into(),
            balance: Arc::new(Balance::new(io.handles.len())),
        };
        if let (Some(listener), Some(metrics)) = (self.admin, self.dispatcher.metrics()) {
            tokio::spawn(admin::serve(listener, self.dispatcher.clone(), metrics.clone(), shutdown.clone()));
        }
        let mut open: HashMap<(Protocol, ListenAddr), Accepting> = HashMap::new();
        for (protocol, addr, listener) in self.listeners {
            open.insert((protocol, addr), acceptor.start(protocol, listener)?);
        }
        systemd::ready();
        let mut failed_reloads = 0u64;
        loop {
            let cause = tokio::select! {
                () = shutdown.cancelled() => break,
                () = hung_up(&mut hangup) => "SIGHUP",
                () = changed(&mut watch) => "a watched file changed",
            };
            systemd::reloading();
            let began = Instant::now();
            let reload = reload(&read, cause, &acceptor, &self.started, self.activated, &mut open);
            tokio::select! {
                () = shutdown.cancelled() => break,
                result = reload => {
                    // Counted before it is logged: whoever reads the log line finds it counted.
                    if let Some(metrics) = self.dispatcher.metrics() {
                        metrics.reloaded(result.is_ok());
                    }
                    match result {
                        Ok((manifest, generation)) => {
                            tracing::info!(
                                generation = generation.number,
                                routes = generation.route_count(),
                                elapsed_ms = began.elapsed().as_secs_f64() * 1e3,
                                "{RELOADED}"
                            );
                            if let Some(watch) = &mut watch {
                                watch.files(manifest.files());
                            }
                        }
                        Err(error) => {
                            failed_reloads += 1;
                            tracing::error!(error = format!("{error:#}"), failed_reloads, "{RELOAD_FAILED}");
                        }
                    }
                    systemd::ready();
                }
            }
        }
        systemd::stopping();
        tracing::info!("shutting down: no new connections; waiting for running requests");
        drop(open);
        acceptor.accepting.close();
        acceptor.accepting.wait().await;
        let connections = acceptor.connections;
        connections.close();
        let drained = || async {
            connections.wait().await;
            self.dispatcher.drain().await;
        };
        let grace = self.dispatcher.settings().shutdown_grace;
        if tokio::time::timeout(grace, drained()).await.is_err() {
            tracing::warn!(?grace, "requests still running after shutdown_grace; stopping them");
            self.dispatcher.stop_running();
            let _ = tokio::time::timeout(STOPPED_WAIT, drained()).await;
        }
        Ok(())
    }
}

/// Waits for a SIGHUP; forever without the handler.
async fn hung_up(hangup: &mut Option<Signal>) {
    let received = match hangup {
        Some(hangup) => hangup.recv().await,
        None => None,
    };
    if received.is_none() {
        std::future::pending::<()>().await;
    }
}

/// Waits for a watched file to change; forever without `--watch`.
async fn changed(watch: &mut Option<Watch>) {
    match watch {
        Some(watch) => watch.changed().await,
        None => std::future::pending().await,
    }
}

/// Reads the manifest again and puts the next generation in force: binds the listeners it
/// adds first (a reload that cannot bind them fails whole), then builds the generation (off
/// the I/O threads: compiling a new component takes a while), then starts accepting on the
/// new listeners and stops accepting on those it dropped, whose connections carry on until
/// they end. With socket activation (`activated`) the listeners stay as systemd passed them.
/// Settings only a restart changes are named in the log.
async fn reload(
    read: &ManifestReader,
    cause: &str,
    acceptor: &Acceptor,
    started: &ServerSettings,
    activated: bool,
    open: &mut HashMap<(Protocol, ListenAddr), Accepting>,
) -> anyhow::Result<(Arc<Manifest>, Arc<Generation>)> {
    tracing::info!(cause, "reloading the manifest");
    let read = read.clone();
    let manifest = Arc::new(tokio::task::spawn_blocking(move || read()).await??);
    let settings = &manifest.server;
    if !activated && settings.listen.is_empty() && settings.fastcgi.is_empty() {
        anyhow::bail!("nothing to listen on: set [server] listen or fastcgi");
    }
    let added =
        if activated { Vec::new() } else { bind_new(settings, |protocol, addr| open.contains_key(&(protocol, addr.clone()))).await? };
    let dispatcher = acceptor.dispatcher.clone();
    let next = {
        let manifest = manifest.clone();
        tokio::task::spawn_blocking(move || dispatcher.reload(&manifest)).await??
    };
    for (protocol, addr, listener) in added {
        open.insert((protocol, addr), acceptor.start(protocol, listener)?);
    }
    let wanted: Vec<(Protocol, &ListenAddr)> = wanted_listeners(settings).collect();
    let dropped: Vec<(Protocol, ListenAddr)> =
        if activated { Vec::new() } else { open.keys().filter(|(protocol, addr)| !wanted.contains(&(*protocol, addr))).cloned().collect() };
    for key in dropped {
        let accepting = open.remove(&key).expect("an open listener");
        accepting.stop.cancel();
        // The listener is closed once its loops have ended.
        accepting.loops.wait().await;
        drop(accepting);
        tracing::info!(protocol = key.0.as_str(), addr = ?key.1, "closed: no longer in the manifest; its connections end as they would");
    }
    for (name, value) in RESTART_SETTINGS {
        if value(settings) != value(started) {
            tracing::warn!(setting = name, running = value(started), manifest = value(settings), "the setting takes effect at restart");
        }
    }
    Ok((manifest, next))
}

/// Accepts connections on `listener` on I/O thread `thread`, at most `max_connections` served
/// at once, and hands each to its front end, until `stop` is cancelled. A connection accepted
/// while `max_connections` are open waits for room before it is read, and the loop accepts no
/// other meanwhile: the rest wait in the backlog. (Taking the room first would leave it
/// reserved by every idle loop, one per I/O thread and listener, which a small
/// `max_connections` could not spare.) The connection is served on this thread unless another
/// serves fewer ([`Balance`]). `failing` is the listener's run of failed accepts, which every
/// thread's loop shares, so that the run is logged once.
async fn accept_loop(
    protocol: Protocol,
    listener: Listener,
    thread: usize,
    failing: Arc<AcceptFailures>,
    acceptor: Acceptor,
    stop: CancellationToken,
) {
    loop {
        let Some(stream) = listener.accept_until(&stop, protocol.as_str(), &failing).await else { return };
        let permit = tokio::select! {
            () = stop.cancelled() => return,
            permit = acceptor.limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let dispatcher = acceptor.dispatcher.clone();
        let shutdown = acceptor.shutdown.clone();
        let open = dispatcher.metrics().map(|metrics| metrics.connection_opened(protocol));
        let served = acceptor.balance.serve(thread);
        let serving = served.thread;
        let serve = async move |stream: Accepted| {
            match (protocol, stream) {
                (Protocol::Http, Accepted::Tcp(s)) => http1::serve(s, dispatcher, shutdown).await,
                (Protocol::Http, Accepted::Unix(s)) => http1::serve(s, dispatcher, shutdown).await,
                (Protocol::FastCgi, Accepted::Tcp(s)) => fastcgi::serve(s, dispatcher, shutdown).await,
                (Protocol::FastCgi, Accepted::Unix(s)) => fastcgi::serve(s, dispatcher, shutdown).await,
            }
            drop((permit, open, served));
        };
        if serving == thread {
            acceptor.connections.spawn(serve(stream));
            continue;
        }
        match stream.hand_over() {
            Ok(handed) => drop(acceptor.connections.spawn_on(
                async move {
                    match handed.take() {
                        Ok(stream) => serve(stream).await,
                        Err(error) => tracing::warn!(%error, "cannot serve a connection handed to another I/O thread"),
                    }
                },
                &acceptor.io[serving],
            )),
            Err(error) => tracing::warn!(%error, "cannot hand a connection to another I/O thread"),
        }
    }
}

/// Most connections an I/O thread serves beyond the one that serves fewest before it hands the
/// next it accepts to that one. The kernel wakes every I/O thread for a new connection and the
/// first to run takes it; a burst of connections (a client opening 50 at once) would otherwise
/// land on one thread, which keeps them. A hand-over costs a wake-up of the other thread, so
/// small differences stay.
const BALANCE_SLACK: usize = 2;

/// How many connections each I/O thread serves, so that new ones go where there are fewest.
#[derive(Debug)]
struct Balance {
    /// Per I/O thread.
    serving: Box<[AtomicUsize]>,
}

/// A connection counted on the thread that serves it, until it ends.
struct Served {
    /// The threads' counts.
    balance: Arc<Balance>,
    /// The I/O thread that serves it.
    thread: usize,
}

impl Balance {
    fn new(threads: usize) -> Self {
        Balance { serving: (0..threads).map(|_| AtomicUsize::new(0)).collect() }
    }

    /// Counts a connection accepted on `thread`: served there, unless another thread serves
    /// more than [`BALANCE_SLACK`] fewer.
    fn serve(self: &Arc<Self>, thread: usize) -> Served {
        let count = |i: usize| self.serving[i].load(Ordering::Relaxed);
        let fewest = (0..self.serving.len()).min_by_key(|&i| count(i)).unwrap_or(thread);
        let thread = if count(thread) > count(fewest) + BALANCE_SLACK { fewest } else { thread };
        self.serving[thread].fetch_add(1, Ordering::Relaxed);
        Served { balance: self.clone(), thread }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.balance.serving[self.thread].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_accepted_on_one_thread_are_spread_within_the_slack() {
        let balance = Arc::new(Balance::new(2));
        // A burst accepted on thread 0: the threads' counts never differ by more than the slack
        // plus the one just counted.
        let burst: Vec<Served> = (0..50).map(|_| balance.serve(0)).collect();
        let on = |thread| burst.iter().filter(|served| served.thread == thread).count();
        assert!(on(0).abs_diff(on(1)) <= BALANCE_SLACK + 1, "{} and {}", on(0), on(1));
        // Ended connections are no longer counted: with both threads idle, thread 1 keeps what
        // it accepts.
        drop(burst);
        assert!(balance.serving.iter().all(|serving| serving.load(Ordering::Relaxed) == 0));
        assert_eq!(balance.serve(1).thread, 1);
    }
}
