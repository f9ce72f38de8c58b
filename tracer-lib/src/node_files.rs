//! The files a shim leaves in the node's state dir for crtd and crtctl: a
//! trace's `meta.json`, a container's state file and, once it is deleted,
//! its last state under `ended/`. One typed schema for writer and readers,
//! so a renamed field fails to compile instead of failing at run time.
//!
//! Every field a reader may find missing in a file an older shim wrote is
//! `#[serde(default)]`: files already on nodes keep parsing.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::render::{now_ns, parse_rfc3339_utc, rfc3339_utc};

/// Under the state dir: `traces/<namespace>/<container>/`.
pub const TRACES_DIR: &str = "traces";
/// Under the state dir: `containers/<namespace>/<id>.json`.
pub const CONTAINERS_DIR: &str = "containers";
/// Under the state dir: the last records of deleted containers.
pub const ENDED_DIR: &str = "ended";
/// In a trace directory.
pub const META_FILE: &str = "meta.json";

/// Writes `data` to `path` through a temporary file beside it and a rename,
/// so a reader sees the old file or the new one, never half of one. The file
/// is 0600 whatever the umask, and also when an older file of that name had
/// another mode (the temporary one may be left by a crash). Not synced: a
/// crash may lose the newest version, never leave a torn one in its place.
pub fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(data)?;
    }
    fs::rename(&tmp, path)
}

/// Reads and parses one of these files; a parse error names the file.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<T> {
    let bytes = fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a valid file of its kind: {e}", path.display()),
        )
    })
}

/// The subdirectories two levels down `root` (`<root>/<namespace>/<name>`),
/// in no particular order; a missing or unreadable level is skipped.
fn two_levels(root: &Path) -> impl Iterator<Item = PathBuf> {
    fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .flat_map(|ns| fs::read_dir(ns.path()).into_iter().flatten())
        .filter_map(|e| e.ok())
        .map(|e| e.path())
}

/// Every trace directory under `traces_root` (`<namespace>/<container>`).
/// A directory without a `meta.json` is not (or not yet) a trace.
pub fn trace_dirs(traces_root: &Path) -> impl Iterator<Item = PathBuf> {
    two_levels(traces_root).filter(|d| d.join(META_FILE).exists())
}

/// Every container state file under `containers_dir` (`<namespace>/<id>.json`).
pub fn container_files(containers_dir: &Path) -> impl Iterator<Item = PathBuf> {
    two_levels(containers_dir).filter(|p| p.extension().is_some_and(|e| e == "json"))
}

/// The Kubernetes identity CRI wrote into a container's spec. Empty strings
/// where CRI set nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KubernetesIdentity {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub container: String,
    pub sandbox_id: String,
    pub container_type: String,
}

/// Where a container's cgroup lives, for crtd's CPU and memory figures.
/// On disk: `{"version": 1, "memory": .., "cpuacct": .., "pids": ..}` (each
/// a path or null) or `{"version": 2, "unified": ..}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CgroupDescription {
    /// Per-controller directories of a v1 (or hybrid) hierarchy.
    V1 {
        memory: Option<PathBuf>,
        cpuacct: Option<PathBuf>,
        pids: Option<PathBuf>,
    },
    /// The unified hierarchy.
    V2 { unified: PathBuf },
}

/// The on-disk form of [`CgroupDescription`] (serde cannot tag by a number).
#[derive(Serialize, Deserialize)]
struct CgroupOnDisk {
    version: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unified: Option<PathBuf>,
    // A v1 description names all three, null or not; a v2 one none.
    #[serde(default, skip_serializing_if = "Absent::is_absent")]
    memory: Absent<PathBuf>,
    #[serde(default, skip_serializing_if = "Absent::is_absent")]
    cpuacct: Absent<PathBuf>,
    #[serde(default, skip_serializing_if = "Absent::is_absent")]
    pids: Absent<PathBuf>,
}

/// A field that is either absent from the JSON or present (maybe as null).
#[derive(Default)]
enum Absent<T> {
    #[default]
    No,
    Present(Option<T>),
}

impl<T> Absent<T> {
    fn is_absent(&self) -> bool {
        matches!(self, Absent::No)
    }

    fn into_option(self) -> Option<T> {
        match self {
            Absent::No => None,
            Absent::Present(v) => v,
        }
    }
}

impl<T: Serialize> Serialize for Absent<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Absent::No | Absent::Present(None) => s.serialize_none(),
            Absent::Present(Some(v)) => v.serialize(s),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Absent<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<T>::deserialize(d).map(Absent::Present)
    }
}

impl Serialize for CgroupDescription {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let on_disk = match self {
            CgroupDescription::V1 {
                memory,
                cpuacct,
                pids,
            } => CgroupOnDisk {
                version: 1,
                unified: None,
                memory: Absent::Present(memory.clone()),
                cpuacct: Absent::Present(cpuacct.clone()),
                pids: Absent::Present(pids.clone()),
            },
            CgroupDescription::V2 { unified } => CgroupOnDisk {
                version: 2,
                unified: Some(unified.clone()),
                memory: Absent::No,
                cpuacct: Absent::No,
                pids: Absent::No,
            },
        };
        on_disk.serialize(s)
    }
}

impl<'de> Deserialize<'de> for CgroupDescription {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let on_disk = CgroupOnDisk::deserialize(d)?;
        match (on_disk.version, on_disk.unified) {
            (1, _) => Ok(CgroupDescription::V1 {
                memory: on_disk.memory.into_option(),
                cpuacct: on_disk.cpuacct.into_option(),
                pids: on_disk.pids.into_option(),
            }),
            (2, Some(unified)) => Ok(CgroupDescription::V2 { unified }),
            (2, None) => Err(serde::de::Error::custom(
                "cgroup: version 2 without its \"unified\" path",
            )),
            (v, _) => Err(serde::de::Error::custom(format!(
                "cgroup: version {v} is not a cgroup version; expected 1 or 2"
            ))),
        }
    }
}

/// What the shim says a container is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    Created,
    Running,
    Stopped,
}

impl ContainerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Stopped => "stopped",
        }
    }
}

/// A container's state file, `<state_dir>/containers/<namespace>/<id>.json`,
/// rewritten by its shim at create, start and exit, and moved to `ended/` at
/// delete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub namespace: String,
    pub id: String,
    pub status: ContainerStatus,
    #[serde(default)]
    pub pid: i32,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// RFC 3339, UTC.
    #[serde(default)]
    pub created: String,
    /// RFC 3339, UTC.
    #[serde(default)]
    pub exited: Option<String>,
    #[serde(default)]
    pub traced: bool,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub kubernetes: Option<KubernetesIdentity>,
    #[serde(default)]
    pub cgroup: Option<CgroupDescription>,
    /// The shim that wrote the file; `None` in files older than the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shim_pid: Option<u32>,
    /// The OCI runtime binary.
    #[serde(default)]
    pub runtime: String,
    /// `namespace/id` of the container this one is a debug clone of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_of: Option<String>,
}

impl ContainerRecord {
    /// A container just created by this process (its shim), init `pid`.
    pub fn new(namespace: &str, id: &str, pid: i32) -> Self {
        ContainerRecord {
            namespace: namespace.to_string(),
            id: id.to_string(),
            status: ContainerStatus::Created,
            pid,
            exit_code: None,
            created: rfc3339_utc(now_ns()),
            exited: None,
            traced: false,
            image: None,
            kubernetes: None,
            cgroup: None,
            shim_pid: Some(std::process::id()),
            runtime: String::new(),
            clone_of: None,
        }
    }

    /// Its init exited with `code` now.
    pub fn exited(&mut self, code: i32) {
        self.status = ContainerStatus::Stopped;
        self.exit_code = Some(code);
        self.exited = Some(rfc3339_utc(now_ns()));
    }
}

/// A trace's `meta.json`, written once by the shim when the trace starts
/// (beside its segments); crtd follows a trace once it has one.
// `remote = "Self"` makes the derived code inherent functions, so that the
// Deserialize impl below can fill in `created_ns` for older files.
// Every field defaults: bench and tests write metas that name only a few,
// and a trace whose meta.json says little is still followed, as before.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct TraceMeta {
    pub namespace: String,
    pub container: String,
    /// The `crt.dev/trace` annotation, as given.
    pub annotation: String,
    /// The syscalls recorded.
    pub traced: Vec<String>,
    /// Syscalls asked for that the container's seccomp profile denies.
    pub denied_by_profile: Vec<String>,
    /// The OCI runtime binary.
    pub runtime: String,
    pub bundle: String,
    /// 0: no shim (a trace written by something else).
    pub shim_pid: u32,
    /// When the trace started, RFC 3339 (UTC, microseconds).
    pub created: String,
    /// The same instant in ns since the epoch: with the namespace and the
    /// container, the identity of this trace (crtd's stream instance).
    /// Files older than the field: parsed from `created` (0 if it is not a time).
    pub created_ns: u64,
    pub kubernetes: Option<KubernetesIdentity>,
    /// Why this trace has no return values (its lines end in `= ?`): the
    /// syscall-exit program could not be used on this node. `None` when
    /// results are recorded (and in traces older than results).
    pub results_unavailable: Option<String>,
}

impl Serialize for TraceMeta {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TraceMeta::serialize(self, s)
    }
}

impl<'de> Deserialize<'de> for TraceMeta {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut meta = TraceMeta::deserialize(d)?;
        if meta.created_ns == 0 {
            meta.created_ns = parse_rfc3339_utc(&meta.created).unwrap_or(0);
        }
        Ok(meta)
    }
}

impl TraceMeta {
    /// The `meta.json` of the trace directory `dir`.
    pub fn read(dir: &Path) -> io::Result<TraceMeta> {
        read_json(&dir.join(META_FILE))
    }
}

/// 64-bit FNV-1a: the node's one short, stable, non-cryptographic hash
/// (shim listener names, crtd's query cursors).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The name (16 hex digits) of the listener socket the shim serving
/// `namespace`/`id` keeps in the listener directory: stable and short
/// (a collision only shares a name between two shims of one node, which
/// bind fails loudly on).
pub fn listener_name(namespace: &str, id: &str) -> String {
    format!("{:016x}", fnv1a64(format!("{namespace}/{id}").as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_name_is_the_fnv1a_of_namespace_slash_id_in_16_hex_digits() {
        // Pinned: a shim and whoever looks for its socket must agree across builds.
        assert_eq!(listener_name("k8s.io", "abc"), "378b714ad406b8ac");
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
    }
    use serde_json::{json, Value};

    fn identity() -> KubernetesIdentity {
        KubernetesIdentity {
            namespace: "shop".into(),
            pod: "web-0".into(),
            pod_uid: "0b5f".into(),
            container: "app".into(),
            sandbox_id: "9a1c".into(),
            container_type: "container".into(),
        }
    }

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) {
        let text = serde_json::to_string_pretty(v).unwrap();
        assert_eq!(&serde_json::from_str::<T>(&text).unwrap(), v, "{text}");
    }

    #[test]
    fn every_type_round_trips() {
        round_trip(&identity());
        round_trip(&CgroupDescription::V1 {
            memory: Some("/sys/fs/cgroup/memory/x".into()),
            cpuacct: None,
            pids: Some("/sys/fs/cgroup/pids/x".into()),
        });
        round_trip(&CgroupDescription::V2 {
            unified: "/sys/fs/cgroup/x".into(),
        });
        let mut rec = ContainerRecord::new("k8s.io", "c1", 42);
        rec.kubernetes = Some(identity());
        rec.cgroup = Some(CgroupDescription::V2 {
            unified: "/sys/fs/cgroup/x".into(),
        });
        rec.image = Some("docker.io/library/busybox:latest".into());
        round_trip(&rec);
        rec.exited(137);
        round_trip(&rec);
        round_trip(&TraceMeta {
            namespace: "k8s.io".into(),
            container: "c1".into(),
            annotation: "%file".into(),
            traced: vec!["openat".into(), "open".into()],
            denied_by_profile: vec!["unshare".into()],
            runtime: "/usr/sbin/runc".into(),
            bundle: "/run/containerd/c1".into(),
            shim_pid: 4242,
            created: rfc3339_utc(1_764_000_000_123_456_789),
            created_ns: 1_764_000_000_123_456_789,
            kubernetes: Some(identity()),
            results_unavailable: Some("no BPF".into()),
        });
    }

    #[test]
    fn cgroups_keep_the_json_shape_crtd_has_always_read() {
        let v1 = CgroupDescription::V1 {
            memory: Some("/m".into()),
            cpuacct: None,
            pids: Some("/p".into()),
        };
        assert_eq!(
            serde_json::to_value(&v1).unwrap(),
            json!({"version": 1, "memory": "/m", "cpuacct": null, "pids": "/p"})
        );
        let v2 = CgroupDescription::V2 {
            unified: "/sys/fs/cgroup/a".into(),
        };
        assert_eq!(
            serde_json::to_value(&v2).unwrap(),
            json!({"version": 2, "unified": "/sys/fs/cgroup/a"})
        );
        let bad: Result<CgroupDescription, _> = serde_json::from_value(json!({"version": 3}));
        assert!(bad.unwrap_err().to_string().contains("version 3"));
    }

    /// A state file as the shim wrote it before the schema was typed
    /// (`serde_json::to_vec_pretty` of its record, `json!` for the rest).
    const OLD_STATE_FILE: &str = r#"{
  "namespace": "k8s.io",
  "id": "5d2c",
  "status": "stopped",
  "pid": 8123,
  "exit_code": 3,
  "created": "2026-11-27T10:00:00.123456Z",
  "exited": "2026-11-27T10:00:05.000001Z",
  "traced": true,
  "image": "docker.io/library/busybox:latest",
  "kubernetes": {
    "container": "app",
    "container_type": "container",
    "namespace": "shop",
    "pod": "web-0",
    "pod_uid": "0b5f",
    "sandbox_id": "9a1c"
  },
  "cgroup": {
    "cpuacct": "/sys/fs/cgroup/cpu,cpuacct/k8s/5d2c",
    "memory": "/sys/fs/cgroup/memory/k8s/5d2c",
    "pids": null,
    "version": 1
  },
  "shim_pid": 8100,
  "runtime": "/usr/sbin/runc"
}"#;

    /// A `meta.json` as the shim wrote it before `created_ns`.
    const OLD_META: &str = r#"{
  "annotation": "openat,connect",
  "bundle": "/run/containerd/io.containerd.runtime.v2.task/k8s.io/5d2c",
  "container": "5d2c",
  "created": "2026-11-27T10:00:00.123456Z",
  "denied_by_profile": [],
  "kubernetes": {
    "container": "app",
    "container_type": "container",
    "namespace": "shop",
    "pod": "web-0",
    "pod_uid": "0b5f",
    "sandbox_id": "9a1c"
  },
  "namespace": "k8s.io",
  "runtime": "/usr/sbin/runc",
  "shim_pid": 8100,
  "traced": ["openat", "connect"]
}"#;

    #[test]
    fn files_an_older_shim_wrote_still_parse() {
        let rec: ContainerRecord = serde_json::from_str(OLD_STATE_FILE).unwrap();
        assert_eq!(rec.status, ContainerStatus::Stopped);
        assert_eq!((rec.pid, rec.exit_code), (8123, Some(3)));
        assert_eq!(rec.kubernetes, Some(identity()));
        assert_eq!(
            rec.cgroup,
            Some(CgroupDescription::V1 {
                memory: Some("/sys/fs/cgroup/memory/k8s/5d2c".into()),
                cpuacct: Some("/sys/fs/cgroup/cpu,cpuacct/k8s/5d2c".into()),
                pids: None,
            })
        );
        assert_eq!(rec.shim_pid, Some(8100));
        // Written again, it says what it said (keys in another order).
        assert_eq!(
            serde_json::to_value(&rec).unwrap(),
            serde_json::from_str::<Value>(OLD_STATE_FILE).unwrap()
        );

        let meta: TraceMeta = serde_json::from_str(OLD_META).unwrap();
        assert_eq!(
            meta.created_ns,
            parse_rfc3339_utc("2026-11-27T10:00:00.123456Z").unwrap()
        );
        assert_eq!(meta.created_ns % 1_000_000_000, 123_456_000);
        assert_eq!(meta.traced, ["openat", "connect"]);
        assert_eq!(meta.kubernetes, Some(identity()));
        assert_eq!(meta.shim_pid, 8100);
    }

    #[test]
    fn the_oldest_and_the_hand_written_files_parse_with_defaults() {
        // Before `shim_pid`, before `runtime`; a record with no cgroup.
        let rec: ContainerRecord = serde_json::from_value(json!({
            "namespace": "default", "id": "c", "status": "running", "pid": 7,
            "kubernetes": null, "cgroup": null
        }))
        .unwrap();
        assert_eq!(
            (rec.status, rec.shim_pid, rec.cgroup, rec.runtime.as_str()),
            (ContainerStatus::Running, None, None, "")
        );
        // What bench and tests write: a few fields, `created` only.
        let meta: TraceMeta = serde_json::from_value(json!({
            "namespace": "default", "container": "c", "annotation": "%all",
            "created": "1970-01-01T00:00:01.000002Z", "shim_pid": 0, "kubernetes": {}
        }))
        .unwrap();
        assert_eq!(meta.created_ns, 1_000_002_000);
        assert_eq!(meta.kubernetes, Some(KubernetesIdentity::default()));
        // A time that is not one gives no instance, as before.
        let meta: TraceMeta =
            serde_json::from_value(json!({"namespace": "n", "container": "c", "created": "soon"}))
                .unwrap();
        assert_eq!(meta.created_ns, 0);
        // An unknown status is refused, naming it.
        let err = serde_json::from_value::<ContainerRecord>(
            json!({"namespace": "n", "id": "c", "status": "paused"}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("paused"), "{err}");
    }

    #[test]
    fn private_files_replace_older_ones_whole_and_0600_whatever_their_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c1.json");
        fs::write(&p, b"old").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        // A temporary file a crash left behind, readable by all.
        let tmp = d.path().join("c1.json.tmp");
        fs::write(&tmp, b"torn").unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o666)).unwrap();
        write_private(&p, b"new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!tmp.exists());
        // Listings of state files never take a temporary one for a record.
        let ns = d.path().join("containers/ns");
        fs::create_dir_all(&ns).unwrap();
        write_private(&ns.join("c2.json"), b"{}").unwrap();
        fs::write(ns.join("c3.json.tmp"), b"{").unwrap();
        let files: Vec<_> = container_files(&d.path().join("containers")).collect();
        assert_eq!(files, [ns.join("c2.json")]);
    }

    #[test]
    fn trace_dirs_are_those_with_a_meta_file() {
        let d = tempfile::tempdir().unwrap();
        for (ns, id, meta) in [("a", "x", true), ("a", "y", false), ("b", "z", true)] {
            let dir = d.path().join(ns).join(id);
            fs::create_dir_all(&dir).unwrap();
            if meta {
                fs::write(dir.join(META_FILE), b"{}").unwrap();
            }
        }
        let mut dirs: Vec<_> = trace_dirs(d.path()).collect();
        dirs.sort();
        assert_eq!(dirs, [d.path().join("a/x"), d.path().join("b/z")]);
        assert_eq!(trace_dirs(&d.path().join("missing")).count(), 0);
        // Every field may be missing; a file that is no JSON is refused, named.
        assert_eq!(
            TraceMeta::read(&d.path().join("a/x")).unwrap(),
            TraceMeta::default()
        );
        fs::write(d.path().join("b/z").join(META_FILE), b"{\"namesp").unwrap();
        let err = TraceMeta::read(&d.path().join("b/z")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("b/z/meta.json"), "{err}");
    }
}
