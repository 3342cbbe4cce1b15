//! Per-request resource limits enforced inside the store: linear memory (PHP's
//! `memory_limit`) and the execution-time budget (PHP's `max_execution_time`, which on Linux
//! counts CPU time, so sleeping does not count).

use std::time::{Duration, Instant};

/// Instances one request may create (a component's core instances count).
const MAX_INSTANCES: usize = 100;
/// Tables one request may create.
const MAX_TABLES: usize = 100;

/// The store's resource limiter: caps linear memory and remembers whether it refused growth,
/// so that a guest that died of it is reported as such.
#[derive(Debug)]
pub struct MemoryLimiter {
    /// Most bytes any one linear memory may grow to.
    max_memory: usize,
    /// Whether a growth request was refused.
    pub hit: bool,
}

impl MemoryLimiter {
    /// A limiter allowing `max_memory` bytes per linear memory.
    pub fn new(max_memory: u64) -> Self {
        Self { max_memory: usize::try_from(max_memory).unwrap_or(usize::MAX), hit: false }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = desired <= self.max_memory;
        if !allowed {
            self.hit = true;
        }
        Ok(allowed)
    }

    fn table_growing(&mut self, _current: usize, _desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_INSTANCES
    }
}

/// Time spent running guest code, against a limit that `set-time-limit` can restart.
///
/// The runtime marks each entry into and exit from Wasm (wasmtime's call hooks); time spent in
/// host calls, such as sleeping or waiting for the body, does not count.
#[derive(Debug)]
pub struct CpuBudget {
    /// The limit; `None` is unlimited.
    limit: Option<Duration>,
    /// Guest time used since the budget was last (re)started, excluding the current stretch.
    used: Duration,
    /// When the guest entered Wasm, if it is in Wasm now.
    entered: Option<Instant>,
}

impl CpuBudget {
    /// A budget of `limit`, or unlimited.
    pub fn new(limit: Option<Duration>) -> Self {
        Self { limit, used: Duration::ZERO, entered: None }
    }

    /// The guest enters Wasm.
    pub fn enter(&mut self, now: Instant) {
        self.entered.get_or_insert(now);
    }

    /// The guest leaves Wasm for the host.
    pub fn leave(&mut self, now: Instant) {
        if let Some(entered) = self.entered.take() {
            self.used += now.saturating_duration_since(entered);
        }
    }

    /// Whether the budget is spent.
    pub fn exhausted(&self, now: Instant) -> bool {
        let Some(limit) = self.limit else { return false };
        let running = self.entered.map_or(Duration::ZERO, |entered| now.saturating_duration_since(entered));
        self.used + running > limit
    }

    /// PHP's `set_time_limit`: a fresh budget of `limit` from now.
    pub fn restart(&mut self, limit: Option<Duration>, now: Instant) {
        self.limit = limit;
        self.used = Duration::ZERO;
        if self.entered.is_some() {
            self.entered = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_time_in_wasm_counts() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut budget = CpuBudget::new(Some(ms(100)));
        budget.enter(t0);
        budget.leave(t0 + ms(60));
        // A long host call (sleep) costs nothing.
        budget.enter(t0 + ms(1060));
        assert!(!budget.exhausted(t0 + ms(1090)));
        assert!(budget.exhausted(t0 + ms(1101)));
        // set_time_limit restarts the count.
        budget.restart(Some(ms(100)), t0 + ms(1101));
        assert!(!budget.exhausted(t0 + ms(1200)));
        budget.restart(None, t0 + ms(1200));
        assert!(!budget.exhausted(t0 + ms(100_000)));
    }
}
