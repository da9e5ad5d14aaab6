//! Test helpers: locating `../shared` (skip when absent, fail when CI=true).
#![allow(dead_code)]
use std::path::PathBuf;

pub fn shared() -> Option<PathBuf> {
    let p = trainer::weights::shared_dir();
    if p.join("reference/mdf/dev_mdf_golden.json").exists() {
        return Some(p);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "CI=true but the shared reference folder {} is missing",
            p.display()
        );
    }
    eprintln!(
        "SKIP: {} is absent (needs ../shared beside the checkout)",
        p.display()
    );
    None
}

pub fn mdf_dir() -> Option<PathBuf> {
    shared().map(|s| s.join("reference/mdf"))
}

/// The fetched pretrained weights (`jndlab-train fetch-weights`); skip when absent, fail under CI.
pub fn fetched_weights() -> Option<PathBuf> {
    let d = trainer::weights::weights_dir();
    if d.join("vgg16.safetensors").exists() && d.join("lpips_alex.safetensors").exists() {
        return Some(d);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "CI=true but {} lacks the fetched weights: run `jndlab-train fetch-weights`",
            d.display()
        );
    }
    eprintln!(
        "SKIP: pretrained weights absent in {} (run `jndlab-train fetch-weights`)",
        d.display()
    );
    None
}

pub fn rel(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        a.abs()
    } else {
        ((a - b) / b).abs()
    }
}
