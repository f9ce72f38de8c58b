//! crtctl: read the syscall traces CRT records for containers.
//!
//! `crtctl trace [-n NAMESPACE] [-f] [--json] CONTAINER` prints a
//! container's trace as strace-style lines (or JSON lines) and, with `-f`,
//! follows it until the container exits. `crtctl ls` lists the traces on this
//! node.

mod trace;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "crtctl",
    version,
    about = "Read the syscall traces of CRT containers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the syscalls a container made, as strace does.
    Trace(trace::TraceArgs),
    /// List the traces kept on this node.
    Ls(trace::LsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Trace(a) => trace::run(a),
        Command::Ls(a) => trace::list(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("crtctl: {e:#}");
            ExitCode::from(1)
        }
    }
}
