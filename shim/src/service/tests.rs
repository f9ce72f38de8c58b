//! The shim's lifecycle, RPC by RPC, with a fake runtime binary
//! (tests/fake-runtime) standing in for runc: what containerd would see,
//! without containerd or runc. Real runc and crun run in the integration tests.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use containerd_shim::api;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::types::task::Status as TaskStatus;
use containerd_shim::ExitSignal;
use crt_config::NodeConfig;
use serde_json::json;

use super::{Service, TaskService};
use crate::error::ShimError;
use crate::events::RecordingSink;

const FAKE_RUNTIME: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fake-runtime");

struct Harness {
    dir: tempfile::TempDir,
    svc: TaskService,
    sink: Arc<RecordingSink>,
    exit: Arc<ExitSignal>,
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::default();
    config.runtime.binary = FAKE_RUNTIME.to_string();
    config.runtime.root = Some(dir.path().join("root"));
    config.trace.state_dir = dir.path().join("state");
    config.trace.listener_dir = dir.path().join("l");
    let sink = Arc::new(RecordingSink::default());
    let exit = Arc::new(ExitSignal::default());
    let svc = TaskService::new("test", "t", sink.clone(), exit.clone(), Some(config));
    Harness {
        dir,
        svc,
        sink,
        exit,
    }
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// A client reading a fifo, as ctr does.
struct FifoReader {
    rx: mpsc::Receiver<String>,
}

impl FifoReader {
    fn open(path: &Path) -> (FifoReader, String) {
        mkfifo(path);
        let (tx, rx) = mpsc::channel();
        let p = path.to_path_buf();
        std::thread::spawn(move || {
            // Blocks until the shim opens its end; EOF once it closes it.
            let mut s = String::new();
            if let Ok(mut f) = fs::File::open(&p) {
                let _ = f.read_to_string(&mut s);
            }
            let _ = tx.send(s);
        });
        (FifoReader { rx }, path.to_string_lossy().into_owned())
    }

    fn text(self) -> String {
        self.rx
            .recv_timeout(Duration::from_secs(10))
            .expect("output reached EOF")
    }
}

impl Harness {
    fn service(&self) -> &Service {
        &self.svc.0
    }

    fn bundle(&self, id: &str, cmd: &str, annotations: serde_json::Value) -> PathBuf {
        let b = self.dir.path().join("bundles").join(id);
        fs::create_dir_all(&b).unwrap();
        let spec = json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["sh", "-c", cmd]},
            "annotations": annotations,
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]},
        });
        fs::write(b.join("config.json"), spec.to_string()).unwrap();
        fs::write(b.join("fake-cmd"), cmd).unwrap();
        b
    }

    fn create(
        &self,
        id: &str,
        cmd: &str,
        stdout: &str,
    ) -> Result<api::CreateTaskResponse, ShimError> {
        let b = self.bundle(id, cmd, json!({}));
        self.service().create(api::CreateTaskRequest {
            id: id.into(),
            bundle: b.to_string_lossy().into_owned(),
            stdout: stdout.into(),
            ..Default::default()
        })
    }

    fn start(&self, id: &str, exec: &str) -> Result<api::StartResponse, ShimError> {
        self.service().start(&api::StartRequest {
            id: id.into(),
            exec_id: exec.into(),
            ..Default::default()
        })
    }

    fn wait(&self, id: &str, exec: &str) -> u32 {
        let svc = self.svc.clone();
        let (id, exec) = (id.to_string(), exec.to_string());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let r = svc.0.wait(&api::WaitRequest {
                id,
                exec_id: exec,
                ..Default::default()
            });
            let _ = tx.send(r.map(|w| w.exit_status));
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the process exited")
            .unwrap()
    }

    fn state(&self, id: &str, exec: &str) -> Result<api::StateResponse, ShimError> {
        self.service().state(&api::StateRequest {
            id: id.into(),
            exec_id: exec.into(),
            ..Default::default()
        })
    }

    fn delete(&self, id: &str, exec: &str) -> Result<api::DeleteResponse, ShimError> {
        self.service().delete(&api::DeleteRequest {
            id: id.into(),
            exec_id: exec.into(),
            ..Default::default()
        })
    }

    fn kill(&self, id: &str, exec: &str, signal: u32) -> Result<(), ShimError> {
        self.service().kill(&api::KillRequest {
            id: id.into(),
            exec_id: exec.into(),
            signal,
            ..Default::default()
        })
    }
}

#[test]
fn a_container_runs_prints_exits_and_is_deleted_with_events_in_order() {
    let h = harness();
    let (out, path) = FifoReader::open(&h.dir.path().join("stdout"));
    let created = h.create("c1", "echo hello; exit 3", &path).unwrap();
    assert!(created.pid > 0);
    assert_eq!(
        h.state("c1", "").unwrap().status.enum_value(),
        Ok(TaskStatus::CREATED)
    );
    let started = h.start("c1", "").unwrap();
    assert_eq!(started.pid, created.pid);
    assert_eq!(h.wait("c1", ""), 3);
    let st = h.state("c1", "").unwrap();
    assert_eq!(st.status.enum_value(), Ok(TaskStatus::STOPPED));
    assert_eq!(st.exit_status, 3);
    let deleted = h.delete("c1", "").unwrap();
    assert_eq!(deleted.exit_status, 3);
    assert_eq!(out.text(), "hello\n");
    assert_eq!(
        h.sink.topics(),
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete"
        ]
    );
    assert!(matches!(h.state("c1", ""), Err(ShimError::NotFound(_))));
}

#[test]
fn a_killed_container_reports_128_plus_the_signal() {
    let h = harness();
    h.create("k1", "sleep 30", "").unwrap();
    h.start("k1", "").unwrap();
    h.kill("k1", "", libc::SIGTERM as u32).unwrap();
    assert_eq!(h.wait("k1", ""), 128 + libc::SIGTERM as u32);
    // Killing it again: the process is gone, containerd expects NOT_FOUND.
    assert!(matches!(h.kill("k1", "", 9), Err(ShimError::NotFound(_))));
    h.delete("k1", "").unwrap();
}

#[test]
fn an_exec_runs_beside_the_init_with_its_own_exit_code_and_events() {
    let h = harness();
    h.create("e1", "sleep 30", "").unwrap();
    h.start("e1", "").unwrap();
    let (out, path) = FifoReader::open(&h.dir.path().join("exec-out"));
    h.service()
        .exec(api::ExecProcessRequest {
            id: "e1".into(),
            exec_id: "x1".into(),
            stdout: path,
            spec: Some(Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
                value: br#"{"args":["sh"],"crtFakeCmd":"echo from-exec; exit 4"}"#.to_vec(),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        })
        .unwrap();
    let dup = h.service().exec(api::ExecProcessRequest {
        id: "e1".into(),
        exec_id: "x1".into(),
        spec: Some(Any::default()).into(),
        ..Default::default()
    });
    assert!(matches!(dup, Err(ShimError::AlreadyExists(_))));
    let started = h.start("e1", "x1").unwrap();
    assert!(started.pid > 0);
    assert_eq!(h.wait("e1", "x1"), 4);
    assert_eq!(h.delete("e1", "x1").unwrap().exit_status, 4);
    assert_eq!(out.text(), "from-exec\n");
    // The init is untouched by the exec's exit.
    assert_eq!(
        h.state("e1", "").unwrap().status.enum_value(),
        Ok(TaskStatus::RUNNING)
    );
    h.kill("e1", "", 9).unwrap();
    assert_eq!(h.wait("e1", ""), 137);
    h.delete("e1", "").unwrap();
    let topics = h.sink.topics();
    for t in ["/tasks/exec-added", "/tasks/exec-started"] {
        assert!(topics.contains(&t.to_string()), "{topics:?}");
    }
    assert_eq!(topics.iter().filter(|t| *t == "/tasks/exit").count(), 2);
}

#[test]
fn a_running_container_cannot_be_deleted_and_ids_are_unique() {
    let h = harness();
    h.create("r1", "sleep 30", "").unwrap();
    // The same id again, from a bundle of its own (reusing r1's would
    // rewrite the command r1 is about to run).
    let other = h.bundle("r1-again", "true", json!({}));
    assert!(matches!(
        h.service().create(api::CreateTaskRequest {
            id: "r1".into(),
            bundle: other.to_string_lossy().into_owned(),
            ..Default::default()
        }),
        Err(ShimError::AlreadyExists(_))
    ));
    h.start("r1", "").unwrap();
    assert!(matches!(
        h.start("r1", ""),
        Err(ShimError::FailedPrecondition(_))
    ));
    assert!(matches!(
        h.delete("r1", ""),
        Err(ShimError::FailedPrecondition(_))
    ));
    h.kill("r1", "", 9).unwrap();
    h.wait("r1", "");
    h.delete("r1", "").unwrap();
    assert!(matches!(h.state("nope", ""), Err(ShimError::NotFound(_))));
    assert!(matches!(h.kill("nope", "", 9), Err(ShimError::NotFound(_))));
}

#[test]
fn a_container_deleted_before_start_is_reported_killed() {
    let h = harness();
    h.create("d1", "true", "").unwrap();
    let d = h.delete("d1", "").unwrap();
    assert_eq!(d.exit_status, 137);
}

#[test]
fn the_runtime_error_reaches_the_caller() {
    let h = harness();
    let b = h.bundle("f1", "true", json!({}));
    fs::write(b.join("fake-fail"), "cgroup is on fire").unwrap();
    let err = h
        .service()
        .create(api::CreateTaskRequest {
            id: "f1".into(),
            bundle: b.to_string_lossy().into_owned(),
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("cgroup is on fire"), "{err}");
    assert!(matches!(h.state("f1", ""), Err(ShimError::NotFound(_))));
}

#[test]
fn pause_and_resume_change_the_state_and_publish_events() {
    let h = harness();
    h.create("p1", "sleep 30", "").unwrap();
    h.start("p1", "").unwrap();
    h.service().set_paused("p1", true).unwrap();
    assert_eq!(
        h.state("p1", "").unwrap().status.enum_value(),
        Ok(TaskStatus::PAUSED)
    );
    h.service().set_paused("p1", false).unwrap();
    assert_eq!(
        h.state("p1", "").unwrap().status.enum_value(),
        Ok(TaskStatus::RUNNING)
    );
    let pids = h
        .service()
        .pids(&api::PidsRequest {
            id: "p1".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(pids.processes.len(), 1);
    h.kill("p1", "", 9).unwrap();
    h.wait("p1", "");
    h.delete("p1", "").unwrap();
    let topics = h.sink.topics();
    assert!(topics.contains(&"/tasks/paused".to_string()));
    assert!(topics.contains(&"/tasks/resumed".to_string()));
}

#[test]
fn an_invalid_trace_annotation_fails_create_naming_the_item() {
    let h = harness();
    let b = h.bundle("a1", "true", json!({"crt.dev/trace": "openat,opnat"}));
    let err = h
        .service()
        .create(api::CreateTaskRequest {
            id: "a1".into(),
            bundle: b.to_string_lossy().into_owned(),
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(err, ShimError::InvalidArgument(_)));
    let msg = err.to_string();
    assert!(msg.contains("crt.dev/trace"), "{msg}");
    assert!(msg.contains("\"opnat\""), "{msg}");
    assert!(matches!(h.state("a1", ""), Err(ShimError::NotFound(_))));
}

#[test]
fn a_traced_container_gets_our_listener_merged_into_its_spec() {
    let h = harness();
    let b = h.bundle("t1", "true", json!({"crt.dev/trace": "openat"}));
    h.service()
        .create(api::CreateTaskRequest {
            id: "t1".into(),
            bundle: b.to_string_lossy().into_owned(),
            ..Default::default()
        })
        .unwrap();
    let spec: serde_json::Value =
        serde_json::from_slice(&fs::read(b.join("config.json")).unwrap()).unwrap();
    let seccomp = &spec["linux"]["seccomp"];
    assert!(seccomp["listenerPath"]
        .as_str()
        .unwrap()
        .ends_with("t.sock"));
    assert_eq!(seccomp["listenerMetadata"], "t1");
    let trace_dir = h.dir.path().join("state/traces/test/t1");
    let meta: serde_json::Value =
        serde_json::from_slice(&fs::read(trace_dir.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["traced"], json!(["openat"]));
    h.delete("t1", "").unwrap();
}

#[test]
fn a_broken_node_config_named_by_the_options_is_refused_with_its_line() {
    let h = harness();
    let cfg = h.dir.path().join("broken.toml");
    fs::write(&cfg, "[trace]\nenabled = true\nbogus = 1\n").unwrap();
    let b = h.bundle("b1", "true", json!({}));
    let path = cfg.to_string_lossy();
    let mut value = vec![0x12, path.len() as u8];
    value.extend_from_slice(path.as_bytes());
    let err = h
        .service()
        .create(api::CreateTaskRequest {
            id: "b1".into(),
            bundle: b.to_string_lossy().into_owned(),
            options: Some(Any {
                type_url: "runtimeoptions.v1.Options".into(),
                value,
                ..Default::default()
            })
            .into(),
            ..Default::default()
        })
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("broken.toml line 3"), "{msg}");
    assert!(msg.contains("bogus"), "{msg}");
}

#[test]
fn a_checkpoint_leaves_the_container_running_and_a_task_created_from_it_runs_restored() {
    let h = harness();
    let marker = h.dir.path().join("restored-ran");
    let cmd = format!("touch {}.$$; sleep 30", marker.display());
    h.create("src", &cmd, "").unwrap();
    h.start("src", "").unwrap();
    let image = h.dir.path().join("checkpoint");
    fs::create_dir_all(&image).unwrap();
    h.service()
        .checkpoint(&api::CheckpointTaskRequest {
            id: "src".into(),
            path: image.to_string_lossy().into_owned(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        fs::read_to_string(image.join("fake-checkpoint")).unwrap(),
        "leave-running=1\n"
    );
    assert_eq!(
        h.state("src", "").unwrap().status.enum_value().unwrap(),
        TaskStatus::RUNNING,
        "the source runs on"
    );

    let b = h.bundle("clone", "exit 99", json!({}));
    let created = h
        .service()
        .create(api::CreateTaskRequest {
            id: "clone".into(),
            bundle: b.to_string_lossy().into_owned(),
            checkpoint: image.to_string_lossy().into_owned(),
            ..Default::default()
        })
        .unwrap();
    // Start only says so: the fake runtime refuses `start` of a restored container.
    let started = h.start("clone", "").unwrap();
    assert_eq!(started.pid, created.pid);
    assert_eq!(
        h.state("clone", "").unwrap().status.enum_value().unwrap(),
        TaskStatus::RUNNING
    );
    let ran = |pid: u32| h.dir.path().join(format!("restored-ran.{pid}")).exists();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !ran(created.pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        ran(created.pid),
        "the checkpoint's command runs in the clone"
    );
    for id in ["src", "clone"] {
        h.kill(id, "", 9).unwrap();
        h.wait(id, "");
        h.delete(id, "").unwrap();
    }
}

#[test]
fn a_traced_container_is_neither_checkpointed_nor_restored() {
    let h = harness();
    let b = h.bundle("t", "sleep 30", json!({"crt.dev/trace": "openat"}));
    let r = h.service().create(api::CreateTaskRequest {
        id: "t".into(),
        bundle: b.to_string_lossy().into_owned(),
        checkpoint: h.dir.path().to_string_lossy().into_owned(),
        ..Default::default()
    });
    match r {
        Err(ShimError::FailedPrecondition(m)) => assert!(m.contains("cannot be traced"), "{m}"),
        other => panic!("{other:?}"),
    }
    let b = h.bundle("t2", "sleep 30", json!({"crt.dev/trace": "openat"}));
    h.service()
        .create(api::CreateTaskRequest {
            id: "t".into(),
            bundle: b.to_string_lossy().into_owned(),
            ..Default::default()
        })
        .unwrap();
    h.start("t", "").unwrap();
    let r = h.service().checkpoint(&api::CheckpointTaskRequest {
        id: "t".into(),
        path: h.dir.path().to_string_lossy().into_owned(),
        ..Default::default()
    });
    match r {
        Err(ShimError::FailedPrecondition(m)) => assert!(m.contains("is traced"), "{m}"),
        other => panic!("{other:?}"),
    }
    h.kill("t", "", 9).unwrap();
    h.wait("t", "");
    h.delete("t", "").unwrap();
}

#[test]
fn shutdown_waits_for_the_last_container() {
    let h = harness();
    h.create("s1", "sleep 30", "").unwrap();
    h.service().shutdown();
    let exit = Arc::clone(&h.exit);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        exit.wait();
        let _ = tx.send(());
    });
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    h.delete("s1", "").unwrap();
    h.service().shutdown();
    assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok());
}
