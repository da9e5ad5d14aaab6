//! Result exports, shared by the admin download links, the `jndlab-app export` command and the API:
//! raw answers in pwcmp's long format plus our columns, JND scores as CSV or JSON, per-observer count
//! matrices. Every export honours the same options as the results page (excluded HITs left out unless
//! asked for; observer = HIT or worker).

use std::path::Path;

use anyhow::Context;

use super::assign::{HitStatus, Platform};
use super::quality::Rules;
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
    /// One row per HIT: status, the quality rules' counters and flags, whether it is excluded.
    HitsCsv,
}

pub const FORMATS: [Format; 5] = [
    Format::AnswersCsv,
    Format::JndCsv,
    Format::JndJson,
    Format::Matrices,
    Format::HitsCsv,
];

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::AnswersCsv => "answers-csv",
            Format::JndCsv => "jnd-csv",
            Format::JndJson => "jnd-json",
            Format::Matrices => "matrices",
            Format::HitsCsv => "hits-csv",
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
            Format::HitsCsv => format!("{slug}-hits.csv"),
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

/// A text cell a participant can influence (ids, keys), neutralised against spreadsheet formula injection
/// as OWASP recommends: a cell starting with `=`, `+`, `-`, `@`, tab or carriage return gets a leading `'`.
/// Numbers the export computes are written as they are.
pub fn text_cell(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{s}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Columns after pwcmp's six.
pub const EXTRA_COLUMNS: [&str; 15] = [
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
    "flags",
    "server_response_ms",
    "hit_status",
];

fn finish(w: csv::Writer<Vec<u8>>) -> anyhow::Result<Vec<u8>> {
    w.into_inner()
        .map_err(|e| anyhow::anyhow!("writing CSV: {e}"))
}

/// The raw answers used under `opts` and the study's `rules` in pwcmp's long format, `session` = the HIT,
/// plus our columns (the flags of each answer's HIT among them).
pub fn answers_csv(
    rows: &[AnswerRow],
    opts: &ResultsOptions,
    rules: &Rules,
) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(
        scaling::LONG_FORMAT_COLUMNS
            .iter()
            .chain(EXTRA_COLUMNS.iter()),
    )?;
    for r in results::used(rows, opts, rules) {
        let side = if r.chosen_condition == r.left_condition {
            "left"
        } else {
            "right"
        };
        let excluded = matches!(r.validity(rules), results::Validity::Excluded(_));
        w.write_record([
            &*text_cell(r.observer(opts.observer)),
            &*text_cell(&r.assignment_key),
            &*text_cell(&r.scene),
            &*text_cell(&r.condition_a),
            &*text_cell(&r.condition_b),
            if r.a_selected() { "1" } else { "0" },
            &*text_cell(&r.worker_key),
            &*text_cell(&r.assignment_key),
            &*text_cell(&r.external_hit_id),
            &r.hit_id.to_string(),
            r.platform.as_str(),
            &*text_cell(&r.left_condition),
            &*text_cell(&r.right_condition),
            side,
            &r.rt_ms.to_string(),
            &r.hit_created_at.to_string(),
            &r.answered_at.to_string(),
            if excluded { "1" } else { "0" },
            &r.flags().joined(),
            &r.server_rt_ms.to_string(),
            r.hit_status.as_str(),
        ])?;
    }
    finish(w)
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct HitExportRow {
    id: i64,
    #[sqlx(try_from = "String")]
    platform: Platform,
    assignment_key: String,
    worker_key: String,
    external_hit_id: String,
    #[sqlx(try_from = "String")]
    status: HitStatus,
    abandoned_at: Option<i64>,
    answered: i64,
    total: i64,
    pairs: i64,
    fast_answers: i64,
    left_answers: i64,
    failed_checks: i64,
    flags: i64,
    excluded: i64,
    completion_code: String,
    created_at: i64,
    completed_at: Option<i64>,
}

/// One row per HIT with the numbers every quality rule reads and the flags it set.
pub async fn hits_csv(db: &super::db::Db, study_id: i64) -> anyhow::Result<Vec<u8>> {
    let rows: Vec<HitExportRow> = sqlx::query_as(
        "SELECT id, platform, assignment_key, worker_key, external_hit_id, status, abandoned_at, answered, total, \
         pairs, fast_answers, left_answers, failed_checks, flags, excluded, completion_code, created_at, completed_at \
         FROM hits WHERE study_id = $1 ORDER BY id",
    )
    .bind(study_id)
    .fetch_all(db)
    .await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "hit_id",
        "platform",
        "assignment",
        "worker",
        "hit",
        "status",
        "answered",
        "trials",
        "pairs",
        "fast_answers",
        "left_answers",
        "straight_line_p",
        "failed_checks",
        "flags",
        "excluded",
        "completion_code",
        "started_at_ms",
        "completed_at_ms",
    ])?;
    for h in rows {
        let status = h.status.label(h.abandoned_at.is_some());
        w.write_record([
            h.id.to_string(),
            h.platform.as_str().to_string(),
            text_cell(&h.assignment_key).into_owned(),
            text_cell(&h.worker_key).into_owned(),
            text_cell(&h.external_hit_id).into_owned(),
            status.to_string(),
            h.answered.to_string(),
            h.total.to_string(),
            h.pairs.to_string(),
            h.fast_answers.to_string(),
            h.left_answers.to_string(),
            format!(
                "{:.6}",
                super::quality::binomial_two_sided_p(h.left_answers as u64, h.answered as u64)
            ),
            h.failed_checks.to_string(),
            super::quality::Flags::from_bits_truncate(h.flags).joined(),
            h.excluded.to_string(),
            text_cell(&h.completion_code).into_owned(),
            h.created_at.to_string(),
            h.completed_at.map(|t| t.to_string()).unwrap_or_default(),
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
    let sets = r.analysis.pooled.iter().map(|s| ("pooled", s)).chain(
        r.analysis
            .per_scene
            .iter()
            .filter_map(|s| s.result.as_ref().map(|x| (s.scene.as_str(), x))),
    );
    for (scope, s) in sets {
        for (i, c) in s.conditions.iter().enumerate() {
            let psnr = r
                .analysis
                .pooled
                .as_ref()
                .and_then(|p| p.conditions.iter().position(|k| k == c))
                .and_then(|k| r.mean_psnr.get(k).copied().flatten());
            w.write_record([
                text_cell(scope).into_owned(),
                text_cell(c).into_owned(),
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
pub fn matrices_csv(
    rows: &[AnswerRow],
    opts: &ResultsOptions,
    rules: &Rules,
) -> anyhow::Result<Vec<u8>> {
    let c = results::comparisons(rows, opts, rules);
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(
        ["observer", "condition"]
            .iter()
            .map(|s| s.to_string())
            .chain(c.conditions.iter().map(|k| text_cell(k).into_owned())),
    )?;
    if !c.answers.is_empty() {
        let oc = c.observer_counts();
        for (o, m) in oc.observers.iter().zip(&oc.matrices) {
            for (i, name) in c.conditions.iter().enumerate() {
                w.write_record(
                    [text_cell(o).into_owned(), text_cell(name).into_owned()]
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
    let rules = super::study::by_id(db, study_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no study with id {study_id}"))?
        .settings
        .rules;
    match format {
        Format::AnswersCsv => answers_csv(&results::answers(db, study_id).await?, opts, &rules),
        Format::Matrices => matrices_csv(&results::answers(db, study_id).await?, opts, &rules),
        Format::HitsCsv => hits_csv(db, study_id).await,
        Format::JndCsv => jnd_csv(&results::results(db, study_id, opts, on_replicate).await?),
        Format::JndJson => {
            let r = results::results(db, study_id, opts, on_replicate).await?;
            let mut v = serde_json::to_vec_pretty(&r)?;
            v.push(b'\n');
            Ok(v)
        }
    }
}

/// Writes `bytes` to `path` atomically (`atomic-write-file`: a temporary file in the same folder, synced
/// and renamed into place), so a failed export never leaves a half-written file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = atomic_write_file::AtomicWriteFile::open(path)
        .with_context(|| format!("{}: cannot create the file", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("{}: cannot write", path.display()))?;
    f.commit()
        .with_context(|| format!("{}: cannot write", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_others_kept() {
        for bad in ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(text_cell(bad), format!("'{bad}"));
        }
        for ok in ["mturk:W1", "c0", "a-b", "1.5"] {
            assert_eq!(text_cell(ok), ok);
        }
    }
}
