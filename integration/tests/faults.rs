//! Faults around a syscall flood: crtd killed with SIGKILL, containerd
//! restarted, the shim killed with SIGKILL. The traced container must
//! notice nothing — every syscall succeeds, nothing stalls — and once crtd
//! is back its history holds every event the shim recorded. These tests
//! restart shared daemons, so they run one at a time, in a test binary of
//! their own.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Mutex;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use crt_integration::*;

static SERIAL: Mutex<()> = Mutex::new(());

const ALPHA: (&str, &str, &str) = TENANTS[0];
const BETA: (&str, &str, &str) = TENANTS[1];
const CALLS: u64 = 200_000;

fn ctr_in(ns: &str, args: &[&str]) -> Out {
    setup();
    run(Command::new("ctr").arg("-n").arg(ns).args(args), None)
}

/// Starts a detached container that opens a file CALLS times (crt-loop
/// exits 1 at the first failed openat) after /tmp/go appears, writing its
/// summary to a log file.
fn flood(id: &str, log: &std::path::Path) {
    flood_of(id, log, CALLS);
}

fn flood_of(id: &str, log: &std::path::Path, calls: u64) {
    flood_in(ALPHA.1, id, log, calls, &[]);
}

/// Lets a flood start.
fn go(id: &str) {
    flood_go(ALPHA.1, id);
}

fn status(id: &str) -> Option<String> {
    let out = ctr_in(ALPHA.1, &["task", "ls"]);
    out.stdout.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        (w.first() == Some(&id)).then(|| w.get(2).map(|s| s.to_string()))?
    })
}

fn cleanup(id: &str) {
    let _ = ctr_in(ALPHA.1, &["task", "rm", "-f", id]);
    let _ = ctr_in(ALPHA.1, &["container", "rm", id]);
}

/// The flood finished with every openat successful.
fn assert_complete_run(log: &std::path::Path) {
    assert_flood_complete(log, CALLS);
}

fn restart_containerd() {
    run(Command::new("pkill").args(["-x", "containerd"]), None);
    assert!(wait_for(Duration::from_secs(10), || {
        run(Command::new("pgrep").args(["-x", "containerd"]), None).code != 0
    }));
    let mut containerd = Command::new("setsid");
    // containerd (and every shim it starts) must not keep what this test was
    // given, such as a caller's lock file: it would hold it for good.
    // SAFETY: between fork and exec only close_range, async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut containerd, || {
            libc::close_range(3, libc::c_uint::MAX, 0);
            Ok(())
        });
    }
    let mut containerd = containerd
        .arg("containerd")
        .env(
            "PATH",
            "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(
            std::fs::File::options()
                .append(true)
                .create(true)
                .open("/var/log/containerd.log")
                .unwrap(),
        )
        .spawn()
        .unwrap();
    // containerd outlives the test; reap it if it ever exits meanwhile.
    std::thread::spawn(move || containerd.wait());
    assert!(wait_for(Duration::from_secs(30), || run(
        Command::new("ctr").arg("version"),
        None
    )
    .code
        == 0));
}

#[test]
fn killing_crtd_during_a_flood_loses_nothing_and_slows_nobody() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut crtd = Crtd::start("kill");
    let id = id("flood-kill");
    let log = crtd.dir.join("flood.log");
    flood(&id, &log);
    go(&id);
    std::thread::sleep(Duration::from_millis(300));
    crtd.kill();
    let started = Instant::now();
    assert!(
        wait_for(Duration::from_secs(120), || status(&id).as_deref()
            == Some("STOPPED")),
        "the flood did not finish while crtd was down"
    );
    let took = started.elapsed();
    assert_complete_run(&log);
    crtd.restart();
    let want = local_records(ALPHA.1, &id);
    assert!(
        want as f64 >= CALLS as f64 * 0.5,
        "the shim recorded {want} records"
    );
    let caught_up = wait_for(Duration::from_secs(60), || {
        crtd.stored(ALPHA.1, &id) == want
    });
    assert!(
        caught_up,
        "crtd stored {} of {want} records after its restart",
        crtd.stored(ALPHA.1, &id)
    );
    eprintln!("flood of {CALLS} openat with crtd killed: {took:?}; {want} records, all in history");
    cleanup(&id);
}

#[test]
fn a_containerd_restart_during_a_flood_loses_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let crtd = Crtd::start("containerd");
    let id = id("flood-containerd");
    let log = crtd.dir.join("flood.log");
    flood(&id, &log);
    go(&id);
    std::thread::sleep(Duration::from_millis(200));
    restart_containerd();
    // containerd reconnects to the shim; the container never stopped.
    assert!(
        wait_for(Duration::from_secs(120), || status(&id).as_deref()
            == Some("STOPPED")),
        "the flood did not finish across the containerd restart"
    );
    assert_complete_run(&log);
    let want = local_records(ALPHA.1, &id);
    assert!(
        wait_for(Duration::from_secs(60), || crtd.stored(ALPHA.1, &id)
            == want),
        "crtd stored {} of {want} records",
        crtd.stored(ALPHA.1, &id)
    );
    cleanup(&id);
}

/// Opens a live stream as a tenant; the connection is returned unread.
fn open_stream(crtd: &Crtd, token: &str, query: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(("127.0.0.1", crtd.port)).unwrap();
    write!(
        s,
        "GET /v1/events/stream?{query} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    // The status line and headers come at once.
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
        head.push(b[0]);
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

/// Everything a stream delivers, with the wall-clock time each mark number
/// (`/beta-mark-N`) was first seen.
type Seen = Arc<StdMutex<Vec<(u64, std::time::SystemTime)>>>;

fn collect(mut s: TcpStream) -> Seen {
    let out: Seen = Arc::new(StdMutex::new(Vec::new()));
    let o = Arc::clone(&out);
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        // What has arrived of a line not yet whole.
        let mut pending = String::new();
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            pending.push_str(&String::from_utf8_lossy(&buf[..n]));
            let Some(end) = pending.rfind('\n') else {
                continue;
            };
            let lines: String = pending.drain(..=end).collect();
            let mut seen = o.lock().unwrap();
            for (i, m) in lines.match_indices("/beta-mark-") {
                let digits: String = lines[i + m.len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if let Ok(mark) = digits.parse::<u64>() {
                    if !seen.iter().any(|(k, _)| *k == mark) {
                        seen.push((mark, std::time::SystemTime::now()));
                    }
                }
            }
        }
    });
    out
}

/// Reads a stream at 40 KB/s (far slower than a flood's events come) until
/// told to hurry; says when a drops notice arrived.
fn slow_reader(
    mut s: TcpStream,
) -> (
    Arc<std::sync::atomic::AtomicBool>,
    Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    let told = Arc::new(AtomicBool::new(false));
    let hurry = Arc::new(AtomicBool::new(false));
    let (t, h) = (Arc::clone(&told), Arc::clone(&hurry));
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        let mut tail = String::new();
        loop {
            let want = if h.load(Relaxed) { buf.len() } else { 4096 };
            let n = match s.read(&mut buf[..want]) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            tail.push_str(&String::from_utf8_lossy(&buf[..n]));
            if tail.contains("\"event\":\"stream-drops\"") {
                t.store(true, Relaxed);
                return;
            }
            // Keep only what a notice split across reads needs.
            let cut = tail.len().saturating_sub(64);
            let cut = (cut..tail.len())
                .find(|&i| tail.is_char_boundary(i))
                .unwrap_or(0);
            tail.drain(..cut);
            if !h.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    (told, hurry)
}

#[test]
fn one_tenants_flood_does_not_starve_another_tenants_queries_or_streams() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const FLOOD: u64 = 1_000_000;
    let crtd = Crtd::start("fair");
    // Beta: a container that opens a new marker path five times a second.
    let beta = id("fair-beta");
    run(
        Command::new("ctr").args([
            "-n",
            BETA.1,
            "run",
            "-d",
            "--null-io",
            "--runtime",
            CRT,
            "--annotation",
            "crt.dev/trace=openat",
            IMAGE,
            &beta,
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); cat /beta-mark-$i 2>/dev/null; sleep 0.2; done",
        ]),
        None,
    )
    .ok();
    assert!(wait_for(Duration::from_secs(30), || {
        let (_, v) = crtd.get(
            &format!("/v1/events?container={beta}&grep=beta-mark&limit=5"),
            Some(BETA.2),
        );
        v["events"].as_array().is_some_and(|e| !e.is_empty())
    }));
    // Alpha: a flood of openat, and a reader of it that never reads.
    let flood_id = id("fair-alpha");
    let log = crtd.dir.join("flood.log");
    flood_of(&flood_id, &log, FLOOD);
    let (slow, head) = open_stream(&crtd, ALPHA.2, &format!("container={flood_id}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (slow_told, hurry) = slow_reader(slow);
    // Alpha may hold 8 streams at once: the 9th is refused, beta is not.
    let mut held = Vec::new();
    for _ in 0..7 {
        let (s, head) = open_stream(&crtd, ALPHA.2, &format!("container={flood_id}"));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        held.push(s);
    }
    let (_, refused) = open_stream(&crtd, ALPHA.2, &format!("container={flood_id}"));
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    let (beta_stream, head) = open_stream(&crtd, BETA.2, &format!("container={beta}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let seen = collect(beta_stream);
    drop(held);

    // Alpha also queries its flood as fast as it can, four at a time.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hammers: Vec<_> = (0..4)
        .map(|_| {
            let (port, stop, id) = (crtd.port, Arc::clone(&stop), flood_id.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { continue };
                    let _ = write!(s, "GET /v1/events?container={id}&grep=no-such-text&limit=1000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n", ALPHA.2);
                    let _ = s.read_to_end(&mut Vec::new());
                }
            })
        })
        .collect();

    let flood_start = std::time::SystemTime::now();
    go(&flood_id);
    // While it runs, beta's history queries answer, with beta's events.
    let mut beta_queries = 0;
    while status(&flood_id).as_deref() != Some("STOPPED") {
        let (code, v) = crtd.get(
            &format!("/v1/events?container={beta}&grep=beta-mark&order=desc&limit=5"),
            Some(BETA.2),
        );
        assert_eq!(code, 200, "{v}");
        assert!(!v["events"].as_array().unwrap().is_empty(), "{v}");
        beta_queries += 1;
        std::thread::sleep(Duration::from_millis(200));
        assert!(beta_queries < 600, "the flood did not finish");
    }
    let flood_end = std::time::SystemTime::now();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for h in hammers {
        h.join().unwrap();
    }
    assert_flood_complete(&log, FLOOD);
    assert!(
        beta_queries >= 3,
        "the flood was too short to tell: {beta_queries} queries"
    );

    // Beta's live stream kept up: every mark beta made during the flood,
    // until a second before it ended, had reached it by the end.
    let (_, v) = crtd.get(
        &format!("/v1/events?container={beta}&grep=beta-mark&limit=1000"),
        Some(BETA.2),
    );
    let ns_of = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    };
    let (from, cutoff) = (
        ns_of(flood_start),
        ns_of(flood_end - Duration::from_secs(1)),
    );
    let made: Vec<(u64, String)> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let path = e["args"][1].as_str()?;
            let n = path
                .trim_matches('"')
                .strip_prefix("/beta-mark-")?
                .parse()
                .ok()?;
            Some((n, e["ts"].as_str()?.to_string()))
        })
        .collect();
    let seen = seen.lock().unwrap().clone();
    let before_cutoff: Vec<u64> = made
        .iter()
        .filter(|(_, ts)| {
            let ns = crt_tracer::render::parse_rfc3339_utc(ts).unwrap();
            (from..cutoff).contains(&ns)
        })
        .map(|(n, _)| *n)
        .collect();
    assert!(!before_cutoff.is_empty(), "{v}");
    for n in &before_cutoff {
        let got = seen.iter().find(|(k, _)| k == n);
        assert!(
            got.is_some_and(|(_, at)| *at <= flood_end),
            "beta's mark {n} had not reached its live stream when the flood ended: {:?}",
            seen
        );
    }

    // Alpha's slow reader lost events, and is told how many; it shows in
    // the metrics under alpha, and beta lost none.
    hurry.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(
        wait_for(Duration::from_secs(60), || slow_told
            .load(std::sync::atomic::Ordering::Relaxed)),
        "no drops notice for the slow reader"
    );
    let (_, metrics) = crtd.root_get_text("/metrics");
    let alpha_drops = metrics
        .lines()
        .find(|l| l.starts_with("crtd_live_dropped_events_total{tenant=\"alpha\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
    assert!(alpha_drops.is_some_and(|n| n > 0), "{metrics}");
    assert!(
        !metrics.contains("crtd_live_dropped_events_total{tenant=\"beta\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("crtd_refused_requests_total{tenant=\"alpha\",limit=\"streams\"}"),
        "{metrics}"
    );
    cleanup(&flood_id);
    let _ = run(
        Command::new("ctr").args(["-n", BETA.1, "task", "rm", "-f", &beta]),
        None,
    );
    let _ = run(
        Command::new("ctr").args(["-n", BETA.1, "container", "rm", &beta]),
        None,
    );
}

/// The listener keepers (`crt-listener-keeper`) whose parent is `shim`.
fn keepers_of(shim: i32) -> Vec<i32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let (Ok(cmdline), Ok(stat)) = (
            std::fs::read(e.path().join("cmdline")),
            std::fs::read_to_string(e.path().join("stat")),
        ) else {
            continue;
        };
        // The fields after the command name (which may hold spaces): state, ppid.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
        if ppid == Some(shim) && cmdline.split(|&b| b == 0).next() == Some(b"crt-listener-keeper") {
            found.push(pid);
        }
    }
    found
}

/// True while `pid` runs as a listener keeper (not gone, not a zombie).
fn keeper_alive(pid: i32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    cmdline.split(|&b| b == 0).next() == Some(b"crt-listener-keeper")
}

fn process_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let (_, rest) = s.rsplit_once(')')?;
            rest.split_whitespace().next().map(|st| st != "Z")
        })
        .unwrap_or(false)
}

/// A traced container opens a file as fast as it can and writes a line to a
/// host directory whenever an open fails; its shim is killed with SIGKILL.
/// Until containerd has killed the container, no open may fail (the
/// listener keeper answers the shim's listeners), and afterwards no keeper
/// is left. Returns (failed opens, keepers of the shim before the kill,
/// whether one was left after the cleanup).
fn shim_killed_during_a_flood(binary: &str) -> (usize, usize, bool) {
    let id = id(&format!("shim-kill-{binary}"));
    let out = std::env::temp_dir().join(format!("crt-it-{id}"));
    std::fs::create_dir_all(&out).unwrap();
    let mount = format!("type=bind,src={},dst=/out,options=rbind:rw", out.display());
    // `true < file` opens in the shell itself (a builtin, no fork): one
    // openat per turn. Not `:`, a special builtin: a failed redirection
    // would end the shell instead of being logged. The failure log (which
    // also gets the shell's error messages) is opened once, up front, so
    // logging opens nothing.
    let script = "exec 3>>/out/failures 2>&3; echo up > /out/up; \
                  while :; do true < /etc/passwd || echo failed >&3; done";
    let rt_args = runtime_args(binary);
    let mut args: Vec<&str> = vec![
        "run",
        "-d",
        "--null-io",
        "--runtime",
        CRT,
        "--annotation",
        "crt.dev/trace=openat",
        "--mount",
        &mount,
    ];
    args.extend(rt_args.iter().map(String::as_str));
    args.extend_from_slice(&[IMAGE, &id, "sh", "-c", script]);
    ctr(&args).ok();
    assert!(
        wait_for(Duration::from_secs(30), || out.join("up").exists()),
        "{binary}: the flood did not start"
    );
    std::thread::sleep(Duration::from_millis(500));
    let task = ctr(&["task", "ls"]);
    let init: i32 = task
        .stdout
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(id.as_str())).then(|| w.next()?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("{binary}: no task {id}: {task:?}"));
    let shims = shim_pids("containerd-shim-crt-v2", &id);
    assert_eq!(shims.len(), 1, "{binary}: {shims:?}");
    let keepers = keepers_of(shims[0]);
    // SAFETY: killing the shim process we just found.
    unsafe { libc::kill(shims[0], libc::SIGKILL) };
    // containerd notices and runs `shim delete`, which kills the container.
    assert!(
        wait_for(Duration::from_secs(30), || !process_alive(init)),
        "{binary}: the container's init {init} still runs after its shim was killed"
    );
    let keeper_gone = wait_for(Duration::from_secs(30), || {
        !keepers.iter().any(|&k| keeper_alive(k))
    });
    let log = std::fs::read_to_string(out.join("failures")).unwrap_or_default();
    let failures = log.lines().filter(|l| *l == "failed").count();
    if let Some(why) = log.lines().find(|l| *l != "failed") {
        eprintln!("{binary}: the first failed open: {why}");
    }
    let _ = ctr(&["task", "rm", "-f", &id]);
    let _ = ctr(&["container", "rm", &id]);
    let _ = std::fs::remove_dir_all(&out);
    (failures, keepers.len(), !keeper_gone)
}

#[test]
fn a_shim_killed_during_a_flood_fails_no_syscall_and_leaves_no_keeper() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Both runtimes first, so that a failure shows the numbers of both.
    let results = ["runc", "crun"].map(|b| (b, shim_killed_during_a_flood(b)));
    for (binary, (failures, keepers, _)) in results {
        eprintln!(
            "{binary}: {failures} failed opens after the shim was killed; {keepers} keeper(s)"
        );
    }
    for (binary, (failures, keepers, keeper_left)) in results {
        assert_eq!(
            failures, 0,
            "{binary}: opens failed after the shim was killed"
        );
        assert_eq!(keepers, 1, "{binary}: listener keepers of the shim");
        assert!(
            !keeper_left,
            "{binary}: the listener keeper outlived the container"
        );
    }
}

#[test]
fn a_normal_run_leaves_no_keeper() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for binary in ["runc", "crun"] {
        let rt_args = runtime_args(binary);
        let mut extra: Vec<&str> = vec!["--annotation", "crt.dev/trace=openat"];
        extra.extend(rt_args.iter().map(String::as_str));
        let t = Task::start(CRT, &extra, &["sleep", "300"]);
        let shims = shim_pids("containerd-shim-crt-v2", &t.id);
        assert_eq!(shims.len(), 1, "{binary}: {shims:?}");
        let keepers = keepers_of(shims[0]);
        assert_eq!(
            keepers.len(),
            1,
            "{binary}: keepers of shim {}: {keepers:?}",
            shims[0]
        );
        let rss = std::fs::read_to_string(format!("/proc/{}/status", keepers[0]))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .map(str::to_string);
        eprintln!("{binary}: keeper {} {rss:?}", keepers[0]);
        let shim = shims[0];
        drop(t);
        assert!(
            wait_for(Duration::from_secs(30), || !process_alive(shim)),
            "{binary}: the shim did not exit after the container was removed"
        );
        assert!(
            wait_for(Duration::from_secs(30), || !keeper_alive(keepers[0])),
            "{binary}: the listener keeper outlived its shim"
        );
    }
}
