//! Faults around a syscall flood: crtd killed with SIGKILL, containerd
//! restarted. The traced container must notice nothing — every syscall
//! succeeds, nothing stalls — and once crtd is back its history holds every
//! event the shim recorded. These tests restart shared daemons, so they
//! run one at a time, in a test binary of their own.

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crt_integration::*;

static SERIAL: Mutex<()> = Mutex::new(());

const ALPHA: (&str, &str, &str) = TENANTS[0];
const CALLS: u64 = 200_000;

fn ctr_in(ns: &str, args: &[&str]) -> Out {
    setup();
    run(Command::new("ctr").arg("-n").arg(ns).args(args), None)
}

/// Starts a detached container that opens a file CALLS times (crt-loop
/// exits 1 at the first failed openat) after /tmp/go appears, writing its
/// summary to a log file.
fn flood(id: &str, log: &std::path::Path) {
    let script = format!("while [ ! -e /tmp/go ]; do sleep 0.05; done; crt-loop openat /etc/crt-test-release {CALLS}");
    let uri = format!("file://{}", log.display());
    ctr_in(
        ALPHA.1,
        &[
            "run",
            "-d",
            "--runtime",
            CRT,
            "--log-uri",
            &uri,
            "--annotation",
            "crt.dev/trace=openat",
            IMAGE,
            id,
            "sh",
            "-c",
            &script,
        ],
    )
    .ok();
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

/// Records in the shim's own trace of the container (all kinds, logs too).
fn local_records(id: &str) -> u64 {
    let out = run(
        Command::new("crtctl").args(["trace", "--local", "--json", "--logs", "-n", ALPHA.1, id]),
        None,
    )
    .ok();
    out.stdout.lines().count() as u64
}

/// The flood finished with every openat successful.
fn assert_complete_run(log: &std::path::Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let summary = text
        .lines()
        .find(|l| l.starts_with("openat "))
        .unwrap_or_else(|| panic!("no summary in {text:?}"));
    assert!(
        summary.trim_end().ends_with(&format!(" {CALLS}")),
        "{summary}"
    );
}

fn restart_containerd() {
    run(Command::new("pkill").args(["-x", "containerd"]), None);
    assert!(wait_for(Duration::from_secs(10), || {
        run(Command::new("pgrep").args(["-x", "containerd"]), None).code != 0
    }));
    let mut containerd = Command::new("setsid")
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
    ctr_in(
        ALPHA.1,
        &["task", "exec", "--exec-id", "go", &id, "touch", "/tmp/go"],
    )
    .ok();
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
    let want = local_records(&id);
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
    ctr_in(
        ALPHA.1,
        &["task", "exec", "--exec-id", "go", &id, "touch", "/tmp/go"],
    )
    .ok();
    std::thread::sleep(Duration::from_millis(200));
    restart_containerd();
    // containerd reconnects to the shim; the container never stopped.
    assert!(
        wait_for(Duration::from_secs(120), || status(&id).as_deref()
            == Some("STOPPED")),
        "the flood did not finish across the containerd restart"
    );
    assert_complete_run(&log);
    let want = local_records(&id);
    assert!(
        wait_for(Duration::from_secs(60), || crtd.stored(ALPHA.1, &id)
            == want),
        "crtd stored {} of {want} records",
        crtd.stored(ALPHA.1, &id)
    );
    cleanup(&id);
}
