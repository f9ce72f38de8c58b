//! The `crt.dev/trace` annotation: a comma list of syscall names and
//! strace-style classes. Absent or `off`: no filter of ours at all.

use std::collections::BTreeSet;
use std::fmt;

use crt_tracer::escape;
use crt_tracer::syscalls::{self, Class};

/// The annotation a container opts in with.
pub const TRACE_ANNOTATION: &str = "crt.dev/trace";

/// Syscalls the runtime refuses to notify (runc: the init process writes to
/// its sync pipe after loading the filter and before the listener is
/// handed over, so a notified `write` would deadlock). Named explicitly they
/// are an error; inside a class they are left out.
pub const NEVER_NOTIFIED: &[&str] = &["write"];

/// Longest annotation value accepted.
pub const MAX_VALUE_LEN: usize = 4096;

/// What a container asked to have traced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceSpec {
    /// The syscall names, sorted and unique.
    pub syscalls: BTreeSet<&'static str>,
    /// The annotation value as given, for the record.
    pub value: String,
}

/// A `crt.dev/trace` value that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnotationError {
    /// The whole value, as given.
    pub value: String,
    /// The offending item, when one item is at fault.
    pub item: Option<String>,
    /// 1-based position of that item.
    pub position: Option<usize>,
    pub reason: String,
}

/// How much of a value an error repeats: enough to recognise it, never
/// the megabyte someone put there.
const SHOWN_VALUE: usize = 120;
const SHOWN_ITEM: usize = 64;

/// `s` quoted and escaped, cut to `max` bytes (at a character boundary)
/// with a note of how long it really is.
fn shown(s: &str, max: usize) -> String {
    if s.len() <= max {
        return escape::quote(s.as_bytes(), false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}... ({} bytes in all)",
        escape::quote(&s.as_bytes()[..end], false),
        s.len()
    )
}

impl fmt::Display for AnnotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid annotation {TRACE_ANNOTATION}={}",
            shown(&self.value, SHOWN_VALUE)
        )?;
        match (&self.item, self.position) {
            (Some(item), Some(pos)) => write!(
                f,
                ": item {pos} {}: {}",
                shown(item, SHOWN_ITEM),
                self.reason
            ),
            _ => write!(f, ": {}", self.reason),
        }
    }
}

impl std::error::Error for AnnotationError {}

const EXPECTED: &str = "expected a comma list of syscall names (like openat,connect) and classes (%file, %network, %process, %signal, %ipc, %memory, %desc, %creds), or \"off\"";

/// Parses an annotation value. `Ok(None)` means no tracing (`off`).
pub fn parse_trace(value: &str) -> Result<Option<TraceSpec>, AnnotationError> {
    let fail = |item: Option<(&str, usize)>, reason: String| AnnotationError {
        value: value.to_string(),
        item: item.map(|(i, _)| i.to_string()),
        position: item.map(|(_, p)| p),
        reason,
    };
    if value.len() > MAX_VALUE_LEN {
        return Err(fail(
            None,
            format!(
                "the value is {} bytes long; expected at most {MAX_VALUE_LEN}",
                value.len()
            ),
        ));
    }
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(fail(None, format!("the value is empty; {EXPECTED}")));
    }
    if trimmed == "off" {
        return Ok(None);
    }
    let mut syscalls: BTreeSet<&'static str> = BTreeSet::new();
    for (i, raw) in trimmed.split(',').enumerate() {
        let pos = i + 1;
        let item = raw.trim();
        if item.is_empty() {
            return Err(fail(
                Some((raw, pos)),
                format!("empty item (two commas in a row, or a trailing comma); {EXPECTED}"),
            ));
        }
        if item == "off" {
            return Err(fail(
                Some((item, pos)),
                "\"off\" must stand alone; it cannot be combined with syscalls".into(),
            ));
        }
        if let Some(class_name) = item.strip_prefix('%') {
            let Some(class) = Class::parse(item) else {
                return Err(fail(
                    Some((item, pos)),
                    format!(
                        "unknown class %{}; expected one of %file, %network, %process, %signal, %ipc, %memory, %desc, %creds",
                        escape::escape(&class_name.as_bytes()[..class_name.len().min(SHOWN_ITEM)])
                    ),
                ));
            };
            syscalls.extend(
                syscalls::in_class(class)
                    .map(|s| s.name)
                    .filter(|n| !NEVER_NOTIFIED.contains(n)),
            );
            continue;
        }
        if NEVER_NOTIFIED.contains(&item) {
            return Err(fail(
                Some((item, pos)),
                format!(
                    "the runtime cannot notify {item}: runc refuses SCMP_ACT_NOTIFY for it (its init writes to a pipe after loading the filter); trace other syscalls"
                ),
            ));
        }
        match syscalls::by_name(item) {
            Some(info) => {
                syscalls.insert(info.name);
            }
            None => {
                return Err(fail(
                    Some((item, pos)),
                    format!("unknown syscall; {EXPECTED}"),
                ))
            }
        }
    }
    Ok(Some(TraceSpec {
        syscalls,
        value: value.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_classes_expand_to_a_sorted_set() {
        let spec = parse_trace("openat, connect,%process").unwrap().unwrap();
        assert!(spec.syscalls.contains("openat"));
        assert!(spec.syscalls.contains("connect"));
        assert!(spec.syscalls.contains("execve"));
        assert!(spec.syscalls.contains("clone"));
    }

    #[test]
    fn off_means_no_tracing() {
        assert_eq!(parse_trace("off").unwrap(), None);
        assert_eq!(parse_trace(" off ").unwrap(), None);
    }

    #[test]
    fn an_unknown_syscall_is_named_with_its_position() {
        let e = parse_trace("openat,opnat").unwrap_err();
        assert_eq!(e.item.as_deref(), Some("opnat"));
        assert_eq!(e.position, Some(2));
        let msg = e.to_string();
        assert!(msg.contains("crt.dev/trace"), "{msg}");
        assert!(msg.contains("\"opnat\""), "{msg}");
        assert!(msg.contains("unknown syscall"), "{msg}");
    }

    #[test]
    fn an_unknown_class_is_named() {
        let e = parse_trace("%files").unwrap_err();
        assert!(e.to_string().contains("unknown class %files"), "{e}");
    }

    #[test]
    fn empty_values_and_items_are_refused() {
        assert!(parse_trace("").unwrap_err().to_string().contains("empty"));
        let e = parse_trace("openat,,connect").unwrap_err();
        assert_eq!(e.position, Some(2));
        assert!(e.reason.contains("empty item"));
        assert!(parse_trace("openat,")
            .unwrap_err()
            .reason
            .contains("empty item"));
    }

    #[test]
    fn write_is_refused_by_name_and_left_out_of_classes() {
        let e = parse_trace("openat,write").unwrap_err();
        assert_eq!(e.item.as_deref(), Some("write"));
        assert!(e.reason.contains("cannot notify"), "{e}");
        let desc = parse_trace("%desc").unwrap().unwrap();
        assert!(!desc.syscalls.contains("write"));
        assert!(desc.syscalls.contains("read"));
    }

    #[test]
    fn off_cannot_be_combined() {
        assert!(parse_trace("off,openat").is_err());
    }

    #[test]
    fn control_characters_in_the_value_are_escaped_in_the_error() {
        let e = parse_trace("open\x1b[2J").unwrap_err();
        assert!(!e.to_string().contains('\x1b'));
        assert!(e.to_string().contains("\\x1b"));
    }

    #[test]
    fn an_oversized_value_is_refused() {
        let long = "openat,".repeat(1000);
        assert!(parse_trace(&long).unwrap_err().reason.contains("at most"));
    }

    #[test]
    fn an_error_repeats_a_huge_value_only_in_part() {
        // A megabyte in, a line out.
        let huge = format!("openat,{}", "x".repeat(1 << 20));
        let msg = parse_trace(&huge).unwrap_err().to_string();
        assert!(msg.len() < 512, "{} bytes", msg.len());
        assert!(
            msg.contains(&format!("({} bytes in all)", huge.len())),
            "{msg}"
        );
        assert!(msg.contains("\"openat,xxx"), "{msg}");
        // An item too long within an acceptable value is cut the same way.
        let item = format!("openat,%{}", "y".repeat(3000));
        let msg = parse_trace(&item).unwrap_err().to_string();
        assert!(msg.len() < 700, "{} bytes: {msg}", msg.len());
        // Cuts fall between characters.
        let wide = "é".repeat(200);
        let msg = parse_trace(&wide).unwrap_err().to_string();
        assert!(msg.contains("bytes in all"), "{msg}");
    }
}
