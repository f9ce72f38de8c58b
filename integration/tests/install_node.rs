//! scripts/install-node.sh, as a node-image builder runs it: into a scratch
//! root (`--root`) holding a containerd config with the user's own settings,
//! for containerd 1.x (a marked block in the main file) and 2.x (a drop-in);
//! twice (the second run changes nothing); and `--uninstall` (the tree is
//! what it was). And on this machine: the node scripts/setup.sh set up needs
//! nothing more.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crt_integration::*;

const BINARIES: [&str; 3] = ["containerd-shim-crt-v2", "crtd", "crtctl"];
const CRI_V2: &str = "io.containerd.grpc.v1.cri";
const CRI_V3: &str = "io.containerd.cri.v1.runtime";

fn script() -> PathBuf {
    repo_root().join("scripts/install-node.sh")
}

fn node_build() -> PathBuf {
    repo_root().join("target/x86_64-unknown-linux-gnu/node")
}

fn install_node(args: &[&str]) -> Out {
    run(Command::new(script()).args(args), None)
}

/// A scratch root, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(containerd_config: Option<&str>) -> Scratch {
        let dir = std::env::temp_dir().join(id("crt-install-root"));
        std::fs::create_dir_all(dir.join("etc/containerd")).unwrap();
        if let Some(text) = containerd_config {
            std::fs::write(dir.join("etc/containerd/config.toml"), text).unwrap();
        }
        Scratch(dir)
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel.trim_start_matches('/'))
    }
    fn root(&self) -> &str {
        self.0.to_str().unwrap()
    }
    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel))
            .unwrap_or_else(|e| panic!("{}: {e}", self.path(rel).display()))
    }
    fn mode(&self, rel: &str) -> u32 {
        std::fs::metadata(self.path(rel))
            .unwrap_or_else(|e| panic!("{}: {e}", self.path(rel).display()))
            .permissions()
            .mode()
            & 0o7777
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every entry under a directory: its mode, and its bytes (files) or target (links).
fn tree(dir: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (u32, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(base).unwrap().to_path_buf();
            let mode = meta.permissions().mode();
            if meta.is_dir() {
                out.insert(rel, (mode, Vec::new()));
                walk(base, &path, out);
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(rel, (mode, target.into_os_string().into_encoded_bytes()));
            } else {
                out.insert(rel, (mode, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn toml_of(text: &str) -> toml::Table {
    text.parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("not TOML: {e}\n{text}"))
}

/// `table[k1][k2]...`, failing with the path that is missing.
fn at<'a>(table: &'a toml::Table, keys: &[&str]) -> &'a toml::Value {
    let mut value = table
        .get(keys[0])
        .unwrap_or_else(|| panic!("no {} in {table}", keys[0]));
    for (i, k) in keys.iter().enumerate().skip(1) {
        value = value
            .get(k)
            .unwrap_or_else(|| panic!("no {} in {table}", keys[..=i].join(".")));
    }
    value
}

fn runtime<'a>(config: &'a toml::Table, plugin: &str, name: &str) -> &'a toml::Value {
    at(config, &["plugins", plugin, "containerd", "runtimes", name])
}

fn assert_crt_runtime(crt: &toml::Value) {
    assert_eq!(crt["runtime_type"].as_str(), Some("io.containerd.crt.v2"));
    let passed = toml::Value::Array(vec![toml::Value::from("crt.dev/*")]);
    assert_eq!(crt["pod_annotations"], passed);
    assert_eq!(crt["container_annotations"], passed);
}

/// What install-node.sh installs besides containerd's config, with modes.
fn assert_installed(root: &Scratch) {
    for b in BINARIES {
        let rel = format!("/usr/local/bin/{b}");
        assert_eq!(root.mode(&rel), 0o755, "{rel}");
        assert_eq!(
            std::fs::read(root.path(&rel)).unwrap(),
            std::fs::read(node_build().join(b)).unwrap(),
            "{rel} is not the node build's"
        );
    }
    assert_eq!(root.mode("/etc/systemd/system/crtd.service"), 0o644);
    assert_eq!(
        root.read("/etc/systemd/system/crtd.service"),
        std::fs::read_to_string(repo_root().join("scripts/crtd.service")).unwrap()
    );
    assert_eq!(root.mode("/etc/crt/config.example.toml"), 0o644);
    assert_eq!(root.mode("/etc/crt/config.toml"), 0o600);
    assert_eq!(root.mode("/var/lib/crt"), 0o711);
    assert_eq!(root.mode("/run/crt"), 0o700);
    assert!(root.path("/usr/local/share/crt/install-manifest").is_file());
}

/// Installs twice (the second run changing nothing, byte for byte), then
/// uninstalls (giving back the tree from before the first run).
fn install_twice_then_uninstall(root: &Scratch, version: &str, check: impl Fn(&Scratch)) {
    let before = tree(&root.0);
    let first = install_node(&["--root", root.root(), "--containerd", version]).ok();
    assert!(
        first.stdout.contains("installed /usr/local/bin/crtd"),
        "{first:?}"
    );
    assert_installed(root);
    check(root);
    let installed = tree(&root.0);

    let second = install_node(&["--root", root.root(), "--containerd", version]).ok();
    assert!(second.stdout.contains("nothing changed"), "{second:?}");
    assert!(
        tree(&root.0) == installed,
        "the second run changed the tree"
    );

    let removed = install_node(&[
        "--root",
        root.root(),
        "--containerd",
        version,
        "--uninstall",
    ])
    .ok();
    let after = tree(&root.0);
    let differing: Vec<_> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert!(
        differing.is_empty(),
        "--uninstall left a different tree: {differing:?}\n{removed:?}"
    );
}

const USER_CONFIG_V2: &str = r#"version = 2
# The node's own settings, which the install must keep.
oom_score = -999

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.example/pause:3.9"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/opt/cni/bin"
      conf_dir = "/etc/cni/net.d"
"#;

#[test]
fn on_containerd_1_it_appends_a_marked_block_that_containerd_reads_and_uninstall_removes() {
    let root = Scratch::new(Some(USER_CONFIG_V2));
    install_twice_then_uninstall(&root, "1.6.20", |root| {
        let text = root.read("/etc/containerd/config.toml");
        assert!(
            text.starts_with(USER_CONFIG_V2),
            "the user's lines changed:\n{text}"
        );
        let added = &text[USER_CONFIG_V2.len()..];
        assert!(added.starts_with("# BEGIN crt"), "{added}");
        assert!(added
            .trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("# END crt"));
        assert!(!root.path("/etc/containerd/conf.d").exists());

        let config = toml_of(&text);
        assert_crt_runtime(runtime(&config, CRI_V2, "crt"));
        assert_eq!(
            runtime(&config, CRI_V2, "runc")["runtime_type"].as_str(),
            Some("io.containerd.runc.v2")
        );

        // containerd itself reads the file: the runtime class is there, and
        // so are the user's settings.
        let path = root.path("/etc/containerd/config.toml");
        let dump = run(
            Command::new("containerd")
                .arg("--config")
                .arg(&path)
                .args(["config", "dump"]),
            None,
        )
        .ok();
        let dumped = toml_of(&dump.stdout);
        assert_crt_runtime(runtime(&dumped, CRI_V2, "crt"));
        assert_eq!(
            runtime(&dumped, CRI_V2, "runc")["runtime_type"].as_str(),
            Some("io.containerd.runc.v2")
        );
        assert_eq!(
            at(&dumped, &["plugins", CRI_V2, "cni", "bin_dir"]).as_str(),
            Some("/opt/cni/bin")
        );
        assert_eq!(
            at(&dumped, &["plugins", CRI_V2, "sandbox_image"]).as_str(),
            Some("registry.example/pause:3.9")
        );
        assert_eq!(dumped["oom_score"].as_integer(), Some(-999));
    });
}

const USER_CONFIG_V3: &str = r#"version = 3
# The node's own runc, with options the install must keep.
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
    SystemdCgroup = true
"#;

#[test]
fn on_containerd_2_it_writes_a_drop_in_imported_by_a_marked_line_and_uninstall_removes_both() {
    let root = Scratch::new(Some(USER_CONFIG_V3));
    install_twice_then_uninstall(&root, "2.1.4", |root| {
        let main = root.read("/etc/containerd/config.toml");
        assert!(
            main.ends_with(USER_CONFIG_V3),
            "the user's lines changed:\n{main}"
        );
        let config = toml_of(&main);
        assert_eq!(
            config["imports"],
            toml::Value::Array(vec![toml::Value::from("/etc/containerd/conf.d/crt.toml")])
        );
        assert_eq!(config["version"].as_integer(), Some(3));

        let dropin = toml_of(&root.read("/etc/containerd/conf.d/crt.toml"));
        assert_eq!(root.mode("/etc/containerd/conf.d/crt.toml"), 0o644);
        assert_eq!(dropin["version"].as_integer(), Some(3));
        assert_crt_runtime(runtime(&dropin, CRI_V3, "crt"));
        // containerd 2 merges the drop-in key by key: the main file's runc
        // stays as it is, so the drop-in does not name it.
        let runtimes = at(&dropin, &["plugins", CRI_V3, "containerd", "runtimes"]);
        assert!(runtimes.get("runc").is_none(), "{dropin}");
    });
}

#[test]
fn with_no_containerd_config_it_makes_one_and_uninstall_removes_it() {
    let root = Scratch::new(None);
    install_twice_then_uninstall(&root, "1.7.27", |root| {
        let config = toml_of(&root.read("/etc/containerd/config.toml"));
        assert_eq!(config["version"].as_integer(), Some(2));
        assert_crt_runtime(runtime(&config, CRI_V2, "crt"));
        assert!(runtime(&config, CRI_V2, "runc")
            .get("runtime_type")
            .is_some());
    });
    let root = Scratch::new(None);
    install_twice_then_uninstall(&root, "2.0.0", |root| {
        let main = toml_of(&root.read("/etc/containerd/config.toml"));
        assert_eq!(main["version"].as_integer(), Some(3));
        let dropin = toml_of(&root.read("/etc/containerd/conf.d/crt.toml"));
        assert_crt_runtime(runtime(&dropin, CRI_V3, "crt"));
        // Nothing names runc yet: naming crt must not drop it.
        assert!(runtime(&dropin, CRI_V3, "runc")
            .get("runtime_type")
            .is_some());
    });
}

#[test]
fn a_crt_runtime_the_config_names_already_is_left_as_it_is() {
    // What scripts/setup.sh appended before install-node.sh existed.
    let config = format!(
        "{USER_CONFIG_V2}\n[plugins.\"{CRI_V2}\".containerd.runtimes.crt]\n  runtime_type = \"io.containerd.crt.v2\"\n  pod_annotations = [\"crt.dev/*\"]\n  container_annotations = [\"crt.dev/*\"]\n[plugins.\"{CRI_V2}\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n"
    );
    let root = Scratch::new(Some(&config));
    install_twice_then_uninstall(&root, "1.6.20", |root| {
        assert_eq!(root.read("/etc/containerd/config.toml"), config);
    });
}

#[test]
fn uninstall_keeps_what_the_operator_changed_and_removes_only_the_marked_block() {
    let root = Scratch::new(Some(USER_CONFIG_V2));
    install_node(&["--root", root.root(), "--containerd", "1.6.20"]).ok();
    // The operator's own node config, and a line of theirs after the block.
    std::fs::write(
        root.path("/etc/crt/config.toml"),
        "[api]\nlisten = \"off\"\n",
    )
    .unwrap();
    let conf = root.path("/etc/containerd/config.toml");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n");
    std::fs::write(&conf, text).unwrap();

    let out = install_node(&[
        "--root",
        root.root(),
        "--containerd",
        "1.6.20",
        "--uninstall",
    ])
    .ok();
    assert!(
        out.stdout
            .contains("kept /etc/crt/config.toml: changed since it was installed"),
        "{out:?}"
    );
    assert_eq!(
        root.read("/etc/crt/config.toml"),
        "[api]\nlisten = \"off\"\n"
    );
    assert_eq!(
        root.read("/etc/containerd/config.toml"),
        format!("{USER_CONFIG_V2}[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n")
    );
    assert!(!root.path("/usr/local/bin/crtd").exists());
    assert!(!root.path("/usr/local/share/crt/install-manifest").exists());
}

#[test]
fn a_containerd_2_config_with_imports_of_its_own_is_refused_before_anything_is_installed() {
    let config = "version = 3\nimports = [\"/etc/containerd/extra.toml\"]\n";
    let root = Scratch::new(Some(config));
    let before = tree(&root.0);
    let out = install_node(&["--root", root.root(), "--containerd", "2.1.4"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("imports list of its own")
            && out.stderr.contains("/etc/containerd/conf.d/crt.toml"),
        "{out:?}"
    );
    assert!(
        tree(&root.0) == before,
        "a refused install changed the tree"
    );
}

#[test]
fn the_node_scripts_setup_sh_set_up_needs_nothing_more() {
    // The same command scripts/setup.sh runs, against the machine itself.
    let out = install_node(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .trim_end()
            .ends_with("nothing changed: everything was in place"),
        "{out:?}"
    );
    let manifest = std::fs::read_to_string("/usr/local/share/crt/install-manifest").unwrap();
    for b in BINARIES {
        assert!(
            manifest.contains(&format!(" /usr/local/bin/{b}\n")),
            "{manifest}"
        );
    }
}
