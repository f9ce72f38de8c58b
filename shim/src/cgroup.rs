//! The container's cgroup: metrics for `Stats` (cgroup v1 and v2, in
//! containerd's own message types) and OOM kills for `/tasks/oom`.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use containerd_shim::protos::cgroups::metrics as v1;
use containerd_shim::protos::cgroups_v2::metrics as v2;
use containerd_shim::protos::events::task::TaskOOM;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::MessageField;

use crate::events::{self, EventSink};

/// Where one container's cgroup lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CgroupPaths {
    /// Per-controller directories of a v1 (or hybrid) hierarchy.
    V1 {
        memory: Option<PathBuf>,
        cpuacct: Option<PathBuf>,
        pids: Option<PathBuf>,
    },
    /// The unified hierarchy.
    V2(PathBuf),
}

fn unified_only() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// v1 mount points by controller, from mountinfo.
/// (Read once: the shim's mount namespace does not change.)
pub(crate) fn v1_mounts() -> &'static HashMap<String, PathBuf> {
    static MOUNTS: std::sync::OnceLock<HashMap<String, PathBuf>> = std::sync::OnceLock::new();
    MOUNTS.get_or_init(read_v1_mounts)
}

fn read_v1_mounts() -> HashMap<String, PathBuf> {
    let mut out = HashMap::new();
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
        return out;
    };
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut r = right.split_whitespace();
        if r.next() != Some("cgroup") {
            continue;
        }
        let _source = r.next();
        let opts = r.next().unwrap_or("");
        let Some(mount_point) = left.split_whitespace().nth(4) else {
            continue;
        };
        for o in opts.split(',') {
            out.entry(o.to_string())
                .or_insert_with(|| PathBuf::from(mount_point));
        }
    }
    out
}

impl CgroupPaths {
    /// The cgroup of `pid` (the container's init).
    pub fn of_pid(pid: i32) -> io::Result<CgroupPaths> {
        let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
        if unified_only() {
            let rel = text
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .ok_or_else(|| io::Error::other(format!("no cgroup v2 entry for pid {pid}")))?;
            return Ok(CgroupPaths::V2(
                Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/')),
            ));
        }
        let mounts = v1_mounts();
        let find = |name: &str| -> Option<PathBuf> {
            for line in text.lines() {
                let mut parts = line.splitn(3, ':');
                let (_, ctrls, rel) = (parts.next()?, parts.next()?, parts.next()?);
                if ctrls.split(',').any(|c| c == name) {
                    let mount = mounts.get(name)?;
                    return Some(mount.join(rel.trim_start_matches('/')));
                }
            }
            None
        };
        Ok(CgroupPaths::V1 {
            memory: find("memory"),
            cpuacct: find("cpuacct"),
            pids: find("pids"),
        })
    }

    /// Metrics as containerd's `Metrics` message for this cgroup version.
    pub fn metrics(&self) -> io::Result<Any> {
        match self {
            CgroupPaths::V1 {
                memory,
                cpuacct,
                pids,
            } => {
                let mut m = v1::Metrics::new();
                if let Some(p) = pids {
                    let mut s = v1::PidsStat::new();
                    s.current = read_u64(&p.join("pids.current")).unwrap_or(0);
                    s.limit = read_u64(&p.join("pids.max")).unwrap_or(0);
                    m.pids = MessageField::some(s);
                }
                if let Some(p) = cpuacct {
                    let mut u = v1::CPUUsage::new();
                    u.total = read_u64(&p.join("cpuacct.usage")).unwrap_or(0);
                    let stat = read_kv(&p.join("cpuacct.stat"));
                    // cpuacct.stat is in USER_HZ ticks.
                    let tick_ns = 1_000_000_000 / clock_ticks();
                    u.user = stat.get("user").copied().unwrap_or(0) * tick_ns;
                    u.kernel = stat.get("system").copied().unwrap_or(0) * tick_ns;
                    u.per_cpu = fs::read_to_string(p.join("cpuacct.usage_percpu"))
                        .map(|t| {
                            t.split_whitespace()
                                .filter_map(|v| v.parse().ok())
                                .collect()
                        })
                        .unwrap_or_default();
                    let mut cpu = v1::CPUStat::new();
                    cpu.usage = MessageField::some(u);
                    m.cpu = MessageField::some(cpu);
                }
                if let Some(p) = memory {
                    let stat = read_kv(&p.join("memory.stat"));
                    let g = |k: &str| stat.get(k).copied().unwrap_or(0);
                    let mut s = v1::MemoryStat::new();
                    s.cache = g("cache");
                    s.rss = g("rss");
                    s.rss_huge = g("rss_huge");
                    s.mapped_file = g("mapped_file");
                    s.dirty = g("dirty");
                    s.writeback = g("writeback");
                    s.pg_fault = g("pgfault");
                    s.pg_maj_fault = g("pgmajfault");
                    s.inactive_anon = g("inactive_anon");
                    s.active_anon = g("active_anon");
                    s.inactive_file = g("inactive_file");
                    s.active_file = g("active_file");
                    s.unevictable = g("unevictable");
                    s.hierarchical_memory_limit = g("hierarchical_memory_limit");
                    s.total_cache = g("total_cache");
                    s.total_rss = g("total_rss");
                    s.total_inactive_file = g("total_inactive_file");
                    let mut usage = v1::MemoryEntry::new();
                    usage.usage = read_u64(&p.join("memory.usage_in_bytes")).unwrap_or(0);
                    usage.max = read_u64(&p.join("memory.max_usage_in_bytes")).unwrap_or(0);
                    usage.limit = read_u64(&p.join("memory.limit_in_bytes")).unwrap_or(0);
                    usage.failcnt = read_u64(&p.join("memory.failcnt")).unwrap_or(0);
                    s.usage = MessageField::some(usage);
                    m.memory = MessageField::some(s);
                }
                to_any(&m, "io.containerd.cgroups.v1.Metrics")
            }
            CgroupPaths::V2(p) => {
                let mut m = v2::Metrics::new();
                let mut pids = v2::PidsStat::new();
                pids.current = read_u64(&p.join("pids.current")).unwrap_or(0);
                pids.limit = read_u64(&p.join("pids.max")).unwrap_or(0);
                m.pids = MessageField::some(pids);
                let cpu = read_kv(&p.join("cpu.stat"));
                let c = |k: &str| cpu.get(k).copied().unwrap_or(0);
                let mut cs = v2::CPUStat::new();
                cs.usage_usec = c("usage_usec");
                cs.user_usec = c("user_usec");
                cs.system_usec = c("system_usec");
                cs.nr_periods = c("nr_periods");
                cs.nr_throttled = c("nr_throttled");
                cs.throttled_usec = c("throttled_usec");
                m.cpu = MessageField::some(cs);
                let mem = read_kv(&p.join("memory.stat"));
                let g = |k: &str| mem.get(k).copied().unwrap_or(0);
                let mut ms = v2::MemoryStat::new();
                ms.anon = g("anon");
                ms.file = g("file");
                ms.kernel_stack = g("kernel_stack");
                ms.slab = g("slab");
                ms.sock = g("sock");
                ms.shmem = g("shmem");
                ms.file_mapped = g("file_mapped");
                ms.inactive_anon = g("inactive_anon");
                ms.active_anon = g("active_anon");
                ms.inactive_file = g("inactive_file");
                ms.active_file = g("active_file");
                ms.pgfault = g("pgfault");
                ms.pgmajfault = g("pgmajfault");
                ms.usage = read_u64(&p.join("memory.current")).unwrap_or(0);
                ms.usage_limit = read_u64(&p.join("memory.max")).unwrap_or(0);
                ms.swap_usage = read_u64(&p.join("memory.swap.current")).unwrap_or(0);
                ms.swap_limit = read_u64(&p.join("memory.swap.max")).unwrap_or(0);
                m.memory = MessageField::some(ms);
                to_any(&m, "io.containerd.cgroups.v2.Metrics")
            }
        }
    }
}

fn to_any(
    m: &dyn containerd_shim::protos::protobuf::MessageDyn,
    type_url: &str,
) -> io::Result<Any> {
    let mut any = Any::new();
    any.type_url = type_url.to_string();
    any.value = m.write_to_bytes_dyn().map_err(io::Error::other)?;
    Ok(any)
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf with a valid name.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// A number file; `max` reads as 0 (no limit), like containerd reports it.
fn read_u64(path: &Path) -> Option<u64> {
    let t = fs::read_to_string(path).ok()?;
    let t = t.trim();
    if t == "max" {
        return Some(0);
    }
    t.parse().ok()
}

fn read_kv(path: &Path) -> HashMap<String, u64> {
    fs::read_to_string(path)
        .map(|t| {
            t.lines()
                .filter_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    Some((k.to_string(), v.trim().parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Watches containers' memory cgroups and publishes `/tasks/oom` when the
/// kernel OOM-kills inside one.
pub struct OomWatcher {
    epoll: OwnedFd,
    watches: Mutex<HashMap<u64, Watch>>,
    next: Mutex<u64>,
    sink: Arc<dyn EventSink>,
}

struct Watch {
    container: String,
    fd: OwnedFd,
    /// v1: memory.oom_control (signalled through an eventfd); v2:
    /// memory.events (watched with inotify, holding the oom_kill counter).
    counter_file: PathBuf,
    kills: u64,
    v1: bool,
}

fn oom_kills(path: &Path) -> Option<u64> {
    read_kv(path).get("oom_kill").copied()
}

impl OomWatcher {
    pub fn start(sink: Arc<dyn EventSink>) -> io::Result<Arc<OomWatcher>> {
        // SAFETY: epoll_create1 returns a new fd or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let w = Arc::new(OomWatcher {
            // SAFETY: a fresh fd owned by nobody else.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            watches: Mutex::new(HashMap::new()),
            next: Mutex::new(1),
            sink,
        });
        let me = Arc::clone(&w);
        std::thread::Builder::new()
            .name("oom".into())
            .spawn(move || me.run())?;
        Ok(w)
    }

    /// Starts watching a container's memory cgroup; returns a token for [`Self::remove`].
    pub fn add(&self, container: &str, paths: &CgroupPaths) -> io::Result<u64> {
        let v1 = matches!(paths, CgroupPaths::V1 { .. });
        let (fd, counter_file) = match paths {
            CgroupPaths::V1 {
                memory: Some(mem), ..
            } => {
                let control = mem.join("memory.oom_control");
                let ctl = fs::File::open(&control)?;
                // SAFETY: eventfd returns a new fd or -1.
                let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
                if efd < 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: a fresh fd owned by nobody else.
                let efd = unsafe { OwnedFd::from_raw_fd(efd) };
                fs::write(
                    mem.join("cgroup.event_control"),
                    format!("{} {}", efd.as_raw_fd(), ctl.as_raw_fd()),
                )?;
                (efd, control)
            }
            CgroupPaths::V2(dir) => {
                let events = dir.join("memory.events");
                // SAFETY: inotify_init1 returns a new fd or -1.
                let ifd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
                if ifd < 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: a fresh fd owned by nobody else.
                let ifd = unsafe { OwnedFd::from_raw_fd(ifd) };
                let c = std::ffi::CString::new(events.as_os_str().as_encoded_bytes())
                    .map_err(io::Error::other)?;
                // SAFETY: valid fd and NUL-terminated path.
                if unsafe { libc::inotify_add_watch(ifd.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY) }
                    < 0
                {
                    return Err(io::Error::last_os_error());
                }
                (ifd, events)
            }
            CgroupPaths::V1 { memory: None, .. } => {
                return Err(io::Error::new(io::ErrorKind::NotFound, "no memory cgroup"))
            }
        };
        let token = {
            let mut n = self.next.lock().unwrap();
            *n += 1;
            *n
        };
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: registering a valid fd with our epoll instance.
        if unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut ev,
            )
        } < 0
        {
            return Err(io::Error::last_os_error());
        }
        let kills = oom_kills(&counter_file).unwrap_or(0);
        self.watches.lock().unwrap().insert(
            token,
            Watch {
                container: container.to_string(),
                fd,
                counter_file,
                kills,
                v1,
            },
        );
        Ok(token)
    }

    pub fn remove(&self, token: u64) {
        if let Some(w) = self.watches.lock().unwrap().remove(&token) {
            // SAFETY: deregistering an fd we registered; closing follows.
            unsafe {
                libc::epoll_ctl(
                    self.epoll.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    w.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                )
            };
        }
    }

    fn run(&self) {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 16];
        loop {
            // SAFETY: epoll_wait fills at most `events.len()` entries.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as i32,
                    -1,
                )
            };
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("oom watcher: {}", io::Error::last_os_error());
                return;
            }
            for ev in &events[..n as usize] {
                let token = ev.u64;
                let mut gone = false;
                let mut oom = None;
                if let Some(w) = self.watches.lock().unwrap().get_mut(&token) {
                    let mut buf = [0u8; 4096];
                    // SAFETY: draining the eventfd/inotify fd into a stack buffer.
                    unsafe { libc::read(w.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                    if w.v1 {
                        // v1 signals both an OOM (before the kill counter
                        // moves) and the removal of the cgroup.
                        if w.counter_file.exists() {
                            oom = Some(w.container.clone());
                        } else {
                            gone = true;
                        }
                    } else {
                        match oom_kills(&w.counter_file) {
                            None if !w.counter_file.exists() => gone = true,
                            Some(k) if k > w.kills => {
                                w.kills = k;
                                oom = Some(w.container.clone());
                            }
                            _ => {}
                        }
                    }
                }
                if gone {
                    self.remove(token);
                }
                if let Some(container_id) = oom {
                    log::info!("container {container_id}: OOM kill");
                    events::send(
                        &*self.sink,
                        TaskOOM {
                            container_id,
                            ..Default::default()
                        },
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup_of_this_process_is_found_and_measured() {
        let paths = CgroupPaths::of_pid(std::process::id() as i32).unwrap();
        let any = paths.metrics().unwrap();
        assert!(any.type_url.starts_with("io.containerd.cgroups.v"));
        assert!(!any.value.is_empty());
    }

    #[test]
    fn max_reads_as_no_limit() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("pids.max"), "max\n").unwrap();
        assert_eq!(read_u64(&dir.path().join("pids.max")), Some(0));
    }
}
