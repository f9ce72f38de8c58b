//! Kubernetes service-account tokens as tenant credentials, end to end: a
//! crtd of the test's own, configured with `[kubernetes.service_accounts]`,
//! and tokens the test signs itself with keys it makes with the openssl CLI
//! (not with the library crtd checks them with). Only well-signed, current
//! tokens for crtd's audience and issuer get in, and each sees the containers
//! of the tenant that owns its namespace and nothing else.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use crt_integration::*;
use serde_json::{json, Value};

const ALPHA: (&str, &str, &str) = TENANTS[0];
const BETA: (&str, &str, &str) = TENANTS[1];
const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const AUDIENCE: &str = "crt";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An RSA key made by openssl, as a cluster's service-account issuer has.
struct IssuerKey {
    pem: std::path::PathBuf,
    kid: String,
}

impl IssuerKey {
    fn new(dir: &Path, kid: &str) -> IssuerKey {
        // Each key its own file: two keys may share a kid (that is the attack).
        let pem = dir.join(format!("{}.pem", id(kid)));
        run(
            Command::new("openssl")
                .args([
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                    "-out",
                ])
                .arg(&pem),
            None,
        )
        .ok();
        IssuerKey {
            pem,
            kid: kid.into(),
        }
    }

    /// Its public half as a JWK (what `kubectl get --raw /openid/v1/jwks` lists).
    fn jwk(&self) -> Value {
        let out = run(
            Command::new("openssl")
                .args(["rsa", "-noout", "-modulus", "-in"])
                .arg(&self.pem),
            None,
        )
        .ok();
        let hex = out
            .stdout
            .trim()
            .strip_prefix("Modulus=")
            .unwrap()
            .to_string();
        let n: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid, "n": b64(&n), "e": "AQAB"})
    }

    /// The public key in PEM, as an attacker would find it.
    fn public_pem(&self) -> Vec<u8> {
        let out = run(
            Command::new("openssl")
                .args(["pkey", "-pubout", "-in"])
                .arg(&self.pem),
            None,
        )
        .ok();
        out.stdout.into_bytes()
    }

    /// An RS256 token over `claims`, signed by openssl.
    fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let file = self.pem.with_extension(format!("in{}", id("t")));
        std::fs::write(&file, &input).unwrap();
        let out = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.pem)
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl dgst: {out:?}");
        let _ = std::fs::remove_file(&file);
        format!("{input}.{}", b64(&out.stdout))
    }
}

fn jwks(keys: &[&IssuerKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string()
}

/// The claims of a projected service-account token of `ns`/`name`.
fn claims(ns: &str, name: &str) -> Value {
    let now = now();
    json!({
        "aud": [AUDIENCE], "iss": ISSUER,
        "sub": format!("system:serviceaccount:{ns}:{name}"),
        "iat": now, "nbf": now, "exp": now + 3600,
        "kubernetes.io": {
            "namespace": ns,
            "pod": {"name": "ci-0", "uid": "2f0b0c38-0000-4000-8000-000000000001"},
            "serviceaccount": {"name": name, "uid": "9a7c1d44-0000-4000-8000-000000000002"},
        },
    })
}

fn with(mut c: Value, key: &str, v: Value) -> Value {
    c[key] = v;
    c
}

/// HMAC-SHA256 (RFC 2104), to forge an HS256 token with the public key as the secret.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

fn unsigned(header: Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

fn start(name: &str, key: &IssuerKey) -> Crtd {
    Crtd::start_custom(
        name,
        |dir| {
            let file = dir.join("k8s-jwks.json");
            std::fs::write(&file, jwks(&[key])).unwrap();
            format!(
                "[kubernetes.service_accounts]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_file = \"{}\"\nleeway = \"10s\"\n",
                file.display()
            )
        },
        None,
    )
}

fn container_ids(crtd: &Crtd, token: &str) -> (u16, Vec<String>) {
    let (s, v) = crtd.get("/v1/containers?all=true", Some(token));
    let ids = v["containers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    (s, ids)
}

#[test]
fn only_valid_service_account_tokens_get_in_and_each_sees_its_namespaces_tenant() {
    let keys = tempfile::tempdir().unwrap();
    let key = IssuerKey::new(keys.path(), "cluster-1");
    let stranger = IssuerKey::new(keys.path(), "cluster-1");
    let crtd = start("k8s-tokens", &key);
    let a = NsTask::start(
        ALPHA.1,
        &["--annotation", "crt.dev/trace=openat"],
        &["sh", "-c", "cat /etc/crt-test-release; sleep 300"],
    );
    let b = NsTask::start(
        BETA.1,
        &["--annotation", "crt.dev/trace=openat"],
        &["sh", "-c", "cat /etc/crt-test-release; sleep 300"],
    );
    assert!(wait_for(Duration::from_secs(30), || crtd
        .stored(&a.ns, &a.id)
        >= 1
        && crtd.stored(&b.ns, &b.id) >= 1));

    // A service account in alpha's namespace is alpha, and sees only alpha's.
    let alpha_sa = key.sign(&claims(ALPHA.1, "ci"));
    let (s, who) = crtd.get("/v1/whoami", Some(&alpha_sa));
    assert_eq!((s, &who["tenant"]), (200, &json!("alpha")), "{who}");
    let (s, ids) = container_ids(&crtd, &alpha_sa);
    assert_eq!(s, 200);
    assert!(ids.contains(&a.id), "{ids:?}");
    assert!(
        !ids.contains(&b.id),
        "alpha's service account sees beta's: {ids:?}"
    );
    let (s, _) = crtd.get(
        &format!("/v1/containers/{}/{}", b.ns, b.id),
        Some(&alpha_sa),
    );
    assert_eq!(s, 404);
    // One in beta's namespace is beta: it sees beta's and never alpha's.
    let beta_sa = key.sign(&claims(BETA.1, "deployer"));
    let (s, ids) = container_ids(&crtd, &beta_sa);
    assert_eq!(s, 200);
    assert!(ids.contains(&b.id), "{ids:?}");
    assert!(
        !ids.contains(&a.id),
        "beta's service account sees alpha's: {ids:?}"
    );
    let (s, _) = crtd.get(&format!("/v1/containers/{}/{}", a.ns, a.id), Some(&beta_sa));
    assert_eq!(s, 404);
    let (s, ev) = crtd.get(&format!("/v1/events?container={}", a.id), Some(&beta_sa));
    assert_eq!(s, 404, "{ev}");
    // crtctl takes the token too.
    let out = crtd.crtctl(&alpha_sa, &["ps", "-a"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&a.id) && !out.stdout.contains(&b.id),
        "{out:?}"
    );
    // And from a file, as a Pod's projected volume holds it.
    let token_file = keys.path().join("token");
    std::fs::write(&token_file, format!("{beta_sa}\n")).unwrap();
    let out = run(
        Command::new("crtctl")
            .env_remove("CRT_TOKEN")
            .env("CRT_TOKEN_FILE", &token_file)
            .env("CRT_SERVER", crtd.server())
            .args(["ps", "-a"]),
        None,
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&b.id) && !out.stdout.contains(&a.id),
        "{out:?}"
    );

    // Everything else is refused with 401, and says why.
    let base = claims(ALPHA.1, "ci");
    let now = now();
    let refused: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            key.sign(&with(base.clone(), "exp", json!(now - 120))),
            "expired",
        ),
        (
            "not yet valid",
            key.sign(&with(base.clone(), "nbf", json!(now + 600))),
            "not valid yet",
        ),
        (
            "wrong audience",
            key.sign(&with(base.clone(), "aud", json!(["kubernetes"]))),
            "audience",
        ),
        (
            "wrong issuer",
            key.sign(&with(base.clone(), "iss", json!("https://other.example"))),
            "not issued by",
        ),
        (
            "another key, same kid",
            stranger.sign(&base),
            "signature does not match",
        ),
        (
            "a namespace no tenant owns",
            key.sign(&claims("kube-system", "default")),
            "no tenant owns",
        ),
        (
            "alg none",
            unsigned(json!({"alg": "none", "typ": "JWT"}), &base),
            "alg \"none\"",
        ),
        (
            "HS256 with the public key as secret",
            {
                let header = json!({"alg": "HS256", "typ": "JWT", "kid": key.kid});
                let input = format!(
                    "{}.{}",
                    b64(header.to_string().as_bytes()),
                    b64(base.to_string().as_bytes())
                );
                let sig = hmac_sha256(&key.public_pem(), input.as_bytes());
                format!("{input}.{}", b64(&sig))
            },
            "alg \"HS256\"",
        ),
        (
            "a tampered namespace",
            {
                // alpha's valid token with its payload swapped for beta's namespace.
                let parts: Vec<&str> = alpha_sa.split('.').collect();
                let forged = claims(BETA.1, "ci");
                format!(
                    "{}.{}.{}",
                    parts[0],
                    b64(forged.to_string().as_bytes()),
                    parts[2]
                )
            },
            "signature does not match",
        ),
    ];
    for (what, token, why) in &refused {
        for path in ["/v1/whoami", "/v1/containers?all=true", "/v1/topology"] {
            let (s, body) = crtd.get(path, Some(token));
            assert_eq!(s, 401, "{what} on {path}: {body}");
            let msg = body["error"].as_str().unwrap_or_default().to_string();
            assert!(msg.contains(why), "{what}: {body}");
            assert!(
                !msg.contains(&a.id) && !msg.contains(&b.id),
                "{what}: {msg}"
            );
            // The token itself is never echoed or logged.
            assert!(!msg.contains(token.as_str()), "{what}: {msg}");
        }
    }
    let log = crtd.log();
    for (what, token, _) in &refused {
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            signature.is_empty() || !log.contains(signature),
            "{what}: the log holds the token"
        );
    }
    assert!(
        !log.contains(alpha_sa.rsplit('.').next().unwrap()),
        "the log holds a token"
    );
    // The successes name the service account in crtd's log.
    assert!(
        log.contains(&format!("service account \"{}/ci\"", ALPHA.1)),
        "{log}"
    );
    assert!(
        log.contains(&format!("service account \"{}/deployer\"", BETA.1)),
        "{log}"
    );

    // The static hashed tokens still work beside them.
    let (s, ids) = container_ids(&crtd, ALPHA.2);
    assert_eq!(s, 200);
    assert!(ids.contains(&a.id) && !ids.contains(&b.id), "{ids:?}");
}

#[test]
fn a_rotated_jwks_file_is_taken_without_a_restart() {
    let keys = tempfile::tempdir().unwrap();
    let old = IssuerKey::new(keys.path(), "old");
    let new = IssuerKey::new(keys.path(), "new");
    let crtd = start("k8s-rotate", &old);
    let (old_token, new_token) = (
        old.sign(&claims(ALPHA.1, "ci")),
        new.sign(&claims(ALPHA.1, "ci")),
    );
    assert_eq!(crtd.get("/v1/whoami", Some(&old_token)).0, 200);
    let (s, body) = crtd.get("/v1/whoami", Some(&new_token));
    assert_eq!(s, 401, "{body}");
    // The cluster rotates: both keys for a while, then only the new one.
    let file = crtd.dir.join("k8s-jwks.json");
    let replace = |text: String| {
        let tmp = crtd.dir.join("k8s-jwks.json.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
    };
    replace(jwks(&[&old, &new]));
    assert_eq!(crtd.get("/v1/whoami", Some(&new_token)).0, 200);
    assert_eq!(crtd.get("/v1/whoami", Some(&old_token)).0, 200);
    replace(jwks(&[&new]));
    assert_eq!(crtd.get("/v1/whoami", Some(&new_token)).0, 200);
    let (s, body) = crtd.get("/v1/whoami", Some(&old_token));
    assert_eq!(s, 401, "{body}");
    // A broken file keeps the keys read before, and crtd says so.
    replace("{\"keys\": [".into());
    assert_eq!(crtd.get("/v1/whoami", Some(&new_token)).0, 200);
    assert!(
        crtd.log().contains("keeping the 1 keys read before"),
        "{}",
        crtd.log()
    );
}

/// README's "Kubernetes in ten minutes", as a kubelet and a tenant play it:
/// deploy/pod-example.yaml run through containerd's CRI plugin on the
/// handler deploy/runtimeclass.yaml names, and its trace read with
/// `crtctl --token-file` holding a service-account token of the Pod's
/// namespace, found by `crtctl ps --json` as the README finds it.
#[test]
fn the_example_pod_runs_on_the_runtime_class_and_its_tenant_reads_its_trace_with_a_service_account_token(
) {
    let deploy = repo_root().join("deploy");
    let class = yaml_one(&deploy.join("runtimeclass.yaml"), "RuntimeClass");
    let manifest = yaml_one(&deploy.join("pod-example.yaml"), "Pod");
    assert_eq!(
        manifest["spec"]["runtimeClassName"],
        class["metadata"]["name"]
    );
    let spec = &manifest["spec"]["containers"][0];
    assert_eq!(spec["image"], IMAGE, "the example runs the test image");
    assert_eq!(
        spec["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let command: Vec<&str> = spec["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();

    let keys = tempfile::tempdir().unwrap();
    let key = IssuerKey::new(keys.path(), "cluster-1");
    let crtd = start("k8s-example", &key);

    // The Pod, in a namespace tenant alpha owns (the README's "default").
    let cri = cri::Cri::connect();
    let mut builder = cri
        .pod(manifest["metadata"]["name"].as_str().unwrap())
        .handler(class["handler"].as_str().unwrap());
    builder.namespace = ALPHA.1.into();
    for (k, v) in manifest["metadata"]["annotations"].as_object().unwrap() {
        builder = builder.annotation(k, v.as_str().unwrap());
    }
    let mut pod = builder.run();
    let container_name = spec["name"].as_str().unwrap();
    let id = pod
        .container(container_name, &command)
        .seccomp(cri::api::security_profile::ProfileType::RuntimeDefault)
        .start();

    // The tenant's credential: a projected token of a service account there.
    let token = keys.path().join("token");
    std::fs::write(&token, key.sign(&claims(ALPHA.1, "default"))).unwrap();
    let crtctl = |args: &[&str]| {
        run(
            Command::new("crtctl")
                .env_remove("CRT_TOKEN")
                .args(["--server", &crtd.server(), "--token-file"])
                .arg(&token)
                .args(args),
            None,
        )
    };
    let mut found = String::new();
    assert!(
        wait_for(Duration::from_secs(30), || {
            let ps: Value = serde_json::from_str(&crtctl(&["ps", "--json"]).ok().stdout).unwrap();
            found = ps["pods"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|p| p["containers"].as_array().unwrap())
                .find(|c| c["kubernetes"]["container"] == container_name && c["id"] == id.as_str())
                .map(|c| c["id"].as_str().unwrap().to_string())
                .unwrap_or_default();
            !found.is_empty()
        }),
        "crtctl ps --json with the token does not list the example's container {id}"
    );
    let mut text = String::new();
    let seen = wait_for(Duration::from_secs(30), || {
        text = crtctl(&["trace", &found]).ok().stdout;
        text.contains("\"/etc/hostname\"") && text.contains("htons(1)") && text.contains("execve(")
    });
    assert!(
        seen,
        "the example's trace lacks its openat of /etc/hostname, its connect to port 1 or its execve:\n{text}"
    );
    // The same token through a kubeconfig (its user's tokenFile), as a CI job has it.
    let kubeconfig = keys.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: ci\ncontexts:\n- name: ci\n  context: {cluster: c, user: sa}\nusers:\n- name: sa\n  user: {tokenFile: token}\n",
    )
    .unwrap();
    let ps = run(
        Command::new("crtctl")
            .env_remove("CRT_TOKEN")
            .args(["--server", &crtd.server(), "--token-file"])
            .arg(&kubeconfig)
            .args(["ps", "--json"]),
        None,
    )
    .ok();
    assert!(
        ps.stdout.contains(&found),
        "crtctl ps with the kubeconfig: {ps:?}"
    );
    pod.remove();
}
