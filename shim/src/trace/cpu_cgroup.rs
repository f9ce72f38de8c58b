//! On cgroup v1, a notify thread moves into the cpu and cpuacct cgroups of
//! the container it serves, for as long as it serves it:
//!
//! - the traced thread and its supervisor hand the CPU to each other on
//!   every syscall; within one CPU cgroup that switch is much cheaper than
//!   across two (measured here: 5.6 µs -> 4.5 µs per traced syscall);
//! - the CPU spent tracing a container is accounted to that container and
//!   bounded by its CPU limits, not the node's.
//!
//! cgroup v2 keeps a process's threads together (outside threaded mode), so
//! there the thread stays where the shim is.

use std::fs;
use std::io;
use std::path::PathBuf;

const CONTROLLERS: [&str; 2] = ["cpu", "cpuacct"];

/// The cgroups a thread left; it goes back when this is dropped.
pub struct Joined {
    back: Vec<PathBuf>,
    tid: i32,
}

fn gettid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// The directories of the v1 cpu/cpuacct cgroups listed in a
/// `/proc/<pid>/cgroup` text (one per hierarchy, co-mounted ones once).
fn cpu_dirs(text: &str, mounts: &std::collections::HashMap<String, PathBuf>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(rel)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Some(ctrl) = ctrls.split(',').find(|c| CONTROLLERS.contains(c)) else {
            continue;
        };
        if let Some(mount) = mounts.get(ctrl) {
            let dir = mount.join(rel.trim_start_matches('/'));
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    dirs
}

fn move_thread(tid: i32, dirs: &[PathBuf]) -> io::Result<()> {
    for d in dirs {
        fs::write(d.join("tasks"), tid.to_string())?;
    }
    Ok(())
}

/// Moves the calling thread into the cpu cgroups of process `pid`. Returns
/// `None` (and changes nothing) on cgroup v2 or when anything fails.
pub fn join_cgroups_of(pid: u32) -> Option<Joined> {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        return None;
    }
    let mounts = crate::cgroup::v1_mounts();
    let theirs = cpu_dirs(
        &fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?,
        mounts,
    );
    let tid = gettid();
    let ours = cpu_dirs(
        &fs::read_to_string("/proc/thread-self/cgroup").ok()?,
        mounts,
    );
    if theirs.is_empty() || theirs == ours {
        return None;
    }
    match move_thread(tid, &theirs) {
        Ok(()) => Some(Joined { back: ours, tid }),
        Err(e) => {
            log::debug!("notify thread stays in the shim's cgroup: {e}");
            let _ = move_thread(tid, &ours);
            None
        }
    }
}

impl Drop for Joined {
    fn drop(&mut self) {
        // Leave before the container's cgroup is removed (rmdir fails while
        // any task is in it).
        if let Err(e) = move_thread(self.tid, &self.back) {
            log::warn!("notify thread could not return to the shim's cgroup: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_cpuacct_dirs_are_found_once_per_hierarchy() {
        let mounts: std::collections::HashMap<String, PathBuf> = [
            (
                "cpu".to_string(),
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"),
            ),
            (
                "cpuacct".to_string(),
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"),
            ),
            ("memory".to_string(), PathBuf::from("/sys/fs/cgroup/memory")),
        ]
        .into_iter()
        .collect();
        let text = "4:memory:/ns/c1\n3:cpu,cpuacct:/ns/c1\n0::/\n";
        // Co-mounted controllers share one directory: written once.
        assert_eq!(
            cpu_dirs(text, &mounts),
            vec![PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/ns/c1")]
        );
        let separate: std::collections::HashMap<String, PathBuf> = [
            ("cpu".to_string(), PathBuf::from("/sys/fs/cgroup/cpu")),
            (
                "cpuacct".to_string(),
                PathBuf::from("/sys/fs/cgroup/cpuacct"),
            ),
        ]
        .into_iter()
        .collect();
        let text = "2:cpuacct:/ns/c1\n1:cpu:/ns/c1\n";
        assert_eq!(cpu_dirs(text, &separate).len(), 2);
    }
}
