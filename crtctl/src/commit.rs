//! `crtctl commit` and `crtctl redeploy`: a debug clone's changes become an
//! image (pushed to the tenant's registry with `--push`), and a plain
//! container is replaced by one on that image. crtd does the work through
//! containerd; these commands only ask and print.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use crt_tracer::escape;
use serde_json::Value;

use crate::client::Client;
use crate::debug::{namespace_of, path_part};
use crate::settings::ServerArgs;

#[derive(Args)]
pub struct CommitArgs {
    /// containerd (or Kubernetes) namespace of the clone.
    #[arg(short = 'n', long = "namespace", env = "CONTAINERD_NAMESPACE")]
    namespace: Option<String>,
    /// Push the image to your registry once committed.
    #[arg(long)]
    push: bool,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// The debug clone to commit.
    clone: String,
    /// The image to make: [host[:port]/]path[:tag] (to push: under your registry).
    image: String,
}

#[derive(Args)]
pub struct RedeployArgs {
    /// containerd namespace of the container.
    #[arg(short = 'n', long = "namespace", env = "CONTAINERD_NAMESPACE")]
    namespace: Option<String>,
    /// The new container's name (default: CONTAINER-2, -3, ... the first free).
    #[arg(long)]
    name: Option<String>,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// The running container to replace.
    container: String,
    /// The image to run it on (in the container's namespace).
    image: String,
}

fn s(v: &Value, k: &str) -> String {
    escape::escape(v[k].as_str().unwrap_or("").as_bytes())
}

pub fn commit(a: CommitArgs, server: &ServerArgs) -> Result<ExitCode> {
    let client = Client::resolve(server)?;
    let ns = namespace_of(&client, a.namespace.as_deref(), &a.clone)?;
    let mut q: Vec<(&str, &str)> = vec![("image", &a.image)];
    if a.push {
        q.push(("push", "true"));
    }
    let v = client.post(
        &format!(
            "/v1/clones/{}/{}/commit",
            path_part(&ns),
            path_part(&a.clone)
        ),
        &q,
    )?;
    if a.json {
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "committed {}/{} as {} ({})",
        s(&v, "namespace"),
        s(&v, "clone"),
        s(&v, "image"),
        s(&v, "digest")
    );
    println!(
        "new layer {} ({} bytes) on {}",
        s(&v, "layer_digest"),
        v["layer_size"].as_i64().unwrap_or(0),
        s(&v, "source_image")
    );
    if let Some(p) = v.get("pushed").filter(|p| p.is_object()) {
        println!(
            "pushed to {} ({} blobs uploaded, {} already there)",
            s(p, "to"),
            p["uploaded"].as_u64().unwrap_or(0),
            p["present"].as_u64().unwrap_or(0)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn redeploy(a: RedeployArgs, server: &ServerArgs) -> Result<ExitCode> {
    let client = Client::resolve(server)?;
    let ns = namespace_of(&client, a.namespace.as_deref(), &a.container)?;
    let mut q: Vec<(&str, &str)> = vec![("image", &a.image)];
    if let Some(n) = &a.name {
        q.push(("name", n));
    }
    let v = client.post(
        &format!(
            "/v1/containers/{}/{}/redeploy",
            path_part(&ns),
            path_part(&a.container)
        ),
        &q,
    )?;
    if a.json {
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "redeployed {}/{} as {} on {} (pid {}, started with no stdio)",
        s(&v, "namespace"),
        s(&v, "old"),
        s(&v, "new"),
        s(&v, "image"),
        v["pid"].as_u64().unwrap_or(0)
    );
    println!(
        "{} stopped ({}); its record is kept, labelled crt.dev/replaced-by={}",
        s(&v, "old"),
        s(&v, "old_stopped"),
        s(&v, "new")
    );
    Ok(ExitCode::SUCCESS)
}
