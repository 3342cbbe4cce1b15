//! The HTTP/1.1 request head parser, with the server's default limits: any bytes are parsed,
//! refused or found incomplete, never a panic, and a parsed head never claims more bytes than it
//! was given.

#![no_main]

use host::http1::parse::{HeadLimits, parse};
use host::manifest::{DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADERS};
use libfuzzer_sys::fuzz_target;

const LIMITS: HeadLimits = HeadLimits { max_bytes: DEFAULT_MAX_HEADER_BYTES as usize, max_headers: DEFAULT_MAX_HEADERS };

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((_, len))) = parse(data, LIMITS) {
        assert!(len <= data.len());
    }
});
