//! Which thread runs what, and at which priority.
//!
//! A request starts on the I/O thread that read the request (inside its connection's task) or
//! on a guest thread, as `guests_start_on` says. On the I/O thread a short request runs to its
//! end where its socket is, with no hand-off between threads (measured: a fifth less CPU per
//! hello request through nginx, and a quarter more requests per second). A guest that an epoch
//! tick finds running Wasm on an I/O thread, once its task has held the thread for
//! [`IO_THREAD_HOLD`], asks to leave it ([`leave_io_thread`]), and [`until_leaving`] hands its
//! task to the guest threads: an I/O thread runs one guest's Wasm for at most that plus one
//! tick at the I/O threads' pace (`IO_EPOCH_TICK`, 500 µs). With `"auto"`, the default, a route
//! whose last two requests computed starts its next one on the guest threads ([`Placement`]),
//! so that a computing route costs an I/O thread a tick per request only until two of its
//! requests in a row have shown that it computes.
//!
//! Guest workers and the reaper run at a lower priority and with a short time slice, and a guest
//! that computes yields the CPU at each epoch tick, so that a thread woken by a client's FIN or
//! RST (Tether's I/O thread, or nginx's worker) gets to run at once instead of waiting for the
//! kernel's next scheduler tick (measured: milliseconds of extra abort latency on a 2-core
//! machine). The reaper, which tears down stopped guests, runs lower still, so that stopping
//! guests comes before cleaning up after them.

use std::cell::Cell;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

/// How much lower guest threads' priority is than the I/O threads' (`nice` steps).
pub const GUEST_NICENESS: i32 = 5;
/// How much lower the reaper thread's priority is than the I/O threads' (`nice` steps).
pub const REAPER_NICENESS: i32 = 10;
/// The time slice demoted threads ask the kernel for (Linux ≥ 6.12 EEVDF custom slices; the
/// kernel clamps it to its allowed range and older kernels ignore it).
pub const DEMOTED_SLICE: Duration = Duration::from_micros(100);

/// `struct sched_attr` from `linux/sched/types.h` (the fields up to `sched_period`).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
}

/// Lowers the calling thread's priority by `niceness` steps and gives it the short time slice.
/// Best effort: where the kernel refuses, the thread keeps the default scheduling and only
/// abort latency under CPU load suffers.
pub fn demote_current_thread(niceness: i32) {
    let current = rustix::process::getpriority_process(None).unwrap_or(0);
    let nice = current + niceness;
    let _ = rustix::process::setpriority_process(None, nice);
    let attr = SchedAttr {
        size: size_of::<SchedAttr>() as u32,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_nice: nice,
        sched_runtime: DEMOTED_SLICE.as_nanos() as u64,
        ..SchedAttr::default()
    };
    // SAFETY: sched_setattr(2) reads `attr.size` bytes from a valid, initialised `sched_attr`
    // for the calling thread (pid 0); no memory is written.
    #[allow(unsafe_code)]
    let result = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if result != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "no custom time slice for demoted threads");
    }
}

/// Offers the CPU to any other runnable thread (`sched_yield`); returns at once if there is
/// none. Called by a guest that computes, at each epoch tick.
pub fn yield_cpu() {
    std::thread::yield_now();
}

thread_local! {
    /// Whether this thread serves sockets ([`mark_io_thread`]).
    static IO_THREAD: Cell<bool> = const { Cell::new(false) };
    /// Set by a guest on an I/O thread that must leave it; read by [`until_leaving`] after
    /// each poll of the guest's task, on the same thread.
    static LEAVING: Cell<bool> = const { Cell::new(false) };
    /// While [`until_leaving`] polls a task on this I/O thread: when the task would have started
    /// had all its polls been one, so that the time since is how long it has held the thread.
    static HOLDING_SINCE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Marks the calling thread as one that serves sockets: guests started on it leave it once an
/// epoch tick finds them running Wasm after [`IO_THREAD_HOLD`] there.
pub fn mark_io_thread() {
    IO_THREAD.set(true);
}

/// Whether the calling thread serves sockets.
pub fn on_io_thread() -> bool {
    IO_THREAD.get()
}

/// Called by a guest on an I/O thread, which then yields to its executor: its task is to
/// continue on the guest threads.
pub fn leave_io_thread() {
    LEAVING.set(true);
}

/// Whether the task polled now on this I/O thread has held it for [`IO_THREAD_HOLD`] in all
/// (outside [`until_leaving`], as if it had).
pub fn held_io_thread_long() -> bool {
    HOLDING_SINCE.get().is_none_or(|since| since.elapsed() >= IO_THREAD_HOLD)
}

/// How a task started on an I/O thread left it.
#[derive(Debug)]
pub enum IoRun<F> {
    /// It ran to its end there.
    Finished,
    /// Its guest asked to leave, after it had held the I/O thread for [`IO_THREAD_HOLD`];
    /// `rest` is the task to continue elsewhere.
    Left { rest: F },
}

/// Polls `task` where it was spawned until it completes or its guest asks to leave the I/O
/// thread, keeping count of how long it has held the thread ([`held_io_thread_long`]).
pub async fn until_leaving<F: Future<Output = ()> + Unpin>(task: F) -> IoRun<F> {
    let mut task = Some(task);
    let mut held = Duration::ZERO;
    std::future::poll_fn(move |cx| {
        let polling = Instant::now();
        HOLDING_SINCE.set(Some(polling.checked_sub(held).unwrap_or(polling)));
        let polled = Pin::new(task.as_mut().expect("polled after completion")).poll(cx);
        HOLDING_SINCE.set(None);
        held += polling.elapsed();
        if polled.is_ready() {
            return Poll::Ready(IoRun::Finished);
        }
        if LEAVING.replace(false) {
            Poll::Ready(IoRun::Left { rest: task.take().expect("polled after completion") })
        } else {
            Poll::Pending
        }
    })
    .await
}

/// How long a task must have held an I/O thread before a tick that finds its guest in Wasm
/// moves it to the guest threads, where it counts as one that computes (for [`Placement`]). A
/// tick catches a short guest in Wasm now and then, within the 5-10 µs its whole request holds
/// the thread, and lets it finish there; a guest that computes is caught at its first tick
/// after this, up to `IO_EPOCH_TICK` later (or at a tick that finds it computing, wherever it
/// runs), and an interpreter's instantiation alone takes hundreds of microseconds.
pub const IO_THREAD_HOLD: Duration = Duration::from_micros(20);

/// Requests of a route that must compute in a row before its next request starts on the guest
/// threads under `guests_start_on = "auto"`: a short request the machine preempted while a tick
/// caught it counts as computing, and one such request alone should not move the route.
pub const COMPUTED_IN_A_ROW: u8 = 2;

/// Where a route's requests start under `guests_start_on = "auto"`: on the I/O thread that read
/// them, unless the route's last [`COMPUTED_IN_A_ROW`] requests to end computed
/// (`RequestState::computed`: each left an I/O thread after holding it for [`IO_THREAD_HOLD`],
/// or an epoch tick found its guest in Wasm at two ticks in a row), until a request ends
/// without computing. A route whose guests compute thus costs an I/O thread a tick per request
/// only while it is learned. Shared by the route's copies across generations that load the same
/// routes again.
#[derive(Debug, Default)]
pub struct Placement {
    /// How many of the route's last requests to end computed, up to [`COMPUTED_IN_A_ROW`].
    computed: AtomicU8,
}

impl Placement {
    /// Whether the route's next request starts on the I/O thread that read it.
    pub fn starts_on_io_thread(&self) -> bool {
        self.computed.load(Ordering::Relaxed) < COMPUTED_IN_A_ROW
    }

    /// Learns from a request of the route that ended, whether its guest `computed` and whether
    /// the host `stopped` it (an abort, a time limit). A guest stopped before it showed that it
    /// computes says nothing: the abort is often what cut it short.
    pub fn learn(&self, computed: bool, stopped: bool) {
        if stopped && !computed {
            return;
        }
        let now = self.computed.load(Ordering::Relaxed);
        let next = if computed { (now + 1).min(COMPUTED_IN_A_ROW) } else { 0 };
        // Written only when it changes: every request of the route, on every thread, reads it.
        if next != now {
            self.computed.store(next, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_starts_where_its_last_requests_say() {
        let placement = Placement::default();
        let computing = || (0..COMPUTED_IN_A_ROW).for_each(|_| placement.learn(true, false));
        assert!(placement.starts_on_io_thread(), "a new route starts on the I/O threads");
        placement.learn(true, false);
        placement.learn(false, false);
        computing();
        assert!(!placement.starts_on_io_thread(), "after {COMPUTED_IN_A_ROW} that computed, on the guest threads");
        placement.learn(false, true);
        assert!(!placement.starts_on_io_thread(), "one stopped before it computed says nothing");
        placement.learn(true, true);
        assert!(!placement.starts_on_io_thread(), "one stopped after it computed counts");
        placement.learn(false, false);
        assert!(placement.starts_on_io_thread(), "after one that ran short to its end, on the I/O threads again");
        (1..COMPUTED_IN_A_ROW).for_each(|_| placement.learn(true, false));
        assert!(placement.starts_on_io_thread(), "fewer than {COMPUTED_IN_A_ROW} in a row do not move it");
    }
}
