//! Participants and HITs: who is asking (MTurk / Prolific / direct / preview), what they may see, and
//! starting a HIT from the full design.
//!
//! Everything that limits who gets a HIT (study live, worker not blocked, `max_hits_per_worker`, never the
//! same (pair, scene) twice per worker, no item beyond its `repetitions`) is checked inside the same write
//! transaction that creates the HIT, so concurrent starts cannot slip past a limit. Trials come from
//! [`design::plan`]; the image URLs from [`media`].

use std::collections::HashMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::db::{self, Db, Tx};
use super::design::{self, CheckItem, ImageIndex, PlannedTrial};
use super::fault::{AppError, AppResult};
use super::media::{self, NewToken, Slot};
use super::study::{self, Study, StudyState};
use crate::api::{Completion, Entry, EntryParams, HitView, ImgView, MTURK_PREVIEW, TrialView};

/// Where a participant comes from (`hits.platform`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum Platform {
    Mturk,
    Prolific,
    Direct,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl TryFrom<String> for Platform {
    type Error = strum::ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A HIT's stored state (`hits.status`). An abandoned HIT is an active one with `abandoned_at` set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum HitStatus {
    /// Being answered (or abandoned).
    Active,
    /// Every trial answered.
    Completed,
}

impl HitStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// What the admin pages and the exports show: `active`, `completed` or `abandoned`.
    pub fn label(self, abandoned: bool) -> &'static str {
        if abandoned { "abandoned" } else { self.into() }
    }
}

impl TryFrom<String> for HitStatus {
    type Error = strum::ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// Who is taking part, derived from the entry parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Preview,
    /// An MTurk or Prolific participant: the platform's ids.
    Platform {
        platform: Platform,
        assignment_key: String,
        worker_key: String,
        external_hit_id: String,
        turk_submit_to: String,
    },
    /// A direct link; `pid` is the participant id the server issued earlier (a reload), if any.
    Direct {
        pid: Option<String>,
    },
}

fn clean(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Platform ids: 1-128 characters of [A-Za-z0-9-_.:], starting with a letter or digit (so an id can never
/// start a spreadsheet formula in an export).
fn check_id(name: &str, v: &str) -> AppResult<()> {
    let ok = v.len() <= 128
        && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(AppError::BadRequest(format!(
            "{name}: \"{}\" is not a valid id (1-128 letters, digits, '-', '_', '.', ':', starting with a letter or digit)",
            v.chars().take(140).collect::<String>()
        )))
    }
}

/// MTurk only ever sends its own hosts; loopback is accepted so the flow can be tested end to end.
pub fn valid_turk_submit_to(url: &str) -> bool {
    let u = url.trim_end_matches('/');
    u == "https://www.mturk.com"
        || u == "https://workersandbox.mturk.com"
        || ["http://127.0.0.1:", "http://localhost:"].iter().any(|p| {
            u.strip_prefix(p)
                .is_some_and(|port| !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()))
        })
}

fn missing(what: &str) -> AppError {
    AppError::BadRequest(format!("{what}: missing"))
}

pub fn identify(p: &EntryParams) -> AppResult<Identity> {
    if let Some(a) = clean(&p.assignment_id) {
        if a == MTURK_PREVIEW {
            return Ok(Identity::Preview);
        }
        check_id("assignmentId", a)?;
        let worker = clean(&p.worker_id).ok_or_else(|| missing("workerId (MTurk link)"))?;
        check_id("workerId", worker)?;
        let submit =
            clean(&p.turk_submit_to).ok_or_else(|| missing("turkSubmitTo (MTurk link)"))?;
        if !valid_turk_submit_to(submit) {
            return Err(AppError::BadRequest(format!(
                "turkSubmitTo: \"{submit}\" is not an MTurk submission host"
            )));
        }
        let hit = clean(&p.hit_id).unwrap_or("");
        if !hit.is_empty() {
            check_id("hitId", hit)?;
        }
        return Ok(Identity::Platform {
            platform: Platform::Mturk,
            assignment_key: format!("mturk:{a}"),
            worker_key: format!("mturk:{worker}"),
            external_hit_id: hit.to_string(),
            turk_submit_to: submit.trim_end_matches('/').to_string(),
        });
    }
    if let Some(pid) = clean(&p.prolific_pid) {
        check_id("PROLIFIC_PID", pid)?;
        let session =
            clean(&p.prolific_session_id).ok_or_else(|| missing("SESSION_ID (Prolific link)"))?;
        check_id("SESSION_ID", session)?;
        let study = clean(&p.prolific_study_id).unwrap_or("");
        if !study.is_empty() {
            check_id("STUDY_ID", study)?;
        }
        return Ok(Identity::Platform {
            platform: Platform::Prolific,
            assignment_key: format!("prolific:{session}"),
            worker_key: format!("prolific:{pid}"),
            external_hit_id: study.to_string(),
            turk_submit_to: String::new(),
        });
    }
    if let Some(pid) = clean(&p.pid) {
        check_id("pid", pid)?;
        return Ok(Identity::Direct {
            pid: Some(pid.to_string()),
        });
    }
    Ok(Identity::Direct { pid: None })
}

/// What a participant is told when a study takes no new HITs.
pub fn closed_message(state: StudyState) -> Option<&'static str> {
    match state {
        StudyState::Live => None,
        StudyState::Draft => Some("This study has not started yet."),
        StudyState::Paused => Some("This study is paused. Please try again later."),
        StudyState::Complete => Some(
            "This study is complete: all comparisons have been collected. Thank you for your interest! \
             If you accepted this task on MTurk or Prolific, please return it; nothing is held against you.",
        ),
        StudyState::Closed => Some(
            "This study is closed. Thank you for your interest! If you accepted this task on MTurk or \
             Prolific, please return it; nothing is held against you.",
        ),
    }
}

const FULL_FOR_NOW: &str = "All comparisons of this study are assigned to other participants right now. \
     Please return this task (nothing is held against you) or try again in a few minutes.";
const NONE_LEFT_FOR_YOU: &str = "You have already seen every comparison this study still needs. Thank you! \
     If you accepted this task on MTurk or Prolific, please return it; nothing is held against you.";
const BLOCKED: &str = "You cannot take part in this study.";
const TIMED_OUT: &str = "This task timed out because it was inactive for too long, and its answers were not \
     kept. If you accepted it on MTurk or Prolific, please return it.";

fn max_hits_message(max: i64) -> String {
    format!(
        "You have already completed the maximum number of tasks ({max}) for this study. Thank you!"
    )
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct HitRec {
    id: i64,
    #[sqlx(try_from = "String")]
    status: HitStatus,
    abandoned_at: Option<i64>,
    token: String,
    answered: i64,
    #[sqlx(flatten)]
    completion: CompletionFields,
}

async fn find_hit<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    study_id: i64,
    key: &str,
) -> sqlx::Result<Option<HitRec>> {
    sqlx::query_as(
        "SELECT id, platform, assignment_key, turk_submit_to, status, abandoned_at, token, answered, completion_code \
         FROM hits WHERE study_id = $1 AND assignment_key = $2",
    )
    .bind(study_id)
    .bind(key)
    .fetch_optional(db)
    .await
}

/// (width, height) of each scene of the study: every image of a scene has the reference's size.
async fn scene_sizes<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    study_id: i64,
) -> sqlx::Result<HashMap<i64, (u32, u32)>> {
    let rows: Vec<(i64, i64, i64)> =
        sqlx::query_as("SELECT id, width, height FROM scenes WHERE study_id = $1")
            .bind(study_id)
            .fetch_all(db)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(id, w, h)| (id, (w as u32, h as u32)))
        .collect())
}

fn img(token: &str, (width, height): (u32, u32)) -> ImgView {
    ImgView {
        url: format!("/media/{token}"),
        width,
        height,
    }
}

/// What the completion page needs of a HIT.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CompletionFields {
    #[sqlx(try_from = "String")]
    pub platform: Platform,
    pub assignment_key: String,
    pub turk_submit_to: String,
    pub completion_code: String,
}

/// How a finished HIT is handed back: MTurk's externalSubmit form, Prolific's completion URL, or the code.
pub fn completion(study: &Study, hit: &CompletionFields) -> Completion {
    let code = hit.completion_code.clone();
    match hit.platform {
        Platform::Mturk => Completion::Mturk {
            action: format!("{}/mturk/externalSubmit", hit.turk_submit_to),
            assignment_id: hit.assignment_key.trim_start_matches("mturk:").to_string(),
            code,
        },
        Platform::Prolific if !study.settings.prolific_completion_url.is_empty() => {
            Completion::Prolific {
                url: study.settings.prolific_completion_url.clone(),
                code,
            }
        }
        _ => Completion::Direct { code },
    }
}

/// The completion of a finished HIT, read from the database.
pub async fn completion_of<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    study: &Study,
    hit_id: i64,
) -> AppResult<Completion> {
    let f: CompletionFields = sqlx::query_as(
        "SELECT platform, assignment_key, turk_submit_to, completion_code FROM hits WHERE id = $1",
    )
    .bind(hit_id)
    .fetch_one(db)
    .await?;
    Ok(completion(study, &f))
}

fn direct_pid(assignment_key: &str) -> Option<String> {
    assignment_key.strip_prefix("direct:").map(str::to_string)
}

/// The HIT as the page shows it (on resume).
async fn hit_view(db: &Db, study: &Study, hit: &HitRec) -> AppResult<HitView> {
    let trials: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT position, scene_id FROM trials t JOIN images i ON i.id = t.reference_image_id \
                        WHERE t.hit_id = $1 ORDER BY position",
    )
    .bind(hit.id)
    .fetch_all(db)
    .await?;
    let tokens = media::hit_tokens(db, hit.id).await?;
    let sizes = scene_sizes(db, study.id).await?;
    let mut views = Vec::with_capacity(trials.len());
    for (position, scene) in trials {
        let size = *sizes
            .get(&scene)
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("scene {scene} missing")))?;
        let t = |slot: Slot| {
            tokens.get(&(position, slot as i64)).ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!(
                    "HIT {}: no image token for trial {position}",
                    hit.id
                ))
            })
        };
        views.push(TrialView {
            position: position as u32,
            reference: img(t(Slot::Reference)?, size),
            left: img(t(Slot::Left)?, size),
            right: img(t(Slot::Right)?, size),
        });
    }
    Ok(HitView {
        key: hit.token.clone(),
        pid: direct_pid(&hit.completion.assignment_key),
        trials: views,
        answered: hit.answered as u32,
        completion: (hit.status == HitStatus::Completed)
            .then(|| completion(study, &hit.completion)),
    })
}

async fn load_study(db: &Db, slug: &str) -> AppResult<Study> {
    study::by_slug(db, slug)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("there is no study \"{slug}\"")))
}

/// The preview example of a live study (its own tokens, a random pair chosen when it went live).
async fn example(db: &Db, study: &Study) -> AppResult<Option<TrialView>> {
    let Some([r, l, x]) = media::example_tokens(db, study.id).await? else {
        return Ok(None);
    };
    let size: Option<(i64, i64)> = sqlx::query_as(
        "SELECT sc.width, sc.height FROM media_tokens m JOIN images i ON i.id = m.image_id \
         JOIN scenes sc ON sc.id = i.scene_id WHERE m.token = $1",
    )
    .bind(&r)
    .fetch_optional(db)
    .await?;
    Ok(size.map(|(w, h)| {
        let s = (w as u32, h as u32);
        TrialView {
            position: 0,
            reference: img(&r, s),
            left: img(&l, s),
            right: img(&x, s),
        }
    }))
}

/// Why a worker may not start a new HIT (outside the write lock: for the entry page only; [`start`] checks
/// again inside the lock).
async fn refusal<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any> + Copy,
    study: &Study,
    worker_key: &str,
) -> AppResult<Option<String>> {
    if let Some(m) = closed_message(study.state) {
        return Ok(Some(m.to_string()));
    }
    let (blocked,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM blocked_workers WHERE study_id = $1 AND worker_key = $2",
    )
    .bind(study.id)
    .bind(worker_key)
    .fetch_one(db)
    .await?;
    if blocked > 0 {
        return Ok(Some(BLOCKED.into()));
    }
    let (done,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM hits WHERE study_id = $1 AND worker_key = $2")
            .bind(study.id)
            .bind(worker_key)
            .fetch_one(db)
            .await?;
    if done >= study.settings.max_hits_per_worker {
        return Ok(Some(max_hits_message(study.settings.max_hits_per_worker)));
    }
    Ok(None)
}

/// The entry page's data. Records nothing. A study that is not public (draft, complete, closed) shows only
/// why: no name, question or images.
pub async fn enter(db: &Db, slug: &str, params: &EntryParams) -> AppResult<Entry> {
    let study = load_study(db, slug).await?;
    let id = identify(params)?;
    let public = study.state.is_public();
    let mut entry = Entry {
        slug: study.slug.clone(),
        study_name: if public {
            study.name.clone()
        } else {
            String::new()
        },
        question: if public {
            study.settings.question.clone()
        } else {
            String::new()
        },
        synthetic: public && study.synthetic,
        preview: id == Identity::Preview,
        can_start: false,
        message: closed_message(study.state).map(str::to_string),
        example: None,
        hit: None,
    };
    if study.state != StudyState::Live {
        return Ok(entry);
    }
    entry.example = example(db, &study).await?;
    let existing = match &id {
        Identity::Preview => return Ok(entry),
        Identity::Platform { assignment_key, .. } => find_hit(db, study.id, assignment_key).await?,
        Identity::Direct { pid: Some(pid) } => {
            find_hit(db, study.id, &format!("direct:{pid}")).await?
        }
        Identity::Direct { pid: None } => None,
    };
    match existing {
        Some(h) if h.abandoned_at.is_some() => entry.message = Some(TIMED_OUT.into()),
        Some(h) => entry.hit = Some(hit_view(db, &study, &h).await?),
        None => {
            // Direct links are limited per browser at start; here only the platform worker is known.
            entry.message = match &id {
                Identity::Platform { worker_key, .. } => refusal(db, &study, worker_key).await?,
                _ => None,
            };
            entry.can_start = entry.message.is_none();
        }
    }
    Ok(entry)
}

/// A random generator for one HIT's plan: from the OS, or (tests, `--assign-seed`) derived from the seed
/// and the assignment so that a run is reproducible whatever the scheduling.
fn plan_rng(seed: Option<u64>, assignment_key: &str) -> ChaCha8Rng {
    match seed {
        Some(s) => {
            use std::hash::{Hash, Hasher};
            // Not for security: a stable mix of the seed and the key.
            let mut h = std::collections::hash_map::DefaultHasher::new();
            assignment_key.hash(&mut h);
            ChaCha8Rng::seed_from_u64(s ^ h.finish())
        }
        None => ChaCha8Rng::from_os_rng(),
    }
}

/// Starts the HIT of this assignment, or returns the existing one (starting twice is harmless).
/// `browser` is the direct-link participant's per-browser id (the "worker" of a direct link).
pub async fn start(
    db: &Db,
    slug: &str,
    params: &EntryParams,
    browser: &str,
    seed: Option<u64>,
) -> AppResult<HitView> {
    let (platform, assignment_key, worker_key, external_hit_id, turk_submit_to) =
        match identify(params)? {
            Identity::Preview => {
                return Err(AppError::bad_request(
                    "this is a preview: accept the HIT to start",
                ));
            }
            Identity::Platform {
                platform,
                assignment_key,
                worker_key,
                external_hit_id,
                turk_submit_to,
            } => (
                platform,
                assignment_key,
                worker_key,
                external_hit_id,
                turk_submit_to,
            ),
            Identity::Direct { pid } => {
                // A pid resumes only a HIT this server issued; an unknown one starts a new HIT with a new id.
                let study = load_study(db, slug).await?;
                if let Some(pid) = pid
                    && let Some(h) = find_hit(db, study.id, &format!("direct:{pid}")).await?
                {
                    return resume(db, &study, &h).await;
                }
                (
                    Platform::Direct,
                    format!("direct:{}", media::new_token()),
                    format!("direct:{browser}"),
                    String::new(),
                    String::new(),
                )
            }
        };
    let now = db::now_ms();
    let mut tx = db::begin_write(db).await?;
    let study = study::by_slug(&mut *tx, slug)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("there is no study \"{slug}\"")))?;
    if let Some(h) = find_hit(&mut *tx, study.id, &assignment_key).await? {
        drop(tx);
        return resume(db, &study, &h).await;
    }
    if let Some(m) = closed_message(study.state) {
        return Err(AppError::Conflict(m.into()));
    }
    let (blocked,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM blocked_workers WHERE study_id = $1 AND worker_key = $2",
    )
    .bind(study.id)
    .bind(&worker_key)
    .fetch_one(&mut *tx)
    .await?;
    if blocked > 0 {
        return Err(AppError::Conflict(BLOCKED.into()));
    }
    let (done,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM hits WHERE study_id = $1 AND worker_key = $2")
            .bind(study.id)
            .bind(&worker_key)
            .fetch_one(&mut *tx)
            .await?;
    if done >= study.settings.max_hits_per_worker {
        return Err(AppError::Conflict(max_hits_message(
            study.settings.max_hits_per_worker,
        )));
    }
    design::expire_overdue(&mut tx, study.id, study.timeout_ms(), now).await?;
    design::release_invalid(&mut tx, study.id).await?;
    let mut rng = plan_rng(seed, &assignment_key);
    let s = &study.settings;
    let candidates = design::candidates(
        &mut tx,
        study.id,
        s.repetitions,
        &worker_key,
        design::TieOrder::draw(&mut rng),
        s.trials_per_hit,
    )
    .await?;
    if candidates.is_empty() {
        let message = if study.remaining_answers() == 0 {
            study::write_state(&mut tx, study.id, StudyState::Complete).await?;
            tx.commit().await?;
            tracing::info!("study {}: design full: complete", study.slug);
            closed_message(StudyState::Complete).unwrap_or_default()
        } else {
            let (open,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM design_items WHERE study_id = $1 AND load < $2",
            )
            .bind(study.id)
            .bind(s.repetitions)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            if open > 0 {
                NONE_LEFT_FOR_YOU
            } else {
                FULL_FOR_NOW
            }
        };
        return Err(AppError::Conflict(message.into()));
    }
    let (images, checks) = plan_inputs(&mut tx, study.id, &candidates).await?;
    let planned = design::plan(
        &candidates,
        &images,
        &checks,
        s.trials_per_hit as usize,
        s.checks_per_hit as usize,
        &mut rng,
    )?;
    let sizes = scene_sizes(&mut *tx, study.id).await?;
    let hit = NewHit {
        platform,
        assignment_key,
        worker_key,
        browser_key: if platform == Platform::Direct {
            browser.to_string()
        } else {
            String::new()
        },
        external_hit_id,
        turk_submit_to,
    };
    let view = store_hit(&mut tx, &study, &hit, &planned, &sizes, now).await?;
    tx.commit().await?;
    Ok(view)
}

async fn resume(db: &Db, study: &Study, h: &HitRec) -> AppResult<HitView> {
    if h.abandoned_at.is_some() {
        return Err(AppError::Conflict(TIMED_OUT.into()));
    }
    hit_view(db, study, h).await
}

/// The images of the candidates' scenes and the study's attention checks.
async fn plan_inputs(
    tx: &mut Tx<'_>,
    study_id: i64,
    candidates: &[design::Candidate],
) -> AppResult<(ImageIndex, Vec<CheckItem>)> {
    let mut scenes: Vec<i64> = candidates.iter().map(|c| c.scene_id).collect();
    scenes.sort_unstable();
    scenes.dedup();
    let list = scenes
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let rows: Vec<(i64, i64, Option<i64>)> = sqlx::query_as(&format!(
        "SELECT id, scene_id, condition_id FROM images WHERE study_id = $1 \
         AND kind IN ('reference', 'condition') AND scene_id IN ({list})"
    ))
    .bind(study_id)
    .fetch_all(&mut **tx)
    .await?;
    let images = rows.into_iter().map(|(id, s, c)| ((s, c), id)).collect();
    let checks: Vec<CheckItem> = sqlx::query_as(
        "SELECT id, scene_id, good_image_id, bad_image_id FROM check_items WHERE study_id = $1 ORDER BY id",
    )
    .bind(study_id)
    .fetch_all(&mut **tx)
    .await?;
    Ok((images, checks))
}

struct NewHit {
    platform: Platform,
    assignment_key: String,
    worker_key: String,
    browser_key: String,
    external_hit_id: String,
    turk_submit_to: String,
}

/// Writes the HIT, its trials and image tokens and raises the chosen items' loads; returns what the page
/// shows (no re-read).
async fn store_hit(
    tx: &mut Tx<'_>,
    study: &Study,
    hit: &NewHit,
    planned: &[PlannedTrial],
    sizes: &HashMap<i64, (u32, u32)>,
    now: i64,
) -> AppResult<HitView> {
    let hit_id = db::next_id(tx, "hits").await?;
    let token = media::new_token();
    let pairs = planned
        .iter()
        .filter(|t| t.design_item_id.is_some())
        .count() as i64;
    sqlx::query(
        "INSERT INTO hits (id, study_id, platform, assignment_key, worker_key, external_hit_id, turk_submit_to, \
         status, excluded, exclusion_reason, completion_code, created_at, last_seen_at, token, browser_key, \
         total, pairs, answered, shown_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', 0, '', $8, $9, $9, $10, $11, $12, $13, 0, $9)",
    )
    .bind(hit_id)
    .bind(study.id)
    .bind(hit.platform.as_str())
    .bind(&hit.assignment_key)
    .bind(&hit.worker_key)
    .bind(&hit.external_hit_id)
    .bind(&hit.turk_submit_to)
    .bind(media::new_token()[..10].to_uppercase())
    .bind(now)
    .bind(&token)
    .bind(&hit.browser_key)
    .bind(planned.len() as i64)
    .bind(pairs)
    .execute(&mut **tx)
    .await?;

    let first_trial = db::next_id(tx, "trials").await?;
    let mut sql = String::from(
        "INSERT INTO trials (id, hit_id, position, kind, design_item_id, check_item_id, reference_image_id, \
         left_image_id, right_image_id, correct_side, left_condition_id, right_condition_id) VALUES ",
    );
    const COLS: usize = 12;
    for i in 0..planned.len() {
        if i > 0 {
            sql.push_str(", ");
        }
        let b = i * COLS;
        let p: Vec<String> = (1..=COLS).map(|k| format!("${}", b + k)).collect();
        sql.push_str(&format!("({})", p.join(", ")));
    }
    let mut q = sqlx::query(&sql);
    let mut tokens = Vec::with_capacity(planned.len() * 3);
    let mut views = Vec::with_capacity(planned.len());
    let scene_of_image: HashMap<i64, i64> = sqlx::query_as::<_, (i64, i64)>(&format!(
        "SELECT id, scene_id FROM images WHERE id IN ({})",
        planned
            .iter()
            .map(|t| t.reference.to_string())
            .collect::<Vec<_>>()
            .join(",")
    ))
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    for (pos, t) in planned.iter().enumerate() {
        q = q
            .bind(first_trial + pos as i64)
            .bind(hit_id)
            .bind(pos as i64)
            .bind(t.kind.as_str())
            .bind(t.design_item_id)
            .bind(t.check_item_id)
            .bind(t.reference)
            .bind(t.left)
            .bind(t.right)
            .bind(t.correct.map(|s| s.as_str()))
            .bind(t.left_condition)
            .bind(t.right_condition);
        let size = scene_of_image
            .get(&t.reference)
            .and_then(|s| sizes.get(s))
            .copied()
            .ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!("image {} has no scene size", t.reference))
            })?;
        let mut slot = |slot: Slot, image_id: i64| {
            let token = media::new_token();
            let view = img(&token, size);
            tokens.push(NewToken {
                token,
                position: pos as i64,
                slot,
                image_id,
            });
            view
        };
        views.push(TrialView {
            position: pos as u32,
            reference: slot(Slot::Reference, t.reference),
            left: slot(Slot::Left, t.left),
            right: slot(Slot::Right, t.right),
        });
    }
    q.execute(&mut **tx).await?;
    media::insert_tokens(tx, study.id, Some(hit_id), &tokens).await?;
    let items: Vec<String> = planned
        .iter()
        .filter_map(|t| t.design_item_id.map(|i| i.to_string()))
        .collect();
    sqlx::query(&format!(
        "UPDATE design_items SET load = load + 1 WHERE id IN ({})",
        items.join(",")
    ))
    .execute(&mut **tx)
    .await?;
    Ok(HitView {
        key: token,
        pid: direct_pid(&hit.assignment_key),
        trials: views,
        answered: 0,
        completion: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_start_a_formula_or_hold_odd_characters_are_refused() {
        for bad in ["=cmd", "-1", "+1", "@x", "a b", "", "a;b", &"x".repeat(129)] {
            assert!(check_id("workerId", bad).is_err(), "{bad:?}");
        }
        for good in ["A1B2C3", "3f9a", "worker_1.x:y-z"] {
            check_id("workerId", good).unwrap();
        }
    }
}
