//! The network map of `/v1/topology` with real containers in real network
//! namespaces: an alpha client talks to an alpha server and to a beta
//! server; alpha sees its own edge between named containers and beta's
//! server only as an address, and neither tenant's answer names the other's.

use std::process::Command;
use std::time::Duration;

use crt_integration::*;
use serde_json::{json, Value};

const ALPHA: (&str, &str, &str) = TENANTS[0];
const BETA: (&str, &str, &str) = TENANTS[1];

/// Three network namespaces: A (10.231.0.1) and C (10.232.0.1) each joined
/// to B (10.231.0.2, 10.232.0.2) by a veth pair. Deleted when dropped,
/// whatever state the test left them in (deleting a namespace deletes its
/// veth ends too).
struct Netns {
    names: Vec<String>,
}

fn ip(args: &[&str]) {
    run(Command::new("ip").args(args), None).ok();
}

impl Netns {
    fn make() -> Netns {
        let p = std::process::id();
        let net = Netns {
            names: ["a", "b", "c"]
                .iter()
                .map(|x| format!("crt-topo-{p}-{x}"))
                .collect(),
        };
        let (a, b, c) = (&net.names[0], &net.names[1], &net.names[2]);
        for n in &net.names {
            ip(&["netns", "add", n]);
            ip(&["-n", n, "link", "set", "lo", "up"]);
        }
        // Interface names: at most 15 bytes.
        for (far, far_if, near_if, far_addr, near_addr) in [
            (
                a,
                format!("ct{p}a"),
                format!("ct{p}ba"),
                "10.231.0.1/24",
                "10.231.0.2/24",
            ),
            (
                c,
                format!("ct{p}c"),
                format!("ct{p}bc"),
                "10.232.0.1/24",
                "10.232.0.2/24",
            ),
        ] {
            ip(&[
                "link", "add", &far_if, "netns", far, "type", "veth", "peer", "name", &near_if,
                "netns", b,
            ]);
            ip(&["-n", far, "addr", "add", far_addr, "dev", &far_if]);
            ip(&["-n", b, "addr", "add", near_addr, "dev", &near_if]);
            ip(&["-n", far, "link", "set", &far_if, "up"]);
            ip(&["-n", b, "link", "set", &near_if, "up"]);
        }
        net
    }

    fn with_ns(&self, i: usize) -> String {
        format!("network:/var/run/netns/{}", self.names[i])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = run(Command::new("ip").args(["netns", "del", n]), None);
        }
    }
}

/// A server that keeps every connection open (each gets a `cat`).
const SERVER: &[&str] = &["nc", "-ll", "-p", "8080", "-e", "cat"];

fn edges(topology: &Value) -> Vec<Value> {
    topology["edges"].as_array().cloned().unwrap_or_default()
}

fn container(key: &NsTask) -> Value {
    json!({ "container": format!("{}/{}", key.ns, key.id) })
}

/// The edge `from` → `to` on port 8080 over TCP, if the topology has it.
fn edge(topology: &Value, from: &Value, to: &Value) -> Option<Value> {
    edges(topology)
        .into_iter()
        .find(|e| &e["from"] == from && &e["to"] == to && e["port"] == 8080 && e["proto"] == "tcp")
}

/// Every container object of a topology answer, in pods or not.
fn containers(topology: &Value) -> Vec<Value> {
    let mut out: Vec<Value> = topology["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for pod in topology["pods"].as_array().into_iter().flatten() {
        out.extend(pod["containers"].as_array().cloned().unwrap_or_default());
    }
    out
}

#[test]
fn a_tenants_topology_has_its_own_edges_named_and_another_tenants_container_as_an_address() {
    let crtd = Crtd::start("topology");
    // Dropped after the containers (declared before them).
    let net = Netns::make();
    let server = NsTask::start(ALPHA.1, &["--with-ns", &net.with_ns(0)], SERVER);
    let theirs = NsTask::start(BETA.1, &["--with-ns", &net.with_ns(2)], SERVER);
    // One connection to each server, held open (and made again if it drops);
    // traced, so its connects are seen too.
    let client = NsTask::start(
        ALPHA.1,
        &[
            "--with-ns",
            &net.with_ns(1),
            "--annotation",
            "crt.dev/trace=connect",
        ],
        &[
            "sh",
            "-c",
            "(while true; do sleep 3600 | nc 10.231.0.1 8080; sleep 1; done) & \
             while true; do sleep 3600 | nc 10.232.0.1 8080; sleep 1; done",
        ],
    );

    let mine = (container(&client), container(&server));
    let to_beta = json!({"address": "10.232.0.1"});
    let mut alpha = Value::Null;
    let found = wait_for(Duration::from_secs(40), || {
        alpha = crtd.get("/v1/topology", Some(ALPHA.2)).1;
        let inner = edge(&alpha, &mine.0, &mine.1);
        inner.is_some_and(|e| {
            e["via"]
                .as_array()
                .is_some_and(|v| v.contains(&json!("socket")))
                && e["via"]
                    .as_array()
                    .is_some_and(|v| v.contains(&json!("trace")))
                && e["active"] == true
        }) && edge(&alpha, &mine.0, &to_beta).is_some()
    });
    assert!(
        found,
        "alpha's topology lacks its edges: {alpha:#}\n{}",
        crtd.log()
    );

    let inner = edge(&alpha, &mine.0, &mine.1).unwrap();
    assert_eq!(inner["connections"], 1, "{inner}");
    assert!(
        inner["id"].as_str().is_some_and(|id| !id.is_empty()),
        "{inner}"
    );
    let out = edge(&alpha, &mine.0, &to_beta).unwrap();
    assert_eq!(out["active"], true, "{out}");
    assert!(
        out["via"].as_array().unwrap().contains(&json!("socket")),
        "{out}"
    );
    // The server says what it listens on.
    let server_view = containers(&alpha)
        .into_iter()
        .find(|c| c["id"] == server.id.as_str())
        .unwrap_or_else(|| panic!("no server in {alpha:#}"));
    assert!(
        server_view["listening"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["proto"] == "tcp"
                && l["port"] == 8080
                && (l["address"] == "0.0.0.0" || l["address"] == "::")),
        "{server_view:#}"
    );
    // Beta's server is nowhere named to alpha.
    let text = alpha.to_string();
    assert!(
        !text.contains(&theirs.id),
        "alpha sees beta's container: {alpha:#}"
    );
    assert!(
        !text.contains(BETA.1),
        "alpha sees beta's namespace: {alpha:#}"
    );

    // Beta sees alpha's client as an address only.
    let from_alpha = json!({"address": "10.232.0.2"});
    let mut beta = Value::Null;
    assert!(
        wait_for(Duration::from_secs(20), || {
            beta = crtd.get("/v1/topology", Some(BETA.2)).1;
            edge(&beta, &from_alpha, &container(&theirs)).is_some()
        }),
        "beta's topology lacks the inbound edge: {beta:#}"
    );
    let text = beta.to_string();
    for alpha_id in [&client.id, &server.id] {
        assert!(
            !text.contains(alpha_id.as_str()),
            "beta sees alpha's container: {beta:#}"
        );
    }
    assert!(
        !text.contains(ALPHA.1),
        "beta sees alpha's namespace: {beta:#}"
    );

    // Root sees every container: both edges between named containers.
    let (_, root) = crtd.root_get("/v1/topology");
    assert!(
        edge(&root, &mine.0, &container(&theirs)).is_some()
            && edge(&root, &mine.0, &mine.1).is_some(),
        "root does not name both servers: {root:#}"
    );
}
