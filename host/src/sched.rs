//! Which thread runs what, and at which priority.
//!
//! Request tasks run on the guest threads. With `guests_start_on = "io-threads"` a request's
//! task starts on the I/O thread that read the request instead, so that the common short
//! request runs where its socket is, with no hand-off between threads (measured: a third more
//! hello requests per second, half the p99). A guest that an epoch tick finds running Wasm on an
//! I/O thread asks to leave it ([`leave_io_thread`]), and [`until_leaving`] hands its task to the
//! guest threads: an I/O thread never runs Wasm for much more than a tick.
//!
//! Guest workers and the reaper run at a lower priority and with a short time slice, and a guest
//! that computes yields the CPU at each epoch tick, so that a thread woken by a client's FIN or
//! RST (Tether's I/O thread, or nginx's worker) gets to run at once instead of waiting for the
//! kernel's next scheduler tick (measured: milliseconds of extra abort latency on a 2-core
//! machine). The reaper, which tears down stopped guests, runs lower still, so that stopping
//! guests comes before cleaning up after them.

use std::cell::Cell;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

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
}

/// Marks the calling thread as one that serves sockets: guests started on it leave it once an
/// epoch tick finds them running Wasm.
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

/// Polls `task` where it was spawned until it completes (`None`) or its guest asked to leave
/// the I/O thread (`Some`, with the task to continue elsewhere).
pub async fn until_leaving<F: Future<Output = ()> + Unpin>(task: F) -> Option<F> {
    let mut task = Some(task);
    std::future::poll_fn(move |cx| {
        let polled = Pin::new(task.as_mut().expect("polled after completion")).poll(cx);
        if polled.is_ready() {
            return Poll::Ready(None);
        }
        if LEAVING.replace(false) { Poll::Ready(task.take()) } else { Poll::Pending }
    })
    .await
}
