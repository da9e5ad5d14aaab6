//! Storing an answer: the hot path of a study.
//!
//! One short transaction of two statements: the first writes the answer and is also the validation (it
//! matches only the HIT's *next* trial, of a HIT in progress that is not blocked or timed out, of a live
//! study); the second advances the HIT (position, time shown, the quality counters). The answer that
//! finishes a HIT also judges it by the study's quality rules and, when it is valid, adds its answers to the
//! design's fill (completing the study when the design is full). Anything that does not match is diagnosed
//! afterwards: a repeat of the stored answer (double click, network retry) is harmless and answered as
//! success; anything else is refused with a 4xx and changes nothing.
//!
//! Response times: `rt_ms` is what the browser measured; `server_rt_ms` is the time from the moment the
//! server sent the trial (the previous answer's reply, or the HIT's start) to this answer, which a client
//! cannot make shorter than it was. The TOO_FAST rule uses the server's.

use super::assign::HitStatus;
use super::db::{self, Db, Tx};
use super::design;
use super::fault::{AppError, AppResult, is_retryable};
use super::quality::{self, Counters, Flags};
use super::study::{self, StudyState};
use crate::api::{AnswerAck, Completion, Side};

/// What the first statement returns about the trial it answered.
#[derive(sqlx::FromRow)]
struct Answered {
    hit_id: i64,
    kind: String,
    correct_side: Option<String>,
}

/// What the second statement returns about the HIT.
#[derive(sqlx::FromRow)]
struct Advanced {
    study_id: i64,
    answered: i64,
    total: i64,
    pairs: i64,
    worker_key: String,
    flags: i64,
    #[sqlx(flatten)]
    counters: Counters,
}

/// Stores the answer to trial `position` of the HIT with this token. Retried once on PostgreSQL when it
/// lost a deadlock or serialization race.
pub async fn answer(
    db: &Db,
    token: &str,
    position: u32,
    side: Side,
    rt_ms: i64,
) -> AppResult<AnswerAck> {
    if token.len() != 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AppError::NotFound("no such HIT".into()));
    }
    let rt = rt_ms.clamp(0, 3_600_000);
    for attempt in 0.. {
        match try_answer(db, token, position as i64, side, rt).await {
            Err(AppError::Internal(e)) if attempt == 0 => match e.downcast_ref::<sqlx::Error>() {
                Some(s) if is_retryable(s) => continue,
                _ => return Err(AppError::Internal(e)),
            },
            other => return other,
        }
    }
    unreachable!()
}

async fn try_answer(
    db: &Db,
    token: &str,
    position: i64,
    side: Side,
    rt_ms: i64,
) -> AppResult<AnswerAck> {
    let now = db::now_ms();
    let mut tx = db::begin_answer(db).await?;
    let answered: Option<Answered> = sqlx::query_as(
        "UPDATE trials SET answer = $1, \
           chosen_condition_id = CASE WHEN $1 = 'left' THEN left_condition_id ELSE right_condition_id END, \
           rt_ms = $2, answered_at = $3, server_rt_ms = $3 - (SELECT h.shown_at FROM hits h WHERE h.id = trials.hit_id) \
         WHERE position = $4 AND answer IS NULL AND hit_id = ( \
           SELECT h.id FROM hits h JOIN studies s ON s.id = h.study_id \
           WHERE h.token = $5 AND h.answered = $4 AND h.status = 'active' AND h.abandoned_at IS NULL \
             AND (h.flags & $6) = 0 AND h.last_seen_at >= $3 - s.hit_timeout_s * 1000 AND s.state = 'live') \
         RETURNING hit_id, kind, correct_side",
    )
    .bind(side.as_str())
    .bind(rt_ms)
    .bind(now)
    .bind(position)
    .bind(token)
    .bind(Flags::BLOCKED.bits())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(a) = answered else {
        let r = refused(&mut tx, token, position, side, now).await;
        // The only write a refusal makes is recording that a HIT timed out.
        if !matches!(r, Err(AppError::Internal(_) | AppError::Unavailable(_))) {
            tx.commit().await?;
        }
        return r;
    };
    let wrong = a.kind == "check" && a.correct_side.as_deref() != Some(side.as_str());
    let adv: Advanced = sqlx::query_as(
        "UPDATE hits SET answered = answered + 1, shown_at = $1, last_seen_at = $1, \
           fast_answers = fast_answers + CASE WHEN $1 - shown_at < \
             (SELECT s.min_response_ms FROM studies s WHERE s.id = hits.study_id) THEN 1 ELSE 0 END, \
           left_answers = left_answers + $2, failed_checks = failed_checks + $3, \
           flags = CASE WHEN $3 = 1 THEN (flags | $4) ELSE flags END, \
           excluded = CASE WHEN $3 = 1 AND ((SELECT s.exclude_flags FROM studies s WHERE s.id = hits.study_id) & $4) <> 0 \
             THEN 1 ELSE excluded END \
         WHERE id = $5 \
         RETURNING study_id, answered, total, pairs, worker_key, flags, answered, fast_answers, left_answers, failed_checks",
    )
    .bind(now)
    .bind(i64::from(side == Side::Left))
    .bind(i64::from(wrong))
    .bind(Flags::FAILED_CHECK.bits())
    .bind(a.hit_id)
    .fetch_one(&mut *tx)
    .await?;
    let completion = if adv.answered >= adv.total {
        Some(complete(&mut tx, a.hit_id, &adv, now).await?)
    } else {
        None
    };
    tx.commit().await?;
    Ok(AnswerAck {
        answered: adv.answered as u32,
        completion,
    })
}

/// The HIT's last answer: judge it by the quality rules, mark it completed, and count its answers towards
/// the design when it is valid.
async fn complete(tx: &mut Tx<'_>, hit_id: i64, adv: &Advanced, now: i64) -> AppResult<Completion> {
    let study = study::by_id(&mut **tx, adv.study_id)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("study {} vanished", adv.study_id)))?;
    let rules = &study.settings.rules;
    let excluding = rules.excluding();
    let old = Flags::from_bits_truncate(adv.flags);
    let flags = match rules.scope {
        quality::QcScope::Hit => (old - quality::RULE_FLAGS) | rules.judge(&adv.counters),
        // Judged with the worker's other HITs below.
        quality::QcScope::Worker => old,
    };
    let excluded = flags.intersects(excluding);
    let (code, platform, assignment_key, turk_submit_to): (String, String, String, String) =
        sqlx::query_as(
        "UPDATE hits SET status = 'completed', completed_at = $1, flags = $2, excluded = $3, exclusion_reason = $4 \
         WHERE id = $5 RETURNING completion_code, platform, assignment_key, turk_submit_to",
    )
    .bind(now)
    .bind(flags.bits())
    .bind(i64::from(excluded))
    .bind((flags & excluding).joined())
    .bind(hit_id)
    .fetch_one(&mut **tx)
    .await?;
    // Valid answers this completion adds to the design's fill.
    let mut gained = if excluded { 0 } else { adv.pairs };
    let mut changed = flags != old;
    if rules.scope == quality::QcScope::Worker {
        // This HIT's counters may flag (or clear) every HIT of the worker, this one included.
        for c in design::reflag(tx, &study, Some(&adv.worker_key)).await? {
            changed = true;
            if c.was_valid != c.is_valid {
                gained += if c.is_valid { c.pairs } else { -c.pairs };
            }
        }
    }
    if gained != 0 || changed {
        let (valid,): (i64,) = sqlx::query_as(
            "UPDATE studies SET valid_answers = valid_answers + $1, flags_version = flags_version + $2 \
             WHERE id = $3 RETURNING valid_answers",
        )
        .bind(gained)
        .bind(i64::from(changed))
        .bind(study.id)
        .fetch_one(&mut **tx)
        .await?;
        if study.state == StudyState::Live && valid >= study.target_answers() {
            study::write_state(tx, study.id, StudyState::Complete).await?;
            tracing::info!(
                "study {}: design full ({valid} valid answers): complete",
                study.slug
            );
        }
    }
    Ok(super::assign::completion(
        &study,
        &super::assign::CompletionFields {
            platform: super::assign::Platform::try_from(platform)
                .map_err(|e| anyhow::anyhow!("hits.platform: {e}"))?,
            assignment_key,
            turk_submit_to,
            completion_code: code,
        },
    ))
}

#[derive(sqlx::FromRow)]
struct HitState {
    id: i64,
    #[sqlx(try_from = "String")]
    status: HitStatus,
    abandoned_at: Option<i64>,
    answered: i64,
    total: i64,
    flags: i64,
    last_seen_at: i64,
    study_id: i64,
}

/// Why the answer did not match, with nothing changed (or, for a HIT found past its timeout, only the
/// abandonment recorded); a repeat of the stored answer is a success.
async fn refused(
    tx: &mut Tx<'_>,
    token: &str,
    position: i64,
    side: Side,
    now: i64,
) -> AppResult<AnswerAck> {
    let hit: Option<HitState> = sqlx::query_as(
        "SELECT id, status, abandoned_at, answered, total, flags, last_seen_at, study_id FROM hits WHERE token = $1",
    )
    .bind(token)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(h) = hit else {
        return Err(AppError::NotFound("no such HIT".into()));
    };
    if position < 0 || position >= h.total {
        return Err(AppError::NotFound(format!(
            "trial {position}: this HIT has trials 0 to {}",
            h.total - 1
        )));
    }
    let study = study::by_id(&mut **tx, h.study_id)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("study {} vanished", h.study_id)))?;
    let (stored,): (Option<String>,) =
        sqlx::query_as("SELECT answer FROM trials WHERE hit_id = $1 AND position = $2")
            .bind(h.id)
            .bind(position)
            .fetch_one(&mut **tx)
            .await?;
    let repeat = stored.as_deref() == Some(side.as_str());
    if repeat {
        // A double click or a network retry of an answer that was stored: harmless.
        let completion = if h.status == HitStatus::Completed {
            Some(super::assign::completion_of(&mut **tx, &study, h.id).await?)
        } else {
            None
        };
        return Ok(AnswerAck {
            answered: h.answered as u32,
            completion,
        });
    }
    if Flags::from_bits_truncate(h.flags).contains(Flags::BLOCKED) {
        return Err(AppError::Conflict(
            "You cannot take part in this study; this answer was not saved.".into(),
        ));
    }
    if h.status == HitStatus::Completed {
        return Err(AppError::Conflict(
            "this HIT is finished: its answers cannot be changed".into(),
        ));
    }
    if h.abandoned_at.is_some() || h.last_seen_at < now - study.timeout_ms() {
        if h.abandoned_at.is_none() {
            sqlx::query("UPDATE hits SET abandoned_at = $1 WHERE id = $2")
                .bind(now)
                .bind(h.id)
                .execute(&mut **tx)
                .await?;
            sqlx::query("UPDATE studies SET flags_version = flags_version + 1 WHERE id = $1")
                .bind(study.id)
                .execute(&mut **tx)
                .await?;
        }
        return Err(AppError::Conflict(
            "This task timed out because it was inactive for too long; this answer was not saved. \
             If you accepted it on MTurk or Prolific, please return it."
                .into(),
        ));
    }
    if let Some(m) = super::assign::closed_message(study.state) {
        return Err(AppError::Conflict(format!(
            "{m} This answer was not saved."
        )));
    }
    if stored.is_some() {
        return Err(AppError::Conflict(format!(
            "trial {position} was already answered; the first answer is final"
        )));
    }
    Err(AppError::Conflict(format!(
        "trial {position} is not the next one: answer trial {} first",
        h.answered
    )))
}
