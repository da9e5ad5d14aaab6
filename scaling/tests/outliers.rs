//! pwcmp's outlier screens against values derived independently here (closed-form maximum
//! likelihood, statrs's binomial and normal, explicit leave-one-out sums), and a simulation with a
//! planted random observer.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scaling::{
    AnalysisOptions, Answer, Comparisons, CountMatrix, OUTLIER_FENCE, Prior, ScaleOptions, analyse,
    outliers, outliers_by_scene, scale,
};
use statrs::distribution::{Binomial, ContinuousCDF, Discrete, Normal};

/// `wins_a` answers choosing `a` and `wins_b` choosing `b`, of observer `o` in scene `s`.
fn answers(o: &str, s: &str, a: &str, b: &str, wins_a: usize, wins_b: usize) -> Vec<Answer> {
    let one = |a_selected| Answer {
        observer: o.into(),
        scene: Some(s.into()),
        condition_a: a.into(),
        condition_b: b.into(),
        a_selected,
    };
    let mut v: Vec<Answer> = (0..wins_a).map(|_| one(true)).collect();
    v.extend((0..wins_b).map(|_| one(false)));
    v
}

/// MATLAB's quantile (midpoint positions (k - 0.5) / n, linear between, clamped), written out again.
fn matlab_quantile(values: &[f64], p: f64) -> f64 {
    let mut x = values.to_vec();
    x.sort_by(f64::total_cmp);
    let n = x.len() as f64;
    let pos = p * n + 0.5; // 1-based
    if pos <= 1.0 {
        return x[0];
    }
    if pos >= n {
        return x[x.len() - 1];
    }
    let lo = pos.floor();
    x[lo as usize - 1] + (pos - lo) * (x[lo as usize] - x[lo as usize - 1])
}

fn dist_l(l: &[f64]) -> Vec<f64> {
    let q1 = matlab_quantile(l, 0.25);
    let iqr = matlab_quantile(l, 0.75) - q1;
    l.iter()
        .map(|&x| if x < q1 { (q1 - x) / iqr } else { 0.0 })
        .collect()
}

/// Two conditions and no prior: the leave-one-out fit's P(a beats b) is the others' share of wins for
/// a, so every number is closed-form. Observer o4 (who prefers b) skips scene s2, o5 answers only s2,
/// and in s3 the others' answers leave o3 with a unanimous rest (no finite optimum: not scored).
#[test]
fn two_conditions_without_prior_match_the_closed_form() {
    // (observer, scene, wins of a, wins of b)
    let table: [(&str, &str, u64, u64); 11] = [
        ("o1", "s1", 3, 1),
        ("o2", "s1", 2, 2),
        ("o3", "s1", 4, 0),
        ("o4", "s1", 0, 3),
        ("o1", "s2", 2, 1),
        ("o2", "s2", 3, 1),
        ("o3", "s2", 1, 1),
        ("o5", "s2", 2, 0),
        ("o1", "s3", 1, 0),
        ("o2", "s3", 1, 0),
        ("o3", "s3", 0, 1),
    ];
    let all: Vec<Answer> = table
        .iter()
        .flat_map(|&(o, s, wa, wb)| answers(o, s, "a", "b", wa as usize, wb as usize))
        .collect();
    let c = Comparisons::from_answers(all);
    let opts = ScaleOptions {
        prior: Prior::None,
        ..Default::default()
    };
    let screen = outliers_by_scene(&c, &opts, OUTLIER_FENCE).unwrap();

    let observers = ["o1", "o2", "o3", "o4", "o5"];
    let mut expected = Vec::new();
    for o in observers {
        let (mut sum, mut pairs, mut scenes) = (0.0, 0, 0);
        for s in ["s1", "s2", "s3"] {
            let Some(&(_, _, ka, kb)) = table.iter().find(|r| r.0 == o && r.1 == s) else {
                continue;
            };
            let (ra, rb) = table
                .iter()
                .filter(|r| r.0 != o && r.1 == s)
                .fold((0u64, 0u64), |(x, y), r| (x + r.2, y + r.3));
            if ra == 0 || rb == 0 {
                continue; // unanimous rest: no finite optimum without a prior
            }
            let p = ra as f64 / (ra + rb) as f64;
            let pmf = Binomial::new(p, ka + kb).unwrap().pmf(ka);
            sum += pmf.max(1e-200).log10();
            pairs += 1;
            scenes += 1;
        }
        expected.push((o, sum / pairs as f64, pairs, scenes));
    }
    let l: Vec<f64> = expected.iter().map(|e| e.1).collect();
    let d = dist_l(&l);
    assert_eq!(screen.rows.len(), 5);
    for ((row, (o, want, pairs, scenes)), want_d) in screen.rows.iter().zip(&expected).zip(&d) {
        assert_eq!(row.observer, *o);
        assert!(
            // the fit's own tolerance (scores to ~1e-9 JND)
            (row.log_likelihood - want).abs() < 1e-8,
            "{o}: {} vs {want}",
            row.log_likelihood
        );
        assert_eq!((row.pairs, row.scenes), (*pairs, *scenes), "{o}");
        let got_d = row.dist_l.unwrap();
        assert!((got_d - want_d).abs() < 1e-7, "{o}: {got_d} vs {want_d}");
        assert_eq!(row.outlier, *want_d >= OUTLIER_FENCE, "{o}");
    }
    // o3's scene s3 was not scored, and the warning says so
    assert_eq!(screen.rows[2].scenes, 2);
    assert!(
        screen.warnings.iter().any(|w| w.contains("1 of 11")),
        "{:?}",
        screen.warnings
    );
    // the observer who prefers b is the worst fit
    let worst = screen
        .rows
        .iter()
        .max_by(|a, b| a.dist_l.unwrap().total_cmp(&b.dist_l.unwrap()))
        .unwrap();
    assert_eq!(worst.observer, "o4");
}

/// Three conditions with pwcmp's gaussian prior, conditions missing from some scenes and observers
/// missing from some scenes: the screen equals an explicit leave-one-out over raw answers on pwcmp's
/// global condition list, scored with statrs's binomial and normal.
#[test]
fn gaussian_prior_matches_an_explicit_leave_one_out() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let conds = ["x", "y", "z"];
    let truth = [0.0, 0.7, 1.5];
    let mut all = Vec::new();
    for o in 0..7 {
        for (s, scene) in ["p", "q", "r"].iter().enumerate() {
            // observer 6 skips scene r, observer 1 scene p; scene q never shows z
            if (o == 6 && s == 2) || (o == 1 && s == 0) {
                continue;
            }
            let n_cond = if s == 1 { 2 } else { 3 };
            for i in 0..n_cond {
                for j in i + 1..n_cond {
                    for _ in 0..2 {
                        let p = scaling::normal::cdf((truth[i] - truth[j]) / scaling::SIGMA);
                        all.push(Answer {
                            observer: format!("obs{o}"),
                            scene: Some(scene.to_string()),
                            condition_a: conds[i].into(),
                            condition_b: conds[j].into(),
                            a_selected: rng.random::<f64>() < p,
                        });
                    }
                }
            }
        }
    }
    let c = Comparisons::from_answers(all.clone());
    let opts = ScaleOptions::default();
    let screen = outliers_by_scene(&c, &opts, OUTLIER_FENCE).unwrap();
    assert!(screen.warnings.is_empty(), "{:?}", screen.warnings);

    let normal = Normal::standard();
    let counts = |keep: &dyn Fn(&Answer) -> bool| -> Vec<Vec<f64>> {
        let mut m = vec![vec![0.0; 3]; 3];
        for a in all.iter().filter(|a| keep(a)) {
            let i = conds.iter().position(|c| *c == a.condition_a).unwrap();
            let j = conds.iter().position(|c| *c == a.condition_b).unwrap();
            if a.a_selected {
                m[i][j] += 1.0;
            } else {
                m[j][i] += 1.0;
            }
        }
        m
    };
    let mut expected = Vec::new();
    for o in 0..7 {
        let name = format!("obs{o}");
        let (mut sum, mut pairs) = (0.0, 0);
        for scene in ["p", "q", "r"] {
            let in_scene = |a: &Answer| a.scene.as_deref() == Some(scene);
            let mine = counts(&|a| in_scene(a) && a.observer == name);
            if mine.iter().flatten().sum::<f64>() == 0.0 {
                continue;
            }
            let rest = counts(&|a| in_scene(a) && a.observer != name);
            let names = conds.iter().map(|s| s.to_string()).collect();
            let q = scale(&CountMatrix::from_rows(&rest, Some(names)).unwrap(), &opts)
                .unwrap()
                .jnd;
            for i in 0..3 {
                for j in i + 1..3 {
                    let (k, n) = (mine[i][j] as u64, (mine[i][j] + mine[j][i]) as u64);
                    if n == 0 {
                        continue;
                    }
                    let p = normal.cdf((q[i] - q[j]) / 1.4826);
                    sum += Binomial::new(p, n).unwrap().pmf(k).max(1e-200).log10();
                    pairs += 1;
                }
            }
        }
        expected.push(sum / pairs as f64);
    }
    let d = dist_l(&expected);
    assert_eq!(screen.rows.len(), 7);
    for (o, row) in screen.rows.iter().enumerate() {
        assert_eq!(row.observer, format!("obs{o}"));
        assert!(
            (row.log_likelihood - expected[o]).abs() < 1e-9,
            "obs{o}: {} vs {}",
            row.log_likelihood,
            expected[o]
        );
        assert!((row.dist_l.unwrap() - d[o]).abs() < 1e-9);
    }
}

/// One scene: the multi-scene screen is `pw_outlier_analysis` of the pooled matrices, and `analyse`
/// picks the right one.
#[test]
fn one_scene_is_the_single_matrix_screen() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let truth = [0.0, 1.0, 1.8, 2.2];
    let obs = scaling::simulate::full_design(&truth, 8, 2, &mut rng);
    let conds = ["c0", "c1", "c2", "c3"];
    let mut all = Vec::new();
    for (o, m) in obs.iter().enumerate() {
        for i in 0..4 {
            for j in 0..4 {
                for _ in 0..m.get(i, j) as usize {
                    all.extend(answers(&format!("o{o}"), "only", conds[i], conds[j], 1, 0));
                }
            }
        }
    }
    let c = Comparisons::from_answers(all);
    let oc = c.observer_counts();
    let opts = ScaleOptions::default();
    let single = outliers(&oc.observers, &oc.matrices, &opts, OUTLIER_FENCE).unwrap();
    let multi = outliers_by_scene(&c, &opts, OUTLIER_FENCE).unwrap();
    assert_eq!(single, multi);
    let ao = |per_scene| AnalysisOptions {
        replicates: 0,
        per_scene,
        ..Default::default()
    };
    assert_eq!(analyse(&c, &ao(true), &|| {}).outliers, single.rows);
    assert_eq!(analyse(&c, &ao(false), &|| {}).outliers, single.rows);
    // each observer compared the 6 pairs
    assert!(single.rows.iter().all(|r| r.pairs == 6 && r.scenes == 1));
}

/// 16 consistent Thurstone observers and one who answers at random, 5 scenes: the random one has
/// the lowest likelihood and is flagged; the screen is the same on a second run (deterministic).
#[test]
fn a_planted_random_observer_is_flagged() {
    let truth = [0.0, 0.8, 1.6, 2.4, 3.2, 4.0];
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let mut all = Vec::new();
    for o in 0..17 {
        for s in 0..5 {
            for i in 0..truth.len() {
                for j in i + 1..truth.len() {
                    let p = scaling::normal::cdf((truth[i] - truth[j]) / scaling::SIGMA);
                    let a_selected = if o == 11 {
                        rng.random::<bool>()
                    } else {
                        rng.random::<f64>() < p
                    };
                    all.push(Answer {
                        observer: format!("o{o:02}"),
                        scene: Some(format!("s{s}")),
                        condition_a: format!("c{i}"),
                        condition_b: format!("c{j}"),
                        a_selected,
                    });
                }
            }
        }
    }
    let c = Comparisons::from_answers(all);
    let opts = AnalysisOptions {
        replicates: 0,
        ..Default::default()
    };
    let a = analyse(&c, &opts, &|| {});
    assert_eq!(a.outliers.len(), 17);
    let worst = a
        .outliers
        .iter()
        .min_by(|x, y| x.log_likelihood.total_cmp(&y.log_likelihood))
        .unwrap();
    assert_eq!(worst.observer, "o11");
    assert!(worst.outlier && worst.dist_l.unwrap() > 3.0, "{worst:?}");
    let flagged: Vec<&str> = a
        .outliers
        .iter()
        .filter(|r| r.outlier)
        .map(|r| r.observer.as_str())
        .collect();
    assert_eq!(flagged, ["o11"], "{:?}", a.outliers);
    assert!(a.outliers.iter().all(|r| r.pairs == 75 && r.scenes == 5));
    assert_eq!(analyse(&c, &opts, &|| {}).outliers, a.outliers);
}
