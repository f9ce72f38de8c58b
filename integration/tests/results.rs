//! Return values end to end: `crt-results` (scripts/image/crt-results.c)
//! makes syscalls whose results are known, in a traced crt container under
//! runc and under crun. Its trace must show exactly those results, errno
//! names, fds, byte counts and output arguments, its nanosleep must last
//! what it slept, and every line must read as strace's line for the same
//! call of the same binary run on the host.

use std::path::PathBuf;
use std::process::Command;

use crt_integration::strace_compare::{self, Call};
use crt_integration::*;

const BINARIES: [&str; 2] = ["runc", "crun"];

/// The syscalls traced, on both sides. execve marks where the program starts.
const TRACE: &str =
    "openat,read,close,socket,connect,nanosleep,pipe2,stat,getcwd,readlink,fork,wait4,execve";

/// crt-results' first call of its own (before it: the C library's start-up,
/// whose readlink of /proc/self/exe names a different path on the host).
const FIRST_CALL: &str = r#"openat(AT_FDCWD, "/etc/crt-results-missing", O_RDONLY)"#;

/// The test image's root directory as scripts/build-test-image.sh left it.
fn rootfs() -> PathBuf {
    repo_root().join("target/crt-image/rootfs")
}

/// Runs crt-results in a traced container; returns its container id.
fn run_in_crt(binary: &str) -> String {
    let cid = id(&format!("res-{binary}"));
    let ann = format!("crt.dev/trace={TRACE}");
    let rt_args = runtime_args(binary);
    let mut args: Vec<&str> = vec!["run", "--rm", "--runtime", CRT, "--annotation", &ann];
    args.extend(rt_args.iter().map(String::as_str));
    args.extend([IMAGE, &cid, "crt-results"]);
    let out = ctr(&args).ok();
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("", ""),
        "{binary}"
    );
    cid
}

/// The JSON events of crt-results' own process from its first call on, one
/// per call: a call stored before it returned (`"unfinished": true`) is
/// replaced by its exit (`"resumed": true`), which has its result.
fn events_from_first_call(cid: &str) -> Vec<serde_json::Value> {
    let mut events: Vec<serde_json::Value> = Vec::new();
    let mut pending: std::collections::HashMap<i64, usize> = Default::default();
    for l in crtctl(&["trace", "--local", "-n", NS, "--json", cid])
        .ok()
        .stdout
        .lines()
    {
        let e: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|err| panic!("bad JSON line {l:?}: {err}"));
        if e["event"] != "syscall" {
            continue;
        }
        let pid = e["pid"].as_i64().unwrap_or(0);
        if e["resumed"] == true {
            if let Some(i) = pending.remove(&pid) {
                assert_eq!(events[i]["syscall"], e["syscall"], "{l}");
                events[i] = e;
                continue;
            }
        } else if e["unfinished"] == true {
            pending.insert(pid, events.len());
        }
        events.push(e);
    }
    let start = events
        .iter()
        .position(|e| e["syscall"] == "openat" && e["args"][1] == "\"/etc/crt-results-missing\"")
        .unwrap_or_else(|| panic!("no openat of /etc/crt-results-missing in {events:#?}"));
    let pid = events[start]["pid"].clone();
    events[start..]
        .iter()
        .filter(|e| e["pid"] == pid)
        .cloned()
        .collect()
}

/// The calls from crt-results' first call on.
fn from_first_call(calls: &[Call]) -> Vec<Call> {
    let start = calls
        .iter()
        .position(|c| c.text.starts_with(FIRST_CALL))
        .unwrap_or_else(|| panic!("no {FIRST_CALL} in {calls:#?}"));
    calls[start..].to_vec()
}

/// crt-results run on the host under `strace -f`, chrooted into the test
/// image's root: its calls from its first call on.
fn under_strace() -> Vec<Call> {
    let root = rootfs();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("strace.out");
    let out = run(
        Command::new("strace")
            .arg("-f")
            .arg("-o")
            .arg(&file)
            .arg("-e")
            .arg(format!("trace={TRACE}"))
            .arg("--")
            .arg(root.join("bin/crt-results"))
            .arg(&root),
        None,
    );
    assert_eq!(out.code, 0, "crt-results under strace: {out:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    from_first_call(&strace_compare::parse_strace(&text))
}

/// The order of crt-results' calls (see scripts/image/crt-results.c).
const CALLS: [&str; 16] = [
    "openat",
    "openat",
    "read",
    "close",
    "socket",
    "connect",
    "close",
    "nanosleep",
    "pipe2",
    "close",
    "close",
    "stat",
    "getcwd",
    "readlink",
    "fork",
    "wait4",
];

/// crt-results' calls in a traced container, checked to be the calls it
/// makes, in its order.
fn traced_calls(binary: &str) -> Vec<serde_json::Value> {
    let cid = run_in_crt(binary);
    let events = events_from_first_call(&cid);
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["syscall"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(names, CALLS, "{binary}: {events:#?}");
    events
}

/// The arguments of a call as rendered.
fn args(e: &serde_json::Value) -> Vec<&str> {
    e["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap_or("?"))
        .collect()
}

#[test]
fn the_trace_shows_the_results_the_kernel_returned() {
    for b in BINARIES {
        let events = traced_calls(b);
        // The fork's result (a pid of the container's namespace) is CHILD
        // in fork's and wait4's results: wait4 must return the same.
        let child = events[14]["ret"].as_i64().filter(|&r| r > 0);
        let got: Vec<String> = events
            .iter()
            .map(|e| {
                let pid_result = e["syscall"] == "fork" || e["syscall"] == "wait4";
                let ret = match e["ret"].as_i64() {
                    Some(r) if pid_result && Some(r) == child => "CHILD".to_string(),
                    Some(r) => r.to_string(),
                    None => format!("{}", e["ret"]),
                };
                match e["errno"].as_str() {
                    Some(errno) => {
                        format!("{} = {ret} {errno}", e["syscall"].as_str().unwrap_or("?"))
                    }
                    None => format!("{} = {ret}", e["syscall"].as_str().unwrap_or("?")),
                }
            })
            .collect();
        let expected = [
            format!("openat = {} ENOENT", -libc::ENOENT),
            "openat = 3".into(),
            "read = 15".into(),
            "close = 0".into(),
            "socket = 3".into(),
            format!("connect = {} ECONNREFUSED", -libc::ECONNREFUSED),
            "close = 0".into(),
            "nanosleep = 0".into(),
            "pipe2 = 0".into(),
            "close = 0".into(),
            "close = 0".into(),
            "stat = 0".into(),
            "getcwd = 2".into(),
            "readlink = 16".into(),
            "fork = CHILD".to_string(),
            "wait4 = CHILD".into(),
        ];
        assert_eq!(got, expected, "{b}: {events:#?}");
        // The wait4 waited for that child.
        assert_eq!(args(&events[15])[0], child.unwrap().to_string(), "{b}");
    }
}

#[test]
fn every_call_has_its_duration_and_the_nanosleep_lasted_what_it_slept() {
    for b in BINARIES {
        let events = traced_calls(b);
        for e in &events {
            assert!(e["duration_ns"].as_u64().is_some(), "{b}: no duration: {e}");
        }
        // At least the 50 ms it slept, and not much more: a check of the
        // measured value, with room for a wake-up on a busy machine.
        let slept = events[7]["duration_ns"].as_u64().unwrap();
        assert!(
            (50_000_000..90_000_000).contains(&slept),
            "{b}: nanosleep of 50 ms measured {slept} ns"
        );
    }
}

#[test]
fn output_arguments_show_what_the_calls_wrote() {
    for b in BINARIES {
        let events = traced_calls(b);
        let child = events[14]["ret"].as_i64().unwrap_or(0).to_string();
        let got: Vec<Vec<&str>> = [2, 8, 11, 12, 13, 15]
            .iter()
            .map(|&i| args(&events[i]))
            .collect();
        let expected: Vec<Vec<&str>> = vec![
            vec!["3", r#""crt test image\n""#, "64"],
            vec!["[3, 4]", "O_CLOEXEC"],
            vec![
                r#""/etc/crt-test-release""#,
                "{st_mode=S_IFREG|0644, st_size=15, ...}",
            ],
            vec![r#""/""#, "4096"],
            vec![r#""/etc/crt-test-link""#, r#""crt-test-release""#, "64"],
            vec![
                &child,
                "[{WIFEXITED(s) && WEXITSTATUS(s) == 7}]",
                "0",
                "NULL",
            ],
        ];
        assert_eq!(got, expected, "{b}");
    }
}

#[test]
fn every_line_reads_as_strace_prints_the_same_call() {
    let reference: Vec<String> = under_strace()
        .iter()
        .map(strace_compare::normalize)
        .collect();
    assert_eq!(reference.len(), 16, "{reference:#?}");
    for b in BINARIES {
        let cid = run_in_crt(b);
        let text = crtctl(&["trace", "--local", "-n", NS, &cid]).ok().stdout;
        let calls = from_first_call(&strace_compare::parse_crt(&text));
        let pid = calls[0].pid;
        let got: Vec<String> = calls
            .iter()
            .filter(|c| c.pid == pid)
            .map(strace_compare::normalize)
            .collect();
        assert_eq!(got, reference, "{b}: crt's trace:\n{text}");
    }
}
