//! The guest worlds a component may target, each behind the same seam: a linker that provides
//! its imports, a pre-instance that type-checks the component against it, and a way to run one
//! request in a fresh instance. Every world's store is set up the same way ([`super::store`]);
//! only what the component imports and exports differs.
//!
//! There is one `bindgen!` per world, in that world's module.

pub mod tether;

use super::LoadError;
use super::store::HostState;
use anyhow::Context as _;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

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
}

impl Linkers {
    /// The linkers for `engine`.
    pub fn new(engine: &Engine) -> anyhow::Result<Self> {
        let mut tether = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut tether).map_err(anyhow::Error::from).context("linking WASI")?;
        tether::add_to_linker(&mut tether).map_err(anyhow::Error::from).context("linking the tether world")?;
        Ok(Self { tether })
    }
}

/// A component linked and type-checked against its world, ready to instantiate once per
/// request.
#[derive(Clone)]
pub enum WorldPre {
    /// A component of the Tether world, `tether:guest/handler`.
    Tether(tether::HandlerPre<HostState>),
}

impl WorldPre {
    /// Links `component` against its world.
    pub fn new(linkers: &Linkers, component: &Component) -> Result<Self, LoadError> {
        let world = |error: wasmtime::Error| LoadError::World(format!("{error:#}"));
        let pre = linkers.tether.instantiate_pre(component).map_err(world)?;
        Ok(WorldPre::Tether(tether::HandlerPre::new(pre).map_err(world)?))
    }

    /// Runs one request in a fresh instance, in `store`.
    pub async fn run(&self, store: &mut Store<HostState>) -> Result<(), Failed> {
        match self {
            WorldPre::Tether(pre) => tether::run(pre, store).await,
        }
    }
}
