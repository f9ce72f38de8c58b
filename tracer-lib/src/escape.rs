//! Quoting of bytes a container controls (paths, argv, buffers, process
//! names), so that nothing it writes can reach a terminal or a log as a
//! control sequence or break out of its quotes.

use std::fmt::Write;

/// Quotes bytes for messages and listings (not syscall arguments: those use
/// [`strace_quote`]): `"..."` with `\"`, `\\`, `\n`, `\t`, `\r`, and `\xNN`
/// for every other byte that is not printable ASCII. When `truncated`, `...`
/// follows the closing quote.
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

/// How strace writes the bytes of a string argument (its `-x` option).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StringStyle {
    /// strace's default: printable ASCII as is, `\t \n \v \f \r \" \\`
    /// named, anything else in octal (`\1`, `\377`, `\0000` before a digit).
    #[default]
    Octal,
    /// `strace -x`: as [`StringStyle::Octal`], but a string holding any byte
    /// that is neither printable nor one of `\t \n \v \f \r` is written
    /// wholly in hex (`"\x01\x61"`).
    Hex,
    /// `strace -xx`: every byte in hex.
    AllHex,
}

impl StringStyle {
    /// The style's name in crtd's API (`strings=`): `octal`, `hex`, `allhex`.
    pub fn name(self) -> &'static str {
        match self {
            StringStyle::Octal => "octal",
            StringStyle::Hex => "hex",
            StringStyle::AllHex => "allhex",
        }
    }

    /// The style of a name given by [`StringStyle::name`].
    pub fn parse(s: &str) -> Option<StringStyle> {
        [StringStyle::Octal, StringStyle::Hex, StringStyle::AllHex]
            .into_iter()
            .find(|st| st.name() == s)
    }
}

/// Quotes bytes exactly as strace 6.1 does in `style`; `...` follows the
/// closing quote when `truncated`. The result is pure printable ASCII.
pub fn strace_quote(bytes: &[u8], truncated: bool, style: StringStyle) -> String {
    let mut out = String::with_capacity(bytes.len() + 5);
    out.push('"');
    let all_hex = match style {
        StringStyle::Octal => false,
        StringStyle::AllHex => true,
        // strace's string_quote: one byte outside printable ASCII and the
        // five whitespace controls makes the whole string hex.
        StringStyle::Hex => bytes
            .iter()
            .any(|&c| c > 0x7e || (c < b' ' && !(9..=13).contains(&c))),
    };
    for (i, &c) in bytes.iter().enumerate() {
        if all_hex {
            let _ = write!(out, "\\x{c:02x}");
            continue;
        }
        match c {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            0x0b => out.push_str("\\v"),
            0x0c => out.push_str("\\f"),
            b'\r' => out.push_str("\\r"),
            b' '..=0x7e => out.push(c as char),
            _ => {
                // The shortest octal form, unless an octal digit follows,
                // which would be read as part of the escape.
                let next_is_octal = matches!(bytes.get(i + 1), Some(b'0'..=b'7'));
                if next_is_octal {
                    let _ = write!(out, "\\{c:03o}");
                } else {
                    let _ = write!(out, "\\{c:o}");
                }
            }
        }
    }
    out.push('"');
    if truncated {
        out.push_str("...");
    }
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

    /// Pinned from strace 6.1: `strace -o o1 ./esc`, `strace -x -o o2 ./esc`,
    /// `strace -xx -o o3 ./esc` on a program calling `write(-1, buf, len)`
    /// with these buffers.
    #[test]
    fn syscall_strings_match_strace_in_each_style() {
        let mixed: &[u8] = &[
            1, b'7', 1, b'8', 0xff, b'a', b'\t', b'\n', 0x0b, 0x0c, b'\r', b'"', b'\\', 0, b'0',
            0x1b, b'[', 0x7f,
        ];
        let o = StringStyle::Octal;
        assert_eq!(
            strace_quote(mixed, false, o),
            r#""\0017\18\377a\t\n\v\f\r\"\\\0000\33[\177""#
        );
        assert_eq!(strace_quote(&[1, 2, b'a'], false, o), r#""\1\2a""#);
        assert_eq!(
            strace_quote(b"hello\tworld\n", false, o),
            r#""hello\tworld\n""#
        );
        assert_eq!(strace_quote(&[0x80, b'a', b'b'], false, o), r#""\200ab""#);
        assert_eq!(strace_quote(b"a\0b", false, o), r#""a\0b""#);
        let x = StringStyle::Hex;
        assert_eq!(
            strace_quote(mixed, false, x),
            r#""\x01\x37\x01\x38\xff\x61\x09\x0a\x0b\x0c\x0d\x22\x5c\x00\x30\x1b\x5b\x7f""#
        );
        assert_eq!(
            strace_quote(b"hello\tworld\n", false, x),
            r#""hello\tworld\n""#
        );
        assert_eq!(
            strace_quote(&[0x80, b'a', b'b'], false, x),
            r#""\x80\x61\x62""#
        );
        let xx = StringStyle::AllHex;
        assert_eq!(
            strace_quote(b"hello\tworld\n", false, xx),
            r#""\x68\x65\x6c\x6c\x6f\x09\x77\x6f\x72\x6c\x64\x0a""#
        );
        // `write(-1, <100 letters>, 100)` with the default `-s 32`.
        assert_eq!(
            strace_quote(b"abcdefghijklmnopqrstuvwxyzabcdef", true, o),
            r#""abcdefghijklmnopqrstuvwxyzabcdef"..."#
        );
    }

    #[test]
    fn syscall_strings_are_printable_ascii_in_every_style() {
        let all: Vec<u8> = (0..=255).collect();
        for style in [StringStyle::Octal, StringStyle::Hex, StringStyle::AllHex] {
            let q = strace_quote(&all, true, style);
            assert!(q.bytes().all(|b| (b' '..=0x7e).contains(&b)), "{q}");
        }
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
