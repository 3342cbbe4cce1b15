//! How a request ends once its guest will not run again: its outcome, the end of its response
//! (completed, or failed with the status its outcome calls for), its access line, and the
//! teardown of its instance after all of that.

use super::{Arrival, Dispatcher, InstanceSlot, OVERLOADED_MESSAGE, count_and_log};
use crate::generation::Route;
use crate::request::{AccessRecord, Failure, KillReason, Outcome, Output, RequestState, SlowRecord, abort_latency};
use crate::runtime::{GuestFailure, Spent};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A request not finished yet.
#[derive(Clone, Debug)]
pub struct LiveRequest {
    /// Its route's prefix.
    pub route: Arc<str>,
    /// The request method.
    pub method: String,
    /// The request target.
    pub target: String,
    /// When its head was complete.
    pub since: Instant,
    /// Its state, shared with its front end.
    pub state: Arc<RequestState>,
}

/// Shards of [`LiveRequests`]. Each thread registers the requests it starts in a shard of its
/// own (threads beyond this many share), so that two I/O threads never write to the same lock.
const LIVE_SHARDS: usize = 16;

/// The requests not finished yet, by request id, so that a shutdown whose grace ran
/// out can stop them and `/status` can list them. Every request is added and removed once, on
/// every thread: sharded by the thread that started it.
#[derive(Debug)]
pub(super) struct LiveRequests([LiveShard; LIVE_SHARDS]);

/// One shard, on cache lines of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct LiveShard(Mutex<HashMap<u64, LiveRequest>>);

impl Default for LiveRequests {
    fn default() -> Self {
        Self(std::array::from_fn(|_| LiveShard::default()))
    }
}

thread_local! {
    /// The shard of [`LiveRequests`] this thread adds to, given out in turn.
    static LIVE_SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % LIVE_SHARDS
    };
}

impl LiveRequests {
    /// Registers `request` in the calling thread's shard; returns the shard, for [`Self::remove`].
    pub(super) fn insert(&self, id: u64, request: LiveRequest) -> usize {
        let shard = LIVE_SHARD.with(|shard| *shard);
        self.0[shard].0.lock().expect("live requests").insert(id, request);
        shard
    }

    fn remove(&self, shard: usize, id: u64) {
        self.0[shard].0.lock().expect("live requests").remove(&id);
    }

    /// Every request registered now, by id.
    pub(super) fn snapshot(&self) -> Vec<(u64, LiveRequest)> {
        let mut all = Vec::new();
        for shard in &self.0 {
            all.extend(shard.0.lock().expect("live requests").iter().map(|(id, request)| (*id, request.clone())));
        }
        all
    }

    /// Times out every request still registered, for `reason`.
    pub(super) fn stop_all(&self, reason: KillReason) {
        let states: Vec<_> = self.snapshot().into_iter().map(|(_, request)| request.state).collect();
        for state in states {
            state.time_out(reason);
        }
    }
}

/// A request whose guest will not run again: what finishing it needs.
pub(super) struct Ending {
    /// Request id, for the log.
    pub id: u64,
    /// Where and when the request came from, for the log.
    pub arrival: Arrival,
    /// The route it ran on.
    pub route: Arc<Route>,
    /// The request method, for the log.
    pub method: String,
    /// The request target, for the log.
    pub target: String,
    /// Why the guest was stopped, if it was.
    pub state: Arc<RequestState>,
    /// The response, to end.
    pub output: Arc<tokio::sync::Mutex<Output>>,
    /// How the guest ended.
    pub result: Result<(), GuestFailure>,
    /// When it was stopped, for the abort latency.
    pub stopped: Instant,
    /// The same on CLOCK_MONOTONIC, for the log (benchmarks compare it with clients' clocks).
    pub stopped_mono_ns: u64,
    /// The thread that last ran the guest, for the log.
    pub guest_thread: std::thread::Thread,
    /// The thread the request's task started on, for the log.
    pub started_on: std::thread::Thread,
    /// The instance, when the guest returned or trapped on its own.
    pub spent: Option<Spent>,
    /// The shard of the dispatcher's live requests the request is registered in.
    pub live_shard: usize,
    /// The dispatcher: its live requests, its metrics (when the admin listener is on) and its
    /// runs of 503s, which a guest that ran ends.
    pub dispatcher: Arc<Dispatcher>,
    /// Held until the instance is gone, which frees the slot.
    pub _slot: InstanceSlot,
}

impl Ending {
    /// Whether the guest was stopped inside a host call: its future, which still holds the
    /// instance, is torn down with the request, off the guest threads.
    pub fn stopped_in_host_call(&self) -> bool {
        self.spent.is_none()
    }

    /// Ends the response according to how the guest ended, writes the access-log line, then
    /// tears the instance down.
    pub async fn finish(self) {
        let Ending { state, route, result, .. } = &self;
        let mut output = self.output.lock().await;
        let (outcome, detail) = match result {
            Ok(()) => {
                // An abort the guest ran past or stopped itself at, read before the host's last
                // write: an abort only that write meets leaves the guest's run complete (PHP's
                // script that never wrote completes).
                let aborted_while_running = state.is_aborted();
                let stopped_itself = state.stops_itself();
                output.end().await;
                let outcome = if output.finished_early() {
                    Outcome::FinishedEarly
                } else if stopped_itself {
                    Outcome::AbortedReturned
                } else if aborted_while_running {
                    Outcome::AbortedIgnored
                } else {
                    Outcome::Completed
                };
                (outcome, None)
            }
            Err(failure) => {
                let (outcome, failure_response, detail) = classify(state.kill_reason(), failure, route);
                output.fail(failure_response).await;
                (outcome, Some(detail))
            }
        };
        // A request refused for want of resources (its guest never ran) is logged by the run of
        // refusals; any other had a guest.
        match (outcome, &detail) {
            (Outcome::Rejected, Some(reason)) => self.dispatcher.overload.refused(reason),
            _ => self.dispatcher.overload.served(self.arrival.at),
        }
        let killed = result.is_err() && state.kill_reason() == Some(KillReason::Aborted);
        let record = AccessRecord {
            id: self.id,
            conn: self.arrival.conn_id,
            protocol: self.arrival.protocol,
            route: &route.path,
            method: &self.method,
            target: &self.target,
            status: output.status(),
            outcome,
            bytes: output.bytes_sent(),
            duration: self.arrival.at.elapsed(),
            abort_latency: if killed { abort_latency(state.abort_seen_at(), self.stopped) } else { None },
            stopped_mono_ns: result.is_err().then_some(self.stopped_mono_ns),
            detail: detail.as_deref(),
            guest_thread: self.guest_thread.name(),
            started_on: self.started_on.name(),
        };
        count_and_log(self.dispatcher.metrics.as_deref(), Some(&route.path), &record);
        // A slow request whose guest never ran Wasm again to give its stack.
        if state.take_stack_wish().is_some() {
            SlowRecord { id: self.id, route: &route.path, age: self.arrival.at.elapsed(), state: "in a host call", stack: None }.log();
        }
        drop(output);
        self.dispatcher.live.remove(self.live_shard, self.id);
        // `self` goes now: its fields drop in order, the instance (`spent`) before its slot.
    }
}

/// The outcome, the response and the log detail for a guest that did not return normally.
fn classify(kill: Option<KillReason>, failure: &GuestFailure, route: &Route) -> (Outcome, Failure, String) {
    let error = |status: u16, message: &str| Failure::Error { status, message: message.to_owned() };
    match kill {
        Some(KillReason::Aborted) => (Outcome::AbortedTrapped, Failure::ClientGone, "client aborted".to_owned()),
        Some(KillReason::ExecutionTime) => {
            (Outcome::Timeout, error(500, "maximum execution time exceeded\n"), "max_execution_time exceeded".to_owned())
        }
        Some(KillReason::ShutdownGrace) => (Outcome::Timeout, error(503, "server shutting down\n"), "shutdown_grace exceeded".to_owned()),
        Some(KillReason::RequestTimeout) => (
            Outcome::Timeout,
            error(504, "request timed out\n"),
            format!("request_timeout ({:?}) exceeded", route.request_timeout.unwrap_or_default()),
        ),
        None if matches!(failure, GuestFailure::OutOfResources(_)) => {
            (Outcome::Rejected, error(503, OVERLOADED_MESSAGE), failure.to_string())
        }
        None => {
            tracing::warn!(route = &*route.path, error = %failure, "guest failed");
            (Outcome::Trapped, error(500, "internal server error\n"), failure.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::AbortDetection;

    fn request(target: &str) -> LiveRequest {
        let state = RequestState::new(AbortDetection::Prompt, false, Arc::new(|| {}));
        LiveRequest {
            route: "/".into(),
            method: "GET".to_owned(),
            target: target.to_owned(),
            since: Instant::now(),
            state: Arc::new(state),
        }
    }

    #[test]
    fn requests_registered_on_several_threads_are_all_listed_stopped_and_removed() {
        let live = LiveRequests::default();
        let registered: Vec<(u64, usize)> = std::thread::scope(|scope| {
            let live = &live;
            let threads: Vec<_> = (1..=4u64).map(|id| scope.spawn(move || (id, live.insert(id, request(&format!("/{id}")))))).collect();
            threads.into_iter().map(|thread| thread.join().expect("thread")).collect()
        });
        let shards: std::collections::HashSet<usize> = registered.iter().map(|&(_, shard)| shard).collect();
        assert!(shards.len() > 1, "each thread registers in a shard of its own: {registered:?}");
        let mut listed: Vec<(u64, String)> = live.snapshot().into_iter().map(|(id, request)| (id, request.target)).collect();
        listed.sort();
        assert_eq!(listed, (1..=4).map(|id| (id, format!("/{id}"))).collect::<Vec<_>>());
        live.stop_all(KillReason::ShutdownGrace);
        assert!(live.snapshot().iter().all(|(_, request)| request.state.kill_reason() == Some(KillReason::ShutdownGrace)));
        for (id, shard) in registered {
            live.remove(shard, id);
        }
        assert!(live.snapshot().is_empty());
    }
}
