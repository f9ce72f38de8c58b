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
    let v = ask_commit(&client, &ns, &a.clone, &a.image, a.push)?;
    if a.json {
        println!("{v}");
    } else {
        print!("{}", commit_text(&v));
    }
    Ok(ExitCode::SUCCESS)
}

fn ask_commit(client: &Client, ns: &str, clone: &str, image: &str, push: bool) -> Result<Value> {
    let mut q: Vec<(&str, &str)> = vec![("image", image)];
    if push {
        q.push(("push", "true"));
    }
    client.post(
        &format!("/v1/clones/{}/{}/commit", path_part(ns), path_part(clone)),
        &q,
    )
}

fn commit_text(v: &Value) -> String {
    let mut out = format!(
        "committed {}/{} as {} ({})\nnew layer {} ({} bytes) on {}\n",
        s(v, "namespace"),
        s(v, "clone"),
        s(v, "image"),
        s(v, "digest"),
        s(v, "layer_digest"),
        v["layer_size"].as_i64().unwrap_or(0),
        s(v, "source_image")
    );
    if let Some(p) = v.get("pushed").filter(|p| p.is_object()) {
        out.push_str(&format!(
            "pushed to {} ({} blobs uploaded, {} already there)\n",
            s(p, "to"),
            p["uploaded"].as_u64().unwrap_or(0),
            p["present"].as_u64().unwrap_or(0)
        ));
    }
    out
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
    } else {
        print!("{}", redeploy_text(&v));
    }
    Ok(ExitCode::SUCCESS)
}

fn redeploy_text(v: &Value) -> String {
    format!(
        "redeployed {}/{} as {} on {} (pid {}, started with no stdio)\n{} stopped ({}); its record is kept, labelled crt.dev/replaced-by={}\n",
        s(v, "namespace"),
        s(v, "old"),
        s(v, "new"),
        s(v, "image"),
        v["pid"].as_u64().unwrap_or(0),
        s(v, "old"),
        s(v, "old_stopped"),
        s(v, "new")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testserver::{self, Answer};
    use serde_json::json;

    #[test]
    fn commit_asks_crtd_for_the_clone_and_image_and_says_what_was_pushed() {
        let answer = json!({
            "namespace": "shop", "clone": "web-debug-1", "image": "reg:5000/shop/web:fix",
            "digest": "sha256:m", "layer_digest": "sha256:l", "layer_size": 303,
            "source_image": "reg:5000/shop/web:1",
            "pushed": {"to": "reg:5000/shop/web:fix", "uploaded": 2, "present": 3}
        });
        let server = testserver::tcp("127.0.0.1:0", vec![Answer::json(201, &answer.to_string())]);
        let v = ask_commit(
            &server.client(),
            "shop",
            "web debug/1",
            "reg:5000/shop/web:fix",
            true,
        )
        .unwrap();
        let head = &server.requests()[0];
        assert!(
            head.starts_with("POST /v1/clones/shop/web%20debug%2F1/commit?image=reg%3A5000%2Fshop%2Fweb%3Afix&push=true "),
            "{head}"
        );
        let text = commit_text(&v);
        assert!(
            text.starts_with("committed shop/web-debug-1 as reg:5000/shop/web:fix (sha256:m)\n"),
            "{text}"
        );
        assert!(
            text.contains("new layer sha256:l (303 bytes) on reg:5000/shop/web:1"),
            "{text}"
        );
        assert!(
            text.contains("pushed to reg:5000/shop/web:fix (2 blobs uploaded, 3 already there)"),
            "{text}"
        );
        let unpushed = commit_text(&json!({"image": "x"}));
        assert!(!unpushed.contains("pushed"), "{unpushed}");
    }

    #[test]
    fn a_refused_commit_shows_crtds_reason() {
        let server = testserver::tcp(
            "127.0.0.1:0",
            vec![Answer::json(
                400,
                r#"{"error":"image=\"reg/x\" is not under your registry; expected a reference that starts with reg:5000/shop/"}"#,
            )],
        );
        let e = ask_commit(&server.client(), "shop", "c", "reg/x", true).unwrap_err();
        assert!(
            format!("{e:#}").contains("starts with reg:5000/shop/"),
            "{e:#}"
        );
    }

    #[test]
    fn redeploy_says_what_replaced_what() {
        let text = redeploy_text(&json!({
            "namespace": "shop", "old": "web", "new": "web-2", "image": "reg/web:fix",
            "pid": 42, "old_stopped": "SIGTERM"
        }));
        assert_eq!(
            text,
            "redeployed shop/web as web-2 on reg/web:fix (pid 42, started with no stdio)\nweb stopped (SIGTERM); its record is kept, labelled crt.dev/replaced-by=web-2\n"
        );
    }
}
