//! The last word on containers that no longer exist: the record a shim
//! leaves when a container is deleted (exit code, end time, its Kubernetes
//! identity), kept for traced and untraced containers alike. CRI deletes a
//! container's task the moment it exits; without this, its exit code would
//! go with it.
//!
//! One JSON line per ended container in `ended.jsonl` (0600), appended and
//! synced before the shim's file is removed, compacted by retention.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crt_tracer::node_files::ContainerRecord;
use serde::{Deserialize, Serialize};

/// One container's end, and the shim's file in `ended/` it came from.
struct End {
    file: String,
    record: Arc<ContainerRecord>,
}

/// Containers by (containerd namespace, id): the latest end of each.
type Ends = BTreeMap<(String, String), End>;

/// A line of `ended.jsonl`: the shim's record, with the file it came from.
#[derive(Deserialize)]
struct Line {
    #[serde(flatten)]
    record: ContainerRecord,
    #[serde(default)]
    ended_file: String,
}

#[derive(Serialize)]
struct LineRef<'a> {
    #[serde(flatten)]
    record: &'a ContainerRecord,
    ended_file: &'a str,
}

impl End {
    fn line(&self) -> io::Result<Vec<u8>> {
        let mut line = serde_json::to_vec(&LineRef {
            record: &self.record,
            ended_file: &self.file,
        })?;
        line.push(b'\n');
        Ok(line)
    }
}

pub struct EndedLog {
    path: PathBuf,
    ends: Mutex<Ends>,
}

fn key_of(rec: &ContainerRecord) -> Option<(String, String)> {
    (super::safe_component(&rec.namespace) && super::safe_component(&rec.id))
        .then(|| (rec.namespace.clone(), rec.id.clone()))
}

impl EndedLog {
    pub fn open(dir: &Path) -> io::Result<EndedLog> {
        let path = dir.join("ended.jsonl");
        let mut ends = Ends::new();
        match fs::File::open(&path) {
            Ok(f) => {
                for (n, line) in io::BufReader::new(f).lines().enumerate() {
                    let line = line?;
                    // A line cut by a crash is the last one; skip it.
                    match serde_json::from_str::<Line>(&line) {
                        Ok(l) => {
                            if let Some(k) = key_of(&l.record) {
                                let end = End {
                                    file: l.ended_file,
                                    record: Arc::new(l.record),
                                };
                                ends.insert(k, end);
                            }
                        }
                        Err(e) => {
                            tracing::warn!("store: {} line {}: {e}; skipped", path.display(), n + 1)
                        }
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(EndedLog {
            path,
            ends: Mutex::new(ends),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ends> {
        self.ends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The shim files these ends were taken from.
    pub fn files(&self) -> std::collections::HashSet<String> {
        self.lock()
            .values()
            .filter(|e| !e.file.is_empty())
            .map(|e| e.file.clone())
            .collect()
    }

    /// Records a container's end, taken from the shim's file `file`,
    /// durably. A record without a valid namespace and id is refused.
    pub fn add(&self, file: &str, rec: ContainerRecord) -> io::Result<()> {
        let key = key_of(&rec).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "an ended container's record has no valid namespace and id (namespace {:?}, id {:?})",
                    rec.namespace, rec.id
                ),
            )
        })?;
        let mut ends = self.lock();
        // Shim files are named by time: an older end of the same id (read
        // again after a restart) never replaces a newer one.
        let newer_known = ends
            .get(&key)
            .is_some_and(|known| known.file.as_str() >= file);
        if newer_known {
            return Ok(());
        }
        let end = End {
            file: file.to_string(),
            record: Arc::new(rec),
        };
        let mut f = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)?;
        f.write_all(&end.line()?)?;
        f.sync_data()?;
        ends.insert(key, end);
        Ok(())
    }

    /// Every ended container remembered.
    pub fn all(&self) -> Vec<Arc<ContainerRecord>> {
        self.lock()
            .values()
            .map(|e| Arc::clone(&e.record))
            .collect()
    }

    /// Forgets the ends `keep` says no to; returns how many went.
    pub fn retain(&self, mut keep: impl FnMut(&ContainerRecord) -> bool) -> io::Result<usize> {
        let mut ends = self.lock();
        let before = ends.len();
        ends.retain(|_, e| keep(&e.record));
        let gone = before - ends.len();
        if gone > 0 {
            let mut out = Vec::new();
            for e in ends.values() {
                out.extend(e.line()?);
            }
            crt_tracer::node_files::write_private(&self.path, &out)?;
        }
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(ns: &str, id: &str, code: i32) -> ContainerRecord {
        let mut rec = ContainerRecord::new(ns, id, 1);
        rec.exited(code);
        rec
    }

    #[test]
    fn ends_survive_a_reopen_and_the_latest_of_an_id_wins() {
        let d = tempfile::tempdir().unwrap();
        let log = EndedLog::open(d.path()).unwrap();
        log.add("1.json", end("k8s.io", "c1", 3)).unwrap();
        log.add("2.json", end("k8s.io", "c2", 137)).unwrap();
        log.add("3.json", end("k8s.io", "c1", 0)).unwrap();
        let refused = log.add("4.json", end("../x", "c", 0)).unwrap_err();
        assert!(refused.to_string().contains("../x"), "{refused}");
        drop(log);
        // A torn last line, as a crash mid-write leaves it.
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(d.path().join("ended.jsonl"))
            .unwrap();
        f.write_all(b"{\"namespace\": \"k8s").unwrap();
        let log = EndedLog::open(d.path()).unwrap();
        let all = log.all();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].exit_code, Some(0));
        assert_eq!(all[1].exit_code, Some(137));
        // Which shim files were taken in: not taken in again.
        let files = log.files();
        assert!(
            files.contains("3.json") && files.contains("2.json"),
            "{files:?}"
        );
        // An older end read again changes nothing.
        log.add("1.json", end("k8s.io", "c1", 3)).unwrap();
        assert_eq!(log.all()[0].exit_code, Some(0));
        assert_eq!(log.retain(|r| r.id != "c2").unwrap(), 1);
        let log = EndedLog::open(d.path()).unwrap();
        assert_eq!(log.all().len(), 1);
        assert_eq!(log.files().into_iter().collect::<Vec<_>>(), ["3.json"]);
    }

    #[test]
    fn a_log_an_older_crtd_wrote_still_reads() {
        // The shim's record as it was, with the file it came from beside it.
        let d = tempfile::tempdir().unwrap();
        fs::write(
            d.path().join("ended.jsonl"),
            concat!(
                r#"{"cgroup":{"unified":"/sys/fs/cgroup/x","version":2},"created":"2026-11-27T10:00:00.000001Z","#,
                r#""ended_file":"00000001764237600000000000-k8s.io-c1.json","exit_code":3,"exited":"2026-11-27T10:00:05.000001Z","#,
                r#""id":"c1","image":null,"kubernetes":{"container":"app","container_type":"container","namespace":"shop","#,
                r#""pod":"web-0","pod_uid":"u","sandbox_id":"s"},"namespace":"k8s.io","pid":812,"runtime":"/usr/sbin/runc","#,
                r#""shim_pid":800,"status":"stopped","traced":false}"#,
                "\n"
            ),
        )
        .unwrap();
        let log = EndedLog::open(d.path()).unwrap();
        let all = log.all();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].id.as_str(), all[0].exit_code), ("c1", Some(3)));
        assert_eq!(all[0].kubernetes.as_ref().unwrap().pod, "web-0");
        assert!(log
            .files()
            .contains("00000001764237600000000000-k8s.io-c1.json"));
    }
}
