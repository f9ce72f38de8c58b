//! Helpers for the end-to-end tests: they drive the real containerd (through
//! `ctr`, as a user would) with the real runc and crun, under both
//! `io.containerd.runc.v2` and `io.containerd.crt.v2`.
//!
//! Run them with `scripts/test.sh`, which installs and starts everything
//! first; on a node without containerd they fail, they do not skip.
//!
//! [`cri`] plays the kubelet: it drives containerd's CRI plugin.
//! [`strace_compare`] sets crt's trace lines beside strace's.

pub mod cri;
pub mod strace_compare;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

pub const IMAGE: &str = "localhost/crt-test:latest";
/// The containerd namespace the tests use.
pub const NS: &str = "crt-test";
pub const RUNC_V2: &str = "io.containerd.runc.v2";
pub const CRT: &str = "io.containerd.crt.v2";
const TIMEOUT: Duration = Duration::from_secs(90);

/// What a command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(self) -> Out {
        assert_eq!(self.code, 0, "command failed: {self:?}");
        self
    }
}

/// Waits for a started command (at most `timeout`), feeding it `input`, and collects its output.
pub fn collect(mut child: Child, input: Option<&[u8]>, timeout: Duration) -> Out {
    if let Some(data) = input {
        let mut stdin = child.stdin.take().expect("piped stdin");
        let data = data.to_vec();
        std::thread::spawn(move || {
            // ctr only closes the container's stdin (CloseIO) at EOF if EOF
            // arrives after the task is created; an instant EOF is lost in a
            // race inside ctr (with either runtime), so input comes a little later.
            std::thread::sleep(Duration::from_millis(1500));
            let _ = stdin.write_all(&data);
        });
    }
    let mut so = child.stdout.take().expect("piped stdout");
    let mut se = child.stderr.take().expect("piped stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = so.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = se.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("command did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Out {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&t_out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&t_err.join().unwrap()).into_owned(),
    }
}

/// Runs a command to completion (bounded), capturing its output.
pub fn run(cmd: &mut Command, input: Option<&[u8]>) -> Out {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    collect(child, input, TIMEOUT)
}

/// `ctr -n crt-test ARGS`.
pub fn ctr(args: &[&str]) -> Out {
    setup();
    run(Command::new("ctr").arg("-n").arg(NS).args(args), None)
}

/// `ctr -n crt-test ARGS` with `input` on stdin.
pub fn ctr_stdin(args: &[&str], input: &[u8]) -> Out {
    setup();
    run(
        Command::new("ctr").arg("-n").arg(NS).args(args),
        Some(input),
    )
}

/// `crtctl ARGS`.
pub fn crtctl(args: &[&str]) -> Out {
    run(Command::new("crtctl").args(args), None)
}

/// The documents of a YAML file (deploy/'s manifests), as JSON: read with
/// PyYAML from the venv scripts/setup.sh makes for kubernetes-validate.
pub fn yaml_documents(path: &Path) -> Vec<serde_json::Value> {
    let out = run(
        Command::new("/opt/crt-tools/venv/bin/python3")
            .args([
                "-c",
                "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
            ])
            .arg(path),
        None,
    )
    .ok();
    serde_json::from_str::<Vec<serde_json::Value>>(&out.stdout)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// The one document of `kind` in a YAML file.
pub fn yaml_one(path: &Path, kind: &str) -> serde_json::Value {
    let mut found: Vec<serde_json::Value> = yaml_documents(path)
        .into_iter()
        .filter(|d| d["kind"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "one {kind} in {}", path.display());
    found.remove(0)
}

/// A container id unique to this test run.
pub fn id(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Checks containerd is reachable and the test image is in our namespace.
pub fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let v = run(Command::new("ctr").arg("version"), None);
        assert_eq!(
            v.code, 0,
            "containerd is not reachable: run scripts/setup.sh (or scripts/test.sh) first: {v:?}"
        );
        let images = run(
            Command::new("ctr").args(["-n", NS, "image", "ls", "-q"]),
            None,
        );
        if !images.stdout.lines().any(|l| l == IMAGE) {
            let tar = repo_root().join("target/crt-image/image.tar");
            run(
                Command::new("ctr")
                    .args(["-n", NS, "image", "import"])
                    .arg(&tar),
                None,
            )
            .ok();
        }
    });
}

/// A detached container, removed (with its task) when dropped.
pub struct Task {
    pub id: String,
}

impl Task {
    /// `ctr run -d --runtime RUNTIME EXTRA... IMAGE ID CMD...`
    pub fn start(runtime: &str, extra: &[&str], cmd: &[&str]) -> Task {
        let id = id("t");
        let mut args = vec!["run", "-d", "--runtime", runtime];
        args.extend_from_slice(extra);
        args.push(IMAGE);
        args.push(&id);
        args.extend_from_slice(cmd);
        ctr(&args).ok();
        Task { id }
    }

    pub fn exec(&self, exec_id: &str, cmd: &[&str]) -> Out {
        let mut args = vec!["task", "exec", "--exec-id", exec_id, &self.id];
        args.extend_from_slice(cmd);
        ctr(&args)
    }

    /// RUNNING, STOPPED, PAUSED, CREATED, or None when there is no task.
    pub fn status(&self) -> Option<String> {
        task_status(&self.id)
    }

    pub fn init_pid(&self) -> Option<i32> {
        let out = ctr(&["task", "ls"]);
        out.stdout.lines().find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(self.id.as_str())).then(|| w.next()?.parse().ok())?
        })
    }

    pub fn bundle(&self) -> PathBuf {
        bundle(&self.id)
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        let _ = ctr(&["task", "rm", "-f", &self.id]);
        let _ = ctr(&["container", "rm", &self.id]);
    }
}

pub fn task_status(id: &str) -> Option<String> {
    let out = ctr(&["task", "ls"]);
    out.stdout.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        (w.first() == Some(&id)).then(|| w.get(2).map(|s| s.to_string()))?
    })
}

/// The task bundle containerd made for a container of our namespace.
pub fn bundle(id: &str) -> PathBuf {
    PathBuf::from("/run/containerd/io.containerd.runtime.v2.task")
        .join(NS)
        .join(id)
}

/// The `meta.json` the shim wrote for a traced container of our namespace.
pub fn trace_meta(id: &str) -> serde_json::Value {
    let path = format!("/var/lib/crt/traces/{NS}/{id}/meta.json");
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Polls `f` until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every process running `shim_binary` (its argv[0] ends with it): pid and arguments.
pub fn shim_processes(shim_binary: &str) -> Vec<(i32, Vec<String>)> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.first().is_some_and(|a| a.ends_with(shim_binary)) {
            found.push((pid, args));
        }
    }
    found
}

/// The value of a shim's `-id` argument.
pub fn shim_id(args: &[String]) -> Option<&str> {
    args.windows(2)
        .find(|w| w[0] == "-id")
        .map(|w| w[1].as_str())
}

/// The pids of shim processes whose command line has `-id ID`.
pub fn shim_pids(shim_binary: &str, id: &str) -> Vec<i32> {
    shim_processes(shim_binary)
        .into_iter()
        .filter(|(_, args)| args.windows(2).any(|w| w[0] == "-id" && w[1] == id))
        .map(|(pid, _)| pid)
        .collect()
}

/// A node config that selects crun, for `--runtime-config-path`.
pub fn crun_config() -> String {
    write_config("crun.toml", "[runtime]\nbinary = \"crun\"\n")
}

/// Writes a node config file under /tmp for this test run; returns its path.
pub fn write_config(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("crt-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

/// The `ctr run` options that pick a runtime binary under crt: none for
/// runc (the default), `--runtime-config-path` for crun.
pub fn runtime_args(binary: &str) -> Vec<String> {
    match binary {
        "runc" => Vec::new(),
        "crun" => vec!["--runtime-config-path".into(), crun_config()],
        other => panic!("unknown runtime binary {other}"),
    }
}

/// Runs `ctr run --rm` in the background (e.g. to kill it from outside).
pub fn spawn_ctr(args: &[&str]) -> Child {
    setup();
    Command::new("ctr")
        .arg("-n")
        .arg(NS)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ctr")
}

/// Collects a background command started with [`spawn_ctr`].
pub fn finish(child: Child) -> Out {
    collect(child, None, TIMEOUT)
}

/// `ctr -n NS ARGS`.
pub fn run_in(ns: &str, args: &[&str]) -> Out {
    setup();
    run(Command::new("ctr").arg("-n").arg(ns).args(args), None)
}

/// Starts a detached traced container (`crt.dev/trace=openat`) in `ns`
/// that opens a file `calls` times once /tmp/go exists in it (crt-loop stops
/// at the first failed openat and says so in the summary line it writes to
/// `log`); `extra` are more `ctr run` options. Start it with [`flood_go`].
pub fn flood_in(ns: &str, id: &str, log: &Path, calls: u64, extra: &[&str]) {
    let script = format!(
        "while [ ! -e /tmp/go ]; do sleep 0.05; done; crt-loop openat /etc/crt-test-release {calls}"
    );
    let uri = format!("file://{}", log.display());
    let mut args = vec![
        "run",
        "-d",
        "--runtime",
        CRT,
        "--log-uri",
        &uri,
        "--annotation",
        "crt.dev/trace=openat",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[IMAGE, id, "sh", "-c", &script]);
    run_in(ns, &args).ok();
}

/// A flood of [`flood_in`] finished with every one of its `calls` openat
/// calls successful (its summary line in `log` says how many).
pub fn assert_flood_complete(log: &Path, calls: u64) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let summary = text
        .lines()
        .find(|l| l.starts_with("openat "))
        .unwrap_or_else(|| panic!("no summary in {text:?}"));
    assert!(
        summary.trim_end().ends_with(&format!(" {calls}")),
        "{summary}"
    );
}

/// Records in the shim's own trace of container `ns/id` (every kind).
pub fn local_records(ns: &str, id: &str) -> u64 {
    run(
        Command::new("crtctl").args(["trace", "--local", "--json", "--logs", "-n", ns, id]),
        None,
    )
    .ok()
    .stdout
    .lines()
    .count() as u64
}

/// Lets a flood of [`flood_in`] start.
pub fn flood_go(ns: &str, id: &str) {
    run_in(
        ns,
        &["task", "exec", "--exec-id", "go", id, "touch", "/tmp/go"],
    )
    .ok();
}

/// A detached container under the crt runtime in a tenant's containerd
/// namespace, removed on drop.
pub struct NsTask {
    pub ns: String,
    pub id: String,
}

impl NsTask {
    pub fn start(ns: &str, extra: &[&str], cmd: &[&str]) -> NsTask {
        let id = id("crtd");
        let mut args = vec!["run", "-d", "--runtime", CRT];
        args.extend_from_slice(extra);
        args.push(IMAGE);
        args.push(&id);
        args.extend_from_slice(cmd);
        run_in(ns, &args).ok();
        NsTask { ns: ns.into(), id }
    }

    /// The OCI spec containerd wrote for it.
    pub fn spec(&self) -> serde_json::Value {
        let p = format!(
            "/run/containerd/io.containerd.runtime.v2.task/{}/{}/config.json",
            self.ns, self.id
        );
        serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))).unwrap()
    }
}

impl Drop for NsTask {
    fn drop(&mut self) {
        let _ = run_in(&self.ns, &["task", "rm", "-f", &self.id]);
        let _ = run_in(&self.ns, &["container", "rm", &self.id]);
    }
}

/// A crtd of the test's own: its own config (tenants with known tokens),
/// socket, port and store, following the node's real traces. Killed when
/// dropped.
pub struct Crtd {
    child: Option<Child>,
    pub dir: PathBuf,
    pub port: u16,
    pub socket: PathBuf,
    pub config: PathBuf,
    nofile: Option<u64>,
    tls: bool,
    /// Environment crtd starts with, beside the test's.
    env: Vec<(String, String)>,
}

/// The local CA scripts/setup.sh makes the node's certificate with.
pub const NODE_CA: &str = "/etc/crt/tls/ca.crt";

/// The tenants every test crtd knows: (name, containerd namespace, token).
pub const TENANTS: [(&str, &str, &str); 2] = [
    ("alpha", "crt-alpha", "alpha-token-7f3a"),
    ("beta", "crt-beta", "beta-token-91c2"),
];

/// The SHA-256 of `s` in hex, as the node config takes tokens.
pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Crtd {
    pub fn start(name: &str) -> Crtd {
        Crtd::start_with(name, "")
    }

    /// A crtd whose config also has `extra` (TOML tables).
    pub fn start_with(name: &str, extra: &str) -> Crtd {
        Crtd::start_prepared(name, extra, |_| {})
    }

    /// Like [`Crtd::start_with`], with `prepare` run on its directory
    /// before it starts (to mount something where its store goes, say).
    pub fn start_prepared(name: &str, extra: &str, prepare: impl FnOnce(&Path)) -> Crtd {
        Crtd::start_custom(
            name,
            |dir| {
                prepare(dir);
                extra.to_string()
            },
            None,
        )
    }

    /// The most general start: `prepare` sets up its directory and returns
    /// extra config (TOML tables); `nofile`, a limit on its open files.
    pub fn start_custom(
        name: &str,
        prepare: impl FnOnce(&Path) -> String,
        nofile: Option<u64>,
    ) -> Crtd {
        Crtd::start_full(name, prepare, nofile, false, "")
    }

    /// A crtd with `api_keys` (TOML lines) added to its `[api]` table.
    pub fn start_api(name: &str, api_keys: &str) -> Crtd {
        Crtd::start_full(name, |_| String::new(), None, false, api_keys)
    }

    /// A crtd serving tenants over HTTPS with the node's certificate (made
    /// by scripts/setup.sh from its local CA, [`NODE_CA`]).
    pub fn start_tls(name: &str) -> Crtd {
        Crtd::start_full(name, |_| String::new(), None, true, "")
    }

    fn start_full(
        name: &str,
        prepare: impl FnOnce(&Path) -> String,
        nofile: Option<u64>,
        tls: bool,
        api_keys: &str,
    ) -> Crtd {
        setup();
        let dir = std::env::temp_dir().join(format!("crt-it-crtd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let extra = prepare(&dir);
        let extra = extra.as_str();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let socket = dir.join("crtd.sock");
        let tls_keys = if tls {
            "tls_cert = \"/etc/crt/tls/node.crt\"\ntls_key = \"/etc/crt/tls/node.key\"\n"
        } else {
            ""
        };
        let mut text = format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\nsocket = \"{}\"\n{tls_keys}{api_keys}\n[store]\ndir = \"{}\"\n",
            socket.display(),
            dir.join("store").display()
        );
        for (t, ns, token) in TENANTS {
            text.push_str(&format!(
                "\n[[tenants]]\nname = \"{t}\"\nnamespaces = [\"{ns}\"]\ntoken_sha256 = [\"{}\"]\n",
                sha256_hex(token)
            ));
            // Each tenant's namespace gets the test image.
            let images = run(
                Command::new("ctr").args(["-n", ns, "image", "ls", "-q"]),
                None,
            );
            if !images.stdout.lines().any(|l| l == IMAGE) {
                let tar = repo_root().join("target/crt-image/image.tar");
                run(
                    Command::new("ctr")
                        .args(["-n", ns, "image", "import"])
                        .arg(&tar),
                    None,
                )
                .ok();
            }
        }
        text.push('\n');
        text.push_str(extra);
        let config = dir.join("config.toml");
        std::fs::write(&config, text).unwrap();
        let mut c = Crtd {
            child: None,
            dir,
            port,
            socket,
            config,
            nofile,
            tls,
            env: Vec::new(),
        };
        c.spawn();
        c
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join("crtd.log")).unwrap();
        let mut cmd = match self.nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg("crtd");
                c
            }
            None => Command::new("crtd"),
        };
        let child = cmd
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("crtd is installed (scripts/setup.sh)");
        self.child = Some(child);
        let port = self.port;
        assert!(
            wait_for(Duration::from_secs(20), || std::net::TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "crtd did not start: {}",
            std::fs::read_to_string(self.dir.join("crtd.log")).unwrap_or_default()
        );
    }

    /// The crtd process.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("crtd runs").id()
    }

    /// What crtd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("crtd.log")).unwrap_or_default()
    }

    /// `kill -9`, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Restarts crtd with `key=value` in its environment.
    pub fn restart_with_env(&mut self, key: &str, value: &str) {
        self.env.push((key.into(), value.into()));
        self.restart();
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn server(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// GET over TCP with a tenant's token (or none): (status, JSON body).
    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        self.request("GET", path, token)
    }

    /// Any method, without a body, over TCP: (status, JSON body).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> (u16, serde_json::Value) {
        read_response(&mut self.send(method, path, token))
    }

    /// Any method, without a body, over TCP: (status, body as text).
    pub fn request_text(&self, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
        read_text(&mut self.send(method, path, token))
    }

    /// A request without a body sent over TCP, with a tenant's token (or none).
    fn send(&self, method: &str, path: &str, token: Option<&str>) -> std::net::TcpStream {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        s
    }

    /// GET over the root socket: (status, JSON body).
    pub fn root_get(&self, path: &str) -> (u16, serde_json::Value) {
        socket_get(&self.socket, path)
    }

    /// GET over the root socket: (status, body as text).
    pub fn root_get_text(&self, path: &str) -> (u16, String) {
        read_text(&mut socket_request(&self.socket, path))
    }

    /// crtctl against this crtd as a tenant.
    pub fn crtctl(&self, token: &str, args: &[&str]) -> Out {
        run(
            Command::new("crtctl")
                .env("CRT_TOKEN", token)
                .env("CRT_SERVER", self.server())
                .args(args),
            None,
        )
    }

    /// Events stored for a container, as crtd's container view counts them.
    pub fn stored(&self, ns: &str, id: &str) -> u64 {
        let (_, v) = self.root_get(&format!("/v1/containers/{ns}/{id}"));
        v["events_stored"].as_u64().unwrap_or(0)
    }
}

fn read_text(s: &mut impl Read) -> (u16, String) {
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

/// GET over a crtd's root socket (the test's own, or the node's): (status, JSON body).
pub fn socket_get(socket: &Path, path: &str) -> (u16, serde_json::Value) {
    read_response(&mut socket_request(socket, path))
}

fn socket_request(socket: &Path, path: &str) -> std::os::unix::net::UnixStream {
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap_or_else(|e| {
        panic!(
            "crtd's root socket {}: {e} (is crtd running? scripts/setup.sh starts the node's)",
            socket.display()
        )
    });
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    s
}

fn read_response(s: &mut impl Read) -> (u16, serde_json::Value) {
    let (status, body) = read_text(s);
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

impl Drop for Crtd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A program run on a pseudo-terminal of its own, as a person at a terminal
/// runs it: what it prints is read from the terminal, keys are typed into it,
/// and the window can be resized (the program gets SIGWINCH).
pub struct Pty {
    master: std::fs::File,
    child: std::process::Child,
    seen: Vec<u8>,
}

impl Pty {
    pub fn spawn(cmd: &mut Command, cols: u16, rows: u16) -> Pty {
        use std::os::fd::{FromRawFd, IntoRawFd};
        use std::os::unix::process::CommandExt;
        let (mut master, mut slave) = (0, 0);
        let ws = winsize(cols, rows);
        // SAFETY: openpty writes two fds into the given locals; the name and
        // termios pointers may be null; `ws` is a valid winsize.
        let r = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &ws,
            )
        };
        assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: openpty just returned these fds, owned by nobody else.
        let (master, slave) = unsafe {
            (
                std::fs::File::from_raw_fd(master),
                std::fs::File::from_raw_fd(slave),
            )
        };
        cmd.stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave.try_clone().unwrap());
        let master_fd = master.try_clone().unwrap().into_raw_fd();
        // SAFETY: between fork and exec only async-signal-safe calls: setsid,
        // ioctl and close.
        unsafe {
            cmd.pre_exec(move || {
                libc::close(master_fd);
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawning on a pty");
        // SAFETY: our copy of the fd given to the child only.
        unsafe { libc::close(master_fd) };
        drop(slave);
        Pty {
            master,
            child,
            seen: Vec::new(),
        }
    }

    /// Types `keys`.
    pub fn send(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
    }

    /// Reads until what was printed since the last match holds `text`;
    /// everything read up to and including it, or a panic after `timeout`.
    pub fn expect(&mut self, text: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        loop {
            if let Some(i) = find(&self.seen, text.as_bytes()) {
                let upto: Vec<u8> = self.seen.drain(..i + text.len()).collect();
                return String::from_utf8_lossy(&upto).into_owned();
            }
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{text:?} did not appear within {timeout:?}; the terminal shows: {:?}",
                String::from_utf8_lossy(&self.seen)
            );
            let mut pfd = libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&self.master),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(200) as i32) };
            if n > 0 {
                let mut buf = [0u8; 4096];
                match self.master.read(&mut buf) {
                    Ok(0) | Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    Ok(k) => self.seen.extend_from_slice(&buf[..k]),
                }
            }
        }
    }

    /// Resizes the window; the program is sent SIGWINCH by the kernel.
    pub fn resize(&mut self, cols: u16, rows: u16) {
        let ws = winsize(cols, rows);
        // SAFETY: TIOCSWINSZ reads a valid winsize.
        let r = unsafe {
            libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(&self.master),
                libc::TIOCSWINSZ,
                &ws,
            )
        };
        assert_eq!(r, 0);
    }

    /// The program's exit code, waiting up to `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            // Drain what it prints, so it is never blocked on the terminal.
            let _ = self.expect_nothing();
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn expect_nothing(&mut self) -> Option<()> {
        let mut pfd = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&self.master),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 0) } > 0 {
            let mut buf = [0u8; 4096];
            let k = self.master.read(&mut buf).ok()?;
            self.seen.extend_from_slice(&buf[..k]);
        }
        Some(())
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn winsize(cols: u16, rows: u16) -> libc::winsize {
    libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A tmpfs, unmounted (lazily: crtd may still hold it) when dropped.
pub struct Tmpfs(pub std::path::PathBuf);

impl Tmpfs {
    pub fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        run(
            Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={size},mode=0700"),
                    "tmpfs",
                ])
                .arg(at),
            None,
        )
        .ok();
        Tmpfs(at.to_path_buf())
    }

    pub fn resize(&self, size: &str) {
        run(
            Command::new("mount")
                .args(["-o", &format!("remount,size={size}")])
                .arg(&self.0),
            None,
        )
        .ok();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = run(Command::new("umount").arg("-l").arg(&self.0), None);
    }
}

/// The node config file the shim reads, /etc/crt/config.toml.
pub const NODE_CONFIG: &str = "/etc/crt/config.toml";

/// Puts the node config back as it was (or absent) when dropped: for the
/// test binaries that change it (one test each: cargo runs test binaries
/// one after another, so no other test sees the changed file).
pub struct RestoreNodeConfig(Option<Vec<u8>>);

impl RestoreNodeConfig {
    /// Remembers the node config as it is now.
    pub fn save() -> RestoreNodeConfig {
        RestoreNodeConfig(std::fs::read(NODE_CONFIG).ok())
    }

    /// What the file held when saved.
    pub fn saved(&self) -> Option<&[u8]> {
        self.0.as_deref()
    }
}

impl Drop for RestoreNodeConfig {
    fn drop(&mut self) {
        match &self.0 {
            Some(old) => std::fs::write(NODE_CONFIG, old).unwrap(),
            None => {
                let _ = std::fs::remove_file(NODE_CONFIG);
            }
        }
    }
}
