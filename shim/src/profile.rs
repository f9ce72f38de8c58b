//! Merging our NOTIFY rules into the container's own seccomp profile
//! (DESIGN.md, decision 4). The profile the container came with stays in
//! force: a syscall it allows becomes NOTIFY (with its argument conditions
//! kept), one it denies stays denied. A container without a profile gets one
//! that allows everything and notifies only what was asked for.
//!
//! The spec is edited as JSON, not through typed structs, so fields this
//! code does not know survive untouched.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

const ACT_ALLOW: &str = "SCMP_ACT_ALLOW";
const ACT_NOTIFY: &str = "SCMP_ACT_NOTIFY";

/// Architectures for a profile we create: the native one and its compat
/// ABIs, so 32-bit programs keep working (libseccomp kills unlisted arches).
#[cfg(target_arch = "x86_64")]
const NATIVE_ARCHES: &[&str] = &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];
#[cfg(target_arch = "aarch64")]
const NATIVE_ARCHES: &[&str] = &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"];

/// What the merge did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Merged {
    /// Syscalls that now notify (unconditionally or under the profile's own conditions).
    pub notified: BTreeSet<String>,
    /// Syscalls asked for that the profile denies: they stay denied and are not traced.
    pub denied: BTreeSet<String>,
    /// The container had no seccomp profile and got one from us.
    pub created: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProfileError {
    #[error("the container's seccomp profile already hands its listener to {0:?}; crt.dev/trace cannot be combined with another seccomp agent")]
    ListenerTaken(String),
    #[error("the container's seccomp profile already uses SCMP_ACT_NOTIFY for {0}; crt.dev/trace cannot be combined with another seccomp agent")]
    NotifyTaken(String),
    #[error("the container's seccomp profile is malformed: {0}")]
    Malformed(String),
}

/// Rewrites `spec` (a whole OCI config.json) so the syscalls in `wanted`
/// notify the listener at `listener_path`.
pub fn merge(
    spec: &mut Value,
    wanted: &BTreeSet<&str>,
    listener_path: &str,
    metadata: &str,
) -> Result<Merged, ProfileError> {
    let root = spec
        .as_object_mut()
        .ok_or_else(|| ProfileError::Malformed("config.json is not an object".into()))?;
    let linux = root
        .entry("linux")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| ProfileError::Malformed("linux is not an object".into()))?;
    let seccomp = linux.entry("seccomp").or_insert(Value::Null);

    let mut merged = Merged::default();
    if seccomp.is_null() {
        *seccomp = json!({
            "defaultAction": ACT_ALLOW,
            "architectures": NATIVE_ARCHES,
            "syscalls": [],
        });
        merged.created = true;
    }
    let profile = seccomp
        .as_object_mut()
        .ok_or_else(|| ProfileError::Malformed("linux.seccomp is not an object".into()))?;

    if let Some(p) = profile.get("listenerPath").and_then(Value::as_str) {
        if !p.is_empty() {
            return Err(ProfileError::ListenerTaken(p.to_string()));
        }
    }
    let default_allows = profile
        .get("defaultAction")
        .and_then(Value::as_str)
        .map(|a| a == ACT_ALLOW)
        .unwrap_or(false);

    let rules = profile
        .entry("syscalls")
        .or_insert_with(|| Value::Array(Vec::new()));
    if rules.is_null() {
        *rules = Value::Array(Vec::new());
    }
    let rules = rules
        .as_array_mut()
        .ok_or_else(|| ProfileError::Malformed("linux.seccomp.syscalls is not an array".into()))?;

    for rule in rules.iter() {
        if rule.get("action").and_then(Value::as_str) == Some(ACT_NOTIFY) {
            return Err(ProfileError::NotifyTaken(names_of(rule).join(",")));
        }
    }

    let mut unconditional: Vec<String> = Vec::new();
    let mut conditional: Vec<Value> = Vec::new();
    for &name in wanted {
        let mut mentioned = false;
        let mut allowed = false;
        for rule in rules.iter_mut() {
            if !names_of(rule).iter().any(|n| n == name) {
                continue;
            }
            mentioned = true;
            if rule.get("action").and_then(Value::as_str) != Some(ACT_ALLOW) {
                continue;
            }
            allowed = true;
            let args = rule.get("args").cloned().unwrap_or(Value::Null);
            let has_args = args.as_array().map(|a| !a.is_empty()).unwrap_or(false);
            remove_name(rule, name);
            if has_args {
                conditional.push(json!({"names": [name], "action": ACT_NOTIFY, "args": args}));
            } else if !unconditional.iter().any(|n| n == name) {
                unconditional.push(name.to_string());
            }
        }
        if !mentioned && default_allows {
            unconditional.push(name.to_string());
            allowed = true;
        }
        if allowed {
            merged.notified.insert(name.to_string());
        } else {
            merged.denied.insert(name.to_string());
        }
    }

    // Rules we emptied go; rules that came empty stay as they were.
    rules.retain(|r| !r.get("names").map(is_emptied).unwrap_or(false));
    for r in rules.iter_mut() {
        if let Some(o) = r.as_object_mut() {
            o.remove("__crt_emptied");
        }
    }
    if !unconditional.is_empty() {
        rules.push(json!({"names": unconditional, "action": ACT_NOTIFY}));
    }
    rules.extend(conditional);

    profile.insert("listenerPath".into(), Value::String(listener_path.into()));
    profile.insert("listenerMetadata".into(), Value::String(metadata.into()));
    Ok(merged)
}

fn names_of(rule: &Value) -> Vec<String> {
    rule.get("names")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Removes `name` from a rule's names, marking the rule when that empties it.
fn remove_name(rule: &mut Value, name: &str) {
    let Some(obj) = rule.as_object_mut() else {
        return;
    };
    let emptied = match obj.get_mut("names").and_then(Value::as_array_mut) {
        Some(names) => {
            names.retain(|n| n.as_str() != Some(name));
            names.is_empty()
        }
        None => false,
    };
    if emptied {
        obj.insert("names".into(), json!({"__crt_emptied": true}));
    }
}

fn is_emptied(names: &Value) -> bool {
    names.get("__crt_emptied").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(names: &[&'static str]) -> BTreeSet<&'static str> {
        names.iter().copied().collect()
    }

    fn rules(spec: &Value) -> &Vec<Value> {
        spec["linux"]["seccomp"]["syscalls"].as_array().unwrap()
    }

    fn action_for(spec: &Value, name: &str) -> Vec<(String, bool)> {
        rules(spec)
            .iter()
            .filter(|r| names_of(r).iter().any(|n| n == name))
            .map(|r| {
                (
                    r["action"].as_str().unwrap().to_string(),
                    r.get("args").map(|a| !a.is_null()).unwrap_or(false),
                )
            })
            .collect()
    }

    #[test]
    fn a_container_without_a_profile_gets_an_allow_all_profile_that_notifies() {
        let mut spec = json!({"ociVersion": "1.0.2", "process": {"args": ["sh"]}});
        let m = merge(
            &mut spec,
            &wanted(&["openat", "connect"]),
            "/run/l.sock",
            "c1",
        )
        .unwrap();
        assert!(m.created);
        assert_eq!(m.notified.len(), 2);
        let s = &spec["linux"]["seccomp"];
        assert_eq!(s["defaultAction"], "SCMP_ACT_ALLOW");
        assert_eq!(s["listenerPath"], "/run/l.sock");
        assert_eq!(s["listenerMetadata"], "c1");
        assert_eq!(
            action_for(&spec, "openat"),
            vec![("SCMP_ACT_NOTIFY".into(), false)]
        );
        // Other parts of the spec are untouched.
        assert_eq!(spec["process"]["args"][0], "sh");
    }

    fn default_like_profile() -> Value {
        json!({"linux": {"seccomp": {
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["openat", "read", "close"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
            ]
        }}, "unknownField": {"kept": true}})
    }

    #[test]
    fn an_allowed_syscall_becomes_notify_and_the_rest_is_kept() {
        let mut spec = default_like_profile();
        let m = merge(&mut spec, &wanted(&["openat"]), "/l", "c").unwrap();
        assert!(!m.created);
        assert_eq!(
            action_for(&spec, "openat"),
            vec![("SCMP_ACT_NOTIFY".into(), false)]
        );
        assert_eq!(
            action_for(&spec, "read"),
            vec![("SCMP_ACT_ALLOW".into(), false)]
        );
        assert_eq!(spec["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(spec["linux"]["seccomp"]["defaultErrnoRet"], 1);
        assert_eq!(spec["unknownField"]["kept"], true);
    }

    #[test]
    fn a_denied_syscall_stays_denied_and_is_reported() {
        let mut spec = default_like_profile();
        let m = merge(&mut spec, &wanted(&["ptrace", "mount"]), "/l", "c").unwrap();
        assert_eq!(
            m.denied,
            ["mount", "ptrace"].iter().map(|s| s.to_string()).collect()
        );
        assert!(m.notified.is_empty());
        assert_eq!(
            action_for(&spec, "ptrace"),
            vec![("SCMP_ACT_ERRNO".into(), false)]
        );
        // mount is not mentioned and the default denies: nothing notifies it.
        assert!(action_for(&spec, "mount").is_empty());
    }

    #[test]
    fn argument_conditions_are_kept_on_the_notify_rule() {
        let mut spec = default_like_profile();
        merge(&mut spec, &wanted(&["clone", "personality"]), "/l", "c").unwrap();
        assert_eq!(
            action_for(&spec, "clone"),
            vec![("SCMP_ACT_NOTIFY".into(), true)]
        );
        let clone_rule = rules(&spec)
            .iter()
            .find(|r| names_of(r) == ["clone"])
            .unwrap();
        assert_eq!(clone_rule["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(
            action_for(&spec, "personality"),
            vec![
                ("SCMP_ACT_NOTIFY".into(), true),
                ("SCMP_ACT_NOTIFY".into(), true)
            ]
        );
        // The emptied allow rules are gone, not left with empty names.
        assert!(rules(&spec).iter().all(|r| !names_of(r).is_empty()));
    }

    #[test]
    fn a_profile_with_another_agent_is_refused() {
        let mut spec = json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/other.sock"}}});
        assert!(matches!(
            merge(&mut spec, &wanted(&["openat"]), "/l", "c"),
            Err(ProfileError::ListenerTaken(_))
        ));
        let mut spec = json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}}});
        assert!(matches!(
            merge(&mut spec, &wanted(&["openat"]), "/l", "c"),
            Err(ProfileError::NotifyTaken(_))
        ));
    }

    #[test]
    fn an_allow_by_default_profile_notifies_unmentioned_syscalls() {
        let mut spec = json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["reboot"], "action": "SCMP_ACT_ERRNO"}]}}});
        let m = merge(&mut spec, &wanted(&["openat", "reboot"]), "/l", "c").unwrap();
        assert!(m.notified.contains("openat"));
        assert!(m.denied.contains("reboot"));
    }

    #[test]
    fn a_null_syscalls_list_is_handled() {
        let mut spec =
            json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": null}}});
        let m = merge(&mut spec, &wanted(&["openat"]), "/l", "c").unwrap();
        assert!(m.notified.contains("openat"));
    }
}
