//! Power planning against simulation with known truth: the number of comparisons it recommends, when
//! actually collected (simulated Thurstone observers) and scaled with the normal fit and observer
//! bootstrap, must give CIs of about the target width.

mod common;

use common::pooled;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scaling::power::{Design, Power, PowerOptions, WidthSummary, plan};
use scaling::{BootstrapOptions, CountMatrix, ScaleOptions, bootstrap, scale};

/// True scores (JND) of 5 conditions: unevenly spaced, some close, some far apart.
const TRUTH: [f64; 5] = [0.0, 0.7, 1.5, 2.6, 3.0];
/// Comparisons per observer: each observer answers every pair once.
const PER_OBSERVER: usize = 10;

/// A pilot study of `observers` simulated observers, scaled, and the plan for `opts` from it.
fn pilot_plan(observers: usize, seed: u64, opts: &PowerOptions) -> Power {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let obs = scaling::simulate::full_design(&TRUTH, observers, 1, &mut rng);
    let d = pooled(&obs);
    let fit = scale(&d, &ScaleOptions::default()).unwrap();
    let design = Design::observed(&d, &Design::full(TRUTH.len()).pairs()).unwrap();
    plan(&d, &fit.jnd, &design, opts).unwrap()
}

/// Mean over `studies` simulated studies of `comparisons` comparisons of the summarised 95% observer
/// bootstrap CI width: what the results page would show after collecting that many.
fn bootstrap_width(comparisons: usize, studies: u64, summary: WidthSummary) -> f64 {
    let observers = comparisons.div_ceil(PER_OBSERVER);
    let mut total = 0.0;
    for s in 0..studies {
        let mut rng = ChaCha8Rng::seed_from_u64(1000 + s);
        let obs = scaling::simulate::full_design(&TRUTH, observers, 1, &mut rng);
        let b = bootstrap(
            &obs,
            &ScaleOptions::default(),
            &BootstrapOptions {
                replicates: 300,
                alpha: 0.05,
                seed: s,
            },
            &|| {},
        )
        .unwrap();
        let widths = b.ci_high.iter().zip(&b.ci_low).map(|(h, l)| h - l);
        total += match summary {
            WidthSummary::Mean => widths.sum::<f64>() / TRUTH.len() as f64,
            WidthSummary::Max => widths.fold(0.0, f64::max),
        };
    }
    total / studies as f64
}

fn opts(target: f64) -> PowerOptions {
    PowerOptions {
        target,
        ..Default::default()
    }
}

#[test]
fn recommended_comparisons_give_the_target_width_when_collected() {
    for (target, summary) in [(0.6, WidthSummary::Mean), (0.6, WidthSummary::Max)] {
        let o = PowerOptions {
            summary,
            ..opts(target)
        };
        let p = pilot_plan(12, 1, &o);
        assert_eq!(p.current_comparisons, 120);
        assert!(!p.target_met && !p.capped, "{p:?}");
        assert!(p.needed_comparisons > 120, "{p:?}");
        assert_eq!(p.additional_comparisons, p.needed_comparisons - 120);
        // the plan's own simulation at the recommended total is at the target
        let at = p.width_at_needed.unwrap();
        assert!((at / target - 1.0).abs() < 0.1, "{at} vs {target}: {p:?}");
        // collecting that many and scaling them as the results page does gives ~ the target
        let w = bootstrap_width(p.needed_comparisons, 16, summary);
        eprintln!(
            "{summary:?}, target {target}: plan {} comparisons (simulated width {at:.3}), bootstrap width {w:.3}",
            p.needed_comparisons
        );
        assert!(
            (w / target - 1.0).abs() < 0.15,
            "{summary:?}: {} comparisons gave a width of {w}, target {target}",
            p.needed_comparisons
        );
    }
}

#[test]
fn needed_comparisons_fall_as_the_target_widens_and_quadruple_when_it_halves() {
    let needed: Vec<usize> = [0.4, 0.6, 0.8]
        .iter()
        .map(|&t| pilot_plan(12, 2, &opts(t)).needed_comparisons)
        .collect();
    assert!(needed[0] > needed[1] && needed[1] > needed[2], "{needed:?}");
    let ratio = needed[0] as f64 / needed[2] as f64;
    assert!(
        (3.4..4.6).contains(&ratio),
        "halving 0.8 -> 0.4: x{ratio} ({needed:?})"
    );
    // the curve falls with N and brackets the target
    let p = pilot_plan(12, 2, &opts(0.4));
    assert!(
        p.curve
            .windows(2)
            .all(|w| w[0].comparisons < w[1].comparisons)
    );
    let (first, last) = (p.curve[0], p.curve[p.curve.len() - 1]);
    assert!(first.width > 0.4 && last.width < 0.4, "{:?}", p.curve);
    assert!(
        p.curve
            .iter()
            .any(|c| c.comparisons == p.current_comparisons)
    );
    assert!(
        p.curve
            .iter()
            .any(|c| c.comparisons == p.needed_comparisons)
    );
}

#[test]
fn a_target_already_met_needs_no_more_comparisons() {
    let p = pilot_plan(40, 3, &opts(2.0));
    assert!(p.target_met, "{p:?}");
    assert_eq!(p.additional_comparisons, 0);
    assert!(p.current_width.unwrap() < 2.0);
    assert!(p.needed_comparisons < p.current_comparisons, "{p:?}");
    // the same plan with a target below the current width asks for more
    let q = pilot_plan(40, 3, &opts(p.current_width.unwrap() * 0.7));
    assert!(!q.target_met && q.additional_comparisons > 0, "{q:?}");
}

#[test]
fn deterministic_per_seed() {
    let a = pilot_plan(12, 4, &opts(0.6));
    let b = pilot_plan(12, 4, &opts(0.6));
    assert_eq!(a, b);
    let c = pilot_plan(
        12,
        4,
        &PowerOptions {
            seed: 9,
            ..opts(0.6)
        },
    );
    assert_ne!(a.curve, c.curve);
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let d = CountMatrix::from_rows(&[vec![0., 6.], vec![4., 0.]], None).unwrap();
    let design = Design::full(2);
    let scores = [-0.1, 0.1];
    for t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = plan(&d, &scores, &design, &opts(t))
            .unwrap_err()
            .to_string();
        assert!(e.contains("target"), "{t}: {e}");
    }
    let empty = CountMatrix::from_rows(&[vec![0., 0.], vec![0., 0.]], None).unwrap();
    let e = plan(&empty, &scores, &design, &opts(0.5))
        .unwrap_err()
        .to_string();
    assert!(e.contains("none"), "{e}");
    let one = CountMatrix::from_rows(&[vec![0.]], None).unwrap();
    let e = plan(&one, &[0.0], &Design::full(1), &opts(0.5))
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least 2 conditions"), "{e}");
    let e = plan(&d, &[0.0], &design, &opts(0.5))
        .unwrap_err()
        .to_string();
    assert!(e.contains("scores"), "{e}");
    let few = PowerOptions {
        replicates: 5,
        ..opts(0.5)
    };
    let e = plan(&d, &scores, &design, &few).unwrap_err().to_string();
    assert!(e.contains("replicates"), "{e}");
}
