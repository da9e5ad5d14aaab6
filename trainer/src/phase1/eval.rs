//! "Does a trained MDF work as a loss?": on held-out image crops, for a grid of distortion
//! strengths (Gaussian noise sigma, JPEG quality, bicubic down/up x s), the mean loss per
//! strength (should rise monotonically with the strength) and Spearman's rank correlation between
//! our loss values and a reference loss's values (e.g. the official `mdf:sisr`) over all
//! (image, strength) pairs of a distortion family and over all pairs together.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tch::{Device, Tensor};

use super::rng::Rng;
use crate::image_io::{jpeg_roundtrip, load_tensor, rgb_to_tensor, tensor_to_rgb};
use crate::losses::Loss;
use crate::resample::{Filter, imresize};

/// One distortion of the grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Distort {
    /// Gaussian noise, sigma on the 0-255 scale (result clamped to [0, 1] and 8-bit quantised).
    Noise(f64),
    Jpeg(u8),
    /// Bicubic down by the factor, then up to the original size.
    Bicubic(u32),
}

impl Distort {
    pub fn family(&self) -> &'static str {
        match self {
            Self::Noise(_) => "noise",
            Self::Jpeg(_) => "jpeg",
            Self::Bicubic(_) => "bicubic",
        }
    }
    pub fn label(&self) -> String {
        match self {
            Self::Noise(s) => format!("sigma {s}"),
            Self::Jpeg(q) => format!("quality {q}"),
            Self::Bicubic(f) => format!("x{f}"),
        }
    }
    /// Distorts a `[1, 3, H, W]` [0, 1] image; the result is an 8-bit image again.
    pub fn apply(&self, x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let dev = x.device();
        let y = match *self {
            Self::Noise(s) => x + rng.normal_tensor(&x.size(), dev) * (s / 255.0),
            Self::Jpeg(q) => rgb_to_tensor(&jpeg_roundtrip(&tensor_to_rgb(x)?, q)?, dev),
            Self::Bicubic(f) => {
                let (h, w) = (x.size()[2], x.size()[3]);
                let f = f as i64;
                if h % f != 0 || w % f != 0 {
                    bail!("bicubic x{f}: crop {h}x{w} is not divisible by {f}");
                }
                let lo = imresize(x, h / f, w / f, Filter::Bicubic, true)?;
                imresize(&lo, h, w, Filter::Bicubic, true)?
            }
        };
        Ok(rgb_to_tensor(&tensor_to_rgb(&y)?, dev))
    }
}

/// The default grid, each family from weak to strong.
pub fn default_grid() -> Vec<Distort> {
    let mut g: Vec<Distort> = [5.0, 10.0, 15.0, 25.0, 35.0, 50.0]
        .map(Distort::Noise)
        .into();
    g.extend([90u8, 70, 50, 30, 20, 10, 5].map(Distort::Jpeg));
    g.extend([2u32, 3, 4].map(Distort::Bicubic));
    g
}

/// Spearman's rank correlation: Pearson's on the ranks (ties get their average rank, statrs).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    use statrs::statistics::{Data, OrderStatistics, RankTieBreaker};
    let ranks = |v: &[f64]| Data::new(v.to_vec()).ranks(RankTieBreaker::Average);
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// Image files (PNG/JPEG) in a folder, sorted by name.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read image folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        })
        .collect();
    v.sort();
    if v.is_empty() {
        bail!("{}: no PNG/JPEG images", dir.display());
    }
    Ok(v)
}

/// Centre crop `size x size`.
pub fn centre_crop(x: &Tensor, size: i64) -> Result<Tensor> {
    let (h, w) = (x.size()[2], x.size()[3]);
    if h < size || w < size {
        bail!("image {w}x{h} is smaller than the crop {size}");
    }
    Ok(x.narrow(2, (h - size) / 2, size)
        .narrow(3, (w - size) / 2, size))
}

/// Loss values `[distortion][image]` for ours and the reference.
pub struct EvalResult {
    pub grid: Vec<Distort>,
    pub images: Vec<PathBuf>,
    pub ours: Vec<Vec<f64>>,
    pub reference: Vec<Vec<f64>>,
    pub ours_name: String,
    pub reference_name: String,
}

/// What to evaluate on.
pub struct EvalSpec<'a> {
    pub images: &'a [PathBuf],
    pub grid: &'a [Distort],
    /// Centre-crop side.
    pub crop: i64,
    /// Seed of the noise draws.
    pub seed: u64,
    pub device: Device,
}

pub fn evaluate(
    ours: &dyn Loss,
    reference: &dyn Loss,
    spec: &EvalSpec,
    mut on_image: impl FnMut(),
) -> Result<EvalResult> {
    let EvalSpec {
        images,
        grid,
        crop,
        seed,
        device,
    } = *spec;
    let mut o = vec![Vec::new(); grid.len()];
    let mut r = vec![Vec::new(); grid.len()];
    for (ii, p) in images.iter().enumerate() {
        let x =
            centre_crop(&load_tensor(p, device)?, crop).with_context(|| p.display().to_string())?;
        for (gi, d) in grid.iter().enumerate() {
            let mut rng = Rng::for_iteration(seed, ii, gi);
            let y = d.apply(&x, &mut rng)?;
            tch::no_grad(|| -> Result<()> {
                o[gi].push(ours.forward(&y, &x)?.double_value(&[]));
                r[gi].push(reference.forward(&y, &x)?.double_value(&[]));
                Ok(())
            })?;
        }
        on_image();
    }
    Ok(EvalResult {
        grid: grid.to_vec(),
        images: images.to_vec(),
        ours: o,
        reference: r,
        ours_name: ours.name(),
        reference_name: reference.name(),
    })
}

impl EvalResult {
    fn families(&self) -> Vec<&'static str> {
        let mut f: Vec<&'static str> = Vec::new();
        for d in &self.grid {
            if !f.contains(&d.family()) {
                f.push(d.family());
            }
        }
        f
    }

    /// Markdown report: per strength the mean losses; per family monotonicity and Spearman.
    pub fn markdown(&self) -> String {
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} held-out crops; ours = `{}`, reference = `{}`\n",
            self.images.len(),
            self.ours_name,
            self.reference_name
        );
        let _ = writeln!(
            s,
            "| distortion | mean loss (ours) | mean loss (reference) | Spearman ours vs reference (per strength, over images) |"
        );
        let _ = writeln!(s, "|---|---|---|---|");
        for (gi, d) in self.grid.iter().enumerate() {
            let _ = writeln!(
                s,
                "| {} {} | {:.5} | {:.5} | {:.3} |",
                d.family(),
                d.label(),
                mean(&self.ours[gi]),
                mean(&self.reference[gi]),
                spearman(&self.ours[gi], &self.reference[gi])
            );
        }
        let _ = writeln!(
            s,
            "\n| family | mean monotonic in strength (ours / reference) | images with per-image monotonic loss (ours / reference) | Spearman ours vs reference over (image, strength) | mean Spearman within a strength (over images) |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|");
        let (mut all_o, mut all_r) = (Vec::new(), Vec::new());
        for fam in self.families() {
            let idx: Vec<usize> = (0..self.grid.len())
                .filter(|&i| self.grid[i].family() == fam)
                .collect();
            let mono = |vals: &Vec<Vec<f64>>| {
                idx.windows(2)
                    .all(|w| mean(&vals[w[1]]) > mean(&vals[w[0]]))
            };
            let per_img = |vals: &Vec<Vec<f64>>| {
                (0..self.images.len())
                    .filter(|&im| idx.windows(2).all(|w| vals[w[1]][im] > vals[w[0]][im]))
                    .count()
            };
            let (fo, fr): (Vec<f64>, Vec<f64>) = idx
                .iter()
                .flat_map(|&i| {
                    self.ours[i]
                        .iter()
                        .copied()
                        .zip(self.reference[i].iter().copied())
                })
                .unzip();
            all_o.extend(&fo);
            all_r.extend(&fr);
            let within = idx
                .iter()
                .map(|&i| spearman(&self.ours[i], &self.reference[i]))
                .sum::<f64>()
                / idx.len() as f64;
            let yn = |b: bool| if b { "yes" } else { "no" };
            let _ = writeln!(
                s,
                "| {fam} | {} / {} | {}/{n} / {}/{n} | {:.3} | {within:.3} |",
                yn(mono(&self.ours)),
                yn(mono(&self.reference)),
                per_img(&self.ours),
                per_img(&self.reference),
                spearman(&fo, &fr),
                n = self.images.len()
            );
        }
        let _ = writeln!(s, "| all | | | {:.3} | |", spearman(&all_o, &all_r));
        s
    }

    /// `image,family,distortion,ours,reference` rows.
    pub fn csv(&self) -> Result<Vec<u8>> {
        let rows = self.grid.iter().enumerate().flat_map(|(gi, d)| {
            self.images.iter().enumerate().map(move |(ii, p)| {
                vec![
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or("?")
                        .to_string(),
                    d.family().to_string(),
                    d.label(),
                    self.ours[gi][ii].to_string(),
                    self.reference[gi][ii].to_string(),
                ]
            })
        });
        crate::table::csv_bytes(
            &["image", "family", "distortion", "ours", "reference"],
            rows,
        )
    }
}
