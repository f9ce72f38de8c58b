//! Every child exit goes through here. The shim is a subreaper: the
//! container's processes are re-parented to it and it must reap them, and it
//! also runs the runtime binary as a child. A single SIGCHLD thread reaps
//! everything and routes each exit either to whoever spawned that pid (a
//! runtime command being waited for) or to the container exit handler.
//!
//! Nothing else in the shim may wait on a child (`Child::wait`, `output`):
//! the reaper would steal the status. Spawn through [`Reaper::spawn`].

use std::collections::{HashMap, VecDeque};
use std::io;
use std::process::{Child, Command};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, OnceLock};

/// A reaped child: its pid and its exit code (128 + signal when killed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    pub pid: i32,
    pub status: i32,
}

/// Exits nobody claimed yet are kept (up to this many) until an exit handler is set.
const UNCLAIMED_MAX: usize = 4096;

pub struct Reaper {
    inner: Mutex<Inner>,
}

struct Inner {
    waiters: HashMap<i32, Sender<i32>>,
    handlers: Vec<Sender<Exit>>,
    unclaimed: VecDeque<Exit>,
}

static REAPER: OnceLock<Reaper> = OnceLock::new();

/// The process-wide reaper; the first call makes this process a subreaper
/// and starts the SIGCHLD thread.
pub fn reaper() -> &'static Reaper {
    REAPER.get_or_init(|| {
        // SAFETY: prctl with integer arguments.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        if rc != 0 {
            log::warn!(
                "cannot become a subreaper: {}; container processes may not be reaped",
                io::Error::last_os_error()
            );
        }
        let mut signals = signal_hook::iterator::Signals::new([libc::SIGCHLD])
            .expect("registering a SIGCHLD handler");
        std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || {
                // Children may have exited before the handler was installed.
                reaper().reap_all();
                for _ in signals.forever() {
                    reaper().reap_all();
                }
            })
            .expect("starting the reaper thread");
        Reaper {
            inner: Mutex::new(Inner {
                waiters: HashMap::new(),
                handlers: Vec::new(),
                unclaimed: VecDeque::new(),
            }),
        }
    })
}

fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        status
    }
}

impl Reaper {
    fn reap_all(&self) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid with a valid out-pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            if !(libc::WIFEXITED(status) || libc::WIFSIGNALED(status)) {
                continue;
            }
            self.dispatch(Exit {
                pid,
                status: exit_code(status),
            });
        }
    }

    fn dispatch(&self, exit: Exit) {
        let mut inner = self.inner.lock().unwrap();
        if let Some(tx) = inner.waiters.remove(&exit.pid) {
            let _ = tx.send(exit.status);
            return;
        }
        // containerd-shim's own helpers (its rootfs mount forks a child)
        // wait through its monitor: let them see the exits they wait for.
        let _ = containerd_shim::monitor::monitor_notify_by_pid(exit.pid, exit.status);
        inner.handlers.retain(|h| h.send(exit).is_ok());
        if inner.handlers.is_empty() {
            if inner.unclaimed.len() >= UNCLAIMED_MAX {
                inner.unclaimed.pop_front();
            }
            inner.unclaimed.push_back(exit);
        }
    }

    /// Sends every exit that no spawner waits for to `tx` (and to every other
    /// handler: each ignores pids it does not know), starting with those
    /// that arrived before any handler was added.
    pub fn add_exit_handler(&self, tx: Sender<Exit>) {
        let mut inner = self.inner.lock().unwrap();
        for e in inner.unclaimed.drain(..) {
            let _ = tx.send(e);
        }
        inner.handlers.push(tx);
    }

    /// Spawns `cmd` and returns the child with a receiver for its exit code.
    /// The lock is held across the spawn so the exit cannot be routed
    /// elsewhere before the waiter is registered.
    pub fn spawn(&self, cmd: &mut Command) -> io::Result<(Child, Receiver<i32>)> {
        let mut inner = self.inner.lock().unwrap();
        let child = cmd.spawn()?;
        let (tx, rx) = mpsc::channel();
        inner.waiters.insert(child.id() as i32, tx);
        Ok((child, rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;
    use std::time::Duration;

    #[test]
    fn a_spawned_command_reports_its_exit_code_to_its_spawner() {
        let (_child, rx) = reaper()
            .spawn(
                Command::new("/bin/sh")
                    .args(["-c", "exit 7"])
                    .stdin(Stdio::null()),
            )
            .unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 7);
    }

    #[test]
    fn a_killed_command_reports_128_plus_the_signal() {
        let (_child, rx) = reaper()
            .spawn(
                Command::new("/bin/sh")
                    .args(["-c", "kill -9 $$"])
                    .stdin(Stdio::null()),
            )
            .unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 137);
    }
}
