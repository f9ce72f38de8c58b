//! Serves the API over HTTP/1.1 (hyper, axum) on tokio: the root unix socket,
//! the tenants' TCP address (optionally TLS) and the metrics address. Work that
//! touches the store runs on tokio's blocking pool; live streams are async.
//!
//! Robustness rules:
//! - a request is checked on its headers (who sends it, its declared size) before any of its
//!   body is read; the body is never read by any endpoint;
//! - a connection must deliver each request head within [`Limits::header_timeout`], which also
//!   bounds how long it may idle between requests (and its TLS handshake);
//! - connections that have not yet proved who they are (a valid token, or root on the socket)
//!   share a small pool, bounded per peer address and overall: when it is full, the oldest of
//!   them is closed. Authenticated connections are outside that pool, so idle strangers
//!   cannot crowd a tenant out;
//! - refused requests and broken or evicted connections are counted, not logged one by one:
//!   a listener logs one summary line per [`Limits::noise_period`] when any happened.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{Extension, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::Router;
use futures_util::{FutureExt, StreamExt};
use hyper::body::Body as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Notify};
use tokio_rustls::TlsAcceptor;

use crate::api::Endpoint;
use crate::tenants::Scope;
use crate::web::{Body, Peer, Request, Response, SseItem};

/// What a listener refused or cut off since its last summary line.
#[derive(Default)]
struct Noise {
    refused_requests: AtomicU64,
    evicted: AtomicU64,
    over_capacity: AtomicU64,
    broken: AtomicU64,
}

impl Noise {
    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Logs one line with the counts since the last call, if any is not zero.
    fn report(&self, listener: &str, period: Duration) {
        let take = |c: &AtomicU64| c.swap(0, Ordering::Relaxed);
        let counts = [
            take(&self.refused_requests),
            take(&self.evicted),
            take(&self.over_capacity),
            take(&self.broken),
        ];
        if counts.iter().any(|&n| n > 0) {
            let [refused, evicted, over, broken] = counts;
            tracing::info!(
                "{listener}: in the last {:?}: {refused} requests refused (no or bad credentials, malformed or too large), {evicted} unauthenticated connections closed to make room, {over} connections refused at the connection limit, {broken} connections ended by a protocol error, a timeout or a failed TLS handshake",
                period
            );
        }
    }
}

/// Resource limits of a listener.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Time to deliver a request head (and a TLS handshake); also the longest idle time
    /// between requests on a kept-alive connection.
    pub header_timeout: Duration,
    /// Connections open at once on one listener; more are closed at once.
    pub max_connections: usize,
    /// Connections not yet authenticated, overall and per peer address; beyond either, the
    /// oldest such connection is closed.
    pub max_unauthenticated: usize,
    pub max_unauthenticated_per_ip: usize,
    /// Time a response may wait for the client to take any of it; a client that stops
    /// reading is cut off after it (live streams included).
    pub write_timeout: Duration,
    /// Bytes of a request head (431 beyond); also bounds each connection's read buffer.
    pub max_head_bytes: usize,
    /// Declared request body size beyond which a request is answered 413.
    pub max_body_bytes: u64,
    /// How often a quiet live stream sends a keep-alive comment.
    pub sse_keep_alive: Duration,
    /// How long a stopping server waits for its connections to finish.
    pub drain: Duration,
    /// How often the listener logs what it refused (one line, only if it refused anything).
    pub noise_period: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            max_connections: 4096,
            max_unauthenticated: 256,
            max_unauthenticated_per_ip: 32,
            write_timeout: Duration::from_secs(30),
            max_head_bytes: 16 * 1024,
            max_body_bytes: 1 << 20,
            sse_keep_alive: Duration::from_secs(10),
            drain: Duration::from_secs(5),
            noise_period: Duration::from_secs(10),
        }
    }
}

/// A bound listener and how it speaks.
pub enum Bound {
    Tcp(TcpListener, Option<TlsAcceptor>),
    Unix(UnixListener),
}

/// Serves `endpoint` on `bound` until `stop` turns true, then stops accepting, ends live
/// streams and waits (at most [`Limits::drain`]) for open connections to finish.
pub async fn serve(
    bound: Bound,
    endpoint: Arc<Endpoint>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let limits = Arc::new(limits);
    let gate = Arc::new(Gate::new(Arc::clone(&limits)));
    let noise = Arc::new(Noise::default());
    let name = match &bound {
        Bound::Tcp(l, _) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        Bound::Unix(l) => l
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
            .unwrap_or_default(),
    };
    let ctx = Arc::new(Shared {
        endpoint,
        limits: Arc::clone(&limits),
        stop: stop.clone(),
        noise: Arc::clone(&noise),
    });
    let reporter = {
        let (noise, name, period) = (Arc::clone(&noise), name.clone(), limits.noise_period);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(period);
            every.tick().await;
            loop {
                every.tick().await;
                noise.report(&name, period);
            }
        })
    };
    let router = Router::new().fallback(handle).with_state(Arc::clone(&ctx));
    // Connections being served over HTTP (a TLS handshake not yet done does
    // not count): a stopping server waits for them, not for strangers.
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            a = accept(&bound) => a,
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
        };
        let (io, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, most likely: give connections time to close.
                tracing::warn!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let ip = match peer {
            Peer::Tcp(a) => Some(a.ip()),
            Peer::Unix { .. } => None,
        };
        let Some(ticket) = gate.admit(ip) else {
            Noise::count(&noise.over_capacity);
            continue;
        };
        if matches!(peer, Peer::Unix { uid: 0, .. }) {
            // The kernel vouches for root on the socket.
            ticket.authenticated();
        }
        let tls = match &bound {
            Bound::Tcp(_, tls) => tls.clone(),
            Bound::Unix(_) => None,
        };
        let open_count = Arc::clone(&open);
        let mut conn_stop = stop.clone();
        let router = router.clone();
        let limits = Arc::clone(&limits);
        let noise = Arc::clone(&noise);
        tokio::spawn(async move {
            let ticket = Arc::new(ticket);
            let evicted = Arc::clone(&ticket.evict);
            let conn_noise = Arc::clone(&noise);
            let conn = async move {
                let noise = conn_noise;
                let fd = match &io {
                    Accepted::Tcp(s) => s.as_raw_fd(),
                    Accepted::Unix(s) => s.as_raw_fd(),
                };
                let io: Box<dyn Io> = match (io, tls) {
                    (Accepted::Tcp(s), Some(tls)) => {
                        match tokio::time::timeout(limits.header_timeout, tls.accept(s)).await {
                            Ok(Ok(s)) => Box::new(s),
                            _ => {
                                Noise::count(&noise.broken);
                                return;
                            }
                        }
                    }
                    (Accepted::Tcp(s), None) => Box::new(s),
                    (Accepted::Unix(s), _) => Box::new(s),
                };
                let open_conn = Open::count(open_count);
                let conn_info = Conn { peer, ticket };
                let service = hyper::service::service_fn(move |mut req| {
                    req.extensions_mut().insert(conn_info.clone());
                    tower::ServiceExt::oneshot(router.clone(), req)
                });
                let io = StallGuard::new(io, fd, limits.write_timeout);
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(limits.header_timeout)
                    .max_buf_size(limits.max_head_bytes.max(8192))
                    .serve_connection(TokioIo::new(io), service)
                    // A WebSocket takes the connection over once it is answered.
                    .with_upgrades();
                tokio::pin!(conn);
                let served = tokio::select! {
                    r = conn.as_mut() => r,
                    _ = async { let _ = conn_stop.wait_for(|s| *s).await; } => {
                        // Stopping: finish the request in hand, take no other.
                        conn.as_mut().graceful_shutdown();
                        conn.as_mut().await
                    }
                };
                if served.is_err() {
                    Noise::count(&noise.broken);
                }
                drop(open_conn);
            };
            tokio::select! {
                _ = conn => {}
                _ = evicted.notified() => Noise::count(&noise.evicted),
            }
        });
    }
    drop(bound);
    reporter.abort();
    noise.report(&name, limits.noise_period);
    let _ = tokio::time::timeout(limits.drain, async {
        while open.load(Ordering::Relaxed) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// One connection counted as open while this lives.
struct Open(Arc<std::sync::atomic::AtomicUsize>);

impl Open {
    fn count(n: Arc<std::sync::atomic::AtomicUsize>) -> Open {
        n.fetch_add(1, Ordering::Relaxed);
        Open(n)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A connection whose writes fail with `TimedOut` once the client has taken nothing of
/// them for `timeout`: hyper has no write timeout of its own.
///
/// A write that waits is not yet a stalled client: a slow reader frees a kernel send
/// buffer of megabytes a window at a time, long after the buffer filled. So when the
/// timer runs out, the guard asks the kernel how much of what was written still waits
/// in the socket (`SIOCOUTQ`); if that shrank since the timer started, the client is
/// reading and the timer starts again.
struct StallGuard {
    io: Box<dyn Io>,
    /// The connection's socket, for `SIOCOUTQ` (owned by `io`, which outlives its use).
    fd: std::os::fd::RawFd,
    timeout: Duration,
    /// Running while a write waits for the client, with the bytes then unsent.
    stalled: Option<(Pin<Box<tokio::time::Sleep>>, Option<u64>)>,
}

impl StallGuard {
    fn new(io: Box<dyn Io>, fd: std::os::fd::RawFd, timeout: Duration) -> StallGuard {
        StallGuard {
            io,
            fd,
            timeout,
            stalled: None,
        }
    }

    /// Bytes written to the socket that the peer has not yet taken.
    fn unsent(&self) -> Option<u64> {
        let mut n: libc::c_int = 0;
        // SAFETY: `fd` is the socket `io` owns and keeps open; TIOCOUTQ (SIOCOUTQ) writes
        // one c_int through the pointer, which points at `n`.
        let r = unsafe { libc::ioctl(self.fd, libc::TIOCOUTQ, &mut n as *mut libc::c_int) };
        (r == 0).then_some(n.max(0) as u64)
    }

    fn guard<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.stalled = None;
            return r;
        }
        if self.stalled.is_none() {
            let unsent = self.unsent();
            self.stalled = Some((Box::pin(tokio::time::sleep(self.timeout)), unsent));
        }
        loop {
            let (sleep, _) = self.stalled.as_mut().expect("set above");
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = self.unsent();
            let (sleep, then) = self.stalled.as_mut().expect("set above");
            match (now, *then) {
                (Some(now), Some(before)) if now < before => {
                    // The client took some: wait again from here.
                    *then = Some(now);
                    sleep
                        .as_mut()
                        .reset(tokio::time::Instant::now() + self.timeout);
                }
                _ => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client took nothing of the response for too long",
                    )))
                }
            }
        }
    }
}

impl AsyncRead for StallGuard {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallGuard {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        this.guard(cx, r)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_flush(cx);
        this.guard(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_shutdown(cx);
        this.guard(cx, r)
    }
}

enum Accepted {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(bound: &Bound) -> std::io::Result<(Accepted, Peer)> {
    match bound {
        Bound::Tcp(l, _) => {
            let (s, addr) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok((Accepted::Tcp(s), Peer::Tcp(addr)))
        }
        Bound::Unix(l) => {
            let (s, _) = l.accept().await?;
            let cred = s.peer_cred()?;
            let peer = Peer::Unix {
                uid: cred.uid(),
                pid: cred.pid().unwrap_or(0),
            };
            Ok((Accepted::Unix(s), peer))
        }
    }
}

/// What every request of a listener shares.
struct Shared {
    endpoint: Arc<Endpoint>,
    limits: Arc<Limits>,
    stop: watch::Receiver<bool>,
    noise: Arc<Noise>,
}

/// The connection a request came on.
#[derive(Clone)]
struct Conn {
    peer: Peer,
    ticket: Arc<Ticket>,
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    Extension(conn): Extension<Conn>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (mut parts, body) = req.into_parts();
    // A live stream may also be asked for as a WebSocket.
    let websocket = if wants_websocket(&parts.headers) {
        use axum::extract::FromRequestParts;
        axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &())
            .await
            .ok()
            // A browser fails the connection unless one of the protocols it offered is
            // selected; the token it may offer as another is never echoed.
            .map(|ws| ws.protocols([crate::api::WS_PROTOCOL]))
    } else {
        None
    };
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).trim().to_owned(),
            )
        })
        .collect();
    // Only requests that passed admission are logged (at debug): the others are counted.
    let span = tracing::debug_span!(
        "request",
        method = %parts.method,
        path = parts.uri.path(),
        peer = %conn.peer,
        tenant = tracing::field::Empty,
        // The Kubernetes service account (namespace/name) a token spoke for.
        account = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    let started = Instant::now();
    let req = match Request::from_target(
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query(),
        headers,
        conn.peer,
    ) {
        Ok(r) => Request {
            websocket: websocket.is_some(),
            ..r
        },
        Err(msg) => return refuse(Response::error(400, &msg), &shared),
    };
    let endpoint = &shared.endpoint;
    match endpoint.api.admit(endpoint.listener, &req) {
        Ok(Some(scope)) => {
            conn.ticket.authenticated();
            match scope {
                Scope::Root => span.record("tenant", "(root)"),
                Scope::Operator => span.record("tenant", "(operator)"),
                Scope::Tenant(t) => span.record("tenant", t.as_str()),
            };
        }
        Ok(None) => {}
        Err(refusal) => return refuse(refusal, &shared),
    }
    let declared = body.size_hint().lower();
    if declared > shared.limits.max_body_bytes {
        let msg = format!(
            "a request body of {declared} bytes is over the limit of {} bytes (no endpoint takes a body)",
            shared.limits.max_body_bytes
        );
        return refuse(Response::error(413, &msg), &shared);
    }
    let (api, listener) = (Arc::clone(&endpoint.api), endpoint.listener);
    let in_span = span.clone();
    let resp =
        match tokio::task::spawn_blocking(move || in_span.in_scope(|| api.handle(listener, req)))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(parent: &span, "a request handler failed: {e}");
                Response::error(500, "internal error")
            }
        };
    span.record("status", resp.status);
    tracing::debug!(parent: &span, duration = ?started.elapsed(), "answered");
    match (websocket, resp.body) {
        (Some(ws), Body::Events(events)) => {
            let (stop, every) = (shared.stop.clone(), shared.limits.sse_keep_alive);
            ws.on_upgrade(move |socket| websocket_feed(socket, events, stop, every))
        }
        (Some(ws), Body::Session(session)) => {
            let stop = shared.stop.clone();
            ws.on_upgrade(move |socket| session(socket, stop))
        }
        (_, body) => into_axum(
            Response {
                status: resp.status,
                content_type: resp.content_type,
                headers: resp.headers,
                body,
            },
            &shared,
        ),
    }
}

fn wants_websocket(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// A live stream over a WebSocket: one text message per event,
/// `{"type": "event", "id": ..., "data": {event}}`, or `{"type": "drops", "data":
/// {"event": "stream-drops", "dropped": N}}`; a ping after `every` of silence. Ends when
/// the client closes, or with a close message when the server stops.
async fn websocket_feed(
    mut socket: axum::extract::ws::WebSocket,
    mut events: crate::web::SseStream,
    mut stop: watch::Receiver<bool>,
    every: Duration,
) {
    use axum::extract::ws::Message;
    let text = |kind: &str, id: Option<String>, data: &str| {
        let data: serde_json::Value = serde_json::from_str(data).unwrap_or(serde_json::Value::Null);
        let mut m = serde_json::json!({"type": kind, "data": data});
        if let Some(id) = id {
            m["id"] = serde_json::Value::String(id);
        }
        Message::Text(m.to_string().into())
    };
    loop {
        let msg = tokio::select! {
            item = events.next() => match item {
                None => break,
                Some(SseItem::Comment(_)) => continue,
                Some(SseItem::Event { id, data }) => text("event", Some(id), &data),
                Some(SseItem::Named(name, data)) => text(name, None, &data),
            },
            got = socket.recv() => match got {
                // Pings are answered by the socket itself; anything else is ignored.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => continue,
            },
            _ = tokio::time::sleep(every) => Message::Ping(Vec::new().into()),
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
        };
        if socket.send(msg).await.is_err() {
            return;
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

/// A request refused on its head: counted for the listener's summary, not logged.
fn refuse(resp: Response, shared: &Shared) -> axum::response::Response {
    Noise::count(&shared.noise.refused_requests);
    into_axum(resp, shared)
}

fn into_axum(resp: Response, shared: &Shared) -> axum::response::Response {
    let mut headers = http::HeaderMap::new();
    for (name, value) in &resp.headers {
        if let Ok(value) = http::HeaderValue::from_str(value) {
            headers.append(*name, value);
        }
    }
    // An API answer is data: a browser must neither sniff it into a page nor frame it.
    if !headers.contains_key(http::header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            http::header::CONTENT_SECURITY_POLICY,
            http::HeaderValue::from_static(crate::ui::API_CSP),
        );
    }
    headers.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    let mut answer = into_axum_body(resp.status, resp.content_type, resp.body, shared);
    answer.headers_mut().extend(headers);
    answer
}

fn into_axum_body(
    status: u16,
    content_type: &'static str,
    body: Body,
    shared: &Shared,
) -> axum::response::Response {
    let status =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    match body {
        Body::Bytes(b) => (status, [(http::header::CONTENT_TYPE, content_type)], b).into_response(),
        Body::Events(stream) => {
            let mut stop = shared.stop.clone();
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            }
            .boxed();
            let events = stream
                .map(|item| {
                    Ok::<_, Infallible>(match item {
                        SseItem::Comment(c) => Event::default().comment(c),
                        SseItem::Event { id, data } => Event::default().id(id).data(data),
                        SseItem::Named(name, d) => Event::default().event(name).data(d),
                    })
                })
                .take_until(stopped);
            let keep_alive = KeepAlive::new()
                .interval(shared.limits.sse_keep_alive)
                .text("keep-alive");
            (status, Sse::new(events).keep_alive(keep_alive)).into_response()
        }
        Body::Session(_) => {
            let r = Response::error(
                400,
                "this endpoint is a WebSocket: ask for it with `Connection: Upgrade` and `Upgrade: websocket`",
            );
            into_axum(r, shared)
        }
    }
}

/// Counts a listener's connections and keeps the pool of unauthenticated ones bounded.
struct Gate {
    limits: Arc<Limits>,
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    next_id: u64,
    open: usize,
    /// Unauthenticated connections by id (ids grow, so the first is the oldest).
    pending: BTreeMap<u64, Pending>,
    pending_per_ip: HashMap<IpAddr, usize>,
}

struct Pending {
    ip: Option<IpAddr>,
    evict: Arc<Notify>,
}

/// One open connection; dropping it gives its place back.
struct Ticket {
    gate: Arc<Gate>,
    id: u64,
    /// Notified when the connection must close to make room.
    evict: Arc<Notify>,
}

impl Gate {
    fn new(limits: Arc<Limits>) -> Gate {
        Gate {
            limits,
            state: Mutex::new(GateState::default()),
        }
    }

    /// A place for a new connection from `ip` (none for a unix socket), or `None` when the
    /// listener is full. It starts unauthenticated; older unauthenticated connections may be
    /// evicted to make room.
    fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Option<Ticket> {
        let mut s = self.state.lock().unwrap();
        if s.open >= self.limits.max_connections {
            return None;
        }
        s.open += 1;
        let id = s.next_id;
        s.next_id += 1;
        let evict = Arc::new(Notify::new());
        s.pending.insert(
            id,
            Pending {
                ip,
                evict: Arc::clone(&evict),
            },
        );
        if let Some(ip) = ip {
            let n = s.pending_per_ip.entry(ip).or_default();
            *n += 1;
            if *n > self.limits.max_unauthenticated_per_ip {
                let oldest = s
                    .pending
                    .iter()
                    .find(|(_, p)| p.ip == Some(ip))
                    .map(|(id, _)| *id);
                if let Some(oldest) = oldest {
                    evict_pending(&mut s, oldest);
                }
            }
        }
        if s.pending.len() > self.limits.max_unauthenticated {
            if let Some(oldest) = s.pending.keys().next().copied() {
                evict_pending(&mut s, oldest);
            }
        }
        Some(Ticket {
            gate: Arc::clone(self),
            id,
            evict,
        })
    }
}

/// Takes connection `id` out of the unauthenticated pool; returns it if it was there.
fn remove_pending(s: &mut GateState, id: u64) -> Option<Pending> {
    let p = s.pending.remove(&id)?;
    if let Some(ip) = p.ip {
        if let Some(n) = s.pending_per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                s.pending_per_ip.remove(&ip);
            }
        }
    }
    Some(p)
}

fn evict_pending(s: &mut GateState, id: u64) {
    if let Some(p) = remove_pending(s, id) {
        // A permit is stored if the connection is not waiting yet.
        p.evict.notify_one();
    }
}

impl Ticket {
    /// The connection proved who it is: it leaves the unauthenticated pool for good.
    fn authenticated(&self) {
        remove_pending(&mut self.gate.state.lock().unwrap(), self.id);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut s = self.gate.state.lock().unwrap();
        remove_pending(&mut s, self.id);
        s.open -= 1;
    }
}

#[cfg(test)]
mod tests;
