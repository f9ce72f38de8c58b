//! Export to an OpenTelemetry collector: the events and log lines crtd
//! stores go out as OTLP log records over OTLP/HTTP (binary protobuf).
//!
//! The exporter reads crtd's own history with a cursor it keeps on disk, so
//! a collector that is down, or a crtd restart, delays records but loses
//! none that retention still holds. The first time it runs it notes the
//! time: events from before then are not sent (it does not replay the
//! past, even history crtd only takes in later). A collector that refuses a
//! batch outright (a 4xx other than 429) gets it counted as rejected and the
//! exporter moves on; anything else is retried with backoff.
//!
//! Each stored stream is one OTLP resource, with `container.id`,
//! `crt.containerd.namespace`, `host.name`, `service.name` (the Kubernetes
//! container name, else the container id), `crt.tenant` and, when CRI
//! named them, `k8s.namespace.name`, `k8s.pod.name`, `k8s.pod.uid` and
//! `k8s.container.name`. Records carry `crt.event`
//! (`syscall`, `log`, `drops`) and, by kind, `thread.id`,
//! `process.command`, `crt.syscall.name`, `log.iostream`, `crt.dropped`.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crt_config::OtlpConfig;
use crt_tracer::record::{Record, KIND_DROPS, KIND_LOG, KIND_SYSCALL};
use crt_tracer::render::now_ns;
use crt_tracer::{decode, render};
use serde_json::Value;

use crate::ingest::Ingest;
use crate::store::query::{self, Budget, Cursor, Filter, Hit, Order};
use crate::store::Stream;

/// Records per request.
const BATCH: usize = 2048;
/// How often the history is checked for new records when caught up.
const POLL: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What the exporter did, for `/metrics`.
#[derive(Default)]
pub struct ExportStats {
    pub exported: AtomicU64,
    pub rejected: AtomicU64,
    pub failed_requests: AtomicU64,
}

/// Protobuf wire encoding, just what OTLP logs need.
mod pb {
    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
        varint(out, u64::from(field) << 3 | u64::from(wire));
    }

    pub fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
        key(out, field, 0);
        varint(out, v);
    }

    pub fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
        key(out, field, 1);
        out.extend_from_slice(&v.to_le_bytes());
    }

    pub fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
        key(out, field, 2);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }

    /// A nested message, built by `f` into a scratch buffer.
    pub fn message(out: &mut Vec<u8>, field: u32, f: impl FnOnce(&mut Vec<u8>)) {
        let mut inner = Vec::new();
        f(&mut inner);
        bytes(out, field, &inner);
    }
}

/// An attribute value (`opentelemetry.proto.common.v1.AnyValue`).
enum Val<'a> {
    Str(&'a str),
    Int(i64),
}

/// `KeyValue { key = 1; value = 2 }`, `AnyValue { string_value = 1; int_value = 3 }`.
fn attribute(out: &mut Vec<u8>, field: u32, k: &str, v: Val<'_>) {
    pb::message(out, field, |kv| {
        pb::bytes(kv, 1, k.as_bytes());
        pb::message(kv, 2, |any| match v {
            Val::Str(s) => pb::bytes(any, 1, s.as_bytes()),
            Val::Int(i) => pb::uint(any, 3, i as u64),
        });
    });
}

/// What a stream's resource says about it.
struct Resource {
    attrs: Vec<(&'static str, String)>,
}

impl Resource {
    fn of(stream: &Stream, tenant: Option<&str>, host: &str) -> Resource {
        let k = |key: &str| {
            stream
                .meta
                .kubernetes
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let mut attrs = vec![
            ("container.id", stream.meta.container.clone()),
            ("crt.containerd.namespace", stream.meta.namespace.clone()),
            ("host.name", host.to_string()),
        ];
        let service = k("container").unwrap_or_else(|| stream.meta.container.clone());
        attrs.push(("service.name", service));
        for (attr, key) in [
            ("k8s.namespace.name", "namespace"),
            ("k8s.pod.name", "pod"),
            ("k8s.pod.uid", "pod_uid"),
            ("k8s.container.name", "container"),
        ] {
            if let Some(v) = k(key) {
                attrs.push((attr, v));
            }
        }
        if let Some(t) = tenant {
            attrs.push(("crt.tenant", t.to_string()));
        }
        Resource { attrs }
    }
}

/// `LogRecord`: time_unix_nano = 1 (fixed64), severity_number = 2,
/// severity_text = 3, body = 5, attributes = 6, observed_time_unix_nano = 11.
fn log_record(out: &mut Vec<u8>, rec: &Record<'_>, observed_ns: u64) {
    pb::message(out, 2, |lr| {
        pb::fixed64(lr, 1, rec.ts_ns);
        pb::fixed64(lr, 11, observed_ns);
        match rec.kind {
            KIND_SYSCALL => {
                let (name, args) = decode::render_args(rec);
                let body = format!("{name}({}) = ?", args.join(", "));
                pb::message(lr, 5, |any| pb::bytes(any, 1, body.as_bytes()));
                attribute(lr, 6, "crt.event", Val::Str("syscall"));
                attribute(lr, 6, "crt.syscall.name", Val::Str(&name));
                attribute(lr, 6, "thread.id", Val::Int(i64::from(rec.tid)));
                let comm = String::from_utf8_lossy(rec.comm());
                attribute(lr, 6, "process.command", Val::Str(&comm));
            }
            KIND_LOG => {
                let line = String::from_utf8_lossy(render::log_bytes(rec));
                pb::message(lr, 5, |any| pb::bytes(any, 1, line.as_bytes()));
                attribute(lr, 6, "crt.event", Val::Str("log"));
                attribute(lr, 6, "log.iostream", Val::Str(render::log_stream(rec)));
            }
            KIND_DROPS => {
                // SEVERITY_NUMBER_WARN
                pb::uint(lr, 2, 13);
                pb::bytes(lr, 3, b"WARN");
                let body = format!(
                    "{} events dropped so far: the trace store could not keep up",
                    rec.args[0]
                );
                pb::message(lr, 5, |any| pb::bytes(any, 1, body.as_bytes()));
                attribute(lr, 6, "crt.event", Val::Str("drops"));
                attribute(lr, 6, "crt.dropped", Val::Int(rec.args[0] as i64));
            }
            _ => {}
        }
    });
}

/// `ExportLogsServiceRequest { resource_logs = 1 }`, `ResourceLogs {
/// resource = 1; scope_logs = 2 }`, `Resource { attributes = 1 }`,
/// `ScopeLogs { scope = 1; log_records = 2 }`, `InstrumentationScope {
/// name = 1; version = 2 }`. One ResourceLogs per stream, in first-seen order.
fn encode(hits: &[Hit], resource_of: &mut impl FnMut(&Stream) -> Resource) -> Vec<u8> {
    let observed = now_ns();
    let mut groups: Vec<(&Arc<Stream>, Vec<&Hit>)> = Vec::new();
    for h in hits {
        match groups.iter_mut().find(|(s, _)| Arc::ptr_eq(s, &h.stream)) {
            Some((_, v)) => v.push(h),
            None => groups.push((&h.stream, vec![h])),
        }
    }
    let mut out = Vec::new();
    for (stream, hits) in groups {
        let res = resource_of(stream);
        pb::message(&mut out, 1, |rl| {
            pb::message(rl, 1, |r| {
                for (k, v) in &res.attrs {
                    attribute(r, 1, k, Val::Str(v));
                }
            });
            pb::message(rl, 2, |sl| {
                pb::message(sl, 1, |scope| {
                    pb::bytes(scope, 1, b"crt");
                    pb::bytes(scope, 2, env!("CARGO_PKG_VERSION").as_bytes());
                });
                for h in hits {
                    log_record(sl, &h.record(), observed);
                }
            });
        });
    }
    out
}

/// How a POST ended.
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    Ok,
    /// The collector refused this batch for good (a 4xx other than 429).
    Rejected(u16),
    /// Worth trying again (429, 5xx, no connection).
    Retry(String),
}

fn post(cfg: &OtlpConfig, body: &[u8]) -> Sent {
    match try_post(cfg, body) {
        Ok(code) if (200..300).contains(&code) => Sent::Ok,
        Ok(code) if code == 429 || code >= 500 => Sent::Retry(format!("HTTP {code}")),
        Ok(code) => Sent::Rejected(code),
        Err(e) => Sent::Retry(e.to_string()),
    }
}

fn try_post(cfg: &OtlpConfig, body: &[u8]) -> io::Result<u16> {
    let host = cfg.host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<_> = (host, cfg.port).to_socket_addrs()?.collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    let mut conn = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, IO_TIMEOUT) {
            Ok(c) => {
                conn = Some(c);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut c = conn.ok_or(last)?;
    c.set_read_timeout(Some(IO_TIMEOUT))?;
    c.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nUser-Agent: crtd/{}\r\nConnection: close\r\n",
        cfg.path,
        cfg.host,
        cfg.port,
        body.len(),
        env!("CARGO_PKG_VERSION")
    );
    for (k, v) in &cfg.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    c.write_all(head.as_bytes())?;
    c.write_all(body)?;
    // The status line is all we need; the rest is drained, bounded.
    let mut resp = Vec::new();
    let mut buf = [0u8; 4096];
    while !resp.windows(2).any(|w| w == b"\r\n") && resp.len() < 16 * 1024 {
        let n = c.read(&mut buf)?;
        if n == 0 {
            break;
        }
        resp.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&resp);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| line.starts_with("HTTP/1."))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an HTTP response"))
}

pub struct Exporter {
    pub cfg: OtlpConfig,
    pub ingest: Arc<Ingest>,
    /// Where the cursor is kept between runs.
    pub state: PathBuf,
}

/// What is kept between runs.
#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    /// When the export began: older events are not sent.
    since_ns: u64,
    cursor: Cursor,
}

impl Exporter {
    fn filter(&self, since_ns: u64) -> Filter {
        let mut kinds = 0u8;
        if self.cfg.syscalls {
            kinds |= 1 << KIND_SYSCALL | 1 << KIND_DROPS;
        }
        if self.cfg.logs {
            kinds |= 1 << KIND_LOG;
        }
        Filter {
            kinds,
            since: Some(since_ns),
            ..Default::default()
        }
    }

    /// Which of the stored streams this export covers.
    fn covered(&self, all: &[Arc<Stream>]) -> Vec<Arc<Stream>> {
        let tenants = &self.ingest.tenants;
        all.iter()
            .filter(|s| {
                self.cfg.tenants.is_empty()
                    || tenants
                        .owner_of(&s.meta)
                        .is_some_and(|t| self.cfg.tenants.iter().any(|c| c == t))
            })
            .cloned()
            .collect()
    }

    fn end_of(s: &Stream) -> (u64, u64) {
        let cp = s.checkpoint();
        (cp.chunk, cp.chunk_len)
    }

    /// The saved state, or a new one that starts now, at the end of
    /// everything stored.
    fn load(&self) -> (Filter, Cursor) {
        let saved = std::fs::read(&self.state)
            .ok()
            .and_then(|b| serde_json::from_slice::<State>(&b).ok());
        if let Some(st) = saved {
            let filter = self.filter(st.since_ns);
            if Cursor::at(&filter, Order::Asc, BTreeMap::new()).filter == st.cursor.filter {
                return (filter, st.cursor);
            }
            tracing::warn!(
                "otlp export: the saved position was for other settings; starting from now"
            );
        }
        let filter = self.filter(now_ns());
        let positions = self
            .covered(&self.ingest.store.streams())
            .iter()
            .map(|s| (s.id.clone(), Self::end_of(s)))
            .collect();
        let cursor = Cursor::at(&filter, Order::Asc, positions);
        self.save(&filter, &cursor);
        (filter, cursor)
    }

    fn save(&self, filter: &Filter, cursor: &Cursor) {
        let st = State {
            since_ns: filter.since.unwrap_or(0),
            cursor: cursor.clone(),
        };
        if let Err(e) = crate::store::write_json_atomic(&self.state, &st) {
            tracing::warn!(
                "otlp export: cannot save its position in {}: {e}",
                self.state.display()
            );
        }
    }

    pub fn run(self, stats: Arc<ExportStats>, stop: Arc<AtomicBool>) {
        let (filter, mut cursor) = self.load();
        let host = hostname();
        let mut backoff = Duration::from_secs(1);
        let mut failing = false;
        tracing::info!(
            "exporting {} to OTLP at http://{}:{}{}",
            match (self.cfg.syscalls, self.cfg.logs) {
                (true, true) => "syscalls and log lines",
                (true, false) => "syscalls",
                _ => "log lines",
            },
            self.cfg.host,
            self.cfg.port,
            self.cfg.path
        );
        while !stop.load(Ordering::Relaxed) {
            let all = self.ingest.store.streams();
            // Only streams with records past the cursor are read.
            let streams: Vec<Arc<Stream>> = self
                .covered(&all)
                .into_iter()
                .filter(|s| cursor.positions.get(&s.id) < Some(&Self::end_of(s)))
                .collect();
            let budget = Budget {
                max_scanned: 500_000,
                deadline: Instant::now() + Duration::from_millis(500),
            };
            let page = match query::run(&streams, &filter, Order::Asc, BATCH, Some(&cursor), budget)
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!("otlp export: reading the history failed: {e}");
                    std::thread::sleep(POLL);
                    continue;
                }
            };
            let more = page.hits.len() == BATCH || page.truncated;
            if !page.hits.is_empty() {
                let mut resource_of =
                    |s: &Stream| Resource::of(s, self.ingest.tenants.owner_of(&s.meta), &host);
                let body = encode(&page.hits, &mut resource_of);
                match post(&self.cfg, &body) {
                    Sent::Ok => {
                        stats
                            .exported
                            .fetch_add(page.hits.len() as u64, Ordering::Relaxed);
                        if failing {
                            tracing::info!("otlp export: the collector takes records again");
                        }
                        failing = false;
                        backoff = Duration::from_secs(1);
                    }
                    Sent::Rejected(code) => {
                        stats
                            .rejected
                            .fetch_add(page.hits.len() as u64, Ordering::Relaxed);
                        tracing::warn!(
                            "otlp export: the collector refused {} records (HTTP {code}); skipping them",
                            page.hits.len()
                        );
                    }
                    Sent::Retry(why) => {
                        stats.failed_requests.fetch_add(1, Ordering::Relaxed);
                        if !failing {
                            tracing::warn!(
                                "otlp export: cannot send to the collector ({why}); retrying"
                            );
                        }
                        failing = true;
                        sleep_unless_stopped(backoff, &stop);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
            // Streams that were not read keep their positions; streams gone
            // from the store are forgotten.
            let mut positions = cursor.positions;
            positions.extend(page.next.positions);
            let stored: std::collections::HashSet<&str> =
                all.iter().map(|s| s.id.as_str()).collect();
            positions.retain(|id, _| stored.contains(id.as_str()));
            cursor = Cursor {
                positions,
                ..page.next
            };
            if !page.hits.is_empty() {
                self.save(&filter, &cursor);
            }
            if !more {
                sleep_unless_stopped(POLL, &stop);
            }
        }
    }
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_little_endian_groups_of_seven_bits() {
        let mut out = Vec::new();
        pb::varint(&mut out, 1);
        pb::varint(&mut out, 300);
        pb::varint(&mut out, u64::MAX);
        assert_eq!(&out[..3], &[1, 0xac, 0x02]);
        assert_eq!(out.len(), 3 + 10);
        assert_eq!(out[12], 1);
    }

    #[test]
    fn an_attribute_is_a_key_value_with_an_any_value() {
        let mut out = Vec::new();
        attribute(&mut out, 6, "k", Val::Str("v"));
        // field 6 (len 8): KeyValue { 1: "k", 2: AnyValue { 1: "v" } }
        assert_eq!(out, vec![0x32, 8, 0x0a, 1, b'k', 0x12, 3, 0x0a, 1, b'v']);
        let mut out = Vec::new();
        attribute(&mut out, 1, "n", Val::Int(-1));
        // int_value = 3, a negative int64 takes ten bytes.
        assert_eq!(&out[..8], &[0x0a, 16, 0x0a, 1, b'n', 0x12, 11, 0x18]);
    }

    #[test]
    fn a_refused_batch_is_not_retried_but_an_overloaded_collector_is() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cfg = OtlpConfig {
            host: "127.0.0.1".into(),
            port,
            path: "/v1/logs".into(),
            syscalls: true,
            logs: true,
            tenants: vec![],
            headers: vec![("x-key".into(), "k".into())],
        };
        let server = std::thread::spawn(move || {
            let mut requests = Vec::new();
            for status in [
                "200 OK",
                "400 Bad Request",
                "429 Too Many Requests",
                "503 No",
            ] {
                let (mut c, _) = listener.accept().unwrap();
                let mut buf = vec![0u8; 4096];
                let n = c.read(&mut buf).unwrap();
                requests.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                write!(c, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").unwrap();
            }
            requests
        });
        assert_eq!(post(&cfg, b"x"), Sent::Ok);
        assert_eq!(post(&cfg, b"x"), Sent::Rejected(400));
        assert!(matches!(post(&cfg, b"x"), Sent::Retry(_)));
        assert!(matches!(post(&cfg, b"x"), Sent::Retry(_)));
        let reqs = server.join().unwrap();
        assert!(
            reqs[0].starts_with("POST /v1/logs HTTP/1.1\r\n"),
            "{}",
            reqs[0]
        );
        assert!(reqs[0].contains("Content-Type: application/x-protobuf\r\n"));
        assert!(reqs[0].contains("x-key: k\r\n"));
        // Nobody listening: retried.
        drop(reqs);
        let closed = OtlpConfig { port: 1, ..cfg };
        assert!(matches!(post(&closed, b"x"), Sent::Retry(_)));
    }
}
