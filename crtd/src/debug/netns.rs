//! Network namespaces crtd makes for clones that get no network at all
//! (`--keep-network=none`): a runtime given a namespace's path joins it as
//! it is, so `lo` stays down, where one it makes itself has `lo` up. The
//! namespace lives as a bind mount of its nsfs file under /run/crt/netns
//! until the clone is removed.

use std::path::Path;

use anyhow::{anyhow, Context, Result};

pub fn create(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = path.parent().ok_or_else(|| anyhow!("no directory"))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let target = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
    // A thread of its own enters the new namespace, pins it with the bind
    // mount and ends: no other thread of crtd changes namespace.
    let made = std::thread::spawn(move || -> std::io::Result<()> {
        // SAFETY: unshare changes only this thread's network namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let source = c"/proc/thread-self/ns/net";
        // SAFETY: both paths are NUL-terminated and outlive the call; a bind
        // mount takes no file system type or data.
        let r = unsafe {
            libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    })
    .join()
    .map_err(|_| anyhow!("the thread making the namespace panicked"))?;
    if let Err(e) = made {
        let _ = std::fs::remove_file(path);
        return Err(e).context("unshare and bind-mount a network namespace");
    }
    Ok(())
}

/// Unmounts and removes a namespace made by `create` (what is gone is skipped).
pub fn remove(path: &Path) {
    if let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) {
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("debug: removing {}: {e}", path.display());
        }
    }
}

/// Brings `lo` up in the network namespace of `pid` (CRIU restores a
/// namespace with `lo` down; a clone's loopback should work).
pub fn loopback_up(pid: u32) -> Result<()> {
    use std::os::fd::AsRawFd;
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .with_context(|| format!("opening the network namespace of pid {pid}"))?;
    // A thread of its own enters the namespace and ends there.
    std::thread::spawn(move || -> std::io::Result<()> {
        // SAFETY: setns changes only this thread's network namespace; the fd
        // is an open nsfs file.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a plain datagram socket, closed below.
        let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if sock < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `req` is a zeroed ifreq whose name is set to "lo"; the
        // ioctls read and write only it.
        let r = unsafe {
            let mut req: libc::ifreq = std::mem::zeroed();
            for (d, s) in req.ifr_name.iter_mut().zip(b"lo") {
                *d = *s as libc::c_char;
            }
            let mut r = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req);
            if r == 0 {
                req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
                r = libc::ioctl(sock, libc::SIOCSIFFLAGS, &req);
            }
            r
        };
        let err = std::io::Error::last_os_error();
        // SAFETY: `sock` is ours.
        unsafe { libc::close(sock) };
        if r != 0 {
            return Err(err);
        }
        Ok(())
    })
    .join()
    .map_err(|_| anyhow!("the thread bringing lo up panicked"))?
    .context("bringing lo up")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn lo_comes_up_in_a_namespace_where_it_was_down() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("netns/t-2");
        create(&path).unwrap();
        // A process in that namespace (lo down there, as CRIU restores it).
        let mut child = std::process::Command::new("nsenter")
            .arg(format!("--net={}", path.display()))
            .args(["sleep", "30"])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        // Through netlink in that namespace (sysfs would show ours).
        let up = |pid: u32| {
            let out = std::process::Command::new("nsenter")
                .args([
                    "-t",
                    &pid.to_string(),
                    "-n",
                    "ip",
                    "-o",
                    "link",
                    "show",
                    "lo",
                ])
                .output()
                .unwrap();
            let s = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(s.contains("LOOPBACK"), "{s}");
            s.contains(",UP")
        };
        assert!(!up(child.id()), "lo starts down");
        loopback_up(child.id()).unwrap();
        assert!(up(child.id()), "lo is up");
        let _ = child.kill();
        let _ = child.wait();
        remove(&path);
    }

    #[test]
    fn a_made_namespace_is_another_than_ours_and_goes_with_remove() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("netns/t-1");
        create(&path).unwrap();
        let ours = std::fs::metadata("/proc/self/ns/net").unwrap();
        let made = std::fs::metadata(&path).unwrap();
        assert_eq!(made.dev(), ours.dev(), "an nsfs file is mounted there");
        assert_ne!(made.ino(), ours.ino(), "a namespace of its own");
        remove(&path);
        assert!(!path.exists());
        remove(&path);
    }
}
