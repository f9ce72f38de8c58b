//! `crtctl trace` and `crtctl ls`: read trace segments straight from the
//! node's state directory (root only; tenants go through crtd).

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use crt_config::NodeConfig;
use crt_tracer::escape;
use crt_tracer::node_files::TraceMeta;
use crt_tracer::record::{Record, KIND_DROPS, KIND_END, KIND_LOG, KIND_SYSCALL};
use crt_tracer::render::{self, Source};
use crt_tracer::segment::TraceReader;

#[derive(Args)]
pub struct TraceArgs {
    /// containerd (or Kubernetes) namespace of the container [--local: default "default"].
    #[arg(short = 'n', long = "namespace", env = "CONTAINERD_NAMESPACE")]
    namespace: Option<String>,
    /// Keep printing new events until the container exits.
    #[arg(short = 'f', long = "follow")]
    follow: bool,
    /// One JSON object per line instead of strace-style text.
    #[arg(long)]
    json: bool,
    /// Only events since this time: RFC 3339 (UTC) or a span back from now (10m, 2h, 1d).
    #[arg(long)]
    since: Option<String>,
    /// Only events before this time.
    #[arg(long)]
    until: Option<String>,
    /// Only these syscalls (comma list).
    #[arg(long)]
    syscall: Option<String>,
    /// Only these thread ids (comma list).
    #[arg(long)]
    pid: Option<String>,
    /// Only events whose text contains this.
    #[arg(long)]
    grep: Option<String>,
    /// Interleave what the container wrote to stdout and stderr.
    #[arg(long)]
    logs: bool,
    /// Read this node's trace files directly (root on the node; no crtd needed,
    /// no filters, only what the shim still holds).
    #[arg(long)]
    local: bool,
    /// The container id.
    container: String,
}

struct LocalArgs {
    namespace: String,
    follow: bool,
    json: bool,
    logs: bool,
    container: String,
}

impl TraceArgs {
    fn into_remote(self) -> crate::remote::TraceQuery {
        crate::remote::TraceQuery {
            namespace: self.namespace,
            container: self.container,
            follow: self.follow,
            json: self.json,
            since: self.since,
            until: self.until,
            syscall: self.syscall,
            pid: self.pid,
            grep: self.grep,
            logs: self.logs,
        }
    }
}

#[derive(Args)]
pub struct LsArgs {
    /// Only this containerd namespace.
    #[arg(short = 'n', long = "namespace")]
    namespace: Option<String>,
    /// One JSON object per trace instead of a table.
    #[arg(long)]
    json: bool,
}

/// A path component a user typed must not walk out of the trace store.
fn check_name(kind: &str, name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        bail!(
            "{kind} {} is not a valid name",
            escape::quote(name.as_bytes(), false)
        );
    }
    Ok(())
}

fn shim_alive(meta: &TraceMeta) -> bool {
    match meta.shim_pid {
        // SAFETY: signal 0 only checks that the process exists.
        pid if pid > 0 => unsafe { libc::kill(pid as i32, 0) == 0 },
        _ => false,
    }
}

pub fn run(a: TraceArgs, server: &crate::settings::ServerArgs) -> Result<ExitCode> {
    if !a.local {
        return crate::remote::trace(&a.into_remote(), server);
    }
    if a.since.is_some()
        || a.until.is_some()
        || a.syscall.is_some()
        || a.pid.is_some()
        || a.grep.is_some()
    {
        bail!("--local reads the shim's trace as it is: --since, --until, --syscall, --pid and --grep need crtd (drop --local)");
    }
    let a = LocalArgs {
        namespace: a.namespace.unwrap_or_else(|| "default".into()),
        follow: a.follow,
        json: a.json,
        logs: a.logs,
        container: a.container,
    };
    check_name("namespace", &a.namespace)?;
    check_name("container", &a.container)?;
    let config = NodeConfig::load_default()?;
    let dir = config.trace_dir(&a.namespace, &a.container);
    if !dir.join("meta.json").exists() {
        bail!(
            "no trace for container {} in namespace {} (looked in {}); is it running with the runtime io.containerd.crt.v2 and the annotation crt.dev/trace?",
            escape::quote(a.container.as_bytes(), false),
            escape::quote(a.namespace.as_bytes(), false),
            dir.display()
        );
    }
    let src = Source {
        namespace: &a.namespace,
        container: &a.container,
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut reader = TraceReader::open(&dir);
    let mut dropped = 0u64;
    let mut missed = 0u64;
    let mut write_err: Option<io::Error> = None;
    loop {
        let status = reader
            .poll(|rec: &Record<'_>| {
                if write_err.is_some() {
                    return;
                }
                if rec.kind == KIND_DROPS {
                    dropped = rec.args[0];
                }
                let shown = match rec.kind {
                    KIND_SYSCALL | KIND_DROPS | KIND_END => true,
                    KIND_LOG => a.logs,
                    _ => a.json,
                };
                let line = if !shown {
                    None
                } else if a.json {
                    Some(render::json_line(src, rec))
                } else {
                    render::text_line(rec)
                };
                if let Some(l) = line {
                    if let Err(e) = writeln!(out, "{l}") {
                        write_err = Some(e);
                    }
                }
            })
            .with_context(|| format!("reading {}", dir.display()))?;
        missed += status.segments_missed;
        if let Some(e) = write_err.take() {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return Ok(ExitCode::SUCCESS);
            }
            return Err(e).context("writing to stdout");
        }
        if !a.follow || status.ended {
            break;
        }
        if let Err(e) = out.flush() {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return Ok(ExitCode::SUCCESS);
            }
            return Err(e).context("writing to stdout");
        }
        if !TraceMeta::read(&dir).is_ok_and(|m| shim_alive(&m)) {
            // One last read, in case the end landed meanwhile.
            let st = reader.poll(|rec| {
                let _ = writeln!(
                    out,
                    "{}",
                    if a.json {
                        render::json_line(src, rec)
                    } else {
                        render::text_line(rec).unwrap_or_default()
                    }
                );
            })?;
            if !st.ended {
                let _ = out.flush();
                eprintln!("crtctl: the shim recording this trace is gone; the trace ends here");
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Err(e) = out.flush() {
        if e.kind() != io::ErrorKind::BrokenPipe {
            return Err(e).context("writing to stdout");
        }
    }
    if dropped > 0 {
        eprintln!(
            "crtctl: {dropped} events were dropped because the trace store could not keep up (raise trace.queue_bytes in the node config)"
        );
    }
    if missed > 0 {
        eprintln!(
            "crtctl: {missed} trace segments were deleted before they could be read (the trace is bounded by trace.max_trace_bytes)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn list(a: LsArgs) -> Result<ExitCode> {
    let config = NodeConfig::load_default()?;
    let root = config.trace.state_dir.join("traces");
    let namespaces: Vec<PathBuf> = match &a.namespace {
        Some(n) => {
            check_name("namespace", n)?;
            vec![root.join(n)]
        }
        None => match fs::read_dir(&root) {
            Ok(d) => d.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", root.display())),
        },
    };
    let mut rows = Vec::new();
    for ns in namespaces {
        let Ok(entries) = fs::read_dir(&ns) else {
            continue;
        };
        for e in entries.filter_map(|e| e.ok()) {
            let dir = e.path();
            let meta = match TraceMeta::read(&dir) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                // Listed all the same: its segments may still be read.
                Err(_) => TraceMeta::default(),
            };
            let mut ended = false;
            let mut events = 0u64;
            let _ = TraceReader::open(&dir).poll(|r| {
                if r.kind == KIND_END {
                    ended = true;
                }
                if r.kind == KIND_SYSCALL {
                    events += 1;
                }
            });
            let state = if ended {
                "exited"
            } else if shim_alive(&meta) {
                "live"
            } else {
                "incomplete"
            };
            if a.json {
                // JSON strings carry any text safely; they are not escaped twice.
                let row = serde_json::json!({
                    "namespace": ns.file_name().unwrap_or_default().to_string_lossy(),
                    "container": e.file_name().to_string_lossy(),
                    "state": state,
                    "events": events,
                    "annotation": meta.annotation,
                });
                println!("{row}");
                continue;
            }
            rows.push((
                escape::escape(ns.file_name().unwrap_or_default().as_encoded_bytes()),
                escape::escape(e.file_name().as_encoded_bytes()),
                state,
                events,
                escape::escape(meta.annotation.as_bytes()),
            ));
        }
    }
    if a.json {
        return Ok(ExitCode::SUCCESS);
    }
    rows.sort();
    println!(
        "{:<16} {:<40} {:<10} {:>10}  TRACE",
        "NAMESPACE", "CONTAINER", "STATE", "EVENTS"
    );
    for (ns, id, state, events, ann) in rows {
        println!("{ns:<16} {id:<40} {state:<10} {events:>10}  {ann}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_walk_out_of_the_trace_store() {
        for bad in ["", ".", "..", "../etc", "a/b", "x\0y"] {
            assert!(check_name("container", bad).is_err(), "{bad:?}");
        }
        for good in ["web", "k8s.io", "3f1c0a9e", "my_container-1"] {
            assert!(check_name("container", good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn a_bad_name_is_shown_escaped() {
        let e = check_name("container", "../\x1b[2J")
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\x1b'), "{e}");
        assert!(e.contains("\\x1b"), "{e}");
    }
}
