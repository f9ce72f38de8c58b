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
use crt_tracer::decode::RenderOptions;
use crt_tracer::escape::{self, StringStyle};
use crt_tracer::node_files::TraceMeta;
use crt_tracer::record::{Record, KIND_DROPS, KIND_END, KIND_LOG, KIND_SYSCALL};
use crt_tracer::render::{self, Source};
use crt_tracer::results::ResultFilter;
use crt_tracer::segment::TraceReader;
use crt_tracer::summary::Summary;

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
    /// Show the time spent in each syscall, as strace -T: ` <0.000021>`.
    #[arg(short = 'T')]
    durations: bool,
    /// Non-printable bytes of strings in hex (`\x01`) instead of octal, as
    /// strace -x; twice (-xx): every byte in hex.
    #[arg(short = 'x', action = clap::ArgAction::Count)]
    hex: u8,
    /// Most bytes of a data buffer shown (as strace -s; 32 by default).
    #[arg(short = 's', long = "string-limit", value_name = "N")]
    string_limit: Option<usize>,
    /// Only syscalls that returned an error (strace -Z).
    #[arg(short = 'Z', long = "failed")]
    failed: bool,
    /// Only syscalls that did not return an error (strace -z).
    #[arg(short = 'z', long = "successful")]
    successful: bool,
    /// Only syscalls that failed with this error: a name (ENOENT) or number;
    /// repeat it or give a comma list.
    #[arg(long = "errno", value_name = "ERRNO")]
    errno: Vec<String>,
    /// Only syscalls that took at least this long: 500ns, 250us, 1.5ms, 2s.
    #[arg(long = "slower-than", value_name = "DURATION")]
    slower_than: Option<String>,
    /// Count calls, errors and time per syscall instead of printing them, as
    /// strace -c (over --since/--until, and the other filters); with --json,
    /// the numbers as crtd's /v1/summary gives them.
    #[arg(short = 'c', long = "summary")]
    summary: bool,
    /// Read this node's trace files directly (root on the node; no crtd needed,
    /// only what the shim still holds; no --syscall, --pid or --grep).
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
    durations: bool,
    /// -x, -xx, -s.
    render: RenderOptions,
    results: ResultFilter,
    summary: bool,
    /// Bounds on the records' time, ns: `since <= ts < until`.
    since: Option<u64>,
    until: Option<u64>,
}

impl TraceArgs {
    /// The result conditions the flags ask for, checked: a bad value is
    /// named with its flag and what is expected.
    fn results(&self) -> Result<ResultFilter> {
        let mut r = ResultFilter {
            failed: self.failed,
            succeeded: self.successful,
            ..Default::default()
        };
        r.add_errnos("--errno", &self.errno)
            .map_err(anyhow::Error::msg)?;
        if let Some(v) = &self.slower_than {
            r.set_slower_than("--slower-than", v)
                .map_err(anyhow::Error::msg)?;
        }
        r.check()
            .map_err(|e| anyhow::anyhow!("--{}", e.replacen(" and ", " and --", 1)))?;
        if self.summary && (self.follow || self.logs) {
            bail!("-c (--summary) prints one table for the range: not with -f or --logs");
        }
        Ok(r)
    }

    /// How arguments are rendered (-x, -xx, -s).
    fn render_options(&self) -> RenderOptions {
        RenderOptions {
            strings: match self.hex {
                0 => StringStyle::Octal,
                1 => StringStyle::Hex,
                _ => StringStyle::AllHex,
            },
            string_limit: self
                .string_limit
                .unwrap_or(RenderOptions::default().string_limit),
        }
    }

    fn into_remote(self, results: ResultFilter) -> crate::remote::TraceQuery {
        crate::remote::TraceQuery {
            render: self.render_options(),
            durations: self.durations,
            results,
            summary: self.summary,
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
    let results = a.results()?;
    if !a.local {
        return crate::remote::trace(&a.into_remote(results), server);
    }
    if a.syscall.is_some() || a.pid.is_some() || a.grep.is_some() {
        bail!("--local reads the shim's trace as it is: --syscall, --pid and --grep need crtd (drop --local)");
    }
    let now = render::now_ns();
    let bound = |flag: &str, v: &Option<String>| -> Result<Option<u64>> {
        v.as_deref()
            .map(|v| {
                crate::remote::absolute_time(flag, v, now)
                    .map(|t| render::parse_rfc3339_utc(&t).unwrap_or(0))
            })
            .transpose()
    };
    let a = LocalArgs {
        render: a.render_options(),
        since: bound("since", &a.since)?,
        until: bound("until", &a.until)?,
        namespace: a.namespace.unwrap_or_else(|| "default".into()),
        follow: a.follow,
        json: a.json,
        logs: a.logs,
        container: a.container,
        durations: a.durations,
        results,
        summary: a.summary,
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
    let meta = TraceMeta::read(&dir).unwrap_or_default();
    if a.summary {
        return local_summary(&dir, &a, &meta);
    }
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if !a.json {
        if let Some(why) = &meta.results_unavailable {
            let _ = writeln!(out, "{}", no_results_line(why));
        }
    }
    let opts = render::TextOptions {
        durations: a.durations,
    };
    let shown = a.render;
    let line_of = |rec: &Record<'_>| -> Option<String> {
        if !a.wants(rec) {
            return None;
        }
        if a.json {
            Some(render::json_line_with(src, rec, &shown))
        } else {
            render::text_line_with(rec, &shown, opts)
        }
    };
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
                let line = if shown { line_of(rec) } else { None };
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
                if let Some(l) = line_of(rec) {
                    let _ = writeln!(out, "{l}");
                }
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

impl LocalArgs {
    /// Whether a record passes the time bounds and, for a syscall, the
    /// result conditions (other kinds say how complete the trace is: kept).
    fn wants(&self, rec: &Record<'_>) -> bool {
        if self.since.is_some_and(|s| rec.ts_ns < s) || self.until.is_some_and(|u| rec.ts_ns >= u) {
            return false;
        }
        match rec.kind {
            KIND_SYSCALL => self.results.matches(rec),
            _ => true,
        }
    }
}

/// The line a text trace starts with when its calls have no results.
pub fn no_results_line(why: &str) -> String {
    format!(
        "--- crt: no return values in this trace: {} ---",
        escape::escape_text(why.as_bytes())
    )
}

/// `crtctl trace --local -c`: the summary of what the shim still holds.
fn local_summary(dir: &std::path::Path, a: &LocalArgs, meta: &TraceMeta) -> Result<ExitCode> {
    let mut summary = Summary::default();
    let mut reader = TraceReader::open(dir);
    let status = reader
        .poll(|rec| {
            if a.wants(rec) {
                summary.add(rec);
            }
        })
        .with_context(|| format!("reading {}", dir.display()))?;
    let table = if a.json {
        let mut v = summary.to_json();
        v["results_unavailable"] = serde_json::json!(meta.results_unavailable);
        format!("{v}\n")
    } else {
        crt_tracer::summary::table(&summary.rows(), meta.results_unavailable.as_deref())
    };
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(table.as_bytes()).and_then(|_| out.flush()) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            return Err(e).context("writing to stdout");
        }
    }
    if status.segments_missed > 0 {
        eprintln!(
            "crtctl: {} trace segments were deleted before they could be read: the counts miss their calls",
            status.segments_missed
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

    fn trace_args(args: &[&str]) -> TraceArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            a: TraceArgs,
        }
        let mut all = vec!["crtctl"];
        all.extend_from_slice(args);
        <Cli as clap::Parser>::try_parse_from(all).unwrap().a
    }

    fn results_error(args: &[&str]) -> String {
        trace_args(args).results().unwrap_err().to_string()
    }

    #[test]
    fn result_flags_become_one_checked_filter() {
        let r = trace_args(&[
            "-Z",
            "--errno",
            "ENOENT",
            "--errno",
            "eacces,4",
            "--slower-than",
            "1.5ms",
            "web",
        ])
        .results()
        .unwrap();
        assert_eq!(
            r,
            ResultFilter {
                failed: true,
                succeeded: false,
                errnos: vec![2, 13, 4],
                min_duration_ns: Some(1_500_000),
            }
        );
        assert!(
            trace_args(&["--successful", "web"])
                .results()
                .unwrap()
                .succeeded
        );
        assert!(trace_args(&["-z", "-T", "web"]).durations);
    }

    #[test]
    fn bad_result_flags_name_the_flag_the_value_and_what_is_expected() {
        let e = results_error(&["--errno", "ENOENT,ENOPE", "web"]);
        assert!(
            e.starts_with("--errno \"ENOPE\": not an error; expected a name like ENOENT"),
            "{e}"
        );
        let e = results_error(&["--slower-than", "1m", "web"]);
        assert!(
            e.starts_with("--slower-than \"1m\": not a duration; expected a number with a unit: 500ns, 250us, 1.5ms, 2s"),
            "{e}"
        );
        let e = results_error(&["--failed", "--successful", "web"]);
        assert!(
            e.starts_with("--failed and --successful exclude each other"),
            "{e}"
        );
        let e = results_error(&["-c", "-f", "web"]);
        assert!(e.contains("not with -f"), "{e}");
    }

    #[test]
    fn local_records_pass_by_time_and_result() {
        use crt_tracer::record::{decode, RecordBuilder};
        let rec = |ts: u64, result: Option<i64>| {
            let mut buf = Vec::new();
            let mut b =
                RecordBuilder::begin(&mut buf, KIND_SYSCALL, ts, 1, 0xc000_003e, 2, &[0; 6]);
            if let Some(r) = result {
                b.result(r, Some(10));
            }
            b.finish();
            buf
        };
        let a = LocalArgs {
            namespace: "default".into(),
            follow: false,
            json: false,
            logs: false,
            container: "c".into(),
            durations: false,
            render: RenderOptions::default(),
            results: ResultFilter {
                failed: true,
                ..Default::default()
            },
            summary: false,
            since: Some(10),
            until: Some(20),
        };
        let wants = |buf: &Vec<u8>| a.wants(&decode(buf).unwrap().0);
        assert!(wants(&rec(10, Some(-2))));
        assert!(!wants(&rec(10, Some(3))));
        assert!(!wants(&rec(10, None)));
        assert!(!wants(&rec(9, Some(-2))));
        assert!(!wants(&rec(20, Some(-2))));
        let end = crt_tracer::record::simple(KIND_END, 15, 0, &[0; 6], b"");
        assert!(wants(&end));
        assert_eq!(
            no_results_line("no BPF\n"),
            "--- crt: no return values in this trace: no BPF\\n ---"
        );
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
