fn main() {
    let _ = containerd_shim::api::Empty::default();
}
