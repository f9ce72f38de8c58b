//! The syscall table: for every syscall, its number, how each argument is
//! rendered, what the hot path must copy out of the tracee for it, and which
//! strace-style classes (`%file`, `%network`, ...) it belongs to.

use std::sync::OnceLock;

/// How one syscall argument is shown, and (for pointer kinds) what the notify
/// loop copies from the traced process before letting the syscall continue.
///
/// Integer kinds say their C width: `Int`/`Uint` are 32-bit (the upper half of
/// the register is ignored, as the kernel does), `Long`/`Ulong` are 64-bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// `int`, `pid_t`: signed decimal.
    Int,
    /// `unsigned int`: unsigned decimal.
    Uint,
    /// `long`, `off_t`, `loff_t`: signed decimal.
    Long,
    /// `size_t`, `unsigned long`: unsigned decimal.
    Ulong,
    /// A value best shown in hex (opaque cookies, addresses given as numbers).
    Hex,
    /// A pointer that is not read (output buffers, structs we do not decode): `NULL` or `0x7ffc...`.
    Ptr,
    /// A file descriptor (int).
    Fd,
    /// A directory file descriptor: `AT_FDCWD` or a number.
    DirFd,
    /// A NUL-terminated path name: copied and shown quoted.
    Path,
    /// A NUL-terminated string that is not a path (e.g. a hostname, an xattr name): copied, quoted.
    Str,
    /// A buffer the kernel reads from the caller, whose length is argument number `len`
    /// (0-based): the first bytes are copied and shown quoted.
    InBuf { len: u8 },
    /// `char *const argv[]`: copied and shown as `["sh", "-c", "true"]`.
    Argv,
    /// `char *const envp[]`: only counted, shown as `0x7ffd... /* 12 vars */`.
    Envp,
    /// A `struct sockaddr *` the kernel reads, whose length is argument number `len`:
    /// copied and shown as `{sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("10.0.0.1")}`.
    SockAddr { len: u8 },
    /// File mode bits, octal: `0644`.
    Mode,
    /// `open(2)` flags: `O_RDONLY|O_CLOEXEC`.
    OpenFlags,
    /// `*at` flags: `AT_SYMLINK_NOFOLLOW|AT_EMPTY_PATH`, `0`.
    AtFlags,
    /// `access(2)` mode: `F_OK`, `R_OK|W_OK`.
    AccessMode,
    /// `clone(2)` flags: `CLONE_VM|CLONE_FS|...|SIGCHLD`.
    CloneFlags,
    /// A signal number: `SIGTERM`.
    Signal,
    /// A socket address family: `AF_INET`.
    SockDomain,
    /// A socket type with its flags: `SOCK_STREAM|SOCK_CLOEXEC`.
    SockType,
    /// A socket protocol (int), named after the address family in argument
    /// number `domain`: `IPPROTO_TCP`, `NETLINK_ROUTE`, or the number.
    SockProtocol { domain: u8 },
    /// A `setsockopt`/`getsockopt` level (int): `SOL_SOCKET`, `SOL_TCP`.
    SockLevel,
    /// A socket option name (int), named after the level in argument number
    /// `level`: `SO_REUSEADDR`, `TCP_NODELAY`, or the number.
    SockOptName { level: u8 },
    /// A `setsockopt` option value the kernel reads, whose length is argument
    /// number `len`: copied like [`Arg::InBuf`]; an `int` is shown as `[1]`,
    /// anything else quoted.
    SockOptVal { len: u8 },
    /// An `ioctl` request: `TCGETS`, `FIONBIO`, or hex.
    IoctlReq,
    /// `mmap`/`mprotect` protection: `PROT_READ|PROT_WRITE`.
    ProtFlags,
    /// `mmap` flags: `MAP_PRIVATE|MAP_ANONYMOUS`.
    MapFlags,
    /// `lseek` whence: `SEEK_SET`.
    Whence,
    /// `fcntl` command: `F_SETFD`.
    FcntlCmd,
    /// `send`/`recv` flags: `MSG_NOSIGNAL|MSG_DONTWAIT`.
    MsgFlags,
    /// `shutdown` how: `SHUT_WR`.
    ShutdownHow,
    /// `prctl` option: `PR_SET_NAME`.
    PrctlOption,
    /// `*_CLOEXEC`-style flags of pipe2/dup3/eventfd2/... : `O_CLOEXEC|O_NONBLOCK`.
    FdFlags,
    /// `wait4`/`waitid` options: `WNOHANG|WUNTRACED`.
    WaitOptions,
    /// `rt_sigprocmask` how: `SIG_BLOCK`.
    SigmaskHow,
    /// `madvise` advice: `MADV_DONTNEED`.
    MadviseAdvice,
    /// `futex` operation: `FUTEX_WAIT_PRIVATE`.
    FutexOp,
    /// `unlinkat` flags: `AT_REMOVEDIR`.
    UnlinkFlags,
    /// `renameat2` flags: `RENAME_NOREPLACE`.
    RenameFlags,
    /// `clockid_t`: `CLOCK_MONOTONIC`.
    ClockId,
    /// A `const struct timespec *` the kernel reads (a sleep's length):
    /// copied and shown as `{tv_sec=0, tv_nsec=50000000}`.
    Timespec,
    /// A buffer the kernel fills, as many bytes as the syscall returns (read,
    /// recvfrom): read at the exit and shown quoted, like strace's `-s 32`.
    OutBuf,
    /// A path the kernel writes, as many bytes as the syscall returns
    /// (`readlink`; `getcwd`, whose count includes the NUL): shown quoted.
    OutPath,
    /// A `struct stat` the kernel fills: `{st_mode=S_IFREG|0644, st_size=42, ...}`.
    OutStat,
    /// A `struct statx` the kernel fills.
    OutStatx,
    /// A `struct sockaddr *` the kernel fills, whose `socklen_t *` length is
    /// argument number `len`: the address, as [`Arg::SockAddr`].
    OutSockAddr { len: u8 },
    /// The `socklen_t *` of an [`Arg::OutSockAddr`]: `[16]` after the call.
    OutSockLen,
    /// An `int[2]` of file descriptors the kernel fills (pipe, socketpair): `[3, 4]`.
    OutFdPair,
    /// An `int *` wait status the kernel fills (`wait4`):
    /// `[{WIFEXITED(s) && WEXITSTATUS(s) == 0}]`.
    OutWaitStatus,
}

/// The strace-style classes accepted in the `crt.dev/trace` annotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// Syscalls that take a file name.
    File,
    /// Socket and network syscalls.
    Network,
    /// Process lifecycle: creation, exec, termination, waiting.
    Process,
    /// Signal handling and delivery.
    Signal,
    /// System V IPC.
    Ipc,
    /// Memory mapping and protection.
    Memory,
    /// Syscalls that take or create a file descriptor.
    Desc,
    /// User, group and capability credentials.
    Creds,
}

impl Class {
    pub const ALL: [Class; 8] = [
        Class::File,
        Class::Network,
        Class::Process,
        Class::Signal,
        Class::Ipc,
        Class::Memory,
        Class::Desc,
        Class::Creds,
    ];

    /// The bit this class occupies in [`SyscallInfo::classes`].
    pub const fn bit(self) -> u16 {
        1 << self as u16
    }

    /// The name as written in an annotation, with its `%`.
    pub const fn name(self) -> &'static str {
        match self {
            Class::File => "%file",
            Class::Network => "%network",
            Class::Process => "%process",
            Class::Signal => "%signal",
            Class::Ipc => "%ipc",
            Class::Memory => "%memory",
            Class::Desc => "%desc",
            Class::Creds => "%creds",
        }
    }

    /// Parses `%file` (or `%net`, strace's short form of `%network`).
    pub fn parse(s: &str) -> Option<Class> {
        Some(match s {
            "%file" => Class::File,
            "%network" | "%net" => Class::Network,
            "%process" => Class::Process,
            "%signal" => Class::Signal,
            "%ipc" => Class::Ipc,
            "%memory" => Class::Memory,
            "%desc" => Class::Desc,
            "%creds" => Class::Creds,
            _ => return None,
        })
    }
}

/// Class bit constants, for writing the table compactly.
pub mod cls {
    use super::Class;
    pub const FILE: u16 = Class::File.bit();
    pub const NETWORK: u16 = Class::Network.bit();
    pub const PROCESS: u16 = Class::Process.bit();
    pub const SIGNAL: u16 = Class::Signal.bit();
    pub const IPC: u16 = Class::Ipc.bit();
    pub const MEMORY: u16 = Class::Memory.bit();
    pub const DESC: u16 = Class::Desc.bit();
    pub const CREDS: u16 = Class::Creds.bit();
}

/// One syscall of one architecture.
#[derive(Debug, PartialEq, Eq)]
pub struct SyscallInfo {
    pub name: &'static str,
    pub nr: u32,
    /// The arguments in order; the length is the syscall's argument count.
    pub args: &'static [Arg],
    /// A bit set of [`Class::bit`].
    pub classes: u16,
}

impl SyscallInfo {
    pub fn in_class(&self, class: Class) -> bool {
        self.classes & class.bit() != 0
    }
}

/// `AUDIT_ARCH_X86_64`, as the kernel reports it in `seccomp_data.arch`.
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// `AUDIT_ARCH_I386`.
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// `AUDIT_ARCH_AARCH64`.
pub const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
/// x32 syscalls carry this bit in their number on x86_64.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The architecture this build traces natively.
#[cfg(target_arch = "x86_64")]
pub const NATIVE_AUDIT_ARCH: u32 = AUDIT_ARCH_X86_64;
#[cfg(target_arch = "aarch64")]
pub const NATIVE_AUDIT_ARCH: u32 = AUDIT_ARCH_AARCH64;

/// The native table, sorted by number.
pub fn table() -> &'static [SyscallInfo] {
    crate::syscalls_x86_64::TABLE
}

struct Index {
    by_nr: Vec<u16>,
}

const NO_ENTRY: u16 = u16::MAX;

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let t = table();
        let max = t.iter().map(|s| s.nr).max().unwrap_or(0) as usize;
        let mut by_nr = vec![NO_ENTRY; max + 1];
        for (i, s) in t.iter().enumerate() {
            by_nr[s.nr as usize] = i as u16;
        }
        Index { by_nr }
    })
}

/// Looks a syscall up by the architecture and number the kernel reported.
/// Returns `None` for other architectures (e.g. 32-bit processes) and
/// unknown numbers; callers then show the raw number and arguments.
pub fn by_nr(arch: u32, nr: u32) -> Option<&'static SyscallInfo> {
    if arch != NATIVE_AUDIT_ARCH {
        return None;
    }
    let i = *index().by_nr.get(nr as usize)?;
    if i == NO_ENTRY {
        return None;
    }
    Some(&table()[i as usize])
}

/// Looks a syscall up by name in the native table.
pub fn by_name(name: &str) -> Option<&'static SyscallInfo> {
    table().iter().find(|s| s.name == name)
}

/// Every native syscall in `class`.
pub fn in_class(class: Class) -> impl Iterator<Item = &'static SyscallInfo> {
    table().iter().filter(move |s| s.in_class(class))
}
