//! The web UI in a real browser: Debian's Chromium, driven by Playwright
//! (ui/tests/*.spec.ts), against a real crtd and containerd. This test sets
//! the node up — two tenants' containers, two of alpha's talking over TCP
//! across network namespaces, one whose process name and output carry
//! HTML — and hands the browser tests what they need in CRT_* variables.

use std::process::Command;
use std::time::Duration;

use crt_integration::*;

const ALPHA: (&str, &str, &str) = TENANTS[0];
const BETA: (&str, &str, &str) = TENANTS[1];
const OPERATOR_TOKEN: &str = "operator-token-5c1e";
/// What a container controls, made to look like HTML.
const PAYLOAD: &str = "<img src=x onerror=alert(1)>";

/// Network namespaces joined by veth pairs; removed (with their links) on drop.
struct Nets(Vec<String>);

impl Nets {
    fn ip(args: &[&str]) {
        run(Command::new("ip").args(args), None).ok();
    }

    /// `a` and `b` joined, with `a` at `ip_a`, `b` at `ip_b` (a /24 of their own).
    fn link(&mut self, a: &str, b: &str, ip_a: &str, ip_b: &str) {
        for ns in [a, b] {
            if !self.0.iter().any(|n| n == ns) {
                Nets::ip(&["netns", "add", ns]);
                Nets::ip(&["-n", ns, "link", "set", "lo", "up"]);
                self.0.push(ns.to_string());
            }
        }
        let (va, vb) = (
            format!("v{}", &ip_b[7..]).replace('.', "x"),
            format!("w{}", &ip_b[7..]).replace('.', "x"),
        );
        Nets::ip(&[
            "link", "add", &va, "netns", a, "type", "veth", "peer", "name", &vb, "netns", b,
        ]);
        Nets::ip(&["-n", a, "addr", "add", &format!("{ip_a}/24"), "dev", &va]);
        Nets::ip(&["-n", b, "addr", "add", &format!("{ip_b}/24"), "dev", &vb]);
        Nets::ip(&["-n", a, "link", "set", &va, "up"]);
        Nets::ip(&["-n", b, "link", "set", &vb, "up"]);
    }
}

impl Drop for Nets {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = run(Command::new("ip").args(["netns", "del", ns]), None);
        }
    }
}

/// A named container under the crt runtime, removed on drop.
struct Named {
    ns: String,
    id: String,
}

impl Named {
    fn run(ns: &str, id: &str, extra: &[&str], cmd: &[&str]) -> Named {
        let mut args = vec!["run", "-d", "--runtime", CRT];
        args.extend_from_slice(extra);
        args.push(IMAGE);
        args.push(id);
        args.extend_from_slice(cmd);
        run_in(ns, &args).ok();
        Named {
            ns: ns.into(),
            id: id.into(),
        }
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = run_in(&self.ns, &["task", "rm", "-f", &self.id]);
        let _ = run_in(&self.ns, &["container", "rm", &self.id]);
    }
}

/// An image in alpha's namespace, removed on drop.
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = run_in(ALPHA.1, &["image", "rm", &self.0]);
    }
}

#[test]
fn the_web_ui_in_chromium_against_a_real_node() {
    let ui = repo_root().join("ui");
    let playwright = ui.join("node_modules/.bin/playwright");
    assert!(
        playwright.exists(),
        "{} is missing: scripts/build-ui.sh installs the UI's packages (scripts/setup.sh runs it)",
        playwright.display()
    );
    let crtd = Crtd::start_api(
        "webui",
        &format!(
            "operator_token_sha256 = [\"{}\"]\n",
            sha256_hex(OPERATOR_TOKEN)
        ),
    );
    let pid = std::process::id();
    let (na, nb, nc) = (
        format!("crtui-a-{pid}"),
        format!("crtui-b-{pid}"),
        format!("crtui-c-{pid}"),
    );
    let mut nets = Nets(Vec::new());
    // alpha's server in A, alpha's client in B, beta's server in C.
    nets.link(&na, &nb, "10.231.7.1", "10.231.7.2");
    nets.link(&nc, &nb, "10.231.8.1", "10.231.8.2");
    let net = |ns: &str| format!("network:/var/run/netns/{ns}");

    let server = Named::run(
        ALPHA.1,
        &format!("web-server-{pid}"),
        &["--with-ns", &net(&na)],
        &["httpd", "-f", "-p", "8080", "-h", "/etc"],
    );
    // A connection held open (the map's socket edge) and requests made
    // again and again (traced connects).
    let client = Named::run(
        ALPHA.1,
        &format!("web-client-{pid}"),
        &[
            "--with-ns",
            &net(&nb),
            "--annotation",
            "crt.dev/trace=%network,%file",
        ],
        &[
            "sh",
            "-c",
            "(sleep 100000 | nc 10.231.7.1 8080 >/dev/null) & (sleep 100000 | nc 10.231.8.1 8080 >/dev/null) & \
             while true; do wget -q -O /dev/null http://10.231.7.1:8080/hostname; sleep 1; done",
        ],
    );
    let beta = Named::run(
        BETA.1,
        &format!("beta-secret-{pid}"),
        &["--with-ns", &net(&nc)],
        &["httpd", "-f", "-p", "8080", "-h", "/etc"],
    );
    // A program whose name and output are HTML, printing a numbered line ten times a second.
    let scripts = crtd.dir.join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(
        scripts.join("payload.sh"),
        format!(
            "#!/bin/sh\ni=0\nwhile true; do echo \"{PAYLOAD} tick $i\"; cat \"$0\" >/dev/null; i=$((i+1)); sleep 0.1; done\n"
        ),
    )
    .unwrap();
    let mount = format!(
        "type=bind,src={},dst=/scripts,options=rbind:ro",
        scripts.display()
    );
    let xss = Named::run(
        ALPHA.1,
        &format!("payload-{pid}"),
        &["--annotation", "crt.dev/trace=openat", "--mount", &mount],
        &[
            "sh",
            "-c",
            &format!("cp /scripts/payload.sh '/tmp/{PAYLOAD}' && chmod +x '/tmp/{PAYLOAD}' && exec '/tmp/{PAYLOAD}'"),
        ],
    );

    // A StatefulSet's pod made again: db-N ran, its container exited 3 and was
    // deleted as CRI deletes it; the new db-N (new uid) runs. Made in CRI's
    // namespace with the annotations CRI writes, in alpha's Kubernetes namespace.
    let images = run_in("k8s.io", &["image", "ls", "-q"]);
    if !images.stdout.lines().any(|l| l == IMAGE) {
        let tar = repo_root().join("target/crt-image/image.tar");
        run(
            Command::new("ctr")
                .args(["-n", "k8s.io", "image", "import"])
                .arg(&tar),
            None,
        )
        .ok();
    }
    let pod = format!("db-{pid}");
    let (old_uid, new_uid) = (format!("0f3e9a1c-{pid}-old"), format!("7b21c4d2-{pid}-new"));
    let cri = |uid: &str| -> Vec<String> {
        [
            format!("io.kubernetes.cri.sandbox-namespace={}", ALPHA.1),
            format!("io.kubernetes.cri.sandbox-name={pod}"),
            format!("io.kubernetes.cri.sandbox-uid={uid}"),
            "io.kubernetes.cri.container-name=db".to_string(),
        ]
        .into_iter()
        .flat_map(|a| ["--annotation".to_string(), a])
        .collect()
    };
    let old_args = cri(&old_uid);
    let old_args: Vec<&str> = old_args.iter().map(String::as_str).collect();
    let old_pod = Named::run(
        "k8s.io",
        &format!("db-old-{pid}"),
        &old_args,
        &["sh", "-c", "exit 3"],
    );
    assert!(
        wait_for(Duration::from_secs(30), || run_in(
            "k8s.io",
            &["task", "ls"]
        )
        .stdout
        .lines()
        .any(|l| l.starts_with(&old_pod.id) && l.contains("STOPPED"))),
        "the old pod's container did not exit"
    );
    drop(old_pod);
    let new_args = cri(&new_uid);
    let new_args: Vec<&str> = new_args.iter().map(String::as_str).collect();
    let new_pod = Named::run(
        "k8s.io",
        &format!("db-new-{pid}"),
        &new_args,
        &["sh", "-c", "exec sleep 100000"],
    );

    // The node is ready when alpha's topology has every container running.
    let ready = wait_for(Duration::from_secs(30), || {
        let (_, v) = crtd.get("/v1/topology", Some(ALPHA.2));
        let text = v.to_string();
        [&server.id, &client.id, &xss.id, &new_pod.id]
            .iter()
            .all(|id| text.contains(id.as_str()))
            && text.matches("\"running\"").count() >= 4
    });
    assert!(ready, "alpha's containers run: {}", crtd.log());

    // The image the browser commits its clone to; removed however the test ends.
    let commit = Image(format!("localhost/crt-ui-commit-{pid}:debug"));
    let screenshots = repo_root().join("docs/screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let browser = Command::new(&playwright)
        .arg("test")
        .current_dir(&ui)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .env("CRT_URL", crtd.server())
        .env("CRT_ALPHA_TOKEN", ALPHA.2)
        .env("CRT_BETA_TOKEN", BETA.2)
        .env("CRT_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("CRT_NS", ALPHA.1)
        .env("CRT_BETA_NS", BETA.1)
        .env("CRT_SERVER", &server.id)
        .env("CRT_CLIENT", &client.id)
        .env("CRT_PAYLOAD_CONTAINER", &xss.id)
        .env("CRT_PAYLOAD", PAYLOAD)
        .env("CRT_BETA_ID", &beta.id)
        .env("CRT_BETA_ADDR", "10.231.8.1")
        .env("CRT_POD_NAME", &pod)
        .env("CRT_POD_OLD_UID", &old_uid)
        .env("CRT_POD_NEW_UID", &new_uid)
        .env("CRT_COMMIT_REF", &commit.0)
        .env("CRT_SCREENSHOTS", &screenshots)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("playwright runs");
    // Playwright bounds each test (ui/playwright.config.ts); this bounds the lot.
    let out = collect(browser, None, Duration::from_secs(900));
    assert!(
        out.code == 0,
        "the browser tests failed:\n{}\n{}\ncrtd's log:\n{}",
        out.stdout,
        out.stderr,
        crtd.log()
    );
    println!("{}", out.stdout);
    // The image the browser committed is there, with what the shell wrote in the clone.
    let images = run_in(ALPHA.1, &["image", "ls", "-q"]).ok().stdout;
    assert!(images.lines().any(|l| l == commit.0), "{images}");
    let made = run_in(
        ALPHA.1,
        &[
            "run",
            "--rm",
            "--runtime",
            CRT,
            &commit.0,
            &format!("committed-{pid}"),
            "cat",
            "/made-in-the-clone",
        ],
    )
    .ok();
    assert_eq!(made.stdout.trim(), "from-the-browser", "{made:?}");
}
