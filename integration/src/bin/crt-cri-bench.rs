//! Pods through CRI, for scripts/bench-cri.sh: plays the kubelet against
//! containerd's CRI plugin (with the shared client, crt_integration::cri)
//! and measures, for the runtime handlers `runc`, `crt` and `crt` with
//! `crt.dev/trace`,
//!
//! - start-to-ready of a one-container pod: RunPodSandbox, CreateContainer,
//!   StartContainer, then ContainerStatus until RUNNING and an exec readiness
//!   probe (ExecSync of `true`) until it exits 0; and the teardown after it
//!   (StopContainer with a grace period, StopPodSandbox, RemoveContainer,
//!   RemovePodSandbox);
//! - the memory of the shim of a pod of three running containers: RSS, PSS
//!   and private bytes from /proc/PID/smaps_rollup, summed over the shim's
//!   processes (crt's listener keeper is one when a pod is traced).
//!
//! The variants take turns round by round in a rotating order; every figure
//! of every round goes to a JSON file, and the script takes the medians.
//! Every pod carries the label crt.dev/bench-run=RUN_ID, and is removed
//! after its round, on an error, and on SIGINT/SIGTERM; `cleanup` removes
//! whatever a killed run left.
//!
//!   crt-cri-bench run --run-id ID --out FILE [--runs N] [--warmup N]
//!       [--mem-runs N] [--mem-pods N] [--trace SPEC] [--image REF]
//!       [--socket PATH] [--trace-dir DIR] [--log-dir DIR]
//!   crt-cri-bench cleanup --run-id ID [--socket PATH] [--trace-dir DIR]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use crt_integration::cri::api::security_profile::ProfileType;
use crt_integration::cri::api::*;
use crt_integration::cri::Cri;
use serde_json::{json, Value};

/// The label every pod of a run carries, for cleanup.
const RUN_LABEL: &str = "crt.dev/bench-run";
/// The Kubernetes namespace the pods claim to be in.
const POD_NAMESPACE: &str = "crt-bench";
/// A container that sleeps and ends at once on SIGTERM, so that a stop with
/// a grace period measures the runtime, not the grace period.
const APP: [&str; 3] = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"];
/// The readiness probe's timeout, and the stop grace period (whole seconds).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const GRACE: Duration = Duration::from_secs(10);
/// A pod that is not ready after this is a failed measurement.
const READY_DEADLINE: Duration = Duration::from_secs(60);
/// How long the pods of a memory round run before their shims are read.
const MEM_SETTLE: Duration = Duration::from_secs(1);

/// Set by SIGINT and SIGTERM: the run stops at the next step and cleans up.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn catch_stop_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe; the function pointer lives for the program.
        unsafe {
            libc::signal(sig, on_stop_signal as *const () as libc::sighandler_t);
        }
    }
}

fn check_stop() -> Result<()> {
    if STOP.load(Ordering::SeqCst) {
        bail!("interrupted by SIGINT or SIGTERM");
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Runc,
    Crt,
    CrtTraced,
}

impl Variant {
    const ALL: [Variant; 3] = [Variant::Runc, Variant::Crt, Variant::CrtTraced];

    fn name(self) -> &'static str {
        match self {
            Variant::Runc => "runc",
            Variant::Crt => "crt",
            Variant::CrtTraced => "crt-traced",
        }
    }

    /// The CRI runtime handler (the RuntimeClass's handler).
    fn handler(self) -> &'static str {
        match self {
            Variant::Runc => crt_integration::cri::HANDLER_RUNC,
            Variant::Crt | Variant::CrtTraced => crt_integration::cri::HANDLER_CRT,
        }
    }

    fn shim_binary(self) -> &'static str {
        match self {
            Variant::Runc => "containerd-shim-runc-v2",
            Variant::Crt | Variant::CrtTraced => "containerd-shim-crt-v2",
        }
    }
}

struct Opts {
    run_id: String,
    out: PathBuf,
    runs: usize,
    warmup: usize,
    mem_runs: usize,
    mem_pods: usize,
    trace: String,
    image: String,
    socket: PathBuf,
    trace_dir: PathBuf,
    log_dir: PathBuf,
}

const USAGE: &str = "usage: crt-cri-bench run --run-id ID --out FILE [--runs N] [--warmup N] [--mem-runs N] [--mem-pods N] [--trace SPEC] [--image REF] [--socket PATH] [--trace-dir DIR] [--log-dir DIR]
       crt-cri-bench cleanup --run-id ID [--socket PATH] [--trace-dir DIR]";

fn parse_opts(args: &[String]) -> Result<Opts> {
    const KNOWN: [&str; 11] = [
        "--run-id",
        "--out",
        "--runs",
        "--warmup",
        "--mem-runs",
        "--mem-pods",
        "--trace",
        "--image",
        "--socket",
        "--trace-dir",
        "--log-dir",
    ];
    let mut flags: HashMap<&str, &str> = HashMap::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if !KNOWN.contains(&flag.as_str()) {
            bail!(
                "unknown option {flag:?}; expected one of {}",
                KNOWN.join(", ")
            );
        }
        let Some(value) = it.next() else {
            bail!("option {flag} needs a value")
        };
        flags.insert(flag.as_str(), value.as_str());
    }
    let count = |flag: &str, default: usize, min: usize| -> Result<usize> {
        match flags.get(flag) {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n >= min => Ok(n),
                _ => bail!("{flag} {v:?}: expected a whole number of at least {min}"),
            },
        }
    };
    let text = |flag: &str, default: &str| flags.get(flag).unwrap_or(&default).to_string();
    let run_id = text("--run-id", "");
    if run_id.is_empty()
        || run_id.len() > 40
        || !run_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        bail!("--run-id {run_id:?}: expected 1 to 40 letters, digits and dashes (it goes into pod names and a label)");
    }
    Ok(Opts {
        out: PathBuf::from(text("--out", "")),
        runs: count("--runs", 25, 1)?,
        warmup: count("--warmup", 2, 0)?,
        mem_runs: count("--mem-runs", 3, 1)?,
        mem_pods: count("--mem-pods", 3, 1)?,
        trace: text("--trace", "%file"),
        image: text("--image", "localhost/crt-test:latest"),
        socket: PathBuf::from(text("--socket", crt_integration::cri::CONTAINERD_SOCKET)),
        trace_dir: PathBuf::from(text("--trace-dir", "/var/lib/crt/traces/k8s.io")),
        log_dir: PathBuf::from(text("--log-dir", &format!("/tmp/crt-cri-bench-{run_id}"))),
        run_id,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, opts) = match args.split_first().map(|(c, rest)| (c, parse_opts(rest))) {
        Some((cmd, Ok(opts))) if cmd == "run" || cmd == "cleanup" => (cmd.as_str(), opts),
        Some((_, Err(e))) => {
            eprintln!("crt-cri-bench: {e:#}\n{USAGE}");
            std::process::exit(2)
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2)
        }
    };
    catch_stop_signals();
    let result = match cmd {
        "run" if opts.out.as_os_str().is_empty() => Err(anyhow!("run needs --out FILE")),
        "run" => run_and_clean_up(&opts),
        _ => clean_up(&opts),
    };
    if let Err(e) = result {
        eprintln!("crt-cri-bench: error: {e:#}");
        if format!("{e:#}").contains("oom_score_adj: Permission denied") {
            eprintln!("crt-cri-bench: containerd may not lower a sandbox's oom_score_adj here (no CAP_SYS_RESOURCE): scripts/setup.sh sets restrict_oom_score_adj = true in its CRI config");
        }
        std::process::exit(1);
    }
}

fn connect(opts: &Opts) -> Result<Cri> {
    Cri::connect_to(&opts.socket).map_err(|e| {
        anyhow!(
            "connecting to containerd's CRI plugin at {}: {e}",
            opts.socket.display()
        )
    })
}

/// Runs the benchmark; whatever way it ends (done, failed, interrupted),
/// removes every pod of the run.
fn run_and_clean_up(opts: &Opts) -> Result<()> {
    let outcome = connect(opts).and_then(|cri| run(opts, cri));
    let cleaned = clean_up(opts);
    outcome.and(cleaned)
}

/// A CRI call's result, its error naming the call.
fn named<T>(r: Result<T, tonic::Status>, call: impl FnOnce() -> String) -> Result<T> {
    r.map_err(|s| anyhow!("{}: {} ({:?})", call(), s.message(), s.code()))
}

/// Removes every pod labelled with this run id, their traces and their log
/// directory. A pod
/// whose container is still starting (its client was killed mid-call) cannot
/// be removed yet: it is tried again for up to CLEANUP_PATIENCE.
fn clean_up(opts: &Opts) -> Result<()> {
    const CLEANUP_PATIENCE: Duration = Duration::from_secs(60);
    let cri = connect(opts)?;
    let deadline = Instant::now() + CLEANUP_PATIENCE;
    loop {
        let filter = PodSandboxFilter {
            label_selector: HashMap::from([(RUN_LABEL.to_string(), opts.run_id.clone())]),
            ..Default::default()
        };
        let pods = named(
            cri.call(|mut c| async move {
                c.list_pod_sandbox(ListPodSandboxRequest {
                    filter: Some(filter),
                })
                .await
            }),
            || "ListPodSandbox".into(),
        )?;
        let mut failed = None;
        for pod in pods.items {
            if let Err(e) = remove_pod(&cri, opts, &pod.id) {
                failed = Some(e);
            }
        }
        match failed {
            None => {
                let _ = std::fs::remove_dir_all(&opts.log_dir);
                return Ok(());
            }
            Some(e) if Instant::now() > deadline => return Err(e),
            Some(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// Stops and removes a pod and its containers, whatever state they are in.
fn remove_pod(cri: &Cri, opts: &Opts, pod: &str) -> Result<()> {
    eprintln!("crt-cri-bench: cleanup: removing pod sandbox {pod}");
    let filter = ContainerFilter {
        pod_sandbox_id: pod.to_string(),
        ..Default::default()
    };
    let containers: Vec<String> = cri
        .call(|mut c| async move {
            c.list_containers(ListContainersRequest {
                filter: Some(filter),
            })
            .await
        })
        .map(|r| r.containers.into_iter().map(|c| c.id).collect())
        .unwrap_or_default();
    let _ = cri.stop_pod(pod);
    for c in &containers {
        let _ = cri.remove_container(c);
    }
    named(cri.remove_pod(pod), || format!("RemovePodSandbox {pod}"))?;
    remove_traces(&opts.trace_dir, pod, &containers);
    Ok(())
}

fn remove_traces(trace_dir: &Path, pod: &str, containers: &[String]) {
    for id in std::iter::once(pod).chain(containers.iter().map(String::as_str)) {
        let _ = std::fs::remove_dir_all(trace_dir.join(id));
    }
}

/// One pod the benchmark made.
struct Pod {
    id: String,
    containers: Vec<String>,
}

struct Bench<'a> {
    opts: &'a Opts,
    cri: Cri,
    seq: usize,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

fn namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

fn runtime_default() -> SecurityProfile {
    SecurityProfile {
        profile_type: ProfileType::RuntimeDefault as i32,
        localhost_ref: String::new(),
    }
}

impl Bench<'_> {
    /// A pod's config as the kubelet would send it for a Pod on `variant`'s
    /// RuntimeClass (RuntimeDefault seccomp, the pod's own network).
    fn sandbox_config(&mut self, variant: Variant, kind: &str) -> Result<PodSandboxConfig> {
        self.seq += 1;
        let name = format!(
            "crtb-{}-{kind}-{}-{}",
            self.opts.run_id,
            variant.name(),
            self.seq
        );
        let uid = format!("{}-{}", self.opts.run_id, self.seq);
        let log_directory = self
            .opts
            .log_dir
            .join(format!("{POD_NAMESPACE}_{name}_{uid}"));
        std::fs::create_dir_all(&log_directory).with_context(|| {
            format!("creating the pod log directory {}", log_directory.display())
        })?;
        let labels = HashMap::from([
            (RUN_LABEL.to_string(), self.opts.run_id.clone()),
            ("io.kubernetes.pod.name".to_string(), name.clone()),
            (
                "io.kubernetes.pod.namespace".to_string(),
                POD_NAMESPACE.to_string(),
            ),
            ("io.kubernetes.pod.uid".to_string(), uid.clone()),
        ]);
        let mut annotations = HashMap::new();
        if variant == Variant::CrtTraced {
            // A Pod annotation: the kubelet hands it to RunPodSandbox, and
            // containerd passes crt.dev/* on to the containers
            // (pod_annotations in its runtime config).
            annotations.insert("crt.dev/trace".to_string(), self.opts.trace.clone());
        }
        Ok(PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.clone(),
                uid,
                namespace: POD_NAMESPACE.into(),
                attempt: 0,
            }),
            hostname: name,
            log_directory: log_directory.to_string_lossy().into_owned(),
            labels,
            annotations,
            linux: Some(LinuxPodSandboxConfig {
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces()),
                    seccomp: Some(runtime_default()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn container_config(&self, name: &str, sandbox: &PodSandboxConfig) -> ContainerConfig {
        let pod = sandbox.metadata.clone().unwrap_or_default();
        ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: self.opts.image.clone(),
                ..Default::default()
            }),
            command: APP.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}/0.log"),
            labels: HashMap::from([
                ("io.kubernetes.container.name".to_string(), name.to_string()),
                ("io.kubernetes.pod.name".to_string(), pod.name),
                ("io.kubernetes.pod.namespace".to_string(), pod.namespace),
                ("io.kubernetes.pod.uid".to_string(), pod.uid),
            ]),
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(namespaces()),
                    seccomp: Some(runtime_default()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn run_pod_sandbox(&self, config: &PodSandboxConfig, variant: Variant) -> Result<String> {
        let req = RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: variant.handler().into(),
        };
        let r = named(
            self.cri
                .call(|mut c| async move { c.run_pod_sandbox(req).await }),
            || format!("RunPodSandbox (runtime handler {:?})", variant.handler()),
        )?;
        Ok(r.pod_sandbox_id)
    }

    fn create_container(
        &self,
        pod: &str,
        config: ContainerConfig,
        sandbox: &PodSandboxConfig,
    ) -> Result<String> {
        let req = CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(config),
            sandbox_config: Some(sandbox.clone()),
        };
        let r = named(
            self.cri
                .call(|mut c| async move { c.create_container(req).await }),
            || format!("CreateContainer in pod {pod}"),
        )?;
        Ok(r.container_id)
    }

    fn start_container(&self, id: &str) -> Result<()> {
        named(self.cri.start_container(id), || {
            format!("StartContainer {id}")
        })
    }

    fn container_state(&self, id: &str) -> Result<ContainerState> {
        let req = ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        };
        let r = named(
            self.cri
                .call(|mut c| async move { c.container_status(req).await }),
            || format!("ContainerStatus {id}"),
        )?;
        let state = r
            .status
            .map_or(ContainerState::ContainerUnknown as i32, |s| s.state);
        Ok(ContainerState::try_from(state).unwrap_or(ContainerState::ContainerUnknown))
    }

    /// The container's init process on the node (CRI's verbose status).
    fn container_pid(&self, id: &str) -> Result<i32> {
        let req = ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        };
        let r = named(
            self.cri
                .call(|mut c| async move { c.container_status(req).await }),
            || format!("ContainerStatus {id} (verbose)"),
        )?;
        let info: Value = r
            .info
            .get("info")
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        match info["pid"].as_i64() {
            Some(pid) if pid > 0 => Ok(pid as i32),
            _ => bail!("no pid in the verbose ContainerStatus of {id}"),
        }
    }

    /// Waits until the kubelet would call the container ready: CRI reports
    /// it RUNNING and an exec probe (`true`) exits 0. Returns the probes made.
    fn wait_ready(&self, id: &str) -> Result<u32> {
        let deadline = Instant::now() + READY_DEADLINE;
        let mut probes = 0;
        loop {
            let last = match self.container_state(id)? {
                ContainerState::ContainerRunning => {
                    probes += 1;
                    match self.cri.exec_sync(id, &["true"], PROBE_TIMEOUT) {
                        Ok(r) if r.code == 0 => return Ok(probes),
                        Ok(r) => format!("the probe exited {}: {}", r.code, r.stderr),
                        Err(s) => format!("the probe failed: {}", s.message()),
                    }
                }
                s => format!("state {}", s.as_str_name()),
            };
            if Instant::now() > deadline {
                bail!("container {id} was not ready within {READY_DEADLINE:?} ({last})");
            }
            check_stop()?;
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Checks that tracing is where the variant says: a traced pod's
    /// containers have a trace, its sandbox none; other pods have none.
    fn check_traces(&self, variant: Variant, pod: &Pod) -> Result<()> {
        let dir = &self.opts.trace_dir;
        if dir.join(&pod.id).exists() {
            bail!(
                "the sandbox {} of a {} pod has a trace in {}: the sandbox is never traced",
                pod.id,
                variant.name(),
                dir.display()
            );
        }
        for c in &pod.containers {
            let meta = dir.join(c).join("meta.json");
            match (variant == Variant::CrtTraced, meta.exists()) {
                (true, false) => bail!(
                    "container {c} of a traced pod has no trace ({} is missing): is tracing enabled for namespace k8s.io in the node config?",
                    meta.display()
                ),
                (false, true) => bail!(
                    "container {c} of an untraced {} pod has a trace ({})",
                    variant.name(),
                    meta.display()
                ),
                _ => {}
            }
        }
        Ok(())
    }

    /// Stops and removes a pod as the kubelet does: its containers with a
    /// grace period, then the sandbox; then the removals.
    fn tear_down(&self, pod: &Pod) -> Result<()> {
        for c in &pod.containers {
            named(self.cri.stop_container(c, GRACE), || {
                format!("StopContainer {c}")
            })?;
        }
        named(self.cri.stop_pod(&pod.id), || {
            format!("StopPodSandbox {}", pod.id)
        })?;
        for c in &pod.containers {
            named(self.cri.remove_container(c), || {
                format!("RemoveContainer {c}")
            })?;
        }
        named(self.cri.remove_pod(&pod.id), || {
            format!("RemovePodSandbox {}", pod.id)
        })?;
        remove_traces(&self.opts.trace_dir, &pod.id, &pod.containers);
        Ok(())
    }

    /// One start-to-ready measurement of a one-container pod.
    fn start_round(&mut self, variant: Variant) -> Result<Value> {
        let sandbox = self.sandbox_config(variant, "start")?;
        let config = self.container_config("app", &sandbox);
        let t0 = Instant::now();
        let id = self.run_pod_sandbox(&sandbox, variant)?;
        let t1 = Instant::now();
        let mut pod = Pod {
            id,
            containers: Vec::new(),
        };
        let c = self.create_container(&pod.id, config, &sandbox)?;
        pod.containers.push(c.clone());
        let t2 = Instant::now();
        self.start_container(&c)?;
        let t3 = Instant::now();
        let probes = self.wait_ready(&c)?;
        let t4 = Instant::now();
        self.check_traces(variant, &pod)?;
        let t5 = Instant::now();
        self.tear_down(&pod)?;
        let t6 = Instant::now();
        Ok(json!({
            "total_ms": ms(t4 - t0),
            "sandbox_ms": ms(t1 - t0),
            "create_ms": ms(t2 - t1),
            "start_ms": ms(t3 - t2),
            "ready_ms": ms(t4 - t3),
            "teardown_ms": ms(t6 - t5),
            "probes": probes,
        }))
    }

    /// Starts a pod of `n` containers and waits until all are ready; the
    /// pod goes into `pods` as soon as it exists, for the teardown.
    fn pod_of(&mut self, variant: Variant, n: usize, pods: &mut Vec<Pod>) -> Result<()> {
        let sandbox = self.sandbox_config(variant, "mem")?;
        let id = self.run_pod_sandbox(&sandbox, variant)?;
        pods.push(Pod {
            id: id.clone(),
            containers: Vec::new(),
        });
        for i in 1..=n {
            let config = self.container_config(&format!("c{i}"), &sandbox);
            let c = self.create_container(&id, config, &sandbox)?;
            pods.last_mut()
                .expect("just pushed")
                .containers
                .push(c.clone());
            self.start_container(&c)?;
        }
        let pod = pods.last().expect("just pushed");
        for c in &pod.containers {
            self.wait_ready(c)?;
        }
        self.check_traces(variant, pod)
    }

    /// One memory round of a variant: mem_pods pods of three containers at
    /// once; one sample per pod.
    fn memory_round(&mut self, variant: Variant) -> Result<Vec<Value>> {
        let mut pods = Vec::new();
        let mut result = self.memory_round_with(variant, &mut pods);
        for pod in &pods {
            if let Err(e) = self.tear_down(pod) {
                result = result.and(Err(e));
            }
        }
        result
    }

    fn memory_round_with(&mut self, variant: Variant, pods: &mut Vec<Pod>) -> Result<Vec<Value>> {
        for _ in 0..self.opts.mem_pods {
            self.pod_of(variant, 3, pods)?;
            check_stop()?;
        }
        std::thread::sleep(MEM_SETTLE);
        let mut samples = Vec::new();
        for pod in pods.iter() {
            let shim = shim_of(variant.shim_binary(), &pod.id)?;
            // The figure is per pod only if the pod's shim serves all of it.
            for c in &pod.containers {
                let pid = self.container_pid(c)?;
                let parent = processes()
                    .into_iter()
                    .find(|(p, _)| *p == pid)
                    .map(|(_, pp)| pp);
                if parent.is_none_or(|pp| !shim.pids.contains(&pp)) {
                    bail!("container {c} (pid {pid}, parent {parent:?}) of pod {} is not a child of the pod's shim {:?}: not one shim per pod", pod.id, shim.pids);
                }
            }
            let sharing = processes_running(&shim.exe);
            let mut sum = Smaps::default();
            for pid in &shim.pids {
                sum.add(&Smaps::read(*pid)?);
            }
            samples.push(json!({
                "rss_kb": sum.rss,
                "pss_kb": sum.pss,
                "private_kb": sum.private,
                "processes": shim.pids.len(),
                "same_binary": sharing,
            }));
        }
        Ok(samples)
    }
}

/// Per variant, one array per figure: {"runc": {"total_ms": [..], ..}}.
fn columns(rows: &HashMap<&str, Vec<Value>>) -> Value {
    let mut out = serde_json::Map::new();
    for (v, samples) in rows {
        let mut cols = serde_json::Map::new();
        for s in samples {
            for (k, x) in s.as_object().into_iter().flatten() {
                if let Value::Array(a) = cols.entry(k.clone()).or_insert_with(|| json!([])) {
                    a.push(x.clone());
                }
            }
        }
        out.insert(v.to_string(), Value::Object(cols));
    }
    Value::Object(out)
}

/// Every variant once per round, in an order rotating by round.
fn round_order(r: usize) -> impl Iterator<Item = Variant> {
    (0..Variant::ALL.len()).map(move |i| Variant::ALL[(i + r) % Variant::ALL.len()])
}

fn run(opts: &Opts, cri: Cri) -> Result<()> {
    let mut b = Bench { opts, cri, seq: 0 };
    let mut start: HashMap<&str, Vec<Value>> = HashMap::new();
    let total = opts.warmup + opts.runs;
    for r in 0..total {
        for v in round_order(r) {
            check_stop()?;
            let s = b.start_round(v).with_context(|| {
                format!(
                    "start-to-ready of a {} pod, round {} of {total}",
                    v.name(),
                    r + 1
                )
            })?;
            let what = if r < opts.warmup { "warm-up" } else { "round" };
            eprintln!(
                "crt-cri-bench: start {what} {}/{total} {:<10} ready in {} ms (sandbox {}, create {}, start {}, ready {}; teardown {})",
                r + 1, v.name(), s["total_ms"], s["sandbox_ms"], s["create_ms"], s["start_ms"], s["ready_ms"], s["teardown_ms"]
            );
            if r >= opts.warmup {
                start.entry(v.name()).or_default().push(s);
            }
        }
    }
    let mut memory: HashMap<&str, Vec<Value>> = HashMap::new();
    for r in 0..opts.mem_runs {
        for v in round_order(r) {
            check_stop()?;
            let samples = b.memory_round(v).with_context(|| {
                format!(
                    "shim memory of {} pods, round {} of {}",
                    v.name(),
                    r + 1,
                    opts.mem_runs
                )
            })?;
            for s in &samples {
                eprintln!(
                    "crt-cri-bench: memory round {}/{} {:<10} RSS {} kB, PSS {} kB, private {} kB ({} processes; {} running this binary)",
                    r + 1, opts.mem_runs, v.name(), s["rss_kb"], s["pss_kb"], s["private_kb"], s["processes"], s["same_binary"]
                );
            }
            memory.entry(v.name()).or_default().extend(samples);
        }
    }
    let shims: serde_json::Map<String, Value> = Variant::ALL
        .iter()
        .map(|v| (v.name().to_string(), json!(which(v.shim_binary()))))
        .collect();
    let report = json!({
        "run_id": opts.run_id,
        "trace": opts.trace,
        "image": opts.image,
        "runs": opts.runs,
        "warmup": opts.warmup,
        "mem_runs": opts.mem_runs,
        "mem_pods": opts.mem_pods,
        "probe_timeout_s": PROBE_TIMEOUT.as_secs(),
        "grace_s": GRACE.as_secs(),
        "mem_settle_ms": MEM_SETTLE.as_millis() as u64,
        "shims": shims,
        "start": columns(&start),
        "memory": columns(&memory),
    });
    std::fs::write(&opts.out, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", opts.out.display()))
}

/// The path of `name` on PATH, as containerd would find it.
fn which(name: &str) -> String {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .map_or_else(|| name.to_string(), |p| p.to_string_lossy().into_owned())
}

/// A pod's shim: the long-lived shim process (`-id` the sandbox id) and
/// its children running the same binary (crt's listener keeper).
struct Shim {
    pids: Vec<i32>,
    exe: PathBuf,
}

fn shim_of(binary: &str, sandbox: &str) -> Result<Shim> {
    let found = crt_integration::shim_pids(binary, sandbox);
    let [pid] = found[..] else {
        bail!("expected one {binary} process with -id {sandbox}, found {found:?}");
    };
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .with_context(|| format!("reading /proc/{pid}/exe"))?;
    let mut pids = vec![pid];
    for (child, ppid) in processes() {
        if ppid == pid && std::fs::read_link(format!("/proc/{child}/exe")).is_ok_and(|e| e == exe) {
            pids.push(child);
        }
    }
    Ok(Shim { pids, exe })
}

/// (pid, parent pid) of every process.
fn processes() -> Vec<(i32, i32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let after = &stat[stat.rfind(')')? + 1..];
        let ppid = after.split_whitespace().nth(1)?.parse().ok()?;
        Some((pid, ppid))
    })
    .collect()
}

/// How many processes on the node run `exe` (they share its text pages,
/// which PSS divides between them).
fn processes_running(exe: &Path) -> usize {
    processes()
        .into_iter()
        .filter(|(pid, _)| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == exe))
        .count()
}

/// The figures of /proc/PID/smaps_rollup the benchmark reports, in kB.
#[derive(Default)]
struct Smaps {
    rss: u64,
    pss: u64,
    private: u64,
}

impl Smaps {
    fn read(pid: i32) -> Result<Smaps> {
        let path = format!("/proc/{pid}/smaps_rollup");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let mut s = Smaps::default();
        for line in text.lines() {
            let mut w = line.split_whitespace();
            let (Some(key), Some(kb)) = (w.next(), w.next().and_then(|v| v.parse::<u64>().ok()))
            else {
                continue;
            };
            match key {
                "Rss:" => s.rss = kb,
                "Pss:" => s.pss = kb,
                "Private_Clean:" | "Private_Dirty:" => s.private += kb,
                _ => {}
            }
        }
        if s.rss == 0 {
            bail!("{path} has no Rss line");
        }
        Ok(s)
    }

    fn add(&mut self, o: &Smaps) {
        self.rss += o.rss;
        self.pss += o.pss;
        self.private += o.private;
    }
}
