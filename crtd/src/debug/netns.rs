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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

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
