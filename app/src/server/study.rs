//! Studies: settings, the draft -> live -> paused -> closed life cycle, and progress queries.

use anyhow::{anyhow, bail};

use super::db::{self, Db};

pub const DEFAULT_QUESTION: &str = "Which image is closer to the reference?";

/// Per-study settings an experimenter may change.
#[derive(Debug, Clone, PartialEq)]
pub struct StudySettings {
    pub question: String,
    pub trials_per_hit: i64,
    pub checks_per_hit: i64,
    pub repetitions: i64,
    pub max_hits_per_worker: i64,
    pub hit_timeout_s: i64,
    pub approve_excluded: bool,
    pub prolific_completion_url: String,
}

impl Default for StudySettings {
    fn default() -> Self {
        StudySettings {
            question: DEFAULT_QUESTION.into(),
            trials_per_hit: 9,
            checks_per_hit: 1,
            repetitions: 1,
            max_hits_per_worker: 3,
            hit_timeout_s: 1800,
            approve_excluded: false,
            prolific_completion_url: String::new(),
        }
    }
}

impl StudySettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=200).contains(&self.trials_per_hit) {
            return Err(format!(
                "trials_per_hit: expected 1..=200, found {}",
                self.trials_per_hit
            ));
        }
        if !(0..=2).contains(&self.checks_per_hit) {
            return Err(format!(
                "checks_per_hit: expected 0, 1 or 2, found {}",
                self.checks_per_hit
            ));
        }
        if !(1..=1000).contains(&self.repetitions) {
            return Err(format!(
                "repetitions: expected 1..=1000, found {}",
                self.repetitions
            ));
        }
        if !(1..=10000).contains(&self.max_hits_per_worker) {
            return Err(format!(
                "max_hits_per_worker: expected 1..=10000, found {}",
                self.max_hits_per_worker
            ));
        }
        if !(10..=86400 * 7).contains(&self.hit_timeout_s) {
            return Err(format!(
                "hit_timeout_s: expected 10..=604800, found {}",
                self.hit_timeout_s
            ));
        }
        if self.question.trim().is_empty() {
            return Err("question: must not be empty".into());
        }
        let u = &self.prolific_completion_url;
        if !(u.is_empty() || u.starts_with("https://") || u.starts_with("http://")) {
            return Err(format!(
                "prolific_completion_url: expected an http(s) URL, found \"{u}\""
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StudyState {
    Draft,
    Live,
    Paused,
    Closed,
}

impl StudyState {
    pub fn as_str(self) -> &'static str {
        match self {
            StudyState::Draft => "draft",
            StudyState::Live => "live",
            StudyState::Paused => "paused",
            StudyState::Closed => "closed",
        }
    }
    pub fn parse(s: &str) -> anyhow::Result<StudyState> {
        Ok(match s {
            "draft" => StudyState::Draft,
            "live" => StudyState::Live,
            "paused" => StudyState::Paused,
            "closed" => StudyState::Closed,
            other => {
                bail!("unknown study state \"{other}\" (expected draft, live, paused or closed)")
            }
        })
    }
    /// Allowed transitions: draft -> live; live <-> paused; live/paused -> closed. Closed is final.
    pub fn can_become(self, to: StudyState) -> bool {
        use StudyState::*;
        matches!(
            (self, to),
            (Draft, Live) | (Live, Paused) | (Paused, Live) | (Live, Closed) | (Paused, Closed)
        )
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Study {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub question: String,
    pub state: String,
    pub trials_per_hit: i64,
    pub checks_per_hit: i64,
    pub repetitions: i64,
    pub max_hits_per_worker: i64,
    pub hit_timeout_s: i64,
    pub approve_excluded: i64,
    pub prolific_completion_url: String,
    pub synthetic: i64,
    pub created_at: i64,
}

impl Study {
    pub fn state(&self) -> StudyState {
        StudyState::parse(&self.state).unwrap_or(StudyState::Closed)
    }
    pub fn settings(&self) -> StudySettings {
        StudySettings {
            question: self.question.clone(),
            trials_per_hit: self.trials_per_hit,
            checks_per_hit: self.checks_per_hit,
            repetitions: self.repetitions,
            max_hits_per_worker: self.max_hits_per_worker,
            hit_timeout_s: self.hit_timeout_s,
            approve_excluded: self.approve_excluded != 0,
            prolific_completion_url: self.prolific_completion_url.clone(),
        }
    }
}

const STUDY_COLS: &str = "id, slug, name, description, question, state, trials_per_hit, checks_per_hit, repetitions, \
     max_hits_per_worker, hit_timeout_s, approve_excluded, prolific_completion_url, synthetic, created_at";

pub async fn by_slug(db: &Db, slug: &str) -> anyhow::Result<Option<Study>> {
    Ok(
        sqlx::query_as(&format!("SELECT {STUDY_COLS} FROM studies WHERE slug = $1"))
            .bind(slug)
            .fetch_optional(db)
            .await?,
    )
}

pub async fn by_id(db: &Db, id: i64) -> anyhow::Result<Option<Study>> {
    Ok(
        sqlx::query_as(&format!("SELECT {STUDY_COLS} FROM studies WHERE id = $1"))
            .bind(id)
            .fetch_optional(db)
            .await?,
    )
}

pub async fn list(db: &Db) -> anyhow::Result<Vec<Study>> {
    Ok(
        sqlx::query_as(&format!("SELECT {STUDY_COLS} FROM studies ORDER BY id"))
            .fetch_all(db)
            .await?,
    )
}

/// Changes the state, refusing transitions the life cycle does not allow.
pub async fn set_state(db: &Db, id: i64, to: StudyState) -> anyhow::Result<()> {
    let study = by_id(db, id)
        .await?
        .ok_or_else(|| anyhow!("no study with id {id}"))?;
    let from = study.state();
    if from != to && !from.can_become(to) {
        bail!("a {} study cannot become {}", from.as_str(), to.as_str());
    }
    sqlx::query("UPDATE studies SET state = $1 WHERE id = $2")
        .bind(to.as_str())
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn update_settings(db: &Db, id: i64, s: &StudySettings) -> anyhow::Result<()> {
    s.validate().map_err(|e| anyhow!(e))?;
    sqlx::query(
        "UPDATE studies SET question = $1, trials_per_hit = $2, checks_per_hit = $3, repetitions = $4, \
         max_hits_per_worker = $5, hit_timeout_s = $6, approve_excluded = $7, prolific_completion_url = $8 WHERE id = $9",
    )
    .bind(&s.question)
    .bind(s.trials_per_hit)
    .bind(s.checks_per_hit)
    .bind(s.repetitions)
    .bind(s.max_hits_per_worker)
    .bind(s.hit_timeout_s)
    .bind(s.approve_excluded as i64)
    .bind(&s.prolific_completion_url)
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

/// Answers per design item (pair x scene): `valid` counts answers in completed, non-excluded HITs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ItemProgress {
    pub design_item_id: i64,
    pub scene: String,
    pub condition_a: String,
    pub condition_b: String,
    pub valid: i64,
    pub excluded: i64,
    pub in_progress: i64,
}

pub async fn item_progress(db: &Db, study_id: i64) -> anyhow::Result<Vec<ItemProgress>> {
    Ok(sqlx::query_as(
        "SELECT d.id AS design_item_id, s.key AS scene, ca.key AS condition_a, cb.key AS condition_b, \
           COALESCE(SUM(CASE WHEN h.status = 'completed' AND h.excluded = 0 THEN 1 ELSE 0 END), 0) AS valid, \
           COALESCE(SUM(CASE WHEN h.excluded = 1 AND t.answer IS NOT NULL THEN 1 ELSE 0 END), 0) AS excluded, \
           COALESCE(SUM(CASE WHEN h.status = 'active' AND h.excluded = 0 THEN 1 ELSE 0 END), 0) AS in_progress \
         FROM design_items d \
         JOIN scenes s ON s.id = d.scene_id \
         JOIN conditions ca ON ca.id = d.condition_a \
         JOIN conditions cb ON cb.id = d.condition_b \
         LEFT JOIN trials t ON t.design_item_id = d.id \
         LEFT JOIN hits h ON h.id = t.hit_id \
         WHERE d.study_id = $1 \
         GROUP BY d.id, s.key, ca.key, cb.key, s.position, ca.position, cb.position \
         ORDER BY s.position, ca.position, cb.position",
    )
    .bind(study_id)
    .fetch_all(db)
    .await?)
}

#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct HitCounts {
    pub started: i64,
    pub completed: i64,
    pub excluded: i64,
    pub workers: i64,
}

pub async fn hit_counts(db: &Db, study_id: i64) -> anyhow::Result<HitCounts> {
    Ok(sqlx::query_as(
        "SELECT COUNT(*) AS started, \
           COALESCE(SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), 0) AS completed, \
           CAST(COALESCE(SUM(excluded), 0) AS BIGINT) AS excluded, \
           COUNT(DISTINCT worker_key) AS workers \
         FROM hits WHERE study_id = $1",
    )
    .bind(study_id)
    .fetch_one(db)
    .await?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HitRow {
    pub id: i64,
    pub platform: String,
    pub assignment_key: String,
    pub worker_key: String,
    pub status: String,
    pub excluded: i64,
    pub exclusion_reason: String,
    pub answered: i64,
    pub total: i64,
    pub blocked: i64,
}

pub async fn hits(db: &Db, study_id: i64) -> anyhow::Result<Vec<HitRow>> {
    Ok(sqlx::query_as(
        "SELECT h.id, h.platform, h.assignment_key, h.worker_key, h.status, h.excluded, h.exclusion_reason, \
           (SELECT COUNT(*) FROM trials t WHERE t.hit_id = h.id AND t.answer IS NOT NULL) AS answered, \
           (SELECT COUNT(*) FROM trials t WHERE t.hit_id = h.id) AS total, \
           (SELECT COUNT(*) FROM blocked_workers b WHERE b.study_id = h.study_id AND b.worker_key = h.worker_key) AS blocked \
         FROM hits h WHERE h.study_id = $1 ORDER BY h.id DESC",
    )
    .bind(study_id)
    .fetch_all(db)
    .await?)
}

pub async fn block_worker(
    db: &Db,
    study_id: i64,
    worker_key: &str,
    reason: &str,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO blocked_workers (study_id, worker_key, reason, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (study_id, worker_key) DO NOTHING",
    )
    .bind(study_id)
    .bind(worker_key)
    .bind(reason)
    .bind(db::now_ms())
    .execute(db)
    .await?;
    Ok(())
}

pub async fn unblock_worker(db: &Db, study_id: i64, worker_key: &str) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM blocked_workers WHERE study_id = $1 AND worker_key = $2")
        .bind(study_id)
        .bind(worker_key)
        .execute(db)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ResultRow {
    pub hit_id: i64,
    pub platform: String,
    pub worker_key: String,
    pub excluded: i64,
    pub status: String,
    pub position: i64,
    pub kind: String,
    pub scene: String,
    pub left_condition: Option<String>,
    pub right_condition: Option<String>,
    pub answer: Option<String>,
    pub chosen_condition: Option<String>,
    pub correct_side: Option<String>,
    pub rt_ms: Option<i64>,
    pub answered_at: Option<i64>,
}

/// Every trial of the study (raw data, excluded HITs included and flagged), for the CSV export.
pub async fn results(db: &Db, study_id: i64) -> anyhow::Result<Vec<ResultRow>> {
    Ok(sqlx::query_as(
        "SELECT h.id AS hit_id, h.platform, h.worker_key, h.excluded, h.status, t.position, t.kind, s.key AS scene, \
           cl.key AS left_condition, cr.key AS right_condition, t.answer, cc.key AS chosen_condition, t.correct_side, \
           t.rt_ms, t.answered_at \
         FROM trials t JOIN hits h ON h.id = t.hit_id \
         JOIN images il ON il.id = t.left_image_id JOIN images ir ON ir.id = t.right_image_id \
         JOIN scenes s ON s.id = il.scene_id \
         LEFT JOIN conditions cl ON cl.id = il.condition_id \
         LEFT JOIN conditions cr ON cr.id = ir.condition_id \
         LEFT JOIN conditions cc ON cc.id = t.chosen_condition_id \
         WHERE h.study_id = $1 ORDER BY h.id, t.position",
    )
    .bind(study_id)
    .fetch_all(db)
    .await?)
}
