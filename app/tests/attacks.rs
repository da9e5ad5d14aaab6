//! Attacks on a study, each run as a script against the real server (HTTP on a loopback port, or the real
//! router in-process where a test needs to set headers), on SQLite and PostgreSQL. Every test asserts that
//! the attack had no effect: nothing stored, the results unchanged, the right status code.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use app::api::{EntryParams, HitView, Side, StartHit, SubmitAnswer};
use app::observer::bots::{self, BotOptions};
use app::observer::judge::Judge;
use app::observer::model::ObserverModel;
use app::participant::{Client, answer_form, start_form};
use app::server::quality::Flags;
use app::server::results::{self, ResultsOptions};
use app::server::{design, limits, study};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::http::{self, send, stored_answers};
use common::*;
use leptos::server_fn::ServerFn;

on_both_backends!(
    urls_and_json_give_nothing_away,
    media_is_served_only_while_live_and_to_hits_in_progress,
    an_unanswered_check_never_counts_and_abandoned_items_return,
    concurrent_starts_respect_the_worker_limit,
    the_design_fills_exactly_and_late_arrivals_are_turned_away,
    blocked_paused_and_closed_take_no_answers,
    a_start_flood_is_rate_limited,
    direct_links_are_limited_per_browser,
    a_bot_farm_fails_its_checks_is_excluded_and_changes_nothing,
    internal_errors_are_generic,
);

fn forged(i: usize) -> EntryParams {
    mturk(&format!("FA{i}"), &format!("FW{i}"))
}

async fn start_http(c: &Client, slug: &str, p: &EntryParams) -> (u16, String) {
    c.post_raw(StartHit::PATH, start_form(slug, p))
        .await
        .unwrap()
}

fn is_token_url(u: &str) -> bool {
    u.strip_prefix("/media/")
        .is_some_and(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// All string values in a JSON document.
fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

/// A script reads the HIT's JSON and the images' headers: nothing in them tells a condition, a check, or the
/// bundle's order.
async fn urls_and_json_give_nothing_away(t: TestDb) {
    let s = live_study(&t, 4, 3, |x| {
        x.repetitions = 50;
        x.checks_per_hit = 2;
    })
    .await;
    let (c, _server) = serve(&t, generous()).await;
    let mut all_tokens = HashSet::new();
    let mut identical_url_found = 0;
    for i in 0..6 {
        let (st, body) = start_http(&c, &s.slug, &forged(i)).await;
        assert_eq!(st, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        // Only these fields, and no string a condition, scene or kind could be read from.
        assert_eq!(keys(&v), ["answered", "completion", "key", "pid", "trials"]);
        for tr in v["trials"].as_array().unwrap() {
            assert_eq!(keys(tr), ["left", "position", "reference", "right"]);
            assert_eq!(keys(&tr["left"]), ["height", "url", "width"]);
        }
        let mut texts = Vec::new();
        strings(&v, &mut texts);
        for text in &texts {
            for leak in [
                "c0",
                "c1",
                "c2",
                "c3",
                "s0",
                "s1",
                "s2",
                "check",
                "pair",
                "reference",
            ] {
                assert_ne!(text, leak);
            }
            assert!(
                text.len() == 32 || is_token_url(text),
                "unexpected string {text:?}"
            );
        }
        let hit: HitView = serde_json::from_str(&body).unwrap();
        let mut in_hit = HashSet::new();
        for tr in &hit.trials {
            for img in [&tr.reference, &tr.left, &tr.right] {
                assert!(is_token_url(&img.url), "{}", img.url);
                assert!(in_hit.insert(img.url.clone()), "a URL repeats within a HIT");
                assert!(
                    all_tokens.insert(img.url.clone()),
                    "a URL repeats across HITs"
                );
            }
            // The naive check detector: a candidate with the reference's URL. There never is one.
            identical_url_found +=
                usize::from(tr.left.url == tr.reference.url || tr.right.url == tr.reference.url);
            // Same size, same type, different bytes for the three images of a trial, checks included.
            let mut lengths = HashSet::new();
            let mut bodies = HashSet::new();
            for img in [&tr.reference, &tr.left, &tr.right] {
                let bytes = c.get_bytes(&img.url).await.unwrap();
                assert!(bytes.starts_with(b"\x89PNG"));
                lengths.insert(bytes.len());
                bodies.insert(bytes.to_vec());
            }
            assert_eq!(lengths.len(), 1, "image sizes tell the images apart");
            assert_eq!(bodies.len(), 3);
        }
        assert_eq!(hit.key.len(), 32);
        assert!(
            !body.contains(&format!("FA{i}")),
            "no platform id in the JSON"
        );
    }
    assert_eq!(identical_url_found, 0);
    // The ids of the old scheme, and guesses, are not images.
    for guess in [
        "/media/1",
        "/media/2",
        &format!("/media/{}", "0".repeat(32)),
    ] {
        let e = c.get_bytes(guess).await.unwrap_err();
        assert_eq!(e.status, Some(404), "{guess}");
    }
    // The preview example has its own tokens.
    let e = app::server::assign::enter(&t.db, &s.slug, &mturk(app::api::MTURK_PREVIEW, "x"))
        .await
        .unwrap();
    let ex = e.example.unwrap();
    for img in [&ex.reference, &ex.left, &ex.right] {
        assert!(is_token_url(&img.url) && !all_tokens.contains(&img.url));
        assert!(c.get_bytes(&img.url).await.is_ok());
    }
}

async fn media_is_served_only_while_live_and_to_hits_in_progress(t: TestDb) {
    let s = live_study(&t, 3, 2, |x| x.repetitions = 10).await;
    let (c, _server) = serve(&t, generous()).await;
    let a = start(&t, &s.slug, &mturk("A1", "W1")).await.unwrap();
    let b = start(&t, &s.slug, &mturk("A2", "W2")).await.unwrap();
    let (url_a, url_b) = (a.trials[0].left.url.clone(), b.trials[0].left.url.clone());
    assert!(c.get_bytes(&url_a).await.is_ok());
    // A finished HIT's images are gone.
    complete(&t, &a.key, false).await;
    assert_eq!(c.get_bytes(&url_a).await.unwrap_err().status, Some(404));
    // A paused study serves nothing, and again when live.
    study::set_state(&t.db, s.id, study::StudyState::Paused)
        .await
        .unwrap();
    assert_eq!(c.get_bytes(&url_b).await.unwrap_err().status, Some(404));
    study::set_state(&t.db, s.id, study::StudyState::Live)
        .await
        .unwrap();
    assert!(c.get_bytes(&url_b).await.is_ok());
    // Admins see any image of a study through their own route; nobody else does.
    let r = http::router(&t);
    let (image,): (i64,) =
        sqlx::query_as("SELECT id FROM images WHERE study_id = $1 ORDER BY id LIMIT 1")
            .bind(s.id)
            .fetch_one(&t.db)
            .await
            .unwrap();
    let uri = format!("/admin/studies/{}/images/{image}", s.id);
    let (st, h, _) = send(&r, Request::get(&uri).body(Body::empty()).unwrap()).await;
    assert!(st.is_redirection() && h.get(header::LOCATION).unwrap() == "/admin/login");
    let cookie = http::admin_cookie(&t).await;
    let (st, h, _) = send(
        &r,
        Request::get(&uri)
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(h.get(header::CONTENT_TYPE).unwrap(), "image/png");
    // A closed study: no images, and its page shows neither its name nor its question.
    study::set_state(&t.db, s.id, study::StudyState::Closed)
        .await
        .unwrap();
    assert_eq!(c.get_bytes(&url_b).await.unwrap_err().status, Some(404));
    let (st, _, page) = send(
        &r,
        Request::get(format!("/s/{}", s.slug))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        !page.contains("Test study") && !page.contains(study::DEFAULT_QUESTION),
        "{page}"
    );
    assert!(page.contains("closed"));
}

/// A HIT whose check is never answered never counts, and once it times out its items are assigned again.
async fn an_unanswered_check_never_counts_and_abandoned_items_return(t: TestDb) {
    let s = live_study(&t, 4, 2, |x| {
        x.trials_per_hit = 3;
        x.checks_per_hit = 1;
        x.repetitions = 1;
        x.hit_timeout_s = 10;
    })
    .await;
    let (c, _server) = serve(&t, generous()).await;
    // A HIT whose check is not its first trial (the assignment is seeded).
    let mut chosen = None;
    for i in 0..6 {
        let hit: HitView =
            serde_json::from_str(&start_http(&c, &s.slug, &forged(i)).await.1).unwrap();
        let check = trials_of(&t, &hit.key)
            .await
            .iter()
            .position(|x| x.kind == "check")
            .unwrap();
        if check > 0 {
            chosen = Some((hit, check));
            break;
        }
    }
    let (hit, check) = chosen.expect("a HIT with its check after the first trial");
    for p in 0..check {
        c.answer(&hit.key, p as u32, Side::Left, 900).await.unwrap();
    }
    // Skipping the check to answer the rest is refused.
    let (st, body) = c
        .post_raw(
            SubmitAnswer::PATH,
            answer_form(&hit.key, check as u32 + 1, Side::Left, 900),
        )
        .await
        .unwrap();
    assert_eq!(st, 409, "{body}");
    let before = stored_answers(&t).await;
    let r = results::results(&t.db, s.id, &ResultsOptions::default(), Arc::new(|| {}))
        .await
        .unwrap();
    assert_eq!(r.counts.answers_used, 0);
    assert_eq!(r.counts.answers_in_progress, check);
    // The participant leaves; housekeeping finds the HIT past its timeout.
    age_hit(&t, &hit.key, 11_000).await;
    assert!(design::expire_all(&t.db).await.unwrap() >= 1);
    let r = results::results(&t.db, s.id, &ResultsOptions::default(), Arc::new(|| {}))
        .await
        .unwrap();
    assert_eq!(
        (r.counts.answers_used, r.counts.answers_abandoned),
        (0, check)
    );
    let progress = study::item_progress(&t.db, s.id).await.unwrap();
    let mine: HashSet<i64> = trials_of(&t, &hit.key)
        .await
        .iter()
        .filter_map(|x| x.design_item_id)
        .collect();
    for i in progress.iter().filter(|i| mine.contains(&i.design_item_id)) {
        assert_eq!(i.load, 0, "the abandoned HIT's items are back in the pool");
    }
    assert_eq!(
        stored_answers(&t).await,
        before,
        "its answers are kept as raw data"
    );
}

async fn concurrent_starts_respect_the_worker_limit(t: TestDb) {
    let s = live_study(&t, 5, 4, |x| {
        x.max_hits_per_worker = 3;
        x.repetitions = 100;
    })
    .await;
    let (c, _server) = serve(&t, generous()).await;
    let mut tasks = Vec::new();
    for i in 0..30 {
        let (c, slug) = (c.clone(), s.slug.clone());
        tasks.push(tokio::spawn(async move {
            start_http(&c, &slug, &mturk(&format!("RACE{i}"), "ONEWORKER")).await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        let (st, body) = task.await.unwrap();
        match st {
            200 => ok += 1,
            409 => assert!(body.contains("maximum number of tasks (3)"), "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(ok, 3);
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM hits WHERE worker_key = 'mturk:ONEWORKER'")
            .fetch_one(&t.db)
            .await
            .unwrap();
    assert_eq!(n, 3);
}

/// 5 conditions x 4 scenes = 40 items, repetitions 1: exactly 40 valid answers, then the study completes by
/// itself and turns late participants away politely.
async fn the_design_fills_exactly_and_late_arrivals_are_turned_away(t: TestDb) {
    let s = live_study(&t, 5, 4, |x| x.checks_per_hit = 1).await;
    let (c, _server) = serve(&t, generous()).await;
    // While HITs in flight hold every item, a newcomer is asked to come back later.
    let held: Vec<HitView> = {
        let mut v = Vec::new();
        for i in 0..5 {
            v.push(serde_json::from_str(&start_http(&c, &s.slug, &forged(i)).await.1).unwrap());
        }
        v
    };
    let (st, body) = start_http(&c, &s.slug, &forged(99)).await;
    assert_eq!(st, 409);
    assert!(
        body.contains("assigned to other participants right now"),
        "{body}"
    );
    // They finish (honest observers: checks answered right), and the design is exactly full.
    for h in &held {
        for tr in trials_of(&t, &h.key).await {
            let side = if tr.kind == "check" {
                check_side(tr.correct_side.as_deref(), true)
            } else if tr.position % 2 == 0 {
                Side::Left
            } else {
                Side::Right
            };
            c.answer(&h.key, tr.position as u32, side, 900)
                .await
                .unwrap();
        }
    }
    let s2 = reload(&t, &s).await;
    assert_eq!(s2.valid_answers, 40);
    assert_eq!(s2.state, study::StudyState::Complete);
    let progress = study::item_progress(&t.db, s.id).await.unwrap();
    assert!(progress.iter().all(|i| i.valid == 1), "{progress:?}");
    let r = results::results(&t.db, s.id, &ResultsOptions::default(), Arc::new(|| {}))
        .await
        .unwrap();
    assert_eq!(
        r.counts.answers_used, 40,
        "the results and the progress table agree"
    );
    // Late arrivals: the entry page says so, starting is refused, nothing is stored.
    let e = app::server::assign::enter(&t.db, &s.slug, &forged(100))
        .await
        .unwrap();
    assert!(!e.can_start && e.message.as_deref().unwrap().contains("complete"));
    let (st, body) = start_http(&c, &s.slug, &forged(100)).await;
    assert_eq!(st, 409);
    assert!(body.contains("please return it"), "{body}");
    let (hits,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM hits")
        .fetch_one(&t.db)
        .await
        .unwrap();
    assert_eq!(hits, 5);
}

async fn blocked_paused_and_closed_take_no_answers(t: TestDb) {
    let s = live_study(&t, 4, 3, |x| x.repetitions = 10).await;
    let (c, _server) = serve(&t, generous()).await;
    let a = start(&t, &s.slug, &mturk("A1", "W1")).await.unwrap();
    let b = start(&t, &s.slug, &mturk("A2", "W2")).await.unwrap();
    c.answer(&a.key, 0, Side::Left, 900).await.unwrap();
    let before = stored_answers(&t).await;
    study::block_worker(&t.db, s.id, "mturk:W1", "test")
        .await
        .unwrap();
    let e = c.answer(&a.key, 1, Side::Left, 900).await.unwrap_err();
    assert_eq!(e.status, Some(409), "{e}");
    study::set_state(&t.db, s.id, study::StudyState::Paused)
        .await
        .unwrap();
    let e = c.answer(&b.key, 0, Side::Left, 900).await.unwrap_err();
    assert_eq!(e.status, Some(409), "{e}");
    assert!(e.message.contains("paused"));
    study::set_state(&t.db, s.id, study::StudyState::Closed)
        .await
        .unwrap();
    let e = c.answer(&b.key, 0, Side::Left, 900).await.unwrap_err();
    assert_eq!(e.status, Some(409), "{e}");
    assert_eq!(stored_answers(&t).await, before, "nothing stored");
    let (flags,): (i64,) = sqlx::query_as("SELECT flags FROM hits WHERE token = $1")
        .bind(&a.key)
        .fetch_one(&t.db)
        .await
        .unwrap();
    assert!(Flags::from_bits_truncate(flags).contains(Flags::BLOCKED));
}

async fn a_start_flood_is_rate_limited(t: TestDb) {
    let s = live_study(&t, 4, 3, |x| x.repetitions = 100).await;
    let (c, _server) = serve(
        &t,
        limits::Limits {
            starts_per_minute: 5,
            start_burst: 5,
            client_ip_header: None,
        },
    )
    .await;
    let mut codes = Vec::new();
    for i in 0..12 {
        codes.push(start_http(&c, &s.slug, &forged(i)).await.0);
    }
    assert_eq!(codes.iter().filter(|&&c| c == 200).count(), 5, "{codes:?}");
    assert_eq!(codes.iter().filter(|&&c| c == 429).count(), 7, "{codes:?}");
    let (hits,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM hits")
        .fetch_one(&t.db)
        .await
        .unwrap();
    assert_eq!(hits, 5, "the flood stored nothing beyond the limit");
}

/// Direct links: the browser's cookie id is the worker `max_hits_per_worker` counts.
async fn direct_links_are_limited_per_browser(t: TestDb) {
    let s = live_study(&t, 4, 3, |x| {
        x.repetitions = 100;
        x.max_hits_per_worker = 2;
    })
    .await;
    let r = http::router(&t);
    let start_req = |cookie: Option<&str>| {
        http::post_form(
            StartHit::PATH,
            start_form(&s.slug, &EntryParams::default()),
            cookie,
        )
    };
    let (st, h, _) = send(&r, start_req(None)).await;
    assert_eq!(st, StatusCode::OK);
    let set = h
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(set.contains("HttpOnly"), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();
    let (st, h, _) = send(&r, start_req(Some(&cookie))).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        h.get(header::SET_COOKIE).is_none(),
        "the browser keeps its id"
    );
    let (st, _, body) = send(&r, start_req(Some(&cookie))).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("maximum number of tasks (2)"), "{body}");
    let (browsers,): (i64,) =
        sqlx::query_as("SELECT COUNT(DISTINCT worker_key) FROM hits WHERE platform = 'direct'")
            .fetch_one(&t.db)
            .await
            .unwrap();
    assert_eq!(browsers, 1);
}

/// The bot farm of the issue: forged worker ids, reads the trial JSON, answers at once without downloading
/// an image, trying to pass the checks and impose a ranking (it prefers the image whose URL sorts first).
/// Its checks fail at chance, every one of its HITs is excluded, and the results are exactly what the
/// honest observers alone gave.
async fn a_bot_farm_fails_its_checks_is_excluded_and_changes_nothing(t: TestDb) {
    let s = live_study(&t, 4, 4, |x| {
        x.repetitions = 100;
        x.checks_per_hit = 2;
        x.max_hits_per_worker = 1;
        x.rules.min_response_ms = 200;
    })
    .await;
    let (c, _server) = serve(&t, generous()).await;
    let opts = BotOptions {
        observers: 12,
        concurrency: 4,
        seed: 3,
        run: "honest".into(),
        model: ObserverModel {
            jnd_step: 0.02,
            check_fail_rate: 0.0,
        },
        pause_ms: 250,
    };
    let sum = bots::run(&c, &Judge::new(), &s.slug, &opts, Arc::new(|| {})).await;
    assert!(sum.errors.is_empty(), "{:?}", sum.errors);
    let o = ResultsOptions {
        replicates: 50,
        ..Default::default()
    };
    let honest = results::results(&t.db, s.id, &o, Arc::new(|| {}))
        .await
        .unwrap();
    assert!(honest.counts.answers_used > 0);

    const FARM: usize = 60;
    let (mut checks, mut wrong, mut pairs) = (0, 0, 0);
    for i in 0..FARM {
        let (st, body) = start_http(&c, &s.slug, &forged(i)).await;
        assert_eq!(st, 200, "{body}");
        let hit: HitView = serde_json::from_str(&body).unwrap();
        for tr in &hit.trials {
            let side = if tr.left.url < tr.right.url {
                Side::Left
            } else {
                Side::Right
            };
            c.answer(&hit.key, tr.position, side, 2500).await.unwrap();
        }
        // Afterwards (the bot never sees this): how did its checks go?
        for tr in trials_of(&t, &hit.key).await {
            if tr.kind == "check" {
                checks += 1;
                wrong += usize::from(tr.answer != tr.correct_side);
            } else {
                pairs += 1;
            }
        }
    }
    // At chance: Binomial(120, 1/2) has sd 5.5; 6 sd either way.
    let half = checks as f64 / 2.0;
    let sd = (checks as f64 * 0.25).sqrt();
    assert!(
        (wrong as f64 - half).abs() < 6.0 * sd,
        "{wrong} of {checks} checks wrong"
    );
    let (valid_farm,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM hits WHERE worker_key LIKE 'mturk:FW%' AND (excluded = 0 OR status <> 'completed')",
    )
    .fetch_one(&t.db)
    .await
    .unwrap();
    assert_eq!(
        valid_farm, 0,
        "every HIT of the farm is completed and excluded"
    );
    let after = results::results(&t.db, s.id, &o, Arc::new(|| {}))
        .await
        .unwrap();
    assert_eq!(
        after.analysis.pooled, honest.analysis.pooled,
        "the farm moved no score"
    );
    assert_eq!(after.analysis.per_scene, honest.analysis.per_scene);
    assert_eq!(after.counts.answers_used, honest.counts.answers_used);
    assert_eq!(
        after.counts.answers_excluded,
        honest.counts.answers_excluded + pairs
    );
    assert!(after.counts.excluded_by["too_fast"] >= pairs);
}

/// A bug (here: a table gone) reaches the client as a generic message with a reference, never the details.
async fn internal_errors_are_generic(t: TestDb) {
    let s = live_study(&t, 3, 1, |_| {}).await;
    let (c, _server) = serve(&t, generous()).await;
    sqlx::query("DROP TABLE media_tokens")
        .execute(&t.db)
        .await
        .unwrap();
    let (st, body) = start_http(&c, &s.slug, &forged(1)).await;
    assert_eq!(st, 500, "{body}");
    assert!(body.contains("Internal error (reference "), "{body}");
    assert!(
        !body.contains("media_tokens") && !body.to_lowercase().contains("sql"),
        "{body}"
    );
}
