//! The guest worlds a component may target, each behind the same seam: a linker that provides
//! its imports, a pre-instance that type-checks the component against it, and a way to run one
//! request in a fresh instance. Every world's store is set up the same way ([`super::store`]);
//! only what the component imports and exports differs.
//!
//! A component's exports say its world: `wasi:http/incoming-handler@0.2.x` makes it a
//! wasi:http proxy (`wasi_http`), anything else is taken for a Tether guest (`tether`), whose
//! linker then says what does not fit. There is one `bindgen!` per world, in that world's
//! module (wasi:http's is wasmtime-wasi-http's own).

pub mod tether;
pub mod wasi_http;

use super::store::HostState;
use super::{GuestSettings, LoadError};
use anyhow::Context as _;
use std::sync::Arc;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

/// The worlds Tether serves (the manifest's `world`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// `tether:guest/handler` (`wit/tether.wit`).
    Tether,
    /// `wasi:http/proxy` 0.2.
    WasiHttp,
}

impl World {
    /// Its name in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            World::Tether => "tether",
            World::WasiHttp => "wasi-http",
        }
    }

    /// The WIT world, for errors.
    fn wit(self) -> &'static str {
        match self {
            World::Tether => "tether:guest/handler",
            World::WasiHttp => "wasi:http/proxy",
        }
    }

    /// The world `component`'s exports make it, or why it can be in none Tether serves.
    fn of(engine: &Engine, component: &Component) -> Result<World, LoadError> {
        let ty = component.component_type();
        let mut http = ty.exports(engine).map(|(name, _)| name).filter(|name| name.starts_with(wasi_http::HANDLER_PACKAGE));
        match http.next() {
            None => Ok(World::Tether),
            Some(name) if name.starts_with(wasi_http::INCOMING_HANDLER_P2) => Ok(World::WasiHttp),
            Some(name) => Err(LoadError::World {
                world: World::WasiHttp.wit(),
                message: format!("it exports `{name}`; Tether serves wasi:http 0.2 (`{}*`) only", wasi_http::INCOMING_HANDLER_P2),
            }),
        }
    }
}

/// How running a request in a world failed.
pub enum Failed {
    /// The instance could not be created.
    Instantiating(wasmtime::Error),
    /// The guest trapped, or was stopped, while it ran.
    Running(wasmtime::Error),
}

/// Each world's linker: WASI, with nothing granted but what the route's settings give the
/// store, plus the world's own interfaces.
pub struct Linkers {
    /// The Tether world.
    tether: Linker<HostState>,
    /// The wasi:http proxy world, with Tether's `conn` and `lifecycle` next to it.
    wasi_http: Linker<HostState>,
}

impl Linkers {
    /// The linkers for `engine`.
    pub fn new(engine: &Engine) -> anyhow::Result<Self> {
        let wasi = || -> anyhow::Result<Linker<HostState>> {
            let mut linker = Linker::new(engine);
            wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from).context("linking WASI")?;
            Ok(linker)
        };
        let mut tether = wasi()?;
        tether::add_to_linker(&mut tether).map_err(anyhow::Error::from).context("linking the tether world")?;
        let mut wasi_http = wasi()?;
        wasi_http::add_to_linker(&mut wasi_http).map_err(anyhow::Error::from).context("linking the wasi:http world")?;
        Ok(Self { tether, wasi_http })
    }
}

/// A component linked and type-checked against its world, ready to instantiate once per
/// request.
#[derive(Clone)]
pub enum WorldPre {
    /// A component of the Tether world, `tether:guest/handler`.
    Tether(tether::HandlerPre<HostState>),
    /// A wasi:http proxy component.
    WasiHttp(wasi_http::ProxyPre<HostState>),
}

impl WorldPre {
    /// Links `component` against the world its exports make it.
    pub fn new(linkers: &Linkers, engine: &Engine, component: &Component) -> Result<Self, LoadError> {
        let world = World::of(engine, component)?;
        let error = |error: wasmtime::Error| LoadError::World { world: world.wit(), message: format!("{error:#}") };
        match world {
            World::Tether => {
                let pre = linkers.tether.instantiate_pre(component).map_err(error)?;
                Ok(WorldPre::Tether(tether::HandlerPre::new(pre).map_err(error)?))
            }
            World::WasiHttp => {
                let pre = linkers.wasi_http.instantiate_pre(component).map_err(error)?;
                Ok(WorldPre::WasiHttp(wasi_http::ProxyPre::new(pre).map_err(error)?))
            }
        }
    }

    /// The world the component is in.
    pub fn world(&self) -> World {
        match self {
            WorldPre::Tether(_) => World::Tether,
            WorldPre::WasiHttp(_) => World::WasiHttp,
        }
    }

    /// Runs one request in a fresh instance, in `store`, under the route's `settings`.
    pub async fn run(&self, store: &mut Store<HostState>, settings: &Arc<GuestSettings>) -> Result<(), Failed> {
        match self {
            WorldPre::Tether(pre) => tether::run(pre, store).await,
            WorldPre::WasiHttp(pre) => wasi_http::run(pre, store, settings).await,
        }
    }
}
