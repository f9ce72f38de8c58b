//! A kubelet's side of the CRI, for the end-to-end tests and benchmarks:
//! a blocking client of containerd's CRI plugin (runtime API v1, gRPC over
//! containerd's unix socket) and the steps a kubelet takes to run a pod —
//! run a sandbox on a runtime handler, create and start its containers,
//! exec into them, stop and remove them.
//!
//! Every call blocks the calling thread on a runtime of the client's own, so
//! tests stay plain `#[test]` functions and may run pods from several threads
//! at once. Do not call it from inside an async runtime.
//!
//! A [`Pod`] stops and removes its sandbox (and so its containers) when
//! dropped, whether the test passed or not.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper_util::rt::TokioIo;
pub use k8s_cri::v1 as api;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

/// containerd's socket, where its CRI plugin listens.
pub const CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";
/// containerd's state directory (its `state` setting).
pub const CONTAINERD_STATE: &str = "/run/containerd";
/// The containerd namespace CRI keeps pods, containers and images in.
pub const CRI_NAMESPACE: &str = "k8s.io";
/// The runtime handler (RuntimeClass) scripts/setup.sh registers for the shim.
pub const HANDLER_CRT: &str = "crt";
/// containerd's own runc shim, the baseline.
pub const HANDLER_RUNC: &str = "runc";
/// The Kubernetes namespace test pods claim to be in.
pub const POD_NAMESPACE: &str = "crt-e2e";
/// Where test pods keep their CRI log files (a kubelet uses /var/log/pods).
pub const LOG_ROOT: &str = "/tmp/crt-cri-logs";
/// How long a single CRI call may take before the test fails.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A CRI client. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Cri {
    rt: Arc<tokio::runtime::Runtime>,
    channel: Channel,
}

impl Cri {
    /// Connects to containerd's CRI plugin at [`socket`]; panics with what
    /// to do when it is not there.
    pub fn connect() -> Cri {
        let path = socket();
        Cri::connect_to(&path).unwrap_or_else(|e| {
            panic!(
                "cannot reach containerd's CRI plugin at {}: {e}; run scripts/setup.sh (or scripts/test.sh) first",
                path.display()
            )
        })
    }

    /// Connects to a CRI server on the unix socket `path`.
    pub fn connect_to(path: &Path) -> Result<Cri, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        let path = path.to_path_buf();
        let channel = rt.block_on(async move {
            // The URI is required by tonic but unused: every connection goes
            // to the socket.
            Endpoint::try_from("http://[::]:0")
                .map_err(|e| e.to_string())?
                .connect_timeout(Duration::from_secs(10))
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(
                            tokio::net::UnixStream::connect(path).await?,
                        ))
                    }
                }))
                .await
                .map_err(|e| format!("{e:?}"))
        })?;
        let cri = Cri {
            rt: Arc::new(rt),
            channel,
        };
        cri.call(|mut c| async move {
            c.version(api::VersionRequest {
                version: "v1".into(),
            })
            .await
        })
        .map_err(|s| format!("Version: {s}"))?;
        Ok(cri)
    }

    /// The generated runtime service client, for calls without a helper.
    pub fn runtime(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel.clone())
    }

    /// The generated image service client.
    pub fn images(&self) -> ImageServiceClient<Channel> {
        ImageServiceClient::new(self.channel.clone())
    }

    /// Runs `fut` to completion on the client's runtime.
    pub fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        self.rt.block_on(fut)
    }

    /// One runtime service call, bounded by [`CALL_TIMEOUT`].
    pub fn call<T, F, Fut>(&self, f: F) -> Result<T, tonic::Status>
    where
        F: FnOnce(RuntimeServiceClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let fut = f(self.runtime());
        self.rt.block_on(async move {
            match tokio::time::timeout(CALL_TIMEOUT, fut).await {
                Ok(r) => r.map(tonic::Response::into_inner),
                Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                    "no answer from the CRI plugin within {CALL_TIMEOUT:?}"
                ))),
            }
        })
    }

    /// A pod to run: a unique name (from `prefix`) and uid in
    /// [`POD_NAMESPACE`], on the `runc` handler until told otherwise.
    pub fn pod(&self, prefix: &str) -> PodBuilder {
        let name = unique(prefix);
        PodBuilder {
            cri: self.clone(),
            uid: unique_uid(),
            namespace: POD_NAMESPACE.into(),
            log_dir: Path::new(LOG_ROOT).join(&name),
            name,
            handler: HANDLER_RUNC.into(),
            annotations: HashMap::new(),
            labels: HashMap::new(),
        }
    }

    pub fn start_container(&self, id: &str) -> Result<(), tonic::Status> {
        let container_id = id.to_string();
        self.call(|mut c| async move {
            c.start_container(api::StartContainerRequest { container_id })
                .await
        })
        .map(drop)
    }

    /// The container's status, panicking when CRI does not know it.
    pub fn container_status(&self, id: &str) -> api::ContainerStatus {
        self.container_status_verbose(id).0
    }

    /// The container's status and CRI's verbose `info` (its "info" key holds
    /// JSON with the pid, the runtime spec, and more).
    pub fn container_status_verbose(
        &self,
        id: &str,
    ) -> (api::ContainerStatus, HashMap<String, String>) {
        let container_id = id.to_string();
        let r = self
            .call(|mut c| async move {
                c.container_status(api::ContainerStatusRequest {
                    container_id,
                    verbose: true,
                })
                .await
            })
            .unwrap_or_else(|s| panic!("ContainerStatus {id}: {s}"));
        (
            r.status
                .unwrap_or_else(|| panic!("ContainerStatus {id}: no status")),
            r.info,
        )
    }

    /// The container's init pid on the node, from CRI's verbose status.
    pub fn container_pid(&self, id: &str) -> i32 {
        let (_, info) = self.container_status_verbose(id);
        let text = info.get("info").map(String::as_str).unwrap_or("{}");
        let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        v["pid"]
            .as_i64()
            .unwrap_or_else(|| panic!("no pid in the verbose status of {id}: {text}"))
            as i32
    }

    /// Waits until the container is in `state`; its status then, or a panic
    /// naming the state it stayed in.
    pub fn wait_state(
        &self,
        id: &str,
        state: api::ContainerState,
        timeout: Duration,
    ) -> api::ContainerStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.container_status(id);
            if s.state == state as i32 {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "container {id} is not {state:?} within {timeout:?}: {s:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `ExecSync` with `timeout` (0: none), as a liveness probe runs it.
    pub fn exec_sync(
        &self,
        id: &str,
        cmd: &[&str],
        timeout: Duration,
    ) -> Result<ExecOut, tonic::Status> {
        let req = api::ExecSyncRequest {
            container_id: id.to_string(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: timeout.as_secs() as i64,
        };
        self.call(|mut c| async move { c.exec_sync(req).await })
            .map(|r| ExecOut {
                code: r.exit_code,
                stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
            })
    }

    /// `ExecSync` of `sh -c SCRIPT` that must succeed; its stdout.
    pub fn sh(&self, id: &str, script: &str) -> String {
        let out = self
            .exec_sync(id, &["sh", "-c", script], Duration::from_secs(30))
            .unwrap_or_else(|s| panic!("ExecSync in {id} of {script:?}: {s}"));
        assert_eq!(out.code, 0, "ExecSync in {id} of {script:?}: {out:?}");
        out.stdout
    }

    /// `StopContainer` with a grace period of `timeout` (whole seconds, as CRI
    /// takes it): the stop signal, then SIGKILL once it passes.
    pub fn stop_container(&self, id: &str, timeout: Duration) -> Result<(), tonic::Status> {
        let req = api::StopContainerRequest {
            container_id: id.to_string(),
            timeout: timeout.as_secs() as i64,
        };
        self.call(|mut c| async move { c.stop_container(req).await })
            .map(drop)
    }

    pub fn remove_container(&self, id: &str) -> Result<(), tonic::Status> {
        let container_id = id.to_string();
        self.call(|mut c| async move {
            c.remove_container(api::RemoveContainerRequest { container_id })
                .await
        })
        .map(drop)
    }

    pub fn container_stats(&self, id: &str) -> Result<api::ContainerStats, tonic::Status> {
        let container_id = id.to_string();
        self.call(|mut c| async move {
            c.container_stats(api::ContainerStatsRequest { container_id })
                .await
        })
        .map(|r| r.stats.unwrap_or_default())
    }

    pub fn update_resources(
        &self,
        id: &str,
        linux: api::LinuxContainerResources,
    ) -> Result<(), tonic::Status> {
        let req = api::UpdateContainerResourcesRequest {
            container_id: id.to_string(),
            linux: Some(linux),
            ..Default::default()
        };
        self.call(|mut c| async move { c.update_container_resources(req).await })
            .map(drop)
    }

    /// `ReopenContainerLog`: containerd closes the log file and opens its
    /// path again (after the kubelet renamed it away).
    pub fn reopen_log(&self, id: &str) -> Result<(), tonic::Status> {
        let container_id = id.to_string();
        self.call(|mut c| async move {
            c.reopen_container_log(api::ReopenContainerLogRequest { container_id })
                .await
        })
        .map(drop)
    }

    /// The sandbox's status and CRI's verbose `info`.
    pub fn pod_status(&self, id: &str) -> (api::PodSandboxStatus, HashMap<String, String>) {
        let pod_sandbox_id = id.to_string();
        let r = self
            .call(|mut c| async move {
                c.pod_sandbox_status(api::PodSandboxStatusRequest {
                    pod_sandbox_id,
                    verbose: true,
                })
                .await
            })
            .unwrap_or_else(|s| panic!("PodSandboxStatus {id}: {s}"));
        (r.status.unwrap_or_default(), r.info)
    }

    pub fn stop_pod(&self, id: &str) -> Result<(), tonic::Status> {
        let pod_sandbox_id = id.to_string();
        self.call(|mut c| async move {
            c.stop_pod_sandbox(api::StopPodSandboxRequest { pod_sandbox_id })
                .await
        })
        .map(drop)
    }

    /// Stops and removes every pod in Kubernetes namespace `namespace`
    /// (with its containers): what a run killed outright left behind.
    /// Returns how many there were.
    pub fn remove_pods_in(&self, namespace: &str) -> usize {
        let pods = self
            .call(|mut c| async move {
                c.list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
                    .await
            })
            .unwrap_or_else(|s| panic!("ListPodSandbox: {s}"))
            .items;
        let mut n = 0;
        for pod in pods {
            if pod.metadata.as_ref().map(|m| m.namespace.as_str()) == Some(namespace) {
                let _ = self.stop_pod(&pod.id);
                self.remove_pod(&pod.id)
                    .unwrap_or_else(|s| panic!("RemovePodSandbox {}: {s}", pod.id));
                n += 1;
            }
        }
        n
    }

    pub fn remove_pod(&self, id: &str) -> Result<(), tonic::Status> {
        let pod_sandbox_id = id.to_string();
        self.call(|mut c| async move {
            c.remove_pod_sandbox(api::RemovePodSandboxRequest { pod_sandbox_id })
                .await
        })
        .map(drop)
    }
}

/// The containerd the tests drive: the node's ([`CONTAINERD_SOCKET`]) unless
/// `CRT_CRI_SOCKET` names another one's socket (a second containerd for
/// development, with `CRT_CONTAINERD_STATE` its state directory).
pub fn socket() -> PathBuf {
    std::env::var_os("CRT_CRI_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CONTAINERD_SOCKET))
}

/// The task directory (bundle) containerd keeps for a CRI container or
/// sandbox while its shim runs it.
pub fn task_dir(id: &str) -> PathBuf {
    std::env::var_os("CRT_CONTAINERD_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CONTAINERD_STATE))
        .join("io.containerd.runtime.v2.task")
        .join(CRI_NAMESPACE)
        .join(id)
}

/// What an `ExecSync` printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOut {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A name unique to this test run: `prefix-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A pod uid no other pod has had (a kubelet gets UUIDs from the API server).
pub fn unique_uid() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    unique(&format!("uid{nanos:x}"))
}

/// A pod sandbox's configuration, before it runs.
pub struct PodBuilder {
    cri: Cri,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub handler: String,
    pub log_dir: PathBuf,
    pub annotations: HashMap<String, String>,
    pub labels: HashMap<String, String>,
}

impl PodBuilder {
    /// The runtime handler (RuntimeClass): [`HANDLER_CRT`], [`HANDLER_RUNC`].
    pub fn handler(mut self, handler: &str) -> Self {
        self.handler = handler.into();
        self
    }

    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// The pod's name (default: unique, from the prefix given to [`Cri::pod`]).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self.log_dir = Path::new(LOG_ROOT).join(unique(name));
        self
    }

    pub fn uid(mut self, uid: &str) -> Self {
        self.uid = uid.into();
        self
    }

    /// The sandbox config a kubelet would send: own pid namespace per
    /// container, network and IPC shared in the pod.
    pub fn config(&self) -> api::PodSandboxConfig {
        api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: self.name.clone(),
                uid: self.uid.clone(),
                namespace: self.namespace.clone(),
                attempt: 0,
            }),
            hostname: self.name.chars().take(63).collect(),
            log_directory: self.log_dir.to_string_lossy().into_owned(),
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            linux: Some(api::LinuxPodSandboxConfig {
                security_context: Some(api::LinuxSandboxSecurityContext {
                    namespace_options: Some(pod_namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// `RunPodSandbox`; the pod is stopped and removed when dropped.
    pub fn run(self) -> Pod {
        let what = format!("RunPodSandbox {} on {}", self.name, self.handler);
        self.try_run().unwrap_or_else(|s| panic!("{what}: {s}"))
    }

    /// `RunPodSandbox`, returning CRI's error when it fails.
    pub fn try_run(self) -> Result<Pod, tonic::Status> {
        let _ = std::fs::create_dir_all(&self.log_dir);
        let config = self.config();
        let req = api::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: self.handler.clone(),
        };
        let r = self
            .cri
            .call(|mut c| async move { c.run_pod_sandbox(req).await })
            .inspect_err(|_| {
                let _ = std::fs::remove_dir_all(&self.log_dir);
            })?;
        Ok(Pod {
            cri: self.cri,
            id: r.pod_sandbox_id,
            name: self.name,
            uid: self.uid,
            handler: self.handler,
            log_dir: self.log_dir,
            config,
            containers: Vec::new(),
            removed: false,
        })
    }
}

/// Network and IPC shared by the pod, a pid namespace per container: what a
/// kubelet asks for unless `shareProcessNamespace` is set.
fn pod_namespaces() -> api::NamespaceOption {
    api::NamespaceOption {
        network: api::NamespaceMode::Pod as i32,
        pid: api::NamespaceMode::Container as i32,
        ipc: api::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// A running pod sandbox. Dropping it stops and removes it (and with it
/// every container it has), ignoring errors: cleanup must not hide the
/// failure that ended the test.
pub struct Pod {
    cri: Cri,
    /// The sandbox id (also its pause container's id).
    pub id: String,
    pub name: String,
    pub uid: String,
    pub handler: String,
    /// Its containers' CRI logs are under here.
    pub log_dir: PathBuf,
    pub config: api::PodSandboxConfig,
    /// Ids of the containers created in it, in order.
    pub containers: Vec<String>,
    removed: bool,
}

impl Pod {
    pub fn cri(&self) -> &Cri {
        &self.cri
    }

    /// A container to create in this pod, running `cmd` in the test image.
    pub fn container(&mut self, name: &str, cmd: &[&str]) -> ContainerBuilder<'_> {
        ContainerBuilder {
            config: api::ContainerConfig {
                metadata: Some(api::ContainerMetadata {
                    name: name.into(),
                    attempt: 0,
                }),
                image: Some(api::ImageSpec {
                    image: crate::IMAGE.into(),
                    ..Default::default()
                }),
                command: cmd.iter().map(|s| s.to_string()).collect(),
                log_path: format!("{name}.log"),
                linux: Some(api::LinuxContainerConfig {
                    resources: None,
                    security_context: Some(api::LinuxContainerSecurityContext {
                        namespace_options: Some(pod_namespaces()),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            },
            pod: self,
        }
    }

    /// Where a container's CRI log file is.
    pub fn log_path(&self, container_name: &str) -> PathBuf {
        self.log_dir.join(format!("{container_name}.log"))
    }

    /// `StopPodSandbox` then `RemovePodSandbox`, failing on errors.
    pub fn remove(mut self) {
        self.removed = true;
        self.cri
            .stop_pod(&self.id)
            .unwrap_or_else(|s| panic!("StopPodSandbox {}: {s}", self.id));
        self.cri
            .remove_pod(&self.id)
            .unwrap_or_else(|s| panic!("RemovePodSandbox {}: {s}", self.id));
        let _ = std::fs::remove_dir_all(&self.log_dir);
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        let _ = self.cri.stop_pod(&self.id);
        let _ = self.cri.remove_pod(&self.id);
        let _ = std::fs::remove_dir_all(&self.log_dir);
    }
}

/// A container's configuration, before `CreateContainer`.
pub struct ContainerBuilder<'a> {
    pod: &'a mut Pod,
    pub config: api::ContainerConfig,
}

impl ContainerBuilder<'_> {
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.config.annotations.insert(key.into(), value.into());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.config.envs.push(api::KeyValue {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// The seccomp profile (`securityContext.seccompProfile.type`);
    /// unset, containerd runs the container unconfined, as the kubelet's
    /// default does.
    pub fn seccomp(mut self, profile: api::security_profile::ProfileType) -> Self {
        self.security().seccomp = Some(api::SecurityProfile {
            profile_type: profile as i32,
            localhost_ref: String::new(),
        });
        self
    }

    pub fn resources(mut self, r: api::LinuxContainerResources) -> Self {
        self.config
            .linux
            .get_or_insert_with(Default::default)
            .resources = Some(r);
        self
    }

    fn security(&mut self) -> &mut api::LinuxContainerSecurityContext {
        self.config
            .linux
            .get_or_insert_with(Default::default)
            .security_context
            .get_or_insert_with(Default::default)
    }

    /// `CreateContainer`; the new container's id.
    pub fn create(self) -> String {
        let name = self
            .config
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let req = api::CreateContainerRequest {
            pod_sandbox_id: self.pod.id.clone(),
            config: Some(self.config),
            sandbox_config: Some(self.pod.config.clone()),
        };
        let id = self
            .pod
            .cri
            .call(|mut c| async move { c.create_container(req).await })
            .unwrap_or_else(|s| panic!("CreateContainer {name} in pod {}: {s}", self.pod.name))
            .container_id;
        self.pod.containers.push(id.clone());
        id
    }

    /// `CreateContainer` and `StartContainer`; the container's id.
    pub fn start(self) -> String {
        let cri = self.pod.cri.clone();
        let id = self.create();
        cri.start_container(&id)
            .unwrap_or_else(|s| panic!("StartContainer {id}: {s}"));
        id
    }
}

/// One line of a CRI log file: `<RFC3339Nano> <stream> <F|P> <content>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub time: String,
    pub stream: String,
    /// `F` (the line ends here) or `P` (a piece of a longer line).
    pub tag: String,
    pub content: String,
}

/// Parses a CRI log file; panics naming the first line that is not in the
/// format.
pub fn parse_log(text: &str) -> Vec<LogLine> {
    text.lines()
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let (Some(time), Some(stream), Some(tag), Some(content)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                panic!("not a CRI log line (time stream tag content): {l:?}");
            };
            LogLine {
                time: time.into(),
                stream: stream.into(),
                tag: tag.into(),
                content: content.into(),
            }
        })
        .collect()
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_some<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
