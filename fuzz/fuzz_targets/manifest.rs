//! The manifest parser: any text is a manifest or an error naming where it went wrong, never a
//! panic. Components resolve against a directory that does not exist, and `builtin:` names
//! against the examples compiled into the binary, as for a manifest file the server loads.

#![no_main]

use host::manifest::{Manifest, Origin};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;

/// Where the fuzzed manifest claims to live: nothing under it exists.
const ORIGIN: &str = "/nonexistent/tether-fuzz/tether.toml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Manifest::parse(text, Origin::File(PathBuf::from(ORIGIN)), host::examples::builtin);
});
