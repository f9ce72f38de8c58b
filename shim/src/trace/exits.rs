//! Syscall results, from the syscall's exit (DESIGN.md, decision 6).
//!
//! The notify loop answers CONTINUE and never sees what the syscall
//! returns. So the shim loads a small BPF program on the raw `sys_exit`
//! tracepoint (`bpf/exits.bpf.c`, compiled by build.rs) and shares with it
//! an array of slots, one per thread id modulo [`SLOTS`], mapped into both.
//! Just before answering, the notify loop *arms* the caller's slot: thread
//! id, the record's sequence number, the syscall number and which memory to
//! read at the exit. When that thread leaves that syscall, the program sends
//! the result, the time since arming and the memory through a ring buffer,
//! and disarms the slot. The storage side joins each exit to its entry by
//! (thread id, sequence number): exactly, never by guessing.
//!
//! The cost elsewhere on the node: every thread's syscall exit runs the
//! program, which does one array lookup and a compare before returning.
//!
//! When the program cannot be loaded (no BPF, no permission, an old
//! kernel), nothing changes for the traced containers: their records carry
//! no result (`= ?`) and the trace says why.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use aya::maps::{Array, Map, MapData, RingBuf};
use aya::programs::RawTracePoint;
use crt_tracer::capture::{OutPlan, OUT_MAX_CAPTURE, SOCKADDR_MAX_CAPTURE};

static PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/exits.bpf.o"));

/// Slots in the shared array (a power of two; as `SLOTS` in exits.bpf.c).
pub const SLOTS: usize = 2048;

const MODE_NONE: u32 = 0;
const MODE_RET_BYTES: u32 = 1;
const MODE_FIXED: u32 = 2;
const MODE_SOCKADDR: u32 = 3;

const STATE_IDLE: u32 = 0;
const STATE_ARMED: u32 = 1;

/// The exit's memory could not be read.
const EXIT_OUT_UNREADABLE: u16 = 1;

/// One slot, as `struct slot` in exits.bpf.c.
#[repr(C)]
struct Slot {
    tid: u32,
    seq: u32,
    nr: u32,
    state: u32,
    armed_ns: u64,
    out_addr: u64,
    aux_addr: u64,
    out_mode: u32,
    out_max: u32,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 48);

/// `struct exit_event`'s fixed part.
const EVENT_HEADER: usize = 32;

/// Exits nobody claimed (their entry was dropped, or was stale) are
/// forgotten after this long.
const UNCLAIMED_TTL: Duration = Duration::from_secs(10);
/// Most exits kept waiting for their entries.
const MAX_WAITING: usize = 1 << 16;

/// What a syscall's exit said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    pub nr: u32,
    pub ret: i64,
    /// From the moment the notify loop answered to the exit.
    pub duration_ns: u64,
    /// The output argument read at the exit (as `capture::OutPlan` says),
    /// `None` when there was nothing to read or it could not be read.
    pub out: Option<Vec<u8>>,
}

/// The loaded program, its shared slots and its ring buffer.
pub struct ExitProbe {
    /// Holds the program and its attachment: dropping it detaches.
    _ebpf: aya::Ebpf,
    slots: SlotMap,
    ring: Mutex<Ring>,
    lost: Array<MapData, u64>,
    next_seq: AtomicU32,
    /// Tests: nobody reads the ring buffer while set, so it fills up.
    #[cfg(test)]
    pub paused: std::sync::atomic::AtomicBool,
}

struct Ring {
    buf: RingBuf<MapData>,
    waiting: HashMap<(u32, u32), (Exit, Instant)>,
    last_purge: Instant,
}

/// The slot array, mapped into this process.
struct SlotMap {
    base: *mut Slot,
    len: usize,
}

// SAFETY: the mapping is plain shared memory that lives as long as the
// SlotMap; every access goes through volatile reads and writes of whole
// fields, and concurrent writers can at worst leave a slot that matches no
// exit (joins check thread id and sequence number).
unsafe impl Send for SlotMap {}
// SAFETY: as above.
unsafe impl Sync for SlotMap {}

impl Drop for SlotMap {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the region mmap returned.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec (a vDSO call, no syscall).
    // CLOCK_MONOTONIC is the clock of bpf_ktime_get_ns.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `what: error: its cause: ...` (aya's errors keep the kernel's answer
/// in their sources).
fn err(what: &str, e: impl std::error::Error) -> String {
    let mut msg = format!("{what}: {e}");
    let mut cause = e.source();
    while let Some(c) = cause {
        msg.push_str(": ");
        msg.push_str(&c.to_string());
        cause = c.source();
    }
    msg
}

impl ExitProbe {
    /// Loads and attaches the program; the error says why it could not be
    /// (it becomes the trace's `results_unavailable`).
    pub fn load() -> Result<Arc<ExitProbe>, String> {
        // Without the kernel's BTF: the program needs no CO-RE relocation,
        // and parsing the kernel's 5 MB of type information would leave the
        // shim 15 MB bigger for as long as it lives.
        let mut ebpf = aya::EbpfLoader::new()
            .btf(None)
            .load(PROGRAM)
            .map_err(|e| err("cannot load the syscall-exit BPF program", e))?;
        let prog: &mut RawTracePoint = ebpf
            .program_mut("crt_sys_exit")
            .ok_or("the BPF object has no crt_sys_exit program")?
            .try_into()
            .map_err(|e| err("crt_sys_exit is not a raw tracepoint program", e))?;
        prog.load()
            .map_err(|e| err("the kernel refused the syscall-exit BPF program", e))?;
        prog.attach("sys_exit")
            .map_err(|e| err("cannot attach to the raw tracepoint sys_exit", e))?;
        let slots = match ebpf.map("slots") {
            Some(Map::Array(data)) => map_slots(data)?,
            _ => return Err("the BPF object has no slots array".into()),
        };
        let buf = RingBuf::try_from(ebpf.take_map("exits").ok_or("no exits ring buffer")?)
            .map_err(|e| err("the exits map is not a ring buffer", e))?;
        let lost = Array::try_from(ebpf.take_map("lost").ok_or("no lost counter")?)
            .map_err(|e| err("the lost map is not an array", e))?;
        let probe = Arc::new(ExitProbe {
            _ebpf: ebpf,
            slots,
            ring: Mutex::new(Ring {
                buf,
                waiting: HashMap::new(),
                last_purge: Instant::now(),
            }),
            lost,
            next_seq: AtomicU32::new(1),
            #[cfg(test)]
            paused: std::sync::atomic::AtomicBool::new(false),
        });
        // Loading parsed and relocated the object on the heap: give that
        // memory back, the shim stays resident beside its containers.
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only returns free heap memory to the system.
        unsafe {
            libc::malloc_trim(0);
        }
        let reader = Arc::downgrade(&probe);
        let fd = probe.ring().buf.as_raw_fd();
        std::thread::Builder::new()
            .name("syscall-exits".into())
            .spawn(move || read_exits(reader, fd))
            .map_err(|e| err("cannot start the exit reader", e))?;
        Ok(probe)
    }

    /// A fresh sequence number for a record (never 0).
    pub fn next_seq(&self) -> u32 {
        loop {
            let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
            if seq != 0 {
                return seq;
            }
        }
    }

    fn slot(&self, tid: u32) -> *mut Slot {
        // SAFETY: the index is below SLOTS, and the mapping holds SLOTS slots.
        unsafe { self.slots.base.add(tid as usize & (SLOTS - 1)) }
    }

    /// Arms `tid`'s slot for syscall `nr` (arguments `args`, output argument
    /// to read at the exit as `capture::exit_plan` gives it), so that its
    /// exit is reported under `seq`. Called before the notification is
    /// answered. Returns true when the slot was armed for another thread
    /// that has not left its syscall yet (that thread's result is lost; see
    /// [`SLOTS`]).
    pub fn arm(
        &self,
        tid: u32,
        seq: u32,
        nr: u32,
        out: Option<(u8, OutPlan)>,
        args: &[u64; 6],
    ) -> bool {
        let (mode, max, out_addr, aux_addr) = out
            .map(|(arg, plan)| {
                let addr = args[arg as usize];
                match plan {
                    OutPlan::RetBytes { max } => (MODE_RET_BYTES, max, addr, 0),
                    OutPlan::Fixed { len } => (MODE_FIXED, len, addr, 0),
                    OutPlan::SockAddr { len_arg } => (
                        MODE_SOCKADDR,
                        SOCKADDR_MAX_CAPTURE,
                        addr,
                        args[len_arg as usize],
                    ),
                }
            })
            .unwrap_or((MODE_NONE, 0, 0, 0));
        let (mode, out_addr) = if out_addr == 0 || (mode == MODE_SOCKADDR && aux_addr == 0) {
            (MODE_NONE, 0)
        } else {
            (mode, out_addr)
        };
        let s = self.slot(tid);
        // SAFETY: `s` points into the live mapping; whole-field volatile
        // accesses (see SlotMap). The state is written last, after a fence:
        // the program only trusts a slot once it reads STATE_ARMED.
        unsafe {
            let taken = (&raw const (*s).state).read_volatile() == STATE_ARMED
                && (&raw const (*s).tid).read_volatile() != tid;
            (&raw mut (*s).state).write_volatile(STATE_IDLE);
            fence(Ordering::Release);
            (&raw mut (*s).tid).write_volatile(tid);
            (&raw mut (*s).seq).write_volatile(seq);
            (&raw mut (*s).nr).write_volatile(nr);
            (&raw mut (*s).out_addr).write_volatile(out_addr);
            (&raw mut (*s).aux_addr).write_volatile(aux_addr);
            (&raw mut (*s).out_mode).write_volatile(mode);
            (&raw mut (*s).out_max).write_volatile(max.min(OUT_MAX_CAPTURE) as u32);
            (&raw mut (*s).armed_ns).write_volatile(monotonic_ns());
            fence(Ordering::Release);
            (&raw mut (*s).state).write_volatile(STATE_ARMED);
            taken
        }
    }

    /// Disarms `tid`'s slot if it is still armed for `seq` (the answer
    /// failed: the notification was withdrawn).
    pub fn disarm(&self, tid: u32, seq: u32) {
        let s = self.slot(tid);
        // SAFETY: as in `arm`.
        unsafe {
            if (&raw const (*s).tid).read_volatile() == tid
                && (&raw const (*s).seq).read_volatile() == seq
            {
                (&raw mut (*s).state).write_volatile(STATE_IDLE);
            }
        }
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads every exit the program has sent so far.
    pub fn drain(&self) {
        #[cfg(test)]
        if self.paused.load(Ordering::Relaxed) {
            return;
        }
        self.ring().drain();
    }

    /// The exit reported for (`tid`, `seq`), if it came (call [`Self::drain`]
    /// first to see everything up to now).
    pub fn take(&self, tid: u32, seq: u32) -> Option<Exit> {
        self.ring().waiting.remove(&(tid, seq)).map(|(e, _)| e)
    }

    /// Exits the program could not send (its ring buffer was full).
    pub fn lost(&self) -> u64 {
        self.lost.get(&0, 0).unwrap_or(0)
    }
}

impl Ring {
    fn drain(&mut self) {
        let now = Instant::now();
        while let Some(item) = self.buf.next() {
            if let Some((key, exit)) = parse_event(&item) {
                if self.waiting.len() < MAX_WAITING {
                    self.waiting.insert(key, (exit, now));
                }
            }
        }
        if now.duration_since(self.last_purge) >= UNCLAIMED_TTL {
            self.last_purge = now;
            self.waiting
                .retain(|_, (_, at)| now.duration_since(*at) < UNCLAIMED_TTL);
        }
    }
}

fn parse_event(b: &[u8]) -> Option<((u32, u32), Exit)> {
    if b.len() < EVENT_HEADER {
        return None;
    }
    let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let out_len = u16::from_le_bytes([b[12], b[13]]) as usize;
    let flags = u16::from_le_bytes([b[14], b[15]]);
    let out = b.get(EVENT_HEADER..EVENT_HEADER + out_len)?;
    Some((
        (u32_at(0), u32_at(4)),
        Exit {
            nr: u32_at(8),
            ret: u64_at(16) as i64,
            duration_ns: u64_at(24),
            out: (flags & EXIT_OUT_UNREADABLE == 0 && !out.is_empty()).then(|| out.to_vec()),
        },
    ))
}

/// Maps the program's slot array into this process.
fn map_slots(data: &MapData) -> Result<SlotMap, String> {
    let len = (SLOTS * std::mem::size_of::<Slot>()).next_multiple_of(4096);
    let fd = data.fd().as_fd().as_raw_fd();
    // SAFETY: mapping a BPF_F_MMAPABLE array map of at least `len` bytes;
    // the result is checked before use.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(err(
            "cannot map the slot array",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(SlotMap {
        base: base.cast(),
        len,
    })
}

/// Drains the ring buffer when the program says it is filling up (the
/// storage threads drain it before each batch anyway), while the probe
/// lives; an idle shim wakes once a second. `fd` is the ring buffer's.
fn read_exits(probe: std::sync::Weak<ExitProbe>, fd: std::os::fd::RawFd) {
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd on the stack. poll only uses the fd's number:
        // once the probe is gone (checked right after) a closed fd merely
        // reports POLLNVAL.
        unsafe { libc::poll(&mut pfd, 1, 1000) };
        match probe.upgrade() {
            Some(p) => p.drain(),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AS_NOBODY: &str = "CRT_TEST_LOAD_AS_NOBODY";

    /// Run by `a_node_that_refuses_bpf_gets_a_reason_not_a_failure`, as
    /// user nobody (no capabilities): prints what loading said.
    #[test]
    fn load_as_the_current_user() {
        if std::env::var_os(AS_NOBODY).is_none() {
            return;
        }
        match ExitProbe::load() {
            Ok(_) => println!("LOADED"),
            Err(why) => println!("REFUSED: {why}"),
        }
    }

    #[test]
    fn a_node_that_refuses_bpf_gets_a_reason_not_a_failure() {
        let exe = std::env::current_exe().unwrap();
        // Other tests of this binary run the shim's reaper, which may
        // collect the child's status first: read its output to the end
        // instead of relying on its exit status.
        let mut child = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&exe)
            .args([
                "--exact",
                "trace::exits::tests::load_as_the_current_user",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(AS_NOBODY, "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("setpriv (util-linux) runs");
        let mut stdout = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
        let _ = child.wait();
        assert!(stdout.contains("test result: ok. 1 passed"), "{stdout}");
        let line = stdout
            .lines()
            .find(|l| l.contains("REFUSED: ") || l.contains("LOADED"))
            .unwrap_or_else(|| panic!("no outcome in: {stdout}"));
        assert!(line.contains("REFUSED: "), "{line}");
        assert!(line.contains("syscall-exit BPF program"), "{line}");
        assert!(
            line.contains("not permitted"),
            "the kernel's answer is kept: {line}"
        );
        // And as root (the shim), it loads.
        assert!(ExitProbe::load().is_ok());
    }
}
