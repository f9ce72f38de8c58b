//! One container and its processes (the init and any execs), as the shim
//! tracks them between Task RPCs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;

use crate::cgroup::CgroupPaths;
use crate::error::{Result, ShimError};
use crate::runtime::Runtime;
use crate::state_file::{ContainerRecord, StateDir};
use crate::stdio::{ProcessIo, StdioPaths};
use crate::trace::TraceSession;

/// Where a process is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Stopped,
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: i32,
    pub at: SystemTime,
}

impl ExitInfo {
    pub fn timestamp(&self) -> Timestamp {
        let d = self
            .at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let mut ts = Timestamp::new();
        ts.seconds = d.as_secs() as i64;
        ts.nanos = d.subsec_nanos() as i32;
        ts
    }
}

/// Set once when the process exits; Wait RPCs block on it.
#[derive(Default)]
pub struct ExitCell {
    exit: Mutex<Option<ExitInfo>>,
    cv: Condvar,
}

impl ExitCell {
    /// Records the exit; later calls keep the first.
    pub fn set(&self, code: i32) -> ExitInfo {
        let mut e = self.exit.lock().unwrap();
        if e.is_none() {
            *e = Some(ExitInfo {
                code,
                at: SystemTime::now(),
            });
            self.cv.notify_all();
        }
        e.unwrap()
    }

    pub fn get(&self) -> Option<ExitInfo> {
        *self.exit.lock().unwrap()
    }

    /// Waits up to `timeout`; `None` if the process is still running.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ExitInfo> {
        let e = self.exit.lock().unwrap();
        let (e, _) = self
            .cv
            .wait_timeout_while(e, timeout, |e| e.is_none())
            .unwrap();
        *e
    }

    pub fn wait(&self) -> ExitInfo {
        let mut e = self.exit.lock().unwrap();
        loop {
            if let Some(info) = *e {
                return info;
            }
            e = self.cv.wait(e).unwrap();
        }
    }
}

pub struct Process {
    /// Empty for the init process.
    pub exec_id: String,
    pub pid: i32,
    pub status: Status,
    pub stdio: StdioPaths,
    pub io: Arc<ProcessIo>,
    pub exit: Arc<ExitCell>,
    /// An exec's process spec (JSON), written for the runtime at Start.
    pub spec: Option<Vec<u8>>,
}

impl Process {
    pub fn new(exec_id: &str, stdio: StdioPaths) -> Self {
        Process {
            exec_id: exec_id.to_string(),
            pid: 0,
            status: Status::Created,
            stdio,
            io: Arc::new(ProcessIo::none()),
            exit: Arc::new(ExitCell::default()),
            spec: None,
        }
    }

    pub fn exited(&self) -> Option<ExitInfo> {
        self.exit.get()
    }
}

pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub runtime: Runtime,
    pub inner: Mutex<ContainerState>,
}

pub struct ContainerState {
    pub init: Process,
    pub execs: HashMap<String, Process>,
    pub paused: bool,
    /// The rootfs we mounted (unmounted at Delete).
    pub rootfs: Option<PathBuf>,
    pub trace: Option<Arc<TraceSession>>,
    /// The container has its own pid namespace: its processes die with its init.
    pub own_pid_ns: bool,
    pub cgroup: Option<CgroupPaths>,
    pub oom_token: Option<u64>,
    /// Used to name exec files in the bundle without trusting exec ids.
    pub next_exec_file: u64,
    /// What the node is told about this container (state_file.rs).
    pub record: ContainerRecord,
    pub state_dir: StateDir,
    /// Created from a checkpoint: its init already runs (Start only says so).
    pub restored: bool,
    /// The CRIU binary the node config names for checkpoints (else PATH's).
    pub criu: Option<PathBuf>,
}

impl Container {
    /// The init (empty `exec_id`) or an exec, or NOT_FOUND naming both ids.
    pub fn process<'a>(&self, state: &'a ContainerState, exec_id: &str) -> Result<&'a Process> {
        if exec_id.is_empty() {
            return Ok(&state.init);
        }
        state
            .execs
            .get(exec_id)
            .ok_or_else(|| self.no_exec(exec_id))
    }

    pub fn process_mut<'a>(
        &self,
        state: &'a mut ContainerState,
        exec_id: &str,
    ) -> Result<&'a mut Process> {
        if exec_id.is_empty() {
            return Ok(&mut state.init);
        }
        match state.execs.get_mut(exec_id) {
            Some(p) => Ok(p),
            None => Err(self.no_exec(exec_id)),
        }
    }

    fn no_exec(&self, exec_id: &str) -> ShimError {
        ShimError::NotFound(format!("exec {exec_id} not found in container {}", self.id))
    }
}

/// Exits of pids not (yet) known: an exec can exit before the runtime's pid
/// file tells us its pid. Kept briefly so Start can still find its exit.
#[derive(Default)]
pub struct EarlyExits {
    exits: Mutex<Vec<(i32, i32, Instant)>>,
}

const EARLY_EXIT_TTL: Duration = Duration::from_secs(30);

impl EarlyExits {
    pub fn remember(&self, pid: i32, code: i32) {
        let mut e = self.exits.lock().unwrap();
        let now = Instant::now();
        e.retain(|(_, _, at)| now.duration_since(*at) < EARLY_EXIT_TTL);
        if e.len() < 4096 {
            e.push((pid, code, now));
        }
    }

    pub fn take(&self, pid: i32) -> Option<i32> {
        let mut e = self.exits.lock().unwrap();
        let i = e.iter().position(|(p, _, _)| *p == pid)?;
        Some(e.swap_remove(i).1)
    }
}
