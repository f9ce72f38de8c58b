//! Output formats for events: strace-style lines and JSON lines.
//!
//! Text lines look like strace's:
//! `12:00:00.123456 [pid 42] openat(AT_FDCWD, "/etc/hosts", O_RDONLY|O_CLOEXEC) = 3`
//! A supervisor that lets the syscall continue never sees its result; the
//! result comes from the syscall's exit where BPF could be used, and is `?`
//! elsewhere (DESIGN.md, decision 6).

use serde_json::json;

use crate::decode;
use crate::errno;
use crate::escape;
use crate::record::{
    CaptureData, Record, FLAG_RESUMED, FLAG_STALE, FLAG_UNFINISHED, KIND_DROPS, KIND_END, KIND_GAP,
    KIND_LATENCY, KIND_LOG, KIND_PROCESS, KIND_SYSCALL,
};

/// Choices for text lines (crtctl's flags).
#[derive(Clone, Copy, Debug, Default)]
pub struct TextOptions {
    /// Append each call's duration, as `strace -T`: ` <0.000021>`.
    pub durations: bool,
}

/// Syscalls whose result is an address, shown in hex as strace does.
fn returns_address(name: &str) -> bool {
    matches!(name, "mmap" | "mremap" | "brk" | "shmat" | "sbrk")
}

/// A result as strace shows it after `= `, from the syscall's name, its
/// rendered arguments and its raw return value: `3`, `0x7f12a000` (mmap,
/// brk), `-1 ENOENT (No such file or directory)`, `0x1 (flags FD_CLOEXEC)`
/// (`fcntl(fd, F_GETFD)`), `0x8002 (flags O_RDWR|O_LARGEFILE)` (`F_GETFL`),
/// `?` when unknown. Taking the rendered arguments lets text made from a
/// record and from crtd's JSON decorate alike.
pub fn result_text<S: AsRef<str>>(name: &str, args: &[S], ret: Option<i64>) -> String {
    if let Some(e) = ret.and_then(errno::errno_of) {
        return errno::strace_error(e);
    }
    match ret {
        None => "?".to_string(),
        Some(r) if returns_address(name) => format!("{:#x}", r as u64),
        Some(r) if name == "fcntl" => {
            let cmd = match args.get(1).map(AsRef::as_ref) {
                Some("F_GETFD") => Some(1),
                Some("F_GETFL") => Some(3),
                Some("F_GETLEASE") => Some(1025),
                _ => None,
            };
            cmd.and_then(|c| crate::flags::fcntl_result(c, r))
                .unwrap_or_else(|| r.to_string())
        }
        // strace 6.1 (`strace -o o18 ./rv`): `umask(077) = 022`,
        // `prctl(PR_GET_DUMPABLE) = 1 (SUID_DUMP_USER)`.
        Some(r) if name == "umask" => umask_text(r),
        Some(r)
            if name == "prctl" && args.first().map(AsRef::as_ref) == Some("PR_GET_DUMPABLE") =>
        {
            format!("{r} ({})", crate::flags::suid_dump(r as u64))
        }
        Some(r) => r.to_string(),
    }
}

/// A file mode creation mask as strace prints `umask`'s result (`%#03o`).
fn umask_text(r: i64) -> String {
    let v = r as u32;
    if v == 0 {
        "000".to_string()
    } else {
        format!("{:0>3}", format!("0{v:o}"))
    }
}

/// A duration as strace's `-T` shows it: `<0.000021>` (seconds, 6 decimals).
pub fn duration_text(ns: u64) -> String {
    format!(
        "<{}.{:06}>",
        ns / 1_000_000_000,
        (ns % 1_000_000_000) / 1000
    )
}

/// Where an event came from, for output.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    pub namespace: &'a str,
    pub container: &'a str,
}

/// Hours, minutes, seconds and microseconds of `ts_ns` in local time.
pub fn local_time(ts_ns: u64) -> String {
    let secs = (ts_ns / 1_000_000_000) as libc::time_t;
    let micros = (ts_ns % 1_000_000_000) / 1000;
    // SAFETY: tm is plain data; localtime_r fills it from a valid time_t.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if !ok {
        return format!("{}.{micros:06}", secs);
    }
    format!(
        "{:02}:{:02}:{:02}.{micros:06}",
        tm.tm_hour, tm.tm_min, tm.tm_sec
    )
}

/// RFC 3339 in UTC with microseconds: `2026-11-26T12:00:00.123456Z`.
pub fn rfc3339_utc(ts_ns: u64) -> String {
    let secs = ts_ns / 1_000_000_000;
    let micros = (ts_ns % 1_000_000_000) / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Parses an RFC 3339 timestamp (`2026-11-26T12:00:00.123456Z`,
/// `2026-11-26T13:00:00+01:00`, any number of fraction digits or none) to ns
/// since the epoch. Impossible dates (`2026-02-31`) and times before the
/// epoch are `None`. Users type these, so the parser is the `time` crate's,
/// not ours.
pub fn parse_rfc3339_utc(s: &str) -> Option<u64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos()).ok()
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// well-known algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Now, as ns since the epoch (the records' clock).
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A syscall as strace writes it, without time or pid:
/// `openat(AT_FDCWD, "/etc/hosts", O_RDONLY) = ?`. The one renderer of
/// calls, for text lines and for exported events alike. An entry stored
/// before its exit and the exit that follows are strace's two halves:
/// `read(0,  <unfinished ...>` and `<... read resumed>"hi\n", 1024) = 3`.
pub fn strace_call(rec: &Record<'_>) -> String {
    strace_call_with(rec, &decode::RenderOptions::default())
}

/// [`strace_call`] with rendering options.
pub fn strace_call_with(rec: &Record<'_>, opts: &decode::RenderOptions) -> String {
    let c = decode::render_call(rec, opts);
    let ret = rec.result().map(|r| r.ret);
    let part = if rec.flags & FLAG_RESUMED != 0 {
        Part::Resumed
    } else if rec.flags & FLAG_UNFINISHED != 0 {
        Part::Unfinished
    } else {
        Part::Whole
    };
    call_line(
        &Call {
            name: &c.name,
            args: &c.args,
            exit_args: c.exit_args,
            exit_comma: c.exit_comma,
            result: &result_text(&c.name, &c.args, ret),
            stale: rec.flags & FLAG_STALE != 0,
        },
        part,
    )
}

/// Which part of a call a line shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Entry and exit together: `name(a, b) = r`.
    Whole,
    /// An entry stored before its exit: `name(a,  <unfinished ...>`.
    Unfinished,
    /// The exit of an unfinished entry: `<... name resumed>b) = r`.
    Resumed,
}

/// A call's rendered pieces (from a record or from an event's JSON).
#[derive(Clone, Copy, Debug)]
pub struct Call<'a, S: AsRef<str>> {
    pub name: &'a str,
    pub args: &'a [S],
    /// See [`decode::RenderedCall::exit_args`].
    pub exit_args: usize,
    /// See [`decode::RenderedCall::exit_comma`].
    pub exit_comma: bool,
    /// The rendered result ([`result_text`]).
    pub result: &'a str,
    pub stale: bool,
}

/// One line of a call as strace -f writes it (without time or pid).
pub fn call_line<S: AsRef<str>>(c: &Call<'_, S>, part: Part) -> String {
    let join = |args: &[S]| {
        args.iter()
            .map(AsRef::as_ref)
            .collect::<Vec<&str>>()
            .join(", ")
    };
    let split = c.exit_args.min(c.args.len());
    let (entry, exit) = c.args.split_at(split);
    let mut line = String::with_capacity(80);
    match part {
        Part::Whole => {
            line.push_str(c.name);
            line.push('(');
            line.push_str(&join(c.args));
            line.push(')');
        }
        Part::Unfinished => {
            line.push_str(c.name);
            line.push('(');
            line.push_str(&join(entry));
            // strace prints the separator after the last entry argument when
            // the exit has more to add; then a space and the marker (hence
            // its two spaces in `read(0,  <unfinished ...>`). With no entry
            // argument there is nothing to separate: `getcwd( <unfinished ...>`
            // (strace 6.1, `strace -f -e trace=getcwd` on two racing threads).
            if !entry.is_empty() && !exit.is_empty() && !c.exit_comma {
                line.push_str(", ");
            }
            line.push_str(" <unfinished ...>");
            return line;
        }
        Part::Resumed => {
            line.push_str("<... ");
            line.push_str(c.name);
            line.push_str(" resumed>");
            if !exit.is_empty() && c.exit_comma {
                line.push_str(", ");
            }
            line.push_str(&join(exit));
            line.push(')');
        }
    }
    line.push_str(" = ");
    line.push_str(c.result);
    if c.stale {
        line.push_str(" (arguments not read: the thread was gone)");
    }
    line
}

/// A call from its name and rendered arguments (a record's, or an event's
/// from crtd) and its rendered result: `name(a, b) = 3`, noting arguments
/// that could not be read.
pub fn call_text<S: AsRef<str>>(name: &str, args: &[S], result: &str, stale: bool) -> String {
    call_line(
        &Call {
            name,
            args,
            exit_args: args.len(),
            exit_comma: false,
            result,
            stale,
        },
        Part::Whole,
    )
}

/// The strace-style line for a record, or `None` for records that are not
/// shown as lines (process markers).
pub fn text_line(rec: &Record<'_>) -> Option<String> {
    text_line_with(
        rec,
        &decode::RenderOptions::default(),
        TextOptions::default(),
    )
}

/// [`text_line`] with choices, and arguments rendered with `render` (`-x`,
/// `-xx`, `-s`: these apply where lines are made from records; events from
/// crtd carry their arguments already rendered).
pub fn text_line_with(
    rec: &Record<'_>,
    render: &decode::RenderOptions,
    opts: TextOptions,
) -> Option<String> {
    let mut e = event_fields_with(rec, render);
    e.insert("ts".into(), json!(rfc3339_utc(rec.ts_ns)));
    event_text_with(&serde_json::Value::Object(e), opts)
}

/// The strace-style line for an event as JSON (what crtd serves, or
/// [`event_fields`] of a record with its `ts`): the one text renderer, for
/// traces read on the node and through crtd alike. `None` for events that
/// are not shown as lines.
pub fn event_text(e: &serde_json::Value) -> Option<String> {
    event_text_with(e, TextOptions::default())
}

/// [`event_text`] with choices.
pub fn event_text_with(e: &serde_json::Value, opts: TextOptions) -> Option<String> {
    use serde_json::Value;
    let time = e["ts"]
        .as_str()
        .and_then(parse_rfc3339_utc)
        .map(local_time)
        .unwrap_or_else(|| "??:??:??.??????".into());
    let time_of = |k: &str| e[k].as_str().and_then(parse_rfc3339_utc).map(local_time);
    match e["event"].as_str()? {
        "syscall" => {
            let args: Vec<&str> = e["args"]
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let name = e["syscall"].as_str().unwrap_or("?");
            let part = if e["resumed"] == true {
                Part::Resumed
            } else if e["unfinished"] == true {
                Part::Unfinished
            } else {
                Part::Whole
            };
            let exit_args = e["exit_args"]
                .as_u64()
                .map_or(args.len(), |n| usize::try_from(n).unwrap_or(usize::MAX));
            let mut call = call_line(
                &Call {
                    name,
                    args: &args,
                    exit_args,
                    exit_comma: e["exit_comma"] == true,
                    result: &result_text(name, &args, e["ret"].as_i64()),
                    stale: e["stale"] == true,
                },
                part,
            );
            if let (true, Some(ns), false) = (
                opts.durations,
                e["duration_ns"].as_u64(),
                part == Part::Unfinished,
            ) {
                call.push(' ');
                call.push_str(&duration_text(ns));
            }
            Some(format!("{time} [pid {}] {call}", e["pid"]))
        }
        "drops" => {
            let dropped = e["dropped"].as_u64().unwrap_or(0);
            let lost = e["results_lost"].as_u64().unwrap_or(0);
            let mut parts = Vec::new();
            if dropped > 0 || lost == 0 {
                parts.push(format!(
                    "{dropped} events dropped so far: the trace store could not keep up"
                ));
            }
            if lost > 0 {
                parts.push(format!("{lost} results lost so far: those calls show = ?"));
            }
            Some(format!("{time} --- crt: {} ---", parts.join("; ")))
        }
        "end" => Some(format!("{time} +++ all processes exited +++")),
        "gap" => {
            let lost = e["lost"].as_u64().unwrap_or(0);
            let count = if e["exact"] == true {
                format!("{lost} events")
            } else {
                format!("at least {lost} events")
            };
            let span = match (time_of("from"), time_of("to")) {
                (Some(a), Some(b)) => format!(" from {a} to {b}"),
                _ => String::new(),
            };
            Some(format!(
                "{time} --- crt: gap: {count}{span} ({} trace segments) were deleted by the trace's bound before the history stored them ---",
                e["segments"]
            ))
        }
        "log" => Some(format!(
            "{time} [{}] {}",
            e["stream"].as_str().unwrap_or("stdout"),
            escape::escape_text(e["line"].as_str().unwrap_or("").as_bytes())
        )),
        _ => None,
    }
}

/// Which stream a log record came from: `stdout` or `stderr`.
pub fn log_stream(rec: &Record<'_>) -> &'static str {
    if rec.args[0] == 2 {
        "stderr"
    } else {
        "stdout"
    }
}

/// The raw bytes of a log record's line (no newline).
pub fn log_bytes<'a>(rec: &Record<'a>) -> &'a [u8] {
    match rec.capture(0) {
        Some(CaptureData::Bytes { bytes, .. }) => bytes,
        _ => b"",
    }
}

/// What a record says, as the JSON fields of its kind, `event` first: the
/// one event schema that `crtctl --json`, crtd's API, its live stream and
/// its export share (each adds where the event came from).
///
/// Syscall events: `{"event":"syscall", "pid", "comm", "syscall", "args",
/// "exit_args", "ret", "errno", "duration_ns", "nr", "stale"}` (`args`: the
/// arguments rendered as strace does, output arguments from what the call
/// wrote when its exit was seen; `exit_args`: the index in `args` of the
/// first argument strace prints at the exit, `args.len()` when all are
/// printed at entry; `ret`: the raw return value, negative for errors, null
/// when unknown; `errno`: the error's name or null; `duration_ns`: entry to
/// exit, or null), with `"unfinished": true` for an entry stored before its
/// exit (its text shows `args[..exit_args]`: `read(0,  <unfinished ...>`)
/// and `"resumed": true` for that exit when it comes (its text shows the
/// rest: `<... read resumed>"hi\n", 1024) = 3`; its arguments before
/// `exit_args` are not read again and may show as pointers);
/// `"exit_comma": true` when the arguments from `exit_args` on are named
/// ones only the exit adds, so the resumed part starts with the comma
/// (`clone`); drops: `{"event":"drops", "dropped", "results_lost"}` (both
/// counts so far: events not stored, and calls stored without their
/// result); the end:
/// `{"event":"end"}`; a log line: `{"event":"log", "stream", "line", "cut"}`;
/// a process joining the trace: `{"event":"process", "pid", "comm", "init"}`;
/// a gap in the history: `{"event":"gap", "lost", "exact", "from", "to",
/// "segments"}`.
pub fn event_fields(rec: &Record<'_>) -> serde_json::Map<String, serde_json::Value> {
    event_fields_with(rec, &decode::RenderOptions::default())
}

/// [`event_fields`] with arguments rendered with `opts`.
pub fn event_fields_with(
    rec: &Record<'_>,
    opts: &decode::RenderOptions,
) -> serde_json::Map<String, serde_json::Value> {
    let v = match rec.kind {
        KIND_SYSCALL => {
            let c = decode::render_call(rec, opts);
            let result = rec.result();
            let mut v = json!({
                "event": "syscall",
                "pid": rec.tid,
                "comm": String::from_utf8_lossy(rec.comm()),
                "syscall": c.name,
                "args": c.args,
                "exit_args": c.exit_args,
                "ret": result.map(|r| r.ret),
                "errno": result.and_then(|r| r.errno()).and_then(errno::name),
                "duration_ns": result.and_then(|r| r.duration_ns),
                "nr": rec.nr,
                "stale": rec.flags & FLAG_STALE != 0,
            });
            if c.exit_comma {
                v["exit_comma"] = json!(true);
            }
            if rec.flags & FLAG_RESUMED != 0 {
                v["resumed"] = json!(true);
            } else if rec.flags & FLAG_UNFINISHED != 0 {
                v["unfinished"] = json!(true);
            }
            v
        }
        KIND_DROPS => json!({
            "event": "drops",
            "dropped": rec.args[0],
            "results_lost": rec.args[2],
        }),
        KIND_END => json!({"event": "end"}),
        KIND_LOG => json!({
            "event": "log",
            "stream": log_stream(rec),
            "line": String::from_utf8_lossy(log_bytes(rec)),
            "cut": rec.args[1] == 1,
        }),
        KIND_PROCESS => json!({
            "event": "process",
            "pid": rec.tid,
            "comm": String::from_utf8_lossy(rec.comm()),
            "init": rec.args[0] == 1,
        }),
        KIND_GAP => {
            let time = |t: u64| (t > 0).then(|| rfc3339_utc(t));
            json!({
                "event": "gap",
                "lost": rec.args[0],
                "exact": rec.args[4] == 1,
                "from": time(rec.args[1]),
                "to": time(rec.args[2]),
                "segments": rec.args[3],
            })
        }
        KIND_LATENCY => match crate::latency::Snapshot::from_record(rec) {
            Some(l) => json!({
                "event": "latency",
                "count": l.count(),
                "sum_ns": l.sum_ns,
                "bounds_ns": crate::latency::BOUNDS_NS,
                "buckets": l.buckets,
            }),
            None => json!({"event": "latency", "count": rec.args[0]}),
        },
        other => json!({"event": "unknown", "kind": other}),
    };
    match v {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

/// The JSON object for a record of a trace read on the node (one line, no
/// newline): `ts`, `namespace`, `container`, then [`event_fields`].
pub fn json_line(src: Source<'_>, rec: &Record<'_>) -> String {
    json_line_with(src, rec, &decode::RenderOptions::default())
}

/// [`json_line`] with arguments rendered as `opts` says.
pub fn json_line_with(src: Source<'_>, rec: &Record<'_>, opts: &decode::RenderOptions) -> String {
    let mut m = event_fields_with(rec, opts);
    m.insert("ts".into(), json!(rfc3339_utc(rec.ts_ns)));
    m.insert("namespace".into(), json!(src.namespace));
    m.insert("container".into(), json!(src.container));
    serde_json::Value::Object(m).to_string()
}

/// A container-controlled name made safe for a terminal.
pub fn display_name(bytes: &[u8]) -> String {
    escape::escape(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{decode, simple, RecordBuilder};

    #[test]
    fn rfc3339_has_microseconds_and_utc() {
        // 2026-11-26T12:00:00.123456Z
        let ts = 1_795_694_400_123_456_789u64;
        assert_eq!(rfc3339_utc(ts), "2026-11-26T12:00:00.123456Z");
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000000Z");
        // A leap day.
        assert_eq!(
            rfc3339_utc(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
    }

    #[test]
    fn rfc3339_parses_back() {
        for ts in [0u64, 951_782_400_000_000_000, 1_795_694_400_123_456_000] {
            assert_eq!(parse_rfc3339_utc(&rfc3339_utc(ts)), Some(ts));
        }
        assert_eq!(
            parse_rfc3339_utc("2026-11-26T12:00:00Z"),
            Some(1_795_694_400_000_000_000)
        );
        assert_eq!(
            parse_rfc3339_utc("2026-11-26T12:00:00.5Z"),
            Some(1_795_694_400_500_000_000)
        );
        // Offsets are RFC 3339 too, and mean the same instant.
        assert_eq!(
            parse_rfc3339_utc("2026-11-26T13:00:00+01:00"),
            Some(1_795_694_400_000_000_000)
        );
        assert_eq!(
            parse_rfc3339_utc("2026-11-26T12:00:00+00:00"),
            Some(1_795_694_400_000_000_000)
        );
        assert_eq!(
            parse_rfc3339_utc("2026-11-26t12:00:00z"),
            Some(1_795_694_400_000_000_000)
        );
        for bad in [
            "",
            "2026-11-26",
            "2026-13-01T00:00:00Z",
            "2026-11-26T25:00:00Z",
            "2026-02-31T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2026-11-26T12:00:00",
            "x",
        ] {
            assert_eq!(parse_rfc3339_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn local_time_has_six_fraction_digits() {
        let t = local_time(1_795_694_400_123_456_789);
        assert_eq!(t.len(), "12:00:00.123456".len());
        assert!(t.ends_with(".123456"));
    }

    fn getppid_record() -> Vec<u8> {
        let mut buf = Vec::new();
        let mut b = RecordBuilder::begin(&mut buf, KIND_SYSCALL, 5, 42, 0xc000_003e, 110, &[0; 6]);
        b.set_comm(b"crt-loop");
        b.finish();
        buf
    }

    #[test]
    fn a_syscall_line_ends_with_an_unknown_return_value() {
        let buf = getppid_record();
        let (rec, _) = decode(&buf).unwrap();
        let line = text_line(&rec).unwrap();
        assert!(line.ends_with(" [pid 42] getppid() = ?"), "{line}");
    }

    #[test]
    fn a_drops_line_names_lost_results_apart_from_dropped_events() {
        let line = |args: [u64; 6]| {
            let rec = simple(KIND_DROPS, 1, 0, &args, b"");
            let (rec, _) = decode(&rec).unwrap();
            let v = serde_json::Value::Object(event_fields(&rec));
            assert_eq!(v["results_lost"], args[2]);
            text_line(&rec)
                .unwrap()
                .split_once(" --- ")
                .unwrap()
                .1
                .to_string()
        };
        assert_eq!(
            line([0, 0, 7, 0, 0, 0]),
            "crt: 7 results lost so far: those calls show = ? ---"
        );
        assert_eq!(
            line([5, 0, 7, 0, 0, 0]),
            "crt: 5 events dropped so far: the trace store could not keep up; 7 results lost so far: those calls show = ? ---"
        );
        assert_eq!(
            line([5, 0, 0, 0, 0, 0]),
            "crt: 5 events dropped so far: the trace store could not keep up ---"
        );
    }

    #[test]
    fn a_json_line_carries_the_documented_fields() {
        let buf = getppid_record();
        let (rec, _) = decode(&buf).unwrap();
        let line = json_line(
            Source {
                namespace: "default",
                container: "c1",
            },
            &rec,
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["namespace"], "default");
        assert_eq!(v["container"], "c1");
        assert_eq!(v["pid"], 42);
        assert_eq!(v["comm"], "crt-loop");
        assert_eq!(v["syscall"], "getppid");
        assert_eq!(v["args"], serde_json::json!([]));
        assert!(v["ret"].is_null());
        assert!(v["errno"].is_null());
        assert!(v["duration_ns"].is_null());
        assert!(v["ts"].as_str().unwrap().ends_with('Z'));
        assert_eq!(
            text_line(&rec).unwrap().split_once("] ").unwrap().1,
            "getppid() = ?"
        );

        // The same call with its result read at the exit.
        let mut buf = rec.as_bytes().to_vec();
        let mut b = RecordBuilder::extend(&mut buf, 0);
        b.result(-2, Some(21_000));
        b.finish();
        let (rec, _) = decode(&buf).unwrap();
        let v = serde_json::Value::Object(event_fields(&rec));
        assert_eq!(
            (v["ret"].as_i64(), v["errno"].as_str()),
            (Some(-2), Some("ENOENT"))
        );
        assert_eq!(v["duration_ns"], 21_000);
        let mut e = v.clone();
        e["ts"] = json!(rfc3339_utc(rec.ts_ns));
        let line = event_text_with(&e, TextOptions { durations: true }).unwrap();
        assert!(
            line.ends_with("getppid() = -1 ENOENT (No such file or directory) <0.000021>"),
            "{line}"
        );
        let none: [&str; 0] = [];
        assert_eq!(result_text("mmap", &none, Some(0x7f00_1000)), "0x7f001000");
        assert_eq!(result_text("openat", &none, Some(3)), "3");
    }

    /// The shapes of strace 6.1's `wait4(6199,  <unfinished ...>`,
    /// `getcwd( <unfinished ...>` and `exit_group(0 <unfinished ...>` /
    /// `<... exit_group resumed>) = ?` (pinned in tests/strace_parity.rs).
    #[test]
    fn unfinished_lines_separate_entry_arguments_only() {
        let call = |args: &'static [&'static str], exit_args: usize, exit_comma: bool| Call {
            name: "f",
            args,
            exit_args,
            exit_comma,
            result: "0",
            stale: false,
        };
        assert_eq!(
            call_line(&call(&["0", "\"x\"", "1"], 1, false), Part::Unfinished),
            "f(0,  <unfinished ...>"
        );
        assert_eq!(
            call_line(&call(&["0", "\"x\"", "1"], 1, false), Part::Resumed),
            "<... f resumed>\"x\", 1) = 0"
        );
        assert_eq!(
            call_line(&call(&["\"/\"", "1"], 0, false), Part::Unfinished),
            "f( <unfinished ...>"
        );
        assert_eq!(
            call_line(&call(&["0"], 1, false), Part::Unfinished),
            "f(0 <unfinished ...>"
        );
        assert_eq!(
            call_line(&call(&["0"], 1, false), Part::Resumed),
            "<... f resumed>) = 0"
        );
        // An exit_args beyond the arguments (an old or odd event) is clamped.
        assert_eq!(call_line(&call(&["0"], 9, false), Part::Whole), "f(0) = 0");
    }

    /// `write(-1, "\1\2a", 3)`, and with `strace -x` `write(-1, "\x01\x02\x61", 3)`
    /// (strace 6.1, `strace -o o1 ./esc`, `strace -x -o o2 ./esc`).
    #[test]
    fn text_lines_from_records_take_the_string_style() {
        let mut buf = Vec::new();
        let mut b = RecordBuilder::begin(
            &mut buf,
            KIND_SYSCALL,
            5,
            42,
            0xc000_003e,
            1,
            &[u64::MAX, 0x1000, 3, 0, 0, 0],
        );
        b.bytes(1, &[1, 2, b'a'], false);
        b.result(-9, None);
        b.finish();
        let (rec, _) = decode(&buf).unwrap();
        let line = text_line(&rec).unwrap();
        assert!(
            line.ends_with(r#"write(-1, "\1\2a", 3) = -1 EBADF (Bad file descriptor)"#),
            "{line}"
        );
        let hex = decode::RenderOptions {
            strings: crate::escape::StringStyle::Hex,
            ..decode::RenderOptions::default()
        };
        let line = text_line_with(&rec, &hex, TextOptions::default()).unwrap();
        assert!(
            line.ends_with(r#"write(-1, "\x01\x02\x61", 3) = -1 EBADF (Bad file descriptor)"#),
            "{line}"
        );
    }

    #[test]
    fn drops_are_shown_with_their_count() {
        let buf = simple(KIND_DROPS, 5, 0, &[1234, 0, 0, 0, 0, 0], b"");
        let (rec, _) = decode(&buf).unwrap();
        assert!(text_line(&rec).unwrap().contains("1234 events dropped"));
        let v: serde_json::Value = serde_json::from_str(&json_line(
            Source {
                namespace: "n",
                container: "c",
            },
            &rec,
        ))
        .unwrap();
        assert_eq!(v["dropped"], 1234);
    }
}
