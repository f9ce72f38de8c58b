//! The node configuration, `/etc/crt/config.toml` (or the file named by
//! `CRT_CONFIG`). A missing file at the default path means the documented
//! defaults; a broken one is refused with the file, the line and what is
//! wrong.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::supervisor::{
    self, ApiConfig, OtlpConfig, RawApi, RawExport, RawStore, RawTenant, StoreConfig, Tenant,
};

/// Where the node config lives unless `CRT_CONFIG` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/crt/config.toml";
/// The environment variable that names another config file.
pub const ENV_VAR: &str = "CRT_CONFIG";

/// The whole node configuration, with defaults filled in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeConfig {
    pub runtime: RuntimeConfig,
    pub trace: TraceConfig,
    pub api: ApiConfig,
    pub kubernetes: KubernetesConfig,
    pub debug: DebugConfig,
    pub store: StoreConfig,
    pub tenants: Vec<Tenant>,
    /// `[export.otlp]`: where crtd sends events as OpenTelemetry logs, if anywhere.
    pub otlp: Option<OtlpConfig>,
    /// The file this was read from; `None` for built-in defaults.
    pub source: Option<PathBuf>,
}

/// `[runtime]`: which runc-compatible binary creates containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// A name looked up on PATH (`runc`, `crun`, `youki`) or an absolute path.
    pub binary: String,
    /// The runtime's `--root` state directory; `None`: `/run/crt/<binary name>`.
    pub root: Option<PathBuf>,
    /// Pass `--systemd-cgroup` to the runtime.
    pub systemd_cgroup: bool,
}

/// `[trace]`: who may opt in, and where and how much is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceConfig {
    /// Honour `crt.dev/trace` at all.
    pub enabled: bool,
    /// containerd namespaces whose containers may opt in; `*` matches all.
    pub namespaces: Vec<String>,
    /// Traces live in `<state_dir>/traces/<namespace>/<container>/`.
    pub state_dir: PathBuf,
    /// Largest a container's trace grows before its oldest events are deleted.
    pub max_trace_bytes: u64,
    /// All traces on the node together: beyond this, the traces of
    /// containers that are gone are deleted, oldest first.
    pub max_total_bytes: u64,
    /// Size of one trace segment file.
    pub segment_bytes: u64,
    /// In-memory queue per container between the notify loop and storage;
    /// events beyond it are dropped and counted.
    pub queue_bytes: u64,
    /// Where the shim's listener sockets live (mode 0700).
    pub listener_dir: PathBuf,
    /// Ask the kernel for synchronous wake-ups (Linux 6.6+).
    pub sync_wakeup: bool,
    /// Record each traced syscall's result and duration from its exit (a
    /// BPF program on the raw `sys_exit` tracepoint, loaded by the shims of
    /// traced containers). `false`: lines end in `= ?`.
    pub results: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            binary: "runc".into(),
            root: None,
            systemd_cgroup: false,
        }
    }
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            enabled: true,
            namespaces: vec!["*".into()],
            state_dir: PathBuf::from("/var/lib/crt"),
            max_trace_bytes: 128 << 20,
            max_total_bytes: 4 << 30,
            segment_bytes: 8 << 20,
            queue_bytes: 1 << 20,
            listener_dir: PathBuf::from("/run/crt/listeners"),
            sync_wakeup: true,
            results: true,
        }
    }
}

/// `[kubernetes]`: where the Kubernetes identity of a container can be
/// trusted. containerd's CRI plugin writes `io.kubernetes.cri.*` annotations
/// itself, but only in its own containerd namespace; anywhere else whoever
/// creates a container chooses its annotations, so they decide nothing there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubernetesConfig {
    /// The containerd namespace of containerd's CRI plugin.
    pub cri_namespace: String,
    /// `[kubernetes.service_accounts]`: accept the cluster's service-account
    /// tokens as tenant credentials; `None`: only the static hashed tokens.
    pub service_accounts: Option<ServiceAccountsConfig>,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            cri_namespace: "k8s.io".into(),
            service_accounts: None,
        }
    }
}

/// How crtd checks a Kubernetes service-account token offline: who must have
/// issued it, for whom, and where the issuer's public keys are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccountsConfig {
    /// Must equal the token's `iss`.
    pub issuer: String,
    /// The token's `aud` must contain it.
    pub audience: String,
    pub keys: IssuerKeys,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
}

/// Where the issuer's public keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IssuerKeys {
    /// A JWKS document on the node (`kubectl get --raw /openid/v1/jwks`),
    /// read again when it changes.
    JwksFile(PathBuf),
    /// The issuer's OpenID discovery document; its `jwks_uri` is fetched and
    /// the keys cached. `ca`: the CA bundle for https, else the system's roots.
    Discovery { url: String, ca: Option<PathBuf> },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawKubernetes {
    cri_namespace: Option<Spanned<String>>,
    service_accounts: Option<Spanned<RawServiceAccounts>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServiceAccounts {
    issuer: Option<Spanned<String>>,
    audience: Option<Spanned<String>>,
    jwks_file: Option<Spanned<String>>,
    discovery_url: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
    leeway: Option<Spanned<String>>,
}

/// `[kubernetes.service_accounts]`, checked.
fn service_accounts(
    raw: Spanned<RawServiceAccounts>,
    err: &dyn Fn(Option<std::ops::Range<usize>>, String) -> ConfigError,
) -> Result<ServiceAccountsConfig, ConfigError> {
    const KEY: &str = "kubernetes.service_accounts";
    let whole = raw.span();
    let raw = raw.into_inner();
    let required = |v: Option<Spanned<String>>, key: &str, expected: &str| {
        let v = v.ok_or_else(|| {
            err(
                Some(whole.clone()),
                format!("{KEY}.{key} is missing; expected {expected}"),
            )
        })?;
        let s = v.get_ref().trim();
        if s.is_empty() || s.bytes().any(|b| b < b' ') {
            return Err(err(
                Some(v.span()),
                format!(
                    "{KEY}.{key} = {:?} is not usable; expected {expected}",
                    v.get_ref()
                ),
            ));
        }
        Ok(s.to_string())
    };
    let issuer = required(
        raw.issuer,
        "issuer",
        "the cluster's service-account issuer, exactly as in its tokens' iss (like \"https://kubernetes.default.svc.cluster.local\")",
    )?;
    let audience = required(
        raw.audience,
        "audience",
        "the audience the projected tokens are requested for (like \"crt\")",
    )?;
    let keys = match (raw.jwks_file, raw.discovery_url) {
        (Some(f), None) => {
            if let Some(ca) = &raw.ca_file {
                return Err(err(
                    Some(ca.span()),
                    format!("{KEY}.ca_file = {:?} is set with jwks_file; expected ca_file only with discovery_url (jwks_file is read from disk)", ca.get_ref()),
                ));
            }
            IssuerKeys::JwksFile(absolute(&f, &format!("{KEY}.jwks_file"), err)?)
        }
        (None, Some(u)) => {
            let url = u.get_ref().trim();
            let https = url.starts_with("https://");
            if !(https || url.starts_with("http://")) || url.len() < "http://x".len() {
                return Err(err(
                    Some(u.span()),
                    format!("{KEY}.discovery_url = {:?} is not an http(s) URL; expected the issuer's discovery document, like \"https://issuer.example/.well-known/openid-configuration\"", u.get_ref()),
                ));
            }
            let ca = match &raw.ca_file {
                Some(c) if !https => {
                    return Err(err(
                        Some(c.span()),
                        format!("{KEY}.ca_file = {:?} is set but discovery_url {url:?} is plain http; expected an https:// discovery_url, or no ca_file", c.get_ref()),
                    ))
                }
                Some(c) => Some(absolute(c, &format!("{KEY}.ca_file"), err)?),
                None => None,
            };
            IssuerKeys::Discovery {
                url: url.to_string(),
                ca,
            }
        }
        (Some(f), Some(_)) => {
            return Err(err(
                Some(f.span()),
                format!("{KEY} has both jwks_file and discovery_url; expected exactly one: the issuer's keys in a file, or its discovery document"),
            ))
        }
        (None, None) => {
            return Err(err(
                Some(whole),
                format!("{KEY} has neither jwks_file nor discovery_url; expected exactly one: the issuer's keys in a file (kubectl get --raw /openid/v1/jwks), or its discovery document"),
            ))
        }
    };
    let leeway = match raw.leeway {
        None => Duration::from_secs(30),
        Some(l) => match supervisor::parse_duration(l.get_ref()) {
            Some(d) if d <= Duration::from_secs(600) => d,
            _ => {
                return Err(err(
                    Some(l.span()),
                    format!("{KEY}.leeway = {:?} is not a clock skew crtd allows; expected a span of at most 10 minutes, like \"30s\" or \"2m\"", l.get_ref()),
                ))
            }
        },
    };
    Ok(ServiceAccountsConfig {
        issuer,
        audience,
        keys,
        leeway,
    })
}

/// `[debug]`: debug clones, which crtd makes through containerd's API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebugConfig {
    /// Whether tenants may clone their containers.
    pub enabled: bool,
    /// containerd's gRPC socket.
    pub containerd_address: PathBuf,
    /// The CRIU binary live clones use (checkpoint and restore through
    /// runc); `None`: `criu` from the PATH.
    pub criu: Option<PathBuf>,
}

impl Default for DebugConfig {
    fn default() -> Self {
        DebugConfig {
            enabled: true,
            containerd_address: PathBuf::from("/run/containerd/containerd.sock"),
            criu: None,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDebug {
    enabled: Option<bool>,
    containerd_address: Option<Spanned<String>>,
    criu: Option<Spanned<String>>,
}

/// A config that could not be used: which file, which line, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(
                f,
                "node config {} line {line}: {}",
                self.path.display(),
                self.message
            ),
            None => write!(f, "node config {}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    runtime: RawRuntime,
    #[serde(default)]
    trace: RawTrace,
    #[serde(default)]
    api: RawApi,
    #[serde(default)]
    kubernetes: RawKubernetes,
    #[serde(default)]
    debug: RawDebug,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    tenants: Vec<RawTenant>,
    #[serde(default)]
    export: RawExport,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRuntime {
    binary: Option<Spanned<String>>,
    root: Option<Spanned<String>>,
    systemd_cgroup: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTrace {
    enabled: Option<bool>,
    namespaces: Option<Spanned<Vec<String>>>,
    state_dir: Option<Spanned<String>>,
    max_trace_bytes: Option<Spanned<Size>>,
    max_total_bytes: Option<Spanned<Size>>,
    segment_bytes: Option<Spanned<Size>>,
    queue_bytes: Option<Spanned<Size>>,
    listener_dir: Option<Spanned<String>>,
    sync_wakeup: Option<bool>,
    results: Option<bool>,
}

/// A size written as a number of bytes or a string with a unit.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(crate) enum Size {
    Bytes(i64),
    Text(String),
}

/// Parses `128MiB`, `64KiB`, `1GiB`, `4096`, `10MB` into bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "k" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl NodeConfig {
    /// Loads the config named by `CRT_CONFIG`, or the default file; a
    /// missing default file gives the defaults.
    pub fn load_default() -> Result<NodeConfig, ConfigError> {
        match std::env::var_os(ENV_VAR) {
            Some(p) if !p.is_empty() => NodeConfig::load(Path::new(&p)),
            _ => NodeConfig::load_or_default(Path::new(DEFAULT_PATH)),
        }
    }

    /// Loads `path`; a missing file gives the defaults.
    pub fn load_or_default(path: &Path) -> Result<NodeConfig, ConfigError> {
        match fs::read_to_string(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(NodeConfig::default()),
            Err(e) => Err(ConfigError {
                path: path.into(),
                line: None,
                message: format!("cannot read: {e}"),
            }),
            Ok(text) => NodeConfig::parse(&text, path),
        }
    }

    /// Loads `path`, which must exist.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.into(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        NodeConfig::parse(&text, path)
    }

    /// Parses config text; `path` is named in errors.
    pub fn parse(text: &str, path: &Path) -> Result<NodeConfig, ConfigError> {
        let err = |span: Option<std::ops::Range<usize>>, message: String| ConfigError {
            path: path.into(),
            line: span.map(|s| line_of(text, s.start)),
            message,
        };
        let raw: RawFile =
            toml::from_str(text).map_err(|e| err(e.span(), e.message().trim().to_string()))?;
        let mut cfg = NodeConfig {
            source: Some(path.into()),
            ..NodeConfig::default()
        };

        if let Some(b) = raw.runtime.binary {
            let v = b.get_ref().trim();
            if v.is_empty() {
                return Err(err(
                    Some(b.span()),
                    "runtime.binary is empty; expected a runtime name on PATH (runc, crun, youki) or an absolute path".into(),
                ));
            }
            if v.contains('/') && !v.starts_with('/') {
                return Err(err(
                    Some(b.span()),
                    format!("runtime.binary = {v:?} is a relative path; expected a name on PATH or an absolute path"),
                ));
            }
            cfg.runtime.binary = v.to_string();
        }
        if let Some(r) = raw.runtime.root {
            cfg.runtime.root = Some(absolute(&r, "runtime.root", &err)?);
        }
        if let Some(s) = raw.runtime.systemd_cgroup {
            cfg.runtime.systemd_cgroup = s;
        }

        let t = raw.trace;
        if let Some(e) = t.enabled {
            cfg.trace.enabled = e;
        }
        if let Some(ns) = t.namespaces {
            for n in ns.get_ref() {
                if n.is_empty() {
                    return Err(err(
                        Some(ns.span()),
                        "trace.namespaces has an empty name; expected containerd namespace names or \"*\"".into(),
                    ));
                }
            }
            cfg.trace.namespaces = ns.into_inner();
        }
        if let Some(d) = t.state_dir {
            cfg.trace.state_dir = absolute(&d, "trace.state_dir", &err)?;
        }
        if let Some(d) = t.listener_dir {
            let p = absolute(&d, "trace.listener_dir", &err)?;
            // sun_path holds 108 bytes; a listener name adds about 30.
            if p.as_os_str().len() > 70 {
                return Err(err(
                    Some(d.span()),
                    format!(
                        "trace.listener_dir = {:?} is {} bytes long; expected at most 70 (unix socket paths are short)",
                        d.get_ref(),
                        p.as_os_str().len()
                    ),
                ));
            }
            cfg.trace.listener_dir = p;
        }
        if let Some(w) = t.sync_wakeup {
            cfg.trace.sync_wakeup = w;
        }
        if let Some(r) = t.results {
            cfg.trace.results = r;
        }
        let size = |v: &Spanned<Size>, key: &str, min: u64| -> Result<u64, ConfigError> {
            let (bytes, shown) = match v.get_ref() {
                Size::Bytes(n) => (u64::try_from(*n).ok(), n.to_string()),
                Size::Text(s) => (parse_size(s), format!("{s:?}")),
            };
            match bytes {
                Some(b) if b >= min => Ok(b),
                Some(_) => Err(err(
                    Some(v.span()),
                    format!("{key} = {shown} is too small; expected at least {min} bytes"),
                )),
                None => Err(err(
                    Some(v.span()),
                    format!("{key} = {shown} is not a size; expected bytes as a number or a string like \"128MiB\", \"64KiB\", \"1GiB\""),
                )),
            }
        };
        if let Some(v) = &t.max_trace_bytes {
            cfg.trace.max_trace_bytes = size(v, "trace.max_trace_bytes", 64 << 10)?;
        }
        if let Some(v) = &t.segment_bytes {
            cfg.trace.segment_bytes = size(v, "trace.segment_bytes", 64 << 10)?;
        }
        if let Some(v) = &t.max_total_bytes {
            cfg.trace.max_total_bytes = size(v, "trace.max_total_bytes", 1 << 20)?;
        }
        if let Some(v) = &t.queue_bytes {
            cfg.trace.queue_bytes = size(v, "trace.queue_bytes", 64 << 10)?;
        }
        if cfg.trace.segment_bytes > cfg.trace.max_trace_bytes {
            let span = t
                .segment_bytes
                .as_ref()
                .map(|s| s.span())
                .or(t.max_trace_bytes.as_ref().map(|s| s.span()));
            return Err(err(
                span,
                format!(
                    "trace.segment_bytes ({}) is larger than trace.max_trace_bytes ({}); expected a segment to fit in the trace",
                    cfg.trace.segment_bytes, cfg.trace.max_trace_bytes
                ),
            ));
        }
        if let Some(n) = raw.kubernetes.cri_namespace {
            let v = n.get_ref().trim();
            if v.is_empty() || v.contains('/') || v.bytes().any(|b| b <= b' ') {
                return Err(err(
                    Some(n.span()),
                    format!("kubernetes.cri_namespace = {:?} is not a containerd namespace name; expected the namespace containerd's CRI plugin uses, like \"k8s.io\"", n.get_ref()),
                ));
            }
            cfg.kubernetes.cri_namespace = v.to_string();
        }
        if let Some(sa) = raw.kubernetes.service_accounts {
            cfg.kubernetes.service_accounts = Some(service_accounts(sa, &err)?);
        }
        if let Some(e) = raw.debug.enabled {
            cfg.debug.enabled = e;
        }
        if let Some(a) = raw.debug.containerd_address {
            if !a.get_ref().starts_with('/') {
                return Err(err(
                    Some(a.span()),
                    format!("debug.containerd_address = {:?} is not an absolute path; expected containerd's socket, like \"/run/containerd/containerd.sock\"", a.get_ref()),
                ));
            }
            cfg.debug.containerd_address = PathBuf::from(a.get_ref());
        }
        if let Some(c) = raw.debug.criu {
            if !c.get_ref().starts_with('/') {
                return Err(err(
                    Some(c.span()),
                    format!("debug.criu = {:?} is not an absolute path; expected the CRIU binary live clones use, like \"/usr/local/sbin/criu\"", c.get_ref()),
                ));
            }
            cfg.debug.criu = Some(PathBuf::from(c.get_ref()));
        }
        let operator_tokens = raw.api.operator_tokens_span();
        cfg.api = supervisor::api(raw.api, &err)?;
        cfg.store = supervisor::store(raw.store, &err, &size)?;
        cfg.tenants = supervisor::tenants(raw.tenants, &cfg.store, &err, &size)?;
        supervisor::check_operator_tokens(&cfg.api, &cfg.tenants, operator_tokens, &err)?;
        cfg.otlp = match raw.export.otlp {
            Some(o) => Some(supervisor::otlp(o, &cfg.tenants, &err)?),
            None => None,
        };
        if cfg.trace.max_trace_bytes > cfg.trace.max_total_bytes {
            let span = t
                .max_total_bytes
                .as_ref()
                .map(|s| s.span())
                .or(t.max_trace_bytes.as_ref().map(|s| s.span()));
            return Err(err(
                span,
                format!(
                    "trace.max_trace_bytes ({}) is larger than trace.max_total_bytes ({}); expected one trace to fit in the node's total",
                    cfg.trace.max_trace_bytes, cfg.trace.max_total_bytes
                ),
            ));
        }
        Ok(cfg)
    }

    /// May containers in this containerd namespace opt in to tracing?
    pub fn trace_allowed_in(&self, namespace: &str) -> bool {
        self.trace.enabled
            && self
                .trace
                .namespaces
                .iter()
                .any(|n| n == "*" || n == namespace)
    }

    /// The runtime's state root for containers in `namespace`.
    pub fn runtime_root(&self, namespace: &str) -> PathBuf {
        match &self.runtime.root {
            Some(r) => r.join(namespace),
            None => {
                let name = Path::new(&self.runtime.binary)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "runtime".into());
                PathBuf::from("/run/crt").join(name).join(namespace)
            }
        }
    }

    /// The trace directory of one container.
    pub fn trace_dir(&self, namespace: &str, container: &str) -> PathBuf {
        self.trace
            .state_dir
            .join("traces")
            .join(namespace)
            .join(container)
    }
}

/// A path key's value, which must be absolute.
pub(crate) fn absolute(
    v: &Spanned<String>,
    key: &str,
    err: &dyn Fn(Option<std::ops::Range<usize>>, String) -> ConfigError,
) -> Result<PathBuf, ConfigError> {
    let s = v.get_ref();
    if !s.starts_with('/') {
        return Err(err(
            Some(v.span()),
            format!("{key} = {s:?} is not an absolute path; expected a path starting with /"),
        ));
    }
    Ok(PathBuf::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
        NodeConfig::parse(text, Path::new("/etc/crt/config.toml"))
    }

    #[test]
    fn an_empty_file_gives_the_documented_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.runtime.binary, "runc");
        assert_eq!(c.trace.state_dir, PathBuf::from("/var/lib/crt"));
        assert_eq!(c.trace.max_trace_bytes, 128 << 20);
        assert!(c.trace_allowed_in("anything"));
    }

    #[test]
    fn a_missing_default_file_gives_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let c = NodeConfig::load_or_default(&dir.path().join("config.toml")).unwrap();
        assert_eq!(c, NodeConfig::default());
    }

    #[test]
    fn an_explicitly_named_missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = NodeConfig::load(&dir.path().join("nope.toml")).unwrap_err();
        assert!(e.to_string().contains("nope.toml"), "{e}");
    }

    #[test]
    fn every_key_is_read() {
        let c = parse(
            r#"
[runtime]
binary = "crun"
root = "/run/x"
systemd_cgroup = true

[trace]
enabled = true
namespaces = ["k8s.io", "dev"]
state_dir = "/srv/crt"
max_trace_bytes = "1GiB"
max_total_bytes = "8GiB"
segment_bytes = 1048576
queue_bytes = "512KiB"
listener_dir = "/run/crt/l"
sync_wakeup = false
results = false
"#,
        )
        .unwrap();
        assert_eq!(c.runtime.binary, "crun");
        assert_eq!(c.runtime_root("default"), PathBuf::from("/run/x/default"));
        assert!(c.runtime.systemd_cgroup);
        assert!(c.trace_allowed_in("dev"));
        assert!(!c.trace_allowed_in("default"));
        assert_eq!(c.trace.max_trace_bytes, 1 << 30);
        assert_eq!(c.trace.max_total_bytes, 8 << 30);
        assert_eq!(c.trace.segment_bytes, 1 << 20);
        assert_eq!(c.trace.queue_bytes, 512 << 10);
        assert!(!c.trace.sync_wakeup);
        assert!(!c.trace.results);
        assert!(NodeConfig::default().trace.results);
        assert_eq!(
            c.trace_dir("dev", "web"),
            PathBuf::from("/srv/crt/traces/dev/web")
        );
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_line() {
        let e = parse("[runtime]\nbinary = \"runc\"\nbinry = \"crun\"\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("binry"), "{e}");
        assert!(
            e.to_string()
                .starts_with("node config /etc/crt/config.toml line 3: "),
            "{e}"
        );
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let e = parse("[trace]\nenabled = true\nstate_dir = \n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
    }

    #[test]
    fn a_wrong_type_names_the_key_line() {
        let e = parse("[trace]\n\nenabled = \"yes\"\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
    }

    #[test]
    fn a_bad_size_names_the_key_the_value_and_the_form_expected() {
        let e = parse("[trace]\nmax_trace_bytes = \"12XB\"\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("trace.max_trace_bytes"), "{e}");
        assert!(e.message.contains("12XB"), "{e}");
        assert!(e.message.contains("128MiB"), "{e}");
    }

    #[test]
    fn relative_paths_are_refused() {
        let e = parse("[trace]\nstate_dir = \"var/lib/crt\"\n").unwrap_err();
        assert!(e.message.contains("absolute"), "{e}");
        let e = parse("[runtime]\nbinary = \"bin/runc\"\n").unwrap_err();
        assert!(e.message.contains("relative"), "{e}");
    }

    #[test]
    fn a_segment_larger_than_the_trace_is_refused() {
        let e =
            parse("[trace]\nmax_trace_bytes = \"1MiB\"\nsegment_bytes = \"8MiB\"\n").unwrap_err();
        assert_eq!(e.line, Some(3));
    }

    #[test]
    fn one_trace_must_fit_in_the_total() {
        let e =
            parse("[trace]\nmax_trace_bytes = \"2GiB\"\nmax_total_bytes = \"1GiB\"\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("max_total_bytes"), "{e}");
    }

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn tenants_api_and_store_are_read() {
        let c = parse(&format!(
            r#"
[api]
listen = "127.0.0.1:7421"
socket = "/run/x/crtd.sock"
metrics_listen = "127.0.0.1:9420"

[store]
dir = "/srv/store"
max_age = "2d"
max_bytes = "1GiB"

[[tenants]]
name = "acme"
namespaces = ["acme", "acme-prod"]
token_sha256 = ["{HASH}"]
max_age = "12h"

[[tenants]]
name = "globex"
namespaces = ["globex"]
"#
        ))
        .unwrap();
        assert_eq!(c.api.listen, Some("127.0.0.1:7421".parse().unwrap()));
        assert_eq!(c.api.socket, PathBuf::from("/run/x/crtd.sock"));
        assert_eq!(
            c.api.metrics_listen,
            Some("127.0.0.1:9420".parse().unwrap())
        );
        assert_eq!(c.store.dir, PathBuf::from("/srv/store"));
        assert_eq!(c.tenants.len(), 2);
        let acme = &c.tenants[0];
        assert_eq!(acme.namespaces, ["acme", "acme-prod"]);
        assert_eq!(acme.token_sha256[0][0], 0x9f);
        assert_eq!(acme.max_age, std::time::Duration::from_secs(12 * 3600));
        assert_eq!(acme.max_bytes, 1 << 30);
        assert_eq!(
            c.tenants[1].max_age,
            std::time::Duration::from_secs(2 * 86400)
        );
    }

    #[test]
    fn a_tenants_registry_is_read_and_checked() {
        let c = parse(
            "[[tenants]]\nname = \"a\"\nnamespaces = [\"a\"]\nregistry = \"reg.local:5000/team/a\"\nregistry_insecure = true\nregistry_username = \"bot\"\nregistry_password_file = \"/etc/crt/reg-pass\"\n",
        )
        .unwrap();
        let r = c.tenants[0].registry.as_ref().unwrap();
        assert_eq!(
            (r.host.as_str(), r.prefix.as_str()),
            ("reg.local:5000", "team/a")
        );
        assert!(r.insecure);
        assert_eq!(r.username.as_deref(), Some("bot"));
        assert_eq!(r.location(), "reg.local:5000/team/a");
        for bad in [
            "https://reg.local/a",
            "reg.local:port/a",
            "reg.local/Upper",
            "",
        ] {
            let e = parse(&format!(
                "[[tenants]]\nname = \"a\"\nnamespaces = [\"a\"]\nregistry = \"{bad}\"\n"
            ))
            .unwrap_err();
            assert!(
                e.message.contains("registry = ")
                    && e.message.contains("expected \"host[:port]/prefix\""),
                "{bad}: {e}"
            );
        }
        let e = parse(
            "[[tenants]]\nname = \"a\"\nnamespaces = [\"a\"]\nregistry = \"r/a\"\nregistry_username = \"bot\"\n",
        )
        .unwrap_err();
        assert!(e.message.contains("registry_password_file"), "{e}");
        let e =
            parse("[[tenants]]\nname = \"a\"\nnamespaces = [\"a\"]\nregistry_username = \"bot\"\n")
                .unwrap_err();
        assert!(
            e.message
                .contains("registry_username is set without registry"),
            "{e}"
        );
    }

    #[test]
    fn the_api_defaults_to_loopback_and_a_root_socket() {
        let c = parse("").unwrap();
        assert_eq!(c.api.listen, Some("127.0.0.1:7420".parse().unwrap()));
        assert_eq!(c.api.socket, PathBuf::from("/run/crt/crtd.sock"));
        assert!(c.tenants.is_empty());
        let c = parse("[api]\nlisten = \"off\"\n").unwrap();
        assert_eq!(c.api.listen, None);
    }

    #[test]
    fn a_namespace_with_two_tenants_is_refused_naming_both() {
        let e = parse(
            "[[tenants]]\nname = \"a\"\nnamespaces = [\"shared\"]\n\n[[tenants]]\nname = \"b\"\nnamespaces = [\"shared\"]\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(7));
        assert!(
            e.message
                .contains("\"shared\" belongs to both tenant \"a\" and tenant \"b\""),
            "{e}"
        );
    }

    #[test]
    fn one_token_hash_under_two_tenants_is_refused_naming_both() {
        let h = "a".repeat(64);
        let e = parse(&format!(
            "[[tenants]]\nname = \"a\"\nnamespaces = [\"a\"]\ntoken_sha256 = [\"{h}\"]\n\n[[tenants]]\nname = \"b\"\nnamespaces = [\"b\"]\ntoken_sha256 = [\"{h}\"]\n"
        ))
        .unwrap_err();
        assert_eq!(e.line, Some(9));
        assert!(
            e.message.contains("tenant \"b\"")
                && e.message.contains("also a token of tenant \"a\""),
            "{e}"
        );
        // Twice in one tenant is a slip of the same kind.
        let e = parse(&format!(
            "[[tenants]]\nname = \"a\"\nnamespaces = [\"a\"]\ntoken_sha256 = [\"{h}\", \"{}\"]\n",
            h.to_uppercase()
        ))
        .unwrap_err();
        assert!(e.message.contains("also a token of tenant \"a\""), "{e}");
    }

    #[test]
    fn the_cri_namespace_defaults_to_k8s_io_and_is_checked() {
        assert_eq!(parse("").unwrap().kubernetes.cri_namespace, "k8s.io");
        let d = parse("").unwrap().debug;
        assert!(d.enabled);
        assert_eq!(
            d.containerd_address,
            Path::new("/run/containerd/containerd.sock")
        );
        let d = parse("[debug]\nenabled = false\ncontainerd_address = \"/run/c.sock\"\n")
            .unwrap()
            .debug;
        assert!(!d.enabled);
        assert_eq!(d.containerd_address, Path::new("/run/c.sock"));
        let e = parse("[debug]\ncontainerd_address = \"c.sock\"\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(
            e.message.contains("debug.containerd_address = \"c.sock\""),
            "{e}"
        );
        assert_eq!(parse("").unwrap().debug.criu, None);
        let d = parse("[debug]\ncriu = \"/opt/criu/sbin/criu\"\n")
            .unwrap()
            .debug;
        assert_eq!(d.criu.as_deref(), Some(Path::new("/opt/criu/sbin/criu")));
        let e = parse("[debug]\ncriu = \"criu\"\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("debug.criu = \"criu\""), "{e}");
        let c = parse("[kubernetes]\ncri_namespace = \"cri\"\n").unwrap();
        assert_eq!(c.kubernetes.cri_namespace, "cri");
        let e = parse("[kubernetes]\ncri_namespace = \"a/b\"\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(
            e.message.contains("kubernetes.cri_namespace = \"a/b\""),
            "{e}"
        );
    }

    #[test]
    fn service_accounts_are_read_with_a_jwks_file_or_discovery() {
        let c = parse(
            "[kubernetes.service_accounts]\nissuer = \"https://k8s.example\"\naudience = \"crt\"\njwks_file = \"/etc/crt/k8s-jwks.json\"\n",
        )
        .unwrap();
        let sa = c.kubernetes.service_accounts.unwrap();
        assert_eq!(sa.issuer, "https://k8s.example");
        assert_eq!(sa.audience, "crt");
        assert_eq!(
            sa.keys,
            IssuerKeys::JwksFile("/etc/crt/k8s-jwks.json".into())
        );
        assert_eq!(sa.leeway, Duration::from_secs(30));
        let c = parse(
            "[kubernetes.service_accounts]\nissuer = \"https://k8s.example\"\naudience = \"crt\"\ndiscovery_url = \"https://k8s.example/.well-known/openid-configuration\"\nca_file = \"/etc/crt/k8s-ca.crt\"\nleeway = \"2m\"\n",
        )
        .unwrap();
        let sa = c.kubernetes.service_accounts.unwrap();
        assert_eq!(
            sa.keys,
            IssuerKeys::Discovery {
                url: "https://k8s.example/.well-known/openid-configuration".into(),
                ca: Some("/etc/crt/k8s-ca.crt".into())
            }
        );
        assert_eq!(sa.leeway, Duration::from_secs(120));
        assert_eq!(parse("").unwrap().kubernetes.service_accounts, None);
    }

    #[test]
    fn bad_service_account_settings_are_refused_naming_key_and_value() {
        let base = "issuer = \"https://k8s.example\"\naudience = \"crt\"\n";
        for (text, want) in [
            (
                format!("{base}jwks_file = \"k8s-jwks.json\""),
                "kubernetes.service_accounts.jwks_file = \"k8s-jwks.json\" is not an absolute path",
            ),
            (base.to_string(), "neither jwks_file nor discovery_url"),
            (
                format!("{base}jwks_file = \"/a\"\ndiscovery_url = \"https://x/y\""),
                "both jwks_file and discovery_url",
            ),
            (
                format!("{base}discovery_url = \"ftp://x/y\""),
                "kubernetes.service_accounts.discovery_url = \"ftp://x/y\" is not an http(s) URL",
            ),
            (
                format!("{base}discovery_url = \"http://x/y\"\nca_file = \"/ca\""),
                "ca_file = \"/ca\" is set but discovery_url \"http://x/y\" is plain http",
            ),
            (
                format!("{base}jwks_file = \"/a\"\nca_file = \"/ca\""),
                "ca_file = \"/ca\" is set with jwks_file",
            ),
            (
                format!("{base}jwks_file = \"/a\"\nleeway = \"forever\""),
                "kubernetes.service_accounts.leeway = \"forever\"",
            ),
            (
                format!("{base}jwks_file = \"/a\"\nleeway = \"1h\""),
                "at most 10 minutes",
            ),
            (
                "audience = \"crt\"\njwks_file = \"/a\"".to_string(),
                "kubernetes.service_accounts.issuer is missing",
            ),
            (
                "issuer = \"i\"\njwks_file = \"/a\"".to_string(),
                "kubernetes.service_accounts.audience is missing",
            ),
            (
                "issuer = \"\"\naudience = \"crt\"\njwks_file = \"/a\"".to_string(),
                "kubernetes.service_accounts.issuer = \"\" is not usable",
            ),
            (
                format!("{base}jwks_file = \"/a\"\njwks = \"/b\""),
                "unknown field `jwks`",
            ),
        ] {
            let e = parse(&format!("[kubernetes.service_accounts]\n{text}\n")).unwrap_err();
            assert!(e.message.contains(want), "{text}: {e}");
            assert!(e.line.is_some(), "{text}: {e}");
        }
    }

    #[test]
    fn a_token_that_is_not_a_hash_is_refused() {
        let e =
            parse("[[tenants]]\nname = \"a\"\nnamespaces = [\"a\"]\ntoken_sha256 = [\"secret\"]\n")
                .unwrap_err();
        assert_eq!(e.line, Some(4));
        assert!(e.message.contains("64 hex digits"), "{e}");
    }

    #[test]
    fn bad_tenant_names_addresses_and_durations_are_refused() {
        let e = parse("[[tenants]]\nname = \"Acme Corp\"\nnamespaces = [\"a\"]\n").unwrap_err();
        assert!(e.message.contains("not a valid tenant name"), "{e}");
        let e = parse("[api]\nlisten = \"localhost\"\n").unwrap_err();
        assert!(e.message.contains("api.listen"), "{e}");
        let e = parse("[store]\nmax_age = \"a week\"\n").unwrap_err();
        assert!(e.message.contains("store.max_age"), "{e}");
        let e = parse("[[tenants]]\nname = \"a\"\n").unwrap_err();
        assert!(e.message.contains("has no namespaces"), "{e}");
    }

    #[test]
    fn the_otlp_export_is_read_with_its_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.otlp, None);
        let c = parse(
            "[[tenants]]\nname = \"acme\"\nnamespaces = [\"acme\"]\n\n[export.otlp]\nendpoint = \"http://collector.local\"\ntenants = [\"acme\"]\nsyscalls = false\nheaders = { x-api-key = \"k1\" }\n",
        )
        .unwrap();
        let o = c.otlp.unwrap();
        assert_eq!(
            (o.host.as_str(), o.port, o.path.as_str()),
            ("collector.local", 4318, "/v1/logs")
        );
        assert!(!o.syscalls && o.logs);
        assert_eq!(o.tenants, vec!["acme".to_string()]);
        assert_eq!(o.headers, vec![("x-api-key".to_string(), "k1".to_string())]);
        assert!(!o.https && o.gzip && o.ca.is_none());
        let o = parse("[export.otlp]\nendpoint = \"http://[::1]:9999/otel/logs\"\n")
            .unwrap()
            .otlp
            .unwrap();
        assert_eq!(
            (o.host.as_str(), o.port, o.path.as_str()),
            ("[::1]", 9999, "/otel/logs")
        );
    }

    #[test]
    fn an_https_otlp_export_takes_a_ca_and_compression() {
        let o = parse("[export.otlp]\nendpoint = \"https://otel.example.com\"\n")
            .unwrap()
            .otlp
            .unwrap();
        assert!(o.https && o.gzip && o.ca.is_none());
        assert_eq!((o.host.as_str(), o.port), ("otel.example.com", 4318));
        let o = parse(
            "[export.otlp]\nendpoint = \"https://otel.example.com:443/v1/logs\"\nca = \"/etc/crt/otel-ca.pem\"\ncompression = \"none\"\n",
        )
        .unwrap()
        .otlp
        .unwrap();
        assert!(o.https && !o.gzip);
        assert_eq!(o.port, 443);
        assert_eq!(o.ca, Some(PathBuf::from("/etc/crt/otel-ca.pem")));
        let o = parse("[export.otlp]\nendpoint = \"http://c\"\ncompression = \"gzip\"\n")
            .unwrap()
            .otlp
            .unwrap();
        assert!(!o.https && o.gzip);
    }

    #[test]
    fn a_bad_otlp_export_is_refused_naming_the_key() {
        for (text, want) in [
            ("endpoint = \"ftp://c:4318\"", "is not an http:// or https:// URL"),
            ("endpoint = \"c:4318\"", "is not an http:// or https:// URL"),
            (
                "endpoint = \"http://c\"\nca = \"/etc/ca.pem\"",
                "export.otlp.ca = \"/etc/ca.pem\" is set but the endpoint \"http://c\" is plain http",
            ),
            (
                "endpoint = \"https://c\"\nca = \"ca.pem\"",
                "export.otlp.ca = \"ca.pem\" is not an absolute path",
            ),
            (
                "endpoint = \"https://c\"\ncompression = \"zstd\"",
                "export.otlp.compression = \"zstd\" is not known; expected \"gzip\" or \"none\"",
            ),
            ("endpoint = \"http://c:0\"", "has port \"0\""),
            (
                "endpoint = \"http://c:4318\"\ntenants = [\"nobody\"]",
                "\"nobody\" is not a declared tenant",
            ),
            (
                "endpoint = \"http://c\"\nheaders = { \"a b\" = \"x\" }",
                "export.otlp.headers",
            ),
            ("endpont = \"http://c\"", "endpont"),
        ] {
            let e = parse(&format!("[export.otlp]\n{text}\n")).unwrap_err();
            assert!(e.message.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn the_shipped_example_is_valid_and_states_the_defaults() {
        let text = include_str!("../../scripts/config.example.toml");
        let c = parse(text).unwrap();
        let d = NodeConfig::default();
        assert_eq!((c.runtime, c.trace), (d.runtime, d.trace));
        assert_eq!((c.api, c.store, c.otlp), (d.api, d.store, d.otlp));
        // The commented-out sections are valid too, once uncommented.
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.starts_with('[') || rest.contains(" = ") => rest,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .replace("<64 hex digits>", &"ab".repeat(32))
            .replace("<64 hex digits of an operator token>", &"cd".repeat(32));
        let c = parse(&uncommented).unwrap();
        assert_eq!(c.tenants[0].name, "acme");
        assert_eq!(c.api.operator_token_sha256, vec![[0xcd; 32]]);
        let o = c.otlp.unwrap();
        assert_eq!(o.tenants, vec!["acme".to_string()]);
        assert!(o.https && o.gzip);
        assert_eq!(o.ca, Some(PathBuf::from("/etc/crt/otel-ca.pem")));
        let sa = c.kubernetes.service_accounts.unwrap();
        assert_eq!(sa.audience, "crt");
        assert_eq!(
            sa.keys,
            IssuerKeys::JwksFile("/etc/crt/k8s-jwks.json".into())
        );
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64KiB"), Some(65536));
        assert_eq!(parse_size("10MB"), Some(10_000_000));
        assert_eq!(parse_size("1.5GiB"), None);
        assert_eq!(parse_size("MiB"), None);
    }

    #[test]
    fn tracing_can_be_switched_off_for_the_node() {
        let c = parse("[trace]\nenabled = false\n").unwrap();
        assert!(!c.trace_allowed_in("default"));
    }

    #[test]
    fn the_runtime_root_defaults_per_binary() {
        let c = parse("[runtime]\nbinary = \"/usr/bin/crun\"\n").unwrap();
        assert_eq!(c.runtime_root("ns"), PathBuf::from("/run/crt/crun/ns"));
    }
}
