//! Pushing an image to a registry over the Registry HTTP API v2 (the
//! distribution spec): each blob the registry lacks is uploaded (HEAD, then
//! POST an upload and PUT it whole with its digest), then the manifest is
//! PUT under its tag. Basic authentication when credentials are configured;
//! registries that only hand out bearer tokens are not spoken to yet.

use std::io::Read;
use std::time::Duration;

use ureq::Agent;

/// Where an image goes.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port` or `https://host:port`.
    pub base: String,
    /// `host[:port]`, for messages.
    pub host: String,
    /// The repository path on the registry (`team/app`).
    pub repository: String,
    /// The tag (or digest) the manifest is put under.
    pub reference: String,
    /// Basic credentials.
    pub auth: Option<(String, String)>,
}

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pushed {
    pub uploaded: Vec<String>,
    pub present: Vec<String>,
}

const TIMEOUT: Duration = Duration::from_secs(300);
const MAX_ANSWER: u64 = 64 * 1024;

fn agent() -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .max_redirects(0)
        .max_redirects_will_error(false)
        .user_agent(concat!("crtd/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

struct Session<'a> {
    agent: Agent,
    t: &'a Target,
}

type Answer = (u16, Option<String>, String);

/// What a request carries.
enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A blob streamed from its reader, of a known size.
    Stream(Box<dyn Read + Send>, u64),
}

/// Where a blob's bytes come from: a reader, opened only for a blob the
/// registry lacks.
pub type Fetch<'a> = dyn FnMut(&str) -> Result<Box<dyn Read + Send>, String> + 'a;

impl Session<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.t.base, self.t.repository)
    }

    /// Sends one request; `(status, Location, body snippet)`.
    fn send(
        &self,
        method: &str,
        url: &str,
        content_type: Option<&str>,
        body: Body,
    ) -> Result<Answer, String> {
        let mut req = ureq::http::Request::builder().method(method).uri(url);
        if let Some((u, p)) = &self.t.auth {
            req = req.header(
                "Authorization",
                format!("Basic {}", base64(format!("{u}:{p}").as_bytes())),
            );
        }
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        let bad =
            |e: ureq::http::Error| format!("registry {}: a bad request to {url}: {e}", self.t.host);
        let sent = match body {
            Body::Empty => self
                .agent
                .run(req.body(ureq::SendBody::none()).map_err(bad)?),
            Body::Bytes(b) => self.agent.run(req.body(b).map_err(bad)?),
            Body::Stream(reader, size) => self.agent.run(
                req.header("Content-Length", size)
                    .body(ureq::SendBody::from_owned_reader(reader))
                    .map_err(bad)?,
            ),
        };
        let mut resp = sent.map_err(|e| format!("registry {} unreachable: {e}", self.t.host))?;
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|l| l.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = if method == "HEAD" {
            String::new()
        } else {
            resp.body_mut()
                .with_config()
                .limit(MAX_ANSWER)
                .read_to_string()
                .unwrap_or_default()
        };
        if status == 401 || status == 403 {
            return Err(match (&self.t.auth, challenge.to_ascii_lowercase()) {
                (_, c) if c.starts_with("bearer") => format!(
                    "registry {} asks for token authentication ({challenge}), which crtd does not speak; give it basic authentication for this client",
                    self.t.host
                ),
                (Some((user, _)), _) => format!(
                    "registry {} refused the credentials of {user:?} ({status} on {method} {url})",
                    self.t.host
                ),
                (None, _) => format!(
                    "registry {} refused the push without credentials ({status} on {method} {url}); configure registry_username and registry_password_file for the tenant",
                    self.t.host
                ),
            });
        }
        Ok((status, location, snippet(&text)))
    }

    fn unexpected(&self, method: &str, url: &str, a: &Answer) -> String {
        format!(
            "registry {}: {method} {url} answered {}{}",
            self.t.host,
            a.0,
            if a.2.is_empty() {
                String::new()
            } else {
                format!(": {}", a.2)
            }
        )
    }

    fn upload(&self, digest: &str, data: Box<dyn Read + Send>, size: u64) -> Result<(), String> {
        let start = self.url("blobs/uploads/");
        let a = self.send("POST", &start, None, Body::Empty)?;
        let location = match (&a, &a.1) {
            ((202, _, _), Some(l)) => l.clone(),
            _ => return Err(self.unexpected("POST", &start, &a)),
        };
        let location = if location.starts_with('/') {
            format!("{}{location}", self.t.base)
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{sep}digest={}", digest.replace(':', "%3A"));
        let a = self.send(
            "PUT",
            &put,
            Some("application/octet-stream"),
            Body::Stream(data, size),
        )?;
        if a.0 != 201 {
            return Err(self.unexpected("PUT", &put, &a));
        }
        Ok(())
    }
}

fn snippet(s: &str) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let cut: String = one_line.chars().take(300).collect();
    crt_tracer::escape::escape(cut.as_bytes())
}

/// Pushes the blobs `(digest, size)` (streamed from `fetch` only when the
/// registry lacks them), then the manifest.
pub fn push(
    t: &Target,
    blobs: &[(String, u64)],
    manifest_type: &str,
    manifest: &[u8],
    fetch: &mut Fetch,
) -> Result<Pushed, String> {
    let s = Session { agent: agent(), t };
    let mut pushed = Pushed::default();
    for (d, size) in blobs {
        let url = s.url(&format!("blobs/{d}"));
        let a = s.send("HEAD", &url, None, Body::Empty)?;
        match a.0 {
            200 => pushed.present.push(d.clone()),
            404 => {
                let data = fetch(d)?;
                s.upload(d, data, *size)?;
                pushed.uploaded.push(d.clone());
            }
            _ => return Err(s.unexpected("HEAD", &url, &a)),
        }
    }
    let url = s.url(&format!("manifests/{}", t.reference));
    let a = s.send("PUT", &url, Some(manifest_type), Body::Bytes(manifest))?;
    if a.0 != 201 {
        return Err(s.unexpected("PUT", &url, &a));
    }
    Ok(pushed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// What the registry saw: (method, path and query, Authorization, body).
    type Seen = Arc<Mutex<Vec<(String, String, String, Vec<u8>)>>>;

    /// A registry of a few lines: knows the blob `present`, answers 401 to
    /// any other credentials than `user:pw` when `auth` is set.
    fn registry(present: &'static str, auth: bool) -> (String, Seen) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let seen: Seen = Default::default();
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or("").to_string();
                let path = parts.next().unwrap_or("").to_string();
                let (mut len, mut authz) = (0usize, String::new());
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).unwrap();
                    if h.trim().is_empty() {
                        break;
                    }
                    let (k, v) = h.split_once(':').unwrap();
                    match k.to_ascii_lowercase().as_str() {
                        "content-length" => len = v.trim().parse().unwrap(),
                        "authorization" => authz = v.trim().to_string(),
                        _ => {}
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                log.lock()
                    .unwrap()
                    .push((method.clone(), path.clone(), authz.clone(), body));
                let answer = if auth && authz != format!("Basic {}", base64(b"user:pw")) {
                    "401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"r\"".to_string()
                } else if method == "HEAD" && path.ends_with(present) {
                    "200 OK".into()
                } else if method == "HEAD" {
                    "404 Not Found".into()
                } else if method == "POST" {
                    "202 Accepted\r\nLocation: /v2/team/app/blobs/uploads/u1?_state=s".into()
                } else {
                    "201 Created".into()
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {answer}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        (addr, seen)
    }

    fn target(addr: &str, auth: Option<(&str, &str)>) -> Target {
        Target {
            base: format!("http://{addr}"),
            host: addr.into(),
            repository: "team/app".into(),
            reference: "v2".into(),
            auth: auth.map(|(u, p)| (u.into(), p.into())),
        }
    }

    #[test]
    fn a_push_uploads_what_the_registry_lacks_then_the_manifest() {
        let (addr, seen) = registry("sha256:cfg", true);
        let mut fetched = Vec::new();
        let pushed = push(
            &target(&addr, Some(("user", "pw"))),
            &[("sha256:layer".into(), 21), ("sha256:cfg".into(), 3)],
            "application/vnd.oci.image.manifest.v1+json",
            b"{manifest}",
            &mut |d| {
                fetched.push(d.to_string());
                Ok(Box::new(std::io::Cursor::new(
                    format!("bytes of {d}").into_bytes(),
                )))
            },
        )
        .unwrap();
        assert_eq!(pushed.uploaded, ["sha256:layer"]);
        assert_eq!(pushed.present, ["sha256:cfg"]);
        assert_eq!(fetched, ["sha256:layer"], "only what is missing is read");
        let seen = seen.lock().unwrap();
        let calls: Vec<(&str, &str)> = seen
            .iter()
            .map(|(m, p, _, _)| (m.as_str(), p.as_str()))
            .collect();
        assert_eq!(
            calls,
            [
                ("HEAD", "/v2/team/app/blobs/sha256:layer"),
                ("POST", "/v2/team/app/blobs/uploads/"),
                (
                    "PUT",
                    "/v2/team/app/blobs/uploads/u1?_state=s&digest=sha256%3Alayer"
                ),
                ("HEAD", "/v2/team/app/blobs/sha256:cfg"),
                ("PUT", "/v2/team/app/manifests/v2"),
            ]
        );
        assert_eq!(seen[2].3, b"bytes of sha256:layer");
        assert_eq!(seen[4].3, b"{manifest}");
        assert!(seen.iter().all(|s| s.2 == "Basic dXNlcjpwdw=="));
    }

    #[test]
    fn refused_credentials_and_an_absent_registry_are_told_apart() {
        let (addr, _) = registry("x", true);
        let e = push(
            &target(&addr, Some(("user", "wrong"))),
            &[("sha256:a".into(), 0)],
            "m",
            b"{}",
            &mut |_| Ok(Box::new(std::io::empty())),
        )
        .unwrap_err();
        assert!(e.contains("refused the credentials of \"user\""), "{e}");
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap().to_string();
        drop(closed);
        let e = push(&target(&addr, None), &[], "m", b"{}", &mut |_| {
            Ok(Box::new(std::io::empty()))
        })
        .unwrap_err();
        assert!(
            e.starts_with(&format!("registry {addr} unreachable")),
            "{e}"
        );
    }

    #[test]
    fn base64_is_standard() {
        assert_eq!(base64(b"user:pw"), "dXNlcjpwdw==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b""), "");
    }
}
