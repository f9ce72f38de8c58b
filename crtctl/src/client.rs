//! Talking to crtd with ureq: over HTTP or HTTPS with a tenant's token, or
//! over the node's root socket (see `settings` for which). One agent per
//! command keeps its connection alive across pages and `-f` polls.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use ureq::config::Config;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::Agent;

use crate::settings::{self, ServerArgs, Target, TokenSource};
use crate::unix::{NoResolver, UnixConnector};

/// The longest crtctl waits for one answer; crtd bounds a query well below it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest answer read: a page of 1000 events with long arguments.
const MAX_ANSWER_BYTES: u64 = 64 << 20;
/// How long a live stream may stay silent before crtctl takes it for lost
/// (crtd sends a keep-alive comment every 10 s).
const STREAM_SILENCE: Duration = Duration::from_secs(35);
/// The longest line of a live stream read (an event with long arguments).
const MAX_STREAM_LINE: u64 = 4 << 20;
/// What the JSON endpoints answer.
const JSON: &str = "application/json";
/// crtd's port when a URL names none.
const DEFAULT_PORT: u16 = 7420;

enum Via {
    Server { https: bool },
    RootSocket(PathBuf),
}

pub struct Client {
    agent: Agent,
    /// `scheme://host:port[/prefix]`, to which `/v1/...` is appended.
    base: String,
    /// Read again for each request: a Kubernetes projected token rotates
    /// under a long `top` or `trace --follow`.
    token: Option<TokenSource>,
    via: Via,
    /// Shown in errors: what we tried to reach.
    describe: String,
    /// The CA an https server's certificate must chain to (else the system's).
    ca: Option<PathBuf>,
}

/// A `--server` URL, checked: `base` is what request paths are appended to.
#[derive(Debug, PartialEq)]
pub struct ServerUrl {
    pub base: String,
    pub https: bool,
}

impl ServerUrl {
    pub fn parse(s: &str) -> Result<ServerUrl> {
        let expected = "expected http://host:port or https://host:port";
        let uri: ureq::http::Uri = s
            .parse()
            .map_err(|e| anyhow!("server {s:?} is not a URL ({e}); {expected}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => bail!("server {s:?}: {expected}"),
        };
        let Some(authority) = uri.authority() else {
            bail!("server {s:?} names no host; {expected}");
        };
        if authority.as_str().contains('@') || authority.host().is_empty() {
            bail!("server {s:?}: {expected} (without a user name)");
        }
        if uri.query().is_some() {
            bail!("server {s:?}: {expected}, without a query");
        }
        let port = match authority.as_str()[authority.host().len()..].strip_prefix(':') {
            None => DEFAULT_PORT,
            Some(p) => p.parse().ok().filter(|&p: &u16| p != 0).ok_or_else(|| {
                anyhow!("server {s:?}: the port {p:?} is not a number from 1 to 65535")
            })?,
        };
        let prefix = uri.path().trim_end_matches('/');
        // `host()` keeps an IPv6 literal's brackets, which the URL and the
        // Host header both need.
        Ok(ServerUrl {
            base: format!(
                "{}://{}:{port}{prefix}",
                if https { "https" } else { "http" },
                authority.host()
            ),
            https,
        })
    }
}

fn agent_config() -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(ANSWER_TIMEOUT))
        .max_redirects(0)
        .max_redirects_will_error(false)
        .user_agent(concat!("crtctl/", env!("CARGO_PKG_VERSION")))
}

/// The certificates an https server's chain must end in: those in `ca`
/// (PEM, one or more), else the system's store, else webpki's bundled roots.
fn root_certs(ca: Option<&Path>) -> Result<RootCerts> {
    let Some(path) = ca else {
        let native = rustls_native_certs::load_native_certs();
        if native.certs.is_empty() {
            return Ok(RootCerts::WebPki);
        }
        let certs: Vec<Certificate<'static>> = native
            .certs
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        return Ok(RootCerts::Specific(Arc::new(certs)));
    };
    let pem =
        std::fs::read(path).with_context(|| format!("reading the CA file {}", path.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item.with_context(|| format!("the CA file {}: not valid PEM", path.display()))? {
            PemItem::Certificate(c) => certs.push(c),
            _ => continue,
        }
    }
    if certs.is_empty() {
        bail!(
            "the CA file {} holds no certificate; expected PEM (-----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(RootCerts::Specific(Arc::new(certs)))
}

impl Client {
    /// Resolves where crtd is and who we are.
    pub fn resolve(args: &ServerArgs) -> Result<Client> {
        // SAFETY: geteuid has no arguments and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        match settings::target(args, root)? {
            Target::Server { url, token, ca } => {
                // Read once now, so a missing or empty file fails before anything is sent.
                token.read()?;
                Client::server_with(&url, token, ca.as_deref())
            }
            Target::RootSocket => {
                let socket = crt_config::NodeConfig::load_default()
                    .map(|c| c.api.socket)
                    .unwrap_or_else(|_| PathBuf::from("/run/crt/crtd.sock"));
                Ok(Client::root_socket(socket))
            }
        }
    }

    /// A client of crtd's TCP API at `server`, verifying an https server
    /// against `ca` (else the system's roots).
    #[cfg(test)]
    pub fn server(server: &str, token: String, ca: Option<&Path>) -> Result<Client> {
        Client::server_with(server, TokenSource::Value(token), ca)
    }

    /// [`Client::server`] with a token that may come from a file, read at each request.
    pub fn server_with(server: &str, token: TokenSource, ca: Option<&Path>) -> Result<Client> {
        let url = ServerUrl::parse(server)?;
        let mut config = agent_config();
        if url.https {
            config = config.tls_config(TlsConfig::builder().root_certs(root_certs(ca)?).build());
        }
        Ok(Client {
            agent: config.build().new_agent(),
            base: url.base,
            token: Some(token),
            via: Via::Server { https: url.https },
            describe: server.to_string(),
            ca: ca.map(Path::to_path_buf),
        })
    }

    /// A client of crtd's root socket: every tenant, no token.
    pub fn root_socket(path: PathBuf) -> Client {
        let config: Config = agent_config().proxy(None).build();
        let connector = UnixConnector { path: path.clone() };
        Client {
            agent: Agent::with_parts(config, connector, NoResolver),
            base: "http://localhost".into(),
            token: None,
            describe: path.display().to_string(),
            via: Via::RootSocket(path),
            ca: None,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The token for the next request, read again from its file if it has one.
    fn bearer(&self) -> Result<Option<String>> {
        self.token.as_ref().map(TokenSource::read).transpose()
    }

    /// Every request crtctl makes: what it accepts, its query, and the token if any.
    fn prepare<B>(
        &self,
        mut request: ureq::RequestBuilder<B>,
        accept: &str,
        query: &[(&str, &str)],
    ) -> Result<ureq::RequestBuilder<B>> {
        request = request.header("Accept", accept);
        for (k, v) in query {
            request = request.query(k, v);
        }
        if let Some(token) = self.bearer()? {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        Ok(request)
    }

    /// GETs a JSON document; error statuses become errors a person can act on.
    pub fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value> {
        let request = self.prepare(self.agent.get(self.url(path)), JSON, query)?;
        let answer = request.call().map_err(|e| self.unreachable(e))?;
        self.json_answer(answer)
    }

    /// POSTs with no body (what to do is in the query); the JSON answer.
    pub fn post(&self, path: &str, query: &[(&str, &str)]) -> Result<Value> {
        let request = self.prepare(self.agent.post(self.url(path)), JSON, query)?;
        let answer = request.send_empty().map_err(|e| self.unreachable(e))?;
        self.json_answer(answer)
    }

    /// DELETEs; the JSON answer.
    pub fn delete(&self, path: &str) -> Result<Value> {
        let request = self.prepare(self.agent.delete(self.url(path)), JSON, &[])?;
        let answer = request.call().map_err(|e| self.unreachable(e))?;
        self.json_answer(answer)
    }

    /// A JSON answer, or the error its status says.
    fn json_answer(&self, mut answer: ureq::http::Response<ureq::Body>) -> Result<Value> {
        let status = answer.status().as_u16();
        let body = answer
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_vec()
            .with_context(|| format!("reading crtd's answer from {}", self.describe))?;
        let json = serde_json::from_slice::<Value>(&body);
        if (200..300).contains(&status) {
            return json.map_err(|e| {
                anyhow!(
                    "{} answered with something that is not JSON ({e}): {}; is this crtd?",
                    self.describe,
                    snippet(&body)
                )
            });
        }
        Err(self.refusal(status, &body))
    }

    /// An error status as an error a person can act on.
    fn refusal(&self, status: u16, body: &[u8]) -> anyhow::Error {
        let msg = match serde_json::from_slice::<Value>(body) {
            Ok(v) => v["error"].as_str().unwrap_or("no details").to_string(),
            Err(_) if body.is_empty() => "no details".to_string(),
            Err(_) => snippet(body),
        };
        match status {
            401 => anyhow!(
                "crtd refused the credentials ({}): {msg}; check CRT_TOKEN",
                self.describe
            ),
            404 => anyhow!("{msg} (or it is not yours)"),
            429 => anyhow!("crtd is busy with this tenant's queries: {msg}"),
            _ => anyhow!("crtd answered {status}: {msg}"),
        }
    }

    /// Opens a server-sent event stream. `Err(Lost)` when crtd could not be
    /// reached (worth trying again), `Err(Refused)` when it answered no.
    pub fn events(&self, path: &str, query: &[(&str, &str)]) -> Result<EventStream, StreamError> {
        let request = self
            .prepare(self.agent.get(self.url(path)), "text/event-stream", query)
            .map_err(StreamError::Refused)?;
        // A stream has no end to wait for, but crtd sends something at least
        // every few seconds (a keep-alive comment): silence means it is gone.
        let request = request
            .config()
            .timeout_global(None)
            .timeout_per_read(Some(STREAM_SILENCE))
            .build();
        let mut answer = request
            .call()
            .map_err(|e| StreamError::Lost(self.unreachable(e)))?;
        let status = answer.status().as_u16();
        if status != 200 {
            let body = answer
                .body_mut()
                .with_config()
                .limit(1 << 20)
                .read_to_vec()
                .unwrap_or_default();
            let e = self.refusal(status, &body);
            return Err(if matches!(status, 502..=504) {
                StreamError::Lost(e)
            } else {
                StreamError::Refused(e)
            });
        }
        let body = answer.into_body().into_reader();
        let (tx, rx) = std::sync::mpsc::sync_channel(1024);
        std::thread::spawn(move || read_frames(std::io::BufReader::new(body), &tx));
        Ok(EventStream { frames: rx })
    }

    /// Opens a WebSocket to `path` (crtd's exec and archive sessions).
    pub fn websocket(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<tungstenite::WebSocket<Conn>> {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in query {
            q.append_pair(k, v);
        }
        let url = format!("{}{path}?{}", self.base, q.finish());
        let ws_url = url
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        let mut request =
            tungstenite::client::IntoClientRequest::into_client_request(ws_url.as_str())
                .with_context(|| format!("{url} is not a URL crtctl can open"))?;
        if let Some(token) = self.bearer()? {
            request.headers_mut().insert(
                "Authorization",
                format!("Bearer {token}")
                    .parse()
                    .map_err(|_| anyhow!("the token holds characters a header cannot"))?,
            );
        }
        let conn = self.connect()?;
        match tungstenite::client::client(request, conn) {
            Ok((ws, _)) => Ok(ws),
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(answer))) => {
                let status = answer.status().as_u16();
                let body = answer.body().clone().unwrap_or_default();
                Err(self.refusal(status, &body))
            }
            Err(e) => Err(anyhow!("opening a WebSocket to {}: {e}", self.describe)),
        }
    }

    /// A connection to crtd for a WebSocket.
    fn connect(&self) -> Result<Conn> {
        match &self.via {
            Via::RootSocket(p) => std::os::unix::net::UnixStream::connect(p)
                .map(Conn::Unix)
                .map_err(|e| self.unreachable(ureq::Error::Io(e))),
            Via::Server { https } => {
                let uri: ureq::http::Uri = self.base.parse().context("crtd's URL")?;
                let host = uri.host().unwrap_or("localhost").trim_matches(['[', ']']);
                let port = uri.port_u16().unwrap_or(DEFAULT_PORT);
                let tcp = std::net::TcpStream::connect((host, port))
                    .map_err(|e| self.unreachable(ureq::Error::Io(e)))?;
                let _ = tcp.set_nodelay(true);
                if !*https {
                    return Ok(Conn::Tcp(tcp));
                }
                let roots = rustls_roots(self.ca.as_deref())?;
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .context("TLS versions")?
                .with_root_certificates(roots)
                .with_no_client_auth();
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .with_context(|| format!("{host:?} is not a TLS server name"))?;
                let tls = rustls::ClientConnection::new(Arc::new(config), name)
                    .context("starting TLS")?;
                let mut stream = rustls::StreamOwned::new(tls, tcp);
                while stream.conn.is_handshaking() {
                    stream.conn.complete_io(&mut stream.sock).map_err(|e| {
                        anyhow!(
                            "TLS with {} failed: {e}; if its certificate is signed by a private CA, give that CA's certificate with --ca FILE",
                            self.describe
                        )
                    })?;
                }
                Ok(Conn::Tls(Box::new(stream)))
            }
        }
    }

    /// Why no answer came, and what to do about it.
    fn unreachable(&self, e: ureq::Error) -> anyhow::Error {
        match &self.via {
            Via::RootSocket(p) => match &e {
                ureq::Error::Io(io)
                    if matches!(
                        io.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                    ) =>
                {
                    anyhow!(
                        "crtd is not running: nothing listens on {} (start it with systemctl start crtd, or read this node's traces directly with --local)",
                        p.display()
                    )
                }
                _ => anyhow!("cannot reach crtd at {}: {e}", p.display()),
            },
            Via::Server { https: true } if is_tls_failure(&e) => anyhow!(
                "TLS with {} failed: {}; if its certificate is signed by a private CA, give that CA's certificate with --ca FILE (or CRT_CA, or ca = \"...\" in ~/.config/crt/crtctl.toml)",
                self.describe,
                tls_cause(&e)
            ),
            Via::Server { .. } => anyhow!(
                "crtd is not reachable at {}: {e} (is crtd running there? systemctl status crtd)",
                self.describe
            ),
        }
    }
}

/// The roots for a WebSocket over TLS: the CA file, else the system's.
fn rustls_roots(ca: Option<&Path>) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    let certs: Vec<rustls::pki_types::CertificateDer<'static>> = match ca {
        Some(path) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading the CA file {}", path.display()))?;
            ureq::tls::parse_pem(&pem)
                .filter_map(|i| match i {
                    Ok(PemItem::Certificate(c)) => {
                        Some(rustls::pki_types::CertificateDer::from(c.der().to_vec()))
                    }
                    _ => None,
                })
                .collect()
        }
        None => rustls_native_certs::load_native_certs().certs,
    };
    for c in certs {
        let _ = roots.add(c);
    }
    if roots.is_empty() {
        bail!("no CA certificate to verify crtd's TLS certificate with; give one with --ca FILE");
    }
    Ok(roots)
}

/// A connection a WebSocket runs over.
pub enum Conn {
    Unix(std::os::unix::net::UnixStream),
    Tcp(std::net::TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>>),
}

impl Conn {
    /// Reads give up after `d` (`WouldBlock`), so one thread can also write.
    pub fn set_read_timeout(&self, d: Duration) -> std::io::Result<()> {
        match self {
            Conn::Unix(s) => s.set_read_timeout(Some(d)),
            Conn::Tcp(s) => s.set_read_timeout(Some(d)),
            Conn::Tls(s) => s.sock.set_read_timeout(Some(d)),
        }
    }
}

impl std::io::Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl std::io::Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Unix(s) => s.flush(),
            Conn::Tcp(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// rustls reports a failed handshake as an I/O error that wraps its own.
fn rustls_error(e: &ureq::Error) -> Option<&rustls::Error> {
    match e {
        ureq::Error::Rustls(r) => Some(r),
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>(),
        _ => None,
    }
}

fn is_tls_failure(e: &ureq::Error) -> bool {
    matches!(e, ureq::Error::Tls(_) | ureq::Error::Pem(_)) || rustls_error(e).is_some()
}

fn tls_cause(e: &ureq::Error) -> String {
    match rustls_error(e) {
        Some(r) => r.to_string(),
        None => e.to_string(),
    }
}

/// The start of a body that is not JSON, printable.
fn snippet(body: &[u8]) -> String {
    let head = &body[..body.len().min(200)];
    let mut s = crt_tracer::escape::quote(head, false);
    if body.len() > head.len() {
        s.push_str("...");
    }
    s
}

/// Why a live stream could not be opened.
pub enum StreamError {
    /// crtd could not be reached: trying again may work.
    Lost(anyhow::Error),
    /// crtd answered, and refused.
    Refused(anyhow::Error),
}

/// One message of a server-sent event stream.
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// A message: its `event:` name (empty if none), `id:` (empty if none) and `data:`.
    Message {
        event: String,
        id: String,
        data: String,
    },
    /// The stream ended or broke.
    Closed(String),
}

/// The messages of a live stream, read on a thread of their own.
pub struct EventStream {
    frames: std::sync::mpsc::Receiver<Frame>,
}

impl EventStream {
    /// The next message if one is already here.
    pub fn try_next(&self) -> Option<Frame> {
        self.frames.try_recv().ok()
    }

    /// The next message, or `None` if none came within `wait`.
    pub fn next(&self, wait: Duration) -> Option<Frame> {
        match self.frames.recv_timeout(wait) {
            Ok(f) => Some(f),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Some(Frame::Closed("the stream's reader stopped".into()))
            }
        }
    }
}

/// Splits a server-sent event stream into messages (comments are skipped).
fn read_frames(mut r: impl std::io::BufRead, tx: &std::sync::mpsc::SyncSender<Frame>) {
    use std::io::{BufRead, Read};
    let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut r).take(MAX_STREAM_LINE).read_until(b'\n', &mut line) {
            Ok(0) => {
                let _ = tx.send(Frame::Closed("crtd ended the stream".into()));
                return;
            }
            Ok(_) if !line.ends_with(b"\n") => {
                let _ = tx.send(Frame::Closed("a line of the stream is too long".into()));
                return;
            }
            Ok(_) => {}
            Err(e) => {
                let _ = tx.send(Frame::Closed(e.to_string()));
                return;
            }
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            if !data.is_empty() || !id.is_empty() {
                let frame = Frame::Message {
                    event: std::mem::take(&mut event),
                    id: std::mem::take(&mut id),
                    data: std::mem::take(&mut data),
                };
                if tx.send(frame).is_err() {
                    return;
                }
            }
            event.clear();
            continue;
        }
        if text.starts_with(':') {
            continue;
        }
        let (field, value) = text.split_once(':').unwrap_or((text, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = value.to_string(),
            "id" => id = value.to_string(),
            "data" => {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testserver::{self, Answer};

    #[test]
    fn server_urls_get_crtds_port_and_keep_ipv6_brackets() {
        let parsed = |s: &str| ServerUrl::parse(s).unwrap();
        assert_eq!(parsed("http://node-1:7421").base, "http://node-1:7421");
        assert_eq!(parsed("http://node-1/").base, "http://node-1:7420");
        assert_eq!(parsed("http://[::1]:7070").base, "http://[::1]:7070");
        assert_eq!(parsed("http://[fe80::1]").base, "http://[fe80::1]:7420");
        let tls = parsed("https://crt.example.com:443/crt/");
        assert_eq!(
            (tls.base.as_str(), tls.https),
            ("https://crt.example.com:443/crt", true)
        );
        for bad in [
            "ftp://node-1",
            "node-1:7420",
            "http://node-1:x",
            "http://node-1:",
            "http://node-1:70000",
            "http://u:p@node-1",
            "http://node-1/?a=b",
        ] {
            assert!(ServerUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_token_file_is_read_again_for_each_request_as_projected_tokens_rotate() {
        let server = testserver::tcp(
            "127.0.0.1:0",
            vec![
                Answer::json(200, r#"{"pods":[]}"#),
                Answer::json(200, r#"{"pods":[]}"#),
                Answer::json(200, r#"{"pods":[]}"#),
            ],
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first.jwt.sig\n").unwrap();
        let source = TokenSource::File {
            path: path.clone(),
            origin: "--token-file".into(),
        };
        let url = format!("http://127.0.0.1:{}", server.port);
        let client = Client::server_with(&url, source, None).unwrap();
        client.get("/v1/topology", &[]).unwrap();
        // The kubelet writes the rotated token (by a symlink swap, here by rename).
        let tmp = dir.path().join("token.new");
        std::fs::write(&tmp, "  second.jwt.sig \n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        client.get("/v1/topology", &[]).unwrap();
        let heads: Vec<String> = server
            .requests()
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        assert!(
            heads[0].contains("authorization: bearer first.jwt.sig\r\n"),
            "{heads:?}"
        );
        assert!(
            heads[1].contains("authorization: bearer second.jwt.sig\r\n"),
            "{heads:?}"
        );
        // Gone, the file is named in the error and nothing is sent without a token.
        std::fs::remove_file(&path).unwrap();
        let e = format!("{:#}", client.get("/v1/topology", &[]).unwrap_err());
        assert!(
            e.contains(&path.display().to_string()) && e.contains("--token-file"),
            "{e}"
        );
        assert_eq!(server.requests().len(), 2);
    }

    #[test]
    fn an_ipv6_server_gets_a_bracketed_host_header_and_the_token() {
        let server = testserver::tcp("[::1]:0", vec![Answer::json(200, r#"{"pods":[]}"#)]);
        let url = format!("http://[::1]:{}", server.port);
        let client = Client::server(&url, "s3cret".into(), None).unwrap();
        assert_eq!(
            client.get("/v1/topology", &[]).unwrap()["pods"],
            serde_json::json!([])
        );
        let heads = server.requests();
        let head = heads[0].to_ascii_lowercase();
        assert!(
            head.contains(&format!("\r\nhost: [::1]:{}\r\n", server.port)),
            "{head}"
        );
        assert!(
            head.contains("\r\nauthorization: bearer s3cret\r\n"),
            "{head}"
        );
    }

    #[test]
    fn query_values_are_percent_encoded() {
        let server = testserver::tcp("127.0.0.1:0", vec![Answer::json(200, "{}")]);
        let client = Client::server(
            &format!("http://127.0.0.1:{}", server.port),
            "t".into(),
            None,
        )
        .unwrap();
        client
            .get("/v1/events", &[("grep", "a b/c&d=e+f")])
            .unwrap();
        let head = &server.requests()[0];
        assert!(
            head.starts_with("GET /v1/events?grep=a%20b%2Fc%26d%3De%2Bf HTTP/1.1\r\n"),
            "{head}"
        );
    }

    #[test]
    fn a_200_that_is_not_json_is_an_error() {
        let server = testserver::tcp(
            "127.0.0.1:0",
            vec![Answer {
                status: 200,
                content_type: "text/html",
                body: "<html>login</html>".into(),
                chunked: false,
            }],
        );
        let url = format!("http://127.0.0.1:{}", server.port);
        let e = Client::server(&url, "t".into(), None)
            .unwrap()
            .get("/v1/topology", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not JSON") && e.contains("<html>login"), "{e}");
        assert!(e.contains(&url), "{e}");
    }

    #[test]
    fn error_statuses_carry_crtds_message() {
        let server = testserver::tcp(
            "127.0.0.1:0",
            vec![Answer::json(401, r#"{"error":"invalid bearer token"}"#)],
        );
        let url = format!("http://127.0.0.1:{}", server.port);
        let e = Client::server(&url, "t".into(), None)
            .unwrap()
            .get("/v1/topology", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("refused the credentials") && e.contains("invalid bearer token"),
            "{e}"
        );
    }

    #[test]
    fn the_root_socket_carries_http_with_chunked_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crtd.sock");
        let body = format!(r#"{{"containers":[{{"id":"{}"}}]}}"#, "x".repeat(20_000));
        let server = testserver::unix(
            &path,
            vec![Answer {
                status: 200,
                content_type: "application/json",
                body: body.clone(),
                chunked: true,
            }],
        );
        let client = Client::root_socket(path);
        let v = client
            .get("/v1/containers", &[("namespace", "k8s.io")])
            .unwrap();
        assert_eq!(v.to_string(), body);
        let head = &server.requests()[0];
        assert!(
            head.starts_with("GET /v1/containers?namespace=k8s.io HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(
            !head.to_ascii_lowercase().contains("authorization"),
            "{head}"
        );
    }

    #[test]
    fn no_root_socket_says_crtd_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crtd.sock");
        let e = Client::root_socket(path.clone())
            .get("/v1/topology", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("crtd is not running"), "{e}");
        assert!(e.contains(&path.display().to_string()), "{e}");
    }

    #[test]
    fn https_verifies_the_server_against_the_given_ca() {
        let dir = tempfile::tempdir().unwrap();
        let server_cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let other = {
            let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "another CA");
            let key = rcgen::KeyPair::generate().unwrap();
            rcgen::CertifiedKey {
                cert: params.self_signed(&key).unwrap(),
                signing_key: key,
            }
        };
        let good_ca = dir.path().join("ca.pem");
        let wrong_ca = dir.path().join("wrong.pem");
        // Several certificates in one file: the right one second.
        std::fs::write(&good_ca, other.cert.pem() + &server_cert.cert.pem()).unwrap();
        std::fs::write(&wrong_ca, other.cert.pem()).unwrap();

        let server = testserver::tls(
            &server_cert,
            vec![
                Answer::json(200, r#"{"pods":[1]}"#),
                Answer::json(200, "{}"),
            ],
        );
        let url = format!("https://127.0.0.1:{}", server.port);
        let client = Client::server(&url, "t".into(), Some(&good_ca)).unwrap();
        assert_eq!(client.get("/v1/topology", &[]).unwrap()["pods"][0], 1);

        let e = Client::server(&url, "t".into(), Some(&wrong_ca))
            .unwrap()
            .get("/v1/topology", &[])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&format!("TLS with {url} failed:")), "{e}");
        assert!(e.contains("--ca FILE"), "{e}");
        assert!(e.contains("UnknownIssuer"), "{e}");

        // Without --ca, the system's roots: they do not know a self-signed cert.
        let e = Client::server(&url, "t".into(), None)
            .unwrap()
            .get("/v1/topology", &[])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&format!("TLS with {url} failed:")), "{e}");
        assert!(e.contains("UnknownIssuer"), "{e}");
        assert_eq!(server.requests().len(), 1);
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let e = Client::server("https://127.0.0.1:1", "t".into(), Some(&path))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("holds no certificate"), "{e}");
    }

    #[test]
    fn event_stream_frames_keep_ids_names_and_data_and_skip_comments() {
        let text = ": crtd live stream\n\nid: 1:5:a/b/1=1.40\ndata: {\"x\":1}\n\n: keep-alive\n\nevent: drops\r\ndata: {\"dropped\":3}\r\n\r\ndata: one\ndata: two\n\n";
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        read_frames(std::io::Cursor::new(text.as_bytes().to_vec()), &tx);
        let frames: Vec<Frame> = rx.try_iter().collect();
        let msg = |event: &str, id: &str, data: &str| Frame::Message {
            event: event.into(),
            id: id.into(),
            data: data.into(),
        };
        assert_eq!(
            frames,
            vec![
                msg("", "1:5:a/b/1=1.40", "{\"x\":1}"),
                msg("drops", "", "{\"dropped\":3}"),
                msg("", "", "one\ntwo"),
                Frame::Closed("crtd ended the stream".into()),
            ]
        );
    }

    #[test]
    fn an_endless_stream_line_closes_the_stream_instead_of_filling_memory() {
        let mut text = b"data: ".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_STREAM_LINE as usize + 10));
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        read_frames(std::io::Cursor::new(text), &tx);
        let frames: Vec<Frame> = rx.try_iter().collect();
        assert_eq!(
            frames,
            vec![Frame::Closed("a line of the stream is too long".into())]
        );
    }
}
