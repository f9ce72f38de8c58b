//! The CRI path as a kubelet drives it: pods run through containerd's CRI
//! plugin on the `crt` handler (traced and untraced) beside `runc`, with
//! the same results from ExecSync, exits, stops, CRI logs, stats and
//! resource updates; one shim per pod; the sandbox never traced; the
//! RuntimeDefault seccomp profile kept under tracing; nothing left on the
//! node after the pod is removed; and crtd's view of pods by uid.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crt_integration::cri::{
    self, api, parse_log, wait_some, Cri, ExecOut, Pod, CRI_NAMESPACE, HANDLER_CRT, HANDLER_RUNC,
    POD_NAMESPACE,
};
use crt_integration::{crtctl, local_records, shim_id, shim_processes, wait_for};
use serde_json::Value;

use api::security_profile::ProfileType;
use api::ContainerState::{ContainerExited as EXITED, ContainerRunning as RUNNING};

const TRACE: &str = "crt.dev/trace";
const WAIT: Duration = Duration::from_secs(30);
/// Where the shims keep traces (node config default).
const TRACES: &str = "/var/lib/crt/traces";

/// The three ways a pod runs in these tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Variant {
    CrtTraced,
    Crt,
    Runc,
}

const VARIANTS: [Variant; 3] = [Variant::CrtTraced, Variant::Crt, Variant::Runc];

impl Variant {
    /// A pod on this variant's handler; traced pods trace `trace` in every
    /// container (the pod annotation passes through to them).
    fn pod(self, cri: &Cri, prefix: &str, trace: &str) -> Pod {
        let b = cri.pod(prefix);
        match self {
            Variant::CrtTraced => b.handler(HANDLER_CRT).annotation(TRACE, trace),
            Variant::Crt => b.handler(HANDLER_CRT),
            Variant::Runc => b.handler(HANDLER_RUNC),
        }
        .run()
    }
}

/// Runs `f` for every variant at once; the results by variant.
fn each_variant<T: Send>(f: impl Fn(Variant) -> T + Sync) -> BTreeMap<Variant, T> {
    std::thread::scope(|s| {
        let handles: Vec<_> = VARIANTS
            .iter()
            .map(|&v| {
                let f = &f;
                (v, s.spawn(move || f(v)))
            })
            .collect();
        handles
            .into_iter()
            .map(|(v, h)| match h.join() {
                Ok(r) => (v, r),
                Err(e) => std::panic::resume_unwind(e),
            })
            .collect()
    })
}

/// Every variant's result equals runc's.
fn assert_same<T: PartialEq + std::fmt::Debug>(what: &str, results: &BTreeMap<Variant, T>) {
    let runc = &results[&Variant::Runc];
    for (v, r) in results {
        assert_eq!(r, runc, "{what}: {v:?} differs from runc");
    }
}

/// The traced container `id` was traced: its trace exists and holds records.
fn assert_traced(id: &str) {
    let meta = Path::new(TRACES)
        .join(CRI_NAMESPACE)
        .join(id)
        .join("meta.json");
    assert!(meta.exists(), "{} is missing", meta.display());
    assert!(
        wait_for(WAIT, || local_records(CRI_NAMESPACE, id) > 0),
        "no trace records for {id}"
    );
}

fn trace_meta(id: &str) -> Value {
    let p = Path::new(TRACES)
        .join(CRI_NAMESPACE)
        .join(id)
        .join("meta.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

/// A container that reads a file every 0.1 s (for the trace to see) and
/// exits 3 on SIGTERM.
const TERM_EXITS: &str =
    "trap 'echo got TERM; exit 3' TERM; while true; do cat /etc/crt-test-release >/dev/null; sleep 0.1; done";
/// A container that outlives SIGTERM (and says it got it).
const TERM_IGNORED: &str = "trap 'echo ignoring TERM' TERM; while true; do sleep 0.1; done";
/// A container that just waits to be killed.
const IDLE: &str = "while true; do sleep 1; done";

/// How ExecSync ended: its output, or the error's code and message (with
/// the container id taken out).
type ExecResult = Result<ExecOut, (tonic::Code, String)>;

#[derive(Debug, PartialEq)]
struct Lifecycle {
    execs: Vec<ExecResult>,
    /// (state, exit code, reason) of: a container that exited 7 by itself,
    /// one stopped with SIGTERM, one SIGKILLed after the grace period.
    exits: Vec<(i32, i32, String)>,
    /// What the stopped two wrote to their CRI logs.
    said: Vec<Vec<String>>,
}

/// The client; the first call also removes the pods an earlier run killed
/// outright left in [`POD_NAMESPACE`] (a failing test's own are removed by
/// its guard), before any test of this run makes its own.
fn connect() -> Cri {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let cri = Cri::connect();
    SWEPT.call_once(|| {
        let left = cri.remove_pods_in(POD_NAMESPACE);
        if left > 0 {
            eprintln!("removed {left} pod(s) an earlier run left in {POD_NAMESPACE}");
        }
    });
    cri
}

#[test]
fn exec_sync_exits_and_stops_agree_across_crt_traced_crt_and_runc() {
    let cri = connect();
    let results = each_variant(|v| {
        let mut pod = v.pod(&cri, "life", "openat");
        let exits = pod
            .container("exits", &["sh", "-c", "echo bye; exit 7"])
            .start();
        let term = pod.container("term", &["sh", "-c", TERM_EXITS]).start();
        let stubborn = pod
            .container("stubborn", &["sh", "-c", TERM_IGNORED])
            .start();
        cri.wait_state(&term, RUNNING, WAIT);
        cri.wait_state(&stubborn, RUNNING, WAIT);

        let exec = |cmd: &[&str], timeout: u64| -> ExecResult {
            cri.exec_sync(&term, cmd, Duration::from_secs(timeout))
                .map_err(|s| (s.code(), s.message().replace(&term, "<id>")))
        };
        let execs = vec![
            exec(&["sh", "-c", "echo out; echo err >&2; exit 3"], 10),
            exec(&["cat", "/etc/crt-test-release"], 0),
            // Killed after its timeout (as a probe that hangs).
            exec(&["sleep", "30"], 1),
            // The container goes on.
            exec(&["echo", "still here"], 10),
            // Killed by a signal: 128 + 9.
            exec(&["sh", "-c", "kill -9 $$"], 10),
            // A megabyte of output, in full (summarised: its length and
            // whether it is all 'y').
            exec(&["sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' y"], 10).map(|o| ExecOut {
                stdout: format!("{} {}", o.stdout.len(), o.stdout.bytes().all(|b| b == b'y')),
                ..o
            }),
        ];
        if let Err((_, msg)) = &execs[2] {
            assert!(msg.contains("timeout"), "{v:?}: {msg}");
        }
        if v == Variant::CrtTraced {
            assert_traced(&term);
        }

        // Both stops at once: SIGTERM ends one, the other outlasts its 2 s.
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| cri.stop_container(&term, Duration::from_secs(20)));
            let b = s.spawn(|| cri.stop_container(&stubborn, Duration::from_secs(2)));
            (a.join().unwrap(), b.join().unwrap())
        });
        a.unwrap_or_else(|s| panic!("{v:?}: StopContainer {term}: {s}"));
        b.unwrap_or_else(|s| panic!("{v:?}: StopContainer {stubborn}: {s}"));
        let exits = [&exits, &term, &stubborn]
            .iter()
            .map(|id| {
                let s = cri.wait_state(id, EXITED, WAIT);
                assert!(s.finished_at > 0, "{v:?}: {s:?}");
                (s.state, s.exit_code, s.reason)
            })
            .collect();
        let said = ["term", "stubborn"]
            .iter()
            .map(|name| {
                let read = || {
                    let text = std::fs::read_to_string(pod.log_path(name)).unwrap_or_default();
                    parse_log(&text)
                        .into_iter()
                        .map(|l| l.content)
                        .collect::<Vec<_>>()
                };
                // The log may trail the exit by a moment.
                wait_for(Duration::from_secs(5), || !read().is_empty());
                read()
            })
            .collect();
        pod.remove();
        Lifecycle { execs, exits, said }
    });

    let runc = &results[&Variant::Runc];
    let out = |code: i32, stdout: &str, stderr: &str| {
        Ok(ExecOut {
            code,
            stdout: stdout.into(),
            stderr: stderr.into(),
        })
    };
    assert_eq!(runc.execs[0], out(3, "out\n", "err\n"));
    assert_eq!(runc.execs[1], out(0, "crt test image\n", ""));
    assert!(runc.execs[2].is_err(), "{:?}", runc.execs[2]);
    assert_eq!(runc.execs[3], out(0, "still here\n", ""));
    assert_eq!(runc.execs[4], out(137, "", ""));
    assert_eq!(runc.execs[5], out(0, "1048576 true", ""));
    let exited = api::ContainerState::ContainerExited as i32;
    assert_eq!(
        runc.exits,
        [
            (exited, 7, "Error".to_string()),
            (exited, 3, "Error".to_string()),
            (exited, 137, "Error".to_string()),
        ]
    );
    // Each got SIGTERM; the second lived on until SIGKILL.
    assert_eq!(runc.said, [["got TERM"], ["ignoring TERM"]]);
    assert_same("ExecSync results and exits", &results);
}

/// A valid RFC 3339 time with nanoseconds as Go's RFC3339Nano writes it
/// (trailing zeros of the fraction dropped).
fn is_rfc3339_nano(t: &str) -> bool {
    let b = t.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || b[10] != b'T'
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut rest = &t[19..];
    if let Some(f) = rest.strip_prefix('.') {
        let n = f.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=9).contains(&n) {
            return false;
        }
        rest = &f[n..];
    }
    rest == "Z"
        || (rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.as_bytes()[3] == b':')
}

/// (stream, tag, content length) of each line, after checking its time.
fn shape(lines: &[cri::LogLine]) -> Vec<(String, String, usize)> {
    lines
        .iter()
        .map(|l| {
            assert!(is_rfc3339_nano(&l.time), "not an RFC3339Nano time: {l:?}");
            (l.stream.clone(), l.tag.clone(), l.content.len())
        })
        .collect()
}

/// containerd's default `max_container_log_line_size`.
const MAX_LOG_LINE: usize = 16384;
const LONG_LINE: usize = 20000;

#[derive(Debug, PartialEq)]
struct Logs {
    /// The stdout and stderr lines of the first file, each as (stream, tag, length).
    stdout: Vec<(String, String, usize)>,
    stderr: Vec<(String, String, usize)>,
    /// What the file reopened after rotation holds.
    reopened: Vec<(String, String, String)>,
}

#[test]
fn cri_log_files_split_long_lines_and_reopen_alike_on_every_handler() {
    let cri = connect();
    let script = format!(
        "echo hello; echo oops >&2; head -c {LONG_LINE} /dev/zero | tr '\\0' x; echo; \
         while [ ! -e /tmp/go ]; do sleep 0.1; done; echo after; echo after-err >&2; {IDLE}"
    );
    let results = each_variant(|v| {
        let mut pod = v.pod(&cri, "logs", "openat");
        let id = pod.container("log", &["sh", "-c", &script]).start();
        let path = pod.log_path("log");
        let lines = wait_some(
            WAIT,
            &format!("{v:?}: the first lines in {}", path.display()),
            || {
                let lines = parse_log(&std::fs::read_to_string(&path).ok()?);
                let tail_done = lines
                    .iter()
                    .any(|l| l.stream == "stdout" && l.tag == "F" && l.content.len() > 100);
                let err_done = lines.iter().any(|l| l.stream == "stderr");
                (tail_done && err_done).then_some(lines)
            },
        );
        let (out, err): (Vec<_>, Vec<_>) = lines.into_iter().partition(|l| l.stream == "stdout");
        assert_eq!(err.len(), 1, "{v:?}: {err:?}");
        assert_eq!(
            (err[0].tag.as_str(), err[0].content.as_str()),
            ("F", "oops"),
            "{v:?}"
        );
        assert_eq!(
            (out[0].tag.as_str(), out[0].content.as_str()),
            ("F", "hello"),
            "{v:?}"
        );
        // The long line: pieces of at most the maximum, the last one final.
        let pieces = &out[1..];
        let joined: String = pieces.iter().map(|l| l.content.as_str()).collect();
        assert_eq!(joined, "x".repeat(LONG_LINE), "{v:?}: {pieces:?}");
        let tags: Vec<&str> = pieces.iter().map(|l| l.tag.as_str()).collect();
        assert_eq!(tags.last(), Some(&"F"), "{v:?}");
        assert!(
            tags[..tags.len() - 1].iter().all(|t| *t == "P"),
            "{v:?}: {tags:?}"
        );
        assert!(
            pieces.iter().all(|l| l.content.len() <= MAX_LOG_LINE),
            "{v:?}"
        );

        // Rotation as the kubelet does it: rename, then ReopenContainerLog.
        let rotated = PathBuf::from(format!("{}.1", path.display()));
        std::fs::rename(&path, &rotated).unwrap();
        cri.reopen_log(&id)
            .unwrap_or_else(|s| panic!("{v:?}: ReopenContainerLog: {s}"));
        assert!(path.exists(), "{v:?}: {} was not reopened", path.display());
        cri.sh(&id, "touch /tmp/go");
        let reopened = wait_some(
            WAIT,
            &format!("{v:?}: new lines in {}", path.display()),
            || {
                let lines = parse_log(&std::fs::read_to_string(&path).ok()?);
                (lines.len() >= 2).then_some(lines)
            },
        );
        let old = std::fs::read_to_string(&rotated).unwrap();
        assert!(
            !old.contains("after"),
            "{v:?}: the rotated file got new lines: {old}"
        );
        shape(&reopened);
        let mut reopened: Vec<_> = reopened
            .into_iter()
            .map(|l| (l.stream, l.tag, l.content))
            .collect();
        reopened.sort();
        Logs {
            stdout: shape(&out),
            stderr: shape(&err),
            reopened,
        }
    });
    let runc = &results[&Variant::Runc];
    assert_eq!(
        runc.stdout,
        [
            ("stdout".into(), "F".into(), 5),
            ("stdout".into(), "P".into(), MAX_LOG_LINE),
            ("stdout".into(), "F".into(), LONG_LINE - MAX_LOG_LINE),
        ]
    );
    assert_eq!(
        runc.reopened,
        [
            ("stderr".into(), "F".into(), "after-err".into()),
            ("stdout".into(), "F".into(), "after".into()),
        ]
    );
    assert_same("CRI log files", &results);
}

/// The container's memory limit, CPU quota and CPU period as its cgroup
/// shows them from inside (cgroup v1 or v2).
const READ_LIMITS: &str = "if [ -e /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then \
     cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us; \
     else cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max; fi";

fn limits(cri: &Cri, id: &str) -> Vec<String> {
    cri.sh(id, READ_LIMITS)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn stats_and_resource_updates_work_alike_on_every_handler() {
    let cri = connect();
    let memory: i64 = 96 << 20;
    let (quota, period) = (50_000i64, 100_000i64);
    let results = each_variant(|v| {
        let mut pod = v.pod(&cri, "stats", "openat");
        // Some CPU time first, then idle.
        let id = pod
            .container(
                "busy",
                &["sh", "-c", &format!("crt-loop getuid 2000000; {IDLE}")],
            )
            .start();
        let stats = wait_some(
            WAIT,
            &format!("{v:?}: CPU and memory in ContainerStats"),
            || {
                let s = cri.container_stats(&id).ok()?;
                let cpu = s.cpu.as_ref()?.usage_core_nano_seconds.as_ref()?.value;
                let mem = s.memory.as_ref()?.working_set_bytes.as_ref()?.value;
                (cpu > 0 && mem > 0).then_some((cpu, mem))
            },
        );
        let before = limits(&cri, &id);
        cri.update_resources(
            &id,
            api::LinuxContainerResources {
                memory_limit_in_bytes: memory,
                cpu_quota: quota,
                cpu_period: period,
                ..Default::default()
            },
        )
        .unwrap_or_else(|s| panic!("{v:?}: UpdateContainerResources: {s}"));
        let after = limits(&cri, &id);
        assert_ne!(before, after, "{v:?}: the update changed nothing");
        if v == Variant::CrtTraced {
            assert_traced(&id);
        }
        pod.remove();
        (stats.0 > 0, stats.1 > 0, after)
    });
    assert_eq!(
        results[&Variant::Runc].2,
        [memory.to_string(), quota.to_string(), period.to_string()]
    );
    assert_same("stats present and limits after the update", &results);
}

/// Long-lived shim processes (not `start` or `delete` runs) whose `-id` is
/// one of `ids`.
fn shims_of(ids: &[String]) -> Vec<i32> {
    shim_processes("containerd-shim-crt-v2")
        .into_iter()
        .filter(|(_, args)| !args.iter().any(|a| a == "start" || a == "delete"))
        .filter(|(_, args)| shim_id(args).is_some_and(|id| ids.iter().any(|i| i == id)))
        .map(|(pid, _)| pid)
        .collect()
}

fn ppid(pid: i32) -> i32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

#[test]
fn a_pod_of_three_containers_on_crt_runs_one_shim() {
    let cri = connect();
    let mut pod = cri.pod("one-shim").handler(HANDLER_CRT).run();
    let containers: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|n| pod.container(n, &["sh", "-c", IDLE]).start())
        .collect();
    for c in &containers {
        cri.wait_state(c, RUNNING, WAIT);
    }
    let mut ids = containers.clone();
    ids.push(pod.id.clone());
    let shims = shims_of(&ids);
    assert_eq!(shims.len(), 1, "shims for the pod {ids:?}: {shims:?}");
    // Every process of the pod is the shim's child: the sandbox's pause and
    // each container's init.
    for c in &containers {
        let pid = cri.container_pid(c);
        assert_eq!(ppid(pid), shims[0], "container {c} (pid {pid})");
    }
    let address = |id: &str| {
        std::fs::read_to_string(cri::task_dir(id).join("address"))
            .unwrap_or_else(|e| panic!("the shim address of {id}: {e}"))
    };
    let addresses: BTreeSet<String> = ids.iter().map(|id| address(id)).collect();
    assert_eq!(addresses.len(), 1, "{addresses:?}");
    pod.remove();
}

#[test]
fn the_sandbox_is_never_traced_but_its_containers_are() {
    let cri = connect();
    let mut pod = cri
        .pod("sandbox-trace")
        .handler(HANDLER_CRT)
        .annotation(TRACE, "openat")
        .run();
    let containers: Vec<String> = ["a", "b"]
        .iter()
        .map(|n| pod.container(n, &["sh", "-c", TERM_EXITS]).start())
        .collect();
    for c in &containers {
        cri.wait_state(c, RUNNING, WAIT);
        assert_traced(c);
        assert_eq!(trace_meta(c)["annotation"], "openat");
    }
    let sandbox_trace = Path::new(TRACES).join(CRI_NAMESPACE).join(&pod.id);
    assert!(
        !sandbox_trace.exists(),
        "the sandbox was traced: {}",
        sandbox_trace.display()
    );
    pod.remove();
    assert!(!sandbox_trace.exists(), "{}", sandbox_trace.display());
}

/// What a container reports of its seccomp state and whether
/// `unshare(CLONE_NEWUSER)` (denied by the default profile) worked.
const SECCOMP_PROBE: &str =
    "grep '^Seccomp' /proc/self/status; unshare -U true && echo unshare=ok || echo unshare=failed";

#[derive(Debug, PartialEq)]
struct SeccompView {
    runtime_default: ExecOut,
    unconfined: ExecOut,
}

#[test]
fn runtime_default_seccomp_is_kept_when_the_container_is_traced() {
    let cri = connect();
    // The trace asks for unshare too: the profile's denial must win.
    let results = each_variant(|v| {
        let mut pod = v.pod(&cri, "seccomp", "openat,unshare");
        let confined = pod
            .container("confined", &["sh", "-c", TERM_EXITS])
            .seccomp(ProfileType::RuntimeDefault)
            .start();
        let free = pod
            .container("free", &["sh", "-c", TERM_EXITS])
            .seccomp(ProfileType::Unconfined)
            .start();
        cri.wait_state(&confined, RUNNING, WAIT);
        cri.wait_state(&free, RUNNING, WAIT);
        let probe = |id: &str| {
            cri.exec_sync(id, &["sh", "-c", SECCOMP_PROBE], Duration::from_secs(10))
                .unwrap_or_else(|s| panic!("{v:?}: ExecSync: {s}"))
        };
        let view = SeccompView {
            runtime_default: probe(&confined),
            unconfined: probe(&free),
        };
        if v == Variant::CrtTraced {
            for id in [&confined, &free] {
                assert_traced(id);
            }
            let meta = trace_meta(&confined);
            assert_eq!(
                meta["denied_by_profile"],
                serde_json::json!(["unshare"]),
                "{meta}"
            );
            assert_eq!(
                trace_meta(&free)["denied_by_profile"],
                serde_json::json!([])
            );
        }
        pod.remove();
        view
    });
    let field = |out: &ExecOut, key: &str| -> String {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {key} in {out:?}"))
    };
    for (v, view) in &results {
        let d = &view.runtime_default;
        assert_eq!(field(d, "Seccomp:"), "2", "{v:?}: {d:?}");
        assert!(d.stdout.contains("unshare=failed"), "{v:?}: {d:?}");
        assert!(d.stderr.contains("Operation not permitted"), "{v:?}: {d:?}");
        let u = &view.unconfined;
        assert!(u.stdout.contains("unshare=ok"), "{v:?}: {u:?}");
        // Untraced and unconfined: no filter at all; traced: only ours.
        let want = if *v == Variant::CrtTraced { "2" } else { "0" };
        assert_eq!(field(u, "Seccomp:"), want, "{v:?}: {u:?}");
    }
    // The profile stays one filter, as under runc.
    let filters = |v: Variant| field(&results[&v].runtime_default, "Seccomp_filters:");
    assert_eq!(filters(Variant::CrtTraced), filters(Variant::Runc));
    assert_eq!(filters(Variant::Crt), filters(Variant::Runc));
}

/// Lines of our own mount table naming any of `ids`.
fn mounts_of(ids: &[String]) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| ids.iter().any(|id| l.contains(id.as_str())))
        .map(str::to_string)
        .collect()
}

/// The sandbox's network namespace file, from CRI's verbose pod status.
fn netns_of(cri: &Cri, pod: &Pod) -> PathBuf {
    let (_, info) = cri.pod_status(&pod.id);
    let v: Value = serde_json::from_str(info.get("info").map(String::as_str).unwrap_or("{}"))
        .unwrap_or_default();
    let nss = v["runtimeSpec"]["linux"]["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    nss.iter()
        .find(|n| n["type"] == "network")
        .and_then(|n| n["path"].as_str())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no network namespace path in {v}"))
}

/// The listener socket of the shim serving `id`.
fn listener_socket(id: &str) -> PathBuf {
    PathBuf::from(format!(
        "/run/crt/listeners/{}.sock",
        crt_tracer::node_files::listener_name(CRI_NAMESPACE, id)
    ))
}

#[test]
fn nothing_of_a_removed_pod_is_left_on_the_node() {
    let cri = connect();
    let mut pod = cri
        .pod("leftovers")
        .handler(HANDLER_CRT)
        .annotation(TRACE, "openat")
        .run();
    let running = pod.container("running", &["sh", "-c", TERM_EXITS]).start();
    let done = pod
        .container("done", &["sh", "-c", "cat /etc/crt-test-release"])
        .start();
    cri.wait_state(&running, RUNNING, WAIT);
    cri.wait_state(&done, EXITED, WAIT);
    let ids = vec![pod.id.clone(), running.clone(), done.clone()];

    // While it runs, each of these is there (so their absence later means
    // something).
    let shims = shims_of(&ids);
    assert_eq!(shims.len(), 1, "{shims:?}");
    let netns = netns_of(&cri, &pod);
    assert!(netns.exists(), "{}", netns.display());
    let socket = listener_socket(&pod.id);
    assert!(socket.exists(), "no listener socket {}", socket.display());
    let runtime_state = |id: &str| PathBuf::from(format!("/run/crt/runc/{CRI_NAMESPACE}/{id}"));
    let state_file =
        |id: &str| PathBuf::from(format!("/var/lib/crt/containers/{CRI_NAMESPACE}/{id}.json"));
    for id in [&pod.id, &running] {
        assert!(
            runtime_state(id).exists(),
            "{}",
            runtime_state(id).display()
        );
        assert!(state_file(id).exists(), "{}", state_file(id).display());
    }
    assert!(!mounts_of(&ids).is_empty());
    let netns_name = netns.file_name().unwrap().to_string_lossy().into_owned();
    assert!(!mounts_of(std::slice::from_ref(&netns_name)).is_empty());

    pod.remove();

    let shim = shims[0];
    assert!(
        wait_for(Duration::from_secs(10), || !Path::new(&format!(
            "/proc/{shim}"
        ))
        .exists()),
        "the shim {shim} is still running"
    );
    assert!(shims_of(&ids).is_empty());
    for id in &ids {
        assert!(
            !runtime_state(id).exists(),
            "{}",
            runtime_state(id).display()
        );
        assert!(!state_file(id).exists(), "{}", state_file(id).display());
        let bundle = cri::task_dir(id);
        assert!(!bundle.exists(), "{}", bundle.display());
    }
    assert!(!socket.exists(), "{} is left", socket.display());
    assert_eq!(mounts_of(&ids), Vec::<String>::new());
    assert_eq!(mounts_of(&[netns_name]), Vec::<String>::new());
    assert!(!netns.exists(), "{} is left", netns.display());
    // Traces are history: they stay.
    for id in [&running, &done] {
        assert!(Path::new(TRACES)
            .join(CRI_NAMESPACE)
            .join(id)
            .join("meta.json")
            .exists());
    }
}

/// GET over the node crtd's root socket (where the node config, as
/// `crtctl` reads it, puts it): (status, JSON body).
fn crtd_root_get(path: &str) -> (u16, Value) {
    let socket = crt_config::NodeConfig::load_default()
        .expect("the node config")
        .api
        .socket;
    crt_integration::socket_get(&socket, path)
}

fn pods_named(topology: &Value, namespace: &str, name: &str) -> Vec<Value> {
    topology["pods"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["namespace"] == namespace && p["name"] == name)
        .cloned()
        .collect()
}

#[test]
fn crtd_keeps_a_recreated_pod_apart_by_uid_and_remembers_removed_containers() {
    let cri = connect();
    // As a StatefulSet does: the same name and namespace, a new uid.
    let name = cri::unique("web");
    let mut first = cri
        .pod("web")
        .name(&name)
        .handler(HANDLER_CRT)
        .annotation(TRACE, "openat")
        .run();
    let (ns, uid1) = (
        first.config.metadata.clone().unwrap().namespace,
        first.uid.clone(),
    );
    let gone = first
        .container("app", &["sh", "-c", "cat /etc/crt-test-release; exit 3"])
        .start();
    let status = cri.wait_state(&gone, EXITED, WAIT);
    assert_eq!(status.exit_code, 3);
    first.remove();

    let mut second = cri
        .pod("web")
        .name(&name)
        .handler(HANDLER_CRT)
        .annotation(TRACE, "openat")
        .run();
    let uid2 = second.uid.clone();
    assert_ne!(uid1, uid2);
    let now = second.container("app", &["sh", "-c", TERM_EXITS]).start();
    cri.wait_state(&now, RUNNING, WAIT);

    let mut topology = Value::Null;
    let both = wait_for(WAIT, || {
        let (code, t) = crtd_root_get("/v1/topology?all=true");
        topology = t;
        code == 200 && pods_named(&topology, &ns, &name).len() == 2
    });
    let pods = pods_named(&topology, &ns, &name);
    assert!(
        both,
        "pod {ns}/{name} is not two pods in crtd's topology: {pods:#?}"
    );
    let uids: BTreeSet<&str> = pods.iter().filter_map(|p| p["uid"].as_str()).collect();
    assert_eq!(
        uids,
        BTreeSet::from([uid1.as_str(), uid2.as_str()]),
        "{pods:#?}"
    );
    // Each pod holds its own container (beside its sandbox).
    let of = |uid: &str| -> Vec<String> {
        pods.iter()
            .filter(|p| p["uid"] == uid)
            .flat_map(|p| p["containers"].as_array().cloned().unwrap_or_default())
            .filter(|c| c["kubernetes"]["container_type"] != "sandbox")
            .filter_map(|c| c["id"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(of(&uid1), vec![gone.clone()]);
    assert_eq!(of(&uid2), vec![now.clone()]);

    // The removed container's end stays: in the API ...
    let c = pods
        .iter()
        .flat_map(|p| p["containers"].as_array().cloned().unwrap_or_default())
        .find(|c| c["id"] == gone.as_str())
        .unwrap();
    assert_eq!(c["exit_code"], 3, "{c:#}");
    assert!(
        c["exited"].as_str().is_some_and(|t| !t.is_empty()),
        "no end time: {c:#}"
    );
    // ... and in `crtctl ps -a`, as root over the socket.
    let ps = crtctl(&["ps", "-a"]).ok().stdout;
    let line = ps
        .lines()
        .find(|l| l.contains(&gone))
        .unwrap_or_else(|| panic!("{gone} is not in crtctl ps -a:\n{ps}"));
    assert!(line.contains("gone 3"), "{line}");
    let json: Value = serde_json::from_str(&crtctl(&["ps", "-a", "--json"]).ok().stdout).unwrap();
    let c = pods_named(&json, &ns, &name)
        .iter()
        .flat_map(|p| p["containers"].as_array().cloned().unwrap_or_default())
        .find(|c| c["id"] == gone.as_str())
        .unwrap_or_else(|| panic!("{gone} is not in crtctl ps -a --json"));
    assert_eq!(c["exit_code"], 3, "{c:#}");
    assert!(c["exited"].as_str().is_some_and(|t| !t.is_empty()), "{c:#}");
    second.remove();
}
