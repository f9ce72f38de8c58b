//! crtctl: a tenant's view of its containers on a CRT node.
//!
//! `crtctl trace CONTAINER` prints the syscalls (and, with `--logs`, the
//! output) a container recorded, as strace does or as JSON lines; `-f`
//! follows it. `crtctl ps` and `crtctl top` show the tenant's pods,
//! containers and processes with their syscall rates. They talk to crtd;
//! `crtctl trace --local` and `crtctl ls` read this node's traces directly.

mod client;
mod commit;
mod debug;
mod exec;
mod remote;
mod settings;
#[cfg(test)]
mod testserver;
mod trace;
mod unix;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "crtctl",
    version,
    about = "Observe and trace your containers on a CRT node"
)]
struct Cli {
    #[command(flatten)]
    server: settings::ServerArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the syscalls a container made, as strace does.
    Trace(trace::TraceArgs),
    /// Your pods, containers and processes, with syscall rates.
    Ps(remote::PsArgs),
    /// `ps`, refreshed.
    Top(remote::TopArgs),
    /// List the traces kept on this node (root, without crtd).
    Ls(trace::LsArgs),
    /// Clone a running container to debug the copy (`ls`, `rm CLONE` to manage clones).
    Debug(debug::DebugArgs),
    /// Run a command in a debug clone (`-it` for a shell).
    Exec(exec::ExecArgs),
    /// Copy files between a debug clone and here: CLONE:PATH LOCAL, or LOCAL CLONE:DIR.
    Cp(exec::CpArgs),
    /// Commit a debug clone into an image (and push it with --push).
    Commit(commit::CommitArgs),
    /// Replace a plain containerd container by one on another image.
    Redeploy(commit::RedeployArgs),
}

fn main() -> ExitCode {
    // A reader that goes away (`crtctl ls | head`) ends crtctl quietly, as
    // it does any Unix tool, instead of a panic on the next print.
    // SAFETY: restoring a signal's default action at startup, before any
    // thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Trace(a) => trace::run(a, &cli.server),
        Command::Ps(a) => remote::ps(a, &cli.server),
        Command::Top(a) => remote::top(a, &cli.server),
        Command::Ls(a) => trace::list(a),
        Command::Debug(a) => debug::run(a, &cli.server),
        Command::Exec(a) => exec::exec(a, &cli.server),
        Command::Cp(a) => exec::cp(a, &cli.server),
        Command::Commit(a) => commit::commit(a, &cli.server),
        Command::Redeploy(a) => commit::redeploy(a, &cli.server),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("crtctl: {e:#}");
            ExitCode::from(1)
        }
    }
}
