//! Overload in the log: while the server refuses requests with 503 (every instance busy, or no
//! memory for another), the log says so once when the refusals start and once when a request
//! gets a guest again, with how many were refused and for how long, instead of a line per
//! refused request at the moment the server can least afford them. The run ends with the first
//! request that arrived during it and got a guest: requests already running when it began (the
//! ones holding every instance) do not end it by ending.

use std::fmt::Display;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// What the log says at the first refusal of a run (with `reason`).
pub const OVERLOADED: &str = "refusing requests with 503 until a guest can run again";
/// What the log says when a request gets a guest after refusals (with `refused` and
/// `overloaded_ms`).
pub const SERVING_AGAIN: &str = "serving again after refusing requests";

/// The current run of refusals, if there is one.
#[derive(Debug, Default)]
pub struct Overload {
    /// Whether a run is on: read by every request that got a guest, so that the common case
    /// takes no lock.
    refusing: AtomicBool,
    /// When the run started and how many requests it refused.
    run: Mutex<Option<(Instant, u64)>>,
}

impl Overload {
    /// A request refused with 503 for `reason`: the first of a run is logged.
    pub fn refused(&self, reason: &dyn Display) {
        let mut run = self.run.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (_, refused) = run.get_or_insert_with(|| {
            tracing::warn!(%reason, "{OVERLOADED}");
            self.refusing.store(true, Ordering::Release);
            (Instant::now(), 0)
        });
        *refused += 1;
    }

    /// A request that arrived at `arrived` got a guest: if it arrived during a run of
    /// refusals, the run is over and logged.
    pub fn served(&self, arrived: Instant) {
        if !self.refusing.load(Ordering::Acquire) {
            return;
        }
        let mut run = self.run.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((since, refused)) = run.take_if(|(since, _)| *since <= arrived) {
            self.refusing.store(false, Ordering::Release);
            tracing::info!(refused, overloaded_ms = since.elapsed().as_millis(), "{SERVING_AGAIN}");
        }
    }
}
