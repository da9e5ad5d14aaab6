//! Any folder of PNG/JPEG images is a dataset: listed in name order, split by a ratio if no
//! separate validation folder is given, decoded ONCE into 8-bit memory (optionally downscaled
//! with MATLAB-style antialiased bicubic, e.g. `prescale 0.5` to remove JPEG blocking).
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};
use tch::Device;

use crate::image_io::{load_rgb, rgb_to_tensor, tensor_to_rgb};
use crate::resample::{Filter, imresize_scale};

/// The PNG/JPEG files directly inside `dir`, sorted by file name.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read image folder {}", dir.display()))?;
    let mut v = Vec::new();
    for e in rd {
        let p = e
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        let ext = p
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if p.is_file() && matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg")) {
            v.push(p);
        }
    }
    if v.is_empty() {
        bail!(
            "image folder {} contains no .png/.jpg/.jpeg files",
            dir.display()
        );
    }
    v.sort();
    Ok(v)
}

/// Splits sorted paths deterministically: every `round(1 / ratio)`-th image (at least one, and
/// at least one left for training) goes to validation.
pub fn split(paths: &[PathBuf], val_ratio: f64) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    if !(0.0..1.0).contains(&val_ratio) || val_ratio == 0.0 {
        bail!("validation ratio must be in (0, 1), got {val_ratio}");
    }
    if paths.len() < 2 {
        bail!(
            "need at least 2 images to split into training and validation, got {}",
            paths.len()
        );
    }
    let step = ((1.0 / val_ratio).round() as usize).clamp(2, paths.len());
    let (mut tr, mut va) = (Vec::new(), Vec::new());
    for (i, p) in paths.iter().enumerate() {
        if i % step == step - 1 {
            va.push(p.clone());
        } else {
            tr.push(p.clone());
        }
    }
    Ok((tr, va))
}

/// Decoded images held in memory with their file names.
pub struct ImageSet {
    pub names: Vec<String>,
    pub images: Vec<RgbImage>,
}

impl ImageSet {
    /// Decodes `paths` (downscaled by `prescale` when it is not 1), with a progress bar.
    pub fn load(paths: &[PathBuf], prescale: f64, what: &str) -> Result<Self> {
        if !(prescale > 0.0 && prescale <= 1.0) {
            bail!("prescale must be in (0, 1], got {prescale}");
        }
        let pb = ProgressBar::new(paths.len() as u64);
        pb.set_style(
            ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} [{elapsed_precise}]")
                .expect("valid template"),
        );
        pb.set_message(format!("decoding {what}"));
        let mut names = Vec::new();
        let mut images = Vec::new();
        for p in paths {
            let img = load_rgb(p)?;
            let img = if prescale == 1.0 {
                img
            } else {
                let t = rgb_to_tensor(&img, Device::Cpu);
                tensor_to_rgb(&imresize_scale(&t, prescale, Filter::Bicubic)?)
                    .with_context(|| format!("prescaling {}", p.display()))?
            };
            names.push(
                p.file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("image")
                    .to_string(),
            );
            images.push(img);
            pb.inc(1);
        }
        pb.finish_and_clear();
        tracing::info!(what, images = images.len(), prescale, "decoded into memory");
        Ok(Self { names, images })
    }

    /// Fails naming the smallest image if any side is below `min_side`.
    pub fn check_min_side(&self, min_side: u32, what: &str) -> Result<()> {
        for (n, i) in self.names.iter().zip(&self.images) {
            if i.width() < min_side || i.height() < min_side {
                bail!(
                    "{what}: image {n} is {}x{} but patches need at least {min_side} px per side",
                    i.width(),
                    i.height()
                );
            }
        }
        Ok(())
    }
}
