//! How each request ended, and its access-log line.

use super::Protocol;
use std::time::{Duration, Instant};

/// How a request ended. Every request that reached a guest ends as exactly one of the first
/// seven; requests the host answered itself (400, 404, 413, 503...) are `Rejected`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The guest returned, and either the response was delivered or the client left unseen
    /// until the host's last write (the guest ran to its end without being told, as a PHP
    /// script that never writes does; the access record then says 499 and what was sent).
    Completed,
    /// The guest called `finish-request` and later returned.
    FinishedEarly,
    /// The client went away and the guest was trapped.
    AbortedTrapped,
    /// The client went away, the guest ignored it (ignore-user-abort) and ran to completion.
    AbortedIgnored,
    /// The client went away, a write told the guest so (write mode, `report-aborted-writes`)
    /// and the guest stopped itself: PHP's bailout, which runs its shutdown functions.
    AbortedReturned,
    /// A time limit (`max_execution_time`, `request_timeout`, or a shutdown's `shutdown_grace`) expired
    /// and the guest was trapped.
    Timeout,
    /// The guest faulted: a trap of its own, its memory limit, or an instantiation that failed
    /// other than for want of resources (that one is `Rejected`, with a 503).
    Trapped,
    /// The host answered without running a guest.
    Rejected,
}

impl Outcome {
    /// Every outcome, in declaration order (`outcome as usize` indexes it).
    pub const ALL: [Outcome; 8] = [
        Outcome::Completed,
        Outcome::FinishedEarly,
        Outcome::AbortedTrapped,
        Outcome::AbortedIgnored,
        Outcome::AbortedReturned,
        Outcome::Timeout,
        Outcome::Trapped,
        Outcome::Rejected,
    ];

    /// The name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::FinishedEarly => "finished-early",
            Outcome::AbortedTrapped => "aborted-trapped",
            Outcome::AbortedIgnored => "aborted-ignored",
            Outcome::AbortedReturned => "aborted-returned",
            Outcome::Timeout => "timeout",
            Outcome::Trapped => "trapped",
            Outcome::Rejected => "rejected",
        }
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the same clock across processes, so a client can compare its
/// own timestamps with the log's.
pub fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// One access-log line.
#[derive(Debug)]
pub struct AccessRecord<'a> {
    /// Request id (also on the guest's log lines).
    pub id: u64,
    /// Connection id: requests with the same one shared a connection.
    pub conn: u64,
    /// The front end.
    pub protocol: Protocol,
    /// The matched route, or empty.
    pub route: &'a str,
    /// The request method.
    pub method: &'a str,
    /// The request target.
    pub target: &'a str,
    /// The status sent (499 if the client left before any).
    pub status: u16,
    /// How the request ended.
    pub outcome: Outcome,
    /// Bytes put on the wire.
    pub bytes: u64,
    /// From the request head's arrival to the end of the guest.
    pub duration: Duration,
    /// From the host seeing the client's close to the guest being stopped.
    pub abort_latency: Option<Duration>,
    /// CLOCK_MONOTONIC when the guest was seen stopped, for killed requests.
    pub stopped_mono_ns: Option<u64>,
    /// Why the guest failed, if it did.
    pub detail: Option<&'a str>,
    /// The thread that last ran the guest (`tether-guest`, or `tether-io` for a request that
    /// ran to its end where it was read), for requests that reached one.
    pub guest_thread: Option<&'a str>,
    /// The thread the request's task started on (`tether-io`: the one that read it, or
    /// `tether-guest`), for requests that reached a guest.
    pub started_on: Option<&'a str>,
}

impl AccessRecord<'_> {
    /// Writes the line (target `tether::access`).
    pub fn log(&self) {
        tracing::info!(
            target: "tether::access",
            req = self.id,
            conn = self.conn,
            protocol = self.protocol.as_str(),
            route = self.route,
            method = self.method,
            uri = self.target,
            status = self.status,
            outcome = self.outcome.as_str(),
            bytes = self.bytes,
            duration_us = micros(self.duration),
            abort_latency_us = self.abort_latency.map(micros),
            stopped_mono_ns = self.stopped_mono_ns,
            detail = self.detail,
            guest_thread = self.guest_thread,
            started_on = self.started_on,
            "{} {} {} {}",
            self.method,
            self.target,
            self.status,
            self.outcome.as_str(),
        );
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// The abort latency of a killed request: from the host seeing the close to `stopped`.
pub fn abort_latency(seen: Option<Instant>, stopped: Instant) -> Option<Duration> {
    seen.map(|seen| stopped.saturating_duration_since(seen))
}

/// One slow-log record: a request still running past its route's `slowlog_timeout`, with its
/// guest's stack (target `tether::slow`, level warn), as php-fpm's slow log gives a script's.
#[derive(Debug)]
pub struct SlowRecord<'a> {
    /// Request id.
    pub id: u64,
    /// The matched route.
    pub route: &'a str,
    /// How long it had run, from its head's arrival.
    pub age: Duration,
    /// What its guest was doing: `running`, or `in a host call` (its stack is then the one it
    /// returned to).
    pub state: &'static str,
    /// The guest's Wasm stack, innermost frame first, by the names in its name section; `None`
    /// when the guest never ran Wasm again after the timeout.
    pub stack: Option<Vec<String>>,
}

impl SlowRecord<'_> {
    /// Writes the record.
    pub fn log(&self) {
        tracing::warn!(
            target: "tether::slow",
            req = self.id,
            route = self.route,
            age_ms = u64::try_from(self.age.as_millis()).unwrap_or(u64::MAX),
            state = self.state,
            stack = self.stack.as_ref().map_or_else(|| "(the guest did not run again)".to_owned(), |frames| frames.join(" <- ")),
            "slow request"
        );
    }
}
