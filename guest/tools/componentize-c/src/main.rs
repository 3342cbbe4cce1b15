//! `componentize-c`: the steps of building a Tether guest in C that are not the C compiler's.
//!
//! ```text
//! componentize-c bindings  WIT_DIR WORLD OUT_DIR    C bindings: WORLD.h, WORLD.c, WORLD_component_type.o
//! componentize-c snapshot  CORE.wasm OUT.wasm INIT  a core module pre-initialised by its export INIT
//! componentize-c component CORE.wasm OUT.wasm       a component from a wasm32-wasi core module
//! componentize-c wit       COMPONENT.wasm           the world a component imports and exports
//! ```
//!
//! `bindings` runs wit-bindgen's C generator over the Tether WIT package, as `wit-bindgen c`
//! does: the files it writes are generated, never edited, and rewritten by every build. The
//! object file carries the world's type information into the linked core module (a custom
//! section), where `component` finds it: it encodes the component with wit-component, linking
//! wasi-libc's preview1 imports to the WASI preview1 adapter of the host's wasmtime (the reactor
//! adapter: the module exports functions, not `_start`; wit-component calls its `_initialize`).
//!
//! `snapshot` is Wizer's pre-initialisation, for a guest whose start-up does not depend on its
//! request (the PHP guest's module start-up): it instantiates the core module once, runs its
//! reactor `_initialize` (wasi-libc's constructors) and then the export INIT, and writes a core
//! module whose memory and globals start where INIT left them. The output no longer exports
//! `_initialize` or INIT, so wit-component calls neither and every instance starts from the
//! snapshot. INIT runs against a WASI preview1 context with nothing in it: no arguments, no
//! environment, no directories, no stdin; its clocks stopped at zero (what start-up reads of
//! them is a constant in the snapshot, not the build's time); stdout and stderr kept, and any
//! output fails the snapshot (start-up reported something); and a random generator that fails
//! it when drawn from (bytes drawn at build time would be every instance's). The Tether imports
//! trap: INIT has no request. What the guest's libc read of that context (its environment and
//! preopened directories) is the guest's to read again per request.

use anyhow::{Context, Result, bail};
use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use wasmtime::{Engine, Instance, Linker, Module, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtxBuilder};
use wasmtime_wizer::Wizer;
use wit_parser::{Resolve, WorldId};

/// The most of the init function's stdout or stderr that `snapshot` keeps to show: start-up
/// output is an error message or two, never more.
const INIT_OUTPUT_CAPACITY: usize = 64 * 1024;

/// Loads the WIT package in `dir` and selects `world` in it.
fn load_world(dir: &str, world: &str) -> Result<(Resolve, WorldId)> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_dir(Path::new(dir)).with_context(|| format!("reading the WIT package in {dir}"))?;
    let world = resolve.select_world(&[package], Some(world)).with_context(|| format!("selecting world `{world}`"))?;
    Ok((resolve, world))
}

/// `bindings WIT_DIR WORLD OUT_DIR`.
fn bindings(wit: &str, world: &str, out: &str) -> Result<()> {
    let (mut resolve, world) = load_world(wit, world)?;
    let opts = wit_bindgen_c::Opts::default();
    let mut files = wit_bindgen_core::Files::default();
    opts.build().generate(&mut resolve, world, &mut files).context("generating the C bindings")?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {out}"))?;
    for (name, contents) in files.iter() {
        let path = Path::new(out).join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The snapshot's clocks, stopped at zero (the epoch, for the wall clock). wasi-libc's
/// `clock()` and `times()` count from their start-up reading of the monotonic clock, which is
/// then 0: in an instance, from its own monotonic clock's origin, as without a snapshot.
struct StoppedClock;

impl HostWallClock for StoppedClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for StoppedClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The snapshot's secure random generator: zeros, with a count of the bytes drawn, so that
/// `snapshot` can refuse entropy that every instance would share.
struct CountedZeros(Arc<AtomicUsize>);

impl rand_core::TryRng for CountedZeros {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        self.0.fetch_add(size_of::<u32>(), Ordering::Relaxed);
        Ok(0)
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.0.fetch_add(size_of::<u64>(), Ordering::Relaxed);
        Ok(0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.0.fetch_add(dst.len(), Ordering::Relaxed);
        dst.fill(0);
        Ok(())
    }
}

/// Instantiates the instrumented module for the snapshot: WASI preview1 from the store's
/// context, every other import (Tether's) a trap.
async fn instantiate(store: &mut Store<WasiP1Ctx>, module: &Module) -> wasmtime::Result<Instance> {
    let mut linker = Linker::new(store.engine());
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |wasi| wasi)?;
    linker.define_unknown_imports_as_traps(module)?;
    linker.instantiate_async(store, module).await
}

/// `snapshot CORE OUT INIT`.
fn snapshot(core: &str, out: &str, init: &str) -> Result<()> {
    let module = std::fs::read(core).with_context(|| format!("reading {core}"))?;
    let stdout = MemoryOutputPipe::new(INIT_OUTPUT_CAPACITY);
    let stderr = MemoryOutputPipe::new(INIT_OUTPUT_CAPACITY);
    let drawn = Arc::new(AtomicUsize::new(0));
    let wasi = WasiCtxBuilder::new()
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .wall_clock(StoppedClock)
        .monotonic_clock(StoppedClock)
        .secure_random(CountedZeros(drawn.clone()))
        .build_p1();
    let engine = Engine::default();
    let mut store = Store::new(&engine, wasi);
    let result = wasmtime_wasi::runtime::in_tokio(Wizer::new().init_func(init).run(&mut store, &module, instantiate));
    let output = [stdout.contents(), stderr.contents()].concat();
    let output = String::from_utf8_lossy(&output);
    let snapshot = result.map_err(anyhow::Error::from).with_context(|| {
        if output.is_empty() {
            format!("pre-initialising {core} with `{init}`")
        } else {
            format!("pre-initialising {core} with `{init}`, which wrote {output:?}")
        }
    })?;
    if !output.is_empty() {
        bail!("`{init}` wrote at start-up, which a snapshot must not: {output:?}");
    }
    let drawn = drawn.load(Ordering::Relaxed);
    if drawn > 0 {
        bail!("`{init}` drew on the random generator at start-up ({drawn} bytes): every instance would start with the same ones");
    }
    std::fs::write(out, snapshot).with_context(|| format!("writing {out}"))
}

/// `component CORE OUT`.
fn component(core: &str, out: &str) -> Result<()> {
    let module = std::fs::read(core).with_context(|| format!("reading {core}"))?;
    use wasi_preview1_component_adapter_provider as adapter;
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .context("reading the core module")?
        .validate(true)
        .adapter(adapter::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, adapter::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER)
        .context("adding the WASI preview1 adapter")?
        .encode()
        .with_context(|| format!("encoding a component from {core}"))?;
    std::fs::write(out, component).with_context(|| format!("writing {out}"))
}

/// `wit COMPONENT`: prints the component's world.
fn wit(path: &str) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    let decoded = wit_component::decode(&bytes).with_context(|| format!("decoding {path}"))?;
    let mut printer = wit_component::WitPrinter::default();
    printer.print(decoded.resolve(), decoded.package(), &[])?;
    print!("{}", printer.output);
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["bindings", wit_dir, world, out] => bindings(wit_dir, world, out),
        ["snapshot", core, out, init] => snapshot(core, out, init),
        ["component", core, out] => component(core, out),
        ["wit", path] => wit(path),
        _ => bail!(
            "usage: componentize-c bindings WIT_DIR WORLD OUT_DIR | snapshot CORE.wasm OUT.wasm INIT | component CORE.wasm OUT.wasm | wit COMPONENT.wasm"
        ),
    }
}
