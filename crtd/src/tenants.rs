//! Who may see what. A container's tenant comes only from trusted sources:
//! its containerd namespace, and only in the containerd namespace of
//! containerd's CRI plugin the Kubernetes namespace CRI wrote into the
//! container's spec (DESIGN.md, decision 7): anywhere else whoever creates a
//! container writes its annotations, so they decide nothing there. A
//! request's tenant comes from its bearer token, compared by SHA-256 hash, or
//! from a Kubernetes service-account token's namespace (`service_accounts.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use crt_config::Tenant;
use crt_tracer::node_files::KubernetesIdentity;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::service_accounts::{Refused, ServiceAccount, Verifier};

/// Whose request this is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The node's root user (unix socket): every tenant, and containers
    /// that belong to none.
    Root,
    /// An operator token (`api.operator_token_sha256`): sees what root sees, and
    /// changes nothing (the API refuses it anything but reading).
    Operator,
    Tenant(String),
}

impl Scope {
    /// May this scope see a container that belongs to `owner`?
    pub fn sees(&self, owner: Option<&str>) -> bool {
        match self {
            Scope::Root | Scope::Operator => true,
            Scope::Tenant(t) => owner == Some(t.as_str()),
        }
    }

    /// The name per-caller limits and counts go by: the tenant, `(operator)`, or
    /// `None` for root, which is not limited. (Tenant names cannot hold parentheses.)
    pub fn limited_as(&self) -> Option<&str> {
        match self {
            Scope::Root => None,
            Scope::Operator => Some("(operator)"),
            Scope::Tenant(t) => Some(t),
        }
    }
}

pub struct Tenants {
    list: Vec<Tenant>,
    /// SHA-256 hashes of the operator tokens (read-only, every tenant).
    operators: Vec<[u8; 32]>,
    by_namespace: HashMap<String, usize>,
    /// The containerd namespace whose Kubernetes identity CRI vouches for.
    cri_namespace: String,
    /// Checks Kubernetes service-account tokens, where the node config asks for it.
    service_accounts: Option<Arc<Verifier>>,
}

/// Compares without an early exit, so timing says nothing about the hash.
fn equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

impl Tenants {
    pub fn new(list: Vec<Tenant>) -> Tenants {
        let mut by_namespace = HashMap::new();
        for (i, t) in list.iter().enumerate() {
            for ns in &t.namespaces {
                by_namespace.insert(ns.clone(), i);
            }
        }
        Tenants {
            list,
            operators: Vec::new(),
            by_namespace,
            cri_namespace: crt_config::KubernetesConfig::default().cri_namespace,
            service_accounts: None,
        }
    }

    /// Takes Kubernetes service-account tokens too, checked by `verifier`.
    pub fn with_service_accounts(mut self, verifier: Arc<Verifier>) -> Tenants {
        self.service_accounts = Some(verifier);
        self
    }

    /// The tenant a Kubernetes service-account token speaks for: the one that
    /// owns the token's namespace. `None`: service-account tokens are not
    /// taken here, or this is no JWT; such a token is only a static one or nothing.
    pub fn authenticate_service_account(
        &self,
        token: &str,
    ) -> Option<Result<(&Tenant, ServiceAccount), Refused>> {
        let verifier = self.service_accounts.as_ref()?;
        if !Verifier::looks_like_jwt(token) {
            return None;
        }
        Some(
            verifier
                .verify(token)
                .and_then(|sa| match self.by_namespace.get(&sa.namespace) {
                    Some(&i) => {
                        verifier.note_success(&sa, &self.list[i].name);
                        Ok((&self.list[i], sa))
                    }
                    None => Err(Refused(format!(
                        "service-account token refused: no tenant owns its namespace {}",
                        crt_tracer::escape::quote(sa.namespace.as_bytes(), false)
                    ))),
                }),
        )
    }

    /// Takes the hashes of the operator tokens (the node config's
    /// `api.operator_token_sha256`).
    pub fn with_operator_tokens(mut self, hashes: Vec<[u8; 32]>) -> Tenants {
        self.operators = hashes;
        self
    }

    /// Trusts the Kubernetes identity of containers in `namespace` (the
    /// node config's `kubernetes.cri_namespace`) and nowhere else.
    pub fn with_cri_namespace(mut self, namespace: &str) -> Tenants {
        self.cri_namespace = namespace.to_string();
        self
    }

    /// The Kubernetes identity (namespace, pod, uid, ...) a container in
    /// containerd namespace `containerd_ns` claims, if it can be believed:
    /// only CRI's own namespace; elsewhere `null`, whatever was claimed.
    pub fn trusted_kubernetes(&self, containerd_ns: &str, claimed: &Value) -> Value {
        if containerd_ns == self.cri_namespace && claimed.is_object() {
            claimed.clone()
        } else {
            Value::Null
        }
    }

    /// [`Tenants::trusted_kubernetes`] of the identity a shim's file claims.
    pub fn trusted_identity(
        &self,
        containerd_ns: &str,
        claimed: Option<&KubernetesIdentity>,
    ) -> Value {
        let claimed = claimed
            .and_then(|k| serde_json::to_value(k).ok())
            .unwrap_or(Value::Null);
        self.trusted_kubernetes(containerd_ns, &claimed)
    }

    pub fn get(&self, name: &str) -> Option<&Tenant> {
        self.list.iter().find(|t| t.name == name)
    }

    /// The tenant a container belongs to: by its Kubernetes namespace when
    /// CRI set one (in CRI's own containerd namespace), else by its
    /// containerd namespace.
    pub fn owner(&self, containerd_ns: &str, k8s_ns: Option<&str>) -> Option<&str> {
        let by = |ns: &str| {
            self.by_namespace
                .get(ns)
                .map(|&i| self.list[i].name.as_str())
        };
        let trusted = k8s_ns.filter(|n| !n.is_empty() && containerd_ns == self.cri_namespace);
        match trusted {
            Some(k) => by(k),
            None => by(containerd_ns),
        }
    }

    /// The tenant a stored container instance belongs to (see [`Tenants::owner`]).
    pub fn owner_of(&self, meta: &crate::store::StreamMeta) -> Option<&str> {
        let k8s = meta.kubernetes.get("namespace").and_then(|v| v.as_str());
        self.owner(&meta.namespace, k8s)
    }

    /// Is this an operator token?
    pub fn is_operator(&self, token: &str) -> bool {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.operators
            .iter()
            .fold(false, |found, h| found | equal(h, &hash))
    }

    /// The tenant whose token this is.
    pub fn authenticate(&self, token: &str) -> Option<&Tenant> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for t in &self.list {
            for h in &t.token_sha256 {
                if equal(h, &hash) && found.is_none() {
                    found = Some(t);
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tenant(name: &str, ns: &[&str], token: &str) -> Tenant {
        Tenant {
            name: name.into(),
            namespaces: ns.iter().map(|s| s.to_string()).collect(),
            token_sha256: vec![Sha256::digest(token.as_bytes()).into()],
            max_age: Duration::from_secs(60),
            max_bytes: 1 << 20,
            registry: None,
        }
    }

    #[test]
    fn tokens_map_to_their_tenant_and_nothing_else() {
        let t = Tenants::new(vec![
            tenant("acme", &["acme"], "s3cret"),
            tenant("globex", &["globex"], "other"),
        ]);
        assert_eq!(t.authenticate("s3cret").unwrap().name, "acme");
        assert_eq!(t.authenticate("other").unwrap().name, "globex");
        assert!(t.authenticate("s3cret ").is_none());
        assert!(t.authenticate("").is_none());
    }

    #[test]
    fn the_kubernetes_namespace_decides_for_cri_containers() {
        let t = Tenants::new(vec![
            tenant("acme", &["acme", "acme-prod"], "a"),
            tenant("globex", &["globex"], "g"),
        ]);
        assert_eq!(t.owner("acme", None), Some("acme"));
        assert_eq!(t.owner("k8s.io", Some("acme-prod")), Some("acme"));
        assert_eq!(t.owner("k8s.io", Some("globex")), Some("globex"));
        assert_eq!(t.owner("k8s.io", Some("kube-system")), None);
        assert_eq!(t.owner("k8s.io", Some("")), None);
        assert_eq!(t.owner("default", None), None);
    }

    #[test]
    fn kubernetes_claims_outside_the_cri_namespace_decide_nothing() {
        let t = Tenants::new(vec![
            tenant("acme", &["acme"], "a"),
            tenant("globex", &["globex"], "g"),
        ]);
        // A container acme created in its own containerd namespace, claiming
        // to be in globex's Kubernetes namespace, stays acme's.
        assert_eq!(t.owner("acme", Some("globex")), Some("acme"));
        assert_eq!(t.owner("default", Some("globex")), None);
        let claimed = serde_json::json!({"namespace": "globex", "pod": "web-0", "pod_uid": "u1"});
        assert_eq!(t.trusted_kubernetes("acme", &claimed), Value::Null);
        assert_eq!(t.trusted_kubernetes("k8s.io", &claimed), claimed);
        // The CRI namespace is the node's to name.
        let t = t.with_cri_namespace("cri");
        assert_eq!(t.owner("k8s.io", Some("globex")), None);
        assert_eq!(t.owner("cri", Some("globex")), Some("globex"));
        assert_eq!(t.trusted_kubernetes("k8s.io", &claimed), Value::Null);
    }

    #[test]
    fn a_service_account_token_speaks_for_the_tenant_of_its_namespace() {
        use crate::service_accounts::tests::{claims, key, sign, verifier};
        let dir = tempfile::tempdir().unwrap();
        let k = key("k1");
        let t = Tenants::new(vec![
            tenant("acme", &["acme", "acme-prod"], "a"),
            tenant("globex", &["globex"], "g"),
        ]);
        let jwt = sign(&k, "k1", &claims("acme-prod", "ci"));
        // Without [kubernetes.service_accounts] a JWT is just an unknown token.
        assert!(t.authenticate_service_account(&jwt).is_none());
        let t = t.with_service_accounts(verifier(dir.path(), &[&k]));
        let (tenant, sa) = t.authenticate_service_account(&jwt).unwrap().unwrap();
        assert_eq!(
            (tenant.name.as_str(), sa.to_string().as_str()),
            ("acme", "acme-prod/ci")
        );
        let jwt = sign(&k, "k1", &claims("globex", "web"));
        let (tenant, _) = t.authenticate_service_account(&jwt).unwrap().unwrap();
        assert_eq!(tenant.name, "globex");
        let jwt = sign(&k, "k1", &claims("kube-system", "default"));
        let refused = t.authenticate_service_account(&jwt).unwrap().unwrap_err();
        assert!(
            refused
                .0
                .contains("no tenant owns its namespace \"kube-system\""),
            "{refused:?}"
        );
        // A static token is never taken for a JWT.
        assert!(t.authenticate_service_account("s3cret").is_none());
    }

    #[test]
    fn operator_tokens_are_told_from_tenant_tokens() {
        let t = Tenants::new(vec![tenant("acme", &["acme"], "s3cret")])
            .with_operator_tokens(vec![Sha256::digest(b"watch").into()]);
        assert!(t.is_operator("watch"));
        assert!(t.authenticate("watch").is_none());
        assert!(!t.is_operator("s3cret"));
        assert!(!t.is_operator("watch "));
        assert!(!t.is_operator(""));
    }

    #[test]
    fn scopes_see_only_their_own() {
        assert!(Scope::Root.sees(None));
        assert!(Scope::Root.sees(Some("acme")));
        assert!(Scope::Operator.sees(None));
        assert!(Scope::Operator.sees(Some("globex")));
        let acme = Scope::Tenant("acme".into());
        assert!(acme.sees(Some("acme")));
        assert!(!acme.sees(Some("globex")));
        assert!(!acme.sees(None));
    }
}
