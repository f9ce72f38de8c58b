//! strace's `-c` summary: calls, errors and time per syscall, from records
//! (on the node, or in crtd's history) into JSON, and from that JSON into
//! strace's table. crtd and `crtctl trace -c` share this one aggregation.
//!
//! A call is counted once: an entry stored before its exit
//! ([`FLAG_UNFINISHED`]) is counted by its exit (a syscall record with
//! [`crate::record::FLAG_RESUMED`]), which has the result. Calls
//! without a result (no exit seen, `= ?`) are counted with unknown time and
//! outcome, in `unknown`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::record::{Record, FLAG_UNFINISHED, KIND_SYSCALL};

/// One syscall's line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub syscall: String,
    pub calls: u64,
    /// Calls that returned an error.
    pub errors: u64,
    /// Time spent in the calls whose duration is known, ns.
    pub total_ns: u64,
    /// `total_ns` over the calls whose duration is known; null when none is.
    pub avg_ns: Option<u64>,
    /// Calls without a result: their time and outcome are unknown.
    pub unknown: u64,
    /// Calls whose duration is known.
    #[serde(default)]
    pub timed: u64,
}

/// The aggregation in progress.
#[derive(Default)]
pub struct Summary {
    /// By (arch, nr): the name and, for the tie order, the number.
    rows: HashMap<(u32, u32), Row>,
}

impl Summary {
    /// Counts a record if it is a syscall's end (a complete call, or the
    /// exit of one stored unfinished); other records are ignored.
    pub fn add(&mut self, rec: &Record<'_>) {
        if rec.kind != KIND_SYSCALL || rec.flags & FLAG_UNFINISHED != 0 {
            return;
        }
        let row = self.rows.entry((rec.arch, rec.nr)).or_insert_with(|| Row {
            syscall: crate::decode::syscall_name(rec.arch, rec.nr),
            ..Default::default()
        });
        row.calls += 1;
        match rec.result() {
            None => row.unknown += 1,
            Some(r) => {
                if r.errno().is_some() {
                    row.errors += 1;
                }
                if let Some(d) = r.duration_ns {
                    row.total_ns = row.total_ns.saturating_add(d);
                    row.timed += 1;
                }
            }
        }
    }

    /// The lines as strace orders them: most time first, then by number.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<(&(u32, u32), &Row)> = self.rows.iter().collect();
        rows.sort_by(|a, b| b.1.total_ns.cmp(&a.1.total_ns).then(a.0.cmp(b.0)));
        rows.into_iter()
            .map(|(_, r)| {
                let mut r = r.clone();
                r.avg_ns = (r.timed > 0).then(|| r.total_ns / r.timed);
                r
            })
            .collect()
    }

    /// `{"syscalls": [rows], "total": row}` (the total's `syscall` is "total").
    pub fn to_json(&self) -> Value {
        let rows = self.rows();
        let total = total_of(&rows);
        json!({"syscalls": rows, "total": total})
    }
}

fn total_of(rows: &[Row]) -> Row {
    let mut t = Row {
        syscall: "total".into(),
        ..Default::default()
    };
    for r in rows {
        t.calls += r.calls;
        t.errors += r.errors;
        t.total_ns = t.total_ns.saturating_add(r.total_ns);
        t.unknown += r.unknown;
        t.timed += r.timed;
    }
    t.avg_ns = (t.timed > 0).then(|| t.total_ns / t.timed);
    t
}

/// The rows of a summary's JSON (what crtd answers), in its order.
pub fn rows_of(v: &Value) -> Vec<Row> {
    v["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| serde_json::from_value(r.clone()).ok())
        .collect()
}

/// strace's `-c` table for `rows` (in their order), with its total line,
/// then, when some calls have no result, a line that says so (`why`: the
/// trace's reason, when known).
pub fn table(rows: &[Row], why: Option<&str>) -> String {
    let total = total_of(rows);
    let rule = "------ ----------- ----------- --------- --------- ----------------\n";
    let mut out = String::from("% time     seconds  usecs/call     calls    errors syscall\n");
    out.push_str(rule);
    let line = |out: &mut String, r: &Row| {
        let pct = if total.total_ns > 0 {
            r.total_ns as f64 * 100.0 / total.total_ns as f64
        } else {
            0.0
        };
        let errors = if r.errors > 0 {
            r.errors.to_string()
        } else {
            String::new()
        };
        // The row's name comes from the syscall table or from crtd: shown
        // escaped all the same.
        let name = crate::escape::escape(r.syscall.as_bytes());
        out.push_str(&format!(
            "{pct:6.2} {:4}.{:06} {:>11} {:>9} {:>9} {name}\n",
            r.total_ns / 1_000_000_000,
            (r.total_ns % 1_000_000_000) / 1000,
            r.avg_ns.map_or(0, |a| a / 1000),
            r.calls,
            errors,
        ));
    };
    for r in rows {
        line(&mut out, r);
    }
    out.push_str(rule);
    line(
        &mut out,
        &Row {
            syscall: "total".into(),
            ..total.clone()
        },
    );
    if total.unknown > 0 {
        out.push_str(&format!(
            "--- crt: {} of {} calls have no return value: their time and errors are unknown and not in the columns above{} ---\n",
            total.unknown,
            total.calls,
            why.map(|w| format!(" ({})", crate::escape::escape(w.as_bytes())))
                .unwrap_or_default()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{decode, RecordBuilder, FLAG_RESUMED};
    use crate::syscalls::{self, NATIVE_AUDIT_ARCH};

    fn call(name: &str, kind: u8, flags: u8, result: Option<(i64, Option<u64>)>) -> Vec<u8> {
        let nr = syscalls::by_name(name).unwrap().nr;
        let mut buf = Vec::new();
        let mut b = RecordBuilder::begin(&mut buf, kind, 1, 7, NATIVE_AUDIT_ARCH, nr, &[0; 6]);
        b.set_flags(flags);
        if let Some((ret, d)) = result {
            b.result(ret, d);
        }
        b.finish();
        buf
    }

    fn summary_of(recs: &[Vec<u8>]) -> Summary {
        let mut s = Summary::default();
        for r in recs {
            s.add(&decode(r).unwrap().0);
        }
        s
    }

    #[test]
    fn calls_errors_and_time_add_up_per_syscall() {
        let s = summary_of(&[
            call("openat", KIND_SYSCALL, 0, Some((-2, Some(3_000)))),
            call("openat", KIND_SYSCALL, 0, Some((3, Some(5_000)))),
            call("openat", KIND_SYSCALL, 0, Some((-13, Some(1_000)))),
            call("wait4", KIND_SYSCALL, FLAG_UNFINISHED, None),
            call(
                "wait4",
                KIND_SYSCALL,
                FLAG_RESUMED,
                Some((42, Some(1_826_000))),
            ),
            call("getpid", KIND_SYSCALL, 0, Some((7, Some(0)))),
            call("read", KIND_SYSCALL, 0, None),
        ]);
        let rows = s.rows();
        let names: Vec<&str> = rows.iter().map(|r| r.syscall.as_str()).collect();
        // Most time first; the untimed rows by number (read is 0, getpid 39).
        assert_eq!(names, ["wait4", "openat", "read", "getpid"]);
        assert_eq!(
            (
                rows[1].calls,
                rows[1].errors,
                rows[1].total_ns,
                rows[1].avg_ns
            ),
            (3, 2, 9_000, Some(3_000))
        );
        // The unfinished entry is counted once, by its exit.
        assert_eq!((rows[0].calls, rows[0].unknown), (1, 0));
        assert_eq!(
            (rows[2].calls, rows[2].unknown, rows[2].avg_ns),
            (1, 1, None)
        );
        let v = s.to_json();
        assert_eq!(v["total"]["calls"], 6);
        assert_eq!(v["total"]["errors"], 2);
        assert_eq!(v["total"]["unknown"], 1);
        assert_eq!(v["syscalls"][0]["syscall"], "wait4");
        assert_eq!(rows_of(&v), rows);
    }

    #[test]
    fn the_table_is_straces() {
        let s = summary_of(&[
            call("wait4", KIND_SYSCALL, 0, Some((1, Some(913_000)))),
            call("wait4", KIND_SYSCALL, 0, Some((-10, Some(913_000)))),
            call("openat", KIND_SYSCALL, 0, Some((-2, Some(214_000)))),
            call("close", KIND_SYSCALL, 0, Some((0, Some(0)))),
        ]);
        let t = table(&s.rows(), None);
        let want = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 89.51    0.001826         913         2         1 wait4
 10.49    0.000214         214         1         1 openat
  0.00    0.000000           0         1           close
------ ----------- ----------- --------- --------- ----------------
100.00    0.002040         510         4         2 total
";
        assert_eq!(t, want);
    }

    #[test]
    fn calls_without_results_are_said_to_be_unknown() {
        let s = summary_of(&[
            call("read", KIND_SYSCALL, 0, None),
            call("read", KIND_SYSCALL, 0, None),
            call("getpid", KIND_SYSCALL, 0, Some((1, Some(1_000)))),
        ]);
        let t = table(&s.rows(), Some("no BPF \x1b"));
        assert!(
            t.ends_with("--- crt: 2 of 3 calls have no return value: their time and errors are unknown and not in the columns above (no BPF \\x1b) ---\n"),
            "{t}"
        );
    }
}
