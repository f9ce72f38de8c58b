//! containerd-shim-crt-v2: a containerd runtime v2 shim (task API v2) that
//! runs containers with a runc-compatible runtime and, for containers
//! annotated `crt.dev/trace`, records their syscalls through seccomp user
//! notification.

mod cgroup;
mod clone_init;
mod clone_tools;
mod container;
mod error;
mod events;
mod keeper;
mod options;
mod profile;
mod reaper;
mod runtime;
mod service;
mod shim;
mod state_file;
mod stdio;
mod trace;

const RUNTIME_ID: &str = "io.containerd.crt.v2";

fn main() {
    // One malloc arena for every thread: the shim's threads seldom allocate
    // (the notify loops never do once warm), and an arena per thread keeps
    // pages resident for as long as the shim lives beside its containers.
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only tunes the allocator; called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    let args: Vec<String> = std::env::args().collect();
    // Before containerd-shim's own argument parsing, which would refuse it.
    if args.get(1).map(String::as_str) == Some(keeper::ARG) {
        keeper::run();
    }
    if args.get(1).map(String::as_str) == Some(clone_init::ARG) {
        clone_init::run();
    }
    if args.get(1).map(String::as_str) == Some(clone_tools::SHELL_ARG) {
        clone_tools::shell(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some(clone_tools::TAR_ARG) {
        clone_tools::tar(&args[2..]);
    }
    if args
        .iter()
        .any(|a| a == "-v" || a == "--version" || a == "-version")
    {
        println!("containerd-shim-crt-v2 {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    // Refuse to start with a broken node config, so `ctr run` shows the file,
    // the line and the problem instead of a failure much later.
    if args.last().map(String::as_str) == Some("start") {
        if let Err(e) = crt_config::NodeConfig::load_default() {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
    containerd_shim::run::<shim::CrtShim>(
        RUNTIME_ID,
        Some(containerd_shim::Config {
            // The shim reaps its children itself (reaper.rs).
            no_reaper: true,
            ..Default::default()
        }),
    );
}
