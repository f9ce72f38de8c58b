//! What the shim tells the node about each container it runs, for crtd's
//! topology: `<state_dir>/containers/<namespace>/<id>.json`, rewritten
//! (atomically) at create, start and exit. At delete the last record moves
//! to `<state_dir>/ended/`, where crtd takes it into its history (so an exit
//! code outlives a container CRI deletes at once) and removes it. crtd only
//! reads these files; a crtd that is down changes nothing here.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use crt_tracer::node_files::{self, CgroupDescription, KubernetesIdentity};
use serde_json::Value;

use crate::cgroup::CgroupPaths;

pub use crt_tracer::node_files::{ContainerRecord, ContainerStatus};

/// The Kubernetes identity CRI wrote into the spec (CRI sets these itself:
/// pod_annotations only passes crt.dev/* through, so a tenant cannot).
pub fn kubernetes(annotations: &serde_json::Map<String, Value>) -> KubernetesIdentity {
    let a = |k: &str| {
        annotations
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    KubernetesIdentity {
        namespace: a("io.kubernetes.cri.sandbox-namespace"),
        pod: a("io.kubernetes.cri.sandbox-name"),
        pod_uid: a("io.kubernetes.cri.sandbox-uid"),
        container: a("io.kubernetes.cri.container-name"),
        sandbox_id: a("io.kubernetes.cri.sandbox-id"),
        container_type: a("io.kubernetes.cri.container-type"),
    }
}

pub fn cgroup_description(c: Option<&CgroupPaths>) -> Option<CgroupDescription> {
    Some(match c? {
        CgroupPaths::V1 {
            memory,
            cpuacct,
            pids,
        } => CgroupDescription::V1 {
            memory: memory.clone(),
            cpuacct: cpuacct.clone(),
            pids: pids.clone(),
        },
        CgroupPaths::V2(p) => CgroupDescription::V2 { unified: p.clone() },
    })
}

/// Ended records kept for crtd at most (a node without crtd keeps only these).
pub const MAX_ENDED: usize = 4096;

/// Writes `rec` to `path` (mode 0600) whole: crtd sees the old file or the
/// new one, never half of one.
fn write_private(path: &std::path::Path, rec: &ContainerRecord) -> io::Result<()> {
    node_files::write_private(path, &serde_json::to_vec_pretty(rec)?)
}

/// Where container records of a node live.
#[derive(Clone, Debug)]
pub struct StateDir(pub PathBuf);

impl StateDir {
    fn path(&self, namespace: &str, id: &str) -> PathBuf {
        self.0
            .join(node_files::CONTAINERS_DIR)
            .join(namespace)
            .join(format!("{id}.json"))
    }

    pub fn write(&self, rec: &ContainerRecord) -> io::Result<()> {
        let path = self.path(&rec.namespace, &rec.id);
        if let Some(dir) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        write_private(&path, rec)
    }

    pub fn remove(&self, namespace: &str, id: &str) {
        let _ = fs::remove_file(self.path(namespace, id));
    }

    /// The container is deleted: its last record goes to `ended/` for crtd
    /// (named by the time, so the oldest sort first), and its live file goes.
    /// Best effort, and bounded: with no crtd to take them, only the newest
    /// [`MAX_ENDED`] stay.
    pub fn retire(&self, rec: &ContainerRecord) {
        self.retire_keeping(rec, MAX_ENDED)
    }

    /// The container's shim died and containerd's cleanup killed it: its
    /// last record, as the dead shim left it, is retired with `code` (as
    /// containerd reports it) and the time now.
    pub fn retire_killed(&self, namespace: &str, id: &str, code: i32) {
        let Ok(mut rec) = node_files::read_json::<ContainerRecord>(&self.path(namespace, id))
        else {
            self.remove(namespace, id);
            return;
        };
        if rec.exit_code.is_none() {
            rec.exited(code);
        }
        self.retire_keeping(&rec, MAX_ENDED);
        self.remove(namespace, id);
    }

    fn retire_keeping(&self, rec: &ContainerRecord, keep: usize) {
        let dir = self.0.join(node_files::ENDED_DIR);
        let (namespace, id) = (rec.namespace.as_str(), rec.id.as_str());
        let name = format!("{:020}-{namespace}-{id}.json", crt_tracer::render::now_ns(),);
        let written = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .and_then(|()| write_private(&dir.join(name), rec));
        if let Err(e) = written {
            log::warn!(
                "cannot keep the end of container {id} under {}: {e}",
                dir.display()
            );
        }
        let mut names: Vec<_> = fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .filter(|n| n.to_str().is_some_and(|n| n.ends_with(".json")))
            .collect();
        if names.len() > keep {
            names.sort();
            for n in &names[..names.len() - keep] {
                let _ = fs::remove_file(dir.join(n));
            }
        }
        self.remove(namespace, id);
    }

    /// Best effort: a failure to describe a container never fails the container.
    pub fn update(&self, rec: &ContainerRecord) {
        if let Err(e) = self.write(rec) {
            log::warn!(
                "cannot write the state of container {} under {}: {e}",
                rec.id,
                self.0.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_written_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let sd = StateDir(d.path().to_path_buf());
        let mut rec = ContainerRecord::new("ns", "c1", 42);
        sd.write(&rec).unwrap();
        let p = d.path().join("containers/ns/c1.json");
        let v: Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["status"], "created");
        assert_eq!(v["pid"], 42);
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        rec.exited(3);
        sd.write(&rec).unwrap();
        let v: Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["status"], "stopped");
        assert_eq!(v["exit_code"], 3);
        sd.remove("ns", "c1");
        assert!(!p.exists());
    }

    #[test]
    fn a_state_file_the_shim_writes_parses_in_crtds_reader() {
        let d = tempfile::tempdir().unwrap();
        let sd = StateDir(d.path().to_path_buf());
        let annotations = serde_json::json!({
            "io.kubernetes.cri.sandbox-namespace": "shop",
            "io.kubernetes.cri.sandbox-name": "web-0",
            "io.kubernetes.cri.container-name": "app",
        });
        let mut rec = ContainerRecord::new("k8s.io", "c1", 42);
        rec.traced = true;
        rec.kubernetes = Some(kubernetes(annotations.as_object().unwrap()));
        rec.cgroup = cgroup_description(Some(&CgroupPaths::V1 {
            memory: Some("/sys/fs/cgroup/memory/c1".into()),
            cpuacct: None,
            pids: Some("/sys/fs/cgroup/pids/c1".into()),
        }));
        rec.runtime = "/usr/sbin/runc".into();
        sd.write(&rec).unwrap();
        let p = d.path().join("containers/k8s.io/c1.json");
        // crtd reads state files with this very function and type.
        let read: ContainerRecord = node_files::read_json(&p).unwrap();
        assert_eq!(read, rec);
        let k8s = read.kubernetes.unwrap();
        assert_eq!(
            (k8s.namespace.as_str(), k8s.pod.as_str()),
            ("shop", "web-0")
        );
        assert_eq!(k8s.pod_uid, "");
        // The cgroup in the JSON shape crtd has always read.
        let v: Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        assert_eq!(
            v["cgroup"],
            serde_json::json!({"version": 1, "memory": "/sys/fs/cgroup/memory/c1",
                "cpuacct": null, "pids": "/sys/fs/cgroup/pids/c1"})
        );
        assert_eq!(v["shim_pid"], std::process::id());
    }

    #[test]
    fn a_deleted_containers_last_record_is_kept_for_crtd_and_bounded() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let sd = StateDir(d.path().to_path_buf());
        let mut rec = ContainerRecord::new("k8s.io", "c1", 42);
        sd.write(&rec).unwrap();
        rec.exited(137);
        sd.retire(&rec);
        assert!(!d.path().join("containers/k8s.io/c1.json").exists());
        let ended: Vec<_> = fs::read_dir(d.path().join("ended"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(ended.len(), 1);
        let v: Value = serde_json::from_slice(&fs::read(&ended[0]).unwrap()).unwrap();
        assert_eq!(
            (v["id"].as_str(), v["exit_code"].as_i64()),
            (Some("c1"), Some(137))
        );
        assert!(v["exited"].is_string());
        assert_eq!(
            fs::metadata(&ended[0]).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // With nobody taking them, the oldest go beyond the bound.
        for i in 0..13 {
            sd.retire_keeping(&ContainerRecord::new("ns", &format!("x{i}"), 1), 8);
        }
        let mut names: Vec<String> = fs::read_dir(d.path().join("ended"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 8);
        names.sort();
        assert!(names.last().unwrap().ends_with("-ns-x12.json"), "{names:?}");
        assert!(names.first().unwrap().ends_with("-ns-x5.json"), "{names:?}");
        assert!(!names.iter().any(|n| n.ends_with("-c1.json")));
    }
}
