//! The admin listener, off unless `[server] admin` (or `--admin`) names an address: `/ping`
//! answers `pong`, `/status` shows what the server is doing ([`status`]), `/metrics` gives the
//! [`metrics`] as OpenMetrics text. It speaks HTTP/1.1 through hyper, on the I/O threads, and
//! never runs a guest.

mod metrics;
mod status;

pub use metrics::{Metrics, OpenConnection};

use crate::dispatch::Dispatcher;
use crate::net::{AcceptFailures, Accepted, Listener};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use status::{Format, Status};
use std::convert::Infallible;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The content type of OpenMetrics text.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Answers admin requests on `listener` until `shutdown`.
pub async fn serve(listener: Listener, dispatcher: Arc<Dispatcher>, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    tracing::info!(protocol = "admin", addr = %listener.local_addr(), "listening");
    let failing = AcceptFailures::default();
    while let Some(stream) = listener.accept_until(&shutdown, "admin", &failing).await {
        let (dispatcher, metrics, shutdown) = (dispatcher.clone(), metrics.clone(), shutdown.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = respond(&request, &dispatcher, &metrics);
                async move { Ok::<_, Infallible>(response) }
            });
            let http = hyper::server::conn::http1::Builder::new();
            let served = async {
                match stream {
                    Accepted::Tcp(stream) => http.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await,
                    Accepted::Unix(stream) => http.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => {}
                result = served => if let Err(error) = result {
                    tracing::debug!(%error, "admin connection");
                },
            }
        });
    }
}

/// The answer to one admin request.
fn respond<B>(request: &Request<B>, dispatcher: &Dispatcher, metrics: &Metrics) -> Response<Full<Bytes>> {
    let query: Vec<&str> = request.uri().query().unwrap_or_default().split('&').collect();
    let flag = |name: &str| query.iter().any(|item| item.split('=').next() == Some(name));
    let (content_type, body) = match request.uri().path() {
        "/ping" => ("text/plain; charset=utf-8", "pong\n".to_owned()),
        "/metrics" => (OPENMETRICS, metrics.encode()),
        "/status" => match ["json", "html", "openmetrics"].into_iter().find(|view| flag(view)) {
            Some("openmetrics") => (OPENMETRICS, metrics.encode()),
            view => {
                let format = match view {
                    Some("json") => Format::Json,
                    Some("html") => Format::Html,
                    _ => Format::Text,
                };
                (format.content_type(), Status::take(dispatcher, metrics).render(format, flag("full")))
            }
        },
        _ => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"not found: /ping, /status, /metrics\n")));
            *response.status_mut() = StatusCode::NOT_FOUND;
            return response;
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    response
}
