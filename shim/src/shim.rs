//! The shim binary's lifecycle as containerd drives it: `start` launches the
//! long-lived shim (one per pod when containers share a sandbox id),
//! `delete` cleans up after a shim that died, and the served shim hands out
//! the Task service.

use std::path::Path;
use std::sync::Arc;

use containerd_shim::api::DeleteResponse;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, ExitSignal, Flags, Shim, StartOpts};
use crt_tracer::node_files::listener_name;
use serde_json::Value;

use crate::events::RemoteSink;
use crate::options::RuntimeChoice;
use crate::runtime::{resolve_binary, Runtime};
use crate::service::TaskService;
use crate::state_file::StateDir;

/// Containers with the same value share one shim (a Kubernetes pod).
const GROUP_ANNOTATIONS: [&str; 2] = [
    "io.kubernetes.cri.sandbox-id",
    "io.kubernetes.cri.sandbox-uid",
];

pub struct CrtShim {
    exit: Arc<ExitSignal>,
    namespace: String,
    id: String,
    sink: std::sync::Mutex<Option<Arc<RemoteSink>>>,
    service: std::sync::Mutex<Option<TaskService>>,
}

impl Shim for CrtShim {
    type T = TaskService;

    fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        CrtShim {
            exit: Arc::new(ExitSignal::default()),
            namespace: args.namespace.clone(),
            id: args.id.clone(),
            sink: std::sync::Mutex::new(None),
            service: std::sync::Mutex::new(None),
        }
    }

    fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        let mut grouping = opts.id.clone();
        if let Ok(text) = std::fs::read("config.json") {
            if let Ok(spec) = serde_json::from_slice::<Value>(&text) {
                for key in GROUP_ANNOTATIONS {
                    if let Some(v) = spec
                        .pointer(&format!("/annotations/{}", key.replace('/', "~1")))
                        .and_then(Value::as_str)
                    {
                        if !v.is_empty() {
                            grouping = v.to_string();
                            break;
                        }
                    }
                }
            }
        }
        let (_pid, address) = containerd_shim::spawn(opts, &grouping, Vec::new())?;
        containerd_shim::util::write_address(&address)?;
        Ok(address)
    }

    fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        let bundle =
            std::env::current_dir().map_err(|e| containerd_shim::Error::Other(e.to_string()))?;
        cleanup_bundle(&bundle, &self.namespace, &self.id);
        let pid = std::fs::read_to_string(bundle.join("init.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(0);
        let mut resp = DeleteResponse::new();
        resp.set_exit_status(128 + libc::SIGKILL as u32);
        resp.set_exited_at(containerd_shim::util::timestamp()?);
        resp.set_pid(pid);
        Ok(resp)
    }

    fn wait(&mut self) {
        self.exit.wait();
        if let Some(sink) = self.sink.lock().unwrap().as_ref() {
            sink.flush(std::time::Duration::from_secs(5));
        }
        if let Some(svc) = self.service.lock().unwrap().as_ref() {
            svc.0.cleanup();
        }
    }

    fn create_task_service(&self, publisher: RemotePublisher) -> TaskService {
        let sink = Arc::new(RemoteSink::new(publisher, self.namespace.clone()));
        *self.sink.lock().unwrap() = Some(Arc::clone(&sink));
        let svc = TaskService::new(
            &self.namespace,
            &listener_name(&self.namespace, &self.id),
            sink,
            Arc::clone(&self.exit),
            None,
        );
        *self.service.lock().unwrap() = Some(svc.clone());
        svc
    }
}

/// What `shim delete` does for a container whose shim is gone: force-delete
/// it in the runtime, unmount its rootfs, and remove its state file (nobody
/// else would: crtd would show the container as running forever).
fn cleanup_bundle(bundle: &Path, namespace: &str, id: &str) {
    let choice = RuntimeChoice::load(bundle).unwrap_or_else(|| {
        let config = crt_config::NodeConfig::load_default().unwrap_or_default();
        RuntimeChoice::new(&config, &Default::default(), namespace)
    });
    match resolve_binary(&choice.binary) {
        Ok(binary) => {
            let runtime = Runtime::new(
                binary,
                choice.root,
                choice.systemd_cgroup,
                bundle.join("log.json"),
            );
            if let Err(e) = runtime.delete(id, true) {
                log::warn!("cleanup of {id}: {e}");
            }
        }
        Err(e) => log::warn!("cleanup of {id}: {e}"),
    }
    if let Err(e) = containerd_shim::mount::umount_recursive(bundle.join("rootfs").to_str(), 0) {
        log::warn!("cleanup of {id}: unmount rootfs: {e}");
    }
    let state_dir = choice.state_dir.unwrap_or_else(|| {
        crt_config::NodeConfig::load_default()
            .unwrap_or_default()
            .trace
            .state_dir
    });
    StateDir(state_dir).retire_killed(namespace, id, 128 + libc::SIGKILL);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_file::ContainerRecord;

    const FAKE_RUNTIME: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fake-runtime");

    #[test]
    fn cleanup_after_a_dead_shim_deletes_the_container_and_its_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("bundle");
        let root = dir.path().join("root");
        let state = StateDir(dir.path().join("state"));
        std::fs::create_dir_all(&bundle).unwrap();
        // What the fake runtime keeps for a created container.
        std::fs::create_dir_all(root.join("c1")).unwrap();
        RuntimeChoice {
            binary: FAKE_RUNTIME.into(),
            root: root.clone(),
            systemd_cgroup: false,
            state_dir: Some(state.0.clone()),
        }
        .save(&bundle)
        .unwrap();
        state
            .write(&ContainerRecord::new("ns", "c1", 4242))
            .unwrap();
        state
            .write(&ContainerRecord::new("ns", "c2", 4243))
            .unwrap();
        let file = state.0.join("containers/ns/c1.json");
        assert!(file.exists());

        cleanup_bundle(&bundle, "ns", "c1");

        assert!(
            !root.join("c1").exists(),
            "the runtime's delete --force ran"
        );
        assert!(!file.exists(), "{} is left behind", file.display());
        assert!(state.0.join("containers/ns/c2.json").exists());
        // Its end is kept for crtd: killed, as containerd reports it.
        let ended: Vec<_> = std::fs::read_dir(state.0.join("ended"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(ended.len(), 1);
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&ended[0]).unwrap()).unwrap();
        assert_eq!(
            (v["id"].as_str(), v["exit_code"].as_i64()),
            (Some("c1"), Some(137))
        );
        assert_eq!(v["status"], "stopped");
    }
}
