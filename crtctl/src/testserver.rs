//! A tiny HTTP/1.1 server for tests, over TCP, TLS or a unix socket: it
//! records each request's head and gives the next canned answer.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub chunked: bool,
}

impl Answer {
    pub fn json(status: u16, body: &str) -> Answer {
        Answer {
            status,
            content_type: "application/json",
            body: body.into(),
            chunked: false,
        }
    }
}

pub struct TestServer {
    pub port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    /// The heads (request line and headers) received so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// A client of this (plain HTTP) server, with token `t`.
    pub fn client(&self) -> crate::client::Client {
        crate::client::Client::server(&format!("http://127.0.0.1:{}", self.port), "t".into(), None)
            .unwrap()
    }
}

pub fn tcp(addr: &str, answers: Vec<Answer>) -> TestServer {
    let listener = TcpListener::bind(addr).unwrap();
    let port = listener.local_addr().unwrap().port();
    serve(port, answers, move || {
        listener.accept().ok().map(|(s, _)| s)
    })
}

pub fn unix(path: &Path, answers: Vec<Answer>) -> TestServer {
    let listener = UnixListener::bind(path).unwrap();
    serve(0, answers, move || listener.accept().ok().map(|(s, _)| s))
}

/// HTTPS on 127.0.0.1 with `cert` (and its key).
pub fn tls(cert: &rcgen::CertifiedKey<rcgen::KeyPair>, answers: Vec<Answer>) -> TestServer {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let config = Arc::new(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    serve(port, answers, move || {
        let (tcp, _) = listener.accept().ok()?;
        let conn = rustls::ServerConnection::new(config.clone()).ok()?;
        Some(rustls::StreamOwned::new(conn, tcp))
    })
}

/// One request per connection; a connection that fails before its request
/// (a refused TLS handshake) takes no answer.
fn serve<S: Read + Write>(
    port: u16,
    answers: Vec<Answer>,
    mut accept: impl FnMut() -> Option<S> + Send + 'static,
) -> TestServer {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        let mut answers = answers.into_iter();
        let mut next = answers.next();
        while let Some(answer) = &next {
            let Some(mut conn) = accept() else { return };
            let Some(head) = read_head(&mut conn) else {
                continue;
            };
            seen.lock().unwrap().push(head);
            let _ = write_answer(&mut conn, answer);
            next = answers.next();
        }
    });
    TestServer { port, requests }
}

fn read_head(conn: &mut impl Read) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).ok()
}

fn write_answer(conn: &mut impl Write, a: &Answer) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {} X\r\nContent-Type: {}\r\nConnection: close\r\n",
        a.status, a.content_type
    )?;
    if a.chunked {
        conn.write_all(b"Transfer-Encoding: chunked\r\n\r\n")?;
        for chunk in a.body.as_bytes().chunks(4096) {
            write!(conn, "{:x}\r\n", chunk.len())?;
            conn.write_all(chunk)?;
            conn.write_all(b"\r\n")?;
        }
        conn.write_all(b"0\r\n\r\n")?;
    } else {
        write!(conn, "Content-Length: {}\r\n\r\n", a.body.len())?;
        conn.write_all(a.body.as_bytes())?;
    }
    conn.flush()
}
