//! Denial of service, played against a real crtd: idle connections by the
//! hundred, bodies sent before credentials, doubled credentials, live
//! streams nobody reads, and a huge annotation. crtd keeps serving its
//! tenants, bounds what it holds, and says no quickly.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crt_integration::*;

const ALPHA: (&str, &str, &str) = TENANTS[0];

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Sends `head` (and nothing more), returns the status line crtd answers.
fn answer_to(port: u16, head: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn hundreds_of_idle_connections_do_not_keep_a_tenant_out() {
    let crtd = Crtd::start("idle");
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(("127.0.0.1", crtd.port)).unwrap());
    }
    let t = Instant::now();
    let (s, v) = crtd.get("/v1/whoami", Some(ALPHA.2));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["tenant"], "alpha");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "answered after {:?}",
        t.elapsed()
    );
    drop(idle);
}

#[test]
fn credentials_are_checked_before_a_body_is_read_and_only_once() {
    let crtd = Crtd::start("body");
    let before = rss_kb(crtd.pid());
    // A large body announced, none sent, no token: refused at once.
    let t = Instant::now();
    let status = answer_to(
        crtd.port,
        "POST /v1/containers HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n",
    );
    assert!(status.contains(" 401"), "{status}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // A wrong token, the same.
    let status = answer_to(
        crtd.port,
        "POST /v1/containers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\nContent-Length: 104857600\r\n\r\n",
    );
    assert!(status.contains(" 401"), "{status}");
    // Two credentials: which one would count? Neither.
    let status = answer_to(
        crtd.port,
        &format!(
            "GET /v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            ALPHA.2, TENANTS[1].2
        ),
    );
    assert!(status.contains(" 400"), "{status}");
    assert!(
        rss_kb(crtd.pid()) < before + 20 * 1024,
        "crtd grew from {before} kB to {} kB",
        rss_kb(crtd.pid())
    );
}

#[test]
fn live_streams_nobody_reads_hold_bounded_memory_freed_when_they_end() {
    let crtd = Crtd::start("unread");
    // A fresh crtd first takes in what the node's shims have recorded so
    // far; what the streams cost is measured from there.
    let ingested = || {
        let (_, m) = crtd.root_get_text("/metrics");
        m.lines()
            .find(|l| l.starts_with("crtd_ingested_events_total "))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut last = u64::MAX;
    assert!(wait_for(Duration::from_secs(120), || {
        std::thread::sleep(Duration::from_secs(1));
        let now = ingested();
        std::mem::replace(&mut last, now) == now
    }));
    let baseline = rss_kb(crtd.pid());
    let flood = NsTask::start(
        ALPHA.1,
        &["--annotation", "crt.dev/trace=openat"],
        &[
            "sh",
            "-c",
            "while [ ! -e /tmp/go ]; do sleep 0.05; done; crt-loop openat /etc/crt-test-release 300000; sleep 300",
        ],
    );
    // Eight streams (the tenant's limit), opened and never read.
    let mut streams = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(("127.0.0.1", crtd.port)).unwrap();
        write!(
            s,
            "GET /v1/events/stream?container={} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
            flood.id, ALPHA.2
        )
        .unwrap();
        streams.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    run_in(
        ALPHA.1,
        &[
            "task",
            "exec",
            "--exec-id",
            "go",
            &flood.id,
            "touch",
            "/tmp/go",
        ],
    )
    .ok();
    let queued = || {
        let (_, m) = crtd.root_get_text("/metrics");
        m.lines()
            .find(|l| l.starts_with("crtd_live_queued_bytes "))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(-1.0)
    };
    // While the flood runs, what waits for the readers stays bounded.
    let mut peak_rss = 0;
    let mut peak_queued = 0.0f64;
    let done = wait_for(Duration::from_secs(120), || {
        peak_rss = peak_rss.max(rss_kb(crtd.pid()));
        peak_queued = peak_queued.max(queued());
        crtd.stored(ALPHA.1, &flood.id) > 300_000
    });
    assert!(done, "the flood was not stored");
    eprintln!(
        "crtd with 8 unread streams: {baseline} kB before the flood, {peak_rss} kB at most ({} kB growth); {peak_queued} bytes queued at most",
        peak_rss.saturating_sub(baseline)
    );
    assert!(peak_queued > 0.0, "the streams were fed");
    assert!(
        peak_queued <= 8.0 * 4.0 * 1024.0 * 1024.0 * 1.1,
        "{peak_queued} bytes queued"
    );
    // Eight bounded queues (32 MiB at most) and the flood's own ingest and
    // fan-out: nowhere near the 632 MB unbounded queues took, and kept.
    assert!(
        peak_rss < baseline + 120 * 1024,
        "crtd grew from {baseline} kB to {peak_rss} kB"
    );
    drop(streams);
    assert!(
        wait_for(Duration::from_secs(40), || queued() == 0.0),
        "{} bytes still queued after the readers left",
        queued()
    );
}

#[test]
fn a_huge_annotation_is_refused_in_a_few_lines() {
    let value = format!("openat,{}", "x".repeat(100_000));
    let cid = id("huge-annotation");
    let out = ctr(&[
        "run",
        "--rm",
        "--runtime",
        CRT,
        "--annotation",
        &format!("crt.dev/trace={value}"),
        IMAGE,
        &cid,
        "true",
    ]);
    let _ = ctr(&["container", "rm", &cid]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("crt.dev/trace"), "{out:?}");
    assert!(
        out.stderr.len() < 2048,
        "{} bytes of error for a {}-byte value",
        out.stderr.len(),
        value.len()
    );
}
