//! The node's own config file, /etc/crt/config.toml. This binary changes
//! that file, so it holds a single test: cargo runs test binaries one after
//! another, so no other test sees the broken file.

use std::path::Path;

use crt_integration::*;

#[test]
fn a_broken_node_config_stops_the_shim_with_its_line_and_a_missing_one_means_defaults() {
    let _restore = RestoreNodeConfig::save();
    std::fs::create_dir_all(Path::new(NODE_CONFIG).parent().unwrap()).unwrap();
    std::fs::write(
        NODE_CONFIG,
        "[runtime]\nbinary = \"runc\"\n\n[trace]\nmax_trace_bytes = \"lots\"\n",
    )
    .unwrap();

    let cid = id("nodecfg");
    let out = ctr(&["run", "--rm", "--runtime", CRT, IMAGE, &cid, "true"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("/etc/crt/config.toml line 5"),
        "{out:?}"
    );
    assert!(out.stderr.contains("trace.max_trace_bytes"), "{out:?}");
    assert!(out.stderr.contains("\"lots\""), "{out:?}");
    let _ = ctr(&["container", "rm", &cid]);

    // Without the file the documented defaults apply: runc, tracing allowed.
    std::fs::remove_file(NODE_CONFIG).unwrap();
    let cid = id("nodecfg");
    let out = ctr(&[
        "run",
        "--rm",
        "--runtime",
        CRT,
        "--annotation",
        "crt.dev/trace=openat",
        IMAGE,
        &cid,
        "cat",
        "/etc/crt-test-release",
    ])
    .ok();
    assert_eq!(out.stdout, "crt test image\n");
    let meta = trace_meta(&cid);
    assert!(
        meta["runtime"].as_str().unwrap().ends_with("/runc"),
        "{meta}"
    );
}
