//! Redeploy (issue 7): a plain containerd container is replaced by a new one
//! on another image (a committed fix, say) — same spec, runtime and labels —
//! started first; only once it runs is the old one stopped. The old
//! container record stays, labelled with its successor, to be inspected.
//! Kubernetes containers are refused: the kubelet would undo it, so the fix
//! belongs on the pod's controller.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, Context};
use containerd_client::services::v1::{
    containers_client::ContainersClient, tasks_client::TasksClient, KillRequest,
    UpdateContainerRequest, WaitRequest,
};
use serde_json::{json, Value};

use super::containerd::{absent, request, ContainerRecord, Containerd, TASK_RUNNING};
use super::image::ImageRef;
use super::{check_name, DebugError, LABEL_CLONE_OF, LABEL_EXPIRES, LABEL_FREEZE_US};

/// On a container that was redeployed: the container that replaced it.
pub const LABEL_REPLACED_BY: &str = "crt.dev/replaced-by";
/// On the container a redeploy made: the one it replaced.
pub const LABEL_REPLACES: &str = "crt.dev/replaces";
/// How long the old container gets to stop on SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

type Res<T> = std::result::Result<T, DebugError>;

/// What a redeploy did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RedeployReport {
    pub namespace: String,
    pub old: String,
    pub new: String,
    pub image: String,
    pub pid: u32,
    /// How the old task ended: "SIGTERM", "SIGKILL" or "not running".
    pub old_stopped: &'static str,
}

/// If the container is Kubernetes', why it is refused and what to run.
pub fn kubernetes_refusal(c: &ContainerRecord, spec: &Value, image: &str) -> Option<String> {
    let ann = |k: &str| spec["annotations"][k].as_str().map(str::to_string);
    let label = |k: &str| c.labels.get(k).cloned();
    let is_k8s = c
        .labels
        .keys()
        .any(|k| k.starts_with("io.kubernetes.") || k.starts_with("io.cri-containerd."))
        || spec["annotations"]
            .as_object()
            .is_some_and(|a| a.keys().any(|k| k.starts_with("io.kubernetes.")));
    if !is_k8s {
        return None;
    }
    let pod_ns = label("io.kubernetes.pod.namespace")
        .or_else(|| ann("io.kubernetes.cri.sandbox-namespace"))
        .unwrap_or_else(|| "<pod namespace>".into());
    let pod = label("io.kubernetes.pod.name")
        .or_else(|| ann("io.kubernetes.cri.sandbox-name"))
        .unwrap_or_else(|| "<pod>".into());
    let container = label("io.kubernetes.container.name")
        .or_else(|| ann("io.kubernetes.cri.container-name"))
        .unwrap_or_else(|| "<container>".into());
    Some(format!(
        "{} is a Kubernetes container (pod {pod_ns}/{pod}); the kubelet would put its old image back, so change the image on the pod's Deployment or StatefulSet instead: kubectl -n {pod_ns} set image deployment/<name> {container}={image} (or statefulset/<name>)",
        c.id
    ))
}

/// The names a successor of `id` may take, in order: `<id>-2`, `-3`, ...
pub fn successor_names(id: &str) -> impl Iterator<Item = String> + '_ {
    let base: String = id.chars().take(70).collect();
    (2..1000).map(move |n| format!("{base}-{n}"))
}

/// The old spec, for the new container: its cgroup is its own.
pub fn redeploy_spec(mut spec: Value, ns: &str, old: &str, new: &str) -> Value {
    if let Some(linux) = spec.get_mut("linux").and_then(Value::as_object_mut) {
        let cg = linux
            .get("cgroupsPath")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let new_cg = match cg.rfind(old) {
            Some(i) if !old.is_empty() => format!("{}{new}{}", &cg[..i], &cg[i + old.len()..]),
            _ => format!("/{ns}/{new}"),
        };
        linux.insert("cgroupsPath".into(), json!(new_cg));
    }
    spec
}

impl Containerd {
    async fn signal(&self, ns: &str, id: &str, signal: i32) -> anyhow::Result<()> {
        let r = TasksClient::new(self.channel())
            .kill(request(
                ns,
                KillRequest {
                    container_id: id.into(),
                    exec_id: String::new(),
                    signal: signal as u32,
                    all: false,
                },
            )?)
            .await;
        absent(r).with_context(|| format!("{}: signalling {ns}/{id}", self.what()))?;
        Ok(())
    }

    /// Whether the task exited within `limit`.
    async fn exited_within(&self, ns: &str, id: &str, limit: Duration) -> anyhow::Result<bool> {
        let mut tasks = TasksClient::new(self.channel());
        let wait = tasks.wait(request(
            ns,
            WaitRequest {
                container_id: id.into(),
                exec_id: String::new(),
            },
        )?);
        match tokio::time::timeout(limit, wait).await {
            Err(_) => Ok(false),
            Ok(r) => {
                absent(r).with_context(|| format!("{}: waiting for {ns}/{id}", self.what()))?;
                Ok(true)
            }
        }
    }

    /// Stops a task (SIGTERM, then SIGKILL after the grace) and deletes it.
    pub async fn stop_task(&self, ns: &str, id: &str) -> anyhow::Result<&'static str> {
        let how = match self.task(ns, id).await? {
            None => return Ok("not running"),
            Some((_, TASK_RUNNING)) => {
                self.signal(ns, id, libc::SIGTERM).await?;
                if self.exited_within(ns, id, STOP_GRACE).await? {
                    "SIGTERM"
                } else {
                    self.signal(ns, id, libc::SIGKILL).await?;
                    if !self.exited_within(ns, id, STOP_GRACE).await? {
                        anyhow::bail!("{ns}/{id} did not exit on SIGKILL");
                    }
                    "SIGKILL"
                }
            }
            Some(_) => "not running",
        };
        self.delete_task(ns, id).await?;
        Ok(how)
    }

    pub async fn set_label(
        &self,
        ns: &str,
        id: &str,
        key: &str,
        value: &str,
    ) -> anyhow::Result<()> {
        ContainersClient::new(self.channel())
            .update(request(
                ns,
                UpdateContainerRequest {
                    container: Some(ContainerRecord {
                        id: id.into(),
                        labels: HashMap::from([(key.to_string(), value.to_string())]),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec![format!("labels.{key}")],
                    }),
                },
            )?)
            .await
            .with_context(|| format!("{}: labelling {ns}/{id}", self.what()))?;
        Ok(())
    }
}

/// Replaces the container `ns/id` by one on `image`.
pub async fn redeploy(
    cd: &Containerd,
    ns: &str,
    id: &str,
    image: &ImageRef,
    name: Option<String>,
) -> Res<RedeployReport> {
    let Some(old) = cd.container(ns, id).await? else {
        return Err(DebugError::NotFound(format!("container {ns}/{id}")));
    };
    let image_name = image.to_string();
    if old.labels.contains_key(LABEL_CLONE_OF) {
        return Err(DebugError::Conflict(format!(
            "{ns}/{id} is a debug clone; commit it (crtctl commit {id} IMAGE) and redeploy its source"
        )));
    }
    if let Some(by) = old.labels.get(LABEL_REPLACED_BY) {
        return Err(DebugError::Conflict(format!(
            "{ns}/{id} was already replaced by {ns}/{by}; redeploy that one"
        )));
    }
    let spec_any = old
        .spec
        .clone()
        .ok_or_else(|| anyhow!("{ns}/{id} has no runtime spec"))?;
    let spec: Value = serde_json::from_slice(&spec_any.value)
        .with_context(|| format!("the runtime spec of {ns}/{id} is not JSON"))?;
    if let Some(why) = kubernetes_refusal(&old, &spec, &image_name) {
        return Err(DebugError::Conflict(why));
    }
    if old.snapshot_key.is_empty() || old.snapshotter.is_empty() {
        return Err(DebugError::Conflict(format!(
            "{ns}/{id} has no snapshot (its root filesystem is not containerd's); it cannot be redeployed on an image"
        )));
    }
    let Some(resolved) = cd.resolve(ns, &image_name).await? else {
        return Err(DebugError::NotFound(format!(
            "image {image_name} in namespace {ns}"
        )));
    };
    let new = match name {
        Some(n) => {
            check_name(&n).map_err(DebugError::BadInput)?;
            if cd.container(ns, &n).await?.is_some() {
                return Err(DebugError::Conflict(format!(
                    "a container {ns}/{n} exists already; choose another name"
                )));
            }
            n
        }
        None => {
            let mut free = None;
            for candidate in successor_names(id) {
                if cd.container(ns, &candidate).await?.is_none() {
                    free = Some(candidate);
                    break;
                }
            }
            free.ok_or_else(|| {
                DebugError::Conflict(format!(
                    "no free name for the successor of {ns}/{id}; give one with name="
                ))
            })?
        }
    };
    let lease = cd.lease(ns, &format!("redeploy-{new}"), 10).await?;
    let made = start_new(
        cd,
        ns,
        &old,
        &new,
        &lease,
        &resolved,
        &image_name,
        spec,
        &spec_any.type_url,
    )
    .await;
    cd.drop_lease(ns, &lease).await;
    let pid = match made {
        Ok(pid) => pid,
        Err(e) => {
            if let Err(c) = cd.remove(ns, &new, &old.snapshotter, &new).await {
                tracing::warn!("debug: cleaning up the failed redeploy {ns}/{new}: {c:#}");
            }
            return Err(e);
        }
    };
    let half_done = |e: anyhow::Error| {
        DebugError::Failed(e.context(format!(
            "the new container {ns}/{new} runs on {image_name}, but the old one was not retired"
        )))
    };
    let old_stopped = cd.stop_task(ns, id).await.map_err(half_done)?;
    cd.set_label(ns, id, LABEL_REPLACED_BY, &new)
        .await
        .map_err(half_done)?;
    tracing::info!(
        "debug: redeployed {ns}/{id} as {ns}/{new} on {image_name} (old one: {old_stopped})"
    );
    Ok(RedeployReport {
        namespace: ns.into(),
        old: id.into(),
        new,
        image: image_name,
        pid,
        old_stopped,
    })
}

#[allow(clippy::too_many_arguments)]
async fn start_new(
    cd: &Containerd,
    ns: &str,
    old: &ContainerRecord,
    new: &str,
    lease: &str,
    image: &super::image::Resolved,
    image_name: &str,
    spec: Value,
    spec_type: &str,
) -> Res<u32> {
    let top = cd.unpack(ns, lease, &old.snapshotter, image).await?;
    let mounts = cd
        .prepare(ns, lease, &old.snapshotter, new, &top, HashMap::new())
        .await?;
    let mut labels = old.labels.clone();
    for k in [
        LABEL_CLONE_OF,
        LABEL_EXPIRES,
        LABEL_FREEZE_US,
        LABEL_REPLACED_BY,
    ] {
        labels.remove(k);
    }
    labels.insert(LABEL_REPLACES.into(), old.id.clone());
    let spec = redeploy_spec(spec, ns, &old.id, new);
    let record = ContainerRecord {
        id: new.into(),
        labels,
        image: image_name.into(),
        spec: Some(prost_types::Any {
            type_url: spec_type.into(),
            value: serde_json::to_vec(&spec).map_err(anyhow::Error::from)?,
        }),
        snapshot_key: new.into(),
        created_at: None,
        updated_at: None,
        ..old.clone()
    };
    cd.create_container(ns, lease, record).await?;
    let pid = cd.start_task(ns, new, mounts).await?;
    // The old one is stopped only for a successor that runs.
    match cd.task(ns, new).await? {
        Some((_, TASK_RUNNING)) => Ok(pid),
        other => Err(DebugError::Failed(anyhow!(
            "the new container {ns}/{new} did not keep running (task {other:?}); {ns}/{} is left as it was",
            old.id
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successors_are_named_after_the_first_free_number() {
        let first = |id: &str, taken: &[&str]| {
            successor_names(id)
                .find(|n| !taken.contains(&n.as_str()))
                .unwrap()
        };
        assert_eq!(first("web", &[]), "web-2");
        assert_eq!(first("web", &["web-2"]), "web-3");
        assert_eq!(first("web-2", &[]), "web-2-2");
    }

    #[test]
    fn a_kubernetes_container_is_refused_with_the_kubectl_to_run() {
        let c = ContainerRecord {
            id: "abc".into(),
            labels: HashMap::from([
                (
                    "io.kubernetes.pod.namespace".to_string(),
                    "shop".to_string(),
                ),
                ("io.kubernetes.pod.name".to_string(), "web-7f9".to_string()),
                (
                    "io.kubernetes.container.name".to_string(),
                    "web".to_string(),
                ),
                (
                    "io.cri-containerd.kind".to_string(),
                    "container".to_string(),
                ),
            ]),
            ..Default::default()
        };
        let why = kubernetes_refusal(&c, &json!({}), "reg/app:fix").unwrap();
        assert!(
            why.contains("kubectl -n shop set image deployment/<name> web=reg/app:fix"),
            "{why}"
        );
        assert!(why.contains("Deployment or StatefulSet"), "{why}");
        let by_annotation = json!({"annotations": {"io.kubernetes.cri.sandbox-namespace": "ops", "io.kubernetes.cri.container-name": "db"}});
        let plain = ContainerRecord {
            id: "x".into(),
            ..Default::default()
        };
        let why = kubernetes_refusal(&plain, &by_annotation, "i").unwrap();
        assert!(
            why.contains("kubectl -n ops set image deployment/<name> db=i"),
            "{why}"
        );
        assert!(
            kubernetes_refusal(&plain, &json!({"annotations": {"crt.dev/trace": "x"}}), "i")
                .is_none()
        );
    }

    #[test]
    fn the_successor_gets_a_cgroup_of_its_own() {
        let s = redeploy_spec(
            json!({"linux": {"cgroupsPath": "/shop/web"}, "process": {"args": ["/app"]}}),
            "shop",
            "web",
            "web-2",
        );
        assert_eq!(s["linux"]["cgroupsPath"], "/shop/web-2");
        assert_eq!(s["process"]["args"], json!(["/app"]), "the spec is kept");
    }
}
