//! Counters kept while ingesting: totals, per-second rates (per container
//! and per thread), per-syscall counts and drops, for topology and metrics.

use std::collections::HashMap;
use std::sync::Mutex;

use crt_tracer::latency;
use crt_tracer::record::{self, KIND_DROPS, KIND_LATENCY, KIND_SYSCALL};

/// Seconds the rates average over.
pub const WINDOW: usize = 10;

#[derive(Default, Clone)]
struct Ring {
    buckets: [u64; WINDOW],
    /// The second (since the epoch) `buckets[second % WINDOW]` counts.
    stamps: [u64; WINDOW],
}

impl Ring {
    fn add(&mut self, second: u64, n: u64) {
        let i = (second % WINDOW as u64) as usize;
        if second < self.stamps[i] {
            // Older than what the slot already counts: outside any window.
            return;
        }
        if self.stamps[i] != second {
            self.stamps[i] = second;
            self.buckets[i] = 0;
        }
        self.buckets[i] += n;
    }

    /// Events per second over the last full `WINDOW` seconds before `now`.
    fn rate(&self, now: u64) -> f64 {
        let from = now.saturating_sub(WINDOW as u64);
        let sum: u64 = (0..WINDOW)
            .filter(|&i| self.stamps[i] >= from && self.stamps[i] < now)
            .map(|i| self.buckets[i])
            .sum();
        sum as f64 / WINDOW as f64
    }

    fn idle(&self, now: u64) -> bool {
        self.stamps.iter().all(|&s| s + (WINDOW as u64) < now)
    }
}

#[derive(Default)]
struct StreamStats {
    syscalls: u64,
    dropped: u64,
    rate: Ring,
    per_tid: HashMap<u32, Ring>,
    by_syscall: HashMap<u32, u64>,
    latency: Option<latency::Snapshot>,
}

/// What one container's counters say.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub syscalls: u64,
    pub dropped: u64,
    pub rate: f64,
    /// Events per second per thread id, over the window.
    pub per_tid: Vec<(u32, f64)>,
    pub by_syscall: Vec<(u32, u64)>,
    /// The notify round trips since the container's trace began (the
    /// shim's latest count), if it reported any.
    pub latency: Option<latency::Snapshot>,
}

#[derive(Default)]
pub struct Stats {
    streams: Mutex<HashMap<String, StreamStats>>,
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Stats {
    /// Counts a batch of records of one stream. Rates are counted by when
    /// the events happened, so a batch read late still lands in its seconds.
    pub fn count(&self, stream: &str, batch: &[u8]) {
        let mut all = self.streams.lock().unwrap();
        let st = all.entry(stream.to_string()).or_default();
        for rec in record::Records::new(batch) {
            match rec.kind {
                // A resumed record is the exit of a call already counted.
                KIND_SYSCALL if rec.flags & record::FLAG_RESUMED != 0 => {}
                KIND_SYSCALL => {
                    st.syscalls += 1;
                    let second = rec.ts_ns / 1_000_000_000;
                    st.rate.add(second, 1);
                    st.per_tid.entry(rec.tid).or_default().add(second, 1);
                    *st.by_syscall.entry(rec.nr).or_default() += 1;
                }
                KIND_DROPS => st.dropped = st.dropped.max(rec.args[0]),
                KIND_LATENCY => {
                    if let Some(l) = latency::Snapshot::from_record(&rec) {
                        st.latency = Some(l);
                    }
                }
                _ => {}
            }
        }
        let now = now_s();
        if st.per_tid.len() > 4096 {
            st.per_tid.retain(|_, r| !r.idle(now));
        }
    }

    pub fn snapshot(&self, stream: &str) -> Snapshot {
        self.snapshot_at(stream, now_s())
    }

    fn snapshot_at(&self, stream: &str, now: u64) -> Snapshot {
        let all = self.streams.lock().unwrap();
        let Some(st) = all.get(stream) else {
            return Snapshot::default();
        };
        let mut per_tid: Vec<(u32, f64)> = st
            .per_tid
            .iter()
            .map(|(&t, r)| (t, r.rate(now)))
            .filter(|(_, r)| *r > 0.0)
            .collect();
        per_tid.sort_by_key(|(t, _)| *t);
        let mut by_syscall: Vec<(u32, u64)> = st.by_syscall.iter().map(|(&n, &c)| (n, c)).collect();
        by_syscall.sort();
        Snapshot {
            syscalls: st.syscalls,
            dropped: st.dropped,
            rate: st.rate.rate(now),
            per_tid,
            by_syscall,
            latency: st.latency,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crt_tracer::record::{simple, RecordBuilder};

    fn sys(ts_s: u64, tid: u32, nr: u32) -> Vec<u8> {
        let mut buf = Vec::new();
        RecordBuilder::begin(
            &mut buf,
            KIND_SYSCALL,
            ts_s * 1_000_000_000,
            tid,
            0xc000_003e,
            nr,
            &[0; 6],
        )
        .finish();
        buf
    }

    #[test]
    fn rates_count_the_last_full_seconds_by_event_time() {
        let now = now_s();
        let stats = Stats::default();
        let mut batch = Vec::new();
        for s in 1..=10 {
            for _ in 0..s {
                batch.extend(sys(now - s, 7, 257));
            }
        }
        batch.extend(sys(now - 30, 8, 0)); // outside the window
        batch.extend(simple(
            KIND_DROPS,
            now * 1_000_000_000,
            0,
            &[5, 0, 0, 0, 0, 0],
            b"",
        ));
        let mut lat = latency::Snapshot::default();
        lat.buckets[3] = 9;
        lat.sum_ns = 40_000;
        batch.extend(lat.to_record(now * 1_000_000_000));
        stats.count("s", &batch);
        let snap = stats.snapshot_at("s", now);
        assert_eq!(snap.latency, Some(lat));
        assert_eq!(snap.syscalls, 56);
        assert_eq!(snap.dropped, 5);
        assert!((snap.rate - 5.5).abs() < 1e-9, "{}", snap.rate);
        assert_eq!(snap.per_tid, vec![(7, 5.5)]);
        assert_eq!(snap.by_syscall, vec![(0, 1), (257, 55)]);
        assert_eq!(stats.snapshot("nope"), Snapshot::default());
    }
}
