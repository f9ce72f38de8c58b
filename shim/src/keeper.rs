//! The listener keeper: a small child process that holds a copy of every
//! seccomp listener fd the shim serves, so that a shim killed with SIGKILL
//! does not close the last copy (which would fail every notified syscall of
//! its containers with ENOSYS, DESIGN.md decision 3).
//!
//! While the shim lives, the keeper never receives a notification (it would
//! steal them from the notify loops); it only waits for new fds on its
//! control socket and closes the ones whose filter has no process left
//! (POLLHUP). When the control socket reaches EOF, the shim is gone: the
//! keeper answers CONTINUE to every notification, nothing recorded, until no
//! process uses any of its filters, then exits.
//!
//! A notification the shim received but had not answered when it died is
//! neither failed nor re-queued by the kernel: its thread would wait
//! forever. The shim therefore keeps the id of the notification each loop
//! holds in a word of memory shared with the keeper (one slot per listener),
//! and the keeper answers those first.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crt_seccomp_notify::handoff::{recv_with_fds, send_with_fd};
use crt_seccomp_notify::{NotifyListener, Recv, SeccompNotif};

/// `argv[1]` that makes the shim binary run as the keeper.
pub const ARG: &str = "--crt-listener-keeper";
/// The keeper's `argv[0]` (how `ps` shows it).
pub const NAME: &str = "crt-listener-keeper";
/// Listeners served at once, at most (the init and the execs of the shim's
/// containers); a listener beyond this is served, just not kept.
const SLOTS: usize = 4096;
/// The fds the keeper finds its control socket and the slots memory at.
const CONTROL_FD: RawFd = 3;
const SLOTS_FD: RawFd = 4;

/// The id of the notification a loop has received and not answered yet;
/// 0 when it has none (ids are random 64-bit values: 0 is as good as never).
type Slots = &'static [AtomicU64];

/// Maps the slots memory shared between the shim and its keeper; it lives as
/// long as the process.
fn map_slots(fd: RawFd) -> io::Result<Slots> {
    let len = SLOTS * std::mem::size_of::<AtomicU64>();
    // SAFETY: a fresh shared mapping of `len` bytes of our memfd; the
    // pointer is checked against MAP_FAILED before use.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the mapping is page-aligned, `len` bytes long, zero-filled
    // (a new memfd) or written only as AtomicU64s, and never unmapped: a
    // 'static slice of atomics over it is sound; other processes touching it
    // only through atomics is what AtomicU64 is for.
    Ok(unsafe { std::slice::from_raw_parts(p.cast::<AtomicU64>(), SLOTS) })
}

/// The shim's side: the control socket and the slots.
pub struct Keeper {
    control: UnixStream,
    slots: Slots,
    free: Mutex<Vec<u32>>,
    pid: u32,
}

static KEEPER: OnceLock<Option<Keeper>> = OnceLock::new();

/// The shim's keeper, started on first use; `None` (after one error in the
/// log) if it could not be started: the shim then works as before, its
/// listeners closing with it.
pub fn get() -> Option<&'static Keeper> {
    // A unit test binary cannot run as the keeper (its main is the test
    // harness); the keeper's parts are tested in-process instead.
    if cfg!(test) {
        return None;
    }
    KEEPER
        .get_or_init(|| match Keeper::start() {
            Ok(k) => {
                log::info!("listener keeper started (pid {})", k.pid);
                Some(k)
            }
            Err(e) => {
                log::error!("cannot start the listener keeper: {e}; a killed shim will fail its containers' traced syscalls");
                None
            }
        })
        .as_ref()
}

/// A listener's slot: where its loop keeps the id of the notification it is
/// handling. Freed when dropped (the listener is done).
pub struct Slot {
    index: u32,
    word: &'static AtomicU64,
    keeper: &'static Keeper,
}

impl Slot {
    pub fn word(&self) -> &AtomicU64 {
        self.word
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.word.store(0, Ordering::Relaxed);
        self.keeper
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(self.index);
    }
}

impl Keeper {
    /// Re-executes this binary as the keeper, with its end of a socket pair
    /// and the slots memory. It is spawned from an RPC thread, so it shares
    /// the shim's cgroups, never a container's (on cgroup v1 notify threads
    /// move into their container's cpu cgroups, and a child inherits its
    /// parent thread's), and it outlives the shim: nothing kills it but the
    /// end of the filters it holds.
    fn start() -> io::Result<Keeper> {
        // SAFETY: memfd_create with a NUL-terminated name and plain flags.
        let memfd = unsafe { libc::memfd_create(c"crt-keeper-slots".as_ptr(), libc::MFD_CLOEXEC) };
        if memfd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: memfd_create returned a new fd that nothing else owns.
        let memfd = unsafe { OwnedFd::from_raw_fd(memfd) };
        let len = (SLOTS * std::mem::size_of::<AtomicU64>()) as libc::off_t;
        // SAFETY: resizing our own memfd.
        if unsafe { libc::ftruncate(memfd.as_raw_fd(), len) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let slots = map_slots(memfd.as_raw_fd())?;
        let (ours, theirs) = UnixStream::pair()?;
        // Copies above the keeper's fd numbers, so that moving one into
        // place cannot overwrite the other before it is moved.
        let theirs = above_slots_fd(theirs.as_raw_fd())?;
        let memfd = above_slots_fd(memfd.as_raw_fd())?;
        let (control_src, slots_src) = (theirs.as_raw_fd(), memfd.as_raw_fd());
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg0(NAME)
            .arg(ARG)
            // Not the bundle, which is removed while the keeper may still run.
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: runs in the forked child before exec; dup2 is
        // async-signal-safe, the sources are open and above both targets
        // (so neither dup2 overwrites the other's source), and dup2 clears
        // close-on-exec on the copies only.
        unsafe {
            cmd.pre_exec(move || {
                for (src, dst) in [(control_src, CONTROL_FD), (slots_src, SLOTS_FD)] {
                    if libc::dup2(src, dst) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        // The reaper collects the keeper's exit; nobody waits for it here.
        let child = cmd.spawn()?;
        Ok(Keeper {
            control: ours,
            slots,
            free: Mutex::new((0..SLOTS as u32).rev().collect()),
            pid: child.id(),
        })
    }

    /// Hands the keeper a copy of `listener`; returns the listener's slot,
    /// or `None` if the keeper has no room or is gone (the listener is then
    /// served as before, unkept).
    pub fn hold(&'static self, listener: &NotifyListener) -> Option<Slot> {
        let index = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()?;
        let slot = Slot {
            index,
            word: &self.slots[index as usize],
            keeper: self,
        };
        match send_with_fd(&self.control, &index.to_le_bytes(), Some(listener)) {
            Ok(()) => Some(slot),
            Err(e) => {
                log::error!(
                    "cannot hand a listener to the keeper (pid {}): {e}",
                    self.pid
                );
                None
            }
        }
    }
}

/// A close-on-exec copy of `fd` numbered above [`SLOTS_FD`].
fn above_slots_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on an fd we hold open; the result is new.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, SLOTS_FD + 1) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fcntl returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

/// The keeper process: never returns.
pub fn run() -> ! {
    // SAFETY: the shim passed these fds to us at exec (Keeper::start).
    let control = unsafe { UnixStream::from_raw_fd(CONTROL_FD) };
    let slots = match map_slots(SLOTS_FD) {
        Ok(s) => s,
        Err(_) => std::process::exit(2),
    };
    let held = hold_while_the_shim_lives(&control);
    drop(control);
    take_over(held, slots);
    std::process::exit(0)
}

/// Keeps the listeners the shim sends until the shim's end of the control
/// socket closes; returns them with their slots.
fn hold_while_the_shim_lives(control: &UnixStream) -> Vec<(u32, OwnedFd)> {
    let mut held: Vec<(u32, OwnedFd)> = Vec::with_capacity(16);
    let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(17);
    let mut fds = Vec::with_capacity(8);
    loop {
        pfds.clear();
        pfds.push(libc::pollfd {
            fd: control.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        // No POLLIN: a pending notification is the shim's to receive; only
        // POLLHUP (no process uses the filter any more) matters here.
        pfds.extend(held.iter().map(|(_, fd)| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: 0,
            revents: 0,
        }));
        // SAFETY: `pfds` is a live array of pollfd of the given length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, -1) };
        if n < 0 {
            continue;
        }
        let hung_up: Vec<bool> = pfds[1..]
            .iter()
            .map(|p| p.revents & (libc::POLLHUP | libc::POLLNVAL) != 0)
            .collect();
        let mut i = 0;
        held.retain(|_| {
            i += 1;
            !hung_up[i - 1]
        });
        if pfds[0].revents == 0 {
            continue;
        }
        // One message per read: its slot index, with the listener attached.
        let mut index = [0u8; 4];
        fds.clear();
        match recv_with_fds(control, &mut index, &mut fds) {
            Ok(0) => return held,
            Ok(4) => {
                let slot = u32::from_le_bytes(index);
                if let Some(fd) = fds.pop() {
                    // A reused slot: its earlier listener has hung up already.
                    held.retain(|(s, _)| *s != slot);
                    held.push((slot, fd));
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return held,
        }
    }
}

/// The shim is gone: answers what it left unanswered, then continues every
/// notification of every listener (one small thread each, blocked in
/// receive like the shim's loops) until no process uses them.
fn take_over(held: Vec<(u32, OwnedFd)>, slots: Slots) {
    let mut threads = Vec::with_capacity(held.len());
    let mut unthreaded = Vec::new();
    for (slot, fd) in held {
        let Ok(listener) = NotifyListener::new(fd) else {
            continue;
        };
        let left = slots
            .get(slot as usize)
            .map_or(0, |w| w.swap(0, Ordering::Relaxed));
        if left != 0 {
            let _ = listener.continue_syscall(left);
        }
        let listener = Arc::new(listener);
        let for_thread = Arc::clone(&listener);
        let serve = move || continue_all(&for_thread);
        match std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(serve)
        {
            Ok(t) => threads.push(t),
            // Served here, one after the other: slower, never failed.
            Err(_) => unthreaded.push(listener),
        }
    }
    for listener in unthreaded {
        continue_all(&listener);
    }
    for t in threads {
        let _ = t.join();
    }
}

/// Lets every notified syscall of `listener` run, until no process uses it.
pub fn continue_all(listener: &NotifyListener) {
    let mut notif = SeccompNotif::default();
    loop {
        match listener.recv(&mut notif) {
            Ok(Recv::Notification) => {
                let _ = listener.continue_syscall(notif.id);
            }
            Ok(Recv::Closed) => return,
            Ok(Recv::Interrupted | Recv::Vanished) => {}
            Err(_) => {
                if !listener.has_users() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::notify_loop::tests::{open_dev_null_repeatedly, OPENS};
    use crt_seccomp_notify::testutil::{read_report, spawn_traced_reporting};
    use std::time::Duration;

    #[test]
    fn the_keeper_continues_every_syscall_after_the_shim_dies_mid_flood() {
        let child = spawn_traced_reporting(&[libc::SYS_openat], open_dev_null_repeatedly).unwrap();
        let (pid, listener, control) = child.into_parts();
        let slots: Slots = Box::leak((0..4).map(|_| AtomicU64::new(0)).collect());
        let (shim_end, keeper_end) = UnixStream::pair().unwrap();
        let keeper = std::thread::spawn(move || {
            let held = hold_while_the_shim_lives(&keeper_end);
            drop(keeper_end);
            let kept = held.len();
            take_over(held, slots);
            kept
        });
        send_with_fd(&shim_end, &2u32.to_le_bytes(), Some(&listener)).unwrap();
        // The shim serves part of the flood as its notify loop does, then
        // dies between receiving a notification and answering it.
        std::io::Write::write_all(&mut &control, b"g").unwrap();
        let mut n = SeccompNotif::default();
        for _ in 0..OPENS / 4 {
            assert_eq!(listener.recv(&mut n).unwrap(), Recv::Notification);
            slots[2].store(n.id, Ordering::Relaxed);
            listener.continue_syscall(n.id).unwrap();
            slots[2].store(0, Ordering::Relaxed);
        }
        assert_eq!(listener.recv(&mut n).unwrap(), Recv::Notification);
        slots[2].store(n.id, Ordering::Relaxed);
        drop(listener);
        drop(shim_end);

        let report = read_report(&control, Duration::from_secs(60));
        if report.is_err() {
            // SAFETY: killing our own stuck child, so the keeper can end.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        assert_eq!(
            report.unwrap(),
            OPENS,
            "opens of /dev/null that returned an fd"
        );
        assert_eq!(keeper.join().unwrap(), 1, "listeners the keeper held");
    }
}
