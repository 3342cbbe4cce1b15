//! The `incoming-request` of a proxy request: method, target, headers and authority from the
//! request head (an HTTP request's, or one a FastCGI front end built from CGI parameters), and a
//! body read from the front end's body channel as the guest reads it.

use super::super::super::store::HostState;
use crate::request::{BodyError, BodyReceiver, Output};
use bytes::Bytes;
use http::uri::{Authority, PathAndQuery};
use http_body::Frame;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use wasmtime_wasi_http::Error;

/// The most body bytes handed to wasi:http in one frame (its stream splits a frame further to
/// each read's size); a chunk is as large as the front end read it, rarely this large.
const MAX_FRAME: usize = 1 << 20;

/// The authority of a request that names none (an HTTP/1.0 request without `host`, a FastCGI
/// request without `HTTP_HOST`): wasi:http requires one.
const NO_AUTHORITY: &str = "localhost";

/// The request the guest reads, built from `state`'s head; its body is taken out of `state`.
pub fn incoming(state: &mut HostState) -> wasmtime::Result<http::Request<RequestBody>> {
    let head = &state.head;
    let host = head.headers.iter().find(|(name, _)| name == "host").map(|(_, value)| value.as_slice());
    let authority = host
        .or(head.local_addr.as_deref().map(str::as_bytes))
        .and_then(|bytes| Authority::try_from(bytes).ok())
        .unwrap_or_else(|| Authority::from_static(NO_AUTHORITY));
    // An origin-form target as sent; an absolute-form one keeps its path, `*` is the root.
    let target = match head.target.parse::<http::Uri>() {
        Ok(uri) if uri.authority().is_some() => uri.path_and_query().map_or("/", PathAndQuery::as_str).to_owned(),
        _ if head.target.starts_with('/') => head.target.clone(),
        _ => "/".to_owned(),
    };
    let uri = http::Uri::builder().scheme(head.scheme()).authority(authority).path_and_query(target).build()?;
    let mut request = http::Request::builder().method(http::Method::from_bytes(head.method.as_bytes())?).uri(uri);
    for (name, value) in &head.headers {
        // The front ends validated both; anything http cannot represent is left out.
        if let (Ok(name), Ok(value)) = (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_bytes(value)) {
            request = request.header(name, value);
        }
    }
    let body = std::mem::replace(&mut state.body, BodyReceiver::empty());
    Ok(request.body(RequestBody::new(body, state.output.clone()))?)
}

/// A request body as an `http_body::Body`, read from the front end's body channel.
pub struct RequestBody {
    /// The front end's body channel.
    body: BodyReceiver,
    /// Tells the front end, before the first read, that the guest wants the body (HTTP then
    /// sends `100 Continue` if the client waits for it); `None` once done or never needed.
    wanted: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl RequestBody {
    /// The body from `body`, whose first read tells `output` that the body is wanted.
    fn new(body: BodyReceiver, output: Arc<tokio::sync::Mutex<Output>>) -> Self {
        let wanted = (!body.is_exhausted())
            .then(|| Box::pin(async move { output.lock().await.body_wanted().await }) as Pin<Box<dyn Future<Output = ()> + Send>>);
        Self { body, wanted }
    }
}

/// What the guest reads for a body that stopped early.
fn error(error: BodyError) -> Error {
    match error {
        BodyError::Aborted | BodyError::Unavailable => Error::ConnectionTerminated,
        BodyError::TooLarge => Error::HttpRequestBodySize(None),
        BodyError::Malformed => Error::HttpProtocolError,
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if let Some(wanted) = self.wanted.as_mut() {
            ready!(wanted.as_mut().poll(cx));
            self.wanted = None;
        }
        Poll::Ready(match ready!(self.body.poll_read(cx, MAX_FRAME)) {
            Ok(bytes) if bytes.is_empty() => None,
            Ok(bytes) => Some(Ok(Frame::data(bytes))),
            Err(stopped) => Some(Err(error(stopped))),
        })
    }
}
