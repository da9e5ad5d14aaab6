//! The paper's design as the acceptance case of a study that finishes: 8 conditions x 50 scenes, every
//! condition pair in every scene once (R = 1): 28 x 50 = 1,400 (pair, scene) items. Simulated observers
//! (MS-SSIM-driven, over HTTP, failing some checks) fill it; the study completes with exactly 1,400 valid
//! comparisons, and late arrivals are turned away politely. SQLite and PostgreSQL.

mod common;

use std::sync::Arc;

use app::observer::bots::{self, BotOptions};
use app::observer::judge::Judge;
use app::observer::model::ObserverModel;
use app::server::results::{self, ResultsOptions};
use app::server::study::{self, StudyState};
use common::*;

on_both_backends!(eight_conditions_fifty_scenes_fill_exactly_then_the_study_closes);

async fn eight_conditions_fifty_scenes_fill_exactly_then_the_study_closes(t: TestDb) {
    let s = live_study(&t, 8, 50, |x| {
        x.repetitions = 1;
        x.trials_per_hit = 9;
        x.checks_per_hit = 1;
        x.max_hits_per_worker = 1;
    })
    .await;
    assert_eq!(s.target_answers(), 1400);
    let (client, _server) = serve(&t, generous()).await;
    let judge = Judge::new();
    let model = ObserverModel {
        jnd_step: 0.02,
        check_fail_rate: 0.05,
    };
    // Rounds of new observers until the study says it is complete: near the end some arrive while the last
    // items are held by HITs in flight (asked to come back later), and HITs that fail a check give theirs
    // back.
    let mut completed_hits = 0;
    let mut turned_away = Vec::new();
    for round in 0..20 {
        if reload(&t, &s).await.state == StudyState::Complete {
            break;
        }
        let opts = BotOptions {
            observers: if round == 0 { 160 } else { 16 },
            concurrency: 8,
            seed: round,
            run: format!("r{round}"),
            model,
            pause_ms: 0,
        };
        let sum = bots::run(&client, &judge, &s.slug, &opts, Arc::new(|| {})).await;
        completed_hits += sum.hits;
        turned_away.extend(sum.errors);
    }
    let s = reload(&t, &s).await;
    let impolite: Vec<&String> = turned_away
        .iter()
        .filter(|e| {
            !(e.contains("409")
                && (e.contains("complete") || e.contains("assigned to other participants")))
        })
        .collect();
    assert_eq!(
        s.state,
        StudyState::Complete,
        "the study completed by itself ({} valid answers; errors other than polite refusals: {impolite:?})",
        s.valid_answers
    );
    assert_eq!(s.valid_answers, 1400);
    let items = study::item_progress(&t.db, s.id).await.unwrap();
    assert_eq!(items.len(), 1400);
    assert!(
        items.iter().all(|i| i.valid == 1),
        "every item exactly once"
    );
    let r = results::results(
        &t.db,
        s.id,
        &ResultsOptions {
            replicates: 0,
            ..Default::default()
        },
        Arc::new(|| {}),
    )
    .await
    .unwrap();
    assert_eq!(r.counts.answers_used, 1400);
    assert_eq!(r.counts.answers_valid, 1400);
    assert!(completed_hits >= 1400 / 9);
    // Only the polite refusals of a full (or momentarily fully assigned) design, nothing else.
    for e in &turned_away {
        assert!(
            e.contains("409")
                && (e.contains("complete") || e.contains("assigned to other participants")),
            "{e}"
        );
    }
    // A late arrival: the page says the study is complete, and starting is refused without storing.
    let late = mturk("LATE1", "LATEW");
    let e = app::server::assign::enter(&t.db, &s.slug, &late)
        .await
        .unwrap();
    assert!(!e.can_start && e.message.unwrap().contains("complete"));
    let err = start(&t, &s.slug, &late).await.unwrap_err();
    assert!(err.to_string().contains("please return it"), "{err}");
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM hits WHERE worker_key = 'mturk:LATEW'")
        .fetch_one(&t.db)
        .await
        .unwrap();
    assert_eq!(n, 0);
}
