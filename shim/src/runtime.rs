//! The runc-compatible runtime binary (runc, crun, youki), driven through its
//! command line. Errors carry what the runtime itself said (from its JSON log
//! or its stderr), so `ctr` shows the runtime's reason, not just an exit code.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use crate::reaper::reaper;

/// How long a runtime command may take before we give up on it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// A runtime command that failed.
#[derive(Debug, thiserror::Error)]
#[error("{binary} {op} {id}: {message}")]
pub struct RuntimeError {
    pub binary: String,
    pub op: &'static str,
    pub id: String,
    pub message: String,
}

impl RuntimeError {
    /// The runtime says the container or process is not running any more.
    pub fn is_not_running(&self) -> bool {
        let m = self.message.to_ascii_lowercase();
        m.contains("not running")
            || m.contains("process already finished")
            || m.contains("no such process")
            || m.contains("container does not exist")
            || m.contains("does not exist")
    }
}

/// The stdio the runtime hands to the container process.
pub struct ChildStdio {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

impl ChildStdio {
    pub fn null() -> Self {
        ChildStdio {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Runtime {
    binary: PathBuf,
    name: String,
    root: PathBuf,
    systemd_cgroup: bool,
    log: PathBuf,
}

/// Finds `name` on PATH (or checks an absolute path).
pub fn resolve_binary(name: &str) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if name.starts_with('/') {
        return if executable(Path::new(name)) {
            Ok(PathBuf::from(name))
        } else {
            Err(format!(
                "runtime binary {name} does not exist or is not executable"
            ))
        };
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(format!(
        "runtime binary {name:?} was not found on PATH ({}); install it or set runtime.binary in the node config",
        path.to_string_lossy()
    ))
}

impl Runtime {
    /// A runtime whose commands log (JSON) to `log`.
    pub fn new(binary: PathBuf, root: PathBuf, systemd_cgroup: bool, log: PathBuf) -> Self {
        let name = binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Runtime {
            binary,
            name,
            root,
            systemd_cgroup,
            log,
        }
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .arg("--log-format")
            .arg("json");
        if self.systemd_cgroup {
            cmd.arg("--systemd-cgroup");
        }
        cmd
    }

    fn error(&self, op: &'static str, id: &str, message: String) -> RuntimeError {
        RuntimeError {
            binary: self.name.clone(),
            op,
            id: id.to_string(),
            message,
        }
    }

    fn log_len(&self) -> u64 {
        fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    /// The error messages the runtime logged since `offset`, last first.
    fn logged_error(&self, offset: u64) -> Option<String> {
        let mut f = File::open(&self.log).ok()?;
        f.seek(SeekFrom::Start(offset)).ok()?;
        let mut text = String::new();
        f.take(1 << 20).read_to_string(&mut text).ok()?;
        let mut last = None;
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let level = v.get("level").and_then(|l| l.as_str()).unwrap_or("");
            if level == "error" || level == "fatal" {
                if let Some(msg) = v.get("msg").and_then(|m| m.as_str()) {
                    last = Some(msg.to_string());
                }
            }
        }
        last
    }

    fn wait(&self, op: &'static str, id: &str, rx: Receiver<i32>) -> Result<i32, RuntimeError> {
        rx.recv_timeout(COMMAND_TIMEOUT)
            .map_err(|_| self.error(op, id, format!("did not finish within {COMMAND_TIMEOUT:?}")))
    }

    /// Runs a command whose stdio is ours; returns its stdout.
    fn run(&self, op: &'static str, id: &str, args: &[&str]) -> Result<Vec<u8>, RuntimeError> {
        let offset = self.log_len();
        let mut cmd = self.command();
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let (mut child, rx) = reaper().spawn(&mut cmd).map_err(|e| {
            self.error(op, id, format!("cannot run {}: {e}", self.binary.display()))
        })?;
        let mut stderr = child.stderr.take().expect("piped stderr");
        let err_reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = stderr.read_to_end(&mut s);
            s
        });
        let mut out = Vec::new();
        if let Some(mut stdout) = child.stdout.take() {
            let _ = stdout.read_to_end(&mut out);
        }
        let err_text = err_reader.join().unwrap_or_default();
        let code = self.wait(op, id, rx)?;
        if code != 0 {
            let message = self
                .logged_error(offset)
                .or_else(|| {
                    let s = String::from_utf8_lossy(&err_text).trim().to_string();
                    (!s.is_empty()).then_some(s)
                })
                .unwrap_or_else(|| format!("exited with status {code}"));
            return Err(self.error(op, id, message));
        }
        Ok(out)
    }

    /// Runs a command whose stdio belongs to the container process.
    fn run_with_stdio(
        &self,
        op: &'static str,
        id: &str,
        args: &[&str],
        stdio: ChildStdio,
    ) -> Result<(), RuntimeError> {
        let offset = self.log_len();
        let mut cmd = self.command();
        cmd.args(args)
            .stdin(stdio.stdin)
            .stdout(stdio.stdout)
            .stderr(stdio.stderr);
        let (child, rx) = reaper().spawn(&mut cmd).map_err(|e| {
            self.error(op, id, format!("cannot run {}: {e}", self.binary.display()))
        })?;
        // Our copies of the container's ends of its pipes close here, so the
        // shim sees EOF when the container's processes close them.
        drop(cmd);
        drop(child);
        let code = self.wait(op, id, rx)?;
        if code != 0 {
            let message = self
                .logged_error(offset)
                .unwrap_or_else(|| format!("exited with status {code}"));
            return Err(self.error(op, id, message));
        }
        Ok(())
    }

    pub fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        no_pivot: bool,
        stdio: ChildStdio,
    ) -> Result<(), RuntimeError> {
        let bundle_s = bundle.to_string_lossy();
        let pid_s = pid_file.to_string_lossy();
        let mut args = vec!["create", "--bundle", &bundle_s, "--pid-file", &pid_s];
        let console_s;
        if let Some(c) = console_socket {
            console_s = c.to_string_lossy().into_owned();
            args.extend(["--console-socket", &console_s]);
        }
        if no_pivot {
            args.push("--no-pivot");
        }
        args.push(id);
        self.run_with_stdio("create", id, &args, stdio)
    }

    /// `[--criu PATH] SUBCOMMAND --image-path IMAGE --work-path WORK`: what
    /// checkpoint and restore share.
    fn criu_command(sub: &str, image: &Path, work: &Path, criu: Option<&Path>) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(c) = criu {
            args.extend(["--criu".to_string(), c.to_string_lossy().into_owned()]);
        }
        args.extend([
            sub.to_string(),
            "--image-path".to_string(),
            image.to_string_lossy().into_owned(),
            "--work-path".to_string(),
            work.to_string_lossy().into_owned(),
        ]);
        args
    }

    /// Saves the running container's processes into `image` (CRIU through
    /// the runtime), leaving them running.
    pub fn checkpoint(
        &self,
        id: &str,
        image: &Path,
        work: &Path,
        criu: Option<&Path>,
    ) -> Result<(), RuntimeError> {
        let mut args = Self::criu_command("checkpoint", image, work, criu);
        args.extend(["--leave-running".to_string(), id.to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run("checkpoint", id, &args).map(drop)
    }

    /// Creates the container from a checkpoint: its processes run again,
    /// restored, once this returns.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        image: &Path,
        work: &Path,
        criu: Option<&Path>,
        stdio: ChildStdio,
    ) -> Result<(), RuntimeError> {
        let mut args = Self::criu_command("restore", image, work, criu);
        args.extend([
            "--detach".to_string(),
            "--bundle".to_string(),
            bundle.to_string_lossy().into_owned(),
            "--pid-file".to_string(),
            pid_file.to_string_lossy().into_owned(),
            id.to_string(),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run_with_stdio("restore", id, &args, stdio)
    }

    pub fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.run("start", id, &["start", id]).map(drop)
    }

    pub fn exec(
        &self,
        id: &str,
        process_json: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        stdio: ChildStdio,
    ) -> Result<(), RuntimeError> {
        let proc_s = process_json.to_string_lossy();
        let pid_s = pid_file.to_string_lossy();
        let mut args = vec![
            "exec",
            "--detach",
            "--process",
            &proc_s,
            "--pid-file",
            &pid_s,
        ];
        let console_s;
        if let Some(c) = console_socket {
            console_s = c.to_string_lossy().into_owned();
            args.extend(["--console-socket", &console_s]);
        }
        args.push(id);
        self.run_with_stdio("exec", id, &args, stdio)
    }

    pub fn kill(&self, id: &str, signal: u32, all: bool) -> Result<(), RuntimeError> {
        let sig = signal.to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([id, &sig]);
        self.run("kill", id, &args).map(drop)
    }

    pub fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let mut args = vec!["delete"];
        if force {
            args.push("--force");
        }
        args.push(id);
        self.run("delete", id, &args).map(drop)
    }

    pub fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        self.run("pause", id, &["pause", id]).map(drop)
    }

    pub fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        self.run("resume", id, &["resume", id]).map(drop)
    }

    /// The pids of every process in the container.
    pub fn ps(&self, id: &str) -> Result<Vec<i32>, RuntimeError> {
        let out = self.run("ps", id, &["ps", "--format", "json", id])?;
        let text = String::from_utf8_lossy(&out);
        let text = text.trim();
        if text.is_empty() || text == "null" {
            return Ok(Vec::new());
        }
        serde_json::from_str::<Vec<i32>>(text)
            .map_err(|e| self.error("ps", id, format!("unexpected output {text:?}: {e}")))
    }

    /// Applies new resource limits (a JSON `LinuxResources`).
    pub fn update(&self, id: &str, resources_json: &Path) -> Result<(), RuntimeError> {
        let r = resources_json.to_string_lossy();
        self.run("update", id, &["update", "--resources", &r, id])
            .map(drop)
    }
}

/// Reads a pid file written by the runtime.
pub fn read_pid_file(path: &Path) -> io::Result<i32> {
    let text = fs::read_to_string(path)?;
    text.trim().parse::<i32>().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("pid file {} holds {text:?}: {e}", path.display()),
        )
    })
}
