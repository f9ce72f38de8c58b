//! Lines of real strace 6.1 output, pinned, against records built by hand
//! with the same arguments, results and output memory.
//!
//! How the expected lines were obtained (Debian 12, strace 6.1, x86_64):
//! small C programs compiled with `cc` and run as
//! `strace -f -o o7 ./out` (files, stat, statx, readlink, getcwd, pipes,
//! sockets, wait4, fork), `strace -o o8 ./t2` (a long symlink, raw pipe,
//! modes), `strace -f -o o6 ./cl` (clone with various flags),
//! `strace -o o11 ./t3` (EOF read, fcntl getters, getsockname),
//! `strace -o o1 ./esc`, `strace -x -o o2 ./esc`, `strace -xx -o o3 ./esc`
//! (`write(-1, buf, len)` with odd bytes). Each expected string below is a
//! line copied from that output; strace's `-f` pid prefix and the spaces it
//! pads the ` = ` column with are removed by `strace_line` (CRT lines carry
//! the pid in their own prefix and do not pad).
//!
//! Pointers and numbers that vary from run to run (stack addresses, ports,
//! pids) are the ones of the run the line was copied from, and the record is
//! built with those same values.

use crt_tracer::decode::RenderOptions;
use crt_tracer::escape::StringStyle;
use crt_tracer::record::{self, begin_exit, RecordBuilder, FLAG_UNFINISHED, KIND_SYSCALL};
use crt_tracer::render::{self, event_fields, event_text};
use crt_tracer::syscalls::{by_name, AUDIT_ARCH_X86_64};

/// strace's line without a `-f` pid prefix and without the padding before
/// ` = `.
fn strace_line(s: &str) -> String {
    let s = s
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start();
    if s.ends_with("<unfinished ...>") {
        return s.to_string();
    }
    match s.rfind(" = ") {
        Some(at) => format!("{} = {}", s[..at].trim_end(), &s[at + 3..]),
        None => s.to_string(),
    }
}

const AT_FDCWD: u64 = -100i64 as u64;

/// A syscall as the tracer stores it: entry captures (paths, input
/// buffers), and when the exit was seen, its result and output memory.
struct Call<'a> {
    name: &'a str,
    args: [u64; 6],
    entry: Vec<(u8, &'a [u8], bool)>,
    argv: Option<(u8, Vec<&'a [u8]>)>,
    count: Option<(u8, u64)>,
    ret: Option<i64>,
    out: Option<(u8, Vec<u8>, bool)>,
}

fn call<'a>(name: &'a str, args: &[u64]) -> Call<'a> {
    let mut a = [0u64; 6];
    a[..args.len()].copy_from_slice(args);
    Call {
        name,
        args: a,
        entry: Vec::new(),
        argv: None,
        count: None,
        ret: None,
        out: None,
    }
}

impl<'a> Call<'a> {
    fn path(mut self, arg: u8, p: &'a [u8]) -> Self {
        self.entry.push((arg, p, false));
        self
    }
    fn inbuf(mut self, arg: u8, b: &'a [u8], truncated: bool) -> Self {
        self.entry.push((arg, b, truncated));
        self
    }
    fn argv(mut self, arg: u8, items: &[&'a [u8]]) -> Self {
        self.argv = Some((arg, items.to_vec()));
        self
    }
    fn count(mut self, arg: u8, n: u64) -> Self {
        self.count = Some((arg, n));
        self
    }
    fn ret(mut self, r: i64) -> Self {
        self.ret = Some(r);
        self
    }
    fn out(mut self, arg: u8, b: Vec<u8>, truncated: bool) -> Self {
        self.out = Some((arg, b, truncated));
        self
    }

    fn entry_record(&self, flags: u8) -> Vec<u8> {
        let nr = by_name(self.name).unwrap().nr;
        let mut buf = Vec::new();
        let mut b = RecordBuilder::begin(
            &mut buf,
            KIND_SYSCALL,
            1,
            42,
            AUDIT_ARCH_X86_64,
            nr,
            &self.args,
        );
        b.set_flags(flags);
        for &(arg, bytes, t) in &self.entry {
            b.bytes(arg, bytes, t);
        }
        if let Some((arg, items)) = &self.argv {
            let mut payload = Vec::new();
            for item in items {
                record::push_string_entry(&mut payload, item, false);
            }
            let r = b.reserve_bytes(*arg, payload.len());
            b.reserved_mut(&r)[..payload.len()].copy_from_slice(&payload);
            b.finish_reserved(r, payload.len(), record::CAPTURE_STRINGS, false);
        }
        if let Some((arg, n)) = self.count {
            b.count(arg, n);
        }
        b.finish();
        buf
    }

    fn add_exit(&self, b: &mut RecordBuilder<'_>) {
        if let Some(r) = self.ret {
            b.result(r, Some(1000));
        }
        if let Some((arg, bytes, t)) = &self.out {
            b.out_bytes(*arg, bytes, *t);
        }
    }

    /// The record of a call whose exit was seen in time: one line.
    fn whole(&self) -> String {
        let mut buf = self.entry_record(0);
        let mut b = RecordBuilder::extend(&mut buf, 0);
        self.add_exit(&mut b);
        b.finish();
        let (rec, _) = record::decode(&buf).unwrap();
        let line = render::strace_call(&rec);
        // The JSON event renders to the same text.
        assert_eq!(via_json(&rec), line);
        line
    }

    fn whole_with(&self, opts: &RenderOptions) -> String {
        let mut buf = self.entry_record(0);
        let mut b = RecordBuilder::extend(&mut buf, 0);
        self.add_exit(&mut b);
        b.finish();
        let (rec, _) = record::decode(&buf).unwrap();
        render::strace_call_with(&rec, opts)
    }

    /// An entry stored unfinished and its exit record: two lines, from the
    /// records and from their JSON events alike.
    fn split(&self) -> (String, String) {
        let entry = self.entry_record(FLAG_UNFINISHED);
        let (erec, _) = record::decode(&entry).unwrap();
        let mut exit = Vec::new();
        let mut b = begin_exit(&mut exit, &erec, 2);
        self.add_exit(&mut b);
        b.finish();
        let (xrec, _) = record::decode(&exit).unwrap();
        let lines = (render::strace_call(&erec), render::strace_call(&xrec));
        assert_eq!((via_json(&erec), via_json(&xrec)), lines);
        lines
    }
}

/// The text line of a record's JSON event, without time and pid.
fn via_json(rec: &record::Record<'_>) -> String {
    let mut e = event_fields(rec);
    e.insert(
        "ts".into(),
        serde_json::json!("2026-12-07T20:00:00.000000Z"),
    );
    let line = event_text(&serde_json::Value::Object(e)).unwrap();
    line.split_once("] ").unwrap().1.to_string()
}

fn stat_bytes(mode: u32, rdev: u64, size: i64) -> Vec<u8> {
    let mut b = vec![0u8; 144];
    b[24..28].copy_from_slice(&mode.to_le_bytes());
    b[40..48].copy_from_slice(&rdev.to_le_bytes());
    b[48..56].copy_from_slice(&size.to_le_bytes());
    b
}

fn statx_bytes(mask: u32, mode: u16, size: u64) -> Vec<u8> {
    let mut b = vec![0u8; 256];
    b[0..4].copy_from_slice(&mask.to_le_bytes());
    b[28..30].copy_from_slice(&mode.to_le_bytes());
    b[40..48].copy_from_slice(&size.to_le_bytes());
    b
}

/// An output socket address as the exit program stores it: the socklen
/// after the call, then the address bytes.
fn sockaddr_out(socklen: u32, addr: &[u8]) -> Vec<u8> {
    let mut b = socklen.to_le_bytes().to_vec();
    b.extend_from_slice(addr);
    b
}

fn sockaddr_in(port: u16, ip: [u8; 4]) -> Vec<u8> {
    let mut b = 2u16.to_le_bytes().to_vec();
    b.extend_from_slice(&port.to_be_bytes());
    b.extend_from_slice(&ip);
    b.extend_from_slice(&[0; 8]);
    b
}

fn ints(a: i32, b: i32) -> Vec<u8> {
    let mut v = a.to_le_bytes().to_vec();
    v.extend_from_slice(&b.to_le_bytes());
    v
}

#[test]
fn reads_show_the_data_the_call_returned() {
    let data = b"hello\nabcdefghijklmnopqrstuvwxyz";
    assert_eq!(
        call("read", &[3, 0x7ffe_9a40_2ec0, 1024])
            .ret(106)
            .out(1, data.to_vec(), true)
            .whole(),
        strace_line(r#"6198  read(3, "hello\nabcdefghijklmnopqrstuvwxyz"..., 1024) = 106"#)
    );
    assert_eq!(
        call("read", &[3, 0x7ffe_9a40_2ec0, 6])
            .ret(6)
            .out(1, b"hello\n".to_vec(), false)
            .whole(),
        strace_line(r#"6198  read(3, "hello\n", 6)             = 6"#)
    );
    assert_eq!(
        call("pread64", &[3, 0x7ffe_9a40_2ec0, 1024, 0])
            .ret(106)
            .out(1, data.to_vec(), true)
            .whole(),
        strace_line(r#"6198  pread64(3, "hello\nabcdefghijklmnopqrstuvwxyz"..., 1024, 0) = 106"#)
    );
    // End of file: nothing read, nothing captured.
    assert_eq!(
        call("read", &[3, 0x7ffe_9a40_2ec0, 64]).ret(0).whole(),
        strace_line(r#"read(3, "", 64)                         = 0"#)
    );
    // A failed read shows the pointer.
    assert_eq!(
        call("read", &[99, 0x7ffe_9a40_2ec0, 10]).ret(-9).whole(),
        strace_line("6198  read(99, 0x7ffe9a402ec0, 10)      = -1 EBADF (Bad file descriptor)")
    );
    assert_eq!(
        call("recvfrom", &[14, 0x7ffe_9a40_2c90, 1024, 0, 0, 0])
            .ret(1)
            .out(1, b"x".to_vec(), false)
            .whole(),
        strace_line(r#"6198  recvfrom(14, "x", 1024, 0, NULL, NULL) = 1"#)
    );
}

#[test]
fn written_buffers_are_escaped_as_strace_in_each_style() {
    let odd: &[u8] = &[
        1, b'7', 1, b'8', 0xff, b'a', b'\t', b'\n', 0x0b, 0x0c, b'\r', b'"', b'\\', 0, b'0', 0x1b,
        b'[', 0x7f,
    ];
    let w = call("write", &[u64::MAX, 0x7ffc_0000_1000, 18])
        .inbuf(1, odd, false)
        .ret(-9);
    assert_eq!(
        w.whole(),
        strace_line(
            r#"write(-1, "\0017\18\377a\t\n\v\f\r\"\\\0000\33[\177", 18) = -1 EBADF (Bad file descriptor)"#
        )
    );
    let hex = RenderOptions {
        strings: StringStyle::Hex,
        ..RenderOptions::default()
    };
    assert_eq!(
        w.whole_with(&hex),
        strace_line(
            r#"write(-1, "\x01\x37\x01\x38\xff\x61\x09\x0a\x0b\x0c\x0d\x22\x5c\x00\x30\x1b\x5b\x7f", 18) = -1 EBADF (Bad file descriptor)"#
        )
    );
    let w = call("write", &[u64::MAX, 0x7ffc_0000_1000, 12])
        .inbuf(1, b"hello\tworld\n", false)
        .ret(-9);
    assert_eq!(
        w.whole_with(&hex),
        strace_line(r#"write(-1, "hello\tworld\n", 12)         = -1 EBADF (Bad file descriptor)"#)
    );
    let all_hex = RenderOptions {
        strings: StringStyle::AllHex,
        ..RenderOptions::default()
    };
    assert_eq!(
        w.whole_with(&all_hex),
        strace_line(
            r#"write(-1, "\x68\x65\x6c\x6c\x6f\x09\x77\x6f\x72\x6c\x64\x0a", 12) = -1 EBADF (Bad file descriptor)"#
        )
    );
    // 100 bytes written, 64 copied at the entry, 32 shown (`-s 32`).
    let letters: Vec<u8> = (0..64).map(|i| b'a' + (i % 26) as u8).collect();
    assert_eq!(
        call("write", &[u64::MAX, 0x7ffc_0000_1000, 100])
            .inbuf(1, &letters, true)
            .ret(-9)
            .whole(),
        strace_line(
            r#"write(-1, "abcdefghijklmnopqrstuvwxyzabcdef"..., 100) = -1 EBADF (Bad file descriptor)"#
        )
    );
}

#[test]
fn open_flags_and_fcntl_results() {
    assert_eq!(
        call("openat", &[AT_FDCWD, 0x5555_0000, 0o1101, 0o644])
            .path(1, b"/tmp/rs/data.txt")
            .ret(3)
            .whole(),
        strace_line(
            r#"6198  openat(AT_FDCWD, "/tmp/rs/data.txt", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 3"#
        )
    );
    assert_eq!(
        call("openat", &[AT_FDCWD, 0x5555_0000, 0o6002, 0])
            .path(1, b"/tmp/rs/data.txt")
            .ret(4)
            .whole(),
        strace_line(
            r#"6198  openat(AT_FDCWD, "/tmp/rs/data.txt", O_RDWR|O_APPEND|O_NONBLOCK) = 4"#
        )
    );
    let fcntl =
        |fd: u64, cmd: u64, arg: u64, ret: i64| call("fcntl", &[fd, cmd, arg]).ret(ret).whole();
    assert_eq!(
        fcntl(3, 1, 0, 0),
        strace_line("fcntl(3, F_GETFD)                 = 0")
    );
    assert_eq!(
        fcntl(3, 2, 1, 0),
        strace_line("fcntl(3, F_SETFD, FD_CLOEXEC)     = 0")
    );
    assert_eq!(
        fcntl(3, 1, 0, 1),
        strace_line("fcntl(3, F_GETFD)                 = 0x1 (flags FD_CLOEXEC)")
    );
    assert_eq!(
        fcntl(3, 3, 0, 0x8000),
        strace_line("fcntl(3, F_GETFL)                 = 0x8000 (flags O_RDONLY|O_LARGEFILE)")
    );
    assert_eq!(
        fcntl(4, 3, 0, 0x8c02),
        strace_line(
            "fcntl(4, F_GETFL)                 = 0x8c02 (flags O_RDWR|O_APPEND|O_NONBLOCK|O_LARGEFILE)"
        )
    );
    assert_eq!(
        fcntl(3, 1025, 0, 2),
        strace_line("fcntl(3, F_GETLEASE)                    = 0x2 (F_UNLCK)")
    );
    assert_eq!(
        fcntl(3, 11, 0, 0),
        strace_line("fcntl(3, F_GETSIG)                      = 0")
    );
    assert_eq!(
        fcntl(3, 1032, 0, -9),
        strace_line("fcntl(3, F_GETPIPE_SZ)                  = -1 EBADF (Bad file descriptor)")
    );
    assert_eq!(
        fcntl(3, 0, 10, 11),
        strace_line("fcntl(3, F_DUPFD, 10)                   = 11")
    );
    assert_eq!(
        fcntl(12, 4, 0o4000, 0),
        strace_line("fcntl(12, F_SETFL, O_RDONLY|O_NONBLOCK) = 0")
    );
    assert_eq!(
        call("lseek", &[3, 0, 2]).ret(106).whole(),
        strace_line("lseek(3, 0, SEEK_END)                   = 106")
    );
}

#[test]
fn stat_family_structs() {
    let newfstatat = |dir: u64, path: &'static [u8], flags: u64, st: Vec<u8>| {
        call("newfstatat", &[dir, 0x5555_0000, 0x7ffe_9a40_2e30, flags])
            .path(1, path)
            .ret(0)
            .out(2, st, false)
            .whole()
    };
    assert_eq!(
        newfstatat(
            AT_FDCWD,
            b"/tmp/rs/data.txt",
            0,
            stat_bytes(0o100644, 0, 106)
        ),
        strace_line(
            r#"6198  newfstatat(AT_FDCWD, "/tmp/rs/data.txt", {st_mode=S_IFREG|0644, st_size=106, ...}, 0) = 0"#
        )
    );
    assert_eq!(
        newfstatat(3, b"", 0x1000, stat_bytes(0o100644, 0, 106)),
        strace_line(
            r#"6198  newfstatat(3, "", {st_mode=S_IFREG|0644, st_size=106, ...}, AT_EMPTY_PATH) = 0"#
        )
    );
    assert_eq!(
        newfstatat(AT_FDCWD, b"/dev/null", 0, stat_bytes(0o20666, 0x103, 0)),
        strace_line(
            r#"6198  newfstatat(AT_FDCWD, "/dev/null", {st_mode=S_IFCHR|0666, st_rdev=makedev(0x1, 0x3), ...}, 0) = 0"#
        )
    );
    assert_eq!(
        newfstatat(AT_FDCWD, b"/tmp", 0, stat_bytes(0o41777, 0, 4096)),
        strace_line(
            r#"6198  newfstatat(AT_FDCWD, "/tmp", {st_mode=S_IFDIR|S_ISVTX|0777, st_size=4096, ...}, 0) = 0"#
        )
    );
    assert_eq!(
        newfstatat(5, b"", 0x1000, stat_bytes(0o106755, 0, 0)),
        strace_line(
            r#"newfstatat(5, "", {st_mode=S_IFREG|S_ISUID|S_ISGID|0755, st_size=0, ...}, AT_EMPTY_PATH) = 0"#
        )
    );
    // A failed stat shows the pointer.
    assert_eq!(
        call("newfstatat", &[AT_FDCWD, 0x5555_0000, 0x7ffe_9a40_2e30, 0])
            .path(1, b"/nonexistent")
            .ret(-2)
            .whole(),
        strace_line(
            r#"6198  newfstatat(AT_FDCWD, "/nonexistent", 0x7ffe9a402e30, 0) = -1 ENOENT (No such file or directory)"#
        )
    );
    let statx = |flags: u64, mask: u64, sx: Vec<u8>| {
        call(
            "statx",
            &[AT_FDCWD, 0x5555_0000, flags, mask, 0x7ffe_9a40_2d00],
        )
        .path(1, b"/tmp/rs/data.txt")
        .ret(0)
        .out(4, sx, false)
        .whole()
    };
    assert_eq!(
        statx(0, 0xfff, statx_bytes(0x1fff, 0o100644, 106)),
        strace_line(
            r#"6198  statx(AT_FDCWD, "/tmp/rs/data.txt", AT_STATX_SYNC_AS_STAT, STATX_ALL, {stx_mask=STATX_ALL|STATX_MNT_ID, stx_attributes=0, stx_mode=S_IFREG|0644, stx_size=106, ...}) = 0"#
        )
    );
    assert_eq!(
        statx(0x100, 0x7ff, statx_bytes(0x17ff, 0o100644, 106)),
        strace_line(
            r#"6198  statx(AT_FDCWD, "/tmp/rs/data.txt", AT_STATX_SYNC_AS_STAT|AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, {stx_mask=STATX_BASIC_STATS|STATX_MNT_ID, stx_attributes=0, stx_mode=S_IFREG|0644, stx_size=106, ...}) = 0"#
        )
    );
    assert_eq!(
        statx(0, 0x201, statx_bytes(0x173f, 0o100644, 106)),
        strace_line(
            r#"6198  statx(AT_FDCWD, "/tmp/rs/data.txt", AT_STATX_SYNC_AS_STAT, STATX_TYPE|STATX_SIZE, {stx_mask=STATX_TYPE|STATX_MODE|STATX_NLINK|STATX_UID|STATX_GID|STATX_ATIME|STATX_INO|STATX_SIZE|STATX_BLOCKS|STATX_MNT_ID, stx_attributes=0, stx_mode=S_IFREG|0644, stx_size=106, ...}) = 0"#
        )
    );
}

#[test]
fn paths_the_kernel_wrote() {
    let readlink = |bufsize: u64, ret: i64, target: &[u8]| {
        call("readlink", &[0x5555_0000, 0x7ffe_9a40_2ec0, bufsize])
            .path(0, b"/tmp/rs/lnk")
            .ret(ret)
            .out(1, target.to_vec(), false)
            .whole()
    };
    assert_eq!(
        readlink(1024, 16, b"/tmp/rs/data.txt"),
        strace_line(r#"6198  readlink("/tmp/rs/lnk", "/tmp/rs/data.txt", 1024) = 16"#)
    );
    assert_eq!(
        readlink(4, 4, b"/tmp"),
        strace_line(r#"6198  readlink("/tmp/rs/lnk", "/tmp", 4) = 4"#)
    );
    // A link target longer than `-s 32` is cut like data.
    let long = b"/tmp/rs/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    assert_eq!(
        call("readlink", &[0x5555_0000, 0x7ffc_4ca4_8000, 256])
            .path(0, b"/tmp/rs/lnk2")
            .ret(75)
            .out(1, long.to_vec(), false)
            .whole(),
        strace_line(r#"readlink("/tmp/rs/lnk2", "/tmp/rs/aaaaaaaaaaaaaaaaaaaaaaaa"..., 256) = 75"#)
    );
    assert_eq!(
        call(
            "readlinkat",
            &[AT_FDCWD, 0x5555_0000, 0x7ffe_9a40_2ec0, 1024]
        )
        .path(1, b"/tmp/rs/lnk")
        .ret(16)
        .out(2, b"/tmp/rs/data.txt".to_vec(), false)
        .whole(),
        strace_line(r#"6198  readlinkat(AT_FDCWD, "/tmp/rs/lnk", "/tmp/rs/data.txt", 1024) = 16"#)
    );
    assert_eq!(
        call("readlink", &[0x5555_0000, 0x7ffe_9a40_2ec0, 10])
            .path(0, b"/nonexistent")
            .ret(-2)
            .whole(),
        strace_line(
            r#"6198  readlink("/nonexistent", 0x7ffe9a402ec0, 10) = -1 ENOENT (No such file or directory)"#
        )
    );
    // getcwd's count includes the NUL.
    assert_eq!(
        call("getcwd", &[0x7ffe_9a40_2ec0, 1024])
            .ret(8)
            .out(0, b"/tmp/rs\0".to_vec(), false)
            .whole(),
        strace_line(r#"6198  getcwd("/tmp/rs", 1024)           = 8"#)
    );
    assert_eq!(
        call("getcwd", &[0x7ffe_9a40_2ec0, 2]).ret(-34).whole(),
        strace_line(
            "6198  getcwd(0x7ffe9a402ec0, 2)         = -1 ERANGE (Numerical result out of range)"
        )
    );
}

#[test]
fn descriptor_pairs() {
    assert_eq!(
        call("pipe", &[0x7ffc_0000_2000])
            .ret(0)
            .out(0, ints(3, 4), false)
            .whole(),
        strace_line("pipe([3, 4])                            = 0")
    );
    assert_eq!(
        call("pipe2", &[0x7ffc_0000_2000, 0o2004000])
            .ret(0)
            .out(0, ints(7, 8), false)
            .whole(),
        strace_line("6198  pipe2([7, 8], O_NONBLOCK|O_CLOEXEC) = 0")
    );
    assert_eq!(
        call("pipe2", &[0x7ffc_0000_2000, 0])
            .ret(0)
            .out(0, ints(5, 6), false)
            .whole(),
        strace_line("6198  pipe2([5, 6], 0)                  = 0")
    );
    assert_eq!(
        call("socketpair", &[1, 1, 0, 0x7ffc_0000_2000])
            .ret(0)
            .out(3, ints(9, 11), false)
            .whole(),
        strace_line("6198  socketpair(AF_UNIX, SOCK_STREAM, 0, [9, 11]) = 0")
    );
}

#[test]
fn socket_addresses_the_kernel_wrote() {
    let local = sockaddr_in(49107, [127, 0, 0, 1]);
    let with_given = |name: &'static str, fd: u64, given: &[u8], ret: i64, out: Vec<u8>| {
        call(name, &[fd, 0x7ffe_9a40_2d00, 0x7ffe_9a40_2cfc])
            .inbuf(2, given, false)
            .ret(ret)
            .out(1, out, false)
            .whole()
    };
    let len128: &[u8] = &128u32.to_le_bytes();
    assert_eq!(
        with_given("getsockname", 12, len128, 0, sockaddr_out(16, &local)),
        strace_line(
            r#"6198  getsockname(12, {sa_family=AF_INET, sin_port=htons(49107), sin_addr=inet_addr("127.0.0.1")}, [128 => 16]) = 0"#
        )
    );
    assert_eq!(
        with_given(
            "accept",
            12,
            len128,
            14,
            sockaddr_out(16, &sockaddr_in(47616, [127, 0, 0, 1]))
        ),
        strace_line(
            r#"6198  accept(12, {sa_family=AF_INET, sin_port=htons(47616), sin_addr=inet_addr("127.0.0.1")}, [128 => 16]) = 14"#
        )
    );
    assert_eq!(
        with_given("getpeername", 13, len128, 0, sockaddr_out(16, &local)),
        strace_line(
            r#"6198  getpeername(13, {sa_family=AF_INET, sin_port=htons(49107), sin_addr=inet_addr("127.0.0.1")}, [128 => 16]) = 0"#
        )
    );
    // The caller gave 4 bytes: the kernel wrote 4, and says 16 were needed.
    assert_eq!(
        with_given(
            "getpeername",
            13,
            &4u32.to_le_bytes(),
            0,
            sockaddr_out(16, &local)
        ),
        strace_line(
            r#"6198  getpeername(13, {sa_family=AF_INET, sa_data="\277\323"}, [4 => 16]) = 0"#
        )
    );
    let len16: &[u8] = &16u32.to_le_bytes();
    assert_eq!(
        with_given(
            "getsockname",
            5,
            len16,
            0,
            sockaddr_out(16, &sockaddr_in(8080, [127, 0, 0, 1]))
        ),
        strace_line(
            r#"getsockname(5, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("127.0.0.1")}, [16]) = 0"#
        )
    );
    // Without the length given (not copied at the entry) the length after
    // the call is shown alone, which is strace's form when both are equal.
    assert_eq!(
        call("getsockname", &[5, 0x7ffe_7885_e6e0, 0x7ffe_7885_e6dc])
            .ret(0)
            .out(
                1,
                sockaddr_out(16, &sockaddr_in(8080, [127, 0, 0, 1])),
                false
            )
            .whole(),
        strace_line(
            r#"getsockname(5, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("127.0.0.1")}, [16]) = 0"#
        )
    );
    assert_eq!(
        call("getsockname", &[99, 0x7ffe_7885_e6e0, 0x7ffe_7885_e6dc])
            .inbuf(2, len16, false)
            .ret(-9)
            .whole(),
        strace_line("getsockname(99, 0x7ffe7885e6e0, [16])   = -1 EBADF (Bad file descriptor)")
    );
    assert_eq!(
        call("getsockname", &[5, 0, 0]).ret(-14).whole(),
        strace_line("getsockname(5, NULL, NULL)              = -1 EFAULT (Bad address)")
    );
    let mut un = 1u16.to_le_bytes().to_vec();
    un.extend_from_slice(b"/tmp/rs/sock\0");
    assert_eq!(
        with_given("getsockname", 15, len128, 0, sockaddr_out(15, &un)),
        strace_line(
            r#"6198  getsockname(15, {sa_family=AF_UNIX, sun_path="/tmp/rs/sock"}, [128 => 15]) = 0"#
        )
    );
    let mut in6 = 10u16.to_le_bytes().to_vec();
    in6.extend_from_slice(&52534u16.to_be_bytes());
    in6.extend_from_slice(&[0; 4]);
    let mut lo = [0u8; 16];
    lo[15] = 1;
    in6.extend_from_slice(&lo);
    in6.extend_from_slice(&[0; 4]);
    assert_eq!(
        with_given("getsockname", 16, len128, 0, sockaddr_out(28, &in6)),
        strace_line(
            r#"6198  getsockname(16, {sa_family=AF_INET6, sin6_port=htons(52534), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, [128 => 28]) = 0"#
        )
    );
    assert_eq!(
        call("accept4", &[12, 0, 0, 0o4000]).ret(-11).whole(),
        strace_line(
            "6198  accept4(12, NULL, NULL, SOCK_NONBLOCK) = -1 EAGAIN (Resource temporarily unavailable)"
        )
    );
}

#[test]
fn wait_statuses_whole_and_resumed() {
    let status = |s: i32| s.to_le_bytes().to_vec();
    let wait4 = |pid: i64, options: u64, s: i32| {
        call("wait4", &[pid as u64, 0x7ffe_9a40_2bec, options, 0])
            .ret(pid)
            .out(1, status(s), false)
    };
    assert_eq!(
        wait4(21746, 0, 0).whole(),
        strace_line("21743 wait4(21746, [{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = 21746")
    );
    assert_eq!(
        wait4(6202, 8, 0xffff).whole(),
        strace_line("6198  wait4(6202, [{WIFCONTINUED(s)}], WCONTINUED, NULL) = 6202")
    );
    let (entry, exit) = wait4(6199, 0, 3 << 8).split();
    assert_eq!(entry, strace_line("6198  wait4(6199,  <unfinished ...>"));
    assert_eq!(
        exit,
        strace_line(
            "6198  <... wait4 resumed>[{WIFEXITED(s) && WEXITSTATUS(s) == 3}], 0, NULL) = 6199"
        )
    );
    let (_, exit) = wait4(6200, 0, 9).split();
    assert_eq!(
        exit,
        strace_line(
            "6198  <... wait4 resumed>[{WIFSIGNALED(s) && WTERMSIG(s) == SIGKILL}], 0, NULL) = 6200"
        )
    );
    let (_, exit) = wait4(6202, 2, 19 << 8 | 0x7f).split();
    assert_eq!(
        exit,
        strace_line(
            "6198  <... wait4 resumed>[{WIFSTOPPED(s) && WSTOPSIG(s) == SIGSTOP}], WSTOPPED, NULL) = 6202"
        )
    );
    // No child changed state: the status is not written.
    assert_eq!(
        call("wait4", &[u64::MAX, 0x7ffc_4ca4_83bc, 1, 0])
            .ret(0)
            .out(1, status(0), false)
            .whole(),
        strace_line("wait4(-1, 0x7ffc4ca483bc, WNOHANG, NULL) = 0")
    );
    assert_eq!(
        call("wait4", &[u64::MAX, 0x7ffe_9a40_2bec, 1, 0])
            .ret(-10)
            .whole(),
        strace_line(
            "6198  wait4(-1, 0x7ffe9a402bec, WNOHANG, NULL) = -1 ECHILD (No child processes)"
        )
    );
    assert_eq!(
        call("wait4", &[u64::MAX, 0, 1, 0]).ret(-10).whole(),
        strace_line("6198  wait4(-1, NULL, WNOHANG, NULL)    = -1 ECHILD (No child processes)")
    );
}

#[test]
fn clone_with_named_arguments() {
    const SIGCHLD: u64 = 17;
    let fork_flags = 0x0120_0000 | SIGCHLD;
    let c = call("clone", &[fork_flags, 0, 0, 0x7f46_65fe_7a10, 0]).ret(6199);
    assert_eq!(
        c.whole(),
        strace_line(
            "6198  clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f4665fe7a10) = 6199"
        )
    );
    let (entry, exit) = call("clone", &[fork_flags, 0, 0, 0x7f46_65fe_7a10, 0])
        .ret(6201)
        .split();
    assert_eq!(
        entry,
        strace_line(
            "6198  clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD <unfinished ...>"
        )
    );
    assert_eq!(
        exit,
        strace_line("6198  <... clone resumed>, child_tidptr=0x7f4665fe7a10) = 6201")
    );
    assert_eq!(
        call("clone", &[0x10_0000 | SIGCHLD, 0, 0x7ffc_0000_3000, 0, 0])
            .ret(21747)
            .whole(),
        strace_line(
            "21743 clone(child_stack=NULL, flags=CLONE_PARENT_SETTID|SIGCHLD, parent_tid=[21747]) = 21747"
        )
    );
    assert_eq!(
        call("clone", &[SIGCHLD]).ret(21748).whole(),
        strace_line("21743 clone(child_stack=NULL, flags=SIGCHLD) = 21748")
    );
    // `strace -o o20 ./cl2`: glibc's clone() with a stack and thread flags.
    let thread_flags = 0x100 | 0x200 | 0x400 | 0x800 | 0x40000 | 0x80000 | 0x10_0000 | 0x20_0000;
    assert_eq!(
        call(
            "clone",
            &[
                thread_flags | SIGCHLD,
                0x55c1_29e2_5290,
                0x7ffc_d00c_e478,
                0x7ffc_d00c_e47c,
                0x55c1_239c_7060
            ]
        )
        .ret(18031)
        .whole(),
        strace_line(
            "clone(child_stack=0x55c129e25290, flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID|SIGCHLD, parent_tid=[18031], tls=0x55c1239c7060, child_tidptr=0x7ffcd00ce47c) = 18031"
        )
    );
    assert_eq!(
        call("clone", &[0x100 | 0x4000 | SIGCHLD, 0x55c1_29e2_5290])
            .ret(18032)
            .whole(),
        strace_line(
            "clone(child_stack=0x55c129e25290, flags=CLONE_VM|CLONE_VFORK|SIGCHLD) = 18032"
        )
    );
    let (entry, exit) = call("clone", &[0]).ret(21749).split();
    assert_eq!(
        entry,
        strace_line("21743 clone(child_stack=NULL, flags=0 <unfinished ...>")
    );
    assert_eq!(
        exit,
        strace_line("21743 <... clone resumed>)              = 21749")
    );
}

#[test]
fn calls_without_output_arguments_split_after_all_arguments() {
    // exit_group never returns: the exit record has no result.
    let (entry, exit) = call("exit_group", &[0]).split();
    assert_eq!(entry, strace_line("21748 exit_group(0 <unfinished ...>"));
    assert_eq!(
        exit,
        strace_line("21748 <... exit_group resumed>)         = ?")
    );
}

/// `strace -f -e trace=getcwd -o o15 ./race` (two threads calling getcwd
/// in a loop, so strace interleaves them).
#[test]
fn an_unfinished_call_whose_first_argument_is_an_output() {
    let (entry, exit) = call("getcwd", &[0x7f00_0000_1000, 256])
        .ret(8)
        .out(0, b"/tmp/rs\0".to_vec(), false)
        .split();
    assert_eq!(entry, strace_line("32131 getcwd( <unfinished ...>"));
    assert_eq!(
        exit,
        strace_line(r#"32131 <... getcwd resumed>"/tmp/rs", 256) = 8"#)
    );
}

/// The start of a dynamically linked program, `strace -f -o o7 ./out`:
/// every line CRT can render from what it records (the `prlimit64` line
/// needs the struct it was given, which is not copied).
#[test]
fn a_program_start() {
    const ELF: [u8; 32] = [
        0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x03, 0x00, 0x3e, 0x00, 0x01, 0x00, 0x00, 0x00, 0x10, 0x74, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x00,
    ];
    const PHDR: [u8; 32] = [
        0x06, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00,
    ];
    let neg1 = u64::MAX;
    let cases: Vec<(Call, &str)> = vec![
        (
            call("brk", &[0]).ret(0x55ab_e30d_1000),
            "6198  brk(NULL)                         = 0x55abe30d1000",
        ),
        (
            call("mmap", &[0, 8192, 3, 0x22, neg1, 0]).ret(0x7f46_661d_6000),
            "6198  mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f46661d6000",
        ),
        (
            call("access", &[0x5555_0000, 4]).path(0, b"/etc/ld.so.preload").ret(-2),
            r#"6198  access("/etc/ld.so.preload", R_OK) = -1 ENOENT (No such file or directory)"#,
        ),
        (
            call("openat", &[AT_FDCWD, 0x5555_0000, 0o2000000])
                .path(1, b"/etc/ld.so.cache")
                .ret(3),
            r#"6198  openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3"#,
        ),
        (
            call("newfstatat", &[3, 0x5555_0000, 0x7ffd_0000_0000, 0x1000])
                .path(1, b"")
                .ret(0)
                .out(2, stat_bytes(0o100644, 0, 37139), false),
            r#"6198  newfstatat(3, "", {st_mode=S_IFREG|0644, st_size=37139, ...}, AT_EMPTY_PATH) = 0"#,
        ),
        (
            call("mmap", &[0, 37139, 1, 2, 3, 0]).ret(0x7f46_661c_c000),
            "6198  mmap(NULL, 37139, PROT_READ, MAP_PRIVATE, 3, 0) = 0x7f46661cc000",
        ),
        (
            call("close", &[3]).ret(0),
            "6198  close(3)                          = 0",
        ),
        (
            call("read", &[3, 0x7ffd_0000_0000, 832])
                .ret(832)
                .out(1, ELF.to_vec(), true),
            r#"6198  read(3, "\177ELF\2\1\1\3\0\0\0\0\0\0\0\0\3\0>\0\1\0\0\0\20t\2\0\0\0\0\0"..., 832) = 832"#,
        ),
        (
            call("pread64", &[3, 0x7ffd_0000_0000, 784, 64])
                .ret(784)
                .out(1, PHDR.to_vec(), true),
            r#"6198  pread64(3, "\6\0\0\0\4\0\0\0@\0\0\0\0\0\0\0@\0\0\0\0\0\0\0@\0\0\0\0\0\0\0"..., 784, 64) = 784"#,
        ),
        (
            call("mmap", &[0x7f46_6601_0000, 1400832, 5, 0x812, 3, 0x26000]).ret(0x7f46_6601_0000),
            "6198  mmap(0x7f4666010000, 1400832, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3, 0x26000) = 0x7f4666010000",
        ),
        (
            call("arch_prctl", &[0x1002, 0x7f46_65fe_7740]).ret(0),
            "6198  arch_prctl(ARCH_SET_FS, 0x7f4665fe7740) = 0",
        ),
        (
            call("set_tid_address", &[0x7f46_65fe_7a10]).ret(6198),
            "6198  set_tid_address(0x7f4665fe7a10)   = 6198",
        ),
        (
            call("set_robust_list", &[0x7f46_65fe_7a20, 24]).ret(0),
            "6198  set_robust_list(0x7f4665fe7a20, 24) = 0",
        ),
        (
            call("rseq", &[0x7f46_65fe_8060, 0x20, 0, 0x5305_3053]).ret(0),
            "6198  rseq(0x7f4665fe8060, 0x20, 0, 0x53053053) = 0",
        ),
        (
            call("mprotect", &[0x7f46_661b_9000, 16384, 1]).ret(0),
            "6198  mprotect(0x7f46661b9000, 16384, PROT_READ) = 0",
        ),
        (
            call("munmap", &[0x7f46_661c_c000, 37139]).ret(0),
            "6198  munmap(0x7f46661cc000, 37139)     = 0",
        ),
    ];
    for (c, want) in cases {
        assert_eq!(c.whole(), strace_line(want));
    }
}

/// `strace -o o9 ./fdf`.
#[test]
fn memfd_create_flags() {
    assert_eq!(
        call("memfd_create", &[0x5555_0000, 3])
            .path(0, b"x")
            .ret(9)
            .whole(),
        strace_line(r#"memfd_create("x", MFD_CLOEXEC|MFD_ALLOW_SEALING) = 9"#)
    );
}

/// `strace -o o17 ./fx`: raw futex calls with each operation, and getrandom.
#[test]
fn futex_shows_the_arguments_of_its_operation() {
    const W: u64 = 0x5636_0861_201c;
    const W2: u64 = 0x5636_0861_2020;
    const PI: u64 = 0x5636_0861_2024;
    let futex = |args: &[u64], ret: i64| call("futex", args).ret(ret).whole();
    let cases = [
        (
            futex(&[W, 128, 1, 0, 0, 0], -11),
            "futex(0x56360861201c, FUTEX_WAIT_PRIVATE, 1, NULL) = -1 EAGAIN (Resource temporarily unavailable)",
        ),
        (
            futex(&[W, 129, 2147483647, 0, 0, 0], 0),
            "futex(0x56360861201c, FUTEX_WAKE_PRIVATE, 2147483647) = 0",
        ),
        (
            futex(&[W, 1, 1, 0, 0, 0], 0),
            "futex(0x56360861201c, FUTEX_WAKE, 1)    = 0",
        ),
        (
            futex(&[W, 9 | 128 | 256, 1, 0, 0, 0xffff_ffff], -11),
            "futex(0x56360861201c, FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME, 1, NULL, FUTEX_BITSET_MATCH_ANY) = -1 EAGAIN (Resource temporarily unavailable)",
        ),
        (
            futex(&[W, 9 | 128, 1, 0, 0, 0x10], -11),
            "futex(0x56360861201c, FUTEX_WAIT_BITSET_PRIVATE, 1, NULL, 0x10) = -1 EAGAIN (Resource temporarily unavailable)",
        ),
        (
            futex(&[W, 10 | 128, 1, 0, 0, 0xffff_ffff], 0),
            "futex(0x56360861201c, FUTEX_WAKE_BITSET_PRIVATE, 1, FUTEX_BITSET_MATCH_ANY) = 0",
        ),
        (
            futex(&[W, 3 | 128, 1, 5, W2, 0], 0),
            "futex(0x56360861201c, FUTEX_REQUEUE_PRIVATE, 1, 5, 0x563608612020) = 0",
        ),
        (
            futex(&[W, 4 | 128, 1, 5, W2, 0], 0),
            "futex(0x56360861201c, FUTEX_CMP_REQUEUE_PRIVATE, 1, 5, 0x563608612020, 0) = 0",
        ),
        (
            futex(&[PI, 6 | 128, 0, 0, 0, 0], 0),
            "futex(0x563608612024, FUTEX_LOCK_PI_PRIVATE, NULL) = 0",
        ),
        (
            futex(&[PI, 7 | 128, 0, 0, 0, 0], 0),
            "futex(0x563608612024, FUTEX_UNLOCK_PI_PRIVATE) = 0",
        ),
        (
            futex(&[PI, 8 | 128, 0, 0, 0, 0], 0),
            "futex(0x563608612024, FUTEX_TRYLOCK_PI_PRIVATE) = 0",
        ),
        (
            futex(&[W, 11 | 128, 1, 0, W2, 0], -11),
            "futex(0x56360861201c, FUTEX_WAIT_REQUEUE_PI_PRIVATE, 1, NULL, 0x563608612020) = -1 EAGAIN (Resource temporarily unavailable)",
        ),
        (
            futex(&[W, 12 | 128, 1, 1, PI, 0], 0),
            "futex(0x56360861201c, FUTEX_CMP_REQUEUE_PI_PRIVATE, 1, 1, 0x563608612024, 0) = 0",
        ),
        (
            futex(&[W, 2, 1, 0, 0, 0], -38),
            "futex(0x56360861201c, FUTEX_FD, 1)      = -1 ENOSYS (Function not implemented)",
        ),
        (
            futex(&[W, 99, 1, 7, 8, 9], -38),
            "futex(0x56360861201c, 0x63 /* FUTEX_??? */, 1, 0x7, 0x8, 0x9) = -1 ENOSYS (Function not implemented)",
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, strace_line(want));
    }
    // The data getrandom wrote is not read at the exit: only the flags are
    // compared (`getrandom("\x0e\x45..."..., 8, GRND_NONBLOCK|GRND_RANDOM) = 8`).
    let line = call("getrandom", &[0x7ffd_0000_0000, 8, 3]).ret(8).whole();
    assert!(
        line.ends_with(", 8, GRND_NONBLOCK|GRND_RANDOM) = 8"),
        "{line}"
    );
}

/// `strace -f -o o16 sh -c 'ls /tmp/rs > /dev/null; ...'`: a vfork and the
/// child's execve, each interrupted by the other process's events.
#[test]
fn vfork_and_execve_split_by_other_events() {
    let (entry, exit) = call("vfork", &[]).ret(4676).split();
    assert_eq!(entry, strace_line("4675  vfork( <unfinished ...>"));
    assert_eq!(
        exit,
        strace_line("4675  <... vfork resumed>)              = 4676")
    );
    let (entry, exit) = call(
        "execve",
        &[0x5622_70be_a000, 0x5622_70be_b000, 0x5622_70be_ad58],
    )
    .path(0, b"/usr/bin/ls")
    .argv(1, &[b"ls", b"/tmp/rs"])
    .count(2, 35)
    .ret(0)
    .split();
    assert_eq!(
        entry,
        strace_line(
            r#"4676  execve("/usr/bin/ls", ["ls", "/tmp/rs"], 0x562270bead58 /* 35 vars */ <unfinished ...>"#
        )
    );
    assert_eq!(
        exit,
        strace_line("4676  <... execve resumed>)             = 0")
    );
    assert_eq!(
        call("execve", &[0x5622_70be_a000, 0x7ffd_7930_e000, 0x7ffd_7930_e1a8])
            .path(0, b"/usr/bin/sh")
            .argv(1, &[b"sh", b"-c", b"ls /tmp/rs > /dev/null; cat /etc/hostname /nonexistent 2>/dev/null; echo hi > /dev/null"])
            .count(2, 35)
            .ret(0)
            .whole(),
        strace_line(
            r#"4675  execve("/usr/bin/sh", ["sh", "-c", "ls /tmp/rs > /dev/null; cat /etc"...], 0x7ffd7930e1a8 /* 35 vars */) = 0"#
        )
    );
}

/// Socket set-up lines of `strace -f -o o7 ./out`.
#[test]
fn socket_calls() {
    let local = sockaddr_in(0, [127, 0, 0, 1]);
    let mut un = 1u16.to_le_bytes().to_vec();
    un.extend_from_slice(b"/tmp/rs/sock");
    un.resize(110, 0);
    let mut in6 = 10u16.to_le_bytes().to_vec();
    in6.extend_from_slice(&[0; 6]);
    let mut lo = [0u8; 16];
    lo[15] = 1;
    in6.extend_from_slice(&lo);
    in6.extend_from_slice(&[0; 4]);
    let peer = sockaddr_in(49107, [127, 0, 0, 1]);
    let cases = [
        (
            call("socket", &[2, 1, 0]).ret(12).whole(),
            "6198  socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 12",
        ),
        (
            call("bind", &[12, 0x7ffe_0000_0000, 16])
                .inbuf(1, &local, false)
                .ret(0)
                .whole(),
            r#"6198  bind(12, {sa_family=AF_INET, sin_port=htons(0), sin_addr=inet_addr("127.0.0.1")}, 16) = 0"#,
        ),
        (
            call("listen", &[12, 1]).ret(0).whole(),
            "6198  listen(12, 1)                     = 0",
        ),
        (
            call("connect", &[13, 0x7ffe_0000_0000, 16])
                .inbuf(1, &peer, false)
                .ret(0)
                .whole(),
            r#"6198  connect(13, {sa_family=AF_INET, sin_port=htons(49107), sin_addr=inet_addr("127.0.0.1")}, 16) = 0"#,
        ),
        (
            call("write", &[13, 0x5555_0000, 6])
                .inbuf(1, b"ping\0\n", false)
                .ret(6)
                .whole(),
            r#"6198  write(13, "ping\0\n", 6)          = 6"#,
        ),
        (
            call("socket", &[1, 1, 0]).ret(15).whole(),
            "6198  socket(AF_UNIX, SOCK_STREAM, 0)   = 15",
        ),
        (
            call("bind", &[15, 0x7ffe_0000_0000, 110])
                .inbuf(1, &un, false)
                .ret(0)
                .whole(),
            r#"6198  bind(15, {sa_family=AF_UNIX, sun_path="/tmp/rs/sock"}, 110) = 0"#,
        ),
        (
            call("socket", &[10, 2, 0]).ret(16).whole(),
            "6198  socket(AF_INET6, SOCK_DGRAM, IPPROTO_IP) = 16",
        ),
        (
            call("bind", &[16, 0x7ffe_0000_0000, 28])
                .inbuf(1, &in6, false)
                .ret(0)
                .whole(),
            r#"6198  bind(16, {sa_family=AF_INET6, sin6_port=htons(0), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = 0"#,
        ),
        (
            call("unlink", &[0x5555_0000])
                .path(0, b"/tmp/rs/sock")
                .ret(-2)
                .whole(),
            r#"6198  unlink("/tmp/rs/sock")            = -1 ENOENT (No such file or directory)"#,
        ),
        (
            call("kill", &[6202, 18]).ret(0).whole(),
            "6198  kill(6202, SIGCONT)               = 0",
        ),
        (
            call("dup3", &[0, 10, 0o2000000]).ret(10).whole(),
            "dup3(0, 10, O_CLOEXEC)                  = 10",
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, strace_line(want));
    }
}

/// `strace -o o19 ./pr` (prctl options) and `strace -o o18 ./rv`.
#[test]
fn prctl_options_and_decorated_results() {
    let prctl = |args: &[u64], ret: i64| call("prctl", args).ret(ret).whole();
    let cases = [
        (
            prctl(&[1, 9], 0),
            "prctl(PR_SET_PDEATHSIG, SIGKILL)        = 0",
        ),
        (
            prctl(&[38, 1, 0, 0, 0], 0),
            "prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  = 0",
        ),
        (
            prctl(&[39, 0, 0, 0, 0], 1),
            "prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)  = 1",
        ),
        (
            prctl(&[23, 21], 1),
            "prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN)   = 1",
        ),
        (
            prctl(&[4, 0], 0),
            "prctl(PR_SET_DUMPABLE, SUID_DUMP_DISABLE) = 0",
        ),
        (
            prctl(&[8, 1], 0),
            "prctl(PR_SET_KEEPCAPS, 1)               = 0",
        ),
        (
            prctl(&[21], 0),
            "prctl(PR_GET_SECCOMP)                   = 0",
        ),
        (
            prctl(&[36, 1], 0),
            "prctl(PR_SET_CHILD_SUBREAPER, 1)        = 0",
        ),
        (
            prctl(&[24, 21], 0),
            "prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN)   = 0",
        ),
        (
            prctl(&[30], 50000),
            "prctl(PR_GET_TIMERSLACK)                = 50000",
        ),
        (
            prctl(&[29, 50000], 0),
            "prctl(PR_SET_TIMERSLACK, 50000)         = 0",
        ),
        (
            prctl(&[28, 0], 0),
            "prctl(PR_SET_SECUREBITS, 0)             = 0",
        ),
        (
            prctl(&[27], 0),
            "prctl(PR_GET_SECUREBITS)                = 0",
        ),
        (
            prctl(&[1234, 1, 2, 3, 4], -22),
            "prctl(0x4d2 /* PR_??? */, 0x1, 0x2, 0x3, 0x4) = -1 EINVAL (Invalid argument)",
        ),
        (
            prctl(&[3], 1),
            "prctl(PR_GET_DUMPABLE)                  = 1 (SUID_DUMP_USER)",
        ),
        (
            call("umask", &[0o77]).ret(0o22).whole(),
            "umask(077)                              = 022",
        ),
        (
            call("mremap", &[0x7f25_7362_b000, 4096, 8192, 1, 0])
                .ret(0x7f25_7362_9000)
                .whole(),
            "mremap(0x7f257362b000, 4096, 8192, MREMAP_MAYMOVE) = 0x7f2573629000",
        ),
        (
            call("getpriority", &[0, 0]).ret(20).whole(),
            "getpriority(PRIO_PROCESS, 0)            = 20",
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, strace_line(want));
    }
}

/// `strace -o o21 ./ns`: the flags; the timespec is not copied, so only the
/// start of the line is compared.
#[test]
fn clock_nanosleep_flags() {
    let line = call("clock_nanosleep", &[1, 1, 0x7ffd_0000_0000, 0])
        .ret(0)
        .whole();
    assert!(
        line.starts_with("clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, "),
        "{line}"
    );
    assert!(line.ends_with(", NULL) = 0"), "{line}");
    let line = call("clock_nanosleep", &[0, 0, 0x7ffd_0000_0000, 0])
        .ret(0)
        .whole();
    assert!(
        line.starts_with("clock_nanosleep(CLOCK_REALTIME, 0, "),
        "{line}"
    );
}
