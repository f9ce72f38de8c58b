//! Kubernetes service-account tokens as tenant credentials, checked offline:
//! the signature against the cluster issuer's public keys (a JWKS file on the
//! node, or the issuer's discovery document), then `exp`, `nbf`, `iat`, `iss`
//! and `aud`. No TokenReview: crtd must keep answering when the API server
//! does not. The token's namespace then picks the tenant (see `tenants.rs`).
//!
//! Only RS256 and ES256 are taken (what Kubernetes signs with), and only with a
//! key of that kind: `none` and HMAC are refused before any key is looked at.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use crt_config::{IssuerKeys, ServiceAccountsConfig};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

/// How often discovery's keys are fetched again when nothing asks sooner.
const DISCOVERY_REFRESH: Duration = Duration::from_secs(600);
/// A token naming a key id crtd does not know fetches the keys again, at most this often.
const UNKNOWN_KID_REFRESH: Duration = Duration::from_secs(60);
/// The longest a discovery or JWKS document may be.
const MAX_DOCUMENT: u64 = 1 << 20;

/// Who a verified token speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccount {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why a token was refused; the message never quotes the token.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused(pub String);

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// When a JWKS file was read: a change in any of these reads it again.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    ino: u64,
}

#[derive(Default)]
struct Keys {
    keys: Vec<Key>,
    /// The JWKS file as last read (or tried).
    stamp: Option<Stamp>,
}

pub struct Verifier {
    cfg: ServiceAccountsConfig,
    keys: RwLock<Keys>,
    /// Discovery: wakes the refresher early (a token named an unknown key).
    wake: tokio::sync::Notify,
    last_early_refresh: Mutex<Option<Instant>>,
    /// Discovery: the first fetch was tried (until then, an unknown key id
    /// is only a key not fetched yet, and the fetch is under way).
    tried: std::sync::atomic::AtomicBool,
    /// When each service account was last logged as coming in.
    logged: Mutex<HashMap<String, Instant>>,
}

/// A service account that keeps coming in is logged again after this long.
const LOG_AGAIN: Duration = Duration::from_secs(600);

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Value>,
}

/// The keys of a JWKS document that can check Kubernetes tokens; others
/// (encryption keys, other algorithms) are left out.
fn parse_jwks(text: &[u8]) -> Result<Vec<Key>, String> {
    let jwks: Jwks = serde_json::from_slice(text)
        .map_err(|e| format!("not a JWKS document ({e}); expected {{\"keys\": [...]}}"))?;
    let mut keys = Vec::new();
    for k in jwks.keys {
        let s = |name: &str| k.get(name).and_then(Value::as_str);
        if s("use").is_some_and(|u| u != "sig") {
            continue;
        }
        let (alg, key) = match (s("kty"), s("crv"), s("alg")) {
            (Some("RSA"), _, None | Some("RS256")) => {
                let (Some(n), Some(e)) = (s("n"), s("e")) else {
                    continue;
                };
                match DecodingKey::from_rsa_components(n, e) {
                    Ok(key) => (Algorithm::RS256, key),
                    Err(_) => continue,
                }
            }
            (Some("EC"), Some("P-256"), None | Some("ES256")) => {
                let (Some(x), Some(y)) = (s("x"), s("y")) else {
                    continue;
                };
                match DecodingKey::from_ec_components(x, y) {
                    Ok(key) => (Algorithm::ES256, key),
                    Err(_) => continue,
                }
            }
            _ => continue,
        };
        keys.push(Key {
            kid: s("kid").map(str::to_string),
            alg,
            key,
        });
    }
    if keys.is_empty() {
        return Err("holds no RS256 or ES256 signing key".into());
    }
    Ok(keys)
}

fn stamp_of(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        ino: m.ino(),
    })
}

/// The claims crtd reads beyond those `jsonwebtoken` checks.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    iat: Option<u64>,
    #[serde(rename = "kubernetes.io")]
    kubernetes: Option<KubernetesClaim>,
}

#[derive(Deserialize)]
struct KubernetesClaim {
    namespace: Option<String>,
    serviceaccount: Option<Named>,
}

#[derive(Deserialize)]
struct Named {
    name: Option<String>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Verifier {
    pub fn new(cfg: ServiceAccountsConfig) -> Arc<Verifier> {
        let v = Arc::new(Verifier {
            cfg,
            keys: RwLock::default(),
            wake: tokio::sync::Notify::new(),
            last_early_refresh: Mutex::new(None),
            tried: std::sync::atomic::AtomicBool::new(false),
            logged: Mutex::default(),
        });
        if let IssuerKeys::JwksFile(path) = &v.cfg.keys {
            v.reload_file_if_changed(path);
        }
        v
    }

    /// Does this look like a JWT (three base64url parts), so worth checking here?
    pub fn looks_like_jwt(token: &str) -> bool {
        token.split('.').count() == 3
    }

    /// Reads the JWKS file again if it changed since it was last read; a file
    /// that cannot be used keeps the keys there were.
    fn reload_file_if_changed(&self, path: &Path) {
        let stamp = stamp_of(path);
        if self.keys.read().is_ok_and(|k| k.stamp == stamp) {
            return;
        }
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if keys.stamp == stamp {
            return;
        }
        keys.stamp = stamp;
        let read = std::fs::read(path)
            .map_err(|e| format!("cannot read it ({e})"))
            .and_then(|text| parse_jwks(&text));
        match read {
            Ok(k) => {
                tracing::info!(
                    "kubernetes.service_accounts.jwks_file {}: {} signing keys",
                    path.display(),
                    k.len()
                );
                keys.keys = k;
            }
            Err(e) => tracing::warn!(
                "kubernetes.service_accounts.jwks_file {}: {e}; keeping the {} keys read before",
                path.display(),
                keys.keys.len()
            ),
        }
    }

    /// Checks a token and names its service account.
    pub fn verify(&self, token: &str) -> Result<ServiceAccount, Refused> {
        let refuse = |why: &str| Err(Refused(format!("service-account token refused: {why}")));
        let Some((header, _)) = token.split_once('.') else {
            return refuse("not a JWT");
        };
        let header: Header = match base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|h| serde_json::from_slice(&h).ok())
        {
            Some(h) => h,
            None => return refuse("its header is not base64url JSON with an alg"),
        };
        let alg = match header.alg.as_str() {
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            other => {
                return refuse(&format!(
                    "it is signed with alg {}; expected RS256 or ES256",
                    crt_tracer::escape::quote(other.as_bytes(), false)
                ))
            }
        };
        if let IssuerKeys::JwksFile(path) = &self.cfg.keys {
            self.reload_file_if_changed(path);
        }
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let candidates: Vec<&Key> = keys
            .keys
            .iter()
            .filter(|k| k.alg == alg)
            .filter(|k| header.kid.is_none() || k.kid == header.kid)
            .collect();
        if candidates.is_empty() {
            drop(keys);
            self.unknown_key();
            return refuse(&format!(
                "no {alg:?} key of the issuer has key id {}",
                crt_tracer::escape::quote(header.kid.as_deref().unwrap_or("").as_bytes(), false)
            ));
        }
        let mut validation = Validation::new(alg);
        validation.leeway = self.cfg.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.cfg.issuer]);
        validation.set_audience(&[&self.cfg.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let mut last = None;
        for k in candidates {
            match jsonwebtoken::decode::<Claims>(token, &k.key, &validation) {
                Ok(data) => return self.account(data.claims),
                Err(e) => last = Some(e),
            }
        }
        use jsonwebtoken::errors::ErrorKind as E;
        let why = match last.as_ref().map(|e| e.kind()) {
            Some(E::InvalidSignature) => "its signature does not match the issuer's key".into(),
            Some(E::ExpiredSignature) => "it has expired".into(),
            Some(E::ImmatureSignature) => "it is not valid yet (nbf)".into(),
            Some(E::InvalidIssuer) => format!(
                "it was not issued by {} (iss)",
                crt_tracer::escape::quote(self.cfg.issuer.as_bytes(), false)
            ),
            Some(E::InvalidAudience) => format!(
                "its audience (aud) does not include {}",
                crt_tracer::escape::quote(self.cfg.audience.as_bytes(), false)
            ),
            Some(E::MissingRequiredClaim(c)) => format!("it has no {c} claim"),
            Some(E::InvalidAlgorithm) => "its alg does not match the issuer's key".into(),
            _ => "it is not a well-formed signed JWT".into(),
        };
        refuse(&why)
    }

    /// The checks on the claims `jsonwebtoken` leaves: `iat` not in the
    /// future, and a service account named consistently.
    fn account(&self, claims: Claims) -> Result<ServiceAccount, Refused> {
        let refuse = |why: &str| Err(Refused(format!("service-account token refused: {why}")));
        if claims
            .iat
            .is_some_and(|iat| iat > now() + self.cfg.leeway.as_secs())
        {
            return refuse("it was issued in the future (iat)");
        }
        let Some(rest) = claims.sub.strip_prefix("system:serviceaccount:") else {
            return refuse("its subject is not system:serviceaccount:<namespace>:<name>");
        };
        let Some((ns, name)) = rest.split_once(':') else {
            return refuse("its subject is not system:serviceaccount:<namespace>:<name>");
        };
        if ns.is_empty() || name.is_empty() || name.contains(':') {
            return refuse("its subject is not system:serviceaccount:<namespace>:<name>");
        }
        if let Some(k) = &claims.kubernetes {
            let name_claim = k.serviceaccount.as_ref().and_then(|s| s.name.as_deref());
            if k.namespace.as_deref().is_some_and(|n| n != ns)
                || name_claim.is_some_and(|n| n != name)
            {
                return refuse(
                    "its kubernetes.io claim names another service account than its subject",
                );
            }
        }
        Ok(ServiceAccount {
            namespace: ns.to_string(),
            name: name.to_string(),
        })
    }

    /// Logs (at info) that `account` came in as `tenant`: the first time, and
    /// again after [`LOG_AGAIN`], not on each of a UI's polls.
    pub fn note_success(&self, account: &ServiceAccount, tenant: &str) {
        let key = format!("{account} {tenant}");
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        if logged.get(&key).is_some_and(|t| t.elapsed() < LOG_AGAIN) {
            return;
        }
        if logged.len() > 10_000 {
            logged.clear();
        }
        logged.insert(key, Instant::now());
        tracing::info!(
            "service account {} (token of namespace {}) authenticated as tenant {tenant}",
            crt_tracer::escape::quote(account.to_string().as_bytes(), false),
            crt_tracer::escape::quote(account.namespace.as_bytes(), false),
        );
    }

    /// A token named a key crtd does not have: the issuer may have rotated
    /// its keys. Discovery fetches them again (at most once a minute); a JWKS
    /// file is read again on every check anyway when it changes.
    fn unknown_key(&self) {
        if !matches!(self.cfg.keys, IssuerKeys::Discovery { .. })
            || !self.tried.load(std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        let mut last = self
            .last_early_refresh
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < UNKNOWN_KID_REFRESH) {
            return;
        }
        *last = Some(Instant::now());
        self.wake.notify_one();
    }

    /// Keeps discovery's keys fresh, for crtd's life: fetches them now, every
    /// [`DISCOVERY_REFRESH`], and when a token names an unknown key.
    pub async fn keep_fresh(self: Arc<Self>) {
        let IssuerKeys::Discovery { url, ca } = &self.cfg.keys else {
            return;
        };
        let (url, ca) = (url.clone(), ca.clone());
        loop {
            let (u, c) = (url.clone(), ca.clone());
            let fetched = tokio::task::spawn_blocking(move || fetch_discovery(&u, c.as_deref()))
                .await
                .unwrap_or_else(|e| Err(format!("the fetch failed: {e}")));
            match fetched {
                Ok(k) => {
                    tracing::info!(
                        "kubernetes.service_accounts.discovery_url {url}: {} signing keys",
                        k.len()
                    );
                    self.keys.write().unwrap_or_else(|e| e.into_inner()).keys = k;
                }
                Err(e) => tracing::warn!(
                    "kubernetes.service_accounts.discovery_url {url}: {e}; keeping the keys fetched before"
                ),
            }
            self.tried.store(true, std::sync::atomic::Ordering::SeqCst);
            tokio::select! {
                _ = tokio::time::sleep(DISCOVERY_REFRESH) => {}
                _ = self.wake.notified() => {}
            }
        }
    }
}

/// Fetches the discovery document, then the keys at its `jwks_uri`.
fn fetch_discovery(url: &str, ca: Option<&Path>) -> Result<Vec<Key>, String> {
    use ureq::tls::TlsConfig;
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .user_agent(concat!("crtd/", env!("CARGO_PKG_VERSION")));
    if url.starts_with("https://") {
        let roots = crate::otlp::root_certs(ca, "kubernetes.service_accounts.ca_file")?;
        config = config.tls_config(TlsConfig::builder().root_certs(roots).build());
    }
    let agent: ureq::Agent = config.build().into();
    let get = |u: &str| -> Result<Vec<u8>, String> {
        let mut resp = agent.get(u).call().map_err(|e| format!("GET {u}: {e}"))?;
        resp.body_mut()
            .with_config()
            .limit(MAX_DOCUMENT)
            .read_to_vec()
            .map_err(|e| format!("GET {u}: {e}"))
    };
    let doc: Value = serde_json::from_slice(&get(url)?)
        .map_err(|e| format!("the discovery document is not JSON ({e})"))?;
    let jwks_uri = doc
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or("the discovery document has no jwks_uri")?;
    if url.starts_with("https://") && !jwks_uri.starts_with("https://") {
        return Err(format!(
            "the discovery document's jwks_uri {jwks_uri:?} is not https like the document itself"
        ));
    }
    parse_jwks(&get(jwks_uri)?).map_err(|e| format!("the keys at {jwks_uri}: {e}"))
}

#[cfg(test)]
pub(crate) mod tests;
