//! The notify round trip: how long a traced syscall waits for the tracer,
//! from the moment the notification is received to the moment the syscall
//! is allowed to continue. Each listener thread counts into its own
//! [`Histogram`]; the shim's storage writes the sums into the trace now and
//! then as a [`KIND_LATENCY`](crate::record::KIND_LATENCY) record, which
//! crtd turns into a Prometheus histogram.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::record::{self, CaptureData, Record, RecordBuilder, KIND_LATENCY};

/// Upper bounds of the buckets, in nanoseconds (the last bucket, not listed,
/// holds everything slower).
pub const BOUNDS_NS: [u64; 14] = [
    1_000,
    2_000,
    3_000,
    5_000,
    10_000,
    20_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    5_000_000,
    25_000_000,
    100_000_000,
];

pub const BUCKETS: usize = BOUNDS_NS.len() + 1;

#[inline]
pub fn bucket_of(ns: u64) -> usize {
    BOUNDS_NS
        .iter()
        .position(|&b| ns <= b)
        .unwrap_or(BOUNDS_NS.len())
}

/// Counts written by one thread, read by another: relaxed atomics, no
/// contention (one histogram per listener thread).
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
}

impl Histogram {
    #[inline]
    pub fn observe(&self, ns: u64) {
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Adds this histogram's counts into `into`.
    pub fn add_to(&self, into: &mut Snapshot) {
        for (i, b) in self.buckets.iter().enumerate() {
            into.buckets[i] += b.load(Ordering::Relaxed);
        }
        into.sum_ns += self.sum_ns.load(Ordering::Relaxed);
    }
}

/// Plain counts: per bucket (not cumulative) and the sum of all round trips.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub buckets: [u64; BUCKETS],
    pub sum_ns: u64,
}

impl Snapshot {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    pub fn add(&mut self, other: &Snapshot) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.sum_ns += other.sum_ns;
    }

    /// The record carrying these counts (cumulative since the trace began):
    /// `args[0]` = count, `args[1]` = sum in ns; capture 0 = the bounds,
    /// capture 1 = the per-bucket counts, both as little-endian u64s.
    pub fn to_record(&self, ts_ns: u64) -> Vec<u8> {
        let mut buf = Vec::with_capacity(record::HEADER_LEN + 2 * (8 + 8 * BUCKETS));
        let mut b = RecordBuilder::begin(
            &mut buf,
            KIND_LATENCY,
            ts_ns,
            0,
            0,
            0,
            &[self.count(), self.sum_ns, 0, 0, 0, 0],
        );
        let bounds: Vec<u8> = BOUNDS_NS.iter().flat_map(|b| b.to_le_bytes()).collect();
        let counts: Vec<u8> = self.buckets.iter().flat_map(|b| b.to_le_bytes()).collect();
        b.bytes(0, &bounds, false);
        b.bytes(1, &counts, false);
        b.finish();
        buf
    }

    /// Reads a latency record; `None` if it is not one or its bounds are not
    /// this build's (a shim of another version: its counts are not mixed in).
    pub fn from_record(rec: &Record<'_>) -> Option<Snapshot> {
        if rec.kind != KIND_LATENCY {
            return None;
        }
        let (
            Some(CaptureData::Bytes { bytes: bounds, .. }),
            Some(CaptureData::Bytes { bytes: counts, .. }),
        ) = (rec.capture(0), rec.capture(1))
        else {
            return None;
        };
        let words = |b: &[u8]| -> Vec<u64> {
            b.chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect()
        };
        if words(bounds) != BOUNDS_NS || counts.len() != 8 * BUCKETS {
            return None;
        }
        let mut s = Snapshot {
            sum_ns: rec.args[1],
            ..Default::default()
        };
        for (i, c) in words(counts).into_iter().enumerate() {
            s.buckets[i] = c;
        }
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::decode;

    #[test]
    fn round_trips_fall_in_the_bucket_of_their_bound() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1_000), 0);
        assert_eq!(bucket_of(1_001), 1);
        assert_eq!(bucket_of(4_500), 3);
        assert_eq!(bucket_of(100_000_000), BOUNDS_NS.len() - 1);
        assert_eq!(bucket_of(u64::MAX), BOUNDS_NS.len());
    }

    #[test]
    fn a_snapshot_survives_its_record() {
        let h = Histogram::default();
        for ns in [800, 4_500, 4_600, 30_000_000, 2_000_000_000] {
            h.observe(ns);
        }
        let mut s = Snapshot::default();
        h.add_to(&mut s);
        assert_eq!(s.count(), 5);
        let buf = s.to_record(7);
        let (rec, _) = decode(&buf).unwrap();
        assert_eq!(rec.args[0], 5);
        assert_eq!(Snapshot::from_record(&rec), Some(s));
        assert_eq!(s.buckets[3], 2);
        assert_eq!(s.buckets[BUCKETS - 1], 1);
    }
}
