//! The example guests compiled into the binary, and the built-in example manifest that serves
//! them when `tether serve` is given no manifest: the Rust examples (guest/examples/NAME.rs) and
//! one component per other language serving every example (guest/examples/{js,python,c}/),
//! which host/build.rs builds; and PHP's component (`builtin:php`, scripts/build-php), which
//! serves the PHP scripts of the directory its route preopens.

use crate::manifest::{Manifest, ManifestError, Origin};

/// The built-in example manifest.
pub const EXAMPLE_MANIFEST: &str = include_str!("example.toml");

macro_rules! guest {
    ($name:literal) => {
        ($name, include_bytes!(concat!(env!("TETHER_GUEST_DIR"), "/", $name, ".wasm")) as &[u8])
    };
}

/// A language's example component, by the name of its directory under `guest/examples/`.
macro_rules! lang_guest {
    ($lang:literal) => {
        (concat!("seeds_", $lang), include_bytes!(concat!(env!("TETHER_LANG_GUEST_DIR"), "/", $lang, "/seeds.wasm")) as &[u8])
    };
}

/// The guests compiled into the binary, by name (`builtin:NAME` in a manifest).
pub const BUILTIN_GUESTS: &[(&str, &[u8])] = &[
    guest!("index"),
    guest!("hello"),
    guest!("echo"),
    guest!("headers"),
    guest!("seed_a"),
    guest!("seed_a2"),
    guest!("seed_b"),
    lang_guest!("js"),
    lang_guest!("python"),
    lang_guest!("c"),
    ("php", include_bytes!(concat!(env!("TETHER_LANG_GUEST_DIR"), "/php/php.wasm")) as &[u8]),
];

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
        let languages =
            ["/js", "/python", "/c"].into_iter().flat_map(|lang| [lang.to_owned(), format!("{lang}/echo"), format!("{lang}/seed-b")]);
        let expected: Vec<String> = ["/", "/hello", "/echo", "/headers", "/seed-a", "/seed-a2", "/seed-b"]
            .into_iter()
            .map(str::to_owned)
            .chain(languages)
            .collect();
        assert_eq!(paths, expected);
    }
}
