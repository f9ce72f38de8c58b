use super::*;
use jsonwebtoken::{EncodingKey, Header as JwtHeader};
use serde_json::json;

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// A P-256 key made for the test, with its JWK.
pub(crate) struct TestKey {
    pkcs8: Vec<u8>,
    jwk: Value,
    raw_public: Vec<u8>,
}

pub(crate) fn key(kid: &str) -> TestKey {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = pair.public_key_raw().to_vec();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    TestKey {
        pkcs8: pair.serialize_der(),
        jwk: json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                    "x": b64(&raw[1..33]), "y": b64(&raw[33..65])}),
        raw_public: raw,
    }
}

fn jwks(keys: &[&TestKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

pub(crate) fn claims(ns: &str, name: &str) -> Value {
    let now = now();
    json!({
        "iss": ISSUER, "aud": ["crt", "other"], "sub": format!("system:serviceaccount:{ns}:{name}"),
        "iat": now, "nbf": now, "exp": now + 600,
        "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": name, "uid": "u"}},
    })
}

pub(crate) fn sign(k: &TestKey, kid: &str, claims: &Value) -> String {
    let mut h = JwtHeader::new(Algorithm::ES256);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_ec_der(&k.pkcs8)).unwrap()
}

/// A token with a header of our making and a given signature part.
fn forged(header: &Value, claims: &Value, signature: &[u8]) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

pub(crate) fn verifier(dir: &Path, keys: &[&TestKey]) -> Arc<Verifier> {
    let file = dir.join("jwks.json");
    std::fs::write(&file, jwks(keys)).unwrap();
    Verifier::new(ServiceAccountsConfig {
        issuer: ISSUER.into(),
        audience: "crt".into(),
        keys: IssuerKeys::JwksFile(file),
        leeway: Duration::from_secs(5),
    })
}

fn refused(v: &Verifier, token: &str, why: &str) {
    match v.verify(token) {
        Err(Refused(msg)) => assert!(msg.contains(why), "{msg:?} does not say {why:?}"),
        Ok(sa) => panic!("accepted as {sa}, expected refused for {why}"),
    }
}

#[test]
fn a_valid_token_names_its_service_account() {
    let dir = tempfile::tempdir().unwrap();
    let k = key("k1");
    let v = verifier(dir.path(), &[&k]);
    let sa = v.verify(&sign(&k, "k1", &claims("acme", "ci"))).unwrap();
    assert_eq!(
        sa,
        ServiceAccount {
            namespace: "acme".into(),
            name: "ci".into()
        }
    );
    assert_eq!(sa.to_string(), "acme/ci");
    // A single string audience counts too.
    let mut c = claims("acme", "ci");
    c["aud"] = json!("crt");
    assert!(v.verify(&sign(&k, "k1", &c)).is_ok());
}

#[test]
fn times_issuer_and_audience_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let k = key("k1");
    let v = verifier(dir.path(), &[&k]);
    let now = now();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims("acme", "ci");
        f(&mut c);
        sign(&k, "k1", &c)
    };
    refused(&v, &with(&|c| c["exp"] = json!(now - 60)), "expired");
    refused(&v, &with(&|c| c["nbf"] = json!(now + 120)), "not valid yet");
    refused(
        &v,
        &with(&|c| c["iat"] = json!(now + 120)),
        "issued in the future",
    );
    refused(
        &v,
        &with(&|c| c["iss"] = json!("https://evil")),
        "not issued by",
    );
    refused(&v, &with(&|c| c["aud"] = json!(["other"])), "audience");
    refused(
        &v,
        &with(&|c| {
            c.as_object_mut().unwrap().remove("exp");
        }),
        "no exp claim",
    );
    refused(
        &v,
        &with(&|c| c["sub"] = json!("system:node:n1")),
        "subject is not",
    );
    refused(
        &v,
        &with(&|c| c["kubernetes.io"]["namespace"] = json!("globex")),
        "another service account",
    );
    // Within the leeway, a slightly skewed clock is forgiven.
    assert!(v.verify(&with(&|c| c["nbf"] = json!(now + 2))).is_ok());
}

#[test]
fn another_key_none_and_hmac_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (k, other) = (key("k1"), key("k1"));
    let v = verifier(dir.path(), &[&k]);
    let c = claims("acme", "ci");
    refused(&v, &sign(&other, "k1", &c), "signature does not match");
    refused(
        &v,
        &sign(&k, "k9", &c),
        "no ES256 key of the issuer has key id \"k9\"",
    );
    refused(
        &v,
        &forged(&json!({"alg": "none", "typ": "JWT"}), &c, b""),
        "alg \"none\"",
    );
    // HS256 with the issuer's public key as the shared secret (key confusion).
    let hs = |secret: &[u8]| {
        let mut h = JwtHeader::new(Algorithm::HS256);
        h.kid = Some("k1".into());
        jsonwebtoken::encode(&h, &c, &EncodingKey::from_secret(secret)).unwrap()
    };
    refused(&v, &hs(&k.raw_public), "alg \"HS256\"");
    refused(&v, &hs(jwks(&[&k]).as_bytes()), "alg \"HS256\"");
    // A token claiming RS256 for the EC key finds no key of that kind.
    refused(
        &v,
        &forged(&json!({"alg": "RS256", "kid": "k1"}), &c, b"x"),
        "no RS256 key",
    );
    refused(&v, "a.b.c", "header is not base64url JSON");
}

#[test]
fn a_rotated_jwks_file_is_read_again_and_a_broken_one_keeps_the_old_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (key("old"), key("new"));
    let v = verifier(dir.path(), &[&old]);
    let c = claims("acme", "ci");
    assert!(v.verify(&sign(&old, "old", &c)).is_ok());
    refused(&v, &sign(&new, "new", &c), "key id \"new\"");
    // The cluster rotates: the file is replaced (as a kubelet or a script would, by rename).
    let tmp = dir.path().join("jwks.json.tmp");
    std::fs::write(&tmp, jwks(&[&new])).unwrap();
    std::fs::rename(&tmp, dir.path().join("jwks.json")).unwrap();
    assert!(v.verify(&sign(&new, "new", &c)).is_ok());
    refused(&v, &sign(&old, "old", &c), "key id \"old\"");
    // A broken file keeps the keys read before.
    std::fs::write(&tmp, "{not json").unwrap();
    std::fs::rename(&tmp, dir.path().join("jwks.json")).unwrap();
    assert!(v.verify(&sign(&new, "new", &c)).is_ok());
}

#[test]
fn keys_that_cannot_check_kubernetes_tokens_are_left_out() {
    let k = key("k1");
    let mut enc = k.jwk.clone();
    enc["use"] = json!("enc");
    let mut hmac = json!({"kty": "oct", "k": "c2VjcmV0", "kid": "h"});
    assert!(parse_jwks(json!({"keys": [enc, hmac.take()]}).to_string().as_bytes()).is_err());
    assert_eq!(parse_jwks(jwks(&[&k]).as_bytes()).unwrap().len(), 1);
    assert!(parse_jwks(b"[]").is_err());
}

/// A tiny issuer: its discovery document, and its keys at `jwks_uri` (as
/// they are now); counts the fetches of the keys.
struct Issuer {
    url: String,
    jwks: Arc<Mutex<String>>,
    fetched: Arc<std::sync::atomic::AtomicUsize>,
}

fn issuer(initial: String) -> Issuer {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let jwks = Arc::new(Mutex::new(initial));
    let fetched = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (keys, count) = (Arc::clone(&jwks), Arc::clone(&fetched));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap_or(0);
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let body = if line.starts_with("GET /.well-known/openid-configuration ") {
                json!({"issuer": ISSUER, "jwks_uri": format!("http://127.0.0.1:{port}/openid/v1/jwks")})
                    .to_string()
            } else {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                keys.lock().unwrap().clone()
            };
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Issuer {
        url: format!("http://127.0.0.1:{port}/.well-known/openid-configuration"),
        jwks,
        fetched,
    }
}

async fn accepted_within(v: &Verifier, token: &str, secs: u64) -> bool {
    for _ in 0..secs * 20 {
        if v.verify(token).is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_keys_are_fetched_and_fetched_again_for_an_unknown_key_id_at_most_once_a_minute()
{
    let (k1, k2, k3) = (key("k1"), key("k2"), key("k3"));
    let iss = issuer(jwks(&[&k1]));
    let v = Verifier::new(ServiceAccountsConfig {
        issuer: ISSUER.into(),
        audience: "crt".into(),
        keys: IssuerKeys::Discovery {
            url: iss.url.clone(),
            ca: None,
        },
        leeway: Duration::from_secs(5),
    });
    tokio::spawn(Arc::clone(&v).keep_fresh());
    let c = claims("acme", "ci");
    assert!(accepted_within(&v, &sign(&k1, "k1", &c), 20).await);
    let fetched = || iss.fetched.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(fetched(), 1);
    // The issuer rotates: a token with the new kid makes crtd fetch the keys again.
    *iss.jwks.lock().unwrap() = jwks(&[&k2]);
    refused(&v, &sign(&k2, "k2", &c), "key id \"k2\"");
    assert!(accepted_within(&v, &sign(&k2, "k2", &c), 20).await);
    assert_eq!(fetched(), 2);
    refused(&v, &sign(&k1, "k1", &c), "key id \"k1\"");
    // More unknown key ids within the minute fetch nothing more: a stream
    // of made-up kids cannot make crtd hammer the issuer.
    *iss.jwks.lock().unwrap() = jwks(&[&k3]);
    for _ in 0..20 {
        refused(&v, &sign(&k3, "k3", &c), "key id \"k3\"");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(fetched(), 2);
}
