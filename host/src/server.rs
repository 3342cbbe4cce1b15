//! The server: its threads (the I/O, guest and reaper runtimes, at their priorities), its
//! listeners, accepting connections (at most `max_connections` at once) and handing each to its
//! front end; reloading on SIGHUP (and, with `--watch`, when a file changes): the manifest read
//! again becomes the next generation (see [`crate::generation`]), listeners it adds open and
//! listeners it drops close; and shutting down gracefully on SIGINT or SIGTERM: listeners
//! close, idle connections end, running requests get `shutdown_grace` to finish and are
//! stopped after it.

use crate::dispatch::{Dispatcher, Executors};
use crate::generation::{CacheChoice, Generation};
use crate::manifest::{ListenAddr, Manifest, ManifestError, ServerSettings};
use crate::net::{Accepted, Listener};
use crate::request::Protocol;
use crate::watch::Watch;
use crate::{admin, fastcgi, http1, sched, systemd};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};
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
/// manifest or a component file it names. Builds the server's runtimes: sockets on
/// `tether-io`, guests on `tether-guest` below them in priority, and the reaper below those
/// (see [`crate::sched`]).
pub fn serve(read: ManifestReader, cache: &CacheChoice, watch: bool) -> anyhow::Result<()> {
    raise_file_limit();
    let manifest = read()?;
    let passed = systemd::passed_sockets()?;
    let settings = &manifest.server;
    let guests = runtime("tether-guest", settings.guest_threads, || sched::demote_current_thread(sched::GUEST_NICENESS))?;
    let reaper = runtime("tether-reaper", 1, || sched::demote_current_thread(sched::REAPER_NICENESS))?;
    let executors = Executors { guests: guests.handle().clone(), reaper: reaper.handle().clone() };
    let io = runtime("tether-io", settings.io_threads, sched::mark_io_thread)?;
    io.block_on(async {
        let server = Server::bind(&manifest, cache, executors, passed).await?;
        let watch = if watch {
            let mut watch = Watch::new()?;
            watch.files(manifest.files());
            Some(watch)
        } else {
            None
        };
        let shutdown = CancellationToken::new();
        tokio::spawn(signal_shutdown(shutdown.clone()));
        server.run(read, shutdown, watch).await;
        Ok(())
    })
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

/// Cancels `shutdown` on SIGINT or SIGTERM; a second signal exits at once, without waiting
/// for running requests.
async fn signal_shutdown(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        tracing::warn!("cannot install signal handlers; stop the server with SIGKILL");
        return;
    };
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
}

/// An accept loop, and how to stop it.
struct Accepting {
    /// Stops the loop; its listener closes when the loop ends.
    stop: CancellationToken,
    /// The loop.
    task: tokio::task::JoinHandle<()>,
}

impl Acceptor {
    /// Starts accepting on `listener` until shutdown or until a reload drops it; its
    /// connections carry on either way until they end.
    fn start(&self, protocol: Protocol, listener: Listener) -> Accepting {
        tracing::info!(protocol = protocol.as_str(), addr = %listener.local_addr(), "listening");
        let stop = self.shutdown.child_token();
        let task = self.accepting.spawn(accept_loop(protocol, listener, self.clone(), stop.clone()));
        Accepting { stop, task }
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
    pub async fn run(self, read: ManifestReader, shutdown: CancellationToken, mut watch: Option<Watch>) {
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
        };
        if let (Some(listener), Some(metrics)) = (self.admin, self.dispatcher.metrics()) {
            tokio::spawn(admin::serve(listener, self.dispatcher.clone(), metrics.clone(), shutdown.clone()));
        }
        let mut open: HashMap<(Protocol, ListenAddr), Accepting> = HashMap::new();
        for (protocol, addr, listener) in self.listeners {
            open.insert((protocol, addr), acceptor.start(protocol, listener));
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
    }
}

/// Waits for a SIGHUP; forever without the handler.
async fn hung_up(hangup: &mut Option<tokio::signal::unix::Signal>) {
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
        open.insert((protocol, addr), acceptor.start(protocol, listener));
    }
    let wanted: Vec<(Protocol, &ListenAddr)> = wanted_listeners(settings).collect();
    let dropped: Vec<(Protocol, ListenAddr)> =
        if activated { Vec::new() } else { open.keys().filter(|(protocol, addr)| !wanted.contains(&(*protocol, addr))).cloned().collect() };
    for key in dropped {
        let accepting = open.remove(&key).expect("an open listener");
        accepting.stop.cancel();
        // The listener is closed once its loop has ended.
        let _ = accepting.task.await;
        tracing::info!(protocol = key.0.as_str(), addr = ?key.1, "closed: no longer in the manifest; its connections end as they would");
    }
    for (name, value) in RESTART_SETTINGS {
        if value(settings) != value(started) {
            tracing::warn!(setting = name, running = value(started), manifest = value(settings), "the setting takes effect at restart");
        }
    }
    Ok((manifest, next))
}

/// Accepts connections on `listener`, at most `max_connections` open at once, and hands each to
/// its front end, until `stop` is cancelled.
async fn accept_loop(protocol: Protocol, listener: Listener, acceptor: Acceptor, stop: CancellationToken) {
    loop {
        let permit = tokio::select! {
            () = stop.cancelled() => return,
            permit = acceptor.limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let Some(stream) = listener.accept_until(&stop, protocol.as_str()).await else { return };
        let dispatcher = acceptor.dispatcher.clone();
        let shutdown = acceptor.shutdown.clone();
        let open = dispatcher.metrics().map(|metrics| metrics.connection_opened(protocol));
        acceptor.connections.spawn(async move {
            match (protocol, stream) {
                (Protocol::Http, Accepted::Tcp(s)) => http1::serve(s, dispatcher, shutdown).await,
                (Protocol::Http, Accepted::Unix(s)) => http1::serve(s, dispatcher, shutdown).await,
                (Protocol::FastCgi, Accepted::Tcp(s)) => fastcgi::serve(s, dispatcher, shutdown).await,
                (Protocol::FastCgi, Accepted::Unix(s)) => fastcgi::serve(s, dispatcher, shutdown).await,
            }
            drop((permit, open));
        });
    }
}
