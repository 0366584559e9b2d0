// `--cfg loom` selects loom's atomics for the model-checked ring test
// (`cargo xtask test` runs it as its own stage).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
}
