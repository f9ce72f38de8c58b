//! The containers crtd knows: those the shims run now (their state files
//! under `<state_dir>/containers/`), those whose history is stored and those
//! deleted since. Ingest keeps what the shims' files say in memory
//! ([`NodeFiles`]) and requests answer from that: they read a file again
//! only when a shim changed it. Processes, CPU and memory are read on demand.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crt_tracer::escape;
use crt_tracer::node_files::{
    self, CgroupDescription, ContainerRecord, TraceMeta, CONTAINERS_DIR, TRACES_DIR,
};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::stats::Stats;
use crate::store::{Store, Stream};
use crate::tenants::{Scope, Tenants};

/// What the shims' files said when ingest last read them.
#[derive(Debug, Default)]
pub struct NodeSnapshot {
    /// Every container state file, by its path.
    pub records: BTreeMap<PathBuf, Arc<ContainerRecord>>,
    /// Every trace's `meta.json`, by its trace directory.
    pub traces: BTreeMap<PathBuf, Arc<TraceMeta>>,
}

/// When a file was last seen as it is: a shim replaces its files whole (a
/// rename: a new inode), so any change shows in one of these.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            ino: m.ino(),
            len: m.len(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        }
    }
}

/// Parsed files by path, each parsed again only when it changed.
struct FileCache<T> {
    files: HashMap<PathBuf, (Stamp, Arc<T>)>,
}

impl<T> Default for FileCache<T> {
    fn default() -> Self {
        FileCache {
            files: HashMap::new(),
        }
    }
}

impl<T: DeserializeOwned> FileCache<T> {
    /// Brings the cache to the files `paths` (those that exist now);
    /// `file_of` maps a path to the file to read. Returns whether anything
    /// changed, and how many files were parsed. A file that does not parse
    /// (yet) is left out, and read again at the next call.
    fn refresh(
        &mut self,
        paths: impl Iterator<Item = PathBuf>,
        file_of: impl Fn(&Path) -> PathBuf,
    ) -> (bool, u64) {
        let mut changed = false;
        let mut parsed_files = 0;
        let mut now: HashMap<PathBuf, (Stamp, Arc<T>)> = HashMap::new();
        for path in paths {
            let file = file_of(&path);
            let Ok(stamp) = fs::metadata(&file).map(|m| Stamp::of(&m)) else {
                continue;
            };
            match self.files.remove(&path) {
                Some((known, parsed)) if known == stamp => {
                    now.insert(path, (known, parsed));
                }
                _ => {
                    changed = true;
                    parsed_files += 1;
                    match node_files::read_json::<T>(&file) {
                        Ok(parsed) => {
                            now.insert(path, (stamp, Arc::new(parsed)));
                        }
                        Err(e) => tracing::debug!("catalog: {e}"),
                    }
                }
            }
        }
        changed |= !self.files.is_empty();
        self.files = now;
        (changed, parsed_files)
    }

    fn current(&self) -> BTreeMap<PathBuf, Arc<T>> {
        self.files
            .iter()
            .map(|(p, (_, v))| (p.clone(), Arc::clone(v)))
            .collect()
    }
}

/// The directories a shim changes when it writes or removes a state file
/// (renamed into `containers/<namespace>/`) or starts a trace (a new
/// directory in `traces/<namespace>/`), as they are now.
fn watched_dirs_now(state_dir: &Path) -> Vec<(PathBuf, Stamp)> {
    let mut out = Vec::new();
    for root in [state_dir.join(CONTAINERS_DIR), state_dir.join(TRACES_DIR)] {
        if let Ok(m) = fs::metadata(&root) {
            out.push((root.clone(), Stamp::of(&m)));
        }
        for e in fs::read_dir(&root).into_iter().flatten().flatten() {
            if let Ok(m) = e.metadata() {
                if m.is_dir() {
                    out.push((e.path(), Stamp::of(&m)));
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The shims' files as ingest keeps them: looked at again at each ingest
/// rescan (and at a request, if their directories changed), parsing only
/// the files that changed; requests take the last snapshot.
#[derive(Default)]
pub struct NodeFiles {
    snapshot: RwLock<Arc<NodeSnapshot>>,
    records: Mutex<FileCache<ContainerRecord>>,
    traces: Mutex<FileCache<TraceMeta>>,
    /// The directories shims change, as the last rescan found them.
    watched_dirs: Mutex<Vec<(PathBuf, Stamp)>>,
    /// Files parsed since start.
    parsed: AtomicU64,
}

impl NodeFiles {
    /// What the files said at the last rescan (cheap: one `Arc`).
    pub fn snapshot(&self) -> Arc<NodeSnapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// State files and trace metas parsed since start.
    #[cfg(test)]
    pub fn files_parsed(&self) -> u64 {
        self.parsed.load(Ordering::Relaxed)
    }

    /// Whether a shim wrote or removed a state file or started a trace
    /// since the last rescan, as the directories say (a few `stat`s, no file
    /// read). A change within the clock tick of the last rescan may show
    /// only at the next one.
    pub fn changed(&self, state_dir: &Path) -> bool {
        *self
            .watched_dirs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            != watched_dirs_now(state_dir)
    }

    /// Reads the state files and trace metas under `state_dir` that changed
    /// since the last rescan; publishes a new snapshot if any did.
    pub fn rescan(&self, state_dir: &Path) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let mut traces = self.traces.lock().unwrap_or_else(PoisonError::into_inner);
        // Before the files: a write meanwhile shows at the next look.
        let dirs = watched_dirs_now(state_dir);
        let (records_changed, records_parsed) = records.refresh(
            node_files::container_files(&state_dir.join(CONTAINERS_DIR)),
            Path::to_path_buf,
        );
        let (traces_changed, traces_parsed) = traces
            .refresh(node_files::trace_dirs(&state_dir.join(TRACES_DIR)), |dir| {
                dir.join(node_files::META_FILE)
            });
        self.parsed
            .fetch_add(records_parsed + traces_parsed, Ordering::Relaxed);
        if records_changed || traces_changed {
            let next = Arc::new(NodeSnapshot {
                records: records.current(),
                traces: traces.current(),
            });
            *self
                .snapshot
                .write()
                .unwrap_or_else(PoisonError::into_inner) = next;
        }
        *self
            .watched_dirs
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = dirs;
    }
}

/// What the node last said of a container.
#[derive(Clone)]
pub enum Known {
    /// Its shim's state file, or the last one it left when deleted.
    Record(Arc<ContainerRecord>),
    /// Only its trace's `meta.json` (a container that just ran, say).
    Trace(Arc<TraceMeta>),
    /// Only its stored history.
    History,
}

/// One container, as crtd shows it.
#[derive(Clone)]
pub struct ContainerView {
    pub namespace: String,
    pub id: String,
    pub tenant: Option<String>,
    /// created, running, stopped (the shim says so), unknown (its shim is
    /// gone without a word) or gone (only history left).
    pub status: String,
    pub known: Known,
    /// Its stored instances, oldest first.
    pub streams: Vec<Arc<Stream>>,
    /// Its Kubernetes identity, where it can be trusted (see
    /// [`Tenants::trusted_kubernetes`]); `null` otherwise.
    pub trusted_kubernetes: Value,
}

impl ContainerView {
    /// A container that no longer runs, known from `known` (its last state,
    /// or what its trace says); streams and trust are added by the caller.
    fn gone(namespace: &str, id: &str, known: Known) -> ContainerView {
        ContainerView {
            namespace: namespace.to_string(),
            id: id.to_string(),
            tenant: None,
            status: "gone".into(),
            known,
            streams: Vec::new(),
            trusted_kubernetes: Value::Null,
        }
    }

    /// The shim's record of it, if there is one.
    pub fn record(&self) -> Option<&ContainerRecord> {
        match &self.known {
            Known::Record(r) => Some(r),
            _ => None,
        }
    }

    /// What the shim or the stored history says of the container's
    /// Kubernetes identity, before deciding whether to believe it.
    fn claimed_kubernetes(&self) -> Value {
        let claimed = match &self.known {
            Known::Record(r) => r.kubernetes.as_ref(),
            Known::Trace(m) => m.kubernetes.as_ref(),
            Known::History => None,
        };
        claimed
            .and_then(|k| serde_json::to_value(k).ok())
            .or_else(|| self.streams.last().map(|s| s.meta.kubernetes.clone()))
            .unwrap_or(Value::Null)
    }

    pub fn kubernetes(&self) -> Value {
        let k = self.trusted_kubernetes.clone();
        if k.get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            Value::Null
        } else {
            k
        }
    }

    pub fn k8s_namespace(&self) -> Option<String> {
        self.kubernetes()
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// The pod it belongs to, if any: a pod is its uid, so a pod deleted and
    /// made again under the same name (a StatefulSet's) is another pod.
    pub fn pod(&self) -> Option<PodId> {
        let k = self.kubernetes();
        let ns = k.get("namespace")?.as_str()?;
        let pod = k.get("pod")?.as_str()?;
        let uid = k.get("pod_uid").and_then(Value::as_str).unwrap_or("");
        (!pod.is_empty()).then(|| PodId {
            namespace: ns.to_string(),
            name: pod.to_string(),
            uid: uid.to_string(),
        })
    }
}

/// Who a pod is: its uid, with the namespace and name it had. (A record
/// without a uid, which CRI always writes, keeps an empty one: such pods
/// are told apart by namespace and name alone.)
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PodId {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl PodId {
    /// Does a `pod=` filter name this pod: its uid, its name, or namespace/name
    /// (the last two meaning every pod that had that name)?
    pub fn matches(&self, wanted: &str) -> bool {
        match wanted.split_once('/') {
            Some((ns, name)) => ns == self.namespace && name == self.name,
            None => wanted == self.name || (!self.uid.is_empty() && wanted == self.uid),
        }
    }
}

pub struct Catalog<'a> {
    pub tenants: &'a Tenants,
    pub store: &'a Store,
    pub stats: &'a Stats,
    /// The shims' files, as ingest last read them.
    pub files: Arc<NodeSnapshot>,
    pub state_dir: PathBuf,
    /// Each running container's last hour of usage (its CPU share comes from there).
    pub usage: &'a crate::usage_history::UsageHistory,
}

impl Catalog<'_> {
    /// Every container the scope may see.
    pub fn containers(&self, scope: &Scope) -> Vec<ContainerView> {
        let mut by_key: BTreeMap<(String, String), ContainerView> = BTreeMap::new();
        for rec in self.files.records.values() {
            let mut status = rec.status.as_str().to_string();
            // A shim killed outright leaves its last word behind: with the
            // shim gone, nobody can say the container still runs.
            if status != "stopped" && !shim_alive(rec) {
                status = "unknown".into();
            }
            by_key.insert(
                (rec.namespace.clone(), rec.id.clone()),
                ContainerView {
                    namespace: rec.namespace.clone(),
                    id: rec.id.clone(),
                    tenant: None,
                    status,
                    known: Known::Record(Arc::clone(rec)),
                    streams: Vec::new(),
                    trusted_kubernetes: Value::Null,
                },
            );
        }
        // Containers deleted since: how they ended. A live one of the same
        // id (created again) is the one shown.
        for rec in self.store.ended.all() {
            by_key
                .entry((rec.namespace.clone(), rec.id.clone()))
                .or_insert_with(|| {
                    ContainerView::gone(&rec.namespace, &rec.id, Known::Record(Arc::clone(&rec)))
                });
        }
        // Traces on disk whose history is not stored yet (a container that
        // just ran): known at once, their events follow within moments.
        for meta in self.files.traces.values() {
            by_key
                .entry((meta.namespace.clone(), meta.container.clone()))
                .or_insert_with(|| {
                    ContainerView::gone(
                        &meta.namespace,
                        &meta.container,
                        Known::Trace(Arc::clone(meta)),
                    )
                });
        }
        for s in self.store.streams() {
            let key = (s.meta.namespace.clone(), s.meta.container.clone());
            let v = by_key.entry(key).or_insert_with(|| {
                ContainerView::gone(&s.meta.namespace, &s.meta.container, Known::History)
            });
            v.streams.push(s);
        }
        let mut out = Vec::new();
        for (_, mut v) in by_key {
            v.streams.sort_by_key(|s| s.meta.instance);
            v.trusted_kubernetes = self
                .tenants
                .trusted_kubernetes(&v.namespace, &v.claimed_kubernetes());
            v.tenant = self
                .tenants
                .owner(&v.namespace, v.k8s_namespace().as_deref())
                .map(str::to_string);
            if scope.sees(v.tenant.as_deref()) {
                out.push(v);
            }
        }
        out
    }

    /// One container, or `None` — also when it exists but belongs to
    /// someone else (the caller answers both with the same 404).
    pub fn container(
        &self,
        scope: &Scope,
        namespace: Option<&str>,
        id: &str,
    ) -> Vec<ContainerView> {
        self.containers(scope)
            .into_iter()
            .filter(|c| c.id == id && namespace.is_none_or(|n| n == c.namespace))
            .collect()
    }

    /// The container's CPU time (ns) and memory (bytes) now, from its cgroup.
    pub fn usage_now(&self, v: &ContainerView) -> (Option<u64>, Option<u64>) {
        // A cgroup outlives nothing: once gone, its path may be someone else's.
        match v.record().and_then(|r| r.cgroup.as_ref()) {
            Some(cgroup) if v.status != "gone" => usage(cgroup),
            _ => (None, None),
        }
    }

    /// The container's syscalls per second, over every instance's stats window.
    pub fn syscall_rate(&self, v: &ContainerView) -> f64 {
        let rate: f64 = v
            .streams
            .iter()
            .map(|s| self.stats.snapshot(&s.id).rate)
            .sum();
        (rate * 10.0).round() / 10.0
    }

    /// Where the shim keeps the container's trace.
    fn trace_dir(&self, v: &ContainerView) -> PathBuf {
        self.state_dir
            .join(TRACES_DIR)
            .join(&v.namespace)
            .join(&v.id)
    }

    /// The `crt.dev/trace` value the shim applied to the container's trace (as the
    /// trace's `meta.json` keeps it), or `None` when it is not traced now.
    pub fn trace_spec(&self, v: &ContainerView) -> Option<String> {
        let trace_dir = self.trace_dir(v);
        match &v.known {
            // A trace directory left by an earlier, traced run says nothing of this one.
            Known::Record(r) if !r.traced => None,
            Known::Record(_) => self
                .files
                .traces
                .get(&trace_dir)
                .map(|m| m.annotation.clone()),
            Known::Trace(m) => Some(m.annotation.clone()),
            Known::History => None,
        }
    }

    /// Why the container's current trace has no return values (its lines end
    /// in `= ?`), as its shim wrote in the trace's `meta.json`; `None` when
    /// they are recorded, or when no trace of it is on the node any more.
    pub fn results_unavailable(&self, v: &ContainerView) -> Option<String> {
        match &v.known {
            Known::Record(r) if !r.traced => None,
            Known::Record(_) => self
                .files
                .traces
                .get(&self.trace_dir(v))
                .and_then(|m| m.results_unavailable.clone()),
            Known::Trace(m) => m.results_unavailable.clone(),
            Known::History => None,
        }
    }

    /// The JSON shown for a container (without processes).
    pub fn view_json(&self, v: &ContainerView) -> Value {
        let mut syscalls = 0;
        let mut dropped = 0;
        for s in &v.streams {
            let snap = self.stats.snapshot(&s.id);
            syscalls += snap.syscalls;
            dropped += snap.dropped;
        }
        let stored: u64 = v.streams.iter().map(|s| s.events()).sum();
        let record = v.record();
        let (cpu, mem) = self.usage_now(v);
        // Whether its history is being stored now (a full disk stops it;
        // the events wait in the shim's trace meanwhile).
        let trace_dir = self.trace_dir(v);
        let blocked = v
            .streams
            .iter()
            .filter_map(|s| self.store.health.blocked(&s.id))
            .chain(self.store.health.blocked(&trace_dir.to_string_lossy()))
            .next();
        let storing = match blocked {
            Some((error, since)) => json!({
                "ok": false,
                "error": error,
                "since": crt_tracer::render::rfc3339_utc(since),
            }),
            None => json!({"ok": true}),
        };
        let traced = match &v.known {
            Known::Record(r) => r.traced,
            Known::Trace(_) => true,
            Known::History => !v.streams.is_empty(),
        };
        json!({
            "storing": storing,
            "namespace": v.namespace,
            "id": v.id,
            "tenant": v.tenant,
            "status": v.status,
            "pid": record.map(|r| r.pid),
            "exit_code": record.and_then(|r| r.exit_code),
            "image": record.and_then(|r| r.image.as_deref()),
            "clone_of": record.and_then(|r| r.clone_of.as_deref()),
            "traced": traced,
            "trace_spec": self.trace_spec(v),
            "results_unavailable": self.results_unavailable(v),
            "kubernetes": v.kubernetes(),
            "created": record.map(|r| r.created.as_str()).filter(|c| !c.is_empty()),
            "exited": record.and_then(|r| r.exited.as_deref()),
            "cpu_usage_ns": cpu,
            "cpu_percent": self.usage.latest_cpu_percent(&v.namespace, &v.id),
            "memory_bytes": mem,
            "syscall_rate": self.syscall_rate(v),
            "syscalls_seen": syscalls,
            "events_stored": stored,
            "dropped": dropped,
            "instances": v.streams.len(),
        })
    }

    /// The container's processes now, with their syscall rates.
    pub fn processes(&self, v: &ContainerView) -> Vec<Value> {
        if v.status != "running" && v.status != "created" {
            return Vec::new();
        }
        let pids = match v.record().map(|r| r.pid) {
            Some(init) if init > 0 => container_pids(&ProcTable::recent(), init),
            _ => Vec::new(),
        };
        let mut rate_by_pid: BTreeMap<i32, f64> = BTreeMap::new();
        if let Some(s) = v.streams.last() {
            for (tid, r) in self.stats.snapshot(&s.id).per_tid {
                let pid = tgid_of(tid).unwrap_or(tid as i32);
                *rate_by_pid.entry(pid).or_default() += r;
            }
        }
        pids.into_iter()
            .map(|pid| {
                let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let args: Vec<String> = cmdline
                    .split(|&b| b == 0)
                    .filter(|a| !a.is_empty())
                    .map(escape::escape)
                    .collect();
                let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                // The state follows the (possibly odd) comm in parentheses.
                let state = stat
                    .rfind(')')
                    .and_then(|i| stat[i + 1..].split_whitespace().next())
                    .unwrap_or("?")
                    .to_string();
                let comm = fs::read(format!("/proc/{pid}/comm")).unwrap_or_default();
                let comm = escape::escape(comm.strip_suffix(b"\n").unwrap_or(&comm));
                json!({
                    "pid": pid,
                    "comm": comm,
                    "cmdline": args,
                    "state": state,
                    "syscall_rate": (rate_by_pid.get(&pid).copied().unwrap_or(0.0) * 10.0).round() / 10.0,
                })
            })
            .collect()
    }
}

/// Is the shim that wrote this record still running?
fn shim_alive(rec: &ContainerRecord) -> bool {
    let Some(pid) = rec.shim_pid else {
        // Records without one predate the field: believe them.
        return true;
    };
    // A recycled pid is some other program: the shim's comm says which.
    fs::read(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with(b"containerd-shim"))
}

fn tgid_of(tid: u32) -> Option<i32> {
    let s = fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

fn read_num(p: &Path) -> Option<u64> {
    fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// CPU time (ns) and memory (bytes) from the container's cgroup.
fn usage(cgroup: &CgroupDescription) -> (Option<u64>, Option<u64>) {
    match cgroup {
        CgroupDescription::V2 { unified } => {
            let cpu = fs::read_to_string(unified.join("cpu.stat"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("usage_usec "))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|us| us * 1000)
                });
            (cpu, read_num(&unified.join("memory.current")))
        }
        CgroupDescription::V1 {
            memory, cpuacct, ..
        } => {
            let cpu = cpuacct
                .as_ref()
                .and_then(|d| read_num(&d.join("cpuacct.usage")));
            let mem = memory
                .as_ref()
                .and_then(|d| read_num(&d.join("memory.usage_in_bytes")));
            (cpu, mem)
        }
    }
}

/// What `/proc` says of every process now: its parent and its pid namespace.
pub struct ProcTable {
    procs: Vec<(i32, i32, Option<u64>)>,
}

impl ProcTable {
    /// A table at most a moment old: one walk of `/proc` serves every
    /// container of a topology answer.
    pub fn recent() -> Arc<ProcTable> {
        static LAST: std::sync::Mutex<Option<(std::time::Instant, Arc<ProcTable>)>> =
            std::sync::Mutex::new(None);
        let mut last = LAST
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*last {
            Some((at, t)) if at.elapsed() < std::time::Duration::from_millis(250) => Arc::clone(t),
            _ => {
                let t = Arc::new(ProcTable::read());
                *last = Some((std::time::Instant::now(), Arc::clone(&t)));
                t
            }
        }
    }

    pub fn read() -> ProcTable {
        let mut procs = Vec::new();
        for e in fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
        {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let Some(ppid) = parent_of(pid) else {
                continue;
            };
            procs.push((pid, ppid, pid_namespace(pid)));
        }
        ProcTable { procs }
    }
}

/// The inode of a process's pid namespace.
fn pid_namespace(pid: i32) -> Option<u64> {
    fs::metadata(format!("/proc/{pid}/ns/pid"))
        .ok()
        .map(|m| m.ino())
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the (possibly odd) comm: state, then ppid.
    stat.get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The processes of the container whose init is `init`: those in its init's
/// pid namespace (when it has one of its own) and every descendant of them.
/// Never whatever merely shares its cgroup: a container's creator chooses
/// that path, and may point it at someone else's container.
pub fn container_pids(table: &ProcTable, init: i32) -> Vec<i32> {
    let Some(&(_, _, init_ns)) = table.procs.iter().find(|p| p.0 == init) else {
        return Vec::new();
    };
    let own_ns = init_ns.is_some() && init_ns != pid_namespace(std::process::id() as i32);
    let mut members: std::collections::BTreeSet<i32> = table
        .procs
        .iter()
        .filter(|p| p.0 == init || (own_ns && p.2 == init_ns))
        .map(|p| p.0)
        .collect();
    // Descendants, however deep (a nested pid namespace included).
    loop {
        let before = members.len();
        for p in &table.procs {
            if members.contains(&p.1) {
                members.insert(p.0);
            }
        }
        if members.len() == before {
            break;
        }
    }
    members.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(procs: &[(i32, i32, u64)]) -> ProcTable {
        ProcTable {
            procs: procs.iter().map(|&(p, pp, ns)| (p, pp, Some(ns))).collect(),
        }
    }

    #[test]
    fn a_containers_processes_are_its_pid_namespace_and_descendants() {
        // 100 is the container's init in pid namespace 7; 105 joined it
        // (an exec); 106 is 105's child in a nested namespace 8; 200 is
        // another container's process (namespace 9), whatever cgroup it is in.
        let t = table(&[
            (1, 0, 1),
            (90, 1, 1),
            (100, 90, 7),
            (101, 100, 7),
            (105, 91, 7),
            (106, 105, 8),
            (200, 95, 9),
            (201, 200, 9),
        ]);
        assert_eq!(container_pids(&t, 100), vec![100, 101, 105, 106]);
        assert_eq!(container_pids(&t, 200), vec![200, 201]);
        assert_eq!(container_pids(&t, 4242), Vec::<i32>::new());
    }

    #[test]
    fn without_a_pid_namespace_of_its_own_only_init_and_its_descendants_count() {
        let host = pid_namespace(std::process::id() as i32).unwrap();
        let t = table(&[(1, 0, host), (50, 1, host), (51, 50, host), (60, 1, host)]);
        assert_eq!(container_pids(&t, 50), vec![50, 51]);
    }

    #[test]
    fn the_real_proc_table_knows_this_process_and_its_parent() {
        let t = ProcTable::read();
        let me = std::process::id() as i32;
        let mine = container_pids(&t, me);
        assert!(mine.contains(&me), "{mine:?}");
        assert!(!mine.contains(&1), "{mine:?}");
    }
}
