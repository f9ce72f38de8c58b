//! crt-bench: helpers for scripts/bench.sh (not installed on nodes).
//!
//!   crt-bench gen    --traces DIR --namespace NS --container ID --events N --span-secs S
//!       writes a complete synthetic trace, as a shim would, for crtd to ingest
//!   crt-bench query  --socket PATH --namespace NS --container ID --syscall NAME
//!                    --from-ns A --to-ns B --window-secs W (--count N | --duration-secs D)
//!       runs filtered history queries (container + syscall + time window) and
//!       prints their latency percentiles
//!   crt-bench watch  --socket PATH --pid PID --target N --timeout-secs S
//!       follows crtd's ingested-events counter until it reaches N; prints the
//!       ingest rate and crtd's peak resident memory
//!   crt-bench load   --socket PATH --addr HOST:PORT --token T --pid PID
//!                    --streams S --idle I --count Q
//!       holds S live streams open on the root socket (never read, the worst
//!       case for crtd's memory) and I idle TCP connections that never send a
//!       request, then times Q tenant requests (GET /v1/containers with the
//!       token); prints their latency percentiles and crtd's resident memory
//!
//! Output is `key=value` lines for the script to read.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use crt_tracer::node_files::TraceMeta;
use crt_tracer::record::{self, RecordBuilder, KIND_END, KIND_SYSCALL};
use crt_tracer::render::now_ns;
use crt_tracer::segment::{Limits, SegmentWriter};
use crt_tracer::syscalls::{self, NATIVE_AUDIT_ARCH};

fn args() -> (String, HashMap<String, String>) {
    let mut it = std::env::args().skip(1);
    let cmd = it.next().unwrap_or_default();
    let mut map = HashMap::new();
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        map.insert(k.trim_start_matches("--").to_string(), v);
    }
    (cmd, map)
}

fn get<T: std::str::FromStr>(m: &HashMap<String, String>, k: &str) -> Result<T> {
    let v = m.get(k).with_context(|| format!("--{k} is required"))?;
    v.parse()
        .ok()
        .with_context(|| format!("--{k} {v:?} is not valid"))
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A program's syscalls: openat 25%, read 25%, write 20%, close 20%, getppid 10%.
fn gen(m: &HashMap<String, String>) -> Result<()> {
    let traces: PathBuf = get(m, "traces")?;
    let ns: String = get(m, "namespace")?;
    let id: String = get(m, "container")?;
    let events: u64 = get(m, "events")?;
    let span_s: u64 = get(m, "span-secs")?;
    let end_ns = now_ns();
    let start_ns: u64 = m
        .get("start-ns")
        .and_then(|v| v.parse().ok())
        .unwrap_or(end_ns - span_s * 1_000_000_000);
    let dir = traces.join(&ns).join(&id);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let nr = |n: &str| {
        syscalls::by_name(n)
            .map(|s| s.nr)
            .context("a known syscall")
    };
    let (openat, read, write, close, getppid) = (
        nr("openat")?,
        nr("read")?,
        nr("write")?,
        nr("close")?,
        nr("getppid")?,
    );
    let mut w = SegmentWriter::create(
        &dir,
        Limits {
            segment_bytes: 8 << 20,
            max_bytes: u64::MAX,
        },
    )?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let step = (span_s * 1_000_000_000) / events.max(1);
    let mut batch = Vec::with_capacity(1 << 20);
    for i in 0..events {
        let ts = start_ns + i * step;
        let tid = 1000 + (rng.next() % 4) as u32;
        let pick = rng.next() % 20;
        let fd = 3 + rng.next() % 30;
        let (n, a) = match pick {
            0..=4 => (
                openat,
                [(-100i64) as u64, 0x7f00_0000_1000, 0o2_000_000, 0, 0, 0],
            ),
            5..=9 => (read, [fd, 0x7f00_0000_2000, 4096, 0, 0, 0]),
            10..=13 => (write, [fd, 0x7f00_0000_3000, 32, 0, 0, 0]),
            14..=17 => (close, [fd, 0, 0, 0, 0, 0]),
            _ => (getppid, [0; 6]),
        };
        let mut r =
            RecordBuilder::begin(&mut batch, KIND_SYSCALL, ts, tid, NATIVE_AUDIT_ARCH, n, &a);
        r.set_comm(b"app-server");
        if n == openat {
            let path = format!("/srv/app/data/{:05}.json", rng.next() % 50_000);
            r.bytes(1, path.as_bytes(), false);
        } else if n == write {
            r.bytes(1, b"GET /healthz HTTP/1.1\r\nHost: app", false);
        }
        r.finish();
        if batch.len() >= 1 << 20 {
            w.append(&batch)?;
            batch.clear();
        }
    }
    batch.extend_from_slice(&record::simple(KIND_END, end_ns, 0, &[0; 6], b""));
    w.append(&batch)?;
    w.sync()?;
    let meta = TraceMeta {
        namespace: ns.to_string(),
        container: id.to_string(),
        annotation: "%all".into(),
        created: crt_tracer::render::rfc3339_utc(start_ns),
        created_ns: start_ns,
        kubernetes: Some(Default::default()),
        ..Default::default()
    };
    // The meta file last: crtd follows a trace once it has one.
    crt_tracer::node_files::write_private(
        &dir.join(crt_tracer::node_files::META_FILE),
        &serde_json::to_vec_pretty(&meta)?,
    )?;
    println!("events={events}");
    println!("start_ns={start_ns}");
    println!("end_ns={end_ns}");
    Ok(())
}

/// GET over crtd's root socket: (status, body).
fn get_unix(socket: &Path, path: &str) -> Result<(u16, Vec<u8>)> {
    let mut s = UnixStream::connect(socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: crtd\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("a whole response")?;
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("a status")?;
    Ok((status, buf[head_end + 4..].to_vec()))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn query(m: &HashMap<String, String>) -> Result<()> {
    let socket: PathBuf = get(m, "socket")?;
    let ns: String = get(m, "namespace")?;
    let id: String = get(m, "container")?;
    let syscall: String = get(m, "syscall")?;
    let from: u64 = get(m, "from-ns")?;
    let to: u64 = get(m, "to-ns")?;
    let window: u64 = get::<u64>(m, "window-secs")? * 1_000_000_000;
    let limit: u64 = m.get("limit").and_then(|v| v.parse().ok()).unwrap_or(100);
    let count: Option<u64> = m.get("count").and_then(|v| v.parse().ok());
    let duration: Option<u64> = m.get("duration-secs").and_then(|v| v.parse().ok());
    let stop_file = m.get("stop-file").map(PathBuf::from);
    let deadline = duration.map(|d| Instant::now() + Duration::from_secs(d));
    let mut rng = Rng(now_ns() | 1);
    let mut lat = Vec::new();
    let (mut errors, mut events) = (0u64, 0u64);
    loop {
        if count.is_some_and(|c| lat.len() as u64 + errors >= c)
            || deadline.is_some_and(|d| Instant::now() >= d)
            || stop_file.as_ref().is_some_and(|f| f.exists())
        {
            break;
        }
        let span = to.saturating_sub(from).saturating_sub(window).max(1);
        let since = from + rng.next() % span;
        let path = format!(
            "/v1/events?namespace={ns}&container={id}&syscall={syscall}&since={}&until={}&limit={limit}",
            crt_tracer::render::rfc3339_utc(since),
            crt_tracer::render::rfc3339_utc(since + window)
        );
        let t = Instant::now();
        match get_unix(&socket, &path) {
            Ok((200, body)) => {
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                let v: serde_json::Value = serde_json::from_slice(&body)?;
                events += v["events"].as_array().map_or(0, |e| e.len() as u64);
            }
            Ok((code, body)) => {
                errors += 1;
                if errors == 1 {
                    eprintln!("crt-bench: HTTP {code}: {}", String::from_utf8_lossy(&body));
                }
            }
            Err(e) => {
                errors += 1;
                if errors == 1 {
                    eprintln!("crt-bench: {e:#}");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    lat.sort_by(f64::total_cmp);
    println!("queries={}", lat.len());
    println!("errors={errors}");
    println!("events_returned={events}");
    println!("p50_ms={:.2}", percentile(&lat, 50.0));
    println!("p99_ms={:.2}", percentile(&lat, 99.0));
    println!("max_ms={:.2}", lat.last().copied().unwrap_or(f64::NAN));
    Ok(())
}

fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn ingested(socket: &Path) -> Option<u64> {
    let (_, body) = get_unix(socket, "/metrics").ok()?;
    String::from_utf8_lossy(&body)
        .lines()
        .find(|l| l.starts_with("crtd_ingested_events_total "))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

fn watch(m: &HashMap<String, String>) -> Result<()> {
    let socket: PathBuf = get(m, "socket")?;
    let pid: u32 = get(m, "pid")?;
    let target: u64 = get(m, "target")?;
    let timeout = Duration::from_secs(get(m, "timeout-secs")?);
    let t0 = Instant::now();
    let mut first: Option<(Instant, u64)> = None;
    let mut last = 0;
    let mut peak = 0;
    while t0.elapsed() < timeout {
        let n = ingested(&socket).unwrap_or(0);
        peak = peak.max(rss_kb(pid).unwrap_or(0));
        if n > 0 && first.is_none() {
            first = Some((Instant::now(), n));
        }
        last = n;
        if n >= target {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let Some((start, at_start)) = first else {
        bail!("crtd ingested nothing in {timeout:?}");
    };
    if last < target {
        bail!("crtd ingested {last} of {target} events in {timeout:?}");
    }
    let secs = start.elapsed().as_secs_f64();
    println!("ingested={last}");
    println!("seconds={secs:.2}");
    println!(
        "rate={:.0}",
        (last - at_start) as f64 / secs.max(f64::MIN_POSITIVE)
    );
    println!("peak_rss_kb={peak}");
    Ok(())
}

/// GET over TCP with a bearer token: the status.
fn get_tcp(addr: &str, path: &str, token: &str) -> Result<u16> {
    let mut s =
        std::net::TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: crtd\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let head = String::from_utf8_lossy(&buf[..buf.len().min(64)]).to_string();
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("a status")
}

fn load(m: &HashMap<String, String>) -> Result<()> {
    let socket: PathBuf = get(m, "socket")?;
    let addr: String = get(m, "addr")?;
    let token: String = get(m, "token")?;
    let pid: u32 = get(m, "pid")?;
    let streams: usize = get(m, "streams")?;
    let idle: usize = get(m, "idle")?;
    let count: usize = get(m, "count")?;
    let rss_before = rss_kb(pid).unwrap_or(0);
    // Live streams, opened and never read.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..streams {
        let mut s = UnixStream::connect(&socket)?;
        write!(s, "GET /v1/events/stream HTTP/1.1\r\nHost: crtd\r\n\r\n")?;
        let mut head = [0u8; 12];
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.read_exact(&mut head)?;
        if &head[9..12] != b"200" {
            refused += 1;
        }
        held.push(s);
    }
    // Idle connections: no request, ever.
    let mut idle_held = Vec::new();
    for _ in 0..idle {
        match std::net::TcpStream::connect(&addr) {
            Ok(s) => idle_held.push(s),
            Err(_) => break,
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut lat = Vec::new();
    let mut errors = 0u64;
    for _ in 0..count {
        let t = Instant::now();
        match get_tcp(&addr, "/v1/containers", &token) {
            Ok(200) => lat.push(t.elapsed().as_secs_f64() * 1000.0),
            _ => errors += 1,
        }
    }
    lat.sort_by(f64::total_cmp);
    println!("streams_open={}", held.len() - refused);
    println!("streams_refused={refused}");
    println!("idle_open={}", idle_held.len());
    println!("requests={}", lat.len());
    println!("errors={errors}");
    println!("p50_ms={:.2}", percentile(&lat, 50.0));
    println!("p99_ms={:.2}", percentile(&lat, 99.0));
    println!("rss_before_kb={rss_before}");
    println!("rss_kb={}", rss_kb(pid).unwrap_or(0));
    drop(held);
    drop(idle_held);
    std::thread::sleep(Duration::from_secs(2));
    println!("rss_after_close_kb={}", rss_kb(pid).unwrap_or(0));
    Ok(())
}

fn main() -> std::process::ExitCode {
    let (cmd, m) = args();
    let r = match cmd.as_str() {
        "gen" => gen(&m),
        "query" => query(&m),
        "watch" => watch(&m),
        "load" => load(&m),
        _ => {
            eprintln!(
                "usage: crt-bench gen|query|watch|load --key value ... (see the source's header)"
            );
            return std::process::ExitCode::from(2);
        }
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crt-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
