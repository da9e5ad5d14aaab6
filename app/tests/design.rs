//! Design, assignment and exclusion logic on a real database per test: every test runs on SQLite and on
//! PostgreSQL (`NAME::sqlite`, `NAME::postgres`). The assignment is seeded (`common::start`), so these tests
//! are exact.

mod common;

use std::collections::HashSet;

use app::api::{Completion, EntryParams, MTURK_PREVIEW, Side};
use app::server::fault::AppError;
use app::server::quality::Flags;
use app::server::{answer, assign, study};
use common::*;

on_both_backends!(
    full_design_is_every_pair_times_every_scene,
    hit_has_t_trials_plus_c_checks_with_distinct_items,
    worker_never_sees_the_same_pair_and_scene_twice,
    fewest_answers_first_fills_the_design_evenly,
    in_progress_hits_hold_their_trials_until_timeout,
    failed_check_excludes_the_hit_and_its_answers_stop_counting,
    double_submission_is_idempotent_and_first_answer_wins,
    trials_are_answered_in_order,
    chosen_condition_follows_the_side_clicked,
    resume_after_reload_shows_answers_so_far,
    preview_records_nothing,
    study_states_limits_and_blocking,
    entry_parameters_are_validated,
    quality_rules_flag_and_exclude,
    changing_the_rules_requalifies_every_hit,
);

fn items(trials: &[StoredTrial]) -> HashSet<i64> {
    trials.iter().filter_map(|x| x.design_item_id).collect()
}

async fn full_design_is_every_pair_times_every_scene(t: TestDb) {
    let s = live_study(&t, 4, 3, |_| {}).await;
    assert_eq!(s.design_size, 18);
    let items = study::item_progress(&t.db, s.id).await.unwrap();
    assert_eq!(items.len(), 6 * 3);
    let unique: HashSet<_> = items
        .iter()
        .map(|i| {
            (
                i.scene.clone(),
                i.condition_a.clone(),
                i.condition_b.clone(),
            )
        })
        .collect();
    assert_eq!(unique.len(), 18);
    assert!(
        items
            .iter()
            .all(|i| i.condition_a < i.condition_b && i.valid == 0 && i.load == 0)
    );
    let (checks,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM check_items WHERE study_id = $1")
        .bind(s.id)
        .fetch_one(&t.db)
        .await
        .unwrap();
    assert_eq!(checks, 3, "one generated check per scene");
}

async fn hit_has_t_trials_plus_c_checks_with_distinct_items(t: TestDb) {
    let s = live_study(&t, 4, 3, |x| x.checks_per_hit = 2).await;
    let hit = start(&t, &s.slug, &mturk("A1", "W1")).await.unwrap();
    assert_eq!(hit.trials.len(), 9 + 2);
    let trials = trials_of(&t, &hit.key).await;
    let checks: Vec<_> = trials.iter().filter(|x| x.kind == "check").collect();
    assert_eq!(checks.len(), 2);
    assert!(checks.iter().all(|c| c.correct_side.is_some()));
    assert_eq!(items(&trials).len(), 9, "no pair-and-scene twice in a HIT");
    let loads: i64 = study::item_progress(&t.db, s.id)
        .await
        .unwrap()
        .iter()
        .map(|i| i.load)
        .sum();
    assert_eq!(loads, 9, "the HIT holds its 9 items");
    // Starting again (reload, double click) returns the same HIT.
    let again = start(&t, &s.slug, &mturk("A1", "W1")).await.unwrap();
    assert_eq!(again, hit);
}

async fn worker_never_sees_the_same_pair_and_scene_twice(t: TestDb) {
    let s = live_study(&t, 4, 3, |x| {
        x.max_hits_per_worker = 5;
        x.repetitions = 3;
    })
    .await;
    let mut seen = HashSet::new();
    for a in ["A1", "A2"] {
        let h = start(&t, &s.slug, &mturk(a, "W1")).await.unwrap();
        for i in items(&trials_of(&t, &h.key).await) {
            assert!(seen.insert(i), "item {i} given twice to W1");
        }
    }
    assert_eq!(seen.len(), 18);
    let err = start(&t, &s.slug, &mturk("A3", "W1")).await.unwrap_err();
    assert!(
        matches!(&err, AppError::Conflict(m) if m.contains("already seen every comparison")),
        "{err}"
    );
}

async fn fewest_answers_first_fills_the_design_evenly(t: TestDb) {
    let s = live_study(&t, 4, 3, |x| x.repetitions = 2).await;
    let a = start(&t, &s.slug, &mturk("A1", "W1")).await.unwrap();
    complete(&t, &a.key, false).await;
    let b = start(&t, &s.slug, &mturk("A2", "W2")).await.unwrap();
    let first = items(&trials_of(&t, &a.key).await);
    let second = items(&trials_of(&t, &b.key).await);
    assert!(
        first.is_disjoint(&second),
        "W2 must get 9 items nobody answered yet"
    );
    complete(&t, &b.key, false).await;
    let progress = study::item_progress(&t.db, s.id).await.unwrap();
    assert_eq!(progress.iter().filter(|i| i.valid == 1).count(), 18);
    assert!(progress.iter().all(|i| i.load == i.valid));
    let c = study::hit_counts(&t.db, s.id).await.unwrap();
    assert_eq!((c.started, c.completed, c.excluded), (2, 2, 0));
    assert_eq!(reload(&t, &s).await.valid_answers, 18);
}

async fn in_progress_hits_hold_their_trials_until_timeout(t: TestDb) {
    let s = live_study(&t, 4, 3, |x| x.hit_timeout_s = 60).await;
    let a = start(&t, &s.slug, &mturk("A1", "W1")).await.unwrap();
    let b = start(&t, &s.slug, &mturk("A2", "W2")).await.unwrap();
    let a_trials = trials_of(&t, &a.key).await;
    let first = items(&a_trials);
    let second = items(&trials_of(&t, &b.key).await);
    assert!(first.is_disjoint(&second), "active HITs hold their trials");
    // Repetitions 1 and 18 items: the two HITs hold all of them, so a third worker must wait.
    let err = start(&t, &s.slug, &mturk("A3", "W3")).await.unwrap_err();
    assert!(
        matches!(&err, AppError::Conflict(m) if m.contains("assigned to other participants")),
        "{err}"
    );
    // A1 answers up to its first pair and leaves: past the timeout its HIT is abandoned at the next start.
    let first_pair = a_trials.iter().position(|x| x.kind == "pair").unwrap() as u32;
    for position in 0..=first_pair {
        answer::answer(&t.db, &a.key, position, Side::Left, 10)
            .await
            .unwrap();
    }
    age_hit(&t, &a.key, 61_000).await;
    let c = start(&t, &s.slug, &mturk("A3", "W3")).await.unwrap();
    let third = items(&trials_of(&t, &c.key).await);
    assert!(
        third.is_subset(&first),
        "abandoned items return to the pool"
    );
    assert_eq!(third.len(), 9);
    let (abandoned,): (Option<i64>,) =
        sqlx::query_as("SELECT abandoned_at FROM hits WHERE token = $1")
            .bind(&a.key)
            .fetch_one(&t.db)
            .await
            .unwrap();
    assert!(abandoned.is_some());
    // The abandoned HIT takes no more answers, and the page says why.
    let err = answer::answer(&t.db, &a.key, first_pair + 1, Side::Left, 10)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AppError::Conflict(m) if m.contains("timed out")),
        "{err}"
    );
    let e = assign::enter(&t.db, &s.slug, &mturk("A1", "W1"))
        .await
        .unwrap();
    assert!(e.hit.is_none() && e.message.unwrap().contains("timed out"));
    let progress = study::item_progress(&t.db, s.id).await.unwrap();
    assert_eq!(progress.iter().map(|i| i.abandoned).sum::<i64>(), 1);
}

async fn failed_check_excludes_the_hit_and_its_answers_stop_counting(t: TestDb) {
    let s = live_study(&t, 4, 3, |_| {}).await;
    let a = start(&t, &s.slug, &mturk("A1", "W1")).await.unwrap();
    let done = complete(&t, &a.key, true).await;
    assert!(
        matches!(done.completion, Some(Completion::Mturk { .. })),
        "an excluded HIT still completes"
    );
    let (excluded, reason, flags): (i64, String, i64) =
        sqlx::query_as("SELECT excluded, exclusion_reason, flags FROM hits WHERE token = $1")
            .bind(&a.key)
            .fetch_one(&t.db)
            .await
            .unwrap();
    assert_eq!(excluded, 1);
    assert_eq!(reason, "failed_check");
    assert!(Flags::from_bits_truncate(flags).contains(Flags::FAILED_CHECK));
    let progress = study::item_progress(&t.db, s.id).await.unwrap();
    assert!(progress.iter().all(|i| i.valid == 0));
    assert_eq!(
        progress.iter().map(|i| i.excluded).sum::<i64>(),
        9,
        "raw data kept, flagged"
    );
    assert_eq!(reload(&t, &s).await.valid_answers, 0);
    // The excluded HIT's items go back to the pool: two honest HITs fill the whole design.
    for (x, w) in [("A2", "W2"), ("A3", "W3")] {
        let h = start(&t, &s.slug, &mturk(x, w)).await.unwrap();
        complete(&t, &h.key, false).await;
    }
    let progress = study::item_progress(&t.db, s.id).await.unwrap();
    assert!(
        progress.iter().all(|i| i.valid == 1),
        "the design fills despite the excluded HIT"
    );
    let s = reload(&t, &s).await;
    assert_eq!(s.valid_answers, 18);
    assert_eq!(
        s.state,
        study::StudyState::Complete,
        "a full design completes the study"
    );
}

async fn double_submission_is_idempotent_and_first_answer_wins(t: TestDb) {
    let s = live_study(&t, 3, 1, |x| x.checks_per_hit = 0).await;
    let hit = start(&t, &s.slug, &mturk("A1", "W1")).await.unwrap();
    let a = answer::answer(&t.db, &hit.key, 0, Side::Left, 500)
        .await
        .unwrap();
    let b = answer::answer(&t.db, &hit.key, 0, Side::Left, 500)
        .await
        .unwrap();
    let c = answer::answer(&t.db, &hit.key, 0, Side::Right, 900)
        .await
        .unwrap_err();
    assert!(
        matches!(&c, AppError::Conflict(m) if m.contains("first answer is final")),
        "{c}"
    );
    assert_eq!(a, b);
    assert_eq!(a.answered, 1);
    let stored = trials_of(&t, &hit.key).await;
    assert_eq!(stored[0].answer.as_deref(), Some("left"));
    let (rt,): (i64,) = sqlx::query_as(
        "SELECT t.rt_ms FROM trials t JOIN hits h ON h.id = t.hit_id WHERE h.token = $1 AND t.position = 0",
    )
    .bind(&hit.key)
    .fetch_one(&t.db)
    .await
    .unwrap();
    assert_eq!(rt, 500);
    // A trial the HIT does not have, or a token nobody was given, is refused.
    assert!(matches!(
        answer::answer(&t.db, &hit.key, 99, Side::Left, 1).await,
        Err(AppError::NotFound(_))
    ));
    assert!(matches!(
        answer::answer(&t.db, &"0".repeat(32), 1, Side::Left, 1).await,
        Err(AppError::NotFound(_))
    ));
}

async fn trials_are_answered_in_order(t: TestDb) {
    let s = live_study(&t, 3, 2, |_| {}).await;
    let hit = start(&t, &s.slug, &mturk("A1", "W1")).await.unwrap();
    let err = answer::answer(&t.db, &hit.key, 2, Side::Left, 10)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AppError::Conflict(m) if m.contains("answer trial 0 first")),
        "{err}"
    );
    assert!(
        trials_of(&t, &hit.key)
            .await
            .iter()
            .all(|x| x.answer.is_none()),
        "nothing stored"
    );
    answer::answer(&t.db, &hit.key, 0, Side::Left, 10)
        .await
        .unwrap();
    answer::answer(&t.db, &hit.key, 1, Side::Right, 10)
        .await
        .unwrap();
}

async fn chosen_condition_follows_the_side_clicked(t: TestDb) {
    let s = live_study(&t, 3, 1, |x| x.checks_per_hit = 0).await;
    let hit = start(&t, &s.slug, &mturk("A1", "W1")).await.unwrap();
    for tr in &hit.trials {
        answer::answer(&t.db, &hit.key, tr.position, Side::Right, 10)
            .await
            .unwrap();
    }
    let (bad,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM trials t JOIN images ir ON ir.id = t.right_image_id WHERE t.chosen_condition_id <> ir.condition_id",
    )
    .fetch_one(&t.db)
    .await
    .unwrap();
    assert_eq!(bad, 0);
}

async fn resume_after_reload_shows_answers_so_far(t: TestDb) {
    let s = live_study(&t, 4, 3, |_| {}).await;
    let hit = start(&t, &s.slug, &mturk("A1", "W1")).await.unwrap();
    answer::answer(&t.db, &hit.key, 0, Side::Left, 10)
        .await
        .unwrap();
    let entry = assign::enter(&t.db, &s.slug, &mturk("A1", "W1"))
        .await
        .unwrap();
    let resumed = entry.hit.unwrap();
    assert_eq!(resumed.answered, 1);
    assert_eq!(resumed.trials, hit.trials, "the same trials and image URLs");
}

async fn preview_records_nothing(t: TestDb) {
    let s = live_study(&t, 4, 3, |_| {}).await;
    let p = EntryParams {
        assignment_id: Some(MTURK_PREVIEW.into()),
        ..Default::default()
    };
    let e = assign::enter(&t.db, &s.slug, &p).await.unwrap();
    assert!(e.preview && e.example.is_some() && e.hit.is_none());
    assert!(start(&t, &s.slug, &p).await.is_err());
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM hits")
        .fetch_one(&t.db)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

async fn study_states_limits_and_blocking(t: TestDb) {
    let s = live_study(&t, 4, 3, |x| {
        x.max_hits_per_worker = 1;
        x.repetitions = 5;
    })
    .await;
    let a1 = start(&t, &s.slug, &mturk("A1", "W1")).await.unwrap();
    let err = start(&t, &s.slug, &mturk("A2", "W1")).await.unwrap_err();
    assert!(err.to_string().contains("maximum"), "{err}");
    study::block_worker(&t.db, s.id, "mturk:W2", "test")
        .await
        .unwrap();
    assert!(start(&t, &s.slug, &mturk("A3", "W2")).await.is_err());
    study::set_state(&t.db, s.id, study::StudyState::Paused)
        .await
        .unwrap();
    let err = start(&t, &s.slug, &mturk("A4", "W4")).await.unwrap_err();
    assert!(err.to_string().contains("paused"));
    // Answers wait while the study is paused, and nothing is stored.
    let err = answer::answer(&t.db, &a1.key, 0, Side::Left, 10)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AppError::Conflict(m) if m.contains("paused")),
        "{err}"
    );
    assert!(
        trials_of(&t, &a1.key)
            .await
            .iter()
            .all(|x| x.answer.is_none())
    );
    study::set_state(&t.db, s.id, study::StudyState::Live)
        .await
        .unwrap();
    complete(&t, &a1.key, false).await;
    study::set_state(&t.db, s.id, study::StudyState::Closed)
        .await
        .unwrap();
    assert!(
        study::set_state(&t.db, s.id, study::StudyState::Live)
            .await
            .is_err(),
        "closed is final"
    );
    assert!(
        study::set_state(&t.db, s.id, study::StudyState::Draft)
            .await
            .is_err()
    );
    // A closed study shows nothing of itself.
    let e = assign::enter(&t.db, &s.slug, &mturk("A9", "W9"))
        .await
        .unwrap();
    assert!(e.study_name.is_empty() && e.question.is_empty() && e.example.is_none());
    assert!(e.message.unwrap().contains("closed"));
}

async fn entry_parameters_are_validated(t: TestDb) {
    let s = live_study(&t, 3, 4, |x| x.repetitions = 10).await;
    let mut p = mturk("A1", "W1");
    p.turk_submit_to = Some("https://evil.example.com".into());
    let err = start(&t, &s.slug, &p).await.unwrap_err();
    assert!(
        matches!(&err, AppError::BadRequest(m) if m.contains("turkSubmitTo")),
        "{err}"
    );
    for bad in ["=HYPERLINK(\"x\")", "-1", "a b"] {
        let err = start(&t, &s.slug, &mturk("A1", bad)).await.unwrap_err();
        assert!(
            matches!(&err, AppError::BadRequest(m) if m.contains("workerId")),
            "{err}"
        );
    }
    let p = EntryParams {
        prolific_pid: Some("P1".into()),
        ..Default::default()
    };
    assert!(
        start(&t, &s.slug, &p)
            .await
            .unwrap_err()
            .to_string()
            .contains("SESSION_ID")
    );
    let p = EntryParams {
        prolific_pid: Some("P1".into()),
        prolific_session_id: Some("S1".into()),
        prolific_study_id: Some("ST".into()),
        ..Default::default()
    };
    let hit = start(&t, &s.slug, &p).await.unwrap();
    let (key,): (String,) = sqlx::query_as("SELECT assignment_key FROM hits WHERE token = $1")
        .bind(&hit.key)
        .fetch_one(&t.db)
        .await
        .unwrap();
    assert_eq!(key, "prolific:S1");
    assert_ne!(
        hit.key, key,
        "the page sees a random token, not a platform id"
    );
    // A direct link without an id gets a fresh anonymous id, kept in the URL by the page.
    let d = start(&t, &s.slug, &EntryParams::default()).await.unwrap();
    let pid = d.pid.clone().unwrap();
    let again = assign::enter(
        &t.db,
        &s.slug,
        &EntryParams {
            pid: Some(pid),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(again.hit.unwrap().key, d.key);
    // A pid the server never issued starts a new HIT with a new id instead of being taken over.
    let forged = start(
        &t,
        &s.slug,
        &EntryParams {
            pid: Some("forged1".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_ne!(forged.pid.as_deref(), Some("forged1"));
    let done = complete(&t, &d.key, false).await;
    assert!(matches!(done.completion, Some(Completion::Direct { .. })));
}

/// Answers a HIT as given: `sides` for the pairs in order, checks right; returns the HIT's flags.
async fn answer_with(t: &TestDb, token: &str, sides: impl Fn(usize) -> Side) -> Flags {
    let mut pair = 0;
    for tr in trials_of(t, token).await {
        let side = if tr.kind == "check" {
            check_side(tr.correct_side.as_deref(), true)
        } else {
            pair += 1;
            sides(pair - 1)
        };
        answer::answer(&t.db, token, tr.position as u32, side, 10)
            .await
            .unwrap();
    }
    let (f,): (i64,) = sqlx::query_as("SELECT flags FROM hits WHERE token = $1")
        .bind(token)
        .fetch_one(&t.db)
        .await
        .unwrap();
    Flags::from_bits_truncate(f)
}

async fn quality_rules_flag_and_exclude(t: TestDb) {
    // 10 trials: 9 pairs + 1 check; no check in the way of straight-lining (its side is random).
    let s = live_study(&t, 4, 3, |x| {
        x.repetitions = 10;
        x.max_hits_per_worker = 10;
        x.checks_per_hit = 0;
    })
    .await;
    let straight = start(&t, &s.slug, &mturk("A1", "W1")).await.unwrap();
    assert_eq!(
        answer_with(&t, &straight.key, |_| Side::Left).await,
        Flags::STRAIGHT_LINE,
        "9 of 9 left: p = 0.004"
    );
    let mixed = start(&t, &s.slug, &mturk("A2", "W2")).await.unwrap();
    assert_eq!(
        answer_with(&t, &mixed.key, |i| if i % 3 == 0 {
            Side::Right
        } else {
            Side::Left
        })
        .await,
        Flags::empty()
    );
    // The server's clock: with a 60 s minimum every answer of a script is fast.
    let mut settings = reload(&t, &s).await.settings;
    settings.rules.min_response_ms = 60_000;
    study::update_settings(&t.db, s.id, &settings)
        .await
        .unwrap();
    let fast = start(&t, &s.slug, &mturk("A3", "W3")).await.unwrap();
    let f = answer_with(&t, &fast.key, |i| {
        if i % 2 == 0 { Side::Right } else { Side::Left }
    })
    .await;
    assert_eq!(f, Flags::TOO_FAST);
    let (server_rt,): (i64,) = sqlx::query_as(
        "SELECT MAX(t.server_rt_ms) FROM trials t JOIN hits h ON h.id = t.hit_id WHERE h.token = $1",
    )
    .bind(&fast.key)
    .fetch_one(&t.db)
    .await
    .unwrap();
    assert!(server_rt < 60_000, "{server_rt}");
    // The new minimum applies to every HIT at once (from the stored times): now all three are flagged.
    let s = reload(&t, &s).await;
    assert_eq!(
        s.valid_answers, 0,
        "the mixed HIT was as fast as the script"
    );
    settings.rules.min_response_ms = 0;
    study::update_settings(&t.db, s.id, &settings)
        .await
        .unwrap();
    assert_eq!(
        reload(&t, &s).await.valid_answers,
        18,
        "the mixed and the fast HIT count again; the straight-lining one does not"
    );
}

async fn changing_the_rules_requalifies_every_hit(t: TestDb) {
    let s = live_study(&t, 4, 3, |x| {
        x.repetitions = 1;
        x.checks_per_hit = 0;
    })
    .await;
    let a = start(&t, &s.slug, &mturk("A1", "W1")).await.unwrap();
    answer_with(&t, &a.key, |_| Side::Left).await;
    let s1 = reload(&t, &s).await;
    assert_eq!(s1.valid_answers, 0);
    // Not excluding straight-lining any more: the HIT becomes valid and its items count again.
    let mut settings = s1.settings.clone();
    settings.rules.exclude -= Flags::STRAIGHT_LINE;
    study::update_settings(&t.db, s.id, &settings)
        .await
        .unwrap();
    let s2 = reload(&t, &s).await;
    assert_eq!(s2.valid_answers, 9);
    let progress = study::item_progress(&t.db, s.id).await.unwrap();
    assert_eq!(progress.iter().map(|i| i.valid).sum::<i64>(), 9);
    assert_eq!(progress.iter().map(|i| i.load).sum::<i64>(), 9);
    // Blocking the worker excludes the HIT in every view and gives its items back.
    study::block_worker(&t.db, s.id, "mturk:W1", "test")
        .await
        .unwrap();
    let s3 = reload(&t, &s).await;
    assert_eq!(s3.valid_answers, 0);
    let progress = study::item_progress(&t.db, s.id).await.unwrap();
    assert_eq!(progress.iter().map(|i| i.load).sum::<i64>(), 0);
    study::unblock_worker(&t.db, s.id, "mturk:W1")
        .await
        .unwrap();
    assert_eq!(reload(&t, &s).await.valid_answers, 9);
}
