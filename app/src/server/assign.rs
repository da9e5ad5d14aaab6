//! Participants and HITs: who is asking (MTurk / Prolific / direct / preview), assigning trials from the full
//! design (fewest answers first, never the same pair-and-scene twice per worker, checks at random positions,
//! random left/right), storing answers idempotently, excluding HITs that fail a check, completion.

use std::collections::{HashMap, HashSet};

use anyhow::{anyhow, bail};
use rand::Rng;
use rand::seq::SliceRandom;

use super::db::{self, Db};
use super::fault::Conflict;
use super::study::{self, Study, StudyState};
use crate::api::{Completion, Entry, EntryParams, HitView, ImgView, MTURK_PREVIEW, TrialView};

/// Who is taking part, derived from the entry parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Preview,
    Participant {
        platform: &'static str,
        assignment_key: String,
        worker_key: String,
        external_hit_id: String,
        turk_submit_to: String,
    },
    /// A direct link without an id yet: one is made when the HIT starts.
    NewDirect,
}

fn clean(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn check_id(name: &str, v: &str) -> anyhow::Result<()> {
    if v.len() > 128
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
    {
        bail!("{name}: \"{v}\" is not a valid id");
    }
    Ok(())
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

pub fn identify(p: &EntryParams) -> anyhow::Result<Identity> {
    if let Some(a) = clean(&p.assignment_id) {
        if a == MTURK_PREVIEW {
            return Ok(Identity::Preview);
        }
        check_id("assignmentId", a)?;
        let worker =
            clean(&p.worker_id).ok_or_else(|| anyhow!("workerId: missing (MTurk link)"))?;
        check_id("workerId", worker)?;
        let submit = clean(&p.turk_submit_to)
            .ok_or_else(|| anyhow!("turkSubmitTo: missing (MTurk link)"))?;
        if !valid_turk_submit_to(submit) {
            bail!("turkSubmitTo: \"{submit}\" is not an MTurk submission host");
        }
        let hit = clean(&p.hit_id).unwrap_or("");
        check_id("hitId", hit).or_else(|e| if hit.is_empty() { Ok(()) } else { Err(e) })?;
        return Ok(Identity::Participant {
            platform: "mturk",
            assignment_key: format!("mturk:{a}"),
            worker_key: format!("mturk:{worker}"),
            external_hit_id: hit.to_string(),
            turk_submit_to: submit.trim_end_matches('/').to_string(),
        });
    }
    if let Some(pid) = clean(&p.prolific_pid) {
        check_id("PROLIFIC_PID", pid)?;
        let session = clean(&p.prolific_session_id)
            .ok_or_else(|| anyhow!("SESSION_ID: missing (Prolific link)"))?;
        check_id("SESSION_ID", session)?;
        let study = clean(&p.prolific_study_id).unwrap_or("");
        return Ok(Identity::Participant {
            platform: "prolific",
            assignment_key: format!("prolific:{session}"),
            worker_key: format!("prolific:{pid}"),
            external_hit_id: study.to_string(),
            turk_submit_to: String::new(),
        });
    }
    if let Some(pid) = clean(&p.pid) {
        check_id("pid", pid)?;
        return Ok(Identity::Participant {
            platform: "direct",
            assignment_key: format!("direct:{pid}"),
            worker_key: format!("direct:{pid}"),
            external_hit_id: String::new(),
            turk_submit_to: String::new(),
        });
    }
    Ok(Identity::NewDirect)
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct HitRec {
    id: i64,
    platform: String,
    assignment_key: String,
    turk_submit_to: String,
    status: String,
    completion_code: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct TrialRec {
    id: i64,
    kind: String,
    reference_image_id: i64,
    left_image_id: i64,
    right_image_id: i64,
    correct_side: Option<String>,
    answer: Option<String>,
}

#[derive(Debug, Clone, Copy, sqlx::FromRow)]
struct ImageRec {
    id: i64,
    scene_id: i64,
    condition_id: Option<i64>,
    width: i64,
    height: i64,
}

fn img_view(i: &ImageRec) -> ImgView {
    ImgView {
        url: format!("/media/{}", i.id),
        width: i.width as u32,
        height: i.height as u32,
    }
}

async fn images(db: &Db, study_id: i64) -> anyhow::Result<HashMap<i64, ImageRec>> {
    let rows: Vec<ImageRec> = sqlx::query_as(
        "SELECT id, scene_id, condition_id, width, height FROM images WHERE study_id = $1",
    )
    .bind(study_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r)).collect())
}

async fn find_hit(db: &Db, study_id: i64, key: &str) -> anyhow::Result<Option<HitRec>> {
    Ok(sqlx::query_as(
        "SELECT id, platform, assignment_key, turk_submit_to, status, completion_code FROM hits \
         WHERE study_id = $1 AND assignment_key = $2",
    )
    .bind(study_id)
    .bind(key)
    .fetch_optional(db)
    .await?)
}

/// The images shown in one HIT's trials.
async fn hit_images(db: &Db, hit_id: i64) -> anyhow::Result<HashMap<i64, ImageRec>> {
    let rows: Vec<ImageRec> = sqlx::query_as(
        "SELECT id, scene_id, condition_id, width, height FROM images WHERE id IN ( \
           SELECT reference_image_id FROM trials WHERE hit_id = $1 UNION \
           SELECT left_image_id FROM trials WHERE hit_id = $1 UNION \
           SELECT right_image_id FROM trials WHERE hit_id = $1)",
    )
    .bind(hit_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r)).collect())
}

async fn hit_view(db: &Db, study: &Study, hit: &HitRec) -> anyhow::Result<HitView> {
    let imgs = hit_images(db, hit.id).await?;
    let trials: Vec<TrialRec> = sqlx::query_as(
        "SELECT id, kind, reference_image_id, left_image_id, right_image_id, correct_side, answer FROM trials \
         WHERE hit_id = $1 ORDER BY position",
    )
    .bind(hit.id)
    .fetch_all(db)
    .await?;
    let get = |id: i64| {
        imgs.get(&id)
            .map(img_view)
            .ok_or_else(|| anyhow!("image {id} missing"))
    };
    let mut views = Vec::new();
    for t in &trials {
        views.push(TrialView {
            id: t.id,
            reference: get(t.reference_image_id)?,
            left: get(t.left_image_id)?,
            right: get(t.right_image_id)?,
            answer: t.answer.clone(),
        });
    }
    let completion = (hit.status == "completed").then(|| completion(study, hit));
    let pid = hit
        .assignment_key
        .strip_prefix("direct:")
        .map(str::to_string);
    Ok(HitView {
        key: hit.assignment_key.clone(),
        pid,
        trials: views,
        completion,
    })
}

fn completion(study: &Study, hit: &HitRec) -> Completion {
    let code = hit.completion_code.clone();
    match hit.platform.as_str() {
        "mturk" => Completion::Mturk {
            action: format!("{}/mturk/externalSubmit", hit.turk_submit_to),
            assignment_id: hit.assignment_key.trim_start_matches("mturk:").to_string(),
            code,
        },
        "prolific" if !study.prolific_completion_url.is_empty() => Completion::Prolific {
            url: study.prolific_completion_url.clone(),
            code,
        },
        _ => Completion::Direct { code },
    }
}

async fn load_study(db: &Db, slug: &str) -> anyhow::Result<Study> {
    study::by_slug(db, slug)
        .await?
        .ok_or_else(|| anyhow!("there is no study \"{slug}\""))
}

/// Why this worker may not start a new HIT, if so.
async fn refusal(db: &Db, study: &Study, worker_key: &str) -> anyhow::Result<Option<String>> {
    match study.state() {
        StudyState::Live => {}
        StudyState::Draft => return Ok(Some("This study has not started yet.".into())),
        StudyState::Paused => {
            return Ok(Some("This study is paused. Please try again later.".into()));
        }
        StudyState::Closed => {
            return Ok(Some(
                "This study is closed. Thank you for your interest.".into(),
            ));
        }
    }
    let (blocked,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM blocked_workers WHERE study_id = $1 AND worker_key = $2",
    )
    .bind(study.id)
    .bind(worker_key)
    .fetch_one(db)
    .await?;
    if blocked > 0 {
        return Ok(Some("You cannot take part in this study.".into()));
    }
    let (done,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM hits WHERE study_id = $1 AND worker_key = $2")
            .bind(study.id)
            .bind(worker_key)
            .fetch_one(db)
            .await?;
    if done >= study.max_hits_per_worker {
        return Ok(Some(format!(
            "You have already completed the maximum number of tasks ({}) for this study. Thank you!",
            study.max_hits_per_worker
        )));
    }
    Ok(None)
}

/// An example trial for previews: the first pair of the first scene. Records nothing.
async fn example(db: &Db, study: &Study) -> anyhow::Result<Option<TrialView>> {
    let imgs = images(db, study.id).await?;
    let item: Option<(i64, i64, i64)> = sqlx::query_as(
        "SELECT scene_id, condition_a, condition_b FROM design_items WHERE study_id = $1 ORDER BY id LIMIT 1",
    )
    .bind(study.id)
    .fetch_optional(db)
    .await?;
    let Some((scene, a, b)) = item else {
        return Ok(None);
    };
    let find = |cond: Option<i64>| {
        imgs.values()
            .filter(|i| i.scene_id == scene && i.condition_id == cond)
            .min_by_key(|i| i.id)
            .map(img_view)
    };
    Ok(match (find(None), find(Some(a)), find(Some(b))) {
        (Some(reference), Some(left), Some(right)) => Some(TrialView {
            id: 0,
            reference,
            left,
            right,
            answer: None,
        }),
        _ => None,
    })
}

pub async fn enter(db: &Db, slug: &str, params: &EntryParams) -> anyhow::Result<Entry> {
    let study = load_study(db, slug).await?;
    let id = identify(params)?;
    let mut entry = Entry {
        slug: study.slug.clone(),
        study_name: study.name.clone(),
        question: study.question.clone(),
        synthetic: study.synthetic != 0,
        preview: id == Identity::Preview,
        can_start: false,
        message: None,
        example: example(db, &study).await?,
        hit: None,
    };
    match &id {
        Identity::Preview => {
            entry.message = refusal(db, &study, "").await?;
        }
        Identity::NewDirect => {
            entry.message = refusal(db, &study, "").await?;
            entry.can_start = entry.message.is_none();
        }
        Identity::Participant {
            assignment_key,
            worker_key,
            ..
        } => {
            if let Some(hit) = find_hit(db, study.id, assignment_key).await? {
                entry.hit = Some(hit_view(db, &study, &hit).await?);
            } else {
                entry.message = refusal(db, &study, worker_key).await?;
                entry.can_start = entry.message.is_none();
            }
        }
    }
    Ok(entry)
}

/// One planned trial before it is stored.
struct Planned {
    kind: &'static str,
    design_item_id: Option<i64>,
    check_item_id: Option<i64>,
    reference: i64,
    left: i64,
    right: i64,
    correct_side: Option<&'static str>,
}

/// Starts the HIT for this assignment (or returns the existing one: starting twice is harmless).
pub async fn start(db: &Db, slug: &str, params: &EntryParams) -> anyhow::Result<HitView> {
    let study = load_study(db, slug).await?;
    let (platform, assignment_key, worker_key, external_hit_id, turk_submit_to) =
        match identify(params)? {
            Identity::Preview => bail!("this is a preview: accept the HIT to start"),
            Identity::NewDirect => {
                let pid = db::random_token(16);
                (
                    "direct",
                    format!("direct:{pid}"),
                    format!("direct:{pid}"),
                    String::new(),
                    String::new(),
                )
            }
            Identity::Participant {
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
        };
    if let Some(hit) = find_hit(db, study.id, &assignment_key).await? {
        return hit_view(db, &study, &hit).await;
    }
    if let Some(why) = refusal(db, &study, &worker_key).await? {
        bail!(why);
    }
    let now = db::now_ms();
    let mut tx = db::begin_write(db).await?;
    // Re-check inside the write lock: a double click may have raced us.
    let existing: Option<(i64,)> =
        sqlx::query_as("SELECT id FROM hits WHERE study_id = $1 AND assignment_key = $2")
            .bind(study.id)
            .bind(&assignment_key)
            .fetch_optional(&mut *tx)
            .await?;
    if existing.is_none() {
        let planned = plan(&mut tx, &study, &worker_key, now).await?;
        if planned.is_empty() {
            bail!("There are no more trials available for you in this study. Thank you!");
        }
        let hit_id = db::next_id(&mut tx, "hits").await?;
        sqlx::query(
            "INSERT INTO hits (id, study_id, platform, assignment_key, worker_key, external_hit_id, turk_submit_to, \
             status, excluded, exclusion_reason, completion_code, created_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', 0, '', $8, $9, $9)",
        )
        .bind(hit_id)
        .bind(study.id)
        .bind(platform)
        .bind(&assignment_key)
        .bind(&worker_key)
        .bind(&external_hit_id)
        .bind(&turk_submit_to)
        .bind(db::random_token(10).to_uppercase())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for (pos, t) in planned.iter().enumerate() {
            let id = db::next_id(&mut tx, "trials").await?;
            sqlx::query(
                "INSERT INTO trials (id, hit_id, position, kind, design_item_id, check_item_id, reference_image_id, \
                 left_image_id, right_image_id, correct_side) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(id)
            .bind(hit_id)
            .bind(pos as i64)
            .bind(t.kind)
            .bind(t.design_item_id)
            .bind(t.check_item_id)
            .bind(t.reference)
            .bind(t.left)
            .bind(t.right)
            .bind(t.correct_side)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    let hit = find_hit(db, study.id, &assignment_key)
        .await?
        .ok_or_else(|| anyhow!("HIT vanished"))?;
    hit_view(db, &study, &hit).await
}

#[derive(sqlx::FromRow)]
struct ItemLoad {
    id: i64,
    scene_id: i64,
    condition_a: i64,
    condition_b: i64,
    load: i64,
}

/// Chooses the trials of a new HIT: up to T design items this worker has never seen, those with the fewest
/// answers first (answers of completed non-excluded HITs plus trials held by active HITs seen within the
/// timeout), random among equals; plus C attention checks; shuffled; random left/right.
async fn plan(
    tx: &mut db::Tx<'_>,
    study: &Study,
    worker_key: &str,
    now: i64,
) -> anyhow::Result<Vec<Planned>> {
    let cutoff = now - study.hit_timeout_s * 1000;
    let seen: HashSet<i64> = sqlx::query_as::<_, (i64,)>(
        "SELECT DISTINCT t.design_item_id FROM trials t JOIN hits h ON h.id = t.hit_id \
         WHERE h.study_id = $1 AND h.worker_key = $2 AND t.design_item_id IS NOT NULL",
    )
    .bind(study.id)
    .bind(worker_key)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|(id,)| id)
    .collect();
    let items: Vec<ItemLoad> = sqlx::query_as(
        "SELECT d.id, d.scene_id, d.condition_a, d.condition_b, COUNT(h.id) AS load \
         FROM design_items d \
         LEFT JOIN trials t ON t.design_item_id = d.id \
         LEFT JOIN hits h ON h.id = t.hit_id AND h.excluded = 0 \
              AND (h.status = 'completed' OR h.last_seen_at >= $2) \
         WHERE d.study_id = $1 GROUP BY d.id, d.scene_id, d.condition_a, d.condition_b",
    )
    .bind(study.id)
    .bind(cutoff)
    .fetch_all(&mut **tx)
    .await?;
    let imgs: Vec<ImageRec> = sqlx::query_as(
        "SELECT id, scene_id, condition_id, width, height FROM images WHERE study_id = $1 AND kind IN ('reference', 'condition')",
    )
    .bind(study.id)
    .fetch_all(&mut **tx)
    .await?;
    let image_of: HashMap<(i64, Option<i64>), i64> = imgs
        .iter()
        .map(|i| ((i.scene_id, i.condition_id), i.id))
        .collect();
    let checks: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT id, scene_id, good_image_id, bad_image_id FROM check_items WHERE study_id = $1",
    )
    .bind(study.id)
    .fetch_all(&mut **tx)
    .await?;

    let mut rng = rand::thread_rng();
    let mut candidates: Vec<&ItemLoad> = items.iter().filter(|i| !seen.contains(&i.id)).collect();
    candidates.shuffle(&mut rng);
    candidates.sort_by_key(|i| i.load); // stable: random among equal loads
    candidates.truncate(study.trials_per_hit as usize);

    let mut planned = Vec::new();
    for item in candidates {
        let reference = image_of[&(item.scene_id, None)];
        let a = image_of[&(item.scene_id, Some(item.condition_a))];
        let b = image_of[&(item.scene_id, Some(item.condition_b))];
        let (left, right) = if rng.r#gen::<bool>() { (a, b) } else { (b, a) };
        planned.push(Planned {
            kind: "pair",
            design_item_id: Some(item.id),
            check_item_id: None,
            reference,
            left,
            right,
            correct_side: None,
        });
    }
    if planned.is_empty() {
        return Ok(planned);
    }
    let mut checks = checks;
    checks.shuffle(&mut rng);
    for &(id, _scene, good, bad) in checks.iter().cycle().take(study.checks_per_hit as usize) {
        let good_left = rng.r#gen::<bool>();
        planned.push(Planned {
            kind: "check",
            design_item_id: None,
            check_item_id: Some(id),
            reference: good,
            left: if good_left { good } else { bad },
            right: if good_left { bad } else { good },
            correct_side: Some(if good_left { "left" } else { "right" }),
        });
    }
    planned.shuffle(&mut rng);
    Ok(planned)
}

/// Stores an answer. Idempotent: repeating an answer (double click, network retry) changes nothing; the
/// first answer to a trial is final (a different one is refused as a [`Conflict`]), and so is a finished HIT. A wrong answer to an attention check excludes the HIT.
pub async fn answer(
    db: &Db,
    slug: &str,
    key: &str,
    trial_id: i64,
    side: &str,
    rt_ms: i64,
) -> anyhow::Result<HitView> {
    if side != "left" && side != "right" {
        bail!("side: expected \"left\" or \"right\", found \"{side}\"");
    }
    let study = load_study(db, slug).await?;
    let hit = find_hit(db, study.id, key)
        .await?
        .ok_or_else(|| anyhow!("no HIT {key} in study {slug}"))?;
    let now = db::now_ms();
    // Locks the HIT (and records the participant's activity) before reading its trials.
    let mut tx = db::begin_hit(db, hit.id, now).await?;
    let trial: TrialRec = sqlx::query_as(
        "SELECT id, kind, reference_image_id, left_image_id, right_image_id, correct_side, answer FROM trials \
         WHERE id = $1 AND hit_id = $2",
    )
    .bind(trial_id)
    .bind(hit.id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| anyhow!("trial {trial_id} is not part of this HIT"))?;
    match trial.answer.as_deref() {
        // A repeat of the stored answer (double click, network retry) is harmless and changes nothing.
        Some(a) if a == side => {}
        Some(_) if hit.status == "completed" => {
            return Err(Conflict(format!(
                "this HIT is finished: trial {trial_id} was already answered and cannot be changed"
            ))
            .into());
        }
        Some(_) => {
            return Err(Conflict(format!(
                "trial {trial_id} was already answered; the first answer is final"
            ))
            .into());
        }
        None if hit.status == "completed" => {
            return Err(Conflict("this HIT is finished".into()).into());
        }
        None => {}
    }
    if trial.answer.is_none() {
        let chosen_image = if side == "left" {
            trial.left_image_id
        } else {
            trial.right_image_id
        };
        let (chosen_condition,): (Option<i64>,) =
            sqlx::query_as("SELECT condition_id FROM images WHERE id = $1")
                .bind(chosen_image)
                .fetch_one(&mut *tx)
                .await?;
        let rt = rt_ms.clamp(0, 3_600_000);
        sqlx::query(
            "UPDATE trials SET answer = $1, chosen_condition_id = $2, rt_ms = $3, answered_at = $4 \
             WHERE id = $5 AND answer IS NULL",
        )
        .bind(side)
        .bind(chosen_condition)
        .bind(rt)
        .bind(now)
        .bind(trial.id)
        .execute(&mut *tx)
        .await?;
        if trial.kind == "check" && trial.correct_side.as_deref() != Some(side) {
            sqlx::query("UPDATE hits SET excluded = 1, exclusion_reason = $1 WHERE id = $2 AND excluded = 0")
                .bind(format!("failed attention check (trial {trial_id})"))
                .bind(hit.id)
                .execute(&mut *tx)
                .await?;
        }
        let (open,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM trials WHERE hit_id = $1 AND answer IS NULL")
                .bind(hit.id)
                .fetch_one(&mut *tx)
                .await?;
        if open == 0 {
            sqlx::query("UPDATE hits SET status = 'completed', completed_at = $1 WHERE id = $2 AND status = 'active'")
                .bind(now)
                .bind(hit.id)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    let hit = find_hit(db, study.id, key)
        .await?
        .ok_or_else(|| anyhow!("HIT vanished"))?;
    hit_view(db, &study, &hit).await
}
