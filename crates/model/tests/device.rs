//! Device choice never panics (the WGPU path's numbers are checked in `tests/gpu.rs`).

use ember_model::{DeviceChoice, Precision, select_device};

#[test]
fn cpu_and_auto_always_give_a_device() {
    let c = select_device(DeviceChoice::Cpu, Precision::F32).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.description.starts_with("cpu: Burn flex") && !c.is_wgpu);
    let a = select_device(DeviceChoice::Auto, Precision::F32).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("auto chose: {a}");
    // Falling back to the CPU always says why (CI has only a software adapter, or none).
    assert!(
        a.is_wgpu
            || a.description.contains("software GPU adapter")
            || a.description.contains("no GPU adapter found"),
        "{a}"
    );
}
