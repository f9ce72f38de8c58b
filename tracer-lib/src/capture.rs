//! What the notify loop copies out of the traced process for each kind of
//! pointer argument, and how much at most. The limits keep one event small
//! and one notification short: the traced syscall waits while we copy.

use crate::syscalls::Arg;

/// Longest path copied (PATH_MAX).
pub const PATH_MAX_CAPTURE: usize = 4096;
/// Longest non-path string copied.
pub const STR_MAX_CAPTURE: usize = 256;
/// Bytes of an input buffer copied (strace shows 32 by default).
pub const BUF_MAX_CAPTURE: usize = 64;
/// Largest socket address copied (sizeof(struct sockaddr_storage)).
pub const SOCKADDR_MAX_CAPTURE: usize = 128;
/// Most argv entries copied.
pub const ARGV_MAX_ITEMS: usize = 64;
/// Longest argv entry copied.
pub const ARGV_MAX_ITEM_LEN: usize = 512;
/// Most argv bytes copied in all.
pub const ARGV_MAX_TOTAL: usize = 8192;
/// Most envp entries counted.
pub const ENVP_MAX_COUNT: usize = 4096;

/// What to copy for one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapturePlan {
    /// A NUL-terminated string of at most `max` bytes.
    CString { max: usize },
    /// `min(args[len_arg], max)` bytes.
    Bytes { len_arg: u8, max: usize },
    /// A NULL-terminated array of strings (argv).
    StrArray,
    /// Count the entries of a NULL-terminated pointer array (envp).
    PtrCount,
    /// Exactly `len` bytes (a `socklen_t` the kernel reads and rewrites).
    Fixed { len: usize },
}

/// The copy plan for an argument kind, or `None` when its value is shown as is.
pub const fn plan(arg: Arg) -> Option<CapturePlan> {
    match arg {
        Arg::Path => Some(CapturePlan::CString {
            max: PATH_MAX_CAPTURE,
        }),
        Arg::Str => Some(CapturePlan::CString {
            max: STR_MAX_CAPTURE,
        }),
        Arg::InBuf { len } => Some(CapturePlan::Bytes {
            len_arg: len,
            max: BUF_MAX_CAPTURE,
        }),
        // An option value is a small buffer: the same copy as `InBuf`.
        Arg::SockOptVal { len } => Some(CapturePlan::Bytes {
            len_arg: len,
            max: BUF_MAX_CAPTURE,
        }),
        Arg::SockAddr { len } => Some(CapturePlan::Bytes {
            len_arg: len,
            max: SOCKADDR_MAX_CAPTURE,
        }),
        Arg::Argv => Some(CapturePlan::StrArray),
        // The length given, for strace's `[128 => 16]`.
        Arg::OutSockLen => Some(CapturePlan::Fixed { len: 4 }),
        Arg::Envp => Some(CapturePlan::PtrCount),
        _ => None,
    }
}

/// Most bytes of memory read at a syscall's exit for one output argument
/// (`struct statx` is the largest: 256 bytes).
pub const OUT_MAX_CAPTURE: usize = 256;
/// Bytes of a buffer the kernel filled that are kept (strace's `-s 32`).
pub const OUT_BUF_CAPTURE: usize = 32;

/// What to read at a syscall's exit for an output argument: the BPF exit
/// program does the copy, so these are the only shapes it knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutPlan {
    /// `min(ret, max)` bytes, when the syscall returned a positive count.
    RetBytes { max: usize },
    /// `len` bytes, when the syscall returned 0 or more.
    Fixed { len: usize },
    /// A socket address: the `socklen_t` at argument `len_arg` after the
    /// call, then `min(that, SOCKADDR_MAX_CAPTURE)` bytes of the address;
    /// stored as `u32 socklen` followed by the bytes.
    SockAddr { len_arg: u8 },
}

/// Size of `struct stat` on x86_64.
pub const STAT_LEN: usize = 144;
/// Size of `struct statx`.
pub const STATX_LEN: usize = 256;

/// The exit copy plan for an argument kind, or `None` when nothing is read
/// at the exit for it.
pub const fn out_plan(arg: Arg) -> Option<OutPlan> {
    match arg {
        Arg::OutBuf => Some(OutPlan::RetBytes {
            max: OUT_BUF_CAPTURE,
        }),
        Arg::OutPath => Some(OutPlan::RetBytes {
            max: OUT_MAX_CAPTURE,
        }),
        Arg::OutStat => Some(OutPlan::Fixed { len: STAT_LEN }),
        Arg::OutStatx => Some(OutPlan::Fixed { len: STATX_LEN }),
        Arg::OutSockAddr { len } => Some(OutPlan::SockAddr { len_arg: len }),
        Arg::OutFdPair => Some(OutPlan::Fixed { len: 8 }),
        Arg::OutWaitStatus => Some(OutPlan::Fixed { len: 4 }),
        _ => None,
    }
}

/// The one output argument of `args` read at the exit (the first with a
/// plan): its index and plan.
pub fn exit_plan(args: &[Arg]) -> Option<(u8, OutPlan)> {
    args.iter()
        .enumerate()
        .find_map(|(i, &a)| out_plan(a).map(|p| (i as u8, p)))
}
