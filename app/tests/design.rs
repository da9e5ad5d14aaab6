//! Design, assignment and exclusion logic on a real database per test: every test runs on SQLite and on
//! PostgreSQL (`NAME::sqlite`, `NAME::postgres`).

mod common;

use std::collections::HashSet;

use app::api::{Completion, EntryParams, MTURK_PREVIEW};
use app::server::{assign, study};
use common::*;

on_both_backends!(
    full_design_is_every_pair_times_every_scene,
    hit_has_t_trials_plus_c_checks_with_distinct_items,
    left_right_and_positions_are_randomised,
    worker_never_sees_the_same_pair_and_scene_twice,
    fewest_answers_first_fills_the_design_evenly,
    in_progress_hits_hold_their_trials_until_timeout,
    failed_check_excludes_the_hit_and_its_answers_stop_counting,
    double_submission_is_idempotent_and_first_answer_wins,
    chosen_condition_follows_the_side_clicked,
    resume_after_reload_shows_answers_so_far,
    preview_records_nothing,
    study_states_limits_and_blocking,
    entry_parameters_are_validated,
);

async fn full_design_is_every_pair_times_every_scene(t: TestDb) {
    let s = live_study(&t, 4, 3, |_| {}).await;
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
            .all(|i| i.condition_a < i.condition_b && i.valid == 0)
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
    let hit = assign::start(&t.db, &s.slug, &mturk("A1", "W1"))
        .await
        .unwrap();
    assert_eq!(hit.trials.len(), 9 + 2);
    let trials = trials_of(&t, "mturk:A1").await;
    let checks: Vec<_> = trials.iter().filter(|x| x.1 == "check").collect();
    assert_eq!(checks.len(), 2);
    assert!(checks.iter().all(|c| c.2.is_some()));
    let items: HashSet<_> = trials.iter().filter_map(|x| x.3).collect();
    assert_eq!(items.len(), 9, "no pair-and-scene twice in a HIT");
    // Starting again (reload, double click) returns the same HIT.
    let again = assign::start(&t.db, &s.slug, &mturk("A1", "W1"))
        .await
        .unwrap();
    assert_eq!(again, hit);
}

async fn left_right_and_positions_are_randomised(t: TestDb) {
    let s = live_study(&t, 4, 3, |x| x.max_hits_per_worker = 100).await;
    let mut check_positions = HashSet::new();
    let mut left_is_a = 0;
    let mut pairs = 0;
    for i in 0..40 {
        assign::start(&t.db, &s.slug, &mturk(&format!("A{i}"), &format!("W{i}")))
            .await
            .unwrap();
        for (pos, (_, kind, _, _)) in trials_of(&t, &format!("mturk:A{i}"))
            .await
            .iter()
            .enumerate()
        {
            if kind == "check" {
                check_positions.insert(pos);
            }
        }
    }
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT il.condition_id, d.condition_a FROM trials t JOIN images il ON il.id = t.left_image_id \
         JOIN design_items d ON d.id = t.design_item_id",
    )
    .fetch_all(&t.db)
    .await
    .unwrap();
    for (left, a) in rows {
        pairs += 1;
        left_is_a += (left == a) as i32;
    }
    assert!(
        check_positions.len() >= 5,
        "checks at varied positions: {check_positions:?}"
    );
    assert!(
        left_is_a > pairs / 4 && left_is_a < pairs * 3 / 4,
        "{left_is_a} of {pairs}"
    );
}

async fn worker_never_sees_the_same_pair_and_scene_twice(t: TestDb) {
    let s = live_study(&t, 4, 3, |x| x.max_hits_per_worker = 5).await;
    let mut seen = HashSet::new();
    for a in ["A1", "A2"] {
        assign::start(&t.db, &s.slug, &mturk(a, "W1"))
            .await
            .unwrap();
        for (_, _, _, item) in trials_of(&t, &format!("mturk:{a}")).await {
            if let Some(i) = item {
                assert!(seen.insert(i), "item {i} given twice to W1");
            }
        }
    }
    assert_eq!(seen.len(), 18);
    let err = assign::start(&t.db, &s.slug, &mturk("A3", "W1"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no more trials"), "{err}");
}

async fn fewest_answers_first_fills_the_design_evenly(t: TestDb) {
    let s = live_study(&t, 4, 3, |_| {}).await;
    assign::start(&t.db, &s.slug, &mturk("A1", "W1"))
        .await
        .unwrap();
    complete(&t, &s.slug, "mturk:A1", false).await;
    assign::start(&t.db, &s.slug, &mturk("A2", "W2"))
        .await
        .unwrap();
    let first: HashSet<_> = trials_of(&t, "mturk:A1")
        .await
        .iter()
        .filter_map(|x| x.3)
        .collect();
    let second: HashSet<_> = trials_of(&t, "mturk:A2")
        .await
        .iter()
        .filter_map(|x| x.3)
        .collect();
    assert!(
        first.is_disjoint(&second),
        "W2 must get the 9 unanswered items"
    );
    complete(&t, &s.slug, "mturk:A2", false).await;
    let items = study::item_progress(&t.db, s.id).await.unwrap();
    assert!(
        items.iter().all(|i| i.valid == 1),
        "every item answered exactly once: {items:?}"
    );
    let c = study::hit_counts(&t.db, s.id).await.unwrap();
    assert_eq!((c.started, c.completed, c.excluded), (2, 2, 0));
}

async fn in_progress_hits_hold_their_trials_until_timeout(t: TestDb) {
    let s = live_study(&t, 4, 3, |x| x.hit_timeout_s = 60).await;
    assign::start(&t.db, &s.slug, &mturk("A1", "W1"))
        .await
        .unwrap();
    assign::start(&t.db, &s.slug, &mturk("A2", "W2"))
        .await
        .unwrap();
    let first: HashSet<_> = trials_of(&t, "mturk:A1")
        .await
        .iter()
        .filter_map(|x| x.3)
        .collect();
    let second: HashSet<_> = trials_of(&t, "mturk:A2")
        .await
        .iter()
        .filter_map(|x| x.3)
        .collect();
    assert!(first.is_disjoint(&second), "active HITs hold their trials");
    // Both abandon: their last activity is now older than the timeout.
    sqlx::query("UPDATE hits SET last_seen_at = last_seen_at - 61000")
        .execute(&t.db)
        .await
        .unwrap();
    // A1's trials are back in the pool: a third worker's 9 items are all load 0 again, drawn from all 18.
    for i in 0..5 {
        assign::start(&t.db, &s.slug, &mturk(&format!("B{i}"), &format!("V{i}")))
            .await
            .unwrap();
        sqlx::query("UPDATE hits SET last_seen_at = last_seen_at - 61000")
            .execute(&t.db)
            .await
            .unwrap();
    }
    let reused: HashSet<i64> = sqlx::query_as::<_, (i64,)>(
        "SELECT t.design_item_id FROM trials t JOIN hits h ON h.id = t.hit_id WHERE h.worker_key LIKE 'mturk:V%' AND t.design_item_id IS NOT NULL",
    )
    .fetch_all(&t.db)
    .await
    .unwrap()
    .into_iter()
    .map(|x| x.0)
    .collect();
    assert!(
        !reused.is_disjoint(&first),
        "abandoned trials return to the pool"
    );
}

async fn failed_check_excludes_the_hit_and_its_answers_stop_counting(t: TestDb) {
    let s = live_study(&t, 4, 3, |_| {}).await;
    assign::start(&t.db, &s.slug, &mturk("A1", "W1"))
        .await
        .unwrap();
    let done = complete(&t, &s.slug, "mturk:A1", true).await;
    assert!(
        matches!(done.completion, Some(Completion::Mturk { .. })),
        "an excluded HIT still completes"
    );
    let (excluded, reason): (i64, String) = sqlx::query_as(
        "SELECT excluded, exclusion_reason FROM hits WHERE assignment_key = 'mturk:A1'",
    )
    .fetch_one(&t.db)
    .await
    .unwrap();
    assert_eq!(excluded, 1);
    assert!(reason.contains("attention check"));
    let items = study::item_progress(&t.db, s.id).await.unwrap();
    assert!(items.iter().all(|i| i.valid == 0));
    assert_eq!(
        items.iter().map(|i| i.excluded).sum::<i64>(),
        9,
        "raw data kept, flagged"
    );
    // The excluded HIT's items go back to the pool: W2 gets 9 items of load 0, which include A1's.
    assign::start(&t.db, &s.slug, &mturk("A2", "W2"))
        .await
        .unwrap();
    complete(&t, &s.slug, "mturk:A2", false).await;
    assign::start(&t.db, &s.slug, &mturk("A3", "W3"))
        .await
        .unwrap();
    complete(&t, &s.slug, "mturk:A3", false).await;
    let items = study::item_progress(&t.db, s.id).await.unwrap();
    assert!(
        items.iter().all(|i| i.valid == 1),
        "the design fills despite the excluded HIT"
    );
}

async fn double_submission_is_idempotent_and_first_answer_wins(t: TestDb) {
    let s = live_study(&t, 3, 1, |x| x.checks_per_hit = 0).await;
    let hit = assign::start(&t.db, &s.slug, &mturk("A1", "W1"))
        .await
        .unwrap();
    let id = hit.trials[0].id;
    let a = assign::answer(&t.db, &s.slug, "mturk:A1", id, "left", 500)
        .await
        .unwrap();
    let b = assign::answer(&t.db, &s.slug, "mturk:A1", id, "left", 500)
        .await
        .unwrap();
    let c = assign::answer(&t.db, &s.slug, "mturk:A1", id, "right", 900)
        .await
        .unwrap_err();
    assert!(c.to_string().contains("first answer is final"), "{c}");
    assert_eq!(a, b);
    assert_eq!(a.answered(), 1);
    let (answer, rt): (String, i64) =
        sqlx::query_as("SELECT answer, rt_ms FROM trials WHERE id = $1")
            .bind(id)
            .fetch_one(&t.db)
            .await
            .unwrap();
    assert_eq!((answer.as_str(), rt), ("left", 500));
    // Someone else's trial id or a bogus side is refused.
    assert!(
        assign::answer(&t.db, &s.slug, "mturk:A1", id + 1000, "left", 1)
            .await
            .is_err()
    );
    assert!(
        assign::answer(&t.db, &s.slug, "mturk:A1", id, "up", 1)
            .await
            .is_err()
    );
}

async fn chosen_condition_follows_the_side_clicked(t: TestDb) {
    let s = live_study(&t, 3, 1, |x| x.checks_per_hit = 0).await;
    let hit = assign::start(&t.db, &s.slug, &mturk("A1", "W1"))
        .await
        .unwrap();
    for tr in &hit.trials {
        assign::answer(&t.db, &s.slug, "mturk:A1", tr.id, "right", 10)
            .await
            .unwrap();
    }
    let bad: (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM trials t JOIN images ir ON ir.id = t.right_image_id WHERE t.chosen_condition_id <> ir.condition_id",
    )
    .fetch_one(&t.db)
    .await
    .unwrap();
    assert_eq!(bad.0, 0);
}

async fn resume_after_reload_shows_answers_so_far(t: TestDb) {
    let s = live_study(&t, 4, 3, |_| {}).await;
    let hit = assign::start(&t.db, &s.slug, &mturk("A1", "W1"))
        .await
        .unwrap();
    assign::answer(&t.db, &s.slug, "mturk:A1", hit.trials[0].id, "left", 10)
        .await
        .unwrap();
    let entry = assign::enter(&t.db, &s.slug, &mturk("A1", "W1"))
        .await
        .unwrap();
    let resumed = entry.hit.unwrap();
    assert_eq!(resumed.answered(), 1);
    assert_eq!(resumed.trials.len(), 10);
}

async fn preview_records_nothing(t: TestDb) {
    let s = live_study(&t, 4, 3, |_| {}).await;
    let p = EntryParams {
        assignment_id: Some(MTURK_PREVIEW.into()),
        ..Default::default()
    };
    let e = assign::enter(&t.db, &s.slug, &p).await.unwrap();
    assert!(e.preview && e.example.is_some() && e.hit.is_none());
    assert!(assign::start(&t.db, &s.slug, &p).await.is_err());
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM hits")
        .fetch_one(&t.db)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

async fn study_states_limits_and_blocking(t: TestDb) {
    let s = live_study(&t, 4, 3, |x| x.max_hits_per_worker = 1).await;
    assign::start(&t.db, &s.slug, &mturk("A1", "W1"))
        .await
        .unwrap();
    let err = assign::start(&t.db, &s.slug, &mturk("A2", "W1"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("maximum"), "{err}");
    study::block_worker(&t.db, s.id, "mturk:W2", "test")
        .await
        .unwrap();
    assert!(
        assign::start(&t.db, &s.slug, &mturk("A3", "W2"))
            .await
            .is_err()
    );
    study::set_state(&t.db, s.id, study::StudyState::Paused)
        .await
        .unwrap();
    let err = assign::start(&t.db, &s.slug, &mturk("A4", "W4"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("paused"));
    // Existing HITs may still be finished while paused.
    complete(&t, &s.slug, "mturk:A1", false).await;
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
}

async fn entry_parameters_are_validated(t: TestDb) {
    let s = live_study(&t, 3, 1, |_| {}).await;
    let mut p = mturk("A1", "W1");
    p.turk_submit_to = Some("https://evil.example.com".into());
    let err = assign::start(&t.db, &s.slug, &p).await.unwrap_err();
    assert!(err.to_string().contains("turkSubmitTo"), "{err}");
    let p = EntryParams {
        prolific_pid: Some("P1".into()),
        ..Default::default()
    };
    assert!(
        assign::start(&t.db, &s.slug, &p)
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
    let hit = assign::start(&t.db, &s.slug, &p).await.unwrap();
    assert_eq!(hit.key, "prolific:S1");
    // A direct link without an id gets a fresh anonymous id, kept in the URL by the page.
    let d = assign::start(&t.db, &s.slug, &EntryParams::default())
        .await
        .unwrap();
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
    let done = complete(&t, &s.slug, &d.key, false).await;
    assert!(matches!(done.completion, Some(Completion::Direct { .. })));
}
