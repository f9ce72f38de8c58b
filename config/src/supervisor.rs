//! The parts of the node config that crtd reads: `[api]` (where it
//! listens), `[store]` (its history) and `[[tenants]]` (who may see what).
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
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 7420))),
            socket: PathBuf::from("/run/crt/crtd.sock"),
            metrics_listen: None,
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
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    listen: Option<Spanned<String>>,
    socket: Option<Spanned<String>>,
    metrics_listen: Option<Spanned<String>>,
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
        if !v.get_ref().starts_with('/') {
            return Err(err(
                Some(v.span()),
                format!(
                    "api.socket = {:?} is not an absolute path; expected a path starting with /",
                    v.get_ref()
                ),
            ));
        }
        api.socket = PathBuf::from(v.get_ref());
    }
    Ok(api)
}

pub(crate) fn store(
    raw: RawStore,
    err: ErrFn,
    size: SizeFn,
) -> Result<StoreConfig, crate::ConfigError> {
    let mut st = StoreConfig::default();
    if let Some(v) = &raw.dir {
        if !v.get_ref().starts_with('/') {
            return Err(err(
                Some(v.span()),
                format!(
                    "store.dir = {:?} is not an absolute path; expected a path starting with /",
                    v.get_ref()
                ),
            ));
        }
        st.dir = PathBuf::from(v.get_ref());
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
                hashes.push(hex32(h).ok_or_else(|| {
                    err(
                        Some(tokens.span()),
                        format!(
                            "tenant {name:?}: token_sha256 entry {:?} is not a SHA-256; expected 64 hex digits (sha256sum of the token)",
                            h
                        ),
                    )
                })?);
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
        });
    }
    Ok(out)
}
