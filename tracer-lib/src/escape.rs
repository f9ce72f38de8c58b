//! Quoting of bytes a container controls (paths, argv, buffers, process
//! names), so that nothing it writes can reach a terminal or a log as a
//! control sequence or break out of its quotes.

use std::fmt::Write;

/// Quotes bytes as strace does: `"..."` with `\"`, `\\`, `\n`, `\t`, `\r`,
/// and `\xNN` for every other byte that is not printable ASCII. When
/// `truncated`, `...` follows the closing quote.
pub fn quote(bytes: &[u8], truncated: bool) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    escape_into(&mut out, bytes);
    out.push('"');
    if truncated {
        out.push_str("...");
    }
    out
}

/// Appends the escaped form of `bytes` (without quotes) to `out`.
pub fn escape_into(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

/// The escaped form of `bytes` without quotes, for names shown bare (comm,
/// container ids).
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    escape_into(&mut out, bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_is_kept_and_quoted() {
        assert_eq!(quote(b"/etc/hosts", false), "\"/etc/hosts\"");
    }

    #[test]
    fn quotes_backslashes_and_controls_are_escaped() {
        assert_eq!(quote(b"a\"b\\c\nd\te", false), r#""a\"b\\c\nd\te""#);
        assert_eq!(quote(b"\x1b[31mred", false), r#""\x1b[31mred""#);
        assert_eq!(quote(&[0xff, 0x00], false), r#""\xff\x00""#);
    }

    #[test]
    fn truncation_is_marked_after_the_quote() {
        assert_eq!(quote(b"abc", true), "\"abc\"...");
    }

    #[test]
    fn bare_names_cannot_carry_escape_sequences() {
        assert_eq!(escape(b"evil\x1b]0;x\x07"), r"evil\x1b]0;x\x07");
    }
}
