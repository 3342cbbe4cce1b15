//! The response of a proxy request, made Tether's: its head goes into the request's
//! [`Output`], and its body goes through that `Output` too, so that it behaves as a Tether
//! guest's output does (the route's output buffer, "a flush is a socket write", PHP's failing
//! writes in `write` mode, trapping a guest whose client left).
//!
//! wasmtime-wasi-http hands a response body to a consumer over a channel that frees its
//! capacity when the consumer receives a chunk, and its stream's `flush` does nothing, so a
//! guest's `blocking-write-and-flush` would return before its bytes reached the socket. Three
//! functions of `wasi:http/types` are therefore linked here in place of wasmtime-wasi-http's
//! (the rest are its own):
//!
//! - `outgoing-response.body` notes which `outgoing-body` is the response's (an outgoing
//!   request's body stays wasmtime-wasi-http's);
//! - `outgoing-body.write` replaces the response body's stream with a [`BodyStream`]: its
//!   writes collect bytes, and its readiness, where every blocking write and flush waits, hands
//!   them to `Output` (`write`, then `flush` if one was asked for), so a flush returns after the
//!   socket write returned;
//! - `outgoing-body.finish` completes the response ([`Output::finish_body`]), and holds the
//!   body to the `content-length` the guest declared.
//!
//! A declared `content-length` frames the body on the wire ([`ResponseHead::declared_length`]):
//! a write past it fails, and a body that ends short of it fails the request, so the length
//! sent is always kept. Trailers are not sent (neither front end carries them).

use super::super::super::store::{HostState, trap};
use super::proxy;
use crate::request::{MustTrap, Output, OutputResult, ResponseHead};
use bytes::Bytes;
use http_body::Body as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::sync::Mutex as AsyncMutex;
use wasmtime::component::{Linker, Resource};
use wasmtime::{StoreContextMut, format_err};
use wasmtime_wasi::p2::{DynOutputStream, OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Host as _, HostOutgoingBody as _, HostOutgoingResponse as _, Trailers};
use wasmtime_wasi_http::p2::body::{HostOutgoingBody, HyperOutgoingBody};
use wasmtime_wasi_http::p2::types::HostOutgoingResponse;

/// The `wasi:http/types` instance whose functions are replaced: the version wasmtime-wasi-http
/// 48 links, which components importing any earlier 0.2.x resolve to.
const TYPES: &str = "wasi:http/types@0.2.12";
/// Most bytes the body stream accepts per write (what `check-write` grants); each is handed to
/// the output before the next.
const WRITE_BUDGET: usize = 64 << 10;
/// Most body bytes a guest may write before `response-outparam.set` gives the head they follow;
/// they wait in host memory, and more trap the guest (it would wait for itself for ever).
const MAX_BODY_BEFORE_HEAD: usize = 64 << 10;

/// The response as the guest builds it, shared by the `response-outparam`'s callback, the body
/// stream, `finish` and the end of the request.
#[derive(Default)]
pub struct Response {
    /// What the guest has set and written.
    building: Mutex<Building>,
    /// A hand-over to the output under way. It lives here, not in the wait for it: a
    /// `wasi:io/poll.poll` that another pollable won drops its wait for the stream, and a socket
    /// write cut short would leave part of a chunk on the wire. The next wait resumes it.
    in_flight: AsyncMutex<Option<Delivery>>,
}

/// A hand-over to the output: it owns what it hands over, and says why output stopped, if it did.
type Delivery = Pin<Box<dyn Future<Output = Option<Stopped>> + Send>>;

/// What one hand-over takes from what the guest set and wrote.
struct Handover {
    /// A head not in the output yet.
    head: Option<ResponseHead>,
    /// The bytes written since the last hand-over.
    bytes: Vec<u8>,
    /// Whether a flush was asked for.
    flush: bool,
    /// Whether these bytes complete the declared length.
    whole: bool,
}

impl Handover {
    /// Hands over to `output`: the head, the bytes as a write, then a flush, or the end of the
    /// response once the body has its declared length. Returns why output stopped, if it did.
    async fn to(self, output: Arc<AsyncMutex<Output>>) -> Option<Stopped> {
        let mut output = output.lock().await;
        if let Some(head) = self.head {
            set_head(&mut output, head);
        }
        let stopped = Stopped::of(output.write(&self.bytes).await);
        if stopped.is_none() && self.whole {
            // The last byte of a declared length: the client will have the whole response, and
            // may close as soon as it does, which is no abort.
            output.finish_body().await;
        } else if stopped.is_none() && self.flush {
            return Stopped::of(output.flush().await);
        }
        stopped
    }
}

/// See [`Response`].
#[derive(Default)]
struct Building {
    /// Whether `response-outparam.set` was called.
    set: bool,
    /// The error code the guest answered with instead of a response.
    refused: Option<ErrorCode>,
    /// A head not in the output yet (it was busy when the head came), for the next hand-over.
    head: Option<ResponseHead>,
    /// The body as wasmtime-wasi-http sees it, kept to tell a body the guest dropped without
    /// finishing it (aborted) from one it left open.
    hyper_body: Option<HyperOutgoingBody>,
    /// The response's `outgoing-body` (its resource's representation).
    body: Option<u32>,
    /// Body bytes written and not handed to the output yet.
    pending: Vec<u8>,
    /// Whether a flush was asked for and not done yet.
    flush: bool,
    /// Body bytes written in all.
    written: u64,
    /// The `content-length` the guest declared.
    declared: Option<u64>,
    /// Why output stopped, for the guest's next call on its stream.
    stopped: Option<Stopped>,
    /// Whether the stream reported a client gone as its last operation's failure; it is closed
    /// from then on (`wasi:io/streams`' `last-operation-failed`).
    told: bool,
    /// Whether `outgoing-body.finish` was called.
    finished: bool,
}

/// Why the body stream takes no more output.
#[derive(Clone, Copy, Debug)]
enum Stopped {
    /// The guest must trap ([`MustTrap`]).
    Trap,
    /// The client is gone (and the guest ignores it) or the response was finished: the stream
    /// fails, then is closed.
    Closed,
}

impl Stopped {
    /// From the result of an output call.
    fn of(result: Result<OutputResult, MustTrap>) -> Option<Stopped> {
        match result {
            Ok(Ok(())) => None,
            Ok(Err(_)) => Some(Stopped::Closed),
            Err(MustTrap) => Some(Stopped::Trap),
        }
    }

    /// As the stream reports it.
    fn error(self) -> StreamError {
        match self {
            Stopped::Trap => StreamError::Trap(trap(MustTrap)),
            Stopped::Closed => StreamError::Closed,
        }
    }
}

/// A head from wasi:http's response: the status, the headers Tether's sinks may carry, and the
/// `content-length` as the declared length. Headers that frame the message (`content-length`,
/// which becomes the declared length, `trailer`, `status`...) and values that are not visible
/// ASCII are left out.
fn head(parts: &http::response::Parts) -> Result<ResponseHead, String> {
    let mut head = ResponseHead::default();
    head.set_status(parts.status.as_u16()).map_err(|_| format!("status {} is not a final status", parts.status))?;
    for (name, value) in &parts.headers {
        if name == http::header::CONTENT_LENGTH {
            let length = value.to_str().ok().and_then(|text| text.parse().ok());
            head.declared_length = Some(length.ok_or_else(|| format!("content-length {value:?} is not a length"))?);
        } else if let Err(error) = value
            .to_str()
            .map_err(|_| "not visible ASCII".to_owned())
            .and_then(|value| head.append_header(name.as_str(), value).map_err(|error| error.to_string()))
        {
            tracing::debug!(header = name.as_str(), %error, "response header left out");
        }
    }
    Ok(head)
}

/// Puts `head` into `output`, unless a head went out already (`finish-request` came first).
fn set_head(output: &mut Output, head: ResponseHead) {
    match output.head_mut() {
        Ok(current) => *current = head,
        Err(error) => tracing::debug!(%error, "the response head of response-outparam.set came too late"),
    }
}

impl Response {
    fn lock(&self) -> MutexGuard<'_, Building> {
        self.building.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The callback behind the `response-outparam`: takes the head into `output` (or keeps it
    /// for the next hand-over, if `output` is busy) and keeps the body's far end.
    pub fn outparam(
        self: &Arc<Self>,
        output: Arc<AsyncMutex<Output>>,
    ) -> impl FnOnce(Result<http::Response<HyperOutgoingBody>, ErrorCode>) + Send + Sync + 'static {
        let response = self.clone();
        move |result| {
            let mut building = response.lock();
            building.set = true;
            let (parts, body) = match result {
                Ok(given) => given.into_parts(),
                Err(code) => {
                    building.refused = Some(code);
                    return;
                }
            };
            building.hyper_body = Some(body);
            match head(&parts) {
                Ok(head) => {
                    building.declared = head.declared_length;
                    // The output is held only inside the guest's own host calls, and this is
                    // one of those: it is free.
                    match output.try_lock() {
                        Ok(mut output) => set_head(&mut output, head),
                        Err(_) => building.head = Some(head),
                    }
                }
                Err(problem) => building.refused = Some(ErrorCode::InternalError(Some(problem))),
            }
        }
    }

    /// Whether `body` (an `outgoing-body`'s representation) is the response's.
    fn is_body(&self, body: u32) -> bool {
        self.lock().body == Some(body)
    }

    /// What the next hand-over takes: the head if it waits, the pending bytes, a flush asked
    /// for. `None` if there is nothing to hand over, output stopped, or no head is set yet
    /// (nothing goes before it).
    fn take(&self) -> Option<Handover> {
        let mut building = self.lock();
        if building.stopped.is_some() || !building.set || building.refused.is_some() {
            return None;
        }
        let whole = !building.pending.is_empty() && building.declared == Some(building.written);
        let handover = Handover {
            head: building.head.take(),
            bytes: std::mem::take(&mut building.pending),
            flush: std::mem::take(&mut building.flush),
            whole,
        };
        (handover.head.is_some() || !handover.bytes.is_empty() || handover.flush).then_some(handover)
    }

    /// Hands what the guest wrote to `output` (see [`Handover::to`]), after the hand-over a
    /// dropped wait left under way. Returns why output stopped, if it did. Cancel-safe: a
    /// hand-over started here finishes at the next call if this one is dropped.
    async fn deliver(&self, output: &Arc<AsyncMutex<Output>>) -> Option<Stopped> {
        let mut in_flight = self.in_flight.lock().await;
        loop {
            if let Some(delivery) = in_flight.as_mut() {
                let stopped = delivery.await;
                *in_flight = None;
                if stopped.is_some() {
                    self.lock().stopped = stopped;
                }
            }
            match self.take() {
                Some(handover) => *in_flight = Some(Box::pin(handover.to(output.clone()))),
                None => return self.lock().stopped,
            }
        }
    }

    /// `outgoing-body.finish` on the response body: hands over what is pending and completes
    /// the response; the guest learns nothing of a client that left meanwhile (as under
    /// `wasmtime serve`). A body short of its declared length is an error, and the request
    /// then fails when the guest returns.
    async fn finish(&self, output: &Arc<AsyncMutex<Output>>) -> wasmtime::Result<Result<(), ErrorCode>> {
        {
            let mut building = self.lock();
            building.finished = true;
            if building.declared.is_some_and(|declared| declared != building.written) {
                return Ok(Err(ErrorCode::HttpResponseBodySize(Some(building.written))));
            }
        }
        if let Some(Stopped::Trap) = self.deliver(output).await {
            return Err(trap(MustTrap));
        }
        if self.lock().set {
            output.lock().await.finish_body().await;
        }
        Ok(Ok(()))
    }

    /// Checks the response a guest left when it returned, and hands over what is pending; the
    /// dispatcher then ends the response. An error fails the request: no response was set, an
    /// error code instead of one, a body dropped unfinished, or one that did not keep to its
    /// declared length.
    pub async fn end(&self, output: &Arc<AsyncMutex<Output>>) -> wasmtime::Result<()> {
        {
            let mut building = self.lock();
            if !building.set {
                wasmtime::bail!("the guest returned without a response (it never called response-outparam.set)");
            }
            if let Some(code) = &building.refused {
                wasmtime::bail!("the guest answered with an error instead of a response: {code:?}");
            }
            if !building.finished && dropped_unfinished(building.hyper_body.as_mut()) {
                wasmtime::bail!("the guest dropped the response body without finishing it");
            }
            if let Some(declared) = building.declared.filter(|&declared| declared != building.written) {
                wasmtime::bail!("the response body has {} bytes, not the {declared} of its content-length", building.written);
            }
        }
        match self.deliver(output).await {
            Some(Stopped::Trap) => Err(trap(MustTrap)),
            Some(Stopped::Closed) | None => Ok(()),
        }
    }
}

/// Whether wasmtime-wasi-http's end of the response body says the guest dropped its
/// `outgoing-body` without `finish` (which aborts the body) rather than leaving it open.
fn dropped_unfinished(body: Option<&mut HyperOutgoingBody>) -> bool {
    let Some(body) = body else { return false };
    let mut cx = Context::from_waker(Waker::noop());
    matches!(Pin::new(body).poll_frame(&mut cx), Poll::Ready(Some(Err(_))))
}

/// The response body's `output-stream`: see the module docs.
struct BodyStream {
    /// The response being built.
    response: Arc<Response>,
    /// The request's output.
    output: Arc<AsyncMutex<Output>>,
}

impl BodyStream {
    /// The stream's state, failing if output stopped: a client gone fails the guest's next
    /// call (so `blocking-write-and-flush`, which passes over a closed stream, reports it), and
    /// every call after that finds the stream closed.
    fn building(&self) -> StreamResult<MutexGuard<'_, Building>> {
        let mut building = self.response.lock();
        let stopped = building.stopped;
        match stopped {
            Some(Stopped::Closed) if !std::mem::replace(&mut building.told, true) => {
                Err(StreamError::LastOperationFailed(ErrorCode::ConnectionTerminated.into()))
            }
            Some(stopped) => Err(stopped.error()),
            None => Ok(building),
        }
    }
}

#[async_trait::async_trait]
impl OutputStream for BodyStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let mut building = self.building()?;
        let written = building.written + bytes.len() as u64;
        if building.declared.is_some_and(|declared| written > declared) {
            return Err(StreamError::LastOperationFailed(ErrorCode::HttpResponseBodySize(Some(written)).into()));
        }
        if !building.set && building.pending.len() + bytes.len() > MAX_BODY_BEFORE_HEAD {
            return Err(StreamError::Trap(format_err!(
                "more than {MAX_BODY_BEFORE_HEAD} bytes of response body written before response-outparam.set"
            )));
        }
        building.written = written;
        building.pending.extend_from_slice(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.building()?.flush = true;
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        let building = self.building()?;
        Ok(if !building.set {
            // Before the head, bytes only collect (up to a limit): nothing waits for them.
            MAX_BODY_BEFORE_HEAD.saturating_sub(building.pending.len()).max(1)
        } else if building.pending.is_empty() && !building.flush {
            WRITE_BUDGET
        } else {
            // The last write or flush is handed over when the guest waits for readiness.
            0
        })
    }

    async fn cancel(&mut self) {
        // Dropped: what it collected still goes out (through the buffer, not flushed).
        self.response.deliver(&self.output).await;
    }
}

#[async_trait::async_trait]
impl Pollable for BodyStream {
    async fn ready(&mut self) {
        self.response.deliver(&self.output).await;
    }
}

/// Links, in place of wasmtime-wasi-http's, the three functions that make the response body
/// Tether's (see the module docs).
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(TYPES)?;
    types.func_wrap(
        "[method]outgoing-response.body",
        |mut store: StoreContextMut<'_, HostState>, (response,): (Resource<HostOutgoingResponse>,)| {
            let body = store.data_mut().http().body(response)?;
            if let Ok(body) = &body {
                proxy(store.data()).response.lock().body = Some(body.rep());
            }
            Ok((body,))
        },
    )?;
    types.func_wrap(
        "[method]outgoing-body.write",
        |mut store: StoreContextMut<'_, HostState>, (body,): (Resource<HostOutgoingBody>,)| {
            let rep = body.rep();
            let state = store.data_mut();
            let stream = state.http().write(body)?;
            let response = proxy(state).response.clone();
            if let Ok(stream) = &stream
                && response.is_body(rep)
            {
                let output = state.output.clone();
                *state.table.get_mut::<DynOutputStream>(stream)? = Box::new(BodyStream { response, output });
            }
            Ok((stream,))
        },
    )?;
    types.func_wrap_async(
        "[static]outgoing-body.finish",
        |mut store: StoreContextMut<'_, HostState>, (body, trailers): (Resource<HostOutgoingBody>, Option<Resource<Trailers>>)| {
            Box::new(async move {
                let state = store.data_mut();
                let response = proxy(state).response.clone();
                if !response.is_body(body.rep()) {
                    let mut http = state.http();
                    let finished = match http.finish(body, trailers) {
                        Ok(()) => Ok(()),
                        Err(error) => Err(http.convert_error_code(error)?),
                    };
                    return Ok((finished,));
                }
                state.alive()?;
                state.table.delete(body)?;
                if let Some(trailers) = trailers {
                    state.table.delete(trailers)?;
                    tracing::debug!("response trailers are not sent");
                }
                let output = state.output.clone();
                Ok((response.finish(&output).await?,))
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::head;

    #[test]
    fn the_head_keeps_what_the_sinks_carry_and_takes_content_length_as_the_declared_length() {
        let parts = |status: u16, headers: &[(&str, &[u8])]| {
            let mut response = http::Response::builder().status(status);
            for (name, value) in headers {
                response = response.header(*name, *value);
            }
            response.body(()).expect("a valid response").into_parts().0
        };
        let given = head(&parts(201, &[("content-type", b"text/plain"), ("content-length", b"6"), ("trailer", b"x"), ("x-bin", b"\xff")]));
        let given = given.expect("a head");
        assert_eq!((given.status, given.declared_length), (201, Some(6)));
        assert_eq!(given.headers, [("content-type".to_owned(), "text/plain".to_owned())], "framing and non-ASCII values are left out");
        assert_eq!(head(&parts(200, &[])).expect("a head").declared_length, None);
        assert!(head(&parts(200, &[("content-length", b"six")])).is_err());
        assert!(head(&parts(103, &[])).is_err(), "an informational status is no response");
    }
}
