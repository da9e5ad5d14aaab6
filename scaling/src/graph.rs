//! The comparison graph: which conditions were compared (connectivity, pwcmp's joining of components)
//! and who beat whom (whether the maximum-likelihood scores are finite).

use crate::counts::CountMatrix;
use std::f64::consts::PI;

/// Connected components of the undirected comparison graph (edge i-j when the pair was compared),
/// each sorted, ordered by their smallest member.
pub fn components(d: &CountMatrix) -> Vec<Vec<usize>> {
    let n = d.len();
    let mut label = vec![usize::MAX; n];
    let mut comps = Vec::new();
    for start in 0..n {
        if label[start] != usize::MAX {
            continue;
        }
        let id = comps.len();
        let mut members = vec![start];
        label[start] = id;
        let mut k = 0;
        while k < members.len() {
            let i = members[k];
            for j in 0..n {
                if label[j] == usize::MAX && d.get(i, j) + d.get(j, i) > 0.0 {
                    label[j] = id;
                    members.push(j);
                }
            }
            k += 1;
        }
        members.sort_unstable();
        comps.push(members);
    }
    comps
}

/// ISO 20462 start scores as pwcmp computes them: Q0_j = sum_i -(12/pi asin(sqrt(M_ij)) - 3) / 2 with
/// M = D ./ (D + D'), NaN (never compared, and the diagonal) -> 0.5.
pub fn iso_start_scores(d: &CountMatrix) -> Vec<f64> {
    let n = d.len();
    (0..n)
        .map(|j| {
            (0..n)
                .map(|i| {
                    let total = d.get(i, j) + d.get(j, i);
                    let m = if i == j || total == 0.0 {
                        0.5
                    } else {
                        d.get(i, j) / total
                    };
                    -(12.0 / PI * m.sqrt().asin() - 3.0) / 2.0
                })
                .sum()
        })
        .collect()
}

/// pwcmp's remedy for a disconnected graph: for every two components, one fake 1:1 comparison between
/// the condition of each with the largest ISO 20462 start score (first index on ties).
/// Returns the joined matrix and the pairs that were joined.
pub fn join_components(
    d: &CountMatrix,
    comps: &[Vec<usize>],
) -> (CountMatrix, Vec<(usize, usize)>) {
    let q0 = iso_start_scores(d);
    let best: Vec<usize> = comps
        .iter()
        .map(|c| {
            // `c` is sorted, so keeping the first maximum gives pwcmp's "first index on ties".
            c.iter()
                .copied()
                .fold(c[0], |b, i| if q0[i] > q0[b] { i } else { b })
        })
        .collect();
    let mut joined = d.clone();
    let mut pairs = Vec::new();
    for a in 0..best.len() {
        for b in a + 1..best.len() {
            joined.add(best[a], best[b], 1.0);
            joined.add(best[b], best[a], 1.0);
            pairs.push((best[a], best[b]));
        }
    }
    (joined, pairs)
}

/// Strongly connected components of the "won at least once against" graph (edge i -> j when
/// `D[i][j] > 0`). The likelihood has a finite maximum iff each connected component of the comparison
/// graph is a single strongly connected component (Zermelo/Ford's condition).
pub fn win_components(d: &CountMatrix) -> Vec<Vec<usize>> {
    // Two reachability closures are enough at the sizes pwcmp handles (N in the hundreds): i and j share
    // a component iff each reaches the other.
    let n = d.len();
    let reach = reachability(d);
    let mut assigned = vec![false; n];
    let mut comps = Vec::new();
    for i in 0..n {
        if assigned[i] {
            continue;
        }
        let comp: Vec<usize> = (0..n)
            .filter(|&j| !assigned[j] && reach[i][j] && reach[j][i])
            .collect();
        for &j in &comp {
            assigned[j] = true;
        }
        comps.push(comp);
    }
    comps
}

/// `reach[i][j]`: j can be reached from i along "beat" edges (i beat k beat ... j); reach[i][i] = true.
pub fn reachability(d: &CountMatrix) -> Vec<Vec<bool>> {
    let n = d.len();
    (0..n)
        .map(|s| {
            let mut seen = vec![false; n];
            seen[s] = true;
            let mut stack = vec![s];
            while let Some(i) = stack.pop() {
                for j in 0..n {
                    if !seen[j] && d.get(i, j) > 0.0 {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
            seen
        })
        .collect()
}

/// Sets of conditions that won every comparison against everyone outside the set (closed under
/// "beat someone in the set"), one per condition that is not reached by all others; pushing such a
/// set up never lowers the likelihood. Empty when the likelihood has a finite maximum.
pub fn dominant_sets(d: &CountMatrix) -> Vec<Vec<usize>> {
    let n = d.len();
    let reach = reachability(d);
    let mut sets: Vec<Vec<usize>> = Vec::new();
    for j in 0..n {
        // Everyone that reaches j: closed under predecessors, so no outsider ever beat an insider.
        let set: Vec<usize> = (0..n).filter(|&i| reach[i][j]).collect();
        let compared_across = set
            .iter()
            .any(|&i| (0..n).any(|k| !reach[k][j] && d.get(i, k) + d.get(k, i) > 0.0));
        if set.len() < n && compared_across && !sets.contains(&set) {
            sets.push(set);
        }
    }
    sets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(rows: &[&[f64]]) -> CountMatrix {
        CountMatrix::from_rows(&rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>(), None).unwrap()
    }

    #[test]
    fn finds_components() {
        let d = m(&[
            &[0., 1., 0., 0.],
            &[1., 0., 0., 0.],
            &[0., 0., 0., 2.],
            &[0., 0., 0., 0.],
        ]);
        assert_eq!(components(&d), vec![vec![0, 1], vec![2, 3]]);
    }

    #[test]
    fn iso_scores_rank_the_winner_first() {
        let d = m(&[&[0., 9., 9.], &[1., 0., 5.], &[1., 5., 0.]]);
        let q = iso_start_scores(&d);
        assert!(q[0] > q[1] && (q[1] - q[2]).abs() < 1e-12, "{q:?}");
        // every comparison a tie -> all scores zero
        let tie = m(&[&[0., 2.], &[2., 0.]]);
        assert!(iso_start_scores(&tie).iter().all(|v| v.abs() < 1e-12));
    }

    #[test]
    fn joins_best_of_each_component() {
        let d = m(&[
            &[0., 3., 0., 0.],
            &[1., 0., 0., 0.],
            &[0., 0., 0., 1.],
            &[0., 0., 4., 0.],
        ]);
        let comps = components(&d);
        let (joined, pairs) = join_components(&d, &comps);
        assert_eq!(pairs, vec![(0, 3)]);
        assert_eq!(joined.get(0, 3), 1.0);
        assert_eq!(joined.get(3, 0), 1.0);
        assert_eq!(components(&joined).len(), 1);
    }

    #[test]
    fn unanimous_winner_forms_a_dominant_set() {
        // 0 beat 1 always; 1 and 2 split.
        let d = m(&[&[0., 5., 0.], &[0., 0., 3.], &[0., 2., 0.]]);
        assert_eq!(win_components(&d), vec![vec![0], vec![1, 2]]);
        assert_eq!(dominant_sets(&d), vec![vec![0]]);
        let balanced = m(&[&[0., 5., 1.], &[1., 0., 3.], &[0., 2., 0.]]);
        assert!(dominant_sets(&balanced).is_empty());
        assert_eq!(win_components(&balanced).len(), 1);
    }
}
