//! The hot path: one thread per seccomp listener (the container's init and
//! each exec has its own). For every notified syscall:
//!
//!   RECV -> copy the pointer arguments the syscall table asks for
//!        -> NOTIF_ID_VALID (was that memory really the caller's?)
//!        -> arm the thread's exit slot (when results are recorded: exits.rs)
//!        -> SEND(CONTINUE) -> push the encoded record into the queue.
//!
//! Nothing here allocates once warm, decodes, formats or touches the disk;
//! the traced thread waits only for the copies and two ioctls. Every
//! notification is answered, whatever goes wrong with the copies, so a
//! traced syscall never fails or hangs because of us — not even when the
//! loop itself panics ([`serve_guarded`]).

#[cfg(test)]
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use crt_seccomp_notify::memory::{self, CStr};
use crt_seccomp_notify::{NotifyListener, Recv, SeccompNotif};
use crt_tracer::capture::{
    self, CapturePlan, ARGV_MAX_ITEMS, ARGV_MAX_ITEM_LEN, ARGV_MAX_TOTAL, ENVP_MAX_COUNT,
};
use crt_tracer::latency::Histogram;
use crt_tracer::record::{
    RecordBuilder, CAPTURE_BYTES, CAPTURE_STRINGS, CAPTURE_UNREADABLE, FLAG_STALE, KIND_SYSCALL,
};
use crt_tracer::syscalls::{self, NATIVE_AUDIT_ARCH};

use super::exits::ExitProbe;
use super::queue::EventQueue;

/// Native syscall numbers to record (the filter may notify a few more, see
/// [`SyscallSet::exec_only`]).
pub struct SyscallSet {
    bits: [u64; 8],
}

impl SyscallSet {
    pub fn new(names: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        let mut bits = [0u64; 8];
        for n in names {
            if let Some(info) = syscalls::by_name(n.as_ref()) {
                let nr = info.nr as usize;
                if nr < 512 {
                    bits[nr / 64] |= 1 << (nr % 64);
                }
            }
        }
        SyscallSet { bits }
    }

    /// Records nothing: the listener is only answered.
    pub fn none() -> Self {
        SyscallSet { bits: [0; 8] }
    }

    /// Notifications from other architectures are always recorded: the
    /// filter only notifies them because a requested name resolved there.
    #[inline]
    pub fn contains(&self, arch: u32, nr: u32) -> bool {
        if arch != NATIVE_AUDIT_ARCH {
            return true;
        }
        let nr = nr as usize;
        nr < 512 && self.bits[nr / 64] & (1 << (nr % 64)) != 0
    }
}

/// The syscalls added to every filter so process names stay right across
/// exec even when exec itself is not traced.
pub const EXEC_SYSCALLS: [&str; 2] = ["execve", "execveat"];

fn is_exec(arch: u32, nr: u32) -> bool {
    arch == NATIVE_AUDIT_ARCH
        && syscalls::by_nr(arch, nr).is_some_and(|s| EXEC_SYSCALLS.contains(&s.name))
}

/// Process names by thread id: a small direct-mapped cache, read from
/// /proc the first time a thread is seen and again after it execs.
struct CommCache {
    slots: Box<[(u32, [u8; 16])]>,
}

const COMM_SLOTS: usize = 512;

impl CommCache {
    fn new() -> Self {
        CommCache {
            slots: vec![(0u32, [0u8; 16]); COMM_SLOTS].into_boxed_slice(),
        }
    }

    fn get(&mut self, tid: u32) -> [u8; 16] {
        let slot = &mut self.slots[tid as usize % COMM_SLOTS];
        if slot.0 != tid {
            *slot = (tid, read_comm(tid));
        }
        slot.1
    }

    fn forget(&mut self, tid: u32) {
        let slot = &mut self.slots[tid as usize % COMM_SLOTS];
        if slot.0 == tid {
            slot.0 = 0;
        }
    }
}

/// `/proc/<tid>/comm` without allocating; `?` when the thread is gone.
pub fn read_comm(tid: u32) -> [u8; 16] {
    let mut path = [0u8; 32];
    let prefix = b"/proc/";
    path[..prefix.len()].copy_from_slice(prefix);
    let mut at = prefix.len();
    let mut digits = [0u8; 10];
    let mut n = tid;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in (0..len).rev() {
        path[at] = digits[i];
        at += 1;
    }
    let suffix = b"/comm\0";
    path[at..at + suffix.len()].copy_from_slice(suffix);

    let mut comm = [0u8; 16];
    comm[0] = b'?';
    // SAFETY: `path` is NUL-terminated and lives across the call.
    let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return comm;
    }
    let mut buf = [0u8; 17];
    // SAFETY: reading into a stack buffer of the stated length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(fd) };
    if n > 0 {
        let n = n as usize;
        let end = if buf[n - 1] == b'\n' { n - 1 } else { n };
        let end = end.min(16);
        comm = [0u8; 16];
        comm[..end].copy_from_slice(&buf[..end]);
    }
    comm
}

fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec (a vDSO call, no syscall).
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Blocks every signal in the calling thread: process-directed signals
/// (SIGCHLD above all) go to other threads and never interrupt a receive.
fn block_signals() {
    // SAFETY: sigset_t is plain data; sigfillset initialises it and
    // pthread_sigmask only changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// What one listener's loop did, for the shim log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LoopStats {
    pub notifications: u64,
    pub recorded: u64,
    pub stale: u64,
    pub send_errors: u64,
    /// Exit slots taken over from another thread still in its syscall
    /// (that thread's result is lost).
    pub slots_taken: u64,
}

/// How a guarded loop ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    pub stats: LoopStats,
    /// The recording loop panicked; the listener was then served
    /// continue-only (nothing recorded) until no process used it any more.
    pub panicked: bool,
}

#[cfg(test)]
thread_local! {
    /// Tests: panic on this notification of the serving thread, after
    /// receiving it and before answering it (counted from 1; 0 = never).
    pub static PANIC_BEFORE_ANSWER_AT: Cell<u64> = const { Cell::new(0) };
}

/// Serves `listener` (see [`serve_tracking`]), and survives a panic of the loop (a bug
/// in a decoder, a poisoned lock): the notification being handled is
/// answered, then every further one is continued without recording until no
/// process uses the filter. Unwinding out instead would leave the listener
/// open and unserved, and every traced syscall of the process would block
/// forever.
///
/// `unanswered` holds the id of the notification in hand (0: none); it may
/// be a keeper slot, for the keeper to answer if the shim dies.
pub fn serve_guarded(
    listener: &NotifyListener,
    wanted: &SyscallSet,
    queue: Option<&EventQueue>,
    latency: Option<&Histogram>,
    exits: Option<&ExitProbe>,
    unanswered: &AtomicU64,
) -> Served {
    let recording = catch_unwind(AssertUnwindSafe(|| {
        serve_tracking(listener, wanted, queue, latency, exits, unanswered)
    }));
    let payload = match recording {
        Ok(stats) => {
            return Served {
                stats,
                panicked: false,
            }
        }
        Err(payload) => payload,
    };
    let why = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    log::error!(
        "the notify loop of seccomp listener fd {} panicked: {why}; its syscalls keep running but are no longer recorded",
        std::os::fd::AsRawFd::as_raw_fd(listener)
    );
    let id = unanswered.swap(0, Ordering::Relaxed);
    if id != 0 {
        let _ = listener.continue_syscall(id);
    }
    // The continue-only loop touches no queue and no decoder; should it
    // panic all the same, serving again is still the only safe thing to do.
    let none = SyscallSet::none();
    loop {
        if let Ok(stats) = catch_unwind(AssertUnwindSafe(|| {
            serve_tracking(listener, &none, None, None, None, unanswered)
        })) {
            return Served {
                stats,
                panicked: true,
            };
        }
        let id = unanswered.swap(0, Ordering::Relaxed);
        if id != 0 {
            let _ = listener.continue_syscall(id);
        }
    }
}

/// Serves `listener` until no process uses its filter any more. `queue` is
/// `None` for a listener we serve without recording (one that reached us
/// with no container to account it to): its syscalls still continue.
/// `exits`: where results are recorded, the probe whose slots to arm.
/// `unanswered` holds the id of a notification received and not yet
/// answered (0: none), for whoever takes over after a panic or a crash.
fn serve_tracking(
    listener: &NotifyListener,
    wanted: &SyscallSet,
    queue: Option<&EventQueue>,
    latency: Option<&Histogram>,
    exits: Option<&ExitProbe>,
    unanswered: &AtomicU64,
) -> LoopStats {
    block_signals();
    // Set on the first notification: see cpu_cgroup.rs.
    let mut _joined: Option<super::cpu_cgroup::Joined> = None;
    let mut first = true;
    let mut stats = LoopStats::default();
    let mut notif = SeccompNotif::default();
    let mut scratch: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut ptrs = [0u64; ARGV_MAX_ITEMS];
    let mut comms = CommCache::new();
    loop {
        match listener.recv(&mut notif) {
            Ok(Recv::Notification) => {}
            Ok(Recv::Interrupted) | Ok(Recv::Vanished) => continue,
            Ok(Recv::Closed) => break,
            Err(e) => {
                // Never give up on a listener that still has users: closing
                // it would fail their syscalls with ENOSYS.
                if !listener.has_users() {
                    break;
                }
                if stats.send_errors == 0 {
                    log::error!("seccomp receive failed: {e}; retrying");
                }
                stats.send_errors += 1;
                std::thread::sleep(std::time::Duration::from_millis(1));
                continue;
            }
        }
        unanswered.store(notif.id, Ordering::Relaxed);
        stats.notifications += 1;
        #[cfg(test)]
        if PANIC_BEFORE_ANSWER_AT.get() == stats.notifications {
            panic!(
                "injected failure before answering notification {} (test hook)",
                stats.notifications
            );
        }
        if first {
            first = false;
            _joined = super::cpu_cgroup::join_cgroups_of(notif.pid);
        }
        let arch = notif.data.arch;
        let nr = notif.data.nr as u32;
        let tid = notif.pid;

        let Some(queue) = queue.filter(|_| wanted.contains(arch, nr)) else {
            let _ = answer(listener, notif.id, &mut stats);
            unanswered.store(0, Ordering::Relaxed);
            if is_exec(arch, nr) {
                comms.forget(tid);
            }
            continue;
        };

        scratch.clear();
        let received = realtime_ns();
        let mut rec = RecordBuilder::begin(
            &mut scratch,
            KIND_SYSCALL,
            received,
            tid,
            arch,
            nr,
            &notif.data.args,
        );
        rec.set_comm(&comms.get(tid));
        let mut read_memory = false;
        let info = syscalls::by_nr(arch, nr);
        if let Some(info) = info {
            for (i, &kind) in info.args.iter().enumerate() {
                if let Some(plan) = capture::plan(kind) {
                    read_memory = true;
                    copy_argument(&mut rec, tid, i as u8, plan, &notif.data.args, &mut ptrs);
                }
            }
        }
        // The copies are only the caller's memory if the notification is
        // still pending: otherwise the thread died and its pid may be reused.
        if read_memory && !listener.id_valid(notif.id) {
            rec.clear_captures();
            rec.set_flags(FLAG_STALE);
            stats.stale += 1;
        }
        // Arm the exit slot last: the thread runs the syscall as soon as it
        // is answered.
        let seq = match exits {
            Some(ex) => {
                let seq = ex.next_seq();
                let out = info.and_then(|i| capture::exit_plan(i.args));
                if ex.arm(tid, seq, nr, out, &notif.data.args) {
                    stats.slots_taken += 1;
                }
                rec.set_seq(seq);
                seq
            }
            None => 0,
        };
        let answered = answer(listener, notif.id, &mut stats);
        unanswered.store(0, Ordering::Relaxed);
        if let (false, Some(ex)) = (answered, exits) {
            // Withdrawn (the thread took a signal, or died): whatever its
            // next exit says is not this call's result.
            ex.disarm(tid, seq);
            rec.set_seq(0);
        }
        if let Some(h) = latency {
            h.observe(realtime_ns().saturating_sub(received));
        }
        rec.finish();
        if is_exec(arch, nr) {
            comms.forget(tid);
        }
        queue.push(&scratch);
        stats.recorded += 1;
    }
    stats
}

/// Answers CONTINUE; false when the notification was no longer there.
#[inline]
fn answer(listener: &NotifyListener, id: u64, stats: &mut LoopStats) -> bool {
    match listener.continue_syscall(id) {
        Ok(answered) => answered,
        Err(e) => {
            if stats.send_errors == 0 {
                log::error!("seccomp continue failed: {e}");
            }
            stats.send_errors += 1;
            false
        }
    }
}

fn copy_argument(
    rec: &mut RecordBuilder<'_>,
    tid: u32,
    arg: u8,
    plan: CapturePlan,
    args: &[u64; 6],
    ptrs: &mut [u64; ARGV_MAX_ITEMS],
) {
    let addr = args[arg as usize];
    match plan {
        CapturePlan::CString { max } => {
            let r = rec.reserve_bytes(arg, max);
            match memory::read_cstr(tid, addr, &mut rec.reserved_mut(&r)[..max]) {
                CStr::Read { len, truncated } => {
                    rec.finish_reserved(r, len, CAPTURE_BYTES, truncated)
                }
                CStr::Unreadable => rec.finish_reserved(r, 0, CAPTURE_UNREADABLE, false),
            }
        }
        CapturePlan::Bytes { len_arg, max } => {
            let want_total = args[len_arg as usize];
            let want = (want_total.min(max as u64)) as usize;
            let r = rec.reserve_bytes(arg, want);
            let got = memory::read(tid, addr, &mut rec.reserved_mut(&r)[..want]);
            if got == 0 && want > 0 {
                rec.finish_reserved(r, 0, CAPTURE_UNREADABLE, false);
            } else {
                rec.finish_reserved(r, got, CAPTURE_BYTES, (got as u64) < want_total);
            }
        }
        CapturePlan::StrArray => {
            let (count, complete) = memory::read_ptr_array(tid, addr, ptrs);
            if count == 0 && !complete {
                rec.unreadable(arg);
                return;
            }
            let room = ARGV_MAX_TOTAL + 2 * count;
            let r = rec.reserve_bytes(arg, room);
            let dst = rec.reserved_mut(&r);
            let mut at = 0;
            let mut items_cut = !complete;
            for &p in &ptrs[..count] {
                let budget = (room - at).saturating_sub(2).min(ARGV_MAX_ITEM_LEN);
                if budget == 0 {
                    items_cut = true;
                    break;
                }
                let (len, cut) = match memory::read_cstr(tid, p, &mut dst[at + 2..at + 2 + budget])
                {
                    CStr::Read { len, truncated } => (len, truncated),
                    CStr::Unreadable => (0, true),
                };
                let word = (len as u16) | if cut { 0x8000 } else { 0 };
                dst[at..at + 2].copy_from_slice(&word.to_le_bytes());
                at += 2 + len;
            }
            rec.finish_reserved(r, at, CAPTURE_STRINGS, items_cut);
        }
        CapturePlan::Fixed { len } => {
            let r = rec.reserve_bytes(arg, len);
            let got = if addr == 0 {
                0
            } else {
                memory::read(tid, addr, &mut rec.reserved_mut(&r)[..len])
            };
            if got < len {
                rec.finish_reserved(r, 0, CAPTURE_UNREADABLE, false);
            } else {
                rec.finish_reserved(r, len, CAPTURE_BYTES, false);
            }
        }
        CapturePlan::PtrCount => match memory::count_ptr_array(tid, addr, ENVP_MAX_COUNT) {
            Some(n) => rec.count(arg, n as u64),
            None => rec.unreadable(arg),
        },
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crt_seccomp_notify::testutil::spawn_traced;
    use crt_tracer::record::{decode, Records};

    /// Serves a traced child from release to exit.
    fn serve_child(
        child: &crt_seccomp_notify::testutil::TracedChild,
        set: &SyscallSet,
        queue: Option<&EventQueue>,
    ) -> LoopStats {
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                serve_guarded(&child.listener, set, queue, None, None, &AtomicU64::new(0)).stats
            });
            child.go();
            // (The shim's reaper may collect the status first; only the end matters.)
            child.wait();
            h.join().unwrap()
        })
    }

    #[test]
    fn comm_of_this_thread_is_read_from_proc() {
        // SAFETY: gettid has no arguments.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
        let comm = read_comm(tid);
        let expected = std::fs::read_to_string(format!("/proc/{tid}/comm")).unwrap();
        let end = comm.iter().position(|&b| b == 0).unwrap_or(16);
        assert_eq!(&comm[..end], expected.trim_end().as_bytes());
        assert_eq!(read_comm(u32::MAX - 1)[0], b'?');
    }

    #[test]
    fn the_set_holds_only_what_was_asked_for() {
        let set = SyscallSet::new(["openat", "connect"]);
        let openat = syscalls::by_name("openat").unwrap().nr;
        let read = syscalls::by_name("read").unwrap().nr;
        assert!(set.contains(NATIVE_AUDIT_ARCH, openat));
        assert!(!set.contains(NATIVE_AUDIT_ARCH, read));
        assert!(set.contains(0x4000_0003, read));
    }

    fn exec_true() {
        let path = b"/bin/true\0";
        let a0 = b"true\0";
        let a1 = b"--crt-arg\0";
        let argv = [a0.as_ptr(), a1.as_ptr(), std::ptr::null()];
        let envp: [*const u8; 1] = [std::ptr::null()];
        // SAFETY: execve with valid NUL-terminated strings and arrays.
        unsafe {
            libc::execve(
                path.as_ptr().cast(),
                argv.as_ptr().cast(),
                envp.as_ptr().cast(),
            );
            libc::_exit(99);
        }
    }

    #[test]
    fn an_exec_is_recorded_with_its_path_and_argv() {
        let child = spawn_traced(&[libc::SYS_execve], exec_true).unwrap();
        let queue = EventQueue::new(1 << 20);
        let set = SyscallSet::new(["execve"]);
        let stats = serve_child(&child, &set, Some(&queue));
        assert_eq!(stats.recorded, 1);
        let mut out = Vec::new();
        queue.take(&mut out, std::time::Duration::ZERO);
        let recs: Vec<_> = Records::new(&out).collect();
        assert_eq!(recs.len(), 1);
        let (name, args) = crt_tracer::decode::render_args(&recs[0]);
        assert_eq!(name, "execve");
        assert_eq!(args[0], "\"/bin/true\"");
        assert_eq!(args[1], "[\"true\", \"--crt-arg\"]");
        assert!(args[2].ends_with("/* 0 vars */"), "{}", args[2]);
        let (rec, _) = decode(&out).unwrap();
        assert_eq!(rec.tid as i32, child.pid);
        assert!(!rec.comm().is_empty());
    }

    fn open_unreadable_pointer() {
        // SAFETY: openat with a bogus pointer: the kernel returns EFAULT.
        unsafe { libc::openat(libc::AT_FDCWD, 0x10 as *const libc::c_char, libc::O_RDONLY) };
    }

    #[test]
    fn an_unreadable_pointer_is_recorded_raw_and_the_syscall_continues() {
        let child = spawn_traced(&[libc::SYS_openat], open_unreadable_pointer).unwrap();
        let queue = EventQueue::new(1 << 20);
        let set = SyscallSet::new(["openat"]);
        serve_child(&child, &set, Some(&queue));
        let mut out = Vec::new();
        queue.take(&mut out, std::time::Duration::ZERO);
        let (rec, _) = decode(&out).unwrap();
        let (_, args) = crt_tracer::decode::render_args(&rec);
        assert_eq!(args[0], "AT_FDCWD");
        assert_eq!(args[1], "0x10");
    }

    fn many_getppid() {
        for _ in 0..1000 {
            // SAFETY: a plain syscall.
            unsafe { libc::syscall(libc::SYS_getppid) };
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_but_every_syscall_continues() {
        let child = spawn_traced(&[libc::SYS_getppid], many_getppid).unwrap();
        // Room for only a few records.
        let queue = EventQueue::new(1000);
        let set = SyscallSet::new(["getppid"]);
        let stats = serve_child(&child, &set, Some(&queue));
        assert_eq!(stats.notifications, 1000);
        assert_eq!(stats.send_errors, 0);
        assert!(queue.dropped() > 900);
        assert_eq!(queue.pushed() + queue.dropped(), 1000);
    }

    pub(crate) const OPENS: u64 = 2000;

    /// Opens /dev/null OPENS times; reports how many opens returned an fd.
    pub(crate) fn open_dev_null_repeatedly() -> u64 {
        let path = b"/dev/null\0";
        let mut ok = 0;
        for _ in 0..OPENS {
            // SAFETY: plain syscalls on a static NUL-terminated path.
            unsafe {
                let fd = libc::openat(libc::AT_FDCWD, path.as_ptr().cast(), libc::O_RDONLY);
                if fd >= 0 {
                    ok += 1;
                    libc::close(fd);
                }
            }
        }
        ok
    }

    /// Serves a reporting child with `serve_guarded` on a thread of its own
    /// (after running `prepare` there); returns the child's report and how
    /// the loop ended.
    fn serve_guarded_child(queue: &EventQueue, prepare: impl FnOnce() + Send) -> (u64, Served) {
        let child = crt_seccomp_notify::testutil::spawn_traced_reporting(
            &[libc::SYS_openat],
            open_dev_null_repeatedly,
        )
        .unwrap();
        let set = SyscallSet::new(["openat"]);
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                prepare();
                serve_guarded(
                    &child.listener,
                    &set,
                    Some(queue),
                    None,
                    None,
                    &AtomicU64::new(0),
                )
            });
            child.go();
            let report = child.report(std::time::Duration::from_secs(60));
            if report.is_err() {
                // Stuck: let the loop end so the test fails instead of hanging.
                child.kill();
            }
            let served = h.join().unwrap();
            (report.expect("the child reported"), served)
        })
    }

    #[test]
    fn a_loop_that_panics_in_its_queue_keeps_every_syscall_of_the_child_correct() {
        let queue = EventQueue::new(1 << 20);
        queue.panic_on_push(10);
        let (opened, served) = serve_guarded_child(&queue, || {});
        assert_eq!(opened, OPENS, "opens of /dev/null that returned an fd");
        assert!(served.panicked);
        // Nine records made it; the continue-only fallback records nothing.
        assert_eq!(queue.pushed(), 9);
        // The poisoned queue still works for storage and other threads.
        queue.push(b"x");
        let mut out = Vec::new();
        queue.take(&mut out, std::time::Duration::ZERO);
        assert_eq!(Records::new(&out[..out.len() - 1]).count(), 9);
    }

    #[test]
    fn a_loop_that_panics_before_answering_still_answers_that_syscall() {
        let queue = EventQueue::new(1 << 20);
        let (opened, served) = serve_guarded_child(&queue, || PANIC_BEFORE_ANSWER_AT.set(5));
        assert_eq!(opened, OPENS, "opens of /dev/null that returned an fd");
        assert!(served.panicked);
        assert_eq!(queue.pushed(), 4);
    }

    #[test]
    fn a_loop_that_does_not_panic_reports_so() {
        let queue = EventQueue::new(1 << 20);
        let (opened, served) = serve_guarded_child(&queue, || {});
        assert_eq!(opened, OPENS);
        assert!(!served.panicked);
        assert_eq!(served.stats.recorded, OPENS);
    }

    #[test]
    fn a_listener_served_without_a_queue_still_continues_everything() {
        let child = spawn_traced(&[libc::SYS_getppid], many_getppid).unwrap();
        let set = SyscallSet::new(["getppid"]);
        let stats = serve_child(&child, &set, None);
        assert_eq!(stats.notifications, 1000);
        assert_eq!(stats.recorded, 0);
    }
}
