//! Result exports, shared by the admin download links, the `jndlab-app export` command and the API:
//! raw answers in pwcmp's long format plus our columns, JND scores as CSV or JSON, per-observer count
//! matrices. Every export honours the same options as the results page (excluded HITs left out unless
//! asked for; observer = HIT or worker).

use std::path::Path;

use anyhow::Context;

use super::results::{self, AnswerRow, ResultsOptions, StudyResults};

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Raw answers, one row per answered pair trial: pwcmp's long format
    /// (observer,session,scene,condition_A,condition_B,is_A_selected) followed by our columns.
    AnswersCsv,
    /// JND per condition with 95% CIs, pooled and per scene (one row per scope and condition).
    JndCsv,
    /// Everything the results page shows (JND, CIs, significance, outliers, counts) as JSON.
    JndJson,
    /// Per-observer comparison-count matrices: observer,condition,<one column per condition>.
    Matrices,
}

pub const FORMATS: [Format; 4] = [
    Format::AnswersCsv,
    Format::JndCsv,
    Format::JndJson,
    Format::Matrices,
];

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::AnswersCsv => "answers-csv",
            Format::JndCsv => "jnd-csv",
            Format::JndJson => "jnd-json",
            Format::Matrices => "matrices",
        }
    }

    pub fn parse(s: &str) -> anyhow::Result<Format> {
        FORMATS
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "format: unknown \"{s}\" (expected one of {})",
                    FORMATS.map(Format::as_str).join(", ")
                )
            })
    }

    pub fn file_name(self, slug: &str) -> String {
        match self {
            Format::AnswersCsv => format!("{slug}-answers.csv"),
            Format::JndCsv => format!("{slug}-jnd.csv"),
            Format::JndJson => format!("{slug}-jnd.json"),
            Format::Matrices => format!("{slug}-matrices.csv"),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::JndJson => "application/json",
            _ => "text/csv; charset=utf-8",
        }
    }

    /// Needs the (possibly slow) scaling, not just the answers.
    pub fn needs_results(self) -> bool {
        matches!(self, Format::JndCsv | Format::JndJson)
    }
}

/// Columns after pwcmp's six.
pub const EXTRA_COLUMNS: [&str; 12] = [
    "worker",
    "assignment",
    "hit",
    "hit_id",
    "platform",
    "condition_left",
    "condition_right",
    "answer_side",
    "response_ms",
    "hit_started_at_ms",
    "answered_at_ms",
    "excluded",
];

fn finish(w: csv::Writer<Vec<u8>>) -> anyhow::Result<Vec<u8>> {
    w.into_inner()
        .map_err(|e| anyhow::anyhow!("writing CSV: {e}"))
}

/// The raw answers used under `opts` in pwcmp's long format, `session` = the HIT, plus our columns.
pub fn answers_csv(rows: &[AnswerRow], opts: &ResultsOptions) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(
        scaling::LONG_FORMAT_COLUMNS
            .iter()
            .chain(EXTRA_COLUMNS.iter()),
    )?;
    for r in results::used(rows, opts) {
        let side = if r.chosen_condition == r.left_condition {
            "left"
        } else {
            "right"
        };
        w.write_record([
            r.observer(opts.observer),
            &r.assignment_key,
            &r.scene,
            &r.condition_a,
            &r.condition_b,
            if r.a_selected() { "1" } else { "0" },
            &r.worker_key,
            &r.assignment_key,
            &r.external_hit_id,
            &r.hit_id.to_string(),
            &r.platform,
            &r.left_condition,
            &r.right_condition,
            side,
            &r.rt_ms.to_string(),
            &r.hit_created_at.to_string(),
            &r.answered_at.to_string(),
            if r.is_excluded() { "1" } else { "0" },
        ])?;
    }
    finish(w)
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// scope (`pooled` or the scene key), condition, jnd, ci_low, ci_high, observers, answers, mean_psnr.
pub fn jnd_csv(r: &StudyResults) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "scope",
        "condition",
        "jnd",
        "ci_low",
        "ci_high",
        "observers",
        "answers",
        "mean_psnr",
    ])?;
    let sets = r.pooled.iter().map(|s| ("pooled", s)).chain(
        r.per_scene
            .iter()
            .filter_map(|s| s.result.as_ref().map(|x| (s.scene.as_str(), x))),
    );
    for (scope, s) in sets {
        for (i, c) in s.conditions.iter().enumerate() {
            let psnr = r
                .pooled
                .as_ref()
                .and_then(|p| p.conditions.iter().position(|k| k == c))
                .and_then(|k| r.mean_psnr.get(k).copied().flatten());
            w.write_record([
                scope.to_string(),
                c.clone(),
                s.jnd[i].to_string(),
                opt(s.ci_low.as_ref().map(|v| v[i])),
                opt(s.ci_high.as_ref().map(|v| v[i])),
                s.observers.to_string(),
                s.answers.to_string(),
                opt(psnr),
            ])?;
        }
    }
    finish(w)
}

/// One block of rows per observer: observer, condition (row), then times it was chosen over each
/// condition (columns), over the sorted list of all conditions used.
pub fn matrices_csv(rows: &[AnswerRow], opts: &ResultsOptions) -> anyhow::Result<Vec<u8>> {
    let c = results::comparisons(rows, opts);
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(
        ["observer", "condition"]
            .iter()
            .map(|s| s.to_string())
            .chain(c.conditions.iter().cloned()),
    )?;
    if !c.answers.is_empty() {
        let oc = c.observer_counts();
        for (o, m) in oc.observers.iter().zip(&oc.matrices) {
            for (i, name) in c.conditions.iter().enumerate() {
                w.write_record(
                    [o.clone(), name.clone()]
                        .into_iter()
                        .chain((0..m.len()).map(|j| (m.get(i, j) as u64).to_string())),
                )?;
            }
        }
    }
    finish(w)
}

/// The bytes of one export of a study.
pub async fn export(
    db: &super::db::Db,
    study_id: i64,
    format: Format,
    opts: &ResultsOptions,
    on_replicate: std::sync::Arc<dyn Fn() + Send + Sync>,
) -> anyhow::Result<Vec<u8>> {
    match format {
        Format::AnswersCsv => answers_csv(&results::answers(db, study_id).await?, opts),
        Format::Matrices => matrices_csv(&results::answers(db, study_id).await?, opts),
        Format::JndCsv => jnd_csv(&results::results(db, study_id, opts, on_replicate).await?),
        Format::JndJson => {
            let r = results::results(db, study_id, opts, on_replicate).await?;
            let mut v = serde_json::to_vec_pretty(&r)?;
            v.push(b'\n');
            Ok(v)
        }
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, renamed into place, so a
/// failed export never leaves a half-written file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| {
        format!(
            "{}: cannot create a file in {}",
            path.display(),
            dir.display()
        )
    })?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("{}: cannot write", path.display()))?;
    tmp.persist(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot write: {}", path.display(), e.error))?;
    Ok(())
}
