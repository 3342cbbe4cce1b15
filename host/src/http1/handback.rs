//! The hand-back of a connection's write half from the response sink (on a guest thread) to
//! the connection task (on an I/O thread), waking that task only when it would otherwise miss
//! the hand-back.
//!
//! A one-shot channel wakes its receiver on every send. Under keep-alive load that wake-up is
//! wasted work: the connection task is parked waiting for the client's next request anyway,
//! whose bytes wake it, and it takes the write half then. Each wake-up from another thread is a
//! futex or eventfd write, a context switch and, on a virtual machine, an inter-processor
//! interrupt; skipping it saves about a third of a hello request's CPU. So the taker says, each
//! time it waits, whether it must be woken (it watches
//! nothing that would wake it, it holds pipelined bytes, the server is shutting down...), and
//! the giver wakes it only then, or when the connection must close. A giver dropped without
//! giving always wakes the taker.

use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// What the two ends share.
#[derive(Debug)]
struct Shared<T> {
    /// `Some(Some(value))` once given, `Some(None)` once the giver was dropped without giving.
    value: Option<Option<T>>,
    /// The waiting taker's waker.
    waker: Option<Waker>,
    /// Whether the waiting taker must be woken by the hand-back.
    wake_wanted: bool,
}

/// The sink's end.
#[derive(Debug)]
pub struct Giver<T> {
    shared: Option<Arc<Mutex<Shared<T>>>>,
}

/// The connection task's end.
#[derive(Debug)]
pub struct Taker<T> {
    shared: Arc<Mutex<Shared<T>>>,
}

/// A new hand-back.
pub fn handback<T>() -> (Giver<T>, Taker<T>) {
    let shared = Arc::new(Mutex::new(Shared { value: None, waker: None, wake_wanted: false }));
    (Giver { shared: Some(shared.clone()) }, Taker { shared })
}

/// Stores `value` and wakes the taker if it asked for it or `wake` says so.
fn put<T>(shared: &Mutex<Shared<T>>, value: Option<T>, wake: bool) {
    let mut shared = shared.lock().unwrap_or_else(PoisonError::into_inner);
    shared.value = Some(value);
    let waker = if wake || shared.wake_wanted { shared.waker.take() } else { None };
    drop(shared);
    if let Some(waker) = waker {
        waker.wake();
    }
}

impl<T> Giver<T> {
    /// Hands `value` back. `wake`: wake the taker even if it did not ask for it.
    pub fn give(mut self, value: T, wake: bool) {
        if let Some(shared) = self.shared.take() {
            put(&shared, Some(value), wake);
        }
    }
}

impl<T> Drop for Giver<T> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            put(&shared, None, true);
        }
    }
}

impl<T> Taker<T> {
    /// Ready with the value (`None` if the giver was dropped without giving). While pending,
    /// the hand-back wakes this task only if `wake_wanted`.
    pub fn poll_take(&self, cx: &mut Context<'_>, wake_wanted: bool) -> Poll<Option<T>> {
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = shared.value.take() {
            return Poll::Ready(value);
        }
        match &mut shared.waker {
            Some(waker) => waker.clone_from(cx.waker()),
            none => *none = Some(cx.waker().clone()),
        }
        shared.wake_wanted = wake_wanted;
        Poll::Pending
    }

    /// The value, if it was handed back meanwhile (`Some(None)`: the giver was dropped).
    pub fn try_take(&self) -> Option<Option<T>> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner).value.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    /// A waker that counts its wake-ups.
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counter() -> (Arc<Counter>, Waker) {
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        (counter.clone(), Waker::from(counter))
    }

    #[test]
    fn a_taker_that_did_not_ask_is_not_woken_but_finds_the_value() {
        let (giver, taker) = handback();
        let (count, waker) = counter();
        let mut cx = Context::from_waker(&waker);
        assert!(taker.poll_take(&mut cx, false).is_pending());
        giver.give(7, false);
        assert_eq!(count.0.load(Ordering::Relaxed), 0);
        assert_eq!(taker.poll_take(&mut cx, false), Poll::Ready(Some(7)));
    }

    #[test]
    fn a_taker_that_asked_or_a_giver_that_insists_wakes_it() {
        for (asked, insist) in [(true, false), (false, true)] {
            let (giver, taker) = handback();
            let (count, waker) = counter();
            assert!(taker.poll_take(&mut Context::from_waker(&waker), asked).is_pending());
            giver.give((), insist);
            assert_eq!(count.0.load(Ordering::Relaxed), 1, "asked {asked}, insisted {insist}");
            assert_eq!(taker.try_take(), Some(Some(())));
        }
    }

    #[test]
    fn a_giver_dropped_without_giving_always_wakes() {
        let (giver, taker) = handback::<u8>();
        let (count, waker) = counter();
        assert!(taker.poll_take(&mut Context::from_waker(&waker), false).is_pending());
        drop(giver);
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert_eq!(taker.try_take(), Some(None));
    }
}
