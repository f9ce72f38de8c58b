//! The seccomp user-notification listener fd: receive a notification, check
//! that it is still valid, and let the syscall continue.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// `struct seccomp_data`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeccompData {
    pub nr: i32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

/// `struct seccomp_notif`: one syscall waiting for the supervisor.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeccompNotif {
    pub id: u64,
    /// The thread id, in the pid namespace of the task that received the notification.
    pub pid: u32,
    pub flags: u32,
    pub data: SeccompData,
}

/// `struct seccomp_notif_resp`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;

const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | ((b'!' as u64) << 8) | nr
}

/// `SECCOMP_IOCTL_NOTIF_RECV`.
pub const SECCOMP_IOCTL_NOTIF_RECV: u64 = ioc(IOC_READ | IOC_WRITE, 0, size_of::<SeccompNotif>());
/// `SECCOMP_IOCTL_NOTIF_SEND`.
pub const SECCOMP_IOCTL_NOTIF_SEND: u64 =
    ioc(IOC_READ | IOC_WRITE, 1, size_of::<SeccompNotifResp>());
/// `SECCOMP_IOCTL_NOTIF_ID_VALID`.
pub const SECCOMP_IOCTL_NOTIF_ID_VALID: u64 = ioc(IOC_WRITE, 2, size_of::<u64>());
/// `SECCOMP_IOCTL_NOTIF_SET_FLAGS` (Linux 6.6+).
pub const SECCOMP_IOCTL_NOTIF_SET_FLAGS: u64 = ioc(IOC_WRITE, 4, size_of::<u64>());

const SECCOMP_USER_NOTIF_FLAG_CONTINUE: u32 = 1;
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

/// What one receive produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Recv {
    /// A syscall is waiting; it must be answered with [`NotifyListener::continue_syscall`].
    Notification,
    /// A signal interrupted the wait; nothing is pending from this call.
    Interrupted,
    /// The notification vanished before it could be read (the thread was
    /// killed); nothing to answer.
    Vanished,
    /// No process uses the filter any more: no notification will ever come.
    Closed,
}

/// A seccomp user-notification listener.
///
/// Dropping it closes the fd. While any process still runs under the filter,
/// that makes each of its notified syscalls fail with ENOSYS: keep the
/// listener alive for as long as the processes it serves.
#[derive(Debug)]
pub struct NotifyListener {
    fd: OwnedFd,
}

fn ioctl_ptr<T>(fd: RawFd, request: u64, arg: *mut T) -> io::Result<()> {
    // SAFETY: `arg` points at a live value of the exact type and size the
    // request encodes (see the SECCOMP_IOCTL_* constants above); the kernel
    // reads or writes only that much.
    let rc = unsafe { libc::ioctl(fd, request as _, arg) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl NotifyListener {
    /// Wraps `fd` after checking that it is a seccomp listener: any other fd
    /// (a regular file, a socket) is refused with `ENOTTY`/`EINVAL`, so that
    /// a bogus fd handed to us is never mistaken for one.
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        let listener = NotifyListener { fd };
        // An id no kernel hands out: a real listener answers ENOENT.
        let mut id: u64 = u64::MAX;
        match ioctl_ptr(
            listener.fd.as_raw_fd(),
            SECCOMP_IOCTL_NOTIF_ID_VALID,
            &mut id,
        ) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(listener),
            Ok(()) => Ok(listener),
            Err(e) => Err(e),
        }
    }

    /// Asks the kernel to wake the supervisor and the target synchronously
    /// (SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, Linux 6.6+): the round trip stays
    /// on one CPU and gets several times cheaper. Fails with EINVAL on older
    /// kernels, where plain wake-ups still work.
    pub fn set_sync_wakeup(&self) -> io::Result<()> {
        // SAFETY: SET_FLAGS takes its flags by value in the ioctl argument.
        let rc = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                SECCOMP_IOCTL_NOTIF_SET_FLAGS as _,
                SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Blocks until a notified syscall arrives and stores it in `out`.
    pub fn recv(&self, out: &mut SeccompNotif) -> io::Result<Recv> {
        // The kernel requires a zeroed buffer.
        *out = SeccompNotif::default();
        match ioctl_ptr(self.fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_RECV, out) {
            Ok(()) => Ok(Recv::Notification),
            Err(e) => match e.raw_os_error() {
                Some(libc::EINTR) => Ok(Recv::Interrupted),
                Some(libc::ENOENT) => {
                    if self.has_users() {
                        Ok(Recv::Vanished)
                    } else {
                        Ok(Recv::Closed)
                    }
                }
                _ => Err(e),
            },
        }
    }

    /// True while the notification `id` is still pending: the thread is alive
    /// and waiting, so memory read from its pid since the notification
    /// arrived was really its memory.
    pub fn id_valid(&self, id: u64) -> bool {
        let mut id = id;
        ioctl_ptr(self.fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_ID_VALID, &mut id).is_ok()
    }

    /// Lets the notified syscall run as if no filter had stopped it. Returns
    /// `false` when the notification is gone (the thread died meanwhile),
    /// which is not an error for a tracer.
    pub fn continue_syscall(&self, id: u64) -> io::Result<bool> {
        let mut resp = SeccompNotifResp {
            id,
            val: 0,
            error: 0,
            flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE,
        };
        match ioctl_ptr(self.fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_SEND, &mut resp) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// False once every process using the filter has exited (the fd then
    /// polls POLLHUP).
    pub fn has_users(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
        !(rc > 0 && pfd.revents & libc::POLLHUP != 0)
    }
}

impl AsFd for NotifyListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for NotifyListener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// True when `a` and `b` refer to the same open file (kcmp KCMP_FILE): a
/// runtime that hands over the same listener twice sends two fds for one
/// filter, and only one of them needs serving.
pub fn same_file(a: &impl AsRawFd, b: &impl AsRawFd) -> bool {
    const KCMP_FILE: libc::c_long = 0;
    // SAFETY: kcmp only compares kernel objects of our own process; the fds
    // are borrowed for the duration of the call.
    let pid = unsafe { libc::getpid() };
    // SAFETY: as above; plain integer arguments.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid,
            pid,
            KCMP_FILE,
            a.as_raw_fd() as libc::c_long,
            b.as_raw_fd() as libc::c_long,
        )
    };
    rc == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_kernel_abi() {
        assert_eq!(size_of::<SeccompNotif>(), 80);
        assert_eq!(size_of::<SeccompNotifResp>(), 24);
        assert_eq!(SECCOMP_IOCTL_NOTIF_RECV, 0xc050_2100);
        assert_eq!(SECCOMP_IOCTL_NOTIF_SEND, 0xc018_2101);
        assert_eq!(SECCOMP_IOCTL_NOTIF_ID_VALID, 0x4008_2102);
        assert_eq!(SECCOMP_IOCTL_NOTIF_SET_FLAGS, 0x4008_2104);
    }

    #[test]
    fn a_regular_file_is_not_accepted_as_a_listener() {
        let f = tempfile::tempfile().unwrap();
        let err = NotifyListener::new(OwnedFd::from(f)).unwrap_err();
        assert!(matches!(
            err.raw_os_error(),
            Some(libc::ENOTTY) | Some(libc::EINVAL)
        ));
    }
}
