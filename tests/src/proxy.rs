//! The wasi:http proxy components the tests serve, one per toolchain that builds them. Each
//! serves the same behaviours, picked by the last path segment, with the same output and log
//! lines, so a wasi:http test runs over every toolchain as one more column.

use crate::{guest, lang_guest};

/// The toolchain a wasi:http proxy component is built with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Toolchain {
    /// Rust with the `wasip2` crate: `guest/fixtures/proxy.rs`, built by `host/build.rs`. It
    /// serves every behaviour the tests use.
    Rust,
    /// Python with componentize-py: `guest/examples/python/proxy.py`, built by
    /// `scripts/build-langs python`. It serves `hello`, `stream`, `echo`, `flood`, `sleep`,
    /// `spin` and the seeds of the abort table.
    Python,
}

impl Toolchain {
    /// Every toolchain.
    pub const ALL: [Toolchain; 2] = [Toolchain::Rust, Toolchain::Python];

    /// Its name, as routes and failures spell it.
    pub fn name(self) -> &'static str {
        match self {
            Toolchain::Rust => "rust",
            Toolchain::Python => "python",
        }
    }

    /// Its built proxy component.
    pub fn component(self) -> String {
        match self {
            Toolchain::Rust => guest("proxy"),
            Toolchain::Python => lang_guest("python", "proxy"),
        }
    }
}
