//! Without a trace annotation, io.containerd.crt.v2 behaves like
//! containerd's own io.containerd.runc.v2: every scenario runs under both and
//! the results are compared.

use std::process::Command;
use std::time::Duration;

use crt_integration::*;

/// Runs `f` once per runtime and checks both give the same result.
fn same_under_both<T: PartialEq + std::fmt::Debug>(f: impl Fn(&str) -> T) -> T {
    let runc = f(RUNC_V2);
    let crt = f(CRT);
    assert_eq!(
        crt, runc,
        "io.containerd.crt.v2 differs from io.containerd.runc.v2"
    );
    crt
}

#[test]
fn stdout_stderr_and_the_exit_code_match_runc() {
    let (code, out, err) = same_under_both(|rt| {
        let o = ctr(&[
            "run",
            "--rm",
            "--runtime",
            rt,
            IMAGE,
            &id("io"),
            "sh",
            "-c",
            "echo out; echo err >&2; exit 7",
        ]);
        (o.code, o.stdout, o.stderr)
    });
    assert_eq!((code, out.as_str(), err.as_str()), (7, "out\n", "err\n"));
}

#[test]
fn stdin_reaches_the_container_and_eof_ends_it() {
    let out = same_under_both(|rt| {
        let o = ctr_stdin(
            &["run", "--rm", "--runtime", rt, IMAGE, &id("stdin"), "cat"],
            b"line one\nline two\n",
        );
        (o.code, o.stdout)
    });
    assert_eq!(out, (0, "line one\nline two\n".to_string()));
}

#[test]
fn large_output_is_delivered_whole() {
    let out = same_under_both(|rt| {
        let o = ctr(&[
            "run",
            "--rm",
            "--runtime",
            rt,
            IMAGE,
            &id("big"),
            "sh",
            "-c",
            "seq 1 200000",
        ]);
        (
            o.code,
            o.stdout.len(),
            o.stdout.lines().last().map(str::to_string),
        )
    });
    assert_eq!(out.2.as_deref(), Some("200000"));
}

#[test]
fn a_tty_is_a_real_terminal_sized_like_the_clients_with_the_exit_code_kept() {
    let out = same_under_both(|rt| {
        // ctr -t needs a terminal of its own: script(1) provides one, sized
        // 33x101 so the container's terminal must be resized (ResizePty).
        let cmd = format!(
            "stty rows 33 cols 101; ctr -n {NS} run -t --rm --runtime {rt} {IMAGE} {} sh -c 'tty; [ -t 0 ] && echo stdin-is-tty; sleep 0.3; stty size; exit 5'",
            id("tty")
        );
        let o = run(
            Command::new("script").args(["-qec", &cmd, "/dev/null"]),
            None,
        );
        let text = o.stdout.replace('\r', "");
        (
            o.code,
            text.contains("/dev/pts/"),
            text.contains("stdin-is-tty"),
            text.contains("33 101"),
        )
    });
    assert_eq!(out, (5, true, true, true));
}

#[test]
fn exec_gets_its_own_output_stdin_and_exit_code() {
    let out = same_under_both(|rt| {
        let t = Task::start(rt, &[], &["sleep", "300"]);
        let a = t.exec(
            "e1",
            &["sh", "-c", "echo in-exec; echo exec-err >&2; exit 4"],
        );
        let b = ctr_stdin(
            &["task", "exec", "--exec-id", "e2", &t.id, "cat"],
            b"piped\n",
        );
        let status = t.status();
        (a.code, a.stdout, a.stderr, b.code, b.stdout, status)
    });
    assert_eq!(out.0, 4);
    assert_eq!(out.1, "in-exec\n");
    assert_eq!(out.4, "piped\n");
    assert_eq!(out.5.as_deref(), Some("RUNNING"));
}

#[test]
fn exec_with_a_tty() {
    let out = same_under_both(|rt| {
        let t = Task::start(rt, &[], &["sleep", "300"]);
        let cmd = format!(
            "ctr -n {NS} task exec -t --exec-id et {} sh -c 'tty; exit 3'",
            t.id
        );
        let o = run(
            Command::new("script").args(["-qec", &cmd, "/dev/null"]),
            None,
        );
        (o.code, o.stdout.contains("/dev/pts/"))
    });
    assert_eq!(out, (3, true));
}

#[test]
fn kill_delivers_the_signal_and_the_exit_status_follows() {
    let out = same_under_both(|rt| {
        let id = id("kill");
        // The shell traps TERM, so the status tells the signal arrived.
        let child = spawn_ctr(&[
            "run",
            "--rm",
            "--runtime",
            rt,
            IMAGE,
            &id,
            "sh",
            "-c",
            "trap 'echo got-term; exit 42' TERM; while true; do sleep 0.1; done",
        ]);
        assert!(wait_for(Duration::from_secs(20), || task_status(&id)
            .as_deref()
            == Some("RUNNING")));
        std::thread::sleep(Duration::from_millis(300));
        ctr(&["task", "kill", "-s", "SIGTERM", &id]).ok();
        let o = finish(child);
        (o.code, o.stdout)
    });
    assert_eq!(out, (42, "got-term\n".to_string()));
}

#[test]
fn sigkill_gives_137() {
    let code = same_under_both(|rt| {
        let id = id("k9");
        let child = spawn_ctr(&["run", "--rm", "--runtime", rt, IMAGE, &id, "sleep", "300"]);
        assert!(wait_for(Duration::from_secs(20), || task_status(&id)
            .as_deref()
            == Some("RUNNING")));
        ctr(&["task", "kill", "-s", "SIGKILL", &id]).ok();
        finish(child).code
    });
    assert_eq!(code, 137);
}

#[test]
fn kill_all_reaches_every_process() {
    let out = same_under_both(|rt| {
        let t = Task::start(rt, &[], &["sh", "-c", "sleep 300 & sleep 300 & wait"]);
        assert!(wait_for(Duration::from_secs(10), || {
            ctr(&["task", "ps", &t.id]).stdout.lines().count() >= 4
        }));
        ctr(&["task", "kill", "-a", "-s", "SIGKILL", &t.id]).ok();
        wait_for(Duration::from_secs(10), || {
            t.status().as_deref() == Some("STOPPED")
        })
    });
    assert!(out);
}

#[test]
fn pause_and_resume_freeze_and_thaw_the_container() {
    let out = same_under_both(|rt| {
        let t = Task::start(
            rt,
            &[],
            &[
                "sh",
                "-c",
                "while true; do date +%s%N > /tmp/tick; sleep 0.05; done",
            ],
        );
        ctr(&["task", "pause", &t.id]).ok();
        let paused = t.status();
        let a = t.exec("r1", &["cat", "/tmp/tick"]);
        std::thread::sleep(Duration::from_millis(300));
        ctr(&["task", "resume", &t.id]).ok();
        let resumed = t.status();
        std::thread::sleep(Duration::from_millis(300));
        let b = t.exec("r2", &["cat", "/tmp/tick"]).ok();
        (paused, resumed, a.code != 0 || a.stdout != b.stdout)
    });
    assert_eq!(
        out,
        (
            Some("PAUSED".to_string()),
            Some("RUNNING".to_string()),
            true
        )
    );
}

#[test]
fn an_exec_refused_by_the_runtime_releases_its_waiter_and_the_shim_exits_with_the_container() {
    let t = Task::start(CRT, &[], &["sleep", "300"]);
    let id = t.id.clone();
    ctr(&["task", "pause", &id]).ok();
    // runc refuses to exec in a paused container; ctr waits on the exec
    // before starting it.
    let refused = t.exec("r1", &["true"]);
    assert_ne!(refused.code, 0, "{refused:?}");
    ctr(&["task", "resume", &id]).ok();
    drop(t);
    assert!(
        wait_for(Duration::from_secs(10), || shim_pids(
            "containerd-shim-crt-v2",
            &id
        )
        .is_empty()),
        "the shim of {id} is still running after the container was removed"
    );
}

#[test]
fn ps_lists_the_containers_processes() {
    let n = same_under_both(|rt| {
        let t = Task::start(rt, &[], &["sh", "-c", "sleep 300 & sleep 300 & wait"]);
        assert!(wait_for(Duration::from_secs(10), || {
            ctr(&["task", "ps", &t.id]).stdout.lines().count() >= 4
        }));
        ctr(&["task", "ps", &t.id]).ok().stdout.lines().count()
    });
    // Header, sh and two sleeps.
    assert_eq!(n, 4);
}

#[test]
fn metrics_report_the_cgroup() {
    let out = same_under_both(|rt| {
        let t = Task::start(rt, &["--memory-limit", "104857600"], &["sleep", "300"]);
        let m = ctr(&["task", "metrics", &t.id]).ok().stdout;
        let limit = m
            .lines()
            .find(|l| l.starts_with("memory.limit_in_bytes") || l.starts_with("memory.usage_limit"))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_string));
        let usage = m
            .lines()
            .find(|l| l.starts_with("memory.usage_in_bytes") || l.starts_with("memory.usage "))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok());
        (
            limit,
            usage.is_some_and(|u| u > 0),
            m.contains("pids.current"),
        )
    });
    assert_eq!(out, (Some("104857600".into()), true, true));
}

fn events_for(rt: &str, scenario: impl FnOnce(&str)) -> Vec<String> {
    let mut events = spawn_ctr(&["events"]);
    std::thread::sleep(Duration::from_millis(500));
    let cid = id("ev");
    scenario(&cid);
    std::thread::sleep(Duration::from_millis(500));
    let _ = events.kill();
    let out = finish(events);
    let _ = rt;
    out.stdout
        .lines()
        .filter(|l| l.contains(&cid))
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("/tasks/"))
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn update_changes_the_limits_through_the_task_api() {
    use containerd_shim_protos::api::UpdateTaskRequest;
    use containerd_shim_protos::protobuf::well_known_types::any::Any;
    use containerd_shim_protos::ttrpc;

    let out = same_under_both(|rt| {
        let t = Task::start(rt, &["--memory-limit", "104857600"], &["sleep", "300"]);
        // Straight to the shim, as containerd would (ctr 1.6 has no update command).
        let address = std::fs::read_to_string(t.bundle().join("address")).unwrap();
        let client = containerd_shim_protos::TaskClient::new(
            ttrpc::Client::connect(address.trim()).unwrap(),
        );
        let mut ctx = ttrpc::context::with_timeout(10_000_000_000);
        ctx.add("containerd-namespace-ttrpc".into(), NS.into());
        let req = UpdateTaskRequest {
            id: t.id.clone(),
            resources: Some(Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
                value: br#"{"memory":{"limit":209715200}}"#.to_vec(),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        let r = client
            .update(ctx, &req)
            .map(|_| ())
            .map_err(|e| e.to_string());
        let m = ctr(&["task", "metrics", &t.id]).ok().stdout;
        let limit = m
            .lines()
            .find(|l| l.starts_with("memory.limit_in_bytes") || l.starts_with("memory.usage_limit"))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_string));
        (r, limit)
    });
    assert_eq!(out, (Ok(()), Some("209715200".into())));
}

#[test]
fn task_events_match_runc() {
    let topics = same_under_both(|rt| {
        events_for(rt, |cid| {
            ctr(&["run", "-d", "--runtime", rt, IMAGE, cid, "sleep", "300"]).ok();
            ctr(&["task", "exec", "--exec-id", "x", cid, "true"]).ok();
            ctr(&["task", "pause", cid]).ok();
            ctr(&["task", "resume", cid]).ok();
            ctr(&["task", "kill", "-s", "SIGKILL", cid]).ok();
            wait_for(Duration::from_secs(10), || {
                task_status(cid).as_deref() == Some("STOPPED")
            });
            ctr(&["task", "rm", cid]).ok();
            ctr(&["container", "rm", cid]).ok();
        })
    });
    for t in [
        "/tasks/create",
        "/tasks/start",
        "/tasks/exec-added",
        "/tasks/exec-started",
        "/tasks/paused",
        "/tasks/resumed",
        "/tasks/exit",
        "/tasks/delete",
    ] {
        assert!(topics.iter().any(|x| x == t), "{t} missing from {topics:?}");
    }
}

#[test]
fn an_oom_kill_is_reported() {
    let out = same_under_both(|rt| {
        let code = std::cell::Cell::new(0);
        let topics = events_for(rt, |cid| {
            ctr(&[
                "run",
                "-d",
                "--runtime",
                rt,
                "--memory-limit",
                "33554432",
                IMAGE,
                cid,
                "sleep",
                "300",
            ])
            .ok();
            let o = ctr(&[
                "task",
                "exec",
                "--exec-id",
                "hog",
                cid,
                "dd",
                "if=/dev/zero",
                "of=/dev/null",
                "bs=128M",
                "count=1",
            ]);
            code.set(o.code);
            // Give the shim a moment to publish before the events stream is cut.
            std::thread::sleep(Duration::from_millis(500));
            let _ = ctr(&["task", "rm", "-f", cid]);
            let _ = ctr(&["container", "rm", cid]);
        });
        (code.get(), topics.iter().any(|t| t == "/tasks/oom"))
    });
    assert_eq!(out, (137, true));
}

#[test]
fn containers_of_one_pod_share_one_shim() {
    let out = same_under_both(|rt| {
        let sandbox = id("pod");
        let ann = format!("io.kubernetes.cri.sandbox-id={sandbox}");
        ctr(&[
            "run",
            "-d",
            "--runtime",
            rt,
            "--annotation",
            &ann,
            IMAGE,
            &sandbox,
            "sleep",
            "300",
        ])
        .ok();
        let second = id("pod-c");
        ctr(&[
            "run",
            "-d",
            "--runtime",
            rt,
            "--annotation",
            &ann,
            IMAGE,
            &second,
            "sleep",
            "300",
        ])
        .ok();
        let a = std::fs::read_to_string(bundle(&sandbox).join("address")).unwrap();
        let b = std::fs::read_to_string(bundle(&second).join("address")).unwrap();
        let exec = ctr(&[
            "task",
            "exec",
            "--exec-id",
            "x",
            &second,
            "echo",
            "second-ok",
        ]);
        let binary = if rt == CRT {
            "containerd-shim-crt-v2"
        } else {
            "containerd-shim-runc-v2"
        };
        let shims_for_second = shim_pids(binary, &second).len();
        for c in [&second, &sandbox] {
            let _ = ctr(&["task", "rm", "-f", c]);
            let _ = ctr(&["container", "rm", c]);
        }
        (a == b, exec.stdout, shims_for_second)
    });
    assert_eq!(out, (true, "second-ok\n".to_string(), 0));
}

#[test]
fn delete_cleans_up_after_a_shim_that_died() {
    let out = same_under_both(|rt| {
        let t = Task::start(rt, &[], &["sleep", "300"]);
        let pid = t.init_pid().expect("init pid");
        let binary = if rt == CRT {
            "containerd-shim-crt-v2"
        } else {
            "containerd-shim-runc-v2"
        };
        let shims = shim_pids(binary, &t.id);
        assert_eq!(shims.len(), 1, "{shims:?}");
        // SAFETY: killing the shim process we just found.
        unsafe { libc::kill(shims[0], libc::SIGKILL) };
        // containerd notices and runs `shim delete`: the container's
        // processes are killed and its rootfs unmounted.
        let rootfs = format!("{}/rootfs", t.bundle().display());
        let cleaned = wait_for(Duration::from_secs(30), || {
            let init_alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
            let mounted = std::fs::read_to_string("/proc/mounts")
                .unwrap()
                .contains(&rootfs);
            !init_alive && !mounted
        });
        let _ = ctr(&["task", "rm", "-f", &t.id]);
        let removed = ctr(&["container", "rm", &t.id]).code == 0;
        (cleaned, removed, t.status())
    });
    assert_eq!(out, (true, true, None));
}
