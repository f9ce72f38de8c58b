//! Renders raw syscall arguments as strace does.
//!
//! Everything here renders data a container controls (register values and
//! memory copied from it), so every function accepts any value and any
//! capture contents without panicking.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::escape::{strace_quote, StringStyle};
use crate::flags::{self, At200};
use crate::record::{CaptureData, Record};
use crate::syscalls::{self, Arg, SyscallInfo};

/// Choices for rendering arguments, as strace's options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenderOptions {
    /// How string bytes are escaped (`-x`, `-xx`).
    pub strings: StringStyle,
    /// Most bytes of a data buffer shown (`-s`, 32 by default); paths are
    /// shown whole, as strace does.
    pub string_limit: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            strings: StringStyle::Octal,
            string_limit: 32,
        }
    }
}

/// A syscall's name and rendered arguments, and where the arguments that
/// strace prints at the exit begin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedCall {
    pub name: String,
    pub args: Vec<String>,
    /// Index of the first argument strace prints at the syscall's exit (the
    /// first output argument); `args.len()` when all are printed at entry.
    /// An unfinished call shows `args[..exit_args]`, its resumed line the rest.
    pub exit_args: usize,
    /// The arguments from `exit_args` on are named ones strace adds only at
    /// the exit (`clone`'s `child_tidptr=`), so the comma before them belongs
    /// to the resumed line: `clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>`
    /// then `<... clone resumed>, child_tidptr=0x7f...) = 42`.
    pub exit_comma: bool,
}

/// The syscall name and its rendered arguments for a syscall record.
/// Unknown syscalls (another architecture, a number not in the table) are
/// named `syscall_0x<nr>` and show six raw hex arguments.
pub fn render_args(rec: &Record) -> (String, Vec<String>) {
    let c = render_call(rec, &RenderOptions::default());
    (c.name, c.args)
}

/// The name of syscall `nr` of `arch`: the table's, or `syscall_0x<nr>` for
/// a number the table does not know (another architecture's, a new one).
pub fn syscall_name(arch: u32, nr: u32) -> String {
    match syscalls::by_nr(arch, nr) {
        Some(info) => info.name.to_string(),
        None => format!("syscall_{nr:#x}"),
    }
}

/// [`render_args`] with options, and the split between entry and exit.
/// Output arguments are shown from what was read at the exit when the
/// record has its result, and as pointers otherwise (as strace shows them
/// for a failed call).
pub fn render_call(rec: &Record, opts: &RenderOptions) -> RenderedCall {
    match syscalls::by_nr(rec.arch, rec.nr) {
        Some(info) if info.name == "clone" => clone_call(rec),
        Some(info) if info.name == "futex" => futex_call(rec),
        Some(info) if info.name == "prctl" => match prctl_args(rec) {
            Some(args) => RenderedCall {
                name: "prctl".to_string(),
                exit_args: args.len(),
                args,
                exit_comma: false,
            },
            None => table_call(info, rec, opts),
        },
        Some(info) => table_call(info, rec, opts),
        None => RenderedCall {
            name: syscall_name(rec.arch, rec.nr),
            args: rec.args.iter().map(|a| format!("{a:#x}")).collect(),
            exit_args: rec.args.len(),
            exit_comma: false,
        },
    }
}

/// A call rendered from the table's argument kinds.
fn table_call(info: &SyscallInfo, rec: &Record, opts: &RenderOptions) -> RenderedCall {
    let shown = &info.args[..shown_args(info, rec)];
    RenderedCall {
        name: info.name.to_string(),
        args: shown
            .iter()
            .enumerate()
            .map(|(i, &kind)| render(Some(info), kind, i, rec, opts))
            .collect(),
        exit_args: shown
            .iter()
            .position(|&a| is_output(a))
            .unwrap_or(shown.len()),
        exit_comma: false,
    }
}

/// `prctl` with the arguments its option uses, as strace 6.1 prints them
/// (`strace -o o19 ./pr`): `prctl(PR_SET_PDEATHSIG, SIGKILL)`,
/// `prctl(PR_GET_SECCOMP)`, `prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)`,
/// `prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN)`. Strings and values the option
/// reads or writes through a pointer are not copied and show the pointer.
/// `None` for options shown with the table's kinds.
fn prctl_args(rec: &Record) -> Option<Vec<String>> {
    let [option, a1, a2, a3, a4, _] = rec.args;
    let opt = option as u32;
    let mut args = vec![flags::prctl_option(opt)];
    let dec = |v: u64| v.to_string();
    match opt {
        // PR_GET_DUMPABLE, PR_GET_KEEPCAPS, PR_GET_SECCOMP, PR_GET_SECUREBITS,
        // PR_GET_TIMERSLACK
        3 | 7 | 21 | 27 | 30 => {}
        // PR_SET_PDEATHSIG
        1 => args.push(flags::signal(a1 as u32)),
        // PR_GET_PDEATHSIG, PR_SET_NAME, PR_GET_NAME, PR_GET_CHILD_SUBREAPER,
        // PR_GET_TID_ADDRESS
        2 | 15 | 16 | 37 | 40 => args.push(ptr(a1)),
        // PR_SET_DUMPABLE
        4 => args.push(flags::suid_dump(a1)),
        // PR_SET_KEEPCAPS, PR_SET_TIMERSLACK, PR_SET_CHILD_SUBREAPER
        8 | 29 | 36 => args.push(dec(a1)),
        // PR_CAPBSET_READ, PR_CAPBSET_DROP
        23 | 24 => args.push(flags::capability(a1 as u32)),
        // PR_SET_SECUREBITS
        28 => args.push(hex(a1)),
        // PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS
        38 | 39 => args.extend([a1, a2, a3, a4].map(dec)),
        _ if flags::prctl_option(opt).ends_with("/* PR_??? */") => {
            args.extend([a1, a2, a3, a4].map(hex))
        }
        _ => return None,
    }
    Some(args)
}

/// Argument kinds the kernel writes, which strace prints at the exit.
fn is_output(a: Arg) -> bool {
    matches!(
        a,
        Arg::OutBuf
            | Arg::OutPath
            | Arg::OutStat
            | Arg::OutStatx
            | Arg::OutSockAddr { .. }
            | Arg::OutSockLen
            | Arg::OutFdPair
            | Arg::OutWaitStatus
    )
}

const CLONE_SETTLS: u64 = 0x80000;
const CLONE_PARENT_SETTID: u64 = 0x100000;
const CLONE_CHILD_CLEARTID: u64 = 0x200000;
const CLONE_CHILD_SETTID: u64 = 0x1000000;
const CLONE_PIDFD: u64 = 0x1000;

/// `clone` as strace 6.1 prints it on x86_64 (arguments flags, stack,
/// parent_tid, child_tid, tls): `child_stack=` and `flags=` at entry, then
/// only the pointers the flags make the kernel use, at the exit.
/// `parent_tid=[N]` is what the kernel stored there: the child's id, which
/// is also the result. With CLONE_PIDFD the kernel stores a pidfd there,
/// which is not known, so the pointer is shown.
fn clone_call(rec: &Record) -> RenderedCall {
    let [flags, stack, ptid, ctid, tls, _] = rec.args;
    let mut args = vec![
        format!("child_stack={}", ptr(stack)),
        format!("flags={}", flags::clone_flags(flags, true)),
    ];
    if flags & (CLONE_PARENT_SETTID | CLONE_PIDFD) != 0 {
        let ret = rec.result().map(|r| r.ret).filter(|&r| r > 0);
        match ret {
            Some(r) if flags & CLONE_PARENT_SETTID != 0 && ptid != 0 => {
                args.push(format!("parent_tid=[{r}]"))
            }
            _ => args.push(format!("parent_tid={}", ptr(ptid))),
        }
    }
    // strace 6.1 puts tls before child_tidptr (`strace -o o20 ./cl2`:
    // `..., parent_tid=[18031], tls=0x55c1239c7060, child_tidptr=0x7ffcd00ce47c)`).
    if flags & CLONE_SETTLS != 0 {
        args.push(format!("tls={}", ptr(tls)));
    }
    if flags & (CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID) != 0 {
        args.push(format!("child_tidptr={}", ptr(ctid)));
    }
    RenderedCall {
        name: "clone".to_string(),
        args,
        exit_args: 2,
        exit_comma: true,
    }
}

/// How many arguments to show: like strace, `open`/`openat` show their mode
/// only when the flags can create a file (O_CREAT or O_TMPFILE).
fn shown_args(info: &SyscallInfo, rec: &Record) -> usize {
    const O_CREAT: u64 = 0o100;
    const O_TMPFILE_BITS: u64 = 0o20000000;
    let flags_at = match info.name {
        "open" => 1,
        "openat" => 2,
        // Commands that take no third argument: `fcntl(3, F_GETFL)`
        // (strace 6.1 on F_GETFD, F_GETFL, F_GETSIG, F_GETLEASE,
        // F_GETPIPE_SZ, F_GET_SEALS; F_GETOWN is handled alike by strace).
        // The new address only with MREMAP_FIXED (strace 6.1, `strace -o o18
        // ./rv`: `mremap(0x7f257362b000, 4096, 8192, MREMAP_MAYMOVE)`).
        "mremap" => {
            return if rec.args[3] & 2 != 0 { 5 } else { 4 };
        }
        "fcntl" => {
            let no_arg = matches!(rec.args[1] as u32, 1 | 3 | 9 | 11 | 1025 | 1032 | 1034);
            return if no_arg { 2 } else { info.args.len() };
        }
        _ => return info.args.len(),
    };
    let flags = rec.args[flags_at];
    if flags & O_CREAT != 0 || flags & O_TMPFILE_BITS != 0 {
        info.args.len()
    } else {
        info.args.len() - 1
    }
}

/// Renders argument `i` (of kind `kind`) of `rec`.
pub fn render_arg(kind: Arg, i: usize, rec: &Record) -> String {
    render(
        syscalls::by_nr(rec.arch, rec.nr),
        kind,
        i,
        rec,
        &RenderOptions::default(),
    )
}

fn render(
    info: Option<&SyscallInfo>,
    kind: Arg,
    i: usize,
    rec: &Record,
    opts: &RenderOptions,
) -> String {
    let v = rec.args.get(i).copied().unwrap_or(0);
    let low = v as u32;
    let name = info.map_or("", |s| s.name);
    if let Some(shown) = by_position(name, i, v) {
        return shown;
    }
    match kind {
        Arg::Int | Arg::Fd => int(v),
        Arg::Uint => low.to_string(),
        Arg::Long => (v as i64).to_string(),
        Arg::Ulong => v.to_string(),
        Arg::Hex => contextual(name, i, rec).unwrap_or_else(|| hex(v)),
        Arg::Ptr => ptr(v),
        Arg::DirFd => {
            if low as i32 == AT_FDCWD {
                "AT_FDCWD".to_string()
            } else {
                int(v)
            }
        }
        Arg::Path | Arg::Str => match capture(rec, i) {
            Some(CaptureData::Bytes { bytes, truncated }) => {
                strace_quote(bytes, truncated, opts.strings)
            }
            _ => ptr(v),
        },
        Arg::InBuf { len } => match capture(rec, i) {
            Some(CaptureData::Bytes { bytes, truncated }) => {
                let wanted = length_arg(info, len, rec);
                data(bytes, truncated || wanted > bytes.len() as u64, opts)
            }
            _ => ptr(v),
        },
        Arg::Argv => match capture(rec, i) {
            Some(data @ CaptureData::Strings { truncated, .. }) => {
                // As strace: at most `-s` items, each cut to `-s` bytes, and
                // `...` as a last item when there were more.
                let mut items: Vec<String> = data
                    .strings()
                    .take(opts.string_limit)
                    .map(|(s, t)| self::data(s, t, opts))
                    .collect();
                if truncated || data.strings().count() > opts.string_limit {
                    items.push("...".to_string());
                }
                format!("[{}]", items.join(", "))
            }
            _ => ptr(v),
        },
        Arg::Timespec => match capture(rec, i) {
            Some(CaptureData::Bytes { bytes, .. }) if bytes.len() == 16 => {
                let sec = i64::from_le_bytes(bytes[..8].try_into().unwrap());
                let nsec = i64::from_le_bytes(bytes[8..].try_into().unwrap());
                format!("{{tv_sec={sec}, tv_nsec={nsec}}}")
            }
            _ => ptr(v),
        },
        Arg::Envp => match capture(rec, i) {
            Some(CaptureData::Count(n)) => {
                let noun = if n == 1 { "var" } else { "vars" };
                format!("{} /* {n} {noun} */", ptr(v))
            }
            _ => ptr(v),
        },
        Arg::SockAddr { .. } => match capture(rec, i) {
            Some(CaptureData::Bytes { bytes, truncated }) if !bytes.is_empty() => {
                sockaddr_with(bytes, truncated, opts.strings)
            }
            _ => ptr(v),
        },
        Arg::Mode => flags::mode(low, matches!(name, "mknod" | "mknodat")),
        Arg::OpenFlags => flags::open_flags(low),
        Arg::AtFlags if name == "statx" => flags::statx_flags(low),
        Arg::AtFlags => flags::at_flags(
            low,
            match name {
                "faccessat2" => At200::EAccess,
                "name_to_handle_at" => At200::HandleFid,
                _ => At200::RemoveDir,
            },
        ),
        Arg::AccessMode => flags::access_mode(low),
        // Only clone(2) carries the exit signal in the low byte; unshare and
        // setns use it for CLONE_NEWTIME.
        Arg::CloneFlags => flags::clone_flags(v, info.is_none() || name == "clone"),
        Arg::Signal => flags::signal(low),
        Arg::SockDomain => flags::sock_domain(low),
        Arg::SockType => flags::sock_type(low),
        Arg::SockProtocol { domain } => flags::sock_protocol(int_arg(rec, domain), low),
        Arg::SockLevel => flags::sock_level(low),
        Arg::SockOptName { level } => flags::sockopt_name(int_arg(rec, level), low),
        Arg::SockOptVal { len } => match capture(rec, i) {
            Some(CaptureData::Bytes { bytes, truncated }) => {
                let wanted = length_arg(info, len, rec);
                match <[u8; 4]>::try_from(bytes) {
                    Ok(int) if !truncated && wanted == 4 => {
                        format!("[{}]", i32::from_le_bytes(int))
                    }
                    _ => data(bytes, truncated || wanted > bytes.len() as u64, opts),
                }
            }
            _ => ptr(v),
        },
        Arg::IoctlReq => flags::ioctl_request(low),
        Arg::ProtFlags => flags::prot_flags(v),
        Arg::MapFlags => flags::map_flags(v),
        Arg::Whence => flags::whence(low),
        Arg::FcntlCmd => flags::fcntl_cmd(low),
        Arg::MsgFlags => flags::msg_flags(low),
        Arg::ShutdownHow => flags::shutdown_how(low),
        Arg::PrctlOption => flags::prctl_option(low),
        Arg::FdFlags => flags::fd_flags_of(name, low),
        Arg::WaitOptions => flags::wait_options(low, name == "waitid"),
        Arg::SigmaskHow => flags::sigmask_how(low),
        Arg::MadviseAdvice => flags::madvise_advice(low),
        Arg::FutexOp => flags::futex_op(low),
        Arg::UnlinkFlags => flags::unlink_flags(low),
        Arg::RenameFlags => flags::rename_flags(low),
        Arg::ClockId => flags::clock_id(low),
        // Output arguments: shown from what was read at the exit.
        Arg::OutBuf
        | Arg::OutPath
        | Arg::OutStat
        | Arg::OutStatx
        | Arg::OutSockAddr { .. }
        | Arg::OutSockLen
        | Arg::OutFdPair
        | Arg::OutWaitStatus => output(name, kind, i, rec, opts).unwrap_or_else(|| ptr(v)),
    }
}

/// A data buffer cut to `-s` bytes, `...` after the quote when cut.
fn data(bytes: &[u8], truncated: bool, opts: &RenderOptions) -> String {
    let cut = bytes.len() > opts.string_limit;
    let shown = &bytes[..bytes.len().min(opts.string_limit)];
    strace_quote(shown, truncated || cut, opts.strings)
}

/// An output argument as strace shows it after a successful call, or
/// `None` (shown as the pointer) when the call failed, the result is
/// unknown or nothing was read.
fn output(name: &str, kind: Arg, i: usize, rec: &Record, opts: &RenderOptions) -> Option<String> {
    let ret = rec.result()?.ret;
    if rec.args.get(i).copied().unwrap_or(0) == 0 {
        return None;
    }
    if ret < 0 {
        // A failed call leaves the length the caller gave, which strace
        // shows (`getsockname(99, 0x7ffe..., [16]) = -1 EBADF`).
        return match kind {
            Arg::OutSockLen => given_socklen(rec, i).map(|n| format!("[{n}]")),
            _ => None,
        };
    }
    let out = |arg: usize| rec.out_capture(u8::try_from(arg).ok()?);
    match kind {
        Arg::OutBuf | Arg::OutPath if name == "getcwd" => {
            let (bytes, truncated) = out(i)?;
            let path = bytes.strip_suffix(b"\0").unwrap_or(bytes);
            Some(strace_quote(path, truncated, opts.strings))
        }
        Arg::OutBuf | Arg::OutPath => {
            if ret == 0 {
                return Some("\"\"".to_string());
            }
            let (bytes, truncated) = out(i)?;
            Some(data(
                bytes,
                truncated || (ret as u64) > bytes.len() as u64,
                opts,
            ))
        }
        Arg::OutStat if ret == 0 => stat(out(i)?.0),
        Arg::OutStatx if ret == 0 => statx(out(i)?.0),
        Arg::OutFdPair if ret == 0 => {
            let b = out(i)?.0;
            let a = le32(b, 0)? as i32;
            let c = le32(b, 4)? as i32;
            Some(format!("[{a}, {c}]"))
        }
        Arg::OutWaitStatus if ret > 0 => Some(flags::wait_status(le32(out(i)?.0, 0)? as i32)),
        Arg::OutSockAddr { len } => {
            let (bytes, _) = out(i)?;
            let socklen = le32(bytes, 0)? as usize;
            if socklen == 0 {
                return None;
            }
            // The kernel wrote at most the length the caller gave.
            let written = match given_socklen(rec, usize::from(len)) {
                Some(given) => socklen.min(given as usize),
                None => socklen,
            };
            let addr = bytes.get(4..)?;
            let addr = &addr[..addr.len().min(written)];
            Some(sockaddr_with(addr, addr.len() < written, opts.strings))
        }
        Arg::OutSockLen => {
            // The length is stored with the address it belongs to.
            let info = syscalls::by_nr(rec.arch, rec.nr)?;
            let addr_arg = info
                .args
                .iter()
                .position(|&a| a == Arg::OutSockAddr { len: i as u8 })?;
            let after = le32(out(addr_arg)?.0, 0)?;
            Some(match given_socklen(rec, i) {
                Some(given) if given != after => format!("[{given} => {after}]"),
                _ => format!("[{after}]"),
            })
        }
        _ => None,
    }
}

/// The `socklen_t` a caller passed in (argument `i`), when it was copied at
/// the entry.
fn given_socklen(rec: &Record, i: usize) -> Option<u32> {
    match capture(rec, i)? {
        CaptureData::Bytes { bytes, .. } => le32(bytes, 0),
        _ => None,
    }
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// A `struct stat` (x86_64 layout) as strace's default abbreviated form:
/// `{st_mode=S_IFREG|0644, st_size=1234, ...}`; devices show `st_rdev`.
fn stat(b: &[u8]) -> Option<String> {
    let mode = le32(b, 24)?;
    let rdev = le64(b, 40)?;
    let size = le64(b, 48)? as i64;
    let ty = mode & 0o170000;
    let detail = if ty == 0o020000 || ty == 0o060000 {
        format!("st_rdev={}", flags::makedev(rdev))
    } else {
        format!("st_size={size}")
    };
    Some(format!(
        "{{st_mode={}, {detail}, ...}}",
        flags::stat_mode(mode)
    ))
}

/// A `struct statx` as strace's default abbreviated form:
/// `{stx_mask=STATX_ALL|STATX_MNT_ID, stx_attributes=0, stx_mode=S_IFREG|0644, stx_size=106, ...}`.
fn statx(b: &[u8]) -> Option<String> {
    let mask = le32(b, 0)?;
    let attributes = le64(b, 8)?;
    let mode = u32::from(le16(b, 28)?);
    let size = le64(b, 40)?;
    Some(format!(
        "{{stx_mask={}, stx_attributes={}, stx_mode={}, stx_size={size}, ...}}",
        flags::statx_mask(mask),
        flags::statx_attributes(attributes),
        flags::stat_mode(mode)
    ))
}

const AT_FDCWD: i32 = -100;

/// A C `int`: the low half of the register, signed.
fn int(v: u64) -> String {
    (v as u32 as i32).to_string()
}

/// `0x1f`; zero is `0`, as C's `%#x` prints it.
fn hex(v: u64) -> String {
    if v == 0 {
        "0".to_string()
    } else {
        format!("{v:#x}")
    }
}

/// `NULL` or `0x7ffd1234`.
fn ptr(v: u64) -> String {
    if v == 0 {
        "NULL".to_string()
    } else {
        format!("{v:#x}")
    }
}

/// Argument number `i` read as a C `int` (its low 32 bits), if there is one.
fn int_arg(rec: &Record, i: u8) -> Option<u32> {
    rec.args.get(usize::from(i)).map(|&v| v as u32)
}

fn capture<'a>(rec: &Record<'a>, i: usize) -> Option<CaptureData<'a>> {
    rec.capture(u8::try_from(i).ok()?)
}

/// The value of the length argument `len` of a buffer, read with that
/// argument's C width; negative lengths count as 0.
fn length_arg(info: Option<&SyscallInfo>, len: u8, rec: &Record) -> u64 {
    let Some(&v) = rec.args.get(len as usize) else {
        return 0;
    };
    let kind = info.and_then(|s| s.args.get(len as usize).copied());
    match kind {
        Some(Arg::Int) => u64::try_from(v as u32 as i32).unwrap_or(0),
        Some(Arg::Uint) => u64::from(v as u32),
        Some(Arg::Long) => u64::try_from(v as i64).unwrap_or(0),
        _ => v,
    }
}

/// `futex` with the arguments its operation uses, as strace 6.1 prints
/// them (`strace -o o17 ./fx`): `futex(0x5636..., FUTEX_WAKE_PRIVATE, 2147483647)`,
/// `futex(0x5636..., FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME, 1, NULL, FUTEX_BITSET_MATCH_ANY)`,
/// `futex(0x5636..., FUTEX_CMP_REQUEUE_PRIVATE, 1, 5, 0x5636..., 0)`. A
/// timeout is shown as its pointer (its struct is not copied).
fn futex_call(rec: &Record) -> RenderedCall {
    let [uaddr, op, val, timeout, uaddr2, val3] = rec.args;
    let op32 = op as u32;
    let val = (val as u32).to_string();
    let val2 = (timeout as u32).to_string();
    let bitset = |v: u64| {
        if v as u32 == u32::MAX {
            "FUTEX_BITSET_MATCH_ANY".to_string()
        } else {
            hex(u64::from(v as u32))
        }
    };
    let mut args = vec![ptr(uaddr), flags::futex_op(op32)];
    let rest: Vec<String> = match op32 & 0x7f {
        // WAIT
        0 => vec![val, ptr(timeout)],
        // WAKE, FD
        1 | 2 => vec![val],
        // REQUEUE
        3 => vec![val, val2, ptr(uaddr2)],
        // CMP_REQUEUE, CMP_REQUEUE_PI
        4 | 12 => vec![val, val2, ptr(uaddr2), (val3 as u32).to_string()],
        // WAKE_OP: the operation word is left in hex.
        5 => vec![val, val2, ptr(uaddr2), hex(u64::from(val3 as u32))],
        // LOCK_PI, LOCK_PI2
        6 | 13 => vec![ptr(timeout)],
        // UNLOCK_PI, TRYLOCK_PI
        7 | 8 => vec![],
        // WAIT_BITSET
        9 => vec![val, ptr(timeout), bitset(val3)],
        // WAKE_BITSET
        10 => vec![val, bitset(val3)],
        // WAIT_REQUEUE_PI
        11 => vec![val, ptr(timeout), ptr(uaddr2)],
        _ => vec![val, hex(timeout), hex(uaddr2), hex(val3)],
    };
    args.extend(rest);
    let n = args.len();
    RenderedCall {
        name: "futex".to_string(),
        args,
        exit_args: n,
        exit_comma: false,
    }
}

/// Arguments strace names whatever their kind in the table (strace 6.1,
/// `strace -f -o o7 ./out`: `arch_prctl(ARCH_SET_FS, 0x7f4665fe7740)`,
/// `rseq(0x7f4665fe8060, 0x20, 0, 0x53053053)`, `prlimit64(0, RLIMIT_STACK, ...)`,
/// `mmap(..., 3, 0x26000)`;
/// `strace -o o9 ./fdf`: `memfd_create("x", MFD_CLOEXEC|MFD_ALLOW_SEALING)`).
fn by_position(name: &str, i: usize, v: u64) -> Option<String> {
    Some(match (name, i) {
        ("arch_prctl", 0) => flags::arch_prctl_code(v as u32),
        ("rseq", 1) => hex(u64::from(v as u32)),
        // The file offset, which strace prints with `%#llx`:
        // `mmap(0x7f4666010000, 1400832, ..., 3, 0x26000)`.
        ("mmap", 5) => hex(v),
        ("prlimit64", 1) | ("getrlimit", 0) | ("setrlimit", 0) => flags::rlimit_resource(v as u32),
        ("memfd_create", 1) => flags::memfd_flags(v as u32),
        ("getrandom", 2) => flags::getrandom_flags(v as u32),
        ("mremap", 3) => flags::mremap_flags(v as u32),
        // `strace -o o21 ./ns`: `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, ...)`.
        ("clock_nanosleep", 1) => flags::bitset_of(v as u32, &[(1, "TIMER_ABSTIME")]),
        ("getpriority", 0) | ("setpriority", 0) => flags::priority_which(v as u32),
        _ => return None,
    })
}

/// A `Hex` argument whose meaning another argument decides.
fn contextual(name: &str, i: usize, rec: &Record) -> Option<String> {
    match (name, i) {
        ("fcntl", 2) => flags::fcntl_arg(rec.args[1] as u32, rec.args[2]),
        ("statx", 3) => Some(flags::statx_mask(rec.args[3] as u32)),
        _ => None,
    }
}

// ---------------------------------------------------------------- sockaddr

const AF_UNSPEC: u16 = 0;
const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const AF_NETLINK: u16 = 16;
const AF_PACKET: u16 = 17;
const AF_VSOCK: u16 = 40;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A socket address as copied from the tracee (`bytes` holds the first
/// `addrlen` bytes, at most the capture limit). Fields are shown only when
/// all of their bytes are present; anything else falls back to `sa_data`.
pub fn sockaddr(bytes: &[u8], truncated: bool) -> String {
    sockaddr_with(bytes, truncated, StringStyle::Octal)
}

/// [`sockaddr`] with strings (`sun_path`, `sa_data`) in `style`.
pub fn sockaddr_with(bytes: &[u8], truncated: bool, style: StringStyle) -> String {
    let quote = |b: &[u8], t: bool| strace_quote(b, t, style);
    let Some(family) = le16(bytes, 0) else {
        return format!("{{sa_data={}}}", quote(bytes, truncated));
    };
    let family_s = match flags::family_name(u32::from(family)) {
        Some(name) => name.to_string(),
        None => family.to_string(),
    };
    let body = match family {
        AF_UNSPEC => None,
        AF_UNIX => Some(sockaddr_un(bytes, truncated, style)),
        AF_INET => sockaddr_in(bytes),
        AF_INET6 => sockaddr_in6(bytes),
        AF_NETLINK => sockaddr_nl(bytes),
        AF_PACKET => sockaddr_ll(bytes),
        AF_VSOCK => sockaddr_vm(bytes),
        _ => None,
    };
    let data = bytes.get(2..).unwrap_or_default();
    match body {
        Some(body) if body.is_empty() => format!("{{sa_family={family_s}}}"),
        Some(body) => format!("{{sa_family={family_s}, {body}}}"),
        None if data.is_empty() => format!("{{sa_family={family_s}}}"),
        None => format!(
            "{{sa_family={family_s}, sa_data={}}}",
            quote(data, truncated)
        ),
    }
}

/// `sun_path="/run/x.sock"`, `sun_path=@"abstract"`, or nothing (unnamed).
fn sockaddr_un(b: &[u8], truncated: bool, style: StringStyle) -> String {
    let quote = |b: &[u8], t: bool| strace_quote(b, t, style);
    let path = b.get(2..).unwrap_or_default();
    match path.split_first() {
        None => String::new(),
        Some((0, name)) => format!("sun_path=@{}", quote(name, truncated)),
        Some(_) => match path.iter().position(|&c| c == 0) {
            Some(nul) => format!("sun_path={}", quote(&path[..nul], false)),
            None => format!("sun_path={}", quote(path, truncated)),
        },
    }
}

/// The address and port of an `AF_INET` or `AF_INET6` socket address, when
/// `b` holds them whole (what crtd's network map reads of a traced connect).
pub fn inet_addr(b: &[u8]) -> Option<SocketAddr> {
    let port = be16(b, 2)?;
    let ip = match le16(b, 0)? {
        AF_INET => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b.get(4..8)?).ok()?)),
        AF_INET6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b.get(8..24)?).ok()?)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

fn sockaddr_in(b: &[u8]) -> Option<String> {
    let a = inet_addr(b)?;
    Some(format!(
        "sin_port=htons({}), sin_addr=inet_addr(\"{}\")",
        a.port(),
        a.ip()
    ))
}

fn sockaddr_in6(b: &[u8]) -> Option<String> {
    let a = inet_addr(b)?;
    let flowinfo = be32(b, 4)?;
    let mut s = format!(
        "sin6_port=htons({}), sin6_flowinfo=htonl({flowinfo}), \
         inet_pton(AF_INET6, \"{}\", &sin6_addr)",
        a.port(),
        a.ip()
    );
    // The RFC 2133 form is 24 bytes, without the scope id.
    if let Some(scope) = le32(b, 24) {
        s.push_str(&format!(", sin6_scope_id={scope}"));
    }
    Some(s)
}

fn sockaddr_nl(b: &[u8]) -> Option<String> {
    let pid = le32(b, 4)?;
    let groups = le32(b, 8)?;
    Some(format!("nl_pid={pid}, nl_groups={groups:08x}"))
}

fn sockaddr_ll(b: &[u8]) -> Option<String> {
    let protocol = be16(b, 2)?;
    let ifindex = le32(b, 4)? as i32;
    let hatype = le16(b, 8)?;
    let pkttype = *b.get(10)?;
    let halen = *b.get(11)?;
    let addr = b
        .get(12..)
        .unwrap_or_default()
        .iter()
        .take(usize::from(halen).min(8))
        .map(|x| format!("{x:#04x}"))
        .collect::<Vec<_>>()
        .join(", ");
    Some(format!(
        "sll_protocol=htons({protocol}), sll_ifindex={ifindex}, sll_hatype={hatype}, \
         sll_pkttype={pkttype}, sll_halen={halen}, sll_addr=[{addr}]"
    ))
}

fn sockaddr_vm(b: &[u8]) -> Option<String> {
    let port = le32(b, 4)?;
    let cid = le32(b, 8)?;
    Some(format!("svm_cid={cid}, svm_port={port}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{self, push_string_entry, RecordBuilder, KIND_SYSCALL};
    use crate::syscalls::{by_name, cls, table, Class, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64};

    /// One capture to attach to a test record.
    enum Cap<'a> {
        Bytes(u8, &'a [u8], bool),
        Strings(u8, &'a [(&'a [u8], bool)], bool),
        Count(u8, u64),
        Unreadable(u8),
    }

    fn build(arch: u32, nr: u32, args: [u64; 6], caps: &[Cap]) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut b = RecordBuilder::begin(&mut buf, KIND_SYSCALL, 1, 42, arch, nr, &args);
        for cap in caps {
            match *cap {
                Cap::Bytes(i, bytes, t) => b.bytes(i, bytes, t),
                Cap::Strings(i, items, t) => {
                    let mut payload = Vec::new();
                    for &(s, st) in items {
                        push_string_entry(&mut payload, s, st);
                    }
                    let r = b.reserve_bytes(i, payload.len());
                    b.reserved_mut(&r)[..payload.len()].copy_from_slice(&payload);
                    b.finish_reserved(r, payload.len(), record::CAPTURE_STRINGS, t);
                }
                Cap::Count(i, n) => b.count(i, n),
                Cap::Unreadable(i) => b.unreadable(i),
            }
        }
        b.finish();
        buf
    }

    /// Renders a native syscall by name: `name(arg, arg, ...)`.
    fn line(name: &str, args: [u64; 6], caps: &[Cap]) -> String {
        let nr = by_name(name).unwrap().nr;
        let buf = build(AUDIT_ARCH_X86_64, nr, args, caps);
        let (rec, _) = record::decode(&buf).unwrap();
        let (n, a) = render_args(&rec);
        format!("{n}({})", a.join(", "))
    }

    fn sa(family: u16, rest: &[u8]) -> Vec<u8> {
        let mut v = family.to_le_bytes().to_vec();
        v.extend_from_slice(rest);
        v
    }

    #[test]
    fn openat_with_a_path() {
        let args = [0xffff_ff9c, 0x7ffd_0000, 0x80000, 0, 0, 0];
        assert_eq!(
            line("openat", args, &[Cap::Bytes(1, b"/etc/hosts", false)]),
            r#"openat(AT_FDCWD, "/etc/hosts", O_RDONLY|O_CLOEXEC)"#
        );
        let args = [3, 0x5555_0000, 0x241, 0o644, 0, 0];
        assert_eq!(
            line("openat", args, &[Cap::Bytes(1, b"out.txt", false)]),
            r#"openat(3, "out.txt", O_WRONLY|O_CREAT|O_TRUNC, 0644)"#
        );
        // DirFd compares the low 32 bits only, as the kernel does.
        let args = [0xdead_beef_ffff_ff9c, 0x1, 0, 0, 0, 0];
        assert_eq!(
            line("openat", args, &[Cap::Bytes(1, b"x", false)]),
            r#"openat(AT_FDCWD, "x", O_RDONLY)"#
        );
    }

    #[test]
    fn unreadable_or_missing_paths_show_the_pointer() {
        let args = [0xffff_ff9c, 0x7ffd_1234, 0, 0, 0, 0];
        assert_eq!(
            line("openat", args, &[Cap::Unreadable(1)]),
            "openat(AT_FDCWD, 0x7ffd1234, O_RDONLY)"
        );
        assert_eq!(
            line("openat", args, &[]),
            "openat(AT_FDCWD, 0x7ffd1234, O_RDONLY)"
        );
        let args = [0, 0, 0, 0, 0, 0];
        assert_eq!(line("chdir", args, &[Cap::Unreadable(0)]), "chdir(NULL)");
        // A capture of the wrong shape for the kind is treated as missing.
        let args = [0x1000, 0, 0, 0, 0, 0];
        assert_eq!(line("chdir", args, &[Cap::Count(0, 3)]), "chdir(0x1000)");
    }

    #[test]
    fn paths_are_escaped_and_truncation_marked() {
        let args = [0x1000, 0, 0, 0, 0, 0];
        assert_eq!(
            line("unlink", args, &[Cap::Bytes(0, b"a\"b\x1b[0m", true)]),
            r#"unlink("a\"b\33[0m"...)"#
        );
    }

    #[test]
    fn execve_shows_argv_and_counts_envp() {
        let items: &[(&[u8], bool)] = &[(b"sh", false), (b"-c", false), (b"echo hi", false)];
        let args = [0x1000, 0x2000, 0x7ffd_0000, 0, 0, 0];
        assert_eq!(
            line(
                "execve",
                args,
                &[
                    Cap::Bytes(0, b"/bin/sh", false),
                    Cap::Strings(1, items, false),
                    Cap::Count(2, 12),
                ]
            ),
            r#"execve("/bin/sh", ["sh", "-c", "echo hi"], 0x7ffd0000 /* 12 vars */)"#
        );
        // More items than were copied, and an item cut short.
        let items: &[(&[u8], bool)] = &[(b"ls", false), (b"aaaa", true)];
        assert_eq!(
            line(
                "execve",
                args,
                &[
                    Cap::Bytes(0, b"/bin/ls", false),
                    Cap::Strings(1, items, true)
                ]
            ),
            r#"execve("/bin/ls", ["ls", "aaaa"..., ...], 0x7ffd0000)"#
        );
        // strace 6.1, `strace -o o12 ./ex` and `strace -o o14 ./ex2`: items
        // are cut to `-s 32` bytes, and at most 32 items are shown.
        let long = [b'a'; 59];
        let items: &[(&[u8], bool)] =
            &[(b"/bin/true", false), (&long, false), (b"\x01\x02x", false)];
        assert_eq!(
            line(
                "execve",
                args,
                &[
                    Cap::Bytes(
                        0,
                        b"/nonexistent/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                        false
                    ),
                    Cap::Strings(1, items, false),
                    Cap::Count(2, 1),
                ]
            ),
            r#"execve("/nonexistent/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", ["/bin/true", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"..., "\1\2x"], 0x7ffd0000 /* 1 var */)"#
        );
        let forty: Vec<(&[u8], bool)> = vec![(b"x", false); 40];
        let want = format!(
            "execve(\"/nonexistent\", [{}, ...], 0x7ffd0000 /* 0 vars */)",
            vec!["\"x\""; 32].join(", ")
        );
        assert_eq!(
            line(
                "execve",
                args,
                &[
                    Cap::Bytes(0, b"/nonexistent", false),
                    Cap::Strings(1, &forty, false),
                    Cap::Count(2, 0),
                ]
            ),
            want
        );
        assert_eq!(
            line("execve", args, &[Cap::Unreadable(1), Cap::Unreadable(2)]),
            "execve(0x1000, 0x2000, 0x7ffd0000)"
        );
        let items: &[(&[u8], bool)] = &[];
        assert_eq!(
            line(
                "execveat",
                [3, 0x1000, 0x2000, 0x3000, 0x1000, 0],
                &[Cap::Bytes(1, b"", false), Cap::Strings(2, items, false)]
            ),
            r#"execveat(3, "", [], 0x3000, AT_EMPTY_PATH)"#
        );
    }

    #[test]
    fn write_buffers_are_quoted_and_marked_when_longer() {
        let args = [1, 0x1000, 3, 0, 0, 0];
        assert_eq!(
            line("write", args, &[Cap::Bytes(1, b"hi\n", false)]),
            r#"write(1, "hi\n", 3)"#
        );
        let args = [1, 0x1000, 1000, 0, 0, 0];
        assert_eq!(
            line("write", args, &[Cap::Bytes(1, b"hello", false)]),
            r#"write(1, "hello"..., 1000)"#
        );
        let args = [1, 0x1000, 0, 0, 0, 0];
        assert_eq!(
            line("write", args, &[Cap::Bytes(1, b"", false)]),
            r#"write(1, "", 0)"#
        );
        assert_eq!(line("write", args, &[]), "write(1, 0x1000, 0)");
        // An int length that is negative does not count as "longer".
        let args = [0x1000, u64::MAX, 0, 0, 0, 0];
        assert_eq!(
            line("sethostname", args, &[Cap::Bytes(0, b"box", false)]),
            r#"sethostname("box", -1)"#
        );
    }

    #[test]
    fn connect_to_ipv4() {
        let addr = sa(2, &[0, 80, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            line(
                "connect",
                [3, 0x1000, 16, 0, 0, 0],
                &[Cap::Bytes(1, &addr, false)]
            ),
            r#"connect(3, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("127.0.0.1")}, 16)"#
        );
    }

    #[test]
    fn connect_to_unix_sockets() {
        let mut addr = sa(1, b"/run/x.sock");
        addr.extend_from_slice(&[0; 4]);
        assert_eq!(
            line(
                "connect",
                [3, 0x1000, 17, 0, 0, 0],
                &[Cap::Bytes(1, &addr, false)]
            ),
            r#"connect(3, {sa_family=AF_UNIX, sun_path="/run/x.sock"}, 17)"#
        );
        let addr = sa(1, b"\0name\x01");
        assert_eq!(
            line(
                "bind",
                [3, 0x1000, 8, 0, 0, 0],
                &[Cap::Bytes(1, &addr, false)]
            ),
            r#"bind(3, {sa_family=AF_UNIX, sun_path=@"name\1"}, 8)"#
        );
        let addr = sa(1, b"");
        assert_eq!(
            line(
                "bind",
                [3, 0x1000, 2, 0, 0, 0],
                &[Cap::Bytes(1, &addr, false)]
            ),
            "bind(3, {sa_family=AF_UNIX}, 2)"
        );
    }

    #[test]
    fn connect_to_ipv6() {
        let mut rest = vec![0x01, 0xbb, 0, 0, 0, 0];
        rest.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        rest.extend_from_slice(&0u32.to_le_bytes());
        let addr = sa(10, &rest);
        assert_eq!(
            line(
                "connect",
                [3, 0x1000, 28, 0, 0, 0],
                &[Cap::Bytes(1, &addr, false)]
            ),
            "connect(3, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), \
             inet_pton(AF_INET6, \"::1\", &sin6_addr), sin6_scope_id=0}, 28)"
        );
        let short = &addr[..24];
        assert_eq!(
            sockaddr(short, false),
            "{sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), \
             inet_pton(AF_INET6, \"::1\", &sin6_addr)}"
        );
    }

    #[test]
    fn other_families() {
        let addr = sa(16, &[0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(
            sockaddr(&addr, false),
            "{sa_family=AF_NETLINK, nl_pid=0, nl_groups=00000001}"
        );
        assert_eq!(sockaddr(&sa(0, &[]), false), "{sa_family=AF_UNSPEC}");
        assert_eq!(
            sockaddr(&sa(0, &[0, 0]), false),
            r#"{sa_family=AF_UNSPEC, sa_data="\0\0"}"#
        );
        assert_eq!(
            sockaddr(&sa(123, b"ab"), true),
            r#"{sa_family=123, sa_data="ab"...}"#
        );
        assert_eq!(
            sockaddr(&sa(38, b"x"), false),
            r#"{sa_family=AF_ALG, sa_data="x"}"#
        );
        let ll = sa(
            17,
            &[
                0, 3, 2, 0, 0, 0, 1, 0, 0, 6, 0xde, 0xad, 0xbe, 0xef, 0, 1, 0, 0,
            ],
        );
        assert_eq!(
            sockaddr(&ll, false),
            "{sa_family=AF_PACKET, sll_protocol=htons(3), sll_ifindex=2, sll_hatype=1, \
             sll_pkttype=0, sll_halen=6, sll_addr=[0xde, 0xad, 0xbe, 0xef, 0x00, 0x01]}"
        );
        let vm = sa(40, &[0, 0, 0x10, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(
            sockaddr(&vm, false),
            "{sa_family=AF_VSOCK, svm_cid=2, svm_port=16}"
        );
    }

    #[test]
    fn short_sockaddrs_never_panic() {
        assert_eq!(sockaddr(&[], false), r#"{sa_data=""}"#);
        assert_eq!(sockaddr(&[2], false), r#"{sa_data="\2"}"#);
        assert_eq!(
            sockaddr(&sa(2, &[0, 80]), false),
            r#"{sa_family=AF_INET, sa_data="\0P"}"#
        );
        for family in [0u16, 1, 2, 10, 16, 17, 40, 0xffff] {
            for len in 0..40 {
                let mut b = sa(family, &[0xff; 40]);
                b.truncate(len);
                let _ = sockaddr(&b, len % 2 == 0);
            }
        }
        // An empty capture shows the pointer.
        assert_eq!(
            line(
                "connect",
                [3, 0x1000, 0, 0, 0, 0],
                &[Cap::Bytes(1, b"", false)]
            ),
            "connect(3, 0x1000, 0)"
        );
        assert_eq!(
            line("connect", [3, 0, 16, 0, 0, 0], &[]),
            "connect(3, NULL, 16)"
        );
    }

    #[test]
    fn sendto_with_data_and_destination() {
        let addr = sa(2, &[0x00, 0x35, 8, 8, 8, 8, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            line(
                "sendto",
                [5, 0x1000, 4, 0x4000, 0x2000, 16],
                &[
                    Cap::Bytes(1, b"\x12\x34ab", false),
                    Cap::Bytes(4, &addr, false)
                ]
            ),
            r#"sendto(5, "\0224ab", 4, MSG_NOSIGNAL, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("8.8.8.8")}, 16)"#
        );
    }

    #[test]
    fn clone_and_process_flags() {
        assert_eq!(
            line("clone", [0x1200011, 0, 0, 0x7f00_0000_1000, 0, 0], &[]),
            "clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f0000001000)"
        );
        assert_eq!(
            line("unshare", [0x2000_0080, 0, 0, 0, 0, 0], &[]),
            "unshare(CLONE_NEWTIME|CLONE_NEWPID)"
        );
        assert_eq!(
            line("wait4", [u64::MAX, 0x1000, 0x4000_0000, 0, 0, 0], &[]),
            "wait4(-1, 0x1000, __WALL, NULL)"
        );
        assert_eq!(
            line("waitid", [1, 7, 0x1000, 0x6, 0, 0], &[]),
            "waitid(1, 7, 0x1000, WSTOPPED|WEXITED, NULL)"
        );
        assert_eq!(
            line("kill", [0xffff_ffff, 15, 0, 0, 0, 0], &[]),
            "kill(-1, SIGTERM)"
        );
        assert_eq!(
            line("exit_group", [0xffff_ffff_0000_0001, 0, 0, 0, 0, 0], &[]),
            "exit_group(1)"
        );
    }

    #[test]
    fn mmap_and_friends() {
        assert_eq!(
            line("mmap", [0, 8192, 3, 0x22, u64::MAX, 0], &[]),
            "mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)"
        );
        assert_eq!(
            line("mmap", [0x7f00_0000_0000, 4096, 5, 0x812, 3, 0x1000], &[]),
            // The offset in hex, as strace 6.1 prints it (`... 3, 0x26000)`).
            "mmap(0x7f0000000000, 4096, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3, 0x1000)"
        );
        assert_eq!(
            line("mprotect", [0x1000, 4096, 0, 0, 0, 0], &[]),
            "mprotect(0x1000, 4096, PROT_NONE)"
        );
        assert_eq!(
            line("madvise", [0x1000, 4096, 4, 0, 0, 0], &[]),
            "madvise(0x1000, 4096, MADV_DONTNEED)"
        );
    }

    #[test]
    fn assorted_kinds() {
        assert_eq!(
            line("socket", [2, 0x80001, 0, 0, 0, 0], &[]),
            "socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP)"
        );
        assert_eq!(
            line("lseek", [3, u64::MAX, 1, 0, 0, 0], &[]),
            "lseek(3, -1, SEEK_CUR)"
        );
        assert_eq!(
            line("fcntl", [3, 2, 1, 0, 0, 0], &[]),
            "fcntl(3, F_SETFD, FD_CLOEXEC)"
        );
        assert_eq!(
            line("fcntl", [3, 4, 0x800, 0, 0, 0], &[]),
            "fcntl(3, F_SETFL, O_RDONLY|O_NONBLOCK)"
        );
        assert_eq!(line("fcntl", [3, 1, 0, 0, 0, 0], &[]), "fcntl(3, F_GETFD)");
        assert_eq!(
            line("ioctl", [1, 0x5401, 0x7ffd_0000, 0, 0, 0], &[]),
            "ioctl(1, TCGETS, 0x7ffd0000)"
        );
        assert_eq!(
            line("futex", [0x1000, 128, 2, 0, 0, 0], &[]),
            "futex(0x1000, FUTEX_WAIT_PRIVATE, 2, NULL)"
        );
        assert_eq!(
            line("rt_sigprocmask", [0, 0x1000, 0, 8, 0, 0], &[]),
            "rt_sigprocmask(SIG_BLOCK, 0x1000, NULL, 8)"
        );
        assert_eq!(
            line("rt_sigaction", [17, 0x1000, 0, 8, 0, 0], &[]),
            "rt_sigaction(SIGCHLD, 0x1000, NULL, 8)"
        );
        assert_eq!(
            line("clock_gettime", [1, 0x1000, 0, 0, 0, 0], &[]),
            "clock_gettime(CLOCK_MONOTONIC, 0x1000)"
        );
        assert_eq!(
            line("prctl", [38, 1, 0, 0, 0, 0], &[]),
            // strace 6.1, `strace -o o19 ./pr`.
            "prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)"
        );
        assert_eq!(
            line("shutdown", [4, 2, 0, 0, 0, 0], &[]),
            "shutdown(4, SHUT_RDWR)"
        );
        assert_eq!(
            line(
                "faccessat2",
                [0xffff_ff9c, 0x1, 4, 0x200, 0, 0],
                &[Cap::Bytes(1, b"/x", false)]
            ),
            r#"faccessat2(AT_FDCWD, "/x", R_OK, AT_EACCESS)"#
        );
        assert_eq!(
            line(
                "unlinkat",
                [5, 0x1, 0x200, 0, 0, 0],
                &[Cap::Bytes(1, b"d", false)]
            ),
            r#"unlinkat(5, "d", AT_REMOVEDIR)"#
        );
        assert_eq!(
            line(
                "renameat2",
                [0xffff_ff9c, 1, 0xffff_ff9c, 2, 1, 0],
                &[Cap::Bytes(1, b"a", false), Cap::Bytes(3, b"b", false)]
            ),
            r#"renameat2(AT_FDCWD, "a", AT_FDCWD, "b", RENAME_NOREPLACE)"#
        );
        assert_eq!(
            line("access", [1, 0, 0, 0, 0, 0], &[Cap::Bytes(0, b"/", false)]),
            r#"access("/", F_OK)"#
        );
        assert_eq!(
            line(
                "mknodat",
                [0xffff_ff9c, 1, 0o20666, 0x103, 0, 0],
                &[Cap::Bytes(1, b"n", false)]
            ),
            r#"mknodat(AT_FDCWD, "n", S_IFCHR|0666, 259)"#
        );
        assert_eq!(
            line("pipe2", [0x1000, 0x80000, 0, 0, 0, 0], &[]),
            "pipe2(0x1000, O_CLOEXEC)"
        );
        assert_eq!(
            line("setuid", [0xffff_ffff, 0, 0, 0, 0, 0], &[]),
            "setuid(4294967295)"
        );
        assert_eq!(
            line(
                "mount",
                [1, 2, 3, 0, 5, 0],
                &[
                    Cap::Bytes(0, b"overlay", false),
                    Cap::Bytes(1, b"/merged", false),
                    Cap::Bytes(2, b"overlay", false),
                    Cap::Bytes(4, b"lowerdir=/l", false),
                ]
            ),
            r#"mount("overlay", "/merged", "overlay", 0, "lowerdir=/l")"#
        );
        assert_eq!(line("getppid", [9; 6], &[]), "getppid()");
    }

    #[test]
    fn socket_protocols_follow_the_domain() {
        assert_eq!(
            line("socket", [2, 1, 6, 0, 0, 0], &[]),
            "socket(AF_INET, SOCK_STREAM, IPPROTO_TCP)"
        );
        assert_eq!(
            line("socket", [10, 2, 17, 0, 0, 0], &[]),
            "socket(AF_INET6, SOCK_DGRAM, IPPROTO_UDP)"
        );
        assert_eq!(
            line("socket", [10, 3, 58, 0, 0, 0], &[]),
            "socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6)"
        );
        assert_eq!(
            line("socket", [16, 0x80003, 0, 0, 0, 0], &[]),
            "socket(AF_NETLINK, SOCK_RAW|SOCK_CLOEXEC, NETLINK_ROUTE)"
        );
        assert_eq!(
            line("socket", [16, 2, 15, 0, 0, 0], &[]),
            "socket(AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT)"
        );
        // Other families, and protocols without a name, stay numbers.
        assert_eq!(
            line("socket", [1, 1, 0, 0, 0, 0], &[]),
            "socket(AF_UNIX, SOCK_STREAM, 0)"
        );
        assert_eq!(
            line("socket", [17, 3, 0x300, 0, 0, 0], &[]),
            "socket(AF_PACKET, SOCK_RAW, 768)"
        );
        assert_eq!(
            line("socket", [2, 1, 9999, 0, 0, 0], &[]),
            "socket(AF_INET, SOCK_STREAM, 9999)"
        );
        assert_eq!(
            line("socket", [2, 3, u64::MAX, 0, 0, 0], &[]),
            "socket(AF_INET, SOCK_RAW, -1)"
        );
        // The domain is an int: the upper half of its register is ignored.
        assert_eq!(
            line("socket", [0xdead_0000_0002, 1, 6, 0, 0, 0], &[]),
            "socket(AF_INET, SOCK_STREAM, IPPROTO_TCP)"
        );
        assert_eq!(
            line("socketpair", [1, 0x80001, 0, 0x7ffd_1000, 0, 0], &[]),
            "socketpair(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0, 0x7ffd1000)"
        );
    }

    #[test]
    fn setsockopt_names_the_level_and_option_and_shows_ints() {
        let one = 1i32.to_le_bytes();
        let zero = 0i32.to_le_bytes();
        assert_eq!(
            line(
                "setsockopt",
                [3, 1, 2, 0x7ffd_1000, 4, 0],
                &[Cap::Bytes(3, &one, false)]
            ),
            "setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4)"
        );
        assert_eq!(
            line(
                "setsockopt",
                [5, 6, 1, 0x7ffd_1000, 4, 0],
                &[Cap::Bytes(3, &one, false)]
            ),
            "setsockopt(5, SOL_TCP, TCP_NODELAY, [1], 4)"
        );
        assert_eq!(
            line(
                "setsockopt",
                [3, 41, 26, 0x7ffd_1000, 4, 0],
                &[Cap::Bytes(3, &zero, false)]
            ),
            "setsockopt(3, SOL_IPV6, IPV6_V6ONLY, [0], 4)"
        );
        assert_eq!(
            line(
                "setsockopt",
                [3, 0, 2, 0x7ffd_1000, 4, 0],
                &[Cap::Bytes(3, &(-1i32).to_le_bytes(), false)]
            ),
            "setsockopt(3, SOL_IP, IP_TTL, [-1], 4)"
        );
        assert_eq!(
            line(
                "setsockopt",
                [3, 270, 1, 0x7ffd_1000, 4, 0],
                &[Cap::Bytes(3, &one, false)]
            ),
            "setsockopt(3, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, [1], 4)"
        );
        // Unknown levels, and options of levels without names, are numbers.
        assert_eq!(
            line(
                "setsockopt",
                [3, 999, 7, 0x7ffd_1000, 4, 0],
                &[Cap::Bytes(3, &one, false)]
            ),
            "setsockopt(3, 999, 7, [1], 4)"
        );
        assert_eq!(
            line(
                "setsockopt",
                [3, 1, 1234, 0x7ffd_1000, 4, 0],
                &[Cap::Bytes(3, &one, false)]
            ),
            "setsockopt(3, SOL_SOCKET, 1234, [1], 4)"
        );
        assert_eq!(
            line(
                "setsockopt",
                [3, 282, 1, 0x7ffd_1000, 4, 0],
                &[Cap::Bytes(3, &one, false)]
            ),
            "setsockopt(3, SOL_TLS, 1, [1], 4)"
        );
    }

    #[test]
    fn setsockopt_values_that_are_not_ints() {
        // Not 4 bytes: quoted, as an input buffer.
        assert_eq!(
            line(
                "setsockopt",
                [3, 1, 25, 0x7ffd_1000, 4, 0],
                &[Cap::Bytes(3, b"eth0", true)]
            ),
            r#"setsockopt(3, SOL_SOCKET, SO_BINDTODEVICE, "eth0"..., 4)"#
        );
        assert_eq!(
            line(
                "setsockopt",
                [3, 1, 25, 0x7ffd_1000, 3, 0],
                &[Cap::Bytes(3, b"lo\0", false)]
            ),
            r#"setsockopt(3, SOL_SOCKET, SO_BINDTODEVICE, "lo\0", 3)"#
        );
        assert_eq!(
            line(
                "setsockopt",
                [3, 1, 13, 0x7ffd_1000, 8, 0],
                &[Cap::Bytes(3, b"\x01\0\0\0\0\0\0\0", false)]
            ),
            r#"setsockopt(3, SOL_SOCKET, SO_LINGER, "\1\0\0\0\0\0\0\0", 8)"#
        );
        // 4 bytes of a longer value: the start of a buffer, not an int.
        assert_eq!(
            line(
                "setsockopt",
                [3, 1, 13, 0x7ffd_1000, 8, 0],
                &[Cap::Bytes(3, &[1, 0, 0, 0], true)]
            ),
            r#"setsockopt(3, SOL_SOCKET, SO_LINGER, "\1\0\0\0"..., 8)"#
        );
        // Unreadable or missing: the pointer.
        assert_eq!(
            line(
                "setsockopt",
                [3, 1, 2, 0x7ffd_1000, 4, 0],
                &[Cap::Unreadable(3)]
            ),
            "setsockopt(3, SOL_SOCKET, SO_REUSEADDR, 0x7ffd1000, 4)"
        );
        assert_eq!(
            line("setsockopt", [3, 1, 2, 0, 4, 0], &[]),
            "setsockopt(3, SOL_SOCKET, SO_REUSEADDR, NULL, 4)"
        );
    }

    #[test]
    fn getsockopt_shows_its_outputs_as_pointers() {
        assert_eq!(
            line("getsockopt", [3, 1, 4, 0x7ffd_1000, 0x7ffd_1004, 0], &[]),
            "getsockopt(3, SOL_SOCKET, SO_ERROR, 0x7ffd1000, 0x7ffd1004)"
        );
        assert_eq!(
            line("getsockopt", [4, 6, 11, 0x7ffd_1000, 0x7ffd_1100, 0], &[]),
            "getsockopt(4, SOL_TCP, TCP_INFO, 0x7ffd1000, 0x7ffd1100)"
        );
        assert_eq!(
            line("getsockopt", [4, 1, 17, 0x7ffd_1000, 0, 0], &[]),
            "getsockopt(4, SOL_SOCKET, SO_PEERCRED, 0x7ffd1000, NULL)"
        );
    }

    #[test]
    fn ioctl_requests_are_named() {
        assert_eq!(
            line("ioctl", [1, 0x5401, 0x7ffd_1000, 0, 0, 0], &[]),
            "ioctl(1, TCGETS, 0x7ffd1000)"
        );
        assert_eq!(
            line("ioctl", [3, 0x5421, 0x7ffd_1000, 0, 0, 0], &[]),
            "ioctl(3, FIONBIO, 0x7ffd1000)"
        );
        assert_eq!(
            line("ioctl", [0, 0x5413, 0x7ffd_1000, 0, 0, 0], &[]),
            "ioctl(0, TIOCGWINSZ, 0x7ffd1000)"
        );
        assert_eq!(
            line("ioctl", [3, 0x8933, 0x7ffd_1000, 0, 0, 0], &[]),
            "ioctl(3, SIOCGIFINDEX, 0x7ffd1000)"
        );
        assert_eq!(
            line("ioctl", [3, 0x8008_1272, 0x7ffd_1000, 0, 0, 0], &[]),
            "ioctl(3, BLKGETSIZE64, 0x7ffd1000)"
        );
        // The request is an unsigned int: the upper half is ignored.
        assert_eq!(
            line("ioctl", [3, 0xffff_ffff_4004_9409, 4, 0, 0, 0], &[]),
            "ioctl(3, FICLONE, 0x4)"
        );
        // Unknown requests are hex.
        assert_eq!(
            line("ioctl", [3, 0x1234, 0x7ffd_1000, 0, 0, 0], &[]),
            "ioctl(3, 0x1234, 0x7ffd1000)"
        );
        assert_eq!(
            line("ioctl", [3, 0xc0de_0000, 0, 0, 0, 0], &[]),
            "ioctl(3, 0xc0de0000, 0)"
        );
        assert_eq!(line("ioctl", [3, 0, 0, 0, 0, 0], &[]), "ioctl(3, 0, 0)");
    }

    #[test]
    fn socket_kinds_with_a_missing_context_argument() {
        // render_arg works for any record: another syscall, another
        // architecture, a context index past the arguments.
        let buf = build(AUDIT_ARCH_I386, 102, [2, 1, 6, 0, 0, 0], &[]);
        let (rec, _) = record::decode(&buf).unwrap();
        assert_eq!(
            render_arg(Arg::SockProtocol { domain: 0 }, 2, &rec),
            "IPPROTO_TCP"
        );
        assert_eq!(render_arg(Arg::SockProtocol { domain: 9 }, 2, &rec), "6");
        assert_eq!(
            render_arg(Arg::SockOptName { level: 1 }, 2, &rec),
            "SO_BROADCAST"
        );
        assert_eq!(render_arg(Arg::SockOptName { level: 255 }, 2, &rec), "6");
        assert_eq!(render_arg(Arg::SockLevel, 2, &rec), "SOL_TCP");
        assert_eq!(render_arg(Arg::IoctlReq, 9, &rec), "0");
        // No syscall info: the length argument is read raw (6, not 4).
        let buf = build(
            AUDIT_ARCH_I386,
            102,
            [3, 1, 2, 0x1000, 6, 0],
            &[Cap::Bytes(3, &[1, 0, 0, 0], false)],
        );
        let (rec, _) = record::decode(&buf).unwrap();
        assert_eq!(
            render_arg(Arg::SockOptVal { len: 4 }, 3, &rec),
            r#""\1\0\0\0"..."#
        );
        assert_eq!(
            render_arg(Arg::SockOptVal { len: 9 }, 3, &rec),
            r#""\1\0\0\0""#
        );
    }

    #[test]
    fn unknown_syscalls_show_raw_values() {
        let buf = build(AUDIT_ARCH_X86_64, 1000, [1, 2, 0, 0, 0, 0xff], &[]);
        let (rec, _) = record::decode(&buf).unwrap();
        let (name, args) = render_args(&rec);
        assert_eq!(name, "syscall_0x3e8");
        assert_eq!(args, ["0x1", "0x2", "0x0", "0x0", "0x0", "0xff"]);
        let buf = build(AUDIT_ARCH_I386, 5, [1; 6], &[]);
        let (rec, _) = record::decode(&buf).unwrap();
        assert_eq!(render_args(&rec).0, "syscall_0x5");
        // render_arg on its own works for any kind and index.
        assert_eq!(render_arg(Arg::Signal, 0, &rec), "SIGHUP");
        assert_eq!(render_arg(Arg::Int, 9, &rec), "0");
    }

    /// Every kind of argument, every capture shape, awkward raw values: no panics.
    #[test]
    fn nothing_panics_on_arbitrary_input() {
        let raw = [
            0,
            1,
            2,
            0x80,
            0xff,
            0xffff_ff9c,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            0x1_0000_0000,
            i64::MAX as u64,
            i64::MIN as u64,
            u64::MAX,
        ];
        let blobs: [&[u8]; 6] = [
            b"",
            b"\x01",
            b"\x02\x00",
            b"\xff\xff\xff",
            b"\x00\x00\x00\x80",
            &[0xaa; 200],
        ];
        let items: &[(&[u8], bool)] = &[(b"\xff\x00", true), (b"", false)];
        let kinds: Vec<Arg> = {
            let mut k: Vec<Arg> = table()
                .iter()
                .flat_map(|s| s.args.iter().copied())
                .collect();
            k.push(Arg::InBuf { len: 200 });
            k.push(Arg::SockAddr { len: 7 });
            k.push(Arg::SockOptVal { len: 200 });
            k.push(Arg::SockOptName { level: 200 });
            k.push(Arg::SockProtocol { domain: 6 });
            k.push(Arg::SockOptName { level: 0 });
            k.push(Arg::SockProtocol { domain: 1 });
            k.push(Arg::SockLevel);
            k.push(Arg::IoctlReq);
            k.sort_by_key(|a| format!("{a:?}"));
            k.dedup();
            k
        };
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for info in table() {
            for round in 0..12 {
                let mut args = [0u64; 6];
                for a in args.iter_mut() {
                    let r = next();
                    *a = if round % 2 == 0 {
                        raw[(r % raw.len() as u64) as usize]
                    } else {
                        r
                    };
                }
                let blob = blobs[round % blobs.len()];
                let caps: Vec<Cap> = (0..6u8)
                    .map(|i| match (round + i as usize) % 4 {
                        0 => Cap::Bytes(i, blob, round % 3 == 0),
                        1 => Cap::Strings(i, items, round % 3 == 1),
                        2 => Cap::Count(i, next()),
                        _ => Cap::Unreadable(i),
                    })
                    .collect();
                let buf = build(AUDIT_ARCH_X86_64, info.nr, args, &caps);
                let (rec, _) = record::decode(&buf).unwrap();
                let (name, out) = render_args(&rec);
                assert_eq!(name, info.name);
                assert!(
                    out.len() == info.args.len()
                        || (out.len() + 1 == info.args.len()
                            && (info.name.starts_with("open")
                                || matches!(info.name, "fcntl" | "mremap")))
                        || (info.name == "clone" && (2..=5).contains(&out.len()))
                        || (matches!(info.name, "futex" | "prctl") && (1..=6).contains(&out.len()))
                );
                // The same call with a result and output bytes from the exit.
                let mut buf = buf.clone();
                let mut b = RecordBuilder::extend(&mut buf, 0);
                b.result(next() as i64 % 300 - 5, None);
                for i in 0..6u8 {
                    b.out_bytes(i, blob, round % 2 == 0);
                }
                b.finish();
                let (rec, _) = record::decode(&buf).unwrap();
                for style in [StringStyle::Octal, StringStyle::Hex, StringStyle::AllHex] {
                    let opts = RenderOptions {
                        strings: style,
                        string_limit: round % 40,
                    };
                    let c = render_call(&rec, &opts);
                    assert!(c.exit_args <= c.args.len());
                }
                for &kind in &kinds {
                    for i in 0..8 {
                        let _ = render_arg(kind, i, &rec);
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------ the table

    fn is_integer(a: Arg) -> bool {
        matches!(a, Arg::Int | Arg::Uint | Arg::Long | Arg::Ulong)
    }

    #[test]
    fn table_is_sorted_unique_and_well_formed() {
        let t = table();
        assert!(t.len() >= 360, "only {} syscalls", t.len());
        for w in t.windows(2) {
            assert!(
                w[0].nr < w[1].nr,
                "{} / {} out of order",
                w[0].name,
                w[1].name
            );
        }
        let mut names: Vec<&str> = t.iter().map(|s| s.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate names");
        let all_classes = Class::ALL.iter().fold(0, |acc, c| acc | c.bit());
        for s in t {
            assert!(s.args.len() <= 6, "{} has {} args", s.name, s.args.len());
            assert_eq!(s.classes & !all_classes, 0, "{}", s.name);
            for (i, &a) in s.args.iter().enumerate() {
                if let Arg::InBuf { len } | Arg::SockAddr { len } | Arg::SockOptVal { len } = a {
                    let len = len as usize;
                    assert!(len < s.args.len() && len != i, "{}: bad len index", s.name);
                    assert!(
                        is_integer(s.args[len]),
                        "{}: len is {:?}",
                        s.name,
                        s.args[len]
                    );
                }
                if let Arg::SockProtocol { domain: at } | Arg::SockOptName { level: at } = a {
                    let at = at as usize;
                    let want = match a {
                        Arg::SockProtocol { .. } => Arg::SockDomain,
                        _ => Arg::SockLevel,
                    };
                    assert!(at < s.args.len() && at != i, "{}: bad index", s.name);
                    assert_eq!(s.args[at], want, "{}", s.name);
                }
                if a == Arg::Path {
                    assert!(
                        s.in_class(Class::File),
                        "{} takes a path, not in %file",
                        s.name
                    );
                }
                if matches!(a, Arg::Fd | Arg::DirFd) {
                    assert!(
                        s.in_class(Class::Desc),
                        "{} takes an fd, not in %desc",
                        s.name
                    );
                }
                if matches!(a, Arg::Argv | Arg::Envp) {
                    assert!(s.in_class(Class::Process), "{}", s.name);
                }
            }
            if s.in_class(Class::File) {
                assert!(
                    s.args.contains(&Arg::Path),
                    "{} in %file without a path",
                    s.name
                );
            }
        }
    }

    #[test]
    fn table_spot_checks() {
        let nr = |n: &str| by_name(n).unwrap_or_else(|| panic!("{n} missing")).nr;
        assert_eq!(nr("read"), 0);
        assert_eq!(nr("write"), 1);
        assert_eq!(nr("connect"), 42);
        assert_eq!(nr("execve"), 59);
        assert_eq!(nr("getppid"), 110);
        assert_eq!(nr("openat"), 257);
        assert_eq!(nr("rseq"), 334);
        assert_eq!(nr("pidfd_send_signal"), 424);
        assert_eq!(nr("clone3"), 435);
        assert_eq!(nr("set_mempolicy_home_node"), 450);
        assert_eq!(nr("mseal"), 462);
        assert_eq!(
            syscalls::by_nr(AUDIT_ARCH_X86_64, 257).unwrap().name,
            "openat"
        );
        assert!(syscalls::by_nr(AUDIT_ARCH_X86_64, 400).is_none());

        let args = |n: &str| by_name(n).unwrap().args;
        assert_eq!(args("write"), &[Arg::Fd, Arg::InBuf { len: 2 }, Arg::Ulong]);
        assert_eq!(args("read"), &[Arg::Fd, Arg::OutBuf, Arg::Ulong]);
        assert_eq!(
            args("openat"),
            &[Arg::DirFd, Arg::Path, Arg::OpenFlags, Arg::Mode]
        );
        assert_eq!(args("execve"), &[Arg::Path, Arg::Argv, Arg::Envp]);
        assert_eq!(
            args("connect"),
            &[Arg::Fd, Arg::SockAddr { len: 2 }, Arg::Int]
        );
        assert_eq!(args("sendto")[4], Arg::SockAddr { len: 5 });
        assert_eq!(args("mmap").len(), 6);
        assert_eq!(args("preadv2")[5], Arg::Hex);
        assert!(args("getppid").is_empty());
        assert_eq!(
            args("setsockopt"),
            &[
                Arg::Fd,
                Arg::SockLevel,
                Arg::SockOptName { level: 1 },
                Arg::SockOptVal { len: 4 },
                Arg::Int
            ]
        );
        assert_eq!(args("ioctl"), &[Arg::Fd, Arg::IoctlReq, Arg::Hex]);
        // The option value is copied as an input buffer was; the other new
        // kinds are shown from the registers alone.
        use crate::capture::{plan, CapturePlan, BUF_MAX_CAPTURE};
        assert_eq!(
            plan(Arg::SockOptVal { len: 4 }),
            Some(CapturePlan::Bytes {
                len_arg: 4,
                max: BUF_MAX_CAPTURE
            })
        );
        for kind in [
            Arg::SockProtocol { domain: 0 },
            Arg::SockLevel,
            Arg::SockOptName { level: 1 },
            Arg::IoctlReq,
        ] {
            assert_eq!(plan(kind), None, "{kind:?}");
        }

        let classes = |n: &str| by_name(n).unwrap().classes;
        assert_eq!(classes("openat"), cls::FILE | cls::DESC);
        assert_eq!(classes("execve"), cls::FILE | cls::PROCESS);
        assert_eq!(classes("kill"), cls::PROCESS | cls::SIGNAL);
        assert_eq!(classes("connect"), cls::NETWORK | cls::DESC);
        assert_eq!(classes("mmap"), cls::MEMORY | cls::DESC);
        assert_eq!(classes("setresuid"), cls::CREDS);
        assert_eq!(classes("semtimedop"), cls::IPC);
        assert_eq!(classes("getppid"), 0);
    }

    #[test]
    fn class_membership_matches_the_project_definitions() {
        let members = |c: Class| {
            let mut v: Vec<&str> = syscalls::in_class(c).map(|s| s.name).collect();
            v.sort_unstable();
            v
        };
        let sorted = |l: &[&'static str]| {
            let mut v = l.to_vec();
            v.sort_unstable();
            v
        };
        assert_eq!(
            members(Class::Network),
            sorted(&[
                "socket",
                "socketpair",
                "bind",
                "listen",
                "accept",
                "accept4",
                "connect",
                "getsockname",
                "getpeername",
                "sendto",
                "recvfrom",
                "sendmsg",
                "recvmsg",
                "sendmmsg",
                "recvmmsg",
                "shutdown",
                "setsockopt",
                "getsockopt",
            ])
        );
        assert_eq!(
            members(Class::Process),
            sorted(&[
                "fork",
                "vfork",
                "clone",
                "clone3",
                "execve",
                "execveat",
                "exit",
                "exit_group",
                "wait4",
                "waitid",
                "kill",
                "tkill",
                "tgkill",
                "pidfd_open",
                "pidfd_send_signal",
                "unshare",
                "setns",
            ])
        );
        assert_eq!(
            members(Class::Signal),
            sorted(&[
                "rt_sigaction",
                "rt_sigprocmask",
                "rt_sigreturn",
                "rt_sigpending",
                "rt_sigtimedwait",
                "rt_sigqueueinfo",
                "rt_tgsigqueueinfo",
                "rt_sigsuspend",
                "sigaltstack",
                "kill",
                "tkill",
                "tgkill",
                "pause",
                "signalfd",
                "signalfd4",
                "pidfd_send_signal",
            ])
        );
        assert_eq!(
            members(Class::Ipc),
            sorted(&[
                "msgget",
                "msgsnd",
                "msgrcv",
                "msgctl",
                "semget",
                "semop",
                "semctl",
                "semtimedop",
                "shmget",
                "shmat",
                "shmctl",
                "shmdt",
            ])
        );
        assert_eq!(
            members(Class::Creds),
            sorted(&[
                "capget",
                "capset",
                "getuid",
                "geteuid",
                "getgid",
                "getegid",
                "setuid",
                "setgid",
                "setreuid",
                "setregid",
                "setresuid",
                "getresuid",
                "setresgid",
                "getresgid",
                "setfsuid",
                "setfsgid",
                "getgroups",
                "setgroups",
            ])
        );
        let memory = members(Class::Memory);
        for n in [
            "brk",
            "mmap",
            "munmap",
            "mprotect",
            "mremap",
            "madvise",
            "mlock",
            "mlock2",
            "munlock",
            "mlockall",
            "munlockall",
            "mincore",
            "msync",
            "remap_file_pages",
            "mbind",
            "set_mempolicy",
            "get_mempolicy",
            "migrate_pages",
            "move_pages",
            "pkey_mprotect",
            "process_madvise",
            "memfd_secret",
            "mseal",
            "map_shadow_stack",
        ] {
            assert!(memory.contains(&n), "{n} not in %memory");
        }
        let desc = members(Class::Desc);
        for n in [
            "open",
            "openat",
            "openat2",
            "creat",
            "socket",
            "socketpair",
            "accept",
            "accept4",
            "pipe",
            "pipe2",
            "dup",
            "dup2",
            "dup3",
            "eventfd",
            "eventfd2",
            "epoll_create",
            "epoll_create1",
            "inotify_init",
            "inotify_init1",
            "fanotify_init",
            "signalfd",
            "signalfd4",
            "timerfd_create",
            "memfd_create",
            "pidfd_open",
            "pidfd_getfd",
            "userfaultfd",
            "perf_event_open",
            "io_uring_setup",
            "open_tree",
            "fsopen",
            "fsmount",
            "fspick",
            "name_to_handle_at",
            "mmap",
        ] {
            assert!(desc.contains(&n), "{n} not in %desc");
        }
        let file = members(Class::File);
        for n in [
            "open",
            "openat",
            "openat2",
            "stat",
            "lstat",
            "newfstatat",
            "statx",
            "access",
            "faccessat",
            "faccessat2",
            "execve",
            "execveat",
            "chdir",
            "mkdir",
            "mkdirat",
            "unlink",
            "unlinkat",
            "rename",
            "renameat",
            "renameat2",
            "link",
            "linkat",
            "symlink",
            "symlinkat",
            "readlink",
            "readlinkat",
            "chmod",
            "fchmodat",
            "chown",
            "lchown",
            "fchownat",
            "truncate",
            "utime",
            "utimes",
            "utimensat",
            "futimesat",
            "mknod",
            "mknodat",
            "statfs",
            "setxattr",
            "getxattr",
            "listxattr",
            "removexattr",
            "mount",
            "umount2",
            "pivot_root",
            "chroot",
            "swapon",
            "swapoff",
            "acct",
            "inotify_add_watch",
            "fanotify_mark",
            "name_to_handle_at",
            "open_tree",
            "move_mount",
            "uselib",
            "quotactl",
        ] {
            assert!(file.contains(&n), "{n} not in %file");
        }
    }

    /// Where the kernel's uapi header is installed, every syscall it lists
    /// is in the table with the same number.
    #[test]
    fn table_covers_the_installed_unistd_64_h() {
        // linux-libc-dev (installed by scripts/setup.sh) provides the header.
        let text = std::fs::read_to_string("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
            .expect("the kernel's unistd_64.h (apt-get install linux-libc-dev)");
        let mut seen = 0;
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("#define") {
                continue;
            }
            let (Some(name), Some(nr)) = (words.next(), words.next()) else {
                continue;
            };
            let Some(name) = name.strip_prefix("__NR_") else {
                continue;
            };
            let Ok(nr) = nr.parse::<u32>() else {
                continue;
            };
            let info = by_name(name).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(info.nr, nr, "{name}");
            seen += 1;
        }
        assert!(seen > 300);
    }
}
