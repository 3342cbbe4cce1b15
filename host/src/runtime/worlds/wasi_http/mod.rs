//! The wasi:http proxy world (`wasi:http/proxy` 0.2, the world `wasmtime serve`, Spin and
//! wasmCloud run): components that export `wasi:http/incoming-handler@0.2.x`, served with
//! Tether's abort semantics. The interfaces and their `bindgen!` are wasmtime-wasi-http's; this
//! module owns where they meet the request core:
//!
//! - `request`: the `incoming-request` built from the request head, its body read from the
//!   front end's body channel;
//! - `response`: the head that `response-outparam.set` gives, put into the request's
//!   [`Output`](crate::request::Output); the response body stream, which writes through that
//!   `Output`, so that plain writes fill the route's output buffer and a flush returns after the
//!   socket write returned; and `outgoing-body.finish`, which completes the response;
//! - `outbound`: `outgoing-handler`, denied unless the route allows the host, over a plain
//!   HTTP/1.1 client.
//!
//! Tether's `conn` and `lifecycle` interfaces are linked next to wasi:http, so a component may
//! read its connection status or finish its response early as a Tether guest does.
//!
//! Stopping a guest needs nothing of its own here. Every wait a proxy guest can be in (a
//! pollable, a body read, a socket write, an outbound response) is a host call, where the kill
//! gate stops it parked and the dispatcher drops its future, which cancels the wait; its
//! outbound requests are tasks held by its resource table, aborted when the store is dropped.
//! A client leaving thus stops the guest and its requests in flight. wasi:http 0.3 (WASIp3),
//! experimental in wasmtime 48, is not served.

mod outbound;
mod request;
mod response;

pub use outbound::outbound_key;
pub use wasmtime_wasi_http::p2::bindings::ProxyPre;

use super::super::GuestSettings;
use super::super::store::HostState;
use super::Failed;
use std::sync::Arc;
use wasmtime::Store;
use wasmtime::component::Linker;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// What the exports of every wasi:http world start with.
pub const HANDLER_PACKAGE: &str = "wasi:http/";
/// The export that makes a component a wasi:http 0.2 proxy (any 0.2.x).
pub const INCOMING_HANDLER_P2: &str = "wasi:http/incoming-handler@0.2.";

/// A proxy request's wasi:http state, in its store next to everything every world has.
pub struct ProxyState {
    /// wasmtime-wasi-http's context (its field size limit).
    ctx: WasiHttpCtx,
    /// How outbound requests are sent: the route's allow-list.
    outbound: outbound::Outbound,
    /// The response as the guest builds it.
    response: Arc<response::Response>,
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        let proxy = self.http.as_deref_mut().expect("a proxy request's store has its wasi:http state from the start");
        WasiHttpCtxView { ctx: &mut proxy.ctx, table: &mut self.table, hooks: &mut proxy.outbound }
    }
}

/// The wasi:http state of a proxy request's store.
fn proxy(state: &HostState) -> &ProxyState {
    state.http.as_deref().expect("a proxy request's store has its wasi:http state from the start")
}

/// Links wasi:http (with the response body and its `finish` made Tether's, see `response`) and
/// Tether's `conn` and `lifecycle` into `linker`, which has WASI already.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    response::add_to_linker(linker)?;
    super::tether::add_request_state_to_linker(linker)
}

/// Runs one request in a fresh instance of `pre`: builds its `incoming-request` and
/// `response-outparam`, instantiates, calls `handle`, and checks the response it left.
pub async fn run(pre: &ProxyPre<HostState>, store: &mut Store<HostState>, settings: &Arc<GuestSettings>) -> Result<(), Failed> {
    let state = store.data_mut();
    let incoming = request::incoming(state).map_err(Failed::Running)?;
    let scheme = if state.head.scheme() == "https" { Scheme::Https } else { Scheme::Http };
    let response = Arc::new(response::Response::default());
    state.http = Some(Box::new(ProxyState {
        ctx: WasiHttpCtx::new(),
        outbound: outbound::Outbound::new(settings.clone()),
        response: response.clone(),
    }));
    let outparam = response.outparam(state.output.clone());
    let mut view = state.http();
    let request = view.new_incoming_request(scheme, incoming).map_err(Failed::Running)?;
    let out = view.new_response_outparam_from_callback(outparam).map_err(Failed::Running)?;
    let proxy = pre.instantiate_async(&mut *store).await.map_err(Failed::Instantiating)?;
    proxy.wasi_http_incoming_handler().call_handle(&mut *store, request, out).await.map_err(Failed::Running)?;
    response.end(&store.data().output).await.map_err(Failed::Running)
}
