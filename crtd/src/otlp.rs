//! Export to an OpenTelemetry collector: the events and log lines crtd
//! stores go out as OTLP log records over OTLP/HTTP (binary protobuf,
//! gzipped unless `compression = "none"`), to an http:// or https://
//! endpoint, on one kept-alive connection.
//!
//! The exporter reads crtd's own history with a cursor it keeps on disk, so
//! a collector that is down, or a crtd restart, delays records but loses
//! none that retention still holds. The first time it runs it notes the
//! time: events from before then are not sent (it does not replay the
//! past, even history crtd only takes in later). A collector that refuses a
//! batch outright (a 4xx other than 429) gets it counted as rejected and the
//! exporter moves on, as are the records a partial success names; anything
//! else is retried with backoff, or after the `Retry-After` a 429 or 503
//! asks for.
//!
//! Each stored stream is one OTLP resource, with `container.id`,
//! `crt.containerd.namespace`, `host.name`, `service.name` (the Kubernetes
//! container name, else the container id), `crt.tenant` and, when CRI
//! named them, `k8s.namespace.name`, `k8s.pod.name`, `k8s.pod.uid` and
//! `k8s.container.name`. Records carry `crt.event`
//! (`syscall`, `log`, `drops`, `gap`) and, by kind, `thread.id`,
//! `process.command`, `crt.syscall.name`, `log.iostream`, `crt.dropped`,
//! `crt.gap.lost`, `crt.gap.exact`.
//!
//! The debug actions of the audit log (clone, exec, cp, commit, push,
//! redeploy, rm) go out too, from the lines added to it since the export
//! began: one resource per tenant (`service.name` crtd, `crt.tenant`),
//! records with `crt.event` `audit`, `crt.audit.action`,
//! `crt.audit.outcome`, `crt.containerd.namespace`, `container.id` and
//! `crt.audit.detail` (JSON); failures are WARN.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crt_config::OtlpConfig;
use crt_tracer::record::{
    Record, FLAG_RESUMED, FLAG_UNFINISHED, KIND_DROPS, KIND_GAP, KIND_LOG, KIND_SYSCALL,
};
use crt_tracer::render;
use crt_tracer::render::now_ns;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
use prost::Message;
use serde_json::Value;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::Agent;

use crate::ingest::Ingest;
use crate::store::query::{self, Budget, Cursor, Filter, Hit, Order};
use crate::store::Stream;

/// Records per request.
const BATCH: usize = 2048;
/// How often the history is checked for new records when caught up.
const POLL: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The longest `Retry-After` obeyed: a collector cannot park the export
/// for longer than this per request.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// For a whole request: connecting, TLS, sending and the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Enough for any `ExportLogsServiceResponse`; more is not read.
const MAX_ANSWER: u64 = 64 * 1024;

/// What the exporter did, for `/metrics`.
#[derive(Default)]
pub struct ExportStats {
    pub exported: AtomicU64,
    pub rejected: AtomicU64,
    pub failed_requests: AtomicU64,
}

fn attr(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(s: impl Into<String>) -> any_value::Value {
    any_value::Value::StringValue(s.into())
}

fn int(i: i64) -> any_value::Value {
    any_value::Value::IntValue(i)
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

/// A stored record as an OTLP log record; `None` for kinds not exported.
fn log_record(rec: &Record<'_>, observed_ns: u64) -> Option<LogRecord> {
    let warn = |body: String, attributes: Vec<KeyValue>| LogRecord {
        severity_number: SeverityNumber::Warn as i32,
        severity_text: "WARN".into(),
        body: Some(AnyValue {
            value: Some(text(body)),
        }),
        attributes,
        ..Default::default()
    };
    let plain = |body: String, attributes: Vec<KeyValue>| LogRecord {
        body: Some(AnyValue {
            value: Some(text(body)),
        }),
        attributes,
        ..Default::default()
    };
    let lr = match rec.kind {
        KIND_SYSCALL => {
            let call = render::strace_call(rec);
            // From the table, not the text: a resumed call's text starts
            // `<... read resumed>`.
            let name = crt_tracer::decode::syscall_name(rec.arch, rec.nr);
            let mut attributes = vec![
                attr("crt.event", text("syscall")),
                attr("crt.syscall.name", text(name)),
                attr("thread.id", int(i64::from(rec.tid))),
                attr("process.command", text(String::from_utf8_lossy(rec.comm()))),
            ];
            if rec.flags & FLAG_RESUMED != 0 {
                attributes.push(attr(
                    "crt.syscall.resumed",
                    any_value::Value::BoolValue(true),
                ));
            } else if rec.flags & FLAG_UNFINISHED != 0 {
                attributes.push(attr(
                    "crt.syscall.unfinished",
                    any_value::Value::BoolValue(true),
                ));
            }
            let result = rec.result();
            if let Some(r) = result {
                attributes.push(attr("crt.syscall.ret", int(r.ret)));
                if let Some(d) = r.duration_ns {
                    attributes.push(attr(
                        "crt.syscall.duration_ns",
                        int(i64::try_from(d).unwrap_or(i64::MAX)),
                    ));
                }
            }
            let errno = result
                .and_then(|r| r.errno())
                .map(|e| crt_tracer::errno::name(e).map_or_else(|| e.to_string(), str::to_string));
            match errno {
                // A failed call: its error's name, also as the semantic
                // conventions' `error.type` (the class of error an operation
                // ended with), and WARN, not ERROR: many failures are how
                // programs probe (ENOENT along a search path, EAGAIN on a
                // non-blocking socket), not something that went wrong.
                Some(e) => {
                    attributes.push(attr("crt.syscall.errno", text(e.clone())));
                    attributes.push(attr("error.type", text(e)));
                    warn(call, attributes)
                }
                None => plain(call, attributes),
            }
        }
        KIND_LOG => plain(
            String::from_utf8_lossy(render::log_bytes(rec)).into_owned(),
            vec![
                attr("crt.event", text("log")),
                attr("log.iostream", text(render::log_stream(rec))),
            ],
        ),
        KIND_DROPS => {
            let mut body = format!(
                "{} events dropped so far: the trace store could not keep up",
                rec.args[0]
            );
            if rec.args[2] > 0 {
                body.push_str(&format!(
                    "; {} results lost so far: those calls show = ?",
                    rec.args[2]
                ));
            }
            warn(
                body,
                vec![
                    attr("crt.event", text("drops")),
                    attr("crt.dropped", int(rec.args[0] as i64)),
                    attr("crt.results_lost", int(rec.args[2] as i64)),
                ],
            )
        }
        KIND_GAP => {
            let [lost, from, to, segments, exact, _] = rec.args;
            let count = if exact == 1 {
                format!("{lost} events")
            } else {
                format!("at least {lost} events")
            };
            let span = if from > 0 && to > 0 {
                format!(
                    " from {} to {}",
                    render::rfc3339_utc(from),
                    render::rfc3339_utc(to)
                )
            } else {
                String::new()
            };
            warn(
                format!("gap: {count}{span} ({segments} trace segments) were deleted by the trace's bound before the history stored them"),
                vec![
                    attr("crt.event", text("gap")),
                    attr("crt.gap.lost", int(lost as i64)),
                    attr("crt.gap.exact", any_value::Value::BoolValue(exact == 1)),
                ],
            )
        }
        _ => return None,
    };
    Some(LogRecord {
        time_unix_nano: rec.ts_ns,
        observed_time_unix_nano: observed_ns,
        ..lr
    })
}

/// The request for a page of hits: one `ResourceLogs` per stream, in
/// first-seen order, each with one `ScopeLogs` of scope `crt`.
fn request(
    hits: &[Hit],
    resource_of: &mut impl FnMut(&Stream) -> Resource,
) -> ExportLogsServiceRequest {
    let observed = now_ns();
    let mut groups: Vec<(&Arc<Stream>, Vec<LogRecord>)> = Vec::new();
    for h in hits {
        let Some(lr) = log_record(&h.record(), observed) else {
            continue;
        };
        match groups.iter_mut().find(|(s, _)| Arc::ptr_eq(s, &h.stream)) {
            Some((_, v)) => v.push(lr),
            None => groups.push((&h.stream, vec![lr])),
        }
    }
    let resource_logs = groups
        .into_iter()
        .map(|(stream, log_records)| {
            let attributes = resource_of(stream)
                .attrs
                .into_iter()
                .map(|(k, v)| attr(k, text(v)))
                .collect();
            resource_logs(attributes, "crt", log_records)
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }
}

/// One resource's records, under one scope of ours.
fn resource_logs(
    attributes: Vec<KeyValue>,
    scope: &str,
    log_records: Vec<LogRecord>,
) -> ResourceLogs {
    ResourceLogs {
        resource: Some(OtlpResource {
            attributes,
            ..Default::default()
        }),
        scope_logs: vec![ScopeLogs {
            scope: Some(InstrumentationScope {
                name: scope.into(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            }),
            log_records,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The request body: protobuf, gzipped when the config says so.
fn body(cfg: &OtlpConfig, req: &ExportLogsServiceRequest) -> Vec<u8> {
    let pb = req.encode_to_vec();
    if !cfg.gzip {
        return pb;
    }
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(pb.len() / 4),
        flate2::Compression::default(),
    );
    // Writing to a Vec cannot fail.
    gz.write_all(&pb).expect("gzip into memory");
    gz.finish().expect("gzip into memory")
}

/// How a POST ended.
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    /// Taken; `rejected` of its records refused (a partial success).
    Ok { rejected: u64, why: String },
    /// The collector refused this batch for good (a 4xx other than 429).
    Rejected(u16),
    /// Worth trying again (429, 5xx, no connection), after `after` if the
    /// collector said when.
    Retry {
        why: String,
        after: Option<Duration>,
    },
}

/// The collector's URL, for requests and messages.
fn url(cfg: &OtlpConfig) -> String {
    let scheme = if cfg.https { "https" } else { "http" };
    format!("{scheme}://{}:{}{}", cfg.host, cfg.port, cfg.path)
}

/// The certificates the collector's chain must end in: `ca`'s, else the
/// system's, else webpki's bundled roots.
pub(crate) fn root_certs(ca: Option<&Path>, key: &str) -> Result<RootCerts, String> {
    let Some(path) = ca else {
        let native = rustls_native_certs::load_native_certs();
        if native.certs.is_empty() {
            return Ok(RootCerts::WebPki);
        }
        let certs = native
            .certs
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        return Ok(RootCerts::Specific(Arc::new(certs)));
    };
    let key = format!("{key} = {:?}", path.display().to_string());
    let pem = std::fs::read(path).map_err(|e| {
        format!(
            "{key}: cannot read it ({e}); expected a PEM file with the collector's CA certificate"
        )
    })?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => continue,
            Err(e) => return Err(format!("{key}: not valid PEM ({e}); expected a PEM file with the collector's CA certificate")),
        }
    }
    if certs.is_empty() {
        return Err(format!(
            "{key} holds no certificate; expected PEM (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(RootCerts::Specific(Arc::new(certs)))
}

/// One agent for the exporter's life: its connection is kept alive
/// between batches.
fn agent(cfg: &OtlpConfig) -> Result<Agent, String> {
    let mut config = Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(REQUEST_TIMEOUT))
        .max_redirects(0)
        .max_redirects_will_error(false)
        .user_agent(concat!("crtd/", env!("CARGO_PKG_VERSION")));
    if cfg.https {
        let roots = root_certs(cfg.ca.as_deref(), "export.otlp.ca")?;
        config = config.tls_config(TlsConfig::builder().root_certs(roots).build());
    }
    Ok(config.build().into())
}

/// rustls reports a failed handshake as an I/O error that wraps its own.
fn tls_failure(e: &ureq::Error) -> Option<String> {
    match e {
        ureq::Error::Rustls(r) => Some(r.to_string()),
        ureq::Error::Tls(t) => Some(t.to_string()),
        ureq::Error::Io(io) => io
            .get_ref()?
            .downcast_ref::<rustls::Error>()
            .map(|r| r.to_string()),
        _ => None,
    }
}

/// Why a request got no answer, in words that say what to check.
fn no_answer(cfg: &OtlpConfig, e: &ureq::Error) -> String {
    match tls_failure(e) {
        Some(cause) => match &cfg.ca {
            Some(ca) => format!(
                "TLS with {} failed: {cause}; its certificate does not verify against export.otlp.ca = {:?}",
                url(cfg),
                ca.display().to_string()
            ),
            None => format!(
                "TLS with {} failed: {cause}; if its certificate is signed by a private CA, name that CA's PEM file with export.otlp.ca",
                url(cfg)
            ),
        },
        None => format!("{}: {e}", url(cfg)),
    }
}

/// `Retry-After` in seconds, as OTLP/HTTP collectors send it on 429 and
/// 503; the HTTP-date form falls back to the backoff.
fn retry_after(resp: &ureq::http::Response<ureq::Body>) -> Option<Duration> {
    let secs: u64 = resp
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

fn post(agent: &Agent, cfg: &OtlpConfig, body: &[u8]) -> Sent {
    let mut req = agent
        .post(url(cfg))
        .header("Content-Type", "application/x-protobuf");
    if cfg.gzip {
        req = req.header("Content-Encoding", "gzip");
    }
    for (k, v) in &cfg.headers {
        req = req.header(k, v);
    }
    let mut resp = match req.send(body) {
        Ok(r) => r,
        Err(e) => {
            return Sent::Retry {
                why: no_answer(cfg, &e),
                after: None,
            }
        }
    };
    let code = resp.status().as_u16();
    let after = if code == 429 || code == 503 {
        retry_after(&resp)
    } else {
        None
    };
    // Read to its end, bounded, so the connection can carry the next
    // batch. A partial success names the records the collector dropped;
    // an empty or unreadable answer is a full success.
    let answer = resp
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER)
        .read_to_vec()
        .unwrap_or_default();
    if code == 429 || code >= 500 {
        return Sent::Retry {
            why: format!("{} answered HTTP {code}", url(cfg)),
            after,
        };
    }
    if !(200..300).contains(&code) {
        return Sent::Rejected(code);
    }
    let partial = ExportLogsServiceResponse::decode(&answer[..])
        .ok()
        .and_then(|r| r.partial_success);
    match partial {
        Some(p) if p.rejected_log_records > 0 => Sent::Ok {
            rejected: p.rejected_log_records as u64,
            why: p.error_message,
        },
        _ => Sent::Ok {
            rejected: 0,
            why: String::new(),
        },
    }
}

pub struct Exporter {
    pub cfg: OtlpConfig,
    pub ingest: Arc<Ingest>,
    /// Where the cursor is kept between runs.
    pub state: PathBuf,
    /// The audit log of debug actions, exported as it grows.
    pub audit: Option<PathBuf>,
}

/// What is kept between runs.
#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    /// When the export began: older events are not sent.
    since_ns: u64,
    cursor: Cursor,
    /// How far into the audit log has been sent (absent: from its end now).
    #[serde(default)]
    audit_offset: Option<u64>,
}

/// Whole lines of the audit log past `offset` (at most `max`), and the
/// offset after them. A log shorter than `offset` was replaced: read anew.
fn audit_lines(path: &Path, offset: u64, max: usize) -> (Vec<Value>, u64) {
    use std::io::{BufRead, Seek};
    let Ok(mut f) = std::fs::File::open(path) else {
        return (Vec::new(), offset);
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut at = if len < offset { 0 } else { offset };
    if f.seek(std::io::SeekFrom::Start(at)).is_err() {
        return (Vec::new(), offset);
    }
    let mut r = std::io::BufReader::new(f);
    let mut out = Vec::new();
    let mut line = Vec::new();
    while out.len() < max {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(n) if n > 0 && line.ends_with(b"\n") => {
                at += n as u64;
                if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                    out.push(v);
                }
            }
            _ => break,
        }
    }
    (out, at)
}

/// An audit line as an OTLP log record.
fn audit_record(v: &Value, observed_ns: u64) -> LogRecord {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let outcome = s("outcome");
    let ok = outcome == "ok" || outcome.starts_with("exited") || outcome == "ended";
    let body = format!(
        "{} {}/{} by {}: {outcome}",
        s("action"),
        s("namespace"),
        s("container"),
        v["tenant"].as_str().unwrap_or("root")
    );
    let (severity_number, severity_text) = if ok {
        (SeverityNumber::Info as i32, "INFO")
    } else {
        (SeverityNumber::Warn as i32, "WARN")
    };
    LogRecord {
        time_unix_nano: render::parse_rfc3339_utc(&s("ts")).unwrap_or(observed_ns),
        observed_time_unix_nano: observed_ns,
        severity_number,
        severity_text: severity_text.into(),
        body: Some(AnyValue {
            value: Some(text(body)),
        }),
        attributes: vec![
            attr("crt.event", text("audit")),
            attr("crt.audit.action", text(s("action"))),
            attr("crt.audit.outcome", text(outcome)),
            attr("crt.containerd.namespace", text(s("namespace"))),
            attr("container.id", text(s("container"))),
            attr("crt.audit.detail", text(v["detail"].to_string())),
        ],
        ..Default::default()
    }
}

/// A request of audit lines: one resource per tenant (root's have none).
fn audit_request(lines: &[Value], host: &str) -> ExportLogsServiceRequest {
    let observed = now_ns();
    let mut groups: Vec<(Option<String>, Vec<LogRecord>)> = Vec::new();
    for v in lines {
        let tenant = v["tenant"].as_str().map(str::to_string);
        let lr = audit_record(v, observed);
        match groups.iter_mut().find(|(t, _)| *t == tenant) {
            Some((_, g)) => g.push(lr),
            None => groups.push((tenant, vec![lr])),
        }
    }
    let resource_logs = groups
        .into_iter()
        .map(|(tenant, log_records)| {
            let mut attributes = vec![
                attr("service.name", text("crtd")),
                attr("host.name", text(host)),
            ];
            if let Some(t) = tenant {
                attributes.push(attr("crt.tenant", text(t)));
            }
            resource_logs(attributes, "crt.audit", log_records)
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }
}

impl Exporter {
    fn filter(&self, since_ns: u64) -> Filter {
        let mut kinds = 0u8;
        if self.cfg.syscalls {
            kinds |= 1 << KIND_SYSCALL | 1 << KIND_DROPS | 1 << KIND_GAP;
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
    /// everything stored; and how far the audit log was sent.
    fn load(&self) -> (Filter, Cursor, u64) {
        let saved = std::fs::read(&self.state)
            .ok()
            .and_then(|b| serde_json::from_slice::<State>(&b).ok());
        let audit_end = || {
            self.audit
                .as_deref()
                .and_then(|p| std::fs::metadata(p).ok())
                .map_or(0, |m| m.len())
        };
        if let Some(st) = saved {
            let filter = self.filter(st.since_ns);
            // Positions saved before gap records were exported were taken
            // with the same settings, less the gap kind: still good.
            let before_gaps = Filter {
                kinds: filter.kinds & !(1 << KIND_GAP),
                ..filter.clone()
            };
            let digest = |f: &Filter| Cursor::at(f, Order::Asc, BTreeMap::new()).filter;
            if st.cursor.filter == digest(&filter) || st.cursor.filter == digest(&before_gaps) {
                let cursor = Cursor::at(&filter, Order::Asc, st.cursor.positions);
                let audit = st.audit_offset.unwrap_or_else(audit_end);
                return (filter, cursor, audit);
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
        let audit = audit_end();
        self.save(&filter, &cursor, audit);
        (filter, cursor, audit)
    }

    fn save(&self, filter: &Filter, cursor: &Cursor, audit_offset: u64) {
        let st = State {
            since_ns: filter.since.unwrap_or(0),
            cursor: cursor.clone(),
            audit_offset: Some(audit_offset),
        };
        if let Err(e) = crate::store::write_json_atomic(&self.state, &st) {
            tracing::warn!(
                "otlp export: cannot save its position in {}: {e}",
                self.state.display()
            );
        }
    }

    /// Sends what the audit log gained since `offset`; the offset reached
    /// (unchanged when the collector could not be reached: tried again).
    fn export_audit(&self, agent: &Agent, host: &str, offset: u64, stats: &ExportStats) -> u64 {
        let Some(path) = &self.audit else {
            return offset;
        };
        let (lines, next) = audit_lines(path, offset, BATCH);
        if next == offset {
            return offset;
        }
        let lines: Vec<Value> = lines
            .into_iter()
            .filter(|v| {
                self.cfg.tenants.is_empty()
                    || v["tenant"]
                        .as_str()
                        .is_some_and(|t| self.cfg.tenants.iter().any(|c| c == t))
            })
            .collect();
        if lines.is_empty() {
            return next;
        }
        let n = lines.len() as u64;
        match post(
            agent,
            &self.cfg,
            &body(&self.cfg, &audit_request(&lines, host)),
        ) {
            Sent::Ok { rejected, .. } => {
                let rejected = rejected.min(n);
                stats.exported.fetch_add(n - rejected, Ordering::Relaxed);
                stats.rejected.fetch_add(rejected, Ordering::Relaxed);
                next
            }
            Sent::Rejected(code) => {
                stats.rejected.fetch_add(n, Ordering::Relaxed);
                tracing::warn!(
                    "otlp export: the collector refused {n} audit records (HTTP {code}); skipping them"
                );
                next
            }
            Sent::Retry { why, .. } => {
                stats.failed_requests.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("otlp export: audit records not sent ({why}); retrying");
                offset
            }
        }
    }

    pub fn run(self, stats: Arc<ExportStats>, stop: Arc<AtomicBool>) {
        let (filter, mut cursor, mut audit_offset) = self.load();
        let host = hostname();
        let mut backoff = Duration::from_secs(1);
        let mut failing = false;
        tracing::info!(
            "exporting {} to OTLP at {}{}",
            match (self.cfg.syscalls, self.cfg.logs) {
                (true, true) => "syscalls and log lines",
                (true, false) => "syscalls",
                _ => "log lines",
            },
            url(&self.cfg),
            if self.cfg.gzip { " (gzip)" } else { "" }
        );
        // A CA file that cannot be read may yet be put in place: tried
        // again, and said once.
        let agent = loop {
            match agent(&self.cfg) {
                Ok(a) => break a,
                Err(e) => {
                    stats.failed_requests.fetch_add(1, Ordering::Relaxed);
                    if !failing {
                        tracing::error!("otlp export: {e}; retrying");
                    }
                    failing = true;
                    sleep_unless_stopped(MAX_BACKOFF, &stop);
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                }
            }
        };
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
                let req = request(&page.hits, &mut resource_of);
                let sent: u64 = req
                    .resource_logs
                    .iter()
                    .flat_map(|rl| &rl.scope_logs)
                    .map(|sl| sl.log_records.len() as u64)
                    .sum();
                match post(&agent, &self.cfg, &body(&self.cfg, &req)) {
                    Sent::Ok { rejected, why } => {
                        let rejected = rejected.min(sent);
                        stats.exported.fetch_add(sent - rejected, Ordering::Relaxed);
                        stats.rejected.fetch_add(rejected, Ordering::Relaxed);
                        if rejected > 0 {
                            tracing::warn!(
                                "otlp export: the collector dropped {rejected} of {sent} records ({why})"
                            );
                        }
                        if failing {
                            tracing::info!("otlp export: the collector takes records again");
                        }
                        failing = false;
                        backoff = Duration::from_secs(1);
                    }
                    Sent::Rejected(code) => {
                        stats.rejected.fetch_add(sent, Ordering::Relaxed);
                        tracing::warn!(
                            "otlp export: the collector refused {sent} records (HTTP {code}); skipping them"
                        );
                    }
                    Sent::Retry { why, after } => {
                        stats.failed_requests.fetch_add(1, Ordering::Relaxed);
                        if !failing {
                            tracing::warn!(
                                "otlp export: cannot send to the collector ({why}); retrying"
                            );
                        }
                        failing = true;
                        sleep_unless_stopped(after.unwrap_or(backoff), &stop);
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
            let audit = self.export_audit(&agent, &host, audit_offset, &stats);
            if !page.hits.is_empty() || audit != audit_offset {
                audit_offset = audit;
                self.save(&filter, &cursor, audit_offset);
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
    use std::collections::{HashMap, VecDeque};
    use std::io::{BufRead, BufReader, Read};
    use std::net::TcpListener;
    use std::sync::Mutex;

    use crt_tracer::record::{simple, RecordBuilder};
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;

    use super::*;
    use crate::store::{Store, StreamMeta};

    fn cfg(port: u16) -> OtlpConfig {
        OtlpConfig {
            https: false,
            host: "127.0.0.1".into(),
            port,
            path: "/v1/logs".into(),
            syscalls: true,
            logs: true,
            tenants: vec![],
            headers: vec![("x-key".into(), "k".into())],
            ca: None,
            gzip: true,
        }
    }

    fn flat(kvs: &[KeyValue]) -> HashMap<String, any_value::Value> {
        kvs.iter()
            .map(|kv| {
                let v = kv.value.clone().and_then(|v| v.value).expect("a value");
                (kv.key.clone(), v)
            })
            .collect()
    }

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(b)
            .read_to_end(&mut out)
            .expect("gzip");
        out
    }

    fn log_line(ts: u64, stream: u64, line: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut b = RecordBuilder::begin(&mut buf, KIND_LOG, ts, 7, 0, 0, &[stream, 0, 0, 0, 0, 0]);
        b.bytes(0, line, false);
        b.finish();
        buf
    }

    #[test]
    fn results_are_attributes_and_failed_calls_are_warnings() {
        use crate::store::tests::{exit_rec, rec, rec_with_result};
        let lr = |buf: &[u8]| log_record(&crt_tracer::record::decode(buf).unwrap().0, 1).unwrap();
        let body_of = |lr: &LogRecord| match lr.body.clone().and_then(|b| b.value) {
            Some(any_value::Value::StringValue(s)) => s,
            other => panic!("{other:?}"),
        };

        let failed = lr(&rec_with_result(
            1_000,
            42,
            "openat",
            b"/nope",
            -2,
            Some(21_000),
        ));
        let a = flat(&failed.attributes);
        assert_eq!(a["crt.syscall.ret"], int(-2));
        assert_eq!(a["crt.syscall.errno"], text("ENOENT"));
        assert_eq!(a["error.type"], text("ENOENT"));
        assert_eq!(a["crt.syscall.duration_ns"], int(21_000));
        assert_eq!(failed.severity_number, SeverityNumber::Warn as i32);
        assert_eq!(failed.severity_text, "WARN");
        assert!(
            body_of(&failed).ends_with(") = -1 ENOENT (No such file or directory)"),
            "{}",
            body_of(&failed)
        );

        let ok = lr(&rec_with_result(
            1_000,
            42,
            "openat",
            b"/etc/hosts",
            3,
            Some(5_000),
        ));
        let a = flat(&ok.attributes);
        assert_eq!(a["crt.syscall.ret"], int(3));
        assert_eq!(a["crt.syscall.duration_ns"], int(5_000));
        assert!(!a.contains_key("crt.syscall.errno") && !a.contains_key("error.type"));
        assert_eq!(ok.severity_number, SeverityNumber::Unspecified as i32);

        // No result (no BPF): no result attributes, nothing claimed.
        let unknown = lr(&rec(1_000, 42, "openat", b"/etc/hosts"));
        let a = flat(&unknown.attributes);
        for k in [
            "crt.syscall.ret",
            "crt.syscall.errno",
            "crt.syscall.duration_ns",
            "error.type",
        ] {
            assert!(!a.contains_key(k), "{k}");
        }
        assert_eq!(unknown.severity_number, SeverityNumber::Unspecified as i32);

        // An entry stored before its exit, and the exit with the result.
        let mut entry = rec(1_000, 42, "read", b"");
        entry[5] = FLAG_UNFINISHED;
        let a = flat(&lr(&entry).attributes);
        assert_eq!(
            a["crt.syscall.unfinished"],
            any_value::Value::BoolValue(true)
        );
        let exit = lr(&exit_rec(2_000, 42, "read", -11, 7_000));
        let a = flat(&exit.attributes);
        assert_eq!(a["crt.syscall.resumed"], any_value::Value::BoolValue(true));
        assert_eq!(a["crt.syscall.name"], text("read"));
        assert_eq!(a["crt.syscall.errno"], text("EAGAIN"));
        assert!(
            body_of(&exit).starts_with("<... read resumed>"),
            "{}",
            body_of(&exit)
        );
        assert_eq!(exit.time_unix_nano, 2_000);

        // Results lost (the exit program's buffer was full) are counted apart.
        let drops = lr(&crt_tracer::record::simple(
            KIND_DROPS,
            3_000,
            0,
            &[0, 0, 7, 0, 0, 0],
            b"",
        ));
        let a = flat(&drops.attributes);
        assert_eq!(a["crt.results_lost"], int(7));
        assert!(body_of(&drops).ends_with("; 7 results lost so far: those calls show = ?"));
        assert_eq!(exit.severity_number, SeverityNumber::Warn as i32);
    }

    #[test]
    fn a_batch_decodes_with_the_official_types_keeping_every_attribute() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let meta = |container: &str, kubernetes: Value| StreamMeta {
            namespace: "k8s.io".into(),
            container: container.into(),
            instance: 1,
            kubernetes,
            source: dir.path().join(container),
        };
        let pod = store
            .stream(meta(
                "c1",
                serde_json::json!({"namespace": "shop", "pod": "web-0", "pod_uid": "u-1", "container": "app"}),
            ))
            .unwrap();
        let bare = store.stream(meta("c2", Value::Null)).unwrap();
        let hit = |stream: &Arc<Stream>, record: Vec<u8>| Hit {
            stream: Arc::clone(stream),
            end: (1, record.len() as u64),
            record,
        };
        let open = crate::store::tests::rec(1_000, 42, "openat", b"/etc/hosts");
        let hits = vec![
            hit(&pod, open.clone()),
            hit(&bare, log_line(2_000, 2, b"oops")),
            hit(&pod, simple(KIND_DROPS, 3_000, 0, &[5, 0, 0, 0, 0, 0], b"")),
            hit(&pod, simple(KIND_GAP, 4_000, 0, &[9, 10, 20, 2, 1, 0], b"")),
        ];
        let mut resource_of = |s: &Stream| {
            let tenant = (s.meta.container == "c1").then_some("acme");
            Resource::of(s, tenant, "node-1")
        };
        let req = request(&hits, &mut resource_of);
        let config = cfg(1);
        let sent = body(&config, &req);
        let got = ExportLogsServiceRequest::decode(&gunzip(&sent)[..]).unwrap();
        assert_eq!(got, req);
        let plain = body(
            &OtlpConfig {
                gzip: false,
                ..config
            },
            &req,
        );
        assert_eq!(ExportLogsServiceRequest::decode(&plain[..]).unwrap(), req);

        // One resource per stream, first-seen order, one scope each.
        assert_eq!(got.resource_logs.len(), 2);
        let s = |v: &str| text(v);
        let res = flat(&got.resource_logs[0].resource.as_ref().unwrap().attributes);
        let want: HashMap<String, any_value::Value> = [
            ("container.id", s("c1")),
            ("crt.containerd.namespace", s("k8s.io")),
            ("host.name", s("node-1")),
            ("service.name", s("app")),
            ("k8s.namespace.name", s("shop")),
            ("k8s.pod.name", s("web-0")),
            ("k8s.pod.uid", s("u-1")),
            ("k8s.container.name", s("app")),
            ("crt.tenant", s("acme")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(res, want);
        let res = flat(&got.resource_logs[1].resource.as_ref().unwrap().attributes);
        assert_eq!(res["service.name"], s("c2"));
        assert!(!res.contains_key("crt.tenant") && !res.contains_key("k8s.pod.name"));
        for rl in &got.resource_logs {
            assert_eq!(rl.scope_logs.len(), 1);
            let scope = rl.scope_logs[0].scope.as_ref().unwrap();
            assert_eq!(
                (scope.name.as_str(), scope.version.as_str()),
                ("crt", env!("CARGO_PKG_VERSION"))
            );
        }

        let recs = &got.resource_logs[0].scope_logs[0].log_records;
        assert_eq!(recs.len(), 3);
        let body_of = |lr: &LogRecord| match lr.body.clone().and_then(|b| b.value) {
            Some(any_value::Value::StringValue(s)) => s,
            other => panic!("{other:?}"),
        };
        let call = &recs[0];
        assert_eq!(call.time_unix_nano, 1_000);
        assert!(call.observed_time_unix_nano > 0);
        let (rec, _) = crt_tracer::record::decode(&open).unwrap();
        assert_eq!(body_of(call), render::strace_call(&rec));
        assert!(body_of(call).starts_with("openat(AT_FDCWD, \"/etc/hosts\""));
        assert_eq!(call.severity_number, 0);
        let a = flat(&call.attributes);
        assert_eq!(a["crt.event"], s("syscall"));
        assert_eq!(a["crt.syscall.name"], s("openat"));
        assert_eq!(a["thread.id"], int(42));
        assert_eq!(a["process.command"], s("app"));

        let drops = &recs[1];
        assert_eq!(drops.severity_number, SeverityNumber::Warn as i32);
        assert_eq!(drops.severity_text, "WARN");
        let a = flat(&drops.attributes);
        assert_eq!((&a["crt.event"], &a["crt.dropped"]), (&s("drops"), &int(5)));

        let gap = &recs[2];
        assert_eq!(gap.severity_number, SeverityNumber::Warn as i32);
        assert_eq!(gap.time_unix_nano, 4_000);
        let a = flat(&gap.attributes);
        assert_eq!(a["crt.event"], s("gap"));
        assert_eq!(a["crt.gap.lost"], int(9));
        assert_eq!(a["crt.gap.exact"], any_value::Value::BoolValue(true));
        assert!(
            body_of(gap).starts_with("gap: 9 events from "),
            "{}",
            body_of(gap)
        );

        let line = &got.resource_logs[1].scope_logs[0].log_records[0];
        assert_eq!(body_of(line), "oops");
        let a = flat(&line.attributes);
        assert_eq!(
            (&a["crt.event"], &a["log.iostream"]),
            (&s("log"), &s("stderr"))
        );
    }

    /// An answer: status line, extra header lines, body.
    type Answer = (&'static str, &'static str, Vec<u8>);

    /// What a collector stand-in saw: each request's head and body, and
    /// how many connections they came on.
    #[derive(Default)]
    struct Seen {
        requests: Vec<(String, Vec<u8>)>,
        connections: usize,
    }

    /// Serves `answers` in order, many requests per connection (keep-alive).
    fn collector<S: Read + Write + Send + 'static>(
        answers: Vec<Answer>,
        mut accept: impl FnMut() -> Option<S> + Send + 'static,
    ) -> Arc<Mutex<Seen>> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
        let seen_by_server = Arc::clone(&seen);
        std::thread::spawn(move || {
            while let Some(conn) = accept() {
                seen_by_server.lock().unwrap().connections += 1;
                let (seen, answers) = (Arc::clone(&seen_by_server), Arc::clone(&answers));
                std::thread::spawn(move || serve(conn, &seen, &answers));
            }
        });
        seen
    }

    fn serve(
        conn: impl Read + Write,
        seen: &Mutex<Seen>,
        answers: &Mutex<VecDeque<Answer>>,
    ) -> Option<()> {
        let mut conn = BufReader::new(conn);
        loop {
            let mut head = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if conn.read_line(&mut line).ok()? == 0 {
                    return None;
                }
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().ok()?;
                }
                head.push_str(&line);
            }
            let mut body = vec![0u8; len];
            conn.read_exact(&mut body).ok()?;
            seen.lock().unwrap().requests.push((head, body));
            let (status, extra, answer) = answers.lock().unwrap().pop_front()?;
            let out = conn.get_mut();
            write!(
                out,
                "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\n\r\n",
                answer.len()
            )
            .ok()?;
            out.write_all(&answer).ok()?;
            out.flush().ok()?;
        }
    }

    fn tcp_collector(answers: Vec<Answer>) -> (u16, Arc<Mutex<Seen>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = collector(answers, move || listener.accept().ok().map(|(s, _)| s));
        (port, seen)
    }

    #[test]
    fn answers_are_read_refusals_skipped_overload_retried_after_what_it_asks() {
        let partial = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 3,
                error_message: "too old".into(),
            }),
        }
        .encode_to_vec();
        let (port, seen) = tcp_collector(vec![
            ("200 OK", "", vec![]),
            (
                "200 OK",
                "Content-Type: application/x-protobuf\r\n",
                partial,
            ),
            ("400 Bad Request", "", b"no".to_vec()),
            ("429 Too Many Requests", "Retry-After: 7\r\n", vec![]),
            ("503 Unavailable", "Retry-After: 100000\r\n", vec![]),
            ("502 Bad Gateway", "", vec![]),
        ]);
        let cfg = cfg(port);
        let agent = agent(&cfg).unwrap();
        let body = body(&cfg, &ExportLogsServiceRequest::default());
        let ok = Sent::Ok {
            rejected: 0,
            why: String::new(),
        };
        assert_eq!(post(&agent, &cfg, &body), ok);
        assert_eq!(
            post(&agent, &cfg, &body),
            Sent::Ok {
                rejected: 3,
                why: "too old".into()
            }
        );
        assert_eq!(post(&agent, &cfg, &body), Sent::Rejected(400));
        let after = |s: Sent| match s {
            Sent::Retry { after, .. } => after,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            after(post(&agent, &cfg, &body)),
            Some(Duration::from_secs(7))
        );
        assert_eq!(after(post(&agent, &cfg, &body)), Some(MAX_RETRY_AFTER));
        assert_eq!(after(post(&agent, &cfg, &body)), None);

        let seen = seen.lock().unwrap();
        assert_eq!(seen.requests.len(), 6);
        // Kept alive: one connection for every batch.
        assert_eq!(seen.connections, 1);
        let (head, sent) = &seen.requests[0];
        assert!(head.starts_with("POST /v1/logs HTTP/1.1\r\n"), "{head}");
        let head = head.to_ascii_lowercase();
        assert!(
            head.contains("content-type: application/x-protobuf\r\n"),
            "{head}"
        );
        assert!(head.contains("content-encoding: gzip\r\n"), "{head}");
        assert!(head.contains("x-key: k\r\n"), "{head}");
        assert_eq!(gunzip(sent), Vec::<u8>::new());

        // Nobody listening: retried.
        let closed = OtlpConfig { port: 1, ..cfg };
        assert!(matches!(
            post(&agent, &closed, &body),
            Sent::Retry { after: None, .. }
        ));
    }

    #[test]
    fn without_compression_the_body_is_plain_protobuf() {
        let (port, seen) = tcp_collector(vec![("200 OK", "", vec![])]);
        let cfg = OtlpConfig {
            gzip: false,
            ..cfg(port)
        };
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs::default()],
        };
        let agent = agent(&cfg).unwrap();
        assert!(matches!(
            post(&agent, &cfg, &body(&cfg, &req)),
            Sent::Ok { rejected: 0, .. }
        ));
        let seen = seen.lock().unwrap();
        let (head, sent) = &seen.requests[0];
        assert!(
            !head.to_ascii_lowercase().contains("content-encoding"),
            "{head}"
        );
        assert_eq!(ExportLogsServiceRequest::decode(&sent[..]).unwrap(), req);
    }

    fn self_signed(name: &str) -> rcgen::CertifiedKey<rcgen::KeyPair> {
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertifiedKey {
            cert: params.self_signed(&key).unwrap(),
            signing_key: key,
        }
    }

    #[test]
    fn an_https_collector_is_verified_against_the_configured_ca() {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let server = self_signed("collector");
        let other = self_signed("another CA");
        let key =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server.signing_key.serialize_der()));
        let tls = Arc::new(
            rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(vec![server.cert.der().clone()], key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = collector(vec![("200 OK", "", vec![])], move || {
            let (tcp, _) = listener.accept().ok()?;
            let conn = rustls::ServerConnection::new(Arc::clone(&tls)).ok()?;
            Some(rustls::StreamOwned::new(conn, tcp))
        });
        let dir = tempfile::tempdir().unwrap();
        let (good, wrong) = (dir.path().join("ca.pem"), dir.path().join("wrong.pem"));
        std::fs::write(&good, server.cert.pem()).unwrap();
        std::fs::write(&wrong, other.cert.pem()).unwrap();
        let https = |ca: &Path| OtlpConfig {
            https: true,
            ca: Some(ca.to_path_buf()),
            ..cfg(port)
        };
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs::default()],
        };

        // The wrong CA: refused before anything is sent, and said so.
        let cfg = https(&wrong);
        let why = match post(&agent(&cfg).unwrap(), &cfg, &body(&cfg, &req)) {
            Sent::Retry { why, after: None } => why,
            other => panic!("{other:?}"),
        };
        let url = format!("https://127.0.0.1:{port}/v1/logs");
        assert!(
            why.starts_with(&format!("TLS with {url} failed: ")),
            "{why}"
        );
        assert!(why.contains("UnknownIssuer"), "{why}");
        assert!(
            why.contains(&format!(
                "export.otlp.ca = {:?}",
                wrong.display().to_string()
            )),
            "{why}"
        );
        assert!(seen.lock().unwrap().requests.is_empty());

        // The right one: the batch arrives, gzipped, over TLS.
        let cfg = https(&good);
        assert!(matches!(
            post(&agent(&cfg).unwrap(), &cfg, &body(&cfg, &req)),
            Sent::Ok { rejected: 0, .. }
        ));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.requests.len(), 1);
        assert_eq!(
            ExportLogsServiceRequest::decode(&gunzip(&seen.requests[0].1)[..]).unwrap(),
            req
        );
    }

    #[test]
    fn a_ca_file_that_is_missing_or_not_pem_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let https = |ca: &Path| OtlpConfig {
            https: true,
            ca: Some(ca.to_path_buf()),
            ..cfg(1)
        };
        let e = agent(&https(&missing)).err().unwrap();
        let key = format!("export.otlp.ca = {:?}", missing.display().to_string());
        assert!(e.starts_with(&format!("{key}: cannot read it")), "{e}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let e = agent(&https(&junk)).err().unwrap();
        assert!(e.contains("holds no certificate"), "{e}");
        assert!(e.contains(&junk.display().to_string()), "{e}");
    }

    /// An ingest over a store holding one stream of `records`.
    fn ingest_with(dir: &Path, records: &[u8]) -> Arc<Ingest> {
        let store = Arc::new(Store::open(&dir.join("store")).unwrap());
        let s = store
            .stream(StreamMeta {
                namespace: "default".into(),
                container: "c1".into(),
                instance: 1,
                kubernetes: Value::Null,
                source: "/nowhere".into(),
            })
            .unwrap();
        s.append(
            records,
            crt_tracer::segment::Position { seq: 1, offset: 16 },
            false,
            0,
        )
        .unwrap();
        Arc::new(Ingest {
            store,
            live: Arc::new(crate::live::Live::default()),
            stats: Arc::new(crate::stats::Stats::default()),
            tenants: Arc::new(crate::tenants::Tenants::new(vec![])),
            traces_root: dir.join("traces"),
            stored: AtomicU64::new(0),
            default_max_age: Duration::from_secs(3600),
            default_max_bytes: 1 << 30,
            export: None,
            ended_seen: Default::default(),
            node: Default::default(),
        })
    }

    /// Runs `exporter` until `done` says so (or a generous bound passes).
    fn run_until(exporter: Exporter, done: impl Fn(&ExportStats) -> bool) -> Arc<ExportStats> {
        let stats = Arc::new(ExportStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (stats, stop) = (Arc::clone(&stats), Arc::clone(&stop));
            std::thread::spawn(move || exporter.run(stats, stop))
        };
        let bound = Instant::now() + Duration::from_secs(30);
        while !done(&stats) && Instant::now() < bound {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
        worker.join().unwrap();
        stats
    }

    #[test]
    fn a_position_saved_before_gaps_were_exported_is_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let mut records = crate::store::tests::rec(1_000, 42, "openat", b"/a");
        records.extend(simple(KIND_GAP, 2_000, 0, &[4, 0, 0, 1, 0, 0], b""));
        records.extend(crate::store::tests::rec(3_000, 42, "openat", b"/b"));
        let ingest = ingest_with(dir.path(), &records);
        // What an exporter that did not yet send gaps saved: syscalls,
        // drops and log lines since time 0, nothing sent yet.
        let before_gaps = Filter {
            kinds: 1 << KIND_SYSCALL | 1 << KIND_DROPS | 1 << KIND_LOG,
            since: Some(0),
            ..Default::default()
        };
        let state = dir.path().join("export-otlp.json");
        let saved = State {
            since_ns: 0,
            cursor: Cursor::at(&before_gaps, Order::Asc, BTreeMap::new()),
            audit_offset: None,
        };
        std::fs::write(&state, serde_json::to_vec(&saved).unwrap()).unwrap();

        let (port, seen) = tcp_collector(vec![("200 OK", "", vec![])]);
        let exporter = Exporter {
            cfg: cfg(port),
            ingest,
            state: state.clone(),
            audit: None,
        };
        let stats = run_until(exporter, |s| s.exported.load(Ordering::Relaxed) >= 3);
        // Not restarted from now: the three stored records went out,
        // the gap with them.
        assert_eq!(stats.exported.load(Ordering::Relaxed), 3);
        let seen = seen.lock().unwrap();
        let req = ExportLogsServiceRequest::decode(&gunzip(&seen.requests[0].1)[..]).unwrap();
        let events: Vec<any_value::Value> = req.resource_logs[0].scope_logs[0]
            .log_records
            .iter()
            .map(|lr| flat(&lr.attributes)["crt.event"].clone())
            .collect();
        assert_eq!(events, vec![text("syscall"), text("gap"), text("syscall")]);
        // Saved again under the current settings' digest.
        let now: State = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
        assert_eq!(now.since_ns, 0);
        assert_ne!(now.cursor.filter, saved.cursor.filter);
    }

    #[test]
    fn an_exporter_refused_by_tls_counts_failures_and_sends_nothing() {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let server = self_signed("collector");
        let other = self_signed("another CA");
        let key =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server.signing_key.serialize_der()));
        let tls = Arc::new(
            rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(vec![server.cert.der().clone()], key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = collector(vec![("200 OK", "", vec![])], move || {
            let (tcp, _) = listener.accept().ok()?;
            let conn = rustls::ServerConnection::new(Arc::clone(&tls)).ok()?;
            Some(rustls::StreamOwned::new(conn, tcp))
        });
        let dir = tempfile::tempdir().unwrap();
        let wrong = dir.path().join("wrong.pem");
        std::fs::write(&wrong, other.cert.pem()).unwrap();
        let records = crate::store::tests::rec(1_000, 42, "openat", b"/a");
        let state = dir.path().join("export-otlp.json");
        let everything = Filter {
            kinds: 1 << KIND_SYSCALL | 1 << KIND_DROPS | 1 << KIND_GAP | 1 << KIND_LOG,
            since: Some(0),
            ..Default::default()
        };
        let saved = State {
            since_ns: 0,
            cursor: Cursor::at(&everything, Order::Asc, BTreeMap::new()),
            audit_offset: None,
        };
        std::fs::write(&state, serde_json::to_vec(&saved).unwrap()).unwrap();
        let exporter = Exporter {
            cfg: OtlpConfig {
                https: true,
                ca: Some(wrong),
                ..cfg(port)
            },
            ingest: ingest_with(dir.path(), &records),
            state,
            audit: None,
        };
        let stats = run_until(exporter, |s| s.failed_requests.load(Ordering::Relaxed) >= 2);
        assert!(stats.failed_requests.load(Ordering::Relaxed) >= 2);
        assert_eq!(stats.exported.load(Ordering::Relaxed), 0);
        assert!(seen.lock().unwrap().requests.is_empty());
    }

    #[test]
    fn debug_actions_of_the_audit_log_go_out_from_when_the_export_began() {
        let dir = tempfile::tempdir().unwrap();
        let ingest = ingest_with(
            dir.path(),
            &crate::store::tests::rec(1_000, 42, "openat", b"/a"),
        );
        let audit = dir.path().join("audit.jsonl");
        let line = |tenant: &str, action: &str, outcome: &str| {
            format!(
                "{}\n",
                serde_json::json!({"ts": "2026-11-28T05:00:00.000000000Z", "tenant": tenant,
                    "action": action, "namespace": "crt-alpha", "container": "web-debug-1",
                    "outcome": outcome, "detail": {"cmd": ["sh"]}})
            )
        };
        std::fs::write(&audit, line("alpha", "debug", "ok")).unwrap();
        let (port, seen) = tcp_collector(vec![("200 OK", "", vec![]); 4]);
        let exporter = Exporter {
            cfg: cfg(port),
            ingest,
            state: dir.path().join("export-otlp.json"),
            audit: Some(audit.clone()),
        };
        let appender = {
            let audit = audit.clone();
            let (a, b) = (
                line("alpha", "exec", "exited 0"),
                line("beta", "commit", "failed (404): clone x"),
            );
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(700));
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&audit)
                    .unwrap();
                f.write_all(a.as_bytes()).unwrap();
                f.write_all(b.as_bytes()).unwrap();
            })
        };
        let stats = run_until(exporter, |s| s.exported.load(Ordering::Relaxed) >= 2);
        appender.join().unwrap();
        assert_eq!(
            stats.exported.load(Ordering::Relaxed),
            2,
            "the line from before the export stays"
        );
        let seen = seen.lock().unwrap();
        let req = ExportLogsServiceRequest::decode(&gunzip(&seen.requests[0].1)[..]).unwrap();
        let by_tenant: HashMap<String, (String, i32, any_value::Value)> = req
            .resource_logs
            .iter()
            .map(|rl| {
                let res = flat(&rl.resource.as_ref().unwrap().attributes);
                let tenant = match &res["crt.tenant"] {
                    any_value::Value::StringValue(t) => t.clone(),
                    _ => panic!(),
                };
                assert_eq!(res["service.name"], text("crtd"));
                let lr = &rl.scope_logs[0].log_records[0];
                let a = flat(&lr.attributes);
                assert_eq!(a["crt.event"], text("audit"));
                assert_eq!(a["container.id"], text("web-debug-1"));
                (
                    tenant,
                    (
                        lr.severity_text.clone(),
                        lr.severity_number,
                        a["crt.audit.action"].clone(),
                    ),
                )
            })
            .collect();
        assert_eq!(by_tenant["alpha"].0, "INFO");
        assert_eq!(by_tenant["alpha"].2, text("exec"));
        assert_eq!(by_tenant["beta"].0, "WARN", "a failure is a warning");
        assert_eq!(by_tenant["beta"].2, text("commit"));
    }
}
