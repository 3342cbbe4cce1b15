//! Gives freed heap memory back to the OS once the server is idle after a burst.
//!
//! glibc's malloc keeps what requests freed in its per-thread arenas instead of returning it
//! (about 290 MB stay resident after 10,000 concurrent requests end). When no
//! request has been in flight for [`IDLE_TRIM_DELAY`], [`IdleTrim::run`] calls `malloc_trim`
//! before and after the caller's own release (the instance pool's, in `routes`). Under steady
//! traffic it never runs, so it costs requests nothing. It also tells `routes` how much
//! anonymous memory the process holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// How long the server must have had no request in flight before its heap is trimmed.
pub const IDLE_TRIM_DELAY: Duration = Duration::from_secs(1);

/// Counts requests in flight and trims the heap when the count has stayed at zero for
/// [`IDLE_TRIM_DELAY`].
#[derive(Debug, Default)]
pub struct IdleTrim {
    /// Requests in flight.
    busy: AtomicUsize,
    /// How many times the server went idle, so that a quiet period broken by activity starts over.
    idle_periods: AtomicU64,
    /// Wakes [`IdleTrim::run`] when the server goes idle.
    went_idle: Notify,
}

/// A request in flight, counted until dropped.
#[derive(Debug)]
pub struct Busy {
    /// The counter.
    trim: Arc<IdleTrim>,
}

/// The message logged when, idle for [`IDLE_TRIM_DELAY`], the server has given freed heap
/// memory back (with `rss_before_kib` and `rss_after_kib`); by then every finished instance is
/// torn down. Tests and benchmarks wait for it (the `tests` crate spells it out again).
const IDLE_TRIMMED: &str = "idle: returned freed memory to the OS";

impl IdleTrim {
    /// Counts a request in flight until the returned guard is dropped.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy { trim: self.clone() }
    }

    /// After each idle period that follows activity, trims the heap, calls `release` (which
    /// may give other memory back, the instance pool's, and sees the heap as it is once
    /// trimmed) and trims again; runs forever.
    pub async fn run(self: Arc<Self>, mut release: impl FnMut()) {
        self.after_each_idle_period(|| {
            let before = resident_kib();
            trim();
            release();
            trim();
            tracing::info!(rss_before_kib = before, rss_after_kib = resident_kib(), "{IDLE_TRIMMED}");
        })
        .await;
    }

    /// Calls `action` each time the server has stayed idle for [`IDLE_TRIM_DELAY`] after
    /// activity; runs forever.
    async fn after_each_idle_period(&self, mut action: impl FnMut()) {
        loop {
            self.went_idle.notified().await;
            let generation = self.idle_periods.load(Ordering::Acquire);
            tokio::time::sleep(IDLE_TRIM_DELAY).await;
            if self.busy.load(Ordering::Acquire) == 0 && self.idle_periods.load(Ordering::Acquire) == generation {
                action();
            }
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.trim.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.trim.idle_periods.fetch_add(1, Ordering::AcqRel);
            self.trim.went_idle.notify_one();
        }
    }
}

/// Releases the free memory of every malloc arena.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim(3) only releases memory malloc holds as free; it has no preconditions.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The process's resident set in KiB, for the log (0 where /proc is unavailable).
fn resident_kib() -> u64 {
    statm().map_or(0, |(resident, _)| resident / 1024)
}

/// The process's anonymous resident memory in bytes: its heap, thread stacks and instance pool,
/// without the pages of mapped files (its code), which the kernel can drop at any time (0 where
/// /proc is unavailable).
pub fn anonymous_resident() -> u64 {
    statm().map_or(0, |(resident, file_backed)| resident.saturating_sub(file_backed))
}

/// The process's resident set and the file-backed (and shared) part of it, in bytes.
fn statm() -> Option<(u64, u64)> {
    let page = rustix::param::page_size() as u64;
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let mut pages = statm.split_whitespace().skip(1).map(|field| field.parse::<u64>().ok());
    Some((pages.next()?? * page, pages.next()?? * page))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// Runs `after_each_idle_period` in the background, counting its calls.
    fn counting(trim: &Arc<IdleTrim>) -> Arc<AtomicU32> {
        let calls = Arc::new(AtomicU32::new(0));
        let (trim, counter) = (trim.clone(), calls.clone());
        tokio::spawn(async move { trim.after_each_idle_period(|| _ = counter.fetch_add(1, Ordering::Relaxed)).await });
        calls
    }

    /// Lets the background task run, then moves the paused clock on by `by`.
    async fn pass(by: Duration) {
        tokio::task::yield_now().await;
        tokio::time::advance(by).await;
        tokio::task::yield_now().await;
    }

    #[tokio::test(start_paused = true)]
    async fn acts_once_the_last_request_is_followed_by_a_quiet_period() {
        let trim = Arc::new(IdleTrim::default());
        let calls = counting(&trim);
        let (first, second) = (trim.busy(), trim.busy());
        drop(first);
        pass(IDLE_TRIM_DELAY * 2).await;
        assert_eq!(calls.load(Ordering::Relaxed), 0, "a request is still in flight");
        drop(second);
        pass(IDLE_TRIM_DELAY / 2).await;
        assert_eq!(calls.load(Ordering::Relaxed), 0, "not quiet for long enough yet");
        pass(IDLE_TRIM_DELAY).await;
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        pass(IDLE_TRIM_DELAY * 5).await;
        assert_eq!(calls.load(Ordering::Relaxed), 1, "an idle server is trimmed once, not periodically");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_during_the_quiet_period_starts_it_over() {
        let trim = Arc::new(IdleTrim::default());
        let calls = counting(&trim);
        drop(trim.busy());
        pass(IDLE_TRIM_DELAY * 3 / 4).await;
        drop(trim.busy());
        pass(IDLE_TRIM_DELAY / 2).await;
        assert_eq!(calls.load(Ordering::Relaxed), 0, "the first quiet period was broken");
        pass(IDLE_TRIM_DELAY).await;
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }
}
