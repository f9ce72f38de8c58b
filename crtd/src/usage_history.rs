//! The last hour of each running container's syscall rate, CPU and memory, sampled
//! every [`INTERVAL`] by a background task, for the web UI's charts
//! (`GET /v1/containers/{namespace}/{id}/metrics`). Memory only, bounded: at most
//! [`KEEP`] samples a container, and a container not running for [`FORGET_AFTER`]
//! is forgotten.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// How often every running container is sampled.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// Samples kept per container: one hour of them.
pub const KEEP: usize = 720;
/// A container without a sample for this long is forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// The longest gap between two samples whose CPU times still give a usage: across a
/// longer one (crtd was busy, or the container stopped and started again) the
/// difference would average over time the container may not have run.
const MAX_CPU_GAP: Duration = Duration::from_secs(3 * INTERVAL.as_secs());

/// One sample of a container.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// When it was taken, ns since the epoch.
    pub t_ns: u64,
    /// Syscalls per second, over the stats' window.
    pub syscall_rate: f64,
    /// CPU used since the sample before, in percent of one core; `None` for the first
    /// sample, after a gap, or without a cgroup to read.
    pub cpu_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
}

#[derive(Default)]
struct Series {
    samples: VecDeque<Sample>,
    /// The cgroup's CPU time (ns) at the last sample, and when it was read.
    last_cpu: Option<(u64, u64)>,
    last_t_ns: u64,
}

/// Every container's samples, by (containerd namespace, id).
#[derive(Default)]
pub struct UsageHistory {
    series: Mutex<HashMap<(String, String), Series>>,
}

impl UsageHistory {
    /// Adds a sample of container `namespace/id` taken at `t_ns`: its syscall rate,
    /// its cgroup's CPU time so far (ns) and memory (bytes), where they could be read.
    pub fn record(
        &self,
        (namespace, id): (&str, &str),
        t_ns: u64,
        syscall_rate: f64,
        cpu_ns: Option<u64>,
        memory_bytes: Option<u64>,
    ) {
        let mut all = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let s = all
            .entry((namespace.to_string(), id.to_string()))
            .or_default();
        let cpu_percent = match (s.last_cpu, cpu_ns) {
            (Some(before), Some(now)) => cpu_percent(before, (t_ns, now)),
            _ => None,
        };
        s.last_cpu = cpu_ns.map(|c| (t_ns, c));
        s.last_t_ns = t_ns;
        s.samples.push_back(Sample {
            t_ns,
            syscall_rate,
            cpu_percent,
            memory_bytes,
        });
        while s.samples.len() > KEEP {
            s.samples.pop_front();
        }
    }

    /// Forgets the containers with no sample since `now_ns - FORGET_AFTER`.
    pub fn forget_stale(&self, now_ns: u64) {
        let horizon = now_ns.saturating_sub(FORGET_AFTER.as_nanos() as u64);
        self.series
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, s| s.last_t_ns >= horizon);
    }

    /// The samples of `namespace/id`, oldest first (none if it is not known).
    pub fn samples(&self, namespace: &str, id: &str) -> Vec<Sample> {
        self.series
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(namespace.to_string(), id.to_string()))
            .map(|s| s.samples.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The CPU share of `namespace/id` at its last sample (`None`: not sampled, or
    /// not comparable to the sample before).
    pub fn latest_cpu_percent(&self, namespace: &str, id: &str) -> Option<f64> {
        self.series
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(namespace.to_string(), id.to_string()))
            .and_then(|s| s.samples.back())
            .and_then(|s| s.cpu_percent)
    }

    /// How many containers it holds samples of.
    #[cfg(test)]
    pub fn containers(&self) -> usize {
        self.series
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// CPU used between two readings `(t_ns, cpu_ns)`, in percent of one core (two busy
/// cores: 200). `None` when the readings cannot be compared: no time between them,
/// too long a gap, or a CPU time that went back (a new cgroup under the same name).
fn cpu_percent((t0, cpu0): (u64, u64), (t1, cpu1): (u64, u64)) -> Option<f64> {
    let elapsed = t1.checked_sub(t0).filter(|&d| d > 0)?;
    if elapsed > MAX_CPU_GAP.as_nanos() as u64 {
        return None;
    }
    let used = cpu1.checked_sub(cpu0)?;
    let percent = used as f64 * 100.0 / elapsed as f64;
    Some((percent * 100.0).round() / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn cpu_percent_is_the_cpu_time_over_the_elapsed_time_of_one_core() {
        // Half a core for 5 s.
        assert_eq!(cpu_percent((0, 0), (5 * S, 2_500_000_000)), Some(50.0));
        // Two cores busy.
        assert_eq!(cpu_percent((10 * S, S), (15 * S, 11 * S)), Some(200.0));
        assert_eq!(cpu_percent((0, 7), (5 * S, 7)), Some(0.0));
        // Rounded to hundredths of a percent.
        assert_eq!(cpu_percent((0, 0), (3 * S, S)), Some(33.33));
        // Not comparable: no time, time going back, CPU going back, a long gap.
        assert_eq!(cpu_percent((5 * S, 0), (5 * S, 10)), None);
        assert_eq!(cpu_percent((6 * S, 0), (5 * S, 10)), None);
        assert_eq!(cpu_percent((0, 10 * S), (5 * S, S)), None);
        assert_eq!(cpu_percent((0, 0), (60 * S, S)), None);
    }

    #[test]
    fn samples_carry_the_cpu_delta_from_the_one_before() {
        let h = UsageHistory::default();
        let key = ("acme", "a1");
        h.record(key, 100 * S, 12.5, Some(40 * S), Some(1 << 20));
        h.record(key, 105 * S, 3.0, Some(41 * S), Some(2 << 20));
        h.record(key, 110 * S, 0.0, None, None);
        h.record(key, 115 * S, 0.0, Some(50 * S), None);
        h.record(key, 120 * S, 0.0, Some(51 * S), None);
        let got = h.samples("acme", "a1");
        let cpu: Vec<Option<f64>> = got.iter().map(|s| s.cpu_percent).collect();
        assert_eq!(cpu, [None, Some(20.0), None, None, Some(20.0)]);
        assert_eq!(got[0].syscall_rate, 12.5);
        assert_eq!(got[1].memory_bytes, Some(2 << 20));
        assert_eq!(got[1].t_ns, 105 * S);
        assert!(h.samples("acme", "other").is_empty());
        assert!(h.samples("globex", "a1").is_empty());
        // What the container's JSON shows: the last sample's share.
        assert_eq!(h.latest_cpu_percent("acme", "a1"), Some(20.0));
        h.record(key, 125 * S, 0.0, None, None);
        assert_eq!(h.latest_cpu_percent("acme", "a1"), None);
        assert_eq!(h.latest_cpu_percent("acme", "other"), None);
    }

    #[test]
    fn a_container_keeps_one_hour_of_samples_and_is_forgotten_an_hour_after_its_last() {
        let h = UsageHistory::default();
        let step = INTERVAL.as_nanos() as u64;
        for i in 0..(KEEP as u64 + 50) {
            h.record(("acme", "a1"), i * step, i as f64, Some(i), Some(i));
        }
        let kept = h.samples("acme", "a1");
        assert_eq!(kept.len(), KEEP);
        assert_eq!(kept[0].syscall_rate, 50.0, "the oldest went first");
        assert_eq!(kept[KEEP - 1].syscall_rate, (KEEP + 49) as f64);
        let last = (KEEP as u64 + 49) * step;
        h.record(("globex", "g1"), last + 1800 * S, 1.0, None, None);
        h.forget_stale(last + 3600 * S);
        assert_eq!(
            h.containers(),
            2,
            "an hour to the ns is not yet more than an hour"
        );
        h.forget_stale(last + 3601 * S);
        assert_eq!(h.containers(), 1);
        assert!(h.samples("acme", "a1").is_empty());
        assert_eq!(h.samples("globex", "g1").len(), 1);
    }
}
