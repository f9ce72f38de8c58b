//! The bounded queue between the notify loops and storage: a double buffer.
//! A notify loop appends one encoded record under a short lock (a memcpy, no
//! syscall, no allocation once warm); the storage thread swaps the whole
//! buffer out and writes it in one go. When the buffer is full the event is
//! dropped and counted: the traced program is never slowed by storage.
//!
//! The lock is taken by every notify thread and by storage: a panic in one of
//! them must not take the others down, so a poisoned lock is used as is. The
//! buffer only ever holds whole records (an append either happens in full or
//! not at all), so it is consistent whoever panicked while holding it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub struct EventQueue {
    buf: Mutex<Vec<u8>>,
    capacity: usize,
    /// Waking the storage thread is a syscall, so it happens only when the
    /// buffer crosses this mark; otherwise storage polls on a timer.
    wake_at: usize,
    wake: Condvar,
    dropped: AtomicU64,
    pushed: AtomicU64,
    /// Tests: panic (holding the lock) on this push, counted from 1; 0 = never.
    #[cfg(test)]
    panic_on_push: AtomicU64,
    #[cfg(test)]
    push_calls: AtomicU64,
}

impl EventQueue {
    pub fn new(capacity: usize) -> Self {
        EventQueue {
            buf: Mutex::new(Vec::with_capacity(capacity)),
            capacity,
            wake_at: capacity / 2,
            wake: Condvar::new(),
            dropped: AtomicU64::new(0),
            pushed: AtomicU64::new(0),
            #[cfg(test)]
            panic_on_push: AtomicU64::new(0),
            #[cfg(test)]
            push_calls: AtomicU64::new(0),
        }
    }

    fn buf(&self) -> MutexGuard<'_, Vec<u8>> {
        self.buf.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tests: the `n`th push from now on (1 = the next) panics while
    /// holding the lock, as a bug in a notify thread would.
    #[cfg(test)]
    pub fn panic_on_push(&self, n: u64) {
        let done = self.push_calls.load(Ordering::Relaxed);
        self.panic_on_push.store(done + n, Ordering::Relaxed);
    }

    /// Appends one whole record, or counts it as dropped when there is no room.
    pub fn push(&self, record: &[u8]) {
        let mut buf = self.buf();
        #[cfg(test)]
        {
            let n = self.push_calls.fetch_add(1, Ordering::Relaxed) + 1;
            if n == self.panic_on_push.load(Ordering::Relaxed) {
                panic!("injected failure on push {n} (test hook)");
            }
        }
        if buf.len() + record.len() > self.capacity {
            drop(buf);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let before = buf.len();
        buf.extend_from_slice(record);
        let crossed = before < self.wake_at && buf.len() >= self.wake_at;
        drop(buf);
        self.pushed.fetch_add(1, Ordering::Relaxed);
        if crossed {
            self.wake.notify_one();
        }
    }

    /// Swaps the queued records into `out` (which must be empty), waiting up
    /// to `wait` for something to arrive. `out` keeps its capacity, so the
    /// two buffers trade places without allocating.
    pub fn take(&self, out: &mut Vec<u8>, wait: Duration) {
        debug_assert!(out.is_empty());
        let mut buf = self.buf();
        if buf.is_empty() && !wait.is_zero() {
            buf = self
                .wake
                .wait_timeout(buf, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        std::mem::swap(&mut *buf, out);
    }

    /// Wakes the storage thread now (at shutdown).
    pub fn kick(&self) {
        self.wake.notify_all();
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn pushed(&self) -> u64 {
        self.pushed.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.buf().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_out_in_order_in_one_batch() {
        let q = EventQueue::new(1024);
        q.push(b"aaaa");
        q.push(b"bb");
        let mut out = Vec::with_capacity(1024);
        q.take(&mut out, Duration::ZERO);
        assert_eq!(out, b"aaaabb");
        assert!(q.is_empty());
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let q = EventQueue::new(10);
        q.push(b"123456");
        q.push(b"123456");
        q.push(b"1234");
        assert_eq!(q.dropped(), 1);
        assert_eq!(q.pushed(), 2);
        let mut out = Vec::new();
        q.take(&mut out, Duration::ZERO);
        assert_eq!(out, b"1234561234");
    }

    #[test]
    fn a_panic_while_holding_the_lock_leaves_the_queue_usable() {
        let q = std::sync::Arc::new(EventQueue::new(1024));
        q.push(b"aaaa");
        q.panic_on_push(1);
        let q2 = std::sync::Arc::clone(&q);
        assert!(std::thread::spawn(move || q2.push(b"xx")).join().is_err());
        assert!(q.buf.is_poisoned());
        q.push(b"bb");
        let mut out = Vec::new();
        q.take(&mut out, Duration::ZERO);
        assert_eq!(out, b"aaaabb");
        assert_eq!(q.pushed(), 2);
    }

    #[test]
    fn take_waits_for_the_timeout_when_empty() {
        let q = EventQueue::new(10);
        let mut out = Vec::new();
        let t = std::time::Instant::now();
        q.take(&mut out, Duration::from_millis(30));
        assert!(out.is_empty());
        assert!(t.elapsed() >= Duration::from_millis(25));
    }
}
