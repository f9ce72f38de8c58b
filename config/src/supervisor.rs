//! The parts of the node config that crtd reads: `[api]` (where it
//! listens), `[store]` (its history), `[[tenants]]` (who may see what) and
//! `[export.otlp]` (an OpenTelemetry collector to send events to).
//!
//! A tenant owns containerd namespaces and Kubernetes namespaces; its API
//! tokens are kept only as SHA-256 hashes. A container's tenant comes from
//! those namespaces alone (DESIGN.md, decision 7).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// `[api]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiConfig {
    /// The TCP address tenants use (bearer tokens); `None`: no TCP listener.
    pub listen: Option<SocketAddr>,
    /// The unix socket for the node's root user (mode 0600; sees every tenant).
    pub socket: PathBuf,
    /// A separate TCP address for Prometheus (`/metrics`, no token); `None`:
    /// metrics only on the unix socket.
    pub metrics_listen: Option<SocketAddr>,
    /// `tls_cert` and `tls_key`: with them `listen` serves HTTPS.
    pub tls: Option<TlsFiles>,
    /// `operator_token_sha256`: SHA-256 hashes of operator tokens, which see every
    /// tenant (as root does) over `listen` and change nothing.
    pub operator_token_sha256: Vec<[u8; 32]>,
}

/// A TLS certificate chain and its private key, as PEM files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ApiConfig {
    /// Refuses a tenants' listener that other machines reach without TLS: their bearer
    /// tokens would cross the network in clear. crtd checks this when it starts (other
    /// readers of the node config do not serve the API).
    pub fn check_listen_is_safe(&self) -> Result<(), String> {
        match self.listen {
            Some(addr) if self.tls.is_none() && !addr.ip().is_loopback() => Err(format!(
                "api.listen = \"{addr}\" is not a loopback address, and without TLS tenants' bearer tokens would cross the network in clear; add api.tls_cert and api.tls_key (PEM files of the certificate chain and its private key), or listen on 127.0.0.1"
            )),
            _ => Ok(()),
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 7420))),
            socket: PathBuf::from("/run/crt/crtd.sock"),
            metrics_listen: None,
            tls: None,
            operator_token_sha256: Vec::new(),
        }
    }
}

/// `[store]`: crtd's history, and the retention every tenant gets unless it
/// sets its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    pub dir: PathBuf,
    pub max_age: Duration,
    pub max_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            dir: PathBuf::from("/var/lib/crt/store"),
            max_age: Duration::from_secs(7 * 86_400),
            max_bytes: 4 << 30,
        }
    }
}

/// One `[[tenants]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    pub name: String,
    /// containerd namespaces and Kubernetes namespaces that belong to it.
    pub namespaces: Vec<String>,
    /// SHA-256 of each accepted API token.
    pub token_sha256: Vec<[u8; 32]>,
    pub max_age: Duration,
    pub max_bytes: u64,
    /// `registry`: where this tenant's committed images may be pushed.
    pub registry: Option<Registry>,
}

/// A tenant's image registry: `registry = "host[:port]/prefix"`, with
/// `registry_insecure` (plain HTTP), `registry_username` and
/// `registry_password_file` (read at each push, so it can be rotated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registry {
    /// `host[:port]` of the registry.
    pub host: String,
    /// The repository prefix under it (may be empty): every image ref the
    /// tenant pushes starts with `host/prefix/`.
    pub prefix: String,
    pub insecure: bool,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
}

impl Registry {
    /// `host[:port]/prefix`, as configured.
    pub fn location(&self) -> String {
        if self.prefix.is_empty() {
            self.host.clone()
        } else {
            format!("{}/{}", self.host, self.prefix)
        }
    }
}

/// `[export.otlp]`: events and log lines sent as OpenTelemetry log records
/// over OTLP/HTTP (protobuf) to a collector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpConfig {
    /// The endpoint is `https://`: TLS, verified against `ca` or the
    /// system's roots.
    pub https: bool,
    /// `host:port` of the collector.
    pub host: String,
    pub port: u16,
    /// The request path, `/v1/logs` unless the endpoint names another.
    pub path: String,
    /// Send syscall events (and drop notices).
    pub syscalls: bool,
    /// Send the containers' stdout and stderr lines.
    pub logs: bool,
    /// Only these tenants' containers; empty: every container.
    pub tenants: Vec<String>,
    /// Extra request headers (an API key for the collector, say).
    pub headers: Vec<(String, String)>,
    /// `ca`: PEM certificates the collector's chain must end in, instead of
    /// the system's roots (a private CA). Only with an https endpoint.
    pub ca: Option<PathBuf>,
    /// `compression = "gzip"` (the default): request bodies are gzipped.
    pub gzip: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExport {
    pub(crate) otlp: Option<RawOtlp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOtlp {
    endpoint: Spanned<String>,
    syscalls: Option<bool>,
    logs: Option<bool>,
    tenants: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    ca: Option<Spanned<String>>,
    compression: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    listen: Option<Spanned<String>>,
    socket: Option<Spanned<String>>,
    metrics_listen: Option<Spanned<String>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
    operator_token_sha256: Option<Spanned<Vec<String>>>,
}

impl RawApi {
    /// Where `operator_token_sha256` is written, for errors found after it is parsed.
    pub(crate) fn operator_tokens_span(&self) -> Option<std::ops::Range<usize>> {
        self.operator_token_sha256.as_ref().map(|t| t.span())
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    dir: Option<Spanned<String>>,
    max_age: Option<Spanned<String>>,
    max_bytes: Option<Spanned<crate::node::Size>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTenant {
    name: Spanned<String>,
    #[serde(default)]
    namespaces: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    token_sha256: Option<Spanned<Vec<String>>>,
    max_age: Option<Spanned<String>>,
    max_bytes: Option<Spanned<crate::node::Size>>,
    registry: Option<Spanned<String>>,
    registry_insecure: Option<bool>,
    registry_username: Option<Spanned<String>>,
    registry_password_file: Option<Spanned<String>>,
}

/// Parses `7d`, `12h`, `30m`, `90s`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !s.starts_with('-')
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

type ErrFn<'a> = &'a dyn Fn(Option<std::ops::Range<usize>>, String) -> crate::ConfigError;
type SizeFn<'a> =
    &'a dyn Fn(&Spanned<crate::node::Size>, &str, u64) -> Result<u64, crate::ConfigError>;

fn addr(
    v: &Spanned<String>,
    key: &str,
    err: ErrFn,
) -> Result<Option<SocketAddr>, crate::ConfigError> {
    let s = v.get_ref().trim();
    if s.is_empty() || s == "off" {
        return Ok(None);
    }
    s.parse::<SocketAddr>().map(Some).map_err(|_| {
        err(
            Some(v.span()),
            format!("{key} = {s:?} is not an address; expected host:port like \"127.0.0.1:7420\", or \"off\""),
        )
    })
}

fn duration(v: &Spanned<String>, key: &str, err: ErrFn) -> Result<Duration, crate::ConfigError> {
    parse_duration(v.get_ref()).ok_or_else(|| {
        err(
            Some(v.span()),
            format!(
                "{key} = {:?} is not a duration; expected a number with s, m, h or d, like \"7d\" or \"12h\"",
                v.get_ref()
            ),
        )
    })
}

pub(crate) fn api(raw: RawApi, err: ErrFn) -> Result<ApiConfig, crate::ConfigError> {
    let mut api = ApiConfig::default();
    if let Some(v) = &raw.listen {
        api.listen = addr(v, "api.listen", err)?;
    }
    if let Some(v) = &raw.metrics_listen {
        api.metrics_listen = addr(v, "api.metrics_listen", err)?;
    }
    if let Some(v) = &raw.socket {
        api.socket = crate::node::absolute(v, "api.socket", err)?;
    }
    api.tls = match (&raw.tls_cert, &raw.tls_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: crate::node::absolute(cert, "api.tls_cert", err)?,
            key: crate::node::absolute(key, "api.tls_key", err)?,
        }),
        (Some(set), None) | (None, Some(set)) => {
            let (has, lacks) = if raw.tls_cert.is_some() {
                ("api.tls_cert", "api.tls_key")
            } else {
                ("api.tls_key", "api.tls_cert")
            };
            return Err(err(
                Some(set.span()),
                format!(
                    "{has} = {:?} is set but {lacks} is not; TLS needs both (PEM files of the certificate chain and its private key)",
                    set.get_ref()
                ),
            ));
        }
    };
    if let Some(tokens) = &raw.operator_token_sha256 {
        for h in tokens.get_ref() {
            let hash = hex32(h).ok_or_else(|| {
                err(
                    Some(tokens.span()),
                    format!("api.operator_token_sha256 entry {h:?} is not a SHA-256; expected 64 hex digits (sha256sum of the token)"),
                )
            })?;
            if api.operator_token_sha256.contains(&hash) {
                return Err(err(
                    Some(tokens.span()),
                    format!("api.operator_token_sha256 entry {:?} is listed twice; expected every token hash once", h.trim()),
                ));
            }
            api.operator_token_sha256.push(hash);
        }
    }
    Ok(api)
}

/// Refuses an operator token that is also a tenant's: one token must not be both
/// read-only over every tenant and one tenant's own.
pub(crate) fn check_operator_tokens(
    api: &ApiConfig,
    tenants: &[Tenant],
    span: Option<std::ops::Range<usize>>,
    err: ErrFn,
) -> Result<(), crate::ConfigError> {
    for hash in &api.operator_token_sha256 {
        if let Some(t) = tenants.iter().find(|t| t.token_sha256.contains(hash)) {
            let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
            return Err(err(
                span,
                format!("api.operator_token_sha256 entry \"{hex}\" is also a token of tenant {:?}; expected operator tokens apart from every tenant's token_sha256", t.name),
            ));
        }
    }
    Ok(())
}

pub(crate) fn store(
    raw: RawStore,
    err: ErrFn,
    size: SizeFn,
) -> Result<StoreConfig, crate::ConfigError> {
    let mut st = StoreConfig::default();
    if let Some(v) = &raw.dir {
        st.dir = crate::node::absolute(v, "store.dir", err)?;
    }
    if let Some(v) = &raw.max_age {
        st.max_age = duration(v, "store.max_age", err)?;
    }
    if let Some(v) = &raw.max_bytes {
        st.max_bytes = size(v, "store.max_bytes", 1 << 20)?;
    }
    Ok(st)
}

pub(crate) fn tenants(
    raw: Vec<RawTenant>,
    defaults: &StoreConfig,
    err: ErrFn,
    size: SizeFn,
) -> Result<Vec<Tenant>, crate::ConfigError> {
    let mut out: Vec<Tenant> = Vec::new();
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for t in raw {
        let name = t.name.get_ref().clone();
        if !valid_name(&name) {
            return Err(err(
                Some(t.name.span()),
                format!("tenants.name = {name:?} is not a valid tenant name; expected 1-63 lowercase letters, digits, - or _"),
            ));
        }
        if out.iter().any(|o| o.name == name) {
            return Err(err(
                Some(t.name.span()),
                format!("tenants.name = {name:?} is declared twice; expected each tenant once"),
            ));
        }
        let registry = registry(&t, &name, err)?;
        let namespaces = t
            .namespaces
            .map(|n| (n.span(), n.into_inner()))
            .unwrap_or_default();
        if namespaces.1.is_empty() {
            return Err(err(
                Some(t.name.span()),
                format!("tenant {name:?} has no namespaces; expected namespaces = [\"...\"] (containerd and Kubernetes namespaces it owns)"),
            ));
        }
        for ns in &namespaces.1 {
            if ns.is_empty() || ns.contains('/') {
                return Err(err(
                    Some(namespaces.0.clone()),
                    format!("tenant {name:?}: namespace {ns:?} is not a namespace name"),
                ));
            }
            if let Some(other) = owner.insert(ns.clone(), name.clone()) {
                return Err(err(
                    Some(namespaces.0.clone()),
                    format!("namespace {ns:?} belongs to both tenant {other:?} and tenant {name:?}; expected one owner"),
                ));
            }
        }
        let mut hashes = Vec::new();
        if let Some(tokens) = &t.token_sha256 {
            for h in tokens.get_ref() {
                let hash = hex32(h).ok_or_else(|| {
                    err(
                        Some(tokens.span()),
                        format!(
                            "tenant {name:?}: token_sha256 entry {:?} is not a SHA-256; expected 64 hex digits (sha256sum of the token)",
                            h
                        ),
                    )
                })?;
                // One token must name one tenant: a shared hash would let
                // the first tenant declared win silently.
                let holder = out
                    .iter()
                    .find(|o| o.token_sha256.contains(&hash))
                    .map(|o| o.name.as_str())
                    .or(hashes.contains(&hash).then_some(name.as_str()));
                if let Some(other) = holder {
                    return Err(err(
                        Some(tokens.span()),
                        format!("tenant {name:?}: token_sha256 entry {:?} is also a token of tenant {other:?}; expected every token hash once (one token, one tenant)", h.trim()),
                    ));
                }
                hashes.push(hash);
            }
        }
        let max_age = match &t.max_age {
            Some(v) => duration(v, "tenants.max_age", err)?,
            None => defaults.max_age,
        };
        let max_bytes = match &t.max_bytes {
            Some(v) => size(v, "tenants.max_bytes", 1 << 20)?,
            None => defaults.max_bytes,
        };
        out.push(Tenant {
            name,
            namespaces: namespaces.1,
            token_sha256: hashes,
            max_age,
            max_bytes,
            registry,
        });
    }
    Ok(out)
}

/// A tenant's `registry` keys: the location must be `host[:port]/prefix`;
/// credentials come as a username and a password file, both or neither.
fn registry(t: &RawTenant, name: &str, err: ErrFn) -> Result<Option<Registry>, crate::ConfigError> {
    let Some(loc) = &t.registry else {
        for (key, span) in [
            (
                "registry_username",
                t.registry_username.as_ref().map(|v| v.span()),
            ),
            (
                "registry_password_file",
                t.registry_password_file.as_ref().map(|v| v.span()),
            ),
        ] {
            if let Some(span) = span {
                return Err(err(
                    Some(span),
                    format!("tenant {name:?}: {key} is set without registry; expected registry = \"host[:port]/prefix\" beside it"),
                ));
            }
        }
        return Ok(None);
    };
    let v = loc.get_ref().trim().trim_end_matches('/');
    let (host, prefix) = v.split_once('/').unwrap_or((v, ""));
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        && host
            .rsplit_once(':')
            .is_none_or(|(_, p)| p.parse::<u16>().is_ok());
    let prefix_ok = prefix.split('/').all(|c| {
        prefix.is_empty()
            || (!c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)))
    });
    if v.contains("://") || !host_ok || !prefix_ok {
        return Err(err(
            Some(loc.span()),
            format!("tenant {name:?}: registry = {:?} is not a registry location; expected \"host[:port]/prefix\" (no scheme; lowercase path), like \"registry.example.com:5000/acme\"", loc.get_ref()),
        ));
    }
    let username = t.registry_username.as_ref().map(|u| u.get_ref().clone());
    let password_file = t
        .registry_password_file
        .as_ref()
        .map(|p| PathBuf::from(p.get_ref()));
    if username.is_some() != password_file.is_some() {
        return Err(err(
            Some(loc.span()),
            format!("tenant {name:?}: registry_username and registry_password_file go together; expected both or neither"),
        ));
    }
    Ok(Some(Registry {
        host: host.to_string(),
        prefix: prefix.to_string(),
        insecure: t.registry_insecure.unwrap_or(false),
        username,
        password_file,
    }))
}

/// Splits `http://host:port/path` (port defaults to 4318, path to `/v1/logs`).
/// `(https, host, port, path)` of an `http://` or `https://` endpoint.
fn http_endpoint(s: &str) -> Result<(bool, String, u16, String), String> {
    let (https, rest) = match s.split_once("://") {
        Some(("http", rest)) => (false, rest),
        Some(("https", rest)) => (true, rest),
        _ => return Err("is not an http:// or https:// URL; expected like \"http://127.0.0.1:4318\" or \"https://otel.example.com\"".into()),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let path = if path.is_empty() || path == "/" {
        "/v1/logs".to_string()
    } else {
        path.to_string()
    };
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("has spaces or control characters in its path".into());
    }
    // An IPv6 address is in brackets: [::1]:4318.
    let (host, port) = match authority.strip_prefix('[').and_then(|a| a.split_once(']')) {
        Some((h, p)) => (format!("[{h}]"), p.strip_prefix(':')),
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        },
    };
    let port = match port {
        None => 4318,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("has port {p:?}; expected a number from 1 to 65535"))?,
    };
    if host.is_empty() || host.contains('@') || host.bytes().any(|b| b <= b' ') {
        return Err(format!(
            "has host {host:?}; expected a host name or address"
        ));
    }
    Ok((https, host, port, path))
}

pub(crate) fn otlp(
    raw: RawOtlp,
    tenants: &[Tenant],
    err: ErrFn,
) -> Result<OtlpConfig, crate::ConfigError> {
    let endpoint = raw.endpoint.get_ref();
    let (https, host, port, path) = http_endpoint(endpoint.trim()).map_err(|why| {
        err(
            Some(raw.endpoint.span()),
            format!("export.otlp.endpoint = {endpoint:?} {why}"),
        )
    })?;
    let mut names = Vec::new();
    if let Some(t) = &raw.tenants {
        for name in t.get_ref() {
            if !tenants.iter().any(|d| &d.name == name) {
                return Err(err(
                    Some(t.span()),
                    format!("export.otlp.tenants: {name:?} is not a declared tenant; expected names from [[tenants]]"),
                ));
            }
            names.push(name.clone());
        }
    }
    let mut headers = Vec::new();
    for (k, v) in raw.headers {
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b))
        };
        if !token(&k) || v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(err(
                Some(raw.endpoint.span()),
                format!("export.otlp.headers: {k:?} is not a valid header (name or value); expected a token name and a one-line value"),
            ));
        }
        headers.push((k, v));
    }
    let (syscalls, logs) = (raw.syscalls.unwrap_or(true), raw.logs.unwrap_or(true));
    if !syscalls && !logs {
        return Err(err(
            Some(raw.endpoint.span()),
            "export.otlp: syscalls = false and logs = false leave nothing to send; expected one of them true (or no [export.otlp])".into(),
        ));
    }
    let ca = match &raw.ca {
        None => None,
        Some(v) if !https => {
            return Err(err(
                Some(v.span()),
                format!("export.otlp.ca = {:?} is set but the endpoint {endpoint:?} is plain http; expected an https:// endpoint, or no ca", v.get_ref()),
            ))
        }
        Some(v) => Some(crate::node::absolute(v, "export.otlp.ca", err)?),
    };
    let gzip = match &raw.compression {
        None => true,
        Some(v) => match v.get_ref().as_str() {
            "gzip" => true,
            "none" => false,
            other => {
                return Err(err(
                    Some(v.span()),
                    format!("export.otlp.compression = {other:?} is not known; expected \"gzip\" or \"none\""),
                ))
            }
        },
    };
    Ok(OtlpConfig {
        https,
        host,
        port,
        path,
        syscalls,
        logs,
        tenants: names,
        headers,
        ca,
        gzip,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::NodeConfig;

    fn parse(text: &str) -> Result<NodeConfig, crate::ConfigError> {
        NodeConfig::parse(text, Path::new("/etc/crt/config.toml"))
    }

    #[test]
    fn tls_needs_both_files_as_absolute_paths() {
        let c = parse("[api]\ntls_cert = \"/etc/crt/tls.crt\"\ntls_key = \"/etc/crt/tls.key\"\n")
            .unwrap();
        let tls = c.api.tls.unwrap();
        assert_eq!(tls.cert, Path::new("/etc/crt/tls.crt"));
        assert_eq!(tls.key, Path::new("/etc/crt/tls.key"));
        assert_eq!(parse("").unwrap().api.tls, None);
        let e = parse("[api]\ntls_cert = \"/etc/crt/tls.crt\"\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(
            e.message
                .contains("api.tls_cert = \"/etc/crt/tls.crt\" is set but api.tls_key is not"),
            "{e}"
        );
        let e = parse("[api]\ntls_key = \"/k\"\n").unwrap_err();
        assert!(
            e.message
                .contains("api.tls_key = \"/k\" is set but api.tls_cert is not"),
            "{e}"
        );
        let e = parse("[api]\ntls_cert = \"tls.crt\"\ntls_key = \"/k\"\n").unwrap_err();
        assert!(
            e.message
                .contains("api.tls_cert = \"tls.crt\" is not an absolute path"),
            "{e}"
        );
    }

    #[test]
    fn operator_tokens_are_hashes_apart_from_every_tenants() {
        let watch = "a".repeat(64);
        let acme = "b".repeat(64);
        let tenant = format!(
            "[[tenants]]\nname = \"acme\"\nnamespaces = [\"acme\"]\ntoken_sha256 = [\"{acme}\"]\n"
        );
        let c = parse(&format!(
            "[api]\noperator_token_sha256 = [\"{watch}\", \"{}\"]\n{tenant}",
            "C".repeat(64)
        ))
        .unwrap();
        assert_eq!(c.api.operator_token_sha256, vec![[0xaa; 32], [0xcc; 32]]);
        assert!(parse("").unwrap().api.operator_token_sha256.is_empty());
        let e = parse("[api]\noperator_token_sha256 = [\"abc\"]\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(
            e.message
                .contains("api.operator_token_sha256 entry \"abc\" is not a SHA-256")
                && e.message.contains("64 hex digits"),
            "{e}"
        );
        let e = parse(&format!(
            "[api]\noperator_token_sha256 = [\"{}\"]\n",
            "g".repeat(64)
        ))
        .unwrap_err();
        assert!(e.message.contains("is not a SHA-256"), "{e}");
        let e = parse(&format!(
            "[api]\noperator_token_sha256 = [\"{watch}\", \"{watch}\"]\n"
        ))
        .unwrap_err();
        assert!(e.message.contains("listed twice"), "{e}");
        let e = parse(&format!(
            "[api]\noperator_token_sha256 = [\"{}\"]\n{tenant}",
            acme.to_uppercase()
        ))
        .unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(
            e.message.contains(&format!(
                "api.operator_token_sha256 entry \"{acme}\" is also a token of tenant \"acme\""
            )),
            "{e}"
        );
    }

    #[test]
    fn a_listener_off_loopback_needs_tls() {
        for ok in [
            "",
            "[api]\nlisten = \"off\"\n",
            "[api]\nlisten = \"127.0.0.1:7420\"\n",
            "[api]\nlisten = \"[::1]:7420\"\n",
            "[api]\nlisten = \"0.0.0.0:7420\"\ntls_cert = \"/c\"\ntls_key = \"/k\"\n",
        ] {
            let c = parse(ok).unwrap();
            assert_eq!(c.api.check_listen_is_safe(), Ok(()), "{ok}");
        }
        for (text, value) in [
            ("[api]\nlisten = \"0.0.0.0:7420\"\n", "0.0.0.0:7420"),
            ("[api]\nlisten = \"10.1.2.3:7420\"\n", "10.1.2.3:7420"),
            ("[api]\nlisten = \"[::]:7420\"\n", "[::]:7420"),
        ] {
            let c = parse(text).unwrap();
            let e = c.api.check_listen_is_safe().unwrap_err();
            assert!(e.contains(&format!("api.listen = \"{value}\"")), "{e}");
            assert!(e.contains("api.tls_cert and api.tls_key"), "{e}");
        }
    }
}
