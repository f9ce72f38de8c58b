//! The HTTP JSON API. Tenants come in over TCP with a bearer token; the
//! node's root user comes in over the unix socket and sees every tenant; an
//! operator token (over TCP) sees every tenant too, and only reads.
//! A container that belongs to someone else is answered exactly like one
//! that does not exist (404), and a missing or wrong token with 401, on
//! every endpoint.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crt_tracer::escape;
use crt_tracer::record::{Record, KIND_DROPS, KIND_END, KIND_GAP, KIND_LOG, KIND_SYSCALL};
use crt_tracer::render::now_ns;
use crt_tracer::render::{self, parse_rfc3339_utc, rfc3339_utc};
use crt_tracer::syscalls;
use serde_json::{json, Value};

use crate::catalog::{Catalog, ContainerView};
use crate::ingest::Ingest;
use crate::limits::{Slot, TenantSlots};
use crate::live::{Live, Resume, Subscriber};
use crate::metrics;
use crate::store::query::{self, Budget};
use crate::store::{Cursor, Filter, Order, Stream};
use crate::tenants::Scope;
use crate::usage_history::{self, UsageHistory};
use crate::web::{Peer, Request, Response, SseItem, SseStream};

/// The OpenAPI document served at /openapi.json (kept true by a test).
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route, as documented; the tests hold the router and the document to it.
#[cfg(test)]
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/openapi.json"),
    ("GET", "/v1/whoami"),
    ("GET", "/v1/containers"),
    ("GET", "/v1/containers/{namespace}/{id}"),
    ("GET", "/v1/containers/{namespace}/{id}/metrics"),
    ("GET", "/v1/topology"),
    ("GET", "/v1/events"),
    ("GET", "/v1/events/stream"),
    ("GET", "/v1/summary"),
    ("POST", "/v1/containers/{namespace}/{id}/clones"),
    ("GET", "/v1/clones"),
    ("DELETE", "/v1/clones/{namespace}/{id}"),
    ("GET", "/v1/clones/{namespace}/{id}/exec"),
    ("GET", "/v1/clones/{namespace}/{id}/archive"),
    ("POST", "/v1/clones/{namespace}/{id}/commit"),
    ("POST", "/v1/containers/{namespace}/{id}/redeploy"),
    ("GET", "/metrics"),
    ("GET", "/"),
    ("GET", "/index.html"),
    ("GET", "/assets/{file}"),
];

/// The routes anyone may GET without a token: the web UI's files.
#[cfg(test)]
pub const PUBLIC_ROUTES: &[&str] = &["/", "/index.html", "/assets/{file}"];

mod clones;
mod images;
#[cfg(test)]
pub(crate) mod tests;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// What one query may cost before it returns a partial page.
const QUERY_SCAN: u64 = 20_000_000;
const QUERY_TIME: Duration = Duration::from_secs(5);
/// Queries running at once per tenant; more get 429.
const QUERIES_PER_TENANT: usize = 4;
/// Live streams open at once per tenant; more get 429.
pub(crate) const STREAMS_PER_TENANT: usize = 8;

/// Which listener a request came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// Tenants, with bearer tokens.
    Tenants,
    /// The node's root user.
    Root,
    /// Prometheus only.
    Metrics,
}

pub struct Api {
    pub ingest: Arc<Ingest>,
    pub state_dir: std::path::PathBuf,
    pub started: Instant,
    pub queries: Arc<TenantSlots>,
    pub streams: Arc<TenantSlots>,
    /// Debug clones; `None` where crtd is not set up for them.
    pub debug: Option<Arc<crate::debug::Service>>,
    /// The last hour of each running container's usage.
    pub usage: Arc<UsageHistory>,
    /// The edges each scope's topology requests saw lately, and the
    /// network namespaces' tables read lately.
    pub netmap: crate::netmap::NetMemory,
}

pub struct Endpoint {
    pub api: Arc<Api>,
    pub listener: Listener,
}

/// An error a client can act on: status and message.
struct Fail(u16, String);

type Res<T> = Result<T, Fail>;

fn bad(msg: impl Into<String>) -> Fail {
    Fail(400, msg.into())
}

/// The operator token reads; `what` (method and path) would act.
fn operator_read_only(what: &str) -> Fail {
    Fail(
        403,
        format!("the operator token is read-only: {what} changes or enters a container; use a tenant's token or root on the node's socket"),
    )
}

fn not_found(what: &str) -> Fail {
    Fail(404, format!("{what} not found"))
}

/// The subprotocol a browser's WebSocket offers (with its token entry) and crtd selects.
pub const WS_PROTOCOL: &str = "crt.v1";
/// The prefix of the `Sec-WebSocket-Protocol` entry that carries a browser's token,
/// base64url without padding: a browser cannot set `Authorization` on a WebSocket.
const WS_BEARER_PREFIX: &str = "crt.bearer.";

/// The token a tenants' request presents: `Authorization: Bearer <token>`, or on a
/// WebSocket upgrade alone (one the server takes as such, not any request with an
/// `Upgrade` header), the `crt.bearer.<base64url(token)>` entry of
/// `Sec-WebSocket-Protocol`.
fn presented_token(req: &Request) -> Res<String> {
    if req.header_all("authorization").nth(1).is_some() {
        return Err(bad(
            "more than one Authorization header; send exactly one: Authorization: Bearer <token>",
        ));
    }
    let offered: Vec<&str> = req
        .header_all("sec-websocket-protocol")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let in_protocol: Vec<&str> = offered
        .iter()
        .filter_map(|p| p.strip_prefix(WS_BEARER_PREFIX))
        .collect();
    let header = req.bearer_token();
    if in_protocol.is_empty() || !req.websocket {
        // A token in Sec-WebSocket-Protocol is never taken from a plain request:
        // only a browser's WebSocket has no other way to send one.
        return match header {
            Some(t) => Ok(t.to_string()),
            None if !in_protocol.is_empty() => Err(Fail(
                401,
                format!("missing bearer token: a {WS_BEARER_PREFIX}<token> entry of Sec-WebSocket-Protocol is taken only on a WebSocket upgrade (Upgrade: websocket); send Authorization: Bearer <token>"),
            )),
            None => Err(Fail(
                401,
                "missing bearer token: send Authorization: Bearer <token>".into(),
            )),
        };
    }
    if header.is_some() || req.header_all("authorization").next().is_some() {
        return Err(bad(format!(
            "two tokens: both an Authorization header and a {WS_BEARER_PREFIX} entry in Sec-WebSocket-Protocol; send exactly one"
        )));
    }
    let [encoded] = in_protocol.as_slice() else {
        return Err(bad(format!(
            "{} {WS_BEARER_PREFIX} entries in Sec-WebSocket-Protocol; send exactly one",
            in_protocol.len()
        )));
    };
    if !offered.contains(&WS_PROTOCOL) {
        return Err(bad(format!(
            "Sec-WebSocket-Protocol offers a {WS_BEARER_PREFIX} token but not {WS_PROTOCOL}; offer both ({WS_PROTOCOL}, {WS_BEARER_PREFIX}<token>): crtd answers with {WS_PROTOCOL}"
        )));
    }
    use base64::Engine as _;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|t| !t.is_empty());
    token.ok_or_else(|| {
        Fail(
            401,
            format!("the {WS_BEARER_PREFIX} entry of Sec-WebSocket-Protocol is not a token in base64url without padding (RFC 4648 section 5, alphabet A-Z a-z 0-9 - _, no =)"),
        )
    })
}

/// RFC 3339 (UTC), or a span back from now: `90s`, `10m`, `2h`, `1d`.
fn parse_time(key: &str, v: &str) -> Res<u64> {
    if let Some(t) = parse_rfc3339_utc(v) {
        return Ok(t);
    }
    if let Some(d) = crt_config::supervisor::parse_duration(v) {
        return Ok(now_ns().saturating_sub(d.as_nanos() as u64));
    }
    Err(bad(format!(
        "{key}={} is not a time; expected RFC 3339 in UTC (2026-11-26T12:00:00Z) or a span back from now (90s, 10m, 2h, 1d)",
        escape::quote(v.as_bytes(), false)
    )))
}

fn split_list(req: &Request, key: &str) -> Vec<String> {
    req.query_all(key)
        .iter()
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A boolean query parameter: absent is false.
fn flag(req: &Request, key: &str) -> Res<bool> {
    match req.query_one(key) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => Err(bad(format!(
            "{key}={} is not a boolean; expected true or false",
            escape::quote(other.as_bytes(), false)
        ))),
    }
}

/// The conditions on syscalls' results: `failed`, `successful`, `errno`
/// (names or numbers, repeated or a comma list) and `slower_than` (`1ms`).
fn result_filter(req: &Request) -> Res<crate::store::query::ResultFilter> {
    let mut r = crate::store::query::ResultFilter {
        failed: flag(req, "failed")?,
        succeeded: flag(req, "successful")?,
        ..Default::default()
    };
    r.add_errnos("errno=", &req.query_all("errno"))
        .map_err(bad)?;
    if let Some(v) = req.query_one("slower_than") {
        r.set_slower_than("slower_than=", v).map_err(bad)?;
    }
    r.check().map_err(bad)?;
    Ok(r)
}

/// How events' arguments are shown, as strace's options: `strings`
/// (`octal`, strace's default; `hex` as -x; `allhex` as -xx) and
/// `string_limit` (-s: most bytes of a data buffer shown, 32 by default).
fn render_options(req: &Request) -> Res<crt_tracer::decode::RenderOptions> {
    use crt_tracer::escape::StringStyle;
    let mut r = crt_tracer::decode::RenderOptions::default();
    if let Some(v) = req.query_one("strings") {
        r.strings = StringStyle::parse(v).ok_or_else(|| {
            bad(format!(
                "strings={} is not a string style; expected octal, hex or allhex",
                escape::quote(v.as_bytes(), false)
            ))
        })?;
    }
    if let Some(v) = req.query_one("string_limit") {
        r.string_limit = v
            .parse()
            .ok()
            .filter(|n| (1..=MAX_STRING_LIMIT).contains(n))
            .ok_or_else(|| {
                bad(format!(
                    "string_limit={} is out of range; expected a number of bytes from 1 to {MAX_STRING_LIMIT}",
                    escape::quote(v.as_bytes(), false)
                ))
            })?;
    }
    Ok(r)
}

/// The most `string_limit` allows (what a record holds is less anyway).
const MAX_STRING_LIMIT: usize = 1 << 16;

impl Api {
    pub fn new(ingest: Arc<Ingest>, state_dir: std::path::PathBuf) -> Api {
        Api {
            ingest,
            state_dir,
            started: Instant::now(),
            queries: TenantSlots::new(QUERIES_PER_TENANT),
            streams: TenantSlots::new(STREAMS_PER_TENANT),
            debug: None,
            usage: Arc::default(),
            netmap: Default::default(),
        }
    }

    /// Samples every running container's usage into [`Api::usage`] (at
    /// [`usage_history::INTERVAL`]), and forgets the containers gone for long.
    pub fn sample_usage(&self) {
        let cat = self.catalog();
        let now = now_ns();
        for c in cat.containers(&Scope::Root) {
            if c.status != "running" {
                continue;
            }
            let (cpu, memory) = cat.usage_now(&c);
            self.usage.record(
                (&c.namespace, &c.id),
                now,
                cat.syscall_rate(&c),
                cpu,
                memory,
            );
        }
        self.usage.forget_stale(now);
    }

    fn catalog(&self) -> Catalog<'_> {
        // Ingest reads the shims' files every moment; a status change is
        // not left waiting for it.
        self.ingest.read_node_files_if_changed();
        Catalog {
            tenants: &self.ingest.tenants,
            store: &self.ingest.store,
            stats: &self.ingest.stats,
            files: self.ingest.node.snapshot(),
            state_dir: self.state_dir.clone(),
            usage: &self.usage,
        }
    }

    fn scope(&self, listener: Listener, req: &Request) -> Res<Scope> {
        match (listener, &req.peer) {
            (Listener::Root, Peer::Unix { uid: 0, .. }) => {
                // Root may narrow itself to one tenant.
                match req.query_one("tenant") {
                    Some(t) if !t.is_empty() => {
                        if self.ingest.tenants.get(t).is_none() {
                            return Err(not_found(&format!(
                                "tenant {}",
                                escape::quote(t.as_bytes(), false)
                            )));
                        }
                        Ok(Scope::Tenant(t.to_string()))
                    }
                    _ => Ok(Scope::Root),
                }
            }
            (Listener::Root, _) => Err(Fail(
                401,
                "only the node's root user may use this socket".into(),
            )),
            (Listener::Tenants, _) => {
                let token = presented_token(req)?;
                let tenants = &self.ingest.tenants;
                if let Some(t) = tenants.authenticate(&token) {
                    return Ok(Scope::Tenant(t.name.clone()));
                }
                if tenants.is_operator(&token) {
                    return Ok(Scope::Operator);
                }
                match tenants.authenticate_service_account(&token) {
                    Some(Ok((t, account))) => {
                        tracing::Span::current().record("account", account.to_string());
                        Ok(Scope::Tenant(t.name.clone()))
                    }
                    Some(Err(refused)) => {
                        tracing::debug!("{}", refused.0);
                        Err(Fail(401, refused.0))
                    }
                    None => Err(Fail(401, "invalid bearer token".into())),
                }
            }
            (Listener::Metrics, _) => Ok(Scope::Root),
        }
    }

    /// What the server checks on a request's headers before anything else
    /// (its body is never read first): who it comes from. `Ok(Some(scope))`
    /// when it proved who it is (a tenant's token, or root on the socket);
    /// `Ok(None)` on the metrics listener, which asks nobody, and for the web UI's
    /// files, which are public.
    pub fn admit(&self, listener: Listener, req: &Request) -> Result<Option<Scope>, Response> {
        if listener == Listener::Metrics || crate::ui::is_ui_request(req) {
            return Ok(None);
        }
        match self.scope(listener, req) {
            Ok(scope) => Ok(Some(scope)),
            Err(Fail(status, msg)) => Err(Response::error(status, &msg)),
        }
    }

    pub fn handle(&self, listener: Listener, req: Request) -> Response {
        match self.route(listener, req) {
            Ok(r) => r,
            Err(Fail(status, msg)) => Response::error(status, &msg),
        }
    }

    fn route(&self, listener: Listener, req: Request) -> Res<Response> {
        if listener == Listener::Metrics {
            return match (req.method.as_str(), req.path.as_str()) {
                ("GET", "/metrics") => Ok(self.metrics()),
                ("GET", _) => Err(not_found("endpoint")),
                _ => Err(Fail(405, "only GET is supported".into())),
            };
        }
        // The UI's files are public: the sign-in page loads before anyone has a token.
        if let Some(page) = crate::ui::answer(&crate::ui::Embedded, &req) {
            return Ok(page);
        }
        let scope = self.scope(listener, &req)?;
        let parts: Vec<&str> = req.path.trim_end_matches('/').split('/').collect();
        if scope == Scope::Operator {
            // Before any route: whatever is added later, the operator only reads.
            let acting_socket = matches!(
                parts.as_slice(),
                ["", "v1", "clones", _, _, "exec" | "archive"]
            );
            if !matches!(req.method.as_str(), "GET" | "HEAD") || acting_socket {
                return Err(operator_read_only(&format!(
                    "{} {}",
                    req.method,
                    escape::escape(req.path.as_bytes())
                )));
            }
        }
        match (req.method.as_str(), parts.as_slice()) {
            ("POST", ["", "v1", "containers", ns, id, "clones"]) => {
                return self.clone_container(&scope, &req, ns, id)
            }
            ("DELETE", ["", "v1", "clones", ns, id]) => return self.remove_clone(&scope, ns, id),
            ("POST", ["", "v1", "clones", ns, id, "commit"]) => {
                return self.commit_clone(&scope, &req, ns, id)
            }
            ("POST", ["", "v1", "containers", ns, id, "redeploy"]) => {
                return self.redeploy(&scope, &req, ns, id)
            }
            ("GET" | "HEAD", _) => {}
            (method, _) => {
                return Err(Fail(
                    405,
                    format!("{method} is not supported here; every endpoint but POST /v1/containers/{{namespace}}/{{id}}/clones, POST /v1/clones/{{namespace}}/{{id}}/commit, POST /v1/containers/{{namespace}}/{{id}}/redeploy and DELETE /v1/clones/{{namespace}}/{{id}} is GET"),
                ))
            }
        }
        match parts.as_slice() {
            ["", "openapi.json"] => Ok(Response::text(200, "application/json", OPENAPI)),
            ["", "v1", "whoami"] => Ok(self.whoami(&scope)),
            ["", "v1", "containers"] => self.containers(&scope, &req),
            ["", "v1", "containers", ns, id] => self.container(&scope, ns, id),
            ["", "v1", "containers", ns, id, "metrics"] => self.container_usage(&scope, ns, id),
            ["", "v1", "topology"] => self.topology(&scope, &req),
            ["", "v1", "events"] => self.events(&scope, &req),
            ["", "v1", "events", "stream"] => self.stream(&scope, &req),
            ["", "v1", "summary"] => self.summary(&scope, &req),
            ["", "v1", "clones"] => self.clones(&scope, &req),
            ["", "v1", "clones", ns, id, "exec"] => self.exec(&scope, &req, ns, id),
            ["", "v1", "clones", ns, id, "archive"] => self.archive(&scope, &req, ns, id),
            ["", "metrics"] if scope == Scope::Root && listener == Listener::Root => {
                Ok(self.metrics())
            }
            _ => Err(not_found("endpoint")),
        }
    }

    fn whoami(&self, scope: &Scope) -> Response {
        let body = match scope {
            Scope::Root => json!({"root": true, "operator": false, "tenant": null}),
            Scope::Operator => json!({"root": false, "operator": true, "tenant": null}),
            Scope::Tenant(t) => json!({"root": false, "operator": false, "tenant": t}),
        };
        Response::json(200, &body)
    }

    fn containers(&self, scope: &Scope, req: &Request) -> Res<Response> {
        let cat = self.catalog();
        let ns = req.query_one("namespace");
        let list: Vec<Value> = cat
            .containers(scope)
            .iter()
            .filter(|c| ns.is_none_or(|n| n == c.namespace))
            .map(|c| cat.view_json(c))
            .collect();
        Ok(Response::json(200, &json!({ "containers": list })))
    }

    fn container(&self, scope: &Scope, ns: &str, id: &str) -> Res<Response> {
        let cat = self.catalog();
        let found = cat.container(scope, Some(ns), id);
        let Some(c) = found.first() else {
            return Err(not_found(&format!("container {}", clones::shown(ns, id))));
        };
        let mut v = cat.view_json(c);
        v["processes"] = Value::Array(cat.processes(c));
        Ok(Response::json(200, &v))
    }

    /// `GET /v1/containers/{ns}/{id}/metrics`: its last hour of samples.
    fn container_usage(&self, scope: &Scope, ns: &str, id: &str) -> Res<Response> {
        self.seen(scope, "container", ns, id)?;
        let samples: Vec<Value> = self
            .usage
            .samples(ns, id)
            .into_iter()
            .map(|s| {
                json!({
                    "t": rfc3339_utc(s.t_ns),
                    "syscall_rate": s.syscall_rate,
                    "cpu_percent": s.cpu_percent,
                    "memory_bytes": s.memory_bytes,
                })
            })
            .collect();
        Ok(Response::json(
            200,
            &json!({"interval_s": usage_history::INTERVAL.as_secs(), "samples": samples}),
        ))
    }

    fn topology(&self, scope: &Scope, req: &Request) -> Res<Response> {
        let all = match req.query_one("all") {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(bad(format!(
                    "all={} is not a boolean; expected true or false",
                    escape::quote(other.as_bytes(), false)
                )))
            }
        };
        let cat = self.catalog();
        let views = cat.containers(scope);
        let net = crate::netmap::observe(&self.netmap, scope, &views);
        let mut pods: std::collections::BTreeMap<crate::catalog::PodId, Vec<Value>> =
            Default::default();
        let mut loose = Vec::new();
        // By default what exists now; `all` adds containers only history remembers.
        for c in views.into_iter().filter(|c| all || c.status != "gone") {
            let mut v = cat.view_json(&c);
            v["processes"] = Value::Array(cat.processes(&c));
            v["listening"] = net.listening_json(&c.namespace, &c.id);
            match c.pod() {
                Some(p) => pods.entry(p).or_default().push(v),
                None => loose.push(v),
            }
        }
        let pods: Vec<Value> = pods
            .into_iter()
            .map(|(pod, containers)| {
                let rate: f64 = containers
                    .iter()
                    .filter_map(|c| c["syscall_rate"].as_f64())
                    .sum();
                json!({"namespace": pod.namespace, "name": pod.name, "uid": pod.uid,
                       "syscall_rate": rate, "containers": containers})
            })
            .collect();
        let tenant = match scope {
            Scope::Root | Scope::Operator => Value::Null,
            Scope::Tenant(t) => json!(t),
        };
        Ok(Response::json(
            200,
            &json!({"tenant": tenant, "pods": pods, "containers": loose, "edges": net.edges_json()}),
        ))
    }

    /// The streams a query covers, after scope and container/pod filters.
    fn select(&self, scope: &Scope, req: &Request) -> Res<Selection> {
        let cat = self.catalog();
        let containers = split_list(req, "container");
        let ns = req.query_one("namespace").filter(|s| !s.is_empty());
        let pod = req.query_one("pod").filter(|s| !s.is_empty());
        let mut views: Vec<ContainerView> = cat
            .containers(scope)
            .into_iter()
            .filter(|c| {
                ns.is_none_or(|n| n == c.namespace || c.k8s_namespace().as_deref() == Some(n))
            })
            .collect();
        let mut wanted_containers = None;
        if !containers.is_empty() {
            for want in &containers {
                if !views.iter().any(|c| &c.id == want) {
                    return Err(not_found(&format!(
                        "container {}",
                        escape::quote(want.as_bytes(), false)
                    )));
                }
            }
            views.retain(|c| containers.contains(&c.id));
            wanted_containers = Some(
                views
                    .iter()
                    .map(|c| (c.namespace.clone(), c.id.clone()))
                    .collect(),
            );
        }
        if let Some(p) = pod {
            views.retain(|c| c.pod().is_some_and(|pod| pod.matches(p)));
            if views.is_empty() {
                return Err(not_found(&format!(
                    "pod {}",
                    escape::quote(p.as_bytes(), false)
                )));
            }
            wanted_containers = Some(
                views
                    .iter()
                    .map(|c| (c.namespace.clone(), c.id.clone()))
                    .collect(),
            );
        }
        let streams = views.into_iter().flat_map(|c| c.streams).collect();
        Ok((streams, wanted_containers))
    }

    fn filter(&self, req: &Request) -> Res<Filter> {
        let mut f = Filter::default();
        for name in split_list(req, "syscall") {
            let info = syscalls::by_name(&name).ok_or_else(|| {
                bad(format!(
                    "syscall={} is not a syscall this node knows; expected names like openat,connect",
                    escape::quote(name.as_bytes(), false)
                ))
            })?;
            f.syscalls.push(info.nr);
        }
        for p in split_list(req, "pid") {
            f.pids.push(p.parse().map_err(|_| {
                bad(format!(
                    "pid={} is not a pid; expected a number",
                    escape::quote(p.as_bytes(), false)
                ))
            })?);
        }
        if let Some(s) = req.query_one("since") {
            f.since = Some(parse_time("since", s)?);
        }
        if let Some(u) = req.query_one("until") {
            f.until = Some(parse_time("until", u)?);
        }
        if let (Some(s), Some(u)) = (f.since, f.until) {
            if s >= u {
                return Err(bad("since must be before until"));
            }
        }
        f.result = result_filter(req)?;
        f.render = render_options(req)?;
        f.text = req
            .query_one("grep")
            .filter(|g| !g.is_empty())
            .map(str::to_string);
        // Drops and the end of a trace come with any filter: they say how
        // complete the answer is.
        f.kinds = 1 << KIND_SYSCALL | 1 << KIND_DROPS | 1 << KIND_END | 1 << KIND_GAP;
        match req.query_one("logs") {
            None | Some("false") | Some("0") => {}
            Some("true") | Some("1") => f.kinds |= 1 << KIND_LOG,
            Some(other) => {
                return Err(bad(format!(
                    "logs={} is not a boolean; expected true or false",
                    escape::quote(other.as_bytes(), false)
                )))
            }
        }
        Ok(f)
    }

    fn events(&self, scope: &Scope, req: &Request) -> Res<Response> {
        let (streams, _) = self.select(scope, req)?;
        let filter = self.filter(req)?;
        let order = match req.query_one("order").unwrap_or("asc") {
            "asc" => Order::Asc,
            "desc" => Order::Desc,
            other => {
                return Err(bad(format!(
                    "order={} is not an order; expected asc (oldest first) or desc (newest first)",
                    escape::quote(other.as_bytes(), false)
                )))
            }
        };
        let limit = match req.query_one("limit") {
            None => DEFAULT_LIMIT,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(bad(format!(
                        "limit={} is out of range; expected 1 to {MAX_LIMIT}",
                        escape::quote(l.as_bytes(), false)
                    )))
                }
            },
        };
        let cursor = match req.query_one("cursor").filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(
                Cursor::decode(c).ok_or_else(|| bad("cursor is not one this server handed out"))?,
            ),
        };
        let Some(_slot) = self.queries.take(scope) else {
            return Err(Fail(429, format!("too many queries at once for this tenant (at most {QUERIES_PER_TENANT}); retry shortly")));
        };
        let result = query::run(
            &streams,
            &filter,
            order,
            limit,
            cursor.as_ref(),
            Budget {
                max_scanned: QUERY_SCAN,
                deadline: Instant::now() + QUERY_TIME,
            },
        )
        .map_err(bad)?;
        let tenants = &self.ingest.tenants;
        let events: Vec<Value> = result
            .hits
            .iter()
            .map(|h| {
                event_json(
                    &h.stream,
                    tenants.owner_of(&h.stream.meta),
                    &h.record(),
                    &filter.render,
                )
            })
            .collect();
        let more = events.len() == limit || result.truncated;
        Ok(Response::json(
            200,
            &json!({
                "events": events,
                "next": result.next.encode(),
                "more": more,
                "truncated": result.truncated,
                "scanned": result.scanned,
            }),
        ))
    }

    /// `GET /v1/summary`: strace's `-c` numbers (calls, errors, time per
    /// syscall) of the events `/v1/events` would return for the same
    /// parameters (but logs), summed over the whole range.
    fn summary(&self, scope: &Scope, req: &Request) -> Res<Response> {
        let (streams, _) = self.select(scope, req)?;
        let mut filter = self.filter(req)?;
        filter.kinds = 1 << KIND_SYSCALL;
        let Some(_slot) = self.queries.take(scope) else {
            return Err(Fail(429, format!("too many queries at once for this tenant (at most {QUERIES_PER_TENANT}); retry shortly")));
        };
        // One budget for the whole range: a summary that would cost more
        // says it stopped short, and where.
        let deadline = Instant::now() + QUERY_TIME;
        let mut summary = crt_tracer::summary::Summary::default();
        let mut cursor: Option<Cursor> = None;
        let mut scanned = 0u64;
        let mut truncated = false;
        let mut last_ts: Option<u64> = None;
        loop {
            let page = query::run(
                &streams,
                &filter,
                Order::Asc,
                MAX_LIMIT,
                cursor.as_ref(),
                Budget {
                    max_scanned: QUERY_SCAN.saturating_sub(scanned),
                    deadline,
                },
            )
            .map_err(bad)?;
            scanned += page.scanned;
            for h in &page.hits {
                let rec = h.record();
                last_ts = Some(rec.ts_ns);
                summary.add(&rec);
            }
            if page.truncated {
                truncated = true;
                break;
            }
            if page.hits.len() < MAX_LIMIT {
                break;
            }
            cursor = Some(page.next);
        }
        let cat = self.catalog();
        let ids: HashSet<(&str, &str)> = streams
            .iter()
            .map(|s| (s.meta.namespace.as_str(), s.meta.container.as_str()))
            .collect();
        let mut reasons: Vec<String> = cat
            .containers(scope)
            .iter()
            .filter(|c| ids.contains(&(c.namespace.as_str(), c.id.as_str())))
            .filter_map(|c| cat.results_unavailable(c))
            .collect();
        reasons.sort();
        reasons.dedup();
        let mut v = summary.to_json();
        v["truncated"] = json!(truncated);
        v["covered_until"] = json!(truncated.then(|| last_ts.map(rfc3339_utc)).flatten());
        v["scanned"] = json!(scanned);
        v["results_unavailable"] = json!((!reasons.is_empty()).then(|| reasons.join("; ")));
        Ok(Response::json(200, &v))
    }

    fn stream(&self, scope: &Scope, req: &Request) -> Res<Response> {
        let (streams, containers) = self.select(scope, req)?;
        let mut filter = self.filter(req)?;
        // A live stream starts now (or where `after` says); `since` has no meaning here.
        filter.since = None;
        let resume = match req
            .query_one("after")
            .or_else(|| req.header_all("last-event-id").next())
            .filter(|a| !a.is_empty())
        {
            None => None,
            Some(a) => Some(Resume::decode(a).ok_or_else(|| {
                bad(format!(
                    "after={} is not a resume point; expected the id of a live event or the next cursor of an ascending /v1/events query",
                    escape::quote(&a.as_bytes()[..a.len().min(80)], false)
                ))
            })?),
        };
        let ids: Option<HashSet<String>> = containers
            .as_ref()
            .map(|_| streams.iter().map(|s| s.id.clone()).collect());
        let namespace = req
            .query_one("namespace")
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let Some(slot) = self.streams.take(scope) else {
            return Err(Fail(429, format!("too many live streams open for this tenant (at most {STREAMS_PER_TENANT}); close one first")));
        };
        let live = Arc::clone(&self.ingest.live);
        // Subscribed before the store is read for a resume: a record stored
        // meanwhile is found twice, never missed (the feed skips what it sent).
        let sub = live.subscribe(scope.clone(), ids, containers, namespace, filter.clone());
        let tenants = Arc::clone(&self.ingest.tenants);
        let (replay, position) = match resume {
            None => (
                VecDeque::new(),
                Resume {
                    at: now_ns(),
                    positions: Default::default(),
                },
            ),
            Some(r) => {
                let replay = self
                    .ingest
                    .store
                    .streams()
                    .into_iter()
                    .filter(|s| sub.wants(s, tenants.owner_of(&s.meta)))
                    .map(|s| {
                        let mut f = filter.clone();
                        let cursor = match r.positions.get(&s.id) {
                            Some(&p) => Some(Cursor::at(
                                &f,
                                Order::Asc,
                                [(s.id.clone(), p)].into_iter().collect(),
                            )),
                            // Stored since the reader's position was taken: all of it is new.
                            None if s.stored_since >= r.at => None,
                            // Sent nothing of it before: what came since then.
                            None => {
                                f.since = Some(r.at);
                                None
                            }
                        };
                        (s, f, cursor)
                    })
                    .collect();
                (replay, r)
            }
        };
        let feed = LiveFeed {
            render: filter.render,
            live,
            sub,
            tenants,
            _slot: slot,
            reported_drops: 0,
            pending: VecDeque::from([SseItem::Comment("crtd live stream")]),
            replay,
            position,
        };
        let events: SseStream = Box::pin(futures_util::stream::unfold(feed, LiveFeed::next));
        Ok(Response::events(events))
    }

    fn metrics(&self) -> Response {
        Response::text(
            200,
            "text/plain; version=0.0.4",
            metrics::render(&self.ingest, &self.catalog(), self.started, {
                let mut r: metrics::Refusals = Vec::new();
                for (limit, slots) in [("queries", &self.queries), ("streams", &self.streams)] {
                    r.extend(slots.refused().into_iter().map(|(t, n)| (limit, t, n)));
                }
                r
            }),
        )
    }
}

/// One client's live stream: its subscription and stream slot, both given
/// back when the stream is dropped (the client left or the server stops).
struct LiveFeed {
    /// How events' arguments are shown.
    render: crt_tracer::decode::RenderOptions,
    live: Arc<Live>,
    sub: Arc<Subscriber>,
    tenants: Arc<crate::tenants::Tenants>,
    _slot: Slot,
    reported_drops: u64,
    /// Messages made from taken records, not yet handed out.
    pending: VecDeque<SseItem>,
    /// Streams to read from the store, from where the client resumed, before
    /// live records: each with its filter and where its next page starts.
    replay: VecDeque<(Arc<Stream>, crate::store::Filter, Option<Cursor>)>,
    /// Where the client stands: sent with every event as its id.
    position: Resume,
}

/// Records one page of a resumed stream's replay reads.
const REPLAY_PAGE: usize = 1000;
/// Queued bytes a live reader takes at a time: what it took waits as text (a few
/// times bigger) until the client reads it, so it takes little beyond its queue.
const TAKE_BYTES: u64 = 64 << 10;

impl LiveFeed {
    async fn next(mut self) -> Option<(SseItem, LiveFeed)> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some((item, self));
            }
            if let Some((stream, filter, cursor)) = self.replay.pop_front() {
                self.replay_page(stream, filter, cursor).await;
                continue;
            }
            for (stream, bytes, end) in self.sub.take_some(TAKE_BYTES) {
                self.send(&stream, &bytes, end);
            }
            let d = self.sub.dropped.load(Ordering::Relaxed);
            if d != self.reported_drops {
                self.reported_drops = d;
                let ev = json!({"event": "stream-drops", "dropped": d});
                self.pending
                    .push_back(SseItem::Named("drops", ev.to_string()));
            }
            if self.pending.is_empty() {
                self.sub.ready().await;
            }
        }
    }

    /// Queues one record for the client unless it was sent already (a record
    /// stored while a resumed stream was read from the store comes twice).
    fn send(&mut self, stream: &Stream, bytes: &[u8], end: crate::store::StorePos) {
        if self
            .position
            .positions
            .get(&stream.id)
            .is_some_and(|&sent| end <= sent)
        {
            return;
        }
        let Ok((rec, _)) = crt_tracer::record::decode(bytes) else {
            return;
        };
        self.position.positions.insert(stream.id.clone(), end);
        let ev = event_json(
            stream,
            self.tenants.owner_of(&stream.meta),
            &rec,
            &self.render,
        );
        self.pending.push_back(SseItem::Event {
            id: self.position.encode(),
            data: ev.to_string(),
        });
    }

    /// Reads the next page of a resumed stream from the store; puts the stream
    /// back if there is more.
    async fn replay_page(
        &mut self,
        stream: Arc<Stream>,
        filter: crate::store::Filter,
        cursor: Option<Cursor>,
    ) {
        let (s, f) = (Arc::clone(&stream), filter.clone());
        let page = tokio::task::spawn_blocking(move || {
            query::run(
                std::slice::from_ref(&s),
                &f,
                Order::Asc,
                REPLAY_PAGE,
                cursor.as_ref(),
                Budget {
                    max_scanned: QUERY_SCAN,
                    deadline: Instant::now() + QUERY_TIME,
                },
            )
        })
        .await;
        let Ok(Ok(page)) = page else {
            tracing::warn!("live: replaying {} for a resumed reader failed", stream.id);
            return;
        };
        for h in &page.hits {
            self.send(&h.stream, &h.record, h.end);
        }
        if page.hits.len() == REPLAY_PAGE || page.truncated {
            self.replay.push_front((stream, filter, Some(page.next)));
        }
    }
}

impl Drop for LiveFeed {
    fn drop(&mut self) {
        self.live.unsubscribe(&self.sub);
    }
}

/// The streams a query covers, and the containers it named (if any).
type Selection = (Vec<Arc<Stream>>, Option<Vec<(String, String)>>);

/// An event as the API shows it.
pub fn event_json(
    stream: &Stream,
    tenant: Option<&str>,
    rec: &Record<'_>,
    shown: &crt_tracer::decode::RenderOptions,
) -> Value {
    let k = &stream.meta.kubernetes;
    let pod = match (
        k.get("namespace").and_then(Value::as_str),
        k.get("pod").and_then(Value::as_str),
    ) {
        (Some(ns), Some(p)) if !p.is_empty() => json!({
            "namespace": ns,
            "name": p,
            "uid": k.get("pod_uid").and_then(Value::as_str).unwrap_or(""),
        }),
        _ => Value::Null,
    };
    let mut v = render::event_fields_with(rec, shown);
    v.insert("ts".into(), json!(rfc3339_utc(rec.ts_ns)));
    v.insert("namespace".into(), json!(stream.meta.namespace));
    v.insert("container".into(), json!(stream.meta.container));
    v.insert("tenant".into(), json!(tenant));
    v.insert("pod".into(), pod);
    Value::Object(v)
}
