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

/// A line of text a container wrote (its log), made safe for a terminal
/// while staying readable: printable UTF-8 is kept as it is (quotes too);
/// a backslash, control characters (C0, DEL, C1), bidirectional overrides
/// and bytes that are not UTF-8 are escaped.
pub fn escape_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\n' => out.push_str("\\n"),
                c if (c as u32) < 0x80 && c.is_control() => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if c.is_control() || is_bidi_control(c) => {
                    let _ = write!(out, "\\u{{{:04x}}}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Characters that reorder how text after them is displayed.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_text_keeps_unicode_and_escapes_what_a_terminal_would_obey() {
        assert_eq!(
            escape_text("h\u{e9}llo \"w\"".as_bytes()),
            "h\u{e9}llo \"w\""
        );
        assert_eq!(escape_text(b"\x1b[31mred\x07"), "\\x1b[31mred\\x07");
        assert_eq!(escape_text(b"a\\b\tc"), "a\\\\b\\tc");
        assert_eq!(escape_text("\u{9b}2J".as_bytes()), "\\u{009b}2J");
        assert_eq!(escape_text("x\u{202e}y".as_bytes()), "x\\u{202e}y");
        assert_eq!(escape_text(&[b'o', 0xff, b'k']), "o\\xffk");
    }

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
