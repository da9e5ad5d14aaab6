//! App + scaling end to end (fresh SQLite database per test): a bundle is imported and set live, the app's
//! own server runs in-process on an ephemeral port, simulated observers (MS-SSIM-driven Thurstonian model,
//! see `app::observer`) do whole HITs over real HTTP, and the app's results code (the admin results page's
//! and the export's path, excluded HITs left out) must recover the model's truth.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use app::observer::bots::{self, BotOptions, BotSummary};
use app::observer::expected::{self, centre};
use app::observer::judge::Judge;
use app::observer::metric;
use app::observer::model::ObserverModel;
use app::participant::Client;
use app::server::results::{self, JndSet, ResultsOptions, StudyResults};
use app::server::{bundle, study};
use common::*;

fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/demo")
}

/// Imports the bundle folder and sets the study live, with room for every observer and no minimum response
/// time (the observers answer at once).
async fn import_live(t: &TestDb, dir: &Path) -> study::Study {
    let mut src = bundle::Source::open(dir).unwrap();
    let imp = bundle::import(&t.db, &t.data_dir(), &mut src)
        .await
        .unwrap();
    let s = study::by_id(&t.db, imp.study_id).await.unwrap().unwrap();
    let mut settings = s.settings.clone();
    settings.repetitions = 1000;
    settings.rules.min_response_ms = 0;
    study::update_settings(&t.db, s.id, &settings)
        .await
        .unwrap();
    study::set_state(&t.db, imp.study_id, study::StudyState::Live)
        .await
        .unwrap();
    study::by_id(&t.db, imp.study_id).await.unwrap().unwrap()
}

/// The model's truth straight from the bundle files (not through the app): per condition (bundle order)
/// the q of each scene (bundle order).
fn truth_from_bundle(
    dir: &Path,
    model: &ObserverModel,
) -> (Vec<String>, Vec<String>, Vec<Vec<f64>>) {
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("bundle.json")).unwrap()).unwrap();
    let conditions: Vec<String> = m["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap().to_string())
        .collect();
    let load = |p: &serde_json::Value| {
        image::open(dir.join(p.as_str().unwrap()))
            .unwrap()
            .to_rgb8()
    };
    let mut scenes = Vec::new();
    let mut q = vec![Vec::new(); conditions.len()];
    for s in m["scenes"].as_array().unwrap() {
        scenes.push(s["key"].as_str().unwrap().to_string());
        let r = load(&s["reference"]);
        for (ci, c) in conditions.iter().enumerate() {
            let img = load(&s["images"][c]);
            assert_ne!(
                img, r,
                "a condition identical to its reference would look like a check"
            );
            q[ci].push(model.quality(metric::ms_ssim(&r, &img).unwrap()));
        }
    }
    (conditions, scenes, q)
}

/// What the scaling recovers from noise-free data of the same design: every (scene, pair) compared `times`
/// as often as in `rows` (used answers), condition a winning the model's expected share (rounded: counts
/// are integers). `times` = 1: the same data size, so the same pull of the scaling's Gaussian prior on
/// near-unanimous pairs; large `times`: the limit of much data. `q[condition][scene]`.
fn noise_free(
    rows: &[results::AnswerRow],
    scene: Option<&str>,
    times: f64,
    conditions: &[String],
    scenes: &[String],
    q: &[Vec<f64>],
) -> BTreeMap<String, f64> {
    let idx = |c: &str| conditions.iter().position(|x| x == c).unwrap();
    let n = conditions.len();
    let mut m = vec![vec![0.0; n]; n];
    let rules = app::server::quality::Rules::default();
    for r in rows
        .iter()
        .filter(|r| r.validity(&rules) == results::Validity::Valid)
    {
        if scene.is_some_and(|s| s != r.scene) {
            continue;
        }
        let s = scenes.iter().position(|x| *x == r.scene).unwrap();
        let (a, b) = (idx(&r.condition_a), idx(&r.condition_b));
        let p = scaling::normal::cdf((q[a][s] - q[b][s]) / scaling::SIGMA);
        m[a][b] += p;
        m[b][a] += 1.0 - p;
    }
    let m: Vec<Vec<f64>> = m
        .iter()
        .map(|row| row.iter().map(|v| (v * times).round()).collect())
        .collect();
    let cm = scaling::CountMatrix::from_rows(&m, Some(conditions.to_vec())).unwrap();
    let fit = scaling::scale(&cm, &scaling::ScaleOptions::default()).unwrap();
    conditions.iter().cloned().zip(fit.jnd).collect()
}

/// Runs `n` observers; asserts every acknowledged answer is stored as acknowledged, and nothing else.
async fn run_bots(
    t: &TestDb,
    s: &study::Study,
    client: &Client,
    judge: &Arc<Judge>,
    opts: &BotOptions,
) -> BotSummary {
    let sum = bots::run(client, judge, &s.slug, opts, Arc::new(|| {})).await;
    assert!(
        sum.errors.is_empty(),
        "{:?}",
        &sum.errors[..sum.errors.len().min(5)]
    );
    assert_eq!(sum.hits, opts.observers);
    // (d) every acknowledged answer is in the database, with the acknowledged side and HIT, and nothing else
    let (stored,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM trials t JOIN hits h ON h.id = t.hit_id \
         WHERE h.study_id = $1 AND t.answer IS NOT NULL",
    )
    .bind(s.id)
    .fetch_one(&t.db)
    .await
    .unwrap();
    assert_eq!(stored as usize, sum.answers);
    assert_eq!(sum.acked.len(), sum.answers);
    assert_eq!(
        app::participant::lost_answers(&t.db, &sum.acked)
            .await
            .unwrap(),
        0
    );
    sum
}

/// (c) excluded HITs: as many as the observers failed checks, and consistent with 1-(1-r)^C.
async fn check_exclusions(
    t: &TestDb,
    s: &study::Study,
    sum: &BotSummary,
    r: &StudyResults,
    rate: f64,
) {
    // Honest observers are rarely flagged for anything else (all ten answers on one side happens by
    // chance), so the failed checks are counted by their own flag.
    let (excluded,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM hits WHERE study_id = $1 AND excluded = 1 AND (flags & 1) = 1",
    )
    .bind(s.id)
    .fetch_one(&t.db)
    .await
    .unwrap();
    assert_eq!(excluded as usize, sum.hits_failed_check);
    let checks = s.settings.checks_per_hit;
    assert_eq!(
        r.counts
            .excluded_by
            .get("failed_check")
            .copied()
            .unwrap_or(0),
        sum.hits_failed_check * (s.settings.trials_per_hit as usize)
    );
    assert_eq!(sum.obvious, sum.hits * checks as usize);
    let n = sum.hits as f64;
    let p = 1.0 - (1.0 - rate).powi(checks as i32);
    let sd = (n * p * (1.0 - p)).sqrt();
    assert!(
        (excluded as f64 - n * p).abs() <= 4.0 * sd,
        "{excluded} excluded HITs of {n}, expected {:.1} +- {:.1}",
        n * p,
        sd
    );
}

/// (b) each recovered score within its 95% CI of the noise-free target, or within `tol` JND of it, or
/// within 4 standard errors (from the CI's width: (high - low) / (2 x 1.96)), so the test fails by chance
/// about once in 10^4 runs per score, not once in 20.
fn check_scores(label: &str, got: &JndSet, want: &BTreeMap<String, f64>, tol: f64) {
    let (lo, hi) = (got.ci_low.as_ref().unwrap(), got.ci_high.as_ref().unwrap());
    for (i, c) in got.conditions.iter().enumerate() {
        let w = want[c];
        let se = (hi[i] - lo[i]) / (2.0 * 1.96);
        let d = (got.jnd[i] - w).abs();
        let ok = (lo[i] <= w && w <= hi[i]) || d <= tol.max(4.0 * se);
        assert!(
            ok,
            "{label} {c}: recovered {:.3} [{:.3}, {:.3}], model {w:.3}",
            got.jnd[i], lo[i], hi[i]
        );
    }
}

/// (a) the recovered ranking equals the model's wherever the model's scores differ by more than `margin`.
fn check_ranking(label: &str, got: &JndSet, want: &BTreeMap<String, f64>, margin: f64) -> usize {
    let mut pairs = 0;
    for i in 0..got.conditions.len() {
        for j in 0..i {
            let (a, b) = (&got.conditions[i], &got.conditions[j]);
            let d = want[a] - want[b];
            if d.abs() > margin {
                pairs += 1;
                assert_eq!(
                    got.jnd[i] > got.jnd[j],
                    d > 0.0,
                    "{label}: {a} {:.3} vs {b} {:.3}, model {:.3} vs {:.3}",
                    got.jnd[i],
                    got.jnd[j],
                    want[a],
                    want[b]
                );
            }
        }
    }
    pairs
}

fn print_table(label: &str, got: &JndSet, want: &BTreeMap<String, f64>) {
    let (lo, hi) = (got.ci_low.as_ref().unwrap(), got.ci_high.as_ref().unwrap());
    for (i, c) in got.conditions.iter().enumerate() {
        eprintln!(
            "{label:>10} {c:>10}: model {:7.3}  recovered {:7.3} [{:7.3}, {:7.3}]",
            want[c], got.jnd[i], lo[i], hi[i]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observers_over_http_recover_the_model_on_the_demo_bundle() {
    let t = fresh().await;
    let dir = demo_dir();
    let s = import_live(&t, &dir).await;
    let (client, server) = serve(&t, generous()).await;
    let rate = 0.1;
    let model = ObserverModel {
        jnd_step: 0.02,
        check_fail_rate: rate,
    };
    let (conditions, scenes, q) = truth_from_bundle(&dir, &model);
    for (c, qs) in conditions.iter().zip(&q) {
        eprintln!("model q {c:>10}: {qs:.3?}");
    }
    let opts = BotOptions {
        observers: 200,
        concurrency: 8,
        seed: 11,
        run: "obs".into(),
        model,
        pause_ms: 0,
    };
    let judge = Judge::new();
    let started = std::time::Instant::now();
    let sum = run_bots(&t, &s, &client, &judge, &opts).await;
    eprintln!(
        "{} HITs, {} answers, {} checks failed over HTTP in {:.1} s",
        sum.hits,
        sum.answers,
        sum.obvious_wrong,
        started.elapsed().as_secs_f64()
    );
    // the model's expected scores as the app serves the images equal those from the bundle files
    let exp = expected::expected_scores(&t.db, &t.data_dir(), s.id, &judge, &model)
        .await
        .unwrap();
    server.abort();
    let mean_q: Vec<f64> = q
        .iter()
        .map(|v| v.iter().sum::<f64>() / v.len() as f64)
        .collect();
    let centred = centre(&mean_q);
    assert_eq!(exp.len(), conditions.len());
    for (i, e) in exp.iter().enumerate() {
        assert_eq!(e.condition, conditions[i]);
        for (si, (scene, v)) in e.per_scene.iter().enumerate() {
            assert_eq!(scene, &scenes[si]);
            assert!(
                (v - q[i][si]).abs() < 1e-9,
                "{scene} {}: {v} vs {}",
                e.condition,
                q[i][si]
            );
        }
        assert!((e.centred - centred[i]).abs() < 1e-9);
    }

    let started = std::time::Instant::now();
    let o = ResultsOptions {
        replicates: 200,
        ..Default::default()
    };
    let r = results::results(&t.db, s.id, &o, Arc::new(|| {}))
        .await
        .unwrap();
    eprintln!("results in {:.1} s", started.elapsed().as_secs_f64());
    check_exclusions(&t, &s, &sum, &r, rate).await;
    assert_eq!(
        r.counts.answers_used + r.counts.answers_excluded,
        sum.answers - sum.obvious
    );
    let rows = results::answers(&t.db, s.id).await.unwrap();
    let pooled = r.analysis.pooled.as_ref().unwrap();
    let want = noise_free(&rows, None, 1000.0, &conditions, &scenes, &q);
    let mean_centred: BTreeMap<String, f64> = conditions.iter().cloned().zip(centred).collect();
    print_table("pooled", pooled, &want);
    for (c, v) in &mean_centred {
        eprintln!("mean-over-scenes q centred {c:>10}: {v:7.3}");
    }
    // (a) against the model's mean-over-scenes scores and against the noise-free scaling
    assert!(check_ranking("pooled vs mean q", pooled, &mean_centred, 0.5) >= 4);
    check_ranking("pooled", pooled, &want, 0.3);
    // (b)
    check_scores("pooled", pooled, &want, 0.3);
    for sc in &r.analysis.per_scene {
        let got = sc.result.as_ref().unwrap();
        let want = noise_free(&rows, Some(&sc.scene), 1.0, &conditions, &scenes, &q);
        print_table(&sc.scene, got, &want);
        check_ranking(&sc.scene, got, &want, 0.6);
        check_scores(&sc.scene, got, &want, 0.5);
    }
}

/// A one-scene bundle (64x64 texture, 3 MS-SSIM scales) whose 4 conditions add increasing Gaussian noise;
/// not marked synthetic. Returns the conditions' MS-SSIM against the reference.
fn noise_bundle(dir: &Path) -> Vec<(String, f64)> {
    std::fs::create_dir_all(dir).unwrap();
    let reference = image::RgbImage::from_fn(64, 64, |x, y| {
        let r = ((x as f64 - 32.0).hypot(y as f64 - 20.0) / 2.5).sin();
        image::Rgb([
            (128.0 + 90.0 * r) as u8,
            (x * 4) as u8,
            if (x / 8 + y / 8) % 2 == 0 { 200 } else { 40 },
        ])
    });
    reference.save(dir.join("ref.png")).unwrap();
    let z = normals(64 * 64 * 3, 77);
    let mut images = serde_json::Map::new();
    let mut conds = Vec::new();
    let mut scores = Vec::new();
    for sigma in [3u32, 6, 9, 12] {
        let key = format!("noise-{sigma}");
        let mut img = reference.clone();
        for (i, p) in img.pixels_mut().enumerate() {
            for c in 0..3 {
                p.0[c] = (p.0[c] as f64 + sigma as f64 * z[3 * i + c])
                    .round()
                    .clamp(0.0, 255.0) as u8;
            }
        }
        img.save(dir.join(format!("{key}.png"))).unwrap();
        scores.push((key.clone(), metric::ms_ssim(&reference, &img).unwrap()));
        images.insert(key.clone(), serde_json::json!(format!("{key}.png")));
        conds.push(serde_json::json!({ "key": key }));
    }
    let manifest = serde_json::json!({
        "format": "jndlab-bundle/1", "name": "Noise study", "slug": "noise",
        "settings": { "repetitions": 1000, "min_response_ms": 0 },
        "conditions": conds,
        "scenes": [{ "key": "s0", "reference": "ref.png", "images": images }],
    });
    std::fs::write(dir.join("bundle.json"), manifest.to_string()).unwrap();
    scores
}

/// Runs `jndlab-app` in folder `cwd` (so its default `jndlab-data` is a fresh one).
fn cli(cwd: &Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jndlab-app"))
        .current_dir(cwd)
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("JNDLAB_DB")
        .env_remove("JNDLAB_DATA_DIR")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The pipeline's usage: `jndlab-app --db FILE --data-dir DIR import BUNDLE --live`, then `jndlab-app --db
/// FILE simulate SLUG --observers N --check-fail-rate R --seed S` (its own server in-process on an
/// ephemeral port). One scene, so the model's printed expected scores (mean q over scenes, centred) are
/// exactly what the pooled scaling estimates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_cli_recovers_a_known_one_scene_truth() {
    let tmp = tempfile::tempdir().unwrap();
    let bdir = tmp.path().join("bundle");
    let scores = noise_bundle(&bdir);
    // 1 JND = a third of the MS-SSIM range, so the conditions span 3 JND
    let step = (scores[0].1 - scores[3].1) / 3.0;
    let model = ObserverModel {
        jnd_step: step,
        check_fail_rate: 0.1,
    };
    let q: Vec<f64> = scores.iter().map(|(_, m)| model.quality(*m)).collect();
    let truth: BTreeMap<String, f64> = scores
        .iter()
        .map(|(k, _)| k.clone())
        .zip(centre(&q))
        .collect();
    eprintln!("truth {truth:.3?} (jnd step {step:.5})");
    let dbf = tmp.path().join("j.db");
    let (db, data) = (dbf.to_str().unwrap(), tmp.path().to_str().unwrap());
    let (ok, out, err) = cli(
        tmp.path(),
        &[
            "--db",
            db,
            "--data-dir",
            data,
            "import",
            bdir.to_str().unwrap(),
            "--live",
        ],
    );
    assert!(ok, "{out}{err}");
    let step_s = format!("{step}");
    // as the pipeline calls it: no --data-dir (the images are found next to the database file)
    let args = [
        "--db",
        db,
        "simulate",
        "noise",
        "--observers",
        "150",
        "--check-fail-rate",
        "0.1",
        "--seed",
        "5",
        "--jnd-step",
        &step_s,
        "--pause-ms",
        "0",
    ];
    // not a synthetic study: refused without --force, nothing written
    let (ok, out, err) = cli(tmp.path(), &args);
    assert!(!ok && err.contains("not a synthetic study"), "{out}{err}");
    let started = std::time::Instant::now();
    let mut forced = args.to_vec();
    forced.push("--force");
    let (ok, out, err) = cli(tmp.path(), &forced);
    assert!(ok, "{out}{err}");
    eprintln!(
        "{out}simulate CLI took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(out.contains("150 HITs completed"), "{out}");
    // the printed expected scores are the model's truth
    for (c, v) in &truth {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(c.as_str()))
            .unwrap();
        let printed: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!((printed - v).abs() < 0.0006, "{line} vs {v}");
    }

    let pool = app::server::db::open(&dbf).await.unwrap();
    let s = study::by_slug(&pool, "noise").await.unwrap().unwrap();
    let (hits, answers, excluded): (i64, i64, i64) = sqlx::query_as(
        "SELECT COUNT(DISTINCT h.id), COUNT(t.answer), COUNT(DISTINCT CASE WHEN h.excluded = 1 THEN h.id END) \
         FROM hits h JOIN trials t ON t.hit_id = h.id WHERE h.study_id = $1",
    )
    .bind(s.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    // 6 pairs + 1 check per HIT, every answer stored
    assert_eq!((hits, answers), (150, 150 * 7));
    assert!(
        out.contains(&format!("({excluded} HITs excluded)")),
        "{out}"
    );
    let p: f64 = 0.1;
    let sd = (150.0 * p * (1.0 - p)).sqrt();
    assert!(
        (excluded as f64 - 150.0 * p).abs() <= 4.0 * sd,
        "{excluded} excluded"
    );
    let o = ResultsOptions {
        replicates: 200,
        ..Default::default()
    };
    let r = results::results(&pool, s.id, &o, Arc::new(|| {}))
        .await
        .unwrap();
    assert_eq!(r.counts.hits_excluded as i64, excluded);
    assert_eq!(r.counts.answers_used as i64, (150 - excluded) * 6);
    let pooled = r.analysis.pooled.as_ref().unwrap();
    print_table("one scene", pooled, &truth);
    assert_eq!(check_ranking("one scene", pooled, &truth, 0.3), 6);
    check_scores("one scene", pooled, &truth, 0.25);
}
