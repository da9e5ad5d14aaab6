//! Test helpers. Tests that need `../shared` or the fetched weights are `#[ignore = "needs ..."]`, so a
//! plain `cargo test` reports them as skipped; `--include-ignored` (the test command does this where the
//! needs are met, always under CI=true) runs them, and then a missing input is a failure, not a skip.
#![allow(dead_code)]
use std::path::PathBuf;

fn shared_present() -> Option<PathBuf> {
    let p = trainer::weights::shared_dir();
    p.join("reference/mdf/dev_mdf_golden.json")
        .exists()
        .then_some(p)
}

/// `../shared`; panics (with what is missing) when it is absent.
pub fn shared() -> PathBuf {
    shared_present().unwrap_or_else(|| {
        panic!(
            "this test needs ../shared: {} lacks reference/mdf/dev_mdf_golden.json",
            trainer::weights::shared_dir().display()
        )
    })
}

pub fn mdf_dir() -> PathBuf {
    shared().join("reference/mdf")
}

/// `../shared/reference/mdf` where it exists, for a test that runs everywhere and adds a comparison with
/// the official files when it can; under CI=true the comparison is required.
pub fn mdf_dir_if_present() -> Option<PathBuf> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        return Some(mdf_dir());
    }
    shared_present().map(|s| s.join("reference/mdf"))
}

/// The fetched pretrained weights (`jndlab-train fetch-weights`); panics when they are absent.
pub fn fetched_weights() -> PathBuf {
    let d = trainer::weights::weights_dir();
    assert!(
        d.join("vgg16.safetensors").exists() && d.join("lpips_alex.safetensors").exists(),
        "this test needs the fetched weights in {}: run `jndlab-train fetch-weights`",
        d.display()
    );
    d
}

pub fn rel(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        a.abs()
    } else {
        ((a - b) / b).abs()
    }
}
