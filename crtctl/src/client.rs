//! Talking to crtd: over TCP with a tenant's token, or over the node's root
//! socket. Which one, and with what token, comes from `--server`/`--token`,
//! then `CRT_SERVER`/`CRT_TOKEN`, then `~/.config/crt/crtctl.toml`; root on a
//! node with none of these uses the unix socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde_json::Value;

/// Options every command that talks to crtd takes.
#[derive(Args, Clone, Debug, Default)]
pub struct ServerArgs {
    /// crtd's address, e.g. http://node-1:7420 (or CRT_SERVER, or the config file).
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// A tenant's API token (or CRT_TOKEN, or the config file).
    #[arg(long, global = true, hide_env_values = true)]
    pub token: Option<String>,
}

enum Target {
    Tcp {
        host: String,
        port: u16,
        token: String,
    },
    Unix(PathBuf),
}

pub struct Client {
    target: Target,
    /// Shown in errors: what we tried to reach.
    pub describe: String,
}

/// `~/.config/crt/crtctl.toml`: `server = "http://..."`, `token = "..."`.
fn config_file() -> Option<(Option<String>, Option<String>)> {
    let path = std::env::var_os("CRTCTL_CONFIG")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".config/crt/crtctl.toml"))
        })?;
    let text = std::fs::read_to_string(&path).ok()?;
    let mut server = None;
    let mut token = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_string();
        match k.trim() {
            "server" => server = Some(v),
            "token" => token = Some(v),
            _ => {}
        }
    }
    Some((server, token))
}

fn parse_server(s: &str) -> Result<(String, u16)> {
    let rest = s
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("--server {s:?}: expected http://host:port (crtd and crtctl speak plain HTTP: reach crtd on the node or through a tunnel such as ssh -L)"))?;
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((h, p)) => Ok((
            h.trim_matches(|c| c == '[' || c == ']').to_string(),
            p.parse()
                .map_err(|_| anyhow!("--server {s:?}: the port is not a number"))?,
        )),
        None => Ok((rest.to_string(), 7420)),
    }
}

impl Client {
    /// Resolves where crtd is and who we are.
    pub fn resolve(args: &ServerArgs) -> Result<Client> {
        let file = config_file().unwrap_or((None, None));
        let server = args
            .server
            .clone()
            .or_else(|| std::env::var("CRT_SERVER").ok().filter(|s| !s.is_empty()))
            .or(file.0);
        let token = args
            .token
            .clone()
            .or_else(|| std::env::var("CRT_TOKEN").ok().filter(|s| !s.is_empty()))
            .or(file.1);
        // SAFETY: geteuid has no arguments and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        match (server, token) {
            (Some(s), Some(t)) => {
                let (host, port) = parse_server(&s)?;
                Ok(Client {
                    describe: s.clone(),
                    target: Target::Tcp { host, port, token: t },
                })
            }
            (None, Some(t)) => Ok(Client {
                describe: "http://127.0.0.1:7420".into(),
                target: Target::Tcp {
                    host: "127.0.0.1".into(),
                    port: 7420,
                    token: t,
                },
            }),
            (Some(s), None) => bail!("no token for {s}: set CRT_TOKEN (or --token, or token = \"...\" in ~/.config/crt/crtctl.toml)"),
            (None, None) if root => {
                let socket = crt_config::NodeConfig::load_default()
                    .map(|c| c.api.socket)
                    .unwrap_or_else(|_| PathBuf::from("/run/crt/crtd.sock"));
                Ok(Client {
                    describe: socket.display().to_string(),
                    target: Target::Unix(socket),
                })
            }
            (None, None) => bail!(
                "no credentials: set CRT_TOKEN (and CRT_SERVER when crtd is not on this machine), or run as root on the node"
            ),
        }
    }

    fn connect(&self) -> Result<Box<dyn ReadWrite>> {
        match &self.target {
            Target::Tcp { host, port, .. } => {
                let s = TcpStream::connect((host.as_str(), *port)).map_err(|e| {
                    anyhow!("crtd is not reachable at {}: {e} (is crtd running there? systemctl status crtd)", self.describe)
                })?;
                s.set_read_timeout(Some(Duration::from_secs(60)))?;
                Ok(Box::new(s))
            }
            Target::Unix(p) => {
                let s = UnixStream::connect(p).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => anyhow!(
                        "crtd is not running: nothing listens on {} (start it with systemctl start crtd, or read this node's traces directly with --local)",
                        p.display()
                    ),
                    _ => anyhow!("cannot reach crtd at {}: {e}", p.display()),
                })?;
                s.set_read_timeout(Some(Duration::from_secs(60)))?;
                Ok(Box::new(s))
            }
        }
    }

    fn request(&self, path_and_query: &str) -> Result<(u16, Box<dyn BufRead>)> {
        let mut conn = self.connect()?;
        let (host, auth) = match &self.target {
            Target::Tcp { host, token, .. } => {
                (host.clone(), format!("Authorization: Bearer {token}\r\n"))
            }
            Target::Unix(_) => ("localhost".to_string(), String::new()),
        };
        write!(
            conn,
            "GET {path_and_query} HTTP/1.1\r\nHost: {host}\r\n{auth}Accept: application/json\r\nConnection: close\r\n\r\n"
        )?;
        let mut r = BufReader::new(conn);
        let mut status_line = String::new();
        r.read_line(&mut status_line)
            .with_context(|| format!("reading crtd's answer from {}", self.describe))?;
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                anyhow!(
                    "{} did not answer as crtd does: {status_line:?}",
                    self.describe
                )
            })?;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
                break;
            }
        }
        Ok((status, Box::new(r)))
    }

    /// GETs a JSON document; error statuses become errors a person can act on.
    pub fn get(&self, path_and_query: &str) -> Result<Value> {
        let (status, mut body) = self.request(path_and_query)?;
        let mut text = Vec::new();
        body.read_to_end(&mut text)?;
        let v: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
        if status == 200 {
            return Ok(v);
        }
        let msg = v["error"].as_str().unwrap_or("no details").to_string();
        Err(match status {
            401 => anyhow!(
                "crtd refused the credentials ({}): {msg}; check CRT_TOKEN",
                self.describe
            ),
            404 => anyhow!("{msg} (or it is not yours)"),
            429 => anyhow!("crtd is busy with this tenant's queries: {msg}"),
            _ => anyhow!("crtd answered {status}: {msg}"),
        })
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_parse_with_and_without_a_port() {
        assert_eq!(
            parse_server("http://node-1:7421").unwrap(),
            ("node-1".into(), 7421)
        );
        assert_eq!(
            parse_server("http://node-1/").unwrap(),
            ("node-1".into(), 7420)
        );
        assert_eq!(
            parse_server("http://[::1]:7420").unwrap(),
            ("::1".into(), 7420)
        );
        assert!(parse_server("https://node-1").is_err());
        assert!(parse_server("http://node-1:x").is_err());
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(enc("a b/c&d=e"), "a%20b%2Fc%26d%3De");
        assert_eq!(enc("plain-1.2_x~"), "plain-1.2_x~");
    }
}
