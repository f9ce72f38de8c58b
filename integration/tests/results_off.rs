//! A node where syscall results are not recorded (`trace.results = false`
//! in /etc/crt/config.toml, as where BPF cannot be used): traces still
//! record every call, with `= ?`, and say once why. This binary changes the
//! node config, so it holds a single test (cargo runs test binaries one
//! after another).

use crt_integration::*;

#[test]
fn without_results_every_call_is_still_recorded_with_a_question_mark_and_the_trace_says_why() {
    setup();
    let restore = RestoreNodeConfig::save();
    let old = restore
        .saved()
        .expect("scripts/setup.sh wrote the node config");
    let mut text = String::from_utf8(old.to_vec()).unwrap();
    if text.contains("\n[trace]\n") {
        text = text.replacen("\n[trace]\n", "\n[trace]\nresults = false\n", 1);
    } else {
        text.push_str("\n[trace]\nresults = false\n");
    }
    std::fs::write(NODE_CONFIG, text).unwrap();

    let cid = id("nores");
    let out = ctr(&[
        "run",
        "--rm",
        "--runtime",
        CRT,
        "--annotation",
        "crt.dev/trace=openat",
        IMAGE,
        &cid,
        "sh",
        "-c",
        "cat /etc/crt-test-release; cat /nonexistent 2>/dev/null; true",
    ])
    .ok();
    assert_eq!(out.stdout, "crt test image\n");
    let meta = trace_meta(&cid);
    assert_eq!(
        meta["results_unavailable"], "disabled by the node configuration (trace.results = false)",
        "{meta}"
    );
    let lines = crtctl(&["trace", "--local", "-n", NS, "--json", &cid])
        .ok()
        .stdout;
    let opens: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["syscall"] == "openat")
        .collect();
    for path in ["\"/etc/crt-test-release\"", "\"/nonexistent\""] {
        let e = opens
            .iter()
            .find(|e| e["args"][1] == path)
            .unwrap_or_else(|| panic!("the open of {path} is recorded: {lines}"));
        assert!(
            e["ret"].is_null() && e["errno"].is_null() && e["duration_ns"].is_null(),
            "{e}"
        );
    }
    let text = crtctl(&["trace", "--local", "-n", NS, &cid]).ok().stdout;
    assert!(
        text.contains(r#"openat(AT_FDCWD, "/nonexistent", O_RDONLY) = ?"#),
        "{text}"
    );
}
