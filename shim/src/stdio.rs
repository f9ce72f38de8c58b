//! A process's stdio. containerd hands us fifo paths (or `file://` URIs);
//! the container gets pipes (or a pty), and copy threads move bytes between
//! the two, so the container never blocks on a client that went away and
//! never dies of SIGPIPE.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::runtime::ChildStdio;

/// Where console sockets are made (short paths: sun_path holds 108 bytes).
pub const CONSOLE_DIR: &str = "/run/crt/console";

/// The stdio containerd asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

enum Dest {
    Null,
    Fifo(PathBuf),
    File(PathBuf),
}

fn parse_dest(uri: &str) -> io::Result<Dest> {
    if uri.is_empty() {
        return Ok(Dest::Null);
    }
    if let Some(path) = uri.strip_prefix("file://") {
        return Ok(Dest::File(PathBuf::from(path)));
    }
    if let Some(path) = uri.strip_prefix("fifo://") {
        return Ok(Dest::Fifo(PathBuf::from(path)));
    }
    if uri.contains("://") {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("stdio {uri:?}: only fifos and file:// are supported (binary:// log drivers are not)"),
        ));
    }
    let path = PathBuf::from(uri);
    match fs::metadata(&path) {
        Ok(m) if m.file_type().is_fifo() => Ok(Dest::Fifo(path)),
        Ok(_) => Ok(Dest::File(path)),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("stdio {}: {e}", path.display()),
        )),
    }
}

/// Opens an output destination. Fifos are opened read-write: the open never
/// blocks on a missing reader and a reader going away never turns into
/// EPIPE (bytes wait in the fifo, as with containerd's own shim).
fn open_output(uri: &str) -> io::Result<Option<File>> {
    match parse_dest(uri)? {
        Dest::Null => Ok(None),
        Dest::Fifo(p) => OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&p)
            .map(Some)
            .map_err(|e| io::Error::new(e.kind(), format!("open fifo {}: {e}", p.display()))),
        Dest::File(p) => {
            if let Some(dir) = p.parent() {
                fs::create_dir_all(dir)?;
            }
            OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o640)
                .custom_flags(libc::O_CLOEXEC)
                .open(&p)
                .map(Some)
                .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", p.display())))
        }
    }
}

/// Opens the stdin fifo for reading without waiting for a writer, plus a
/// writer of our own that keeps the reader from seeing EOF until CloseIO.
fn open_stdin(uri: &str) -> io::Result<Option<(File, File)>> {
    let path = match parse_dest(uri)? {
        Dest::Null => return Ok(None),
        Dest::Fifo(p) | Dest::File(p) => p,
    };
    let reader = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("open stdin {}: {e}", path.display())))?;
    let keepalive = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("open stdin {}: {e}", path.display())))?;
    set_blocking(&reader)?;
    Ok(Some((reader, keepalive)))
}

fn set_blocking(f: &File) -> io::Result<()> {
    // SAFETY: fcntl on an fd we own.
    let flags = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A pipe; both ends close-on-exec (the runtime's copy is dup2'ed onto 0-2).
fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

/// Receives what a container writes, a line at a time (its log).
pub trait LineSink: Send + Sync {
    /// `stream`: 1 stdout, 2 stderr. `cut`: the line went on beyond this piece.
    fn line(&self, stream: u8, line: &[u8], cut: bool);
    /// A stream began feeding this sink.
    fn opened(&self) {}
    /// A stream ended: every line it had was given to [`LineSink::line`].
    fn closed(&self) {}
}

/// One output stream feeding a [`LineSink`]: open from creation until dropped.
pub struct Tap {
    sink: Arc<dyn LineSink>,
    stream: u8,
}

impl Tap {
    pub fn new(sink: Arc<dyn LineSink>, stream: u8) -> Self {
        sink.opened();
        Tap { sink, stream }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.sink.closed();
    }
}

/// Longest log line kept in one piece; longer lines come in several.
pub const LOG_LINE_MAX: usize = 4096;

/// Splits a byte stream into lines for a [`LineSink`].
struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    fn feed(&mut self, mut data: &[u8], sink: &dyn LineSink, stream: u8) {
        while !data.is_empty() {
            let room = LOG_LINE_MAX - self.buf.len();
            match data.iter().take(room).position(|&b| b == b'\n') {
                Some(i) => {
                    self.buf.extend_from_slice(&data[..i]);
                    self.emit(sink, stream, false);
                    data = &data[i + 1..];
                }
                None if data.len() < room => {
                    self.buf.extend_from_slice(data);
                    return;
                }
                None => {
                    self.buf.extend_from_slice(&data[..room]);
                    self.emit(sink, stream, true);
                    data = &data[room..];
                }
            }
        }
    }

    fn emit(&mut self, sink: &dyn LineSink, stream: u8, cut: bool) {
        let line = self.buf.strip_suffix(b"\r").unwrap_or(&self.buf);
        sink.line(stream, line, cut);
        self.buf.clear();
    }

    fn finish(&mut self, sink: &dyn LineSink, stream: u8) {
        if !self.buf.is_empty() {
            self.emit(sink, stream, false);
        }
    }
}

/// Counts the output copy threads of a process, so Delete can wait until
/// everything the process wrote has reached the client.
#[derive(Default)]
pub struct Copies {
    running: Mutex<usize>,
    done: Condvar,
    /// Bytes copied, for tests and diagnostics.
    pub bytes: AtomicU64,
}

impl Copies {
    fn spawn(self: &Arc<Self>, name: &str, src: File, dst: Option<File>, tap: Option<Tap>) {
        *self.running.lock().unwrap() += 1;
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                copy(src, dst, &me.bytes, tap);
                let mut n = me.running.lock().unwrap();
                *n -= 1;
                me.done.notify_all();
            });
        if let Err(e) = spawned {
            log::error!("cannot start stdio copy thread {name}: {e}");
            *self.running.lock().unwrap() -= 1;
        }
    }

    /// Waits until every output copy has finished; false on timeout.
    pub fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut n = self.running.lock().unwrap();
        while *n > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            n = self.done.wait_timeout(n, left).unwrap().0;
        }
        true
    }
}

/// Copies until the source ends. A destination that fails is dropped but the
/// source is still drained, so the container never blocks on us.
fn copy(mut src: File, mut dst: Option<File>, bytes: &AtomicU64, tap: Option<Tap>) {
    let mut buf = vec![0u8; 32 * 1024];
    let mut lines = Lines { buf: Vec::new() };
    loop {
        match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                bytes.fetch_add(n as u64, Ordering::Relaxed);
                if let Some(t) = &tap {
                    lines.feed(&buf[..n], &*t.sink, t.stream);
                }
                if let Some(d) = dst.as_mut() {
                    if d.write_all(&buf[..n]).is_err() {
                        dst = None;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // EIO: the pty's last slave closed.
            Err(_) => break,
        }
    }
    if let Some(t) = &tap {
        lines.finish(&*t.sink, t.stream);
    }
}

/// The shim's side of one process's stdio.
pub struct ProcessIo {
    pub copies: Arc<Copies>,
    stdin_keepalive: Mutex<Option<File>>,
    console: Mutex<Option<File>>,
}

impl ProcessIo {
    fn new() -> Self {
        ProcessIo {
            copies: Arc::new(Copies::default()),
            stdin_keepalive: Mutex::new(None),
            console: Mutex::new(None),
        }
    }

    /// A process with no stdio at all.
    pub fn none() -> Self {
        ProcessIo::new()
    }

    /// CloseIO: the client has no more input. The container sees EOF once
    /// the client's own writer is closed too.
    pub fn close_stdin(&self) {
        self.stdin_keepalive.lock().unwrap().take();
    }

    /// ResizePty.
    pub fn resize(&self, width: u32, height: u32) -> io::Result<()> {
        let console = self.console.lock().unwrap();
        let Some(master) = console.as_ref() else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the process has no terminal",
            ));
        };
        let ws = libc::winsize {
            ws_row: height as u16,
            ws_col: width as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
        if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The process is gone: wait (bounded) for its output to drain, then
    /// release our ends.
    pub fn finish(&self, timeout: Duration) -> bool {
        let drained = self.copies.wait(timeout);
        self.close_stdin();
        self.console.lock().unwrap().take();
        drained
    }
}

/// Sets up pipes for a process without a terminal: returns what the runtime
/// gives the process, and our side with its copy threads already running.
/// `log`: where the lines the process writes are recorded, if anywhere.
pub fn setup_pipes(
    paths: &StdioPaths,
    label: &str,
    log: Option<Arc<dyn LineSink>>,
) -> io::Result<(ChildStdio, ProcessIo)> {
    let pio = ProcessIo::new();
    let mut child = ChildStdio::null();

    if let Some((reader, keepalive)) = open_stdin(&paths.stdin)? {
        let (r, w) = pipe()?;
        child.stdin = Stdio::from(r);
        *pio.stdin_keepalive.lock().unwrap() = Some(keepalive);
        let name = format!("stdin-{label}");
        std::thread::Builder::new().name(name).spawn(move || {
            copy(reader, Some(w), &AtomicU64::new(0), None);
        })?;
    }
    // A traced process's output is logged even when no client reads it.
    let out = open_output(&paths.stdout)?;
    if out.is_some() || log.is_some() {
        let (r, w) = pipe()?;
        child.stdout = Stdio::from(w);
        let tap = log.clone().map(|s| Tap::new(s, 1));
        pio.copies.spawn(&format!("stdout-{label}"), r, out, tap);
    }
    let err = open_output(&paths.stderr)?;
    if err.is_some() || log.is_some() {
        let (r, w) = pipe()?;
        child.stderr = Stdio::from(w);
        let tap = log.clone().map(|s| Tap::new(s, 2));
        pio.copies.spawn(&format!("stderr-{label}"), r, err, tap);
    }
    Ok((child, pio))
}

/// Wires a pty master received from the runtime to the client's fifos.
pub fn attach_console(
    master: File,
    paths: &StdioPaths,
    label: &str,
    log: Option<Arc<dyn LineSink>>,
) -> io::Result<ProcessIo> {
    let pio = ProcessIo::new();
    if let Some((reader, keepalive)) = open_stdin(&paths.stdin)? {
        let to_master = master.try_clone()?;
        *pio.stdin_keepalive.lock().unwrap() = Some(keepalive);
        std::thread::Builder::new()
            .name(format!("stdin-{label}"))
            .spawn(move || copy(reader, Some(to_master), &AtomicU64::new(0), None))?;
    }
    let out = open_output(&paths.stdout)?;
    pio.copies.spawn(
        &format!("console-{label}"),
        master.try_clone()?,
        out,
        log.map(|s| Tap::new(s, 1)),
    );
    *pio.console.lock().unwrap() = Some(master);
    Ok(pio)
}

/// A socket the runtime sends the pty master to (`--console-socket`).
pub struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleSocket {
    pub fn new() -> io::Result<Self> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(CONSOLE_DIR)?;
        let path = Path::new(CONSOLE_DIR).join(format!(
            "{}-{}.sock",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        Ok(ConsoleSocket { listener, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Receives the master the runtime sent (it has already connected by the
    /// time the runtime command returns).
    pub fn receive(&self, timeout: Duration) -> io::Result<File> {
        self.listener.set_nonblocking(true)?;
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match self.listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the runtime did not send the terminal",
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(e),
            }
        };
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(timeout))?;
        let mut buf = [0u8; 4096];
        let mut fds: Vec<OwnedFd> = Vec::new();
        crt_seccomp_notify::handoff::recv_with_fds(&stream, &mut buf, &mut fds)?;
        let fd = fds.into_iter().next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "the runtime's console message carried no fd",
            )
        })?;
        Ok(File::from(fd))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn output_written_to_the_pipe_reaches_the_fifo_reader() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        mkfifo(&out);
        let reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&out)
            .unwrap();
        let paths = StdioPaths {
            stdout: out.to_string_lossy().into(),
            ..Default::default()
        };
        let (child, pio) = setup_pipes(&paths, "t", None).unwrap();
        // Stand in for the container: write through the child's stdout end.
        let ChildStdio { stdout, .. } = child;
        let mut cmd = std::process::Command::new("/bin/echo");
        cmd.arg("hello").stdout(stdout);
        let (_c, rx) = crate::reaper::reaper().spawn(&mut cmd).unwrap();
        drop(cmd);
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 0);
        assert!(pio.finish(Duration::from_secs(5)));
        set_blocking(&reader).unwrap();
        let mut got = String::new();
        // Our read-write fd is closed by now, so the reader sees EOF.
        (&reader).read_to_string(&mut got).unwrap();
        assert_eq!(got, "hello\n");
    }

    #[test]
    fn a_file_uri_appends_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("logs/out.log");
        let f = open_output(&format!("file://{}", log.display()))
            .unwrap()
            .unwrap();
        (&f).write_all(b"x").unwrap();
        assert_eq!(fs::read(&log).unwrap(), b"x");
    }

    #[test]
    fn an_unsupported_scheme_is_a_clear_error() {
        let e = open_output("binary:///usr/bin/logger").unwrap_err();
        assert!(e.to_string().contains("binary://"), "{e}");
    }

    #[test]
    fn stdin_reaches_eof_only_after_close_io() {
        let dir = tempfile::tempdir().unwrap();
        let inp = dir.path().join("in");
        mkfifo(&inp);
        let paths = StdioPaths {
            stdin: inp.to_string_lossy().into(),
            ..Default::default()
        };
        let (child, pio) = setup_pipes(&paths, "t", None).unwrap();
        let ChildStdio { stdin, .. } = child;
        // The client writes and closes its end.
        {
            let mut w = OpenOptions::new().write(true).open(&inp).unwrap();
            w.write_all(b"abc").unwrap();
        }
        let mut cmd = std::process::Command::new("/bin/cat");
        let outfile = dir.path().join("got");
        cmd.stdin(stdin).stdout(File::create(&outfile).unwrap());
        let (_c, rx) = crate::reaper::reaper().spawn(&mut cmd).unwrap();
        drop(cmd);
        // Still open: our keep-alive writer holds the fifo.
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
        pio.close_stdin();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 0);
        assert_eq!(fs::read(&outfile).unwrap(), b"abc");
    }

    #[derive(Default)]
    struct Collect {
        lines: Mutex<Vec<(u8, Vec<u8>, bool)>>,
        open: Mutex<i32>,
    }

    impl LineSink for Collect {
        fn line(&self, stream: u8, line: &[u8], cut: bool) {
            self.lines
                .lock()
                .unwrap()
                .push((stream, line.to_vec(), cut));
        }
        fn opened(&self) {
            *self.open.lock().unwrap() += 1;
        }
        fn closed(&self) {
            *self.open.lock().unwrap() -= 1;
        }
    }

    #[test]
    fn lines_are_split_across_reads_and_long_lines_are_cut() {
        let sink = Collect::default();
        let mut lines = Lines { buf: Vec::new() };
        lines.feed(b"hel", &sink, 1);
        lines.feed(b"lo\r\nwor", &sink, 1);
        lines.feed(b"ld\n\n", &sink, 1);
        let long = vec![b'x'; LOG_LINE_MAX + 10];
        lines.feed(&long, &sink, 2);
        lines.feed(b"\ntail", &sink, 2);
        lines.finish(&sink, 2);
        let got = sink.lines.into_inner().unwrap();
        assert_eq!(
            got,
            vec![
                (1, b"hello".to_vec(), false),
                (1, b"world".to_vec(), false),
                (1, b"".to_vec(), false),
                (2, vec![b'x'; LOG_LINE_MAX], true),
                (2, vec![b'x'; 10], false),
                (2, b"tail".to_vec(), false),
            ]
        );
    }

    #[test]
    fn a_tapped_stream_gives_every_line_then_closes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        mkfifo(&out);
        // The client's end is open before the shim's, as containerd's is: a
        // fifo whose last writer closed before any reader came would lose what
        // it held, and a reader opening after that would wait forever.
        let client = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&out)
            .unwrap();
        set_blocking(&client).unwrap();
        let paths = StdioPaths {
            stdout: out.to_string_lossy().into(),
            ..Default::default()
        };
        let sink = Arc::new(Collect::default());
        let (child, pio) = setup_pipes(&paths, "t", Some(sink.clone())).unwrap();
        // Read once the shim's end is open (with no writer, a read is EOF).
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            std::io::Read::read_to_end(&mut &client, &mut got).unwrap();
            got
        });
        // Both streams are logged, though the client reads only stdout.
        assert_eq!(*sink.open.lock().unwrap(), 2);
        let ChildStdio { stdout, stderr, .. } = child;
        drop(stderr);
        let mut writer = std::process::Command::new("/bin/sh")
            .args(["-c", "echo one; printf 'two\\nthree'"])
            .stdout(stdout)
            .spawn()
            .unwrap();
        assert!(pio.copies.wait(Duration::from_secs(10)));
        // Its status is not checked: the lifecycle tests' reaper, in this
        // same test process, may take it first (ECHILD). The output is the proof.
        let _ = writer.wait();
        assert_eq!(reader.join().unwrap(), b"one\ntwo\nthree");
        assert_eq!(*sink.open.lock().unwrap(), 0, "the stream closed");
        let got: Vec<Vec<u8>> = sink
            .lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| l.1.clone())
            .collect();
        assert_eq!(
            got,
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
    }
}
