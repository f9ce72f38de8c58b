//! The API as a tenant and as root see it: tenant isolation on every
//! endpoint, errors that name the bad parameter, the OpenAPI document
//! against the router, and the live stream.

use std::collections::BTreeSet;
use std::fs;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use crt_config::Tenant;
use crt_tracer::node_files::{self, ContainerRecord, ContainerStatus};
use crt_tracer::render::now_ns;
use crt_tracer::segment::Position;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{Api, Listener, PUBLIC_ROUTES, ROUTES};
use crate::ingest::Ingest;
use crate::live::Live;
use crate::stats::Stats;
use crate::store::tests::rec;
use crate::store::{Store, StreamMeta};
use crate::tenants::Tenants;
use crate::web::{Body, Peer, Request, Response, SseItem};

pub(crate) const ACME: &str = "acme-token";
const GLOBEX: &str = "globex-token";
pub(crate) const OPERATOR: &str = "operator-token";

pub(crate) struct World {
    _dir: tempfile::TempDir,
    pub(crate) api: Arc<Api>,
}

fn tenant(name: &str, ns: &[&str], token: &str) -> Tenant {
    Tenant {
        name: name.into(),
        namespaces: ns.iter().map(|s| s.to_string()).collect(),
        token_sha256: vec![Sha256::digest(token.as_bytes()).into()],
        max_age: Duration::from_secs(3600),
        max_bytes: 1 << 30,
        registry: None,
    }
}

pub(crate) fn world() -> World {
    world_with(|t| t)
}

/// [`world`], its tenants changed by `tenants` (to take service-account tokens, say).
fn world_with(tenants: impl FnOnce(Tenants) -> Tenants) -> World {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // What the shims tell the node: one container per tenant, one of nobody's.
    for (ns, id, k8s) in [
        ("acme", "a1", json!(null)),
        (
            "k8s.io",
            "pod-c",
            json!({"namespace": "acme-prod", "pod": "web-0", "container": "app"}),
        ),
        ("globex", "g1", json!(null)),
        ("default", "d1", json!(null)),
    ] {
        let p = state.join("containers").join(ns);
        fs::create_dir_all(&p).unwrap();
        fs::write(
            p.join(format!("{id}.json")),
            json!({"namespace": ns, "id": id, "status": "running", "pid": 0, "traced": true, "kubernetes": k8s}).to_string(),
        )
        .unwrap();
    }
    let store = Arc::new(Store::open(&dir.path().join("store")).unwrap());
    for (ns, id, k8s, base) in [
        ("acme", "a1", json!(null), 1_000u64),
        (
            "k8s.io",
            "pod-c",
            json!({"namespace": "acme-prod", "pod": "web-0"}),
            2_000,
        ),
        ("globex", "g1", json!(null), 3_000),
    ] {
        let s = store
            .stream(StreamMeta {
                namespace: ns.into(),
                container: id.into(),
                instance: 1,
                kubernetes: k8s,
                source: "/nowhere".into(),
            })
            .unwrap();
        let mut batch = Vec::new();
        for i in 0..250u64 {
            let name = if i % 5 == 0 { "connect" } else { "openat" };
            batch.extend(rec(
                (base + i) * 1000,
                10 + (i % 2) as u32,
                name,
                format!("/{id}/{i}").as_bytes(),
            ));
        }
        s.append(&batch, Position { seq: 1, offset: 16 }, false, 0)
            .unwrap();
    }
    let ingest = Arc::new(Ingest {
        store,
        live: Arc::new(Live::default()),
        stats: Arc::new(Stats::default()),
        tenants: Arc::new(tenants(
            Tenants::new(vec![
                tenant("acme", &["acme", "acme-prod"], ACME),
                tenant("globex", &["globex"], GLOBEX),
            ])
            .with_operator_tokens(vec![Sha256::digest(OPERATOR.as_bytes()).into()]),
        )),
        traces_root: dir.path().join("state/traces"),
        stored: AtomicU64::new(0),
        default_max_age: Duration::from_secs(3600),
        default_max_bytes: 1 << 30,
        export: None,
        ended_seen: Default::default(),
        node: Default::default(),
    });
    // What ingest does at each rescan: the API answers from what it read.
    ingest.read_node_files();
    let api = Arc::new(Api::new(ingest, state));
    World { _dir: dir, api }
}

fn request(path_and_query: &str, token: Option<&str>, peer: Peer) -> Request {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, q),
        None => (path_and_query, ""),
    };
    let query = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.to_string(), String::new()),
        })
        .collect();
    let mut headers = Vec::new();
    if let Some(t) = token {
        headers.push(("authorization".to_string(), format!("Bearer {t}")));
    }
    Request {
        method: "GET".into(),
        path: path.into(),
        query,
        headers,
        peer,
        websocket: false,
    }
}

fn tcp() -> Peer {
    Peer::Tcp("127.0.0.1:40000".parse().unwrap())
}

fn root() -> Peer {
    Peer::Unix { uid: 0, pid: 1 }
}

fn body(r: &Response) -> Value {
    match &r.body {
        Body::Bytes(b) => serde_json::from_slice(b).unwrap_or(Value::Null),
        Body::Events(_) | Body::Session(_) => Value::Null,
    }
}

impl World {
    fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let r = self
            .api
            .handle(Listener::Tenants, request(path, token, tcp()));
        let b = body(&r);
        (r.status, b)
    }

    fn root(&self, path: &str) -> (u16, Value) {
        let r = self.api.handle(Listener::Root, request(path, None, root()));
        let b = body(&r);
        (r.status, b)
    }
}

/// A concrete request for every route (path parameters filled in; for the UI's
/// assets, a file this build embeds, if it has any).
fn concrete(route: &str) -> String {
    let asset = crate::ui::Embedded::names()
        .find_map(|n| n.strip_prefix("assets/").map(str::to_string))
        .unwrap_or_else(|| "none-embedded.js".into());
    route
        .replace("{namespace}", "acme")
        .replace("{id}", "a1")
        .replace("{file}", &asset)
}

/// What a route answers in the test world: the debug endpoints have no containerd,
/// and a build without the web UI has no assets.
fn served_status(route: &str) -> u16 {
    if route.contains("clones") || route.contains("redeploy") {
        503
    } else if route == "/assets/{file}"
        && !crate::ui::Embedded::names().any(|n| n.starts_with("assets/"))
    {
        404
    } else {
        200
    }
}

/// A request with another method than GET.
fn request_with(method: &str, path: &str, token: Option<&str>, peer: Peer) -> Request {
    let mut r = request(path, token, peer);
    r.method = method.into();
    r
}

#[test]
fn every_endpoint_wants_a_valid_token() {
    let w = world();
    for (method, route) in ROUTES {
        if *route == "/metrics" {
            continue;
        }
        if PUBLIC_ROUTES.contains(route) {
            // Public, but only these: the same path with another method still asks.
            let path = concrete(route);
            let r = w
                .api
                .handle(Listener::Tenants, request_with("POST", &path, None, tcp()));
            assert_eq!(r.status, 401, "POST {route}");
            assert_eq!(w.get(&path, None).0, served_status(route), "{route}");
            continue;
        }
        let path = concrete(route);
        if *method != "GET" {
            // The debug endpoints: a world without containerd has them answer 503.
            for token in [None, Some("not-a-token")] {
                let r = w
                    .api
                    .handle(Listener::Tenants, request_with(method, &path, token, tcp()));
                assert_eq!(r.status, 401, "{method} {route} with {token:?}");
            }
            let r = w.api.handle(
                Listener::Tenants,
                request_with(method, &path, Some(ACME), tcp()),
            );
            assert_eq!(r.status, 503, "{method} {route} with acme's token");
            continue;
        }
        assert_eq!(w.get(&path, None).0, 401, "{route} without a token");
        assert_eq!(
            w.get(&path, Some("not-a-token")).0,
            401,
            "{route} with a wrong token"
        );
        let (status, _) = if route.ends_with("/stream") {
            (
                w.api
                    .handle(Listener::Tenants, request(&path, Some(ACME), tcp()))
                    .status,
                Value::Null,
            )
        } else {
            w.get(&path, Some(ACME))
        };
        assert_eq!(status, served_status(route), "{route} with acme's token");
    }
}

#[test]
fn a_tenant_sees_only_its_own_containers() {
    let w = world();
    let (s, b) = w.get("/v1/containers", Some(ACME));
    assert_eq!(s, 200);
    let ids: BTreeSet<String> = b["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["a1", "pod-c"].iter().map(|s| s.to_string()).collect());
    let (_, b) = w.get("/v1/containers", Some(GLOBEX));
    assert_eq!(b["containers"].as_array().unwrap().len(), 1);
    let (_, b) = w.get("/v1/topology", Some(ACME));
    assert_eq!(b["pods"][0]["name"], "web-0");
    assert_eq!(w.get("/v1/topology?all=maybe", Some(ACME)).0, 400);
    assert_eq!(b["containers"][0]["id"], "a1");
    assert_eq!(w.get("/v1/whoami", Some(GLOBEX)).1["tenant"], "globex");
}

#[test]
fn someone_elses_container_is_answered_like_one_that_does_not_exist() {
    let w = world();
    let theirs = w.get("/v1/containers/globex/g1", Some(ACME));
    let none = w.get("/v1/containers/globex/nope", Some(ACME));
    assert_eq!(theirs.0, 404);
    assert_eq!(none.0, 404);
    assert_eq!(
        theirs.1["error"].as_str().unwrap().replace("g1", "X"),
        none.1["error"].as_str().unwrap().replace("nope", "X")
    );
    for path in [
        "/v1/events?container=g1",
        "/v1/events/stream?container=g1",
        "/v1/events?container=d1",
    ] {
        let r = w
            .api
            .handle(Listener::Tenants, request(path, Some(ACME), tcp()));
        assert_eq!(r.status, 404, "{path}");
    }
    // Tenants never reach metrics.
    assert_eq!(w.get("/metrics", Some(ACME)).0, 404);
}

#[test]
fn events_are_filtered_paginated_and_scoped() {
    let w = world();
    let (s, b) = w.get("/v1/events?limit=1000", Some(ACME));
    assert_eq!(s, 200);
    let events = b["events"].as_array().unwrap();
    assert_eq!(events.len(), 500, "acme's two containers");
    assert!(events.iter().all(|e| e["tenant"] == "acme"));
    let (_, b) = w.get(
        "/v1/events?container=a1&syscall=connect&limit=10&order=desc",
        Some(ACME),
    );
    let events = b["events"].as_array().unwrap();
    assert_eq!(events.len(), 10);
    assert!(events
        .iter()
        .all(|e| e["syscall"] == "connect" && e["container"] == "a1"));
    assert_eq!(b["more"], true);
    // The next page continues where this one stopped.
    let next = b["next"].as_str().unwrap();
    let (_, b2) = w.get(
        &format!("/v1/events?container=a1&syscall=connect&limit=10&order=desc&cursor={next}"),
        Some(ACME),
    );
    let first_ts = b2["events"][0]["ts"].as_str().unwrap().to_string();
    assert!(first_ts.as_str() < events.last().unwrap()["ts"].as_str().unwrap());
    // Text search and pid filter.
    let (_, b) = w.get("/v1/events?grep=/a1/42&pid=10", Some(ACME));
    let events = b["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["args"][1], "\"/a1/42\"");
    // Pods by name or namespace/name.
    let (_, b) = w.get("/v1/events?pod=acme-prod/web-0&limit=1", Some(ACME));
    assert_eq!(b["events"][0]["pod"]["name"], "web-0");
    assert_eq!(w.get("/v1/events?pod=web-9", Some(ACME)).0, 404);
}

#[test]
fn root_sees_every_tenant_and_can_narrow_to_one() {
    let w = world();
    let (s, b) = w.root("/v1/containers");
    assert_eq!(s, 200);
    assert_eq!(b["containers"].as_array().unwrap().len(), 4);
    let (_, b) = w.root("/v1/containers?tenant=globex");
    assert_eq!(b["containers"].as_array().unwrap().len(), 1);
    assert_eq!(w.root("/v1/containers?tenant=initech").0, 404);
    let (s, _) = w.root("/metrics");
    assert_eq!(s, 200);
    // Not root on the root socket: refused.
    let r = w.api.handle(
        Listener::Root,
        request("/v1/whoami", None, Peer::Unix { uid: 1000, pid: 1 }),
    );
    assert_eq!(r.status, 401);
}

/// Writes a state file as the shim does.
fn shim_writes(w: &World, rec: &ContainerRecord) {
    let dir = w.api.state_dir.join("containers").join(&rec.namespace);
    fs::create_dir_all(&dir).unwrap();
    node_files::write_private(
        &dir.join(format!("{}.json", rec.id)),
        &serde_json::to_vec_pretty(rec).unwrap(),
    )
    .unwrap();
}

fn scrape(w: &World) -> String {
    let r = w
        .api
        .handle(Listener::Metrics, request("/metrics", None, tcp()));
    match &r.body {
        Body::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Body::Events(_) | Body::Session(_) => String::new(),
    }
}

fn status_of(w: &World, ns: &str, id: &str) -> (u16, Value) {
    let (s, v) = w.root(&format!("/v1/containers/{ns}/{id}"));
    (s, v["status"].clone())
}

#[test]
fn requests_read_no_state_file_unless_a_shim_wrote_one() {
    let w = world();
    let parsed = || w.api.ingest.node.files_parsed();
    let before = parsed();
    let nobodys_running = "crt_containers{tenant=\"\",status=\"running\"} 1";
    for _ in 0..3 {
        assert_eq!(status_of(&w, "default", "d1"), (200, json!("running")));
        let (_, list) = w.root("/v1/containers");
        assert_eq!(list["containers"].as_array().unwrap().len(), 4);
        assert!(scrape(&w).contains(nobodys_running));
    }
    assert_eq!(parsed(), before, "requests read state files");
    // A shim writes one (a new namespace, so that the directories say so
    // whatever the clock's resolution): the next request reads it, and only it.
    let mut rec = ContainerRecord::new("initech", "i1", 4242);
    rec.shim_pid = None;
    shim_writes(&w, &rec);
    assert_eq!(status_of(&w, "initech", "i1"), (200, json!("created")));
    assert_eq!(parsed(), before + 1);
    // A trace started (a container that ran and went before any request):
    // known at once from its meta.json.
    let trace = w.api.state_dir.join("traces/globex/g2");
    fs::create_dir_all(&trace).unwrap();
    let meta = node_files::TraceMeta {
        namespace: "globex".into(),
        container: "g2".into(),
        created_ns: 7,
        ..Default::default()
    };
    node_files::write_private(
        &trace.join(node_files::META_FILE),
        &serde_json::to_vec(&meta).unwrap(),
    )
    .unwrap();
    let (s, v) = w.root("/v1/containers/globex/g2");
    assert_eq!(
        (s, &v["status"], &v["traced"]),
        (200, &json!("gone"), &json!(true))
    );
    assert_eq!(parsed(), before + 2);
    // Gone with its namespace: at once too.
    fs::remove_dir_all(w.api.state_dir.join("containers/default")).unwrap();
    assert_eq!(status_of(&w, "default", "d1").0, 404);
    assert!(!scrape(&w).contains(nobodys_running));
    // A file changed in place (no shim does that) leaves the directories
    // as they were: requests keep what was read, until ingest's next rescan.
    rec.status = ContainerStatus::Running;
    fs::write(
        w.api.state_dir.join("containers/initech/i1.json"),
        serde_json::to_vec_pretty(&rec).unwrap(),
    )
    .unwrap();
    assert_eq!(status_of(&w, "initech", "i1"), (200, json!("created")));
    w.api.ingest.read_node_files();
    assert_eq!(status_of(&w, "initech", "i1"), (200, json!("running")));
}

#[test]
fn each_ingest_rescan_brings_a_containers_changes() {
    let w = world();
    // Created, started, stopped, deleted: each change in the next rescan.
    let mut rec = ContainerRecord::new("acme", "a2", 4242);
    rec.shim_pid = None;
    shim_writes(&w, &rec);
    w.api.ingest.read_node_files();
    assert_eq!(status_of(&w, "acme", "a2"), (200, json!("created")));
    // "running" is as long as "created": the file changed all the same.
    rec.status = ContainerStatus::Running;
    shim_writes(&w, &rec);
    w.api.ingest.read_node_files();
    assert_eq!(status_of(&w, "acme", "a2"), (200, json!("running")));
    rec.exited(3);
    shim_writes(&w, &rec);
    w.api.ingest.read_node_files();
    let (_, v) = w.root("/v1/containers/acme/a2");
    assert_eq!(
        (&v["status"], &v["exit_code"]),
        (&json!("stopped"), &json!(3))
    );
    fs::remove_file(w.api.state_dir.join("containers/acme/a2.json")).unwrap();
    w.api.ingest.read_node_files();
    assert_eq!(status_of(&w, "acme", "a2").0, 404);
    // a1 has a history: only that is left of it.
    fs::remove_file(w.api.state_dir.join("containers/acme/a1.json")).unwrap();
    w.api.ingest.read_node_files();
    assert_eq!(status_of(&w, "acme", "a1"), (200, json!("gone")));
}

#[test]
fn a_container_whose_shim_is_gone_is_unknown_unless_it_had_stopped() {
    let w = world();
    // A pid no process has; and this test's own, which is no shim.
    for (id, shim_pid) in [("dead", 0x3fff_fff0), ("recycled", std::process::id())] {
        let mut rec = ContainerRecord::new("default", id, 4242);
        rec.status = ContainerStatus::Running;
        rec.shim_pid = Some(shim_pid);
        shim_writes(&w, &rec);
    }
    let mut stopped = ContainerRecord::new("default", "ended", 4242);
    stopped.shim_pid = Some(0x3fff_fff0);
    stopped.exited(0);
    shim_writes(&w, &stopped);
    w.api.ingest.read_node_files();
    assert_eq!(status_of(&w, "default", "dead"), (200, json!("unknown")));
    assert_eq!(
        status_of(&w, "default", "recycled"),
        (200, json!("unknown"))
    );
    assert_eq!(status_of(&w, "default", "ended"), (200, json!("stopped")));
    // Files older than shim_pid are believed.
    assert_eq!(status_of(&w, "default", "d1"), (200, json!("running")));
}

#[test]
fn bad_parameters_are_named_with_their_value() {
    let w = world();
    for (q, key, val) in [
        ("syscall=opnat", "syscall", "opnat"),
        ("pid=ten", "pid", "ten"),
        ("since=yesterday", "since", "yesterday"),
        ("limit=0", "limit", "0"),
        ("limit=5000", "limit", "5000"),
        ("order=sideways", "order", "sideways"),
        ("logs=maybe", "logs", "maybe"),
    ] {
        let (s, b) = w.get(&format!("/v1/events?{q}"), Some(ACME));
        assert_eq!(s, 400, "{q}");
        let msg = b["error"].as_str().unwrap();
        assert!(msg.contains(key) && msg.contains(val), "{q}: {msg}");
    }
    let (s, b) = w.get("/v1/events?cursor=zz", Some(ACME));
    assert_eq!(s, 400);
    assert!(b["error"].as_str().unwrap().contains("cursor"));
    let (s, _) = w.get(
        "/v1/events?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
        Some(ACME),
    );
    assert_eq!(s, 400);
    assert_eq!(w.get("/v2/whatever", Some(ACME)).0, 404);
}

#[test]
fn the_openapi_document_lists_exactly_the_routes_served() {
    let w = world();
    let doc: Value = serde_json::from_str(super::OPENAPI).unwrap();
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, routes);
    // And the router serves each of them (root reaches every one; without
    // containerd, the debug endpoints say debugging is unavailable).
    for (method, route) in ROUTES {
        let r = w.api.handle(
            Listener::Root,
            request_with(method, &concrete(route), None, root()),
        );
        assert_eq!(r.status, served_status(route), "{method} {route}");
    }
}

/// The messages of a live stream, read on a runtime of the test's own.
struct Reader {
    rt: tokio::runtime::Runtime,
    events: crate::web::SseStream,
}

impl Reader {
    fn open(w: &World, listener: Listener, path: &str, token: Option<&str>) -> Reader {
        let peer = if listener == Listener::Root {
            root()
        } else {
            tcp()
        };
        Reader::open_request(w, listener, request(path, token, peer))
    }

    fn open_request(w: &World, listener: Listener, req: Request) -> Reader {
        let path = req.path.clone();
        let r = w.api.handle(listener, req);
        assert_eq!(r.status, 200, "{path}");
        let Body::Events(events) = r.body else {
            panic!("{path}: an event stream");
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        Reader { rt, events }
    }

    /// The next message, or `None` if none comes within a few seconds.
    fn next(&mut self) -> Option<SseItem> {
        use futures_util::StreamExt;
        self.rt
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(5), self.events.next()).await
            })
            .ok()
            .flatten()
    }

    /// The next event, with its id.
    fn next_event(&mut self) -> Option<(String, String)> {
        loop {
            match self.next()? {
                SseItem::Event { id, data } => return Some((id, data)),
                _ => continue,
            }
        }
    }

    /// The paths of the next `n` events, and the id of the last.
    fn paths(&mut self, n: usize) -> (Vec<String>, String) {
        let mut paths = Vec::new();
        let mut last = String::new();
        for _ in 0..n {
            let (id, data) = self.next_event().expect("an event");
            let v: Value = serde_json::from_str(&data).unwrap();
            paths.push(
                v["args"][1]
                    .as_str()
                    .unwrap_or("")
                    .trim_matches('"')
                    .to_string(),
            );
            last = id;
        }
        (paths, last)
    }

    /// Whether an event comes within a second.
    fn quiet(&mut self) -> bool {
        use futures_util::StreamExt;
        let got = self.rt.block_on(async {
            loop {
                match tokio::time::timeout(Duration::from_secs(1), self.events.next()).await {
                    Ok(Some(SseItem::Event { data, .. })) => return Some(data),
                    Ok(Some(_)) => continue,
                    _ => return None,
                }
            }
        });
        got.is_none()
    }

    /// The next `data:` message.
    fn next_data(&mut self) -> Option<String> {
        loop {
            match self.next()? {
                SseItem::Event { data, .. } => return Some(data),
                _ => continue,
            }
        }
    }
}

pub(crate) fn stream_of(w: &World, container: &str) -> Arc<crate::store::Stream> {
    w.api
        .ingest
        .store
        .streams()
        .into_iter()
        .find(|s| s.meta.container == container)
        .unwrap()
}

#[test]
fn a_live_stream_delivers_new_events_and_stops_when_the_client_goes() {
    let w = world();
    let mut r = Reader::open(
        &w,
        Listener::Tenants,
        "/v1/events/stream?container=a1",
        Some(ACME),
    );
    assert_eq!(r.next(), Some(SseItem::Comment("crtd live stream")));
    assert_eq!(w.api.ingest.live.subscribers(), 1);
    let live = &w.api.ingest.live;
    crate::live::store_and_publish(
        live,
        &stream_of(&w, "g1"),
        Some("globex"),
        &rec(9_000, 1, "openat", b"/theirs"),
    );
    crate::live::store_and_publish(
        live,
        &stream_of(&w, "a1"),
        Some("acme"),
        &rec(9_001, 1, "openat", b"/mine"),
    );
    let got = r.next_data().expect("an event");
    assert!(got.contains("/mine"), "{got}");
    crate::live::store_and_publish(
        live,
        &stream_of(&w, "a1"),
        Some("acme"),
        &rec(9_002, 1, "openat", b"/more"),
    );
    // The client goes: the stream is dropped, which unsubscribes it and frees its slot.
    drop(r);
    assert_eq!(live.subscribers(), 0);
    assert_eq!(live.queued_bytes(), 0);
    let slots: Vec<Reader> = (0..super::STREAMS_PER_TENANT)
        .map(|_| Reader::open(&w, Listener::Tenants, "/v1/events/stream", Some(ACME)))
        .collect();
    assert_eq!(slots.len(), super::STREAMS_PER_TENANT);
}

#[test]
fn a_live_stream_honours_namespace() {
    let w = world();
    let mut r = Reader::open(
        &w,
        Listener::Root,
        "/v1/events/stream?namespace=globex",
        None,
    );
    let live = &w.api.ingest.live;
    crate::live::store_and_publish(
        live,
        &stream_of(&w, "a1"),
        Some("acme"),
        &rec(9_000, 1, "openat", b"/acme-ns"),
    );
    crate::live::store_and_publish(
        live,
        &stream_of(&w, "pod-c"),
        Some("acme"),
        &rec(9_001, 1, "openat", b"/k8s-ns"),
    );
    crate::live::store_and_publish(
        live,
        &stream_of(&w, "g1"),
        Some("globex"),
        &rec(9_002, 1, "openat", b"/globex-ns"),
    );
    let got = r.next_data().expect("an event");
    assert!(got.contains("/globex-ns"), "only globex's namespace: {got}");
    // A Kubernetes namespace selects too, as it does for history.
    let mut r = Reader::open(
        &w,
        Listener::Root,
        "/v1/events/stream?namespace=acme-prod",
        None,
    );
    crate::live::store_and_publish(
        live,
        &stream_of(&w, "a1"),
        Some("acme"),
        &rec(9_003, 1, "openat", b"/acme-ns"),
    );
    crate::live::store_and_publish(
        live,
        &stream_of(&w, "pod-c"),
        Some("acme"),
        &rec(9_004, 1, "openat", b"/k8s-ns"),
    );
    let got = r.next_data().expect("an event");
    assert!(got.contains("/k8s-ns"), "only acme-prod's pods: {got}");
}

fn openat(ts: u64, path: &str) -> Vec<u8> {
    rec(ts, 1, "openat", path.as_bytes())
}

#[test]
fn a_live_stream_resumed_after_its_last_event_loses_and_repeats_nothing() {
    let w = world();
    let live = &w.api.ingest.live;
    let a1 = stream_of(&w, "a1");
    let mut r = Reader::open(
        &w,
        Listener::Tenants,
        "/v1/events/stream?container=a1",
        Some(ACME),
    );
    for i in 0..3 {
        crate::live::store_and_publish(
            live,
            &a1,
            Some("acme"),
            &openat(10_000 + i, &format!("/first-{i}")),
        );
    }
    let (seen, last) = r.paths(3);
    assert_eq!(seen, ["/first-0", "/first-1", "/first-2"]);
    // The client goes; events are stored while it is away.
    drop(r);
    for i in 0..2 {
        crate::live::store_and_publish(
            live,
            &a1,
            Some("acme"),
            &openat(20_000 + i, &format!("/away-{i}")),
        );
    }
    // It comes back with the last id it saw, as an SSE client does.
    let mut req = request("/v1/events/stream?container=a1", Some(ACME), tcp());
    req.headers.push(("last-event-id".into(), last));
    let mut r = Reader::open_request(&w, Listener::Tenants, req);
    crate::live::store_and_publish(live, &a1, Some("acme"), &openat(30_000, "/back"));
    let (seen, _) = r.paths(3);
    assert_eq!(seen, ["/away-0", "/away-1", "/back"]);
    assert!(r.quiet(), "nothing is sent twice");
}

#[test]
fn a_live_stream_resumed_from_a_history_cursor_starts_where_the_query_ended() {
    let w = world();
    let live = &w.api.ingest.live;
    let a1 = stream_of(&w, "a1");
    let page = |cursor: Option<&str>| {
        let path = match cursor {
            Some(c) => format!("/v1/events?container=a1&limit=1000&cursor={c}"),
            None => "/v1/events?container=a1&limit=1000".to_string(),
        };
        let r = w
            .api
            .handle(Listener::Tenants, request(&path, Some(ACME), tcp()));
        assert_eq!(r.status, 200);
        let Body::Bytes(b) = r.body else { panic!() };
        serde_json::from_slice::<Value>(&b).unwrap()
    };
    let v = page(None);
    assert_eq!(v["events"].as_array().unwrap().len(), 250);
    let cursor = v["next"].as_str().unwrap().to_string();
    crate::live::store_and_publish(live, &a1, Some("acme"), &openat(40_000, "/after-the-query"));
    let mut r = Reader::open(
        &w,
        Listener::Tenants,
        &format!("/v1/events/stream?container=a1&after={cursor}"),
        Some(ACME),
    );
    crate::live::store_and_publish(live, &a1, Some("acme"), &openat(40_001, "/live"));
    let (seen, _) = r.paths(2);
    assert_eq!(seen, ["/after-the-query", "/live"]);
    assert!(r.quiet(), "nothing of the history is sent again");
}

#[test]
fn a_resumed_tenant_stream_takes_new_streams_whole_and_old_ones_from_its_time() {
    let w = world();
    let live = &w.api.ingest.live;
    let a1 = stream_of(&w, "a1");
    let mut r = Reader::open(&w, Listener::Tenants, "/v1/events/stream", Some(ACME));
    crate::live::store_and_publish(live, &a1, Some("acme"), &openat(50_000, "/a1-live"));
    let (_, last) = r.paths(1);
    drop(r);
    // While the client is away: a stream it never saw gets an event, and a
    // container of acme starts anew (a new stream) with events of its own.
    let pod = stream_of(&w, "pod-c");
    let newer = w
        .api
        .ingest
        .store
        .stream(crate::store::StreamMeta {
            namespace: "acme".into(),
            container: "a1".into(),
            instance: 2,
            kubernetes: Value::Null,
            source: "/nowhere-2".into(),
        })
        .unwrap();
    let now = now_ns();
    crate::live::store_and_publish(live, &pod, Some("acme"), &openat(now, "/pod-away"));
    crate::live::store_and_publish(live, &newer, Some("acme"), &openat(1, "/new-stream-first"));
    let mut r = Reader::open(
        &w,
        Listener::Tenants,
        &format!("/v1/events/stream?after={last}"),
        Some(ACME),
    );
    let (mut seen, _) = r.paths(2);
    seen.sort();
    assert_eq!(seen, ["/new-stream-first", "/pod-away"]);
    assert!(
        r.quiet(),
        "the history of streams it did not follow is not replayed"
    );
}

#[test]
fn a_resume_point_that_is_not_one_is_refused_naming_it() {
    let w = world();
    let r = w.api.handle(
        Listener::Tenants,
        request(
            "/v1/events/stream?container=a1&after=yesterday",
            Some(ACME),
            tcp(),
        ),
    );
    assert_eq!(r.status, 400);
    let Body::Bytes(b) = r.body else { panic!() };
    let v: Value = serde_json::from_slice(&b).unwrap();
    let text = v["error"].as_str().unwrap();
    assert!(
        text.contains("after=\"yesterday\"") && text.contains("expected"),
        "{text}"
    );
    assert_eq!(w.api.ingest.live.subscribers(), 0);
}

#[test]
fn debug_endpoints_treat_another_tenants_container_as_absent_before_anything_else() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let mut api = Api::new(Arc::clone(&w.api.ingest), w.api.state_dir.clone());
    api.debug = Some(Arc::new(crate::debug::Service::new(
        dir.path().join("no-containerd.sock"),
        "/nowhere/init".into(),
        dir.path().join("audit.jsonl"),
    )));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _in_runtime = rt.enter();
    let call = |method: &str, path: &str| {
        let api = &api;
        let (method, path) = (method.to_string(), path.to_string());
        // Handlers run on blocking threads, as the server runs them.
        std::thread::scope(|s| {
            s.spawn(|| {
                let _e = rt.enter();
                let r = api.handle(
                    Listener::Tenants,
                    request_with(&method, &path, Some(ACME), tcp()),
                );
                (r.status, body(&r))
            })
            .join()
            .unwrap()
        })
    };
    // globex's container: not found, exactly as one that does not exist.
    let theirs = call("POST", "/v1/containers/globex/g1/clones");
    let absent = call("POST", "/v1/containers/acme/nope/clones");
    assert_eq!(theirs.0, 404, "{:?}", theirs.1);
    assert_eq!(absent.0, 404);
    assert_eq!(call("DELETE", "/v1/clones/globex/g1").0, 404);
    // acme's own: its input is checked, then containerd is asked (absent here: 503).
    let (status, b) = call("POST", "/v1/containers/acme/a1/clones?ttl=2s");
    assert_eq!(status, 400, "{b}");
    assert!(b["error"].as_str().unwrap().contains("ttl=\"2s\""), "{b}");
    let (status, b) = call("POST", "/v1/containers/acme/a1/clones?name=..");
    assert_eq!(status, 400, "{b}");
    // A live clone says what it needs, and what this node lacks.
    let (status, b) = call("POST", "/v1/containers/acme/a1/clones?live=true");
    assert_eq!(status, 409, "{b}");
    let msg = b["error"].as_str().unwrap();
    assert!(
        msg.contains("criu check") && msg.contains("4.2") && msg.contains("Without --live"),
        "{msg}"
    );
    let (status, b) = call("POST", "/v1/containers/acme/a1/clones?live=maybe");
    assert_eq!(status, 400, "{b}");
    let (status, b) = call("POST", "/v1/containers/acme/a1/clones");
    assert_eq!(status, 503, "{b}");
    assert!(
        b["error"].as_str().unwrap().contains("no-containerd.sock"),
        "{b}"
    );
    // Every attempt is in the audit log, with who and how it ended.
    let audit = fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let lines: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 8, "{audit}");
    assert!(lines.iter().all(|l| l["tenant"] == "acme"));
    assert_eq!(lines[0]["container"], "g1");
    assert!(lines[0]["outcome"]
        .as_str()
        .unwrap()
        .starts_with("failed (404)"));
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(dir.path().join("audit.jsonl"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// A request as a browser's WebSocket sends it: `Upgrade: websocket` (when `upgrade`)
/// and `Sec-WebSocket-Protocol: protocols`.
fn ws_request(path: &str, protocols: &str, upgrade: bool) -> Request {
    let mut r = request(path, None, tcp());
    if upgrade {
        r.headers.push(("upgrade".into(), "websocket".into()));
        r.headers.push(("connection".into(), "Upgrade".into()));
        r.websocket = true;
    }
    r.headers
        .push(("sec-websocket-protocol".into(), protocols.into()));
    r
}

fn base64url(token: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token)
}

#[test]
fn a_websocket_upgrade_may_carry_its_token_as_a_subprotocol() {
    let w = world();
    let offer = format!("crt.v1, crt.bearer.{}", base64url(ACME));
    let r = w
        .api
        .handle(Listener::Tenants, ws_request("/v1/whoami", &offer, true));
    assert_eq!(r.status, 200);
    assert_eq!(body(&r)["tenant"], "acme");
    // Each WebSocket endpoint takes it: the clone endpoints get past the token to say
    // that this world has no containerd.
    for path in [
        "/v1/clones/acme/a1/exec",
        "/v1/clones/acme/a1/archive?path=/",
    ] {
        let r = w
            .api
            .handle(Listener::Tenants, ws_request(path, &offer, true));
        assert_eq!(r.status, 503, "{path}: {:?}", body(&r));
        let wrong = format!("crt.v1, crt.bearer.{}", base64url("not-a-token"));
        let r = w
            .api
            .handle(Listener::Tenants, ws_request(path, &wrong, true));
        assert_eq!(r.status, 401, "{path}");
    }
    let r = w.api.handle(
        Listener::Tenants,
        ws_request("/v1/events/stream?container=a1", &offer, true),
    );
    assert_eq!(r.status, 200);
    // Offered over two headers, the way some clients split them.
    let mut two = ws_request("/v1/whoami", "crt.v1", true);
    two.headers.push((
        "sec-websocket-protocol".into(),
        format!("crt.bearer.{}", base64url(GLOBEX)),
    ));
    let r = w.api.handle(Listener::Tenants, two);
    assert_eq!(body(&r)["tenant"], "globex");
}

#[test]
fn a_subprotocol_token_is_refused_where_it_does_not_belong() {
    let w = world();
    let offer = format!("crt.v1, crt.bearer.{}", base64url(ACME));
    let error = |r: &Response| body(r)["error"].as_str().unwrap_or_default().to_string();
    // Not a WebSocket upgrade: the token is not taken.
    let r = w
        .api
        .handle(Listener::Tenants, ws_request("/v1/whoami", &offer, false));
    assert_eq!(r.status, 401);
    assert!(
        error(&r).contains("only on a WebSocket upgrade"),
        "{}",
        error(&r)
    );
    // Two tokens, even the same one twice.
    let mut both = ws_request("/v1/whoami", &offer, true);
    both.headers
        .push(("authorization".into(), format!("Bearer {ACME}")));
    let r = w.api.handle(Listener::Tenants, both);
    assert_eq!(r.status, 400);
    assert!(
        error(&r).contains("Authorization header") && error(&r).contains("Sec-WebSocket-Protocol"),
        "{}",
        error(&r)
    );
    // Malformed base64url (padding, the standard alphabet, not UTF-8).
    for bad in [
        format!("{}=", base64url("acme-token!")),
        "YWJj+w".to_string(),
        base64url("\u{0}").replace('A', "_"),
    ] {
        let r = w.api.handle(
            Listener::Tenants,
            ws_request("/v1/whoami", &format!("crt.v1, crt.bearer.{bad}"), true),
        );
        assert_eq!(r.status, 401, "{bad}");
        assert!(
            error(&r).contains("not a token in base64url"),
            "{}",
            error(&r)
        );
    }
    // The token without crt.v1: the browser would fail the connection anyway.
    let only = format!("crt.bearer.{}", base64url(ACME));
    let r = w
        .api
        .handle(Listener::Tenants, ws_request("/v1/whoami", &only, true));
    assert_eq!(r.status, 400);
    assert!(error(&r).contains("not crt.v1"), "{}", error(&r));
    let twice = format!("{offer}, crt.bearer.{}", base64url(GLOBEX));
    let r = w
        .api
        .handle(Listener::Tenants, ws_request("/v1/whoami", &twice, true));
    assert_eq!(r.status, 400);
}

#[test]
fn the_operator_token_sees_every_tenant_and_changes_nothing() {
    let w = world();
    let (status, who) = w.get("/v1/whoami", Some(OPERATOR));
    assert_eq!(status, 200);
    assert_eq!(
        who,
        json!({"root": false, "operator": true, "tenant": null})
    );
    assert_eq!(
        w.get("/v1/whoami", Some(ACME)).1,
        json!({"root": false, "operator": false, "tenant": "acme"})
    );
    assert_eq!(w.root("/v1/whoami").1["operator"], false);
    // What root sees: both tenants' containers and nobody's.
    let (_, b) = w.get("/v1/containers", Some(OPERATOR));
    let mut ids: Vec<&str> = b["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["a1", "d1", "g1", "pod-c"]);
    assert_eq!(w.get("/v1/containers/globex/g1", Some(OPERATOR)).0, 200);
    let (_, events) = w.get("/v1/events?container=g1&limit=1", Some(OPERATOR));
    assert_eq!(events["events"][0]["tenant"], "globex");
    let (status, topology) = w.get("/v1/topology", Some(OPERATOR));
    assert_eq!(status, 200);
    assert_eq!(topology["tenant"], Value::Null);
    let stream = w.api.handle(
        Listener::Tenants,
        request("/v1/events/stream?container=g1", Some(OPERATOR), tcp()),
    );
    assert_eq!(stream.status, 200);
    // Every acting request is refused before it is looked at, whatever the route.
    for (method, path) in [
        ("POST", "/v1/containers/globex/g1/clones"),
        ("POST", "/v1/clones/acme/a1/commit"),
        ("POST", "/v1/containers/acme/a1/redeploy"),
        ("DELETE", "/v1/clones/acme/a1"),
        ("PUT", "/v1/containers"),
        ("GET", "/v1/clones/acme/a1/exec"),
        ("GET", "/v1/clones/globex/g1/archive?path=/"),
    ] {
        let mut req = request_with(method, path, Some(OPERATOR), tcp());
        req.headers.push(("upgrade".into(), "websocket".into()));
        let r = w.api.handle(Listener::Tenants, req);
        assert_eq!(r.status, 403, "{method} {path}");
        let msg = body(&r)["error"].as_str().unwrap().to_string();
        assert!(
            msg.starts_with("the operator token is read-only: ") && msg.contains(method),
            "{msg}"
        );
    }
    // Tenants are still told apart from it.
    assert_eq!(w.get("/v1/containers/globex/g1", Some(ACME)).0, 404);
}

#[test]
fn a_containers_usage_history_is_shown_only_to_whom_may_see_it() {
    let w = world();
    // The sampler takes every running container (these have no cgroup to read).
    w.api.sample_usage();
    let (status, b) = w.get("/v1/containers/acme/a1/metrics", Some(ACME));
    assert_eq!(status, 200);
    assert_eq!(b["interval_s"], 5);
    let samples = b["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 1, "{b}");
    assert!(
        crt_tracer::render::parse_rfc3339_utc(samples[0]["t"].as_str().unwrap()).is_some(),
        "{b}"
    );
    assert_eq!(samples[0]["syscall_rate"], 0.0);
    assert_eq!(samples[0]["cpu_percent"], Value::Null);
    assert_eq!(samples[0]["memory_bytes"], Value::Null);
    // Figures as the history holds them.
    let s = 1_000_000_000u64;
    w.api
        .usage
        .record(("globex", "g1"), 100 * s, 7.5, Some(10 * s), Some(4096));
    w.api
        .usage
        .record(("globex", "g1"), 105 * s, 2.5, Some(11 * s), Some(8192));
    let (status, b) = w.get("/v1/containers/globex/g1/metrics", Some(GLOBEX));
    assert_eq!(status, 200);
    let last = b["samples"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last,
        json!({"t": "1970-01-01T00:01:45.000000Z", "syscall_rate": 2.5, "cpu_percent": 20.0, "memory_bytes": 8192})
    );
    // Another tenant's container is not found, exactly like a missing one.
    let (status, other) = w.get("/v1/containers/globex/g1/metrics", Some(ACME));
    assert_eq!(status, 404);
    let (_, missing) = w.get("/v1/containers/acme/nope/metrics", Some(ACME));
    assert_eq!(
        other["error"].as_str().unwrap().replace("globex/g1", "X"),
        missing["error"].as_str().unwrap().replace("acme/nope", "X")
    );
    assert_eq!(w.get("/v1/containers/globex/g1/metrics", None).0, 401);
    assert_eq!(w.root("/v1/containers/globex/g1/metrics").0, 200);
    assert_eq!(
        w.get("/v1/containers/globex/g1/metrics", Some(OPERATOR)).0,
        200
    );
}

#[test]
fn a_container_shows_the_trace_annotation_its_shim_applied() {
    let w = world();
    let dir = w.api.state_dir.join("traces/acme/a1");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("meta.json"),
        json!({"namespace": "acme", "container": "a1", "annotation": "openat,connect",
               "created": "2026-11-28T08:00:00.000000Z", "shim_pid": 0, "kubernetes": {}})
        .to_string(),
    )
    .unwrap();
    w.api.ingest.read_node_files();
    let (_, a1) = w.get("/v1/containers/acme/a1", Some(ACME));
    assert_eq!(a1["trace_spec"], "openat,connect", "{a1}");
    let (_, g1) = w.get("/v1/containers/globex/g1", Some(GLOBEX));
    assert_eq!(g1["trace_spec"], Value::Null, "{g1}");
    let (_, list) = w.get("/v1/containers", Some(ACME));
    let a1 = list["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "a1")
        .unwrap();
    assert_eq!(a1["trace_spec"], "openat,connect");
}

/// A traced `connect` record of now to `addr:port` (IPv4).
fn connect_now(addr: [u8; 4], port: u16) -> Vec<u8> {
    let mut sockaddr = 2u16.to_le_bytes().to_vec();
    sockaddr.extend(port.to_be_bytes());
    sockaddr.extend(addr);
    sockaddr.extend([0; 8]);
    let mut buf = Vec::new();
    let mut b = crt_tracer::record::RecordBuilder::begin(
        &mut buf,
        crt_tracer::record::KIND_SYSCALL,
        now_ns(),
        10,
        crt_tracer::syscalls::NATIVE_AUDIT_ARCH,
        crt_tracer::syscalls::by_name("connect").unwrap().nr,
        &[3, 0, 16, 0, 0, 0],
    );
    b.bytes(1, &sockaddr, false);
    b.finish();
    buf
}

#[test]
fn the_topology_has_edges_from_traced_connects_of_the_callers_containers_only() {
    let w = world();
    for s in w.api.ingest.store.streams() {
        let dest = match s.meta.container.as_str() {
            "a1" => [10, 9, 8, 7],
            "g1" => [10, 66, 66, 66],
            _ => continue,
        };
        s.append(
            &connect_now(dest, 5432),
            Position { seq: 2, offset: 16 },
            false,
            0,
        )
        .unwrap();
    }
    let (s, b) = w.get("/v1/topology", Some(ACME));
    assert_eq!(s, 200, "{b}");
    let edges = b["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1, "{b}");
    let e = &edges[0];
    assert_eq!(e["from"], json!({"container": "acme/a1"}));
    assert_eq!(e["to"], json!({"address": "10.9.8.7"}));
    assert_eq!(e["port"], 5432);
    assert_eq!(e["proto"], "tcp");
    assert_eq!(e["via"], json!(["trace"]));
    assert_eq!(e["active"], false);
    assert_eq!(e["connections"], 0);
    // Containers that do not run listen on nothing, and say so.
    assert_eq!(b["containers"][0]["listening"], json!([]));
    assert!(!b.to_string().contains("10.66.66.66"), "{b}");

    let (_, g) = w.get("/v1/topology", Some(GLOBEX));
    assert_eq!(g["edges"].as_array().unwrap().len(), 1, "{g}");
    assert_eq!(g["edges"][0]["to"], json!({"address": "10.66.66.66"}));
    assert!(!g.to_string().contains("10.9.8.7"), "{g}");
    // Root sees both.
    let (_, r) = w.root("/v1/topology");
    assert_eq!(r["edges"].as_array().unwrap().len(), 2, "{r}");
}

/// A pod container's record as CRI's containers leave it: in `k8s.io`, with
/// the pod's namespace, name and uid.
fn pod_container(id: &str, pod: &str, uid: &str) -> ContainerRecord {
    let mut rec = ContainerRecord::new("k8s.io", id, 4242);
    rec.shim_pid = None;
    rec.status = ContainerStatus::Running;
    rec.kubernetes = Some(node_files::KubernetesIdentity {
        namespace: "acme-prod".into(),
        pod: pod.into(),
        pod_uid: uid.into(),
        container: "app".into(),
        sandbox_id: format!("sandbox-{uid}"),
        container_type: "container".into(),
    });
    rec
}

#[test]
fn a_pod_made_again_under_the_same_name_is_another_pod() {
    let w = world();
    // db-0 ran, its container exited 3 and CRI deleted it (the shim's last
    // record is all that is left); the StatefulSet made db-0 again, new uid.
    let mut old = pod_container("db-old", "db-0", "uid-old");
    old.exited(3);
    w.api.ingest.store.ended.add("db-old.json", old).unwrap();
    shim_writes(&w, &pod_container("db-new", "db-0", "uid-new"));
    w.api.ingest.read_node_files();

    let pods_named = |t: &Value, name: &str| -> Vec<Value> {
        t["pods"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == name)
            .cloned()
            .collect()
    };
    let (s, t) = w.get("/v1/topology?all=true", Some(ACME));
    assert_eq!(s, 200);
    let db = pods_named(&t, "db-0");
    assert_eq!(db.len(), 2, "{t}");
    let by_uid = |uid: &str| db.iter().find(|p| p["uid"] == uid).unwrap();
    let (old_pod, new_pod) = (by_uid("uid-old"), by_uid("uid-new"));
    assert_eq!(old_pod["namespace"], "acme-prod");
    let ids = |p: &Value| -> Vec<String> {
        p["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(old_pod), ["db-old"]);
    assert_eq!(ids(new_pod), ["db-new"]);
    // The deleted container keeps its end, and its pod's uid.
    let ended = &old_pod["containers"][0];
    assert_eq!(
        (&ended["status"], &ended["exit_code"]),
        (&json!("gone"), &json!(3)),
        "{ended}"
    );
    assert!(ended["exited"].is_string(), "{ended}");
    assert_eq!(ended["kubernetes"]["pod_uid"], "uid-old");
    // Without all=true, what exists now: the new pod only.
    let (_, now) = w.get("/v1/topology", Some(ACME));
    let names = pods_named(&now, "db-0");
    assert_eq!(names.len(), 1, "{now}");
    assert_eq!(names[0]["uid"], "uid-new");
    // The container list and a container's own view carry the uid and the end.
    let (_, v) = w.get("/v1/containers/k8s.io/db-old", Some(ACME));
    assert_eq!(
        (&v["status"], &v["exit_code"], &v["kubernetes"]["pod_uid"]),
        (&json!("gone"), &json!(3), &json!("uid-old"))
    );
    let (_, list) = w.get("/v1/containers", Some(ACME));
    assert!(list["containers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == "db-old" && c["exit_code"] == 3));
    // Another tenant sees neither pod, nor the ended container.
    let (_, g) = w.get("/v1/topology?all=true", Some(GLOBEX));
    assert!(!g.to_string().contains("db-0"), "{g}");
    assert_eq!(w.get("/v1/containers/k8s.io/db-old", Some(GLOBEX)).0, 404);
}

#[test]
fn the_pod_filter_takes_a_uid_a_name_or_a_namespace_and_name() {
    let w = world();
    for (id, uid) in [("db-a", "uid-a"), ("db-b", "uid-b")] {
        let s = w
            .api
            .ingest
            .store
            .stream(StreamMeta {
                namespace: "k8s.io".into(),
                container: id.into(),
                instance: 1,
                kubernetes: json!({"namespace": "acme-prod", "pod": "db-0", "pod_uid": uid}),
                source: "/nowhere".into(),
            })
            .unwrap();
        s.append(
            &rec(now_ns() - 1000, 7, "openat", format!("/{id}").as_bytes()),
            Position { seq: 1, offset: 16 },
            false,
            0,
        )
        .unwrap();
        shim_writes(&w, &pod_container(id, "db-0", uid));
    }
    w.api.ingest.read_node_files();
    let containers = |q: &str| -> Vec<String> {
        let (s, b) = w.get(&format!("/v1/events?{q}&limit=100"), Some(ACME));
        assert_eq!(s, 200, "{q}: {b}");
        let mut ids: Vec<String> = b["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["container"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    // A name means every pod that had it; a uid, that one pod.
    assert_eq!(containers("pod=db-0"), ["db-a", "db-b"]);
    assert_eq!(containers("pod=acme-prod/db-0"), ["db-a", "db-b"]);
    assert_eq!(containers("pod=uid-a"), ["db-a"]);
    assert_eq!(containers("pod=uid-b"), ["db-b"]);
    // Each event names its pod with the uid.
    let (_, b) = w.get("/v1/events?pod=uid-b&limit=1", Some(ACME));
    assert_eq!(
        b["events"][0]["pod"],
        json!({"namespace": "acme-prod", "name": "db-0", "uid": "uid-b"})
    );
    // Not a uid of another namespace's name, nor another tenant's.
    assert_eq!(w.get("/v1/events?pod=other/db-0", Some(ACME)).0, 404);
    assert_eq!(w.get("/v1/events?pod=uid-a", Some(GLOBEX)).0, 404);
}

#[test]
fn a_service_account_token_is_taken_wherever_a_tenant_token_is() {
    use crate::service_accounts::tests::{claims, key, sign, verifier};
    let keys = tempfile::tempdir().unwrap();
    let k = key("k1");
    let v = verifier(keys.path(), &[&k]);
    let w = world_with(|t| t.with_service_accounts(v));
    let acme = sign(&k, "k1", &claims("acme-prod", "ci"));
    let globex = sign(&k, "k1", &claims("globex", "ci"));
    // In Authorization: Bearer.
    let (s, b) = w.get("/v1/whoami", Some(&acme));
    assert_eq!((s, &b["tenant"]), (200, &json!("acme")));
    let (_, list) = w.get("/v1/containers", Some(&acme));
    let ids: BTreeSet<String> = list["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["a1", "pod-c"].iter().map(|s| s.to_string()).collect());
    assert_eq!(w.get("/v1/containers/acme/a1", Some(&globex)).0, 404);
    // As a browser's WebSocket subprotocol.
    let offer = format!("crt.v1, crt.bearer.{}", base64url(&globex));
    let r = w
        .api
        .handle(Listener::Tenants, ws_request("/v1/whoami", &offer, true));
    assert_eq!((r.status, &body(&r)["tenant"]), (200, &json!("globex")));
    let r = w.api.handle(
        Listener::Tenants,
        ws_request("/v1/events/stream?container=a1", &offer, true),
    );
    assert_eq!(r.status, 404);
    // A namespace nobody owns, and a forged one, are refused on every listener path.
    let nobody = sign(&k, "k1", &claims("kube-system", "default"));
    let (s, b) = w.get("/v1/whoami", Some(&nobody));
    assert_eq!(s, 401);
    assert!(b.to_string().contains("no tenant owns"), "{b}");
    let offer = format!("crt.v1, crt.bearer.{}", base64url(&nobody));
    let r = w
        .api
        .handle(Listener::Tenants, ws_request("/v1/whoami", &offer, true));
    assert_eq!(r.status, 401);
    // The static tokens are unchanged beside them.
    assert_eq!(w.get("/v1/whoami", Some(ACME)).1["tenant"], "acme");
}

/// Calls with results in acme's a1 and globex's g1, after the world's own
/// (which have none): an ENOENT, an fd after 5 ms, an EACCES after 2 ms, and
/// the exit of an unfinished read; g1 gets a failure of its own.
fn with_results(w: &World) {
    use crate::store::tests::{exit_rec, rec_with_result};
    let live = &w.api.ingest.live;
    let a1 = stream_of(w, "a1");
    for r in [
        rec_with_result(5_000_000, 10, "openat", b"/enoent", -2, Some(1_000)),
        rec_with_result(5_000_001, 10, "openat", b"/fd", 3, Some(5_000_000)),
        rec_with_result(5_000_002, 11, "openat", b"/eacces", -13, Some(2_000_000)),
        exit_rec(5_000_003, 11, "read", 5, 2_000_000),
    ] {
        crate::live::store_and_publish(live, &a1, Some("acme"), &r);
    }
    crate::live::store_and_publish(
        live,
        &stream_of(w, "g1"),
        Some("globex"),
        &rec_with_result(5_000_004, 12, "openat", b"/theirs", -2, Some(9_000_000)),
    );
}

fn events_of(b: &Value) -> Vec<Value> {
    b["events"].as_array().cloned().unwrap_or_default()
}

#[test]
fn events_are_filtered_by_result_within_the_tenant() {
    let w = world();
    with_results(&w);
    let (s, b) = w.get("/v1/events?failed=true&limit=1000", Some(ACME));
    assert_eq!(s, 200, "{b}");
    let failed = events_of(&b);
    let paths: Vec<&str> = failed
        .iter()
        .map(|e| e["args"][1].as_str().unwrap())
        .collect();
    // globex's failure is not acme's to see.
    assert_eq!(paths, ["\"/enoent\"", "\"/eacces\""], "{b}");
    assert_eq!(failed[0]["ret"], -2);
    assert_eq!(failed[0]["errno"], "ENOENT");
    assert_eq!(failed[0]["duration_ns"], 1_000);
    assert_eq!(failed[1]["errno"], "EACCES");

    let (_, b) = w.get("/v1/events?container=a1&errno=EACCES,2", Some(ACME));
    assert_eq!(events_of(&b).len(), 2, "{b}");
    let (_, b) = w.get("/v1/events?container=a1&errno=13", Some(ACME));
    assert_eq!(events_of(&b).len(), 1, "{b}");

    let (_, b) = w.get("/v1/events?container=a1&slower_than=2ms", Some(ACME));
    let slow = events_of(&b);
    let names: Vec<(&str, &Value)> = slow
        .iter()
        .map(|e| (e["syscall"].as_str().unwrap(), &e["ret"]))
        .collect();
    assert_eq!(
        names,
        [
            ("openat", &json!(3)),
            ("openat", &json!(-13)),
            ("read", &json!(5))
        ]
    );
    // The exit of an unfinished call says so, with its result.
    assert_eq!(slow[2]["resumed"], true);
    assert_eq!(slow[2]["duration_ns"], 2_000_000);

    let (_, b) = w.get("/v1/events?container=a1&successful=true", Some(ACME));
    assert_eq!(events_of(&b).len(), 2, "{b}");
    // Root sees both tenants' failures.
    let (_, b) = w.root("/v1/events?failed=true&errno=ENOENT");
    assert_eq!(events_of(&b).len(), 2, "{b}");
}

#[test]
fn strings_are_shown_in_octal_by_default_and_in_hex_when_asked() {
    use crate::store::tests::rec_with_result;
    let w = world();
    crate::live::store_and_publish(
        &w.api.ingest.live,
        &stream_of(&w, "a1"),
        Some("acme"),
        &rec_with_result(5_000_000, 10, "openat", b"/a\x01b", -2, None),
    );
    let path_of = |q: &str| {
        let (s, b) = w.get(
            &format!("/v1/events?container=a1&errno=ENOENT{q}"),
            Some(ACME),
        );
        assert_eq!(s, 200, "{b}");
        let events = events_of(&b);
        events
            .iter()
            .find(|e| e["errno"] == "ENOENT")
            .and_then(|e| e["args"][1].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("no open in {b}"))
    };
    // strace's default, -x and -xx.
    assert_eq!(path_of(""), r#""/a\1b""#);
    assert_eq!(path_of("&strings=hex"), r#""\x2f\x61\x01\x62""#);
    assert_eq!(path_of("&strings=allhex"), r#""\x2f\x61\x01\x62""#);
    for (q, key, val) in [
        ("strings=rot13", "strings", "rot13"),
        ("string_limit=0", "string_limit", "0"),
        ("string_limit=many", "string_limit", "many"),
    ] {
        let (s, b) = w.get(&format!("/v1/events?{q}"), Some(ACME));
        assert_eq!(s, 400, "{q}");
        let msg = b["error"].as_str().unwrap();
        assert!(msg.contains(key) && msg.contains(val), "{q}: {msg}");
    }
}

#[test]
fn bad_result_parameters_are_named_with_their_value() {
    let w = world();
    for (q, key, val) in [
        ("errno=ENOPE", "errno", "ENOPE"),
        ("errno=ENOENT,99999", "errno", "99999"),
        ("slower_than=1m", "slower_than", "1m"),
        ("slower_than=fast", "slower_than", "fast"),
        ("failed=maybe", "failed", "maybe"),
        ("successful=2", "successful", "2"),
    ] {
        for path in ["/v1/events", "/v1/summary", "/v1/events/stream"] {
            let (s, b) = w.get(&format!("{path}?{q}"), Some(ACME));
            assert_eq!(s, 400, "{path}?{q}");
            let msg = b["error"].as_str().unwrap();
            assert!(msg.contains(key) && msg.contains(val), "{q}: {msg}");
        }
    }
    let (s, b) = w.get("/v1/events?failed=true&successful=true", Some(ACME));
    assert_eq!(s, 400, "{b}");
}

#[test]
fn a_live_stream_honours_result_filters() {
    use crate::store::tests::rec_with_result;
    let w = world();
    let mut r = Reader::open(
        &w,
        Listener::Tenants,
        "/v1/events/stream?container=a1&errno=ENOENT",
        Some(ACME),
    );
    let live = &w.api.ingest.live;
    let a1 = stream_of(&w, "a1");
    for rec in [
        rec(9_000, 1, "openat", b"/unknown"),
        rec_with_result(9_001, 1, "openat", b"/ok", 3, Some(10)),
        rec_with_result(9_002, 1, "openat", b"/eacces", -13, Some(10)),
        rec_with_result(9_003, 1, "openat", b"/enoent", -2, Some(10)),
    ] {
        crate::live::store_and_publish(live, &a1, Some("acme"), &rec);
    }
    let got: Value = serde_json::from_str(&r.next_data().expect("an event")).unwrap();
    assert_eq!(got["args"][1], "\"/enoent\"", "{got}");
    assert_eq!(got["errno"], "ENOENT");
    assert!(r.quiet());
}

#[test]
fn the_summary_counts_calls_errors_and_time_per_syscall() {
    let w = world();
    with_results(&w);
    let (s, b) = w.get("/v1/summary?container=a1", Some(ACME));
    assert_eq!(s, 200, "{b}");
    let rows = b["syscalls"].as_array().unwrap();
    // Most time first: openat 7.001 ms, read 2 ms, then connect (no time).
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["syscall"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["openat", "read", "connect"], "{b}");
    assert_eq!(rows[0]["calls"], 200 + 3);
    assert_eq!(rows[0]["errors"], 2);
    assert_eq!(rows[0]["total_ns"], 7_001_000);
    assert_eq!(rows[0]["avg_ns"], 7_001_000 / 3);
    assert_eq!(rows[0]["unknown"], 200);
    assert_eq!(rows[2]["avg_ns"], Value::Null);
    assert_eq!(b["total"]["calls"], 254);
    assert_eq!(b["total"]["unknown"], 250);
    assert_eq!(b["truncated"], false);
    // The same parameters as the events: a time range, failed calls only.
    let (_, b) = w.get(
        "/v1/summary?container=a1&failed=true&since=1970-01-01T00:00:00.004Z",
        Some(ACME),
    );
    assert_eq!(b["total"]["calls"], 2, "{b}");
    assert_eq!(b["total"]["errors"], 2, "{b}");
    // Someone else's container is not found; the tenant's whole scope
    // does not take in another's calls.
    assert_eq!(w.get("/v1/summary?container=g1", Some(ACME)).0, 404);
    let (_, b) = w.get("/v1/summary?failed=true", Some(ACME));
    assert_eq!(b["total"]["calls"], 2, "{b}");
}

#[test]
fn a_container_says_why_its_trace_has_no_results() {
    let w = world();
    let dir = w.api.state_dir.join("traces/acme/a1");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("meta.json"),
        json!({"namespace": "acme", "container": "a1", "annotation": "openat",
               "created": "2026-11-28T08:00:00.000000Z", "shim_pid": 0, "kubernetes": {},
               "results_unavailable": "BPF is not allowed on this node"})
        .to_string(),
    )
    .unwrap();
    w.api.ingest.read_node_files();
    let (_, a1) = w.get("/v1/containers/acme/a1", Some(ACME));
    assert_eq!(
        a1["results_unavailable"], "BPF is not allowed on this node",
        "{a1}"
    );
    let (_, g1) = w.get("/v1/containers/globex/g1", Some(GLOBEX));
    assert_eq!(g1["results_unavailable"], Value::Null, "{g1}");
    let (_, b) = w.get("/v1/summary?container=a1", Some(ACME));
    assert_eq!(
        b["results_unavailable"], "BPF is not allowed on this node",
        "{b}"
    );
}
