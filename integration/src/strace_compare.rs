//! Compares crt's strace-style lines with strace's own output for the same
//! program: the end-to-end test of return values (tests/results.rs) and the
//! parity benchmark (bin/crt-parity-bench.rs) both use it.
//!
//! Only differences that two runs of the same program legitimately have are
//! normalized away, never a rendering choice:
//! - the line prefixes (strace's pid, crt's time and `[pid N]`);
//! - strace's padding of ` = ` to column 40;
//! - `<unfinished ...>` / `<... resumed>` pairs, joined into one call (which
//!   calls of two processes interleave is timing);
//! - addresses: hex numbers of 6 digits or more outside strings (`0x7ffd...`,
//!   mmap's result), which ASLR changes between runs;
//! - process ids: the results of fork/clone/getpid/wait4 and the like, the
//!   pid arguments of wait4/kill/tgkill, and `si_pid=` (a container has its
//!   own pid namespace, and the host hands out new pids every run);
//! - the bytes getrandom wrote (random by definition).
//!
//! Everything else (flags, strings, struct contents, errno names, byte
//! counts) must be equal for two calls to match.

use std::collections::HashMap;

/// One syscall line: who made it, and the call as rendered without prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The pid (thread id) the line was attributed to; 0 when the line had none.
    pub pid: u32,
    /// The syscall's name.
    pub name: String,
    /// `name(args) = result`, with unfinished/resumed halves joined.
    pub text: String,
}

const UNFINISHED: &str = " <unfinished ...>";

/// Joins the halves of interrupted calls and builds [`Call`]s from
/// `(pid, text)` lines (text without prefix); skips signal (`---`) and exit
/// (`+++`) lines.
fn calls_from(lines: impl Iterator<Item = (u32, String)>) -> Vec<Call> {
    let mut out: Vec<Call> = Vec::new();
    // pid -> index in `out` of its call waiting for the resumed half.
    let mut pending: HashMap<u32, usize> = HashMap::new();
    for (pid, text) in lines {
        let text = text.trim_end();
        if text.starts_with("---") || text.starts_with("+++") || text.is_empty() {
            continue;
        }
        if let Some(rest) = text.strip_prefix("<... ") {
            // "<... read resumed>REST"
            let Some((name, tail)) = rest.split_once(" resumed>") else {
                continue;
            };
            match pending.remove(&pid) {
                Some(i) if out[i].name == name => {
                    let head = out[i].text.trim_end_matches(UNFINISHED).to_string();
                    out[i].text = format!("{head}{tail}");
                }
                _ => out.push(Call {
                    pid,
                    name: name.to_string(),
                    text: format!("{name}(<resumed without its start>{tail}"),
                }),
            }
            continue;
        }
        let Some(open) = text.find('(') else {
            continue;
        };
        let name = text[..open].to_string();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        if text.ends_with(UNFINISHED) {
            pending.insert(pid, out.len());
        }
        out.push(Call {
            pid,
            name,
            text: text.to_string(),
        });
    }
    out
}

/// The calls in strace's output (`strace -f -o FILE`: lines `PID call`;
/// without `-f`, lines without a pid).
pub fn parse_strace(output: &str) -> Vec<Call> {
    calls_from(output.lines().map(|l| {
        let digits = l.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && l.as_bytes().get(digits) == Some(&b' ') {
            let pid = l[..digits].parse().unwrap_or(0);
            (pid, l[digits..].trim_start().to_string())
        } else {
            (0, l.to_string())
        }
    }))
}

/// The calls in `crtctl trace` text (`HH:MM:SS.ffffff [pid N] call`).
pub fn parse_crt(text: &str) -> Vec<Call> {
    calls_from(text.lines().filter_map(|l| {
        let (_, rest) = l.split_once(' ')?;
        let rest = rest.strip_prefix("[pid ")?;
        let (pid, call) = rest.split_once("] ")?;
        Some((pid.parse().ok()?, call.to_string()))
    }))
}

/// The calls of a program from its first `execve(PATH, ...)` on (that
/// execve included), without what ran before it: the runtime's init in a
/// container, a launcher on the host. Processes seen before that execve
/// (other than the one that made it) are launchers, left out after it too.
pub fn from_exec(calls: &[Call], path: &str) -> Vec<Call> {
    let start = format!("execve(\"{path}\",");
    let Some(i) = calls.iter().position(|c| c.text.starts_with(&start)) else {
        return Vec::new();
    };
    let program = calls[i].pid;
    let launchers: std::collections::HashSet<u32> = calls[..i]
        .iter()
        .map(|c| c.pid)
        .filter(|&p| p != program)
        .collect();
    calls[i..]
        .iter()
        .filter(|c| !launchers.contains(&c.pid))
        .cloned()
        .collect()
}

/// Where a scan of a rendered call stands with respect to strace's quoted
/// strings (`"a\"b"`).
#[derive(Default)]
struct Quotes {
    quoted: bool,
    escaped: bool,
}

impl Quotes {
    /// Takes byte `c`; true when it is part of a string (its quotes
    /// included), false when it is outside every string.
    fn inside(&mut self, c: u8) -> bool {
        if self.quoted {
            match (self.escaped, c) {
                (true, _) => self.escaped = false,
                (false, b'\\') => self.escaped = true,
                (false, b'"') => self.quoted = false,
                _ => {}
            }
            return true;
        }
        self.quoted = c == b'"';
        self.quoted
    }
}

/// `name(args) = result` split at the top level: the arguments and the
/// result (after `= `), honouring quotes and brackets.
fn split_call(text: &str) -> Option<(&str, Vec<&str>, &str)> {
    let open = text.find('(')?;
    let name = &text[..open];
    let b = text.as_bytes();
    let mut depth = 0i32;
    let mut quotes = Quotes::default();
    let mut args = Vec::new();
    let mut arg_start = open + 1;
    let mut close = None;
    for (i, &c) in b.iter().enumerate().skip(open + 1) {
        if quotes.inside(c) {
            continue;
        }
        match c {
            b'(' | b'[' | b'{' => depth += 1,
            b')' if depth == 0 => {
                close = Some(i);
                break;
            }
            b')' | b']' | b'}' => depth -= 1,
            b',' if depth == 0 => {
                args.push(text[arg_start..i].trim());
                arg_start = i + 1;
            }
            _ => {}
        }
    }
    let close = close?;
    let last = text[arg_start..close].trim();
    if !last.is_empty() || !args.is_empty() {
        args.push(last);
    }
    let result = text[close + 1..]
        .trim_start()
        .strip_prefix('=')?
        .trim_start();
    Some((name, args, result))
}

/// Replaces hex numbers of 6 or more digits outside strings by `0xADDR`.
fn mask_addresses(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut quotes = Quotes::default();
    while i < b.len() {
        let c = b[i];
        if quotes.inside(c) {
            out.push(c as char);
            i += 1;
            continue;
        }
        let word_start = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if word_start && c == b'0' && b.get(i + 1) == Some(&b'x') {
            let digits = b[i + 2..]
                .iter()
                .take_while(|d| d.is_ascii_hexdigit())
                .count();
            if digits >= 6 {
                out.push_str("0xADDR");
                i += 2 + digits;
                continue;
            }
        }
        // Copy one UTF-8 character.
        let len = s[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&s[i..i + len]);
        i += len;
    }
    out
}

/// `PID` for a positive decimal number, else the text unchanged.
fn mask_pid(s: &str) -> String {
    match s.parse::<i64>() {
        Ok(n) if n > 0 => "PID".to_string(),
        _ => s.to_string(),
    }
}

/// Syscalls whose (positive) result is a process or thread id.
fn returns_pid(name: &str) -> bool {
    matches!(
        name,
        "fork"
            | "vfork"
            | "clone"
            | "clone3"
            | "getpid"
            | "gettid"
            | "getppid"
            | "getpgid"
            | "getpgrp"
            | "getsid"
            | "setsid"
            | "wait4"
            | "set_tid_address"
    )
}

/// Which arguments of a syscall are process ids.
fn pid_args(name: &str) -> &'static [usize] {
    match name {
        "wait4" | "kill" | "tkill" | "getpgid" | "getsid" | "setpgid" | "pidfd_open"
        | "prlimit64" | "sched_getaffinity" | "sched_setaffinity" => &[0],
        "tgkill" => &[0, 1],
        _ => &[],
    }
}

/// The call as compared: whitespace before ` = ` collapsed, addresses and
/// process ids masked (see the module's notes).
pub fn normalize(call: &Call) -> String {
    let text = mask_addresses(&call.text);
    let Some((name, args, result)) = split_call(&text) else {
        return text;
    };
    let pids = pid_args(name);
    let args: Vec<String> = args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let a = if pids.contains(&i) {
                mask_pid(a)
            } else {
                a.to_string()
            };
            if name == "getrandom" && i == 0 && a.starts_with('"') {
                return "\"RANDOM\"".to_string();
            }
            mask_si_pid(&a)
        })
        .collect();
    let result = if returns_pid(name) {
        match result.split_once(' ') {
            Some((n, rest)) => format!("{} {rest}", mask_pid(n)),
            None => mask_pid(result),
        }
    } else {
        result.to_string()
    };
    format!("{name}({}) = {result}", args.join(", "))
}

/// `si_pid=123` -> `si_pid=PID`.
fn mask_si_pid(s: &str) -> String {
    let Some(i) = s.find("si_pid=") else {
        return s.to_string();
    };
    let start = i + "si_pid=".len();
    let digits = s[start..].bytes().take_while(u8::is_ascii_digit).count();
    format!("{}PID{}", &s[..start], &s[start + digits..])
}

/// How far two traces of the same program agree.
#[derive(Clone, Debug, Default)]
pub struct Parity {
    /// Calls in strace's trace and in crt's.
    pub strace_calls: usize,
    pub crt_calls: usize,
    /// Calls whose normalized text appears on both sides (as a multiset:
    /// the order in which processes interleave is timing).
    pub equal: usize,
    /// Calls of one side without an equal on the other, paired (same
    /// syscall, longest common prefix) where a partner exists.
    pub mismatches: Vec<Mismatch>,
}

/// A call without an equal: strace's rendering and crt's (normalized),
/// either missing when the other side had no call of that syscall left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub strace: Option<String>,
    pub crt: Option<String>,
}

impl Mismatch {
    /// The syscall it is about.
    pub fn syscall(&self) -> &str {
        let text = self.strace.as_deref().or(self.crt.as_deref()).unwrap_or("");
        text.split('(').next().unwrap_or("")
    }
}

/// The mismatches of one syscall.
#[derive(Clone, Debug)]
pub struct MismatchGroup {
    pub syscall: String,
    pub count: usize,
    /// The first one seen.
    pub example: Mismatch,
}

impl Parity {
    /// The share of calls rendered equally: equal calls over the larger
    /// of the two counts (a call missing on one side counts against it).
    pub fn share(&self) -> f64 {
        let total = self.strace_calls.max(self.crt_calls);
        if total == 0 {
            return 1.0;
        }
        self.equal as f64 / total as f64
    }

    /// Adds another program's comparison to this one.
    pub fn add(&mut self, other: Parity) {
        self.strace_calls += other.strace_calls;
        self.crt_calls += other.crt_calls;
        self.equal += other.equal;
        self.mismatches.extend(other.mismatches);
    }
}

/// Compares the calls of two traces of one program, regardless of order.
pub fn compare(strace: &[Call], crt: &[Call]) -> Parity {
    let mut left: HashMap<String, usize> = HashMap::new();
    for c in crt {
        *left.entry(normalize(c)).or_default() += 1;
    }
    let mut equal = 0;
    let mut strace_only = Vec::new();
    for c in strace {
        let n = normalize(c);
        match left.get_mut(&n) {
            Some(k) if *k > 0 => {
                *k -= 1;
                equal += 1;
            }
            _ => strace_only.push(n),
        }
    }
    // What crt has left over, in its order.
    let mut crt_only: Vec<Option<String>> = Vec::new();
    for c in crt {
        let n = normalize(c);
        if let Some(k) = left.get_mut(&n) {
            if *k > 0 {
                *k -= 1;
                crt_only.push(Some(n));
            }
        }
    }
    let mut mismatches = Vec::new();
    for s in strace_only {
        let name = s.split('(').next().unwrap_or("").to_string();
        let best = crt_only
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let c = c.as_ref()?;
                (c.split('(').next() == Some(name.as_str())).then(|| (i, common_prefix(&s, c)))
            })
            .max_by_key(|&(i, p)| (p, std::cmp::Reverse(i)));
        let partner = best.and_then(|(i, _)| crt_only[i].take());
        mismatches.push(Mismatch {
            strace: Some(s),
            crt: partner,
        });
    }
    mismatches.extend(crt_only.into_iter().flatten().map(|c| Mismatch {
        strace: None,
        crt: Some(c),
    }));
    Parity {
        strace_calls: strace.len(),
        crt_calls: crt.len(),
        equal,
        mismatches,
    }
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

/// Mismatches grouped by syscall, most frequent first.
pub fn top_mismatches(mismatches: &[Mismatch]) -> Vec<MismatchGroup> {
    let mut by: Vec<MismatchGroup> = Vec::new();
    for m in mismatches {
        match by.iter_mut().find(|g| g.syscall == m.syscall()) {
            Some(g) => g.count += 1,
            None => by.push(MismatchGroup {
                syscall: m.syscall().to_string(),
                count: 1,
                example: m.clone(),
            }),
        }
    }
    by.sort_by(|a, b| b.count.cmp(&a.count).then(a.syscall.cmp(&b.syscall)));
    by
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strace_lines_lose_pid_and_padding_and_interrupted_calls_are_joined() {
        let out = "\
25571 openat(AT_FDCWD, \"/x\", O_RDONLY) = -1 ENOENT (No such file or directory)
25571 read(3, \"crt test image\\n\", 64)   = 15
25571 fork( <unfinished ...>
25572 +++ exited with 7 +++
25571 <... fork resumed>)               = 25572
25571 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=25572} ---
25571 wait4(25572, [{WIFEXITED(s) && WEXITSTATUS(s) == 7}], 0, NULL) = 25572
";
        let calls = parse_strace(out);
        let texts: Vec<String> = calls.iter().map(normalize).collect();
        assert_eq!(
            texts,
            [
                "openat(AT_FDCWD, \"/x\", O_RDONLY) = -1 ENOENT (No such file or directory)",
                "read(3, \"crt test image\\n\", 64) = 15",
                "fork() = PID",
                "wait4(PID, [{WIFEXITED(s) && WEXITSTATUS(s) == 7}], 0, NULL) = PID",
            ]
        );
        assert!(calls.iter().all(|c| c.pid == 25571));
    }

    #[test]
    fn crt_lines_lose_time_and_pid() {
        let text = "\
20:07:10.997068 [pid 9] openat(AT_FDCWD, \"/x\", O_RDONLY) = 3
20:07:10.997068 [pid 9] read(0,  <unfinished ...>
20:07:10.997070 [pid 10] close(3) = 0
20:07:10.997099 [pid 9] <... read resumed>\"hi\\n\", 1024) = 3
20:07:11.060271 +++ all processes exited +++
20:07:11.060271 --- crt: 3 events dropped so far: the trace store could not keep up ---
";
        let calls = parse_crt(text);
        let texts: Vec<&str> = calls.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "openat(AT_FDCWD, \"/x\", O_RDONLY) = 3",
                "read(0, \"hi\\n\", 1024) = 3",
                "close(3) = 0"
            ]
        );
        assert_eq!(calls[1].pid, 9);
    }

    #[test]
    fn addresses_are_masked_outside_strings_only() {
        let c = Call {
            pid: 1,
            name: "mmap".into(),
            text: "mmap(0x7f12a000, 8192, PROT_READ, MAP_PRIVATE, 3, 0x1000) = 0x7f12a0000000"
                .into(),
        };
        assert_eq!(
            normalize(&c),
            "mmap(0xADDR, 8192, PROT_READ, MAP_PRIVATE, 3, 0x1000) = 0xADDR"
        );
        let c = Call {
            pid: 1,
            name: "write".into(),
            text: "write(1, \"0x7f12a000 = 5, x\", 17) = 17".into(),
        };
        assert_eq!(normalize(&c), "write(1, \"0x7f12a000 = 5, x\", 17) = 17");
    }

    #[test]
    fn errors_and_negative_pid_arguments_are_not_masked() {
        let c = Call {
            pid: 1,
            name: "wait4".into(),
            text: "wait4(-1, 0x7ffd00000000, WNOHANG, NULL) = -1 ECHILD (No child processes)"
                .into(),
        };
        assert_eq!(
            normalize(&c),
            "wait4(-1, 0xADDR, WNOHANG, NULL) = -1 ECHILD (No child processes)"
        );
    }

    #[test]
    fn random_bytes_and_pids_in_signal_info_are_masked() {
        let c = Call {
            pid: 1,
            name: "getrandom".into(),
            text: r#"getrandom("\x70\x16\x63\x71", 4, GRND_NONBLOCK) = 4"#.into(),
        };
        assert_eq!(
            normalize(&c),
            r#"getrandom("RANDOM", 4, GRND_NONBLOCK) = 4"#
        );
        let c = Call {
            pid: 1,
            name: "rt_sigtimedwait".into(),
            text: "rt_sigtimedwait([CHLD], {si_signo=SIGCHLD, si_pid=42, si_uid=0}, NULL, 8) = 17"
                .into(),
        };
        assert_eq!(
            normalize(&c),
            "rt_sigtimedwait([CHLD], {si_signo=SIGCHLD, si_pid=PID, si_uid=0}, NULL, 8) = 17"
        );
    }

    #[test]
    fn the_share_counts_each_side_and_pairs_mismatches_by_syscall() {
        let strace = parse_strace(
            "1 close(3) = 0\n1 close(3) = 0\n1 openat(AT_FDCWD, \"/a\", O_RDONLY) = 3\n1 getuid() = 0\n",
        );
        let crt = parse_crt(
            "t [pid 2] close(3) = 0\nt [pid 2] openat(AT_FDCWD, \"/a\", O_RDONLY) = ?\nt [pid 2] close(3) = 0\n",
        );
        let p = compare(&strace, &crt);
        assert_eq!((p.strace_calls, p.crt_calls, p.equal), (4, 3, 2));
        assert_eq!(p.share(), 0.5);
        assert_eq!(
            p.mismatches,
            [
                Mismatch {
                    strace: Some("openat(AT_FDCWD, \"/a\", O_RDONLY) = 3".to_string()),
                    crt: Some("openat(AT_FDCWD, \"/a\", O_RDONLY) = ?".to_string())
                },
                Mismatch {
                    strace: Some("getuid() = 0".to_string()),
                    crt: None
                },
            ]
        );
        let top = top_mismatches(&p.mismatches);
        assert_eq!(top[0].syscall, "getuid");
        assert_eq!(top.len(), 2);
    }

    #[test]
    fn from_exec_starts_at_the_programs_execve() {
        let calls = parse_crt(
            "t [pid 5] close(4) = 0\nt [pid 5] execve(\"/bin/ls\", [\"ls\"], 0xc000 /* 2 vars */) = 0\nt [pid 5] close(3) = 0\n",
        );
        let from = from_exec(&calls, "/bin/ls");
        assert_eq!(from.len(), 2);
        assert!(from[0].text.starts_with("execve("));
        assert!(from_exec(&calls, "/bin/cat").is_empty());
        // A launcher's calls after the program started are not the program's.
        let calls = parse_strace(
            "7 execve(\"/usr/bin/unshare\", [], 0x1 /* 2 vars */) = 0\n7 clone() = 8\n8 execve(\"/bin/ls\", [\"ls\"], 0x1 /* 2 vars */) = 0\n7 wait4(-1,  <unfinished ...>\n8 close(3) = 0\n7 <... wait4 resumed>NULL, 0, NULL) = 8\n",
        );
        let from = from_exec(&calls, "/bin/ls");
        assert_eq!(from.len(), 2);
        assert!(from.iter().all(|c| c.pid == 8));
    }
}
