//! The on-disk cache of compiled components, so that a restart loads each component in well
//! under a millisecond instead of recompiling it, and so that a new engine can load the very
//! code the old one ran (when the idle server gives its instance pool back).
//!
//! An entry's name is a SHA-256 of the component's bytes and of the engine's compatibility hash
//! (wasmtime version, target, compiler settings), so a changed component or a different engine
//! never picks up a stale entry. Entries are written to a temporary file and renamed into place,
//! so concurrent servers sharing the directory never see a torn file.

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use wasmtime::Engine;
use wasmtime::component::Component;

/// File extension of cache entries (wasmtime's name for precompiled artifacts).
const ENTRY_EXTENSION: &str = "cwasm";

/// Where a component came from, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provenance {
    /// Loaded from the cache.
    Cached,
    /// Compiled now (and stored, if there is a cache).
    Compiled,
}

/// A directory of compiled components.
#[derive(Clone, Debug)]
pub struct CompileCache {
    /// The cache directory; created on first use.
    dir: PathBuf,
}

/// Feeds a `Hash` value into SHA-256.
struct ShaHasher<'a>(&'a mut Sha256);

impl Hasher for ShaHasher<'_> {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl CompileCache {
    /// A cache in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The default location: `$XDG_CACHE_HOME/tether`, else `$HOME/.cache/tether`.
    pub fn default_dir() -> Option<PathBuf> {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
            .map(|base| base.join("tether"))
    }

    fn entry_path(&self, engine: &Engine, wasm: &[u8]) -> PathBuf {
        let mut sha = Sha256::new();
        engine.precompile_compatibility_hash().hash(&mut ShaHasher(&mut sha));
        sha.update(wasm);
        let digest = sha.finalize();
        let name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(name).with_extension(ENTRY_EXTENSION)
    }

    /// Loads the compiled form of `wasm` from the cache, or compiles and stores it. A corrupt
    /// or incompatible entry is replaced; a cache that cannot be written only costs a warning.
    /// Returns the entry's path too if the cache holds it now, for [`CompileCache::load`].
    pub fn load_or_compile(&self, engine: &Engine, wasm: &[u8]) -> anyhow::Result<(Component, Provenance, Option<PathBuf>)> {
        let path = self.entry_path(engine, wasm);
        if path.exists() {
            match Self::load(engine, &path) {
                Ok(component) => return Ok((component, Provenance::Cached, Some(path))),
                Err(error) => tracing::warn!(path = %path.display(), %error, "ignoring unusable cache entry"),
            }
        }
        let component = Component::new(engine, wasm).map_err(anyhow::Error::from)?;
        match self.store(&path, &component) {
            Ok(()) => Ok((component, Provenance::Compiled, Some(path))),
            Err(error) => {
                tracing::warn!(dir = %self.dir.display(), error = format!("{error:#}"), "cannot write the compile cache");
                Ok((component, Provenance::Compiled, None))
            }
        }
    }

    /// Loads the cache entry at `path` (from [`CompileCache::load_or_compile`]) into `engine`,
    /// which must be configured as the one that compiled it.
    pub fn load(engine: &Engine, path: &Path) -> anyhow::Result<Component> {
        // SAFETY: `deserialize_file` trusts the file to be wasmtime's own output. Entries are
        // only ever written below (by `Component::serialize`) into the server's own cache
        // directory, named by a hash over the input and the engine, and wasmtime still
        // checks the header and engine compatibility. Whoever can write this directory
        // can already replace the server's components, so no new trust is extended.
        #[allow(unsafe_code)]
        unsafe { Component::deserialize_file(engine, path) }.map_err(anyhow::Error::from)
    }

    /// Writes the entry so that a reader only ever sees a whole file: into a temporary file of
    /// this writer's own (created exclusively: two servers sharing the directory, even with the
    /// same process id in two containers, never write the same one), synced to disk, then
    /// renamed into place.
    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        use std::io::Write as _;
        static STORES: AtomicU64 = AtomicU64::new(0);
        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        let bytes = component.serialize().map_err(anyhow::Error::from)?;
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let unique = format!("{}.{nanos}.{}", std::process::id(), STORES.fetch_add(1, Ordering::Relaxed));
        let tmp = path.with_extension(format!("{ENTRY_EXTENSION}.{unique}.tmp"));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut file| file.write_all(&bytes).and_then(|()| file.sync_all()))
            .with_context(|| format!("writing {}", tmp.display()))
            .and_then(|()| std::fs::rename(&tmp, path).with_context(|| format!("renaming {}", tmp.display())));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}
