//! A stand-in for the shared CRI client (crt_integration::cri) until it
//! lands: the few RuntimeService calls the benchmark makes, over containerd's
//! socket, with errors that name the call.

use std::path::Path;

use anyhow::{Context, Result};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

pub struct Cri {
    rt: RuntimeServiceClient<Channel>,
}

impl Cri {
    pub async fn connect(socket: &Path) -> Result<Cri> {
        let path = socket.to_path_buf();
        let channel =
            Endpoint::try_from("http://[::]:0")?
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }))
                .await
                .with_context(|| format!("connecting to the CRI socket {}", socket.display()))?;
        Ok(Cri {
            rt: RuntimeServiceClient::new(channel),
        })
    }

    pub async fn run_pod_sandbox(
        &mut self,
        config: PodSandboxConfig,
        handler: &str,
    ) -> Result<String> {
        let r = self
            .rt
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: handler.into(),
            })
            .await
            .with_context(|| format!("RunPodSandbox (runtime handler {handler:?})"))?;
        Ok(r.into_inner().pod_sandbox_id)
    }

    pub async fn create_container(
        &mut self,
        pod: &str,
        config: ContainerConfig,
        sandbox: &PodSandboxConfig,
    ) -> Result<String> {
        let r = self
            .rt
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod.into(),
                config: Some(config),
                sandbox_config: Some(sandbox.clone()),
            })
            .await
            .with_context(|| format!("CreateContainer in pod {pod}"))?;
        Ok(r.into_inner().container_id)
    }

    pub async fn start_container(&mut self, id: &str) -> Result<()> {
        self.rt
            .start_container(StartContainerRequest {
                container_id: id.into(),
            })
            .await
            .with_context(|| format!("StartContainer {id}"))?;
        Ok(())
    }

    pub async fn container_state(&mut self, id: &str) -> Result<ContainerState> {
        let r = self
            .rt
            .container_status(ContainerStatusRequest {
                container_id: id.into(),
                verbose: false,
            })
            .await
            .with_context(|| format!("ContainerStatus {id}"))?;
        let state = r
            .into_inner()
            .status
            .map_or(ContainerState::ContainerUnknown as i32, |s| s.state);
        Ok(ContainerState::try_from(state).unwrap_or(ContainerState::ContainerUnknown))
    }

    pub async fn exec_sync(
        &mut self,
        id: &str,
        cmd: &[&str],
        timeout_s: i64,
    ) -> Result<ExecSyncResponse> {
        let r = self
            .rt
            .exec_sync(ExecSyncRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                timeout: timeout_s,
            })
            .await
            .with_context(|| format!("ExecSync {cmd:?} in {id}"))?;
        Ok(r.into_inner())
    }

    pub async fn stop_container(&mut self, id: &str, grace_s: i64) -> Result<()> {
        self.rt
            .stop_container(StopContainerRequest {
                container_id: id.into(),
                timeout: grace_s,
            })
            .await
            .with_context(|| format!("StopContainer {id}"))?;
        Ok(())
    }

    pub async fn remove_container(&mut self, id: &str) -> Result<()> {
        self.rt
            .remove_container(RemoveContainerRequest {
                container_id: id.into(),
            })
            .await
            .with_context(|| format!("RemoveContainer {id}"))?;
        Ok(())
    }

    pub async fn stop_pod_sandbox(&mut self, id: &str) -> Result<()> {
        self.rt
            .stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: id.into(),
            })
            .await
            .with_context(|| format!("StopPodSandbox {id}"))?;
        Ok(())
    }

    pub async fn remove_pod_sandbox(&mut self, id: &str) -> Result<()> {
        self.rt
            .remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: id.into(),
            })
            .await
            .with_context(|| format!("RemovePodSandbox {id}"))?;
        Ok(())
    }

    /// The ids of the pod sandboxes carrying all of `labels`.
    pub async fn pods_with_labels(&mut self, labels: &[(&str, &str)]) -> Result<Vec<String>> {
        let filter = PodSandboxFilter {
            label_selector: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        let r = self
            .rt
            .list_pod_sandbox(ListPodSandboxRequest {
                filter: Some(filter),
            })
            .await
            .context("ListPodSandbox")?;
        Ok(r.into_inner().items.into_iter().map(|p| p.id).collect())
    }

    /// The ids of the containers of pod `pod`.
    pub async fn containers_of(&mut self, pod: &str) -> Result<Vec<String>> {
        let filter = ContainerFilter {
            pod_sandbox_id: pod.into(),
            ..Default::default()
        };
        let r = self
            .rt
            .list_containers(ListContainersRequest {
                filter: Some(filter),
            })
            .await
            .with_context(|| format!("ListContainers of pod {pod}"))?;
        Ok(r.into_inner()
            .containers
            .into_iter()
            .map(|c| c.id)
            .collect())
    }
}
