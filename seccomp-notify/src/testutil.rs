//! A child process under a seccomp notify filter, for tests: the tests own
//! the listener, like the shim does for a container.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use crate::listener::NotifyListener;

/// A forked child whose listed syscalls notify the returned listener. It
/// waits for [`TracedChild::go`] before running its body, then exits 0.
pub struct TracedChild {
    pub pid: i32,
    pub listener: NotifyListener,
    control: UnixStream,
}

/// What the child does once released. Runs in a forked copy of a possibly
/// multi-threaded process: it must only make raw syscalls (no allocation, no
/// locks).
pub type Body = fn();

/// A body that reports a number back (e.g. how many of its syscalls returned
/// the right result), read with [`TracedChild::report`]. Its exit status may
/// be collected by a subreaper of the test process; this report cannot.
pub type ReportingBody = fn() -> u64;

#[derive(Clone, Copy)]
enum Run {
    Plain(Body),
    Reporting(ReportingBody),
}

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_ulong = 1 << 3;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// Forks a child that notifies on `syscalls` (numbers) and runs `body` after `go`.
pub fn spawn_traced(syscalls: &[i64], body: Body) -> io::Result<TracedChild> {
    spawn(syscalls, Run::Plain(body))
}

/// Like [`spawn_traced`]; the number `body` returns is sent back to the parent.
pub fn spawn_traced_reporting(syscalls: &[i64], body: ReportingBody) -> io::Result<TracedChild> {
    spawn(syscalls, Run::Reporting(body))
}

fn spawn(syscalls: &[i64], body: Run) -> io::Result<TracedChild> {
    let mut prog: Vec<libc::sock_filter> = vec![stmt(BPF_LD_W_ABS, 0)];
    for &nr in syscalls {
        prog.push(libc::sock_filter {
            code: BPF_JEQ_K,
            jt: 0,
            jf: 1,
            k: nr as u32,
        });
        prog.push(stmt(BPF_RET_K, SECCOMP_RET_USER_NOTIF));
    }
    prog.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    let (parent_sock, child_sock) = UnixStream::pair()?;
    let child_fd = child_sock.as_raw_fd();

    // SAFETY: the child only makes raw syscalls on memory prepared before
    // the fork (the filter program, the socket), then _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: async-signal-safe syscalls only, on data set up before fork.
        unsafe { child(child_fd, &fprog, body) }
    }
    drop(child_sock);
    let fd = recv_fd(&parent_sock)?;
    Ok(TracedChild {
        pid,
        listener: NotifyListener::new(fd)?,
        control: parent_sock,
    })
}

/// # Safety
/// Only to be called in a freshly forked child.
unsafe fn child(sock: i32, fprog: &libc::sock_fprog, body: Run) -> ! {
    // SAFETY: plain syscalls; the filter program outlives the call.
    unsafe {
        // The fork copied every fd the test process had open, other tests'
        // pipes among them: holding those would keep their readers from
        // seeing EOF for as long as this child lives.
        if sock > 3 {
            libc::syscall(libc::SYS_close_range, 3u32, (sock - 1) as u32, 0u32);
        }
        libc::syscall(libc::SYS_close_range, (sock + 1) as u32, u32::MAX, 0u32);
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        let fd = libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            SECCOMP_FILTER_FLAG_NEW_LISTENER,
            fprog as *const libc::sock_fprog,
        ) as i32;
        if fd < 0 {
            libc::_exit(101);
        }
        let mut byte = 0u8;
        let mut iov = libc::iovec {
            iov_base: (&mut byte as *mut u8).cast(),
            iov_len: 1,
        };
        let mut control = [0u64; 4];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(4) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(4) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>(), fd);
        if libc::sendmsg(sock, &msg, 0) != 1 {
            libc::_exit(102);
        }
        libc::close(fd);
        // Wait for go (the parent must be serving before we make any notified call).
        let mut go = 0u8;
        if libc::read(sock, (&mut go as *mut u8).cast(), 1) != 1 {
            libc::_exit(103);
        }
        match body {
            Run::Plain(body) => body(),
            Run::Reporting(body) => {
                let n = body().to_le_bytes();
                if libc::write(sock, n.as_ptr().cast(), n.len()) != n.len() as isize {
                    libc::_exit(104);
                }
            }
        }
        libc::_exit(0)
    }
}

fn recv_fd(sock: &UnixStream) -> io::Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut fds = Vec::new();
    crate::handoff::recv_with_fds(sock, &mut byte, &mut fds)?;
    fds.into_iter().next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the traced child sent no listener fd",
        )
    })
}

impl TracedChild {
    /// Releases the child into its body.
    pub fn go(&self) {
        use std::io::Write;
        let _ = (&self.control).write_all(b"g");
    }

    /// What a reporting body returned, waiting up to `timeout` for it (an
    /// error if the child died or is still stuck by then).
    pub fn report(&self, timeout: std::time::Duration) -> io::Result<u64> {
        read_report(&self.control, timeout)
    }

    /// Waits for the child; returns its exit code, or 128+signal.
    pub fn wait(&self) -> i32 {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        }
    }

    /// The child's pid, the listener, and the control socket (keep it open
    /// until the child has read its go).
    pub fn into_parts(self) -> (i32, NotifyListener, UnixStream) {
        (self.pid, self.listener, self.control)
    }

    pub fn kill(&self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
    }
}

/// [`TracedChild::report`] on the control socket of [`TracedChild::into_parts`].
pub fn read_report(control: &UnixStream, timeout: std::time::Duration) -> io::Result<u64> {
    use std::io::Read;
    control.set_read_timeout(Some(timeout))?;
    let mut n = [0u8; 8];
    (&mut &*control).read_exact(&mut n)?;
    Ok(u64::from_le_bytes(n))
}
