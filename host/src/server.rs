//! The server: binds the manifest's listeners, accepts connections (at most `max_connections`
//! at once), hands each to its front end, and shuts down gracefully: listeners close, idle
//! connections end, running requests get `shutdown_grace` to finish and are stopped after it.

use crate::dispatch::{Dispatcher, Executors};
use crate::manifest::Manifest;
use crate::net::{Accepted, Listener};
use crate::routes::CacheChoice;
use crate::{fastcgi, http1};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// After `shutdown_grace`, how long the requests stopped then get to send their last bytes
/// and log their access lines.
const STOPPED_WAIT: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (for example out of file descriptors), so that the loop does
/// not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Which front end a listener feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1.
    Http,
    /// FastCGI responder.
    FastCgi,
}

impl Protocol {
    /// `http` or `fastcgi`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::FastCgi => "fastcgi",
        }
    }
}

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
            listeners.push((Protocol::Http, Listener::bind(addr, server.fastcgi_socket_mode).await?));
        }
        for addr in &server.fastcgi {
            listeners.push((Protocol::FastCgi, Listener::bind(addr, server.fastcgi_socket_mode).await?));
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
        let limit = Arc::new(Semaphore::new(self.dispatcher.server().max_connections));
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
        let grace = self.dispatcher.server().shutdown_grace;
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
