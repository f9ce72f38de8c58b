//! Choosing syscalls by what they returned: the conditions behind
//! `crtctl trace --failed`, `--successful`, `--errno` and `--slower-than`,
//! applied to records on the node and by crtd alike.

use crate::errno;
use crate::record::Record;

/// Which syscalls to keep by their result (`strace -Z`, `-z`, and more).
/// A syscall without a result (no exit seen: `= ?`) passes only an empty
/// filter: nothing is known of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResultFilter {
    /// Only calls that returned an error (`strace -Z`).
    pub failed: bool,
    /// Only calls that did not return an error (`strace -z`).
    pub succeeded: bool,
    /// Only calls that failed with one of these error numbers (empty: any).
    pub errnos: Vec<i32>,
    /// Only calls that took at least this long (ns, entry to exit).
    pub min_duration_ns: Option<u64>,
}

impl ResultFilter {
    /// No condition: every syscall matches, with or without a result.
    pub fn is_empty(&self) -> bool {
        *self == ResultFilter::default()
    }

    /// Whether a syscall record passes.
    pub fn matches(&self, rec: &Record<'_>) -> bool {
        if self.is_empty() {
            return true;
        }
        match rec.result() {
            Some(r) => self.matches_result(r.ret, r.duration_ns),
            None => false,
        }
    }

    /// Whether a call that returned `ret` after `duration_ns` passes.
    pub fn matches_result(&self, ret: i64, duration_ns: Option<u64>) -> bool {
        let errno = errno::errno_of(ret);
        if self.failed && errno.is_none() {
            return false;
        }
        if self.succeeded && errno.is_some() {
            return false;
        }
        if !self.errnos.is_empty() && !errno.is_some_and(|e| self.errnos.contains(&e)) {
            return false;
        }
        if let Some(min) = self.min_duration_ns {
            if duration_ns.is_none_or(|d| d < min) {
                return false;
            }
        }
        true
    }

    /// Adds `--errno` values (names like `ENOENT` or numbers, each possibly
    /// a comma list). The error says which value is wrong and what is
    /// expected; `key` names the flag or query parameter.
    pub fn add_errnos<S: AsRef<str>>(&mut self, key: &str, values: &[S]) -> Result<(), String> {
        for v in values {
            for item in v
                .as_ref()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                match errno::parse(item) {
                    Some(n) => {
                        if !self.errnos.contains(&n) {
                            self.errnos.push(n);
                        }
                    }
                    None => {
                        return Err(format!(
                            "{}: not an error; expected a name like ENOENT or EACCES, or its number (2)",
                            shown(key, item)
                        ))
                    }
                }
            }
        }
        Ok(())
    }

    /// Sets the `--slower-than` duration; the error names `key` and the value.
    pub fn set_slower_than(&mut self, key: &str, value: &str) -> Result<(), String> {
        match parse_duration_ns(value) {
            Some(ns) => {
                self.min_duration_ns = Some(ns);
                Ok(())
            }
            None => Err(format!(
                "{}: not a duration; expected a number with a unit: 500ns, 250us, 1.5ms, 2s",
                shown(key, value)
            )),
        }
    }

    /// Checks that the conditions can all hold: `failed` and `succeeded`
    /// together, or `succeeded` with errors named, match nothing.
    pub fn check(&self) -> Result<(), String> {
        if self.failed && self.succeeded {
            return Err(
                "failed and successful exclude each other: a call either returned an error or did not; give one".into(),
            );
        }
        if self.succeeded && !self.errnos.is_empty() {
            return Err(
                "successful and errno exclude each other: errno keeps calls that failed with that error".into(),
            );
        }
        Ok(())
    }
}

/// A flag (`--errno`) or query parameter (`errno=`) with the value given,
/// quoted and escaped: `--errno "ENOPE"`, `errno="ENOPE"`.
fn shown(key: &str, value: &str) -> String {
    let q = crate::escape::quote(value.as_bytes(), false);
    if key.ends_with('=') {
        format!("{key}{q}")
    } else {
        format!("{key} {q}")
    }
}

/// A syscall duration as people write it: `500ns`, `250us` (or `µs`),
/// `1ms`, `1.5ms`, `2s`; ns. `None` for anything else (a number needs its unit).
pub fn parse_duration_ns(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let scale: u64 = match unit {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        _ => return None,
    };
    let (whole, frac) = match num.split_once('.') {
        Some((w, f)) => (w, f),
        None => (num, ""),
    };
    if whole.is_empty() && frac.is_empty() || frac.contains('.') {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut ns = whole.checked_mul(scale)?;
    // Fraction digits beyond a nanosecond are dropped.
    let mut unit_part = scale;
    for d in frac.bytes() {
        unit_part /= 10;
        ns = ns.checked_add(u64::from(d - b'0') * unit_part)?;
    }
    Some(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_their_units() {
        assert_eq!(parse_duration_ns("1ms"), Some(1_000_000));
        assert_eq!(parse_duration_ns("250us"), Some(250_000));
        assert_eq!(parse_duration_ns("250µs"), Some(250_000));
        assert_eq!(parse_duration_ns("2s"), Some(2_000_000_000));
        assert_eq!(parse_duration_ns("500ns"), Some(500));
        assert_eq!(parse_duration_ns("1.5ms"), Some(1_500_000));
        assert_eq!(parse_duration_ns("0.000021s"), Some(21_000));
        for bad in [
            "",
            "1",
            "ms",
            "1m",
            "1 h",
            "-1ms",
            "1.2.3ms",
            ".ms",
            "99999999999999999999s",
        ] {
            assert_eq!(parse_duration_ns(bad), None, "{bad}");
        }
    }

    #[test]
    fn results_pass_by_error_and_time() {
        let failed = ResultFilter {
            failed: true,
            ..Default::default()
        };
        assert!(failed.matches_result(-2, None));
        assert!(!failed.matches_result(3, None));
        // A large address is not an error.
        assert!(!failed.matches_result(-4096, None));
        let ok = ResultFilter {
            succeeded: true,
            ..Default::default()
        };
        assert!(ok.matches_result(0, None) && !ok.matches_result(-13, None));
        let mut enoent = ResultFilter::default();
        enoent
            .add_errnos("--errno", &["ENOENT,13", "eagain"])
            .unwrap();
        assert_eq!(enoent.errnos, vec![2, 13, 11]);
        assert!(enoent.matches_result(-2, None) && enoent.matches_result(-11, None));
        assert!(!enoent.matches_result(-1, None) && !enoent.matches_result(0, None));
        let mut slow = ResultFilter::default();
        slow.set_slower_than("--slower-than", "1ms").unwrap();
        assert!(slow.matches_result(0, Some(1_000_000)));
        assert!(!slow.matches_result(0, Some(999_999)));
        assert!(!slow.matches_result(0, None));
    }

    #[test]
    fn bad_values_are_named_with_what_is_expected() {
        let mut f = ResultFilter::default();
        let e = f.add_errnos("--errno", &["ENOENT,ENOPE"]).unwrap_err();
        assert!(
            e.starts_with("--errno \"ENOPE\": not an error; expected"),
            "{e}"
        );
        let e = f.set_slower_than("--slower-than", "1m").unwrap_err();
        assert!(
            e.starts_with("--slower-than \"1m\": not a duration; expected"),
            "{e}"
        );
        let both = ResultFilter {
            failed: true,
            succeeded: true,
            ..Default::default()
        };
        assert!(both.check().is_err());
    }
}
