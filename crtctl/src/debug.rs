//! `crtctl debug`: clones of a running container to look into and change
//! while the original keeps serving (crtd makes them through containerd).

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use crt_tracer::escape;
use serde_json::Value;

use crate::client::Client;
use crate::settings::ServerArgs;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DebugArgs {
    #[command(subcommand)]
    command: Option<DebugCommand>,
    #[command(flatten)]
    clone: CloneArgs,
}

#[derive(Args)]
struct CloneArgs {
    /// containerd (or Kubernetes) namespace of the container.
    #[arg(short = 'n', long = "namespace", env = "CONTAINERD_NAMESPACE")]
    namespace: Option<String>,
    /// The clone's name (default: CONTAINER-debug-XXXXXX).
    #[arg(long)]
    name: Option<String>,
    /// How long the clone lives (10s to 168h; default 2h).
    #[arg(long)]
    ttl: Option<String>,
    /// Clone processes and memory too (needs a CRIU that passes `criu check`:
    /// 4.2 or newer on Linux 6.13+).
    #[arg(long)]
    live: bool,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// What to trace in the clone (as the crt.dev/trace annotation:
    /// `%file,%network`, `openat,connect`, `off`); default: what the source traces.
    #[arg(long)]
    trace: Option<String>,
    /// The clone's network: `loopback` (its own, with lo up) or `none`
    /// (no interface up). Never the source's.
    #[arg(long, value_name = "none|loopback", default_value = "loopback")]
    keep_network: String,
    /// Copy the source's volume mounted at this path into the clone,
    /// writable there (repeatable); the others are mounted read-only.
    #[arg(long = "copy-volume", value_name = "PATH")]
    copy_volume: Vec<String>,
    /// Make the clone and return, without a shell in it.
    #[arg(short = 'd', long)]
    detach: bool,
    /// The running container to clone.
    container: Option<String>,
    /// What to run in the clone (default: its shell), after `--`.
    #[arg(last = true)]
    command: Vec<String>,
}

#[derive(Subcommand)]
enum DebugCommand {
    /// Your clones.
    Ls {
        /// Only this containerd namespace.
        #[arg(short = 'n', long = "namespace")]
        namespace: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove a clone and everything of it.
    Rm {
        #[arg(short = 'n', long = "namespace", env = "CONTAINERD_NAMESPACE")]
        namespace: Option<String>,
        clone: String,
    },
}

/// The namespace a container is in: as given, else the only one crtd knows it in.
pub(crate) fn namespace_of(client: &Client, given: Option<&str>, id: &str) -> Result<String> {
    if let Some(ns) = given {
        return Ok(ns.to_string());
    }
    let v = client.get("/v1/containers", &[])?;
    let found: Vec<String> = v["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["id"] == id)
        .filter_map(|c| c["namespace"].as_str().map(str::to_string))
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => anyhow::bail!(
            "container {} not found (or it is not yours)",
            escape::quote(id.as_bytes(), false)
        ),
        many => anyhow::bail!(
            "container {} is in several namespaces ({}); name one with -n",
            escape::quote(id.as_bytes(), false),
            many.join(", ")
        ),
    }
}

pub(crate) fn path_part(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub fn run(a: DebugArgs, server: &ServerArgs) -> Result<ExitCode> {
    let client = Client::resolve(server)?;
    match a.command {
        Some(DebugCommand::Ls { namespace, json }) => {
            let q: Vec<(&str, &str)> = namespace
                .iter()
                .map(|n| ("namespace", n.as_str()))
                .collect();
            let v = client.get("/v1/clones", &q)?;
            let clones = v["clones"].as_array().cloned().unwrap_or_default();
            if json {
                for c in &clones {
                    println!("{c}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<14} {:<32} {:<24} {:<8} EXPIRES",
                "NAMESPACE", "CLONE", "SOURCE", "STATUS"
            );
            for c in &clones {
                let s = |k: &str| escape::escape(c[k].as_str().unwrap_or("").as_bytes());
                println!(
                    "{:<14} {:<32} {:<24} {:<8} {}",
                    s("namespace"),
                    s("id"),
                    s("source"),
                    s("status"),
                    s("expires")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(DebugCommand::Rm { namespace, clone }) => {
            let ns = namespace_of(&client, namespace.as_deref(), &clone)?;
            client.delete(&format!(
                "/v1/clones/{}/{}",
                path_part(&ns),
                path_part(&clone)
            ))?;
            println!(
                "removed {}",
                escape::escape(format!("{ns}/{clone}").as_bytes())
            );
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let c = a.clone;
            let Some(id) = c.container else {
                anyhow::bail!("name the container to clone: crtctl debug CONTAINER (or crtctl debug ls / rm CLONE)");
            };
            let ns = namespace_of(&client, c.namespace.as_deref(), &id)?;
            let mut q: Vec<(&str, &str)> = Vec::new();
            if let Some(n) = &c.name {
                q.push(("name", n));
            }
            if let Some(t) = &c.ttl {
                q.push(("ttl", t));
            }
            if c.live {
                q.push(("live", "true"));
            }
            if let Some(t) = &c.trace {
                q.push(("trace", t));
            }
            q.push(("network", &c.keep_network));
            for v in &c.copy_volume {
                q.push(("copy_volume", v));
            }
            let v = client.post(
                &format!(
                    "/v1/containers/{}/{}/clones",
                    path_part(&ns),
                    path_part(&id)
                ),
                &q,
            )?;
            if c.json {
                println!("{v}");
            } else {
                print_clone(&v);
            }
            let terminal = std::io::stdin().is_terminal();
            if c.detach || (c.command.is_empty() && !terminal) {
                return Ok(ExitCode::SUCCESS);
            }
            let clone = v["id"].as_str().unwrap_or_default();
            let exit =
                crate::exec::run_in_clone(&client, &ns, clone, &c.command, true, terminal, &[])?;
            if let Some(e) = &exit.error {
                eprintln!("crtctl: {e}");
            }
            if !c.json {
                eprintln!(
                    "the clone {}/{} stays until {} (crtctl exec -it {} to get back in, crtctl debug rm {} to remove it)",
                    escape::escape(ns.as_bytes()),
                    escape::escape(clone.as_bytes()),
                    escape::escape(v["expires"].as_str().unwrap_or("").as_bytes()),
                    escape::escape(clone.as_bytes()),
                    escape::escape(clone.as_bytes())
                );
            }
            Ok(exit.status())
        }
    }
}

fn print_clone(v: &Value) {
    let s = |k: &str| escape::escape(v[k].as_str().unwrap_or("").as_bytes());
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    println!(
        "cloned {}/{} as {} (until {})",
        s("namespace"),
        s("source"),
        s("id"),
        s("expires")
    );
    println!(
        "{} was frozen for {:.1} ms ({} bytes copied then; {} bytes copied before, in {:.1} ms, while it ran)",
        s("source"),
        f("freeze_ms"),
        v["frozen_bytes"].as_u64().unwrap_or(0),
        v["precopy_bytes"].as_u64().unwrap_or(0),
        f("precopy_ms"),
    );
    if v["live"] == true {
        println!(
            "its processes were cloned too (CRIU): they go on in the clone from where they were"
        );
    }
}
