//! `tether build`: runs the build commands of a manifest's routes (`[route.build]`, as Spin's
//! `[component.build]`), each once, in manifest order, and checks that every route's component
//! is there afterwards.

use crate::manifest::{ComponentSource, Manifest};
use anyhow::Context as _;
use std::path::Path;
use std::process::Command;

/// Runs the build commands of `manifest`'s routes. A command that several routes share (one
/// component serving several paths) runs once. Fails at the first command that fails, naming
/// its route, or when a component is still missing after its command ran.
pub fn run(manifest: &Manifest) -> anyhow::Result<()> {
    let mut done = Vec::new();
    for route in &manifest.routes {
        let Some(build) = &route.build else { continue };
        if done.contains(&build) {
            continue;
        }
        // A manifest named without a directory (`tether.toml`) has an empty one: the current.
        let workdir = if build.workdir.as_os_str().is_empty() { Path::new(".") } else { build.workdir.as_path() };
        println!("building route[{}] {}: {} (in {})", route.index + 1, route.path, build.command, workdir.display());
        let status = Command::new("sh")
            .arg("-c")
            .arg(&build.command)
            .current_dir(workdir)
            .status()
            .with_context(|| format!("route[{}] {}: cannot run `{}`", route.index + 1, route.path, build.command))?;
        anyhow::ensure!(status.success(), "route[{}] {}: `{}` failed ({status})", route.index + 1, route.path, build.command);
        done.push(build);
    }
    for route in &manifest.routes {
        if let ComponentSource::File(file) = &route.component {
            anyhow::ensure!(
                file.is_file(),
                "route[{}] {}: {} is still missing after the build",
                route.index + 1,
                route.path,
                file.display()
            );
        }
    }
    println!("built {} command(s)", done.len());
    Ok(())
}
