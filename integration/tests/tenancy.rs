//! Tenants that cannot be forged: whoever creates a container chooses its
//! annotations and its cgroup path, and neither may move it into another
//! tenant's view or show it another tenant's processes. Each test plays the
//! attack against a crtd of its own, with real containers.

use std::time::Duration;

use crt_integration::*;

const ALPHA: (&str, &str, &str) = TENANTS[0];
const BETA: (&str, &str, &str) = TENANTS[1];

fn ids(list: &serde_json::Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kubernetes_annotations_outside_the_cri_namespace_do_not_move_a_container_to_another_tenant() {
    let crtd = Crtd::start("forge-k8s");
    // Alpha, in its own containerd namespace, claims to be a pod of beta's
    // Kubernetes namespace, as anyone who can run `ctr` may.
    let forged = NsTask::start(
        ALPHA.1,
        &[
            "--annotation",
            "crt.dev/trace=openat",
            "--annotation",
            &format!("io.kubernetes.cri.sandbox-namespace={}", BETA.1),
            "--annotation",
            "io.kubernetes.cri.sandbox-name=payments-0",
            "--annotation",
            "io.kubernetes.cri.sandbox-uid=6f1c2d9e-0000-4000-8000-000000000001",
            "--annotation",
            "io.kubernetes.cri.container-name=app",
        ],
        &[
            "sh",
            "-c",
            "while true; do cat /etc/crt-test-release >/dev/null; sleep 0.05; done",
        ],
    );
    assert!(wait_for(Duration::from_secs(30), || crtd
        .stored(&forged.ns, &forged.id)
        >= 5));

    // It stays alpha's: listed, readable, with no pod identity.
    let (s, v) = crtd.get("/v1/containers", Some(ALPHA.2));
    assert_eq!(s, 200, "{v}");
    let mine = v["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == forged.id.as_str())
        .unwrap_or_else(|| panic!("alpha lost its own container: {v}"))
        .clone();
    assert_eq!(mine["tenant"], "alpha", "{mine}");
    assert!(mine["kubernetes"].is_null(), "{mine}");
    let (s, ev) = crtd.get(
        &format!("/v1/events?container={}&limit=5", forged.id),
        Some(ALPHA.2),
    );
    assert_eq!(s, 200, "{ev}");
    assert!(!ev["events"].as_array().unwrap().is_empty(), "{ev}");
    assert!(ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["tenant"] == "alpha" && e["pod"].is_null()));

    // Beta sees neither the container, nor a pod, nor an event of it.
    let (_, v) = crtd.get("/v1/containers", Some(BETA.2));
    assert!(!ids(&v["containers"]).contains(&forged.id), "{v}");
    let (_, topo) = crtd.get("/v1/topology?all=true", Some(BETA.2));
    assert!(!topo.to_string().contains("payments-0"), "{topo}");
    assert!(!topo.to_string().contains(&forged.id), "{topo}");
    let (s, _) = crtd.get(&format!("/v1/events?container={}", forged.id), Some(BETA.2));
    assert_eq!(s, 404);
    let (s, ev) = crtd.get("/v1/events?limit=1000", Some(BETA.2));
    assert_eq!(s, 200, "{ev}");
    assert!(!ev.to_string().contains(&forged.id), "{ev}");
    // Not even by pod name.
    let (s, _) = crtd.get(
        &format!("/v1/events?pod={}/payments-0", BETA.1),
        Some(BETA.2),
    );
    assert_eq!(s, 404);
}

#[test]
fn a_cgroup_path_pointed_at_another_tenants_container_shows_only_its_own_processes() {
    let crtd = Crtd::start("forge-cgroup");
    let victim = NsTask::start(
        BETA.1,
        &["--annotation", "crt.dev/trace=openat"],
        &["sh", "-c", "exec sleep 3001"],
    );
    let path = victim.spec()["linux"]["cgroupsPath"]
        .as_str()
        .expect("containerd names the victim's cgroup")
        .to_string();
    // Alpha's container joins the victim's cgroup.
    let intruder = NsTask::start(
        ALPHA.1,
        &["--cgroup", &path, "--annotation", "crt.dev/trace=openat"],
        &["sh", "-c", "exec sleep 3002"],
    );
    assert_eq!(
        intruder.spec()["linux"]["cgroupsPath"].as_str(),
        Some(path.as_str()),
        "the attack needs the intruder in the victim's cgroup"
    );
    let view = |token: &str, t: &NsTask| {
        crtd.get(&format!("/v1/containers/{}/{}", t.ns, t.id), Some(token))
    };
    // Both run; each owner sees its own process and nothing else.
    let mut v = serde_json::Value::Null;
    assert!(wait_for(Duration::from_secs(20), || {
        let (s, got) = view(ALPHA.2, &intruder);
        v = got;
        s == 200 && v["processes"].as_array().is_some_and(|p| !p.is_empty())
    }));
    let shown = v["processes"].to_string();
    assert!(shown.contains("3002"), "{v}");
    assert!(!shown.contains("3001"), "alpha sees beta's process: {v}");
    let (s, v) = view(BETA.2, &victim);
    assert_eq!(s, 200, "{v}");
    let shown = v["processes"].to_string();
    assert!(shown.contains("3001"), "{v}");
    assert!(!shown.contains("3002"), "beta sees alpha's process: {v}");
    // The topology says the same.
    let (_, topo) = crtd.get("/v1/topology", Some(ALPHA.2));
    assert!(!topo.to_string().contains("3001"), "{topo}");
}

#[test]
fn a_token_hash_declared_for_two_tenants_is_refused_at_start_naming_the_line() {
    let dir = std::env::temp_dir().join(format!("crt-it-dup-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    let hash = "ab".repeat(32);
    std::fs::write(
        &config,
        format!(
            "[api]\nlisten = \"off\"\nsocket = \"{}\"\n[store]\ndir = \"{}\"\n\n[[tenants]]\nname = \"alpha\"\nnamespaces = [\"crt-alpha\"]\ntoken_sha256 = [\"{hash}\"]\n\n[[tenants]]\nname = \"beta\"\nnamespaces = [\"crt-beta\"]\ntoken_sha256 = [\"{hash}\"]\n",
            dir.join("s.sock").display(),
            dir.join("store").display()
        ),
    )
    .unwrap();
    let out = run(
        std::process::Command::new("crtd")
            .arg("--config")
            .arg(&config),
        None,
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("line 15"), "{out:?}");
    assert!(
        out.stderr.contains("also a token of tenant \"alpha\""),
        "{out:?}"
    );
}

#[test]
fn tenants_reach_crtd_over_https_verified_against_the_nodes_ca() {
    let crtd = Crtd::start_tls("tls");
    let t = NsTask::start(
        ALPHA.1,
        &["--annotation", "crt.dev/trace=openat"],
        &["sh", "-c", "cat /etc/crt-test-release; sleep 300"],
    );
    let https = crtd.server();
    assert!(https.starts_with("https://"), "{https}");
    let crtctl = |args: &[&str]| {
        run(
            std::process::Command::new("crtctl")
                .env("CRT_TOKEN", ALPHA.2)
                .env("CRT_SERVER", &https)
                .args(args),
            None,
        )
    };
    // With the node's CA: the tenant's own containers, as over plain HTTP.
    let mut out = crtctl(&["--ca", NODE_CA, "ls"]);
    assert!(
        wait_for(Duration::from_secs(20), || {
            out = crtctl(&["--ca", NODE_CA, "ps", "--json"]);
            out.code == 0 && out.stdout.contains(&t.id)
        }),
        "{out:?}"
    );
    // Without it the certificate is not trusted, and crtctl says what to do.
    let out = crtctl(&["ps"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("--ca"), "{out:?}");
    // Plain HTTP to the TLS port is no way around it.
    let plain = https.replace("https://", "http://");
    let out = run(
        std::process::Command::new("crtctl")
            .env("CRT_TOKEN", ALPHA.2)
            .env("CRT_SERVER", &plain)
            .args(["ps"]),
        None,
    );
    assert_ne!(out.code, 0, "{out:?}");
    assert!(!out.stdout.contains(&t.id), "{out:?}");
}

#[test]
fn a_crtd_listening_beyond_loopback_without_tls_is_refused_at_start() {
    let dir = std::env::temp_dir().join(format!("crt-it-open-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nlisten = \"0.0.0.0:0\"\nsocket = \"{}\"\n[store]\ndir = \"{}\"\n",
            dir.join("s.sock").display(),
            dir.join("store").display()
        ),
    )
    .unwrap();
    let out = run(
        std::process::Command::new("timeout")
            .args(["10", "crtd", "--config"])
            .arg(&config),
        None,
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_ne!(out.code, 0, "{out:?}");
    assert_ne!(out.code, 124, "it started: {out:?}");
    assert!(out.stderr.contains("api.tls_cert"), "{out:?}");
}
