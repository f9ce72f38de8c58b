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
use std::sync::Mutex;

use serde_json::Value;

/// Containers by (containerd namespace, id): the latest end of each.
type Ends = BTreeMap<(String, String), Value>;

/// Where a record came from (the shim's file in `ended/`), kept with it.
const FILE_KEY: &str = "ended_file";

pub struct EndedLog {
    path: PathBuf,
    ends: Mutex<Ends>,
}

fn key_of(v: &Value) -> Option<(String, String)> {
    let ns = v.get("namespace")?.as_str()?;
    let id = v.get("id")?.as_str()?;
    (super::safe_component(ns) && super::safe_component(id)).then(|| (ns.into(), id.into()))
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
                    match serde_json::from_str::<Value>(&line) {
                        Ok(v) => {
                            if let Some(k) = key_of(&v) {
                                ends.insert(k, v);
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
            .filter_map(|v| v.get(FILE_KEY)?.as_str().map(str::to_string))
            .collect()
    }

    /// Records a container's end, taken from the shim's file `file`,
    /// durably. A record without a valid namespace and id is refused.
    pub fn add(&self, file: &str, mut rec: Value) -> io::Result<()> {
        if let Some(o) = rec.as_object_mut() {
            o.insert(FILE_KEY.into(), Value::from(file));
        }
        let key = key_of(&rec).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "an ended container's record has no valid namespace and id",
            )
        })?;
        let mut ends = self.lock();
        // Shim files are named by time: an older end of the same id (read
        // again after a restart) never replaces a newer one.
        let newer_known = ends
            .get(&key)
            .and_then(|v| v.get(FILE_KEY)?.as_str())
            .is_some_and(|known| known >= file);
        if newer_known {
            return Ok(());
        }
        let mut f = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)?;
        let mut line = serde_json::to_vec(&rec)?;
        line.push(b'\n');
        f.write_all(&line)?;
        f.sync_data()?;
        ends.insert(key, rec);
        Ok(())
    }

    /// Every ended container remembered.
    pub fn all(&self) -> Vec<Value> {
        self.lock().values().cloned().collect()
    }

    /// Forgets the ends `keep` says no to; returns how many went.
    pub fn retain(&self, mut keep: impl FnMut(&Value) -> bool) -> io::Result<usize> {
        let mut ends = self.lock();
        let before = ends.len();
        ends.retain(|_, v| keep(v));
        let gone = before - ends.len();
        if gone > 0 {
            let mut out = Vec::new();
            for v in ends.values() {
                out.extend(serde_json::to_vec(v)?);
                out.push(b'\n');
            }
            super::write_private_atomic(&self.path, &out)?;
        }
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ends_survive_a_reopen_and_the_latest_of_an_id_wins() {
        let d = tempfile::tempdir().unwrap();
        let log = EndedLog::open(d.path()).unwrap();
        log.add(
            "1.json",
            json!({"namespace": "k8s.io", "id": "c1", "exit_code": 3}),
        )
        .unwrap();
        log.add(
            "2.json",
            json!({"namespace": "k8s.io", "id": "c2", "exit_code": 137}),
        )
        .unwrap();
        log.add(
            "3.json",
            json!({"namespace": "k8s.io", "id": "c1", "exit_code": 0}),
        )
        .unwrap();
        assert!(log
            .add("4.json", json!({"namespace": "../x", "id": "c"}))
            .is_err());
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
        assert_eq!(all[0]["exit_code"], 0);
        assert_eq!(all[1]["exit_code"], 137);
        // Which shim files were taken in: not taken in again.
        let files = log.files();
        assert!(
            files.contains("3.json") && files.contains("2.json"),
            "{files:?}"
        );
        // An older end read again changes nothing.
        log.add(
            "1.json",
            json!({"namespace": "k8s.io", "id": "c1", "exit_code": 3}),
        )
        .unwrap();
        assert_eq!(log.all()[0]["exit_code"], 0);
        assert_eq!(log.retain(|v| v["id"] != "c2").unwrap(), 1);
        let log = EndedLog::open(d.path()).unwrap();
        assert_eq!(log.all().len(), 1);
    }
}
