//! Study results for experimenters: the answers of a study turned into pwcmp comparisons (observer = HIT
//! or worker), scaled by the `scaling` crate into JND per condition with bootstrap CIs, pooled over
//! scenes and per scene, with the significance matrix, the observer outlier table (dist_L), answer counts
//! and the comparison-count matrix. Results are cached in the database per study and options, keyed by
//! the data version (answer count, last answer time, excluded HITs), so pages stay fast.

use serde::{Deserialize, Serialize};

use super::db::{self, Db};

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
    pub platform: String,
    pub assignment_key: String,
    pub worker_key: String,
    pub external_hit_id: String,
    /// 1 when the HIT failed an attention check.
    pub excluded: i64,
    pub scene: String,
    /// The design item's conditions (condition_a < condition_b by key).
    pub condition_a: String,
    pub condition_b: String,
    pub left_condition: String,
    pub right_condition: String,
    pub chosen_condition: String,
    pub rt_ms: i64,
    pub hit_created_at: i64,
    pub answered_at: i64,
}

impl AnswerRow {
    pub fn is_excluded(&self) -> bool {
        self.excluded != 0
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

/// Every answered pair trial of the study (excluded HITs included, flagged), oldest answer first.
pub async fn answers(db: &Db, study_id: i64) -> anyhow::Result<Vec<AnswerRow>> {
    Ok(sqlx::query_as(
        "SELECT t.id AS trial_id, h.id AS hit_id, h.platform, h.assignment_key, h.worker_key, h.external_hit_id, \
           h.excluded, s.key AS scene, ca.key AS condition_a, cb.key AS condition_b, cl.key AS left_condition, \
           cr.key AS right_condition, cc.key AS chosen_condition, COALESCE(t.rt_ms, 0) AS rt_ms, \
           h.created_at AS hit_created_at, COALESCE(t.answered_at, 0) AS answered_at \
         FROM trials t JOIN hits h ON h.id = t.hit_id \
         JOIN design_items d ON d.id = t.design_item_id \
         JOIN scenes s ON s.id = d.scene_id \
         JOIN conditions ca ON ca.id = d.condition_a JOIN conditions cb ON cb.id = d.condition_b \
         JOIN images il ON il.id = t.left_image_id JOIN conditions cl ON cl.id = il.condition_id \
         JOIN images ir ON ir.id = t.right_image_id JOIN conditions cr ON cr.id = ir.condition_id \
         JOIN conditions cc ON cc.id = t.chosen_condition_id \
         WHERE h.study_id = $1 AND t.kind = 'pair' AND t.answer IS NOT NULL \
         ORDER BY t.answered_at, t.id",
    )
    .bind(study_id)
    .fetch_all(db)
    .await?)
}

/// (answered_at ms, excluded) of every answered pair trial, oldest first: the answers-over-time plot
/// without loading whole answer rows.
pub async fn answer_times(db: &Db, study_id: i64) -> anyhow::Result<Vec<(i64, bool)>> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT COALESCE(t.answered_at, 0), h.excluded FROM trials t JOIN hits h ON h.id = t.hit_id \
         WHERE h.study_id = $1 AND t.kind = 'pair' AND t.answer IS NOT NULL ORDER BY t.answered_at",
    )
    .bind(study_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(t, e)| (t, e != 0)).collect())
}

/// The answers that enter the scaling under `opts`.
pub fn used<'a>(
    rows: &'a [AnswerRow],
    opts: &ResultsOptions,
) -> impl Iterator<Item = &'a AnswerRow> {
    let include = opts.include_excluded;
    rows.iter().filter(move |r| include || !r.is_excluded())
}

/// The comparisons (pwcmp's model of the data) of the answers used under `opts`.
pub fn comparisons(rows: &[AnswerRow], opts: &ResultsOptions) -> scaling::Comparisons {
    scaling::Comparisons::from_answers(
        used(rows, opts)
            .map(|r| scaling::Answer {
                observer: r.observer(opts.observer).to_string(),
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

/// JND scores of one set of comparisons (pooled or one scene).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JndSet {
    pub conditions: Vec<String>,
    pub jnd: Vec<f64>,
    /// 95% percentile bootstrap CIs; absent with fewer than 2 observers or 0 replicates.
    pub ci_low: Option<Vec<f64>>,
    pub ci_high: Option<Vec<f64>>,
    pub replicates_used: usize,
    pub observers: usize,
    pub answers: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneResult {
    pub scene: String,
    pub result: Option<JndSet>,
    pub warnings: Vec<String>,
}

/// Pairwise significance of the pooled scores (z-test on the bootstrap covariance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignificanceTable {
    /// Two-tailed p-values, in the order of `JndSet::conditions`.
    pub p_value: Vec<Vec<f64>>,
    pub significant: Vec<Vec<bool>>,
    pub alpha: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutlierRow {
    pub observer: String,
    pub log_likelihood: f64,
    /// (Q1 - L) / IQR when L < Q1 (absent when not finite: all observers fit alike).
    pub dist_l: Option<f64>,
    pub outlier: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Answered pair trials of HITs that are not excluded.
    pub answers_valid: usize,
    /// Answered pair trials of excluded HITs.
    pub answers_excluded: usize,
    pub hits: usize,
    pub hits_excluded: usize,
    pub workers: usize,
    /// Answers and observers that entered the scaling.
    pub answers_used: usize,
    pub observers_used: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyResults {
    pub study_id: i64,
    pub options: ResultsOptions,
    /// What the cache is keyed by: answer count, last answer time, excluded HITs.
    pub data_version: String,
    pub computed_at_ms: i64,
    pub counts: Counts,
    /// Pooled over scenes.
    pub pooled: Option<JndSet>,
    pub per_scene: Vec<SceneResult>,
    pub significance: Option<SignificanceTable>,
    pub outliers: Vec<OutlierRow>,
    /// Pooled comparison counts: row i, column j = times i was chosen over j (order of `pooled`).
    pub count_matrix: Vec<Vec<f64>>,
    /// Mean PSNR per condition (order of `pooled`) where the bundle has PSNR for it.
    pub mean_psnr: Vec<Option<f64>>,
    pub warnings: Vec<String>,
}

/// Scales one set of comparisons; the bootstrap when there are >= 2 observers and replicates asked for.
fn jnd_set(
    c: &scaling::Comparisons,
    opts: &ResultsOptions,
    on_replicate: &(dyn Fn() + Sync),
    warnings: &mut Vec<String>,
) -> (Option<JndSet>, Option<scaling::Bootstrap>) {
    if c.answers.is_empty() {
        warnings.push("no answers yet".into());
        return (None, None);
    }
    let oc = c.observer_counts();
    let so = scaling::ScaleOptions::default();
    let mut set = JndSet {
        conditions: c.conditions.clone(),
        jnd: Vec::new(),
        ci_low: None,
        ci_high: None,
        replicates_used: 0,
        observers: oc.observers.len(),
        answers: c.answers.len(),
    };
    if oc.observers.len() >= 2 && opts.replicates >= 2 {
        let bo = scaling::BootstrapOptions {
            replicates: opts.replicates,
            alpha: 0.05,
            seed: opts.seed,
        };
        match scaling::bootstrap(&oc.matrices, &so, &bo, on_replicate) {
            Ok(b) => {
                set.jnd = b.fit.jnd.clone();
                set.ci_low = Some(b.ci_low.clone());
                set.ci_high = Some(b.ci_high.clone());
                set.replicates_used = b.replicates_used;
                warnings.extend(b.warnings.iter().cloned());
                return (Some(set), Some(b));
            }
            Err(e) => warnings.push(format!("no confidence intervals: {e}")),
        }
    } else if opts.replicates >= 2 {
        warnings.push(format!(
            "no confidence intervals: the bootstrap needs at least 2 observers, there are {}",
            oc.observers.len()
        ));
    }
    match scaling::scale(&oc.total(), &so) {
        Ok(s) => {
            warnings.extend(s.warnings.iter().cloned());
            set.jnd = s.jnd;
            (Some(set), None)
        }
        Err(e) => {
            warnings.push(format!("no scores: {e}"));
            (None, None)
        }
    }
}

/// Computes the results from the answers (CPU-bound: run it off the async executor).
/// `on_replicate` is called once per bootstrap replicate (pooled and every scene), for progress bars.
pub fn compute(
    study_id: i64,
    rows: &[AnswerRow],
    psnr: &[(String, f64)],
    opts: &ResultsOptions,
    data_version: String,
    on_replicate: &(dyn Fn() + Sync),
) -> StudyResults {
    let c = comparisons(rows, opts);
    let mut counts = Counts {
        answers_valid: rows.iter().filter(|r| !r.is_excluded()).count(),
        answers_excluded: rows.iter().filter(|r| r.is_excluded()).count(),
        answers_used: c.answers.len(),
        observers_used: c.observers.len(),
        ..Default::default()
    };
    let hits: std::collections::BTreeMap<i64, bool> =
        rows.iter().map(|r| (r.hit_id, r.is_excluded())).collect();
    counts.hits = hits.len();
    counts.hits_excluded = hits.values().filter(|&&e| e).count();
    counts.workers = rows
        .iter()
        .map(|r| r.worker_key.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();

    let mut warnings = Vec::new();
    let (pooled, boot) = jnd_set(&c, opts, on_replicate, &mut warnings);
    let significance = boot.as_ref().map(|b| {
        let s = scaling::significance(&b.fit.jnd, &b.covariance, 0.05);
        SignificanceTable {
            p_value: s.p_value,
            significant: s.significant,
            alpha: s.alpha,
        }
    });
    let oc = c.observer_counts();
    let mut outliers = Vec::new();
    if pooled.is_some() && oc.observers.len() >= 3 {
        match scaling::outliers(
            &oc.observers,
            &oc.matrices,
            &scaling::ScaleOptions::default(),
        ) {
            Ok(v) => {
                outliers = v
                    .into_iter()
                    .map(|o| OutlierRow {
                        observer: o.observer,
                        log_likelihood: o.log_likelihood,
                        dist_l: o.dist_l.is_finite().then_some(o.dist_l),
                        outlier: o.outlier,
                    })
                    .collect()
            }
            Err(e) => warnings.push(format!("no outlier analysis: {e}")),
        }
    }
    let count_matrix = if c.answers.is_empty() {
        Vec::new()
    } else {
        let m = oc.total();
        (0..m.len())
            .map(|i| (0..m.len()).map(|j| m.get(i, j)).collect())
            .collect()
    };
    let per_scene = c
        .scenes
        .iter()
        .map(|scene| {
            let mut w = Vec::new();
            let (result, _) = jnd_set(&c.scene(scene), opts, on_replicate, &mut w);
            SceneResult {
                scene: scene.clone(),
                result,
                warnings: w,
            }
        })
        .collect();
    let mean_psnr = c
        .conditions
        .iter()
        .map(|k| psnr.iter().find(|(c, _)| c == k).map(|(_, v)| *v))
        .collect();
    StudyResults {
        study_id,
        options: *opts,
        data_version,
        computed_at_ms: db::now_ms(),
        counts,
        pooled,
        per_scene,
        significance,
        outliers,
        count_matrix,
        mean_psnr,
        warnings,
    }
}

/// Changes whenever an answer is stored or a HIT is excluded.
pub async fn data_version(db: &Db, study_id: i64) -> anyhow::Result<String> {
    let (answers, last): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(MAX(t.answered_at), 0) FROM trials t JOIN hits h ON h.id = t.hit_id \
         WHERE h.study_id = $1 AND t.answer IS NOT NULL",
    )
    .bind(study_id)
    .fetch_one(db)
    .await?;
    let (excluded,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM hits WHERE study_id = $1 AND excluded = 1")
            .bind(study_id)
            .fetch_one(db)
            .await?;
    Ok(format!("answers={answers};last={last};excluded={excluded}"))
}

/// The study's results under `opts`: from the cache when no answer came in since, else computed (on a
/// blocking thread) and cached. `on_replicate` as in [`compute`].
pub async fn results(
    db: &Db,
    study_id: i64,
    opts: &ResultsOptions,
    on_replicate: std::sync::Arc<dyn Fn() + Send + Sync>,
) -> anyhow::Result<StudyResults> {
    let version = data_version(db, study_id).await?;
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
    let v = version.clone();
    let started = std::time::Instant::now();
    let r =
        tokio::task::spawn_blocking(move || compute(study_id, &rows, &psnr, &o, v, &*on_replicate))
            .await?;
    tracing::info!(
        "study {study_id}: results computed ({}, {} answers used) in {:.2} s",
        key,
        r.counts.answers_used,
        started.elapsed().as_secs_f64()
    );
    cache_put(db, study_id, &key, &version, serde_json::to_string(&r)?).await?;
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
