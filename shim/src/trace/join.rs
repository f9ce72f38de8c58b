//! The storage side's half of results: completes each syscall entry with
//! what its exit said (exits.rs), by thread id and sequence number.
//!
//! An entry whose exit has not come a short while after it was recorded (a
//! blocking `accept`, a `read` from an idle pipe) is stored unfinished, as
//! strace shows `<unfinished ...>`; its exit becomes a record of its own
//! when it comes (`<... resumed>`). A thread makes one syscall at a time, so
//! when a thread's next entry arrives while an earlier one still waits for
//! its exit, that exit is lost (the program's buffer was full, or another
//! thread took the slot): such entries are counted, never guessed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crt_tracer::capture::{exit_plan, OutPlan};
use crt_tracer::record::{
    self, Record, RecordBuilder, Records, FLAG_UNFINISHED, HEADER_LEN, KIND_SYSCALL,
};
use crt_tracer::render::now_ns;
use crt_tracer::syscalls;

use super::exits::{Exit, ExitProbe};

/// How long after an entry was recorded its exit is waited for before the
/// entry is stored unfinished.
const HOLD: Duration = Duration::from_millis(10);
/// Most unfinished entries remembered (one per thread at most).
const MAX_PENDING: usize = 1 << 16;

pub struct Joiner {
    probe: Arc<ExitProbe>,
    /// Entries stored unfinished, by thread: the entry record.
    pending: HashMap<u32, Vec<u8>>,
    /// Entries whose result is known to be lost.
    lost: u64,
    /// Records waiting a moment for an exit, with everything after them.
    held: Vec<u8>,
}

impl Joiner {
    pub fn new(probe: Arc<ExitProbe>) -> Self {
        Joiner {
            probe,
            pending: HashMap::new(),
            lost: 0,
            held: Vec::new(),
        }
    }

    /// Results lost so far (the drops record's `args[2]`).
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Entries stored unfinished whose exit has not come yet.
    #[cfg(test)]
    pub fn unfinished(&self) -> usize {
        self.pending.len()
    }

    /// Records held back, waiting a moment for an exit (see [`Self::complete`]).
    pub fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Moves the records held back, then `batch` (whole records, as the
    /// queue gives them), into `out`, in order: each syscall entry with the
    /// result of its exit added, or marked unfinished once [`HOLD`] has
    /// passed since it was recorded without its exit (at once when `flush`).
    /// From the first entry still worth waiting for, records stay held
    /// until a later call: storage never sleeps here, and order is kept.
    /// Exits of entries stored unfinished before come first.
    pub fn complete(&mut self, batch: &[u8], out: &mut Vec<u8>, flush: bool) {
        self.probe.drain();
        self.resume_pending(out);
        let mut work = std::mem::take(&mut self.held);
        work.extend_from_slice(batch);
        let now = now_ns();
        let mut records = Records::new(&work);
        let mut kept_from = None;
        for r in records.by_ref() {
            if r.kind != KIND_SYSCALL || r.seq == 0 {
                out.extend_from_slice(r.as_bytes());
                continue;
            }
            let exit = self.probe.take(r.tid, r.seq).filter(|e| e.nr == r.nr);
            if exit.is_none() && !flush && r.ts_ns + HOLD.as_nanos() as u64 > now {
                kept_from = Some(r.as_bytes().as_ptr() as usize - work.as_ptr() as usize);
                break;
            }
            if self.pending.remove(&r.tid).is_some() {
                self.lost += 1;
            }
            let start = out.len();
            out.extend_from_slice(r.as_bytes());
            match exit {
                Some(exit) => {
                    let mut b = RecordBuilder::extend(out, start);
                    add_exit(&mut b, &r, &exit);
                    b.finish();
                }
                None => {
                    out[start + 5] |= FLAG_UNFINISHED;
                    if self.pending.len() < MAX_PENDING {
                        // The header is all a resumed record needs.
                        let mut entry = out[start..start + HEADER_LEN].to_vec();
                        entry[0..4].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
                        entry[6..8].fill(0);
                        self.pending.insert(r.tid, entry);
                    } else {
                        self.lost += 1;
                    }
                }
            }
        }
        if let Some(at) = kept_from {
            work.drain(..at);
            self.held = work;
        }
    }

    /// Appends the exit records of unfinished entries whose exits came.
    fn resume_pending(&mut self, out: &mut Vec<u8>) {
        if self.pending.is_empty() {
            return;
        }
        let probe = &self.probe;
        self.pending.retain(|_, entry| {
            let Ok((r, _)) = record::decode(entry) else {
                return false;
            };
            let Some(exit) = probe.take(r.tid, r.seq).filter(|e| e.nr == r.nr) else {
                return true;
            };
            let mut b = record::begin_exit(out, &r, r.ts_ns + exit.duration_ns);
            add_exit(&mut b, &r, &exit);
            b.finish();
            false
        });
    }
}

/// Adds what `exit` says to the record of its entry `r`.
fn add_exit(b: &mut RecordBuilder<'_>, r: &Record<'_>, exit: &Exit) {
    b.result(exit.ret, Some(exit.duration_ns));
    let plan = syscalls::by_nr(r.arch, r.nr).and_then(|info| exit_plan(info.args));
    if let (Some(out), Some((arg, plan))) = (&exit.out, plan) {
        let truncated = match plan {
            OutPlan::RetBytes { .. } => exit.ret > out.len() as i64,
            OutPlan::Fixed { .. } => false,
            OutPlan::SockAddr { .. } => {
                let socklen = out
                    .get(..4)
                    .map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()));
                socklen as usize > out.len().saturating_sub(4)
            }
        };
        b.out_bytes(arg, out, truncated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::notify_loop::{serve_guarded, SyscallSet};
    use crate::trace::queue::EventQueue;
    use crt_seccomp_notify::testutil::spawn_traced_reporting;
    use crt_tracer::record::FLAG_RESUMED;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Calls with known results: an open that fails, one that returns the
    /// lowest free fd, a read of a known length, a pipe, a 30 ms sleep.
    /// Reports the fds it got: the open's, then the pipe's, 16 bits each.
    fn known_results() -> u64 {
        // SAFETY: plain syscalls on static NUL-terminated strings and stack buffers.
        unsafe {
            libc::openat(libc::AT_FDCWD, c"/nonexistent-crt".as_ptr(), libc::O_RDONLY);
            let fd = libc::openat(libc::AT_FDCWD, c"/proc/version".as_ptr(), libc::O_RDONLY);
            let mut buf = [0u8; 64];
            libc::pread64(fd, buf.as_mut_ptr().cast(), 10, 0);
            let mut fds = [0i32; 2];
            libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC);
            let ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 30_000_000,
            };
            let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as u16;
            addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
            libc::bind(
                sock,
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            );
            let mut name = [0u8; 128];
            let mut len: libc::socklen_t = 128;
            libc::getsockname(sock, name.as_mut_ptr().cast(), &mut len);
            // (glibc's nanosleep() makes clock_nanosleep.)
            libc::syscall(
                libc::SYS_nanosleep,
                &ts,
                std::ptr::null_mut::<libc::timespec>(),
            );
            fd as u64 | (fds[0] as u64) << 16 | (fds[1] as u64) << 32
        }
    }

    /// Runs `body` in a child whose `names` syscalls are traced with
    /// results, into `queue`, until it exits; returns what it reported.
    fn trace_child(
        probe: &ExitProbe,
        names: &[&str],
        body: fn() -> u64,
        queue: &EventQueue,
    ) -> u64 {
        let nrs: Vec<i64> = names
            .iter()
            .map(|n| i64::from(syscalls::by_name(n).unwrap().nr))
            .collect();
        let child = spawn_traced_reporting(&nrs, body).unwrap();
        let set = SyscallSet::new(names);
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                serve_guarded(
                    &child.listener,
                    &set,
                    Some(queue),
                    None,
                    Some(probe),
                    &AtomicU64::new(0),
                )
            });
            child.go();
            let report = child.report(Duration::from_secs(120));
            child.wait();
            h.join().unwrap();
            report.expect("the child reported")
        })
    }

    #[test]
    fn each_entry_is_completed_with_its_result_duration_and_output_data() {
        let probe = ExitProbe::load().expect("the syscall-exit program loads (root, BPF)");
        let queue = EventQueue::new(1 << 20);
        let names = ["openat", "pread64", "pipe2", "getsockname", "nanosleep"];
        let fds = trace_child(&probe, &names, known_results, &queue);
        let mut batch = Vec::new();
        queue.take(&mut batch, Duration::ZERO);
        let mut joiner = Joiner::new(Arc::clone(&probe));
        let mut out = Vec::new();
        joiner.complete(&batch, &mut out, false);
        assert!(!joiner.holding(), "every exit came before the child ended");
        let recs: Vec<_> = Records::new(&out).collect();
        let calls: Vec<(String, i64)> = recs
            .iter()
            .map(|r| {
                let name = syscalls::by_nr(r.arch, r.nr).unwrap().name.to_string();
                let ret = r.result().expect("every call has its result").ret;
                (name, ret)
            })
            .collect();
        let (fd, pipe) = (fds & 0xffff, [(fds >> 16) & 0xffff, fds >> 32]);
        assert_eq!(
            calls,
            [
                ("openat".to_string(), -i64::from(libc::ENOENT)),
                ("openat".to_string(), fd as i64),
                ("pread64".to_string(), 10),
                ("pipe2".to_string(), 0),
                ("getsockname".to_string(), 0),
                ("nanosleep".to_string(), 0),
            ]
        );
        let version = std::fs::read("/proc/version").unwrap();
        assert_eq!(recs[2].out_capture(1), Some((&version[..10], false)));
        let written = recs[3].out_capture(0).unwrap().0;
        let pipe = pipe.map(|p| (p as i32).to_le_bytes()).concat();
        assert_eq!(written, pipe);
        // The address the kernel wrote, and the length given and returned.
        let call = crt_tracer::render::strace_call(&recs[4]);
        assert!(
            call.starts_with("getsockname(")
                && call.contains(r#"{sa_family=AF_INET, sin_port=htons("#)
                && call.ends_with(r#", sin_addr=inet_addr("127.0.0.1")}, [128 => 16]) = 0"#),
            "{call}"
        );
        let slept = recs[5].result().unwrap().duration_ns.unwrap();
        assert!(
            (30_000_000..1_000_000_000).contains(&slept),
            "a 30 ms sleep measured {slept} ns"
        );
        assert!(recs.iter().all(|r| r.flags & FLAG_UNFINISHED == 0));
        assert_eq!(joiner.lost(), 0);
        assert!(recs.iter().all(|r| r.flags & FLAG_RESUMED == 0));
    }

    fn sleep_200ms() {
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        // SAFETY: a plain syscall on a stack timespec.
        unsafe {
            libc::syscall(
                libc::SYS_nanosleep,
                &ts,
                std::ptr::null_mut::<libc::timespec>(),
            )
        };
    }

    #[test]
    fn a_call_still_running_is_stored_unfinished_and_its_exit_follows_as_a_record_of_its_own() {
        let probe = ExitProbe::load().expect("the syscall-exit program loads (root, BPF)");
        let child = crt_seccomp_notify::testutil::spawn_traced(&[libc::SYS_nanosleep], sleep_200ms)
            .unwrap();
        let queue = EventQueue::new(1 << 20);
        let set = SyscallSet::new(["nanosleep"]);
        let mut joiner = Joiner::new(Arc::clone(&probe));
        let mut out = Vec::new();
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                serve_guarded(
                    &child.listener,
                    &set,
                    Some(&queue),
                    None,
                    Some(&probe),
                    &AtomicU64::new(0),
                )
            });
            child.go();
            let mut batch = Vec::new();
            while batch.is_empty() {
                queue.take(&mut batch, Duration::from_millis(20));
            }
            // Held back a moment for its exit (if younger than that), then
            // stored unfinished.
            joiner.complete(&batch, &mut out, false);
            while out.is_empty() {
                std::thread::sleep(Duration::from_millis(2));
                joiner.complete(&[], &mut out, false);
            }
            assert!(!joiner.holding());
            child.wait();
            h.join().unwrap();
        });
        let (entry, len) = record::decode(&out).unwrap();
        assert_eq!(len, out.len());
        assert_ne!(entry.flags & FLAG_UNFINISHED, 0);
        assert_eq!(entry.result(), None);
        assert_eq!(joiner.unfinished(), 1);

        let mut more = Vec::new();
        probe.drain();
        joiner.resume_pending(&mut more);
        let (exit, _) = record::decode(&more).unwrap();
        assert_eq!(
            (exit.kind, exit.flags, exit.tid, exit.seq, exit.nr),
            (KIND_SYSCALL, FLAG_RESUMED, entry.tid, entry.seq, entry.nr)
        );
        let r = exit.result().unwrap();
        assert_eq!(r.ret, 0);
        assert!(r.duration_ns.unwrap() >= 200_000_000, "{r:?}");
        assert!(exit.ts_ns > entry.ts_ns);
        assert_eq!((joiner.unfinished(), joiner.lost()), (0, 0));
    }

    #[test]
    fn a_thread_whose_next_call_arrives_before_the_last_ones_exit_counts_that_result_as_lost() {
        let probe = ExitProbe::load().expect("the syscall-exit program loads (root, BPF)");
        let mut joiner = Joiner::new(probe);
        // Entries whose exits never come (recorded long ago: no waiting).
        let mut batch = Vec::new();
        for (tid, seq) in [(7, 0xffff_0001), (8, 0xffff_0002), (7, 0xffff_0003)] {
            let mut b =
                RecordBuilder::begin(&mut batch, KIND_SYSCALL, 1, tid, 0xc000_003e, 0, &[0; 6]);
            b.set_seq(seq);
            b.finish();
        }
        let mut out = Vec::new();
        joiner.complete(&batch, &mut out, false);
        let recs: Vec<_> = Records::new(&out).collect();
        assert_eq!(recs.len(), 3);
        assert!(recs.iter().all(|r| r.flags & FLAG_UNFINISHED != 0));
        // Thread 7's first call can no longer end: its second one started.
        assert_eq!((joiner.lost(), joiner.unfinished()), (1, 2));
    }

    const GETPPIDS: u64 = 40_000;

    fn many_getppid() -> u64 {
        let mut ok = 0;
        for _ in 0..GETPPIDS {
            // SAFETY: a plain syscall.
            if unsafe { libc::syscall(libc::SYS_getppid) } > 0 {
                ok += 1;
            }
        }
        ok
    }

    #[test]
    fn when_the_exit_buffer_overflows_every_call_still_runs_is_recorded_and_the_lost_results_are_counted(
    ) {
        let probe = ExitProbe::load().expect("the syscall-exit program loads (root, BPF)");
        // Nobody reads the ring buffer (256 KiB: about 6 500 exits) while
        // the child makes 40 000 traced calls.
        probe.paused.store(true, Ordering::Relaxed);
        let queue = EventQueue::new(64 << 20);
        let ok = trace_child(&probe, &["getppid"], many_getppid, &queue);
        assert_eq!(ok, GETPPIDS, "getppid calls that returned the parent");
        let overflowed = probe.lost();
        assert!(overflowed > 0, "the buffer never overflowed");
        probe.paused.store(false, Ordering::Relaxed);

        let mut batch = Vec::new();
        queue.take(&mut batch, Duration::ZERO);
        let mut joiner = Joiner::new(Arc::clone(&probe));
        let mut out = Vec::new();
        // As at the end of a trace: nothing more will come.
        joiner.complete(&batch, &mut out, true);
        let recs: Vec<_> = Records::new(&out).collect();
        assert_eq!(recs.len() as u64, GETPPIDS, "every call is recorded");
        let with_result = recs.iter().filter(|r| r.result().is_some()).count() as u64;
        assert_eq!(with_result + overflowed, GETPPIDS);
        // The last call's exit is missing too but cannot be known lost yet:
        // it may still come.
        assert_eq!(joiner.lost(), overflowed - 1);
        assert_eq!(joiner.unfinished(), 1);
    }

    #[test]
    fn a_young_entry_without_its_exit_is_held_with_what_follows_it_until_flushed() {
        let probe = ExitProbe::load().expect("the syscall-exit program loads (root, BPF)");
        let mut joiner = Joiner::new(probe);
        let mut batch = Vec::new();
        let mut b = RecordBuilder::begin(
            &mut batch,
            KIND_SYSCALL,
            now_ns(),
            9,
            0xc000_003e,
            0,
            &[0; 6],
        );
        b.set_seq(0xfff0_0001);
        b.finish();
        batch.extend_from_slice(&record::simple(
            record::KIND_LOG,
            now_ns(),
            0,
            &[1, 0, 0, 0, 0, 0],
            b"",
        ));
        let mut out = Vec::new();
        joiner.complete(&batch, &mut out, false);
        assert!(out.is_empty() && joiner.holding());
        joiner.complete(&[], &mut out, true);
        let recs: Vec<_> = Records::new(&out).collect();
        assert_eq!(
            recs.iter().map(|r| (r.kind, r.flags)).collect::<Vec<_>>(),
            [(KIND_SYSCALL, FLAG_UNFINISHED), (record::KIND_LOG, 0)]
        );
        assert!(!joiner.holding());
    }
}
