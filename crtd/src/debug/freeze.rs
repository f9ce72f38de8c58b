//! Freezing a container for the moment its writable layer is copied, and the
//! promise that it thaws. The cgroup freezer stops every process of the
//! container at once (v1 `freezer.state`, v2 `cgroup.freeze`). Before it
//! freezes anything, crtd starts a guard: its own binary run as
//! `crtd thaw-guard`, a separate process that thaws the cgroup when crtd says
//! it is done, when crtd dies (its stdin closes) or at a deadline, whichever
//! comes first. A crtd killed in the middle of a clone leaves nothing frozen.

use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// How long reaching FROZEN may take before the freeze is given up.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(2);

/// The freezer of one cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Freezer {
    /// A cgroup v1 freezer directory (holds `freezer.state`).
    V1(PathBuf),
    /// A cgroup v2 directory (holds `cgroup.freeze`).
    V2(PathBuf),
}

impl Freezer {
    /// The freezer of the cgroup process `pid` is in: the v1 freezer
    /// hierarchy where there is one, else the unified hierarchy.
    pub fn of_pid(pid: i32) -> io::Result<Freezer> {
        let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
        Freezer::from_proc_cgroup(&text, Path::new("/sys/fs/cgroup")).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("process {pid} is in no cgroup with a freezer"),
            )
        })
    }

    /// Reads `/proc/<pid>/cgroup` text against the cgroup mounts under `root`.
    fn from_proc_cgroup(text: &str, root: &Path) -> Option<Freezer> {
        let mut unified = None;
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let rel = path.trim_start_matches('/');
            if controllers.split(',').any(|c| c == "freezer") {
                let dir = root.join("freezer").join(rel);
                if dir.join("freezer.state").exists() {
                    return Some(Freezer::V1(dir));
                }
            }
            if controllers.is_empty() {
                unified = Some(rel.to_string());
            }
        }
        let rel = unified?;
        // Unified alone (cgroup2 at the root), or beside v1 (hybrid, at unified/).
        [root.join(&rel), root.join("unified").join(&rel)]
            .into_iter()
            .find(|d| d.join("cgroup.freeze").exists())
            .map(Freezer::V2)
    }

    fn control(&self) -> (PathBuf, &'static str, &'static str) {
        match self {
            Freezer::V1(d) => (d.join("freezer.state"), "FROZEN", "THAWED"),
            Freezer::V2(d) => (d.join("cgroup.freeze"), "1", "0"),
        }
    }

    pub fn is_frozen(&self) -> io::Result<bool> {
        match self {
            Freezer::V1(d) => Ok(fs::read_to_string(d.join("freezer.state"))?.trim() == "FROZEN"),
            Freezer::V2(d) => Ok(fs::read_to_string(d.join("cgroup.events"))?
                .lines()
                .any(|l| l.trim() == "frozen 1")),
        }
    }

    /// Freezes the cgroup and waits until every process in it stopped.
    pub fn freeze(&self) -> io::Result<()> {
        let (file, frozen, _) = self.control();
        fs::write(&file, frozen)?;
        let start = Instant::now();
        let mut pause = Duration::from_micros(100);
        while !self.is_frozen()? {
            if start.elapsed() > FREEZE_TIMEOUT {
                let _ = self.thaw();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} did not reach frozen within {} ms; thawed it again",
                        file.display(),
                        FREEZE_TIMEOUT.as_millis()
                    ),
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
        Ok(())
    }

    pub fn thaw(&self) -> io::Result<()> {
        let (file, _, thawed) = self.control();
        fs::write(file, thawed)
    }

    /// `kind path`, as the guard's arguments.
    fn to_args(&self) -> [String; 2] {
        match self {
            Freezer::V1(d) => ["v1".into(), d.display().to_string()],
            Freezer::V2(d) => ["v2".into(), d.display().to_string()],
        }
    }

    fn from_args(kind: &str, path: &str) -> Option<Freezer> {
        match kind {
            "v1" => Some(Freezer::V1(path.into())),
            "v2" => Some(Freezer::V2(path.into())),
            _ => None,
        }
    }
}

/// A frozen container, thawed when this is dropped or released; the guard
/// process thaws it too if crtd dies or overruns the deadline.
pub struct Frozen {
    freezer: Freezer,
    guard: Child,
    to_guard: Option<ChildStdin>,
    from_guard: BufReader<ChildStdout>,
    frozen_at: Instant,
}

impl Frozen {
    /// Starts a guard that thaws `freezer` at the latest `within` from now,
    /// then freezes it.
    pub fn freeze(freezer: &Freezer, within: Duration) -> io::Result<Frozen> {
        let exe = std::env::current_exe()?;
        let [kind, path] = freezer.to_args();
        let mut guard = Command::new(exe)
            .arg("thaw-guard")
            .arg(kind)
            .arg(path)
            .arg(within.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let to_guard = guard.stdin.take();
        let mut from_guard = BufReader::new(guard.stdout.take().expect("piped"));
        let mut line = String::new();
        from_guard.read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = guard.kill();
            let _ = guard.wait();
            return Err(io::Error::other(format!(
                "the thaw guard did not start: {:?}",
                line.trim()
            )));
        }
        let frozen_at = Instant::now();
        let frozen = Frozen {
            freezer: freezer.clone(),
            guard,
            to_guard,
            from_guard,
            frozen_at,
        };
        // A failed freeze is thawed by `Drop`.
        frozen.freezer.freeze()?;
        Ok(frozen)
    }

    /// Thaws; returns how long the container was frozen. An error says the
    /// guard had already thawed it (the deadline passed): what was copied
    /// while it ran may be torn.
    pub fn thaw(mut self) -> io::Result<Duration> {
        let thawed = self.freezer.thaw();
        let window = self.frozen_at.elapsed();
        thawed?;
        // Tell the guard; it answers whether it had to thaw first.
        if let Some(mut w) = self.to_guard.take() {
            let _ = writeln!(w, "done");
        }
        let mut line = String::new();
        let _ = self.from_guard.read_line(&mut line);
        let _ = self.guard.wait();
        if line.trim() == "deadline" {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the container stayed frozen too long ({} ms) and was thawed by its guard",
                    window.as_millis()
                ),
            ));
        }
        Ok(window)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if self.to_guard.is_some() {
            let _ = self.freezer.thaw();
            // Closing its stdin makes the guard thaw (again) and exit.
            self.to_guard = None;
            let _ = self.guard.wait();
        }
    }
}

/// `crtd thaw-guard v1|v2 PATH MS`: says `ready`, then thaws PATH when told
/// `done`, when its stdin closes (crtd died), or after MS milliseconds,
/// whichever comes first; says `done` or `deadline` (which one ended it).
pub fn guard_main(args: &[String]) -> std::process::ExitCode {
    let (Some(freezer), Some(ms)) = (
        args.first()
            .zip(args.get(1))
            .and_then(|(k, p)| Freezer::from_args(k, p)),
        args.get(2).and_then(|m| m.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: crtd thaw-guard v1|v2 CGROUP_DIR MILLISECONDS");
        return std::process::ExitCode::from(2);
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Any line, or the end of stdin: crtd is done or gone.
        let _ = io::stdin().lock().read_line(&mut String::new());
        let _ = tx.send(());
    });
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    let why = match rx.recv_timeout(Duration::from_millis(ms)) {
        Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => "done",
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => "deadline",
    };
    let thawed = freezer.thaw();
    let _ = writeln!(out, "{why}");
    let _ = out.flush();
    match thawed {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crtd thaw-guard: thawing {freezer:?}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_freezer_is_found_in_v1_hybrid_and_unified_layouts() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("freezer/default/c1")).unwrap();
        fs::write(r.join("freezer/default/c1/freezer.state"), "THAWED").unwrap();
        fs::create_dir_all(r.join("unified/default/c2")).unwrap();
        fs::write(r.join("unified/default/c2/cgroup.freeze"), "0").unwrap();
        fs::create_dir_all(r.join("k/c3")).unwrap();
        fs::write(r.join("k/c3/cgroup.freeze"), "0").unwrap();
        let v1 = "6:freezer:/default/c1\n4:memory:/default/c1\n0::/default/c1\n";
        assert_eq!(
            Freezer::from_proc_cgroup(v1, r),
            Some(Freezer::V1(r.join("freezer/default/c1")))
        );
        let hybrid_no_freezer = "4:memory:/default/c2\n0::/default/c2\n";
        assert_eq!(
            Freezer::from_proc_cgroup(hybrid_no_freezer, r),
            Some(Freezer::V2(r.join("unified/default/c2")))
        );
        assert_eq!(
            Freezer::from_proc_cgroup("0::/k/c3\n", r),
            Some(Freezer::V2(r.join("k/c3")))
        );
        assert_eq!(Freezer::from_proc_cgroup("0::/nowhere\n", r), None);
    }
}
