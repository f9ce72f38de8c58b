//! Recompiles crtd when the web UI's build output changes, so the binary embeds the
//! `ui/dist` that is there now (rust-embed alone notices changed files, not new ones).

fn main() {
    let dist = std::path::Path::new("../ui/dist");
    if dist.is_dir() {
        // Cargo looks at every file under a directory it is told to watch.
        println!("cargo:rerun-if-changed=../ui/dist");
    } else {
        // `ui/dist` appearing changes `ui` (a checkout without `ui` at all recompiles
        // crtd each time, as Cargo cannot watch what is missing).
        println!("cargo:rerun-if-changed=../ui");
    }
}
