//! Commands served by crtd: `trace` (history, and `-f` to follow it),
//! `ps` (the tenant's pods, containers and processes with syscall rates) and
//! `top` (the same, refreshed).

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use crt_tracer::escape;
use crt_tracer::render::{local_time, parse_rfc3339_utc};
use serde_json::Value;

use crate::client::{enc, Client, ServerArgs};

pub struct TraceQuery {
    pub namespace: Option<String>,
    pub container: String,
    pub follow: bool,
    pub json: bool,
    pub since: Option<String>,
    pub until: Option<String>,
    pub syscall: Option<String>,
    pub pid: Option<String>,
    pub grep: Option<String>,
    pub logs: bool,
}

impl TraceQuery {
    fn query(&self) -> String {
        let mut q = format!("container={}&limit=1000", enc(&self.container));
        let mut add = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                q.push_str(&format!("&{k}={}", enc(v)));
            }
        };
        add("namespace", &self.namespace);
        add("since", &self.since);
        add("until", &self.until);
        add("syscall", &self.syscall);
        add("pid", &self.pid);
        add("grep", &self.grep);
        if self.logs {
            q.push_str("&logs=true");
        }
        q
    }
}

fn time_of(e: &Value) -> String {
    e["ts"]
        .as_str()
        .and_then(parse_rfc3339_utc)
        .map(local_time)
        .unwrap_or_else(|| "??:??:??.??????".into())
}

/// The strace-style line for an event from crtd (`None`: not shown as text).
pub fn text_line(e: &Value) -> Option<String> {
    let t = time_of(e);
    match e["event"].as_str()? {
        "syscall" => {
            let args: Vec<&str> = e["args"]
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let mut line = format!(
                "{t} [pid {}] {}({}) = ?",
                e["pid"],
                e["syscall"].as_str().unwrap_or("?"),
                args.join(", ")
            );
            if e["stale"] == true {
                line.push_str(" (arguments not read: the thread was gone)");
            }
            Some(line)
        }
        "log" => Some(format!(
            "{t} [{}] {}",
            e["stream"].as_str().unwrap_or("stdout"),
            escape::escape_text(e["line"].as_str().unwrap_or("").as_bytes())
        )),
        "drops" => Some(format!(
            "{t} --- crt: {} events dropped so far: the trace store could not keep up ---",
            e["dropped"]
        )),
        "end" => Some(format!("{t} +++ all processes exited +++")),
        _ => None,
    }
}

/// Writes lines; a reader that went away (`| head`) ends quietly.
fn emit(out: &mut impl Write, line: &str) -> io::Result<()> {
    writeln!(out, "{line}")
}

pub fn trace(q: &TraceQuery, server: &ServerArgs) -> Result<ExitCode> {
    let client = Client::resolve(server)?;
    let base = format!("/v1/events?{}", q.query());
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut cursor: Option<String> = None;
    let mut dropped = 0u64;
    let mut ended = false;
    let mut idle_polls = 0u32;
    let mut waited = 0u32;
    loop {
        let path = match &cursor {
            Some(c) => format!("{base}&cursor={c}"),
            None => base.clone(),
        };
        let page = client.get(&path)?;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        for e in &events {
            if e["event"] == "drops" {
                dropped = dropped.max(e["dropped"].as_u64().unwrap_or(0));
            }
            if e["event"] == "end" {
                ended = true;
            }
            let line = if q.json {
                Some(e.to_string())
            } else {
                text_line(e)
            };
            if let Some(l) = line {
                if let Err(err) = emit(&mut out, &l) {
                    if err.kind() == io::ErrorKind::BrokenPipe {
                        return Ok(ExitCode::SUCCESS);
                    }
                    return Err(err).context("writing to stdout");
                }
            }
        }
        cursor = page["next"].as_str().map(str::to_string);
        let more = page["more"].as_bool().unwrap_or(false);
        if more {
            continue;
        }
        if ended {
            break;
        }
        if !q.follow {
            // A container that just exited may still be on its way into
            // crtd's history: wait (briefly) for its end to arrive.
            if waited < 15 && container_finished(&client, q)? {
                waited += 1;
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            break;
        }
        if out.flush().is_err() {
            return Ok(ExitCode::SUCCESS);
        }
        // Following: stop once the container is gone and nothing new came.
        if events.is_empty() {
            idle_polls += 1;
            if idle_polls.is_multiple_of(10) && container_finished(&client, q)? {
                break;
            }
        } else {
            idle_polls = 0;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = out.flush();
    if dropped > 0 {
        eprintln!(
            "crtctl: {dropped} events were dropped because the trace store could not keep up (raise trace.queue_bytes in the node config)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn container_finished(client: &Client, q: &TraceQuery) -> Result<bool> {
    let mut path = "/v1/containers".to_string();
    if let Some(ns) = &q.namespace {
        path.push_str(&format!("?namespace={}", enc(ns)));
    }
    let v = client.get(&path)?;
    let mine: Vec<&Value> = v["containers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| c["id"] == q.container.as_str())
                .collect()
        })
        .unwrap_or_default();
    Ok(mine
        .iter()
        .all(|c| c["status"] != "running" && c["status"] != "created"))
}

#[derive(Args)]
pub struct PsArgs {
    /// The topology as JSON.
    #[arg(long)]
    json: bool,
    /// Also containers that are gone but whose history is kept.
    #[arg(short, long)]
    all: bool,
}

#[derive(Args)]
pub struct TopArgs {
    /// Seconds between refreshes.
    #[arg(short = 'd', long, default_value_t = 2)]
    delay: u64,
    /// Stop after this many refreshes (0: until interrupted).
    #[arg(short = 'n', long, default_value_t = 0)]
    iterations: u64,
    /// One JSON topology per line, each refresh, instead of a screen.
    #[arg(long)]
    json: bool,
}

fn human_bytes(v: &Value) -> String {
    match v.as_u64() {
        Some(b) if b >= 1 << 30 => format!("{:.1}G", b as f64 / (1u64 << 30) as f64),
        Some(b) if b >= 1 << 20 => format!("{:.1}M", b as f64 / (1u64 << 20) as f64),
        Some(b) => format!("{:.0}K", b as f64 / 1024.0),
        None => "-".into(),
    }
}

fn human_cpu(v: &Value) -> String {
    match v.as_u64() {
        Some(ns) => format!("{:.2}s", ns as f64 / 1e9),
        None => "-".into(),
    }
}

fn container_line(out: &mut String, c: &Value, indent: &str) {
    let name = format!(
        "{}/{}",
        escape::escape(c["namespace"].as_str().unwrap_or("").as_bytes()),
        escape::escape(c["id"].as_str().unwrap_or("").as_bytes())
    );
    let k8s = c["kubernetes"]["container"]
        .as_str()
        .filter(|s| !s.is_empty());
    let label = match k8s {
        Some(k) => format!("{} ({name})", escape::escape(k.as_bytes())),
        None => name,
    };
    out.push_str(&format!(
        "{indent}{:<w$} {:<8} {:>9.1} {:>9} {:>8} {}\n",
        label,
        c["status"].as_str().unwrap_or("?"),
        c["syscall_rate"].as_f64().unwrap_or(0.0),
        human_cpu(&c["cpu_usage_ns"]),
        human_bytes(&c["memory_bytes"]),
        if c["traced"] == true { "traced" } else { "" },
        w = 44usize.saturating_sub(indent.len()),
    ));
    for p in c["processes"].as_array().into_iter().flatten() {
        let cmd: Vec<&str> = p["cmdline"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        out.push_str(&format!(
            "{indent}  {:<8} {:<3} {:>9.1}/s  {}\n",
            p["pid"],
            p["state"].as_str().unwrap_or("?"),
            p["syscall_rate"].as_f64().unwrap_or(0.0),
            if cmd.is_empty() {
                p["comm"].as_str().unwrap_or("").to_string()
            } else {
                cmd.join(" ")
            }
        ));
    }
}

/// The topology as the tree `ps` and `top` print.
pub fn render_tree(t: &Value) -> String {
    let mut out = format!(
        "{:<44} {:<8} {:>9} {:>9} {:>8}\n",
        "POD / CONTAINER", "STATUS", "SYSCALL/s", "CPU", "MEMORY"
    );
    for p in t["pods"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "pod {}/{}  ({:.1} syscalls/s)\n",
            escape::escape(p["namespace"].as_str().unwrap_or("").as_bytes()),
            escape::escape(p["name"].as_str().unwrap_or("").as_bytes()),
            p["syscall_rate"].as_f64().unwrap_or(0.0)
        ));
        for c in p["containers"].as_array().into_iter().flatten() {
            container_line(&mut out, c, "  ");
        }
    }
    for c in t["containers"].as_array().into_iter().flatten() {
        container_line(&mut out, c, "");
    }
    out
}

pub fn ps(a: PsArgs, server: &ServerArgs) -> Result<ExitCode> {
    let client = Client::resolve(server)?;
    let t = client.get(if a.all {
        "/v1/topology?all=true"
    } else {
        "/v1/topology"
    })?;
    if a.json {
        println!("{t}");
    } else {
        print!("{}", render_tree(&t));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn top(a: TopArgs, server: &ServerArgs) -> Result<ExitCode> {
    let client = Client::resolve(server)?;
    let mut n = 0;
    loop {
        let t = client.get("/v1/topology")?;
        if a.json {
            println!("{t}");
        } else {
            // Clear the screen and home the cursor, then draw.
            print!("\x1b[H\x1b[2J{}", render_tree(&t));
        }
        let _ = io::stdout().flush();
        n += 1;
        if a.iterations > 0 && n >= a.iterations {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_secs(a.delay.max(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_from_crtd_print_as_strace_lines() {
        let e = json!({"event": "syscall", "ts": "2026-11-26T12:00:00.123456Z", "pid": 42,
            "syscall": "openat", "args": ["AT_FDCWD", "\"/etc/hosts\"", "O_RDONLY|O_CLOEXEC"]});
        let l = text_line(&e).unwrap();
        assert!(
            l.ends_with(
                ".123456 [pid 42] openat(AT_FDCWD, \"/etc/hosts\", O_RDONLY|O_CLOEXEC) = ?"
            ),
            "{l}"
        );
        let log = json!({"event": "log", "ts": "2026-11-26T12:00:00Z", "stream": "stderr", "line": "boom\u{1b}[2J"});
        let l = text_line(&log).unwrap();
        assert!(l.ends_with("[stderr] boom\\x1b[2J"), "{l}");
        assert!(text_line(&json!({"event": "process"})).is_none());
    }

    #[test]
    fn the_tree_shows_pods_containers_and_processes() {
        let t = json!({"pods": [{"namespace": "shop", "name": "web-0", "syscall_rate": 3.0, "containers": [
            {"namespace": "k8s.io", "id": "abc", "status": "running", "syscall_rate": 3.0, "traced": true,
             "cpu_usage_ns": 1500000000u64, "memory_bytes": 3145728, "kubernetes": {"container": "nginx"},
             "processes": [{"pid": 42, "state": "S", "syscall_rate": 3.0, "cmdline": ["nginx", "-g", "daemon off;"]}]}]}],
            "containers": [{"namespace": "default", "id": "x\u{1b}", "status": "stopped", "syscall_rate": 0.0}]});
        let out = render_tree(&t);
        assert!(out.contains("pod shop/web-0"), "{out}");
        assert!(out.contains("nginx (k8s.io/abc)"), "{out}");
        assert!(out.contains("1.50s") && out.contains("3.0M"), "{out}");
        assert!(out.contains("nginx -g daemon off;"), "{out}");
        assert!(out.contains("default/x\\x1b"), "{out}");
    }
}
