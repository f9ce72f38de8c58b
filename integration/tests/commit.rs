//! Commit, push and redeploy end to end: `crtctl commit` and `crtctl
//! redeploy` against a crtd of the test's own, real containerd 1.6 with runc
//! and crun, and a real registry (Debian's docker-registry) on 127.0.0.1.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crt_integration::*;

const ALPHA: (&str, &str, &str) = TENANTS[0];
const BETA: (&str, &str, &str) = TENANTS[1];

/// A source container that keeps what its image (or a commit) put in /kept.
fn source(runtime: &str) -> NsTask {
    let rt = runtime_args(runtime);
    let extra: Vec<&str> = rt.iter().map(String::as_str).collect();
    let t = NsTask::start(
        ALPHA.1,
        &extra,
        &[
            "sh",
            "-c",
            "trap 'exit 0' TERM; [ -f /kept ] || echo base > /kept; while true; do sleep 1; done",
        ],
    );
    assert!(wait_for(Duration::from_secs(10), || exec_in(
        &t.ns,
        &t.id,
        &["cat", "/kept"]
    )
    .stdout
    .contains("base")));
    t
}

fn exec_in(ns: &str, container: &str, cmd: &[&str]) -> Out {
    let exec_id = id("x");
    let mut args = vec!["task", "exec", "--exec-id", &exec_id, container];
    args.extend_from_slice(cmd);
    run_in(ns, &args)
}

/// Whatever a test leaves of a container (or clone) goes, even when it fails.
struct Leftover {
    ns: String,
    containers: Vec<String>,
    images: Vec<String>,
}

impl Drop for Leftover {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = run_in(&self.ns, &["task", "rm", "-f", c]);
            let _ = run_in(&self.ns, &["container", "rm", c]);
            let _ = run_in(&self.ns, &["snapshot", "rm", c]);
        }
        for i in &self.images {
            let _ = run_in(&self.ns, &["image", "rm", i]);
        }
    }
}

fn json_of(out: &Out) -> serde_json::Value {
    serde_json::from_str(out.stdout.trim()).unwrap_or(serde_json::Value::Null)
}

/// A clone of `src` with a changed file, an added one and a removed one.
fn changed_clone(crtd: &Crtd, src: &NsTask, left: &mut Leftover) -> String {
    let out = crtd.crtctl(ALPHA.2, &["debug", "--json", &src.id]);
    assert_eq!(out.code, 0, "{out:?}");
    let clone = json_of(&out)["id"].as_str().unwrap().to_string();
    left.containers.push(clone.clone());
    let changed = exec_in(
        &src.ns,
        &clone,
        &[
            "sh",
            "-c",
            "echo fixed > /kept && mkdir -p /opt && echo new > /opt/added && rm /etc/crt-test-release",
        ],
    );
    assert_eq!(changed.code, 0, "{changed:?}");
    clone
}

/// `cat` of files in a new container of `image`, run by ctr.
fn run_image(ns: &str, runtime: &str, image: &str, script: &str) -> Out {
    let name = id("run");
    let mut args = vec!["run", "--rm"];
    let rt = runtime_args(runtime);
    args.extend(rt.iter().map(String::as_str));
    args.extend([image, name.as_str(), "sh", "-c", script]);
    run_in(ns, &args)
}

fn label_of(ns: &str, id: &str, label: &str) -> Option<String> {
    let info: serde_json::Value =
        serde_json::from_str(&run_in(ns, &["container", "info", id]).stdout).ok()?;
    info["Labels"][label].as_str().map(str::to_string)
}

fn task_listed(ns: &str, id: &str) -> Option<String> {
    run_in(ns, &["task", "ls"])
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
}

fn a_clone_committed_runs_as_an_image_and_its_source_is_redeployed_on_it(runtime: &str) {
    let crtd = Crtd::start(&format!("commit-{runtime}"));
    let src = source(runtime);
    let image = format!("localhost/crt-commit-{runtime}:{}", std::process::id());
    let mut left = Leftover {
        ns: src.ns.clone(),
        containers: vec![],
        images: vec![image.clone()],
    };
    let clone = changed_clone(&crtd, &src, &mut left);
    let out = crtd.crtctl(ALPHA.2, &["commit", "--json", &clone, &image]);
    assert_eq!(out.code, 0, "{out:?}");
    let v = json_of(&out);
    assert_eq!(v["image"], image.as_str(), "{v}");
    assert_eq!(v["source_image"], IMAGE);
    assert!(v["layer_size"].as_i64().unwrap() > 0, "{v}");
    // Committed again to the same name after another change: the name moves.
    let again = exec_in(&src.ns, &clone, &["sh", "-c", "echo fixed2 > /kept"]);
    assert_eq!(again.code, 0, "{again:?}");
    let out = crtd.crtctl(ALPHA.2, &["commit", "--json", &clone, &image]);
    assert_eq!(out.code, 0, "{out:?}");
    let v2 = json_of(&out);
    assert_ne!(v2["digest"], v["digest"]);
    let v = v2;
    // Everything the image needs survives containerd's garbage collector
    // (a lease removed with --sync runs it at once).
    let lease = run_in(&src.ns, &["leases", "create"]).stdout;
    let lease = lease.split_whitespace().next().expect("a lease id");
    assert_eq!(run_in(&src.ns, &["leases", "rm", "--sync", lease]).code, 0);
    // Unpacked by crtd (not left to ctr): the config names its top snapshot,
    // and that snapshot exists.
    let config = v["config_digest"].as_str().unwrap();
    let content = run_in(&src.ns, &["content", "ls"]).stdout;
    let line = content
        .lines()
        .find(|l| l.starts_with(config))
        .unwrap_or_else(|| panic!("{config} not in the content store"));
    let top = line
        .split(|c: char| c == ',' || c.is_whitespace())
        .find_map(|l| l.strip_prefix("containerd.io/gc.ref.snapshot.overlayfs="))
        .unwrap_or_else(|| panic!("no snapshot label on the config: {line}"));
    assert_eq!(
        run_in(&src.ns, &["snapshot", "info", top]).code,
        0,
        "the top snapshot {top}"
    );
    // A new container of the image has the clone's changes, not just its source's.
    let ran = run_image(
        &src.ns,
        runtime,
        &image,
        "cat /kept /opt/added; [ -e /etc/crt-test-release ] && echo still-there; true",
    );
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(
        ran.stdout.split_whitespace().collect::<Vec<_>>(),
        ["fixed2", "new"],
        "{ran:?}"
    );

    // The source, redeployed on it: the new one runs the image's files; the
    // old one is stopped and kept, labelled with its successor.
    let out = crtd.crtctl(ALPHA.2, &["redeploy", "--json", &src.id, &image]);
    assert_eq!(out.code, 0, "{out:?}");
    let r = json_of(&out);
    let new = r["new"].as_str().unwrap().to_string();
    left.containers.push(new.clone());
    assert_eq!(new, format!("{}-2", src.id));
    assert_eq!(task_listed(&src.ns, &new).as_deref(), Some("RUNNING"));
    assert_eq!(
        exec_in(&src.ns, &new, &["cat", "/kept", "/opt/added"])
            .stdout
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["fixed2", "new"]
    );
    assert_eq!(task_listed(&src.ns, &src.id), None, "the old task is gone");
    assert_eq!(r["old_stopped"], "SIGTERM", "{r}");
    assert_eq!(
        label_of(&src.ns, &src.id, "crt.dev/replaced-by").as_deref(),
        Some(new.as_str())
    );
    let audit = std::fs::read_to_string(crtd.dir.join("store/audit.jsonl")).unwrap();
    let actions: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(actions.iter().any(|a| a["action"] == "commit"
        && a["tenant"] == "alpha"
        && a["outcome"] == "ok"
        && a["detail"]["image"] == image.as_str()));
    assert!(actions.iter().any(|a| a["action"] == "redeploy"
        && a["container"] == src.id.as_str()
        && a["outcome"] == "ok"));
}

#[test]
fn a_clone_committed_runs_as_an_image_and_its_source_is_redeployed_on_it_runc() {
    a_clone_committed_runs_as_an_image_and_its_source_is_redeployed_on_it("runc");
}

#[test]
fn a_clone_committed_runs_as_an_image_and_its_source_is_redeployed_on_it_crun() {
    a_clone_committed_runs_as_an_image_and_its_source_is_redeployed_on_it("crun");
}

/// Debian's docker-registry on 127.0.0.1, storing into a directory of its own.
struct Registry {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Registry {
    /// With `auth`, it asks for that user and password (basic authentication).
    fn start(auth: Option<(&str, &str)>) -> Registry {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("crt-it-registry-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = dir.join("config.yml");
        let mut text = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("data").display()
        );
        if let Some((user, password)) = auth {
            let htpasswd = dir.join("htpasswd");
            let hash = bcrypt::hash(password, 4).unwrap();
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
            text.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: crt-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        std::fs::write(&config, text).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("registry.log")).unwrap())
            .spawn()
            .expect("docker-registry is installed (scripts/setup.sh)");
        assert!(
            wait_for(Duration::from_secs(20), || std::net::TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "the registry did not start"
        );
        Registry { child, port, dir }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_committed_image_is_pushed_to_the_tenants_registry_and_pulled_back() {
    let registry = Registry::start(None);
    let location = format!("127.0.0.1:{}/alpha", registry.port);
    let mut crtd = Crtd::start("commit-push");
    // Alpha's entry gets its registry.
    let config = std::fs::read_to_string(&crtd.config).unwrap();
    let config = config.replacen(
        "name = \"alpha\"\n",
        &format!("name = \"alpha\"\nregistry = \"{location}\"\nregistry_insecure = true\n"),
        1,
    );
    std::fs::write(&crtd.config, config).unwrap();
    crtd.restart();
    let src = source("runc");
    let image = format!("{location}/fixed:1");
    let mut left = Leftover {
        ns: src.ns.clone(),
        containers: vec![],
        images: vec![image.clone()],
    };
    let clone = changed_clone(&crtd, &src, &mut left);
    // Outside the tenant's registry: refused before anything is made.
    assert_refused(
        &crtd,
        "POST",
        &format!(
            "/v1/clones/{}/{clone}/commit?image=127.0.0.1:{}/beta/x:1&push=true",
            src.ns, registry.port
        ),
        Some(ALPHA.2),
        400,
        &format!("starts with {location}/"),
    );
    let out = crtd.crtctl(ALPHA.2, &["commit", "--push", &clone, &image]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!("pushed to {image}")),
        "{out:?}"
    );
    // Gone from the node, pulled back from the registry, it runs with the change.
    assert_eq!(run_in(&src.ns, &["image", "rm", &image]).code, 0);
    let pulled = run_in(&src.ns, &["image", "pull", "--plain-http", &image]);
    assert_eq!(pulled.code, 0, "{pulled:?}");
    let ran = run_image(&src.ns, "runc", &image, "cat /kept /opt/added");
    assert_eq!(
        ran.stdout.split_whitespace().collect::<Vec<_>>(),
        ["fixed", "new"],
        "{ran:?}"
    );
    let audit = std::fs::read_to_string(crtd.dir.join("store/audit.jsonl")).unwrap();
    assert!(
        audit.lines().any(|l| l.contains("\"action\":\"push\"")
            && l.contains("\"outcome\":\"ok\"")
            && l.contains(&image)),
        "{audit}"
    );
}

#[test]
fn kubernetes_containers_non_clones_and_other_tenants_are_refused() {
    let crtd = Crtd::start("commit-refusals");
    let src = source("runc");
    // A container Kubernetes placed (as CRI labels it): the kubectl to run.
    let k8s = NsTask::start(
        ALPHA.1,
        &[
            "--label",
            "io.kubernetes.pod.namespace=shop",
            "--label",
            "io.kubernetes.pod.name=web-7f9c",
            "--label",
            "io.kubernetes.container.name=web",
        ],
        &["sh", "-c", "while true; do sleep 1; done"],
    );
    assert!(wait_for(Duration::from_secs(10), || task_listed(
        &k8s.ns, &k8s.id
    )
    .as_deref()
        == Some("RUNNING")));
    assert!(wait_for(Duration::from_secs(10), || crtd
        .get(
            &format!("/v1/containers/{}/{}", k8s.ns, k8s.id),
            Some(ALPHA.2)
        )
        .0
        == 200));
    let out = crtd.crtctl(ALPHA.2, &["redeploy", &k8s.id, IMAGE]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr
            .contains("kubectl -n shop set image deployment/<name> web=localhost/crt-test:latest"),
        "{out:?}"
    );
    assert_eq!(task_listed(&k8s.ns, &k8s.id).as_deref(), Some("RUNNING"));
    // Only clones are committed.
    assert_refused(
        &crtd,
        "POST",
        &format!(
            "/v1/clones/{}/{}/commit?image=localhost/x:1",
            src.ns, src.id
        ),
        Some(ALPHA.2),
        409,
        "not a debug clone",
    );
    // A bad reference is named with what is expected.
    assert_refused(
        &crtd,
        "POST",
        &format!(
            "/v1/containers/{}/{}/redeploy?image=Bad/Ref",
            src.ns, src.id
        ),
        Some(ALPHA.2),
        400,
        "image=\"Bad/Ref\"",
    );
    // A commit makes new content: a reference by digest cannot name it.
    assert_refused(
        &crtd,
        "POST",
        &format!(
            "/v1/clones/{}/{}/commit?image=localhost/x@sha256:{}",
            src.ns,
            src.id,
            "a".repeat(64)
        ),
        Some(ALPHA.2),
        400,
        "expected a reference with a tag",
    );
    // Another tenant: not found, as if absent; nothing changes.
    for path in [
        format!(
            "/v1/clones/{}/{}/commit?image=localhost/x:1",
            src.ns, src.id
        ),
        format!(
            "/v1/containers/{}/{}/redeploy?image={IMAGE}",
            src.ns, src.id
        ),
    ] {
        let (code, body) = crtd.request("POST", &path, Some(BETA.2));
        assert_eq!(code, 404, "{path}: {body}");
    }
    assert_eq!(task_listed(&src.ns, &src.id).as_deref(), Some("RUNNING"));
    assert_eq!(label_of(&src.ns, &src.id, "crt.dev/replaced-by"), None);
    let audit = std::fs::read_to_string(crtd.dir.join("store/audit.jsonl")).unwrap();
    assert!(
        audit.lines().any(|l| l.contains("\"tenant\":\"beta\"")
            && l.contains("\"action\":\"redeploy\"")
            && l.contains("failed (404)")),
        "{audit}"
    );
}

#[test]
fn a_push_authenticates_with_the_tenants_credentials_and_says_when_they_are_refused() {
    let registry = Registry::start(Some(("alpha-bot", "s3cret")));
    let location = format!("127.0.0.1:{}/alpha", registry.port);
    let mut crtd = Crtd::start("commit-push-auth");
    let password = crtd.dir.join("registry-password");
    std::fs::write(&password, "s3cret\n").unwrap();
    let config = std::fs::read_to_string(&crtd.config).unwrap();
    let config = config.replacen(
        "name = \"alpha\"\n",
        &format!(
            "name = \"alpha\"\nregistry = \"{location}\"\nregistry_insecure = true\nregistry_username = \"alpha-bot\"\nregistry_password_file = \"{}\"\n",
            password.display()
        ),
        1,
    );
    std::fs::write(&crtd.config, config).unwrap();
    crtd.restart();
    let src = source("runc");
    let image = format!("{location}/fixed:auth");
    let mut left = Leftover {
        ns: src.ns.clone(),
        containers: vec![],
        images: vec![image.clone()],
    };
    let clone = changed_clone(&crtd, &src, &mut left);
    let out = crtd.crtctl(ALPHA.2, &["commit", "--push", &clone, &image]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!("pushed to {image}")),
        "{out:?}"
    );
    // The password file is read at each push: a wrong one is refused, named.
    std::fs::write(&password, "wrong\n").unwrap();
    let out = crtd.crtctl(ALPHA.2, &["commit", "--push", &clone, &image]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("but the push failed")
            && out.stderr.contains(&format!(
                "registry 127.0.0.1:{} refused the credentials of \"alpha-bot\"",
                registry.port
            )),
        "{out:?}"
    );
    let audit = std::fs::read_to_string(crtd.dir.join("store/audit.jsonl")).unwrap();
    assert!(
        audit.lines().any(|l| l.contains("\"action\":\"push\"")
            && l.contains("failed (502)")
            && l.contains("refused the credentials")),
        "{audit}"
    );
}

/// A request answered `status` with an error that says `says`.
fn assert_refused(
    crtd: &Crtd,
    method: &str,
    path: &str,
    token: Option<&str>,
    status: u16,
    says: &str,
) {
    let (code, body) = crtd.request(method, path, token);
    assert_eq!(code, status, "{method} {path}: {body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains(says), "{method} {path}: {body}");
}
