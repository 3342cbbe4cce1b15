//! The state of one request, shared by the front end that watches its client (a FastCGI
//! connection carries several requests, each with its own) and the guest's store: PHP's
//! connection-status bits (ABORTED, TIMEOUT), the ignore-user-abort flag, whether the guest stops
//! itself at an aborted write, when the abort was seen, and the kill switch that stops the guest.
//!
//! Killing is two-pronged because a guest can be in one of two places:
//! - parked: not yet started, or waiting in a host call (sleeping, reading the body, blocked in
//!   a write). The dispatcher polls the guest only through a gate ([`RequestState::enter_guest`],
//!   [`RequestState::leave_guest`]); [`RequestState::kill`] closes the gate on a parked guest, which
//!   is then stopped on the spot, on the killing thread: it never runs again, and the
//!   dispatcher, woken by [`RequestState::killed`], drops its future (cancelling the call) when its
//!   thread gets to it.
//! - being polled (on a guest thread, or on the I/O thread it started on), usually running
//!   Wasm: [`RequestState::kill`] calls the runtime's interrupt hook, which bumps the engine's
//!   epoch so the guest reaches its epoch check within nanoseconds, where the runtime sees
//!   [`RequestState::kill_reason`] and traps it.

use super::outcome::monotonic_ns;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::sync::Notify;

/// Gate state: the guest is not being polled (not started yet, or waiting in a host call).
const PARKED: u8 = 0;
/// Gate state: a thread is polling the guest.
const POLLED: u8 = 1;
/// Gate state: killed while parked; never polled again.
const STOPPED: u8 = 2;

/// PHP's `CONNECTION_ABORTED` bit.
pub const ABORTED: u8 = 1;
/// PHP's `CONNECTION_TIMEOUT` bit.
pub const TIMEOUT: u8 = 2;

/// How a route learns that its client went away (manifest `abort_detection`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AbortDetection {
    /// The host watches the socket while the guest runs and sets ABORTED as soon as it sees the
    /// client's FIN, RST or a socket error, without any write.
    Prompt,
    /// PHP-exact: ABORTED is set only when a write to the socket fails.
    Write,
}

/// What the front end saw when the client's side of the connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerClose {
    /// The client shut down its sending side (FIN). It may have closed fully or only half.
    Fin,
    /// The connection was reset or failed (RST, or a socket error).
    Reset,
    /// The transport ended and half-closing means nothing on it (a FastCGI link that the web
    /// server closed, or an `FCGI_ABORT_REQUEST`): always the end of the client.
    Closed,
}

/// Why the guest is being stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillReason {
    /// The client went away and the guest does not ignore user aborts.
    Aborted,
    /// `max_execution_time` (guest CPU time) ran out.
    ExecutionTime,
    /// `request_timeout` (wall-clock time) ran out.
    RequestTimeout,
    /// The server shut down and `shutdown_grace` ran out before the request ended.
    ShutdownGrace,
}

/// A hook that makes running Wasm check its request state promptly (the runtime bumps the
/// engine epoch). The front ends and this module never see what it does.
pub type InterruptHook = Arc<dyn Fn() + Send + Sync>;

/// Shared state of one request's connection. See the module docs.
pub struct RequestState {
    /// How aborts are detected on this request's route.
    detection: AbortDetection,
    /// Whether a client half-close (FIN) counts as an abort on this route.
    half_close_aborts: bool,
    /// PHP's status bits, [`ABORTED`] | [`TIMEOUT`].
    bits: AtomicU8,
    /// PHP's `ignore_user_abort` setting.
    ignore_user_abort: AtomicBool,
    /// The guest asked that, in write mode, an aborted write be reported to it rather than trap
    /// it (`conn.report-aborted-writes`): it stops itself, as PHP bails out.
    reports_aborted_writes: AtomicBool,
    /// The complete response is being (or was) written: a client leaving now is no abort.
    responded: AtomicBool,
    /// When the host first learned that the client is gone; the start of the abort latency.
    abort_seen_at: OnceLock<Instant>,
    /// Why the guest is being stopped; set once, by the first reason.
    kill_reason: OnceLock<KillReason>,
    /// Whether the guest is parked, being polled, or stopped at the gate (see the module docs).
    gate: AtomicU8,
    /// When [`Self::kill`] stopped a parked guest, as an `Instant` and in CLOCK_MONOTONIC
    /// nanoseconds; the end of its abort latency.
    stopped_at: OnceLock<(Instant, u64)>,
    /// Wakes the dispatcher waiting in [`Self::killed`].
    kill_notify: Notify,
    /// Makes running Wasm look at `kill_reason` now rather than at its next scheduled check.
    interrupt: InterruptHook,
    /// When the request ran past its route's `slowlog_timeout`, after which its guest's stack
    /// is wanted for the slow log ...
    stack_wanted_at: OnceLock<Instant>,
    /// ... the next time the guest is in Wasm, unless it was given already.
    stack_wanted: AtomicBool,
    /// The guest computed: it left an I/O thread after holding it for a while, or an epoch
    /// tick found it in Wasm at the tick before as well. Its route's next request starts on
    /// the guest threads (`sched::Placement`).
    computed: AtomicBool,
}

impl std::fmt::Debug for RequestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestState")
            .field("detection", &self.detection)
            .field("bits", &self.status())
            .field("ignore_user_abort", &self.ignores_user_abort())
            .field("kill_reason", &self.kill_reason())
            .finish()
    }
}

impl RequestState {
    /// State for a new request on a route with the given abort settings.
    pub fn new(detection: AbortDetection, half_close_aborts: bool, interrupt: InterruptHook) -> Self {
        Self {
            detection,
            half_close_aborts,
            bits: AtomicU8::new(0),
            ignore_user_abort: AtomicBool::new(false),
            reports_aborted_writes: AtomicBool::new(false),
            responded: AtomicBool::new(false),
            abort_seen_at: OnceLock::new(),
            kill_reason: OnceLock::new(),
            gate: AtomicU8::new(PARKED),
            stopped_at: OnceLock::new(),
            kill_notify: Notify::new(),
            interrupt,
            stack_wanted_at: OnceLock::new(),
            stack_wanted: AtomicBool::new(false),
            computed: AtomicBool::new(false),
        }
    }

    /// The route's detection mode.
    pub fn detection(&self) -> AbortDetection {
        self.detection
    }

    /// PHP's `connection_status()`.
    pub fn status(&self) -> u8 {
        self.bits.load(Ordering::Acquire)
    }

    /// PHP's `connection_aborted()`.
    pub fn is_aborted(&self) -> bool {
        self.status() & ABORTED != 0
    }

    /// The current ignore-user-abort setting.
    pub fn ignores_user_abort(&self) -> bool {
        self.ignore_user_abort.load(Ordering::Acquire)
    }

    /// `conn.report-aborted-writes`: from now on, in write mode, the output call that finds the
    /// client gone returns `aborted` instead of trapping, and so does every later one (see
    /// [`Self::abort_traps`]).
    pub fn report_aborted_writes(&self) {
        self.reports_aborted_writes.store(true, Ordering::Release);
    }

    /// Whether the guest, not ignoring the abort, was told of it at a write and left to stop
    /// itself (write mode, [`Self::report_aborted_writes`]).
    pub fn stops_itself(&self) -> bool {
        self.is_aborted() && !self.ignores_user_abort() && !self.abort_traps()
    }

    /// Whether an abort traps the guest now: not when it ignores user aborts, nor in write
    /// mode when it asked for aborted writes to be reported.
    fn abort_traps(&self) -> bool {
        !self.ignores_user_abort() && (self.detection == AbortDetection::Prompt || !self.reports_aborted_writes.load(Ordering::Acquire))
    }

    /// PHP's `ignore_user_abort($value)`: returns the previous setting. Turning the setting off
    /// after an abort was seen kills the guest at once in prompt mode; in write mode the next
    /// output call does (see [`Self::output_must_trap`]).
    pub fn set_ignore_user_abort(&self, value: bool) -> bool {
        let previous = self.ignore_user_abort.swap(value, Ordering::AcqRel);
        if !value && self.is_aborted() && self.detection == AbortDetection::Prompt {
            self.kill(KillReason::Aborted);
        }
        previous
    }

    /// The complete response is about to be written. From now on a client closing the
    /// connection has what it asked for (or a failing write will say otherwise), so it no
    /// longer counts as an abort: a client that reads its response and closes at once races
    /// the front end's bookkeeping, and must not win.
    pub fn mark_responded(&self) {
        self.responded.store(true, Ordering::Release);
    }

    /// The front end saw the client's side end (prompt detection). Returns whether this
    /// counted as an abort: in write mode, for a FIN on a route where half-close does not
    /// abort, and once the response is complete, the close is left for a failing write to
    /// reveal.
    pub fn peer_closed(&self, how: PeerClose) -> bool {
        let counts = self.detection == AbortDetection::Prompt
            && !self.responded.load(Ordering::Acquire)
            && (how != PeerClose::Fin || self.half_close_aborts);
        if counts {
            self.mark_aborted();
        }
        counts
    }

    /// A write to the client failed (both modes). Returns whether the guest must trap.
    pub fn write_failed(&self) -> bool {
        self.mark_aborted();
        self.output_must_trap()
    }

    /// Whether an output call must trap now: the client is gone and the guest neither ignores
    /// it nor stops itself (PHP bails out at the next output in that case).
    pub fn output_must_trap(&self) -> bool {
        if self.is_aborted() && self.abort_traps() {
            self.kill(KillReason::Aborted);
            true
        } else {
            false
        }
    }

    /// Sets ABORTED and remembers when; kills the guest unless it ignores user aborts or stops
    /// itself.
    fn mark_aborted(&self) {
        let _ = self.abort_seen_at.set(Instant::now());
        self.bits.fetch_or(ABORTED, Ordering::AcqRel);
        if self.abort_traps() {
            self.kill(KillReason::Aborted);
        }
    }

    /// A time limit ran out: sets TIMEOUT and kills the guest.
    pub fn time_out(&self, reason: KillReason) {
        self.bits.fetch_or(TIMEOUT, Ordering::AcqRel);
        self.kill(reason);
    }

    /// Stops the guest wherever it is. The first reason wins. A parked guest is stopped here
    /// and now; one being polled is interrupted and traps at its next epoch check.
    pub fn kill(&self, reason: KillReason) {
        if self.kill_reason.set(reason).is_ok() {
            if self.gate.compare_exchange(PARKED, STOPPED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                let _ = self.stopped_at.set((Instant::now(), monotonic_ns()));
            } else {
                (self.interrupt)();
            }
            self.kill_notify.notify_one();
        }
    }

    /// Opens the gate before a thread polls the guest; `false` if the guest was stopped
    /// while parked and must not be polled again.
    pub fn enter_guest(&self) -> bool {
        self.gate.compare_exchange(PARKED, POLLED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Asks for the guest's stack for the slow log: a running guest is interrupted to give it
    /// at once, one waiting in a host call gives it when the call returns.
    pub fn want_stack(&self) {
        let _ = self.stack_wanted_at.set(Instant::now());
        self.stack_wanted.store(true, Ordering::Release);
        (self.interrupt)();
    }

    /// When the guest's stack was asked for, if it is wanted still; once: the first caller
    /// after [`Self::want_stack`] gets it, and logs the stack.
    pub fn take_stack_wish(&self) -> Option<Instant> {
        if !self.stack_wanted.load(Ordering::Relaxed) || !self.stack_wanted.swap(false, Ordering::AcqRel) {
            return None;
        }
        self.stack_wanted_at.get().copied()
    }

    /// Records that the guest computed (see the field).
    pub fn mark_computed(&self) {
        self.computed.store(true, Ordering::Relaxed);
    }

    /// Whether the guest computed (see the field).
    pub fn computed(&self) -> bool {
        self.computed.load(Ordering::Relaxed)
    }

    /// Whether a thread is running the guest now (in Wasm, or in a host call that has not
    /// yielded), rather than the guest waiting in a host call (sleeping, reading, writing).
    pub fn in_guest(&self) -> bool {
        self.gate.load(Ordering::Acquire) == POLLED
    }

    /// Whether the complete response is being (or was) written ([`Self::mark_responded`]).
    pub fn responded(&self) -> bool {
        self.responded.load(Ordering::Acquire)
    }

    /// Closes the gate after polling the guest, if it is not done: it is parked again.
    pub fn leave_guest(&self) {
        let _ = self.gate.compare_exchange(POLLED, PARKED, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Why the guest is being stopped, if it is.
    pub fn kill_reason(&self) -> Option<KillReason> {
        self.kill_reason.get().copied()
    }

    /// Resolves once [`Self::kill`] was called. Meant for one waiter, the dispatcher.
    pub async fn killed(&self) {
        if self.kill_reason.get().is_none() {
            self.kill_notify.notified().await;
        }
    }

    /// When the host first learned that the client is gone.
    pub fn abort_seen_at(&self) -> Option<Instant> {
        self.abort_seen_at.get().copied()
    }

    /// When [`Self::kill`] stopped the guest at the gate (as an `Instant` and in CLOCK_MONOTONIC
    /// nanoseconds); `None` if it was not parked then, or not killed.
    pub fn stopped_at(&self) -> Option<(Instant, u64)> {
        self.stopped_at.get().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn state(detection: AbortDetection, half_close_aborts: bool) -> (RequestState, Arc<AtomicUsize>) {
        let interrupts = Arc::new(AtomicUsize::new(0));
        let counter = interrupts.clone();
        let hook: InterruptHook = Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        (RequestState::new(detection, half_close_aborts, hook), interrupts)
    }

    #[test]
    fn prompt_close_kills_unless_ignored() {
        let (s, interrupts) = state(AbortDetection::Prompt, true);
        assert!(s.enter_guest());
        assert!(s.peer_closed(PeerClose::Fin));
        assert_eq!(s.status(), ABORTED);
        assert_eq!(s.kill_reason(), Some(KillReason::Aborted));
        assert_eq!(interrupts.load(Ordering::SeqCst), 1);

        let (s, interrupts) = state(AbortDetection::Prompt, true);
        assert!(!s.set_ignore_user_abort(true));
        assert!(s.peer_closed(PeerClose::Reset));
        assert_eq!(s.status(), ABORTED);
        assert_eq!(s.kill_reason(), None);
        assert_eq!(interrupts.load(Ordering::SeqCst), 0);
        // Turning ignoring off after the abort kills at once in prompt mode.
        assert!(s.set_ignore_user_abort(false));
        assert_eq!(s.kill_reason(), Some(KillReason::Aborted));
    }

    #[test]
    fn a_parked_guest_is_stopped_at_the_gate_and_a_polled_one_interrupted() {
        let (s, interrupts) = state(AbortDetection::Prompt, true);
        assert!(s.enter_guest());
        s.leave_guest();
        s.kill(KillReason::Aborted);
        assert!(s.stopped_at().is_some());
        assert_eq!(interrupts.load(Ordering::SeqCst), 0);
        assert!(!s.enter_guest(), "a guest stopped at the gate is never polled again");

        let (s, interrupts) = state(AbortDetection::Prompt, true);
        assert!(s.enter_guest());
        s.kill(KillReason::Aborted);
        assert_eq!(s.stopped_at(), None);
        assert_eq!(interrupts.load(Ordering::SeqCst), 1);
        s.leave_guest();
        assert!(s.enter_guest(), "an interrupted guest is polled until its trap surfaces");
    }

    #[test]
    fn write_mode_ignores_the_socket_until_a_write_fails() {
        let (s, _) = state(AbortDetection::Write, true);
        assert!(!s.peer_closed(PeerClose::Reset));
        assert_eq!(s.status(), 0);
        s.set_ignore_user_abort(true);
        assert!(!s.write_failed());
        assert_eq!(s.status(), ABORTED);
        // Turning ignoring off does not kill in write mode; the next output call does.
        s.set_ignore_user_abort(false);
        assert_eq!(s.kill_reason(), None);
        assert!(s.output_must_trap());
        assert_eq!(s.kill_reason(), Some(KillReason::Aborted));
    }

    #[test]
    fn a_guest_that_stops_itself_is_told_at_writes_in_write_mode_only() {
        let (s, interrupts) = state(AbortDetection::Write, true);
        s.report_aborted_writes();
        assert!(!s.stops_itself());
        assert!(!s.write_failed(), "the failing write reports the abort");
        assert!(!s.output_must_trap(), "and so does every later output call");
        assert_eq!((s.status(), s.kill_reason(), interrupts.load(Ordering::SeqCst)), (ABORTED, None, 0));
        assert!(s.stops_itself());
        // Ignoring aborts is not stopping oneself.
        s.set_ignore_user_abort(true);
        assert!(!s.stops_itself());

        let (s, _) = state(AbortDetection::Prompt, true);
        s.report_aborted_writes();
        assert!(s.write_failed(), "prompt mode traps at a failing write all the same");
        assert!(s.peer_closed(PeerClose::Fin));
        assert_eq!(s.kill_reason(), Some(KillReason::Aborted));
    }

    #[test]
    fn a_close_after_the_response_is_no_abort() {
        let (s, _) = state(AbortDetection::Prompt, true);
        s.mark_responded();
        assert!(!s.peer_closed(PeerClose::Fin));
        assert_eq!(s.status(), 0);
        // A write that fails still tells.
        s.write_failed();
        assert_eq!(s.status(), ABORTED);
    }

    #[test]
    fn half_close_can_be_ignored() {
        let (s, _) = state(AbortDetection::Prompt, false);
        assert!(!s.peer_closed(PeerClose::Fin));
        assert_eq!(s.status(), 0);
        assert!(s.peer_closed(PeerClose::Reset));
        assert_eq!(s.status(), ABORTED);
    }

    #[test]
    fn timeout_sets_its_bit_and_first_kill_reason_wins() {
        let (s, _) = state(AbortDetection::Prompt, true);
        s.time_out(KillReason::ExecutionTime);
        s.kill(KillReason::Aborted);
        assert_eq!(s.status(), TIMEOUT);
        assert_eq!(s.kill_reason(), Some(KillReason::ExecutionTime));
    }
}
