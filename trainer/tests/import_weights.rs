//! The legacy torch pickle reader against the authors' converted safetensors.
mod common;

use std::collections::HashMap;

use tch::Tensor;
use trainer::weights::torch_legacy::read_legacy_torch;

#[test]
#[ignore = "needs ../shared/reference/mdf (the official MDF weights and golden values)"]
fn legacy_pth_equals_converted_safetensors() {
    let dir = common::mdf_dir();
    for name in ["Ds_SISR", "Ds_JPEG"] {
        let ours = read_legacy_torch(&dir.join(format!("{name}.pth"))).unwrap();
        let reference: HashMap<String, Tensor> =
            Tensor::read_safetensors(dir.join(format!("{name}.safetensors")))
                .unwrap()
                .into_iter()
                .collect();
        assert_eq!(ours.len(), reference.len(), "{name}: tensor count");
        for (k, t) in &ours {
            let r = reference
                .get(k)
                .unwrap_or_else(|| panic!("{name}: unexpected key {k}"));
            assert_eq!(t.size(), r.size(), "{name}: {k} shape");
            assert_eq!(t.kind(), r.kind(), "{name}: {k} dtype");
            assert!(t.equal(r), "{name}: {k} differs");
        }
    }
}

#[test]
#[ignore = "needs ../shared/reference/mdf (the official MDF weights and golden values)"]
fn cli_import_weights_writes_identical_file() {
    let dir = common::mdf_dir();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("jpeg.safetensors");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_jndlab-train"))
        .args(["import-weights"])
        .arg(dir.join("Ds_JPEG.pth"))
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let a: HashMap<String, Tensor> = Tensor::read_safetensors(&out)
        .unwrap()
        .into_iter()
        .collect();
    let b: HashMap<String, Tensor> = Tensor::read_safetensors(dir.join("Ds_JPEG.safetensors"))
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(a.len(), b.len());
    for (k, t) in &a {
        assert!(t.equal(&b[k]), "{k}");
    }
}

#[test]
fn corrupt_input_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("bad.pth");
    std::fs::write(&p, b"\x80\x02\x8a\x0alp\x9cF\xf9 j\xa8P\x19").unwrap();
    let e = format!("{:#}", read_legacy_torch(&p).unwrap_err());
    assert!(e.contains("bad.pth") && e.contains("legacy"), "{e}");
    let out = tmp.path().join("o.safetensors");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_jndlab-train"))
        .args(["import-weights"])
        .arg(&p)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(!out.exists(), "no half-written output");
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.pth"));
}

#[test]
fn zip_format_state_dict_loads_via_libtorch() {
    // trainer/tests/data/tiny_state_dict.pth: torch.save({'features.0.weight': arange(6).view(2, 3),
    // 'features.0.bias': [1.5, -2.0]}) with torch 2.11 (zip format), as torchvision checkpoints are.
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_state_dict.pth");
    let sd = trainer::weights::StateDict::load(&p, tch::Device::Cpu).unwrap();
    let w = sd.get("features.0.weight", &[2, 3]).unwrap();
    assert!(w.equal(&Tensor::arange(6, (tch::Kind::Float, tch::Device::Cpu)).view([2, 3])));
    let b = sd.get("features.0.bias", &[2]).unwrap();
    assert_eq!(Vec::<f32>::try_from(&b).unwrap(), vec![1.5, -2.0]);
    assert!(
        sd.get("features.0.bias", &[3])
            .unwrap_err()
            .to_string()
            .contains("expected [3]")
    );
}
