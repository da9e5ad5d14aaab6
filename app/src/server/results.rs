//! Study results for experimenters: the answers of a study turned into pwcmp comparisons (observer = HIT
//! or worker), scaled by the `scaling` crate into JND per condition with bootstrap CIs, pooled over
//! scenes and per scene, with the significance matrix, the observer outlier table (dist_L), answer counts
//! and the comparison-count matrix. Results are cached in the database per study and options, keyed by
//! the data version (answer count, last answer time, excluded HITs), so pages stay fast.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::assign::{HitStatus, Platform};
use super::db::{self, Db};
use super::quality::{Flags, QcScope, Rules};
use super::study::Study;

/// Who counts as one observer for the bootstrap and the outlier analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ObserverUnit {
    /// Each HIT (one assignment: ~9 trials) is an observer.
    #[default]
    Hit,
    /// Each worker (all of their HITs together) is an observer.
    Worker,
}

impl ObserverUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            ObserverUnit::Hit => "hit",
            ObserverUnit::Worker => "worker",
        }
    }

    pub fn parse(s: &str) -> anyhow::Result<ObserverUnit> {
        match s {
            "hit" => Ok(ObserverUnit::Hit),
            "worker" => Ok(ObserverUnit::Worker),
            other => anyhow::bail!("observer: expected \"hit\" or \"worker\", found \"{other}\""),
        }
    }
}

/// Bootstrap replicates used when nothing else is asked for.
pub const DEFAULT_REPLICATES: usize = 500;
/// Upper limit of replicates accepted from a web request (the CLI allows more).
pub const MAX_WEB_REPLICATES: usize = 5000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultsOptions {
    pub observer: ObserverUnit,
    /// Also use the answers of HITs excluded by a failed attention check.
    pub include_excluded: bool,
    /// Bootstrap replicates (observers resampled with replacement); 0 disables the CIs.
    pub replicates: usize,
    /// Seed of the bootstrap resampling: the same seed gives the same CIs.
    pub seed: u64,
}

impl Default for ResultsOptions {
    fn default() -> Self {
        ResultsOptions {
            observer: ObserverUnit::Hit,
            include_excluded: false,
            replicates: DEFAULT_REPLICATES,
            seed: 1,
        }
    }
}

impl ResultsOptions {
    /// The options' part of a cache key.
    pub fn cache_key(&self) -> String {
        format!(
            "observer={};excluded={};replicates={};seed={}",
            self.observer.as_str(),
            u8::from(self.include_excluded),
            self.replicates,
            self.seed
        )
    }
}

/// One answered pair trial with everything the exports need.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AnswerRow {
    pub trial_id: i64,
    pub hit_id: i64,
    #[sqlx(try_from = "String")]
    pub platform: Platform,
    pub assignment_key: String,
    pub worker_key: String,
    pub external_hit_id: String,
    #[sqlx(try_from = "String")]
    pub hit_status: HitStatus,
    pub abandoned: i64,
    /// The HIT's quality flags (`quality::Flags` bits).
    pub flags: i64,
    pub scene: String,
    /// The design item's conditions (condition_a < condition_b by key).
    pub condition_a: String,
    pub condition_b: String,
    pub left_condition: String,
    pub right_condition: String,
    pub chosen_condition: String,
    pub rt_ms: i64,
    pub server_rt_ms: i64,
    pub hit_created_at: i64,
    pub answered_at: i64,
}

/// Whether an answer counts, and if not why (in this order of precedence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// A completed HIT that no excluding flag applies to.
    Valid,
    /// The HIT is still being worked on.
    InProgress,
    /// The HIT timed out before it was finished.
    Abandoned,
    /// A completed HIT excluded by these flags.
    Excluded(Flags),
}

impl AnswerRow {
    pub fn flags(&self) -> Flags {
        Flags::from_bits_truncate(self.flags)
    }

    /// Whether the answer counts under `rules` (the stored flags decide, with the rules' exclusions).
    pub fn validity(&self, rules: &Rules) -> Validity {
        if self.abandoned != 0 {
            Validity::Abandoned
        } else if self.hit_status != HitStatus::Completed {
            Validity::InProgress
        } else {
            let hit = self.flags() & rules.excluding();
            if hit.is_empty() {
                Validity::Valid
            } else {
                Validity::Excluded(hit)
            }
        }
    }

    /// The observer this answer belongs to.
    pub fn observer(&self, unit: ObserverUnit) -> &str {
        match unit {
            ObserverUnit::Hit => &self.assignment_key,
            ObserverUnit::Worker => &self.worker_key,
        }
    }

    pub fn a_selected(&self) -> bool {
        self.chosen_condition == self.condition_a
    }
}

/// Every answered pair trial of the study (of every HIT: the options and rules decide what is used),
/// oldest answer first.
pub async fn answers(db: &Db, study_id: i64) -> anyhow::Result<Vec<AnswerRow>> {
    Ok(sqlx::query_as(
        "SELECT t.id AS trial_id, h.id AS hit_id, h.platform, h.assignment_key, h.worker_key, h.external_hit_id, \
           h.status AS hit_status, CASE WHEN h.abandoned_at IS NULL THEN 0 ELSE 1 END AS abandoned, h.flags, \
           s.key AS scene, ca.key AS condition_a, cb.key AS condition_b, cl.key AS left_condition, \
           cr.key AS right_condition, cc.key AS chosen_condition, COALESCE(t.rt_ms, 0) AS rt_ms, \
           COALESCE(t.server_rt_ms, 0) AS server_rt_ms, \
           h.created_at AS hit_created_at, COALESCE(t.answered_at, 0) AS answered_at \
         FROM trials t JOIN hits h ON h.id = t.hit_id \
         JOIN design_items d ON d.id = t.design_item_id \
         JOIN scenes s ON s.id = d.scene_id \
         JOIN conditions ca ON ca.id = d.condition_a JOIN conditions cb ON cb.id = d.condition_b \
         JOIN conditions cl ON cl.id = t.left_condition_id \
         JOIN conditions cr ON cr.id = t.right_condition_id \
         JOIN conditions cc ON cc.id = t.chosen_condition_id \
         WHERE h.study_id = $1 AND t.kind = 'pair' AND t.answer IS NOT NULL \
         ORDER BY t.answered_at, t.id",
    )
    .bind(study_id)
    .fetch_all(db)
    .await?)
}

/// (answered_at ms, excluded) of every answered pair trial of a completed HIT, oldest first: the
/// answers-over-time plot without loading whole answer rows.
pub async fn answer_times(db: &Db, study_id: i64) -> anyhow::Result<Vec<(i64, bool)>> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT COALESCE(t.answered_at, 0), h.excluded FROM trials t JOIN hits h ON h.id = t.hit_id \
         WHERE h.study_id = $1 AND t.kind = 'pair' AND t.answer IS NOT NULL AND h.status = 'completed' \
         ORDER BY t.answered_at",
    )
    .bind(study_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(t, e)| (t, e != 0)).collect())
}

/// The answers that enter the scaling under `opts` and `rules`: those of valid HITs, and with
/// `include_excluded` also those of completed HITs the rules exclude (never those of unfinished HITs).
pub fn used<'a>(
    rows: &'a [AnswerRow],
    opts: &ResultsOptions,
    rules: &'a Rules,
) -> impl Iterator<Item = &'a AnswerRow> {
    let include = opts.include_excluded;
    rows.iter().filter(move |r| match r.validity(rules) {
        Validity::Valid => true,
        Validity::Excluded(_) => include,
        Validity::InProgress | Validity::Abandoned => false,
    })
}

/// The comparisons (pwcmp's model of the data) of the answers used under `opts`.
pub fn comparisons(
    rows: &[AnswerRow],
    opts: &ResultsOptions,
    rules: &Rules,
) -> scaling::Comparisons {
    to_comparisons(used(rows, opts, rules), opts.observer)
}

/// The comparisons of these answers, observer = HIT or worker.
pub fn to_comparisons<'a>(
    rows: impl Iterator<Item = &'a AnswerRow>,
    unit: ObserverUnit,
) -> scaling::Comparisons {
    scaling::Comparisons::from_answers(
        rows.map(|r| scaling::Answer {
            observer: r.observer(unit).to_string(),
            scene: Some(r.scene.clone()),
            condition_a: r.condition_a.clone(),
            condition_b: r.condition_b.clone(),
            a_selected: r.a_selected(),
        })
        .collect(),
    )
}

/// Mean of each condition's per-image PSNR from the bundle's metrics (`image_metrics`, name "psnr").
pub async fn mean_psnr(db: &Db, study_id: i64) -> anyhow::Result<Vec<(String, f64)>> {
    Ok(sqlx::query_as(
        "SELECT c.key, AVG(m.value) FROM image_metrics m JOIN images i ON i.id = m.image_id \
         JOIN conditions c ON c.id = i.condition_id \
         WHERE i.study_id = $1 AND i.kind = 'condition' AND LOWER(m.name) = 'psnr' \
         GROUP BY c.key ORDER BY c.key",
    )
    .bind(study_id)
    .fetch_all(db)
    .await?)
}

pub use scaling::{JndSet, OutlierRow, SceneResult, SignificanceTable};

/// What happened to every answer: used, or left out and why. The admin progress table counts the same.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Answered pair trials of every HIT.
    pub answers_total: usize,
    /// Answers of valid HITs (completed, no excluding flag): what the results use by default.
    pub answers_valid: usize,
    /// Answers of completed HITs that an excluding flag applies to.
    pub answers_excluded: usize,
    /// Answers of HITs still being worked on (not used until the HIT is finished).
    pub answers_in_progress: usize,
    /// Answers of HITs that timed out (never used).
    pub answers_abandoned: usize,
    /// Answers of excluded HITs per excluding flag (a HIT may carry several).
    pub excluded_by: BTreeMap<String, usize>,
    /// Answers of valid HITs that carry a flag the study does not exclude on (kept, but flagged).
    pub answers_flagged_kept: usize,
    /// HITs with at least one answer, and of those the excluded ones.
    pub hits: usize,
    pub hits_excluded: usize,
    pub workers: usize,
    /// Answers and observers that entered the scaling.
    pub answers_used: usize,
    pub observers_used: usize,
}

impl Counts {
    pub fn of(rows: &[AnswerRow], rules: &Rules) -> Counts {
        let mut c = Counts {
            answers_total: rows.len(),
            ..Default::default()
        };
        let mut hits = std::collections::BTreeMap::new();
        for r in rows {
            let v = r.validity(rules);
            hits.insert(r.hit_id, matches!(v, Validity::Excluded(_)));
            match v {
                Validity::Valid => {
                    c.answers_valid += 1;
                    c.answers_flagged_kept += usize::from(!r.flags().is_empty());
                }
                Validity::InProgress => c.answers_in_progress += 1,
                Validity::Abandoned => c.answers_abandoned += 1,
                Validity::Excluded(f) => {
                    c.answers_excluded += 1;
                    for name in f.names() {
                        *c.excluded_by.entry(name).or_default() += 1;
                    }
                }
            }
        }
        c.hits = hits.len();
        c.hits_excluded = hits.values().filter(|&&e| e).count();
        c.workers = rows
            .iter()
            .map(|r| r.worker_key.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        c
    }
}

/// The results of a study: the scaling analysis (`scaling::Analysis`, the jnd.json type: JND with CIs
/// pooled and per scene, significance, the outlier screen, the count matrix) and what only the study
/// knows: which answers were used and why the others were not, the rules, the metrics of the bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyResults {
    pub study_id: i64,
    pub options: ResultsOptions,
    /// The quality rules the answers were judged by.
    pub rules: Rules,
    /// What the cache is keyed by: answers, last answer time, flag changes, rules.
    pub data_version: String,
    pub computed_at_ms: i64,
    pub counts: Counts,
    #[serde(flatten)]
    pub analysis: scaling::Analysis,
    /// The HITs the outlier screen flags (dist_L >= the study's fence).
    pub outlier_hits: Vec<i64>,
    /// Mean PSNR per condition (order of `analysis.conditions`) where the bundle has PSNR for it.
    pub mean_psnr: Vec<Option<f64>>,
}

/// The observer unit of the quality rules' scope.
pub fn screen_unit(rules: &Rules) -> ObserverUnit {
    match rules.scope {
        QcScope::Hit => ObserverUnit::Hit,
        QcScope::Worker => ObserverUnit::Worker,
    }
}

/// pwcmp's outlier screen over the answers the options use, as they are without the outlier rule itself:
/// the rows of the table and the HITs of the observers at or beyond the fence. (With the default options
/// these are the valid answers, and this screen is what the OUTLIER flags store.)
fn outlier_screen(
    rows: &[AnswerRow],
    opts: &ResultsOptions,
    rules: &Rules,
    warnings: &mut Vec<String>,
) -> (Vec<OutlierRow>, Vec<i64>) {
    let without = Rules {
        exclude: rules.exclude - Flags::OUTLIER,
        ..*rules
    };
    let unit = screen_unit(rules);
    let base: Vec<&AnswerRow> = used(rows, opts, &without).collect();
    let c = to_comparisons(base.iter().copied(), unit);
    if c.observers.len() < 3 {
        return (Vec::new(), Vec::new());
    }
    let table = match scaling::outliers_by_scene(
        &c,
        &scaling::ScaleOptions::default(),
        rules.outlier_fence,
    ) {
        Ok(screen) => {
            warnings.extend(screen.warnings);
            screen.rows
        }
        Err(e) => {
            warnings.push(format!("no outlier analysis: {e}"));
            return (Vec::new(), Vec::new());
        }
    };
    let flagged: std::collections::BTreeSet<&str> = table
        .iter()
        .filter(|o| o.outlier)
        .map(|o| o.observer.as_str())
        .collect();
    let mut hits: Vec<i64> = base
        .iter()
        .filter(|r| flagged.contains(r.observer(unit)))
        .map(|r| r.hit_id)
        .collect();
    hits.sort_unstable();
    hits.dedup();
    (table, hits)
}

/// Computes the results from the answers (CPU-bound: run it off the async executor). The outlier flags
/// come from this computation's own screen (so the results never lag behind it); `on_replicate` is called
/// once per bootstrap replicate (pooled and every scene), for progress bars.
#[allow(clippy::too_many_arguments)]
pub fn compute(
    study_id: i64,
    rows: &[AnswerRow],
    psnr: &[(String, f64)],
    opts: &ResultsOptions,
    rules: &Rules,
    data_version: String,
    on_replicate: &(dyn Fn() + Sync),
) -> StudyResults {
    let mut warnings = Vec::new();
    let (outliers, outlier_hits) = outlier_screen(rows, opts, rules, &mut warnings);
    let rows: Vec<AnswerRow> = rows
        .iter()
        .cloned()
        .map(|mut r| {
            let mut f = r.flags() - Flags::OUTLIER;
            if outlier_hits.binary_search(&r.hit_id).is_ok() {
                f |= Flags::OUTLIER;
            }
            r.flags = f.bits();
            r
        })
        .collect();
    let c = comparisons(&rows, opts, rules);
    let mut counts = Counts::of(&rows, rules);
    counts.answers_used = c.answers.len();
    counts.observers_used = c.observers.len();
    let mut analysis = if c.answers.is_empty() {
        scaling::Analysis {
            conditions: Vec::new(),
            pooled: None,
            per_scene: Vec::new(),
            significance: None,
            outliers: Vec::new(),
            count_matrix: Vec::new(),
            warnings: vec!["no answers yet".into()],
        }
    } else {
        let ao = scaling::AnalysisOptions {
            replicates: opts.replicates,
            seed: opts.seed,
            // The screen above is the study's (its scope, its fence, before the outlier rule applies).
            outliers: false,
            ..Default::default()
        };
        scaling::analyse(&c, &ao, on_replicate)
    };
    analysis.outliers = outliers;
    analysis.warnings.splice(0..0, warnings);
    let mean_psnr = analysis
        .conditions
        .iter()
        .map(|k| psnr.iter().find(|(c, _)| c == k).map(|(_, v)| *v))
        .collect();
    StudyResults {
        study_id,
        options: *opts,
        rules: *rules,
        data_version,
        computed_at_ms: db::now_ms(),
        counts,
        analysis,
        outlier_hits,
        mean_psnr,
    }
}

/// Changes whenever an answer is stored, a HIT's flags change, or the quality rules change.
pub async fn data_version(db: &Db, study: &Study) -> anyhow::Result<String> {
    let (answers, last): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(MAX(t.answered_at), 0) FROM trials t JOIN hits h ON h.id = t.hit_id \
         WHERE h.study_id = $1 AND t.answer IS NOT NULL",
    )
    .bind(study.id)
    .fetch_one(db)
    .await?;
    let rules = serde_json::to_string(&study.settings.rules)?;
    Ok(format!(
        "answers={answers};last={last};flags={};rules={rules}",
        study.flags_version
    ))
}

/// The study's results under `opts`: from the cache when nothing changed since, else computed (on a
/// blocking thread) and cached. When the outlier screen flags other HITs than are stored, the flags are
/// written (and the design recounted) before caching. `on_replicate` as in [`compute`].
pub async fn results(
    db: &Db,
    study_id: i64,
    opts: &ResultsOptions,
    on_replicate: std::sync::Arc<dyn Fn() + Send + Sync>,
) -> anyhow::Result<StudyResults> {
    let study = super::study::by_id(db, study_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no study with id {study_id}"))?;
    let version = data_version(db, &study).await?;
    let key = opts.cache_key();
    if let Some(json) = cache_get(db, study_id, &key, &version).await? {
        match serde_json::from_str::<StudyResults>(&json) {
            Ok(r) => return Ok(r),
            Err(e) => {
                tracing::warn!("study {study_id}: unreadable cached results ({e}); recomputing")
            }
        }
    }
    let rows = answers(db, study_id).await?;
    let psnr = mean_psnr(db, study_id).await?;
    let o = *opts;
    let rules = study.settings.rules;
    let v = version.clone();
    let started = std::time::Instant::now();
    let stored_outliers: Vec<i64> = {
        let mut v: Vec<i64> = rows
            .iter()
            .filter(|r| r.flags().contains(Flags::OUTLIER))
            .map(|r| r.hit_id)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let mut r = tokio::task::spawn_blocking(move || {
        compute(study_id, &rows, &psnr, &o, &rules, v, &*on_replicate)
    })
    .await?;
    tracing::info!(
        "study {study_id}: results computed ({}, {} answers used) in {:.2} s",
        key,
        r.counts.answers_used,
        started.elapsed().as_secs_f64()
    );
    // Only the default view's screen (valid answers) decides the stored flags.
    if !opts.include_excluded && r.outlier_hits != stored_outliers {
        super::design::set_outliers(db, study_id, &r.outlier_hits).await?;
        let study = super::study::by_id(db, study_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no study with id {study_id}"))?;
        r.data_version = data_version(db, &study).await?;
    }
    cache_put(
        db,
        study_id,
        &key,
        &r.data_version,
        serde_json::to_string(&r)?,
    )
    .await?;
    Ok(r)
}

/// The cached JSON under `key` for study `study_id`, if it was computed for data `version`
/// (see [`data_version`]); results and power plans share this cache.
pub async fn cache_get(
    db: &Db,
    study_id: i64,
    key: &str,
    version: &str,
) -> anyhow::Result<Option<String>> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT data_version, result_json FROM results_cache WHERE study_id = $1 AND options = $2",
    )
    .bind(study_id)
    .bind(key)
    .fetch_optional(db)
    .await?;
    Ok(row.filter(|(v, _)| v == version).map(|(_, json)| json))
}

/// Stores `json` under `key` for study `study_id` and data `version`, replacing what was there.
pub async fn cache_put(
    db: &Db,
    study_id: i64,
    key: &str,
    version: &str,
    json: String,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO results_cache (study_id, options, data_version, result_json, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (study_id, options) DO UPDATE SET \
         data_version = excluded.data_version, result_json = excluded.result_json, created_at = excluded.created_at",
    )
    .bind(study_id)
    .bind(key)
    .bind(version)
    .bind(json)
    .bind(db::now_ms())
    .execute(db)
    .await?;
    Ok(())
}
