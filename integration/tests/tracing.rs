//! Tracing end to end: containers opt in with crt.dev/trace, run under
//! io.containerd.crt.v2 with runc and with crun, and `crtctl trace` shows
//! what they asked of the kernel.

use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use crt_integration::*;

const BINARIES: [&str; 2] = ["runc", "crun"];

/// `ctr run --rm` of a traced container with the given runtime binary.
fn run_traced(binary: &str, trace: &str, cmd: &[&str]) -> (String, Out) {
    let cid = id(&format!("tr-{binary}"));
    let ann = format!("crt.dev/trace={trace}");
    let rt_args = runtime_args(binary);
    let mut args: Vec<&str> = vec!["run", "--rm", "--runtime", CRT, "--annotation", &ann];
    args.extend(rt_args.iter().map(String::as_str));
    args.push(IMAGE);
    args.push(&cid);
    args.extend_from_slice(cmd);
    let out = ctr(&args);
    (cid, out)
}

fn trace_text(cid: &str) -> String {
    crtctl(&["trace", "--local", "-n", NS, cid]).ok().stdout
}

fn trace_json(cid: &str) -> Vec<serde_json::Value> {
    crtctl(&["trace", "--local", "-n", NS, "--json", cid])
        .ok()
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

#[test]
fn the_path_a_container_opens_appears_in_its_trace() {
    for b in BINARIES {
        let (cid, out) = run_traced(b, "openat", &["cat", "/etc/crt-test-release"]);
        assert_eq!(out.ok().stdout, "crt test image\n");
        let text = trace_text(&cid);
        // cat's open returns its first free fd, 3, from the syscall's exit.
        assert!(
            text.contains(r#"openat(AT_FDCWD, "/etc/crt-test-release", O_RDONLY) = 3"#),
            "{b}: {text}"
        );
        assert!(!text.contains("= ?"), "{b}: every result is known: {text}");
        assert!(text.contains("+++ all processes exited +++"), "{b}: {text}");
    }
}

#[test]
fn execve_shows_the_argv() {
    for b in BINARIES {
        let (cid, out) = run_traced(b, "execve", &["sh", "-c", "echo hi there; true"]);
        out.ok();
        let text = trace_text(&cid);
        assert!(
            text.contains(r#"execve("/bin/sh", ["sh", "-c", "echo hi there; true"], "#),
            "{b}: {text}"
        );
    }
}

#[test]
fn connect_shows_the_address() {
    for b in BINARIES {
        let (cid, _) = run_traced(
            b,
            "%network",
            &["sh", "-c", "nc -w 1 127.0.0.1 9 </dev/null; true"],
        );
        let text = trace_text(&cid);
        assert!(
            text.contains(r#"connect(3, {sa_family=AF_INET, sin_port=htons(9), sin_addr=inet_addr("127.0.0.1")}, 16) = -1 ECONNREFUSED (Connection refused)"#),
            "{b}: {text}"
        );
        assert!(text.contains("socket(AF_INET, SOCK_STREAM"), "{b}: {text}");
    }
}

#[test]
fn an_exec_process_is_traced_too() {
    for b in BINARIES {
        let ann = "crt.dev/trace=openat".to_string();
        let rt_args = runtime_args(b);
        let mut extra: Vec<&str> = vec!["--annotation", &ann];
        extra.extend(rt_args.iter().map(String::as_str));
        let t = Task::start(CRT, &extra, &["sleep", "300"]);
        let init = t.init_pid().unwrap();
        let o = t.exec("x1", &["cat", "/etc/passwd"]).ok();
        assert!(o.stdout.starts_with("root:"), "{b}: {o:?}");
        let events = trace_json(&t.id);
        let opened = events
            .iter()
            .find(|e| e["syscall"] == "openat" && e["args"][1] == "\"/etc/passwd\"");
        let opened =
            opened.unwrap_or_else(|| panic!("{b}: no openat of /etc/passwd in {events:?}"));
        assert_ne!(opened["pid"].as_i64().unwrap() as i32, init, "{b}");
        assert_eq!(opened["comm"], "cat", "{b}");
        // Both the init and the exec handed their listener over.
        let procs = events.iter().filter(|e| e["event"] == "process").count();
        assert_eq!(procs, 2, "{b}: {events:?}");
    }
}

#[test]
fn an_untraced_container_has_no_filter_at_all() {
    for b in BINARIES {
        for ann in [None, Some("crt.dev/trace=off")] {
            let cid = id("untraced");
            let rt_args = runtime_args(b);
            let mut args: Vec<&str> = vec!["run", "--rm", "--runtime", CRT];
            if let Some(a) = ann {
                args.extend(["--annotation", a]);
            }
            args.extend(rt_args.iter().map(String::as_str));
            args.extend([IMAGE, &cid, "grep", "^Seccomp:", "/proc/self/status"]);
            let out = ctr(&args).ok();
            assert_eq!(
                out.stdout.split_whitespace().collect::<Vec<_>>(),
                ["Seccomp:", "0"],
                "{b} {ann:?}"
            );
        }
    }
}

#[test]
fn the_default_profile_still_denies_what_it_denied() {
    for b in BINARIES {
        let probe = [
            "sh",
            "-c",
            "unshare -U true 2>/dev/null; echo unshare=$?; cat /etc/crt-test-release",
        ];
        // Reference: runc.v2 with the default profile.
        let cid = id("seccomp-ref");
        let mut args = vec!["run", "--rm", "--seccomp", IMAGE, &cid];
        args.extend_from_slice(&probe);
        let reference = ctr(&args).ok().stdout;
        assert!(reference.starts_with("unshare=1"), "{reference}");

        let cid = id("seccomp-crt");
        let rt_args = runtime_args(b);
        let mut args = vec![
            "run",
            "--rm",
            "--seccomp",
            "--runtime",
            CRT,
            "--annotation",
            "crt.dev/trace=openat,unshare,execve",
        ];
        args.extend(rt_args.iter().map(String::as_str));
        args.extend([IMAGE, &cid]);
        args.extend_from_slice(&probe);
        let out = ctr(&args).ok().stdout;
        assert_eq!(out, reference, "{b}");
        let text = trace_text(&cid);
        // Still traced what the profile allows...
        assert!(
            text.contains(r#"openat(AT_FDCWD, "/etc/crt-test-release""#),
            "{b}: {text}"
        );
        // ...and what it denies stays denied, never notified.
        assert!(!text.contains("unshare("), "{b}: {text}");
        let meta = trace_meta(&cid);
        assert_eq!(
            meta["denied_by_profile"],
            serde_json::json!(["unshare"]),
            "{b}"
        );
    }
}

#[test]
fn json_lines_carry_the_documented_fields() {
    let (cid, _) = run_traced(
        "runc",
        "openat",
        &[
            "sh",
            "-c",
            "cat /etc/crt-test-release; cat /nonexistent; true",
        ],
    );
    let events = trace_json(&cid);
    let e = events
        .iter()
        .find(|e| e["syscall"] == "openat" && e["args"][1] == "\"/etc/crt-test-release\"")
        .expect("the openat event");
    assert_eq!(e["namespace"], NS);
    assert_eq!(e["container"], cid.as_str());
    assert_eq!(e["comm"], "cat");
    assert!(e["pid"].as_u64().unwrap() > 0);
    assert_eq!(e["args"][0], "AT_FDCWD");
    assert_eq!(e["args"][2], "O_RDONLY");
    assert_eq!(e["ret"], 3, "{e}");
    assert!(e["errno"].is_null(), "{e}");
    assert!(e["duration_ns"].as_u64().unwrap() > 0, "{e}");
    let failed = events
        .iter()
        .find(|e| e["syscall"] == "openat" && e["args"][1] == "\"/nonexistent\"")
        .expect("the failed openat");
    assert_eq!(
        (&failed["ret"], &failed["errno"]),
        (&(-2).into(), &"ENOENT".into()),
        "{failed}"
    );
    let ts = e["ts"].as_str().unwrap();
    // RFC 3339, microseconds, UTC: 2026-11-26T12:00:00.123456Z
    assert_eq!(ts.len(), 27, "{ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
}

#[test]
fn follow_prints_live_events_and_stops_when_the_container_exits() {
    let t = Task::start(
        CRT,
        &["--annotation", "crt.dev/trace=openat"],
        &[
            "sh",
            "-c",
            "sleep 1; cat /etc/crt-test-release >/dev/null; sleep 1",
        ],
    );
    let child = Command::new("crtctl")
        .args(["trace", "--local", "-f", "-n", NS, &t.id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let out = crt_integration::finish(child);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(out.stdout.contains(r#""/etc/crt-test-release""#), "{out:?}");
    assert!(
        out.stdout.contains("+++ all processes exited +++"),
        "{out:?}"
    );
}

#[test]
fn a_bad_annotation_fails_creation_naming_the_annotation_and_the_item() {
    for (value, item) in [
        ("openat,opnat", "opnat"),
        ("openat,,connect", "empty item"),
        ("write", "write"),
        ("%filez", "%filez"),
    ] {
        let cid = id("bad");
        let ann = format!("crt.dev/trace={value}");
        let out = ctr(&[
            "run",
            "--rm",
            "--runtime",
            CRT,
            "--annotation",
            &ann,
            IMAGE,
            &cid,
            "true",
        ]);
        assert_ne!(out.code, 0);
        assert!(out.stderr.contains("crt.dev/trace"), "{out:?}");
        assert!(out.stderr.contains(item), "{value}: {out:?}");
        assert!(task_status(&cid).is_none());
        let _ = ctr(&["container", "rm", &cid]);
    }
}

#[test]
fn a_broken_node_config_is_refused_with_the_file_and_the_line() {
    let cfg = write_config("broken.toml", "[trace]\nenabled = true\nqueue_size = 10\n");
    let cid = id("badcfg");
    let out = ctr(&[
        "run",
        "--rm",
        "--runtime",
        CRT,
        "--runtime-config-path",
        &cfg,
        "--annotation",
        "crt.dev/trace=openat",
        IMAGE,
        &cid,
        "true",
    ]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains(&format!("{cfg} line 3")), "{out:?}");
    assert!(out.stderr.contains("queue_size"), "{out:?}");
    let _ = ctr(&["container", "rm", &cid]);
}

fn listener_path(t: &Task) -> String {
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.bundle().join("config.json")).unwrap()).unwrap();
    spec["linux"]["seccomp"]["listenerPath"]
        .as_str()
        .unwrap()
        .to_string()
}

fn getppid_a_thousand_times() {
    for _ in 0..1000 {
        // SAFETY: a plain syscall.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
}

#[test]
fn malformed_and_repeated_listener_messages_leave_the_container_running() {
    use crt_seccomp_notify::handoff::send_with_fd;
    use std::io::Write;

    let t = Task::start(
        CRT,
        &["--annotation", "crt.dev/trace=openat,getppid"],
        &["sleep", "300"],
    );
    let path = listener_path(&t);

    // Garbage, a message without an fd, an fd that is not a listener, and a
    // peer that connects and says nothing.
    let mut s = UnixStream::connect(&path).unwrap();
    s.write_all(b"{this is not json").unwrap();
    drop(s);
    let state = format!(
        r#"{{"ociVersion":"1.0.2","fds":["seccompFd"],"pid":1,"state":{{"id":"{}","status":"running"}}}}"#,
        t.id
    );
    let s = UnixStream::connect(&path).unwrap();
    send_with_fd(&s, state.as_bytes(), None::<&std::fs::File>).unwrap();
    drop(s);
    let devnull = std::fs::File::open("/dev/null").unwrap();
    let s = UnixStream::connect(&path).unwrap();
    send_with_fd(&s, state.as_bytes(), Some(&devnull)).unwrap();
    drop(s);
    let silent = UnixStream::connect(&path).unwrap();

    // A runtime that connects twice: a second, real listener for the same
    // container (and the same fd once more). Every syscall of the process
    // under it must still complete.
    let child =
        crt_seccomp_notify::testutil::spawn_traced(&[libc::SYS_getppid], getppid_a_thousand_times)
            .unwrap();
    for _ in 0..2 {
        let s = UnixStream::connect(&path).unwrap();
        send_with_fd(&s, state.as_bytes(), Some(&child.listener)).unwrap();
    }
    child.go();
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.pid;
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let code = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("pid {pid} hung"));
    assert_eq!(code, 0);
    drop(silent);

    // The container keeps running and keeps being traced.
    assert_eq!(t.status().as_deref(), Some("RUNNING"));
    let o = t.exec("after", &["cat", "/etc/crt-test-release"]).ok();
    assert_eq!(o.stdout, "crt test image\n");
    let text = trace_text(&t.id);
    assert!(text.contains(r#""/etc/crt-test-release""#), "{text}");
    assert!(
        text.matches("getppid()").count() >= 1000,
        "the extra listener's calls are missing"
    );
}

/// Stops one thread of another process (ptrace only stops the thread it is
/// attached to), to stall the shim's storage without touching its notify loops.
struct StoppedThread(i32);

impl StoppedThread {
    fn stop(tid: i32) -> StoppedThread {
        // SAFETY: ptrace requests on a thread id, no memory is passed.
        unsafe {
            assert_eq!(
                libc::ptrace(libc::PTRACE_SEIZE, tid, 0, 0),
                0,
                "seize {tid}"
            );
            assert_eq!(
                libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0),
                0,
                "interrupt {tid}"
            );
            let mut status = 0;
            assert_eq!(libc::waitpid(tid, &mut status, libc::__WALL), tid);
        }
        StoppedThread(tid)
    }
}

impl Drop for StoppedThread {
    fn drop(&mut self) {
        // SAFETY: detaching the thread attached in `stop`.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, self.0, 0, 0) };
    }
}

fn thread_named(pid: i32, name: &str) -> Option<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .filter_map(|e| e.ok())
        .find_map(|e| {
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            (comm.trim_end() == name).then(|| e.file_name().to_string_lossy().parse().ok())?
        })
}

#[test]
fn a_stalled_store_never_slows_the_program_and_drops_are_counted_and_shown() {
    const CALLS: u64 = 200_000;
    let calls = CALLS.to_string();
    let script = format!("while [ ! -e /tmp/go ]; do sleep 0.05; done; crt-loop getppid {calls}");
    let t = Task::start(
        CRT,
        &["--annotation", "crt.dev/trace=getppid"],
        &["sh", "-c", &script],
    );
    let shim = shim_pids("containerd-shim-crt-v2", &t.id);
    assert_eq!(shim.len(), 1);
    let writer_name = format!("trace-{}", &t.id[..t.id.len().min(12)]);
    let writer = thread_named(shim[0], &writer_name).expect("the trace storage thread");

    // Storage stops dead; the container floods.
    let stalled = StoppedThread::stop(writer);
    t.exec("go", &["touch", "/tmp/go"]).ok();
    let finished = wait_for(Duration::from_secs(60), || {
        t.status().as_deref() == Some("STOPPED")
    });
    drop(stalled);
    assert!(finished, "the traced program stalled with its storage");

    let out = crtctl(&["trace", "--local", "-f", "-n", NS, &t.id]).ok();
    assert!(out.stderr.contains("events were dropped"), "{}", out.stderr);
    let recorded = out.stdout.matches("getppid()").count() as u64;
    let drops: u64 = out
        .stdout
        .lines()
        .filter_map(|l| l.split("--- crt: ").nth(1)?.split(' ').next()?.parse().ok())
        .max()
        .expect("a drops line");
    assert!(drops > 0);
    // Every call is either recorded or counted (runc's init may add a
    // getppid of its own before exec).
    let total = recorded + drops;
    assert!(
        (CALLS..=CALLS + 2).contains(&total),
        "recorded {recorded} + dropped {drops}"
    );
}

#[test]
fn result_filters_with_bad_values_are_refused_naming_them() {
    for (args, want) in [
        (
            vec!["--errno", "ENOENT,ENOPE"],
            "--errno \"ENOPE\": not an error; expected a name like ENOENT",
        ),
        (
            vec!["--slower-than", "1m"],
            "--slower-than \"1m\": not a duration; expected a number with a unit: 500ns, 250us, 1.5ms, 2s",
        ),
        (
            vec!["--failed", "--successful"],
            "--failed and --successful exclude each other",
        ),
        (vec!["-c", "-f"], "-c (--summary) prints one table"),
    ] {
        for local in [false, true] {
            let mut all = vec!["trace"];
            if local {
                all.push("--local");
            }
            all.extend_from_slice(&args);
            all.push("no-such-container");
            let out = crtctl(&all);
            assert_eq!(out.code, 1, "{all:?}: {out:?}");
            assert!(out.stderr.contains(want), "{all:?}: {}", out.stderr);
            assert!(out.stdout.is_empty(), "{all:?}: {out:?}");
        }
    }
}

#[test]
fn the_summary_counts_each_call_of_the_trace_once() {
    for b in BINARIES {
        let (cid, out) = run_traced(
            b,
            "%file",
            &["sh", "-c", "cat /etc/crt-test-release /nonexistent; true"],
        );
        out.ok();
        // The calls as the events count them: an entry stored before its
        // exit is one call with its exit.
        let mut want: std::collections::BTreeMap<String, u64> = Default::default();
        for e in trace_json(&cid) {
            if e["event"] == "syscall" && e["unfinished"] != true {
                *want
                    .entry(e["syscall"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
        }
        assert!(want.contains_key("openat"), "{b}: {want:?}");
        let table = crtctl(&["trace", "--local", "-c", "-n", NS, &cid])
            .ok()
            .stdout;
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0], "% time     seconds  usecs/call     calls    errors syscall",
            "{b}: {table}"
        );
        let rule = "------ ----------- ----------- --------- --------- ----------------";
        assert_eq!(lines[1], rule, "{b}: {table}");
        let end = lines.iter().rposition(|l| *l == rule).unwrap();
        let mut got: std::collections::BTreeMap<String, u64> = Default::default();
        for l in &lines[2..end] {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let name = cols.last().unwrap().to_string();
            // % time, seconds, usecs/call, calls, [errors], name.
            got.insert(name, cols[3].parse().unwrap());
        }
        assert_eq!(got, want, "{b}: {table}");
        let total: Vec<&str> = lines[end + 1].split_whitespace().collect();
        assert_eq!(total.last(), Some(&"total"), "{b}: {table}");
        assert_eq!(
            total[3].parse::<u64>().unwrap(),
            want.values().sum::<u64>(),
            "{b}: {table}"
        );
    }
}

#[test]
fn strings_are_written_in_octal_by_default_and_in_hex_with_x_as_strace_does() {
    // A file name holding byte 1, opened by cat.
    let (cid, _) = run_traced(
        "runc",
        "openat",
        &[
            "sh",
            "-c",
            "f=/tmp/$(printf 'a\\001b'); : > \"$f\"; cat \"$f\"; true",
        ],
    );
    let line_of = |flags: &[&str]| {
        let mut args = vec!["trace", "--local", "-n", NS];
        args.extend_from_slice(flags);
        args.push(&cid);
        let text = crtctl(&args).ok().stdout;
        text.lines()
            .find(|l| {
                l.contains("openat(AT_FDCWD, \"") && l.contains("O_RDONLY") && l.contains("= 3")
            })
            .map(|l| l.split_once("] ").unwrap().1.to_string())
            .unwrap_or_else(|| panic!("{flags:?}: no open of the file: {text}"))
    };
    assert_eq!(
        line_of(&[]),
        r#"openat(AT_FDCWD, "/tmp/a\1b", O_RDONLY) = 3"#
    );
    assert_eq!(
        line_of(&["-x"]),
        r#"openat(AT_FDCWD, "\x2f\x74\x6d\x70\x2f\x61\x01\x62", O_RDONLY) = 3"#
    );
    assert_eq!(
        line_of(&["-xx"]),
        r#"openat(AT_FDCWD, "\x2f\x74\x6d\x70\x2f\x61\x01\x62", O_RDONLY) = 3"#
    );
}
