//! `crtctl exec` and `crtctl cp`: commands and files in a debug clone, over
//! crtd's WebSocket sessions (the protocol is described in crtd's
//! debug/exec.rs). With a terminal, the local one is put in raw mode and its
//! size follows the window; without, Ctrl-C is passed on as SIGINT.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use crt_tracer::escape;
use serde_json::{json, Value};
use tungstenite::Message;

use crate::client::{Client, Conn};
use crate::debug::{namespace_of, path_part};
use crate::settings::ServerArgs;

/// How long one read of the socket waits before input gets its turn.
const POLL: Duration = Duration::from_millis(10);

#[derive(Args)]
pub struct ExecArgs {
    #[arg(short = 'n', long = "namespace", env = "CONTAINERD_NAMESPACE")]
    pub namespace: Option<String>,
    /// Pass this terminal's input to the command.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give the command a terminal (needs one here).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// `KEY=VALUE` for the command's environment (repeatable).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// The debug clone.
    pub clone: String,
    /// The command (default: the clone's shell).
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Args)]
pub struct CpArgs {
    #[arg(short = 'n', long = "namespace", env = "CONTAINERD_NAMESPACE")]
    pub namespace: Option<String>,
    /// `CLONE:PATH` or a local path (`-`: a tar stream on stdin/stdout).
    pub from: String,
    /// `CLONE:PATH` or a local path (`-`: a tar stream on stdin/stdout).
    pub to: String,
}

/// Input for the remote process.
enum Input {
    Data(Vec<u8>),
    Close,
}

/// How a session ended.
pub struct Exit {
    pub code: Option<u32>,
    pub error: Option<String>,
}

impl Exit {
    /// The exit status crtctl passes on: the command's, else 125 (crtd or
    /// crtctl failed) as `docker exec` does.
    pub fn status(&self) -> ExitCode {
        match (self.code, &self.error) {
            (Some(c), None) => ExitCode::from(c.min(255) as u8),
            _ => ExitCode::from(125),
        }
    }
}

static WINCH: AtomicBool = AtomicBool::new(false);
static INTERRUPT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_winch(_: libc::c_int) {
    WINCH.store(true, Ordering::Relaxed);
}

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPT.store(true, Ordering::Relaxed);
}

fn catch(signal: libc::c_int, handler: extern "C" fn(libc::c_int)) {
    // SAFETY: the handlers only store to an atomic, which is async-signal-safe;
    // `sa` is zeroed and then filled before use.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(signal, &sa, std::ptr::null_mut());
    }
}

/// This terminal's size, columns and rows.
fn window_size() -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ writes a winsize into `ws`, a valid local.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: as above; fd 0 is only queried.
    let r = unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0 && ws.ws_row > 0).then_some((ws.ws_col, ws.ws_row))
}

/// The local terminal in raw mode until dropped.
struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    fn enter() -> Result<RawMode> {
        // SAFETY: tcgetattr fills `saved`, a valid local, for fd 0.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::tcgetattr(0, &mut saved) } != 0 {
            bail!(
                "reading this terminal's settings: {}",
                std::io::Error::last_os_error()
            );
        }
        let mut raw = saved;
        // SAFETY: cfmakeraw only edits the termios it is given.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: `raw` is a valid termios for fd 0.
        if unsafe { libc::tcsetattr(0, libc::TCSANOW, &raw) } != 0 {
            bail!(
                "putting this terminal in raw mode: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `enter` on fd 0.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &self.saved) };
    }
}

/// Reads this process's stdin into `tx` until its end.
fn forward_stdin(tx: SyncSender<Input>) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Input::Close);
                    return;
                }
                Ok(n) => {
                    if tx.send(Input::Data(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

/// Sends a message; a signal (SIGWINCH, SIGINT) interrupting the write is
/// not an error: what is queued is written on.
fn send(ws: &mut tungstenite::WebSocket<Conn>, m: Message) -> tungstenite::Result<()> {
    let mut r = ws.send(m);
    loop {
        match r {
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {
                r = ws.flush();
            }
            other => return other,
        }
    }
}

/// Carries a session: input from `input`, output to `stdout`/`stderr`,
/// the window's size (with a terminal) or Ctrl-C (without) passed on.
fn carry(
    mut ws: tungstenite::WebSocket<Conn>,
    input: Receiver<Input>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    tty: bool,
) -> Result<Exit> {
    ws.get_ref()
        .set_read_timeout(POLL)
        .context("setting up the session's socket")?;
    let mut input_open = true;
    let mut exit = Exit {
        code: None,
        error: None,
    };
    loop {
        // What there is to send, a bounded amount per turn.
        for _ in 0..64 {
            if !input_open {
                break;
            }
            match input.try_recv() {
                Ok(Input::Data(d)) => send(&mut ws, Message::Binary(d.into()))?,
                Ok(Input::Close) | Err(TryRecvError::Disconnected) => {
                    input_open = false;
                    let m = json!({"type": "stdin-close"});
                    send(&mut ws, Message::Text(m.to_string().into()))?;
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        if tty && WINCH.swap(false, Ordering::Relaxed) {
            if let Some((cols, rows)) = window_size() {
                let m = json!({"type": "resize", "cols": cols, "rows": rows});
                send(&mut ws, Message::Text(m.to_string().into()))?;
            }
        }
        if !tty && INTERRUPT.swap(false, Ordering::Relaxed) {
            let m = json!({"type": "signal", "signal": "INT"});
            send(&mut ws, Message::Text(m.to_string().into()))?;
        }
        match ws.read() {
            Ok(Message::Binary(b)) => {
                let (to, data): (&mut dyn Write, &[u8]) = match b.split_first() {
                    Some((2, rest)) => (&mut *stderr, rest),
                    Some((_, rest)) => (&mut *stdout, rest),
                    None => continue,
                };
                to.write_all(data)?;
                to.flush()?;
            }
            Ok(Message::Text(t)) => {
                let m: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                match m["type"].as_str() {
                    Some("exit") => exit.code = m["code"].as_u64().map(|c| c as u32),
                    Some("error") => {
                        exit.error = Some(m["message"].as_str().unwrap_or("failed").to_string())
                    }
                    _ => {}
                }
            }
            Ok(Message::Close(_)) => break,
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => break,
            Err(e) => {
                if exit.code.is_none() && exit.error.is_none() {
                    exit.error = Some(format!("the session broke: {e}"));
                }
                break;
            }
        }
    }
    if exit.code.is_none() && exit.error.is_none() {
        exit.error = Some("crtd ended the session without an exit status".into());
    }
    Ok(exit)
}

/// Runs `command` in the clone `ns/clone`: interactively (this terminal's
/// input, and a terminal if `tty`), or not. Returns how it ended.
pub fn run_in_clone(
    client: &Client,
    ns: &str,
    clone: &str,
    command: &[String],
    interactive: bool,
    tty: bool,
    env: &[String],
) -> Result<Exit> {
    if tty && !std::io::stdin().is_terminal() {
        bail!(
            "-t needs a terminal here (stdin is not one); drop -t, or run crtctl from a terminal"
        );
    }
    let size = if tty { window_size() } else { None };
    let (cols, rows) = size.unwrap_or((80, 24));
    let (cols_s, rows_s) = (cols.to_string(), rows.to_string());
    let mut query: Vec<(&str, &str)> = command.iter().map(|c| ("cmd", c.as_str())).collect();
    let term = std::env::var("TERM").ok().map(|t| format!("TERM={t}"));
    if tty {
        query.extend([("tty", "true"), ("cols", &cols_s), ("rows", &rows_s)]);
        if let Some(t) = &term {
            query.push(("env", t));
        }
    }
    for e in env {
        query.push(("env", e));
    }
    let path = format!("/v1/clones/{}/{}/exec", path_part(ns), path_part(clone));
    let ws = client.websocket(&path, &query)?;
    let (tx, rx) = std::sync::mpsc::sync_channel(64);
    if interactive {
        forward_stdin(tx);
    } else {
        let _ = tx.send(Input::Close);
    }
    if tty {
        catch(libc::SIGWINCH, on_winch);
    } else {
        catch(libc::SIGINT, on_interrupt);
    }
    let raw = if tty { Some(RawMode::enter()?) } else { None };
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let exit = carry(ws, rx, &mut out, &mut err, tty);
    drop(raw);
    exit
}

pub fn exec(a: ExecArgs, server: &ServerArgs) -> Result<ExitCode> {
    let client = Client::resolve(server)?;
    let ns = namespace_of(&client, a.namespace.as_deref(), &a.clone)?;
    let exit = run_in_clone(
        &client,
        &ns,
        &a.clone,
        &a.command,
        a.interactive,
        a.tty,
        &a.env,
    )?;
    if let Some(e) = &exit.error {
        eprintln!("crtctl: {e}");
    }
    Ok(exit.status())
}

/// One side of `cp`.
#[derive(Debug, PartialEq)]
enum Place {
    Clone { name: String, path: String },
    Local(PathBuf),
    Stdio,
}

fn place(s: &str) -> Place {
    if s == "-" {
        return Place::Stdio;
    }
    // `CLONE:/path`; a local path with a colon is written `./a:b`.
    match s.split_once(':') {
        Some((name, path)) if !name.is_empty() && !name.contains('/') => Place::Clone {
            name: name.to_string(),
            path: path.to_string(),
        },
        _ => Place::Local(PathBuf::from(s)),
    }
}

/// A Write that hands what it is given to a channel (the tar stream sent).
struct ChannelWriter(SyncSender<Input>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .send(Input::Data(buf.to_vec()))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "session ended"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A Read over chunks from a channel (the tar stream received).
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.chunk = c;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A Write that passes chunks to a channel, for a reader on another thread.
struct ChunkSink(SyncSender<Vec<u8>>);

impl Write for ChunkSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.send(buf.to_vec()).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the local unpacking stopped",
            )
        })?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn cp(a: CpArgs, server: &ServerArgs) -> Result<ExitCode> {
    let (from, to) = (place(&a.from), place(&a.to));
    let client = Client::resolve(server)?;
    match (from, to) {
        (Place::Clone { name, path }, local @ (Place::Local(_) | Place::Stdio)) => {
            let ns = namespace_of(&client, a.namespace.as_deref(), &name)?;
            copy_out(&client, &ns, &name, &path, local)
        }
        (local @ (Place::Local(_) | Place::Stdio), Place::Clone { name, path }) => {
            let ns = namespace_of(&client, a.namespace.as_deref(), &name)?;
            copy_in(&client, &ns, &name, local, &path)
        }
        _ => bail!(
            "cp copies between a clone and here: one of {} and {} must be CLONE:PATH, the other a local path or -",
            escape::quote(a.from.as_bytes(), false),
            escape::quote(a.to.as_bytes(), false)
        ),
    }
}

fn absolute(path: &str) -> Result<&str> {
    if path.starts_with('/') {
        Ok(path)
    } else {
        bail!(
            "the path in the clone {} is not absolute; expected CLONE:/path",
            escape::quote(path.as_bytes(), false)
        )
    }
}

fn copy_out(client: &Client, ns: &str, clone: &str, path: &str, to: Place) -> Result<ExitCode> {
    let path = absolute(path)?;
    let url = format!("/v1/clones/{}/{}/archive", path_part(ns), path_part(clone));
    let ws = client.websocket(&url, &[("path", path)])?;
    // No input: the sender is dropped at once, so the clone's tar sees EOF.
    let (_, rx) = std::sync::mpsc::sync_channel(1);
    let mut errors = Vec::new();
    let exit = match to {
        Place::Stdio => {
            let mut out = std::io::stdout().lock();
            carry(ws, rx, &mut out, &mut errors, false)?
        }
        Place::Local(dest) => {
            let (chunks_tx, chunks_rx) = std::sync::mpsc::sync_channel(64);
            let unpack = {
                let dest = dest.clone();
                std::thread::spawn(move || {
                    unpack_here(
                        ChannelReader {
                            rx: chunks_rx,
                            chunk: Vec::new(),
                            at: 0,
                        },
                        &dest,
                    )
                })
            };
            let exit = carry(ws, rx, &mut ChunkSink(chunks_tx), &mut errors, false);
            let unpacked = unpack.join().map_err(|_| anyhow!("unpacking stopped"))?;
            match exit {
                Ok(exit) if exit.code == Some(0) && exit.error.is_none() => {
                    unpacked?;
                    exit
                }
                Ok(exit) => exit,
                // Writing failed: unpacking stopped first, and says why.
                Err(e) => return Err(unpacked.err().unwrap_or(e)),
            }
        }
        Place::Clone { .. } => unreachable!(),
    };
    finish(exit, &errors, "copying out of", ns, clone)
}

/// Unpacks the tar stream of one entry (what `crt-clone-tar create` sends)
/// as `dest`: into it if it is a directory, else as that name.
fn unpack_here(r: impl Read, dest: &Path) -> Result<()> {
    let into_dir = dest.is_dir();
    let parent = if into_dir {
        dest.to_path_buf()
    } else {
        match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    };
    let staging = tempdir_in(&parent)?;
    let mut archive = tar::Archive::new(r);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    let result = (|| -> Result<()> {
        archive
            .unpack(&staging)
            .with_context(|| format!("unpacking into {}", parent.display()))?;
        let mut top = std::fs::read_dir(&staging)?;
        let entry = top
            .next()
            .ok_or_else(|| anyhow!("the clone sent an empty archive"))??;
        let target = if into_dir {
            dest.join(entry.file_name())
        } else {
            dest.to_path_buf()
        };
        if target.is_dir() && entry.file_type()?.is_dir() {
            bail!(
                "{} exists already; copy into another place or remove it first",
                target.display()
            );
        }
        std::fs::rename(entry.path(), &target)
            .with_context(|| format!("moving the copy to {}", target.display()))?;
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}

fn tempdir_in(parent: &Path) -> Result<PathBuf> {
    for i in 0..100u32 {
        let p = parent.join(format!(".crtctl-cp-{}-{i}", std::process::id()));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", p.display())),
        }
    }
    bail!("no free temporary name in {}", parent.display())
}

fn copy_in(client: &Client, ns: &str, clone: &str, from: Place, dir: &str) -> Result<ExitCode> {
    let dir = absolute(dir)?;
    let url = format!("/v1/clones/{}/{}/archive", path_part(ns), path_part(clone));
    let (tx, rx) = std::sync::mpsc::sync_channel(64);
    let producer = match from {
        Place::Stdio => {
            forward_stdin(tx);
            None
        }
        Place::Local(src) => {
            let meta =
                std::fs::symlink_metadata(&src).with_context(|| format!("{}", src.display()))?;
            Some(std::thread::spawn(move || -> Result<()> {
                let mut b = tar::Builder::new(std::io::BufWriter::with_capacity(
                    64 * 1024,
                    ChannelWriter(tx.clone()),
                ));
                b.follow_symlinks(false);
                let name = src
                    .file_name()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("."));
                if meta.is_dir() {
                    b.append_dir_all(&name, &src)?;
                } else {
                    b.append_path_with_name(&src, &name)?;
                }
                b.into_inner()?.flush()?;
                let _ = tx.send(Input::Close);
                Ok(())
            }))
        }
        Place::Clone { .. } => unreachable!(),
    };
    let ws = client.websocket(&url, &[("path", dir), ("extract", "true")])?;
    let mut errors = Vec::new();
    let exit = carry(ws, rx, &mut std::io::sink(), &mut errors, false)?;
    if let Some(p) = producer {
        p.join()
            .map_err(|_| anyhow!("packing stopped"))?
            .context("packing the local files")?;
    }
    finish(exit, &errors, "copying into", ns, clone)
}

fn finish(exit: Exit, errors: &[u8], what: &str, ns: &str, clone: &str) -> Result<ExitCode> {
    match (exit.code, exit.error) {
        (Some(0), None) => Ok(ExitCode::SUCCESS),
        (_, Some(e)) => bail!("{what} the clone {ns}/{clone}: {e}"),
        (code, None) => bail!(
            "{what} the clone {ns}/{clone} failed (exit {}): {}",
            code.map_or("?".to_string(), |c| c.to_string()),
            escape::escape(String::from_utf8_lossy(errors).trim().as_bytes())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp_places_are_a_clone_path_a_local_path_or_stdio() {
        assert_eq!(
            place("web-debug:/etc/hosts"),
            Place::Clone {
                name: "web-debug".into(),
                path: "/etc/hosts".into()
            }
        );
        assert_eq!(place("./a:b"), Place::Local(PathBuf::from("./a:b")));
        assert_eq!(place("/tmp/x"), Place::Local(PathBuf::from("/tmp/x")));
        assert_eq!(place("-"), Place::Stdio);
    }

    #[test]
    fn an_archive_of_one_entry_lands_as_the_name_given_or_inside_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o640);
        h.set_cksum();
        b.append_data(&mut h, "hosts", &b"hello"[..]).unwrap();
        let tar = b.into_inner().unwrap();

        let as_name = dir.path().join("copy");
        unpack_here(&tar[..], &as_name).unwrap();
        assert_eq!(std::fs::read(&as_name).unwrap(), b"hello");

        unpack_here(&tar[..], dir.path()).unwrap();
        assert_eq!(std::fs::read(dir.path().join("hosts")).unwrap(), b"hello");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 2, "no staging directory left: {left:?}");
    }

    #[test]
    fn exit_status_is_the_commands_else_125() {
        let e = |code, error: Option<&str>| Exit {
            code,
            error: error.map(str::to_string),
        };
        assert_eq!(e(Some(3), None).status(), ExitCode::from(3));
        assert_eq!(e(None, Some("x")).status(), ExitCode::from(125));
    }
}
