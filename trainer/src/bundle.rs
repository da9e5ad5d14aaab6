//! Export of an evaluation as a **study bundle** (`docs/bundle.md`, format `jndlab-bundle/1`)
//! that `jndlab-app import` accepts: a folder (and optionally a .zip) with `bundle.json` and,
//! per test image (scene), the reference and one restored image per condition (loss).
//!
//! The app's manifest rejects unknown fields, so the task, network and degradation go into the
//! free-text `description` and each loss's description into its condition `label`.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tracing::info;

use crate::data::Task;
use crate::eval::{EvalReport, INPUT_KEY, read_report};
use crate::losses::registry::LOSSES;

pub use study_bundle::{FORMAT, MANIFEST};

pub use study_bundle::{Condition, Manifest, Scene};

#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Study name (default: from the task and degradation).
    pub name: Option<String>,
    pub slug: Option<String>,
    /// Also offer the degraded input (noisy / JPEG / bicubic) as a condition.
    pub include_input: bool,
    /// Replace an existing output folder.
    pub force: bool,
    /// Also write this .zip.
    pub zip: Option<PathBuf>,
}

fn sanitize(s: &str) -> String {
    let mut k: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    // a key starts with a letter or digit and is never the reserved name (study_bundle::valid_key)
    if !k.starts_with(|c: char| c.is_ascii_alphanumeric()) || k == study_bundle::REFERENCE {
        k = format!("s-{k}");
    }
    k.truncate(64);
    k
}

fn describe_loss(spec: &str) -> String {
    let terms: Vec<String> = spec
        .split('+')
        .map(|t| {
            let name = t.rsplit('*').next().unwrap_or(t);
            let (name, arg) = name.split_once(':').unwrap_or((name, ""));
            let name = name.to_ascii_lowercase();
            // The first clause of the registry's description (the rest documents the spec's arguments).
            let d = LOSSES
                .iter()
                .find(|(n, a, _)| *n == name || a.contains(&name.as_str()))
                .map(|(_, _, d)| d.split(';').next().unwrap_or(d).trim().to_string())
                .unwrap_or_else(|| name.clone());
            match file_arg(arg) {
                Some(f) => format!("{d} with the weights {f}"),
                None => d,
            }
        })
        .collect();
    terms.join(" + ")
}

/// The file name of a loss argument that is a path (`mdf:runs/x/phase1.safetensors`), else None.
fn file_arg(arg: &str) -> Option<String> {
    let p = std::path::Path::new(arg);
    (arg.contains('/') || p.extension().is_some())
        .then(|| p.file_name().map(|f| f.to_string_lossy().into_owned()))
        .flatten()
}

/// A loss spec as people read it: path arguments shortened to their file name.
fn display_spec(spec: &str) -> String {
    spec.split('+')
        .map(|t| match t.split_once(':') {
            Some((n, arg)) => match file_arg(arg) {
                Some(f) => format!("{n}:{f}"),
                None => t.to_string(),
            },
            None => t.to_string(),
        })
        .collect::<Vec<_>>()
        .join("+")
}

fn task_text(task: Task, deg: &str) -> String {
    match task {
        Task::Sisr => format!("super-resolution {deg} (bicubic)"),
        Task::Denoise => format!("denoising, Gaussian noise {deg}"),
        Task::Jpeg => format!(
            "JPEG artefact removal at quality {}",
            deg.trim_start_matches('q')
        ),
    }
}

/// Builds the manifest of an evaluation report (paths relative to the bundle root).
pub fn manifest(r: &EvalReport, o: &ExportOptions) -> Result<Manifest> {
    let mut conditions = Vec::new();
    if o.include_input {
        conditions.push(Condition {
            key: INPUT_KEY.into(),
            label: Some(format!("degraded input ({})", r.degradation)),
        });
    }
    for m in &r.models {
        if !study_bundle::valid_key(&m.key) {
            bail!(
                "eval.json: model key {:?} is not a valid condition key",
                m.key
            );
        }
        conditions.push(Condition {
            key: m.key.clone(),
            label: Some(format!(
                "{} trained with {} ({})",
                m.net,
                display_spec(&m.loss),
                describe_loss(&m.loss)
            )),
        });
    }
    if conditions.len() < 2 {
        bail!(
            "a study compares at least 2 conditions, the evaluation has {} (evaluate more runs or pass --include-input)",
            conditions.len()
        );
    }
    let mut scenes = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for img in &r.images {
        let key = sanitize(&img.name);
        if !seen.insert(key.clone()) {
            bail!("eval.json: two test images map to the scene key {key:?}");
        }
        let mut images = BTreeMap::new();
        let mut metrics = BTreeMap::new();
        for c in &conditions {
            images.insert(c.key.clone(), format!("{key}/{}.png", c.key));
            if let Some(ms) = img.metrics.get(&c.key) {
                let finite: BTreeMap<String, f64> = ms
                    .iter()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(k, v)| (k.clone(), *v))
                    .collect();
                metrics.insert(c.key.clone(), finite);
            }
        }
        scenes.push(Scene {
            key: key.clone(),
            reference: format!("{key}/reference.png"),
            images,
            metrics,
        });
    }
    let tt = task_text(r.task, &r.degradation);
    let name = o.name.clone().unwrap_or_else(|| {
        let nets: std::collections::BTreeSet<&str> =
            r.models.iter().map(|m| m.net.name()).collect();
        format!(
            "{} ({}): {} losses",
            tt,
            nets.into_iter().collect::<Vec<_>>().join("/"),
            r.models.len()
        )
    });
    let m = Manifest {
        format: FORMAT.into(),
        slug: o.slug.clone(),
        description: format!(
            "task: {} ({}); test images: {} ({}); conditions = losses the network was trained with; exported by jndlab-train export-bundle",
            r.task,
            tt,
            r.test_dir.display(),
            r.images.len()
        ),
        name,
        question: None,
        synthetic: false,
        conditions,
        scenes,
        checks: Vec::new(),
        settings: Default::default(),
    };
    // the rules the app imports by: a bundle we write is one it accepts
    m.validate()?;
    Ok(m)
}

/// The source file (in the eval folder) of each bundle path.
fn sources(r: &EvalReport, m: &Manifest) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for (img, s) in r.images.iter().zip(&m.scenes) {
        v.push((s.reference.clone(), img.reference.clone()));
        for (k, dst) in &s.images {
            let src = if k == INPUT_KEY {
                // SISR inputs are LR: the bicubic upscaling is what participants compare
                img.outputs
                    .get(INPUT_KEY)
                    .cloned()
                    .unwrap_or_else(|| img.input.clone())
            } else {
                img.outputs[k].clone()
            };
            v.push((dst.clone(), src));
        }
    }
    v
}

/// Exports the evaluation in `eval_dir` as a bundle folder `out` (written to a temporary
/// folder, then renamed: no half-written bundle), and optionally a zip of it.
pub fn export_bundle(eval_dir: &Path, out: &Path, o: &ExportOptions) -> Result<Manifest> {
    let r = read_report(eval_dir)?;
    if o.include_input && r.task == Task::Sisr {
        bail!(
            "--include-input: the SISR input is a low-resolution image; not supported as a condition"
        );
    }
    let m = manifest(&r, o)?;
    if out.exists() && !o.force {
        bail!("{} exists (pass --force to replace it)", out.display());
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let tmp = parent.join(format!(
        ".{}.tmp{}",
        out.file_name().and_then(|n| n.to_str()).unwrap_or("bundle"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    let res = (|| -> Result<()> {
        for (dst, src) in sources(&r, &m) {
            let to = tmp.join(&dst);
            std::fs::create_dir_all(to.parent().expect("scene folder"))?;
            std::fs::copy(eval_dir.join(&src), &to)
                .with_context(|| format!("cannot copy {}", eval_dir.join(&src).display()))?;
        }
        std::fs::write(tmp.join(MANIFEST), serde_json::to_vec_pretty(&m)?)?;
        if out.exists() {
            std::fs::remove_dir_all(out)
                .with_context(|| format!("cannot replace {}", out.display()))?;
        }
        std::fs::rename(&tmp, out).with_context(|| format!("cannot write {}", out.display()))?;
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    res?;
    if let Some(z) = &o.zip {
        write_zip(out, z)?;
    }
    info!(bundle = %out.display(), scenes = m.scenes.len(), conditions = m.conditions.len(), "exported");
    Ok(m)
}

/// Zips the bundle folder under one top-level folder (PNGs stored, the manifest deflated).
pub fn write_zip(dir: &Path, zip_path: &Path) -> Result<()> {
    let top = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("bundle")
        .to_string();
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        for rel in &files {
            let method = if rel.ends_with(".json") {
                zip::CompressionMethod::Deflated
            } else {
                zip::CompressionMethod::Stored
            };
            let opts = zip::write::SimpleFileOptions::default().compression_method(method);
            w.start_file(format!("{top}/{rel}"), opts)?;
            w.write_all(&std::fs::read(dir.join(rel))?)?;
        }
        w.finish()?;
    }
    crate::image_io::write_atomic(zip_path, buf.get_ref())
}

fn collect(root: &Path, d: &Path, out: &mut Vec<String>) -> Result<()> {
    for e in std::fs::read_dir(d)? {
        let p = e?.path();
        if p.is_dir() {
            collect(root, &p, out)?;
        } else {
            let rel = p.strip_prefix(root)?.to_string_lossy().replace('\\', "/");
            out.push(rel);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{describe_loss, display_spec};

    #[test]
    fn labels_shorten_weight_paths_and_keep_other_arguments() {
        assert_eq!(
            display_spec("mdf:runs/demo/phase1/phase1.safetensors"),
            "mdf:phase1.safetensors"
        );
        assert_eq!(display_spec("l2+0.1*lpips:alex"), "l2+0.1*lpips:alex");
        assert_eq!(display_spec("vgg:relu2_2,relu3_3"), "vgg:relu2_2,relu3_3");
        assert_eq!(
            describe_loss("mdf:runs/demo/phase1/phase1.safetensors"),
            "MDF loss with the weights phase1.safetensors"
        );
        assert_eq!(describe_loss("mdf:denoising"), "MDF loss");
        assert_eq!(
            describe_loss("l2+0.1*lpips:alex"),
            describe_loss("l2") + " + LPIPS v0.1"
        );
    }
}
