//! Where pwcmp fails silently: huge counts, unanimous designs, disconnected graphs.

use scaling::{CountMatrix, Disconnected, Prior, ScaleError, ScaleOptions, scale};

fn m(rows: &[&[f64]]) -> CountMatrix {
    CountMatrix::from_rows(&rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>(), None).unwrap()
}

#[test]
fn huge_counts_give_the_same_scores_as_small_ones() {
    // pwcmp returns all zeros at ~2000 comparisons per pair; the log domain does not care.
    let small = m(&[&[0., 25., 10.], &[75., 0., 30.], &[90., 70., 0.]]);
    let big = m(&[&[0., 25e3, 10e3], &[75e3, 0., 30e3], &[90e3, 70e3, 0.]]);
    let opts = ScaleOptions {
        prior: Prior::None,
        ..Default::default()
    };
    let (a, b) = (scale(&small, &opts).unwrap(), scale(&big, &opts).unwrap());
    // proportions are identical, so plain ML gives (almost) the same scores
    for (x, y) in a.jnd.iter().zip(&b.jnd) {
        assert!((x - y).abs() < 0.05, "{:?} vs {:?}", a.jnd, b.jnd);
    }
    // 90% -> 1.90 JND directly, 75% + 70% -> 1.78 JND via C2: the fit lies between
    assert!((1.7..2.0).contains(&(b.jnd[2] - b.jnd[0])), "{:?}", b.jnd);
    let g = scale(&big, &ScaleOptions::default()).unwrap();
    assert!(
        g.jnd.iter().zip(&b.jnd).all(|(x, y)| (x - y).abs() < 0.01),
        "{:?}",
        g.jnd
    );
}

#[test]
fn every_pair_unanimous_is_reported_not_scaled() {
    let d = m(&[&[0., 10., 10.], &[0., 0., 10.], &[0., 0., 0.]]);
    for prior in [Prior::Gaussian, Prior::None] {
        match scale(
            &d,
            &ScaleOptions {
                prior,
                ..Default::default()
            },
        ) {
            Err(ScaleError::Unbounded {
                winners,
                losers,
                comparisons,
            }) => {
                assert!(
                    winners.contains("C1") && losers.contains("C2") && comparisons > 0,
                    "{winners} / {losers}"
                );
            }
            // pwcmp's gaussian prior (unanimous counts shifted one vote to the middle) has a finite
            // optimum here, which Newton finds: it must be a minimum along the winners' direction.
            Ok(fit) if prior == Prior::Gaussian => {
                assert!(
                    fit.jnd[0] > fit.jnd[1] && fit.jnd[1] > fit.jnd[2],
                    "{fit:?}"
                );
                let f = scaling::Objective::new(&d, true);
                for t in [0.5, 5.0, 50.0] {
                    let mut moved = fit.jnd.clone();
                    moved[0] += t;
                    assert!(f.value(&moved) > fit.objective, "{t}: {fit:?}");
                }
            }
            other => panic!("{prior:?}: expected Unbounded, got {other:?}"),
        }
    }
}

#[test]
fn unanimous_group_is_unbounded_without_prior() {
    // C1 always beat C2 and C3, who split among themselves.
    let d = m(&[&[0., 6., 6.], &[0., 0., 5.], &[0., 5., 0.]]);
    let e = scale(
        &d,
        &ScaleOptions {
            prior: Prior::None,
            ..Default::default()
        },
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("{C1} won all 12 comparisons against {C2, C3}"),
        "{text}"
    );
}

#[test]
fn non_unanimous_design_is_bounded() {
    let d = m(&[&[0., 6., 5.], &[1., 0., 5.], &[1., 5., 0.]]);
    for prior in [Prior::Gaussian, Prior::None] {
        let fit = scale(
            &d,
            &ScaleOptions {
                prior,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(
            fit.jnd[0] > fit.jnd[1] && fit.jnd.iter().all(|v| v.abs() < 10.0),
            "{:?}",
            fit.jnd
        );
    }
}

#[test]
fn disconnected_graph_is_joined_with_a_warning_naming_components() {
    let d = m(&[
        &[0., 3., 0., 0.],
        &[1., 0., 0., 0.],
        &[0., 0., 0., 2.],
        &[0., 0., 2., 0.],
    ]);
    let fit = scale(&d, &ScaleOptions::default()).unwrap();
    assert_eq!(fit.warnings.len(), 1);
    assert!(
        fit.warnings[0].contains("{C1, C2} | {C3, C4}"),
        "{}",
        fit.warnings[0]
    );
    let strict = scale(
        &d,
        &ScaleOptions {
            disconnected: Disconnected::Error,
            ..Default::default()
        },
    );
    assert!(matches!(strict, Err(ScaleError::Disconnected { .. })));
}
