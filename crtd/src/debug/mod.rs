//! Debug clones (DESIGN.md decision 10): a copy of a tenant's running
//! container that the tenant can get into and change while the original
//! keeps serving. The clone's filesystem is the source's image plus a copy of
//! its writable layer taken while it was frozen for a moment (copied once
//! while it runs, then only what changed while frozen); process memory is not
//! cloned. The clone runs in new namespaces of its own (no network but `lo`,
//! so no production traffic), in a cgroup of its own with the source's
//! limits, with the source's bind mounts read-only, under a small init that
//! only waits: what the developer runs in it is an exec.
//!
//! containerd keeps everything there is to know about a clone (labels on its
//! container), so a crtd restart loses nothing, and clones end at their TTL.

pub mod containerd;
pub mod copy;
pub mod exec;
pub mod freeze;
pub mod image;
pub mod netns;
pub mod redeploy;
pub mod registry;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use serde_json::{json, Value};

use containerd::{Containerd, TASK_RUNNING};

/// Labels on a clone's container.
pub const LABEL_CLONE_OF: &str = "crt.dev/clone-of";
pub const LABEL_EXPIRES: &str = "crt.dev/clone-expires";
pub const LABEL_FREEZE_US: &str = "crt.dev/clone-freeze-us";
/// The network namespace crtd made for a clone with no network at all.
pub const LABEL_NETNS: &str = "crt.dev/clone-netns";
/// The annotation that selects what is traced.
pub const TRACE_ANNOTATION: &str = "crt.dev/trace";
/// Where a clone's copies of its source's volumes are.
pub const LABEL_VOLUMES: &str = "crt.dev/clone-volumes";
/// A clone restored from a checkpoint of its source's processes.
pub const LABEL_LIVE: &str = "crt.dev/clone-live";
/// Where crtd keeps the network namespaces it makes.
pub const NETNS_DIR: &str = "/run/crt/netns";
/// Where the clone's init is mounted (on the clone's own /dev tmpfs, so
/// nothing of it lands in the clone's writable layer).
pub const INIT_PATH: &str = "/dev/.crt-init";
/// The argument that makes the shim binary run as a clone's init.
pub const INIT_ARG: &str = "crt-clone-init";

/// How long a clone lives unless told otherwise, and at most.
pub const DEFAULT_TTL: Duration = Duration::from_secs(2 * 3600);
pub const MIN_TTL: Duration = Duration::from_secs(10);
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often expired clones are looked for.
pub const REAP_EVERY: Duration = Duration::from_secs(5);
/// The longest a source may stay frozen: its guard thaws it then.
const FREEZE_LIMIT: Duration = Duration::from_secs(5);

/// Why a clone could not be made or found; each maps to an HTTP status.
#[derive(Debug)]
pub enum DebugError {
    /// 404: no such container (or not the caller's).
    NotFound(String),
    /// 409: it exists but cannot be cloned as it is.
    Conflict(String),
    /// 400.
    BadInput(String),
    /// 500: containerd or the node failed.
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for DebugError {
    fn from(e: anyhow::Error) -> DebugError {
        DebugError::Failed(e)
    }
}

type Res<T> = std::result::Result<T, DebugError>;

/// What a live clone needs of the node.
const LIVE_NEEDS: &str = "a live clone (processes and memory too) needs a CRIU that passes `criu check` (4.2 or newer on Linux 6.13+; debug.criu in the node config names it, else `criu` from the PATH)";

/// Whether this node's CRIU can make live clones: `Err` says why not and
/// what a live clone needs.
pub fn criu_ready(criu: Option<&Path>) -> Result<(), String> {
    let binary = criu.unwrap_or(Path::new("criu"));
    let out = std::process::Command::new(binary).arg("check").output();
    let why = match out {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            format!("this node has no {}", binary.display())
        }
        Err(e) => format!("{} could not be run ({e})", binary.display()),
        Ok(o) if !o.status.success() => {
            let said = String::from_utf8_lossy(&o.stderr);
            let line = said
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim();
            format!(
                "this node's {} fails `criu check`{}",
                binary.display(),
                if line.is_empty() {
                    String::new()
                } else {
                    format!(
                        ": {}",
                        crt_tracer::escape::escape(&line.as_bytes()[..line.len().min(200)])
                    )
                }
            )
        }
        Ok(_) => return Ok(()),
    };
    Err(format!("{LIVE_NEEDS}; {why}. Without --live the clone copies the filesystem (processes start anew in it)"))
}

/// The network a clone gets: never the source's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloneNetwork {
    /// A network namespace of its own with `lo` up (the runtime's default).
    Loopback,
    /// A network namespace with no interface up at all.
    None,
}

impl CloneNetwork {
    pub fn parse(v: &str) -> Option<CloneNetwork> {
        match v {
            "loopback" => Some(CloneNetwork::Loopback),
            "none" => Some(CloneNetwork::None),
            _ => None,
        }
    }
}

/// What was asked for.
pub struct CloneRequest {
    pub namespace: String,
    pub source: String,
    pub name: Option<String>,
    pub ttl: Duration,
    /// What to trace in the clone, instead of what the source traces.
    pub trace: Option<String>,
    pub network: CloneNetwork,
    /// Destinations of the source's volumes (bind mounts) to copy into the
    /// clone, writable there; the others are mounted read-only.
    pub copy_volumes: Vec<String>,
    /// Clone the processes too (CRIU): they go on in the clone from where
    /// the source was at the freeze.
    pub live: bool,
}

/// What was made, and what it cost the source.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CloneReport {
    pub namespace: String,
    pub id: String,
    pub source: String,
    pub expires: String,
    /// How long the source was frozen, in ms.
    pub freeze_ms: f64,
    /// Whether the processes were cloned too (CRIU).
    pub live: bool,
    /// The first copy, made while the source ran.
    pub precopy_ms: f64,
    pub precopy_bytes: u64,
    /// What changed since, copied while it was frozen.
    pub frozen_bytes: u64,
    pub frozen_entries: u64,
    pub pid: u32,
}

/// A clone as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CloneInfo {
    pub namespace: String,
    pub id: String,
    pub source: String,
    pub expires: String,
    pub status: &'static str,
}

pub struct Debugger {
    pub containerd: Containerd,
    /// The binary mounted into clones as their init (the shim's, static).
    pub init_binary: PathBuf,
    /// A test hook (`CRTD_TEST_HOLD_FROZEN_MS`): how long to keep a source
    /// frozen after its copy, so a test can kill crtd in the freeze window.
    pub hold_frozen: Duration,
    /// Where copies of volumes are kept, a directory per clone.
    pub clones_dir: PathBuf,
}

/// Debugging as crtd offers it: containerd is reached on first use (it may
/// start after crtd), and every action is written to the audit log.
pub struct Service {
    pub containerd_address: PathBuf,
    pub init_binary: PathBuf,
    pub audit: PathBuf,
    /// The CRIU of live clones (`None`: PATH's).
    pub criu: Option<PathBuf>,
    connected: tokio::sync::Mutex<Option<std::sync::Arc<Debugger>>>,
}

impl Service {
    pub fn new(containerd_address: PathBuf, init_binary: PathBuf, audit: PathBuf) -> Service {
        Service {
            containerd_address,
            init_binary,
            audit,
            criu: None,
            connected: Default::default(),
        }
    }

    pub async fn debugger(&self) -> anyhow::Result<std::sync::Arc<Debugger>> {
        let mut c = self.connected.lock().await;
        if let Some(d) = &*c {
            return Ok(std::sync::Arc::clone(d));
        }
        let hold_frozen = std::env::var("CRTD_TEST_HOLD_FROZEN_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::ZERO, Duration::from_millis);
        let d = std::sync::Arc::new(Debugger {
            containerd: Containerd::connect(&self.containerd_address).await?,
            init_binary: self.init_binary.clone(),
            hold_frozen,
            clones_dir: self
                .audit
                .parent()
                .unwrap_or(Path::new("/var/lib/crt"))
                .join("clones"),
        });
        *c = Some(std::sync::Arc::clone(&d));
        Ok(d)
    }

    /// Appends one action to the audit log (JSON lines, 0600): who did what
    /// to which container, when, and how it ended.
    pub fn audit(
        &self,
        tenant: Option<&str>,
        action: &str,
        ns: &str,
        id: &str,
        outcome: &str,
        detail: Value,
    ) {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let line = json!({
            "ts": crt_tracer::render::rfc3339_utc(crt_tracer::render::now_ns()),
            "tenant": tenant,
            "action": action,
            "namespace": ns,
            "container": id,
            "outcome": outcome,
            "detail": detail,
        });
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.audit)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            tracing::error!(
                "debug: writing the audit log {}: {e}; the action was: {line}",
                self.audit.display()
            );
        }
        tracing::info!(target: "audit", "{line}");
    }
}

/// A name containerd accepts for a container: letters, digits, `_.-`, at
/// most 76 characters, starting with a letter or digit.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 76
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name={} is not a container name; expected 1 to 76 letters, digits, '_', '.' or '-', starting with a letter or digit",
            crt_tracer::escape::quote(&name.as_bytes()[..name.len().min(100)], false)
        ))
    }
}

fn random_suffix() -> String {
    let mut b = [0u8; 3];
    // Only to tell clones apart; a clash is refused by containerd, not hidden.
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Debugger {
    /// Clones a running container. The source is frozen only for the copy of
    /// what changed since the first copy, and thawed whatever happens.
    pub async fn clone_container(&self, r: CloneRequest) -> Res<CloneReport> {
        let (ns, src_id) = (r.namespace.as_str(), r.source.as_str());
        let not_found = || DebugError::NotFound(format!("container {ns}/{src_id}"));
        let Some(src) = self.containerd.container(ns, src_id).await? else {
            return Err(not_found());
        };
        if src.labels.contains_key(LABEL_CLONE_OF) {
            return Err(DebugError::Conflict(format!(
                "{ns}/{src_id} is a debug clone; clone its source instead"
            )));
        }
        let pid = match self.containerd.task(ns, src_id).await? {
            Some((pid, TASK_RUNNING)) => pid,
            _ => {
                return Err(DebugError::Conflict(format!(
                    "{ns}/{src_id} is not running; only a running container can be cloned"
                )))
            }
        };
        let id = match &r.name {
            Some(n) => {
                check_name(n).map_err(DebugError::BadInput)?;
                n.clone()
            }
            None => {
                let base: String = src_id.chars().take(60).collect();
                format!("{base}-debug-{}", random_suffix())
            }
        };
        if self.containerd.container(ns, &id).await?.is_some() {
            return Err(DebugError::Conflict(format!(
                "a container {ns}/{id} exists already; choose another name"
            )));
        }
        let (snapshotter, key) = (src.snapshotter.clone(), src.snapshot_key.clone());
        if key.is_empty() {
            return Err(DebugError::Conflict(format!(
                "{ns}/{src_id} has no snapshot (its root filesystem is not containerd's); it cannot be cloned"
            )));
        }
        let src_upper = containerd::upper_dir(
            &self.containerd.mounts(ns, &snapshotter, &key).await?,
        )
        .ok_or_else(|| {
            anyhow!("the snapshot of {ns}/{src_id} has no writable layer crtd knows how to copy")
        })?;
        let parent = self
            .containerd
            .snapshot_parent(ns, &snapshotter, &key)
            .await?;
        let spec_any = src
            .spec
            .clone()
            .ok_or_else(|| anyhow!("{ns}/{src_id} has no runtime spec"))?;
        let spec: Value = serde_json::from_slice(&spec_any.value)
            .with_context(|| format!("the runtime spec of {ns}/{src_id} is not JSON"))?;
        if r.live {
            live_preconditions(&r, &src, &spec)?;
        }
        let volumes_dir = self.clones_dir.join(ns).join(&id);
        let volumes = volume_copies(&spec, &r.copy_volumes, &volumes_dir)?;
        let mut spec = clone_spec(spec, ns, src_id, &id, &self.init_binary);
        for v in &volumes {
            writable_copy(&mut spec, &v.destination, &v.copy);
        }
        if let Some(t) = &r.trace {
            if src.runtime.as_ref().is_none_or(|rt| rt.name != CRT_RUNTIME) {
                return Err(DebugError::Conflict(format!(
                    "{ns}/{src_id} runs under {}, not {CRT_RUNTIME}: its clone cannot be traced (run the source with the crt runtime)",
                    src.runtime.as_ref().map_or("no runtime", |rt| rt.name.as_str())
                )));
            }
            spec["annotations"][TRACE_ANNOTATION] = json!(t);
        }
        let netns = match r.network {
            CloneNetwork::Loopback => None,
            CloneNetwork::None => {
                let path = Path::new(NETNS_DIR).join(format!("{ns}-{id}"));
                netns::create(&path).with_context(|| {
                    format!(
                        "making a network namespace for the clone at {}",
                        path.display()
                    )
                })?;
                set_network_path(&mut spec, &path);
                Some(path)
            }
        };
        let expires_ns = crt_tracer::render::now_ns() + r.ttl.as_nanos() as u64;
        let expires = crt_tracer::render::rfc3339_utc(expires_ns);

        let lease = self.containerd.lease(ns, &id, 10).await?;
        let made = self
            .make(
                r.live,
                netns.as_deref(),
                &volumes,
                (!volumes.is_empty()).then_some(volumes_dir.as_path()),
                ns,
                src_id,
                &id,
                pid,
                &lease,
                &snapshotter,
                &parent,
                &src_upper,
                &src,
                spec,
                spec_any.type_url,
                &expires,
            )
            .await;
        self.containerd.drop_lease(ns, &lease).await;
        match made {
            Ok(report) => Ok(report),
            Err(e) => {
                if let Err(c) = self.containerd.remove(ns, &id, &snapshotter, &id).await {
                    tracing::warn!("debug: cleaning up the failed clone {ns}/{id}: {c:#}");
                }
                if let Some(p) = &netns {
                    netns::remove(p);
                }
                if !volumes.is_empty() {
                    let _ = std::fs::remove_dir_all(&volumes_dir);
                }
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn make(
        &self,
        live: bool,
        netns: Option<&Path>,
        volumes: &[VolumeCopy],
        volumes_dir: Option<&Path>,
        ns: &str,
        src_id: &str,
        id: &str,
        pid: u32,
        lease: &str,
        snapshotter: &str,
        parent: &str,
        src_upper: &Path,
        src: &containerd::ContainerRecord,
        spec: Value,
        spec_type: String,
        expires: &str,
    ) -> Res<CloneReport> {
        let mounts = self
            .containerd
            .prepare(
                ns,
                lease,
                snapshotter,
                id,
                parent,
                HashMap::from([(LABEL_CLONE_OF.to_string(), src_id.to_string())]),
            )
            .await?;
        let upper = containerd::upper_dir(&mounts)
            .ok_or_else(|| anyhow!("the clone's snapshot has no writable layer"))?;
        let mut trees = vec![(
            src_upper.to_path_buf(),
            upper.clone(),
            "the writable layer".to_string(),
        )];
        for v in volumes {
            std::fs::create_dir_all(&v.copy)
                .with_context(|| format!("creating {}", v.copy.display()))?;
            // The copy's root is owned and moded as the volume's.
            {
                use std::os::unix::fs::{MetadataExt, PermissionsExt};
                let m = std::fs::metadata(&v.source)
                    .with_context(|| format!("reading {}", v.source.display()))?;
                std::os::unix::fs::chown(&v.copy, Some(m.uid()), Some(m.gid()))
                    .with_context(|| format!("chown {}", v.copy.display()))?;
                std::fs::set_permissions(
                    &v.copy,
                    std::fs::Permissions::from_mode(m.mode() & 0o7777),
                )
                .with_context(|| format!("chmod {}", v.copy.display()))?;
            }
            trees.push((
                v.source.clone(),
                v.copy.clone(),
                format!("the volume at {}", v.destination),
            ));
        }
        let hold = self.hold_frozen;
        // A live clone's processes are saved in the same freeze as its files.
        let checkpoint = {
            let (cd, ns, lease, src_id) = (
                self.containerd.clone(),
                ns.to_string(),
                lease.to_string(),
                src_id.to_string(),
            );
            let handle = tokio::runtime::Handle::current();
            move || -> anyhow::Result<Option<containerd::Descriptor>> {
                if !live {
                    return Ok(None);
                }
                handle
                    .block_on(cd.checkpoint(&ns, &lease, &src_id))
                    .map(Some)
            }
        };
        let (copied, checkpoint) =
            tokio::task::spawn_blocking(move || copy_frozen(pid, &trees, hold, checkpoint))
                .await
                .map_err(|e| anyhow!("the copy stopped: {e}"))??;
        let mut labels = HashMap::from([
            (LABEL_CLONE_OF.to_string(), src_id.to_string()),
            (LABEL_EXPIRES.to_string(), expires.to_string()),
            (
                LABEL_FREEZE_US.to_string(),
                copied.freeze.as_micros().to_string(),
            ),
        ]);
        if let Some(p) = netns {
            labels.insert(LABEL_NETNS.to_string(), p.to_string_lossy().into_owned());
        }
        if let Some(d) = volumes_dir {
            labels.insert(LABEL_VOLUMES.to_string(), d.to_string_lossy().into_owned());
        }
        if live {
            labels.insert(LABEL_LIVE.to_string(), "true".to_string());
        }
        let container = containerd::ContainerRecord {
            id: id.to_string(),
            labels,
            image: src.image.clone(),
            runtime: src.runtime.clone(),
            spec: Some(prost_types::Any {
                type_url: spec_type,
                value: serde_json::to_vec(&spec).map_err(anyhow::Error::from)?,
            }),
            snapshotter: snapshotter.to_string(),
            snapshot_key: id.to_string(),
            ..Default::default()
        };
        self.containerd
            .create_container(ns, lease, container)
            .await?;
        let pid = self
            .containerd
            .start_task_from(ns, id, mounts, checkpoint)
            .await?;
        if live {
            netns::loopback_up(pid)?;
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        tracing::info!(
            "debug: cloned {ns}/{src_id} as {ns}/{id}: frozen {:.1} ms ({} bytes copied while frozen, {} before)",
            ms(copied.freeze),
            copied.frozen.bytes,
            copied.precopy.bytes
        );
        Ok(CloneReport {
            namespace: ns.to_string(),
            id: id.to_string(),
            source: src_id.to_string(),
            expires: expires.to_string(),
            freeze_ms: ms(copied.freeze),
            live,
            precopy_ms: ms(copied.precopy_time),
            precopy_bytes: copied.precopy.bytes,
            frozen_bytes: copied.frozen.bytes,
            frozen_entries: copied.frozen.entries + copied.frozen.removed,
            pid,
        })
    }

    /// The clones in `namespaces`, with their state.
    pub async fn list(&self, namespaces: &[String]) -> Res<Vec<CloneInfo>> {
        let mut out = Vec::new();
        for ns in namespaces {
            for c in self.containerd.labelled(ns, LABEL_CLONE_OF).await? {
                let status = match self.containerd.task(ns, &c.id).await? {
                    Some((_, TASK_RUNNING)) => "running",
                    Some(_) => "stopped",
                    None => "created",
                };
                out.push(CloneInfo {
                    namespace: ns.clone(),
                    source: c.labels.get(LABEL_CLONE_OF).cloned().unwrap_or_default(),
                    expires: c.labels.get(LABEL_EXPIRES).cloned().unwrap_or_default(),
                    id: c.id,
                    status,
                });
            }
        }
        out.sort_by(|a, b| (&a.namespace, &a.id).cmp(&(&b.namespace, &b.id)));
        Ok(out)
    }

    /// Removes a clone and everything of it. Only clones: anything else is
    /// "not found".
    pub async fn remove(&self, ns: &str, id: &str) -> Res<()> {
        match self.containerd.container(ns, id).await? {
            Some(c) if c.labels.contains_key(LABEL_CLONE_OF) => {
                self.containerd
                    .remove(ns, id, &c.snapshotter, &c.snapshot_key)
                    .await?;
                // Only a namespace crtd made, in its own directory.
                if let Some(p) = c.labels.get(LABEL_NETNS).map(Path::new) {
                    if p.parent() == Some(Path::new(NETNS_DIR)) {
                        netns::remove(p);
                    }
                }
                // Only copies under crtd's own directory for them.
                if let Some(d) = c.labels.get(LABEL_VOLUMES).map(PathBuf::from) {
                    if d.starts_with(&self.clones_dir)
                        && !d.components().any(|c| c == std::path::Component::ParentDir)
                    {
                        let removed =
                            tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&d))
                                .await
                                .map_err(|e| anyhow!("removing the volume copies: {e}"))?;
                        if let Err(e) = removed {
                            if e.kind() != std::io::ErrorKind::NotFound {
                                return Err(anyhow!(
                                    "removing the volume copies of {ns}/{id}: {e}"
                                )
                                .into());
                            }
                        }
                    }
                }
                tracing::info!("debug: removed the clone {ns}/{id}");
                Ok(())
            }
            _ => Err(DebugError::NotFound(format!("clone {ns}/{id}"))),
        }
    }

    /// Removes every clone whose time is up; returns how many.
    pub async fn reap(&self) -> anyhow::Result<usize> {
        let now = crt_tracer::render::now_ns();
        let mut removed = 0;
        for ns in self.containerd.namespaces().await? {
            for c in self.containerd.labelled(&ns, LABEL_CLONE_OF).await? {
                let expired = c
                    .labels
                    .get(LABEL_EXPIRES)
                    .and_then(|e| crt_tracer::render::parse_rfc3339_utc(e))
                    .is_none_or(|t| t <= now);
                if expired {
                    match self.remove(&ns, &c.id).await {
                        Ok(()) => removed += 1,
                        Err(e) => {
                            tracing::warn!("debug: removing the expired clone {ns}/{}: {e:?}", c.id)
                        }
                    }
                }
            }
        }
        Ok(removed)
    }
}

/// What copying a writable layer cost.
struct FrozenCopy {
    precopy: copy::Copied,
    precopy_time: Duration,
    frozen: copy::Copied,
    freeze: Duration,
}

/// Copies each tree `(from, to, what)`: once while the container runs,
/// then what changed, with the container of `pid` frozen; `while_frozen`
/// runs in the same freeze (a live clone's checkpoint).
fn copy_frozen<T>(
    pid: u32,
    trees: &[(PathBuf, PathBuf, String)],
    hold: Duration,
    while_frozen: impl FnOnce() -> anyhow::Result<T>,
) -> Res<(FrozenCopy, T)> {
    let freezer = freeze::Freezer::of_pid(pid as i32)
        .with_context(|| format!("finding the freezer of pid {pid}"))?;
    let mut copies: Vec<copy::TreeCopy> = trees
        .iter()
        .map(|(from, to, _)| copy::TreeCopy::new(from, to))
        .collect();
    let t = Instant::now();
    let mut precopy = copy::Copied::default();
    for (c, (from, to, what)) in copies.iter_mut().zip(trees) {
        let done = c
            .pass()
            .with_context(|| format!("copying {what} {} to {}", from.display(), to.display()))?;
        precopy.add(done);
    }
    let precopy_time = t.elapsed();
    let frozen =
        freeze::Frozen::freeze(&freezer, FREEZE_LIMIT).context("freezing the container")?;
    let mut delta = Ok(copy::Copied::default());
    for (c, (_, _, what)) in copies.iter_mut().zip(trees) {
        match c.pass() {
            Ok(done) => {
                if let Ok(d) = delta.as_mut() {
                    d.add(done);
                }
            }
            Err(e) => {
                delta = Err(anyhow::Error::from(e)
                    .context(format!("copying what changed in {what} while frozen")));
                break;
            }
        }
    }
    let extra = match delta {
        Ok(_) => Some(while_frozen()),
        Err(_) => None,
    };
    std::thread::sleep(hold);
    let freeze = frozen.thaw().context("thawing the container")?;
    let frozen_copy = delta?;
    let extra = extra.expect("run when the copy succeeded")?;
    Ok((
        FrozenCopy {
            precopy,
            precopy_time,
            frozen: frozen_copy,
            freeze,
        },
        extra,
    ))
}

/// What cannot be asked of a live clone, whatever the node.
pub fn live_input(
    trace: Option<&str>,
    network: CloneNetwork,
    copy_volumes: &[String],
) -> Result<(), String> {
    if trace.is_some() {
        return Err("trace= cannot go with live=true: restored processes keep the seccomp filters they were saved with".into());
    }
    if network != CloneNetwork::Loopback || !copy_volumes.is_empty() {
        return Err("network=none and copy_volume= cannot go with live=true: a live clone gets its source's network namespace contents and mounts as CRIU saved them".into());
    }
    Ok(())
}

/// What a live clone needs of its source that a filesystem clone does not:
/// the crt runtime, no trace (CRIU cannot save a seccomp notification) and
/// no writable volumes (CRIU would mount them again as they were), and the
/// defaults for the rest. Whether the node's CRIU works was asked before
/// containerd was (`criu_ready`, by the API).
fn live_preconditions(
    r: &CloneRequest,
    src: &containerd::ContainerRecord,
    spec: &Value,
) -> Res<()> {
    let (ns, src_id) = (&r.namespace, &r.source);
    live_input(r.trace.as_deref(), r.network, &r.copy_volumes).map_err(DebugError::BadInput)?;
    if src.runtime.as_ref().is_none_or(|rt| rt.name != CRT_RUNTIME) {
        return Err(DebugError::Conflict(format!(
            "{ns}/{src_id} runs under {}, not {CRT_RUNTIME}: crtd makes live clones of crt containers only",
            src.runtime.as_ref().map_or("no runtime", |rt| rt.name.as_str())
        )));
    }
    let traced = spec["annotations"][TRACE_ANNOTATION]
        .as_str()
        .is_some_and(|t| !t.trim().is_empty() && t.trim() != "off");
    if traced {
        return Err(DebugError::Conflict(format!(
            "{ns}/{src_id} is traced ({TRACE_ANNOTATION}): CRIU cannot save a process whose seccomp filter notifies a supervisor; clone it without --live"
        )));
    }
    let volumes: Vec<&str> = spec["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| {
            (m["type"] == "bind"
                || m["options"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind")))
                && !m["options"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|x| x == "ro"))
        })
        .filter_map(|m| m["destination"].as_str())
        .collect();
    if !volumes.is_empty() {
        return Err(DebugError::Conflict(format!(
            "{ns}/{src_id} has writable volumes ({}): CRIU would mount them into a live clone as they were, writable into the source's data; clone it without --live",
            volumes.join(", ")
        )));
    }
    Ok(())
}

/// A volume of the source copied for its clone.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeCopy {
    pub destination: String,
    /// The source's directory on the node.
    pub source: PathBuf,
    /// Its copy, mounted in the clone instead.
    pub copy: PathBuf,
}

/// The volumes to copy: each asked-for destination must be a bind mount of
/// a directory in the source's spec.
pub fn volume_copies(spec: &Value, asked: &[String], dir: &Path) -> Res<Vec<VolumeCopy>> {
    let binds: Vec<(&str, &str)> = spec["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| {
            m["type"] == "bind"
                || m["options"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind"))
        })
        .filter_map(|m| Some((m["destination"].as_str()?, m["source"].as_str()?)))
        .collect();
    let mut out = Vec::new();
    for (i, want) in asked.iter().enumerate() {
        let want_trimmed = want.trim_end_matches('/');
        let Some((dest, source)) = binds
            .iter()
            .find(|(d, _)| d.trim_end_matches('/') == want_trimmed)
        else {
            let have: Vec<&str> = binds.iter().map(|(d, _)| *d).collect();
            return Err(DebugError::BadInput(format!(
                "copy_volume={} is not a volume of the container; expected the destination of one of its bind mounts: {}",
                crt_tracer::escape::quote(want.as_bytes(), false),
                if have.is_empty() { "it has none".to_string() } else { have.join(", ") }
            )));
        };
        if !Path::new(source).is_dir() {
            return Err(DebugError::BadInput(format!(
                "copy_volume={}: the volume is a file ({source}), not a directory; only directories are copied (files stay read-only)",
                crt_tracer::escape::quote(want.as_bytes(), false)
            )));
        }
        if out.iter().any(|v: &VolumeCopy| v.destination == *dest) {
            continue;
        }
        out.push(VolumeCopy {
            destination: dest.to_string(),
            source: PathBuf::from(source),
            copy: dir.join(format!("volume-{i}")),
        });
    }
    Ok(out)
}

/// Mounts `copy` writable at `destination` instead of the source's volume.
fn writable_copy(spec: &mut Value, destination: &str, copy: &Path) {
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        for m in mounts
            .iter_mut()
            .filter(|m| m["destination"] == destination)
        {
            m["source"] = json!(copy);
            let opts: Vec<Value> = m["options"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|o| o != "ro")
                .chain([json!("rw")])
                .collect();
            m["options"] = Value::Array(opts);
        }
    }
}

/// The runtime of the crt shim: only its containers can be traced.
pub const CRT_RUNTIME: &str = "io.containerd.crt.v2";

/// Makes the clone join the network namespace at `path`.
fn set_network_path(spec: &mut Value, path: &Path) {
    if let Some(nss) = spec["linux"]["namespaces"].as_array_mut() {
        for n in nss.iter_mut().filter(|n| n["type"] == "network") {
            n["path"] = json!(path);
        }
    }
}

/// The source's runtime spec, made into its clone's: new namespaces of every
/// kind (no network but `lo`), a cgroup of its own with the same limits,
/// bind mounts read-only, no annotations that route traffic or place it in a
/// pod, and an init that only waits.
pub fn clone_spec(mut spec: Value, ns: &str, src_id: &str, id: &str, init: &Path) -> Value {
    if let Some(p) = spec.get_mut("process").and_then(Value::as_object_mut) {
        p.insert("args".into(), json!([INIT_PATH, INIT_ARG]));
        p.insert("terminal".into(), json!(false));
    }
    spec["hostname"] = json!(id.chars().take(63).collect::<String>());
    if let Some(mounts) = spec.get_mut("mounts").and_then(Value::as_array_mut) {
        for m in mounts.iter_mut() {
            let is_bind = m["type"] == "bind"
                || m["options"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind"));
            if is_bind {
                let opts = m["options"].as_array().cloned().unwrap_or_default();
                let mut opts: Vec<Value> = opts.into_iter().filter(|o| o != "rw").collect();
                if !opts.iter().any(|o| o == "ro") {
                    opts.push(json!("ro"));
                }
                m["options"] = Value::Array(opts);
            }
        }
        mounts.push(json!({
            "destination": INIT_PATH,
            "type": "bind",
            "source": init,
            "options": ["rbind", "ro", "nosuid", "nodev"],
        }));
    }
    if let Some(linux) = spec.get_mut("linux").and_then(Value::as_object_mut) {
        if let Some(nss) = linux.get_mut("namespaces").and_then(Value::as_array_mut) {
            for n in nss.iter_mut() {
                if let Some(o) = n.as_object_mut() {
                    o.remove("path");
                }
            }
            // The clone's network is its own, even if the source shared the host's.
            if !nss.iter().any(|n| n["type"] == "network") {
                nss.push(json!({"type": "network"}));
            }
        }
        let cg = linux
            .get("cgroupsPath")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let new_cg = match cg.rfind(src_id) {
            Some(i) if !src_id.is_empty() => format!("{}{id}{}", &cg[..i], &cg[i + src_id.len()..]),
            _ => format!("/crt-debug/{ns}/{id}"),
        };
        linux.insert("cgroupsPath".into(), json!(new_cg));
    }
    if let Some(a) = spec.get_mut("annotations").and_then(Value::as_object_mut) {
        // What decides the tenant stays (a Kubernetes namespace under CRI);
        // what places it in a pod or routes to it goes.
        a.retain(|k, _| {
            !k.starts_with("io.kubernetes.") || k == "io.kubernetes.cri.sandbox-namespace"
        });
        a.insert(LABEL_CLONE_OF.into(), json!(format!("{ns}/{src_id}")));
    } else {
        spec["annotations"] = json!({ (LABEL_CLONE_OF): format!("{ns}/{src_id}") });
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clones_spec_is_isolated_from_its_source() {
        let src = json!({
            "process": {"args": ["/app", "--serve"], "env": ["A=1"], "cwd": "/srv", "terminal": true},
            "hostname": "web-0",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/data", "type": "bind", "source": "/var/lib/vol", "options": ["rbind", "rw"]},
                {"destination": "/etc/hosts", "source": "/pods/x/hosts", "options": ["rbind", "rprivate"]}
            ],
            "linux": {
                "namespaces": [
                    {"type": "pid"},
                    {"type": "network", "path": "/var/run/netns/cni-123"},
                    {"type": "ipc", "path": "/proc/99/ns/ipc"}
                ],
                "cgroupsPath": "/k8s.io/abc123",
                "resources": {"memory": {"limit": 1000000}}
            },
            "annotations": {
                "io.kubernetes.cri.sandbox-namespace": "shop",
                "io.kubernetes.cri.sandbox-id": "sb",
                "io.kubernetes.cri.container-type": "container",
                "crt.dev/trace": "openat"
            }
        });
        let c = clone_spec(
            src,
            "k8s.io",
            "abc123",
            "abc123-debug-1",
            Path::new("/usr/local/bin/containerd-shim-crt-v2"),
        );
        assert_eq!(c["process"]["args"], json!([INIT_PATH, INIT_ARG]));
        assert_eq!(
            c["process"]["env"],
            json!(["A=1"]),
            "the source's environment stays"
        );
        assert_eq!(c["process"]["terminal"], false);
        assert_eq!(c["hostname"], "abc123-debug-1");
        let nss = c["linux"]["namespaces"].as_array().unwrap();
        assert!(nss.iter().all(|n| n.get("path").is_none()), "{nss:?}");
        assert_eq!(c["linux"]["cgroupsPath"], "/k8s.io/abc123-debug-1");
        assert_eq!(c["linux"]["resources"]["memory"]["limit"], 1000000);
        let mounts = c["mounts"].as_array().unwrap();
        assert_eq!(
            mounts[1]["options"],
            json!(["rbind", "ro"]),
            "a volume is read-only"
        );
        assert_eq!(mounts[2]["options"], json!(["rbind", "rprivate", "ro"]));
        assert!(mounts[0].get("options").is_none(), "proc untouched");
        assert_eq!(mounts[3]["destination"], INIT_PATH);
        assert_eq!(mounts[3]["source"], "/usr/local/bin/containerd-shim-crt-v2");
        let a = c["annotations"].as_object().unwrap();
        assert_eq!(a["io.kubernetes.cri.sandbox-namespace"], "shop");
        assert!(!a.contains_key("io.kubernetes.cri.sandbox-id"));
        assert_eq!(
            a["crt.dev/trace"], "openat",
            "the clone is traced like its source"
        );
        assert_eq!(a[LABEL_CLONE_OF], "k8s.io/abc123");
    }

    #[test]
    fn a_host_network_source_gets_a_network_of_its_own_in_its_clone() {
        let src = json!({"process": {"args": ["x"]}, "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}, "mounts": []});
        let c = clone_spec(src, "default", "a", "b", Path::new("/init"));
        assert_eq!(
            c["annotations"][LABEL_CLONE_OF], "default/a",
            "a source without annotations gets the clone's"
        );
        assert!(c["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "network"));
        assert_eq!(c["linux"]["cgroupsPath"], "/crt-debug/default/b");
    }

    #[test]
    fn asked_for_volumes_are_copied_writable_and_others_stay_read_only() {
        let vol = tempfile::tempdir().unwrap();
        let src = json!({
            "process": {"args": ["x"]},
            "mounts": [
                {"destination": "/data", "type": "bind", "source": vol.path(), "options": ["rbind", "rw"]},
                {"destination": "/cache", "type": "bind", "source": vol.path(), "options": ["rbind"]},
                {"destination": "/etc/hosts", "type": "bind", "source": "/etc/hosts", "options": ["rbind"]}
            ],
            "linux": {"namespaces": []}
        });
        let dir = Path::new("/var/lib/crt/clones/ns/c");
        let v = volume_copies(&src, &["/data/".to_string()], dir).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].destination, "/data");
        assert_eq!(v[0].copy, dir.join("volume-0"));
        let mut c = clone_spec(src.clone(), "ns", "a", "c", Path::new("/init"));
        writable_copy(&mut c, &v[0].destination, &v[0].copy);
        assert_eq!(c["mounts"][0]["source"], json!(dir.join("volume-0")));
        assert_eq!(c["mounts"][0]["options"], json!(["rbind", "rw"]));
        assert_eq!(
            c["mounts"][1]["options"],
            json!(["rbind", "ro"]),
            "not asked for: read-only"
        );

        let e = volume_copies(&src, &["/nope".to_string()], dir).unwrap_err();
        let DebugError::BadInput(msg) = e else {
            panic!()
        };
        assert!(
            msg.contains("copy_volume=\"/nope\"") && msg.contains("/data, /cache, /etc/hosts"),
            "{msg}"
        );
        let e = volume_copies(&src, &["/etc/hosts".to_string()], dir).unwrap_err();
        let DebugError::BadInput(msg) = e else {
            panic!()
        };
        assert!(msg.contains("not a directory"), "{msg}");
    }

    fn fake_criu(dir: &Path, name: &str, script: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn a_live_clone_is_refused_saying_why_and_what_it_needs() {
        let dir = tempfile::tempdir().unwrap();
        let e = criu_ready(Some(&dir.path().join("none"))).unwrap_err();
        assert!(e.contains("has no") && e.contains("4.2 or newer"), "{e}");
        let broken = fake_criu(
            dir.path(),
            "criu-3.17",
            "echo 'Error (criu/vdso.c:1): vdso: Unexpected rt vDSO area bounds' >&2; exit 1",
        );
        let e = criu_ready(Some(&broken)).unwrap_err();
        assert!(
            e.contains(
                "fails `criu check`: Error (criu/vdso.c:1): vdso: Unexpected rt vDSO area bounds"
            ),
            "{e}"
        );
        assert!(
            e.contains("Without --live the clone copies the filesystem"),
            "{e}"
        );
        let good = fake_criu(dir.path(), "criu-4.2", "exit 0");
        assert!(criu_ready(Some(&good)).is_ok());

        let req = |trace: Option<&str>| CloneRequest {
            namespace: "ns".into(),
            source: "web".into(),
            name: None,
            ttl: DEFAULT_TTL,
            trace: trace.map(str::to_string),
            network: CloneNetwork::Loopback,
            copy_volumes: vec![],
            live: true,
        };
        let crt = containerd::ContainerRecord {
            runtime: Some(containerd_client::services::v1::container::Runtime {
                name: CRT_RUNTIME.into(),
                options: None,
            }),
            ..Default::default()
        };
        let plain =
            json!({"mounts": [{"destination": "/proc", "type": "proc"}], "annotations": {}});
        assert!(live_preconditions(&req(None), &crt, &plain).is_ok());
        let conflict = |r: Res<()>| match r {
            Err(DebugError::Conflict(m)) => m,
            other => panic!("expected a conflict: {other:?}"),
        };
        let traced = json!({"annotations": {(TRACE_ANNOTATION): "openat"}});
        let m = conflict(live_preconditions(&req(None), &crt, &traced));
        assert!(m.contains("is traced"), "{m}");
        let volume = json!({"mounts": [{"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind", "rw"]}]});
        let m = conflict(live_preconditions(&req(None), &crt, &volume));
        assert!(m.contains("writable volumes (/data)"), "{m}");
        let runc = containerd::ContainerRecord {
            runtime: Some(containerd_client::services::v1::container::Runtime {
                name: "io.containerd.runc.v2".into(),
                options: None,
            }),
            ..Default::default()
        };
        let m = conflict(live_preconditions(&req(None), &runc, &plain));
        assert!(m.contains("io.containerd.runc.v2"), "{m}");
        assert!(matches!(
            live_preconditions(&req(Some("%file")), &crt, &plain),
            Err(DebugError::BadInput(_))
        ));
    }

    #[test]
    fn clone_names_are_checked() {
        assert!(check_name("web-debug.1_a").is_ok());
        for bad in ["", "-x", "a/b", "a b", &"x".repeat(77)] {
            let e = check_name(bad).unwrap_err();
            assert!(e.starts_with("name=") && e.contains("expected"), "{e}");
        }
    }
}
