//! containerd, through its gRPC API (the containerd-client crate, which
//! speaks to containerd 1.6 as well as 2.x): the containers, tasks, snapshots
//! and leases a debug clone is made of. Every call names its containerd
//! namespace; "not found" comes back as `None` or is ignored where a removal
//! finds nothing left to remove.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use containerd_client::services::v1::snapshots::{
    snapshots_client::SnapshotsClient, MountsRequest, PrepareSnapshotRequest,
    RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::{
    containers_client::ContainersClient, leases_client::LeasesClient,
    namespaces_client::NamespacesClient, tasks_client::TasksClient, CheckpointTaskRequest,
    CloseIoRequest, Container, CreateContainerRequest, CreateRequest as CreateLease,
    CreateTaskRequest, DeleteContainerRequest, DeleteProcessRequest, DeleteRequest as DeleteLease,
    DeleteTaskRequest, ExecProcessRequest, GetContainerRequest, GetRequest, KillRequest,
    ListContainersRequest, ListNamespacesRequest, ResizePtyRequest, StartRequest, WaitRequest,
};
use containerd_client::tonic::{self, transport::Channel, Code, Request};
pub use containerd_client::types::Descriptor;
use containerd_client::types::Mount;

pub use containerd_client::services::v1::Container as ContainerRecord;

/// What containerd stores a task's checkpoint (CRIU's images, as a tar) as.
pub const CHECKPOINT_MEDIA_TYPE: &str =
    "application/vnd.containerd.container.criu.checkpoint.criu.tar";

/// containerd's task states (containerd.v1.types.Status).
pub const TASK_RUNNING: i32 = 2;

#[derive(Clone)]
pub struct Containerd {
    channel: Channel,
    address: PathBuf,
}

pub(super) fn request<T>(namespace: &str, msg: T) -> Result<Request<T>> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert(
        "containerd-namespace",
        namespace
            .parse()
            .map_err(|_| anyhow!("{namespace:?} is not a containerd namespace"))?,
    );
    Ok(r)
}

/// A request made under a lease: what it creates is not garbage collected
/// while the lease lives.
pub(super) fn leased<T>(namespace: &str, lease: &str, msg: T) -> Result<Request<T>> {
    let mut r = request(namespace, msg)?;
    r.metadata_mut().insert(
        "containerd-lease",
        lease
            .parse()
            .map_err(|_| anyhow!("{lease:?} is not a lease id"))?,
    );
    Ok(r)
}

pub(super) fn absent<T>(
    r: std::result::Result<T, tonic::Status>,
) -> std::result::Result<Option<T>, tonic::Status> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(s) if s.code() == Code::NotFound => Ok(None),
        Err(s) => Err(s),
    }
}

impl Containerd {
    pub async fn connect(address: &Path) -> Result<Containerd> {
        let channel = containerd_client::connect(address)
            .await
            .with_context(|| format!("connecting to containerd at {}", address.display()))?;
        Ok(Containerd {
            channel,
            address: address.to_path_buf(),
        })
    }

    /// The connection, for the calls other modules of `debug` make.
    pub(super) fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub(super) fn what(&self) -> String {
        format!("containerd at {}", self.address.display())
    }

    pub async fn container(&self, ns: &str, id: &str) -> Result<Option<Container>> {
        let r = ContainersClient::new(self.channel.clone())
            .get(request(ns, GetContainerRequest { id: id.into() })?)
            .await;
        Ok(absent(r)
            .with_context(|| format!("{}: getting container {ns}/{id}", self.what()))?
            .and_then(|r| r.into_inner().container))
    }

    /// The task's init pid and status, if it has a task.
    pub async fn task(&self, ns: &str, id: &str) -> Result<Option<(u32, i32)>> {
        let r = TasksClient::new(self.channel.clone())
            .get(request(
                ns,
                GetRequest {
                    container_id: id.into(),
                    exec_id: String::new(),
                },
            )?)
            .await;
        Ok(absent(r)
            .with_context(|| format!("{}: getting the task of {ns}/{id}", self.what()))?
            .and_then(|r| r.into_inner().process)
            .map(|p| (p.pid, p.status)))
    }

    pub async fn snapshot_parent(&self, ns: &str, snapshotter: &str, key: &str) -> Result<String> {
        let info = SnapshotsClient::new(self.channel.clone())
            .stat(request(
                ns,
                StatSnapshotRequest {
                    snapshotter: snapshotter.into(),
                    key: key.into(),
                },
            )?)
            .await
            .with_context(|| format!("{}: the snapshot {key}", self.what()))?
            .into_inner()
            .info
            .ok_or_else(|| anyhow!("{}: no information on the snapshot {key}", self.what()))?;
        Ok(info.parent)
    }

    pub async fn mounts(&self, ns: &str, snapshotter: &str, key: &str) -> Result<Vec<Mount>> {
        Ok(SnapshotsClient::new(self.channel.clone())
            .mounts(request(
                ns,
                MountsRequest {
                    snapshotter: snapshotter.into(),
                    key: key.into(),
                },
            )?)
            .await
            .with_context(|| format!("{}: the mounts of the snapshot {key}", self.what()))?
            .into_inner()
            .mounts)
    }

    /// A lease named after `name` that expires by itself after `minutes` if
    /// never deleted.
    pub async fn lease(&self, ns: &str, name: &str, minutes: u64) -> Result<String> {
        let id = format!("crt-debug-{name}");
        let expire = crt_tracer::render::rfc3339_utc(
            crt_tracer::render::now_ns() + minutes * 60 * 1_000_000_000,
        );
        LeasesClient::new(self.channel.clone())
            .create(request(
                ns,
                CreateLease {
                    id: id.clone(),
                    labels: HashMap::from([("containerd.io/gc.expire".to_string(), expire)]),
                },
            )?)
            .await
            .with_context(|| format!("{}: creating a lease", self.what()))?;
        Ok(id)
    }

    pub async fn drop_lease(&self, ns: &str, lease: &str) {
        let r = LeasesClient::new(self.channel.clone())
            .delete(
                request(
                    ns,
                    DeleteLease {
                        id: lease.into(),
                        sync: false,
                    },
                )
                .expect("a namespace already used"),
            )
            .await;
        if let Err(e) = absent(r) {
            tracing::warn!("debug: deleting the lease {lease}: {e}");
        }
    }

    pub async fn prepare(
        &self,
        ns: &str,
        lease: &str,
        snapshotter: &str,
        key: &str,
        parent: &str,
        labels: HashMap<String, String>,
    ) -> Result<Vec<Mount>> {
        Ok(SnapshotsClient::new(self.channel.clone())
            .prepare(leased(
                ns,
                lease,
                PrepareSnapshotRequest {
                    snapshotter: snapshotter.into(),
                    key: key.into(),
                    parent: parent.into(),
                    labels,
                },
            )?)
            .await
            .with_context(|| format!("{}: preparing the snapshot {key}", self.what()))?
            .into_inner()
            .mounts)
    }

    pub async fn create_container(&self, ns: &str, lease: &str, c: Container) -> Result<()> {
        let id = c.id.clone();
        ContainersClient::new(self.channel.clone())
            .create(leased(
                ns,
                lease,
                CreateContainerRequest { container: Some(c) },
            )?)
            .await
            .with_context(|| format!("{}: creating the container {ns}/{id}", self.what()))?;
        Ok(())
    }

    /// Creates and starts a container's task with no stdio; returns its pid.
    pub async fn start_task(&self, ns: &str, id: &str, rootfs: Vec<Mount>) -> Result<u32> {
        self.start_task_from(ns, id, rootfs, None).await
    }

    /// Like `start_task`, the task's processes restored from `checkpoint`
    /// (a checkpoint in the content store) when given.
    pub async fn start_task_from(
        &self,
        ns: &str,
        id: &str,
        rootfs: Vec<Mount>,
        checkpoint: Option<Descriptor>,
    ) -> Result<u32> {
        let mut tasks = TasksClient::new(self.channel.clone());
        tasks
            .create(request(
                ns,
                CreateTaskRequest {
                    container_id: id.into(),
                    rootfs,
                    checkpoint,
                    ..Default::default()
                },
            )?)
            .await
            .with_context(|| format!("{}: creating the task of {ns}/{id}", self.what()))?;
        let started = tasks
            .start(request(
                ns,
                StartRequest {
                    container_id: id.into(),
                    exec_id: String::new(),
                },
            )?)
            .await
            .with_context(|| format!("{}: starting the task of {ns}/{id}", self.what()))?;
        Ok(started.into_inner().pid)
    }

    /// Removes a container and everything of it: its task (killed), the
    /// container, its snapshot. What is already gone is skipped.
    pub async fn remove(&self, ns: &str, id: &str, snapshotter: &str, key: &str) -> Result<()> {
        let mut tasks = TasksClient::new(self.channel.clone());
        if self.task(ns, id).await?.is_some() {
            let killed = tasks
                .kill(request(
                    ns,
                    KillRequest {
                        container_id: id.into(),
                        exec_id: String::new(),
                        signal: libc::SIGKILL as u32,
                        all: true,
                    },
                )?)
                .await;
            absent(killed).with_context(|| format!("{}: killing {ns}/{id}", self.what()))?;
            let waited = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                tasks.wait(request(
                    ns,
                    WaitRequest {
                        container_id: id.into(),
                        exec_id: String::new(),
                    },
                )?),
            )
            .await;
            if let Ok(w) = waited {
                absent(w).with_context(|| format!("{}: waiting for {ns}/{id}", self.what()))?;
            }
            self.delete_task(ns, id).await?;
        }
        let deleted = ContainersClient::new(self.channel.clone())
            .delete(request(ns, DeleteContainerRequest { id: id.into() })?)
            .await;
        absent(deleted).with_context(|| format!("{}: deleting {ns}/{id}", self.what()))?;
        if !key.is_empty() {
            let removed = SnapshotsClient::new(self.channel.clone())
                .remove(request(
                    ns,
                    RemoveSnapshotRequest {
                        snapshotter: snapshotter.into(),
                        key: key.into(),
                    },
                )?)
                .await;
            absent(removed)
                .with_context(|| format!("{}: removing the snapshot {key}", self.what()))?;
        }
        Ok(())
    }

    /// Adds a process to a running task and starts it; returns its pid.
    /// `process` is an OCI runtime-spec process; stdio are FIFO paths.
    #[allow(clippy::too_many_arguments)]
    pub async fn exec(
        &self,
        ns: &str,
        id: &str,
        exec_id: &str,
        process: &serde_json::Value,
        stdio: [&Path; 3],
        terminal: bool,
    ) -> Result<u32> {
        let mut tasks = TasksClient::new(self.channel.clone());
        let path = |p: &Path| p.to_string_lossy().into_owned();
        tasks
            .exec(request(
                ns,
                ExecProcessRequest {
                    container_id: id.into(),
                    stdin: path(stdio[0]),
                    stdout: path(stdio[1]),
                    stderr: if terminal {
                        String::new()
                    } else {
                        path(stdio[2])
                    },
                    terminal,
                    spec: Some(prost_types::Any {
                        type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process"
                            .into(),
                        value: serde_json::to_vec(process)?,
                    }),
                    exec_id: exec_id.into(),
                },
            )?)
            .await
            .with_context(|| format!("{}: adding a process to {ns}/{id}", self.what()))?;
        let started = tasks
            .start(request(
                ns,
                StartRequest {
                    container_id: id.into(),
                    exec_id: exec_id.into(),
                },
            )?)
            .await;
        match started {
            Ok(s) => Ok(s.into_inner().pid),
            Err(e) => {
                self.delete_exec(ns, id, exec_id).await;
                Err(anyhow!(e).context(format!(
                    "{}: starting the process in {ns}/{id}",
                    self.what()
                )))
            }
        }
    }

    /// Waits for a process of a task to end; its exit status.
    pub async fn wait_exec(&self, ns: &str, id: &str, exec_id: &str) -> Result<u32> {
        Ok(TasksClient::new(self.channel.clone())
            .wait(request(
                ns,
                WaitRequest {
                    container_id: id.into(),
                    exec_id: exec_id.into(),
                },
            )?)
            .await
            .with_context(|| format!("{}: waiting for a process of {ns}/{id}", self.what()))?
            .into_inner()
            .exit_status)
    }

    pub async fn resize_exec(
        &self,
        ns: &str,
        id: &str,
        exec_id: &str,
        cols: u32,
        rows: u32,
    ) -> Result<()> {
        TasksClient::new(self.channel.clone())
            .resize_pty(request(
                ns,
                ResizePtyRequest {
                    container_id: id.into(),
                    exec_id: exec_id.into(),
                    width: cols,
                    height: rows,
                },
            )?)
            .await
            .with_context(|| format!("{}: resizing a terminal of {ns}/{id}", self.what()))?;
        Ok(())
    }

    /// The process sees the end of its input.
    pub async fn close_exec_stdin(&self, ns: &str, id: &str, exec_id: &str) -> Result<()> {
        TasksClient::new(self.channel.clone())
            .close_io(request(
                ns,
                CloseIoRequest {
                    container_id: id.into(),
                    exec_id: exec_id.into(),
                    stdin: true,
                },
            )?)
            .await
            .with_context(|| {
                format!(
                    "{}: closing the input of a process of {ns}/{id}",
                    self.what()
                )
            })?;
        Ok(())
    }

    pub async fn signal_exec(&self, ns: &str, id: &str, exec_id: &str, signal: i32) -> Result<()> {
        let r = TasksClient::new(self.channel.clone())
            .kill(request(
                ns,
                KillRequest {
                    container_id: id.into(),
                    exec_id: exec_id.into(),
                    signal: signal as u32,
                    all: false,
                },
            )?)
            .await;
        absent(r).with_context(|| format!("{}: signalling a process of {ns}/{id}", self.what()))?;
        Ok(())
    }

    /// Forgets an ended process of a task (what is already gone is skipped).
    pub async fn delete_exec(&self, ns: &str, id: &str, exec_id: &str) {
        let Ok(req) = request(
            ns,
            DeleteProcessRequest {
                container_id: id.into(),
                exec_id: exec_id.into(),
            },
        ) else {
            return;
        };
        let r = TasksClient::new(self.channel.clone())
            .delete_process(req)
            .await;
        if let Err(e) = absent(r) {
            tracing::warn!("debug: deleting the process {exec_id} of {ns}/{id}: {e}");
        }
    }

    /// Checkpoints a running task's processes (CRIU, through the runtime;
    /// they keep running) into the content store, under `lease`; the
    /// checkpoint's descriptor.
    pub async fn checkpoint(&self, ns: &str, lease: &str, id: &str) -> Result<Descriptor> {
        let r = TasksClient::new(self.channel.clone())
            .checkpoint(leased(
                ns,
                lease,
                CheckpointTaskRequest {
                    container_id: id.into(),
                    ..Default::default()
                },
            )?)
            .await
            .with_context(|| format!("{}: checkpointing {ns}/{id}", self.what()))?;
        r.into_inner()
            .descriptors
            .into_iter()
            .find(|d| d.media_type == CHECKPOINT_MEDIA_TYPE)
            .ok_or_else(|| {
                anyhow!(
                    "{}: the checkpoint of {ns}/{id} has no process image",
                    self.what()
                )
            })
    }

    /// Deletes an ended task (one already gone is skipped).
    pub async fn delete_task(&self, ns: &str, id: &str) -> Result<()> {
        let r = TasksClient::new(self.channel.clone())
            .delete(request(
                ns,
                DeleteTaskRequest {
                    container_id: id.into(),
                },
            )?)
            .await;
        absent(r).with_context(|| format!("{}: deleting the task of {ns}/{id}", self.what()))?;
        Ok(())
    }

    pub async fn namespaces(&self) -> Result<Vec<String>> {
        Ok(NamespacesClient::new(self.channel.clone())
            .list(Request::new(ListNamespacesRequest::default()))
            .await
            .with_context(|| format!("{}: listing namespaces", self.what()))?
            .into_inner()
            .namespaces
            .into_iter()
            .map(|n| n.name)
            .collect())
    }

    /// The containers of `ns` that carry the label `label`.
    pub async fn labelled(&self, ns: &str, label: &str) -> Result<Vec<Container>> {
        Ok(ContainersClient::new(self.channel.clone())
            .list(request(
                ns,
                ListContainersRequest {
                    filters: vec![format!("labels.\"{label}\"")],
                },
            )?)
            .await
            .with_context(|| format!("{}: listing the containers of {ns}", self.what()))?
            .into_inner()
            .containers)
    }
}

/// The directory a snapshot's writes go to: overlay's `upperdir`, or the
/// source of a bind mount (a snapshot with no parent).
pub fn upper_dir(mounts: &[Mount]) -> Option<PathBuf> {
    let m = mounts.first()?;
    match m.r#type.as_str() {
        "overlay" => m
            .options
            .iter()
            .find_map(|o| o.strip_prefix("upperdir="))
            .map(PathBuf::from),
        "bind" => Some(PathBuf::from(&m.source)),
        _ => None,
    }
}
