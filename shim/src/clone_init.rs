//! A debug clone's init. crtd mounts this binary (static) into each clone it
//! makes and runs it as the clone's first process, so that a clone needs
//! nothing from its image to stay up: it only waits, reaps what ends under
//! it (the shells and commands run in the clone are execs), and exits on
//! SIGTERM, SIGINT or SIGHUP.

/// The argument that selects this mode.
pub const ARG: &str = "crt-clone-init";

pub fn run() -> ! {
    // SAFETY: `set` is a local sigset_t initialised by sigemptyset before
    // any other use; the calls only read and write it.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` is an initialised signal set and `sig` a valid out pointer.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            continue;
        }
        match sig {
            libc::SIGCHLD => loop {
                // SAFETY: waitpid with a null status pointer only reaps.
                let pid = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
                if pid <= 0 {
                    break;
                }
            },
            _ => std::process::exit(0),
        }
    }
}
