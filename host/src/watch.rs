//! `tether serve --watch`: tells the server when the manifest or one of its component files
//! changes, so that it reloads, for development. It watches each file's directory (an editor or
//! a build often replaces a file by renaming another over it) through the notify crate, and
//! waits for the changes to settle before it tells.

use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long the files must be left alone after a change before the server reloads: a build
/// writes a component in several steps, and a save may touch the manifest twice.
const SETTLE: Duration = Duration::from_millis(200);

/// A watch over the files the manifest in force reads.
pub struct Watch {
    watcher: RecommendedWatcher,
    /// The paths of changed files, from the watcher's thread.
    changes: mpsc::UnboundedReceiver<Vec<PathBuf>>,
    /// The files that matter, canonical where they exist.
    files: HashSet<PathBuf>,
    /// The directories watched.
    directories: HashSet<PathBuf>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").field("files", &self.files).finish_non_exhaustive()
    }
}

/// `path` made absolute and canonical where it can be, for comparing with the watcher's paths.
fn canonical(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => parent.canonicalize().map_or_else(|_| path.to_path_buf(), |parent| parent.join(name)),
        _ => path.to_path_buf(),
    }
}

impl Watch {
    /// A watch over nothing yet.
    pub fn new() -> anyhow::Result<Self> {
        let (sender, changes) = mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) if !event.kind.is_access() => {
                let _ = sender.send(event.paths);
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "watching the manifest's files"),
        })?;
        Ok(Self { watcher, changes, files: HashSet::new(), directories: HashSet::new() })
    }

    /// Watches `files` from now on, instead of the files watched so far.
    pub fn files(&mut self, files: impl IntoIterator<Item = PathBuf>) {
        self.files = files.into_iter().map(|file| canonical(&file)).collect();
        let directories: HashSet<PathBuf> = self.files.iter().filter_map(|file| file.parent().map(Path::to_path_buf)).collect();
        for gone in self.directories.difference(&directories) {
            let _ = self.watcher.unwatch(gone);
        }
        for new in directories.difference(&self.directories) {
            if let Err(error) = self.watcher.watch(new, RecursiveMode::NonRecursive) {
                tracing::warn!(%error, directory = %new.display(), "cannot watch for changes");
            }
        }
        self.directories = directories;
        tracing::info!(files = self.files.len(), "watching the manifest and its components for changes");
    }

    /// Waits until a watched file has changed and then stayed alone for `SETTLE`.
    pub async fn changed(&mut self) {
        loop {
            let Some(paths) = self.changes.recv().await else { return std::future::pending().await };
            if paths.iter().any(|path| self.files.contains(&canonical(path))) {
                break;
            }
        }
        while let Ok(Some(_)) = tokio::time::timeout(SETTLE, self.changes.recv()).await {}
    }
}
