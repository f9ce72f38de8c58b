//! The server over real sockets, against clients that misbehave: bodies sent
//! without credentials, heads that never finish, idle connections by the
//! hundred, and TLS.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{serve, Bound, Limits};
use crate::api::tests::{world, World, ACME};
use crate::api::{Endpoint, Listener};

/// How long a client waits for an answer before the test fails (a hang guard, not a
/// measurement).
const GUARD: Duration = Duration::from_secs(20);

struct Running {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    world: World,
}

fn start(limits: Limits, tls: Option<tokio_rustls::TlsAcceptor>) -> Running {
    let world = world();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    let endpoint = Arc::new(Endpoint {
        api: Arc::clone(&world.api),
        listener: Listener::Tenants,
    });
    let task = rt.spawn(serve(Bound::Tcp(listener, tls), endpoint, limits, stopped));
    Running {
        rt,
        addr,
        stop,
        task: Some(task),
        world,
    }
}

impl Running {
    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(GUARD)).unwrap();
        s.set_write_timeout(Some(GUARD)).unwrap();
        s
    }

    /// Idle connections from `from` (a loopback address of the client's choosing).
    fn idle_from(&self, from: [u8; 4], n: usize) -> Vec<TcpStream> {
        let addr = self.addr;
        self.rt.block_on(async {
            let mut out = Vec::new();
            for _ in 0..n {
                let sock = tokio::net::TcpSocket::new_v4().unwrap();
                sock.bind(SocketAddr::from((from, 0))).unwrap();
                let s = sock.connect(addr).await.unwrap().into_std().unwrap();
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(GUARD)).unwrap();
                out.push(s);
            }
            out
        })
    }

    /// A whole exchange on a fresh connection: (status, body).
    fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut s = self.connect();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        split(&text)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = self.rt.block_on(t);
        }
    }
}

fn split(text: &str) -> (u16, String) {
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

/// Reads a response's status line and headers (not its body).
fn read_head(s: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Limits whose header timeout closes nothing while a test runs, so only the pool's
/// eviction can close an idle connection.
fn patient() -> Limits {
    Limits {
        header_timeout: Duration::from_secs(120),
        ..Limits::default()
    }
}

/// True once the server has closed `s` (a read sees the end of the stream).
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return e.kind() == std::io::ErrorKind::ConnectionReset;
            }
        }
    }
}

#[test]
fn credentials_are_checked_on_the_headers_before_any_body_is_read() {
    let srv = start(Limits::default(), None);
    // A large body is announced but never sent: the answer cannot wait for it.
    for auth in ["", "Authorization: Bearer wrong\r\n"] {
        let mut s = srv.connect();
        write!(
            s,
            "GET /v1/whoami HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 500000\r\n\r\n"
        )
        .unwrap();
        let head = read_head(&mut s);
        assert!(head.starts_with("HTTP/1.1 401"), "{auth:?}: {head:?}");
    }
    // With a valid token, a body over the limit is refused on its declared size.
    let mut s = srv.connect();
    write!(
        s,
        "GET /v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ACME}\r\nContent-Length: 2000000\r\n\r\n"
    )
    .unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 413"), "{head:?}");
}

#[test]
fn a_head_over_its_limit_is_refused_with_431() {
    let srv = start(Limits::default(), None);
    let mut s = srv.connect();
    let pad = "p".repeat(20 * 1024);
    let _ = write!(
        s,
        "GET /v1/whoami HTTP/1.1\r\nHost: x\r\nX-Pad: {pad}\r\nAuthorization: Bearer {ACME}\r\n\r\n"
    );
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 431"), "{head:?}");
}

#[test]
fn two_authorization_headers_are_refused_with_a_clear_message() {
    let srv = start(Limits::default(), None);
    let mut s = srv.connect();
    write!(
        s,
        "GET /v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ACME}\r\nAuthorization: Bearer other\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (status, body) = split(&text);
    assert_eq!(status, 400, "{text}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("more than one Authorization header"),
        "{v}"
    );
}

#[test]
fn a_head_that_trickles_in_is_cut_off_and_an_idle_connection_is_closed() {
    let limits = Limits {
        header_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let srv = start(limits, None);
    // One byte every 100 ms: the head would take 10 s to arrive whole.
    let mut s = srv.connect();
    let head = format!(
        "GET /v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ACME}\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(40)
    );
    let mut sent = 0;
    for b in head.as_bytes() {
        if s.write_all(&[*b]).is_err() {
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        sent < head.len(),
        "the whole head went through at a trickle"
    );
    // A kept-alive connection that stays idle after its request is closed.
    let mut s = srv.connect();
    write!(
        s,
        "GET /v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ACME}\r\n\r\n"
    )
    .unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 200"), "{head:?}");
    assert!(closed_by_server(&mut s));
}

#[test]
fn idle_strangers_by_the_hundred_cannot_crowd_out_a_tenant() {
    let srv = start(patient(), None);
    // 300 idle connections from ten addresses (30 each, under the per-address share).
    let mut idle = Vec::new();
    for host in 2..12 {
        idle.extend(srv.idle_from([127, 0, 0, host], 30));
    }
    let (status, body) = srv.get("/v1/whoami", Some(ACME));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"tenant\":\"acme\""), "{body}");
    // The oldest stranger made room.
    assert!(closed_by_server(&mut idle[0]));
}

#[test]
fn one_address_beyond_its_share_loses_its_oldest_idle_connections() {
    let srv = start(patient(), None);
    let mut idle = srv.idle_from([127, 0, 0, 1], 40);
    for (i, s) in idle.iter_mut().take(8).enumerate() {
        assert!(closed_by_server(s), "connection {i} of 40");
    }
    // Its authenticated requests still go through.
    assert_eq!(srv.get("/v1/whoami", Some(ACME)).0, 200);
}

#[test]
fn a_live_stream_sends_events_and_ends_when_the_server_stops() {
    let srv = start(Limits::default(), None);
    let mut s = srv.connect();
    write!(
        s,
        "GET /v1/events/stream?container=a1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ACME}\r\n\r\n"
    )
    .unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 200"), "{head:?}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head:?}"
    );
    let live = &srv.world.api.ingest.live;
    let a1 = crate::api::tests::stream_of(&srv.world, "a1");
    crate::live::store_and_publish(
        live,
        &a1,
        Some("acme"),
        &crate::store::tests::rec(9_001, 1, "openat", b"/live-one"),
    );
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("/live-one") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains(": crtd live stream"), "{seen}");
    assert!(seen.contains("data: {"), "{seen}");
    srv.stop.send(true).unwrap();
    assert!(closed_by_server(&mut s));
    assert_eq!(live.subscribers(), 0);
}

#[test]
fn a_live_reader_that_stops_reading_is_cut_off_and_its_queue_freed() {
    let srv = start(
        Limits {
            write_timeout: Duration::from_millis(500),
            ..Limits::default()
        },
        None,
    );
    let mut s = srv.connect();
    write!(
        s,
        "GET /v1/events/stream?container=a1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ACME}\r\n\r\n"
    )
    .unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 200"));
    let live = &srv.world.api.ingest.live;
    let a1 = crate::api::tests::stream_of(&srv.world, "a1");
    // Events far beyond what the sockets and the queue hold, and nobody reading them.
    let path = vec![b'x'; 2000];
    let deadline = std::time::Instant::now() + GUARD;
    let mut ts = 0;
    while live.subscribers() > 0 && std::time::Instant::now() < deadline {
        let mut batch = Vec::new();
        for _ in 0..100 {
            ts += 1;
            batch.extend(crate::store::tests::rec(ts, 1, "openat", &path));
        }
        crate::live::store_and_publish(live, &a1, Some("acme"), &batch);
        assert!(live.queued_bytes() <= crate::live::QUEUE_BYTES);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(live.subscribers(), 0, "the stalled reader was not cut off");
    assert_eq!(live.queued_bytes(), 0);
    // Its stream slot is free again: all eight can be opened.
    let mut held = Vec::new();
    for _ in 0..crate::api::STREAMS_PER_TENANT {
        let mut s = srv.connect();
        write!(
            s,
            "GET /v1/events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ACME}\r\n\r\n"
        )
        .unwrap();
        assert!(read_head(&mut s).starts_with("HTTP/1.1 200"));
        held.push(s);
    }
}

#[test]
fn a_live_reader_that_reads_slowly_but_steadily_is_kept_and_told_of_its_drops() {
    // Far less time than a slow reader needs to empty the kernel's buffers of
    // megabytes, far more than it takes between two of its reads.
    let srv = start(
        Limits {
            write_timeout: Duration::from_millis(1000),
            ..Limits::default()
        },
        None,
    );
    let mut s = srv.connect();
    write!(
        s,
        "GET /v1/events/stream?container=a1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ACME}\r\n\r\n"
    )
    .unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 200"));
    let live = Arc::clone(&srv.world.api.ingest.live);
    let a1 = crate::api::tests::stream_of(&srv.world, "a1");
    // A writer far faster than the reader, for six seconds.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (live, done) = (Arc::clone(&live), Arc::clone(&done));
        std::thread::spawn(move || {
            let path = vec![b'x'; 2000];
            let until = std::time::Instant::now() + Duration::from_secs(6);
            let mut ts = 0;
            while std::time::Instant::now() < until {
                let mut batch = Vec::new();
                for _ in 0..100 {
                    ts += 1;
                    batch.extend(crate::store::tests::rec(ts, 1, "openat", &path));
                }
                crate::live::store_and_publish(&live, &a1, Some("acme"), &batch);
                std::thread::sleep(Duration::from_millis(5));
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        })
    };
    // The reader takes 16 KiB every 16 ms (1 MB/s), then hurries once the writer stops.
    let mut buf = vec![0u8; 1 << 20];
    let mut tail = String::new();
    let mut told = false;
    // Reads until the writer is done and the notice came: a client that
    // stopped reading would rightly be cut off.
    while !(told && done.load(std::sync::atomic::Ordering::Relaxed)) {
        let hurry = done.load(std::sync::atomic::Ordering::Relaxed);
        let want = if hurry { buf.len() } else { 16 << 10 };
        let n = s.read(&mut buf[..want]).unwrap_or(0);
        assert!(n > 0, "the server cut off a client that kept reading");
        tail.push_str(&String::from_utf8_lossy(&buf[..n]));
        told |= tail.contains("\"event\":\"stream-drops\"");
        let keep = tail.len().saturating_sub(64);
        let keep = (keep..tail.len())
            .find(|&i| tail.is_char_boundary(i))
            .unwrap_or(0);
        tail.drain(..keep);
        if !hurry {
            std::thread::sleep(Duration::from_millis(16));
        }
    }
    writer.join().unwrap();
    assert_eq!(live.subscribers(), 1);
}

#[test]
fn https_serves_tenants_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let files = crt_config::supervisor::TlsFiles {
        cert: dir.path().join("tls.crt"),
        key: dir.path().join("tls.key"),
    };
    std::fs::write(&files.cert, cert.cert.pem()).unwrap();
    std::fs::write(&files.key, cert.signing_key.serialize_pem()).unwrap();
    let srv = start(
        Limits::default(),
        Some(crate::tls::acceptor(&files).unwrap()),
    );

    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let addr = srv.addr;
    let text = srv.rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        tls.write_all(
            format!("GET /v1/whoami HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ACME}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(GUARD, tls.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&out).into_owned()
    });
    let (status, body) = split(&text);
    assert_eq!(status, 200, "{text}");
    assert!(body.contains("\"tenant\":\"acme\""), "{body}");
    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut s = srv.connect();
    write!(
        s,
        "GET /v1/whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(
        !out.starts_with(b"HTTP/1.1"),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn tls_files_that_are_missing_or_wrong_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let files = crt_config::supervisor::TlsFiles {
        cert: dir.path().join("tls.crt"),
        key: dir.path().join("tls.key"),
    };
    let e = crate::tls::acceptor(&files).err().unwrap().to_string();
    assert!(e.contains("api.tls_cert") && e.contains("tls.crt"), "{e}");
    std::fs::write(&files.cert, "not a certificate\n").unwrap();
    let e = crate::tls::acceptor(&files).err().unwrap().to_string();
    assert!(
        e.contains("api.tls_cert") && e.contains("no certificate"),
        "{e}"
    );
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(&files.cert, cert.cert.pem()).unwrap();
    std::fs::write(&files.key, cert.cert.pem()).unwrap();
    let e = crate::tls::acceptor(&files).err().unwrap().to_string();
    assert!(
        e.contains("api.tls_key") && e.contains("no private key"),
        "{e}"
    );
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(&files.key, other.signing_key.serialize_pem()).unwrap();
    let e = crate::tls::acceptor(&files).err().unwrap().to_string();
    assert!(e.contains("does not go with api.tls_cert"), "{e}");
}

/// What every test's servers log, at debug (one process-wide subscriber: the servers log
/// from their runtimes' threads).
fn captured_logs() -> String {
    use std::sync::{Mutex, OnceLock};
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let logs = LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || Sink(Arc::clone(&sink)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    });
    String::from_utf8_lossy(&logs.lock().unwrap()).into_owned()
}

#[test]
fn refused_requests_are_summed_up_not_logged_one_by_one() {
    captured_logs();
    let srv = start(
        Limits {
            noise_period: Duration::from_millis(200),
            ..Limits::default()
        },
        None,
    );
    for i in 0..50 {
        let token = if i % 2 == 0 { None } else { Some("wrong") };
        assert_eq!(srv.get("/v1/refused-noise-marker", token).0, 401);
    }
    assert_eq!(srv.get("/v1/logged-marker", Some(ACME)).0, 404);
    // Sum what this server's summary lines report until all 50 are there.
    let own = format!("{}: in the last", srv.addr);
    let refused = || -> u64 {
        captured_logs()
            .lines()
            .filter(|l| l.contains(&own))
            .filter_map(|l| {
                let (_, rest) = l.split_once(": in the last ")?;
                let (_, rest) = rest.split_once(": ")?;
                rest.split_whitespace().next()?.parse::<u64>().ok()
            })
            .sum()
    };
    let deadline = std::time::Instant::now() + GUARD;
    while refused() < 50 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(refused(), 50);
    let logs = captured_logs();
    assert!(
        !logs.contains("refused-noise-marker"),
        "a refused request was logged"
    );
    // An admitted request is logged, in its span, with its tenant and status.
    let line = logs
        .lines()
        .find(|l| l.contains("/v1/logged-marker"))
        .expect("the admitted request is logged");
    assert!(
        line.contains("tenant=\"acme\"") && line.contains("status=404"),
        "{line}"
    );
}

/// Once `ws` is subscribed to container a1's live stream: an `openat` of `path` stored
/// and published at `ts`, and the next text message the socket gets.
fn publish_and_read<S: std::io::Read + std::io::Write>(
    srv: &Running,
    ws: &mut tungstenite::WebSocket<S>,
    ts: u64,
    path: &[u8],
) -> String {
    let live = &srv.world.api.ingest.live;
    assert!(wait(|| live.subscribers() == 1));
    let a1 = crate::api::tests::stream_of(&srv.world, "a1");
    crate::live::store_and_publish(
        live,
        &a1,
        Some("acme"),
        &crate::store::tests::rec(ts, 1, "openat", path),
    );
    loop {
        match ws.read().unwrap() {
            tungstenite::Message::Text(t) => break t.to_string(),
            _ => continue,
        }
    }
}

#[test]
fn a_live_stream_also_comes_as_a_websocket_with_the_token_checked_on_its_headers() {
    use tungstenite::client::IntoClientRequest;
    let srv = start(Limits::default(), None);
    let url = format!("ws://{}/v1/events/stream?container=a1", srv.addr);
    // Without a token: refused before any upgrade.
    let refused = tungstenite::connect(url.as_str()).unwrap_err();
    match refused {
        tungstenite::Error::Http(r) => assert_eq!(r.status().as_u16(), 401),
        other => panic!("{other}"),
    }
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {ACME}").parse().unwrap());
    let (mut ws, answer) = tungstenite::connect(req).unwrap();
    assert_eq!(answer.status().as_u16(), 101);
    let msg = publish_and_read(&srv, &mut ws, 9_001, b"/over-ws");
    let v: serde_json::Value = serde_json::from_str(&msg).unwrap();
    assert_eq!(v["type"], "event", "{v}");
    assert!(v["id"].as_str().unwrap().starts_with("1:"), "{v}");
    assert_eq!(v["data"]["args"][1], "\"/over-ws\"", "{v}");
    // The server stops: the socket is closed, the subscription freed.
    srv.stop.send(true).unwrap();
    let closed = loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(_)) | Err(_) => break true,
            Ok(_) => continue,
        }
    };
    assert!(closed);
    assert!(wait(|| srv.world.api.ingest.live.subscribers() == 0));
}

/// Whether `f` holds within a few seconds.
fn wait(mut f: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A whole exchange on a fresh connection: the raw head and the body.
fn exchange(srv: &Running, method: &str, path: &str, token: Option<&str>) -> (String, String) {
    let mut s = srv.connect();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn the_ui_page_loads_without_a_token_and_the_api_still_asks_for_one() {
    let srv = start(Limits::default(), None);
    // The UI this test build embeds, or without ui/dist a page that says how to build it.
    let index = crate::ui::Files::file(&crate::ui::Embedded, "index.html");
    for method in ["GET", "HEAD"] {
        let (head, body) = exchange(&srv, method, "/", None);
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("content-type: text/html"), "{head}");
        // The page's policy: the UI's, with this page's own style nonce.
        let csp = head
            .lines()
            .find_map(|l| l.strip_prefix("content-security-policy: "))
            .unwrap_or_else(|| panic!("no policy in {head}"));
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap_or_else(|| panic!("no nonce in {csp}"));
        assert_eq!(
            csp,
            crate::ui::UI_CSP
                .replace(
                    "style-src 'self';",
                    &format!("style-src 'self' 'nonce-{nonce}';")
                )
                .to_ascii_lowercase()
        );
        for h in [
            "x-content-type-options: nosniff",
            "referrer-policy: no-referrer",
            "cross-origin-opener-policy: same-origin",
            "x-frame-options: deny",
            "cache-control: no-cache",
        ] {
            assert!(head.contains(h), "{method}: {h} missing in {head}");
        }
        if method == "GET" {
            match &index {
                Some(page) => {
                    // Header names were lower-cased above; the nonce's case is the body's.
                    let page = String::from_utf8_lossy(page);
                    let (before, after) = page
                        .split_once(crate::ui::NONCE_PLACEHOLDER)
                        .unwrap_or((&page, ""));
                    assert!(body.starts_with(before) && body.ends_with(after), "{body}");
                    let sent = &body[before.len()..body.len() - after.len()];
                    assert_eq!(sent.to_ascii_lowercase(), nonce);
                }
                None => assert!(body.contains("scripts/build-ui.sh"), "{body}"),
            }
        } else {
            assert!(body.is_empty(), "HEAD sends no body: {body}");
        }
    }
    // An embedded asset (when this build has any) comes as it was built.
    if let Some(name) = crate::ui::Embedded::names().find(|n| n.starts_with("assets/")) {
        let (head, body) = exchange(&srv, "GET", &format!("/{name}"), None);
        assert!(head.starts_with("http/1.1 200"), "{name}: {head}");
        assert!(
            head.contains("cache-control: public, max-age=31536000, immutable"),
            "{head}"
        );
        let want = crate::ui::Files::file(&crate::ui::Embedded, &name).unwrap();
        assert_eq!(body.as_bytes(), &want[..]);
    }
    let (head, _) = exchange(&srv, "GET", "/assets/missing-1234.js", None);
    assert!(head.starts_with("http/1.1 404"), "{head}");
    // Traversal out of /assets is just a name the embedded set does not have.
    let (head, body) = exchange(&srv, "GET", "/assets/%2e%2e/%2e%2e/Cargo.toml", None);
    assert!(head.starts_with("http/1.1 404"), "{head}");
    assert!(!body.contains("[package]"), "{body}");
    // Only those paths are public.
    for path in ["/v1/topology", "/openapi.json", "/favicon.ico"] {
        let (head, _) = exchange(&srv, "GET", path, None);
        assert!(head.starts_with("http/1.1 401"), "{path}: {head}");
    }
    let (head, _) = exchange(&srv, "POST", "/", None);
    assert!(head.starts_with("http/1.1 401"), "{head}");
    // API answers carry the API's own policy.
    let (head, _) = exchange(&srv, "GET", "/v1/topology", Some(ACME));
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'none'; frame-ancestors 'none'"),
        "{head}"
    );
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
}

#[test]
fn a_browser_websocket_sends_its_token_as_a_subprotocol_and_gets_crt_v1() {
    use base64::Engine as _;
    use tungstenite::client::IntoClientRequest;
    let srv = start(Limits::default(), None);
    let url = format!("ws://{}/v1/events/stream?container=a1", srv.addr);
    let offer = |token: &str| {
        let mut req = url.as_str().into_client_request().unwrap();
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token);
        req.headers_mut().insert(
            "sec-websocket-protocol",
            format!("crt.v1, crt.bearer.{encoded}").parse().unwrap(),
        );
        req
    };
    let (mut ws, answer) = tungstenite::connect(offer(ACME)).unwrap();
    assert_eq!(answer.status().as_u16(), 101);
    assert_eq!(
        answer.headers().get("sec-websocket-protocol").unwrap(),
        "crt.v1"
    );
    let msg = publish_and_read(&srv, &mut ws, 9_002, b"/by-subprotocol");
    assert!(msg.contains("/by-subprotocol"), "{msg}");
    drop(ws);
    match tungstenite::connect(offer("not-a-token")).unwrap_err() {
        tungstenite::Error::Http(r) => assert_eq!(r.status().as_u16(), 401),
        other => panic!("{other}"),
    }
    // The same header on a plain GET is not a token.
    let mut s = srv.connect();
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ACME);
    write!(
        s,
        "GET /v1/whoami HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Protocol: crt.v1, crt.bearer.{encoded}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert_eq!(split(&text).0, 401, "{text}");
    // Nor on one that only claims to be an upgrade (no key, no version): it would be
    // answered as a plain request.
    let mut s = srv.connect();
    write!(
        s,
        "GET /v1/events/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: crt.v1, crt.bearer.{encoded}\r\n\r\n"
    )
    .unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
}
