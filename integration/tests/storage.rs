//! Nothing lost silently: a store disk that fills up, and a crtd that falls
//! so far behind that the shim's bounded trace deleted what it had not yet
//! stored. The traced program never notices; crtd says what happened, once,
//! catches up when it can, and marks in the history exactly what is gone.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crt_integration::*;

const ALPHA: (&str, &str, &str) = TENANTS[0];
const CALLS: u64 = 200_000;

fn flood(id: &str, log: &Path, calls: u64, extra: &[&str]) {
    flood_in(ALPHA.1, id, log, calls, extra);
}

fn go(id: &str) {
    flood_go(ALPHA.1, id);
}

fn stopped(id: &str) -> bool {
    run_in(ALPHA.1, &["task", "ls"])
        .stdout
        .lines()
        .any(|l| l.split_whitespace().next() == Some(id) && l.contains("STOPPED"))
}

fn remove(id: &str) {
    let _ = run_in(ALPHA.1, &["task", "rm", "-f", id]);
    let _ = run_in(ALPHA.1, &["container", "rm", id]);
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_full_store_disk_loses_nothing_says_so_once_and_catches_up_when_space_returns() {
    let mut disk = None;
    let crtd = Crtd::start_prepared("full-disk", "", |dir| {
        disk = Some(Tmpfs::mount(&dir.join("store"), "2m"));
    });
    let disk = disk.unwrap();
    let id = id("full-disk");
    let log = crtd.dir.join("flood.log");
    flood(&id, &log, CALLS, &[]);
    go(&id);

    // The store fills up: crtd says so in the container's view and metrics.
    let view = || crtd.root_get(&format!("/v1/containers/{}/{id}", ALPHA.1)).1;
    let mut v = serde_json::Value::Null;
    assert!(
        wait_for(Duration::from_secs(60), || {
            v = view();
            v["storing"]["ok"] == false
        }),
        "crtd never said it could not store: {v}\n{}",
        crtd.log()
    );
    assert!(
        v["storing"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("No space left")),
        "{v}"
    );
    assert!(wait_for(Duration::from_secs(120), || stopped(&id)));
    // The traced program noticed nothing.
    assert_flood_complete(&log, CALLS);
    let (_, metrics) = crtd.root_get_text("/metrics");
    assert!(
        metric(&metrics, "crtd_store_blocked_streams").is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    // Retries go on for a while, logged once.
    std::thread::sleep(Duration::from_secs(3));

    // Space comes back: every record the shim kept reaches the history.
    disk.resize("512m");
    let want = local_records(ALPHA.1, &id);
    assert!(want > CALLS, "the shim recorded {want} records");
    assert!(
        wait_for(Duration::from_secs(90), || crtd.stored(ALPHA.1, &id)
            == want),
        "crtd stored {} of {want} records once space came back\n{}",
        crtd.stored(ALPHA.1, &id),
        crtd.log()
    );
    assert_eq!(view()["storing"]["ok"], true);
    let (_, metrics) = crtd.root_get_text("/metrics");
    assert!(
        metric(&metrics, "crtd_store_write_failures_total").is_some_and(|n| n >= 2.0),
        "{metrics}"
    );
    // Every trace it could not store (other tests' too) is stored again.
    assert!(
        wait_for(Duration::from_secs(30), || {
            let (_, m) = crtd.root_get_text("/metrics");
            metric(&m, "crtd_store_blocked_streams") == Some(0.0)
        }),
        "{}",
        crtd.log()
    );
    // Once when it began and once when it ended, not at every retry nor
    // for every stream that waited.
    let text = crtd.log();
    let said = text.lines().filter(|l| l.contains("No space left")).count();
    assert_eq!(said, 1, "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("takes events again"))
            .count(),
        1,
        "{text}"
    );
    assert!(text.lines().count() < 20, "{text}");
    remove(&id);
}

#[test]
fn events_the_shim_deleted_while_crtd_was_stopped_are_marked_as_a_gap_with_their_count() {
    let crtd = Crtd::start("gap");
    // A small trace bound, so the shim deletes what crtd has not read.
    let cfg = write_config(
        "small-trace.toml",
        "[trace]\nmax_trace_bytes = \"1MiB\"\nsegment_bytes = \"64KiB\"\n",
    );
    let id = id("gap");
    let log = crtd.dir.join("flood.log");
    flood(&id, &log, CALLS, &["--runtime-config-path", &cfg]);
    go(&id);
    std::thread::sleep(Duration::from_millis(300));
    let pid = crtd.pid().to_string();
    run(Command::new("kill").args(["-STOP", &pid]), None).ok();
    let finished = wait_for(Duration::from_secs(120), || stopped(&id));
    run(Command::new("kill").args(["-CONT", &pid]), None).ok();
    assert!(finished);
    assert_flood_complete(&log, CALLS);

    // Once crtd has read the rest, its history says what is missing.
    let events = |q: &str| {
        let (s, v) = crtd.root_get(&format!("/v1/events?container={id}&{q}"));
        assert_eq!(s, 200, "{v}");
        v["events"].as_array().cloned().unwrap_or_default()
    };
    let mut gaps = Vec::new();
    assert!(
        wait_for(Duration::from_secs(60), || {
            // Syscalls no one made: only the markers come back.
            let all = events("syscall=reboot&limit=1000");
            gaps = all
                .iter()
                .filter(|e| e["event"] == "gap")
                .cloned()
                .collect();
            all.iter().any(|e| e["event"] == "end")
        }),
        "crtd did not reach the end of the trace\n{}",
        crtd.log()
    );
    assert!(!gaps.is_empty(), "no gap marker");
    let lost: u64 = gaps.iter().map(|g| g["lost"].as_u64().unwrap()).sum();
    for g in &gaps {
        assert_eq!(g["exact"], true, "{g}");
        assert!(g["from"].is_string() && g["to"].is_string(), "{g}");
        assert!(g["from"].as_str() <= g["to"].as_str(), "{g}");
        assert_eq!(g["tenant"], "alpha", "{g}");
    }
    // Every openat is either in the history or counted in a gap.
    let (_, metrics) = crtd.root_get_text("/metrics");
    let stored_openat = metrics
        .lines()
        .find(|l| l.contains(&format!("container=\"{id}\"")) && l.contains("syscall=\"openat\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        lost > CALLS / 2,
        "lost {lost}: the bound should have cut most"
    );
    let accounted = lost + stored_openat;
    assert!(
        (CALLS..=CALLS + 500).contains(&accounted),
        "{lost} lost + {stored_openat} stored = {accounted}, for {CALLS} openat calls"
    );
    // crtctl shows it where it happened.
    let out = crtd.crtctl(ALPHA.2, &["trace", &id, "--syscall", "reboot"]);
    assert!(out.stdout.contains("gap:"), "{out:?}");
    remove(&id);
}

/// Writes a finished trace of `events` openat records for `ns/id` the way a
/// shim does, under `state/traces/`.
fn synthetic_trace(state: &Path, ns: &str, id: &str, events: u64) {
    use crt_tracer::record::{self, RecordBuilder, KIND_END, KIND_SYSCALL};
    use crt_tracer::segment::{Limits, SegmentWriter};
    use crt_tracer::syscalls::NATIVE_AUDIT_ARCH;
    let dir = state.join("traces").join(ns).join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let start = crt_tracer::render::now_ns();
    let mut w = SegmentWriter::create(&dir, Limits::default()).unwrap();
    let mut batch = Vec::new();
    for i in 0..events {
        let mut r = RecordBuilder::begin(
            &mut batch,
            KIND_SYSCALL,
            start + i,
            1,
            NATIVE_AUDIT_ARCH,
            257,
            &[0; 6],
        );
        r.bytes(1, b"/etc/hosts", false);
        r.finish();
    }
    batch.extend(record::simple(KIND_END, start + events, 0, &[0; 6], b""));
    w.append(&batch).unwrap();
    w.sync().unwrap();
    let meta = serde_json::json!({
        "namespace": ns,
        "container": id,
        "annotation": "openat",
        "created": crt_tracer::render::rfc3339_utc(start),
        "shim_pid": 0,
        "kubernetes": null,
    });
    std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
}

#[test]
fn hundreds_of_stored_containers_hold_no_file_open_each() {
    // More containers than crtd may open files: each must still be stored,
    // and crtd must still answer.
    const CONTAINERS: usize = 300;
    let crtd = Crtd::start_custom(
        "fds",
        |dir| {
            let state = dir.join("state");
            for i in 0..CONTAINERS {
                synthetic_trace(&state, ALPHA.1, &format!("c{i:03}"), 50);
            }
            format!("[trace]\nstate_dir = \"{}\"\n", state.display())
        },
        Some(128),
    );
    let mut v = serde_json::Value::Null;
    let all_stored = wait_for(Duration::from_secs(60), || {
        let (s, got) = crtd.get("/v1/containers", Some(ALPHA.2));
        v = got;
        s == 200
            && v["containers"].as_array().is_some_and(|cs| {
                cs.len() == CONTAINERS && cs.iter().all(|c| c["events_stored"] == 51)
            })
    });
    let stored = v["containers"]
        .as_array()
        .map(|cs| cs.iter().filter(|c| c["events_stored"] == 51).count())
        .unwrap_or(0);
    assert!(
        all_stored,
        "{stored} of {CONTAINERS} containers stored whole\n{}",
        crtd.log()
    );
    let fds = std::fs::read_dir(format!("/proc/{}/fd", crtd.pid()))
        .unwrap()
        .count();
    assert!(fds < 64, "crtd holds {fds} open files");
    // Still serving.
    let (s, _) = crtd.get("/v1/events?container=c007&limit=5", Some(ALPHA.2));
    assert_eq!(s, 200);
}

#[test]
fn a_deleted_containers_exit_code_and_end_stay_in_its_history_traced_or_not() {
    let crtd = Crtd::start("ended");
    // As CRI does: the task goes the moment it exits, then the container.
    let traced = id("ended-traced");
    let plain = id("ended-plain");
    for (id, extra) in [
        (&traced, vec!["--annotation", "crt.dev/trace=openat"]),
        (&plain, vec![]),
    ] {
        let mut args = vec!["run", "--rm", "--runtime", CRT];
        args.extend(extra);
        args.extend([
            IMAGE,
            id.as_str(),
            "sh",
            "-c",
            "cat /etc/crt-test-release; exit 3",
        ]);
        let out = run_in(ALPHA.1, &args);
        assert_eq!(out.code, 3, "{out:?}");
    }
    for id in [&traced, &plain] {
        let mut c = serde_json::Value::Null;
        assert!(
            wait_for(Duration::from_secs(20), || {
                let (s, v) = crtd.get(&format!("/v1/containers/{}/{id}", ALPHA.1), Some(ALPHA.2));
                c = v;
                s == 200 && c["exit_code"] == 3
            }),
            "{id}: {c}\n{}",
            crtd.log()
        );
        assert_eq!(c["status"], "gone", "{c}");
        assert!(c["exited"].is_string(), "{c}");
    }
    // crtctl ps -a says how they ended; a restarted crtd still knows.
    let out = crtd.crtctl(ALPHA.2, &["ps", "-a"]).ok().stdout;
    assert!(
        out.lines()
            .any(|l| l.contains(&plain) && l.contains("gone 3")),
        "{out}"
    );
    let mut crtd = crtd;
    crtd.restart();
    let (_, v) = crtd.get(
        &format!("/v1/containers/{}/{plain}", ALPHA.1),
        Some(ALPHA.2),
    );
    assert_eq!(v["exit_code"], 3, "{v}");
}

#[test]
fn a_second_crtd_on_the_same_store_or_socket_exits_at_once_naming_the_first() {
    let crtd = Crtd::start("twice");
    let second = |config: &Path| {
        run(
            Command::new("timeout")
                .arg("10")
                .arg("crtd")
                .arg("--config")
                .arg(config),
            None,
        )
    };
    // The same config: the same store, the same socket.
    let out = second(&crtd.config);
    assert_ne!(out.code, 0, "{out:?}");
    assert_ne!(out.code, 124, "it did not exit at once: {out:?}");
    assert!(
        out.stderr.contains(&format!("crtd pid {}", crtd.pid())),
        "{out:?}"
    );
    // Another store, the same socket: the first one still listens there.
    let other = crtd.dir.join("other.toml");
    let text = std::fs::read_to_string(&crtd.config)
        .unwrap()
        .replace(
            &format!("dir = \"{}\"", crtd.dir.join("store").display()),
            &format!("dir = \"{}\"", crtd.dir.join("store2").display()),
        )
        .replace(&format!(":{}\"", crtd.port), ":0\"");
    std::fs::write(&other, text).unwrap();
    let out = second(&other);
    assert_ne!(out.code, 0, "{out:?}");
    assert_ne!(out.code, 124, "it did not exit at once: {out:?}");
    assert!(out.stderr.contains("already"), "{out:?}");
    // And the first one still answers on it.
    let (s, _) = crtd.root_get("/v1/whoami");
    assert_eq!(s, 200);
}
