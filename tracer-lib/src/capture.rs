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
        Arg::Envp => Some(CapturePlan::PtrCount),
        _ => None,
    }
}
