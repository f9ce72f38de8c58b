//! The x86_64 syscall table (numbers from the kernel's unistd_64.h).

use crate::syscalls::{cls::*, Arg::*, SyscallInfo};

macro_rules! sys {
    ($name:literal, $nr:literal, [$($arg:expr),* $(,)?], $classes:expr) => {
        SyscallInfo { name: $name, nr: $nr, args: &[$($arg),*], classes: $classes }
    };
}

pub static TABLE: &[SyscallInfo] = &[
    sys!("read", 0, [Fd, Ptr, Ulong], DESC),
    sys!("write", 1, [Fd, InBuf { len: 2 }, Ulong], DESC),
    sys!("close", 3, [Fd], DESC),
    sys!("getppid", 110, [], 0),
    sys!("openat", 257, [DirFd, Path, OpenFlags, Mode], DESC | FILE),
];
