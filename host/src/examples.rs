//! The example guests compiled into the binary, and the built-in example manifest that serves
//! them when `tether serve` is given no manifest.

use crate::manifest::{Manifest, ManifestError, Origin};

/// The built-in example manifest.
pub const EXAMPLE_MANIFEST: &str = include_str!("example.toml");

macro_rules! guest {
    ($name:literal) => {
        ($name, include_bytes!(concat!(env!("TETHER_GUEST_DIR"), "/", $name, ".wasm")) as &[u8])
    };
}

/// The guests compiled into the binary, by name (`builtin:NAME` in a manifest).
pub const BUILTIN_GUESTS: &[(&str, &[u8])] =
    &[guest!("index"), guest!("hello"), guest!("echo"), guest!("headers"), guest!("seed_a"), guest!("seed_a2"), guest!("seed_b")];

/// Resolves `builtin:NAME`.
pub fn builtin(name: &str) -> Option<(&'static str, &'static [u8])> {
    BUILTIN_GUESTS.iter().find(|(n, _)| *n == name).copied()
}

/// The built-in example manifest, parsed.
pub fn example_manifest() -> Result<Manifest, ManifestError> {
    Manifest::parse(EXAMPLE_MANIFEST, Origin::Builtin, builtin)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_manifest_is_valid() {
        let manifest = super::example_manifest().unwrap();
        let paths: Vec<_> = manifest.routes.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/", "/hello", "/echo", "/headers", "/seed-a", "/seed-a2", "/seed-b"]);
    }
}
