//! The OCI runtime's listener hand-off: runc, crun and youki connect to the
//! `linux.seccomp.listenerPath` socket, send one JSON `ContainerProcessState`
//! and the listener fd (SCM_RIGHTS), for the init process and for every exec.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The fd name the runtime-spec gives the seccomp listener in `fds`.
pub const SECCOMP_FD_NAME: &str = "seccompFd";

/// Largest message accepted: a state with many annotations is a few KiB.
pub const MAX_MESSAGE: usize = 1 << 20;

/// `specs.ContainerProcessState`, the fields we use.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ContainerProcessState {
    #[serde(rename = "ociVersion", default)]
    pub oci_version: String,
    #[serde(default)]
    pub fds: Vec<String>,
    /// The process the fd belongs to (init or exec), in the runtime's pid
    /// namespace (crun may report its own view).
    #[serde(default)]
    pub pid: i64,
    #[serde(default)]
    pub metadata: Option<String>,
    pub state: ContainerState,
}

/// `specs.State`, the fields we use.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ContainerState {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub pid: Option<i64>,
    #[serde(default)]
    pub bundle: Option<String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// Why a hand-off message was refused. Every variant carries the fds that
/// arrived with it: the caller must not drop a real listener on the floor
/// (closing the last copy makes the container's notified syscalls fail).
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    #[error("listener hand-off: {0}")]
    Io(#[from] io::Error),
    #[error("listener hand-off: the peer closed after {got} bytes without a complete message")]
    Incomplete { got: usize, fds: Vec<OwnedFd> },
    #[error("listener hand-off: no complete message within {0:?}")]
    Timeout(Duration, Vec<OwnedFd>),
    #[error("listener hand-off: message larger than {MAX_MESSAGE} bytes")]
    TooLarge(Vec<OwnedFd>),
    #[error("listener hand-off: malformed ContainerProcessState: {error}")]
    Malformed {
        error: serde_json::Error,
        fds: Vec<OwnedFd>,
    },
    #[error("listener hand-off: the message names no {SECCOMP_FD_NAME} among fds {names:?} ({received} fds received)")]
    NoSeccompFd {
        names: Vec<String>,
        received: usize,
        fds: Vec<OwnedFd>,
    },
}

impl HandoffError {
    /// The fds that arrived with the refused message.
    pub fn into_fds(self) -> Vec<OwnedFd> {
        match self {
            HandoffError::Io(_) => Vec::new(),
            HandoffError::Incomplete { fds, .. }
            | HandoffError::Timeout(_, fds)
            | HandoffError::TooLarge(fds)
            | HandoffError::Malformed { fds, .. }
            | HandoffError::NoSeccompFd { fds, .. } => fds,
        }
    }
}

/// One accepted hand-off: the state and the seccomp listener fd.
#[derive(Debug)]
pub struct Handoff {
    pub state: ContainerProcessState,
    pub seccomp_fd: OwnedFd,
    /// Any other fds the runtime sent along (closed when dropped).
    pub other_fds: Vec<OwnedFd>,
}

/// The socket the runtime connects to.
#[derive(Debug)]
pub struct HandoffSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl HandoffSocket {
    /// Binds `path`, replacing a stale socket. The parent directory is
    /// created 0700 and the socket is made 0600: only root may hand us fds.
    pub fn bind(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = UnixListener::bind(path)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        Ok(HandoffSocket {
            listener,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the next connection.
    pub fn accept(&self) -> io::Result<UnixStream> {
        self.listener.accept().map(|(s, _)| s)
    }

    /// The listening socket, e.g. to wake a blocked `accept` by shutting it down.
    pub fn listener(&self) -> &UnixListener {
        &self.listener
    }
}

impl Drop for HandoffSocket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Reads one hand-off from a connection: as soon as a complete JSON object
/// has arrived (never waiting for EOF — the runtime may keep the connection
/// open while its child is blocked in a notified syscall that only we can
/// answer), within `timeout` overall.
pub fn receive(stream: &UnixStream, timeout: Duration) -> Result<Handoff, HandoffError> {
    let deadline = std::time::Instant::now() + timeout;
    let mut data: Vec<u8> = Vec::with_capacity(4096);
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(HandoffError::Timeout(timeout, fds));
        }
        stream.set_read_timeout(Some(left))?;
        let n = match recv_with_fds(stream, &mut chunk, &mut fds) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(HandoffError::Timeout(timeout, fds))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(HandoffError::Io(e)),
        };
        if n == 0 {
            if data.iter().all(u8::is_ascii_whitespace) || data.is_empty() {
                return Err(HandoffError::Incomplete {
                    got: data.len(),
                    fds,
                });
            }
            // EOF: whatever we have must parse now.
            return finish(&data, fds);
        }
        data.extend_from_slice(&chunk[..n]);
        if data.len() > MAX_MESSAGE {
            return Err(HandoffError::TooLarge(fds));
        }
        match serde_json::from_slice::<ContainerProcessState>(&data) {
            Ok(state) => return split_fds(state, fds),
            Err(e) if e.is_eof() => continue,
            Err(error) => return Err(HandoffError::Malformed { error, fds }),
        }
    }
}

fn finish(data: &[u8], fds: Vec<OwnedFd>) -> Result<Handoff, HandoffError> {
    match serde_json::from_slice::<ContainerProcessState>(data) {
        Ok(state) => split_fds(state, fds),
        Err(error) if error.is_eof() => Err(HandoffError::Incomplete {
            got: data.len(),
            fds,
        }),
        Err(error) => Err(HandoffError::Malformed { error, fds }),
    }
}

fn split_fds(state: ContainerProcessState, mut fds: Vec<OwnedFd>) -> Result<Handoff, HandoffError> {
    let index = state.fds.iter().position(|n| n == SECCOMP_FD_NAME);
    match index {
        Some(i) if i < fds.len() => {
            let seccomp_fd = fds.remove(i);
            Ok(Handoff {
                state,
                seccomp_fd,
                other_fds: fds,
            })
        }
        _ => Err(HandoffError::NoSeccompFd {
            names: state.fds.clone(),
            received: fds.len(),
            fds,
        }),
    }
}

/// `recvmsg` with room for a few fds; received fds (close-on-exec) are
/// appended to `fds`. Returns the bytes read (0 at EOF).
pub fn recv_with_fds(
    stream: &UnixStream,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    const MAX_FDS: usize = 8;
    // u64 elements keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 32];
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<i32>()) as u32) } as usize;
    debug_assert!(space <= std::mem::size_of_val(&control));
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid starting value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg points at our iovec and control buffer, both live and sized
    // as declared.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: walking the control messages the kernel just wrote into our
    // buffer, with the CMSG_* accessors that bound-check against msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<i32>();
                let payload = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..payload / std::mem::size_of::<i32>() {
                    let fd = std::ptr::read_unaligned(data.add(i));
                    if fd >= 0 {
                        fds.push(OwnedFd::from_raw_fd(fd));
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(n as usize)
}

/// Sends `payload` with `fd` attached, as a runtime does. Used by tests and
/// by tools that simulate a runtime.
pub fn send_with_fd(
    stream: &UnixStream,
    payload: &[u8],
    fd: Option<&impl AsRawFd>,
) -> io::Result<()> {
    let mut control = [0u64; 4];
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid starting value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        // SAFETY: building one SCM_RIGHTS message inside our aligned control
        // buffer, which is larger than CMSG_SPACE(sizeof(int)).
        unsafe {
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>(), fd.as_raw_fd());
        }
    }
    // SAFETY: msg points at live buffers for the duration of the call.
    let n = unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if (n as usize) < payload.len() {
        use std::io::Write;
        let mut s = stream;
        s.write_all(&payload[n as usize..])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const STATE: &str = r#"{"ociVersion":"1.0.2","fds":["seccompFd"],"pid":4242,"metadata":"c1","state":{"ociVersion":"1.0.2","id":"c1","status":"creating","pid":4242,"bundle":"/b","annotations":{"crt.dev/trace":"openat"}}}"#;

    fn pair() -> (UnixStream, UnixStream) {
        UnixStream::pair().unwrap()
    }

    #[test]
    fn a_runtime_message_with_its_fd_is_received() {
        let (a, b) = pair();
        let f = tempfile::tempfile().unwrap();
        send_with_fd(&a, STATE.as_bytes(), Some(&f)).unwrap();
        let h = receive(&b, Duration::from_secs(2)).unwrap();
        assert_eq!(h.state.state.id, "c1");
        assert_eq!(h.state.pid, 4242);
        assert_eq!(h.state.metadata.as_deref(), Some("c1"));
        assert_eq!(h.state.state.annotations["crt.dev/trace"], "openat");
    }

    #[test]
    fn a_message_split_over_writes_is_received_without_waiting_for_eof() {
        let (a, b) = pair();
        let f = tempfile::tempfile().unwrap();
        let (head, tail) = STATE.as_bytes().split_at(20);
        send_with_fd(&a, head, Some(&f)).unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            (&a).write_all(tail).unwrap();
            // Keep the connection open: the receiver must not need EOF.
            std::thread::sleep(Duration::from_millis(500));
            drop(a);
        });
        let started = std::time::Instant::now();
        let h = receive(&b, Duration::from_secs(5)).unwrap();
        assert!(started.elapsed() < Duration::from_millis(450));
        assert_eq!(h.state.state.id, "c1");
        writer.join().unwrap();
    }

    #[test]
    fn garbage_is_refused_and_the_fd_handed_back() {
        let (a, b) = pair();
        let f = tempfile::tempfile().unwrap();
        send_with_fd(&a, b"{not json", Some(&f)).unwrap();
        let err = receive(&b, Duration::from_secs(2)).unwrap_err();
        assert!(err.to_string().contains("malformed"), "{err}");
        assert_eq!(err.into_fds().len(), 1);
    }

    #[test]
    fn a_message_without_an_fd_is_refused() {
        let (a, b) = pair();
        send_with_fd(&a, STATE.as_bytes(), None::<&std::fs::File>).unwrap();
        let err = receive(&b, Duration::from_secs(2)).unwrap_err();
        assert!(
            matches!(err, HandoffError::NoSeccompFd { received: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_silent_peer_times_out() {
        let (_a, b) = pair();
        let err = receive(&b, Duration::from_millis(100)).unwrap_err();
        assert!(matches!(err, HandoffError::Timeout(..)), "{err}");
    }

    #[test]
    fn a_peer_that_hangs_up_early_is_incomplete() {
        let (a, b) = pair();
        (&a).write_all(b"{\"fds\":").unwrap();
        drop(a);
        let err = receive(&b, Duration::from_secs(2)).unwrap_err();
        assert!(matches!(err, HandoffError::Incomplete { .. }), "{err}");
    }

    #[test]
    fn the_socket_is_private_to_root() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/listener.sock");
        let s = HandoffSocket::bind(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        drop(s);
        assert!(!path.exists());
    }
}
