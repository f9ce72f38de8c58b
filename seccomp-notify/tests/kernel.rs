//! The kernel behaviour the tracer relies on, checked against the running
//! kernel with a real forked child under a notify filter (needs root or
//! unprivileged seccomp, which every supported kernel allows with
//! no_new_privs).

use crt_seccomp_notify::memory::{self, CStr};
use crt_seccomp_notify::testutil::spawn_traced;
use crt_seccomp_notify::{Recv, SeccompNotif};

fn getppid_three_times() {
    for _ in 0..3 {
        // SAFETY: a plain syscall.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
}

#[test]
fn each_notified_syscall_is_received_and_continued_then_the_listener_closes() {
    let child = spawn_traced(&[libc::SYS_getppid], getppid_three_times).unwrap();
    child.go();
    let mut n = SeccompNotif::default();
    for _ in 0..3 {
        assert_eq!(child.listener.recv(&mut n).unwrap(), Recv::Notification);
        assert_eq!(n.data.nr as i64, libc::SYS_getppid);
        assert_eq!(n.pid as i32, child.pid);
        assert!(child.listener.id_valid(n.id));
        assert!(child.listener.continue_syscall(n.id).unwrap());
    }
    assert_eq!(child.wait(), 0);
    // With the child gone, a receive reports the end instead of blocking.
    assert_eq!(child.listener.recv(&mut n).unwrap(), Recv::Closed);
    assert!(!child.listener.has_users());
}

fn open_a_path() {
    let path = b"/nonexistent/crt-notify-test\0";
    // SAFETY: a plain syscall on a static string.
    unsafe { libc::openat(libc::AT_FDCWD, path.as_ptr().cast(), libc::O_RDONLY) };
}

#[test]
fn a_path_argument_is_read_from_the_waiting_process() {
    let child = spawn_traced(&[libc::SYS_openat], open_a_path).unwrap();
    child.go();
    let mut n = SeccompNotif::default();
    assert_eq!(child.listener.recv(&mut n).unwrap(), Recv::Notification);
    let mut buf = [0u8; 256];
    let got = memory::read_cstr(n.pid, n.data.args[1], &mut buf);
    assert!(child.listener.id_valid(n.id));
    assert!(child.listener.continue_syscall(n.id).unwrap());
    assert_eq!(
        got,
        CStr::Read {
            len: 28,
            truncated: false
        }
    );
    assert_eq!(&buf[..28], b"/nonexistent/crt-notify-test");
    assert_eq!(child.wait(), 0);
}

fn getppid_forever() {
    loop {
        // SAFETY: a plain syscall.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
}

#[test]
fn a_process_killed_mid_notification_leaves_nothing_to_answer() {
    let child = spawn_traced(&[libc::SYS_getppid], getppid_forever).unwrap();
    child.go();
    let mut n = SeccompNotif::default();
    assert_eq!(child.listener.recv(&mut n).unwrap(), Recv::Notification);
    child.kill();
    assert_eq!(child.wait(), 128 + libc::SIGKILL);
    assert!(!child.listener.id_valid(n.id));
    // Answering a vanished notification is not an error for us.
    assert!(!child.listener.continue_syscall(n.id).unwrap());
    assert_eq!(child.listener.recv(&mut n).unwrap(), Recv::Closed);
}

fn getppid_and_report() {
    // SAFETY: plain syscalls; exits with 7 if getppid failed with ENOSYS.
    unsafe {
        let rc = libc::syscall(libc::SYS_getppid);
        if rc == -1 && *libc::__errno_location() == libc::ENOSYS {
            libc::_exit(7);
        }
    }
}

#[test]
fn closing_the_listener_makes_notified_syscalls_fail_with_enosys() {
    // Why the shim must never close a listener while its container runs
    // (DESIGN.md, decision 3).
    let child = spawn_traced(&[libc::SYS_getppid], getppid_and_report).unwrap();
    child.go();
    let (pid, listener, _control) = child.into_parts();
    drop(listener);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status));
    assert_eq!(libc::WEXITSTATUS(status), 7);
}

#[test]
fn sync_wakeup_is_accepted_or_cleanly_refused() {
    let child = spawn_traced(&[libc::SYS_getppid], getppid_three_times).unwrap();
    match child.listener.set_sync_wakeup() {
        Ok(()) => {}
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EINVAL)),
    }
    child.go();
    let mut n = SeccompNotif::default();
    for _ in 0..3 {
        assert_eq!(child.listener.recv(&mut n).unwrap(), Recv::Notification);
        child.listener.continue_syscall(n.id).unwrap();
    }
    assert_eq!(child.wait(), 0);
}
