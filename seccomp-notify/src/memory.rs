//! Copying syscall arguments out of the traced process with
//! `process_vm_readv`: one syscall per copy, no open fds, and a failed read
//! (unmapped address, a process gone) is a result, never an error that could
//! hold up the traced syscall.

const PAGE: u64 = 4096;
/// Most iovecs one read splits into (it splits at page boundaries, so a copy
/// stops cleanly at the first unreadable page).
const MAX_PIECES: usize = 8;

/// Copies up to `buf.len()` bytes at `addr` in `pid`. Returns how many bytes
/// were copied from the start: fewer than asked when a page is unreadable.
pub fn read(pid: u32, addr: u64, buf: &mut [u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        let n = read_pieces(pid, addr.wrapping_add(done as u64), &mut buf[done..]);
        if n == 0 {
            break;
        }
        done += n;
    }
    done
}

/// One `process_vm_readv` over at most `MAX_PIECES` page-bounded pieces.
fn read_pieces(pid: u32, addr: u64, buf: &mut [u8]) -> usize {
    if addr == 0 || buf.is_empty() {
        return 0;
    }
    let mut remote = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_PIECES];
    let mut pieces = 0;
    let mut at = addr;
    let mut left = buf.len() as u64;
    while left > 0 && pieces < MAX_PIECES {
        let to_page_end = PAGE - (at % PAGE);
        let len = left.min(to_page_end);
        remote[pieces] = libc::iovec {
            iov_base: at as *mut libc::c_void,
            iov_len: len as usize,
        };
        pieces += 1;
        at = match at.checked_add(len) {
            Some(a) => a,
            None => break,
        };
        left -= len;
    }
    let total: usize = remote[..pieces].iter().map(|v| v.iov_len).sum();
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: total,
    };
    // SAFETY: `local` covers `total <= buf.len()` bytes of `buf`, which we own
    // mutably; the remote iovecs are only addresses in the other process,
    // which the kernel validates.
    let n = unsafe {
        libc::process_vm_readv(
            pid as libc::pid_t,
            &local,
            1,
            remote.as_ptr(),
            pieces as _,
            0,
        )
    };
    if n < 0 {
        0
    } else {
        n as usize
    }
}

/// The outcome of copying a NUL-terminated string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CStr {
    /// `len` bytes before the NUL (or before running out of room) were copied
    /// into the buffer; `truncated` when no NUL was found within it.
    Read { len: usize, truncated: bool },
    /// Not a byte could be read.
    Unreadable,
}

/// Copies the NUL-terminated string at `addr` into `buf` (at most
/// `buf.len()` bytes, without the NUL). Reads page by page so a short string
/// near the end of a mapping is still read whole.
pub fn read_cstr(pid: u32, addr: u64, buf: &mut [u8]) -> CStr {
    if addr == 0 {
        return CStr::Unreadable;
    }
    let mut done = 0;
    while done < buf.len() {
        let at = addr.wrapping_add(done as u64);
        let chunk = ((PAGE - at % PAGE) as usize).min(buf.len() - done);
        let n = read_pieces(pid, at, &mut buf[done..done + chunk]);
        if n == 0 {
            break;
        }
        if let Some(nul) = buf[done..done + n].iter().position(|&b| b == 0) {
            return CStr::Read {
                len: done + nul,
                truncated: false,
            };
        }
        done += n;
        if n < chunk {
            break;
        }
    }
    if done == 0 {
        CStr::Unreadable
    } else {
        CStr::Read {
            len: done,
            truncated: true,
        }
    }
}

/// Reads the pointers of a NULL-terminated pointer array (argv, envp) into
/// `out`, stopping at the NULL, at `out.len()` entries, or at unreadable
/// memory. Returns `(count, complete)`: `complete` when the NULL was seen.
pub fn read_ptr_array(pid: u32, addr: u64, out: &mut [u64]) -> (usize, bool) {
    let mut count = 0;
    let mut raw = [0u8; 512];
    while count < out.len() {
        let want = ((out.len() - count) * 8).min(raw.len());
        let n = read(pid, addr.wrapping_add((count * 8) as u64), &mut raw[..want]);
        let words = n / 8;
        if words == 0 {
            return (count, false);
        }
        for w in raw[..words * 8].chunks_exact(8) {
            let p = u64::from_le_bytes(w.try_into().unwrap());
            if p == 0 {
                return (count, true);
            }
            out[count] = p;
            count += 1;
        }
        if words * 8 < want {
            return (count, false);
        }
    }
    (count, false)
}

/// Counts the entries of a NULL-terminated pointer array without keeping
/// them, up to `max`. Returns `None` when the start is unreadable.
pub fn count_ptr_array(pid: u32, addr: u64, max: usize) -> Option<usize> {
    let mut count = 0;
    let mut raw = [0u8; 512];
    loop {
        if count >= max {
            return Some(count);
        }
        let n = read(pid, addr.wrapping_add((count * 8) as u64), &mut raw);
        let words = n / 8;
        if words == 0 {
            return if count == 0 { None } else { Some(count) };
        }
        for w in raw[..words * 8].chunks_exact(8) {
            if u64::from_le_bytes(w.try_into().unwrap()) == 0 {
                return Some(count);
            }
            count += 1;
        }
        if words * 8 < raw.len() {
            return Some(count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> u32 {
        std::process::id()
    }

    #[test]
    fn reads_a_string_from_a_live_process() {
        let s = b"/etc/hosts\0garbage";
        let mut buf = [0u8; 64];
        assert_eq!(
            read_cstr(me(), s.as_ptr() as u64, &mut buf),
            CStr::Read {
                len: 10,
                truncated: false
            }
        );
        assert_eq!(&buf[..10], b"/etc/hosts");
    }

    #[test]
    fn a_long_string_is_cut_and_marked_truncated() {
        let s = [b'a'; 100];
        let mut buf = [0u8; 16];
        assert_eq!(
            read_cstr(me(), s.as_ptr() as u64, &mut buf),
            CStr::Read {
                len: 16,
                truncated: true
            }
        );
    }

    #[test]
    fn null_and_unmapped_addresses_are_unreadable_not_errors() {
        let mut buf = [0u8; 16];
        assert_eq!(read_cstr(me(), 0, &mut buf), CStr::Unreadable);
        assert_eq!(read_cstr(me(), 8, &mut buf), CStr::Unreadable);
        assert_eq!(read(me(), 8, &mut buf), 0);
    }

    #[test]
    fn a_string_ending_at_a_mapping_edge_is_read_whole() {
        // Map two pages, make the second unreadable, and put a short string at
        // the very end of the first: a read that asked for more than the page
        // holds must still return the string.
        // SAFETY: anonymous private mapping owned by this test, unmapped below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                8192,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        // SAFETY: the second page lies inside the mapping made above.
        unsafe {
            assert_eq!(
                libc::mprotect(base.cast::<u8>().add(4096).cast(), 4096, libc::PROT_NONE),
                0
            );
        }
        let s = b"abc\0";
        let at = base as u64 + 4096 - s.len() as u64;
        // SAFETY: the four bytes before the protected page are writable.
        unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), at as *mut u8, s.len()) };
        let mut buf = [0u8; 256];
        assert_eq!(
            read_cstr(me(), at, &mut buf),
            CStr::Read {
                len: 3,
                truncated: false
            }
        );
        // A string that runs into the unreadable page is returned as far as it goes.
        let at2 = base as u64 + 4096 - 2;
        // SAFETY: inside the writable first page.
        unsafe { std::ptr::copy_nonoverlapping(b"zz".as_ptr(), at2 as *mut u8, 2) };
        assert_eq!(
            read_cstr(me(), at2, &mut buf),
            CStr::Read {
                len: 2,
                truncated: true
            }
        );
        // SAFETY: unmapping the mapping created above.
        unsafe { libc::munmap(base, 8192) };
    }

    #[test]
    fn pointer_arrays_are_read_up_to_their_null() {
        let a = b"sh\0";
        let b = b"-c\0";
        let arr = [a.as_ptr() as u64, b.as_ptr() as u64, 0];
        let mut out = [0u64; 8];
        assert_eq!(
            read_ptr_array(me(), arr.as_ptr() as u64, &mut out),
            (2, true)
        );
        assert_eq!(out[0], a.as_ptr() as u64);
        assert_eq!(count_ptr_array(me(), arr.as_ptr() as u64, 100), Some(2));
        let mut small = [0u64; 1];
        assert_eq!(
            read_ptr_array(me(), arr.as_ptr() as u64, &mut small),
            (1, false)
        );
        assert_eq!(count_ptr_array(me(), 0, 100), None);
    }
}
