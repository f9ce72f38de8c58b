//! Compiles the syscall-exit BPF program (bpf/exits.bpf.c) with clang; the
//! shim embeds the object. scripts/setup.sh installs clang and libbpf's
//! headers (Debian: clang, libbpf-dev).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "bpf/exits.bpf.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("exits.bpf.o");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    // The multiarch include directory holds <asm/types.h>, which
    // <linux/bpf.h> needs and which -target bpf does not search.
    let multiarch = format!("/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-I{multiarch}"))
        .args(["-c", src, "-o"])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {clang} to build {src}: {e}; install clang and libbpf-dev (scripts/setup.sh does)"
            )
        });
    assert!(
        status.success(),
        "{clang} failed to build {src} ({status}); it needs libbpf-dev's <bpf/bpf_helpers.h>"
    );
}
