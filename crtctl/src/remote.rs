//! Commands served by crtd: `trace` (history, and `-f` to follow it),
//! `ps` (the tenant's pods, containers and processes with syscall rates) and
//! `top` (the same, refreshed).

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use crt_config::supervisor::parse_duration;
use crt_tracer::decode::RenderOptions;
use crt_tracer::escape;
use crt_tracer::render::{now_ns, parse_rfc3339_utc, rfc3339_utc, TextOptions};
use crt_tracer::results::ResultFilter;
use serde_json::Value;

use crate::client::{Client, Frame, StreamError};
use crate::settings::ServerArgs;

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
    /// `-T`: durations on text lines.
    pub durations: bool,
    /// `-x`, `-xx`, `-s`: how crtd renders arguments.
    pub render: RenderOptions,
    /// Conditions on results, checked already.
    pub results: ResultFilter,
    /// `-c`: the summary table instead of the events.
    pub summary: bool,
}

impl TraceQuery {
    /// The query string's pairs, with `--since`/`--until` as absolute
    /// times: `now_ns` turns a span back from now into the instant it names,
    /// once, so that every page of one query asks the same question (crtd
    /// refuses a cursor from a query with other bounds).
    fn query(&self, now_ns: u64) -> Result<Vec<(&'static str, String)>> {
        let mut q = vec![
            ("container", self.container.clone()),
            ("limit", "1000".to_string()),
        ];
        let mut add = |k: &'static str, v: &Option<String>| {
            if let Some(v) = v {
                q.push((k, v.clone()));
            }
        };
        add("namespace", &self.namespace);
        add("syscall", &self.syscall);
        add("pid", &self.pid);
        add("grep", &self.grep);
        if let Some(v) = &self.since {
            q.push(("since", absolute_time("since", v, now_ns)?));
        }
        if let Some(v) = &self.until {
            q.push(("until", absolute_time("until", v, now_ns)?));
        }
        if self.logs {
            q.push(("logs", "true".to_string()));
        }
        let r = &self.results;
        if r.failed {
            q.push(("failed", "true".to_string()));
        }
        if r.succeeded {
            q.push(("successful", "true".to_string()));
        }
        if !r.errnos.is_empty() {
            let list: Vec<String> = r.errnos.iter().map(i32::to_string).collect();
            q.push(("errno", list.join(",")));
        }
        if let Some(ns) = r.min_duration_ns {
            q.push(("slower_than", format!("{ns}ns")));
        }
        let defaults = RenderOptions::default();
        if self.render.strings != defaults.strings {
            q.push(("strings", self.render.strings.name().to_string()));
        }
        if self.render.string_limit != defaults.string_limit {
            q.push(("string_limit", self.render.string_limit.to_string()));
        }
        Ok(q)
    }
}

/// A `--since`/`--until` value as RFC 3339 in UTC: as given, or, for a span
/// back from now (`90s`, `10m`, `2h`, `1d`), `now_ns` minus the span.
pub fn absolute_time(flag: &str, v: &str, now_ns: u64) -> Result<String> {
    if parse_rfc3339_utc(v).is_some() {
        return Ok(v.to_string());
    }
    match parse_duration(v) {
        Some(span) => Ok(rfc3339_utc(
            now_ns.saturating_sub(u64::try_from(span.as_nanos()).unwrap_or(u64::MAX)),
        )),
        None => bail!(
            "--{flag} {}: not a time; expected RFC 3339 in UTC (2026-11-26T12:00:00Z) or a span back from now (90s, 10m, 2h, 1d)",
            escape::quote(v.as_bytes(), false)
        ),
    }
}

/// The strace-style line for an event from crtd (`None`: not shown as
/// text), with `-T`'s durations when asked.
fn text_line(e: &Value, durations: bool) -> Option<String> {
    crt_tracer::render::event_text_with(e, TextOptions { durations })
}

/// Writes lines; a reader that went away (`| head`) ends quietly.
fn emit(out: &mut impl Write, line: &str) -> io::Result<()> {
    writeln!(out, "{line}")
}

pub fn trace(q: &TraceQuery, server: &ServerArgs) -> Result<ExitCode> {
    let client = Client::resolve(server)?;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    trace_to(&client, q, &mut out)
}

/// What a trace printed so far says about it.
#[derive(Default)]
struct Printed {
    /// Events the shim dropped (its store could not keep up).
    dropped: u64,
    /// The trace's end came.
    ended: bool,
}

impl Printed {
    /// Prints one event; `Err` only if stdout went away.
    fn event(&mut self, e: &Value, q: &TraceQuery, out: &mut impl Write) -> io::Result<()> {
        let json = q.json;
        if e["event"] == "drops" {
            self.dropped = self.dropped.max(e["dropped"].as_u64().unwrap_or(0));
        }
        if e["event"] == "end" {
            self.ended = true;
        }
        let line = if json {
            Some(e.to_string())
        } else {
            text_line(e, q.durations)
        };
        match line {
            Some(l) => emit(out, &l),
            None => Ok(()),
        }
    }
}

/// Ends a trace quietly when stdout went away (`| head`).
fn stdout_gone(err: io::Error) -> Result<ExitCode> {
    if err.kind() == io::ErrorKind::BrokenPipe {
        return Ok(ExitCode::SUCCESS);
    }
    Err(err).context("writing to stdout")
}

fn trace_to(client: &Client, q: &TraceQuery, out: &mut impl Write) -> Result<ExitCode> {
    let query = q.query(now_ns())?;
    if q.summary {
        wait_for_the_end(client, q)?;
        return summary_to(client, &query, q.json, out);
    }
    if !q.json {
        if let Some(why) = results_unavailable(client, q)? {
            if let Err(err) = emit(out, &crate::trace::no_results_line(&why)) {
                return stdout_gone(err);
            }
        }
    }
    let mut cursor: Option<String> = None;
    let mut printed = Printed::default();
    let mut waited = 0u32;
    loop {
        let mut pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Some(c) = &cursor {
            pairs.push(("cursor", c));
        }
        let page = client.get("/v1/events", &pairs)?;
        for e in page["events"].as_array().into_iter().flatten() {
            if let Err(err) = printed.event(e, q, out) {
                return stdout_gone(err);
            }
        }
        cursor = page["next"].as_str().map(str::to_string);
        if page["more"].as_bool().unwrap_or(false) {
            continue;
        }
        if printed.ended {
            break;
        }
        if q.follow {
            // The history is printed: the live stream goes on from where it ended.
            if let Err(err) = follow(
                client,
                q,
                &query,
                cursor.unwrap_or_default(),
                &mut printed,
                out,
            )? {
                return stdout_gone(err);
            }
            break;
        }
        // A container that just exited may still be on its way into
        // crtd's history: wait (briefly) for its end to arrive.
        if waited < 15 && container_finished(client, q)? {
            waited += 1;
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        break;
    }
    let _ = out.flush();
    if printed.dropped > 0 {
        eprintln!(
            "crtctl: {} events were dropped because the trace store could not keep up (raise trace.queue_bytes in the node config)",
            printed.dropped
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// How long a quiet live stream waits before asking whether the container is done.
const QUIET: Duration = Duration::from_secs(3);
/// How long crtctl keeps trying to reach crtd again after losing it.
const RECONNECT_FOR: Duration = Duration::from_secs(120);

/// Follows the live stream from `resume` (the history's last cursor, then the
/// id of each event printed) until the trace ends or the container is gone.
/// A stream that breaks (crtd restarted, the network blinked) is opened again
/// from the last event printed: crtd sends what was missed, nothing twice.
/// The inner `Err` says stdout went away.
fn follow(
    client: &Client,
    q: &TraceQuery,
    query: &[(&'static str, String)],
    mut resume: String,
    printed: &mut Printed,
    out: &mut impl Write,
) -> Result<io::Result<()>> {
    let live: Vec<(&str, &str)> = query
        .iter()
        .filter(|(k, _)| !matches!(*k, "limit" | "since" | "until"))
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    let mut lost_at: Option<(std::time::Instant, String)> = None;
    let mut told_drops = 0u64;
    loop {
        let mut pairs = live.clone();
        if !resume.is_empty() {
            pairs.push(("after", resume.as_str()));
        }
        let stream = match client.events("/v1/events/stream", &pairs) {
            Ok(s) => s,
            Err(StreamError::Refused(e)) => return Err(e),
            Err(StreamError::Lost(e)) => {
                let since = lost_at.get_or_insert_with(|| {
                    eprintln!("crtctl: lost crtd ({e}); trying again");
                    (std::time::Instant::now(), e.to_string())
                });
                if since.0.elapsed() > RECONNECT_FOR {
                    return Err(e.context(format!(
                        "crtd did not come back within {} s",
                        RECONNECT_FOR.as_secs()
                    )));
                }
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
        };
        if lost_at.take().is_some() {
            eprintln!("crtctl: back on crtd; nothing missed");
        }
        loop {
            let frame = match stream.try_next() {
                Some(f) => f,
                None => {
                    if let Err(e) = out.flush() {
                        return Ok(Err(e));
                    }
                    match stream.next(QUIET) {
                        Some(f) => f,
                        // Quiet: a container that is gone will say nothing more.
                        None if container_finished(client, q)? => return Ok(Ok(())),
                        None => continue,
                    }
                }
            };
            match frame {
                Frame::Message { event, id, data } if event.is_empty() => {
                    let Ok(e) = serde_json::from_str::<Value>(&data) else {
                        continue;
                    };
                    if !id.is_empty() {
                        resume = id;
                    }
                    if let Err(err) = printed.event(&e, q, out) {
                        return Ok(Err(err));
                    }
                    if printed.ended {
                        return Ok(Ok(()));
                    }
                }
                Frame::Message { event, data, .. } if event == "drops" => {
                    let n = serde_json::from_str::<Value>(&data)
                        .ok()
                        .and_then(|v| v["dropped"].as_u64())
                        .unwrap_or(0);
                    if n > told_drops {
                        let _ = out.flush();
                        eprintln!(
                            "crtctl: crtd skipped {} events of the live stream because this terminal read too slowly",
                            n - told_drops
                        );
                        told_drops = n;
                    }
                }
                Frame::Message { .. } => {}
                Frame::Closed(why) => {
                    lost_at = Some((std::time::Instant::now(), why.clone()));
                    eprintln!("crtctl: the live stream broke ({why}); resuming");
                    break;
                }
            }
        }
    }
}

/// `crtctl trace -c`: crtd sums the range, crtctl prints strace's table.
fn summary_to(
    client: &Client,
    query: &[(&'static str, String)],
    json: bool,
    out: &mut impl Write,
) -> Result<ExitCode> {
    let pairs: Vec<(&str, &str)> = query
        .iter()
        .filter(|(k, _)| !matches!(*k, "limit" | "logs"))
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    let v = client.get("/v1/summary", &pairs)?;
    let table = if json {
        format!("{v}\n")
    } else {
        crt_tracer::summary::table(
            &crt_tracer::summary::rows_of(&v),
            v["results_unavailable"].as_str(),
        )
    };
    if let Err(err) = out.write_all(table.as_bytes()).and_then(|_| out.flush()) {
        return stdout_gone(err);
    }
    if v["truncated"] == true {
        eprintln!(
            "crtctl: the range was too large to sum at once: the table counts the calls up to {} (narrow it with --since/--until)",
            escape::escape(v["covered_until"].as_str().unwrap_or("?").as_bytes())
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A container that just exited may still be on its way into crtd's
/// history: waits (briefly) until its newest stored event is its end, so
/// that a summary of it counts all of it.
fn wait_for_the_end(client: &Client, q: &TraceQuery) -> Result<()> {
    for _ in 0..15 {
        if !container_finished(client, q)? {
            return Ok(());
        }
        let mut pairs = vec![
            ("container", q.container.as_str()),
            ("order", "desc"),
            ("limit", "1"),
        ];
        if let Some(ns) = &q.namespace {
            pairs.push(("namespace", ns.as_str()));
        }
        let newest = client.get("/v1/events", &pairs)?;
        if newest["events"][0]["event"] == "end" {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// The containers crtd lists that are the one asked for.
fn containers_named(client: &Client, q: &TraceQuery) -> Result<Vec<Value>> {
    let namespace: Vec<(&str, &str)> = q
        .namespace
        .iter()
        .map(|ns| ("namespace", ns.as_str()))
        .collect();
    let v = client.get("/v1/containers", &namespace)?;
    Ok(v["containers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| c["id"] == q.container.as_str())
                .cloned()
                .collect()
        })
        .unwrap_or_default())
}

/// Why the container's trace has no return values, if crtd says so.
fn results_unavailable(client: &Client, q: &TraceQuery) -> Result<Option<String>> {
    Ok(containers_named(client, q)?
        .iter()
        .find_map(|c| c["results_unavailable"].as_str().map(str::to_string)))
}

fn container_finished(client: &Client, q: &TraceQuery) -> Result<bool> {
    Ok(containers_named(client, q)?
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
    let label = match c["clone_of"].as_str() {
        Some(src) => format!("{label} (clone of {})", escape::escape(src.as_bytes())),
        None => label,
    };
    // How it ended, for those that did: crtd keeps the exit code of a
    // container CRI has long deleted.
    let status = c["status"].as_str().unwrap_or("?");
    let status = match c["exit_code"].as_i64() {
        Some(code) if status == "stopped" || status == "gone" => format!("{status} {code}"),
        _ => status.to_string(),
    };
    out.push_str(&format!(
        "{indent}{:<w$} {:<11} {:>9.1} {:>9} {:>8} {}\n",
        label,
        status,
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
            // A process names itself: shown escaped, like every container-made string.
            escape::escape(
                if cmd.is_empty() {
                    p["comm"].as_str().unwrap_or("").to_string()
                } else {
                    cmd.join(" ")
                }
                .as_bytes()
            )
        ));
    }
}

/// The topology as the tree `ps` and `top` print.
pub fn render_tree(t: &Value) -> String {
    let mut out = format!(
        "{:<44} {:<11} {:>9} {:>9} {:>8}\n",
        "POD / CONTAINER", "STATUS", "SYSCALL/s", "CPU", "MEMORY"
    );
    let pods: Vec<&Value> = t["pods"].as_array().into_iter().flatten().collect();
    let text = |v: &Value| escape::escape(v.as_str().unwrap_or("").as_bytes());
    for p in &pods {
        // Pods of one name (a StatefulSet's pod made again) are told apart by uid.
        let namesakes = pods
            .iter()
            .filter(|o| o["namespace"] == p["namespace"] && o["name"] == p["name"])
            .count();
        let uid = match p["uid"].as_str() {
            Some(u) if namesakes > 1 && !u.is_empty() => {
                format!(" [uid {}]", escape::escape(u.as_bytes()))
            }
            _ => String::new(),
        };
        out.push_str(&format!(
            "pod {}/{}{uid}  ({:.1} syscalls/s)\n",
            text(&p["namespace"]),
            text(&p["name"]),
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
    let all: &[(&str, &str)] = if a.all { &[("all", "true")] } else { &[] };
    let t = client.get("/v1/topology", all)?;
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
        let t = client.get("/v1/topology", &[])?;
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
    use crate::testserver::{self, Answer};
    use serde_json::json;

    const NOW: u64 = 1_764_158_400_000_000_000; // 2025-11-26T12:00:00Z

    fn query_of(since: &str, until: Option<&str>) -> TraceQuery {
        TraceQuery {
            namespace: None,
            container: "web".into(),
            follow: false,
            json: true,
            since: Some(since.into()),
            until: until.map(str::to_string),
            syscall: None,
            pid: None,
            grep: None,
            logs: false,
            durations: false,
            render: RenderOptions::default(),
            results: ResultFilter::default(),
            summary: false,
        }
    }

    #[test]
    fn string_styles_and_limits_go_to_crtd_only_when_not_the_defaults() {
        let mut q = query_of("2025-11-26T11:00:00Z", None);
        let has = |q: &TraceQuery, k: &str| q.query(NOW).unwrap().iter().any(|(key, _)| *key == k);
        assert!(!has(&q, "strings") && !has(&q, "string_limit"));
        q.render.strings = crt_tracer::escape::StringStyle::AllHex;
        q.render.string_limit = 200;
        let pairs = q.query(NOW).unwrap();
        assert!(
            pairs.contains(&("strings", "allhex".to_string())),
            "{pairs:?}"
        );
        assert!(
            pairs.contains(&("string_limit", "200".to_string())),
            "{pairs:?}"
        );
    }

    #[test]
    fn spans_back_from_now_become_absolute_times() {
        assert_eq!(
            absolute_time("since", "10m", NOW).unwrap(),
            "2025-11-26T11:50:00.000000Z"
        );
        assert_eq!(
            absolute_time("until", "1d", NOW).unwrap(),
            "2025-11-25T12:00:00.000000Z"
        );
        assert_eq!(
            absolute_time("since", "2026-01-02T03:04:05Z", NOW).unwrap(),
            "2026-01-02T03:04:05Z"
        );
        let e = absolute_time("since", "yesterday", NOW)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--since \"yesterday\": not a time"), "{e}");
    }

    #[test]
    fn the_query_carries_since_and_until_as_resolved_once() {
        let q = query_of("90s", Some("30s")).query(NOW).unwrap();
        assert!(
            q.contains(&("since", "2025-11-26T11:58:30.000000Z".into())),
            "{q:?}"
        );
        assert!(
            q.contains(&("until", "2025-11-26T11:59:30.000000Z".into())),
            "{q:?}"
        );
    }

    #[test]
    fn every_page_of_a_relative_since_query_asks_for_the_same_instant() {
        let server = testserver::tcp(
            "127.0.0.1:0",
            vec![
                Answer::json(
                    200,
                    r#"{"events":[{"event":"syscall","pid":1}],"next":"c1","more":true}"#,
                ),
                Answer::json(
                    200,
                    r#"{"events":[{"event":"end"}],"next":"c2","more":false}"#,
                ),
            ],
        );
        let client = Client::server(
            &format!("http://127.0.0.1:{}", server.port),
            "t".into(),
            None,
        )
        .unwrap();
        let before = now_ns();
        let mut out = Vec::new();
        trace_to(&client, &query_of("10m", None), &mut out).unwrap();
        let after = now_ns();

        let lines = String::from_utf8(out).unwrap();
        assert_eq!(lines.lines().count(), 2, "{lines}");
        let requests = server.requests();
        assert_eq!(requests.len(), 2, "{requests:?}");
        let since_of = |head: &str| -> String {
            let target = head.split(' ').nth(1).unwrap();
            let since = target
                .split(['?', '&'])
                .find_map(|p| p.strip_prefix("since="))
                .unwrap();
            since.replace("%3A", ":")
        };
        let (first, second) = (since_of(&requests[0]), since_of(&requests[1]));
        assert_eq!(first, second);
        assert!(requests[1].contains("&cursor=c1"), "{}", requests[1]);
        let since_ns = parse_rfc3339_utc(&first).unwrap();
        let ten_minutes = 600_000_000_000;
        // Microsecond precision: the instant may round down by up to 1 us.
        assert!(
            since_ns + 1000 > before - ten_minutes && since_ns <= after - ten_minutes,
            "{first}"
        );
    }

    fn target_of(head: &str) -> String {
        head.split(' ')
            .nth(1)
            .unwrap()
            .replace("%2C", ",")
            .replace("%3A", ":")
    }

    #[test]
    fn result_filters_go_to_crtd_as_query_parameters() {
        let mut q = query_of("10m", None);
        q.results = ResultFilter {
            failed: true,
            errnos: vec![2, 13],
            min_duration_ns: Some(1_500_000),
            ..Default::default()
        };
        let pairs = q.query(NOW).unwrap();
        for want in [
            ("failed", "true"),
            ("errno", "2,13"),
            ("slower_than", "1500000ns"),
        ] {
            assert!(pairs.contains(&(want.0, want.1.to_string())), "{pairs:?}");
        }
        assert!(!pairs.iter().any(|(k, _)| *k == "successful"), "{pairs:?}");
        q.results = ResultFilter {
            succeeded: true,
            ..Default::default()
        };
        assert!(q
            .query(NOW)
            .unwrap()
            .contains(&("successful", "true".to_string())));
    }

    #[test]
    fn a_text_trace_says_first_why_it_has_no_results_and_shows_durations() {
        let server = testserver::tcp(
            "127.0.0.1:0",
            vec![
                Answer::json(
                    200,
                    r#"{"containers":[{"id":"other","results_unavailable":"not this one"},
                        {"id":"web","status":"stopped","results_unavailable":"no BPF here\u001b[2J"}]}"#,
                ),
                Answer::json(
                    200,
                    r#"{"events":[{"event":"syscall","ts":"2026-11-26T12:00:00Z","pid":1,"syscall":"openat",
                        "args":["AT_FDCWD","\"/x\"","O_RDONLY"],"ret":-2,"errno":"ENOENT","duration_ns":21000},
                        {"event":"end","ts":"2026-11-26T12:00:01Z"}],"next":"c","more":false}"#,
                ),
            ],
        );
        let mut q = query_of("10m", None);
        q.json = false;
        q.durations = true;
        q.results.failed = true;
        let mut out = Vec::new();
        trace_to(&server.client(), &q, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "--- crt: no return values in this trace: no BPF here\\x1b[2J ---"
        );
        assert!(
            lines[1].ends_with(
                "openat(AT_FDCWD, \"/x\", O_RDONLY) = -1 ENOENT (No such file or directory) <0.000021>"
            ),
            "{text}"
        );
        let requests = server.requests();
        assert!(
            target_of(&requests[1]).contains("&failed=true"),
            "{requests:?}"
        );
    }

    #[test]
    fn the_summary_is_crtds_numbers_in_straces_table() {
        let server = testserver::tcp(
            "127.0.0.1:0",
            vec![
                // The container exited: crtctl waits until its end is stored.
                Answer::json(200, r#"{"containers":[{"id":"web","status":"stopped"}]}"#),
                Answer::json(200, r#"{"events":[{"event":"syscall"}]}"#),
                Answer::json(200, r#"{"containers":[{"id":"web","status":"stopped"}]}"#),
                Answer::json(200, r#"{"events":[{"event":"end"}]}"#),
                Answer::json(
                    200,
                    r#"{"syscalls":[
                    {"syscall":"wait4","calls":2,"errors":1,"total_ns":1826000,"avg_ns":913000,"unknown":0,"timed":2},
                    {"syscall":"read","calls":3,"errors":0,"total_ns":0,"avg_ns":null,"unknown":3,"timed":0}],
                    "total":{"syscall":"total","calls":5},"truncated":false,"results_unavailable":"no BPF"}"#,
                ),
            ],
        );
        let mut q = query_of("1h", Some("10m"));
        q.json = false;
        q.summary = true;
        q.results.errnos = vec![10];
        let mut out = Vec::new();
        trace_to(&server.client(), &q, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
100.00    0.001826         913         2         1 wait4
  0.00    0.000000           0         3           read
------ ----------- ----------- --------- --------- ----------------
100.00    0.001826         913         5         1 total
--- crt: 3 of 5 calls have no return value: their time and errors are unknown and not in the columns above (no BPF) ---
"
        );
        let requests = server.requests();
        assert_eq!(requests.len(), 5, "{requests:?}");
        assert!(
            target_of(&requests[1]).contains("order=desc&limit=1"),
            "{requests:?}"
        );
        let target = target_of(&requests[4]);
        assert!(target.starts_with("/v1/summary?container=web&"), "{target}");
        assert!(target.contains("&errno=10"), "{target}");
        assert!(
            target.contains("&since=2025-11-") || target.contains("&since=20"),
            "{target}"
        );
        assert!(target.contains("&until="), "{target}");
        assert!(!target.contains("limit="), "{target}");
    }

    #[test]
    fn events_from_crtd_print_as_strace_lines() {
        let e = json!({"event": "syscall", "ts": "2026-11-26T12:00:00.123456Z", "pid": 42,
            "syscall": "openat", "args": ["AT_FDCWD", "\"/etc/hosts\"", "O_RDONLY|O_CLOEXEC"]});
        let l = text_line(&e, false).unwrap();
        assert!(
            l.ends_with(
                ".123456 [pid 42] openat(AT_FDCWD, \"/etc/hosts\", O_RDONLY|O_CLOEXEC) = ?"
            ),
            "{l}"
        );
        let log = json!({"event": "log", "ts": "2026-11-26T12:00:00Z", "stream": "stderr", "line": "boom\u{1b}[2J"});
        let l = text_line(&log, false).unwrap();
        assert!(l.ends_with("[stderr] boom\\x1b[2J"), "{l}");
        assert!(text_line(&json!({"event": "process"}), false).is_none());
        let gap = json!({"event": "gap", "ts": "2026-11-26T12:00:05Z", "lost": 1712345,
            "exact": true, "from": "2026-11-26T12:00:01Z", "to": "2026-11-26T12:00:04Z", "segments": 13});
        let l = text_line(&gap, false).unwrap();
        assert!(l.contains("--- crt: gap: 1712345 events from "), "{l}");
        assert!(l.contains("(13 trace segments) were deleted"), "{l}");
        let floor = json!({"event": "gap", "ts": "2026-11-26T12:00:05Z", "lost": 7, "exact": false, "segments": 2});
        assert!(
            text_line(&floor, false)
                .unwrap()
                .contains("gap: at least 7 events (2"),
            "{floor}"
        );
    }

    #[test]
    fn a_container_that_ended_shows_its_exit_code() {
        let t = json!({"pods": [], "containers": [
            {"namespace": "k8s.io", "id": "job", "status": "gone", "exit_code": 3, "syscall_rate": 0.0},
            {"namespace": "k8s.io", "id": "oom", "status": "stopped", "exit_code": 137, "syscall_rate": 0.0},
            {"namespace": "k8s.io", "id": "web", "status": "running", "exit_code": null, "syscall_rate": 1.0}]});
        let out = render_tree(&t);
        assert!(out.contains(" gone 3 "), "{out}");
        assert!(out.contains(" stopped 137 "), "{out}");
        assert!(out.contains(" running "), "{out}");
    }

    #[test]
    fn pods_of_one_name_are_told_apart_by_uid() {
        let c = |id: &str, status: &str, code: Value| {
            json!({"namespace": "k8s.io", "id": id, "status": status, "exit_code": code,
                   "syscall_rate": 0.0, "kubernetes": {"container": "db", "pod_uid": "x"}})
        };
        let t = json!({"pods": [
            {"namespace": "shop", "name": "db-0", "uid": "0f3e9a1c-old", "syscall_rate": 0.0,
             "containers": [c("c-old", "gone", json!(137))]},
            {"namespace": "shop", "name": "db-0", "uid": "7b21c4d2-new", "syscall_rate": 1.0,
             "containers": [c("c-new", "running", Value::Null)]},
            {"namespace": "shop", "name": "web-0", "uid": "5a5a", "syscall_rate": 0.0, "containers": []},
            {"namespace": "shop", "name": "evil\u{1b}[2J", "uid": "u\u{7}", "syscall_rate": 0.0, "containers": []},
            {"namespace": "shop", "name": "evil\u{1b}[2J", "uid": "v", "syscall_rate": 0.0, "containers": []}],
            "containers": []});
        let out = render_tree(&t);
        assert!(out.contains("pod shop/db-0 [uid 0f3e9a1c-old]"), "{out}");
        assert!(out.contains("pod shop/db-0 [uid 7b21c4d2-new]"), "{out}");
        // The old pod's container that CRI deleted keeps its exit code, under its own pod.
        let old = out.find("0f3e9a1c-old").unwrap();
        let new = out.find("7b21c4d2-new").unwrap();
        let ended = out.find("db (k8s.io/c-old)").unwrap();
        assert!(old < ended && (ended < new || new < old), "{out}");
        assert!(out.contains(" gone 137 "), "{out}");
        // A name no other pod has needs no uid.
        assert!(out.contains("pod shop/web-0  ("), "{out}");
        // Names and uids are the container platform's users' strings: escaped.
        assert!(out.contains("pod shop/evil\\x1b[2J [uid u\\x07]"), "{out}");
        assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out}");
    }

    #[test]
    fn process_command_lines_are_escaped() {
        let t = json!({"pods": [], "containers": [{"namespace": "default", "id": "x", "status": "running",
            "syscall_rate": 0.0, "processes": [{"pid": 7, "state": "S", "syscall_rate": 0.0,
            "cmdline": ["sh", "-c", "\u{1b}]0;owned\u{7}"]}]}]});
        let out = render_tree(&t);
        assert!(out.contains("sh -c \\x1b]0;owned\\x07"), "{out}");
        assert!(!out.contains('\u{1b}'), "{out}");
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
