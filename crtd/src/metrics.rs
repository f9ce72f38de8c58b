//! Prometheus metrics (text exposition format 0.0.4), for the root socket
//! or the separate metrics address; never on the tenants' listener.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crt_tracer::latency;
use crt_tracer::syscalls;

use crate::catalog::Catalog;
use crate::ingest::Ingest;

/// A label value escaped as the format requires.
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Requests refused by a per-tenant limit: (limit name, tenant, count).
pub type Refusals = Vec<(&'static str, String, u64)>;

pub fn render(ingest: &Ingest, cat: &Catalog<'_>, started: Instant, refused: Refusals) -> String {
    let mut out = String::new();
    let containers = cat.containers(&crate::tenants::Scope::Root);

    header(
        &mut out,
        "crtd_uptime_seconds",
        "gauge",
        "Seconds since crtd started.",
    );
    let _ = writeln!(out, "crtd_uptime_seconds {}", started.elapsed().as_secs());

    header(
        &mut out,
        "crtd_ingested_events_total",
        "counter",
        "Records crtd copied from the shims' traces into its history since it started.",
    );
    let _ = writeln!(
        out,
        "crtd_ingested_events_total {}",
        ingest.stored.load(Ordering::Relaxed)
    );

    header(
        &mut out,
        "crtd_store_write_failures_total",
        "counter",
        "Writes to the history store that failed (a full disk, say) and will be retried; nothing is skipped meanwhile.",
    );
    let _ = writeln!(
        out,
        "crtd_store_write_failures_total {}",
        ingest.store.health.failures.load(Ordering::Relaxed)
    );
    header(
        &mut out,
        "crtd_store_blocked_streams",
        "gauge",
        "Traces whose events crtd cannot store right now (they wait in the shim's trace).",
    );
    let _ = writeln!(
        out,
        "crtd_store_blocked_streams {}",
        ingest.store.health.blocked_streams()
    );

    header(
        &mut out,
        "crtd_live_subscribers",
        "gauge",
        "Clients following a live event stream.",
    );
    let _ = writeln!(out, "crtd_live_subscribers {}", ingest.live.subscribers());
    header(
        &mut out,
        "crtd_live_queued_bytes",
        "gauge",
        "Bytes of events waiting for live-stream readers to take them.",
    );
    let _ = writeln!(out, "crtd_live_queued_bytes {}", ingest.live.queued_bytes());

    if let Some(e) = &ingest.export {
        for (name, help, v) in [
            (
                "crtd_otlp_exported_records_total",
                "Records the OTLP collector accepted.",
                &e.exported,
            ),
            (
                "crtd_otlp_rejected_records_total",
                "Records the OTLP collector refused for good (HTTP 4xx); not sent again.",
                &e.rejected,
            ),
            (
                "crtd_otlp_failed_requests_total",
                "Export requests that failed and were retried (no connection, HTTP 429 or 5xx).",
                &e.failed_requests,
            ),
        ] {
            header(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
    }

    header(
        &mut out,
        "crtd_live_dropped_events_total",
        "counter",
        "Events dropped for live-stream readers too slow to take them, by the reader's tenant.",
    );
    for (t, n) in ingest.live.dropped() {
        let _ = writeln!(
            out,
            "crtd_live_dropped_events_total{{tenant=\"{}\"}} {n}",
            label(&t)
        );
    }
    header(
        &mut out,
        "crtd_refused_requests_total",
        "counter",
        "Requests refused (HTTP 429) because the tenant was at a limit (queries or streams at once).",
    );
    for (limit, t, n) in refused {
        let _ = writeln!(
            out,
            "crtd_refused_requests_total{{tenant=\"{}\",limit=\"{limit}\"}} {n}",
            label(&t)
        );
    }

    header(
        &mut out,
        "crt_containers",
        "gauge",
        "Containers known to crtd, by tenant and status.",
    );
    let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    for c in &containers {
        *counts
            .entry((c.tenant.clone().unwrap_or_default(), c.status.clone()))
            .or_default() += 1;
    }
    for ((t, s), n) in counts {
        let _ = writeln!(
            out,
            "crt_containers{{tenant=\"{}\",status=\"{}\"}} {n}",
            label(&t),
            label(&s)
        );
    }

    header(
        &mut out,
        "crt_syscalls_total",
        "counter",
        "Syscalls recorded since crtd started, by tenant, container and syscall.",
    );
    let mut dropped_lines = Vec::new();
    let mut rate_lines = Vec::new();
    let mut latency_lines = Vec::new();
    let mut per_tenant: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for c in &containers {
        let tenant = label(c.tenant.as_deref().unwrap_or(""));
        let (ns, id) = (label(&c.namespace), label(&c.id));
        let mut by_nr: BTreeMap<u32, u64> = BTreeMap::new();
        let mut dropped = 0;
        let mut rate = 0.0;
        let mut lat: Option<latency::Snapshot> = None;
        for s in &c.streams {
            let snap = ingest.stats.snapshot(&s.id);
            for (nr, n) in snap.by_syscall {
                *by_nr.entry(nr).or_default() += n;
            }
            dropped += snap.dropped;
            rate += snap.rate;
            if let Some(l) = snap.latency {
                lat.get_or_insert_with(Default::default).add(&l);
            }
        }
        let t = per_tenant.entry(tenant.clone()).or_default();
        t.0 += by_nr.values().sum::<u64>();
        t.1 += dropped;
        if let Some(l) = lat {
            histogram_lines(
                &mut latency_lines,
                "crt_notify_latency_seconds",
                &format!("tenant=\"{tenant}\",namespace=\"{ns}\",container=\"{id}\""),
                &l,
            );
        }
        for (nr, n) in by_nr {
            let name = syscalls::by_nr(syscalls::NATIVE_AUDIT_ARCH, nr)
                .map(|s| s.name.to_string())
                .unwrap_or_else(|| format!("syscall_{nr}"));
            let _ = writeln!(
                out,
                "crt_syscalls_total{{tenant=\"{tenant}\",namespace=\"{ns}\",container=\"{id}\",syscall=\"{}\"}} {n}",
                label(&name)
            );
        }
        if !c.streams.is_empty() {
            dropped_lines.push(format!(
                "crt_events_dropped_total{{tenant=\"{tenant}\",namespace=\"{ns}\",container=\"{id}\"}} {dropped}"
            ));
            rate_lines.push(format!(
                "crt_syscall_rate{{tenant=\"{tenant}\",namespace=\"{ns}\",container=\"{id}\"}} {rate}"
            ));
        }
    }
    header(
        &mut out,
        "crt_events_dropped_total",
        "counter",
        "Events the shim dropped because its storage could not keep up, by container.",
    );
    for l in dropped_lines {
        let _ = writeln!(out, "{l}");
    }
    header(
        &mut out,
        "crt_syscall_rate",
        "gauge",
        "Syscalls per second over the last 10 seconds, by container.",
    );
    for l in rate_lines {
        let _ = writeln!(out, "{l}");
    }

    header(
        &mut out,
        "crt_notify_latency_seconds",
        "histogram",
        "How long traced syscalls waited for the tracer (notification received to syscall continued), by container.",
    );
    for l in latency_lines {
        let _ = writeln!(out, "{l}");
    }
    header(
        &mut out,
        "crt_tenant_syscalls_total",
        "counter",
        "Syscalls recorded since crtd started, by tenant.",
    );
    for (t, (n, _)) in &per_tenant {
        let _ = writeln!(out, "crt_tenant_syscalls_total{{tenant=\"{t}\"}} {n}");
    }
    header(
        &mut out,
        "crt_tenant_events_dropped_total",
        "counter",
        "Events the shims dropped, by tenant.",
    );
    for (t, (_, d)) in &per_tenant {
        let _ = writeln!(out, "crt_tenant_events_dropped_total{{tenant=\"{t}\"}} {d}");
    }

    header(
        &mut out,
        "crt_store_bytes",
        "gauge",
        "Bytes of history kept, by tenant.",
    );
    let mut bytes: BTreeMap<String, u64> = BTreeMap::new();
    for c in &containers {
        let b: u64 = c.streams.iter().map(|s| s.bytes()).sum();
        *bytes
            .entry(c.tenant.clone().unwrap_or_default())
            .or_default() += b;
    }
    for (t, b) in bytes {
        let _ = writeln!(out, "crt_store_bytes{{tenant=\"{}\"}} {b}", label(&t));
    }
    out
}

/// The `_bucket` (cumulative, with `+Inf`), `_sum` and `_count` lines of a
/// histogram in seconds.
fn histogram_lines(out: &mut Vec<String>, name: &str, labels: &str, h: &latency::Snapshot) {
    let mut cumulative = 0;
    for (i, n) in h.buckets.iter().enumerate() {
        cumulative += n;
        let le = match latency::BOUNDS_NS.get(i) {
            Some(&b) => format!("{}", b as f64 / 1e9),
            None => "+Inf".to_string(),
        };
        out.push(format!(
            "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}"
        ));
    }
    out.push(format!("{name}_sum{{{labels}}} {}", h.sum_ns as f64 / 1e9));
    out.push(format!("{name}_count{{{labels}}} {cumulative}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn a_histogram_is_cumulative_and_ends_at_inf() {
        let mut h = latency::Snapshot::default();
        h.buckets[0] = 2;
        h.buckets[3] = 3;
        h.buckets[latency::BUCKETS - 1] = 1;
        h.sum_ns = 1_500_000_000;
        let mut out = Vec::new();
        histogram_lines(&mut out, "x", "c=\"1\"", &h);
        assert_eq!(out[0], "x_bucket{c=\"1\",le=\"0.000001\"} 2");
        assert_eq!(out[3], "x_bucket{c=\"1\",le=\"0.000005\"} 5");
        assert_eq!(out[latency::BUCKETS - 1], "x_bucket{c=\"1\",le=\"+Inf\"} 6");
        assert_eq!(out[latency::BUCKETS], "x_sum{c=\"1\"} 1.5");
        assert_eq!(out[latency::BUCKETS + 1], "x_count{c=\"1\"} 6");
    }
}
