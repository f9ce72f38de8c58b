//! What crtd runs inside a debug clone through this binary (mounted there as
//! the clone's init): the shell a developer gets, and the tar stream of
//! `crtctl cp`. They run as processes of the clone, in its namespaces and
//! under its root, so every path is resolved as the clone sees it: a symlink
//! in the clone cannot lead out of it.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::path::{Component, Path};

/// `crt-clone-shell [ARGS...]`: the clone's best shell.
pub const SHELL_ARG: &str = "crt-clone-shell";
/// `crt-clone-tar create PATH` / `crt-clone-tar extract DIR`.
pub const TAR_ARG: &str = "crt-clone-tar";

/// Shells in the order a developer would want them.
const SHELLS: &[&str] = &[
    "/bin/bash",
    "/usr/bin/bash",
    "/bin/ash",
    "/bin/sh",
    "/usr/bin/sh",
];

pub fn shell(args: &[String]) -> ! {
    for s in SHELLS {
        if Path::new(s).is_file() {
            let e = std::process::Command::new(s).args(args).exec();
            eprintln!("crt: running {s}: {e}");
            std::process::exit(126);
        }
    }
    eprintln!(
        "crt: this clone has no shell (looked for {}); run a command of its image instead: crtctl exec CLONE -- COMMAND",
        SHELLS.join(", ")
    );
    std::process::exit(127);
}

pub fn tar(args: &[String]) -> ! {
    let r = match args {
        [mode, path] if mode == "create" => create(Path::new(path)),
        [mode, dir] if mode == "extract" => extract(Path::new(dir)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("usage: {TAR_ARG} create PATH | extract DIR"),
        )),
    };
    match r {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("crt: {e}");
            std::process::exit(1);
        }
    }
}

/// The name `path` gets in the archive: its last component (`/` as `.`).
fn entry_name(path: &Path) -> &OsStr {
    match path.components().next_back() {
        Some(Component::Normal(n)) => n,
        _ => OsStr::new("."),
    }
}

/// Writes `path` (a file, a directory with everything under it, a symlink
/// as a link) as a tar stream to stdout.
fn create(path: &Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let out = io::BufWriter::with_capacity(256 * 1024, io::stdout().lock());
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let name = entry_name(path);
    if meta.is_dir() {
        b.append_dir_all(name, path)?;
    } else {
        b.append_path_with_name(path, name)?;
    }
    b.into_inner()?.flush()
}

/// Unpacks a tar stream from stdin into `dir`, which must be a directory.
/// Entries that would land outside `dir` (`..`, absolute names) are
/// refused by the tar crate's unpacking.
fn extract(dir: &Path) -> io::Result<()> {
    if !dir.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{} is not a directory of this clone; copy into a directory",
                dir.display()
            ),
        ));
    }
    let mut a = tar::Archive::new(io::BufReader::with_capacity(256 * 1024, io::stdin().lock()));
    a.set_preserve_permissions(true);
    a.set_preserve_ownerships(true);
    a.set_overwrite(true);
    a.unpack(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("unpacking into {}: {e}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_named_by_their_last_component() {
        assert_eq!(entry_name(Path::new("/etc/hosts")), "hosts");
        assert_eq!(entry_name(Path::new("/var/log/")), "log");
        assert_eq!(entry_name(Path::new("/")), ".");
        assert_eq!(entry_name(Path::new("data")), "data");
    }
}
