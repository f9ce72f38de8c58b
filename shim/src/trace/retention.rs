//! The node-wide bound on the trace store: once all traces together exceed
//! `trace.max_total_bytes`, the traces of containers that are gone are
//! deleted, least recently written first. A trace whose shim still runs is
//! never touched (each one is bounded by `trace.max_trace_bytes` on its own).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crt_tracer::node_files::{self, TraceMeta};

struct Trace {
    dir: PathBuf,
    bytes: u64,
    written: SystemTime,
    live: bool,
}

fn shim_alive(meta: &TraceMeta) -> bool {
    let pid = meta.shim_pid;
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid as i32, 0) } == 0
}

fn scan(traces_root: &Path) -> Vec<Trace> {
    let mut out = Vec::new();
    for dir in node_files::trace_dirs(traces_root) {
        // A meta.json that does not parse has no shim to protect it.
        let meta = TraceMeta::read(&dir).unwrap_or_default();
        let mut bytes = 0;
        let mut written = SystemTime::UNIX_EPOCH;
        for f in fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
        {
            if let Ok(m) = f.metadata() {
                bytes += m.len();
                if let Ok(t) = m.modified() {
                    written = written.max(t);
                }
            }
        }
        out.push(Trace {
            dir,
            bytes,
            written,
            live: shim_alive(&meta),
        });
    }
    out
}

/// Deletes the oldest traces of gone containers until the store fits in
/// `max_total`. Returns the directories deleted.
pub fn enforce(traces_root: &Path, max_total: u64) -> Vec<PathBuf> {
    let mut traces = scan(traces_root);
    let mut total: u64 = traces.iter().map(|t| t.bytes).sum();
    let mut deleted = Vec::new();
    if total <= max_total {
        return deleted;
    }
    traces.retain(|t| !t.live);
    traces.sort_by_key(|t| t.written);
    for t in traces {
        if total <= max_total {
            break;
        }
        if fs::remove_dir_all(&t.dir).is_ok() {
            total = total.saturating_sub(t.bytes);
            deleted.push(t.dir);
        }
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(root: &Path, ns: &str, id: &str, bytes: usize, shim_pid: u32, age_s: u64) {
        let dir = root.join(ns).join(id);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("meta.json"),
            format!("{{\"shim_pid\":{shim_pid}}}"),
        )
        .unwrap();
        let seg = dir.join("0000000001.seg");
        fs::write(&seg, vec![0u8; bytes]).unwrap();
        let t = SystemTime::now() - std::time::Duration::from_secs(age_s);
        let f = fs::File::options().write(true).open(&seg).unwrap();
        f.set_modified(t).unwrap();
        fs::File::options()
            .write(true)
            .open(dir.join("meta.json"))
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn the_oldest_gone_traces_go_first_and_live_ones_stay() {
        let root = tempfile::tempdir().unwrap();
        let me = std::process::id();
        // A pid that does not exist: the shim of these traces is gone.
        let gone = 0x3fff_fff0;
        trace(root.path(), "a", "old", 4000, gone, 300);
        trace(root.path(), "a", "live-and-oldest", 4000, me, 400);
        trace(root.path(), "b", "newer", 4000, gone, 100);
        trace(root.path(), "b", "newest", 4000, gone, 10);
        let deleted = enforce(root.path(), 9000);
        let names: Vec<_> = deleted
            .iter()
            .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["old", "newer"]);
        assert!(root.path().join("a/live-and-oldest").exists());
        assert!(root.path().join("b/newest").exists());
    }

    #[test]
    fn nothing_is_deleted_under_the_bound() {
        let root = tempfile::tempdir().unwrap();
        trace(root.path(), "a", "x", 100, 0x3fff_fff0, 300);
        assert!(enforce(root.path(), 1 << 20).is_empty());
        assert!(enforce(&root.path().join("missing"), 0).is_empty());
    }
}
