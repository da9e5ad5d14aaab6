//! Results for experimenters on a fresh database per test (SQLite file; PostgreSQL too where marked): simulated Thurstonian participants answer
//! through the app's own answer path; the scaling must recover the known ranking, excluded HITs must
//! change nothing unless included, exports must round-trip, the API and the page must be protected.

mod common;

use app::server::export::{self, Format};
use app::server::results::{self, ObserverUnit, ResultsOptions, StudyResults};
use app::server::{AppState, auth, bundle, study, tokens, web};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::crowd::{self as simulate, Behaviour, Crowd};
use common::http::admin_cookie;
use common::*;
use tower::ServiceExt;

// The results queries are portable SQL: these two run on SQLite and on PostgreSQL.
on_both_backends!(
    results_recover_a_known_ranking_and_are_cached,
    excluded_hits_change_nothing_unless_included,
);

/// True scores: condition `c{i}` has quality i JND.
fn truth(condition: &str) -> f64 {
    condition[1..].parse::<f64>().unwrap()
}

/// `hits` simulated HITs (see `app::server::simulate`): honest Thurstonian participants with the true
/// scores above, or adversarial ones that fail the checks and pick the worse image of every pair.
async fn simulate(
    t: &TestDb,
    s: &study::Study,
    prefix: &str,
    hits: usize,
    adversarial: bool,
    seed: &mut rand_chacha::ChaCha8Rng,
) {
    let behaviour = if adversarial {
        Behaviour::Adversarial
    } else {
        Behaviour::Honest
    };
    let crowd = Crowd {
        prefix,
        hits,
        behaviour,
    };
    simulate::run(&t.db, &s.slug, &crowd, &truth, seed, &|| {})
        .await
        .unwrap();
}

/// A live study of 4 conditions x 2 scenes, 6 pairs + 1 check per HIT, never full.
async fn study_4x2(t: &TestDb) -> study::Study {
    live_study(t, 4, 2, |x| {
        x.trials_per_hit = 6;
        x.checks_per_hit = 1;
        x.repetitions = 1000;
    })
    .await
}

fn opts(replicates: usize) -> ResultsOptions {
    ResultsOptions {
        replicates,
        ..Default::default()
    }
}

async fn get(t: &TestDb, id: i64, o: &ResultsOptions) -> StudyResults {
    results::results(&t.db, id, o, std::sync::Arc::new(|| {}))
        .await
        .unwrap()
}

async fn results_recover_a_known_ranking_and_are_cached(t: TestDb) {
    let s = study_4x2(&t).await;
    let mut seed = rng(7);
    simulate(&t, &s, "", 40, false, &mut seed).await;
    let o = opts(100);
    let r = get(&t, s.id, &o).await;
    assert_eq!(r.counts.answers_valid, 240);
    assert_eq!(r.counts.answers_excluded, 0);
    assert_eq!((r.counts.answers_used, r.counts.observers_used), (240, 40));
    let p = r.analysis.pooled.as_ref().unwrap();
    assert_eq!(p.conditions, ["c0", "c1", "c2", "c3"]);
    // mean-0 truth: -1.5, -0.5, 0.5, 1.5; the estimate's SE here is ~0.15 JND
    for (i, j) in p.jnd.iter().enumerate() {
        let want = i as f64 - 1.5;
        assert!((j - want).abs() < 0.6, "c{i}: {j} vs {want} ({:?})", p.jnd);
    }
    assert!(p.jnd.windows(2).all(|w| w[0] < w[1]), "{:?}", p.jnd);
    let (lo, hi) = (p.ci_low.as_ref().unwrap(), p.ci_high.as_ref().unwrap());
    for i in 0..4 {
        assert!(lo[i] <= p.jnd[i] && p.jnd[i] <= hi[i] && hi[i] - lo[i] < 1.5);
    }
    assert_eq!(p.replicates_used, 100);
    let sig = r.analysis.significance.as_ref().unwrap();
    assert!(sig.significant[0][3] && sig.significant[3][0]);
    assert_eq!(r.analysis.outliers.len(), 40);
    let total: f64 = r.analysis.count_matrix.iter().flatten().sum();
    assert_eq!(total, 240.0);
    assert_eq!(r.analysis.per_scene.len(), 2);
    for sc in &r.analysis.per_scene {
        let x = sc.result.as_ref().unwrap();
        assert_eq!(x.conditions.len(), 4);
        assert!(x.jnd[3] > x.jnd[0], "scene {}: {:?}", sc.scene, x.jnd);
    }
    // the same data and options come from the cache; a new answer recomputes
    let again = get(&t, s.id, &o).await;
    assert_eq!(again, r);
    simulate(&t, &s, "late", 1, false, &mut seed).await;
    let later = get(&t, s.id, &o).await;
    assert_eq!(later.counts.answers_used, 246);
    assert_ne!(later.data_version, r.data_version);
    // workers as observers: one HIT each here, so the same observers
    let w = get(
        &t,
        s.id,
        &ResultsOptions {
            observer: ObserverUnit::Worker,
            ..o
        },
    )
    .await;
    assert_eq!(w.counts.observers_used, 41);
}

async fn excluded_hits_change_nothing_unless_included(t: TestDb) {
    let s = study_4x2(&t).await;
    let mut seed = rng(11);
    simulate(&t, &s, "", 24, false, &mut seed).await;
    let o = opts(40);
    let before = get(&t, s.id, &o).await;
    simulate(&t, &s, "bad", 8, true, &mut seed).await;
    let after = get(&t, s.id, &o).await;
    assert_eq!(after.counts.hits_excluded, 8);
    assert_eq!(after.counts.answers_excluded, 48);
    assert_eq!(after.counts.answers_used, 144);
    assert_eq!(after.analysis.pooled, before.analysis.pooled);
    assert_eq!(after.analysis.per_scene, before.analysis.per_scene);
    assert_eq!(after.analysis.significance, before.analysis.significance);
    assert_eq!(after.analysis.outliers, before.analysis.outliers);
    let with = get(
        &t,
        s.id,
        &ResultsOptions {
            include_excluded: true,
            ..o
        },
    )
    .await;
    assert_eq!(
        (with.counts.answers_used, with.counts.observers_used),
        (192, 32)
    );
    let (b, w) = (
        before.analysis.pooled.unwrap(),
        with.analysis.pooled.unwrap(),
    );
    // adversaries always picked the worse image: the spread shrinks
    assert!(
        w.jnd[3] - w.jnd[0] < b.jnd[3] - b.jnd[0] - 0.3,
        "{:?} vs {:?}",
        w.jnd,
        b.jnd
    );
    // and they fit the others worst (means over observers: robust to one unlucky honest observer)
    let mean_ll = |bad: bool| {
        let v: Vec<f64> = with
            .analysis
            .outliers
            .iter()
            .filter(|x| x.observer.starts_with("mturk:bad") == bad)
            .map(|x| x.log_likelihood)
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(
        mean_ll(true) < mean_ll(false) - 0.2,
        "{} vs {}",
        mean_ll(true),
        mean_ll(false)
    );
}

#[tokio::test]
async fn exports_round_trip_through_the_scaling_reader_and_the_cli() {
    let t = fresh().await;
    let s = study_4x2(&t).await;
    let mut seed = rng(3);
    simulate(&t, &s, "", 10, false, &mut seed).await;
    simulate(&t, &s, "bad", 2, true, &mut seed).await;
    let rows = results::answers(&t.db, s.id).await.unwrap();
    let rules = s.settings.rules;
    assert_eq!(rows.len(), 72);
    for o in [
        opts(20),
        ResultsOptions {
            include_excluded: true,
            observer: ObserverUnit::Worker,
            ..opts(20)
        },
    ] {
        let csv = export::answers_csv(&rows, &o, &rules).unwrap();
        let read = scaling::Comparisons::read_csv(csv.as_slice(), "answers.csv", true).unwrap();
        let direct = results::comparisons(&rows, &o, &rules);
        assert_eq!(read.answers, direct.answers);
        assert_eq!(read.observers, direct.observers);
        assert_eq!(read.scenes, ["s0", "s1"]);
        let n = if o.include_excluded { 72 } else { 60 };
        assert_eq!(read.answers.len(), n);
        // our columns: the placement and the answer agree with is_A_selected
        let mut rdr = csv::Reader::from_reader(csv.as_slice());
        let h = rdr.headers().unwrap().clone();
        let col = |name: &str| h.iter().position(|x| x == name).unwrap();
        for rec in rdr.records() {
            let rec = rec.unwrap();
            let chosen = if &rec[col("answer_side")] == "left" {
                &rec[col("condition_left")]
            } else {
                &rec[col("condition_right")]
            };
            assert_eq!(
                chosen == &rec[col("condition_A")],
                &rec[col("is_A_selected")] == "1"
            );
            assert_eq!(&rec[col("response_ms")], "900");
        }
        let m = export::matrices_csv(&rows, &o, &rules).unwrap();
        let mut sum = 0u64;
        let mut lines = 0;
        for rec in csv::Reader::from_reader(m.as_slice()).records() {
            let rec = rec.unwrap();
            sum += rec
                .iter()
                .skip(2)
                .map(|v| v.parse::<u64>().unwrap())
                .sum::<u64>();
            lines += 1;
        }
        assert_eq!(sum as usize, n);
        assert_eq!(lines, direct.observers.len() * 4);
    }
    let o = opts(20);
    let r = get(&t, s.id, &o).await;
    // The results computation stores its outlier screen as flags: the exports below show them.
    let rows = results::answers(&t.db, s.id).await.unwrap();
    let json = export::export(&t.db, s.id, Format::JndJson, &o, std::sync::Arc::new(|| {}))
        .await
        .unwrap();
    assert_eq!(serde_json::from_slice::<StudyResults>(&json).unwrap(), r);
    let jcsv = export::jnd_csv(&r).unwrap();
    let recs: Vec<_> = csv::Reader::from_reader(jcsv.as_slice())
        .records()
        .map(|x| x.unwrap())
        .collect();
    assert_eq!(recs.len(), 4 * 3, "pooled + 2 scenes");
    let p = r.analysis.pooled.as_ref().unwrap();
    assert_eq!(&recs[3][0], "pooled");
    assert_eq!(recs[3][2].parse::<f64>().unwrap(), p.jnd[3]);

    // the command line: same bytes, atomically written; clear errors, no file, non-zero exit
    let exe = env!("CARGO_BIN_EXE_jndlab-app");
    let dbp = t.dir.path().join("test.db");
    let out = t.dir.path().join("answers.csv");
    let run = |args: &[&str]| {
        std::process::Command::new(exe)
            .arg("--db")
            .arg(&dbp)
            .args(args)
            .output()
            .unwrap()
    };
    let ok = run(&[
        "export",
        "test",
        "--format",
        "answers-csv",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        export::answers_csv(&rows, &o, &rules).unwrap()
    );
    let by_id = run(&[
        "export",
        &s.id.to_string(),
        "--format",
        "matrices",
        "--include-excluded",
    ]);
    assert!(by_id.status.success());
    assert_eq!(
        by_id.stdout,
        export::matrices_csv(
            &rows,
            &ResultsOptions {
                include_excluded: true,
                ..o
            },
            &rules
        )
        .unwrap()
    );
    let missing = t.dir.path().join("none.csv");
    let e = run(&[
        "export",
        "nope",
        "--format",
        "jnd-csv",
        "-o",
        missing.to_str().unwrap(),
    ]);
    let msg = String::from_utf8_lossy(&e.stderr);
    assert!(
        !e.status.success() && msg.contains("no study \"nope\""),
        "{msg}"
    );
    assert!(!missing.exists());
    let e = run(&["export", "test", "--format", "xlsx"]);
    let msg = String::from_utf8_lossy(&e.stderr);
    assert!(!e.status.success() && msg.contains("xlsx"), "{msg}");
    let bad_dir = t.dir.path().join("no/such/dir/x.csv");
    let e = run(&[
        "export",
        "test",
        "--format",
        "answers-csv",
        "-o",
        bad_dir.to_str().unwrap(),
    ]);
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("x.csv"));
}

/// A study whose bundle has PSNR for every image (condition c{i}: 30 + i dB in scene 0, 32 + i in 1).
async fn study_with_psnr(t: &TestDb) -> study::Study {
    let bdir = t.dir.path().join("bundle");
    small_bundle(&bdir, 3, 2);
    let path = bdir.join("bundle.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for (si, scene) in m["scenes"].as_array_mut().unwrap().iter_mut().enumerate() {
        let metrics: serde_json::Map<_, _> = (0..3)
            .map(|c| {
                let v = 30.0 + 2.0 * si as f64 + c as f64;
                (format!("c{c}"), serde_json::json!({ "psnr": v }))
            })
            .collect();
        scene["metrics"] = serde_json::Value::Object(metrics);
    }
    std::fs::write(&path, m.to_string()).unwrap();
    let mut src = bundle::Source::open(&bdir).unwrap();
    let imp = bundle::import(&t.db, &t.data_dir(), &mut src)
        .await
        .unwrap();
    let s = study::by_id(&t.db, imp.study_id).await.unwrap().unwrap();
    let mut se = s.settings.clone();
    se.rules.min_response_ms = 0;
    se.trials_per_hit = 3;
    se.checks_per_hit = 1;
    se.repetitions = 1000;
    study::update_settings(&t.db, s.id, &se).await.unwrap();
    study::set_state(&t.db, s.id, study::StudyState::Live)
        .await
        .unwrap();
    study::by_id(&t.db, s.id).await.unwrap().unwrap()
}

async fn send(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn req(uri: &str, extra: Option<(header::HeaderName, String)>) -> Request<Body> {
    let mut b = Request::builder().uri(uri);
    if let Some((k, v)) = extra {
        b = b.header(k, v);
    }
    b.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn api_needs_a_token_and_the_page_needs_a_session() {
    let t = fresh().await;
    let s = study_with_psnr(&t).await;
    let mut seed = rng(5);
    simulate(&t, &s, "", 8, false, &mut seed).await;
    let psnr = results::mean_psnr(&t.db, s.id).await.unwrap();
    assert_eq!(
        psnr,
        [
            ("c0".to_string(), 31.0),
            ("c1".into(), 32.0),
            ("c2".into(), 33.0)
        ]
    );
    let state = AppState::new(
        t.db.clone(),
        t.data_dir(),
        web::leptos_options(t.dir.path(), "127.0.0.1:0".parse().unwrap()),
        "http://localhost".into(),
    );
    let app = web::router(state);
    let api = format!("/api/studies/{}/results?replicates=20", s.id);
    let bearer = |tok: &str| Some((header::AUTHORIZATION, format!("Bearer {tok}")));

    let (code, h, body) = send(&app, req(&api, None)).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{body}");
    assert!(h.contains_key(header::WWW_AUTHENTICATE));
    let (code, _, _) = send(&app, req(&api, bearer("jndl_wrong"))).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let token = tokens::create(&t.db, "script", "test").await.unwrap();
    let (code, _, body) = send(&app, req(&api, bearer(&token))).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let r: StudyResults = serde_json::from_str(&body).unwrap();
    assert_eq!(r.counts.answers_used, 24);
    assert_eq!(r.options.replicates, 20);
    let stored: Vec<(String,)> = sqlx::query_as("SELECT token_hash FROM api_tokens")
        .fetch_all(&t.db)
        .await
        .unwrap();
    assert!(
        stored.iter().all(|(h,)| !h.contains(&token[5..])),
        "stored hashed"
    );
    let (code, _, _) = send(&app, req("/api/studies/999/results", bearer(&token))).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _, body) = send(&app, req(&format!("{api}&observer=crowd"), bearer(&token))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body.contains("observer"), "{body}");
    let id = tokens::list(&t.db).await.unwrap()[0].id;
    tokens::revoke(&t.db, id).await.unwrap();
    let (code, _, _) = send(&app, req(&api, bearer(&token))).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);

    // admin pages: redirect to the login without a session
    let page = format!("/admin/studies/{}/results?replicates=20", s.id);
    for uri in [
        page.clone(),
        format!("/admin/studies/{}/export/answers-csv", s.id),
        format!("/admin/studies/{}/plots/jnd.svg", s.id),
        "/admin/tokens".to_string(),
    ] {
        let (code, h, _) = send(&app, req(&uri, None)).await;
        assert_eq!(code, StatusCode::SEE_OTHER, "{uri}");
        assert_eq!(h[header::LOCATION], "/admin/login");
    }
    let session = admin_cookie(&t).await;
    let cookie = || Some((header::COOKIE, session.clone()));
    let (code, _, body) = send(&app, req(&page, cookie())).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    for part in [
        "id=\"jnd-table\"",
        "id=\"plot-jnd.svg\"",
        "id=\"plot-perception-distortion.svg\"",
        "id=\"plot-answers-over-time.svg\"",
        "id=\"significance\"",
        "id=\"count-matrix\"",
        "id=\"outliers\"",
        "id=\"scene-table\"",
        "export/jnd-json?observer=hit",
        "<svg",
    ] {
        assert!(body.contains(part), "results page lacks {part}");
    }
    let (code, h, body) = send(
        &app,
        req(
            &format!(
                "/admin/studies/{}/plots/perception-distortion.svg?replicates=20",
                s.id
            ),
            cookie(),
        ),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "image/svg+xml");
    assert!(body.starts_with("<svg") && body.contains("mean PSNR (dB)"));
    let (code, h, body) = send(
        &app,
        req(
            &format!("/admin/studies/{}/export/answers-csv", s.id),
            cookie(),
        ),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        h[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains("test-answers.csv")
    );
    assert!(
        body.starts_with("observer,session,scene,condition_A,condition_B,is_A_selected,worker")
    );
    let (code, _, body) = send(
        &app,
        req(&format!("/admin/studies/{}/export/xlsx", s.id), cookie()),
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(body.contains("answers-csv"), "{body}");
    let (code, _, _) = send(&app, req("/admin/studies/999/results", cookie())).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // tokens made on the admin page work for the API; the form needs the session's CSRF token
    let token = session.split_once('=').unwrap().1;
    let csrf = auth::session(&t.db, token).await.unwrap().unwrap().csrf;
    let post = |body: String| {
        Request::builder()
            .method("POST")
            .uri("/admin/tokens")
            .header(header::COOKIE, &session)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    };
    let (code, _, _) = send(&app, post("csrf=forged&label=x".into())).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, _, body) = send(&app, post(format!("csrf={csrf}&label=notebook"))).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let made = body
        .split("id=\"new-token\">")
        .nth(1)
        .and_then(|x| x.split('<').next())
        .unwrap()
        .to_string();
    let (code, _, _) = send(&app, req(&api, bearer(&made))).await;
    assert_eq!(code, StatusCode::OK);
}
