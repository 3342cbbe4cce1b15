//! Thread scheduling for guest workers and the reaper: they run at a lower priority and with a
//! short time slice, and a guest that computes yields the CPU at each epoch tick, so that a
//! thread woken by a client's FIN or RST (Tether's I/O thread, or nginx's worker) gets to run at
//! once instead of waiting for the kernel's next scheduler tick (measured: milliseconds of extra
//! abort latency on a 2-core machine). The reaper, which tears down stopped guests, runs lower
//! still, so that stopping guests comes before cleaning up after them.

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
