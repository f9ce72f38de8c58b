//! Symbolic names for the flag sets and enumerations that syscall arguments
//! carry, with x86_64 values. Every function takes an arbitrary raw value and
//! returns a string: bits without a name are kept as `|0x...`, unknown
//! enumeration values as numbers. Nothing here can panic.

/// `(mask, name)` pairs, in the order names are printed.
type Names = &'static [(u64, &'static str)];

/// Collects `A|B|0x10`.
#[derive(Default)]
struct Joined(String);

impl Joined {
    fn push(&mut self, name: &str) {
        if !self.0.is_empty() {
            self.0.push('|');
        }
        self.0.push_str(name);
    }

    /// Names the bits of `v` found in `names`, in table order, and returns
    /// the bits left over. An entry is skipped when another matching entry
    /// covers all of its bits and more (`O_SYNC` shadows `O_DSYNC`,
    /// `O_TMPFILE` shadows `O_DIRECTORY`).
    fn bits(&mut self, v: u64, names: &[(u64, &str)]) -> u64 {
        let present = |m: u64| m != 0 && v & m == m;
        let mut used = 0;
        for &(mask, name) in names {
            if !present(mask) {
                continue;
            }
            let shadowed = names
                .iter()
                .any(|&(other, _)| other != mask && present(other) && other & mask == mask);
            if shadowed {
                continue;
            }
            self.push(name);
            used |= mask;
        }
        v & !used
    }

    /// Appends the leftover bits in hex; an empty result becomes `zero`.
    fn finish(mut self, rest: u64, zero: &str) -> String {
        if rest != 0 {
            self.push(&format!("{rest:#x}"));
        }
        if self.0.is_empty() {
            zero.to_string()
        } else {
            self.0
        }
    }
}

/// A plain bit set of a C `int`, for tables kept beside their one caller.
pub fn bitset_of(v: u32, names: &[(u64, &str)]) -> String {
    bitset(u64::from(v), names)
}

/// A plain bit set: names, then leftovers, `0` when empty.
fn bitset(v: u64, names: &[(u64, &str)]) -> String {
    let mut j = Joined::default();
    let rest = j.bits(v, names);
    j.finish(rest, "0")
}

fn lookup(v: u64, names: Names) -> Option<&'static str> {
    names.iter().find(|&&(n, _)| n == v).map(|&(_, name)| name)
}

/// An enumeration held in a C `int`: its name, or the signed number.
fn int_enum(v: u32, names: Names) -> String {
    match lookup(u64::from(v), names) {
        Some(name) => name.to_string(),
        None => (v as i32).to_string(),
    }
}

// ---------------------------------------------------------------- open(2)

/// In strace 6.1's order (its `open_mode_flags` table), which is not the
/// bits' order: `strace -e trace=openat` on raw `openat` calls with each
/// flag alone and all together prints
/// `O_RDONLY|O_CREAT|O_EXCL|O_NOCTTY|O_TRUNC|O_APPEND|O_NONBLOCK|O_SYNC|O_DIRECT|O_LARGEFILE|O_NOFOLLOW|O_NOATIME|O_CLOEXEC|O_PATH|O_TMPFILE|FASYNC`,
/// `O_RDONLY|O_DSYNC|O_DIRECT`, `O_RDONLY|O_NOFOLLOW|O_CLOEXEC|O_DIRECTORY`,
/// `O_RDONLY|O_PATH|O_DIRECTORY`, `O_RDONLY|O_DIRECTORY|FASYNC`,
/// `O_RDONLY|__O_TMPFILE|FASYNC`.
const OPEN_FLAGS: Names = &[
    (0o100, "O_CREAT"),
    (0o200, "O_EXCL"),
    (0o400, "O_NOCTTY"),
    (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"),
    (0o4010000, "O_SYNC"),
    (0o10000, "O_DSYNC"),
    (0o40000, "O_DIRECT"),
    (0o100000, "O_LARGEFILE"),
    (0o400000, "O_NOFOLLOW"),
    (0o1000000, "O_NOATIME"),
    (0o2000000, "O_CLOEXEC"),
    (0o10000000, "O_PATH"),
    (0o20200000, "O_TMPFILE"),
    (0o20000000, "__O_TMPFILE"),
    (0o200000, "O_DIRECTORY"),
    (0o20000, "FASYNC"),
];

/// `O_RDONLY|O_CLOEXEC`: the access mode always comes first.
pub fn open_flags(v: u32) -> String {
    let mut j = Joined::default();
    j.push(match v & 3 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    });
    let rest = j.bits(u64::from(v & !3), OPEN_FLAGS);
    j.finish(rest, "0")
}

/// `*_CLOEXEC`/`*_NONBLOCK` flags of pipe2, dup3, eventfd2, accept4, ... (they
/// share the `O_*` values), named without knowing the syscall.
pub fn fd_flags(v: u32) -> String {
    bitset(
        u64::from(v),
        &[
            (0o2000000, "O_CLOEXEC"),
            (0o4000, "O_NONBLOCK"),
            (0o40000, "O_DIRECT"),
        ],
    )
}

/// The `*_CLOEXEC`-style flags of syscall `name`, with the prefix and order
/// strace 6.1 uses for it (`strace ./fdf`: `dup3(0, 10, O_CLOEXEC)`,
/// `eventfd2(0, EFD_CLOEXEC|EFD_NONBLOCK)`, `epoll_create1(EPOLL_CLOEXEC)`,
/// `inotify_init1(IN_NONBLOCK|IN_CLOEXEC)`,
/// `accept4(6, NULL, NULL, SOCK_CLOEXEC|SOCK_NONBLOCK)`,
/// `timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC|TFD_NONBLOCK)`,
/// `signalfd4(-1, [], 8, SFD_CLOEXEC|SFD_NONBLOCK)`,
/// `pipe2(NULL, O_NONBLOCK|O_DIRECT|O_CLOEXEC)`).
pub fn fd_flags_of(name: &str, v: u32) -> String {
    const CLOEXEC: u64 = 0o2000000;
    const NONBLOCK: u64 = 0o4000;
    let table: &[(u64, &str)] = match name {
        "dup3" | "memfd_secret" => &[(CLOEXEC, "O_CLOEXEC")],
        "eventfd2" => &[
            (CLOEXEC, "EFD_CLOEXEC"),
            (NONBLOCK, "EFD_NONBLOCK"),
            (1, "EFD_SEMAPHORE"),
        ],
        "epoll_create1" => &[(CLOEXEC, "EPOLL_CLOEXEC")],
        "inotify_init1" => &[(NONBLOCK, "IN_NONBLOCK"), (CLOEXEC, "IN_CLOEXEC")],
        "accept4" => &[(CLOEXEC, "SOCK_CLOEXEC"), (NONBLOCK, "SOCK_NONBLOCK")],
        "timerfd_create" => &[(CLOEXEC, "TFD_CLOEXEC"), (NONBLOCK, "TFD_NONBLOCK")],
        "signalfd4" => &[(CLOEXEC, "SFD_CLOEXEC"), (NONBLOCK, "SFD_NONBLOCK")],
        "pipe2" => &[
            (NONBLOCK, "O_NONBLOCK"),
            (0o40000, "O_DIRECT"),
            (CLOEXEC, "O_CLOEXEC"),
        ],
        _ => return fd_flags(v),
    };
    bitset(u64::from(v), table)
}

/// The meaning of bit 0x200 among the `AT_*` flags depends on the syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At200 {
    RemoveDir,
    EAccess,
    HandleFid,
}

/// `AT_SYMLINK_NOFOLLOW|AT_EMPTY_PATH`, `0`.
pub fn at_flags(v: u32, bit200: At200) -> String {
    let name200 = match bit200 {
        At200::RemoveDir => "AT_REMOVEDIR",
        At200::EAccess => "AT_EACCESS",
        At200::HandleFid => "AT_HANDLE_FID",
    };
    let mut j = Joined::default();
    let mut rest = u64::from(v);
    for &(mask, name) in &[
        (0x100, "AT_SYMLINK_NOFOLLOW"),
        (0x200, name200),
        (0x400, "AT_SYMLINK_FOLLOW"),
        (0x800, "AT_NO_AUTOMOUNT"),
        (0x1000, "AT_EMPTY_PATH"),
        (0x2000, "AT_STATX_FORCE_SYNC"),
        (0x4000, "AT_STATX_DONT_SYNC"),
        (0x8000, "AT_RECURSIVE"),
    ] {
        if rest & mask != 0 {
            j.push(name);
            rest &= !mask;
        }
    }
    j.finish(rest, "0")
}

/// `unlinkat` flags.
pub fn unlink_flags(v: u32) -> String {
    bitset(u64::from(v), &[(0x200, "AT_REMOVEDIR")])
}

/// `renameat2` flags.
pub fn rename_flags(v: u32) -> String {
    bitset(
        u64::from(v),
        &[
            (1, "RENAME_NOREPLACE"),
            (2, "RENAME_EXCHANGE"),
            (4, "RENAME_WHITEOUT"),
        ],
    )
}

/// `access` mode: `F_OK` or `R_OK|W_OK|X_OK`.
pub fn access_mode(v: u32) -> String {
    let mut j = Joined::default();
    let rest = j.bits(u64::from(v), &[(4, "R_OK"), (2, "W_OK"), (1, "X_OK")]);
    j.finish(rest, "F_OK")
}

const FILE_TYPES: Names = &[
    (0o140000, "S_IFSOCK"),
    (0o120000, "S_IFLNK"),
    (0o100000, "S_IFREG"),
    (0o060000, "S_IFBLK"),
    (0o040000, "S_IFDIR"),
    (0o020000, "S_IFCHR"),
    (0o010000, "S_IFIFO"),
];

/// File mode bits in octal: `0644`, `0`. With `file_type` (mknod), a file
/// type in the mode is named: `S_IFCHR|0600`.
pub fn mode(v: u32, file_type: bool) -> String {
    if file_type {
        if let Some(name) = lookup(u64::from(v & 0o170000), FILE_TYPES) {
            let perm = v & !0o170000;
            let perm = if perm == 0 {
                "000".to_string()
            } else {
                format!("{:0>3}", format!("0{perm:o}"))
            };
            return format!("{name}|{perm}");
        }
    }
    if v == 0 {
        "0".to_string()
    } else {
        format!("0{v:o}")
    }
}

// ---------------------------------------------------------------- fcntl(2)

/// `fcntl` command.
pub fn fcntl_cmd(v: u32) -> String {
    int_enum(
        v,
        &[
            (0, "F_DUPFD"),
            (1, "F_GETFD"),
            (2, "F_SETFD"),
            (3, "F_GETFL"),
            (4, "F_SETFL"),
            (5, "F_GETLK"),
            (6, "F_SETLK"),
            (7, "F_SETLKW"),
            (8, "F_SETOWN"),
            (9, "F_GETOWN"),
            (10, "F_SETSIG"),
            (11, "F_GETSIG"),
            (15, "F_SETOWN_EX"),
            (16, "F_GETOWN_EX"),
            (17, "F_GETOWNER_UIDS"),
            (36, "F_OFD_GETLK"),
            (37, "F_OFD_SETLK"),
            (38, "F_OFD_SETLKW"),
            (1024, "F_SETLEASE"),
            (1025, "F_GETLEASE"),
            (1026, "F_NOTIFY"),
            (1027, "F_DUPFD_QUERY"),
            (1028, "F_CREATED_QUERY"),
            (1029, "F_CANCELLK"),
            (1030, "F_DUPFD_CLOEXEC"),
            (1031, "F_SETPIPE_SZ"),
            (1032, "F_GETPIPE_SZ"),
            (1033, "F_ADD_SEALS"),
            (1034, "F_GET_SEALS"),
            (1035, "F_GET_RW_HINT"),
            (1036, "F_SET_RW_HINT"),
            (1037, "F_GET_FILE_RW_HINT"),
            (1038, "F_SET_FILE_RW_HINT"),
        ],
    )
}

/// The third `fcntl` argument where the command gives it a known meaning;
/// `None` leaves it raw.
pub fn fcntl_arg(cmd: u32, arg: u64) -> Option<String> {
    let int = arg as u32;
    Some(match cmd {
        // F_DUPFD, F_SETOWN, F_SETPIPE_SZ, F_DUPFD_CLOEXEC, F_DUPFD_QUERY
        0 | 8 | 1031 | 1030 | 1027 => (int as i32).to_string(),
        // F_SETFD
        2 => bitset(u64::from(int), &[(1, "FD_CLOEXEC")]),
        // F_SETFL
        4 => open_flags(int),
        // F_SETSIG
        10 => signal(int),
        // F_SETLEASE
        1024 => int_enum(int, &[(0, "F_RDLCK"), (1, "F_WRLCK"), (2, "F_UNLCK")]),
        // F_ADD_SEALS
        1033 => bitset(
            u64::from(int),
            &[
                (1, "F_SEAL_SEAL"),
                (2, "F_SEAL_SHRINK"),
                (4, "F_SEAL_GROW"),
                (8, "F_SEAL_WRITE"),
                (0x10, "F_SEAL_FUTURE_WRITE"),
                (0x20, "F_SEAL_EXEC"),
            ],
        ),
        _ => return None,
    })
}

/// `lseek` whence.
pub fn whence(v: u32) -> String {
    match v {
        0 => "SEEK_SET".to_string(),
        1 => "SEEK_CUR".to_string(),
        2 => "SEEK_END".to_string(),
        3 => "SEEK_DATA".to_string(),
        4 => "SEEK_HOLE".to_string(),
        _ => v.to_string(),
    }
}

// ---------------------------------------------------------------- processes

const CLONE_FLAGS: Names = &[
    (0x100, "CLONE_VM"),
    (0x200, "CLONE_FS"),
    (0x400, "CLONE_FILES"),
    (0x800, "CLONE_SIGHAND"),
    (0x1000, "CLONE_PIDFD"),
    (0x2000, "CLONE_PTRACE"),
    (0x4000, "CLONE_VFORK"),
    (0x8000, "CLONE_PARENT"),
    (0x10000, "CLONE_THREAD"),
    (0x20000, "CLONE_NEWNS"),
    (0x40000, "CLONE_SYSVSEM"),
    (0x80000, "CLONE_SETTLS"),
    (0x100000, "CLONE_PARENT_SETTID"),
    (0x200000, "CLONE_CHILD_CLEARTID"),
    (0x400000, "CLONE_DETACHED"),
    (0x800000, "CLONE_UNTRACED"),
    (0x1000000, "CLONE_CHILD_SETTID"),
    (0x2000000, "CLONE_NEWCGROUP"),
    (0x4000000, "CLONE_NEWUTS"),
    (0x8000000, "CLONE_NEWIPC"),
    (0x10000000, "CLONE_NEWUSER"),
    (0x20000000, "CLONE_NEWPID"),
    (0x40000000, "CLONE_NEWNET"),
    (0x80000000, "CLONE_IO"),
];

/// `clone` flags in bit order. With `exit_signal` (clone itself) the low
/// byte is the signal sent to the parent on exit, shown last (`|SIGCHLD`);
/// otherwise (unshare, setns) bit 0x80 is `CLONE_NEWTIME`.
pub fn clone_flags(v: u64, exit_signal: bool) -> String {
    let mut j = Joined::default();
    if exit_signal {
        let rest = j.bits(v & !0xff, CLONE_FLAGS);
        let sig = (v & 0xff) as u32;
        if sig != 0 {
            j.push(&signal(sig));
        }
        j.finish(rest, "0")
    } else {
        let mut rest = v;
        if rest & 0x80 != 0 {
            j.push("CLONE_NEWTIME");
            rest &= !0x80;
        }
        let rest = j.bits(rest, CLONE_FLAGS);
        j.finish(rest, "0")
    }
}

/// `wait4`/`waitid` options. Bit 2 is `WSTOPPED` for both (it is also
/// `WUNTRACED`): strace 6.1 prints `wait4(6202, ..., WSTOPPED, NULL)` for
/// `wait4(pid, &status, WUNTRACED, NULL)`.
pub fn wait_options(v: u32, _waitid: bool) -> String {
    let mut out = Joined::default();
    let rest = out.bits(
        u64::from(v),
        &[
            (1, "WNOHANG"),
            (2, "WSTOPPED"),
            (4, "WEXITED"),
            (8, "WCONTINUED"),
            (0x0100_0000, "WNOWAIT"),
            (0x2000_0000, "__WNOTHREAD"),
            (0x4000_0000, "__WALL"),
            (0x8000_0000, "__WCLONE"),
        ],
    );
    out.finish(rest, "0")
}

/// `prctl` option.
pub fn prctl_option(v: u32) -> String {
    let names: Names = &[
        (1, "PR_SET_PDEATHSIG"),
        (2, "PR_GET_PDEATHSIG"),
        (3, "PR_GET_DUMPABLE"),
        (4, "PR_SET_DUMPABLE"),
        (5, "PR_GET_UNALIGN"),
        (6, "PR_SET_UNALIGN"),
        (7, "PR_GET_KEEPCAPS"),
        (8, "PR_SET_KEEPCAPS"),
        (9, "PR_GET_FPEMU"),
        (10, "PR_SET_FPEMU"),
        (11, "PR_GET_FPEXC"),
        (12, "PR_SET_FPEXC"),
        (13, "PR_GET_TIMING"),
        (14, "PR_SET_TIMING"),
        (15, "PR_SET_NAME"),
        (16, "PR_GET_NAME"),
        (19, "PR_GET_ENDIAN"),
        (20, "PR_SET_ENDIAN"),
        (21, "PR_GET_SECCOMP"),
        (22, "PR_SET_SECCOMP"),
        (23, "PR_CAPBSET_READ"),
        (24, "PR_CAPBSET_DROP"),
        (25, "PR_GET_TSC"),
        (26, "PR_SET_TSC"),
        (27, "PR_GET_SECUREBITS"),
        (28, "PR_SET_SECUREBITS"),
        (29, "PR_SET_TIMERSLACK"),
        (30, "PR_GET_TIMERSLACK"),
        (31, "PR_TASK_PERF_EVENTS_DISABLE"),
        (32, "PR_TASK_PERF_EVENTS_ENABLE"),
        (33, "PR_MCE_KILL"),
        (34, "PR_MCE_KILL_GET"),
        (35, "PR_SET_MM"),
        (36, "PR_SET_CHILD_SUBREAPER"),
        (37, "PR_GET_CHILD_SUBREAPER"),
        (38, "PR_SET_NO_NEW_PRIVS"),
        (39, "PR_GET_NO_NEW_PRIVS"),
        (40, "PR_GET_TID_ADDRESS"),
        (41, "PR_SET_THP_DISABLE"),
        (42, "PR_GET_THP_DISABLE"),
        (43, "PR_MPX_ENABLE_MANAGEMENT"),
        (44, "PR_MPX_DISABLE_MANAGEMENT"),
        (45, "PR_SET_FP_MODE"),
        (46, "PR_GET_FP_MODE"),
        (47, "PR_CAP_AMBIENT"),
        (50, "PR_SVE_SET_VL"),
        (51, "PR_SVE_GET_VL"),
        (52, "PR_GET_SPECULATION_CTRL"),
        (53, "PR_SET_SPECULATION_CTRL"),
        (54, "PR_PAC_RESET_KEYS"),
        (55, "PR_SET_TAGGED_ADDR_CTRL"),
        (56, "PR_GET_TAGGED_ADDR_CTRL"),
        (57, "PR_SET_IO_FLUSHER"),
        (58, "PR_GET_IO_FLUSHER"),
        (59, "PR_SET_SYSCALL_USER_DISPATCH"),
        (60, "PR_PAC_SET_ENABLED_KEYS"),
        (61, "PR_PAC_GET_ENABLED_KEYS"),
        (62, "PR_SCHED_CORE"),
        (63, "PR_SME_SET_VL"),
        (64, "PR_SME_GET_VL"),
        (65, "PR_SET_MDWE"),
        (66, "PR_GET_MDWE"),
        (67, "PR_SET_MEMORY_MERGE"),
        (68, "PR_GET_MEMORY_MERGE"),
        (0x5356_4d41, "PR_SET_VMA"),
        (0x5961_6d61, "PR_SET_PTRACER"),
    ];
    match lookup(u64::from(v), names) {
        Some(name) => name.to_string(),
        // strace 6.1 (`strace -o o19 ./pr`): `prctl(0x4d2 /* PR_??? */, ...)`.
        None => format!("{v:#x} /* PR_??? */"),
    }
}

// ---------------------------------------------------------------- signals

const SIGNALS: [&str; 31] = [
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// A signal number (a C `int`): `SIGTERM`, `SIGRT_2`, `0`, or the number.
pub fn signal(v: u32) -> String {
    let n = v as i32;
    match n {
        1..=31 => SIGNALS[(n - 1) as usize].to_string(),
        32..=64 => format!("SIGRT_{}", n - 32),
        _ => n.to_string(),
    }
}

/// `rt_sigprocmask` how.
pub fn sigmask_how(v: u32) -> String {
    int_enum(
        v,
        &[(0, "SIG_BLOCK"), (1, "SIG_UNBLOCK"), (2, "SIG_SETMASK")],
    )
}

// ---------------------------------------------------------------- sockets

const FAMILIES: [&str; 46] = [
    "AF_UNSPEC",
    "AF_UNIX",
    "AF_INET",
    "AF_AX25",
    "AF_IPX",
    "AF_APPLETALK",
    "AF_NETROM",
    "AF_BRIDGE",
    "AF_ATMPVC",
    "AF_X25",
    "AF_INET6",
    "AF_ROSE",
    "AF_DECnet",
    "AF_NETBEUI",
    "AF_SECURITY",
    "AF_KEY",
    "AF_NETLINK",
    "AF_PACKET",
    "AF_ASH",
    "AF_ECONET",
    "AF_ATMSVC",
    "AF_RDS",
    "AF_SNA",
    "AF_IRDA",
    "AF_PPPOX",
    "AF_WANPIPE",
    "AF_LLC",
    "AF_IB",
    "AF_MPLS",
    "AF_CAN",
    "AF_TIPC",
    "AF_BLUETOOTH",
    "AF_IUCV",
    "AF_RXRPC",
    "AF_ISDN",
    "AF_PHONET",
    "AF_IEEE802154",
    "AF_CAIF",
    "AF_ALG",
    "AF_NFC",
    "AF_VSOCK",
    "AF_KCM",
    "AF_QIPCRTR",
    "AF_SMC",
    "AF_XDP",
    "AF_MCTP",
];

/// The name of an address family, if it has one.
pub fn family_name(v: u32) -> Option<&'static str> {
    FAMILIES.get(v as usize).copied()
}

/// A socket domain (a C `int`): `AF_INET`, or the number.
pub fn sock_domain(v: u32) -> String {
    match family_name(v) {
        Some(name) => name.to_string(),
        None => (v as i32).to_string(),
    }
}

/// A socket type and its flags: `SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK`.
pub fn sock_type(v: u32) -> String {
    let mut j = Joined::default();
    let ty = v & 0xf;
    j.push(&match ty {
        1 => "SOCK_STREAM".to_string(),
        2 => "SOCK_DGRAM".to_string(),
        3 => "SOCK_RAW".to_string(),
        4 => "SOCK_RDM".to_string(),
        5 => "SOCK_SEQPACKET".to_string(),
        6 => "SOCK_DCCP".to_string(),
        10 => "SOCK_PACKET".to_string(),
        _ => ty.to_string(),
    });
    let rest = j.bits(
        u64::from(v & !0xf),
        &[(0o2000000, "SOCK_CLOEXEC"), (0o4000, "SOCK_NONBLOCK")],
    );
    j.finish(rest, "0")
}

/// `send*`/`recv*` flags.
pub fn msg_flags(v: u32) -> String {
    bitset(
        u64::from(v),
        &[
            (0x1, "MSG_OOB"),
            (0x2, "MSG_PEEK"),
            (0x4, "MSG_DONTROUTE"),
            (0x8, "MSG_CTRUNC"),
            (0x10, "MSG_PROXY"),
            (0x20, "MSG_TRUNC"),
            (0x40, "MSG_DONTWAIT"),
            (0x80, "MSG_EOR"),
            (0x100, "MSG_WAITALL"),
            (0x200, "MSG_FIN"),
            (0x400, "MSG_SYN"),
            (0x800, "MSG_CONFIRM"),
            (0x1000, "MSG_RST"),
            (0x2000, "MSG_ERRQUEUE"),
            (0x4000, "MSG_NOSIGNAL"),
            (0x8000, "MSG_MORE"),
            (0x10000, "MSG_WAITFORONE"),
            (0x40000, "MSG_BATCH"),
            (0x200_0000, "MSG_SOCK_DEVMEM"),
            (0x400_0000, "MSG_ZEROCOPY"),
            (0x2000_0000, "MSG_FASTOPEN"),
            (0x4000_0000, "MSG_CMSG_CLOEXEC"),
        ],
    )
}

/// `shutdown` how.
pub fn shutdown_how(v: u32) -> String {
    int_enum(v, &[(0, "SHUT_RD"), (1, "SHUT_WR"), (2, "SHUT_RDWR")])
}

const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;
const AF_NETLINK: u32 = 16;

/// `IPPROTO_*`, for `AF_INET` and `AF_INET6` sockets.
const IP_PROTOCOLS: Names = &[
    (0, "IPPROTO_IP"),
    (1, "IPPROTO_ICMP"),
    (2, "IPPROTO_IGMP"),
    (4, "IPPROTO_IPIP"),
    (6, "IPPROTO_TCP"),
    (8, "IPPROTO_EGP"),
    (12, "IPPROTO_PUP"),
    (17, "IPPROTO_UDP"),
    (22, "IPPROTO_IDP"),
    (29, "IPPROTO_TP"),
    (33, "IPPROTO_DCCP"),
    (41, "IPPROTO_IPV6"),
    (43, "IPPROTO_ROUTING"),
    (44, "IPPROTO_FRAGMENT"),
    (46, "IPPROTO_RSVP"),
    (47, "IPPROTO_GRE"),
    (50, "IPPROTO_ESP"),
    (51, "IPPROTO_AH"),
    (58, "IPPROTO_ICMPV6"),
    (59, "IPPROTO_NONE"),
    (60, "IPPROTO_DSTOPTS"),
    (92, "IPPROTO_MTP"),
    (94, "IPPROTO_BEETPH"),
    (98, "IPPROTO_ENCAP"),
    (103, "IPPROTO_PIM"),
    (108, "IPPROTO_COMP"),
    (115, "IPPROTO_L2TP"),
    (132, "IPPROTO_SCTP"),
    (135, "IPPROTO_MH"),
    (136, "IPPROTO_UDPLITE"),
    (137, "IPPROTO_MPLS"),
    (143, "IPPROTO_ETHERNET"),
    (255, "IPPROTO_RAW"),
    (262, "IPPROTO_MPTCP"),
];

/// `NETLINK_*` protocols, for `AF_NETLINK` sockets.
const NETLINK_PROTOCOLS: Names = &[
    (0, "NETLINK_ROUTE"),
    (1, "NETLINK_UNUSED"),
    (2, "NETLINK_USERSOCK"),
    (3, "NETLINK_FIREWALL"),
    (4, "NETLINK_SOCK_DIAG"),
    (5, "NETLINK_NFLOG"),
    (6, "NETLINK_XFRM"),
    (7, "NETLINK_SELINUX"),
    (8, "NETLINK_ISCSI"),
    (9, "NETLINK_AUDIT"),
    (10, "NETLINK_FIB_LOOKUP"),
    (11, "NETLINK_CONNECTOR"),
    (12, "NETLINK_NETFILTER"),
    (13, "NETLINK_IP6_FW"),
    (14, "NETLINK_DNRTMSG"),
    (15, "NETLINK_KOBJECT_UEVENT"),
    (16, "NETLINK_GENERIC"),
    (18, "NETLINK_SCSITRANSPORT"),
    (19, "NETLINK_ECRYPTFS"),
    (20, "NETLINK_RDMA"),
    (21, "NETLINK_CRYPTO"),
    (22, "NETLINK_SMC"),
];

/// A `socket`/`socketpair` protocol, named after the address family
/// `domain` (`None` when it is unknown): `IPPROTO_TCP`, `NETLINK_ROUTE`;
/// other families and unknown protocols show the number.
pub fn sock_protocol(domain: Option<u32>, v: u32) -> String {
    let names: Names = match domain {
        Some(AF_INET | AF_INET6) => IP_PROTOCOLS,
        Some(AF_NETLINK) => NETLINK_PROTOCOLS,
        _ => &[],
    };
    int_enum(v, names)
}

const SOL_IP: u32 = 0;
const SOL_SOCKET: u32 = 1;
const SOL_TCP: u32 = 6;
const SOL_UDP: u32 = 17;
const SOL_IPV6: u32 = 41;
const SOL_PACKET: u32 = 263;
const SOL_NETLINK: u32 = 270;

const SOCKET_LEVELS: Names = &[
    (SOL_IP as u64, "SOL_IP"),
    (SOL_SOCKET as u64, "SOL_SOCKET"),
    (SOL_TCP as u64, "SOL_TCP"),
    (SOL_UDP as u64, "SOL_UDP"),
    (SOL_IPV6 as u64, "SOL_IPV6"),
    (58, "SOL_ICMPV6"),
    (132, "SOL_SCTP"),
    (136, "SOL_UDPLITE"),
    (255, "SOL_RAW"),
    (256, "SOL_IPX"),
    (257, "SOL_AX25"),
    (258, "SOL_ATALK"),
    (259, "SOL_NETROM"),
    (260, "SOL_ROSE"),
    (261, "SOL_DECNET"),
    (262, "SOL_X25"),
    (SOL_PACKET as u64, "SOL_PACKET"),
    (264, "SOL_ATM"),
    (265, "SOL_AAL"),
    (266, "SOL_IRDA"),
    (267, "SOL_NETBEUI"),
    (268, "SOL_LLC"),
    (269, "SOL_DCCP"),
    (SOL_NETLINK as u64, "SOL_NETLINK"),
    (271, "SOL_TIPC"),
    (272, "SOL_RXRPC"),
    (273, "SOL_PPPOL2TP"),
    (274, "SOL_BLUETOOTH"),
    (275, "SOL_PNPIPE"),
    (276, "SOL_RDS"),
    (277, "SOL_IUCV"),
    (278, "SOL_CAIF"),
    (279, "SOL_ALG"),
    (280, "SOL_NFC"),
    (281, "SOL_KCM"),
    (282, "SOL_TLS"),
    (283, "SOL_XDP"),
    (284, "SOL_MPTCP"),
    (285, "SOL_MCTP"),
    (286, "SOL_SMC"),
];

/// A `setsockopt`/`getsockopt` level: `SOL_SOCKET`, or the number.
pub fn sock_level(v: u32) -> String {
    int_enum(v, SOCKET_LEVELS)
}

/// `SO_*` (x86_64 values; some architectures differ).
const SO_OPTIONS: Names = &[
    (1, "SO_DEBUG"),
    (2, "SO_REUSEADDR"),
    (3, "SO_TYPE"),
    (4, "SO_ERROR"),
    (5, "SO_DONTROUTE"),
    (6, "SO_BROADCAST"),
    (7, "SO_SNDBUF"),
    (8, "SO_RCVBUF"),
    (9, "SO_KEEPALIVE"),
    (10, "SO_OOBINLINE"),
    (11, "SO_NO_CHECK"),
    (12, "SO_PRIORITY"),
    (13, "SO_LINGER"),
    (14, "SO_BSDCOMPAT"),
    (15, "SO_REUSEPORT"),
    (16, "SO_PASSCRED"),
    (17, "SO_PEERCRED"),
    (18, "SO_RCVLOWAT"),
    (19, "SO_SNDLOWAT"),
    (20, "SO_RCVTIMEO_OLD"),
    (21, "SO_SNDTIMEO_OLD"),
    (22, "SO_SECURITY_AUTHENTICATION"),
    (23, "SO_SECURITY_ENCRYPTION_TRANSPORT"),
    (24, "SO_SECURITY_ENCRYPTION_NETWORK"),
    (25, "SO_BINDTODEVICE"),
    (26, "SO_ATTACH_FILTER"),
    (27, "SO_DETACH_FILTER"),
    (28, "SO_PEERNAME"),
    (29, "SO_TIMESTAMP_OLD"),
    (30, "SO_ACCEPTCONN"),
    (31, "SO_PEERSEC"),
    (32, "SO_SNDBUFFORCE"),
    (33, "SO_RCVBUFFORCE"),
    (34, "SO_PASSSEC"),
    (35, "SO_TIMESTAMPNS_OLD"),
    (36, "SO_MARK"),
    (37, "SO_TIMESTAMPING_OLD"),
    (38, "SO_PROTOCOL"),
    (39, "SO_DOMAIN"),
    (40, "SO_RXQ_OVFL"),
    (41, "SO_WIFI_STATUS"),
    (42, "SO_PEEK_OFF"),
    (43, "SO_NOFCS"),
    (44, "SO_LOCK_FILTER"),
    (45, "SO_SELECT_ERR_QUEUE"),
    (46, "SO_BUSY_POLL"),
    (47, "SO_MAX_PACING_RATE"),
    (48, "SO_BPF_EXTENSIONS"),
    (49, "SO_INCOMING_CPU"),
    (50, "SO_ATTACH_BPF"),
    (51, "SO_ATTACH_REUSEPORT_CBPF"),
    (52, "SO_ATTACH_REUSEPORT_EBPF"),
    (53, "SO_CNX_ADVICE"),
    (55, "SO_MEMINFO"),
    (56, "SO_INCOMING_NAPI_ID"),
    (57, "SO_COOKIE"),
    (59, "SO_PEERGROUPS"),
    (60, "SO_ZEROCOPY"),
    (61, "SO_TXTIME"),
    (62, "SO_BINDTOIFINDEX"),
    (63, "SO_TIMESTAMP_NEW"),
    (64, "SO_TIMESTAMPNS_NEW"),
    (65, "SO_TIMESTAMPING_NEW"),
    (66, "SO_RCVTIMEO_NEW"),
    (67, "SO_SNDTIMEO_NEW"),
    (68, "SO_DETACH_REUSEPORT_BPF"),
    (69, "SO_PREFER_BUSY_POLL"),
    (70, "SO_BUSY_POLL_BUDGET"),
    (71, "SO_NETNS_COOKIE"),
    (72, "SO_BUF_LOCK"),
    (73, "SO_RESERVE_MEM"),
    (74, "SO_TXREHASH"),
    (75, "SO_RCVMARK"),
    (76, "SO_PASSPIDFD"),
    (77, "SO_PEERPIDFD"),
    (83, "SO_PASSRIGHTS"),
];

/// `IP_*`, level `SOL_IP`.
const IP_OPTIONS: Names = &[
    (1, "IP_TOS"),
    (2, "IP_TTL"),
    (3, "IP_HDRINCL"),
    (4, "IP_OPTIONS"),
    (5, "IP_ROUTER_ALERT"),
    (6, "IP_RECVOPTS"),
    (7, "IP_RETOPTS"),
    (8, "IP_PKTINFO"),
    (9, "IP_PKTOPTIONS"),
    (10, "IP_MTU_DISCOVER"),
    (11, "IP_RECVERR"),
    (12, "IP_RECVTTL"),
    (13, "IP_RECVTOS"),
    (14, "IP_MTU"),
    (15, "IP_FREEBIND"),
    (16, "IP_IPSEC_POLICY"),
    (17, "IP_XFRM_POLICY"),
    (18, "IP_PASSSEC"),
    (19, "IP_TRANSPARENT"),
    (20, "IP_ORIGDSTADDR"),
    (21, "IP_MINTTL"),
    (22, "IP_NODEFRAG"),
    (23, "IP_CHECKSUM"),
    (24, "IP_BIND_ADDRESS_NO_PORT"),
    (25, "IP_RECVFRAGSIZE"),
    (26, "IP_RECVERR_RFC4884"),
    (32, "IP_MULTICAST_IF"),
    (33, "IP_MULTICAST_TTL"),
    (34, "IP_MULTICAST_LOOP"),
    (35, "IP_ADD_MEMBERSHIP"),
    (36, "IP_DROP_MEMBERSHIP"),
    (37, "IP_UNBLOCK_SOURCE"),
    (38, "IP_BLOCK_SOURCE"),
    (39, "IP_ADD_SOURCE_MEMBERSHIP"),
    (40, "IP_DROP_SOURCE_MEMBERSHIP"),
    (41, "IP_MSFILTER"),
    (42, "MCAST_JOIN_GROUP"),
    (43, "MCAST_BLOCK_SOURCE"),
    (44, "MCAST_UNBLOCK_SOURCE"),
    (45, "MCAST_LEAVE_GROUP"),
    (46, "MCAST_JOIN_SOURCE_GROUP"),
    (47, "MCAST_LEAVE_SOURCE_GROUP"),
    (48, "MCAST_MSFILTER"),
    (49, "IP_MULTICAST_ALL"),
    (50, "IP_UNICAST_IF"),
    (51, "IP_LOCAL_PORT_RANGE"),
    (52, "IP_PROTOCOL"),
];

/// `IPV6_*`, level `SOL_IPV6`.
const IPV6_OPTIONS: Names = &[
    (1, "IPV6_ADDRFORM"),
    (2, "IPV6_2292PKTINFO"),
    (3, "IPV6_2292HOPOPTS"),
    (4, "IPV6_2292DSTOPTS"),
    (5, "IPV6_2292RTHDR"),
    (6, "IPV6_2292PKTOPTIONS"),
    (7, "IPV6_CHECKSUM"),
    (8, "IPV6_2292HOPLIMIT"),
    (9, "IPV6_NEXTHOP"),
    (10, "IPV6_AUTHHDR"),
    (11, "IPV6_FLOWINFO"),
    (16, "IPV6_UNICAST_HOPS"),
    (17, "IPV6_MULTICAST_IF"),
    (18, "IPV6_MULTICAST_HOPS"),
    (19, "IPV6_MULTICAST_LOOP"),
    (20, "IPV6_ADD_MEMBERSHIP"),
    (21, "IPV6_DROP_MEMBERSHIP"),
    (22, "IPV6_ROUTER_ALERT"),
    (23, "IPV6_MTU_DISCOVER"),
    (24, "IPV6_MTU"),
    (25, "IPV6_RECVERR"),
    (26, "IPV6_V6ONLY"),
    (27, "IPV6_JOIN_ANYCAST"),
    (28, "IPV6_LEAVE_ANYCAST"),
    (29, "IPV6_MULTICAST_ALL"),
    (30, "IPV6_ROUTER_ALERT_ISOLATE"),
    (31, "IPV6_RECVERR_RFC4884"),
    (32, "IPV6_FLOWLABEL_MGR"),
    (33, "IPV6_FLOWINFO_SEND"),
    (34, "IPV6_IPSEC_POLICY"),
    (35, "IPV6_XFRM_POLICY"),
    (36, "IPV6_HDRINCL"),
    (42, "MCAST_JOIN_GROUP"),
    (43, "MCAST_BLOCK_SOURCE"),
    (44, "MCAST_UNBLOCK_SOURCE"),
    (45, "MCAST_LEAVE_GROUP"),
    (46, "MCAST_JOIN_SOURCE_GROUP"),
    (47, "MCAST_LEAVE_SOURCE_GROUP"),
    (48, "MCAST_MSFILTER"),
    (49, "IPV6_RECVPKTINFO"),
    (50, "IPV6_PKTINFO"),
    (51, "IPV6_RECVHOPLIMIT"),
    (52, "IPV6_HOPLIMIT"),
    (53, "IPV6_RECVHOPOPTS"),
    (54, "IPV6_HOPOPTS"),
    (55, "IPV6_RTHDRDSTOPTS"),
    (56, "IPV6_RECVRTHDR"),
    (57, "IPV6_RTHDR"),
    (58, "IPV6_RECVDSTOPTS"),
    (59, "IPV6_DSTOPTS"),
    (60, "IPV6_RECVPATHMTU"),
    (61, "IPV6_PATHMTU"),
    (62, "IPV6_DONTFRAG"),
    (63, "IPV6_USE_MIN_MTU"),
    (66, "IPV6_RECVTCLASS"),
    (67, "IPV6_TCLASS"),
    (70, "IPV6_AUTOFLOWLABEL"),
    (72, "IPV6_ADDR_PREFERENCES"),
    (73, "IPV6_MINHOPCOUNT"),
    (74, "IPV6_ORIGDSTADDR"),
    (75, "IPV6_TRANSPARENT"),
    (76, "IPV6_UNICAST_IF"),
    (77, "IPV6_RECVFRAGSIZE"),
    (78, "IPV6_FREEBIND"),
];

/// `TCP_*`, level `SOL_TCP`.
const TCP_OPTIONS: Names = &[
    (1, "TCP_NODELAY"),
    (2, "TCP_MAXSEG"),
    (3, "TCP_CORK"),
    (4, "TCP_KEEPIDLE"),
    (5, "TCP_KEEPINTVL"),
    (6, "TCP_KEEPCNT"),
    (7, "TCP_SYNCNT"),
    (8, "TCP_LINGER2"),
    (9, "TCP_DEFER_ACCEPT"),
    (10, "TCP_WINDOW_CLAMP"),
    (11, "TCP_INFO"),
    (12, "TCP_QUICKACK"),
    (13, "TCP_CONGESTION"),
    (14, "TCP_MD5SIG"),
    (15, "TCP_COOKIE_TRANSACTIONS"),
    (16, "TCP_THIN_LINEAR_TIMEOUTS"),
    (17, "TCP_THIN_DUPACK"),
    (18, "TCP_USER_TIMEOUT"),
    (19, "TCP_REPAIR"),
    (20, "TCP_REPAIR_QUEUE"),
    (21, "TCP_QUEUE_SEQ"),
    (22, "TCP_REPAIR_OPTIONS"),
    (23, "TCP_FASTOPEN"),
    (24, "TCP_TIMESTAMP"),
    (25, "TCP_NOTSENT_LOWAT"),
    (26, "TCP_CC_INFO"),
    (27, "TCP_SAVE_SYN"),
    (28, "TCP_SAVED_SYN"),
    (29, "TCP_REPAIR_WINDOW"),
    (30, "TCP_FASTOPEN_CONNECT"),
    (31, "TCP_ULP"),
    (32, "TCP_MD5SIG_EXT"),
    (33, "TCP_FASTOPEN_KEY"),
    (34, "TCP_FASTOPEN_NO_COOKIE"),
    (35, "TCP_ZEROCOPY_RECEIVE"),
    (36, "TCP_INQ"),
    (37, "TCP_TX_DELAY"),
];

/// `UDP_*`, level `SOL_UDP`.
const UDP_OPTIONS: Names = &[
    (1, "UDP_CORK"),
    (100, "UDP_ENCAP"),
    (101, "UDP_NO_CHECK6_TX"),
    (102, "UDP_NO_CHECK6_RX"),
    (103, "UDP_SEGMENT"),
    (104, "UDP_GRO"),
];

/// `NETLINK_*` options, level `SOL_NETLINK`.
const NETLINK_OPTIONS: Names = &[
    (1, "NETLINK_ADD_MEMBERSHIP"),
    (2, "NETLINK_DROP_MEMBERSHIP"),
    (3, "NETLINK_PKTINFO"),
    (4, "NETLINK_BROADCAST_ERROR"),
    (5, "NETLINK_NO_ENOBUFS"),
    (6, "NETLINK_RX_RING"),
    (7, "NETLINK_TX_RING"),
    (8, "NETLINK_LISTEN_ALL_NSID"),
    (9, "NETLINK_LIST_MEMBERSHIPS"),
    (10, "NETLINK_CAP_ACK"),
    (11, "NETLINK_EXT_ACK"),
    (12, "NETLINK_GET_STRICT_CHK"),
];

/// `PACKET_*` options, level `SOL_PACKET`.
const PACKET_OPTIONS: Names = &[
    (1, "PACKET_ADD_MEMBERSHIP"),
    (2, "PACKET_DROP_MEMBERSHIP"),
    (3, "PACKET_RECV_OUTPUT"),
    (5, "PACKET_RX_RING"),
    (6, "PACKET_STATISTICS"),
    (7, "PACKET_COPY_THRESH"),
    (8, "PACKET_AUXDATA"),
    (9, "PACKET_ORIGDEV"),
    (10, "PACKET_VERSION"),
    (11, "PACKET_HDRLEN"),
    (12, "PACKET_RESERVE"),
    (13, "PACKET_TX_RING"),
    (14, "PACKET_LOSS"),
    (15, "PACKET_VNET_HDR"),
    (16, "PACKET_TX_TIMESTAMP"),
    (17, "PACKET_TIMESTAMP"),
    (18, "PACKET_FANOUT"),
    (19, "PACKET_TX_HAS_OFF"),
    (20, "PACKET_QDISC_BYPASS"),
    (21, "PACKET_ROLLOVER_STATS"),
    (22, "PACKET_FANOUT_DATA"),
    (23, "PACKET_IGNORE_OUTGOING"),
    (24, "PACKET_VNET_HDR_SZ"),
];

/// A socket option name, named after its `level` (`None` when the level is
/// unknown): `SO_REUSEADDR`, `TCP_NODELAY`; other levels and unknown
/// options show the number.
pub fn sockopt_name(level: Option<u32>, v: u32) -> String {
    let names: Names = match level {
        Some(SOL_SOCKET) => SO_OPTIONS,
        Some(SOL_IP) => IP_OPTIONS,
        Some(SOL_IPV6) => IPV6_OPTIONS,
        Some(SOL_TCP) => TCP_OPTIONS,
        Some(SOL_UDP) => UDP_OPTIONS,
        Some(SOL_NETLINK) => NETLINK_OPTIONS,
        Some(SOL_PACKET) => PACKET_OPTIONS,
        _ => &[],
    };
    int_enum(v, names)
}

// ---------------------------------------------------------------- ioctl(2)

/// Well-known `ioctl` requests (x86_64 values), sorted by value. strace
/// knows thousands; these are the ones containers commonly issue.
const IOCTL_REQUESTS: Names = &[
    (0x1, "FIBMAP"),
    (0x2, "FIGETBSZ"),
    (0x125d, "BLKROSET"),
    (0x125e, "BLKROGET"),
    (0x125f, "BLKRRPART"),
    (0x1260, "BLKGETSIZE"),
    (0x1261, "BLKFLSBUF"),
    (0x1262, "BLKRASET"),
    (0x1263, "BLKRAGET"),
    (0x1268, "BLKSSZGET"),
    (0x1277, "BLKDISCARD"),
    (0x1278, "BLKIOMIN"),
    (0x1279, "BLKIOOPT"),
    (0x127a, "BLKALIGNOFF"),
    (0x127b, "BLKPBSZGET"),
    (0x127c, "BLKDISCARDZEROES"),
    (0x127d, "BLKSECDISCARD"),
    (0x127e, "BLKROTATIONAL"),
    (0x127f, "BLKZEROOUT"),
    (0x4b33, "KDGKBTYPE"),
    (0x4b3a, "KDSETMODE"),
    (0x4b3b, "KDGETMODE"),
    (0x4b44, "KDGKBMODE"),
    (0x4b45, "KDSKBMODE"),
    (0x4c00, "LOOP_SET_FD"),
    (0x4c01, "LOOP_CLR_FD"),
    (0x4c02, "LOOP_SET_STATUS"),
    (0x4c03, "LOOP_GET_STATUS"),
    (0x4c04, "LOOP_SET_STATUS64"),
    (0x4c05, "LOOP_GET_STATUS64"),
    (0x4c06, "LOOP_CHANGE_FD"),
    (0x4c07, "LOOP_SET_CAPACITY"),
    (0x4c08, "LOOP_SET_DIRECT_IO"),
    (0x4c09, "LOOP_SET_BLOCK_SIZE"),
    (0x4c0a, "LOOP_CONFIGURE"),
    (0x4c80, "LOOP_CTL_ADD"),
    (0x4c81, "LOOP_CTL_REMOVE"),
    (0x4c82, "LOOP_CTL_GET_FREE"),
    (0x5204, "RNDZAPENTCNT"),
    (0x5206, "RNDCLEARPOOL"),
    (0x5207, "RNDRESEEDCRNG"),
    (0x5401, "TCGETS"),
    (0x5402, "TCSETS"),
    (0x5403, "TCSETSW"),
    (0x5404, "TCSETSF"),
    (0x5405, "TCGETA"),
    (0x5406, "TCSETA"),
    (0x5407, "TCSETAW"),
    (0x5408, "TCSETAF"),
    (0x5409, "TCSBRK"),
    (0x540a, "TCXONC"),
    (0x540b, "TCFLSH"),
    (0x540c, "TIOCEXCL"),
    (0x540d, "TIOCNXCL"),
    (0x540e, "TIOCSCTTY"),
    (0x540f, "TIOCGPGRP"),
    (0x5410, "TIOCSPGRP"),
    (0x5411, "TIOCOUTQ"),
    (0x5412, "TIOCSTI"),
    (0x5413, "TIOCGWINSZ"),
    (0x5414, "TIOCSWINSZ"),
    (0x5415, "TIOCMGET"),
    (0x5416, "TIOCMBIS"),
    (0x5417, "TIOCMBIC"),
    (0x5418, "TIOCMSET"),
    (0x5419, "TIOCGSOFTCAR"),
    (0x541a, "TIOCSSOFTCAR"),
    (0x541b, "FIONREAD"),
    (0x541c, "TIOCLINUX"),
    (0x541d, "TIOCCONS"),
    (0x541e, "TIOCGSERIAL"),
    (0x541f, "TIOCSSERIAL"),
    (0x5420, "TIOCPKT"),
    (0x5421, "FIONBIO"),
    (0x5422, "TIOCNOTTY"),
    (0x5423, "TIOCSETD"),
    (0x5424, "TIOCGETD"),
    (0x5425, "TCSBRKP"),
    (0x5427, "TIOCSBRK"),
    (0x5428, "TIOCCBRK"),
    (0x5429, "TIOCGSID"),
    (0x542e, "TIOCGRS485"),
    (0x542f, "TIOCSRS485"),
    (0x5432, "TCGETX"),
    (0x5433, "TCSETX"),
    (0x5434, "TCSETXF"),
    (0x5435, "TCSETXW"),
    (0x5437, "TIOCVHANGUP"),
    (0x5441, "TIOCGPTPEER"),
    (0x5450, "FIONCLEX"),
    (0x5451, "FIOCLEX"),
    (0x5452, "FIOASYNC"),
    (0x5453, "TIOCSERCONFIG"),
    (0x5454, "TIOCSERGWILD"),
    (0x5455, "TIOCSERSWILD"),
    (0x5456, "TIOCGLCKTRMIOS"),
    (0x5457, "TIOCSLCKTRMIOS"),
    (0x5458, "TIOCSERGSTRUCT"),
    (0x5459, "TIOCSERGETLSR"),
    (0x545a, "TIOCSERGETMULTI"),
    (0x545b, "TIOCSERSETMULTI"),
    (0x545c, "TIOCMIWAIT"),
    (0x545d, "TIOCGICOUNT"),
    (0x5460, "FIOQSIZE"),
    (0x5600, "VT_OPENQRY"),
    (0x5601, "VT_GETMODE"),
    (0x5602, "VT_SETMODE"),
    (0x5603, "VT_GETSTATE"),
    (0x5606, "VT_ACTIVATE"),
    (0x5607, "VT_WAITACTIVE"),
    (0x8901, "FIOSETOWN"),
    (0x8902, "SIOCSPGRP"),
    (0x8903, "FIOGETOWN"),
    (0x8904, "SIOCGPGRP"),
    (0x8905, "SIOCATMARK"),
    (0x8906, "SIOCGSTAMP_OLD"),
    (0x8907, "SIOCGSTAMPNS_OLD"),
    (0x890b, "SIOCADDRT"),
    (0x890c, "SIOCDELRT"),
    (0x890d, "SIOCRTMSG"),
    (0x8910, "SIOCGIFNAME"),
    (0x8911, "SIOCSIFLINK"),
    (0x8912, "SIOCGIFCONF"),
    (0x8913, "SIOCGIFFLAGS"),
    (0x8914, "SIOCSIFFLAGS"),
    (0x8915, "SIOCGIFADDR"),
    (0x8916, "SIOCSIFADDR"),
    (0x8917, "SIOCGIFDSTADDR"),
    (0x8918, "SIOCSIFDSTADDR"),
    (0x8919, "SIOCGIFBRDADDR"),
    (0x891a, "SIOCSIFBRDADDR"),
    (0x891b, "SIOCGIFNETMASK"),
    (0x891c, "SIOCSIFNETMASK"),
    (0x891d, "SIOCGIFMETRIC"),
    (0x891e, "SIOCSIFMETRIC"),
    (0x891f, "SIOCGIFMEM"),
    (0x8920, "SIOCSIFMEM"),
    (0x8921, "SIOCGIFMTU"),
    (0x8922, "SIOCSIFMTU"),
    (0x8923, "SIOCSIFNAME"),
    (0x8924, "SIOCSIFHWADDR"),
    (0x8925, "SIOCGIFENCAP"),
    (0x8926, "SIOCSIFENCAP"),
    (0x8927, "SIOCGIFHWADDR"),
    (0x8929, "SIOCGIFSLAVE"),
    (0x8930, "SIOCSIFSLAVE"),
    (0x8931, "SIOCADDMULTI"),
    (0x8932, "SIOCDELMULTI"),
    (0x8933, "SIOCGIFINDEX"),
    (0x8934, "SIOCSIFPFLAGS"),
    (0x8935, "SIOCGIFPFLAGS"),
    (0x8936, "SIOCDIFADDR"),
    (0x8937, "SIOCSIFHWBROADCAST"),
    (0x8938, "SIOCGIFCOUNT"),
    (0x8940, "SIOCGIFBR"),
    (0x8941, "SIOCSIFBR"),
    (0x8942, "SIOCGIFTXQLEN"),
    (0x8943, "SIOCSIFTXQLEN"),
    (0x8946, "SIOCETHTOOL"),
    (0x8947, "SIOCGMIIPHY"),
    (0x8948, "SIOCGMIIREG"),
    (0x8949, "SIOCSMIIREG"),
    (0x894a, "SIOCWANDEV"),
    (0x894b, "SIOCOUTQNSD"),
    (0x894c, "SIOCGSKNS"),
    (0x8953, "SIOCDARP"),
    (0x8954, "SIOCGARP"),
    (0x8955, "SIOCSARP"),
    (0x8960, "SIOCDRARP"),
    (0x8961, "SIOCGRARP"),
    (0x8962, "SIOCSRARP"),
    (0x8970, "SIOCGIFMAP"),
    (0x8971, "SIOCSIFMAP"),
    (0x8980, "SIOCADDDLCI"),
    (0x8981, "SIOCDELDLCI"),
    (0x8982, "SIOCGIFVLAN"),
    (0x8983, "SIOCSIFVLAN"),
    (0x8990, "SIOCBONDENSLAVE"),
    (0x8991, "SIOCBONDRELEASE"),
    (0x8992, "SIOCBONDSETHWADDR"),
    (0x8993, "SIOCBONDSLAVEINFOQUERY"),
    (0x8994, "SIOCBONDINFOQUERY"),
    (0x8995, "SIOCBONDCHANGEACTIVE"),
    (0x89a0, "SIOCBRADDBR"),
    (0x89a1, "SIOCBRDELBR"),
    (0x89a2, "SIOCBRADDIF"),
    (0x89a3, "SIOCBRDELIF"),
    (0x89b0, "SIOCSHWTSTAMP"),
    (0x89b1, "SIOCGHWTSTAMP"),
    (0xb701, "NS_GET_USERNS"),
    (0xb702, "NS_GET_PARENT"),
    (0xb703, "NS_GET_NSTYPE"),
    (0xb704, "NS_GET_OWNER_UID"),
    (0x4004_5201, "RNDADDTOENTCNT"),
    (0x4004_5431, "TIOCSPTLCK"),
    (0x4004_5436, "TIOCSIG"),
    (0x4004_54ca, "TUNSETIFF"),
    (0x4004_54cb, "TUNSETPERSIST"),
    (0x4004_54cc, "TUNSETOWNER"),
    (0x4004_54ce, "TUNSETGROUP"),
    (0x4004_54d0, "TUNSETOFFLOAD"),
    (0x4004_54d8, "TUNSETVNETHDRSZ"),
    (0x4004_54d9, "TUNSETQUEUE"),
    (0x4004_9409, "FICLONE"),
    (0x4008_1271, "BLKBSZSET"),
    (0x4008_2102, "SECCOMP_IOCTL_NOTIF_ID_VALID"),
    (0x4008_5203, "RNDADDENTROPY"),
    (0x4008_6602, "FS_IOC_SETFLAGS"),
    (0x4008_7602, "FS_IOC_SETVERSION"),
    (0x4018_2103, "SECCOMP_IOCTL_NOTIF_ADDFD"),
    (0x401c_5820, "FS_IOC_FSSETXATTR"),
    (0x4020_940d, "FICLONERANGE"),
    (0x402c_542b, "TCSETS2"),
    (0x402c_542c, "TCSETSW2"),
    (0x402c_542d, "TCSETSF2"),
    (0x4100_9432, "FS_IOC_SETFSLABEL"),
    (0x8004_5200, "RNDGETENTCNT"),
    (0x8004_5430, "TIOCGPTN"),
    (0x8004_5432, "TIOCGDEV"),
    (0x8004_5438, "TIOCGPKT"),
    (0x8004_5439, "TIOCGPTLCK"),
    (0x8004_5440, "TIOCGEXCL"),
    (0x8004_54cf, "TUNGETFEATURES"),
    (0x8004_54d2, "TUNGETIFF"),
    (0x8008_1270, "BLKBSZGET"),
    (0x8008_1272, "BLKGETSIZE64"),
    (0x8008_5202, "RNDGETPOOL"),
    (0x8008_6601, "FS_IOC_GETFLAGS"),
    (0x8008_7601, "FS_IOC_GETVERSION"),
    (0x8010_aa01, "UFFDIO_UNREGISTER"),
    (0x8010_aa02, "UFFDIO_WAKE"),
    (0x801c_581f, "FS_IOC_FSGETXATTR"),
    (0x802c_542a, "TCGETS2"),
    (0x8100_9431, "FS_IOC_GETFSLABEL"),
    (0xc004_5877, "FIFREEZE"),
    (0xc004_5878, "FITHAW"),
    (0xc018_2101, "SECCOMP_IOCTL_NOTIF_SEND"),
    (0xc018_5879, "FITRIM"),
    (0xc018_9436, "FIDEDUPERANGE"),
    (0xc018_aa3f, "UFFDIO_API"),
    (0xc020_660b, "FS_IOC_FIEMAP"),
    (0xc020_aa00, "UFFDIO_REGISTER"),
    (0xc020_aa04, "UFFDIO_ZEROPAGE"),
    (0xc028_aa03, "UFFDIO_COPY"),
    (0xc050_2100, "SECCOMP_IOCTL_NOTIF_RECV"),
];

/// An `ioctl` request (the kernel reads an `unsigned int`): `TCGETS`, or
/// hex for requests without a name here.
pub fn ioctl_request(v: u32) -> String {
    let v = u64::from(v);
    match IOCTL_REQUESTS.binary_search_by_key(&v, |&(n, _)| n) {
        Ok(i) => IOCTL_REQUESTS[i].1.to_string(),
        Err(_) if v == 0 => "0".to_string(),
        Err(_) => format!("{v:#x}"),
    }
}

// ---------------------------------------------------------------- memory

/// `mmap`/`mprotect` protection.
pub fn prot_flags(v: u64) -> String {
    let mut j = Joined::default();
    let rest = j.bits(
        v,
        &[
            (0x1, "PROT_READ"),
            (0x2, "PROT_WRITE"),
            (0x4, "PROT_EXEC"),
            (0x8, "PROT_SEM"),
            (0x0100_0000, "PROT_GROWSDOWN"),
            (0x0200_0000, "PROT_GROWSUP"),
        ],
    );
    j.finish(rest, "PROT_NONE")
}

const MAP_HUGETLB: u64 = 0x40000;
const MAP_HUGE_SHIFT: u32 = 26;
const MAP_HUGE_MASK: u64 = 0x3f;

/// `mmap` flags: the mapping type, then the flags.
pub fn map_flags(v: u64) -> String {
    let mut j = Joined::default();
    let mut rest = v;
    let ty = match v & 0xf {
        1 => Some("MAP_SHARED"),
        2 => Some("MAP_PRIVATE"),
        3 => Some("MAP_SHARED_VALIDATE"),
        8 => Some("MAP_DROPPABLE"),
        _ => None,
    };
    if let Some(ty) = ty {
        j.push(ty);
        rest &= !0xf;
    }
    let huge = (v >> MAP_HUGE_SHIFT) & MAP_HUGE_MASK;
    let huge_name = if v & MAP_HUGETLB != 0 && huge != 0 {
        let unit = match huge {
            10..=19 => Some((huge - 10, "KB")),
            20..=29 => Some((huge - 20, "MB")),
            30..=39 => Some((huge - 30, "GB")),
            _ => None,
        };
        unit.map(|(shift, unit)| format!("MAP_HUGE_{}{unit}", 1u64 << shift))
    } else {
        None
    };
    if huge_name.is_some() {
        rest &= !(MAP_HUGE_MASK << MAP_HUGE_SHIFT);
    }
    rest = j.bits(
        rest,
        &[
            (0x10, "MAP_FIXED"),
            (0x20, "MAP_ANONYMOUS"),
            (0x40, "MAP_32BIT"),
            (0x100, "MAP_GROWSDOWN"),
            (0x800, "MAP_DENYWRITE"),
            (0x1000, "MAP_EXECUTABLE"),
            (0x2000, "MAP_LOCKED"),
            (0x4000, "MAP_NORESERVE"),
            (0x8000, "MAP_POPULATE"),
            (0x10000, "MAP_NONBLOCK"),
            (0x20000, "MAP_STACK"),
            (MAP_HUGETLB, "MAP_HUGETLB"),
            (0x80000, "MAP_SYNC"),
            (0x100000, "MAP_FIXED_NOREPLACE"),
            (0x400_0000, "MAP_UNINITIALIZED"),
        ],
    );
    if let Some(name) = huge_name {
        j.push(&name);
    }
    j.finish(rest, "0")
}

/// `madvise` advice.
pub fn madvise_advice(v: u32) -> String {
    int_enum(
        v,
        &[
            (0, "MADV_NORMAL"),
            (1, "MADV_RANDOM"),
            (2, "MADV_SEQUENTIAL"),
            (3, "MADV_WILLNEED"),
            (4, "MADV_DONTNEED"),
            (8, "MADV_FREE"),
            (9, "MADV_REMOVE"),
            (10, "MADV_DONTFORK"),
            (11, "MADV_DOFORK"),
            (12, "MADV_MERGEABLE"),
            (13, "MADV_UNMERGEABLE"),
            (14, "MADV_HUGEPAGE"),
            (15, "MADV_NOHUGEPAGE"),
            (16, "MADV_DONTDUMP"),
            (17, "MADV_DODUMP"),
            (18, "MADV_WIPEONFORK"),
            (19, "MADV_KEEPONFORK"),
            (20, "MADV_COLD"),
            (21, "MADV_PAGEOUT"),
            (22, "MADV_POPULATE_READ"),
            (23, "MADV_POPULATE_WRITE"),
            (24, "MADV_DONTNEED_LOCKED"),
            (25, "MADV_COLLAPSE"),
            (100, "MADV_HWPOISON"),
            (101, "MADV_SOFT_OFFLINE"),
            (102, "MADV_GUARD_INSTALL"),
            (103, "MADV_GUARD_REMOVE"),
        ],
    )
}

// ---------------------------------------------------------------- time, futex

/// `clockid_t`: `CLOCK_MONOTONIC`, or the (possibly negative, i.e. a
/// process or thread CPU clock) number.
pub fn clock_id(v: u32) -> String {
    int_enum(
        v,
        &[
            (0, "CLOCK_REALTIME"),
            (1, "CLOCK_MONOTONIC"),
            (2, "CLOCK_PROCESS_CPUTIME_ID"),
            (3, "CLOCK_THREAD_CPUTIME_ID"),
            (4, "CLOCK_MONOTONIC_RAW"),
            (5, "CLOCK_REALTIME_COARSE"),
            (6, "CLOCK_MONOTONIC_COARSE"),
            (7, "CLOCK_BOOTTIME"),
            (8, "CLOCK_REALTIME_ALARM"),
            (9, "CLOCK_BOOTTIME_ALARM"),
            (11, "CLOCK_TAI"),
        ],
    )
}

const FUTEX_PRIVATE_FLAG: u32 = 128;
const FUTEX_CLOCK_REALTIME: u32 = 256;

/// `futex` operation: `FUTEX_WAIT_PRIVATE`, `FUTEX_CLOCK_REALTIME|FUTEX_WAIT_BITSET`.
pub fn futex_op(v: u32) -> String {
    let cmd = v & 0x7f;
    let name = match cmd {
        0 => Some("FUTEX_WAIT"),
        1 => Some("FUTEX_WAKE"),
        2 => Some("FUTEX_FD"),
        3 => Some("FUTEX_REQUEUE"),
        4 => Some("FUTEX_CMP_REQUEUE"),
        5 => Some("FUTEX_WAKE_OP"),
        6 => Some("FUTEX_LOCK_PI"),
        7 => Some("FUTEX_UNLOCK_PI"),
        8 => Some("FUTEX_TRYLOCK_PI"),
        9 => Some("FUTEX_WAIT_BITSET"),
        10 => Some("FUTEX_WAKE_BITSET"),
        11 => Some("FUTEX_WAIT_REQUEUE_PI"),
        12 => Some("FUTEX_CMP_REQUEUE_PI"),
        13 => Some("FUTEX_LOCK_PI2"),
        _ => None,
    };
    // strace 6.1 (`strace -o o17 ./fx`):
    // `FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME`, `0x63 /* FUTEX_??? */`.
    let mut j = Joined::default();
    let private = v & FUTEX_PRIVATE_FLAG != 0;
    match name {
        Some(name) if private => j.push(&format!("{name}_PRIVATE")),
        Some(name) => j.push(name),
        None => {
            j.push(&format!("{cmd:#x} /* FUTEX_??? */"));
            if private {
                j.push("FUTEX_PRIVATE_FLAG");
            }
        }
    }
    if v & FUTEX_CLOCK_REALTIME != 0 {
        j.push("FUTEX_CLOCK_REALTIME");
    }
    let rest = u64::from(v & !(0x7f | FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME));
    j.finish(rest, "0")
}

// ---------------------------------------------------------------- assorted

/// `arch_prctl` code: `ARCH_SET_FS`, or hex.
pub fn arch_prctl_code(v: u32) -> String {
    match lookup(
        u64::from(v),
        &[
            (0x1001, "ARCH_SET_GS"),
            (0x1002, "ARCH_SET_FS"),
            (0x1003, "ARCH_GET_FS"),
            (0x1004, "ARCH_GET_GS"),
            (0x1011, "ARCH_GET_CPUID"),
            (0x1012, "ARCH_SET_CPUID"),
            (0x1021, "ARCH_GET_XCOMP_SUPP"),
            (0x1022, "ARCH_GET_XCOMP_PERM"),
            (0x1023, "ARCH_REQ_XCOMP_PERM"),
            (0x1024, "ARCH_GET_XCOMP_GUEST_PERM"),
            (0x1025, "ARCH_REQ_XCOMP_GUEST_PERM"),
            (0x2001, "ARCH_MAP_VDSO_X32"),
            (0x2002, "ARCH_MAP_VDSO_32"),
            (0x2003, "ARCH_MAP_VDSO_64"),
        ],
    ) {
        Some(name) => name.to_string(),
        None => format!("{v:#x} /* ARCH_??? */"),
    }
}

/// A resource limit: `RLIMIT_STACK`, or the number.
pub fn rlimit_resource(v: u32) -> String {
    const NAMES: [&str; 16] = [
        "RLIMIT_CPU",
        "RLIMIT_FSIZE",
        "RLIMIT_DATA",
        "RLIMIT_STACK",
        "RLIMIT_CORE",
        "RLIMIT_RSS",
        "RLIMIT_NPROC",
        "RLIMIT_NOFILE",
        "RLIMIT_MEMLOCK",
        "RLIMIT_AS",
        "RLIMIT_LOCKS",
        "RLIMIT_SIGPENDING",
        "RLIMIT_MSGQUEUE",
        "RLIMIT_NICE",
        "RLIMIT_RTPRIO",
        "RLIMIT_RTTIME",
    ];
    match NAMES.get(v as usize) {
        Some(name) => name.to_string(),
        None => format!("{v:#x} /* RLIMIT_??? */"),
    }
}

/// `getrandom` flags (`strace -o o17 ./fx`: `GRND_NONBLOCK|GRND_RANDOM`).
pub fn getrandom_flags(v: u32) -> String {
    bitset(
        u64::from(v),
        &[
            (1, "GRND_NONBLOCK"),
            (2, "GRND_RANDOM"),
            (4, "GRND_INSECURE"),
        ],
    )
}

/// `memfd_create` flags.
pub fn memfd_flags(v: u32) -> String {
    bitset(
        u64::from(v),
        &[
            (1, "MFD_CLOEXEC"),
            (2, "MFD_ALLOW_SEALING"),
            (4, "MFD_HUGETLB"),
            (8, "MFD_NOEXEC_SEAL"),
            (0x10, "MFD_EXEC"),
        ],
    )
}

/// A capability number: `CAP_SYS_ADMIN`.
pub fn capability(v: u32) -> String {
    const NAMES: [&str; 41] = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_MKNOD",
        "CAP_LEASE",
        "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN",
        "CAP_SYSLOG",
        "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ",
        "CAP_PERFMON",
        "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ];
    match NAMES.get(v as usize) {
        Some(name) => name.to_string(),
        None => format!("{v:#x} /* CAP_??? */"),
    }
}

/// `PR_SET_DUMPABLE`'s argument and `PR_GET_DUMPABLE`'s result.
pub fn suid_dump(v: u64) -> String {
    match v {
        0 => "SUID_DUMP_DISABLE".to_string(),
        1 => "SUID_DUMP_USER".to_string(),
        2 => "SUID_DUMP_ROOT".to_string(),
        _ => format!("{v:#x} /* SUID_DUMP_??? */"),
    }
}

/// `mremap` flags.
pub fn mremap_flags(v: u32) -> String {
    bitset(
        u64::from(v),
        &[
            (1, "MREMAP_MAYMOVE"),
            (2, "MREMAP_FIXED"),
            (4, "MREMAP_DONTUNMAP"),
        ],
    )
}

/// `getpriority`/`setpriority` which.
pub fn priority_which(v: u32) -> String {
    int_enum(
        v,
        &[(0, "PRIO_PROCESS"), (1, "PRIO_PGRP"), (2, "PRIO_USER")],
    )
}

// ---------------------------------------------------------------- results and structs

/// A file mode from a `stat` result, as strace prints it:
/// `S_IFREG|0644`, `S_IFDIR|S_ISVTX|0777`, `S_IFREG|S_ISUID|S_ISGID|0755`,
/// `S_IFREG|000` (strace's `%#03o` of the permission bits).
pub fn stat_mode(v: u32) -> String {
    let perm = |p: u32| {
        if p == 0 {
            "000".to_string()
        } else {
            format!("{:0>3}", format!("0{p:o}"))
        }
    };
    let Some(ty) = (v & 0o170000 != 0)
        .then(|| lookup(u64::from(v & 0o170000), FILE_TYPES))
        .flatten()
    else {
        return perm(v);
    };
    let mut s = format!("{ty}|");
    for (bit, name) in [
        (0o4000, "S_ISUID|"),
        (0o2000, "S_ISGID|"),
        (0o1000, "S_ISVTX|"),
    ] {
        if v & bit != 0 {
            s.push_str(name);
        }
    }
    s.push_str(&perm(v & 0o777));
    s
}

/// A device number as strace shows it: `makedev(0x1, 0x3)` (glibc's
/// encoding of major and minor in a 64-bit `dev_t`).
pub fn makedev(dev: u64) -> String {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    format!("makedev({major:#x}, {minor:#x})")
}

/// `statx` mask bits: the two groups first, then single bits, as strace's
/// `statx_masks` table (`STATX_ALL|STATX_MNT_ID`,
/// `STATX_TYPE|STATX_MODE|...|STATX_MNT_ID`).
const STATX_MASKS: Names = &[
    (0xfff, "STATX_ALL"),
    (0x7ff, "STATX_BASIC_STATS"),
    (0x1, "STATX_TYPE"),
    (0x2, "STATX_MODE"),
    (0x4, "STATX_NLINK"),
    (0x8, "STATX_UID"),
    (0x10, "STATX_GID"),
    (0x20, "STATX_ATIME"),
    (0x40, "STATX_MTIME"),
    (0x80, "STATX_CTIME"),
    (0x100, "STATX_INO"),
    (0x200, "STATX_SIZE"),
    (0x400, "STATX_BLOCKS"),
    (0x800, "STATX_BTIME"),
    (0x1000, "STATX_MNT_ID"),
    (0x2000, "STATX_DIOALIGN"),
];

/// Consumes bits in table order, as strace's `printflags` does: an entry
/// is named when all its bits are still set, and its bits are then used.
fn seq_bitset(v: u64, names: Names) -> String {
    let mut j = Joined::default();
    let mut rest = v;
    for &(mask, name) in names {
        if mask != 0 && rest & mask == mask {
            j.push(name);
            rest &= !mask;
        }
    }
    j.finish(rest, "0")
}

/// A `statx` mask (the request argument and `stx_mask`).
pub fn statx_mask(v: u32) -> String {
    seq_bitset(u64::from(v), STATX_MASKS)
}

/// `stx_attributes`, in bit order.
pub fn statx_attributes(v: u64) -> String {
    seq_bitset(
        v,
        &[
            (0x4, "STATX_ATTR_COMPRESSED"),
            (0x10, "STATX_ATTR_IMMUTABLE"),
            (0x20, "STATX_ATTR_APPEND"),
            (0x40, "STATX_ATTR_NODUMP"),
            (0x800, "STATX_ATTR_ENCRYPTED"),
            (0x1000, "STATX_ATTR_AUTOMOUNT"),
            (0x2000, "STATX_ATTR_MOUNT_ROOT"),
            (0x100000, "STATX_ATTR_VERITY"),
            (0x200000, "STATX_ATTR_DAX"),
        ],
    )
}

/// `statx` flags: the sync type is always named first
/// (`AT_STATX_SYNC_AS_STAT|AT_SYMLINK_NOFOLLOW`), then the `AT_*` flags.
pub fn statx_flags(v: u32) -> String {
    const SYNC_TYPE: u32 = 0x6000;
    let sync = match v & SYNC_TYPE {
        0 => "AT_STATX_SYNC_AS_STAT",
        0x2000 => "AT_STATX_FORCE_SYNC",
        0x4000 => "AT_STATX_DONT_SYNC",
        _ => "AT_STATX_SYNC_TYPE",
    };
    let rest = v & !SYNC_TYPE;
    if rest == 0 {
        sync.to_string()
    } else {
        format!("{sync}|{}", at_flags(rest, At200::RemoveDir))
    }
}

/// A wait status as strace shows it, in its brackets:
/// `[{WIFEXITED(s) && WEXITSTATUS(s) == 0}]`,
/// `[{WIFSIGNALED(s) && WTERMSIG(s) == SIGKILL}]` (`&& WCOREDUMP(s)` when it
/// dumped core), `[{WIFSTOPPED(s) && WSTOPSIG(s) == SIGSTOP}]`,
/// `[{WIFCONTINUED(s)}]`; a ptrace event above is ` | PTRACE_EVENT_x << 16`.
pub fn wait_status(status: i32) -> String {
    let s = status as u32;
    let low = s & 0x7f;
    let mut rest;
    let mut out = if s & 0xff == 0x7f {
        let sig = (s >> 8) & 0xff;
        rest = s & !(sig << 8 | 0x7f);
        let high = if sig & 0x80 != 0 { " | 0x80" } else { "" };
        format!(
            "[{{WIFSTOPPED(s) && WSTOPSIG(s) == {}{high}}}",
            signal(sig & 0x7f)
        )
    } else if low != 0 && low != 0x7f {
        let core = if s & 0x80 != 0 {
            " && WCOREDUMP(s)"
        } else {
            ""
        };
        rest = s & !(low | 0x80);
        format!(
            "[{{WIFSIGNALED(s) && WTERMSIG(s) == {}{core}}}",
            signal(low)
        )
    } else if s & 0xff == 0 {
        let code = (s >> 8) & 0xff;
        rest = s & !(code << 8);
        format!("[{{WIFEXITED(s) && WEXITSTATUS(s) == {code}}}")
    } else if s == 0xffff {
        rest = 0;
        "[{WIFCONTINUED(s)}".to_string()
    } else {
        return format!("[{s:#x}]");
    };
    if rest != 0 {
        let event = rest >> 16;
        if event != 0 {
            let name = match event {
                1 => "PTRACE_EVENT_FORK".to_string(),
                2 => "PTRACE_EVENT_VFORK".to_string(),
                3 => "PTRACE_EVENT_CLONE".to_string(),
                4 => "PTRACE_EVENT_EXEC".to_string(),
                5 => "PTRACE_EVENT_VFORK_DONE".to_string(),
                6 => "PTRACE_EVENT_EXIT".to_string(),
                7 => "PTRACE_EVENT_SECCOMP".to_string(),
                0x80 => "PTRACE_EVENT_STOP".to_string(),
                other => format!("{other:#x} /* PTRACE_EVENT_??? */"),
            };
            out.push_str(&format!(" | {name} << 16"));
            rest &= 0xffff;
        }
        if rest != 0 {
            out.push_str(&format!(" | {rest:#x}"));
        }
    }
    out.push(']');
    out
}

/// What strace adds after a successful `fcntl` result, and whether the
/// result is then shown in hex: `F_GETFD` → `0x1 (flags FD_CLOEXEC)` (a
/// plain `0` when no flag is set), `F_GETFL` → `0x8002 (flags
/// O_RDWR|O_LARGEFILE)`. `None` leaves the result plain.
pub fn fcntl_result(cmd: u32, ret: i64) -> Option<String> {
    let v = ret as u64;
    match cmd {
        // F_GETFD
        1 if ret != 0 => Some(format!(
            "{v:#x} (flags {})",
            bitset(v, &[(1, "FD_CLOEXEC")])
        )),
        // F_GETFL
        3 => Some(format!(
            "{} (flags {})",
            if v == 0 {
                "0".to_string()
            } else {
                format!("{v:#x}")
            },
            open_flags(v as u32)
        )),
        // F_GETLEASE: `0x2 (F_UNLCK)`
        1025 => {
            let name = int_enum(v as u32, &[(0, "F_RDLCK"), (1, "F_WRLCK"), (2, "F_UNLCK")]);
            let num = if v == 0 {
                "0".to_string()
            } else {
                format!("{v:#x}")
            };
            Some(format!("{num} ({name})"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_flags_put_the_access_mode_first() {
        assert_eq!(open_flags(0), "O_RDONLY");
        assert_eq!(open_flags(0x80000), "O_RDONLY|O_CLOEXEC");
        assert_eq!(open_flags(0x241), "O_WRONLY|O_CREAT|O_TRUNC");
        assert_eq!(open_flags(0x442), "O_RDWR|O_CREAT|O_APPEND");
        assert_eq!(open_flags(3), "O_ACCMODE");
    }

    #[test]
    fn o_sync_and_o_tmpfile_shadow_the_bits_they_include() {
        assert_eq!(open_flags(0o4010001), "O_WRONLY|O_SYNC");
        assert_eq!(open_flags(0o10001), "O_WRONLY|O_DSYNC");
        assert_eq!(open_flags(0o20200002), "O_RDWR|O_TMPFILE");
        assert_eq!(open_flags(0o200000), "O_RDONLY|O_DIRECTORY");
    }

    /// Pinned from strace 6.1, `strace -e trace=openat -o o4 ./of` (raw
    /// `syscall(SYS_openat, AT_FDCWD, "/nonexistent/x", flags, 0644)`).
    #[test]
    fn open_flags_in_strace_order() {
        let all = [
            0o100, 0o200, 0o400, 0o1000, 0o2000, 0o4000, 0o10000, 0o20000, 0o40000, 0o100000,
            0o200000, 0o400000, 0o1000000, 0o2000000, 0o4010000, 0o10000000, 0o20200000,
        ];
        let singles = [
            "O_RDONLY|O_CREAT",
            "O_RDONLY|O_EXCL",
            "O_RDONLY|O_NOCTTY",
            "O_RDONLY|O_TRUNC",
            "O_RDONLY|O_APPEND",
            "O_RDONLY|O_NONBLOCK",
            "O_RDONLY|O_DSYNC",
            "O_RDONLY|FASYNC",
            "O_RDONLY|O_DIRECT",
            "O_RDONLY|O_LARGEFILE",
            "O_RDONLY|O_DIRECTORY",
            "O_RDONLY|O_NOFOLLOW",
            "O_RDONLY|O_NOATIME",
            "O_RDONLY|O_CLOEXEC",
            "O_RDONLY|O_SYNC",
            "O_RDONLY|O_PATH",
            "O_RDONLY|O_TMPFILE",
        ];
        for (v, want) in all.iter().zip(singles) {
            assert_eq!(open_flags(*v), want, "{v:#o}");
        }
        let every: u32 = all.iter().fold(0, |a, b| a | b);
        let rest = "O_CREAT|O_EXCL|O_NOCTTY|O_TRUNC|O_APPEND|O_NONBLOCK|O_SYNC|O_DIRECT|\
                    O_LARGEFILE|O_NOFOLLOW|O_NOATIME|O_CLOEXEC|O_PATH|O_TMPFILE|FASYNC";
        assert_eq!(open_flags(every), format!("O_RDONLY|{rest}"));
        assert_eq!(open_flags(every | 1), format!("O_WRONLY|{rest}"));
        assert_eq!(open_flags(every | 2), format!("O_RDWR|{rest}"));
        assert_eq!(open_flags(every | 3), format!("O_ACCMODE|{rest}"));
        assert_eq!(
            open_flags(0x7fff_ffff & !3),
            format!("O_RDONLY|{rest}|0x7f80003c")
        );
        assert_eq!(open_flags(0x8000_0000), "O_RDONLY|0x80000000");
        assert_eq!(
            open_flags(0o400000 | 0o200000 | 0o2000000),
            "O_RDONLY|O_NOFOLLOW|O_CLOEXEC|O_DIRECTORY"
        );
        assert_eq!(
            open_flags(1 | 0o100 | 0o1000 | 0o2000000),
            "O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC"
        );
        assert_eq!(
            open_flags(0o4010000 | 0o200000),
            "O_RDONLY|O_SYNC|O_DIRECTORY"
        );
        assert_eq!(
            open_flags(0o10000 | 0o200000 | 0o400000),
            "O_RDONLY|O_DSYNC|O_NOFOLLOW|O_DIRECTORY"
        );
        assert_eq!(open_flags(0o20000000), "O_RDONLY|__O_TMPFILE");
        assert_eq!(open_flags(1 | 0o20200000), "O_WRONLY|O_TMPFILE");
        // `strace -o o5 ./of2`.
        assert_eq!(open_flags(0o10000 | 0o40000), "O_RDONLY|O_DSYNC|O_DIRECT");
        assert_eq!(open_flags(0o10000 | 0o4000), "O_RDONLY|O_NONBLOCK|O_DSYNC");
        assert_eq!(
            open_flags(0o200000 | 0o20000),
            "O_RDONLY|O_DIRECTORY|FASYNC"
        );
        assert_eq!(
            open_flags(0o200000 | 0o10000000),
            "O_RDONLY|O_PATH|O_DIRECTORY"
        );
        assert_eq!(
            open_flags(0o20000000 | 0o20000),
            "O_RDONLY|__O_TMPFILE|FASYNC"
        );
        assert_eq!(
            open_flags(0o200000 | 0o100000),
            "O_RDONLY|O_LARGEFILE|O_DIRECTORY"
        );
        assert_eq!(
            open_flags(0o2200000 | 0x8000_0000),
            "O_RDONLY|O_CLOEXEC|O_DIRECTORY|0x80000000"
        );
    }

    #[test]
    fn zero_and_leftovers() {
        assert_eq!(at_flags(0, At200::RemoveDir), "0");
        assert_eq!(
            at_flags(0x1100, At200::RemoveDir),
            "AT_SYMLINK_NOFOLLOW|AT_EMPTY_PATH"
        );
        assert_eq!(at_flags(0x200, At200::EAccess), "AT_EACCESS");
        assert_eq!(at_flags(0x10001, At200::RemoveDir), "0x10001");
        assert_eq!(access_mode(0), "F_OK");
        assert_eq!(access_mode(5), "R_OK|X_OK");
        assert_eq!(access_mode(0x10), "0x10");
        assert_eq!(msg_flags(0), "0");
        assert_eq!(msg_flags(0x4040), "MSG_DONTWAIT|MSG_NOSIGNAL");
        assert_eq!(unlink_flags(0x200), "AT_REMOVEDIR");
        assert_eq!(unlink_flags(0), "0");
        assert_eq!(rename_flags(1), "RENAME_NOREPLACE");
        assert_eq!(fd_flags(0x80800), "O_CLOEXEC|O_NONBLOCK");
        assert_eq!(fd_flags(1), "0x1");
    }

    /// Pinned from strace 6.1, `strace -o o9 ./fdf`.
    #[test]
    fn fd_flags_are_named_per_syscall() {
        const CLOEXEC: u32 = 0o2000000;
        const NONBLOCK: u32 = 0o4000;
        let both = CLOEXEC | NONBLOCK;
        assert_eq!(fd_flags_of("dup3", CLOEXEC), "O_CLOEXEC");
        assert_eq!(fd_flags_of("eventfd2", both), "EFD_CLOEXEC|EFD_NONBLOCK");
        assert_eq!(fd_flags_of("epoll_create1", CLOEXEC), "EPOLL_CLOEXEC");
        assert_eq!(fd_flags_of("inotify_init1", both), "IN_NONBLOCK|IN_CLOEXEC");
        assert_eq!(fd_flags_of("accept4", both), "SOCK_CLOEXEC|SOCK_NONBLOCK");
        assert_eq!(
            fd_flags_of("timerfd_create", both),
            "TFD_CLOEXEC|TFD_NONBLOCK"
        );
        assert_eq!(fd_flags_of("signalfd4", both), "SFD_CLOEXEC|SFD_NONBLOCK");
        assert_eq!(
            fd_flags_of("pipe2", both | 0o40000),
            "O_NONBLOCK|O_DIRECT|O_CLOEXEC"
        );
        // `strace -o o7 ./out`: `pipe2([5, 6], 0)`.
        assert_eq!(fd_flags_of("pipe2", 0), "0");
    }

    #[test]
    fn clone_flags_end_with_the_exit_signal() {
        assert_eq!(
            clone_flags(0x1200011, true),
            "CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD"
        );
        assert_eq!(
            clone_flags(0x3d0f00, true),
            "CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|\
             CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID"
        );
        assert_eq!(clone_flags(0, true), "0");
        assert_eq!(clone_flags(0x1_0000_0000, true), "0x100000000");
        assert_eq!(
            clone_flags(0x4002_0080, false),
            "CLONE_NEWTIME|CLONE_NEWNS|CLONE_NEWNET"
        );
    }

    #[test]
    fn signals() {
        assert_eq!(signal(0), "0");
        assert_eq!(signal(9), "SIGKILL");
        assert_eq!(signal(15), "SIGTERM");
        assert_eq!(signal(31), "SIGSYS");
        assert_eq!(signal(32), "SIGRT_0");
        assert_eq!(signal(34), "SIGRT_2");
        assert_eq!(signal(64), "SIGRT_32");
        assert_eq!(signal(65), "65");
        assert_eq!(signal(u32::MAX), "-1");
    }

    #[test]
    fn sockets() {
        assert_eq!(sock_domain(10), "AF_INET6");
        assert_eq!(sock_domain(16), "AF_NETLINK");
        assert_eq!(sock_domain(200), "200");
        assert_eq!(sock_type(0x80801), "SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK");
        assert_eq!(sock_type(2), "SOCK_DGRAM");
        assert_eq!(sock_type(0x100005), "SOCK_SEQPACKET|0x100000");
        assert_eq!(shutdown_how(1), "SHUT_WR");
        assert_eq!(shutdown_how(7), "7");
    }

    #[test]
    fn socket_options_and_protocols() {
        assert_eq!(sock_protocol(Some(2), 0), "IPPROTO_IP");
        assert_eq!(sock_protocol(Some(10), 132), "IPPROTO_SCTP");
        assert_eq!(sock_protocol(Some(16), 16), "NETLINK_GENERIC");
        assert_eq!(sock_protocol(Some(16), 17), "17");
        assert_eq!(sock_protocol(Some(1), 6), "6");
        assert_eq!(sock_protocol(None, 6), "6");
        assert_eq!(sock_level(1), "SOL_SOCKET");
        assert_eq!(sock_level(263), "SOL_PACKET");
        assert_eq!(sock_level(u32::MAX), "-1");
        assert_eq!(sockopt_name(Some(1), 67), "SO_SNDTIMEO_NEW");
        assert_eq!(sockopt_name(Some(0), 24), "IP_BIND_ADDRESS_NO_PORT");
        assert_eq!(sockopt_name(Some(41), 67), "IPV6_TCLASS");
        assert_eq!(sockopt_name(Some(6), 25), "TCP_NOTSENT_LOWAT");
        assert_eq!(sockopt_name(Some(17), 103), "UDP_SEGMENT");
        assert_eq!(sockopt_name(Some(263), 18), "PACKET_FANOUT");
        assert_eq!(sockopt_name(Some(255), 1), "1");
        assert_eq!(sockopt_name(None, 1), "1");
        assert_eq!(sockopt_name(Some(1), u32::MAX), "-1");
    }

    #[test]
    fn ioctl_requests() {
        assert_eq!(ioctl_request(0x5401), "TCGETS");
        assert_eq!(ioctl_request(0x541b), "FIONREAD");
        assert_eq!(ioctl_request(0x8004_5430), "TIOCGPTN");
        assert_eq!(ioctl_request(0x4004_5431), "TIOCSPTLCK");
        assert_eq!(ioctl_request(0x8008_6601), "FS_IOC_GETFLAGS");
        assert_eq!(ioctl_request(0xc050_2100), "SECCOMP_IOCTL_NOTIF_RECV");
        assert_eq!(ioctl_request(0x1234), "0x1234");
        assert_eq!(ioctl_request(u32::MAX), "0xffffffff");
        assert_eq!(ioctl_request(0), "0");
    }

    /// The ioctl table is searched by bisection; every table names each
    /// value once.
    #[test]
    fn name_tables_are_well_formed() {
        assert!(IOCTL_REQUESTS.windows(2).all(|w| w[0].0 < w[1].0));
        for names in [
            IP_PROTOCOLS,
            NETLINK_PROTOCOLS,
            SOCKET_LEVELS,
            SO_OPTIONS,
            IP_OPTIONS,
            IPV6_OPTIONS,
            TCP_OPTIONS,
            UDP_OPTIONS,
            NETLINK_OPTIONS,
            PACKET_OPTIONS,
            IOCTL_REQUESTS,
        ] {
            let mut values: Vec<u64> = names.iter().map(|&(v, _)| v).collect();
            values.sort_unstable();
            values.dedup();
            assert_eq!(values.len(), names.len());
            assert!(values.iter().all(|&v| v <= u64::from(u32::MAX)));
        }
        let mut names: Vec<&str> = IOCTL_REQUESTS.iter().map(|&(_, n)| n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), IOCTL_REQUESTS.len());
    }

    #[test]
    fn memory() {
        assert_eq!(prot_flags(0), "PROT_NONE");
        assert_eq!(prot_flags(3), "PROT_READ|PROT_WRITE");
        assert_eq!(prot_flags(0x10), "0x10");
        assert_eq!(map_flags(0x22), "MAP_PRIVATE|MAP_ANONYMOUS");
        assert_eq!(map_flags(0x812), "MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE");
        assert_eq!(map_flags(0x3), "MAP_SHARED_VALIDATE");
        assert_eq!(map_flags(0x20022), "MAP_PRIVATE|MAP_ANONYMOUS|MAP_STACK");
        assert_eq!(
            map_flags(0x40022 | (21 << 26)),
            "MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB|MAP_HUGE_2MB"
        );
        assert_eq!(map_flags(0x7), "0x7");
        assert_eq!(map_flags(0), "0");
        assert_eq!(madvise_advice(4), "MADV_DONTNEED");
        assert_eq!(madvise_advice(99), "99");
    }

    #[test]
    fn futex_ops() {
        assert_eq!(futex_op(0), "FUTEX_WAIT");
        assert_eq!(futex_op(128), "FUTEX_WAIT_PRIVATE");
        assert_eq!(futex_op(129), "FUTEX_WAKE_PRIVATE");
        assert_eq!(
            futex_op(9 | 128 | 256),
            "FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME"
        );
        assert_eq!(futex_op(99), "0x63 /* FUTEX_??? */");
        assert_eq!(futex_op(0x7f), "0x7f /* FUTEX_??? */");
        assert_eq!(futex_op(0x1000), "FUTEX_WAIT|0x1000");
    }

    #[test]
    fn enums() {
        assert_eq!(whence(2), "SEEK_END");
        assert_eq!(whence(9), "9");
        assert_eq!(fcntl_cmd(1030), "F_DUPFD_CLOEXEC");
        assert_eq!(fcntl_cmd(2), "F_SETFD");
        assert_eq!(fcntl_cmd(999), "999");
        assert_eq!(prctl_option(15), "PR_SET_NAME");
        assert_eq!(prctl_option(38), "PR_SET_NO_NEW_PRIVS");
        assert_eq!(prctl_option(1234), "0x4d2 /* PR_??? */");
        assert_eq!(sigmask_how(2), "SIG_SETMASK");
        assert_eq!(clock_id(1), "CLOCK_MONOTONIC");
        assert_eq!(clock_id(11), "CLOCK_TAI");
        assert_eq!(clock_id((-6i32) as u32), "-6");
        assert_eq!(wait_options(0x4000_0001, false), "WNOHANG|__WALL");
        assert_eq!(wait_options(6, true), "WSTOPPED|WEXITED");
        assert_eq!(wait_options(2, false), "WSTOPPED");
        assert_eq!(wait_options(0, false), "0");
    }

    /// Pinned from strace 6.1: `strace -f -o o7 ./out` and `strace -o o8 ./t2`
    /// (stat of a file, /tmp, /dev/null, a 06755 and a 0 mode file).
    #[test]
    fn stat_modes_and_devices() {
        assert_eq!(stat_mode(0o100644), "S_IFREG|0644");
        assert_eq!(stat_mode(0o41777), "S_IFDIR|S_ISVTX|0777");
        assert_eq!(stat_mode(0o20666), "S_IFCHR|0666");
        assert_eq!(stat_mode(0o106755), "S_IFREG|S_ISUID|S_ISGID|0755");
        assert_eq!(stat_mode(0o100000), "S_IFREG|000");
        assert_eq!(makedev(0x103), "makedev(0x1, 0x3)");
    }

    /// Pinned from strace 6.1, `strace -f -o o7 ./out`.
    #[test]
    fn statx_masks_and_flags() {
        assert_eq!(statx_mask(0xfff), "STATX_ALL");
        assert_eq!(statx_mask(0x7ff), "STATX_BASIC_STATS");
        assert_eq!(statx_mask(0x201), "STATX_TYPE|STATX_SIZE");
        assert_eq!(statx_mask(0x1fff), "STATX_ALL|STATX_MNT_ID");
        assert_eq!(statx_mask(0x17ff), "STATX_BASIC_STATS|STATX_MNT_ID");
        assert_eq!(
            statx_mask(0x173f),
            "STATX_TYPE|STATX_MODE|STATX_NLINK|STATX_UID|STATX_GID|STATX_ATIME|\
             STATX_INO|STATX_SIZE|STATX_BLOCKS|STATX_MNT_ID"
        );
        assert_eq!(statx_attributes(0), "0");
        assert_eq!(statx_flags(0), "AT_STATX_SYNC_AS_STAT");
        assert_eq!(
            statx_flags(0x100),
            "AT_STATX_SYNC_AS_STAT|AT_SYMLINK_NOFOLLOW"
        );
    }

    /// Pinned from strace 6.1, `strace -f -o o7 ./out` (children that exit
    /// with 3, are killed by SIGKILL, abort, stop and continue).
    #[test]
    fn wait_statuses() {
        assert_eq!(
            wait_status(3 << 8),
            "[{WIFEXITED(s) && WEXITSTATUS(s) == 3}]"
        );
        assert_eq!(wait_status(0), "[{WIFEXITED(s) && WEXITSTATUS(s) == 0}]");
        assert_eq!(
            wait_status(9),
            "[{WIFSIGNALED(s) && WTERMSIG(s) == SIGKILL}]"
        );
        assert_eq!(
            wait_status(6),
            "[{WIFSIGNALED(s) && WTERMSIG(s) == SIGABRT}]"
        );
        assert_eq!(
            wait_status(19 << 8 | 0x7f),
            "[{WIFSTOPPED(s) && WSTOPSIG(s) == SIGSTOP}]"
        );
        assert_eq!(wait_status(0xffff), "[{WIFCONTINUED(s)}]");
        // `strace -o o10 ./cd`: a child that aborts with RLIMIT_CORE unlimited.
        assert_eq!(
            wait_status(0x86),
            "[{WIFSIGNALED(s) && WTERMSIG(s) == SIGABRT && WCOREDUMP(s)}]"
        );
    }

    /// Pinned from strace 6.1, `strace -f -o o7 ./out`.
    #[test]
    fn fcntl_results() {
        assert_eq!(fcntl_result(1, 0), None);
        assert_eq!(fcntl_result(1, 1).unwrap(), "0x1 (flags FD_CLOEXEC)");
        assert_eq!(
            fcntl_result(3, 0x8000).unwrap(),
            "0x8000 (flags O_RDONLY|O_LARGEFILE)"
        );
        assert_eq!(
            fcntl_result(3, 0x8c02).unwrap(),
            "0x8c02 (flags O_RDWR|O_APPEND|O_NONBLOCK|O_LARGEFILE)"
        );
        assert_eq!(fcntl_result(2, 0), None);
        // `strace -o o11 ./t3`: `fcntl(3, F_GETLEASE) = 0x2 (F_UNLCK)`.
        assert_eq!(fcntl_result(1025, 2).unwrap(), "0x2 (F_UNLCK)");
    }

    #[test]
    fn modes() {
        assert_eq!(mode(0o644, false), "0644");
        assert_eq!(mode(0, false), "0");
        assert_eq!(mode(0o20600, true), "S_IFCHR|0600");
        assert_eq!(mode(0o10007, true), "S_IFIFO|007");
        assert_eq!(mode(0o10000, true), "S_IFIFO|000");
        assert_eq!(mode(0o755, true), "0755");
    }

    #[test]
    fn fcntl_args() {
        assert_eq!(fcntl_arg(2, 1).as_deref(), Some("FD_CLOEXEC"));
        assert_eq!(fcntl_arg(4, 0x802).as_deref(), Some("O_RDWR|O_NONBLOCK"));
        assert_eq!(fcntl_arg(1030, 3).as_deref(), Some("3"));
        assert_eq!(fcntl_arg(1, 0), None);
    }
}
