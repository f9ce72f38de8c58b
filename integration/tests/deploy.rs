//! deploy/: the Kubernetes manifests a platform team applies, validated
//! offline against the Kubernetes object schemas (kubernetes-validate,
//! installed by scripts/setup.sh), checked against what the scripts make
//! (the runtime handler, the node label, the installer image), and the
//! installer image itself run with `ctr` against a scratch host root.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crt_integration::*;
use serde_json::Value;

const KUBERNETES_VALIDATE: &str = "/opt/crt-tools/venv/bin/kubernetes-validate";
const MANIFESTS: [&str; 3] = ["runtimeclass.yaml", "installer.yaml", "pod-example.yaml"];

fn deploy(name: &str) -> PathBuf {
    repo_root().join("deploy").join(name)
}

fn validate(path: &Path) -> Out {
    run(
        Command::new(KUBERNETES_VALIDATE).arg("--strict").arg(path),
        None,
    )
}

fn scratch(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(id(prefix));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_manifest_validates_against_the_kubernetes_schemas() {
    for name in MANIFESTS {
        let out = validate(&deploy(name));
        assert_eq!(out.code, 0, "{name}: {out:?}");
        let resources = yaml_documents(&deploy(name)).len();
        let passed = format!("{}{}", out.stdout, out.stderr)
            .matches(" passed ")
            .count();
        assert_eq!(passed, resources, "{name}: {out:?}");
    }
}

#[test]
fn a_broken_manifest_is_rejected_with_the_field_named() {
    let dir = scratch("crt-broken-manifests");
    // (file, what is replaced, by what, what the rejection must name)
    let cases = [
        (
            "runtimeclass.yaml",
            "handler: crt",
            "handlr: crt",
            "'handler' is a required property",
        ),
        (
            "pod-example.yaml",
            "runtimeClassName: crt",
            "runtimeClassName: 7",
            "runtimeClassName",
        ),
        (
            "installer.yaml",
            "      nodeSelector:",
            "      nodeSelectr:",
            "nodeSelectr",
        ),
        (
            "runtimeclass.yaml",
            "    memory: \"16Mi\"",
            "    memory: [16]",
            "memory",
        ),
    ];
    for (name, from, to, named) in cases {
        let text = std::fs::read_to_string(deploy(name)).unwrap();
        assert!(text.contains(from), "{name} has no {from:?}");
        let broken = dir.join(name);
        std::fs::write(&broken, text.replacen(from, to, 1)).unwrap();
        let out = validate(&broken);
        assert_ne!(out.code, 0, "{name} with {to:?} passed: {out:?}");
        assert!(
            format!("{}{}", out.stdout, out.stderr).contains(named),
            "{name} with {to:?}: {out:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// What scripts/install-node.sh records in a scratch root, and the runtime
/// names it registers with containerd there.
fn scratch_install() -> (Vec<String>, Vec<String>) {
    let root = scratch("crt-deploy-root");
    run(
        Command::new(repo_root().join("scripts/install-node.sh"))
            .arg("--root")
            .arg(&root)
            .args(["--containerd", "1.6.20"]),
        None,
    )
    .ok();
    let manifest =
        std::fs::read_to_string(root.join("usr/local/share/crt/install-manifest")).unwrap();
    let config: toml::Table = std::fs::read_to_string(root.join("etc/containerd/config.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let runtimes = config["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
        .as_table()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let _ = std::fs::remove_dir_all(&root);
    (manifest.lines().map(String::from).collect(), runtimes)
}

/// The installer image, built once for this test binary: its archive and
/// the name the build gave it.
fn installer_image() -> &'static (PathBuf, String) {
    static IMAGE: OnceLock<(PathBuf, String)> = OnceLock::new();
    IMAGE.get_or_init(|| {
        run(
            &mut Command::new(repo_root().join("scripts/build-installer-image.sh")),
            None,
        )
        .ok();
        let out = repo_root().join("target/crt-installer");
        let index: Value =
            serde_json::from_slice(&std::fs::read(out.join("oci/index.json")).unwrap()).unwrap();
        let name = index["manifests"][0]["annotations"]["io.containerd.image.name"]
            .as_str()
            .unwrap()
            .to_string();
        (out.join("image.tar"), name)
    })
}

#[test]
fn the_manifests_agree_with_the_scripts_and_with_each_other() {
    let class = yaml_one(&deploy("runtimeclass.yaml"), "RuntimeClass");
    let daemonset = yaml_one(&deploy("installer.yaml"), "DaemonSet");
    let pod = yaml_one(&deploy("pod-example.yaml"), "Pod");
    let (installed, runtimes) = scratch_install();

    // The handler is the runtime install-node.sh registers with containerd.
    let handler = class["handler"].as_str().unwrap();
    assert!(
        runtimes.iter().any(|r| r == handler),
        "{handler} not in {runtimes:?}"
    );
    // The installer runs where the RuntimeClass schedules.
    let selector = &class["scheduling"]["nodeSelector"];
    assert_eq!(selector["crt.dev/runtime"], "true");
    assert_eq!(
        &daemonset["spec"]["template"]["spec"]["nodeSelector"],
        selector
    );

    // The overhead covers the shim's measured memory (BENCHMARKS.md) twice over.
    let benchmarks = std::fs::read_to_string(repo_root().join("BENCHMARKS.md")).unwrap();
    let rss_kb: u64 = benchmarks
        .lines()
        .find(|l| l.starts_with("| shim VmRSS, containerd-shim-crt-v2 trace="))
        .and_then(|l| l.split('|').nth(2))
        .and_then(|v| v.trim().parse().ok())
        .expect("the traced shim's VmRSS in BENCHMARKS.md");
    let memory = class["overhead"]["podFixed"]["memory"].as_str().unwrap();
    let mib: u64 = memory.strip_suffix("Mi").unwrap().parse().unwrap();
    assert!(
        mib * 1024 >= 2 * rss_kb,
        "overhead {memory} for a shim of {rss_kb} kB"
    );

    // The installer image is the one scripts/build-installer-image.sh names,
    // run with the image's own command (install-node.sh --root /host).
    let (_, image) = installer_image();
    let spec = &daemonset["spec"]["template"]["spec"];
    let init = &spec["initContainers"][0];
    assert_eq!(init["image"].as_str(), Some(image.as_str()));
    assert_eq!(
        spec["containers"][0]["image"].as_str(),
        Some(image.as_str())
    );
    assert!(init.get("command").is_none() && init.get("args").is_none());
    let env: BTreeMap<&str, &str> = init["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["value"].as_str().unwrap()))
        .collect();
    assert!(env.contains_key("CRT_CONTAINERD_VERSION"), "{env:?}");
    // Every path install-node.sh writes is on a host volume the init container mounts.
    let mounts: Vec<&str> = init["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    for line in &installed {
        let path = line.rsplit(' ').next().unwrap();
        if line.starts_with("dir ") {
            continue; // created only in the scratch root, as parents
        }
        let on_host = format!("/host{path}");
        assert!(
            mounts.iter().any(|m| on_host.starts_with(&format!("{m}/"))),
            "{path} is on no host volume of the installer: {mounts:?}"
        );
    }
    for state in ["/var/lib/crt", "/run/crt"] {
        assert!(
            mounts.contains(&format!("/host{state}").as_str()),
            "{mounts:?}"
        );
    }

    // The example Pod runs on the class, opts in with a valid annotation,
    // and uses the test image the scripts build.
    assert_eq!(pod["spec"]["runtimeClassName"], class["metadata"]["name"]);
    let trace = pod["metadata"]["annotations"][crt_config::TRACE_ANNOTATION]
        .as_str()
        .expect("the example Pod opts in");
    let spec = crt_config::parse_trace(trace)
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("a trace spec, not off");
    assert!(spec.syscalls.contains("openat"), "{:?}", spec.syscalls);
    assert_eq!(pod["spec"]["containers"][0]["image"].as_str(), Some(IMAGE));
}

#[test]
fn the_installer_image_installs_into_the_host_root_it_is_given_and_a_second_run_changes_nothing() {
    setup();
    let (archive, image) = installer_image();
    ctr(&["image", "import", archive.to_str().unwrap()]).ok();
    let host = scratch("crt-installer-host");
    std::fs::create_dir_all(host.join("etc/containerd")).unwrap();
    std::fs::write(host.join("etc/containerd/config.toml"), "version = 2\n").unwrap();
    let version = run(Command::new("containerd").arg("--version"), None).ok();
    let version = version
        .stdout
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();

    let install = |name: &str| {
        let mount = format!(
            "type=bind,src={},dst=/host,options=rbind:rw",
            host.display()
        );
        let env = format!("CRT_CONTAINERD_VERSION={version}");
        let cid = id(name);
        ctr(&[
            "run",
            "--rm",
            "--env",
            &env,
            "--mount",
            &mount,
            image.as_str(),
            &cid,
        ])
    };
    let first = install("installer").ok();
    assert!(
        first.stdout.contains("installed /usr/local/bin/crtd"),
        "{first:?}"
    );
    let node = repo_root().join("target/x86_64-unknown-linux-gnu/node");
    for b in ["containerd-shim-crt-v2", "crtd", "crtctl"] {
        assert_eq!(
            std::fs::read(host.join("usr/local/bin").join(b)).unwrap(),
            std::fs::read(node.join(b)).unwrap(),
            "{b}"
        );
    }
    let config = std::fs::read_to_string(host.join("etc/containerd/config.toml")).unwrap();
    let config: toml::Table = config.parse().unwrap();
    assert_eq!(
        config["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["crt"]
            ["runtime_type"]
            .as_str(),
        Some("io.containerd.crt.v2")
    );
    let manifest = host.join("usr/local/share/crt/install-manifest");
    let recorded = std::fs::read(&manifest).unwrap();

    let second = install("installer-again").ok();
    assert!(second.stdout.contains("nothing changed"), "{second:?}");
    assert_eq!(std::fs::read(&manifest).unwrap(), recorded);
    let _ = std::fs::remove_dir_all(&host);
}
