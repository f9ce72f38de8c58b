//! crtd end to end: tenants over real HTTP, crtctl through crtd, topology.
//! Each test runs a crtd of its own (its own tenants, port and store) that
//! follows the node's real traces, written by real shims.

use std::process::{Command, Stdio};
use std::time::Duration;

use crt_integration::*;

const ALPHA: (&str, &str, &str) = TENANTS[0];
const BETA: (&str, &str, &str) = TENANTS[1];

fn wait_stored(crtd: &Crtd, ns: &str, id: &str, at_least: u64) -> bool {
    wait_for(Duration::from_secs(30), || crtd.stored(ns, id) >= at_least)
}

#[test]
fn a_tenant_reaches_only_its_own_containers_over_http() {
    let crtd = Crtd::start("iso");
    let a = NsTask::start(
        ALPHA.1,
        &["--annotation", "crt.dev/trace=openat"],
        &["sh", "-c", "cat /etc/crt-test-release; sleep 300"],
    );
    let b = NsTask::start(
        BETA.1,
        &["--annotation", "crt.dev/trace=openat"],
        &["sh", "-c", "cat /etc/crt-test-release; sleep 300"],
    );
    assert!(wait_stored(&crtd, &a.ns, &a.id, 2));
    assert!(wait_stored(&crtd, &b.ns, &b.id, 2));

    let (s, v) = crtd.get("/v1/containers", Some(ALPHA.2));
    assert_eq!(s, 200);
    let ids: Vec<&str> = v["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert!(ids.contains(&a.id.as_str()), "{ids:?}");
    assert!(!ids.contains(&b.id.as_str()), "{ids:?}");
    assert!(v["containers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["tenant"] == "alpha"));

    // Every endpoint crtd documents, as its served OpenAPI document lists
    // them: no token or a wrong one is 401; someone else's container is the
    // same 404 as one that does not exist. Those documented as public (the
    // web UI's page and files, `security: []`) carry nothing of anyone's.
    let (_, doc) = crtd.root_get("/openapi.json");
    let mut ops: Vec<(String, String)> = Vec::new();
    let mut public = 0;
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for (m, op) in methods.as_object().unwrap() {
            // `/metrics` is public on its own listener only (below: 404 to tenants).
            let ui = path == "/" || path == "/index.html" || path.starts_with("/assets/");
            if op["security"].as_array().is_some_and(|s| s.is_empty()) && ui {
                public += 1;
                continue;
            }
            ops.push((m.to_uppercase(), path.clone()));
        }
    }
    assert!(
        public >= 3,
        "the UI's routes are documented as public: {public}"
    );
    let (status, page) = crtd.request_text("GET", "/", None);
    assert_eq!(status, 200);
    assert!(!page.contains(&a.id) && !page.contains(&b.id), "{page}");
    assert!(ops.len() >= 10, "{ops:?}");
    for (method, p) in &ops {
        let concrete = p.replace("{namespace}", &b.ns).replace("{id}", &b.id);
        if p == "/metrics" {
            // Not served to tenants at all.
            assert_eq!(crtd.get(p, Some(ALPHA.2)).0, 404, "{p}");
            continue;
        }
        let call = |path: &str, token: Option<&str>| crtd.request(method, path, token);
        assert_eq!(call(&concrete, None).0, 401, "{method} {p}");
        assert_eq!(
            call(&concrete, Some("beta-token-wrong")).0,
            401,
            "{method} {p}"
        );
        let theirs = if p.contains("{id}") {
            Some(concrete.clone())
        } else if p.starts_with("/v1/events") {
            Some(format!("{concrete}?container={}", b.id))
        } else {
            None
        };
        if let Some(path) = theirs {
            let (code, body) = call(&path, Some(ALPHA.2));
            let (none, _) = call(&path.replace(&b.id, "no-such-container"), Some(ALPHA.2));
            assert_eq!((code, none), (404, 404), "{method} {path}: {body}");
            // Their owner reaches it (what changes something, and the
            // WebSocket sessions, are tested on their own).
            let session = ["/stream", "/exec", "/archive"]
                .iter()
                .any(|e| p.ends_with(e));
            if method == "GET" && !session {
                assert_eq!(call(&path, Some(BETA.2)).0, 200, "{path}");
            }
        }
    }
    // What lists containers never shows another tenant's.
    for p in ["/v1/containers", "/v1/topology", "/v1/topology?all=true"] {
        let (code, v) = crtd.get(p, Some(ALPHA.2));
        assert_eq!(code, 200, "{p}");
        assert!(!v.to_string().contains(&b.id), "{p}: {v}");
    }
    // Their own events are there, and carry their tenant.
    let (s, v) = crtd.get(
        &format!("/v1/events?container={}&syscall=openat", a.id),
        Some(ALPHA.2),
    );
    assert_eq!(s, 200);
    let events = v["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["args"][1] == "\"/etc/crt-test-release\""),
        "{v}"
    );
    assert!(events.iter().all(|e| e["tenant"] == "alpha"));
    // Root sees both.
    let (_, v) = crtd.root_get("/v1/containers");
    let all: Vec<&str> = v["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert!(all.contains(&a.id.as_str()) && all.contains(&b.id.as_str()));
}

#[test]
fn crtctl_reads_history_through_crtd_with_filters() {
    let crtd = Crtd::start("trace");
    let id = id("crtd-trace");
    run_in(
        ALPHA.1,
        &[
            "run",
            "--rm",
            "--runtime",
            CRT,
            "--annotation",
            "crt.dev/trace=%file,%network",
            IMAGE,
            &id,
            "sh",
            "-c",
            "cat /etc/crt-test-release; nc -w 1 127.0.0.1 9 </dev/null; true",
        ],
    )
    .ok();
    let connect = crtd
        .crtctl(ALPHA.2, &["trace", "--syscall", "connect", &id])
        .ok();
    let lines: Vec<&str> = connect
        .stdout
        .lines()
        .filter(|l| !l.contains("+++") && !l.starts_with("--- crt: no return values"))
        .collect();
    assert!(!lines.is_empty(), "{connect:?}");
    assert!(lines.iter().all(|l| l.contains("] connect(")), "{lines:?}");
    assert!(lines[0].contains("sin_port=htons(9)"), "{lines:?}");
    // strace -c's table, summed by crtd: each call of the history once.
    let events = crtctl_json(&crtd, &["trace", "--json", &id]);
    let calls = events
        .iter()
        .filter(|e| e["event"] == "syscall" && e["unfinished"] != true)
        .count();
    let summary = crtd.crtctl(ALPHA.2, &["trace", "-c", &id]).ok().stdout;
    let total = summary
        .lines()
        .find(|l| l.ends_with(" total"))
        .unwrap_or_else(|| panic!("no total line: {summary}"));
    assert_eq!(
        total.split_whitespace().nth(3).and_then(|c| c.parse().ok()),
        Some(calls),
        "{summary}"
    );
    assert!(
        summary.lines().any(|l| l.ends_with(" connect")),
        "{summary}"
    );
    let other = crtd.crtctl(BETA.2, &["trace", "-c", &id]);
    assert_ne!(other.code, 0);
    assert!(other.stderr.contains("not found"), "{other:?}");
    let grep = crtctl_json(
        &crtd,
        &["trace", "--json", "--grep", "crt-test-release", &id],
    );
    assert!(
        grep.iter()
            .any(|e| e["syscall"] == "openat" && e["tenant"] == "alpha"),
        "{grep:?}"
    );
    assert!(grep
        .iter()
        .filter(|e| e["event"] == "syscall")
        .all(|e| e.to_string().contains("crt-test-release")));
    // Another tenant gets "not found", a person can act on it.
    let other = crtd.crtctl(BETA.2, &["trace", &id]);
    assert_ne!(other.code, 0);
    assert!(other.stderr.contains("not found"), "{other:?}");
    // A wrong token is said to be one.
    let bad = crtd.crtctl("nope", &["trace", &id]);
    assert!(bad.stderr.contains("refused the credentials"), "{bad:?}");
    // crtd not running: said so.
    let down = run(
        Command::new("crtctl")
            .env("CRT_TOKEN", "x")
            .env("CRT_SERVER", "http://127.0.0.1:1")
            .args(["trace", &id]),
        None,
    );
    assert!(down.stderr.contains("not reachable"), "{down:?}");
}

fn crtctl_json(crtd: &Crtd, args: &[&str]) -> Vec<serde_json::Value> {
    crtd.crtctl(ALPHA.2, args)
        .ok()
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn crtctl_follows_a_container_live_until_it_exits() {
    let crtd = Crtd::start("follow");
    let t = NsTask::start(
        ALPHA.1,
        &["--annotation", "crt.dev/trace=openat"],
        &[
            "sh",
            "-c",
            "sleep 2; cat /etc/crt-test-release >/dev/null; sleep 1",
        ],
    );
    let child = Command::new("crtctl")
        .env("CRT_TOKEN", ALPHA.2)
        .env("CRT_SERVER", crtd.server())
        .args(["trace", "-f", &t.id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let out = finish(child);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "it followed, not just read"
    );
    assert!(out.stdout.contains("\"/etc/crt-test-release\""), "{out:?}");
    assert!(
        out.stdout.contains("+++ all processes exited +++"),
        "{out:?}"
    );
}

#[test]
fn crtctl_follow_survives_crtd_restarts_missing_and_repeating_nothing() {
    let mut crtd = Crtd::start("resume");
    // 150 marks, about 15 a second: the follow spans both restarts.
    const MARKS: usize = 150;
    let t = NsTask::start(
        ALPHA.1,
        &["--annotation", "crt.dev/trace=openat"],
        &[
            "sh",
            "-c",
            "sleep 1; i=0; while [ $i -lt 150 ]; do i=$((i+1)); cat /mark-$i 2>/dev/null; sleep 0.06; done",
        ],
    );
    let child = Command::new("crtctl")
        .env("CRT_TOKEN", ALPHA.2)
        .env("CRT_SERVER", crtd.server())
        .args(["trace", "-f", &t.id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // crtd crashes twice while crtctl follows; each time it is back a moment later.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_secs(3));
        crtd.kill();
        std::thread::sleep(Duration::from_millis(700));
        crtd.restart();
    }
    let out = finish(child);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("resuming"),
        "the stream broke and was resumed: {out:?}"
    );
    for i in 1..=MARKS {
        let n = out.stdout.matches(&format!("\"/mark-{i}\"")).count();
        assert_eq!(n, 1, "/mark-{i} printed {n} times: {out:?}");
    }
    assert!(
        out.stdout.contains("+++ all processes exited +++"),
        "{out:?}"
    );
}

#[test]
fn ps_shows_the_tenants_pods_containers_and_processes() {
    // As CRI would run it: alpha's namespace stands in for k8s.io.
    let crtd = Crtd::start_with(
        "ps",
        &format!("[kubernetes]\ncri_namespace = \"{}\"\n", ALPHA.1),
    );
    // As CRI would describe a pod's container.
    let t = NsTask::start(
        ALPHA.1,
        &[
            "--annotation",
            "crt.dev/trace=openat",
            "--annotation",
            &format!("io.kubernetes.cri.sandbox-namespace={}", ALPHA.1),
            "--annotation",
            "io.kubernetes.cri.sandbox-name=web-0",
            "--annotation",
            "io.kubernetes.cri.container-name=app",
        ],
        &[
            "sh",
            "-c",
            "while true; do cat /etc/crt-test-release >/dev/null; sleep 0.1; done",
        ],
    );
    assert!(wait_stored(&crtd, &t.ns, &t.id, 20));
    let out = crtd.crtctl(ALPHA.2, &["ps"]).ok().stdout;
    assert!(out.contains(&format!("pod {}/web-0", ALPHA.1)), "{out}");
    assert!(out.contains(&format!("app ({}/{})", t.ns, t.id)), "{out}");
    assert!(out.contains("running"), "{out}");
    assert!(out.contains("sh -c while true"), "{out}");
    // The tree as JSON, with a syscall rate measured over the last full
    // seconds (so once a second has passed).
    let mut v = serde_json::Value::Null;
    let rated = wait_for(Duration::from_secs(15), || {
        v = serde_json::from_str(&crtd.crtctl(ALPHA.2, &["ps", "--json"]).ok().stdout).unwrap();
        v["pods"][0]["containers"][0]["syscall_rate"]
            .as_f64()
            .is_some_and(|r| r > 0.0)
    });
    let c = &v["pods"][0]["containers"][0];
    assert!(rated, "{c}");
    assert_eq!(c["id"], t.id.as_str());
    assert!(c["memory_bytes"].as_u64().unwrap() > 0, "{c}");
    assert!(!c["processes"].as_array().unwrap().is_empty(), "{c}");
    // Beta sees none of it.
    let beta: serde_json::Value =
        serde_json::from_str(&crtd.crtctl(BETA.2, &["ps", "--json"]).ok().stdout).unwrap();
    assert!(beta["pods"].as_array().unwrap().is_empty(), "{beta}");
}

#[test]
fn application_logs_are_interleaved_with_the_syscalls_that_wrote_them() {
    let crtd = Crtd::start("logs");
    // No client reads this container's output (--null-io): it is logged all the same.
    let t = NsTask::start(
        ALPHA.1,
        &["--null-io", "--annotation", "crt.dev/trace=openat"],
        &[
            "sh",
            "-c",
            "echo out-one; sleep 0.3; cat /mark-1 2>/dev/null; echo err-one >&2; sleep 0.3; \
             cat /mark-2 2>/dev/null; printf '\\033[31mred\\n'; echo out-two",
        ],
    );
    let ended = wait_for(Duration::from_secs(30), || {
        let (_, v) = crtd.get(
            &format!("/v1/events?container={}&logs=true", t.id),
            Some(ALPHA.2),
        );
        v["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["event"] == "end"))
    });
    assert!(ended, "the trace ended");
    let out = crtd
        .crtctl(ALPHA.2, &["trace", "--logs", &t.id])
        .ok()
        .stdout;
    let lines: Vec<&str> = out.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{out}"))
    };
    // In the order they happened (runc cannot notify write itself; the
    // openat of a marker file stands between the lines).
    assert!(at("[stdout] out-one") < at("\"/mark-1\""), "{out}");
    assert!(at("\"/mark-1\"") < at("[stderr] err-one"), "{out}");
    assert!(at("[stderr] err-one") < at("\"/mark-2\""), "{out}");
    assert!(at("\"/mark-2\"") < at("[stdout] out-two"), "{out}");
    // What the container wrote cannot drive the reader's terminal.
    assert!(out.contains("[stdout] \\x1b[31mred"), "{out}");
    assert!(!out.contains('\x1b'), "{out}");
    // Every line is there before the end.
    assert!(
        at("[stdout] out-two") < at("+++ all processes exited +++"),
        "{out}"
    );
    // Without --logs, only syscalls.
    let plain = crtd.crtctl(ALPHA.2, &["trace", &t.id]).ok().stdout;
    assert!(!plain.contains("[stdout]"), "{plain}");
    // As JSON: the stream, the line, the tenant.
    let json = crtctl_json(&crtd, &["trace", "--json", "--logs", &t.id]);
    assert!(
        json.iter().any(|e| e["event"] == "log"
            && e["stream"] == "stderr"
            && e["line"] == "err-one"
            && e["tenant"] == "alpha"),
        "{json:?}"
    );
    // Another tenant cannot read them.
    let (s, _) = crtd.get(
        &format!("/v1/events?container={}&logs=true", t.id),
        Some(BETA.2),
    );
    assert_eq!(s, 404);
}

/// The value of the first metrics line that starts with `prefix`.
fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_carry_the_notify_latency_and_pass_promtool() {
    let crtd = Crtd::start("metrics");
    let t = NsTask::start(
        ALPHA.1,
        &["--annotation", "crt.dev/trace=openat"],
        &[
            "sh",
            "-c",
            "while true; do cat /etc/crt-test-release >/dev/null; sleep 0.05; done",
        ],
    );
    assert!(wait_stored(&crtd, &t.ns, &t.id, 20));
    let labels = format!(
        "{{tenant=\"alpha\",namespace=\"{}\",container=\"{}\"",
        t.ns, t.id
    );
    let count = format!("crt_notify_latency_seconds_count{labels}");
    let mut text = String::new();
    let reported = wait_for(Duration::from_secs(20), || {
        text = crtd.root_get_text("/metrics").1;
        metric(&text, &count).is_some_and(|n| n >= 20.0)
    });
    assert!(reported, "no latency for the container:\n{text}");
    // Every round trip is in some bucket; +Inf holds them all.
    let inf = metric(
        &text,
        &format!("crt_notify_latency_seconds_bucket{labels},le=\"+Inf\"}}"),
    );
    assert_eq!(inf, metric(&text, &count), "{text}");
    let sum = metric(&text, &format!("crt_notify_latency_seconds_sum{labels}")).unwrap();
    assert!(sum > 0.0, "{text}");
    assert!(
        metric(
            &text,
            &format!("crt_syscalls_total{labels},syscall=\"openat\"}}")
        )
        .is_some_and(|n| n >= 20.0),
        "{text}"
    );
    assert!(
        metric(&text, "crt_tenant_syscalls_total{tenant=\"alpha\"}").is_some_and(|n| n >= 20.0),
        "{text}"
    );

    // The exposition is valid, as Prometheus' own checker reads it.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (scripts/setup.sh)");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Tenants do not get the node's metrics.
    let (s, _) = crtd.get("/metrics", Some(ALPHA.2));
    assert_eq!(s, 404);
}
