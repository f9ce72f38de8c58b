//! The containerd task API v2 surface: every Task RPC, each in a span named
//! after the container, over the containers this shim runs.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use containerd_shim::api;
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{EnumOrUnknown, Message, MessageField};
use containerd_shim::protos::shim::oci::ProcessDetails;
use containerd_shim::protos::types::task::{ProcessInfo, Status as TaskStatus};
use containerd_shim::{ExitSignal, Task, TtrpcContext, TtrpcResult};
use crt_config::{parse_trace, NodeConfig, TRACE_ANNOTATION};
use serde_json::Value;

use crate::cgroup::{CgroupPaths, OomWatcher};
use crate::container::{Container, ContainerState, EarlyExits, Process, Status};
use crate::error::{Result, ShimError};
use crate::events::{self, EventSink};
use crate::options::{self, RuntimeChoice};
use crate::profile;
use crate::reaper::{reaper, Exit};
use crate::runtime::{read_pid_file, resolve_binary, ChildStdio, Runtime};
use crate::state_file::{self, ContainerRecord, ContainerStatus, StateDir};
use crate::stdio::{self, ConsoleSocket, ProcessIo, StdioPaths};
use crate::trace::exits::ExitProbe;
use crate::trace::notify_loop::EXEC_SYSCALLS;
use crate::trace::{SessionOptions, TraceHub, TraceSession};
use crt_tracer::node_files::TraceMeta;

#[cfg(test)]
mod tests;

/// The kubelet marks pod sandboxes (pause containers) with this annotation.
const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
const INIT_PID_FILE: &str = "init.pid";
/// How long Delete waits for a process's output to reach the client.
const IO_DRAIN: Duration = Duration::from_secs(5);
/// How long Delete waits for a trace to be written out.
const TRACE_CLOSE: Duration = Duration::from_secs(3);
const TERMINAL_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Service {
    namespace: String,
    /// Names this shim's listener socket.
    listener_name: String,
    containers: Mutex<HashMap<String, Arc<Container>>>,
    sink: Arc<dyn EventSink>,
    exit: Arc<ExitSignal>,
    hub: Arc<TraceHub>,
    early: EarlyExits,
    oom: Option<Arc<OomWatcher>>,
    /// For tests: use this config instead of reading the node's.
    config_override: Option<NodeConfig>,
    /// The syscall-exit probe, loaded for the first traced container that
    /// records results; or why it could not be.
    exit_probe: OnceLock<Result<Arc<ExitProbe>, String>>,
}

impl Service {
    /// The shim's syscall-exit probe (loaded once), or why there is none.
    fn exit_probe(&self) -> Result<Arc<ExitProbe>, String> {
        self.exit_probe
            .get_or_init(|| {
                let probe = ExitProbe::load();
                if let Err(why) = &probe {
                    log::warn!("syscall results are not recorded: {why}");
                }
                probe
            })
            .clone()
    }

    /// The shim is going away: remove what it leaves on the node.
    pub fn cleanup(&self) {
        self.hub.remove_socket();
    }
}

/// The Task service containerd talks to.
#[derive(Clone)]
pub struct TaskService(pub Arc<Service>);

impl TaskService {
    pub fn new(
        namespace: &str,
        listener_name: &str,
        sink: Arc<dyn EventSink>,
        exit: Arc<ExitSignal>,
        config_override: Option<NodeConfig>,
    ) -> TaskService {
        let oom = match OomWatcher::start(Arc::clone(&sink)) {
            Ok(w) => Some(w),
            Err(e) => {
                log::warn!("OOM events are unavailable: {e}");
                None
            }
        };
        let service = Arc::new(Service {
            namespace: namespace.to_string(),
            listener_name: listener_name.to_string(),
            containers: Mutex::new(HashMap::new()),
            sink,
            exit,
            hub: Arc::new(TraceHub::default()),
            early: EarlyExits::default(),
            oom,
            config_override,
            exit_probe: OnceLock::new(),
        });
        let (tx, rx) = mpsc::channel::<Exit>();
        reaper().add_exit_handler(tx);
        let weak = Arc::downgrade(&service);
        std::thread::Builder::new()
            .name("exits".into())
            .spawn(move || {
                for exit in rx {
                    match weak.upgrade() {
                        Some(s) => s.handle_exit(exit),
                        None => break,
                    }
                }
            })
            .expect("starting the exit handler");
        TaskService(service)
    }
}

fn timestamp_now() -> containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp {
    crate::container::ExitInfo {
        code: 0,
        at: std::time::SystemTime::now(),
    }
    .timestamp()
}

/// The container has a pid namespace of its own (not a shared or host one).
fn has_own_pid_ns(spec: &Value) -> bool {
    spec.pointer("/linux/namespaces")
        .and_then(Value::as_array)
        .map(|nss| {
            nss.iter().any(|n| {
                n.get("type").and_then(Value::as_str) == Some("pid")
                    && n.get("path")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .is_empty()
            })
        })
        .unwrap_or(false)
}

impl Service {
    fn container(&self, id: &str) -> Result<Arc<Container>> {
        self.containers
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| ShimError::NotFound(format!("container {id} not found")))
    }

    fn config(&self, overrides: &options::Overrides) -> Result<NodeConfig> {
        match &self.config_override {
            Some(c) if overrides.config_path.is_none() => Ok(c.clone()),
            _ => options::node_config(overrides),
        }
    }

    fn create(&self, req: api::CreateTaskRequest) -> Result<api::CreateTaskResponse> {
        let id = req.id.clone();
        if id.is_empty() {
            return Err(ShimError::InvalidArgument("container id is empty".into()));
        }
        if self.containers.lock().unwrap().contains_key(&id) {
            return Err(ShimError::AlreadyExists(format!(
                "container {id} already exists"
            )));
        }
        let bundle = PathBuf::from(&req.bundle);
        let overrides = options::parse(req.options.as_ref())?;
        let config = self.config(&overrides)?;
        let choice = RuntimeChoice::new(&config, &overrides, &self.namespace);
        let binary = resolve_binary(&choice.binary).map_err(ShimError::FailedPrecondition)?;
        choice
            .save(&bundle)
            .map_err(|e| ShimError::internal("record the runtime in the bundle", e))?;
        let runtime = Runtime::new(
            binary,
            choice.root.clone(),
            choice.systemd_cgroup,
            bundle.join("log.json"),
        );

        let spec_path = bundle.join("config.json");
        let mut spec: Value = serde_json::from_slice(
            &fs::read(&spec_path).map_err(|e| ShimError::internal("read config.json", e))?,
        )
        .map_err(|e| ShimError::InvalidArgument(format!("config.json: {e}")))?;
        let own_pid_ns = has_own_pid_ns(&spec);

        let trace = self.prepare_trace(&id, &bundle, &mut spec, &config, &runtime)?;
        if trace.is_some() && !req.checkpoint.is_empty() {
            if let Some(t) = &trace {
                self.hub.remove(&id);
                t.close(TRACE_CLOSE);
                let _ = fs::remove_dir_all(&t.dir);
            }
            return Err(ShimError::FailedPrecondition(format!(
                "container {id}: a container restored from a checkpoint cannot be traced (its processes keep the seccomp filters they were saved with); remove {TRACE_ANNOTATION}"
            )));
        }

        let annotations = spec
            .get("annotations")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let state_dir = StateDir(config.trace.state_dir.clone());
        let result = self.create_container(
            &req,
            &bundle,
            &runtime,
            own_pid_ns,
            trace.clone(),
            (&annotations, state_dir, config.debug.criu.clone()),
        );
        if result.is_err() {
            if let Some(t) = trace {
                self.hub.remove(&id);
                t.close(TRACE_CLOSE);
                // Nothing ran: leave no trace of a container that never existed.
                let _ = fs::remove_dir_all(&t.dir);
            }
        }
        result
    }

    fn create_container(
        &self,
        req: &api::CreateTaskRequest,
        bundle: &Path,
        runtime: &Runtime,
        own_pid_ns: bool,
        trace: Option<Arc<TraceSession>>,
        (annotations, state_dir, criu): (
            &serde_json::Map<String, Value>,
            StateDir,
            Option<PathBuf>,
        ),
    ) -> Result<api::CreateTaskResponse> {
        let id = &req.id;
        let rootfs_dir = bundle.join("rootfs");
        let mut mounted = None;
        if !req.rootfs.is_empty() {
            fs::create_dir_all(&rootfs_dir)
                .map_err(|e| ShimError::internal("create rootfs dir", e))?;
            for m in &req.rootfs {
                containerd_shim::mount::mount_rootfs(
                    Some(m.type_.as_str()),
                    Some(m.source.as_str()),
                    &m.options,
                    &rootfs_dir,
                )
                .map_err(|e| {
                    unmount(&rootfs_dir);
                    ShimError::internal("mount rootfs", e)
                })?;
            }
            mounted = Some(rootfs_dir.clone());
        }
        let paths = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let pid_file = bundle.join(INIT_PID_FILE);
        let fail = |e: ShimError| {
            if let Some(r) = &mounted {
                unmount(r);
            }
            e
        };
        let log = trace.clone().map(|t| t as Arc<dyn stdio::LineSink>);
        if !req.checkpoint.is_empty() {
            fs::create_dir_all(bundle.join("criu-work"))
                .map_err(|e| fail(ShimError::internal("create the CRIU work dir", e)))?;
        }
        let pio = run_with_stdio(
            &paths,
            &format!("init-{}", short(id)),
            log,
            |console, child| {
                if req.checkpoint.is_empty() {
                    runtime.create(id, bundle, &pid_file, console, false, child)
                } else {
                    // Restored processes keep the terminals they had: none given.
                    let work = bundle.join("criu-work");
                    let image = Path::new(&req.checkpoint);
                    runtime.restore(id, bundle, &pid_file, image, &work, criu.as_deref(), child)
                }
            },
        )
        .map_err(fail)?;
        let pid =
            read_pid_file(&pid_file).map_err(|e| fail(ShimError::internal("read init pid", e)))?;

        let cgroup = CgroupPaths::of_pid(pid)
            .map_err(|e| {
                log::warn!("container {id}: cgroup not found ({e}); no stats or OOM events")
            })
            .ok();
        let oom_token = match (&self.oom, &cgroup) {
            (Some(w), Some(cg)) => w
                .add(id, cg)
                .map_err(|e| log::warn!("container {id}: OOM events unavailable: {e}"))
                .ok(),
            _ => None,
        };

        let mut init = Process::new("", paths);
        init.pid = pid;
        init.io = Arc::new(pio);
        let mut record = ContainerRecord::new(&self.namespace, id, pid);
        record.traced = trace.is_some();
        record.kubernetes = Some(state_file::kubernetes(annotations));
        record.image = annotations
            .get("io.kubernetes.cri.image-name")
            .and_then(Value::as_str)
            .map(str::to_string);
        record.cgroup = state_file::cgroup_description(cgroup.as_ref());
        // crtd marks the clones it makes (crt.dev/clone-of = namespace/id).
        record.clone_of = annotations
            .get("crt.dev/clone-of")
            .and_then(Value::as_str)
            .map(str::to_string);
        record.runtime = runtime.binary().to_string_lossy().into_owned();
        state_dir.update(&record);
        let container = Arc::new(Container {
            id: id.clone(),
            bundle: bundle.to_path_buf(),
            runtime: runtime.clone(),
            inner: Mutex::new(ContainerState {
                init,
                execs: HashMap::new(),
                paused: false,
                rootfs: mounted,
                trace,
                own_pid_ns,
                cgroup,
                oom_token,
                next_exec_file: 0,
                record,
                state_dir,
                restored: !req.checkpoint.is_empty(),
                criu,
            }),
        });
        self.containers
            .lock()
            .unwrap()
            .insert(id.clone(), container);

        events::send(
            &*self.sink,
            TaskCreate {
                container_id: id.clone(),
                bundle: req.bundle.clone(),
                rootfs: req.rootfs.clone(),
                io: MessageField::some(TaskIO {
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                    ..Default::default()
                }),
                checkpoint: req.checkpoint.clone(),
                pid: pid as u32,
                ..Default::default()
            },
        );
        Ok(api::CreateTaskResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    /// Reads `crt.dev/trace`; when the container opts in (and the node allows
    /// it), merges the NOTIFY rules into `spec` and starts the trace.
    fn prepare_trace(
        &self,
        id: &str,
        bundle: &Path,
        spec: &mut Value,
        config: &NodeConfig,
        runtime: &Runtime,
    ) -> Result<Option<Arc<TraceSession>>> {
        let annotations = spec
            .get("annotations")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let Some(value) = annotations.get(TRACE_ANNOTATION) else {
            return Ok(None);
        };
        let value = value.as_str().unwrap_or_default().to_string();
        if annotations.get(CONTAINER_TYPE).and_then(Value::as_str) == Some("sandbox") {
            log::info!("container {id} is a pod sandbox: {TRACE_ANNOTATION} applies to its containers, not to it");
            return Ok(None);
        }
        if !config.trace_allowed_in(&self.namespace) {
            log::warn!(
                "container {id}: {TRACE_ANNOTATION} ignored: the node config does not allow tracing in namespace {:?}",
                self.namespace
            );
            return Ok(None);
        }
        let Some(wanted) =
            parse_trace(&value).map_err(|e| ShimError::InvalidArgument(e.to_string()))?
        else {
            return Ok(None);
        };

        let listener = self
            .hub
            .listener_path(&config.trace.listener_dir, &self.listener_name)
            .map_err(|e| ShimError::internal("listener socket", e))?;
        let mut filter: BTreeSet<&str> = wanted.syscalls.iter().copied().collect();
        filter.extend(EXEC_SYSCALLS);
        let merged = profile::merge(spec, &filter, &listener.to_string_lossy(), id)
            .map_err(|e| ShimError::FailedPrecondition(e.to_string()))?;
        crt_tracer::node_files::write_private(
            &bundle.join("config.json"),
            &serde_json::to_vec(&*spec).unwrap_or_default(),
        )
        .map_err(|e| ShimError::internal("write config.json", e))?;
        let recorded: Vec<String> = wanted
            .syscalls
            .iter()
            .filter(|s| merged.notified.contains(**s))
            .map(|s| s.to_string())
            .collect();
        let denied: Vec<String> = wanted
            .syscalls
            .iter()
            .filter(|s| merged.denied.contains(**s))
            .map(|s| s.to_string())
            .collect();
        if !denied.is_empty() {
            log::info!(
                "container {id}: the seccomp profile denies {}; they stay denied and are not traced",
                denied.join(",")
            );
        }
        let probe = if config.trace.results {
            self.exit_probe()
        } else {
            Err("disabled by the node configuration (trace.results = false)".into())
        };
        let (exits, results_unavailable) = match probe {
            Ok(p) => (Some(p), None),
            Err(why) => (None, Some(why)),
        };
        let created_ns = crt_tracer::render::now_ns();
        let meta = TraceMeta {
            namespace: self.namespace.clone(),
            container: id.to_string(),
            annotation: value,
            traced: recorded.clone(),
            denied_by_profile: denied,
            runtime: runtime.binary().to_string_lossy().into_owned(),
            bundle: bundle.to_string_lossy().into_owned(),
            shim_pid: std::process::id(),
            created: crt_tracer::render::rfc3339_utc(created_ns),
            created_ns,
            kubernetes: Some(state_file::kubernetes(&annotations)),
            results_unavailable,
        };
        let session = TraceSession::start(SessionOptions {
            namespace: &self.namespace,
            container: id,
            dir: config.trace_dir(&self.namespace, id),
            traces_root: config.trace.state_dir.join("traces"),
            syscalls: recorded,
            config: &config.trace,
            meta,
            exits,
        })
        .map_err(|e| ShimError::internal("start the trace", e))?;
        self.hub.register(Arc::clone(&session));
        Ok(Some(session))
    }

    /// Saves the container's processes into `req.path` with CRIU, leaving
    /// them running (what a live debug clone is restored from). A traced
    /// container is refused: CRIU cannot save a seccomp notification.
    fn checkpoint(&self, req: &api::CheckpointTaskRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let st = c.inner.lock().unwrap();
        if st.init.status != Status::Running || st.init.exited().is_some() {
            return Err(ShimError::FailedPrecondition(format!(
                "container {} is not running",
                c.id
            )));
        }
        if st.trace.is_some() {
            return Err(ShimError::FailedPrecondition(format!(
                "container {} is traced: CRIU cannot checkpoint a process whose seccomp filter notifies a supervisor",
                c.id
            )));
        }
        if req.path.is_empty() {
            return Err(ShimError::InvalidArgument(
                "checkpoint has no image path".into(),
            ));
        }
        let work = c.bundle.join("criu-work");
        fs::create_dir_all(&work)
            .map_err(|e| ShimError::internal("create the CRIU work dir", e))?;
        c.runtime
            .checkpoint(&c.id, Path::new(&req.path), &work, st.criu.as_deref())?;
        Ok(())
    }

    fn start(&self, req: &api::StartRequest) -> Result<api::StartResponse> {
        let c = self.container(&req.id)?;
        let mut st = c.inner.lock().unwrap();
        if req.exec_id.is_empty() {
            match st.init.status {
                Status::Created if st.init.exited().is_none() => {}
                Status::Running => {
                    return Err(ShimError::FailedPrecondition(format!(
                        "container {} is already running",
                        c.id
                    )))
                }
                _ => {
                    return Err(ShimError::FailedPrecondition(format!(
                        "container {} has stopped",
                        c.id
                    )))
                }
            }
            if !st.restored {
                c.runtime.start(&c.id)?;
            }
            st.init.status = Status::Running;
            st.record.status = ContainerStatus::Running;
            st.state_dir.update(&st.record);
            let pid = st.init.pid;
            events::send(
                &*self.sink,
                TaskStart {
                    container_id: c.id.clone(),
                    pid: pid as u32,
                    ..Default::default()
                },
            );
            return Ok(api::StartResponse {
                pid: pid as u32,
                ..Default::default()
            });
        }

        if st.init.exited().is_some() {
            return Err(ShimError::FailedPrecondition(format!(
                "container {} is not running",
                c.id
            )));
        }
        let n = st.next_exec_file;
        st.next_exec_file += 1;
        let p = c.process_mut(&mut st, &req.exec_id)?;
        if p.status != Status::Created {
            return Err(ShimError::FailedPrecondition(format!(
                "exec {} was already started",
                req.exec_id
            )));
        }
        let spec_file = c.bundle.join(format!("exec-{n}.json"));
        let pid_file = c.bundle.join(format!("exec-{n}.pid"));
        fs::write(&spec_file, p.spec.as_deref().unwrap_or(b"{}"))
            .map_err(|e| ShimError::internal("write the exec process spec", e))?;
        let label = format!("exec-{}", short(&req.exec_id));
        let log = st.trace.clone().map(|t| t as Arc<dyn stdio::LineSink>);
        let p = st.execs.get_mut(&req.exec_id).expect("checked above");
        let result = run_with_stdio(&p.stdio, &label, log, |console, child| {
            c.runtime.exec(&c.id, &spec_file, &pid_file, console, child)
        });
        let _ = fs::remove_file(&spec_file);
        let pio = match result {
            Ok(pio) => pio,
            Err(e) => {
                // The exec never ran and never will: release whoever waits
                // for it (ctr waits before it starts), as containerd's runc
                // shim does, or their Wait would hold the shim up forever.
                p.exit.set(255);
                p.status = Status::Stopped;
                return Err(e);
            }
        };
        let pid = read_pid_file(&pid_file).map_err(|e| ShimError::internal("read exec pid", e))?;
        let _ = fs::remove_file(&pid_file);
        p.pid = pid;
        p.status = Status::Running;
        p.io = Arc::new(pio);
        events::send(
            &*self.sink,
            TaskExecStarted {
                container_id: c.id.clone(),
                exec_id: req.exec_id.clone(),
                pid: pid as u32,
                ..Default::default()
            },
        );
        if let Some(code) = self.early.take(pid) {
            self.exited(&c.id, p, code);
        }
        Ok(api::StartResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    /// Records a process exit and tells containerd.
    fn exited(&self, container_id: &str, p: &mut Process, code: i32) {
        let info = p.exit.set(code);
        p.status = Status::Stopped;
        events::send(
            &*self.sink,
            TaskExit {
                container_id: container_id.to_string(),
                id: if p.exec_id.is_empty() {
                    container_id.to_string()
                } else {
                    p.exec_id.clone()
                },
                pid: p.pid as u32,
                exit_status: info.code as u32,
                exited_at: MessageField::some(info.timestamp()),
                ..Default::default()
            },
        );
    }

    fn handle_exit(&self, exit: Exit) {
        let containers: Vec<Arc<Container>> =
            self.containers.lock().unwrap().values().cloned().collect();
        for c in containers {
            let mut st = c.inner.lock().unwrap();
            if st.init.pid == exit.pid && st.init.exited().is_none() {
                if !st.own_pid_ns {
                    // Nothing else takes the other processes down with it.
                    if let Err(e) = c.runtime.kill(&c.id, libc::SIGKILL as u32, true) {
                        log::debug!("container {}: kill --all after exit: {e}", c.id);
                    }
                }
                if let Some(t) = &st.trace {
                    t.init_exited();
                }
                self.exited(&c.id, &mut st.init, exit.status);
                st.record.exited(exit.status);
                st.state_dir.update(&st.record);
                return;
            }
            let id = c.id.clone();
            if let Some(p) = st
                .execs
                .values_mut()
                .find(|p| p.pid == exit.pid && p.exited().is_none())
            {
                self.exited(&id, p, exit.status);
                return;
            }
        }
        self.early.remember(exit.pid, exit.status);
    }

    fn delete(&self, req: &api::DeleteRequest) -> Result<api::DeleteResponse> {
        let c = self.container(&req.id)?;
        let mut st = c.inner.lock().unwrap();
        if !req.exec_id.is_empty() {
            let p = c.process(&st, &req.exec_id)?;
            if p.status == Status::Running && p.exited().is_none() {
                return Err(ShimError::FailedPrecondition(format!(
                    "exec {} is still running",
                    req.exec_id
                )));
            }
            let p = st.execs.remove(&req.exec_id).expect("checked above");
            drop(st);
            p.io.finish(IO_DRAIN);
            let exit = p.exited();
            return Ok(api::DeleteResponse {
                pid: p.pid as u32,
                exit_status: exit.map(|e| e.code as u32).unwrap_or(0),
                exited_at: MessageField::some(
                    exit.map(|e| e.timestamp()).unwrap_or_else(timestamp_now),
                ),
                ..Default::default()
            });
        }

        if st.init.status == Status::Running && st.init.exited().is_none() {
            return Err(ShimError::FailedPrecondition(format!(
                "container {} is running; kill it before deleting",
                c.id
            )));
        }
        if st.init.exited().is_none() {
            // Created but never started: end its init first (the exit
            // handler needs the container, so let go of it meanwhile).
            let cell = Arc::clone(&st.init.exit);
            drop(st);
            if let Err(e) = c.runtime.kill(&c.id, libc::SIGKILL as u32, true) {
                log::debug!("container {}: kill before delete: {e}", c.id);
            }
            cell.wait_timeout(Duration::from_secs(5));
            st = c.inner.lock().unwrap();
        }
        // The notify threads of a stopped container are done: they leave its
        // cgroup before the runtime removes it.
        if let Some(t) = &st.trace {
            t.close(TRACE_CLOSE);
        }
        if let Err(e) = c.runtime.delete(&c.id, true) {
            if !e.is_not_running() {
                log::warn!("container {}: {e}", c.id);
            }
        }
        // A container deleted before it started: its init was killed just now.
        let code = st
            .init
            .exited()
            .map(|e| e.code)
            .unwrap_or(128 + libc::SIGKILL);
        let info = st.init.exit.set(code);
        st.init.status = Status::Stopped;
        if st.record.exit_code.is_none() {
            st.record.exited(code);
        }
        let last_record = st.record.clone();
        let pid = st.init.pid;
        let io = Arc::clone(&st.init.io);
        let rootfs = st.rootfs.take();
        let trace = st.trace.take();
        let oom = st.oom_token.take();
        let st_dir = st.state_dir.clone();
        let execs: Vec<Arc<ProcessIo>> = st.execs.drain().map(|(_, p)| p.io).collect();
        drop(st);

        if !io.finish(IO_DRAIN) {
            log::warn!(
                "container {}: output still open {IO_DRAIN:?} after exit; closing",
                c.id
            );
        }
        for e in execs {
            e.finish(Duration::ZERO);
        }
        if let Some(r) = rootfs {
            unmount(&r);
        }
        if let Some(t) = trace {
            self.hub.remove(&c.id);
            if !t.close(TRACE_CLOSE) {
                log::warn!("container {}: trace still being written at delete", c.id);
            }
        }
        if let (Some(w), Some(t)) = (&self.oom, oom) {
            w.remove(t);
        }
        let _ = fs::remove_file(c.bundle.join(INIT_PID_FILE));
        st_dir.retire(&last_record);
        self.containers.lock().unwrap().remove(&c.id);
        events::send(
            &*self.sink,
            TaskDelete {
                container_id: c.id.clone(),
                pid: pid as u32,
                exit_status: info.code as u32,
                exited_at: MessageField::some(info.timestamp()),
                id: c.id.clone(),
                ..Default::default()
            },
        );
        Ok(api::DeleteResponse {
            pid: pid as u32,
            exit_status: info.code as u32,
            exited_at: MessageField::some(info.timestamp()),
            ..Default::default()
        })
    }

    fn exec(&self, req: api::ExecProcessRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let mut st = c.inner.lock().unwrap();
        if st.init.exited().is_some() {
            return Err(ShimError::FailedPrecondition(format!(
                "container {} is not running",
                c.id
            )));
        }
        if req.exec_id.is_empty() {
            return Err(ShimError::InvalidArgument("exec id is empty".into()));
        }
        if st.execs.contains_key(&req.exec_id) {
            return Err(ShimError::AlreadyExists(format!(
                "exec {} already exists in container {}",
                req.exec_id, c.id
            )));
        }
        let spec = req
            .spec
            .as_ref()
            .map(|a| a.value.clone())
            .ok_or_else(|| ShimError::InvalidArgument("exec has no process spec".into()))?;
        serde_json::from_slice::<Value>(&spec)
            .map_err(|e| ShimError::InvalidArgument(format!("exec process spec: {e}")))?;
        let mut p = Process::new(
            &req.exec_id,
            StdioPaths {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
            },
        );
        p.spec = Some(spec);
        st.execs.insert(req.exec_id.clone(), p);
        events::send(
            &*self.sink,
            TaskExecAdded {
                container_id: c.id.clone(),
                exec_id: req.exec_id.clone(),
                ..Default::default()
            },
        );
        Ok(())
    }

    fn state(&self, req: &api::StateRequest) -> Result<api::StateResponse> {
        let c = self.container(&req.id)?;
        let st = c.inner.lock().unwrap();
        let p = c.process(&st, &req.exec_id)?;
        let exit = p.exited();
        let status = match (exit, p.status) {
            (Some(_), _) => TaskStatus::STOPPED,
            (None, Status::Created) => TaskStatus::CREATED,
            (None, _) if st.paused => TaskStatus::PAUSED,
            (None, Status::Running) => TaskStatus::RUNNING,
            (None, Status::Stopped) => TaskStatus::STOPPED,
        };
        Ok(api::StateResponse {
            id: if req.exec_id.is_empty() {
                c.id.clone()
            } else {
                req.exec_id.clone()
            },
            bundle: c.bundle.to_string_lossy().into_owned(),
            pid: p.pid as u32,
            status: EnumOrUnknown::new(status),
            stdin: p.stdio.stdin.clone(),
            stdout: p.stdio.stdout.clone(),
            stderr: p.stdio.stderr.clone(),
            terminal: p.stdio.terminal,
            exit_status: exit.map(|e| e.code as u32).unwrap_or(0),
            exited_at: exit
                .map(|e| MessageField::some(e.timestamp()))
                .unwrap_or_default(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        })
    }

    fn kill(&self, req: &api::KillRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let st = c.inner.lock().unwrap();
        let p = c.process(&st, &req.exec_id)?;
        if p.exited().is_some() {
            return Err(ShimError::NotFound("process already finished".into()));
        }
        if req.exec_id.is_empty() {
            return c.runtime.kill(&c.id, req.signal, req.all).map_err(|e| {
                if e.is_not_running() {
                    ShimError::NotFound("process already finished".into())
                } else {
                    e.into()
                }
            });
        }
        if p.pid == 0 {
            return Err(ShimError::FailedPrecondition(format!(
                "exec {} has not started",
                req.exec_id
            )));
        }
        // SAFETY: kill with a pid we started and still track as running.
        if unsafe { libc::kill(p.pid, req.signal as i32) } < 0 {
            let e = std::io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::ESRCH) {
                ShimError::NotFound("process already finished".into())
            } else {
                ShimError::internal("kill", e)
            });
        }
        Ok(())
    }

    fn pids(&self, req: &api::PidsRequest) -> Result<api::PidsResponse> {
        let c = self.container(&req.id)?;
        let pids = c.runtime.ps(&c.id)?;
        let st = c.inner.lock().unwrap();
        let processes = pids
            .into_iter()
            .map(|pid| {
                let mut info = ProcessInfo {
                    pid: pid as u32,
                    ..Default::default()
                };
                if let Some(p) = st.execs.values().find(|p| p.pid == pid) {
                    let details = ProcessDetails {
                        exec_id: p.exec_id.clone(),
                        ..Default::default()
                    };
                    info.info = MessageField::some(Any {
                        type_url: "containerd.runc.v1.ProcessDetails".into(),
                        value: details.write_to_bytes().unwrap_or_default(),
                        ..Default::default()
                    });
                }
                info
            })
            .collect();
        Ok(api::PidsResponse {
            processes,
            ..Default::default()
        })
    }

    /// Pause (freeze) or resume (thaw) a container, and tell containerd.
    fn set_paused(&self, id: &str, paused: bool) -> Result<()> {
        let c = self.container(id)?;
        let mut st = c.inner.lock().unwrap();
        if paused {
            c.runtime.pause(&c.id)?;
            events::send(
                &*self.sink,
                TaskPaused {
                    container_id: c.id.clone(),
                    ..Default::default()
                },
            );
        } else {
            c.runtime.resume(&c.id)?;
            events::send(
                &*self.sink,
                TaskResumed {
                    container_id: c.id.clone(),
                    ..Default::default()
                },
            );
        }
        st.paused = paused;
        Ok(())
    }

    fn resize_pty(&self, req: &api::ResizePtyRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let io = {
            let st = c.inner.lock().unwrap();
            let p = c.process(&st, &req.exec_id)?;
            Arc::clone(&p.io)
        };
        io.resize(req.width, req.height).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ShimError::FailedPrecondition(e.to_string())
            } else {
                ShimError::internal("resize the terminal", e)
            }
        })
    }

    fn close_io(&self, req: &api::CloseIORequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let st = c.inner.lock().unwrap();
        let p = c.process(&st, &req.exec_id)?;
        if req.stdin {
            p.io.close_stdin();
        }
        Ok(())
    }

    fn update(&self, req: &api::UpdateTaskRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let resources = req
            .resources
            .as_ref()
            .ok_or_else(|| ShimError::InvalidArgument("update has no resources".into()))?;
        let _st = c.inner.lock().unwrap();
        let path = c.bundle.join("crt-update.json");
        fs::write(&path, &resources.value)
            .map_err(|e| ShimError::internal("write resources", e))?;
        let r = c.runtime.update(&c.id, &path);
        let _ = fs::remove_file(&path);
        r.map_err(Into::into)
    }

    fn wait(&self, req: &api::WaitRequest) -> Result<api::WaitResponse> {
        let c = self.container(&req.id)?;
        let cell = {
            let st = c.inner.lock().unwrap();
            let p = c.process(&st, &req.exec_id)?;
            Arc::clone(&p.exit)
        };
        let info = cell.wait();
        Ok(api::WaitResponse {
            exit_status: info.code as u32,
            exited_at: MessageField::some(info.timestamp()),
            ..Default::default()
        })
    }

    fn stats(&self, req: &api::StatsRequest) -> Result<api::StatsResponse> {
        let c = self.container(&req.id)?;
        let cg = c.inner.lock().unwrap().cgroup.clone().ok_or_else(|| {
            ShimError::FailedPrecondition(format!("container {}: its cgroup was not found", c.id))
        })?;
        let any = cg
            .metrics()
            .map_err(|e| ShimError::internal("read cgroup metrics", e))?;
        Ok(api::StatsResponse {
            stats: MessageField::some(any),
            ..Default::default()
        })
    }

    fn connect(&self, req: &api::ConnectRequest) -> Result<api::ConnectResponse> {
        let pid = self
            .container(&req.id)
            .map(|c| c.inner.lock().unwrap().init.pid as u32)
            .unwrap_or(0);
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid: pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    fn shutdown(&self) {
        if self.containers.lock().unwrap().is_empty() {
            self.exit.signal();
        }
    }
}

/// Sets up a process's stdio (pipes, or a pty through a console socket),
/// runs the runtime command, and returns the shim's side of the I/O.
fn run_with_stdio(
    paths: &StdioPaths,
    label: &str,
    log: Option<Arc<dyn stdio::LineSink>>,
    run: impl FnOnce(Option<&Path>, ChildStdio) -> std::result::Result<(), crate::runtime::RuntimeError>,
) -> Result<ProcessIo> {
    if paths.terminal {
        let socket = ConsoleSocket::new().map_err(|e| ShimError::internal("console socket", e))?;
        run(Some(socket.path()), ChildStdio::null())?;
        let master = socket
            .receive(TERMINAL_TIMEOUT)
            .map_err(|e| ShimError::internal("receive the terminal", e))?;
        stdio::attach_console(master, paths, label, log)
            .map_err(|e| ShimError::internal("terminal I/O", e))
    } else {
        let (child, pio) = stdio::setup_pipes(paths, label, log)
            .map_err(|e| ShimError::FailedPrecondition(format!("stdio: {e}")))?;
        match run(None, child) {
            Ok(()) => Ok(pio),
            Err(e) => {
                pio.finish(Duration::from_millis(100));
                Err(e.into())
            }
        }
    }
}

fn unmount(rootfs: &Path) {
    if let Err(e) = containerd_shim::mount::umount_recursive(rootfs.to_str(), 0) {
        log::warn!("unmount {}: {e}", rootfs.display());
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

macro_rules! rpc {
    ($span:expr, $body:expr) => {{
        log::debug!("{}", $span);
        $body.map_err(|e: ShimError| {
            log::info!("{}: {}", $span, e);
            e.into()
        })
    }};
}

impl Task for TaskService {
    fn state(&self, _: &TtrpcContext, req: api::StateRequest) -> TtrpcResult<api::StateResponse> {
        rpc!(
            format!("state {} {}", req.id, req.exec_id),
            self.0.state(&req)
        )
    }

    fn create(
        &self,
        _: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        rpc!(format!("create {}", req.id), self.0.create(req.clone()))
    }

    fn start(&self, _: &TtrpcContext, req: api::StartRequest) -> TtrpcResult<api::StartResponse> {
        rpc!(
            format!("start {} {}", req.id, req.exec_id),
            self.0.start(&req)
        )
    }

    fn delete(
        &self,
        _: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> TtrpcResult<api::DeleteResponse> {
        rpc!(
            format!("delete {} {}", req.id, req.exec_id),
            self.0.delete(&req)
        )
    }

    fn pids(&self, _: &TtrpcContext, req: api::PidsRequest) -> TtrpcResult<api::PidsResponse> {
        rpc!(format!("pids {}", req.id), self.0.pids(&req))
    }

    fn pause(&self, _: &TtrpcContext, req: api::PauseRequest) -> TtrpcResult<api::Empty> {
        rpc!(
            format!("pause {}", req.id),
            self.0.set_paused(&req.id, true).map(|_| api::Empty::new())
        )
    }

    fn resume(&self, _: &TtrpcContext, req: api::ResumeRequest) -> TtrpcResult<api::Empty> {
        rpc!(
            format!("resume {}", req.id),
            self.0.set_paused(&req.id, false).map(|_| api::Empty::new())
        )
    }

    fn checkpoint(
        &self,
        _: &TtrpcContext,
        req: api::CheckpointTaskRequest,
    ) -> TtrpcResult<api::Empty> {
        rpc!(
            format!("checkpoint {}", req.id),
            self.0.checkpoint(&req).map(|_| api::Empty::new())
        )
    }

    fn kill(&self, _: &TtrpcContext, req: api::KillRequest) -> TtrpcResult<api::Empty> {
        rpc!(
            format!("kill {} {} signal {}", req.id, req.exec_id, req.signal),
            self.0.kill(&req).map(|_| api::Empty::new())
        )
    }

    fn exec(&self, _: &TtrpcContext, req: api::ExecProcessRequest) -> TtrpcResult<api::Empty> {
        rpc!(
            format!("exec {} {}", req.id, req.exec_id),
            self.0.exec(req.clone()).map(|_| api::Empty::new())
        )
    }

    fn resize_pty(&self, _: &TtrpcContext, req: api::ResizePtyRequest) -> TtrpcResult<api::Empty> {
        rpc!(
            format!("resize {} {}", req.id, req.exec_id),
            self.0.resize_pty(&req).map(|_| api::Empty::new())
        )
    }

    fn close_io(&self, _: &TtrpcContext, req: api::CloseIORequest) -> TtrpcResult<api::Empty> {
        rpc!(
            format!("closeio {} {}", req.id, req.exec_id),
            self.0.close_io(&req).map(|_| api::Empty::new())
        )
    }

    fn update(&self, _: &TtrpcContext, req: api::UpdateTaskRequest) -> TtrpcResult<api::Empty> {
        rpc!(
            format!("update {}", req.id),
            self.0.update(&req).map(|_| api::Empty::new())
        )
    }

    fn wait(&self, _: &TtrpcContext, req: api::WaitRequest) -> TtrpcResult<api::WaitResponse> {
        rpc!(
            format!("wait {} {}", req.id, req.exec_id),
            self.0.wait(&req)
        )
    }

    fn stats(&self, _: &TtrpcContext, req: api::StatsRequest) -> TtrpcResult<api::StatsResponse> {
        rpc!(format!("stats {}", req.id), self.0.stats(&req))
    }

    fn connect(
        &self,
        _: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> TtrpcResult<api::ConnectResponse> {
        rpc!(format!("connect {}", req.id), self.0.connect(&req))
    }

    fn shutdown(&self, _: &TtrpcContext, _req: api::ShutdownRequest) -> TtrpcResult<api::Empty> {
        self.0.shutdown();
        Ok(api::Empty::new())
    }
}
