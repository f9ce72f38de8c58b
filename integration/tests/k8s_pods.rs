//! crtd's view of Kubernetes pods, with real shims: a pod is its uid. A
//! StatefulSet pod made again under the same name is another pod, and the
//! exit code of the old pod's container stays after the container is deleted
//! (CRI deletes a container's task as soon as it exits).
//!
//! The containers are made with `ctr` in containerd's CRI namespace (`k8s.io`)
//! with the annotations CRI writes (the CRI path itself is tested elsewhere):
//! in that namespace crtd believes them, as it believes CRI.

use std::process::Command;
use std::time::Duration;

use crt_integration::*;
use serde_json::Value;

const ALPHA: (&str, &str, &str) = TENANTS[0];
const BETA: (&str, &str, &str) = TENANTS[1];
const CRI_NS: &str = "k8s.io";

/// A container of pod `pod` (uid `uid`) in alpha's Kubernetes namespace.
fn pod_container(pod: &str, uid: &str, cmd: &[&str]) -> NsTask {
    let annotations = [
        format!("io.kubernetes.cri.sandbox-namespace={}", ALPHA.1),
        format!("io.kubernetes.cri.sandbox-name={pod}"),
        format!("io.kubernetes.cri.sandbox-uid={uid}"),
        format!("io.kubernetes.cri.sandbox-id=sandbox-{uid}"),
        "io.kubernetes.cri.container-name=db".to_string(),
        "io.kubernetes.cri.container-type=container".to_string(),
    ];
    let mut extra: Vec<&str> = Vec::new();
    for a in &annotations {
        extra.push("--annotation");
        extra.push(a);
    }
    NsTask::start(CRI_NS, &extra, cmd)
}

fn pods_named<'a>(topology: &'a Value, name: &str) -> Vec<&'a Value> {
    topology["pods"]
        .as_array()
        .map(|a| a.iter().filter(|p| p["name"] == name).collect())
        .unwrap_or_default()
}

#[test]
fn a_pod_made_again_under_its_name_is_another_pod_and_the_old_ones_exit_code_stays() {
    let crtd = Crtd::start("k8s-pods");
    // CRI's namespace needs the test image too.
    let images = run_in(CRI_NS, &["image", "ls", "-q"]);
    if !images.stdout.lines().any(|l| l == IMAGE) {
        let tar = repo_root().join("target/crt-image/image.tar");
        run(
            Command::new("ctr")
                .args(["-n", CRI_NS, "image", "import"])
                .arg(&tar),
            None,
        )
        .ok();
    }
    let (old_uid, new_uid) = (
        format!("0f3e9a1c-{}-old", std::process::id()),
        format!("7b21c4d2-{}-new", std::process::id()),
    );
    let pod = format!("db-{}", std::process::id());
    // The first db pod's container exits 3, and is deleted as CRI deletes it.
    let old = pod_container(&pod, &old_uid, &["sh", "-c", "exit 3"]);
    assert!(
        wait_for(Duration::from_secs(30), || run_in(CRI_NS, &["task", "ls"])
            .stdout
            .lines()
            .any(|l| l.starts_with(&old.id) && l.contains("STOPPED"))),
        "the old pod's container did not exit"
    );
    run_in(CRI_NS, &["task", "rm", &old.id]).ok();
    run_in(CRI_NS, &["container", "rm", &old.id]).ok();
    // The StatefulSet makes the pod again: same name, new uid.
    let new = pod_container(&pod, &new_uid, &["sh", "-c", "exec sleep 300"]);

    let mut t = Value::Null;
    let both = wait_for(Duration::from_secs(30), || {
        t = crtd.get("/v1/topology?all=true", Some(ALPHA.2)).1;
        pods_named(&t, &pod).len() == 2
            && t.to_string().contains(&old.id)
            && t.to_string().contains(&new.id)
    });
    assert!(both, "two pods named {pod}: {t}");
    let by_uid = |uid: &str| {
        *pods_named(&t, &pod)
            .iter()
            .find(|p| p["uid"] == uid)
            .unwrap_or_else(|| panic!("no pod with uid {uid}: {t}"))
    };
    let (old_pod, new_pod) = (by_uid(&old_uid), by_uid(&new_uid));
    assert_eq!(old_pod["namespace"], ALPHA.1);
    let only = |p: &Value| -> Value {
        let list = p["containers"].as_array().unwrap();
        assert_eq!(list.len(), 1, "{p}");
        list[0].clone()
    };
    let ended = only(old_pod);
    assert_eq!(ended["id"], old.id.as_str(), "{t}");
    assert_eq!(ended["status"], "gone", "{ended}");
    assert_eq!(ended["exit_code"], 3, "{ended}");
    assert!(ended["exited"].is_string(), "{ended}");
    assert_eq!(ended["kubernetes"]["pod_uid"], old_uid.as_str(), "{ended}");
    let running = only(new_pod);
    assert_eq!(running["id"], new.id.as_str(), "{t}");
    assert_eq!(running["status"], "running", "{running}");
    assert_eq!(running["kubernetes"]["pod_uid"], new_uid.as_str());

    // The container list and `crtctl ps -a` say the same, telling the pods apart.
    let (_, v) = crtd.get(
        &format!("/v1/containers/{CRI_NS}/{}", old.id),
        Some(ALPHA.2),
    );
    assert_eq!(
        (&v["status"], &v["exit_code"]),
        (&"gone".into(), &3.into()),
        "{v}"
    );
    let out = crtd.crtctl(ALPHA.2, &["ps", "-a"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("pod {}/{pod} [uid {old_uid}]", ALPHA.1)),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("pod {}/{pod} [uid {new_uid}]", ALPHA.1)),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(" gone 3 "), "{}", out.stdout);

    // Beta sees neither pod, nor the ended container.
    let (_, bt) = crtd.get("/v1/topology?all=true", Some(BETA.2));
    assert!(!bt.to_string().contains(&pod), "{bt}");
    let (s, _) = crtd.get(&format!("/v1/containers/{CRI_NS}/{}", old.id), Some(BETA.2));
    assert_eq!(s, 404);
    drop(new);
}
