//! Studies: settings, the draft -> live -> paused -> (complete | closed) life cycle, and progress queries.
//!
//! A live study becomes **complete** by itself when its design is full (every (pair, scene) item has
//! `repetitions` valid answers, see `design`); complete and closed studies take no new HITs and no answers.

use anyhow::bail;

use super::assign::{HitStatus, Platform};
use super::db::{self, Db};
use super::fault::{AppError, AppResult};
use super::quality::{Flags, QcScope, Rules};

pub const DEFAULT_QUESTION: &str = "Which image is closer to the reference?";

/// Per-study settings an experimenter may change.
#[derive(Debug, Clone, PartialEq)]
pub struct StudySettings {
    pub question: String,
    pub trials_per_hit: i64,
    pub checks_per_hit: i64,
    pub repetitions: i64,
    pub max_hits_per_worker: i64,
    /// A HIT with no answer for this long is abandoned: its answers are left out and its items go back to
    /// the pool.
    pub hit_timeout_s: i64,
    pub approve_excluded: bool,
    pub prolific_completion_url: String,
    pub rules: Rules,
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
            rules: Rules::default(),
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
        self.rules.validate()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StudyState {
    Draft,
    Live,
    Paused,
    /// The design filled (terminal unless an experimenter reopens it after excluding answers).
    Complete,
    Closed,
}

/// `closed_reason` of a study whose design filled (stored as state `closed`, see the migration).
const COMPLETE_REASON: &str = "complete";

impl StudyState {
    pub fn as_str(self) -> &'static str {
        match self {
            StudyState::Draft => "draft",
            StudyState::Live => "live",
            StudyState::Paused => "paused",
            StudyState::Complete => "complete",
            StudyState::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> anyhow::Result<StudyState> {
        Ok(match s {
            "draft" => StudyState::Draft,
            "live" => StudyState::Live,
            "paused" => StudyState::Paused,
            "complete" => StudyState::Complete,
            "closed" => StudyState::Closed,
            other => bail!(
                "state: unknown \"{other}\" (expected draft, live, paused, complete or closed)"
            ),
        })
    }

    /// The stored (state, closed_reason).
    fn to_row(self) -> (&'static str, &'static str) {
        match self {
            StudyState::Complete => ("closed", COMPLETE_REASON),
            s => (s.as_str(), ""),
        }
    }

    fn from_row(state: &str, reason: &str) -> StudyState {
        match (state, reason) {
            ("closed", COMPLETE_REASON) => StudyState::Complete,
            (s, _) => StudyState::parse(s).unwrap_or(StudyState::Closed),
        }
    }

    /// Transitions an experimenter may make: draft -> live; live <-> paused; live/paused/complete -> closed
    /// (final); complete -> live (reopen, after answers were excluded). Live -> complete happens by itself.
    pub fn can_become(self, to: StudyState) -> bool {
        use StudyState::*;
        matches!(
            (self, to),
            (Draft, Live)
                | (Live, Paused)
                | (Paused, Live)
                | (Live, Closed)
                | (Paused, Closed)
                | (Complete, Closed)
                | (Complete, Live)
        )
    }

    /// Whether participants may see the study's texts and images.
    pub fn is_public(self) -> bool {
        matches!(self, StudyState::Live | StudyState::Paused)
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct StudyRow {
    id: i64,
    slug: String,
    name: String,
    description: String,
    question: String,
    state: String,
    closed_reason: String,
    trials_per_hit: i64,
    checks_per_hit: i64,
    repetitions: i64,
    max_hits_per_worker: i64,
    hit_timeout_s: i64,
    approve_excluded: i64,
    prolific_completion_url: String,
    synthetic: i64,
    created_at: i64,
    valid_answers: i64,
    flags_version: i64,
    design_size: i64,
    min_response_ms: i64,
    max_fast_share: f64,
    straight_line_alpha: f64,
    outlier_fence: f64,
    qc_scope: String,
    exclude_flags: i64,
}

#[derive(Debug, Clone)]
pub struct Study {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub state: StudyState,
    pub settings: StudySettings,
    pub synthetic: bool,
    pub created_at: i64,
    /// Pair answers of valid HITs (completed, not excluded).
    pub valid_answers: i64,
    /// Bumped whenever a HIT's flags change (part of the results' data version).
    pub flags_version: i64,
    /// (pair, scene) items of the full design.
    pub design_size: i64,
}

impl From<StudyRow> for Study {
    fn from(r: StudyRow) -> Study {
        Study {
            id: r.id,
            slug: r.slug,
            name: r.name,
            description: r.description,
            state: StudyState::from_row(&r.state, &r.closed_reason),
            synthetic: r.synthetic != 0,
            created_at: r.created_at,
            valid_answers: r.valid_answers,
            flags_version: r.flags_version,
            design_size: r.design_size,
            settings: StudySettings {
                question: r.question,
                trials_per_hit: r.trials_per_hit,
                checks_per_hit: r.checks_per_hit,
                repetitions: r.repetitions,
                max_hits_per_worker: r.max_hits_per_worker,
                hit_timeout_s: r.hit_timeout_s,
                approve_excluded: r.approve_excluded != 0,
                prolific_completion_url: r.prolific_completion_url,
                rules: Rules {
                    min_response_ms: r.min_response_ms,
                    max_fast_share: r.max_fast_share,
                    straight_line_alpha: r.straight_line_alpha,
                    outlier_fence: r.outlier_fence,
                    scope: r.qc_scope.parse().unwrap_or_default(),
                    exclude: Flags::from_bits_truncate(r.exclude_flags),
                },
            },
        }
    }
}

impl Study {
    /// Valid pair answers the full design needs.
    pub fn target_answers(&self) -> i64 {
        self.design_size * self.settings.repetitions
    }

    /// Valid pair answers still missing.
    pub fn remaining_answers(&self) -> i64 {
        (self.target_answers() - self.valid_answers).max(0)
    }

    /// HITs of `trials_per_hit` pairs still needed to fill the design (if every one is valid).
    pub fn remaining_hits(&self) -> i64 {
        let t = self.settings.trials_per_hit.max(1);
        (self.remaining_answers() + t - 1) / t
    }

    /// Inactivity after which a HIT is abandoned, in ms.
    pub fn timeout_ms(&self) -> i64 {
        self.settings.hit_timeout_s * 1000
    }
}

const STUDY_COLS: &str = "id, slug, name, description, question, state, closed_reason, trials_per_hit, \
     checks_per_hit, repetitions, max_hits_per_worker, hit_timeout_s, approve_excluded, prolific_completion_url, \
     synthetic, created_at, valid_answers, flags_version, design_size, min_response_ms, max_fast_share, \
     straight_line_alpha, outlier_fence, qc_scope, exclude_flags";

pub async fn by_slug<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    slug: &str,
) -> anyhow::Result<Option<Study>> {
    let row: Option<StudyRow> =
        sqlx::query_as(&format!("SELECT {STUDY_COLS} FROM studies WHERE slug = $1"))
            .bind(slug)
            .fetch_optional(db)
            .await?;
    Ok(row.map(Study::from))
}

pub async fn by_id<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    id: i64,
) -> anyhow::Result<Option<Study>> {
    let row: Option<StudyRow> =
        sqlx::query_as(&format!("SELECT {STUDY_COLS} FROM studies WHERE id = $1"))
            .bind(id)
            .fetch_optional(db)
            .await?;
    Ok(row.map(Study::from))
}

pub async fn list(db: &Db) -> anyhow::Result<Vec<Study>> {
    let rows: Vec<StudyRow> =
        sqlx::query_as(&format!("SELECT {STUDY_COLS} FROM studies ORDER BY id"))
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().map(Study::from).collect())
}

/// Writes the state inside a transaction that holds the write lock.
pub async fn write_state(tx: &mut db::Tx<'_>, id: i64, to: StudyState) -> sqlx::Result<()> {
    let (state, reason) = to.to_row();
    sqlx::query("UPDATE studies SET state = $1, closed_reason = $2 WHERE id = $3")
        .bind(state)
        .bind(reason)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Changes the state, refusing transitions the life cycle does not allow. Going live prepares the preview
/// example; pausing and resuming do not count against participants' inactivity timeout; reopening a
/// complete study is refused while its design is still full.
pub async fn set_state(db: &Db, id: i64, to: StudyState) -> AppResult<()> {
    let mut tx = db::begin_write(db).await?;
    let study = by_id(&mut *tx, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no study with id {id}")))?;
    let from = study.state;
    if from == to {
        return Ok(());
    }
    if !from.can_become(to) {
        return Err(AppError::BadRequest(format!(
            "state: a {} study cannot become {}",
            from.as_str(),
            to.as_str()
        )));
    }
    if from == StudyState::Complete && study.remaining_answers() == 0 {
        return Err(AppError::Conflict(format!(
            "state: the design is still full ({} of {} valid answers): exclude answers or raise the repetitions before reopening",
            study.valid_answers,
            study.target_answers()
        )));
    }
    if to == StudyState::Live {
        super::media::ensure_example(&mut tx, &study).await?;
    }
    if from == StudyState::Paused && to == StudyState::Live {
        // The pause is not the participants' inactivity.
        sqlx::query(
            "UPDATE hits SET last_seen_at = $1 WHERE study_id = $2 AND status = 'active' AND abandoned_at IS NULL",
        )
        .bind(db::now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    write_state(&mut tx, id, to).await?;
    tx.commit().await?;
    Ok(())
}

/// Changes the settings; the quality rules and the repetitions take effect on every HIT at once (flags and
/// design counters are recomputed, `design::requalify`).
pub async fn update_settings(db: &Db, id: i64, s: &StudySettings) -> AppResult<()> {
    s.validate().map_err(AppError::BadRequest)?;
    let mut tx = db::begin_write(db).await?;
    let study = by_id(&mut *tx, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no study with id {id}")))?;
    let scope: &'static str = s.rules.scope.into();
    sqlx::query(
        "UPDATE studies SET question = $1, trials_per_hit = $2, checks_per_hit = $3, repetitions = $4, \
         max_hits_per_worker = $5, hit_timeout_s = $6, approve_excluded = $7, prolific_completion_url = $8, \
         min_response_ms = $9, max_fast_share = $10, straight_line_alpha = $11, outlier_fence = $12, \
         qc_scope = $13, exclude_flags = $14 WHERE id = $15",
    )
    .bind(&s.question)
    .bind(s.trials_per_hit)
    .bind(s.checks_per_hit)
    .bind(s.repetitions)
    .bind(s.max_hits_per_worker)
    .bind(s.hit_timeout_s)
    .bind(s.approve_excluded as i64)
    .bind(&s.prolific_completion_url)
    .bind(s.rules.min_response_ms)
    .bind(s.rules.max_fast_share)
    .bind(s.rules.straight_line_alpha)
    .bind(s.rules.outlier_fence)
    .bind(scope)
    .bind(s.rules.exclude.bits())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if study.settings.rules != s.rules || study.settings.repetitions != s.repetitions {
        super::design::requalify(&mut tx, id).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Answers per design item (pair x scene). `valid` counts answers of valid HITs (completed, not excluded):
/// exactly the answers the results use by default.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ItemProgress {
    pub design_item_id: i64,
    pub scene: String,
    pub condition_a: String,
    pub condition_b: String,
    pub valid: i64,
    pub in_progress: i64,
    /// Answers of completed HITs that the quality rules exclude.
    pub excluded: i64,
    /// Answers of HITs that timed out.
    pub abandoned: i64,
    /// What the assignment counts against `repetitions`: valid answers plus trials held by HITs in flight.
    pub load: i64,
}

pub async fn item_progress(db: &Db, study_id: i64) -> anyhow::Result<Vec<ItemProgress>> {
    Ok(sqlx::query_as(
        "SELECT d.id AS design_item_id, s.key AS scene, ca.key AS condition_a, cb.key AS condition_b, \
           COALESCE(SUM(CASE WHEN h.status = 'completed' AND h.excluded = 0 THEN 1 ELSE 0 END), 0) AS valid, \
           COALESCE(SUM(CASE WHEN h.status = 'active' AND h.abandoned_at IS NULL AND h.excluded = 0 THEN 1 ELSE 0 END), 0) AS in_progress, \
           COALESCE(SUM(CASE WHEN h.status = 'completed' AND h.excluded = 1 THEN 1 ELSE 0 END), 0) AS excluded, \
           COALESCE(SUM(CASE WHEN h.abandoned_at IS NOT NULL AND t.answer IS NOT NULL THEN 1 ELSE 0 END), 0) AS abandoned, \
           d.load AS load \
         FROM design_items d \
         JOIN scenes s ON s.id = d.scene_id \
         JOIN conditions ca ON ca.id = d.condition_a \
         JOIN conditions cb ON cb.id = d.condition_b \
         LEFT JOIN trials t ON t.design_item_id = d.id \
         LEFT JOIN hits h ON h.id = t.hit_id \
         WHERE d.study_id = $1 \
         GROUP BY d.id, s.key, ca.key, cb.key, s.position, ca.position, cb.position, d.load \
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
    pub abandoned: i64,
    pub workers: i64,
}

pub async fn hit_counts(db: &Db, study_id: i64) -> anyhow::Result<HitCounts> {
    Ok(sqlx::query_as(
        "SELECT COUNT(*) AS started, \
           COALESCE(SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), 0) AS completed, \
           COALESCE(SUM(CASE WHEN status = 'completed' AND excluded = 1 THEN 1 ELSE 0 END), 0) AS excluded, \
           COALESCE(SUM(CASE WHEN abandoned_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS abandoned, \
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
    #[sqlx(try_from = "String")]
    pub platform: Platform,
    pub assignment_key: String,
    pub worker_key: String,
    #[sqlx(try_from = "String")]
    pub status: HitStatus,
    pub abandoned_at: Option<i64>,
    pub excluded: i64,
    pub flags: i64,
    pub answered: i64,
    pub total: i64,
}

impl HitRow {
    pub fn flags(&self) -> Flags {
        Flags::from_bits_truncate(self.flags)
    }
    /// active, completed or abandoned.
    pub fn status_label(&self) -> &'static str {
        self.status.label(self.abandoned_at.is_some())
    }
}

pub async fn hits(db: &Db, study_id: i64) -> anyhow::Result<Vec<HitRow>> {
    Ok(sqlx::query_as(
        "SELECT id, platform, assignment_key, worker_key, status, abandoned_at, excluded, flags, answered, total \
         FROM hits WHERE study_id = $1 ORDER BY id DESC",
    )
    .bind(study_id)
    .fetch_all(db)
    .await?)
}

/// Blocks a worker: every HIT of theirs is flagged BLOCKED (excluded in every view, their active HITs take
/// no more answers) and the design counters follow.
pub async fn block_worker(db: &Db, study_id: i64, worker_key: &str, reason: &str) -> AppResult<()> {
    let mut tx = db::begin_write(db).await?;
    sqlx::query(
        "INSERT INTO blocked_workers (study_id, worker_key, reason, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (study_id, worker_key) DO NOTHING",
    )
    .bind(study_id)
    .bind(worker_key)
    .bind(reason)
    .bind(db::now_ms())
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE hits SET flags = flags | $1 WHERE study_id = $2 AND worker_key = $3")
        .bind(Flags::BLOCKED.bits())
        .bind(study_id)
        .bind(worker_key)
        .execute(&mut *tx)
        .await?;
    super::design::requalify(&mut tx, study_id).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn unblock_worker(db: &Db, study_id: i64, worker_key: &str) -> AppResult<()> {
    let mut tx = db::begin_write(db).await?;
    sqlx::query("DELETE FROM blocked_workers WHERE study_id = $1 AND worker_key = $2")
        .bind(study_id)
        .bind(worker_key)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE hits SET flags = flags & $1 WHERE study_id = $2 AND worker_key = $3")
        .bind(!Flags::BLOCKED.bits())
        .bind(study_id)
        .bind(worker_key)
        .execute(&mut *tx)
        .await?;
    super::design::requalify(&mut tx, study_id).await?;
    tx.commit().await?;
    Ok(())
}

impl QcScope {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_is_stored_as_closed_with_a_reason_and_read_back() {
        for s in [
            StudyState::Draft,
            StudyState::Live,
            StudyState::Paused,
            StudyState::Complete,
            StudyState::Closed,
        ] {
            let (state, reason) = s.to_row();
            assert!(["draft", "live", "paused", "closed"].contains(&state));
            assert_eq!(StudyState::from_row(state, reason), s);
            assert_eq!(StudyState::parse(s.as_str()).unwrap(), s);
        }
    }

    #[test]
    fn closed_is_final_and_complete_may_only_reopen_or_close() {
        use StudyState::*;
        for to in [Draft, Live, Paused, Complete] {
            assert!(!Closed.can_become(to));
        }
        assert!(Complete.can_become(Live) && Complete.can_become(Closed));
        assert!(!Complete.can_become(Paused) && !Draft.can_become(Complete));
    }
}
