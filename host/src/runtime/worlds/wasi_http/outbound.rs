//! Outbound HTTP from proxy guests (`wasi:http/outgoing-handler`): denied unless the route's
//! `allowed_outbound_hosts` lists the request's host and port, then sent over a plain HTTP/1.1
//! connection (no TLS: an `https` request is denied). A request in flight is a task its guest's
//! resource table holds, so it is cancelled, and its connection closed, when the guest is
//! stopped.

use crate::runtime::GuestSettings;
use http_body_util::BodyExt as _;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The port of an outbound host that names none: `http`'s.
const DEFAULT_PORT: u16 = 80;
/// How long connecting to an outbound host may take when the guest sets no `connect-timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an outbound response's head may take when the guest sets no `first-byte-timeout`.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);

/// The `host:port` an allow-list entry and an outbound request are matched by: the host
/// lowercased, the port 80 when none is given.
pub fn outbound_key(host: &str, port: Option<u16>) -> String {
    format!("{}:{}", host.to_ascii_lowercase(), port.unwrap_or(DEFAULT_PORT))
}

/// A proxy request's outbound hooks: its route's allow-list.
pub struct Outbound {
    /// The route's settings, with `allowed_outbound_hosts`.
    settings: Arc<GuestSettings>,
}

impl Outbound {
    /// Outbound requests under `settings`.
    pub fn new(settings: Arc<GuestSettings>) -> Self {
        Self { settings }
    }
}

/// What `send_request` returns: the response, and the connection's remaining work.
type Sent = (http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>);

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _body_sent: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Result<Sent, Error>> + Send> {
        let settings = self.settings.clone();
        Box::new(async move { send(request, options, &settings).await })
    }
}

/// Sends `request` if `settings` allow its host.
async fn send(mut request: http::Request<WasiBody>, options: Option<RequestOptions>, settings: &GuestSettings) -> Result<Sent, Error> {
    let uri = request.uri().clone();
    let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
    let key = outbound_key(authority.host(), authority.port_u16());
    if uri.scheme() != Some(&http::uri::Scheme::HTTP) || !settings.allowed_outbound_hosts.contains(&key) {
        tracing::warn!(
            route = &*settings.route,
            host = key,
            %uri,
            "outbound request denied: only http:// hosts in the route's allowed_outbound_hosts may be reached"
        );
        return Err(Error::HttpRequestDenied);
    }
    let connect_timeout = options.and_then(|o| o.connect_timeout).unwrap_or(CONNECT_TIMEOUT);
    let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(&key)).await.map_err(|_| Error::ConnectionTimeout)?;
    let stream = stream.map_err(Error::Connect)?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The request goes to the host in origin form.
    *request.uri_mut() = uri.path_and_query().map_or_else(|| http::Uri::from_static("/"), |path| path.as_str().parse().unwrap_or_default());
    // The connection is driven here until the response head arrives, then by the caller.
    let mut connection = Some(connection);
    let mut response = pin!(sender.send_request(request));
    let head = poll_fn(|cx| {
        if let Poll::Ready(result) = response.as_mut().poll(cx) {
            return Poll::Ready(result.map_err(Error::from));
        }
        if let Some(driving) = connection.as_mut()
            && let Poll::Ready(ended) = Pin::new(driving).poll(cx)
        {
            connection = None;
            ended?;
            return response.as_mut().poll(cx).map_err(Error::from);
        }
        Poll::Pending
    });
    let first_byte_timeout = options.and_then(|o| o.first_byte_timeout).unwrap_or(FIRST_BYTE_TIMEOUT);
    let head = tokio::time::timeout(first_byte_timeout, head).await.map_err(|_| Error::ConnectionReadTimeout)??;
    let rest = async move {
        match connection {
            Some(connection) => connection.await.map_err(Error::from),
            None => Ok(()),
        }
    };
    Ok((head.map(|body| body.map_err(Error::from).boxed_unsync()), Box::new(rest)))
}
