//! Study bundles (`docs/bundle.md`): parsing and validating `bundle.json`, reading a folder or a .zip, and
//! importing everything into the database in ONE transaction (all-or-nothing), with the attention-check
//! images generated at import by a real codec (JPEG at quality 2).

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use image::{DynamicImage, GenericImageView, ImageFormat};

use super::db::{self, Db};
use super::study::StudySettings;

pub use study_bundle::{FORMAT, MANIFEST};
/// JPEG quality of the generated attention-check images: blocky enough that the answer is obvious.
pub const CHECK_JPEG_QUALITY: u8 = 2;

pub use study_bundle::{Check as CheckSpec, Manifest};

/// Caps that keep a hostile upload (zip bomb, huge image) from exhausting memory or disk.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Entries in a zip archive.
    pub max_files: usize,
    /// Uncompressed bytes of one file.
    pub max_file_bytes: u64,
    /// Uncompressed bytes of all files read from one bundle.
    pub max_total_bytes: u64,
    /// Width x height of one image.
    pub max_pixels: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_files: 20_000,
            max_file_bytes: 64 << 20,
            max_total_bytes: 2 << 30,
            max_pixels: 40_000_000,
        }
    }
}

/// Where bundle files come from: a folder or a zip archive.
pub enum Source {
    Dir(PathBuf),
    Zip {
        label: String,
        archive: Box<zip::ZipArchive<Cursor<Vec<u8>>>>,
        prefix: String,
        limits: Limits,
        /// Uncompressed bytes read so far.
        total: u64,
    },
}

impl Source {
    /// Opens a folder or a `.zip` file.
    pub fn open(path: &Path) -> anyhow::Result<Source> {
        if path.is_dir() {
            return Ok(Source::Dir(path.to_path_buf()));
        }
        let bytes =
            std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
        Source::zip(path.display().to_string(), bytes)
    }

    /// A zip archive held in memory (`label` names it in error messages). `bundle.json` may sit at the
    /// archive root or inside one top-level folder.
    pub fn zip(label: String, bytes: Vec<u8>) -> anyhow::Result<Source> {
        Source::zip_with_limits(label, bytes, Limits::default())
    }

    /// [`Source::zip`] with explicit caps.
    pub fn zip_with_limits(
        label: String,
        bytes: Vec<u8>,
        limits: Limits,
    ) -> anyhow::Result<Source> {
        let archive = zip::ZipArchive::new(Cursor::new(bytes))
            .with_context(|| format!("{label}: not a folder or a readable .zip archive"))?;
        if archive.len() > limits.max_files {
            bail!(
                "{label}: {} files in the archive; at most {} are accepted",
                archive.len(),
                limits.max_files
            );
        }
        let manifests: Vec<String> = archive
            .file_names()
            .filter(|n| *n == MANIFEST || n.ends_with(&format!("/{MANIFEST}")))
            .map(str::to_string)
            .collect();
        let shallowest = manifests
            .iter()
            .min_by_key(|n| n.matches('/').count())
            .ok_or_else(|| anyhow!("{label}: no {MANIFEST} in the archive"))?;
        let prefix = shallowest.trim_end_matches(MANIFEST).to_string();
        Ok(Source::Zip {
            label,
            archive: Box::new(archive),
            prefix,
            limits,
            total: 0,
        })
    }

    fn describe(&self, rel: &str) -> String {
        match self {
            Source::Dir(dir) => dir.join(rel).display().to_string(),
            Source::Zip { label, prefix, .. } => format!("{label}:{prefix}{rel}"),
        }
    }

    /// Reads a file given by a bundle-relative path (rejecting absolute paths and `..`).
    pub fn read(&mut self, rel: &str, field: &str) -> anyhow::Result<Vec<u8>> {
        let p = Path::new(rel);
        if rel.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
            bail!(
                "{MANIFEST}: {field}: \"{rel}\" must be a relative path inside the bundle (no '..', not absolute)"
            );
        }
        let what = self.describe(rel);
        match self {
            Source::Dir(dir) => std::fs::read(dir.join(p))
                .with_context(|| format!("{MANIFEST}: {field}: cannot read {what}")),
            Source::Zip {
                archive,
                prefix,
                limits,
                total,
                ..
            } => {
                let f = archive
                    .by_name(&format!("{prefix}{rel}"))
                    .map_err(|_| anyhow!("{MANIFEST}: {field}: {what} is not in the archive"))?;
                // The declared size may lie: read at most one byte past the cap and look.
                let cap = limits.max_file_bytes.min(limits.max_total_bytes - *total);
                let mut buf = Vec::new();
                f.take(cap + 1)
                    .read_to_end(&mut buf)
                    .with_context(|| format!("{MANIFEST}: {field}: cannot read {what}"))?;
                if buf.len() as u64 > cap {
                    if cap == limits.max_file_bytes {
                        bail!(
                            "{MANIFEST}: {field}: {what} is larger than {} bytes uncompressed",
                            limits.max_file_bytes
                        );
                    }
                    bail!(
                        "{label_total}: the bundle is larger than {} bytes uncompressed",
                        limits.max_total_bytes,
                        label_total = what
                    );
                }
                *total += buf.len() as u64;
                Ok(buf)
            }
        }
    }
}

/// A decoded, validated image ready to be stored.
struct Img {
    bytes: Vec<u8>,
    ext: &'static str,
    width: u32,
    height: u32,
    source: String,
}

fn decode(src: &mut Source, rel: &str, field: &str) -> anyhow::Result<(Img, DynamicImage)> {
    let bytes = src.read(rel, field)?;
    let what = src.describe(rel);
    let format = image::guess_format(&bytes)
        .map_err(|_| anyhow!("{MANIFEST}: {field}: {what} is not a PNG or JPEG image"))?;
    let ext = match format {
        ImageFormat::Png => "png",
        ImageFormat::Jpeg => "jpg",
        other => bail!("{MANIFEST}: {field}: {what} is {other:?}; expected PNG or JPEG"),
    };
    let max_pixels = match src {
        Source::Zip { limits, .. } => limits.max_pixels,
        Source::Dir(_) => Limits::default().max_pixels,
    };
    let (w, h) = image::ImageReader::with_format(Cursor::new(&bytes), format)
        .into_dimensions()
        .with_context(|| format!("{MANIFEST}: {field}: cannot decode {what}"))?;
    if w as u64 * h as u64 > max_pixels {
        bail!(
            "{MANIFEST}: {field}: {what} is {w}x{h} pixels; at most {max_pixels} pixels are accepted"
        );
    }
    let img = image::load_from_memory_with_format(&bytes, format)
        .with_context(|| format!("{MANIFEST}: {field}: cannot decode {what}"))?;
    let (width, height) = img.dimensions();
    let _ = ext;
    // Every image is stored as a fresh PNG of its decoded pixels: one content type for all (a JPEG
    // condition beside a PNG reference would give the attention checks away), no metadata chunks that could
    // name a condition, and the pixels every browser shows are the decoder's here.
    Ok((
        Img {
            bytes: png_bytes(&img)?,
            ext: "png",
            width,
            height,
            source: rel.to_string(),
        },
        img,
    ))
}

fn png_bytes(img: &DynamicImage) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)?;
    Ok(out)
}

/// The attention-check distortion: the reference through a real JPEG codec at quality 2, stored as PNG.
pub fn check_distortion(reference: &DynamicImage) -> anyhow::Result<DynamicImage> {
    let rgb = DynamicImage::ImageRgb8(reference.to_rgb8());
    let mut jpeg = Vec::new();
    rgb.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
        &mut jpeg,
        CHECK_JPEG_QUALITY,
    ))?;
    Ok(image::load_from_memory_with_format(
        &jpeg,
        ImageFormat::Jpeg,
    )?)
}

/// Lowercase ascii slug of `s` (for study URLs).
pub fn slugify(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() { "study".into() } else { out }
}

/// One scene's images: reference, one per condition (in manifest condition order), and the
/// attention checks' distorted images with their descriptions.
type SceneImages = (Img, Vec<Img>, Vec<(Img, String)>);

struct Validated {
    manifest: Manifest,
    scenes: Vec<SceneImages>,
    settings: StudySettings,
}

fn validate(src: &mut Source) -> anyhow::Result<Validated> {
    let raw = src.read(MANIFEST, "manifest")?;
    let manifest: Manifest = serde_json::from_slice(&raw)
        .map_err(|e| anyhow!("{}: invalid manifest: {e}", src.describe(MANIFEST)))?;
    manifest.validate()?;
    if let Some(slug) = &manifest.slug
        && (slugify(slug) != *slug)
    {
        bail!("{MANIFEST}: slug: \"{slug}\" must be lowercase letters, digits and '-'");
    }
    let mut settings = StudySettings::default();
    let s = &manifest.settings;
    settings.trials_per_hit = s.trials_per_hit.unwrap_or(settings.trials_per_hit);
    settings.checks_per_hit = s.checks_per_hit.unwrap_or(settings.checks_per_hit);
    settings.repetitions = s.repetitions.unwrap_or(settings.repetitions);
    settings.max_hits_per_worker = s
        .max_hits_per_worker
        .unwrap_or(settings.max_hits_per_worker);
    settings.hit_timeout_s = s.hit_timeout_s.unwrap_or(settings.hit_timeout_s);
    let r = &mut settings.rules;
    r.min_response_ms = s.min_response_ms.unwrap_or(r.min_response_ms);
    r.max_fast_share = s.max_fast_share.unwrap_or(r.max_fast_share);
    r.straight_line_alpha = s.straight_line_alpha.unwrap_or(r.straight_line_alpha);
    r.outlier_fence = s.outlier_fence.unwrap_or(r.outlier_fence);
    if let Some(scope) = &s.qc_scope {
        r.scope = scope.parse().map_err(|_| {
            anyhow!(
                "{MANIFEST}: settings: qc_scope: expected \"hit\" or \"worker\", found \"{scope}\""
            )
        })?;
    }
    if let Some(flags) = &s.exclude_flags {
        r.exclude = super::quality::Flags::parse_names(flags.iter().map(String::as_str))
            .map_err(|e| anyhow!("{MANIFEST}: settings: exclude_flags: {e}"))?;
    }
    settings
        .validate()
        .map_err(|e| anyhow!("{MANIFEST}: settings: {e}"))?;
    if let Some(q) = &manifest.question {
        settings.question = q.clone();
    }

    let mut scenes = Vec::new();
    for (si, scene) in manifest.scenes.iter().enumerate() {
        let f = format!("scenes[{si}]");
        let (reference, ref_img) = decode(src, &scene.reference, &format!("{f}.reference"))?;
        let mut per_condition = Vec::new();
        for c in &manifest.conditions {
            let field = format!("{f}.images.{}", c.key);
            // Manifest::validate (above) refused a scene without an image per condition.
            let rel = &scene.images[&c.key];
            let (img, _) = decode(src, rel, &field)?;
            if (img.width, img.height) != (reference.width, reference.height) {
                bail!(
                    "{MANIFEST}: {field}: {} is {}x{} but the reference {} is {}x{}",
                    src.describe(rel),
                    img.width,
                    img.height,
                    reference.source,
                    reference.width,
                    reference.height
                );
            }
            per_condition.push(img);
        }
        let mut checks = Vec::new();
        let generated = check_distortion(&ref_img)?;
        checks.push((
            Img {
                bytes: png_bytes(&generated)?,
                ext: "png",
                width: reference.width,
                height: reference.height,
                source: format!(
                    "generated: JPEG q={CHECK_JPEG_QUALITY} of {}",
                    reference.source
                ),
            },
            "generated-jpeg-q2".to_string(),
        ));
        scenes.push((reference, per_condition, checks));
    }
    for (ci, check) in manifest.checks.iter().enumerate() {
        let field = format!("checks[{ci}]");
        let si = manifest
            .scenes
            .iter()
            .position(|s| s.key == check.scene)
            .expect("Manifest::validate refused checks of undeclared scenes");
        let (img, _) = decode(src, &check.bad, &format!("{field}.bad"))?;
        let r = &scenes[si].0;
        if (img.width, img.height) != (r.width, r.height) {
            bail!(
                "{MANIFEST}: {field}.bad: {} is {}x{} but the scene is {}x{}",
                check.bad,
                img.width,
                img.height,
                r.width,
                r.height
            );
        }
        scenes[si].2.push((img, "bundle".into()));
    }
    Ok(Validated {
        manifest,
        scenes,
        settings,
    })
}

/// What an import produced.
#[derive(Debug, Clone)]
pub struct Imported {
    pub study_id: i64,
    pub slug: String,
    pub conditions: usize,
    pub scenes: usize,
    pub design_items: usize,
}

/// Directory holding the image files of a study.
pub fn study_dir(data_dir: &Path, study_id: i64) -> PathBuf {
    data_dir.join("studies").join(study_id.to_string())
}

/// Validates the bundle completely, then writes the study (state draft) in one transaction. On any error
/// nothing is left behind: neither rows nor image files.
pub async fn import(db: &Db, data_dir: &Path, src: &mut Source) -> anyhow::Result<Imported> {
    let v = validate(src)?;
    let mut tx = db::begin_write(db).await?;
    let study_id = db::next_id(&mut tx, "studies").await?;
    let final_dir = study_dir(data_dir, study_id);
    let staging = data_dir.join("studies").join(format!("{study_id}.staging"));
    let result = write_all(&mut tx, &v, study_id, &staging).await;
    let slug = match result {
        Ok(slug) => slug,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).ok();
    }
    if let Err(e) = std::fs::rename(&staging, &final_dir) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(anyhow!("moving images into {}: {e}", final_dir.display()));
    }
    if let Err(e) = tx.commit().await {
        let _ = std::fs::remove_dir_all(&final_dir);
        return Err(e.into());
    }
    let n = v.manifest.conditions.len();
    Ok(Imported {
        study_id,
        slug,
        conditions: n,
        scenes: v.scenes.len(),
        design_items: v.scenes.len() * n * (n - 1) / 2,
    })
}

async fn unique_slug(tx: &mut db::Tx<'_>, base: &str) -> anyhow::Result<String> {
    let mut candidate = base.to_string();
    for n in 2.. {
        let (taken,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM studies WHERE slug = $1")
            .bind(&candidate)
            .fetch_one(&mut **tx)
            .await?;
        if taken == 0 {
            break;
        }
        candidate = format!("{base}-{n}");
    }
    Ok(candidate)
}

async fn write_all(
    tx: &mut db::Tx<'_>,
    v: &Validated,
    study_id: i64,
    staging: &Path,
) -> anyhow::Result<String> {
    std::fs::create_dir_all(staging).with_context(|| format!("creating {}", staging.display()))?;
    let m = &v.manifest;
    let base = m.slug.clone().unwrap_or_else(|| slugify(&m.name));
    let slug = unique_slug(tx, &base).await?;
    let s = &v.settings;
    let n = m.conditions.len() as i64;
    let scope: &'static str = s.rules.scope.into();
    sqlx::query(
        "INSERT INTO studies (id, slug, name, description, question, state, trials_per_hit, checks_per_hit, \
         repetitions, max_hits_per_worker, hit_timeout_s, approve_excluded, prolific_completion_url, synthetic, created_at, \
         design_size, min_response_ms, max_fast_share, straight_line_alpha, outlier_fence, qc_scope, exclude_flags) \
         VALUES ($1, $2, $3, $4, $5, 'draft', $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
    )
    .bind(study_id)
    .bind(&slug)
    .bind(&m.name)
    .bind(&m.description)
    .bind(&s.question)
    .bind(s.trials_per_hit)
    .bind(s.checks_per_hit)
    .bind(s.repetitions)
    .bind(s.max_hits_per_worker)
    .bind(s.hit_timeout_s)
    .bind(s.approve_excluded as i64)
    .bind(&s.prolific_completion_url)
    .bind(m.synthetic as i64)
    .bind(db::now_ms())
    .bind(v.scenes.len() as i64 * n * (n - 1) / 2)
    .bind(s.rules.min_response_ms)
    .bind(s.rules.max_fast_share)
    .bind(s.rules.straight_line_alpha)
    .bind(s.rules.outlier_fence)
    .bind(scope)
    .bind(s.rules.exclude.bits())
    .execute(&mut **tx)
    .await?;

    let mut condition_ids = Vec::new();
    for (i, c) in m.conditions.iter().enumerate() {
        let id = db::next_id(tx, "conditions").await?;
        sqlx::query("INSERT INTO conditions (id, study_id, position, key, label) VALUES ($1, $2, $3, $4, $5)")
            .bind(id)
            .bind(study_id)
            .bind(i as i64)
            .bind(&c.key)
            .bind(c.label.clone().unwrap_or_else(|| c.key.clone()))
            .execute(&mut **tx)
            .await?;
        condition_ids.push(id);
    }

    for (si, (reference, per_condition, checks)) in v.scenes.iter().enumerate() {
        let spec = &m.scenes[si];
        let scene_id = db::next_id(tx, "scenes").await?;
        sqlx::query("INSERT INTO scenes (id, study_id, position, key, width, height) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(scene_id)
            .bind(study_id)
            .bind(si as i64)
            .bind(&spec.key)
            .bind(reference.width as i64)
            .bind(reference.height as i64)
            .execute(&mut **tx)
            .await?;
        let largest = std::iter::once(reference)
            .chain(per_condition)
            .chain(checks.iter().map(|(img, _)| img))
            .map(|i| i.bytes.len())
            .max()
            .unwrap_or(0);
        sqlx::query("UPDATE scenes SET served_bytes = $1 WHERE id = $2")
            .bind(super::media::padded_length(largest))
            .bind(scene_id)
            .execute(&mut **tx)
            .await?;
        let ref_id = insert_image(
            tx,
            staging,
            study_id,
            scene_id,
            None,
            "reference",
            reference,
        )
        .await?;
        insert_metrics(tx, ref_id, spec.metrics.get("reference")).await?;
        for (ci, img) in per_condition.iter().enumerate() {
            let id = insert_image(
                tx,
                staging,
                study_id,
                scene_id,
                Some(condition_ids[ci]),
                "condition",
                img,
            )
            .await?;
            insert_metrics(tx, id, spec.metrics.get(&m.conditions[ci].key)).await?;
        }
        for (img, source) in checks {
            let bad_id =
                insert_image(tx, staging, study_id, scene_id, None, "check_bad", img).await?;
            let id = db::next_id(tx, "check_items").await?;
            sqlx::query(
                "INSERT INTO check_items (id, study_id, scene_id, good_image_id, bad_image_id, source) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(study_id)
            .bind(scene_id)
            .bind(ref_id)
            .bind(bad_id)
            .bind(source)
            .execute(&mut **tx)
            .await?;
        }
        for a in 0..condition_ids.len() {
            for b in a + 1..condition_ids.len() {
                let id = db::next_id(tx, "design_items").await?;
                sqlx::query(
                    "INSERT INTO design_items (id, study_id, scene_id, condition_a, condition_b, load) \
                     VALUES ($1, $2, $3, $4, $5, 0)",
                )
                .bind(id)
                .bind(study_id)
                .bind(scene_id)
                .bind(condition_ids[a])
                .bind(condition_ids[b])
                .execute(&mut **tx)
                .await?;
            }
        }
    }
    Ok(slug)
}

async fn insert_image(
    tx: &mut db::Tx<'_>,
    staging: &Path,
    study_id: i64,
    scene_id: i64,
    condition_id: Option<i64>,
    kind: &str,
    img: &Img,
) -> anyhow::Result<i64> {
    let id = db::next_id(tx, "images").await?;
    let file_name = format!("{id}.{}", img.ext);
    std::fs::write(staging.join(&file_name), &img.bytes)
        .with_context(|| format!("writing {}", staging.join(&file_name).display()))?;
    sqlx::query(
        "INSERT INTO images (id, study_id, scene_id, condition_id, kind, file_name, source_path, width, height) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(study_id)
    .bind(scene_id)
    .bind(condition_id)
    .bind(kind)
    .bind(&file_name)
    .bind(&img.source)
    .bind(img.width as i64)
    .bind(img.height as i64)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

async fn insert_metrics(
    tx: &mut db::Tx<'_>,
    image_id: i64,
    metrics: Option<&BTreeMap<String, f64>>,
) -> anyhow::Result<()> {
    for (name, value) in metrics.into_iter().flatten() {
        sqlx::query("INSERT INTO image_metrics (image_id, name, value) VALUES ($1, $2, $3)")
            .bind(image_id)
            .bind(name)
            .bind(value)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
