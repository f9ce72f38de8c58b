//! Debug clones end to end: `crtctl debug` against a crtd of the test's own,
//! real containerd 1.6 and the crt runtime over runc and crun.

use std::process::Command;
use std::time::Duration;

use crt_integration::*;

const ALPHA: (&str, &str, &str) = TENANTS[0];
const BETA: (&str, &str, &str) = TENANTS[1];

/// A container that writes a growing counter to /counter 20 times a second.
fn counter(runtime: &str) -> NsTask {
    let rt = runtime_args(runtime);
    let mut extra: Vec<&str> = rt.iter().map(String::as_str).collect();
    extra.extend(["--annotation", "crt.dev/trace=openat"]);
    let t = NsTask::start(
        ALPHA.1,
        &extra,
        &[
            "sh",
            "-c",
            "echo base > /kept; i=0; while true; do i=$((i+1)); echo $i > /counter; sleep 0.05; done",
        ],
    );
    assert!(wait_for(Duration::from_secs(10), || read_in(
        &t.ns, &t.id, "/counter"
    )
    .is_some_and(|n| n > 2)));
    t
}

/// A number a container holds in a file, read through an exec.
fn read_in(ns: &str, id: &str, file: &str) -> Option<u64> {
    exec_in(ns, id, &["cat", file]).stdout.trim().parse().ok()
}

fn exec_in(ns: &str, id: &str, cmd: &[&str]) -> Out {
    let exec_id = id_for("x");
    let mut args = vec!["task", "exec", "--exec-id", &exec_id, id];
    args.extend_from_slice(cmd);
    run_in(ns, &args)
}

fn id_for(prefix: &str) -> String {
    id(prefix)
}

/// Whatever a test leaves of a clone goes, even when it fails.
struct CloneGuard {
    ns: String,
    id: String,
}

impl Drop for CloneGuard {
    fn drop(&mut self) {
        let _ = run_in(&self.ns, &["task", "rm", "-f", &self.id]);
        let _ = run_in(&self.ns, &["container", "rm", &self.id]);
        let _ = run_in(&self.ns, &["snapshot", "rm", &self.id]);
    }
}

fn debug_json(crtd: &Crtd, token: &str, args: &[&str]) -> (Out, serde_json::Value) {
    let mut all = vec!["debug", "--json"];
    all.extend_from_slice(args);
    let out = crtd.crtctl(token, &all);
    let v = serde_json::from_str(out.stdout.trim()).unwrap_or(serde_json::Value::Null);
    (out, v)
}

fn containerd_has(ns: &str, what: &str, id: &str) -> bool {
    run_in(ns, &[what, "ls", "-q"])
        .stdout
        .lines()
        .any(|l| l.split_whitespace().next() == Some(id))
}

fn a_clone_keeps_the_files_of_the_freeze_while_its_source_goes_on(runtime: &str) {
    let crtd = Crtd::start(&format!("debug-{runtime}"));
    let src = counter(runtime);
    let (out, v) = debug_json(&crtd, ALPHA.2, &[&src.id]);
    assert_eq!(out.code, 0, "{out:?}");
    let clone = v["id"].as_str().expect("the clone's id").to_string();
    let _guard = CloneGuard {
        ns: src.ns.clone(),
        id: clone.clone(),
    };
    assert_eq!(v["source"], src.id.as_str());
    let freeze_ms = v["freeze_ms"].as_f64().unwrap();
    assert!(freeze_ms > 0.0, "{v}");
    // The clone holds what the source had written by the freeze, and keeps it.
    let at_clone = read_in(&src.ns, &clone, "/counter").expect("the clone has the counter");
    assert_eq!(
        exec_in(&src.ns, &clone, &["cat", "/kept"]).stdout.trim(),
        "base"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(read_in(&src.ns, &clone, "/counter"), Some(at_clone));
    // The source went on counting: it was not left frozen.
    let later = read_in(&src.ns, &src.id, "/counter").unwrap();
    assert!(later > at_clone + 3, "source {later}, clone {at_clone}");
    // A change in the clone stays in the clone.
    assert_eq!(
        exec_in(&src.ns, &clone, &["sh", "-c", "echo fixed > /kept"]).code,
        0
    );
    assert_eq!(
        exec_in(&src.ns, &src.id, &["cat", "/kept"]).stdout.trim(),
        "base"
    );
    // Its network is its own: loopback only.
    let dev = exec_in(&src.ns, &clone, &["cat", "/proc/net/dev"]).stdout;
    let ifaces: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(ifaces, ["lo"], "{dev}");
    // It is traced as its source is: what runs in it shows in its history.
    assert_eq!(
        exec_in(&src.ns, &clone, &["cat", "/etc/crt-test-release"]).code,
        0
    );
    assert!(wait_for(Duration::from_secs(20), || {
        crtd.crtctl(ALPHA.2, &["trace", "--grep", "crt-test-release", &clone])
            .stdout
            .contains("\"/etc/crt-test-release\"")
    }));
    // Shown as a clone of its source in the tenant's topology.
    assert!(wait_for(Duration::from_secs(10), || {
        crtd.crtctl(ALPHA.2, &["ps"])
            .stdout
            .contains(&format!("(clone of {}/{})", src.ns, src.id))
    }));
    // Listed as a clone of its source; removed with everything of it.
    let ls = crtd.crtctl(ALPHA.2, &["debug", "ls"]);
    assert!(
        ls.stdout
            .lines()
            .any(|l| l.contains(&clone) && l.contains(&src.id) && l.contains("running")),
        "{ls:?}"
    );
    let rm = crtd.crtctl(ALPHA.2, &["debug", "rm", &clone]);
    assert_eq!(rm.code, 0, "{rm:?}");
    assert!(!containerd_has(&src.ns, "container", &clone));
    assert!(!containerd_has(&src.ns, "snapshot", &clone));
    let audit = std::fs::read_to_string(crtd.dir.join("store/audit.jsonl")).unwrap();
    let actions: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(actions
        .iter()
        .any(|a| a["action"] == "debug" && a["tenant"] == "alpha" && a["outcome"] == "ok"));
    assert!(actions
        .iter()
        .any(|a| a["action"] == "debug rm" && a["container"] == clone.as_str()));
}

#[test]
fn a_clone_keeps_the_files_of_the_freeze_while_its_source_goes_on_runc() {
    a_clone_keeps_the_files_of_the_freeze_while_its_source_goes_on("runc");
}

#[test]
fn a_clone_keeps_the_files_of_the_freeze_while_its_source_goes_on_crun() {
    a_clone_keeps_the_files_of_the_freeze_while_its_source_goes_on("crun");
}

#[test]
fn another_tenant_can_neither_clone_nor_see_nor_remove_a_clone() {
    let crtd = Crtd::start("debug-tenants");
    let src = counter("runc");
    let (out, v) = debug_json(&crtd, ALPHA.2, &[&src.id]);
    assert_eq!(out.code, 0, "{out:?}");
    let clone = v["id"].as_str().unwrap().to_string();
    let _guard = CloneGuard {
        ns: src.ns.clone(),
        id: clone.clone(),
    };
    // Beta, naming alpha's namespace outright: not found, as if absent.
    let (code, body) = crtd.request(
        "POST",
        &format!("/v1/containers/{}/{}/clones", src.ns, src.id),
        Some(BETA.2),
    );
    assert_eq!(code, 404, "{body}");
    let (code, body) = crtd.request(
        "DELETE",
        &format!("/v1/clones/{}/{clone}", src.ns),
        Some(BETA.2),
    );
    assert_eq!(code, 404, "{body}");
    let (code, body) = crtd.request("GET", "/v1/clones", Some(BETA.2));
    assert_eq!(code, 200);
    assert_eq!(body["clones"], serde_json::json!([]), "{body}");
    // The source itself cannot be removed as a clone, even by its owner.
    let (code, _) = crtd.request(
        "DELETE",
        &format!("/v1/clones/{}/{}", src.ns, src.id),
        Some(ALPHA.2),
    );
    assert_eq!(code, 404);
    assert!(containerd_has(&src.ns, "container", &clone));
    assert!(containerd_has(&src.ns, "container", &src.id));
    // Bad input is named.
    let (code, body) = crtd.request(
        "POST",
        &format!("/v1/containers/{}/{}/clones?ttl=9y", src.ns, src.id),
        Some(ALPHA.2),
    );
    assert_eq!(code, 400);
    assert!(
        body["error"].as_str().unwrap().contains("ttl=\"9y\""),
        "{body}"
    );
    let audit = std::fs::read_to_string(crtd.dir.join("store/audit.jsonl")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"tenant\":\"beta\"") && l.contains("failed (404)")),
        "{audit}"
    );
}

#[test]
fn a_clone_ends_at_its_ttl_with_everything_of_it() {
    let crtd = Crtd::start("debug-ttl");
    let src = counter("runc");
    let (out, v) = debug_json(&crtd, ALPHA.2, &["--ttl", "10s", &src.id]);
    assert_eq!(out.code, 0, "{out:?}");
    let clone = v["id"].as_str().unwrap().to_string();
    let _guard = CloneGuard {
        ns: src.ns.clone(),
        id: clone.clone(),
    };
    assert!(containerd_has(&src.ns, "container", &clone));
    let cgroup = format!("/sys/fs/cgroup/memory/{}/{clone}", src.ns);
    assert!(
        wait_for(Duration::from_secs(40), || !containerd_has(
            &src.ns,
            "container",
            &clone
        )),
        "the clone outlived its TTL"
    );
    assert!(!containerd_has(&src.ns, "snapshot", &clone));
    assert!(!std::path::Path::new(&cgroup).exists(), "{cgroup} is left");
    // The source is untouched.
    assert_eq!(task_status_in(&src.ns, &src.id).as_deref(), Some("RUNNING"));
}

fn task_status_in(ns: &str, id: &str) -> Option<String> {
    run_in(ns, &["task", "ls"])
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
}

#[test]
fn crtd_killed_while_the_source_is_frozen_leaves_it_running() {
    let mut crtd = Crtd::start("debug-kill");
    // crtd keeps the source frozen 20 s after its copy: time to kill it there.
    crtd.restart_with_env("CRTD_TEST_HOLD_FROZEN_MS", "20000");
    let src = counter("runc");
    let pid = src_pid(&src);
    let freezer = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .find_map(|l| l.split_once(":freezer:").map(|(_, p)| p.to_string()))
        .expect("a v1 freezer");
    let state = format!("/sys/fs/cgroup/freezer{freezer}/freezer.state");
    let clone = id_for("killed-clone");
    let _guard = CloneGuard {
        ns: src.ns.clone(),
        id: clone.clone(),
    };
    let debug = {
        let (server, id, name) = (crtd.server(), src.id.clone(), clone.clone());
        std::thread::spawn(move || {
            run(
                Command::new("crtctl")
                    .env("CRT_TOKEN", ALPHA.2)
                    .env("CRT_SERVER", server)
                    .args(["debug", "--name", &name, &id]),
                None,
            )
        })
    };
    assert!(
        wait_for(Duration::from_secs(15), || std::fs::read_to_string(&state)
            .is_ok_and(|s| s.trim() == "FROZEN")),
        "the source was never frozen"
    );
    crtd.kill();
    // Its guard thaws it at once.
    assert!(
        wait_for(Duration::from_secs(2), || std::fs::read_to_string(&state)
            .is_ok_and(|s| s.trim() == "THAWED")),
        "the source stayed frozen after crtd died"
    );
    let before = read_in(&src.ns, &src.id, "/counter").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(read_in(&src.ns, &src.id, "/counter").unwrap() > before);
    let out = debug.join().unwrap();
    assert_ne!(out.code, 0, "the clone did not complete: {out:?}");
}

fn src_pid(t: &NsTask) -> i32 {
    run_in(&t.ns, &["task", "ls"])
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(t.id.as_str()))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .expect("the source's pid")
}
