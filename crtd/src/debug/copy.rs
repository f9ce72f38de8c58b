//! Copying a container's writable layer (an overlay upper directory) into a
//! clone's, exactly: contents, modes, owners, times, extended attributes
//! (overlay's `trusted.overlay.*` included), symlinks, device nodes (overlay's
//! whiteouts are 0:0 character devices) and FIFOs. A first pass runs while the
//! container runs; the pass made while it is frozen copies only what changed
//! since (size, times or inode differ) and removes what went away, so the
//! freeze lasts as long as the changes take, not the layer.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What a copied entry looked like, to tell later whether it changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Seen {
    fn of(m: &fs::Metadata) -> Seen {
        Seen {
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// Totals of one pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub entries: u64,
    pub bytes: u64,
    pub removed: u64,
}

impl Copied {
    pub fn add(&mut self, o: Copied) {
        self.entries += o.entries;
        self.bytes += o.bytes;
        self.removed += o.removed;
    }
}

/// A copy of one tree into another, kept in step by repeated passes.
pub struct TreeCopy {
    from: PathBuf,
    to: PathBuf,
    /// Entries copied so far, by path relative to the roots.
    seen: HashMap<PathBuf, Seen>,
}

impl TreeCopy {
    pub fn new(from: &Path, to: &Path) -> TreeCopy {
        TreeCopy {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            seen: HashMap::new(),
        }
    }

    /// Brings `to` in line with `from`: copies what is new or changed since
    /// the last pass and removes what is gone.
    pub fn pass(&mut self) -> io::Result<Copied> {
        let mut totals = Copied::default();
        let mut present = Vec::new();
        let mut dirs = Vec::new();
        self.walk(Path::new(""), &mut present, &mut dirs, &mut totals)?;
        // Gone from the source since the last pass: deepest first.
        let keep: std::collections::HashSet<&PathBuf> = present.iter().collect();
        let mut gone: Vec<PathBuf> = self
            .seen
            .keys()
            .filter(|p| !keep.contains(p))
            .cloned()
            .collect();
        gone.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for rel in gone {
            let target = self.to.join(&rel);
            let removed = match fs::symlink_metadata(&target) {
                Ok(m) if m.is_dir() => fs::remove_dir_all(&target),
                Ok(_) => fs::remove_file(&target),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            };
            removed.map_err(|e| at(e, &target))?;
            self.seen.remove(&rel);
            totals.removed += 1;
        }
        // Directory times last: writing into a directory changes its mtime.
        for (rel, m) in dirs.iter().rev() {
            let d = self.to.join(rel);
            set_times(&d, m).map_err(|e| at(e, &d))?;
        }
        Ok(totals)
    }

    fn walk(
        &mut self,
        rel: &Path,
        present: &mut Vec<PathBuf>,
        dirs: &mut Vec<(PathBuf, fs::Metadata)>,
        totals: &mut Copied,
    ) -> io::Result<()> {
        let src = self.from.join(rel);
        let m = match fs::symlink_metadata(&src) {
            Ok(m) => m,
            // Deleted by the running container since its directory was read:
            // gone, as the next pass will find.
            Err(e) if e.kind() == io::ErrorKind::NotFound && !rel.as_os_str().is_empty() => {
                return Ok(())
            }
            Err(e) => return Err(at(e, &src)),
        };
        present.push(rel.to_path_buf());
        let seen = Seen::of(&m);
        let changed = self.seen.get(rel) != Some(&seen);
        if changed {
            match self.copy_entry(rel, &src, &m, totals) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound && !src.exists() => return Ok(()),
                Err(e) => return Err(at(e, &src)),
            }
            self.seen.insert(rel.to_path_buf(), seen);
        }
        if m.is_dir() {
            dirs.push((rel.to_path_buf(), m));
            let mut names: Vec<_> = fs::read_dir(&src)
                .and_then(|d| {
                    d.map(|e| e.map(|e| e.file_name()))
                        .collect::<io::Result<_>>()
                })
                .map_err(|e| at(e, &src))?;
            names.sort();
            for name in names {
                self.walk(&rel.join(name), present, dirs, totals)?;
            }
        }
        Ok(())
    }

    fn copy_entry(
        &self,
        rel: &Path,
        src: &Path,
        m: &fs::Metadata,
        totals: &mut Copied,
    ) -> io::Result<()> {
        let dst = self.to.join(rel);
        let ft = m.file_type();
        // Whatever was there of another kind goes first.
        if let Ok(old) = fs::symlink_metadata(&dst) {
            if old.file_type() != ft || !ft.is_dir() {
                if old.is_dir() {
                    fs::remove_dir_all(&dst)?;
                } else {
                    fs::remove_file(&dst)?;
                }
            }
        }
        if ft.is_dir() {
            if !dst.exists() {
                fs::create_dir(&dst)?;
            }
        } else if ft.is_file() {
            fs::copy(src, &dst)?;
            totals.bytes += m.size();
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(src)?, &dst)?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() || ft.is_socket() {
            mknod(&dst, m.mode(), m.rdev())?;
        }
        copy_xattrs(src, &dst)?;
        lchown(&dst, m.uid(), m.gid())?;
        if !ft.is_symlink() {
            fs::set_permissions(&dst, fs::Permissions::from_mode(m.mode() & 0o7777))?;
        }
        if !ft.is_dir() {
            set_times(&dst, m)?;
        }
        totals.entries += 1;
        Ok(())
    }
}

/// `e`, saying which path it was about.
fn at(e: io::Error, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn mknod(p: &Path, mode: u32, rdev: u64) -> io::Result<()> {
    let c = cpath(p)?;
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    check(unsafe { libc::mknod(c.as_ptr(), mode as libc::mode_t, rdev as libc::dev_t) })
}

fn lchown(p: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let c = cpath(p)?;
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    check(unsafe { libc::lchown(c.as_ptr(), uid, gid) })
}

/// Sets access and modification times as `m` has them, without following a symlink.
fn set_times(p: &Path, m: &fs::Metadata) -> io::Result<()> {
    let c = cpath(p)?;
    let times = [
        libc::timespec {
            tv_sec: m.atime(),
            tv_nsec: m.atime_nsec(),
        },
        libc::timespec {
            tv_sec: m.mtime(),
            tv_nsec: m.mtime_nsec(),
        },
    ];
    // SAFETY: `c` is a NUL-terminated path and `times` two timespecs, both
    // outliving the call.
    check(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// Names of `p`'s extended attributes (of a symlink itself, not its target).
fn xattr_names(p: &CString) -> io::Result<Vec<CString>> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: `p` is NUL-terminated; `buf` has `buf.len()` writable bytes.
        let n = unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(buf
                .split(|&b| b == 0)
                .filter(|s| !s.is_empty())
                .filter_map(|s| CString::new(s).ok())
                .collect());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) => buf.resize(buf.len() * 4, 0),
            Some(libc::ENOTSUP) => return Ok(Vec::new()),
            _ => return Err(e),
        }
    }
}

fn copy_xattrs(src: &Path, dst: &Path) -> io::Result<()> {
    let (s, d) = (cpath(src)?, cpath(dst)?);
    for name in xattr_names(&s)? {
        let mut value = vec![0u8; 256];
        let n = loop {
            // SAFETY: both strings are NUL-terminated; `value` has `value.len()`
            // writable bytes.
            let n = unsafe {
                libc::lgetxattr(
                    s.as_ptr(),
                    name.as_ptr(),
                    value.as_mut_ptr().cast(),
                    value.len(),
                )
            };
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ERANGE) {
                value.resize(value.len() * 4, 0);
                continue;
            }
            return Err(e);
        };
        // SAFETY: both strings are NUL-terminated; `value` holds `n` bytes.
        check(unsafe { libc::lsetxattr(d.as_ptr(), name.as_ptr(), value.as_ptr().cast(), n, 0) })
            .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "copying the attribute {} of {}: {e}",
                    OsStr::from_bytes(name.as_bytes()).to_string_lossy(),
                    src.display()
                ),
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, text: &str) {
        fs::write(p, text).unwrap();
    }

    #[test]
    fn a_tree_is_copied_with_its_kinds_modes_times_and_attributes() {
        let d = tempfile::tempdir().unwrap();
        let (from, to) = (d.path().join("from"), d.path().join("to"));
        fs::create_dir_all(from.join("etc/app")).unwrap();
        fs::create_dir(&to).unwrap();
        write(&from.join("etc/app/conf"), "port = 80\n");
        fs::set_permissions(from.join("etc/app/conf"), fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink("app/conf", from.join("etc/link")).unwrap();
        // An overlay whiteout: a 0:0 character device.
        mknod(&from.join("etc/deleted"), libc::S_IFCHR | 0o600, 0).unwrap();
        mknod(&from.join("fifo"), libc::S_IFIFO | 0o644, 0).unwrap();
        let attr = CString::new("user.crt-test").unwrap();
        let path = cpath(&from.join("etc/app/conf")).unwrap();
        // SAFETY: NUL-terminated strings and a 3-byte value, all alive here.
        let r =
            unsafe { libc::lsetxattr(path.as_ptr(), attr.as_ptr(), b"yes".as_ptr().cast(), 3, 0) };
        let xattrs = r == 0; // tmpfs without user xattrs says no
        let mut c = TreeCopy::new(&from, &to);
        let first = c.pass().unwrap();
        assert_eq!(first.bytes, 10);
        assert_eq!(
            fs::read_to_string(to.join("etc/app/conf")).unwrap(),
            "port = 80\n"
        );
        let m = fs::metadata(to.join("etc/app/conf")).unwrap();
        let src = fs::metadata(from.join("etc/app/conf")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o640);
        assert_eq!((m.mtime(), m.mtime_nsec()), (src.mtime(), src.mtime_nsec()));
        assert_eq!(
            fs::read_link(to.join("etc/link")).unwrap(),
            Path::new("app/conf")
        );
        let w = fs::symlink_metadata(to.join("etc/deleted")).unwrap();
        assert!(w.file_type().is_char_device() && w.rdev() == 0);
        assert!(fs::symlink_metadata(to.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
        if xattrs {
            let names = xattr_names(&cpath(&to.join("etc/app/conf")).unwrap()).unwrap();
            assert!(names.contains(&attr), "{names:?}");
        }
        let dm = fs::metadata(to.join("etc")).unwrap();
        let ds = fs::metadata(from.join("etc")).unwrap();
        assert_eq!(
            dm.mtime(),
            ds.mtime(),
            "directory times survive the writes into them"
        );
    }

    #[test]
    fn a_second_pass_copies_only_what_changed_and_removes_what_went() {
        let d = tempfile::tempdir().unwrap();
        let (from, to) = (d.path().join("from"), d.path().join("to"));
        fs::create_dir_all(from.join("data")).unwrap();
        fs::create_dir(&to).unwrap();
        write(&from.join("data/big"), &"x".repeat(100_000));
        write(&from.join("data/counter"), "1");
        write(&from.join("data/old"), "bye");
        let mut c = TreeCopy::new(&from, &to);
        assert_eq!(c.pass().unwrap().bytes, 100_004);
        // What the container does between the passes.
        write(&from.join("data/counter"), "22");
        fs::remove_file(from.join("data/old")).unwrap();
        fs::create_dir(from.join("new")).unwrap();
        write(&from.join("new/file"), "n");
        let second = c.pass().unwrap();
        assert_eq!(
            second.bytes, 3,
            "only the counter and the new file: {second:?}"
        );
        assert_eq!(second.removed, 1);
        assert_eq!(fs::read_to_string(to.join("data/counter")).unwrap(), "22");
        assert!(!to.join("data/old").exists());
        assert_eq!(fs::read_to_string(to.join("new/file")).unwrap(), "n");
        // A file replaced by a directory of the same name.
        fs::remove_file(from.join("data/counter")).unwrap();
        fs::create_dir(from.join("data/counter")).unwrap();
        c.pass().unwrap();
        assert!(to.join("data/counter").is_dir());
        assert_eq!(c.pass().unwrap(), Copied::default(), "nothing changed");
    }
}
