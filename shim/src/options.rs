//! Per-container runtime options from containerd, and the runtime choice
//! the shim records in the bundle so `shim delete` can clean up after a shim
//! that died.
//!
//! containerd passes `options` as an Any: `containerd.runc.v1.Options`
//! (BinaryName, Root, SystemdCgroup) when a runtime class sets them, or
//! `runtimeoptions.v1.Options` (ConfigPath) for `ctr run
//! --runtime-config-path` and CRI runtime classes with a config path — which
//! here names a CRT node config to use instead of the default one.

use std::fs;
use std::path::{Path, PathBuf};

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::shim::oci::Options as RuncOptions;
use crt_config::NodeConfig;
use serde::{Deserialize, Serialize};

use crate::error::{Result, ShimError};

/// What containerd's options ask for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub config_path: Option<PathBuf>,
    pub binary: Option<String>,
    pub root: Option<PathBuf>,
    pub systemd_cgroup: bool,
}

/// Reads containerd's options; unknown option types are refused by name.
pub fn parse(options: Option<&Any>) -> Result<Overrides> {
    let Some(any) = options else {
        return Ok(Overrides::default());
    };
    if any.type_url.is_empty() && any.value.is_empty() {
        return Ok(Overrides::default());
    }
    let url = any.type_url.rsplit('/').next().unwrap_or("");
    match url {
        "containerd.runc.v1.Options" | "io.containerd.runc.v1.options.Options" => {
            let o = RuncOptions::parse_from_bytes(&any.value).map_err(|e| {
                ShimError::InvalidArgument(format!("runtime options {url}: {e}"))
            })?;
            Ok(Overrides {
                config_path: None,
                binary: (!o.binary_name.is_empty()).then_some(o.binary_name),
                root: (!o.root.is_empty()).then(|| PathBuf::from(o.root)),
                systemd_cgroup: o.systemd_cgroup,
            })
        }
        "runtimeoptions.v1.Options" => {
            let path = runtimeoptions_config_path(&any.value).map_err(|e| {
                ShimError::InvalidArgument(format!("runtime options {url}: {e}"))
            })?;
            Ok(Overrides {
                config_path: path.filter(|p| !p.is_empty()).map(PathBuf::from),
                ..Default::default()
            })
        }
        other => Err(ShimError::InvalidArgument(format!(
            "runtime options of type {other:?} are not understood by io.containerd.crt.v2; expected containerd.runc.v1.Options or runtimeoptions.v1.Options"
        ))),
    }
}

/// `runtimeoptions.v1.Options.config_path` (field 2) from its wire form.
fn runtimeoptions_config_path(mut b: &[u8]) -> std::result::Result<Option<String>, String> {
    fn varint(b: &mut &[u8]) -> std::result::Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first().ok_or("truncated varint")?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }
    let mut path = None;
    while !b.is_empty() {
        let tag = varint(&mut b)?;
        let (field, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => {
                varint(&mut b)?;
            }
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                b = b.get(n..).ok_or("truncated fixed field")?;
            }
            2 => {
                let len = varint(&mut b)? as usize;
                let data = b.get(..len).ok_or("truncated field")?;
                if field == 2 {
                    path = Some(
                        String::from_utf8(data.to_vec()).map_err(|_| "config_path is not UTF-8")?,
                    );
                }
                b = &b[len..];
            }
            w => return Err(format!("unsupported wire type {w}")),
        }
    }
    Ok(path)
}

/// The node config for a container: the one its options name, else the default.
pub fn node_config(o: &Overrides) -> Result<NodeConfig> {
    let loaded = match &o.config_path {
        Some(p) => NodeConfig::load(p),
        None => NodeConfig::load_default(),
    };
    loaded.map_err(|e| ShimError::FailedPrecondition(e.to_string()))
}

/// The runtime a container was created with, kept in the bundle.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RuntimeChoice {
    pub binary: String,
    pub root: PathBuf,
    pub systemd_cgroup: bool,
    /// The `trace.state_dir` of the container's node config, where its
    /// state file lives: `shim delete` removes that file after a shim died.
    /// (Absent in bundles of older shims.)
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
}

pub const CHOICE_FILE: &str = "crt-runtime.json";

impl RuntimeChoice {
    pub fn new(config: &NodeConfig, o: &Overrides, namespace: &str) -> Self {
        RuntimeChoice {
            binary: o
                .binary
                .clone()
                .unwrap_or_else(|| config.runtime.binary.clone()),
            root: o
                .root
                .as_ref()
                .map(|r| r.join(namespace))
                .unwrap_or_else(|| config.runtime_root(namespace)),
            systemd_cgroup: o.systemd_cgroup || config.runtime.systemd_cgroup,
            state_dir: Some(config.trace.state_dir.clone()),
        }
    }

    pub fn save(&self, bundle: &Path) -> std::io::Result<()> {
        fs::write(bundle.join(CHOICE_FILE), serde_json::to_vec(self)?)
    }

    pub fn load(bundle: &Path) -> Option<Self> {
        serde_json::from_slice(&fs::read(bundle.join(CHOICE_FILE)).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_options_means_no_overrides() {
        assert_eq!(parse(None).unwrap(), Overrides::default());
    }

    #[test]
    fn runc_options_choose_the_binary_and_root() {
        let o = RuncOptions {
            binary_name: "crun".into(),
            root: "/run/x".into(),
            ..Default::default()
        };
        let any = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: o.write_to_bytes().unwrap(),
            ..Default::default()
        };
        let got = parse(Some(&any)).unwrap();
        assert_eq!(got.binary.as_deref(), Some("crun"));
        assert_eq!(got.root, Some(PathBuf::from("/run/x")));
    }

    #[test]
    fn a_runtime_config_path_names_the_node_config() {
        // type_url = "x" (field 1), config_path = "/etc/crt/alt.toml" (field 2)
        let mut v = vec![0x0a, 1, b'x', 0x12, 17];
        v.extend_from_slice(b"/etc/crt/alt.toml");
        let any = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value: v,
            ..Default::default()
        };
        let got = parse(Some(&any)).unwrap();
        assert_eq!(got.config_path, Some(PathBuf::from("/etc/crt/alt.toml")));
    }

    #[test]
    fn an_unknown_option_type_is_named_in_the_error() {
        let any = Any {
            type_url: "example.Other".into(),
            value: vec![1],
            ..Default::default()
        };
        let e = parse(Some(&any)).unwrap_err();
        assert!(e.to_string().contains("example.Other"), "{e}");
    }

    #[test]
    fn truncated_wire_data_is_an_error_not_a_panic() {
        let any = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value: vec![0x12, 50, b'/'],
            ..Default::default()
        };
        assert!(parse(Some(&any)).is_err());
    }
}
