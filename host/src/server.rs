//! The server: its threads (the I/O, guest and reaper runtimes, at their priorities), its
//! listeners, accepting connections (at most `max_connections` at once) and handing each to its
//! front end, and shutting down gracefully on SIGINT or SIGTERM: listeners close, idle
//! connections end, running requests get `shutdown_grace` to finish and are stopped after it.

use crate::dispatch::{Dispatcher, Executors};
use crate::manifest::Manifest;
use crate::net::{Accepted, Listener};
use crate::request::Protocol;
use crate::routes::CacheChoice;
use crate::{fastcgi, http1, sched};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Serves `manifest` until SIGINT or SIGTERM, then shuts down gracefully; a second signal exits
/// at once. Builds the server's runtimes: sockets on `tether-io`, guests on `tether-guest` below
/// them in priority, and the reaper below those (see [`crate::sched`]).
pub fn serve(manifest: &Manifest, cache: &CacheChoice) -> anyhow::Result<()> {
    raise_file_limit();
    let settings = &manifest.server;
    let guests = runtime("tether-guest", settings.guest_threads, || sched::demote_current_thread(sched::GUEST_NICENESS))?;
    let reaper = runtime("tether-reaper", 1, || sched::demote_current_thread(sched::REAPER_NICENESS))?;
    let executors = Executors { guests: guests.handle().clone(), reaper: reaper.handle().clone() };
    let io = runtime("tether-io", settings.io_threads, sched::mark_io_thread)?;
    io.block_on(async {
        let server = Server::bind(manifest, cache, executors).await?;
        for (protocol, addr) in server.addresses() {
            tracing::info!(protocol = protocol.as_str(), addr = %addr, "listening");
        }
        let shutdown = CancellationToken::new();
        tokio::spawn(signal_shutdown(shutdown.clone()));
        server.run(shutdown).await;
        Ok(())
    })
}

/// Loads `manifest`'s routes, compiling (and caching) their components, without serving;
/// returns how many routes there are.
pub fn check(manifest: &Manifest, cache: &CacheChoice) -> anyhow::Result<usize> {
    // No request runs: one thread serves as both executors.
    let idle = runtime("tether-check", 1, || {})?;
    let executors = Executors { guests: idle.handle().clone(), reaper: idle.handle().clone() };
    Ok(Dispatcher::new(manifest, cache, executors)?.route_count())
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
/// Pause after a failed `accept` (for example out of file descriptors), so that the loop does
/// not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A server with its routes loaded and its listeners bound.
#[derive(Debug)]
pub struct Server {
    /// Routes and runtime.
    dispatcher: Arc<Dispatcher>,
    /// Bound listeners.
    listeners: Vec<(Protocol, Listener)>,
}

impl Server {
    /// Loads the manifest's routes and binds its listeners (on the current runtime, which
    /// serves the sockets); requests will run on `executors`.
    pub async fn bind(manifest: &Manifest, cache: &CacheChoice, executors: Executors) -> anyhow::Result<Server> {
        let dispatcher = Arc::new(Dispatcher::new(manifest, cache, executors)?);
        let server = &manifest.server;
        if server.listen.is_empty() && server.fastcgi.is_empty() {
            anyhow::bail!("nothing to listen on: set [server] listen or fastcgi, or pass --listen / --fastcgi");
        }
        let mut listeners = Vec::new();
        for addr in &server.listen {
            listeners.push((Protocol::Http, Listener::bind(addr, server.socket_mode).await?));
        }
        for addr in &server.fastcgi {
            listeners.push((Protocol::FastCgi, Listener::bind(addr, server.socket_mode).await?));
        }
        Ok(Server { dispatcher, listeners })
    }

    /// The bound addresses, by protocol.
    pub fn addresses(&self) -> Vec<(Protocol, String)> {
        self.listeners.iter().map(|(protocol, listener)| (*protocol, listener.local_addr())).collect()
    }

    /// Serves until `shutdown` is cancelled, then drains.
    pub async fn run(self, shutdown: CancellationToken) {
        let connections = TaskTracker::new();
        let limit = Arc::new(Semaphore::new(self.dispatcher.settings().max_connections));
        let mut accept_loops = Vec::new();
        for (protocol, listener) in self.listeners {
            let dispatcher = self.dispatcher.clone();
            let shutdown = shutdown.clone();
            let connections = connections.clone();
            let limit = limit.clone();
            accept_loops.push(tokio::spawn(async move {
                accept_loop(protocol, listener, dispatcher, shutdown, connections, limit).await;
            }));
        }
        shutdown.cancelled().await;
        tracing::info!("shutting down: no new connections; waiting for running requests");
        for accept_loop in accept_loops {
            let _ = accept_loop.await;
        }
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

async fn accept_loop(
    protocol: Protocol,
    listener: Listener,
    dispatcher: Arc<Dispatcher>,
    shutdown: CancellationToken,
    connections: TaskTracker,
    limit: Arc<Semaphore>,
) {
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => return,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, protocol = protocol.as_str(), "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let dispatcher = dispatcher.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            match (protocol, stream) {
                (Protocol::Http, Accepted::Tcp(s)) => http1::serve(s, dispatcher, shutdown).await,
                (Protocol::Http, Accepted::Unix(s)) => http1::serve(s, dispatcher, shutdown).await,
                (Protocol::FastCgi, Accepted::Tcp(s)) => fastcgi::serve(s, dispatcher, shutdown).await,
                (Protocol::FastCgi, Accepted::Unix(s)) => fastcgi::serve(s, dispatcher, shutdown).await,
            }
            drop(permit);
        });
    }
}
