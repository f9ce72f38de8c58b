//! strace parity on real programs, for scripts/bench-parity.sh: runs each
//! program of a corpus (busybox applets and shell scripts of the test image)
//! twice, traced in a crt container and under `strace -f` on the host, and
//! counts the calls whose rendering equals strace's, return values included
//! (crt_integration::strace_compare: only prefixes, padding, interrupted
//! halves, addresses and pids are normalized).
//!
//! On the host each program runs in a copy of the image's root made from its
//! layer (the same file modes, owners, sizes and times the container sees),
//! through `chroot`, with the container's environment (PATH and HOME) and
//! with stdin, stdout and stderr not a terminal, as in the container. What
//! ran before the program's own execve (the runtime's init in the container,
//! env and chroot on the host) is left out on both sides.
//!
//!   crt-parity-bench --oci DIR --out FILE [--namespace NS] [--image REF]
//!       [--runtime-config PATH] [--id-prefix P] [--trace-dir DIR]
//!
//! DIR is the test image's OCI layout (target/crt-image/oci). FILE gets JSON:
//! the totals, the share, each program's counts and every mismatch.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use crt_integration::strace_compare::{self, Parity};
use serde_json::json;

/// What both sides trace: every class (write is never notified by crt, so
/// it is in neither) and common calls outside the classes.
const TRACE: &str = "%file,%network,%process,%signal,%ipc,%memory,%desc,%creds,\
getpid,getppid,gettid,uname,getrandom,set_tid_address,set_robust_list,rseq,\
prlimit64,sysinfo,umask,getcwd,arch_prctl,sched_getaffinity,getuid,getgid,\
geteuid,getegid,nanosleep,clock_nanosleep,times,getrusage";

/// The corpus: argv as the container's process gets it. (busybox's wget is
/// not here: in a chroot on the host it crashes after getuid, so nc stands
/// for a client connecting to a closed port.)
const CORPUS: &[&[&str]] = &[
    &["ls", "-la", "/etc"],
    &["cat", "/etc/passwd", "/etc/group", "/etc/crt-test-release"],
    &["find", "/etc", "/var", "/root", "-type", "f"],
    &["sort", "-r", "/etc/passwd"],
    &["head", "-n", "1", "/etc/passwd"],
    &["grep", "-n", "root", "/etc/passwd", "/etc/group"],
    &["md5sum", "/etc/passwd", "/bin/crt-loop"],
    &["wc", "-l", "/etc/passwd"],
    &["dd", "if=/etc/passwd", "bs=16", "count=3"],
    &["tar", "-cf", "-", "/etc"],
    &["du", "-a", "/etc"],
    &["stat", "/etc/passwd"],
    &["readlink", "-f", "/etc/crt-test-link"],
    &["nc", "-w", "1", "127.0.0.1", "9"],
    &[
        "sh",
        "-c",
        "for f in /etc/*; do wc -c \"$f\"; done; echo done",
    ],
    &[
        "sh",
        "-c",
        "cat /etc/passwd | grep root | cut -d: -f1; sleep 0.05; ls /nonexistent || true",
    ],
    &[
        "sh",
        "-c",
        "cd /tmp && echo hi > f && cp f g && cmp f g && mv g h && ls -l && rm f h",
    ],
    &["crt-results"],
];

/// The container's environment (the image's PATH; runc adds HOME).
const PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

struct Args {
    oci: PathBuf,
    out: PathBuf,
    namespace: String,
    image: String,
    runtime_config: Option<String>,
    id_prefix: String,
    trace_dir: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        oci: PathBuf::new(),
        out: PathBuf::new(),
        namespace: "crt-bench".into(),
        image: "localhost/crt-test:latest".into(),
        runtime_config: None,
        id_prefix: format!("crtp-{}", std::process::id()),
        trace_dir: None,
    };
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| anyhow!("{k} needs a value"));
        match k.as_str() {
            "--oci" => a.oci = v()?.into(),
            "--out" => a.out = v()?.into(),
            "--namespace" => a.namespace = v()?,
            "--image" => a.image = v()?,
            "--runtime-config" => a.runtime_config = Some(v()?),
            "--id-prefix" => a.id_prefix = v()?,
            "--trace-dir" => a.trace_dir = Some(v()?.into()),
            other => bail!("unknown argument {other:?}; expected --oci DIR --out FILE [--namespace NS] [--image REF] [--runtime-config PATH] [--id-prefix P] [--trace-dir DIR]"),
        }
    }
    if a.oci.as_os_str().is_empty() || a.out.as_os_str().is_empty() {
        bail!("--oci DIR and --out FILE are required");
    }
    Ok(a)
}

fn output(cmd: &mut Command) -> Result<std::process::Output> {
    cmd.stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))
}

/// The image's single layer, unpacked into `root`.
fn unpack_layer(oci: &Path, root: &Path) -> Result<()> {
    let read_json = |p: PathBuf| -> Result<serde_json::Value> {
        let text = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", p.display()))
    };
    let blob = |digest: &str| {
        oci.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let index = read_json(oci.join("index.json"))?;
    let manifest = index["manifests"][0]["digest"]
        .as_str()
        .ok_or_else(|| anyhow!("{}: no manifest", oci.display()))?;
    let manifest = read_json(blob(manifest))?;
    let layers = manifest["layers"]
        .as_array()
        .ok_or_else(|| anyhow!("the image's manifest has no layers"))?;
    std::fs::create_dir_all(root)?;
    for l in layers {
        let d = l["digest"]
            .as_str()
            .ok_or_else(|| anyhow!("a layer without digest"))?;
        let o = output(
            Command::new("tar")
                .args(["--same-owner", "-xpf"])
                .arg(blob(d))
                .arg("-C")
                .arg(root),
        )?;
        if !o.status.success() {
            bail!(
                "unpacking layer {d}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    Ok(())
}

/// The program's calls in a traced crt container, from its execve on.
fn crt_calls(a: &Args, id: &str, argv: &[&str]) -> Result<Vec<strace_compare::Call>> {
    let ann = format!("crt.dev/trace={TRACE}");
    let mut cmd = Command::new("ctr");
    cmd.args([
        "-n",
        &a.namespace,
        "run",
        "--rm",
        "--runtime",
        "io.containerd.crt.v2",
    ]);
    if let Some(c) = &a.runtime_config {
        cmd.args(["--runtime-config-path", c]);
    }
    cmd.args(["--annotation", &ann, &a.image, id]).args(argv);
    let o = output(&mut cmd)?;
    if o.status.code().is_none() {
        bail!("ctr run {argv:?} was killed");
    }
    let t = output(Command::new("crtctl").args(["trace", "--local", "-n", &a.namespace, id]))?;
    if let Some(dir) = &a.trace_dir {
        let _ = std::fs::remove_dir_all(dir.join(id));
    }
    if !t.status.success() {
        bail!(
            "crtctl trace {id}: {}",
            String::from_utf8_lossy(&t.stderr).trim()
        );
    }
    let calls = strace_compare::parse_crt(&String::from_utf8_lossy(&t.stdout));
    Ok(strace_compare::from_exec(&calls, &exec_path(argv[0])))
}

/// Where the program's binary is: every one of the corpus is in /bin.
fn exec_path(name: &str) -> String {
    format!("/bin/{name}")
}

/// The program's calls under `strace -f` on the host, from its execve on.
/// It runs as pid 1 of a pid namespace of its own with its own /proc (as in
/// the container), chrooted into `root`, with the container's open-files
/// limit and no fds but 0, 1 and 2.
fn strace_calls(
    root: &Path,
    work: &Path,
    syscalls: &str,
    argv: &[&str],
) -> Result<Vec<strace_compare::Call>> {
    use std::os::unix::process::CommandExt;
    let file = work.join("strace.out");
    let mut cmd = Command::new("strace");
    cmd.env_clear()
        .env("PATH", PATH_ENV)
        .env("HOME", "/root")
        .arg("-f")
        .arg("-o")
        .arg(&file)
        .arg("-e")
        .arg(format!("trace={syscalls}"))
        .arg("--")
        .arg("unshare")
        .arg("--pid")
        .arg("--fork")
        .arg(format!("--mount-proc={}", root.join("proc").display()))
        .arg("chroot")
        .arg(root)
        .args(argv);
    // SAFETY: between fork and exec only async-signal-safe syscalls.
    unsafe {
        cmd.pre_exec(|| {
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            let nofile = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &nofile) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // The container's stdin is a pipe: so is this one (closed at once).
    let child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {cmd:?}"))?;
    let o = child.wait_with_output()?;
    if o.status.code().is_none() {
        bail!("strace of {argv:?} was killed");
    }
    let text = std::fs::read_to_string(&file).with_context(|| format!("{}", file.display()))?;
    Ok(strace_compare::from_exec(
        &strace_compare::parse_strace(&text),
        &exec_path(argv[0]),
    ))
}

fn run() -> Result<()> {
    let a = parse_args()?;
    let spec = crt_config::annotation::parse_trace(TRACE)
        .map_err(|e| anyhow!("{e}"))?
        .ok_or_else(|| anyhow!("the trace set is off"))?;
    // strace skips names it does not know with a leading '?'.
    let syscalls: Vec<String> = spec.syscalls.iter().map(|s| format!("?{s}")).collect();
    let syscalls = syscalls.join(",");

    let work = std::env::temp_dir().join(format!("{}-work", a.id_prefix));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let root = work.join("root");
    unpack_layer(&a.oci, &root)?;

    let mut total = Parity::default();
    let mut programs = Vec::new();
    for (i, argv) in CORPUS.iter().enumerate() {
        let id = format!("{}-{i}", a.id_prefix);
        let crt = crt_calls(&a, &id, argv)?;
        let strace = strace_calls(&root, &work, &syscalls, argv)?;
        if crt.is_empty() || strace.is_empty() {
            bail!(
                "{argv:?}: no execve of {} in {} (crt: {} calls, strace: {} calls)",
                exec_path(argv[0]),
                if crt.is_empty() {
                    "crt's trace"
                } else {
                    "strace's"
                },
                crt.len(),
                strace.len()
            );
        }
        let p = strace_compare::compare(&strace, &crt);
        eprintln!(
            "crt-parity-bench: {:<40} strace {:>4}  crt {:>4}  equal {:>4}  share {:.3}",
            argv.join(" "),
            p.strace_calls,
            p.crt_calls,
            p.equal,
            p.share()
        );
        programs.push(json!({
            "argv": argv,
            "strace_calls": p.strace_calls,
            "crt_calls": p.crt_calls,
            "equal": p.equal,
            "share": p.share(),
        }));
        total.add(p);
    }
    let _ = std::fs::remove_dir_all(&work);

    let top: Vec<serde_json::Value> = strace_compare::top_mismatches(&total.mismatches)
        .into_iter()
        .map(|g| {
            json!({
                "syscall": g.syscall,
                "count": g.count,
                "strace": g.example.strace,
                "crt": g.example.crt,
            })
        })
        .collect();
    let report = json!({
        "trace": TRACE,
        "strace_calls": total.strace_calls,
        "crt_calls": total.crt_calls,
        "equal": total.equal,
        "share": total.share(),
        "programs": programs,
        "top_mismatches": top,
        "mismatches": total.mismatches.iter().map(|m| json!({"strace": m.strace, "crt": m.crt})).collect::<Vec<_>>(),
    });
    std::fs::write(&a.out, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", a.out.display()))?;
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("crt-parity-bench: error: {e:#}");
        std::process::exit(1);
    }
}
