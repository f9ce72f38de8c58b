//! Images from debug clones (issue 7): what a clone changed becomes one new
//! layer on top of its source's image, written into containerd's content
//! store with a new config and manifest, and unpacked so it can run at once.
//! Everything goes through containerd's API (diff, content, images,
//! snapshots); nothing here runs `ctr`.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Context, Result};
use containerd_client::services::v1::snapshots::{
    snapshots_client::SnapshotsClient, CommitSnapshotRequest, RemoveSnapshotRequest,
    StatSnapshotRequest, ViewSnapshotRequest,
};
use containerd_client::services::v1::{
    content_client::ContentClient, diff_client::DiffClient, images_client::ImagesClient,
    ApplyRequest, CreateImageRequest, DiffRequest, GetImageRequest, Image, Info, InfoRequest,
    ReadContentRequest, UpdateImageRequest, UpdateRequest as UpdateContentRequest, WriteAction,
    WriteContentRequest,
};
use containerd_client::tonic::Code;
use containerd_client::types::{Descriptor, Mount};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::containerd::{absent, leased, request, Containerd};
use super::{random_suffix, DebugError, LABEL_CLONE_OF};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// The content label containerd's differ puts the layer's uncompressed
/// digest (its diff ID) in.
const LABEL_UNCOMPRESSED: &str = "containerd.io/uncompressed";
/// On an image made by a commit: the clone it came from.
pub const LABEL_COMMITTED_FROM: &str = "crt.dev/committed-from";

/// An image reference in the docker grammar, `[host[:port]/]path[:tag][@digest]`,
/// normalised as containerd's CRI does (`docker.io/library/...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub domain: String,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

const REF_EXPECTED: &str = "expected [host[:port]/]path[:tag][@sha256:<64 hex>], path components of lowercase letters, digits and separators (. _ __ -), like registry.local:5000/team/app:v2";

fn path_component_ok(c: &str) -> bool {
    // [a-z0-9]+ joined by one of `.`, `_`, `__` or any run of `-`.
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let x = b[i];
        if x.is_ascii_lowercase() || x.is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !(b[i].is_ascii_lowercase() || b[i].is_ascii_digit()) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|s| s == b'-')) {
            return false;
        }
    }
    true
}

fn domain_ok(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
        && !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

impl ImageRef {
    pub fn parse(s: &str) -> std::result::Result<ImageRef, String> {
        let fail = || {
            format!(
                "image={} is not an image reference; {REF_EXPECTED}",
                crt_tracer::escape::quote(&s.as_bytes()[..s.len().min(300)], false)
            )
        };
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let hex = d.strip_prefix("sha256:").ok_or_else(fail)?;
                if hex.len() != 64
                    || !hex
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                {
                    return Err(fail());
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let t = &rest[last_slash + i + 1..];
                let ok = !t.is_empty()
                    && t.len() <= 128
                    && (t.as_bytes()[0].is_ascii_alphanumeric() || t.as_bytes()[0] == b'_')
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
                if !ok {
                    return Err(fail());
                }
                (&rest[..last_slash + i], Some(t.to_string()))
            }
            None => (rest, None),
        };
        if name.is_empty() || name.len() > 255 {
            return Err(fail());
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                if !domain_ok(first) {
                    return Err(fail());
                }
                (first.to_string(), rest.to_string())
            }
            _ => ("docker.io".to_string(), name.to_string()),
        };
        if !path.split('/').all(path_component_ok) {
            return Err(fail());
        }
        let path = if domain == "docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(ImageRef {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `domain/path`: the repository.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// What the manifest is pushed as: its tag, else its digest.
    pub fn reference(&self) -> &str {
        self.tag
            .as_deref()
            .or(self.digest.as_deref())
            .unwrap_or("latest")
    }

    /// Whether it lies under a registry location `host[:port]/prefix`.
    pub fn is_under(&self, location: &str) -> bool {
        let location = location.trim_end_matches('/');
        let repo = self.repository();
        repo.strip_prefix(location)
            .is_some_and(|rest| rest.starts_with('/'))
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.repository())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

pub fn sha256_digest(data: &[u8]) -> String {
    let h = Sha256::digest(data);
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The snapshot a stack of layers unpacks to: containerd's chain IDs.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => sha256_digest(format!("{parent} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// Which family of media types an image is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Oci,
    Docker,
}

impl Family {
    pub fn of_manifest(media_type: &str) -> Result<Family> {
        match media_type {
            OCI_MANIFEST => Ok(Family::Oci),
            DOCKER_MANIFEST => Ok(Family::Docker),
            other => bail!("the image's manifest is of media type {other:?}; expected {OCI_MANIFEST} or {DOCKER_MANIFEST}"),
        }
    }

    pub fn layer_gzip(self) -> &'static str {
        match self {
            Family::Oci => OCI_LAYER_GZIP,
            Family::Docker => DOCKER_LAYER_GZIP,
        }
    }

    pub fn manifest(self) -> &'static str {
        match self {
            Family::Oci => OCI_MANIFEST,
            Family::Docker => DOCKER_MANIFEST,
        }
    }
}

/// The source image's config with one more layer: its diff ID appended to
/// `rootfs.diff_ids` and a history entry saying where it came from.
pub fn config_with_layer(
    config: &Value,
    diff_id: &str,
    created_by: &str,
    created: &str,
) -> Result<Value> {
    let mut c = config.clone();
    let obj = c
        .as_object_mut()
        .ok_or_else(|| anyhow!("the image config is not a JSON object"))?;
    let diff_ids = obj
        .get_mut("rootfs")
        .and_then(|r| r.get_mut("diff_ids"))
        .and_then(Value::as_array_mut)
        .ok_or_else(|| anyhow!("the image config has no rootfs.diff_ids"))?;
    diff_ids.push(json!(diff_id));
    let history = obj.entry("history").or_insert_with(|| json!([]));
    if let Some(h) = history.as_array_mut() {
        h.push(json!({"created": created, "created_by": created_by, "comment": "crt debug clone"}));
    }
    obj.insert("created".into(), json!(created));
    Ok(c)
}

/// The source manifest, for the new config and with the new layer on top;
/// everything else (annotations, the family's media types) kept.
pub fn manifest_with_layer(
    manifest: &Value,
    family: Family,
    config: &Descriptor,
    layer: &Descriptor,
) -> Result<Value> {
    let mut m = manifest.clone();
    let obj = m
        .as_object_mut()
        .ok_or_else(|| anyhow!("the image manifest is not a JSON object"))?;
    obj.insert("schemaVersion".into(), json!(2));
    obj.insert("mediaType".into(), json!(family.manifest()));
    obj.insert("config".into(), descriptor_json(config));
    let layers = obj
        .get_mut("layers")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| anyhow!("the image manifest has no layers"))?;
    layers.push(descriptor_json(layer));
    Ok(m)
}

fn descriptor_json(d: &Descriptor) -> Value {
    let mut v = json!({"mediaType": d.media_type, "digest": d.digest, "size": d.size});
    if !d.annotations.is_empty() {
        v["annotations"] = json!(d.annotations);
    }
    v
}

fn descriptor_of(v: &Value) -> Result<Descriptor> {
    Ok(Descriptor {
        media_type: v["mediaType"].as_str().unwrap_or_default().to_string(),
        digest: v["digest"]
            .as_str()
            .ok_or_else(|| anyhow!("a descriptor without a digest: {v}"))?
            .to_string(),
        size: v["size"]
            .as_i64()
            .ok_or_else(|| anyhow!("a descriptor without a size: {v}"))?,
        annotations: HashMap::new(),
    })
}

/// The content labels that keep, through containerd's garbage collector, what
/// a manifest refers to.
pub fn manifest_gc_labels(manifest: &Value) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    if let Some(d) = manifest["config"]["digest"].as_str() {
        labels.insert("containerd.io/gc.ref.content.config".into(), d.to_string());
    }
    for (i, l) in manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(d) = l["digest"].as_str() {
            labels.insert(format!("containerd.io/gc.ref.content.l.{i}"), d.to_string());
        }
    }
    labels
}

/// The platform this node runs, in OCI's words.
fn this_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// An image as stored: its manifest and config, read from the content store.
pub struct Resolved {
    pub manifest_desc: Descriptor,
    pub manifest: Value,
    pub family: Family,
    pub config_desc: Descriptor,
    pub config: Value,
}

impl Resolved {
    pub fn layers(&self) -> Result<Vec<Descriptor>> {
        self.manifest["layers"]
            .as_array()
            .ok_or_else(|| anyhow!("the image manifest has no layers"))?
            .iter()
            .map(descriptor_of)
            .collect()
    }

    pub fn diff_ids(&self) -> Result<Vec<String>> {
        self.config["rootfs"]["diff_ids"]
            .as_array()
            .ok_or_else(|| anyhow!("the image config has no rootfs.diff_ids"))?
            .iter()
            .map(|d| {
                d.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("a diff ID that is not a string: {d}"))
            })
            .collect()
    }
}

/// What a commit made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CommitReport {
    pub namespace: String,
    pub clone: String,
    pub source_image: String,
    pub image: String,
    /// The new manifest's digest.
    pub digest: String,
    /// The new config's digest (it carries the unpacked snapshot's label).
    pub config_digest: String,
    pub layer_digest: String,
    pub layer_size: i64,
    pub diff_id: String,
    /// What was pushed, where, if asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushed: Option<Value>,
}

/// A blob streamed from containerd, read from a blocking thread: a push
/// holds one chunk of it at a time, not the blob.
pub struct BlobReader {
    runtime: tokio::runtime::Handle,
    stream:
        containerd_client::tonic::Streaming<containerd_client::services::v1::ReadContentResponse>,
    chunk: Vec<u8>,
    at: usize,
}

impl std::io::Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.runtime.block_on(self.stream.message()) {
                Ok(Some(m)) => {
                    self.chunk = m.data;
                    self.at = 0;
                }
                Ok(None) => return Ok(0),
                Err(s) => {
                    return Err(std::io::Error::other(format!(
                        "reading a blob from containerd: {s}"
                    )))
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Containerd {
    /// A blob of the content store as the stream of chunks containerd sends.
    async fn blob_stream(
        &self,
        ns: &str,
        digest: &str,
    ) -> Result<
        containerd_client::tonic::Streaming<containerd_client::services::v1::ReadContentResponse>,
    > {
        Ok(ContentClient::new(self.channel())
            .read(request(
                ns,
                ReadContentRequest {
                    digest: digest.into(),
                    offset: 0,
                    size: 0,
                },
            )?)
            .await
            .with_context(|| format!("{}: reading the blob {digest}", self.what()))?
            .into_inner())
    }

    /// A blob of the content store, whole.
    pub async fn read_blob(&self, ns: &str, digest: &str) -> Result<Vec<u8>> {
        let mut stream = self.blob_stream(ns, digest).await?;
        let mut data = Vec::new();
        while let Some(chunk) = stream
            .message()
            .await
            .with_context(|| format!("{}: reading the blob {digest}", self.what()))?
        {
            data.extend_from_slice(&chunk.data);
        }
        Ok(data)
    }

    /// A blob of the content store as a reader, for a blocking thread
    /// (its reads wait on the runtime it was opened on).
    pub async fn blob_reader(&self, ns: &str, digest: &str) -> Result<BlobReader> {
        let stream = self.blob_stream(ns, digest).await?;
        Ok(BlobReader {
            runtime: tokio::runtime::Handle::current(),
            stream,
            chunk: Vec::new(),
            at: 0,
        })
    }

    pub async fn blob_info(&self, ns: &str, digest: &str) -> Result<Info> {
        ContentClient::new(self.channel())
            .info(request(
                ns,
                InfoRequest {
                    digest: digest.into(),
                },
            )?)
            .await
            .with_context(|| format!("{}: the blob {digest}", self.what()))?
            .into_inner()
            .info
            .ok_or_else(|| anyhow!("{}: no information on the blob {digest}", self.what()))
    }

    /// Writes a blob (under a lease) with `labels`; one already there gets
    /// the labels. Returns its descriptor.
    pub async fn write_blob(
        &self,
        ns: &str,
        lease: &str,
        media_type: &str,
        data: Vec<u8>,
        labels: HashMap<String, String>,
    ) -> Result<Descriptor> {
        let digest = sha256_digest(&data);
        let size = data.len() as i64;
        let msg = WriteContentRequest {
            action: WriteAction::Commit as i32,
            r#ref: format!("crt-commit-{digest}"),
            total: size,
            expected: digest.clone(),
            offset: 0,
            data,
            labels: labels.clone(),
        };
        let written = async {
            let mut answers = ContentClient::new(self.channel())
                .write(leased(ns, lease, futures_util::stream::iter([msg]))?)
                .await?
                .into_inner();
            while answers.message().await?.is_some() {}
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = written {
            let exists = e
                .downcast_ref::<containerd_client::tonic::Status>()
                .is_some_and(|s| s.code() == Code::AlreadyExists);
            if !exists {
                return Err(e.context(format!("{}: writing the blob {digest}", self.what())));
            }
            if !labels.is_empty() {
                self.label_blob(ns, &digest, labels).await?;
            }
        }
        Ok(Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            annotations: HashMap::new(),
        })
    }

    pub async fn label_blob(
        &self,
        ns: &str,
        digest: &str,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
        ContentClient::new(self.channel())
            .update(request(
                ns,
                UpdateContentRequest {
                    info: Some(Info {
                        digest: digest.into(),
                        labels,
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask { paths }),
                },
            )?)
            .await
            .with_context(|| format!("{}: labelling the blob {digest}", self.what()))?;
        Ok(())
    }

    pub async fn image(&self, ns: &str, name: &str) -> Result<Option<Image>> {
        let r = ImagesClient::new(self.channel())
            .get(request(ns, GetImageRequest { name: name.into() })?)
            .await;
        Ok(absent(r)
            .with_context(|| format!("{}: getting the image {name}", self.what()))?
            .and_then(|r| r.into_inner().image))
    }

    /// Creates the image `name`, or points it at `target` if it exists.
    pub async fn put_image(
        &self,
        ns: &str,
        name: &str,
        target: Descriptor,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        let image = Image {
            name: name.into(),
            labels,
            target: Some(target),
            ..Default::default()
        };
        let mut images = ImagesClient::new(self.channel());
        let created = images
            .create(request(
                ns,
                CreateImageRequest {
                    image: Some(image.clone()),
                    source_date_epoch: None,
                },
            )?)
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::AlreadyExists => {
                images
                    .update(request(
                        ns,
                        UpdateImageRequest {
                            image: Some(image),
                            update_mask: None,
                            source_date_epoch: None,
                        },
                    )?)
                    .await
                    .with_context(|| format!("{}: updating the image {name}", self.what()))?;
                Ok(())
            }
            Err(s) => Err(anyhow::Error::from(s)
                .context(format!("{}: creating the image {name}", self.what()))),
        }
    }

    pub async fn snapshot_exists(&self, ns: &str, snapshotter: &str, key: &str) -> Result<bool> {
        let r = SnapshotsClient::new(self.channel())
            .stat(request(
                ns,
                StatSnapshotRequest {
                    snapshotter: snapshotter.into(),
                    key: key.into(),
                },
            )?)
            .await;
        Ok(absent(r)
            .with_context(|| format!("{}: the snapshot {key}", self.what()))?
            .is_some())
    }

    pub async fn view(
        &self,
        ns: &str,
        lease: &str,
        snapshotter: &str,
        key: &str,
        parent: &str,
    ) -> Result<Vec<Mount>> {
        Ok(SnapshotsClient::new(self.channel())
            .view(leased(
                ns,
                lease,
                ViewSnapshotRequest {
                    snapshotter: snapshotter.into(),
                    key: key.into(),
                    parent: parent.into(),
                    labels: HashMap::new(),
                },
            )?)
            .await
            .with_context(|| format!("{}: a view of the snapshot {parent}", self.what()))?
            .into_inner()
            .mounts)
    }

    pub async fn remove_snapshot(&self, ns: &str, snapshotter: &str, key: &str) {
        let r = SnapshotsClient::new(self.channel())
            .remove(
                request(
                    ns,
                    RemoveSnapshotRequest {
                        snapshotter: snapshotter.into(),
                        key: key.into(),
                    },
                )
                .expect("a namespace already used"),
            )
            .await;
        if let Err(e) = absent(r) {
            tracing::warn!("debug: removing the snapshot {key}: {e}");
        }
    }

    /// Unpacks an image's layers into snapshots named by their chain IDs
    /// (what is there already is kept), and labels its config so the
    /// snapshots live as long as the image. Returns the top chain ID.
    pub async fn unpack(
        &self,
        ns: &str,
        lease: &str,
        snapshotter: &str,
        image: &Resolved,
    ) -> Result<String> {
        let layers = image.layers()?;
        let diff_ids = image.diff_ids()?;
        if layers.len() != diff_ids.len() {
            bail!(
                "the image has {} layers but its config names {} diff IDs",
                layers.len(),
                diff_ids.len()
            );
        }
        let chain = chain_ids(&diff_ids);
        let mut parent = String::new();
        for (layer, chain_id) in layers.iter().zip(&chain) {
            if !self.snapshot_exists(ns, snapshotter, chain_id).await? {
                let key = format!("crt-unpack-{}-{}", &chain_id[7..19], random_suffix());
                let applied = async {
                    let mounts = self
                        .prepare(ns, lease, snapshotter, &key, &parent, HashMap::new())
                        .await?;
                    DiffClient::new(self.channel())
                        .apply(leased(
                            ns,
                            lease,
                            ApplyRequest {
                                diff: Some(layer.clone()),
                                mounts,
                                payloads: HashMap::new(),
                                sync_fs: false,
                            },
                        )?)
                        .await
                        .with_context(|| {
                            format!("{}: applying the layer {}", self.what(), layer.digest)
                        })?;
                    let committed = SnapshotsClient::new(self.channel())
                        .commit(leased(
                            ns,
                            lease,
                            CommitSnapshotRequest {
                                snapshotter: snapshotter.into(),
                                name: chain_id.clone(),
                                key: key.clone(),
                                labels: HashMap::new(),
                            },
                        )?)
                        .await;
                    match committed {
                        // Unpacked meanwhile by someone else: theirs is as good.
                        Err(s) if s.code() == Code::AlreadyExists => Ok(()),
                        r => r.map(|_| ()).with_context(|| {
                            format!("{}: committing the snapshot {chain_id}", self.what())
                        }),
                    }
                }
                .await;
                if let Err(e) = applied {
                    self.remove_snapshot(ns, snapshotter, &key).await;
                    return Err(e);
                }
                // A commit that lost a race leaves its key behind.
                if self.snapshot_exists(ns, snapshotter, &key).await? {
                    self.remove_snapshot(ns, snapshotter, &key).await;
                }
            }
            parent = chain_id.clone();
        }
        let top = chain.last().cloned().unwrap_or_default();
        self.label_blob(
            ns,
            &image.config_desc.digest,
            HashMap::from([(
                format!("containerd.io/gc.ref.snapshot.{snapshotter}"),
                top.clone(),
            )]),
        )
        .await?;
        Ok(top)
    }

    /// An image by name: its manifest for this node's platform and its config.
    pub async fn resolve(&self, ns: &str, name: &str) -> Result<Option<Resolved>> {
        let Some(image) = self.image(ns, name).await? else {
            return Ok(None);
        };
        let mut desc = image
            .target
            .ok_or_else(|| anyhow!("the image {name} has no target"))?;
        if desc.media_type == OCI_INDEX || desc.media_type == DOCKER_LIST {
            let index: Value = serde_json::from_slice(&self.read_blob(ns, &desc.digest).await?)
                .with_context(|| format!("the index of {name} is not JSON"))?;
            let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
            let arch = this_arch();
            let pick = manifests
                .iter()
                .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == arch)
                .or(if manifests.len() == 1 {
                    manifests.first()
                } else {
                    None
                })
                .ok_or_else(|| {
                    anyhow!("the image {name} has no manifest for linux/{arch} in its index")
                })?;
            desc = descriptor_of(pick)?;
        }
        let family =
            Family::of_manifest(&desc.media_type).with_context(|| format!("the image {name}"))?;
        let manifest: Value = serde_json::from_slice(&self.read_blob(ns, &desc.digest).await?)
            .with_context(|| format!("the manifest of {name} is not JSON"))?;
        let config_desc = descriptor_of(&manifest["config"])?;
        let config: Value = serde_json::from_slice(&self.read_blob(ns, &config_desc.digest).await?)
            .with_context(|| format!("the config of {name} is not JSON"))?;
        Ok(Some(Resolved {
            manifest_desc: desc,
            manifest,
            family,
            config_desc,
            config,
        }))
    }
}

/// Commits a clone into the image `target`: what the clone's snapshot holds
/// beyond its parent (the source image) becomes a new top layer.
pub async fn commit(
    cd: &Containerd,
    ns: &str,
    id: &str,
    target: &ImageRef,
) -> std::result::Result<(CommitReport, Resolved), DebugError> {
    let Some(c) = cd.container(ns, id).await? else {
        return Err(DebugError::NotFound(format!("clone {ns}/{id}")));
    };
    if !c.labels.contains_key(LABEL_CLONE_OF) {
        return Err(DebugError::Conflict(format!(
            "{ns}/{id} is not a debug clone; only clones can be committed: `crtctl debug {id}` makes one, change it, then commit the clone"
        )));
    }
    if c.image.is_empty() || c.snapshot_key.is_empty() {
        return Err(DebugError::Conflict(format!(
            "the clone {ns}/{id} has no image or no snapshot to commit"
        )));
    }
    let Some(source) = cd.resolve(ns, &c.image).await? else {
        return Err(DebugError::Conflict(format!(
            "the image of {ns}/{id}, {}, is no longer in namespace {ns}; the clone cannot be committed on top of it",
            c.image
        )));
    };
    let parent = cd
        .snapshot_parent(ns, &c.snapshotter, &c.snapshot_key)
        .await?;
    let top = chain_ids(&source.diff_ids()?).pop().unwrap_or_default();
    if parent != top {
        return Err(DebugError::Conflict(format!(
            "the clone {ns}/{id} does not sit on the layers of its image {} (its parent snapshot is {parent:?}, the image's top layer is {top:?}); was the image changed since?",
            c.image
        )));
    }
    let lease = cd
        .lease(ns, &format!("commit-{id}-{}", random_suffix()), 30)
        .await?;
    let view = format!("crt-commit-view-{}-{}", id, random_suffix());
    let made = make(cd, ns, id, &lease, &view, &c, &source, &parent, target).await;
    cd.remove_snapshot(ns, &c.snapshotter, &view).await;
    cd.drop_lease(ns, &lease).await;
    let (report, image) = made?;
    Ok((
        CommitReport {
            source_image: c.image.clone(),
            ..report
        },
        image,
    ))
}

#[allow(clippy::too_many_arguments)]
async fn make(
    cd: &Containerd,
    ns: &str,
    id: &str,
    lease: &str,
    view: &str,
    c: &super::containerd::ContainerRecord,
    source: &Resolved,
    parent: &str,
    target: &ImageRef,
) -> std::result::Result<(CommitReport, Resolved), DebugError> {
    let left = cd.view(ns, lease, &c.snapshotter, view, parent).await?;
    let right = cd.mounts(ns, &c.snapshotter, &c.snapshot_key).await?;
    let layer = DiffClient::new(cd.channel())
        .diff(leased(
            ns,
            lease,
            DiffRequest {
                left,
                right,
                media_type: OCI_LAYER_GZIP.into(),
                r#ref: format!("crt-commit-{id}-{}", random_suffix()),
                labels: HashMap::new(),
                source_date_epoch: None,
            },
        )?)
        .await
        .with_context(|| format!("{}: diffing the clone {ns}/{id}", cd.what()))?
        .into_inner()
        .diff
        .ok_or_else(|| anyhow!("{}: the diff of {ns}/{id} came back empty", cd.what()))?;
    let diff_id = cd
        .blob_info(ns, &layer.digest)
        .await?
        .labels
        .get(LABEL_UNCOMPRESSED)
        .cloned()
        .ok_or_else(|| {
            anyhow!(
                "the layer {} has no {LABEL_UNCOMPRESSED} label (its diff ID)",
                layer.digest
            )
        })?;
    // The differ writes OCI's gzip; the bytes are the same in Docker's family.
    let layer = Descriptor {
        media_type: source.family.layer_gzip().into(),
        ..layer
    };
    let created = crt_tracer::render::rfc3339_utc(crt_tracer::render::now_ns());
    let config = config_with_layer(
        &source.config,
        &diff_id,
        &format!("crtctl commit from clone {ns}/{id}"),
        &created,
    )?;
    let config_desc = cd
        .write_blob(
            ns,
            lease,
            &source.config_desc.media_type,
            serde_json::to_vec(&config).map_err(anyhow::Error::from)?,
            HashMap::new(),
        )
        .await?;
    let manifest = manifest_with_layer(&source.manifest, source.family, &config_desc, &layer)?;
    let manifest_desc = cd
        .write_blob(
            ns,
            lease,
            source.family.manifest(),
            serde_json::to_vec(&manifest).map_err(anyhow::Error::from)?,
            manifest_gc_labels(&manifest),
        )
        .await?;
    let image = Resolved {
        manifest_desc: manifest_desc.clone(),
        manifest,
        family: source.family,
        config_desc,
        config,
    };
    cd.unpack(ns, lease, &c.snapshotter, &image).await?;
    let name = target.to_string();
    cd.put_image(
        ns,
        &name,
        manifest_desc.clone(),
        HashMap::from([(LABEL_COMMITTED_FROM.to_string(), format!("{ns}/{id}"))]),
    )
    .await?;
    tracing::info!(
        "debug: committed the clone {ns}/{id} as {name} ({})",
        manifest_desc.digest
    );
    Ok((
        CommitReport {
            namespace: ns.into(),
            clone: id.into(),
            source_image: String::new(),
            image: name,
            digest: manifest_desc.digest,
            config_digest: image.config_desc.digest.clone(),
            layer_digest: layer.digest,
            layer_size: layer.size,
            diff_id,
            pushed: None,
        },
        image,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_parsed_and_normalised() {
        let r = ImageRef::parse("registry.local:5000/team/app:v2").unwrap();
        assert_eq!(r.domain, "registry.local:5000");
        assert_eq!(r.path, "team/app");
        assert_eq!(r.tag.as_deref(), Some("v2"));
        assert_eq!(r.to_string(), "registry.local:5000/team/app:v2");
        assert_eq!(
            ImageRef::parse("busybox").unwrap().to_string(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            ImageRef::parse("acme/web:1.0").unwrap().to_string(),
            "docker.io/acme/web:1.0"
        );
        assert_eq!(
            ImageRef::parse("localhost/crt-test:latest")
                .unwrap()
                .to_string(),
            "localhost/crt-test:latest"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("127.0.0.1:5000/x/y@{d}")).unwrap();
        assert_eq!((r.tag, r.digest.as_deref()), (None, Some(d.as_str())));
        assert_eq!(
            ImageRef::parse("a/b__c.d-e--f:_x.1").unwrap().path,
            "a/b__c.d-e--f"
        );
    }

    #[test]
    fn bad_references_are_named_with_what_is_expected() {
        for bad in [
            "",
            "UPPER/case",
            "a//b",
            "a/b:",
            "a/b:-x",
            "a/-b",
            "a/b@sha256:12",
            "host:port/a",
            "a/b c",
            "https://reg/a",
            "a/b___c",
        ] {
            let e = ImageRef::parse(bad).unwrap_err();
            assert!(
                e.starts_with("image=") && e.contains("expected [host[:port]/]path"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn a_reference_lies_under_a_registry_prefix_only_at_a_path_boundary() {
        let r = ImageRef::parse("reg:5000/alpha/app:1").unwrap();
        assert!(r.is_under("reg:5000/alpha"));
        assert!(r.is_under("reg:5000"));
        assert!(!r.is_under("reg:5000/alp"));
        assert!(!r.is_under("reg:5000/alpha/app"));
        assert!(!r.is_under("other:5000/alpha"));
    }

    #[test]
    fn chain_ids_are_containerds() {
        let a = "sha256:aaaa".to_string();
        let b = "sha256:bbbb".to_string();
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        assert_eq!(c[1], sha256_digest(b"sha256:aaaa sha256:bbbb"));
    }

    fn layer(media: &str, digest: &str, size: i64) -> Descriptor {
        Descriptor {
            media_type: media.into(),
            digest: digest.into(),
            size,
            annotations: HashMap::new(),
        }
    }

    #[test]
    fn the_new_config_appends_the_diff_id_and_a_history_entry() {
        let src = json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:base"]},
            "history": [{"created_by": "build"}]
        });
        let c =
            config_with_layer(&src, "sha256:new", "crtctl commit from clone ns/x", "T").unwrap();
        assert_eq!(
            c["rootfs"]["diff_ids"],
            json!(["sha256:base", "sha256:new"])
        );
        assert_eq!(
            c["history"][1]["created_by"],
            "crtctl commit from clone ns/x"
        );
        assert_eq!(c["config"], src["config"], "the runtime config is kept");
        assert_eq!(c["created"], "T");
        assert!(config_with_layer(&json!({"os": "linux"}), "d", "x", "T").is_err());
    }

    #[test]
    fn the_new_manifest_keeps_its_family_and_adds_the_layer_on_top() {
        for (family, manifest_type, config_type, layer_type) in [
            (
                Family::Oci,
                OCI_MANIFEST,
                "application/vnd.oci.image.config.v1+json",
                OCI_LAYER_GZIP,
            ),
            (
                Family::Docker,
                DOCKER_MANIFEST,
                "application/vnd.docker.container.image.v1+json",
                DOCKER_LAYER_GZIP,
            ),
        ] {
            let src = json!({
                "schemaVersion": 2, "mediaType": manifest_type,
                "config": {"mediaType": config_type, "digest": "sha256:oldcfg", "size": 10},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:l0", "size": 100}],
                "annotations": {"org.opencontainers.image.source": "x"}
            });
            assert_eq!(Family::of_manifest(manifest_type).unwrap(), family);
            let m = manifest_with_layer(
                &src,
                family,
                &layer(config_type, "sha256:newcfg", 12),
                &layer(family.layer_gzip(), "sha256:l1", 300),
            )
            .unwrap();
            assert_eq!(m["mediaType"], manifest_type);
            assert_eq!(m["config"]["digest"], "sha256:newcfg");
            assert_eq!(m["config"]["mediaType"], config_type);
            assert_eq!(m["layers"][0], src["layers"][0], "the old layers stay");
            assert_eq!(m["layers"][1]["mediaType"], layer_type);
            assert_eq!(m["layers"][1]["size"], 300);
            assert_eq!(m["annotations"], src["annotations"]);
            let labels = manifest_gc_labels(&m);
            assert_eq!(
                labels["containerd.io/gc.ref.content.config"],
                "sha256:newcfg"
            );
            assert_eq!(labels["containerd.io/gc.ref.content.l.0"], "sha256:l0");
            assert_eq!(labels["containerd.io/gc.ref.content.l.1"], "sha256:l1");
        }
        assert!(
            Family::of_manifest("application/vnd.docker.distribution.manifest.v1+json").is_err()
        );
    }
}
