//! Loss comparisons: the same recipe trained once per loss spec, one results table (CSV and
//! Markdown) with the best epoch's validation numbers and the training throughput. A lambda
//! search is a sweep over `TEMPLATE` with `{}` replaced by `10^k`.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use tracing::info;

use super::config::Config;
use super::fit::{FitOptions, fit};
use crate::image_io::write_atomic;

/// A file/condition-safe key for a loss spec: `l2+0.1*lpips` -> `l2_0.1xlpips`,
/// `mdf:denoising` -> `mdf-denoising`, `mdf:/w/Ds_x.safetensors` -> `mdf-Ds_x`.
pub fn loss_key(spec: &str) -> String {
    let mut s = String::new();
    for term in spec.split('+') {
        let t = term.trim();
        let t = match t.split_once(':') {
            Some((n, arg)) if arg.contains('/') || arg.contains('.') && arg.len() > 12 => {
                let stem = Path::new(arg)
                    .file_stem()
                    .and_then(|x| x.to_str())
                    .unwrap_or("file");
                format!("{n}:{stem}")
            }
            _ => t.to_string(),
        };
        if !s.is_empty() {
            s.push('_');
        }
        for c in t.chars() {
            s.push(match c {
                '*' => 'x',
                ':' | ',' | '/' => '-',
                c if c.is_ascii_alphanumeric() || "._-".contains(c) => c,
                _ => '-',
            });
        }
    }
    s.truncate(64);
    s
}

/// The specs of a lambda search: `template` with `{}` replaced by `10^k` for `k` in `ks`.
pub fn lambda_specs(template: &str, ks: &[i32]) -> Result<Vec<String>> {
    if !template.contains("{}") {
        bail!(
            "lambda template {template:?} must contain {{}} where the weight goes, e.g. l2+{{}}*vgg"
        );
    }
    Ok(ks
        .iter()
        .map(|k| template.replace("{}", &format!("1e{k}")))
        .collect())
}

/// One row of a sweep's results.
#[derive(Debug, Clone)]
pub struct SweepRow {
    pub loss: String,
    pub key: String,
    pub run_dir: PathBuf,
    pub best_epoch: usize,
    pub val_loss: f64,
    pub val_psnr: f64,
    pub input_psnr: f64,
    pub patches_per_s: f64,
    pub parameters: i64,
}

/// Trains `base` once per loss (run names `{base.name}-{key}`); `resume` continues finished or
/// interrupted runs (a finished run is not retrained).
pub fn sweep(base: &Config, losses: &[String], resume: bool) -> Result<Vec<SweepRow>> {
    if losses.is_empty() {
        bail!("--losses: give at least one loss spec");
    }
    let mut rows = Vec::new();
    for (i, spec) in losses.iter().enumerate() {
        let key = loss_key(spec);
        let mut c = base.clone();
        c.loss = spec.clone();
        c.name = format!("{}-{key}", base.name);
        let exists = c.run_dir().join(super::fit::STATE).exists();
        info!(loss = %spec, run = %c.run_dir().display(), "sweep {}/{}", i + 1, losses.len());
        let s = fit(
            &c,
            &FitOptions {
                resume: resume && exists,
                stop_after: None,
            },
        )?;
        let b = s
            .best()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("run {} has no epochs", c.name))?;
        rows.push(SweepRow {
            loss: spec.clone(),
            key,
            run_dir: s.run_dir.clone(),
            best_epoch: b.epoch,
            val_loss: b.val_loss,
            val_psnr: b.val_psnr,
            input_psnr: b.input_psnr,
            patches_per_s: s.patches_per_s(),
            parameters: s.parameters,
        });
    }
    Ok(rows)
}

/// The index of the row with the highest validation PSNR (losses' own values differ in scale).
pub fn best_row(rows: &[SweepRow]) -> Option<usize> {
    (0..rows.len()).max_by(|&a, &b| rows[a].val_psnr.total_cmp(&rows[b].val_psnr))
}

/// Writes `results.csv` and `results.md` into `dir`; returns the Markdown.
pub fn write_results(dir: &Path, base: &Config, rows: &[SweepRow]) -> Result<String> {
    std::fs::create_dir_all(dir)?;
    let mut md = format!(
        "{} / {} on {} ({} epochs x {} patches of {} px, device {})\n\n\
         | loss | best epoch | val loss | val PSNR (dB) | input PSNR (dB) | patches/s |\n|---|---|---|---|---|---|\n",
        base.task,
        base.net,
        base.data.train.display(),
        base.run.epochs,
        base.data.batch * base.data.batches_per_epoch,
        base.data.patch,
        base.run.device
    );
    let best = best_row(rows);
    for (i, r) in rows.iter().enumerate() {
        let star = if Some(i) == best { " (best)" } else { "" };
        writeln!(
            md,
            "| `{}`{star} | {} | {:.5} | {:.2} | {:.2} | {:.1} |",
            r.loss, r.best_epoch, r.val_loss, r.val_psnr, r.input_psnr, r.patches_per_s
        )?;
    }
    let header = [
        "loss",
        "key",
        "run_dir",
        "best_epoch",
        "val_loss",
        "val_psnr",
        "input_psnr",
        "patches_per_s",
        "parameters",
    ];
    let csv = crate::table::csv_bytes(
        &header,
        rows.iter().map(|r| {
            vec![
                r.loss.clone(),
                r.key.clone(),
                r.run_dir.display().to_string(),
                r.best_epoch.to_string(),
                r.val_loss.to_string(),
                r.val_psnr.to_string(),
                r.input_psnr.to_string(),
                r.patches_per_s.to_string(),
                r.parameters.to_string(),
            ]
        }),
    )?;
    write_atomic(&dir.join("results.csv"), &csv)?;
    write_atomic(&dir.join("results.md"), md.as_bytes())?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_lambdas() {
        assert_eq!(loss_key("l2+0.1*lpips"), "l2_0.1xlpips");
        assert_eq!(loss_key("mdf:denoising"), "mdf-denoising");
        assert_eq!(loss_key("mdf:/w/Ds_pink.safetensors"), "mdf-Ds_pink");
        assert_eq!(loss_key("ms-ssim+l1"), "ms-ssim_l1");
        let l = lambda_specs("l2+{}*vgg", &[-3, 0, 3]).unwrap();
        assert_eq!(l, ["l2+1e-3*vgg", "l2+1e0*vgg", "l2+1e3*vgg"]);
        assert!(lambda_specs("l2+vgg", &[0]).is_err());
        // every lambda spec parses as a loss spec
        let names: Vec<&str> = crate::losses::registry::LOSSES
            .iter()
            .map(|(n, _, _)| *n)
            .collect();
        for s in &l {
            assert_eq!(crate::losses::spec::parse(s, &names).unwrap().len(), 2);
        }
    }
}
