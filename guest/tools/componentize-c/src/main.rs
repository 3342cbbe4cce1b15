//! `componentize-c`: the two steps of building a Tether guest in C that are not the C compiler's.
//!
//! ```text
//! componentize-c bindings  WIT_DIR WORLD OUT_DIR   C bindings: WORLD.h, WORLD.c, WORLD_component_type.o
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

use anyhow::{Context, Result, bail};
use std::path::Path;
use wit_parser::{Resolve, WorldId};

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
        ["component", core, out] => component(core, out),
        ["wit", path] => wit(path),
        _ => bail!("usage: componentize-c bindings WIT_DIR WORLD OUT_DIR | component CORE.wasm OUT.wasm | wit COMPONENT.wasm"),
    }
}
