//! Processes run in a debug clone (a shell, a command, the tar stream of
//! `crtctl cp`), bridged to a WebSocket: containerd adds the process to the
//! clone's task with FIFOs for its stdio (or a terminal), and crtd carries
//! the bytes both ways, the terminal's size, signals and the exit status.
//!
//! The protocol, from the client: binary messages are input; text messages
//! are JSON controls, `{"type": "resize", "cols": C, "rows": R}`,
//! `{"type": "stdin-close"}`, `{"type": "signal", "signal": "INT"}`. From
//! crtd: binary messages are output, their first byte the stream (1 stdout,
//! 2 stderr); text messages `{"type": "started", "pid": P}`, then
//! `{"type": "exit", "code": N}` or `{"type": "error", "message": M}`, then a
//! close. A client that goes away takes its process with it (SIGKILL).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::watch;

use super::{Debugger, INIT_PATH};

/// Where the FIFOs of running sessions live (root only).
pub const FIFO_DIR: &str = "/run/crt/exec";
/// How long output may still come after the process ended (a background
/// child may hold the terminal open).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// What to run.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    pub args: Vec<String>,
    pub tty: bool,
    pub cols: u16,
    pub rows: u16,
    /// `KEY=VALUE`, over the clone's own environment.
    pub env: Vec<String>,
    /// Run as the clone's root (uid 0) in `/`: for the tar stream of `cp`.
    pub as_root: bool,
}

impl ExecSpec {
    /// The clone's best shell (bash, else ash, else sh), found inside it.
    pub fn shell() -> Vec<String> {
        vec![INIT_PATH.into(), "crt-clone-shell".into()]
    }

    /// A tar stream of `path` on stdout.
    pub fn tar_out(path: &str) -> Vec<String> {
        vec![
            INIT_PATH.into(),
            "crt-clone-tar".into(),
            "create".into(),
            path.into(),
        ]
    }

    /// A tar stream on stdin unpacked into `dir`.
    pub fn tar_in(dir: &str) -> Vec<String> {
        vec![
            INIT_PATH.into(),
            "crt-clone-tar".into(),
            "extract".into(),
            dir.into(),
        ]
    }
}

/// The process to add to the clone: the clone's own (user, environment,
/// capabilities, limits) with the command, terminal and environment asked for.
pub fn process_spec(process: Value, e: &ExecSpec) -> Value {
    let mut p = if process.is_object() {
        process
    } else {
        json!({})
    };
    p["args"] = json!(e.args);
    p["terminal"] = json!(e.tty);
    if e.tty {
        p["consoleSize"] = json!({"height": e.rows, "width": e.cols});
    } else if let Some(o) = p.as_object_mut() {
        o.remove("consoleSize");
    }
    let mut env: Vec<String> = p["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    for kv in &e.env {
        let key = kv.split('=').next().unwrap_or("");
        env.retain(|old| old.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    p["env"] = json!(env);
    if e.as_root {
        p["user"] = json!({"uid": 0, "gid": 0});
        p["cwd"] = json!("/");
    }
    p
}

/// The signals a client may send by name.
pub fn signal_number(name: &str) -> Option<i32> {
    let n = name.trim_start_matches("SIG");
    Some(match n {
        "INT" => libc::SIGINT,
        "TERM" => libc::SIGTERM,
        "KILL" => libc::SIGKILL,
        "HUP" => libc::SIGHUP,
        "QUIT" => libc::SIGQUIT,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "WINCH" => libc::SIGWINCH,
        "STOP" => libc::SIGSTOP,
        "CONT" => libc::SIGCONT,
        _ => return None,
    })
}

/// One session's FIFOs, removed with it.
struct Fifos {
    dir: PathBuf,
}

impl Fifos {
    fn make(exec_id: &str) -> anyhow::Result<Fifos> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(FIFO_DIR)
            .with_context(|| format!("creating {FIFO_DIR}"))?;
        let dir = Path::new(FIFO_DIR).join(exec_id);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let f = Fifos { dir };
        for name in ["in", "out", "err"] {
            let p = f.path(name);
            let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes())?;
            // SAFETY: `c` is a NUL-terminated path that outlives the call.
            if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
                return Err(anyhow!(
                    "creating the FIFO {}: {}",
                    p.display(),
                    std::io::Error::last_os_error()
                ));
            }
        }
        Ok(f)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Fifos {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn random_id() -> String {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// How a session ended, for the audit log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ended {
    pub exit_code: Option<u32>,
    pub error: Option<String>,
    pub client_left: bool,
}

fn text(v: Value) -> Message {
    Message::Text(v.to_string().into())
}

/// Runs `e` in the clone `ns/id` and carries it over `socket` until it ends.
pub async fn session(
    d: Arc<Debugger>,
    ns: String,
    id: String,
    e: ExecSpec,
    socket: WebSocket,
    mut stop: watch::Receiver<bool>,
) -> Ended {
    let (mut tx, mut rx) = socket.split();
    let exec_id = format!("crt-exec-{}", random_id());
    let prepared = prepare(&d, &ns, &id, &exec_id, &e).await;
    let (pid, io) = match prepared {
        Ok(v) => v,
        Err(err) => {
            let message = format!("{err:#}");
            let _ = tx
                .send(text(json!({"type": "error", "message": message})))
                .await;
            let _ = tx.send(Message::Close(None)).await;
            return Ended {
                exit_code: None,
                error: Some(message),
                client_left: false,
            };
        }
    };
    let Io {
        fifos: _fifos,
        stdin,
        mut stdout,
        stderr,
    } = io;
    let _ = tx
        .send(text(
            json!({"type": "started", "pid": pid, "exec_id": exec_id}),
        ))
        .await;

    // The client's side: input, controls, and whether it is still there.
    let (gone_tx, mut gone) = tokio::sync::oneshot::channel::<()>();
    let input = {
        let (d, ns, id, exec_id) = (Arc::clone(&d), ns.clone(), id.clone(), exec_id.clone());
        tokio::spawn(async move {
            let mut stdin = Some(stdin);
            while let Some(m) = rx.next().await {
                match m {
                    Ok(Message::Binary(b)) => {
                        if let Some(w) = stdin.as_mut() {
                            if w.write_all(&b).await.is_err() {
                                stdin = None;
                            }
                        }
                    }
                    Ok(Message::Text(t)) => {
                        let c: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                        let r = match c["type"].as_str() {
                            Some("resize") => {
                                let n =
                                    |k: &str| c[k].as_u64().unwrap_or(0).clamp(1, 10_000) as u32;
                                d.containerd
                                    .resize_exec(&ns, &id, &exec_id, n("cols"), n("rows"))
                                    .await
                            }
                            Some("stdin-close") => {
                                stdin = None;
                                d.containerd.close_exec_stdin(&ns, &id, &exec_id).await
                            }
                            Some("signal") => {
                                let sig = match &c["signal"] {
                                    Value::Number(n) => n.as_i64().map(|n| n as i32),
                                    Value::String(s) => signal_number(s),
                                    _ => None,
                                };
                                match sig.filter(|s| (1..=64).contains(s)) {
                                    Some(s) => {
                                        d.containerd.signal_exec(&ns, &id, &exec_id, s).await
                                    }
                                    None => Ok(()),
                                }
                            }
                            _ => Ok(()),
                        };
                        if let Err(e) = r {
                            tracing::debug!("debug: exec {exec_id}: {e:#}");
                        }
                    }
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let _ = gone_tx.send(());
        })
    };

    let wait = {
        let (d, ns, id, exec_id) = (Arc::clone(&d), ns.clone(), id.clone(), exec_id.clone());
        tokio::spawn(async move { d.containerd.wait_exec(&ns, &id, &exec_id).await })
    };
    tokio::pin!(wait);

    let mut stderr = stderr;
    let (mut out_buf, mut err_buf) = (vec![0u8; 32 * 1024], vec![0u8; 32 * 1024]);
    let (mut out_open, mut err_open) = (true, stderr.is_some());
    let mut exit: Option<Result<u32, String>> = None;
    let mut client_left = false;
    let drain_deadline = tokio::time::sleep(Duration::from_secs(86_400 * 365));
    tokio::pin!(drain_deadline);
    loop {
        if exit.is_some() && !out_open && !err_open {
            break;
        }
        tokio::select! {
            n = stdout.read(&mut out_buf), if out_open => match n {
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => {
                    let mut m = Vec::with_capacity(n + 1);
                    m.push(1u8);
                    m.extend_from_slice(&out_buf[..n]);
                    if tx.send(Message::Binary(m.into())).await.is_err() {
                        client_left = true;
                        break;
                    }
                }
            },
            n = async { stderr.as_mut().unwrap().read(&mut err_buf).await }, if err_open => match n {
                Ok(0) | Err(_) => err_open = false,
                Ok(n) => {
                    let mut m = Vec::with_capacity(n + 1);
                    m.push(2u8);
                    m.extend_from_slice(&err_buf[..n]);
                    if tx.send(Message::Binary(m.into())).await.is_err() {
                        client_left = true;
                        break;
                    }
                }
            },
            w = &mut wait, if exit.is_none() => {
                exit = Some(match w {
                    Ok(Ok(code)) => Ok(code),
                    Ok(Err(e)) => Err(format!("{e:#}")),
                    Err(e) => Err(format!("waiting for the process: {e}")),
                });
                drain_deadline.as_mut().reset(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
            },
            _ = &mut drain_deadline, if exit.is_some() => break,
            _ = &mut gone => { client_left = true; break; }
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
        }
    }
    input.abort();
    let ended = match exit {
        Some(Ok(code)) => {
            let _ = tx.send(text(json!({"type": "exit", "code": code}))).await;
            Ended {
                exit_code: Some(code),
                error: None,
                client_left,
            }
        }
        other => {
            // The client left or crtd stops: the process goes too.
            let _ = d
                .containerd
                .signal_exec(&ns, &id, &exec_id, libc::SIGKILL)
                .await;
            let code = tokio::time::timeout(Duration::from_secs(5), &mut wait)
                .await
                .ok()
                .and_then(|w| w.ok())
                .and_then(|w| w.ok());
            let error = match other {
                Some(Err(e)) => Some(e),
                _ if client_left => None,
                _ => Some("crtd is stopping".to_string()),
            };
            if let Some(msg) = &error {
                let _ = tx
                    .send(text(json!({"type": "error", "message": msg})))
                    .await;
            }
            Ended {
                exit_code: code,
                error,
                client_left,
            }
        }
    };
    let _ = tx.send(Message::Close(None)).await;
    d.containerd.delete_exec(&ns, &id, &exec_id).await;
    ended
}

struct Io {
    fifos: Fifos,
    stdin: pipe::Sender,
    stdout: pipe::Receiver,
    stderr: Option<pipe::Receiver>,
}

/// Makes the FIFOs, opens our ends of them without blocking, and starts the
/// process. The extra ends held until it started let every open succeed
/// whatever order the shim opens its ends in; once they are dropped, our
/// readers see the end of output when the shim closes its writers.
async fn prepare(
    d: &Debugger,
    ns: &str,
    id: &str,
    exec_id: &str,
    e: &ExecSpec,
) -> anyhow::Result<(u32, Io)> {
    let c = d
        .containerd
        .container(ns, id)
        .await?
        .ok_or_else(|| anyhow!("the clone {ns}/{id} is gone"))?;
    let spec: Value = c
        .spec
        .as_ref()
        .map(|s| serde_json::from_slice(&s.value))
        .transpose()
        .context("the clone's runtime spec is not JSON")?
        .unwrap_or(Value::Null);
    let process = process_spec(spec["process"].clone(), e);
    let fifos = Fifos::make(exec_id)?;
    let open = |name: &str| -> anyhow::Result<(pipe::Receiver, pipe::Sender)> {
        let p = fifos.path(name);
        let r = pipe::OpenOptions::new()
            .open_receiver(&p)
            .with_context(|| format!("opening {}", p.display()))?;
        let w = pipe::OpenOptions::new()
            .open_sender(&p)
            .with_context(|| format!("opening {}", p.display()))?;
        Ok((r, w))
    };
    let (in_hold, stdin) = open("in")?;
    let (stdout, out_hold) = open("out")?;
    let (stderr, err_hold) = open("err")?;
    let pid = d
        .containerd
        .exec(
            ns,
            id,
            exec_id,
            &process,
            [&fifos.path("in"), &fifos.path("out"), &fifos.path("err")],
            e.tty,
        )
        .await?;
    drop((in_hold, out_hold, err_hold));
    Ok((
        pid,
        Io {
            fifos,
            stdin,
            stdout,
            stderr: (!e.tty).then_some(stderr),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(args: &[&str], tty: bool) -> ExecSpec {
        ExecSpec {
            args: args.iter().map(|s| s.to_string()).collect(),
            tty,
            cols: 120,
            rows: 40,
            env: vec!["TERM=xterm-256color".into()],
            as_root: false,
        }
    }

    #[test]
    fn an_exec_keeps_the_clones_user_and_environment_and_takes_the_command_and_terminal() {
        let clone = json!({
            "args": ["/dev/.crt-init", "crt-clone-init"],
            "env": ["PATH=/bin", "TERM=dumb", "APP=1"],
            "cwd": "/srv",
            "user": {"uid": 1000, "gid": 1000},
            "capabilities": {"bounding": ["CAP_KILL"]},
            "terminal": false
        });
        let p = process_spec(clone.clone(), &spec(&["sh", "-l"], true));
        assert_eq!(p["args"], json!(["sh", "-l"]));
        assert_eq!(p["terminal"], true);
        assert_eq!(p["consoleSize"], json!({"height": 40, "width": 120}));
        assert_eq!(
            p["env"],
            json!(["PATH=/bin", "APP=1", "TERM=xterm-256color"]),
            "the asked-for TERM replaces the clone's"
        );
        assert_eq!(p["user"]["uid"], 1000);
        assert_eq!(p["cwd"], "/srv");
        assert_eq!(p["capabilities"]["bounding"], json!(["CAP_KILL"]));

        let mut root = spec(&["tar"], false);
        root.as_root = true;
        let p = process_spec(clone, &root);
        assert_eq!(p["terminal"], false);
        assert!(p.get("consoleSize").is_none());
        assert_eq!(p["user"], json!({"uid": 0, "gid": 0}));
        assert_eq!(p["cwd"], "/");
    }

    #[test]
    fn signals_are_known_by_name_with_or_without_sig() {
        assert_eq!(signal_number("INT"), Some(libc::SIGINT));
        assert_eq!(signal_number("SIGTERM"), Some(libc::SIGTERM));
        assert_eq!(signal_number("BOGUS"), None);
    }
}
