//! A small HTTP/1.1 server for crtd's JSON API.
//!
//! One accept thread per listener and one thread per connection; requests are parsed with
//! `httparse`, bodies are framed by `Content-Length` only (chunked request bodies are
//! answered 501), and every protocol error is answered with a JSON body
//! `{"error": "...", "status": N}` before the connection is closed.
//!
//! Robustness rules:
//! - at most [`Limits::max_connections`] connections are served at once; the accept thread
//!   answers the others `503` without blocking and closes them, so a flood of idle
//!   connections cannot exhaust threads;
//! - a fresh connection must start its first request within [`Limits::read_timeout`], a
//!   kept-alive one its next request within [`Limits::keep_alive`]; once a request has
//!   started, its head and body must arrive within `read_timeout` (else `408`);
//! - every byte goes out through `send(2)` with `MSG_NOSIGNAL`, so a client that went away
//!   never raises `SIGPIPE`, and with a send timeout of `read_timeout`, so a client that stops
//!   reading cannot pin a thread forever;
//! - a panicking handler (or stream closure) is caught: `500` if nothing was sent yet, and the
//!   connection is closed.
//!
//! Streamed bodies ([`Body::Stream`], for server-sent events) are written unbuffered and
//! delimited by the end of the connection. A closure only learns that its client left when a
//! write fails, so a stream that may stay quiet for long should write a heartbeat (an SSE
//! comment line such as `": ping\n\n"`) every few seconds.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, warn};

/// The other end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A TCP client and its address.
    Tcp(SocketAddr),
    /// A unix-socket client, as the kernel vouches for it (`SO_PEERCRED`, taken when it
    /// connected).
    Unix { uid: u32, pid: i32 },
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => write!(f, "{addr}"),
            Peer::Unix { uid, pid } => write!(f, "unix(uid={uid},pid={pid})"),
        }
    }
}

/// A parsed request.
#[derive(Clone, Debug)]
pub struct Request {
    /// "GET", "POST", ... as sent (HTTP methods are case-sensitive).
    pub method: String,
    /// Percent-decoded path without the query, e.g. "/v1/events". An absolute-form target
    /// (`http://host/p`) is reduced to its path; `OPTIONS *` gives "*".
    pub path: String,
    /// Percent-decoded (`+` as space) query pairs, in order; `?flag` gives `("flag", "")`.
    pub query: Vec<(String, String)>,
    /// Header names lower-cased, values trimmed, in order (repeated headers stay repeated).
    pub headers: Vec<(String, String)>,
    /// (No endpoint takes a body yet; the server still reads and bounds it.)
    #[allow(dead_code)]
    pub body: Vec<u8>,
    pub peer: Peer,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of query parameter `key`, in order.
    pub fn query_all(&self, key: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first value of query parameter `key`.
    pub fn query_one(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The token of `Authorization: Bearer <token>` (the scheme is case-insensitive).
    pub fn bearer_token(&self) -> Option<&str> {
        let value = self.header("authorization")?.trim();
        let (scheme, token) = value.split_once([' ', '\t'])?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    }
}

/// A response body.
pub enum Body {
    Bytes(Vec<u8>),
    /// Streamed until the closure returns (server-sent events): the response has no
    /// Content-Length and the connection closes afterwards. The writer flushes each write.
    /// The closure must return promptly once a write fails (client gone).
    Stream(StreamFn),
}

/// The closure of a [`Body::Stream`].
pub type StreamFn = Box<dyn FnOnce(&mut dyn std::io::Write) -> std::io::Result<()> + Send>;

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Body::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// A response. `Content-Length` and `Connection` are the server's business: if the handler
/// sets them they are dropped (a handler's `Connection: close` is honoured, though).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Response {
    /// `value` as JSON, `Content-Type: application/json`.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        // Serializing a `Value` cannot fail (its map keys are strings).
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
        Response::text(status, "application/json", body)
    }

    pub fn text(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".to_owned(), content_type.to_owned())],
            body: Body::Bytes(body.into()),
        }
    }

    /// `{"error": message, "status": status}`.
    pub fn error(status: u16, message: &str) -> Response {
        Response::json(
            status,
            &serde_json::json!({ "error": message, "status": status }),
        )
    }

    /// A `200` streamed response (see [`Body::Stream`]); `Cache-Control: no-cache` is added
    /// unless the handler sets its own.
    pub fn stream(
        content_type: &str,
        f: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()> + Send + 'static,
    ) -> Response {
        Response {
            status: 200,
            headers: vec![("Content-Type".to_owned(), content_type.to_owned())],
            body: Body::Stream(Box::new(f)),
        }
    }

    /// Sets header `name`, replacing any header of that name (case-insensitive) already set.
    /// To send a header several times, push to `headers` directly.
    #[allow(dead_code)]
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// Answers requests. Runs on the connection's thread; may block (other connections are
/// unaffected) and may panic (the client gets a 500).
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: Request) -> Response;
}

impl<F: Fn(Request) -> Response + Send + Sync + 'static> Handler for F {
    fn handle(&self, req: Request) -> Response {
        self(req)
    }
}

/// Resource limits of a server. Durations are clamped to at least 1 ms.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections served at once; the others are answered 503 and closed.
    pub max_connections: usize,
    /// Bytes of the request line and headers (431 beyond).
    pub max_header_bytes: usize,
    /// Bytes of a request body (413 beyond).
    pub max_body_bytes: usize,
    /// Time for a started request to arrive whole (408 beyond), for a fresh connection to
    /// start its first request, and for each send to make progress.
    pub read_timeout: Duration,
    /// Time a kept-alive connection may stay idle between requests.
    pub keep_alive: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 256,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 1024 * 1024,
            read_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(60),
        }
    }
}

/// Accepts connections on a background thread; one thread per connection.
pub fn serve_tcp(
    listener: TcpListener,
    handler: Arc<dyn Handler>,
    limits: Limits,
) -> io::Result<JoinHandle<()>> {
    listener.set_nonblocking(false)?;
    spawn_acceptor(listener, handler, limits)
}

/// Accepts connections on a background thread; one thread per connection. Requests carry
/// [`Peer::Unix`] with the client's credentials.
pub fn serve_unix(
    listener: UnixListener,
    handler: Arc<dyn Handler>,
    limits: Limits,
) -> io::Result<JoinHandle<()>> {
    listener.set_nonblocking(false)?;
    spawn_acceptor(listener, handler, limits)
}

// ---------------------------------------------------------------------------------------
// Sockets

/// What the server needs of a connected stream socket.
trait Socket: Read + AsFd + Send + 'static {
    fn peer(&self) -> io::Result<Peer>;
    /// Per-connection socket options (blocking mode, TCP_NODELAY).
    fn configure(&self) -> io::Result<()>;
    fn recv_timeout(&self, d: Duration) -> io::Result<()>;
    fn send_timeout(&self, d: Duration) -> io::Result<()>;
    fn shut(&self, how: Shutdown) -> io::Result<()>;
}

impl Socket for TcpStream {
    fn peer(&self) -> io::Result<Peer> {
        self.peer_addr().map(Peer::Tcp)
    }
    fn configure(&self) -> io::Result<()> {
        TcpStream::set_nonblocking(self, false)?;
        TcpStream::set_nodelay(self, true)
    }
    fn recv_timeout(&self, d: Duration) -> io::Result<()> {
        TcpStream::set_read_timeout(self, Some(clamp(d)))
    }
    fn send_timeout(&self, d: Duration) -> io::Result<()> {
        TcpStream::set_write_timeout(self, Some(clamp(d)))
    }
    fn shut(&self, how: Shutdown) -> io::Result<()> {
        TcpStream::shutdown(self, how)
    }
}

impl Socket for UnixStream {
    fn peer(&self) -> io::Result<Peer> {
        let (uid, pid) = peer_cred(self.as_fd())?;
        Ok(Peer::Unix { uid, pid })
    }
    fn configure(&self) -> io::Result<()> {
        UnixStream::set_nonblocking(self, false)
    }
    fn recv_timeout(&self, d: Duration) -> io::Result<()> {
        UnixStream::set_read_timeout(self, Some(clamp(d)))
    }
    fn send_timeout(&self, d: Duration) -> io::Result<()> {
        UnixStream::set_write_timeout(self, Some(clamp(d)))
    }
    fn shut(&self, how: Shutdown) -> io::Result<()> {
        UnixStream::shutdown(self, how)
    }
}

/// Durations of [`Limits`] are taken between 1 ms and a year (so deadlines never overflow).
fn clamp(d: Duration) -> Duration {
    d.clamp(
        Duration::from_millis(1),
        Duration::from_secs(365 * 24 * 3600),
    )
}

fn deadline_after(d: Duration) -> Instant {
    Instant::now() + clamp(d)
}

/// The uid and pid of the process that connected a unix socket (`SO_PEERCRED`).
fn peer_cred(fd: BorrowedFd<'_>) -> io::Result<(u32, i32)> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `fd` is an open socket borrowed for the duration of the call; `cred` is a
    // writable `ucred` and `len` holds its exact size, which is what SO_PEERCRED writes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if len as usize != std::mem::size_of::<libc::ucred>() {
        return Err(io::Error::other("SO_PEERCRED returned a short ucred"));
    }
    Ok((cred.uid, cred.pid))
}

/// Writes to a socket with `send(2)` and `MSG_NOSIGNAL`: no buffering (every write reaches
/// the kernel before it returns) and no SIGPIPE. After a failure every later write fails at
/// once, so a stream closure that ignores one error still stops at the next.
struct SockWriter<'a> {
    fd: BorrowedFd<'a>,
    failed: Option<io::ErrorKind>,
    /// Bytes sent so far.
    sent: usize,
}

impl<'a> SockWriter<'a> {
    fn new(fd: BorrowedFd<'a>) -> SockWriter<'a> {
        SockWriter {
            fd,
            failed: None,
            sent: 0,
        }
    }
}

impl Write for SockWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Some(kind) = self.failed {
            return Err(io::Error::new(kind, "connection already failed"));
        }
        if data.is_empty() {
            return Ok(0);
        }
        loop {
            // SAFETY: `self.fd` is an open socket borrowed for the writer's lifetime, and
            // `data` is a readable slice of `data.len()` bytes.
            let n = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    data.as_ptr().cast(),
                    data.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if n >= 0 {
                self.sent += n as usize;
                return Ok(n as usize);
            }
            let err = io::Error::last_os_error();
            let err = match err.kind() {
                io::ErrorKind::Interrupted => continue,
                // SO_SNDTIMEO expired: the client stopped reading.
                io::ErrorKind::WouldBlock => {
                    io::Error::new(io::ErrorKind::TimedOut, "send timed out")
                }
                _ => err,
            };
            self.failed = Some(err.kind());
            return Err(err);
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.failed {
            Some(kind) => Err(io::Error::new(kind, "connection already failed")),
            None => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Accepting

trait Listen: Send + 'static {
    type Conn: Socket;
    fn accept_conn(&self) -> io::Result<Self::Conn>;
}

impl Listen for TcpListener {
    type Conn = TcpStream;
    fn accept_conn(&self) -> io::Result<TcpStream> {
        self.accept().map(|(s, _)| s)
    }
}

impl Listen for UnixListener {
    type Conn = UnixStream;
    fn accept_conn(&self) -> io::Result<UnixStream> {
        self.accept().map(|(s, _)| s)
    }
}

fn spawn_acceptor<L: Listen>(
    listener: L,
    handler: Arc<dyn Handler>,
    limits: Limits,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("crtd-http-accept".to_owned())
        .spawn(move || accept_loop(listener, handler, Arc::new(limits)))
}

/// Decrements the count of served connections when the connection's thread ends (or when
/// the thread could not be started).
struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop<L: Listen>(listener: L, handler: Arc<dyn Handler>, limits: Arc<Limits>) {
    let active = Arc::new(AtomicUsize::new(0));
    let busy = render_simple(503, "server busy: too many connections");
    let mut refused = 0u64;
    let mut last_refusal_log: Option<Instant> = None;
    loop {
        let sock = match listener.accept_conn() {
            Ok(sock) => sock,
            Err(e) => match e.raw_os_error() {
                // The listener itself is unusable: nothing more will ever be accepted.
                Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EOPNOTSUPP) => {
                    warn!("http: accept failed, stopping: {e}");
                    return;
                }
                _ if e.kind() == io::ErrorKind::Interrupted => continue,
                // Aborted handshakes, EMFILE/ENFILE, ENOBUFS...: transient. Back off a
                // little so that running out of descriptors does not spin.
                _ => {
                    warn!("http: accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            },
        };
        if active.load(Ordering::SeqCst) >= limits.max_connections {
            reject_nonblocking(&sock, &busy);
            refused += 1;
            // At most one line a second, however hard the flood.
            let due = match last_refusal_log {
                Some(t) => t.elapsed() >= Duration::from_secs(1),
                None => true,
            };
            if due {
                warn!(
                    "http: at the limit of {} connections: refused {refused} (503)",
                    limits.max_connections
                );
                refused = 0;
                last_refusal_log = Some(Instant::now());
            }
            continue;
        }
        // Only this thread increments, so the check above cannot be overtaken.
        active.fetch_add(1, Ordering::SeqCst);
        let guard = ActiveGuard(active.clone());
        let handler = handler.clone();
        let limits = limits.clone();
        let spawned = std::thread::Builder::new()
            .name("crtd-http-conn".to_owned())
            .spawn(move || {
                let _guard = guard;
                serve_connection(sock, &*handler, &limits);
            });
        if let Err(e) = spawned {
            // The closure (socket and guard) was dropped: the connection is closed.
            warn!("http: cannot start a connection thread: {e}");
        }
    }
}

/// Answers `response` on the accept thread without ever blocking it, then closes.
fn reject_nonblocking(sock: &impl Socket, response: &[u8]) {
    let fd = sock.as_fd().as_raw_fd();
    // SAFETY: `fd` is the open socket `sock` owns, alive for this call; `response` is a
    // readable slice of `response.len()` bytes. MSG_DONTWAIT keeps the call from blocking.
    let _ = unsafe {
        libc::send(
            fd,
            response.as_ptr().cast(),
            response.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    let _ = sock.shut(Shutdown::Write);
    // Drop what the client already sent, so that closing does not turn into a reset that
    // could destroy the answer before the client reads it.
    let mut scratch = [0u8; 4096];
    for _ in 0..16 {
        // SAFETY: as above; `scratch` is a writable buffer of `scratch.len()` bytes.
        let n = unsafe {
            libc::recv(
                fd,
                scratch.as_mut_ptr().cast(),
                scratch.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n <= 0 {
            break;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Serving a connection

/// Why reading a request stopped.
#[derive(Debug, PartialEq)]
enum Fail {
    /// Close without answering (client gone, I/O error).
    Close(String),
    /// Answer this status and message as a JSON error, then close.
    Reject(u16, String),
}

/// A request head, as parsed.
#[derive(Debug)]
struct Head {
    /// Bytes of the request line and headers, blank line included.
    len: usize,
    method: String,
    target: String,
    http11: bool,
    headers: Vec<(String, String)>,
}

/// How to answer one request.
#[derive(Clone, Copy, Debug)]
struct Meta {
    head_only: bool,
    keep_alive: bool,
    http10: bool,
}

const MAX_HEADERS: usize = 128;
const READ_CHUNK: usize = 16 * 1024;
/// How long, and how much, to keep reading after deciding to close (see `linger_close`).
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1024 * 1024;

struct Conn<'l, S: Socket> {
    sock: S,
    /// Received bytes not consumed yet: the start of the next (pipelined) request.
    buf: Vec<u8>,
    peer: Peer,
    limits: &'l Limits,
}

fn serve_connection<S: Socket>(sock: S, handler: &dyn Handler, limits: &Limits) {
    let peer = match sock.peer() {
        Ok(peer) => peer,
        Err(e) => {
            warn!("http: cannot identify the peer of a new connection, closing it: {e}");
            return;
        }
    };
    if let Err(e) = sock
        .configure()
        .and_then(|()| sock.send_timeout(limits.read_timeout))
    {
        warn!("http: {peer}: cannot configure the socket, closing: {e}");
        return;
    }
    let mut conn = Conn {
        sock,
        buf: Vec::new(),
        peer,
        limits,
    };
    let mut idle = limits.read_timeout;
    loop {
        let req = match conn.read_request(idle) {
            Ok(Some(req)) => req,
            Ok(None) => return,
            Err(Fail::Close(why)) => {
                debug!("http: {peer}: closing: {why}");
                return;
            }
            Err(Fail::Reject(status, message)) => {
                warn!("http: {peer}: {status} {message}");
                let meta = Meta {
                    head_only: false,
                    keep_alive: false,
                    http10: false,
                };
                if conn
                    .respond(Response::error(status, &message), meta)
                    .is_ok()
                {
                    conn.linger_close();
                }
                return;
            }
        };
        idle = limits.keep_alive;
        let (request, meta) = req;
        let started = Instant::now();
        let method = request.method.clone();
        let path = request.path.clone();
        let (response, meta) = match catch_unwind(AssertUnwindSafe(|| handler.handle(request))) {
            Ok(response) => (response, meta),
            Err(panic) => {
                warn!(
                    "http: {peer}: handler panicked on {method} {path}: {}",
                    panic_message(&*panic)
                );
                let meta = Meta {
                    keep_alive: false,
                    ..meta
                };
                (Response::error(500, "internal server error"), meta)
            }
        };
        let status = response.status;
        match conn.respond(response, meta) {
            Ok((keep_alive, sent)) => {
                debug!(
                    "http: {peer} \"{method} {path}\" {status} {sent}B {:?}",
                    started.elapsed()
                );
                if !keep_alive {
                    conn.linger_close();
                    return;
                }
            }
            Err(e) => {
                debug!("http: {peer} \"{method} {path}\" {status}: send failed: {e}");
                return;
            }
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(non-string panic payload)"
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl<S: Socket> Conn<'_, S> {
    /// Reads once (waiting at most `timeout`), appending to `buf`; `Ok(0)` at end of stream.
    fn fill(&mut self, timeout: Duration) -> io::Result<usize> {
        self.sock.recv_timeout(timeout)?;
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK, 0);
        let result = loop {
            match self.sock.read(&mut self.buf[old..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        self.buf.truncate(old + *result.as_ref().unwrap_or(&0));
        result
    }

    /// Reads once more of a started request, which must be complete by `deadline`.
    fn fill_until(&mut self, deadline: Instant) -> Result<(), Fail> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Fail::Reject(408, "request timeout".to_owned()));
        }
        match self.fill(left) {
            Ok(0) => Err(Fail::Close("client closed in mid-request".to_owned())),
            Ok(_) => Ok(()),
            Err(e) if is_timeout(&e) => Err(Fail::Reject(408, "request timeout".to_owned())),
            Err(e) => Err(Fail::Close(format!("read: {e}"))),
        }
    }

    /// Reads the next request: `Ok(None)` when the client closed (or stayed idle for `idle`)
    /// between requests.
    fn read_request(&mut self, idle: Duration) -> Result<Option<(Request, Meta)>, Fail> {
        // Wait for the first byte of a request. Empty lines before a request are ignored
        // (RFC 9112 §2.2) and do not extend the idle time.
        let idle_deadline = deadline_after(idle);
        loop {
            let blank = self
                .buf
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            self.buf.drain(..blank);
            if !self.buf.is_empty() {
                break;
            }
            let left = idle_deadline.saturating_duration_since(Instant::now());
            let read = if left.is_zero() {
                Err(io::ErrorKind::TimedOut.into())
            } else {
                self.fill(left)
            };
            match read {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {
                    debug!("http: {}: idle, closing", self.peer);
                    return Ok(None);
                }
                Err(e) => return Err(Fail::Close(format!("read: {e}"))),
            }
        }
        let deadline = deadline_after(self.limits.read_timeout);
        let head = loop {
            match parse_head(&self.buf, self.limits.max_header_bytes)? {
                Some(head) => break head,
                None => self.fill_until(deadline)?,
            }
        };

        if head.headers.iter().any(|(n, _)| n == "transfer-encoding") {
            return Err(Fail::Reject(
                501,
                "Transfer-Encoding is not supported; send a Content-Length".to_owned(),
            ));
        }
        let body_len = content_length(&head.headers)?;
        let (path, query) = parse_target(&head.target)?;
        if body_len > self.limits.max_body_bytes as u64 {
            return Err(Fail::Reject(
                413,
                format!(
                    "request body too large: {body_len} bytes, at most {} accepted",
                    self.limits.max_body_bytes
                ),
            ));
        }
        let body_len = body_len as usize; // <= max_body_bytes, a usize
        let total = head.len + body_len;
        if self.buf.len() < total {
            let expects_continue = head.http11
                && head
                    .headers
                    .iter()
                    .any(|(n, v)| n == "expect" && v.eq_ignore_ascii_case("100-continue"));
            if expects_continue {
                SockWriter::new(self.sock.as_fd())
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .map_err(|e| Fail::Close(format!("send: {e}")))?;
            }
            self.buf.reserve(total - self.buf.len());
            while self.buf.len() < total {
                self.fill_until(deadline)?;
            }
        }
        let body = self.buf[head.len..total].to_vec();
        self.buf.drain(..total);

        let http10 = !head.http11;
        let keep_alive = if head.http11 {
            !has_token(&head.headers, "connection", "close")
        } else {
            has_token(&head.headers, "connection", "keep-alive")
        };
        let meta = Meta {
            head_only: head.method == "HEAD",
            keep_alive,
            http10,
        };
        let request = Request {
            method: head.method,
            path,
            query,
            headers: head.headers,
            body,
            peer: self.peer,
        };
        Ok(Some((request, meta)))
    }

    /// Sends `response`. Returns whether the connection stays open, and the bytes of body
    /// sent.
    fn respond(&mut self, response: Response, meta: Meta) -> io::Result<(bool, usize)> {
        let response = if (200..=599).contains(&response.status) {
            response
        } else {
            warn!(
                "http: {}: handler returned invalid status {}, answering 500",
                self.peer, response.status
            );
            Response::error(500, "handler returned an invalid status")
        };
        let Response {
            status,
            headers,
            body,
        } = response;
        let streaming = matches!(body, Body::Stream(_));
        let handler_close = headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("connection") && token_in(v, "close"));
        let keep_alive = meta.keep_alive && !handler_close && !streaming;
        let bodiless = status == 204 || status == 304;

        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason(status)).as_bytes());
        for (name, value) in &headers {
            if !valid_header(name, value) {
                warn!(
                    "http: {}: dropping invalid response header {name:?}",
                    self.peer
                );
                continue;
            }
            if ["content-length", "transfer-encoding", "connection"]
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h))
            {
                continue;
            }
            push_header(&mut out, name, value);
        }
        match &body {
            Body::Bytes(bytes) if !bodiless => {
                push_header(&mut out, "Content-Length", &bytes.len().to_string())
            }
            Body::Stream(_)
                if !headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case("cache-control")) =>
            {
                push_header(&mut out, "Cache-Control", "no-cache")
            }
            _ => {}
        }
        if !keep_alive {
            push_header(&mut out, "Connection", "close");
        } else if meta.http10 {
            push_header(&mut out, "Connection", "keep-alive");
        }
        out.extend_from_slice(b"\r\n");

        let send_body = !meta.head_only && !bodiless;
        let mut writer = SockWriter::new(self.sock.as_fd());
        match body {
            Body::Bytes(bytes) => {
                let sent = if send_body {
                    out.extend_from_slice(&bytes);
                    bytes.len()
                } else {
                    0
                };
                writer.write_all(&out)?;
                Ok((keep_alive, sent))
            }
            Body::Stream(f) => {
                writer.write_all(&out)?;
                if send_body {
                    match catch_unwind(AssertUnwindSafe(|| f(&mut writer))) {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => debug!("http: {}: stream ended: {e}", self.peer),
                        Err(panic) => warn!(
                            "http: {}: stream closure panicked: {}",
                            self.peer,
                            panic_message(&*panic)
                        ),
                    }
                }
                Ok((false, writer.sent - out.len()))
            }
        }
    }

    /// Closes gracefully: signals the end of our data, then reads (and drops) what the
    /// client still sends, for a bounded time, so that closing with unread data does not
    /// reset the connection and destroy the answer before the client has read it.
    fn linger_close(mut self) {
        if self.sock.shut(Shutdown::Write).is_err() {
            return;
        }
        let deadline = deadline_after(LINGER_TIME.min(self.limits.read_timeout));
        let mut drained = 0;
        while drained < LINGER_BYTES {
            self.buf.clear();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.fill(left) {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    }
}

/// Parses the request head at the start of `buf`: `Ok(None)` if more bytes are needed.
fn parse_head(buf: &[u8], max_header_bytes: usize) -> Result<Option<Head>, Fail> {
    let too_large = || {
        Fail::Reject(
            431,
            format!("request header fields too large: at most {max_header_bytes} bytes accepted"),
        )
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > max_header_bytes {
                Err(too_large())
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Fail::Reject(
                431,
                format!("too many header fields: at most {MAX_HEADERS} accepted"),
            ));
        }
        Err(httparse::Error::Version) => return Err(version_error(buf)),
        Err(e) => return Err(Fail::Reject(400, format!("malformed request: {e}"))),
    };
    if len > max_header_bytes {
        return Err(too_large());
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(Fail::Reject(400, "malformed request line".to_owned()));
    };
    let headers = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).trim().to_owned(),
            )
        })
        .collect();
    Ok(Some(Head {
        len,
        method: method.to_owned(),
        target: target.to_owned(),
        http11: version == 1,
        headers,
    }))
}

/// httparse only knows HTTP/1.0 and 1.1: a well-formed other version is a 505, anything
/// else a 400.
fn version_error(buf: &[u8]) -> Fail {
    let text = String::from_utf8_lossy(buf);
    let line = text
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let version = line.split(' ').nth(2).unwrap_or("");
    match version.strip_prefix("HTTP/") {
        Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
            Fail::Reject(
                505,
                format!("HTTP version not supported: {version}; use HTTP/1.1"),
            )
        }
        _ => Fail::Reject(400, "malformed request: invalid HTTP version".to_owned()),
    }
}

/// The body length from `Content-Length` (0 without one).
fn content_length(headers: &[(String, String)]) -> Result<u64, Fail> {
    let mut length = None;
    for (_, value) in headers.iter().filter(|(n, _)| n == "content-length") {
        // "5, 5" (a list of equal values) is allowed, as RFC 9110 permits.
        for item in value.split(',') {
            let item = item.trim();
            let n = (!item.is_empty() && item.bytes().all(|b| b.is_ascii_digit()))
                .then(|| item.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| Fail::Reject(400, format!("invalid Content-Length {value:?}")))?;
            if length.is_some_and(|l| l != n) {
                return Err(Fail::Reject(
                    400,
                    "conflicting Content-Length values".to_owned(),
                ));
            }
            length = Some(n);
        }
    }
    Ok(length.unwrap_or(0))
}

/// Whether header `name` (lower-case) lists `token` (case-insensitive) in any of its values.
fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    headers.iter().any(|(n, v)| n == name && token_in(v, token))
}

fn token_in(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Splits a request target into its decoded path and query.
fn parse_target(target: &str) -> Result<(String, Vec<(String, String)>), Fail> {
    let bad = |what: &str| Fail::Reject(400, format!("{what} in request target {target:?}"));
    let target = target.split('#').next().unwrap_or("");
    let origin = if target.starts_with('/') || target == "*" {
        target
    } else if let Some(rest) = ["http://", "https://"].iter().find_map(|scheme| {
        target
            .get(..scheme.len())
            .filter(|s| s.eq_ignore_ascii_case(scheme))
            .map(|_| &target[scheme.len()..])
    }) {
        // absolute-form: drop the authority.
        match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => &rest[i..],
            Some(i) => return Ok(("/".to_owned(), parse_query(&rest[i + 1..]).map_err(bad)?)),
            None => "/",
        }
    } else {
        return Err(bad("unsupported form"));
    };
    let (raw_path, raw_query) = match origin.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (origin, None),
    };
    let path = percent_decode(raw_path.as_bytes(), false).map_err(bad)?;
    let path = String::from_utf8(path).map_err(|_| bad("path is not UTF-8"))?;
    let query = match raw_query {
        Some(q) => parse_query(q).map_err(bad)?,
        None => Vec::new(),
    };
    Ok((path, query))
}

/// `a=1&b=x+y&c` → [("a","1"), ("b","x y"), ("c","")]; empty pairs are skipped.
fn parse_query(query: &str) -> Result<Vec<(String, String)>, &'static str> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode(k.as_bytes(), true)?;
            let v = percent_decode(v.as_bytes(), true)?;
            Ok((
                String::from_utf8_lossy(&k).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            ))
        })
        .collect()
}

fn percent_decode(s: &[u8], plus_as_space: bool) -> Result<Vec<u8>, &'static str> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                let hi = s.get(i + 1).copied().and_then(hex);
                let lo = s.get(i + 2).copied().and_then(hex);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err("invalid percent-escape");
                };
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn valid_header(name: &str, value: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        && value
            .bytes()
            .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A complete `Connection: close` JSON error response, as bytes.
fn render_simple(status: u16, message: &str) -> Vec<u8> {
    let body = serde_json::to_vec(&serde_json::json!({ "error": message, "status": status }))
        .unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Bounds every wait of a test client.
    const WAIT: Duration = Duration::from_secs(10);

    fn start(handler: impl Handler, limits: Limits) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        serve_tcp(listener, Arc::new(handler), limits).unwrap();
        addr
    }

    /// Echoes the request as JSON.
    fn echo(req: Request) -> Response {
        let peer = match req.peer {
            Peer::Tcp(a) => serde_json::json!({ "tcp": a.to_string() }),
            Peer::Unix { uid, pid } => serde_json::json!({ "uid": uid, "pid": pid }),
        };
        Response::json(
            200,
            &serde_json::json!({
                "method": req.method,
                "path": req.path,
                "query": req.query,
                "x_test": req.header("X-Test"),
                "bearer": req.bearer_token(),
                "body": String::from_utf8_lossy(&req.body),
                "peer": peer,
            }),
        )
    }

    struct Client<S> {
        sock: S,
        buf: Vec<u8>,
    }

    #[derive(Debug)]
    struct Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Answer {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
        fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body).unwrap()
        }
    }

    fn connect(addr: SocketAddr) -> Client<TcpStream> {
        let sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(WAIT)).unwrap();
        sock.set_write_timeout(Some(WAIT)).unwrap();
        Client {
            sock,
            buf: Vec::new(),
        }
    }

    impl<S: Read + Write> Client<S> {
        fn send(&mut self, data: &[u8]) {
            self.sock.write_all(data).unwrap();
        }

        /// Reads more; false at end of stream.
        fn more(&mut self) -> bool {
            let mut tmp = [0u8; 4096];
            match self.sock.read(&mut tmp) {
                Ok(0) => false,
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    true
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => false,
                Err(e) => panic!("client read: {e}"),
            }
        }

        /// Reads a response head; the body is left in `buf`.
        fn head(&mut self) -> (u16, Vec<(String, String)>) {
            loop {
                let mut headers = [httparse::EMPTY_HEADER; 64];
                let mut resp = httparse::Response::new(&mut headers);
                if let httparse::Status::Complete(n) = resp.parse(&self.buf).unwrap() {
                    let status = resp.code.unwrap();
                    let headers = resp
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_owned(),
                                String::from_utf8(h.value.to_vec()).unwrap(),
                            )
                        })
                        .collect();
                    self.buf.drain(..n);
                    return (status, headers);
                }
                assert!(self.more(), "connection closed before a response head");
            }
        }

        /// Reads a whole response (bodies by Content-Length, else to the end of stream).
        fn answer(&mut self, head_request: bool) -> Answer {
            let (status, headers) = self.head();
            let length = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse::<usize>().unwrap());
            let body = if head_request || status == 204 || status == 304 {
                Vec::new()
            } else if let Some(length) = length {
                while self.buf.len() < length {
                    assert!(self.more(), "connection closed in mid-body");
                }
                self.buf.drain(..length).collect()
            } else {
                while self.more() {}
                std::mem::take(&mut self.buf)
            };
            Answer {
                status,
                headers,
                body,
            }
        }

        fn closed(&mut self) -> bool {
            self.buf.is_empty() && !self.more()
        }
    }

    fn get(addr: SocketAddr, path: &str) -> Answer {
        let mut c = connect(addr);
        c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes());
        c.answer(false)
    }

    #[test]
    fn get_decodes_query_and_headers() {
        let addr = start(echo, Limits::default());
        let mut c = connect(addr);
        c.send(
            b"GET /v1/ev%20ents/%C3%A9?a=1&b=x+y%2Bz&a=%C3%A9&flag&&e= HTTP/1.1\r\n\
              Host: t\r\nX-Test:  Hello  \r\nAuthorization: bEaReR tok123\r\n\r\n",
        );
        let a = c.answer(false);
        assert_eq!(a.status, 200);
        assert_eq!(a.header("content-type"), Some("application/json"));
        assert_eq!(a.header("connection"), None);
        let v = a.json();
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/v1/ev ents/é");
        assert_eq!(
            v["query"],
            serde_json::json!([
                ["a", "1"],
                ["b", "x y+z"],
                ["a", "é"],
                ["flag", ""],
                ["e", ""]
            ])
        );
        assert_eq!(v["x_test"], "Hello");
        assert_eq!(v["bearer"], "tok123");
        assert_eq!(v["peer"]["tcp"], c.sock.local_addr().unwrap().to_string());
    }

    #[test]
    fn request_helpers() {
        let req = Request {
            method: "GET".into(),
            path: "/".into(),
            query: vec![
                ("a".into(), "1".into()),
                ("b".into(), "2".into()),
                ("a".into(), "3".into()),
            ],
            headers: vec![("authorization".into(), "Basic abc".into())],
            body: Vec::new(),
            peer: Peer::Unix { uid: 0, pid: 1 },
        };
        assert_eq!(req.query_all("a"), ["1", "3"]);
        assert_eq!(req.query_one("a"), Some("1"));
        assert_eq!(req.query_one("c"), None);
        assert_eq!(req.header("AUTHORIZATION"), Some("Basic abc"));
        assert_eq!(req.bearer_token(), None);
        let req = Request {
            headers: vec![("authorization".into(), "Bearer   t.k=  ".into())],
            ..req
        };
        assert_eq!(req.bearer_token(), Some("t.k="));
        let req = Request {
            headers: vec![("authorization".into(), "Bearer".into())],
            ..req
        };
        assert_eq!(req.bearer_token(), None);
    }

    #[test]
    fn target_decoding() {
        assert_eq!(parse_target("/a%2Fb?x=%41").unwrap().0, "/a/b");
        assert_eq!(parse_target("/a+b").unwrap().0, "/a+b");
        assert_eq!(parse_target("*").unwrap().0, "*");
        let (path, query) = parse_target("http://h:1/p/q?k=v#frag").unwrap();
        assert_eq!(
            (path.as_str(), query),
            ("/p/q", vec![("k".into(), "v".into())])
        );
        assert_eq!(parse_target("HTTP://h").unwrap().0, "/");
        assert_eq!(parse_target("/?v=%FF").unwrap().1[0].1, "\u{fffd}");
        for bad in ["/%", "/%4", "/%zz", "/%FF", "/?a=%g1", "h:1", "x"] {
            assert!(
                matches!(parse_target(bad), Err(Fail::Reject(400, _))),
                "{bad}"
            );
        }
        assert_eq!(percent_decode(b"a%20b+c", false).unwrap(), b"a b+c");
        assert_eq!(percent_decode(b"a%20b+c", true).unwrap(), b"a b c");
    }

    #[test]
    fn content_length_rules() {
        let h = |v: &str| vec![("content-length".to_owned(), v.to_owned())];
        assert_eq!(content_length(&[]).unwrap(), 0);
        assert_eq!(content_length(&h("12")).unwrap(), 12);
        assert_eq!(content_length(&h("7, 7")).unwrap(), 7);
        for bad in ["", "-1", "+3", "1 2", "7, 8", "99999999999999999999999"] {
            assert!(content_length(&h(bad)).is_err(), "{bad:?}");
        }
        let mut two = h("3");
        two.extend(h("4"));
        assert!(content_length(&two).is_err());
    }

    #[test]
    fn keep_alive_serves_two_requests_on_one_connection() {
        let addr = start(echo, Limits::default());
        let mut c = connect(addr);
        c.send(b"GET /one HTTP/1.1\r\nHost: t\r\n\r\n");
        let a = c.answer(false);
        assert_eq!((a.status, a.json()["path"].clone()), (200, "/one".into()));
        c.send(b"GET /two HTTP/1.1\r\nHost: t\r\n\r\n");
        let a = c.answer(false);
        assert_eq!((a.status, a.json()["path"].clone()), (200, "/two".into()));
        // HTTP/1.0 keeps the connection only when asked to.
        c.send(b"GET /three HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let a = c.answer(false);
        assert_eq!(a.header("connection"), Some("keep-alive"));
        c.send(b"GET /four HTTP/1.0\r\n\r\n");
        let a = c.answer(false);
        assert_eq!((a.status, a.header("connection")), (200, Some("close")));
        assert!(c.closed());
    }

    #[test]
    fn pipelined_requests_in_one_write() {
        let addr = start(echo, Limits::default());
        let mut c = connect(addr);
        c.send(
            b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n\
              POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz\r\n\
              GET /c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        );
        let a = c.answer(false).json();
        assert_eq!(a["path"], "/a");
        let b = c.answer(false).json();
        assert_eq!((&b["path"], &b["body"]), (&"/b".into(), &"xyz".into()));
        let last = c.answer(false);
        assert_eq!(last.json()["path"], "/c");
        assert_eq!(last.header("connection"), Some("close"));
        assert!(c.closed());
    }

    #[test]
    fn post_body_reaches_the_handler() {
        let addr = start(echo, Limits::default());
        let mut c = connect(addr);
        let body = "x".repeat(100_000);
        c.send(
            format!(
                "POST /v1/things HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        let a = c.answer(false).json();
        assert_eq!((&a["method"], &a["body"]), (&"POST".into(), &body.into()));
        // A body-carrying method without Content-Length has an empty body.
        c.send(b"POST /empty HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.answer(false).json()["body"], "");
    }

    #[test]
    fn expect_continue_is_answered() {
        let addr = start(echo, Limits::default());
        let mut c = connect(addr);
        c.send(b"PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
        assert_eq!(c.head().0, 100);
        c.send(b"hello");
        assert_eq!(c.answer(false).json()["body"], "hello");
    }

    fn expect_error(c: &mut Client<TcpStream>, status: u16) -> Answer {
        let a = c.answer(false);
        assert_eq!(a.status, status, "{:?}", String::from_utf8_lossy(&a.body));
        assert_eq!(a.header("connection"), Some("close"));
        assert_eq!(a.header("content-type"), Some("application/json"));
        let v = a.json();
        assert_eq!(v["status"], status);
        assert!(v["error"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(c.closed());
        a
    }

    #[test]
    fn garbage_is_400() {
        let addr = start(echo, Limits::default());
        for garbage in [
            &b"\x01\x02\x03 garbage\r\n\r\n"[..],
            b"GET /\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            b"GET / FOO/1.1\r\n\r\n",
            b"GET /%zz HTTP/1.1\r\n\r\n",
            b"GET /%FF HTTP/1.1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        ] {
            let mut c = connect(addr);
            c.send(garbage);
            expect_error(&mut c, 400);
        }
    }

    #[test]
    fn other_versions_are_505() {
        let addr = start(echo, Limits::default());
        let mut c = connect(addr);
        c.send(b"GET / HTTP/2.0\r\n\r\n");
        expect_error(&mut c, 505);
    }

    #[test]
    fn huge_headers_are_431() {
        let limits = Limits {
            max_header_bytes: 1024,
            ..Limits::default()
        };
        let addr = start(echo, limits);
        let mut c = connect(addr);
        c.send(format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(4000)).as_bytes());
        expect_error(&mut c, 431);
        // Also when the head is complete but over the limit in a single read.
        let mut c = connect(addr);
        c.send(format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(1100)).as_bytes());
        expect_error(&mut c, 431);
    }

    #[test]
    fn huge_body_is_413() {
        let limits = Limits {
            max_body_bytes: 1024,
            ..Limits::default()
        };
        let addr = start(echo, limits);
        let mut c = connect(addr);
        c.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\nabc");
        expect_error(&mut c, 413);
        // At the limit is fine.
        let mut c = connect(addr);
        c.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1024\r\n\r\n");
        c.send(&[b'z'; 1024]);
        assert_eq!(c.answer(false).status, 200);
    }

    #[test]
    fn chunked_is_501() {
        let addr = start(echo, Limits::default());
        let mut c = connect(addr);
        c.send(
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        );
        expect_error(&mut c, 501);
    }

    #[test]
    fn head_has_no_body() {
        let addr = start(
            |_req: Request| Response::text(200, "text/plain", "hello"),
            Limits::default(),
        );
        let mut c = connect(addr);
        c.send(b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n");
        let a = c.answer(true);
        assert_eq!((a.status, a.header("content-length")), (200, Some("5")));
        // The next response follows at once: no body bytes were sent.
        c.send(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
        let a = c.answer(false);
        assert_eq!((a.status, a.body.as_slice()), (200, &b"hello"[..]));
        assert!(c.buf.is_empty());
    }

    #[test]
    fn handler_headers_are_sanitized() {
        let addr = start(
            |_req: Request| {
                Response::text(204, "text/plain", "ignored")
                    .with_header("X-Ok", "1")
                    .with_header("x-ok", "2")
                    .with_header("X-Evil", "a\r\nInjected: yes")
                    .with_header("Content-Length", "999")
            },
            Limits::default(),
        );
        let mut c = connect(addr);
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        let a = c.answer(false);
        assert_eq!(a.status, 204);
        assert_eq!(a.header("x-ok"), Some("2"));
        assert_eq!(a.header("x-evil"), None);
        assert_eq!(a.header("injected"), None);
        assert_eq!(a.header("content-length"), None);
        assert!(a.body.is_empty());
        // Still usable.
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.answer(false).status, 204);
    }

    #[test]
    fn stream_delivers_chunks_and_sees_the_client_leave() {
        let (tx, rx) = mpsc::channel::<io::Result<usize>>();
        let addr = start(
            move |_req: Request| {
                let tx = tx.clone();
                Response::stream("text/event-stream", move |w| {
                    let mut result = Ok(0);
                    // Bounded: 2000 × 5 ms.
                    for i in 0..2000 {
                        if let Err(e) = write!(w, "data: {i}\n\n") {
                            result = Err(e);
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                        result = Ok(i);
                    }
                    let ended_with_error = result.is_err();
                    let _ = tx.send(result);
                    if ended_with_error {
                        Err(io::Error::other("client gone"))
                    } else {
                        Ok(())
                    }
                })
            },
            Limits::default(),
        );
        let mut c = connect(addr);
        c.send(b"GET /v1/events HTTP/1.1\r\nHost: t\r\n\r\n");
        let (status, headers) = c.head();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(status, 200);
        assert_eq!(header("content-type").as_deref(), Some("text/event-stream"));
        assert_eq!(header("cache-control").as_deref(), Some("no-cache"));
        assert_eq!(header("connection").as_deref(), Some("close"));
        assert_eq!(header("content-length"), None);
        while !String::from_utf8_lossy(&c.buf).contains("data: 3\n\n") {
            assert!(c.more(), "stream ended early");
        }
        assert!(String::from_utf8_lossy(&c.buf).starts_with("data: 0\n\ndata: 1\n\ndata: 2\n\n"));
        drop(c);
        let result = rx
            .recv_timeout(WAIT)
            .expect("the stream closure did not return");
        assert!(result.is_err(), "the closure never saw a write error");
    }

    #[test]
    fn unix_socket_reports_peer_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let listener = UnixListener::bind(&path).unwrap();
        serve_unix(listener, Arc::new(echo), Limits::default()).unwrap();
        let sock = UnixStream::connect(&path).unwrap();
        sock.set_read_timeout(Some(WAIT)).unwrap();
        let mut c = Client {
            sock,
            buf: Vec::new(),
        };
        c.send(b"GET /who HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let a = c.answer(false);
        assert_eq!(a.status, 200);
        let v = a.json();
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        assert_eq!(v["peer"]["uid"], uid);
        assert_eq!(v["peer"]["pid"], std::process::id());
    }

    #[test]
    fn handler_panic_is_500_and_the_server_survives() {
        let addr = start(
            |req: Request| {
                if req.path == "/panic" {
                    panic!("test panic (expected)");
                }
                Response::text(200, "text/plain", "fine")
            },
            Limits::default(),
        );
        let mut c = connect(addr);
        c.send(b"GET /panic HTTP/1.1\r\nHost: t\r\n\r\n");
        expect_error(&mut c, 500);
        let a = get(addr, "/ok");
        assert_eq!((a.status, a.body.as_slice()), (200, &b"fine"[..]));
    }

    #[test]
    fn connections_beyond_the_limit_get_503() {
        let limits = Limits {
            max_connections: 1,
            ..Limits::default()
        };
        let addr = start(echo, limits);
        // A round trip proves the first connection was accepted and counted.
        let mut first = connect(addr);
        first.send(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(first.answer(false).status, 200);

        let mut second = connect(addr);
        expect_error(&mut second, 503);

        // Once the first leaves, its slot frees up.
        drop(first);
        let deadline = Instant::now() + WAIT;
        loop {
            let a = get(addr, "/again");
            if a.status == 200 {
                break;
            }
            assert_eq!(a.status, 503);
            assert!(Instant::now() < deadline, "the slot was never freed");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn timeouts() {
        let limits = Limits {
            read_timeout: Duration::from_millis(200),
            keep_alive: Duration::from_millis(100),
            ..Limits::default()
        };
        let addr = start(echo, limits);
        // A started request that never completes: 408.
        let mut c = connect(addr);
        c.send(b"GET / HTTP/1.1\r\nHost:");
        expect_error(&mut c, 408);
        // A body that never completes: 408.
        let mut c = connect(addr);
        c.send(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
        expect_error(&mut c, 408);
        // An idle kept-alive connection is closed silently.
        let mut c = connect(addr);
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.answer(false).status, 200);
        assert!(c.closed());
        // So is a fresh connection that never says anything.
        let mut c = connect(addr);
        assert!(c.closed());
    }
}
