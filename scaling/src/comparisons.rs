//! pwcmp's long ("table") format: one row per answer.
//!
//! `observer,scene,condition_A,condition_B,is_A_selected` (header required, `scene` and pwcmp's
//! `session` optional). Conditions, observers and scenes are ordered as MATLAB's `unique` orders them
//! (sorted), so results do not depend on row order.

use crate::counts::CountMatrix;
use crate::error::{Result, ScaleError};
use nalgebra::DMatrix;
use std::collections::BTreeSet;
use std::io::Read;

/// pwcmp's long-format columns in its order (`session` and `scene` optional); other tools writing the
/// format use this header so that [`Comparisons::read_csv`] reads it back.
pub const LONG_FORMAT_COLUMNS: [&str; 6] = [
    "observer",
    "session",
    "scene",
    "condition_A",
    "condition_B",
    "is_A_selected",
];

const REQUIRED: [&str; 4] = ["observer", "condition_A", "condition_B", "is_A_selected"];
const OPTIONAL: [&str; 2] = ["scene", "session"];

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub observer: String,
    pub scene: Option<String>,
    pub condition_a: String,
    pub condition_b: String,
    pub a_selected: bool,
}

/// A set of answers with the sorted lists of what they mention.
#[derive(Debug, Clone)]
pub struct Comparisons {
    pub answers: Vec<Answer>,
    pub conditions: Vec<String>,
    pub observers: Vec<String>,
    pub scenes: Vec<String>,
}

/// Per-observer count matrices over a common condition list.
#[derive(Debug, Clone)]
pub struct ObserverCounts {
    pub observers: Vec<String>,
    pub matrices: Vec<CountMatrix>,
}

impl ObserverCounts {
    /// The pooled matrix (sum over observers).
    pub fn total(&self) -> CountMatrix {
        sum_matrices(self.matrices.iter())
    }
}

/// Sums count matrices that share one condition list.
pub(crate) fn sum_matrices<'a>(mut matrices: impl Iterator<Item = &'a CountMatrix>) -> CountMatrix {
    let first = matrices.next().expect("at least one matrix").clone();
    matrices.fold(first, |mut acc, m| {
        for i in 0..acc.len() {
            for j in 0..acc.len() {
                acc.add(i, j, m.get(i, j));
            }
        }
        acc
    })
}

impl Comparisons {
    /// Reads the long format. `allow_extra_columns` ignores unknown columns instead of rejecting them.
    pub fn read_csv(
        reader: impl Read,
        source_name: &str,
        allow_extra_columns: bool,
    ) -> Result<Self> {
        let mut rdr = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(reader);
        let headers = rdr
            .headers()
            .map_err(|e| ScaleError::input(source_name, "line 1", e.to_string()))?
            .clone();
        if headers.iter().all(str::is_empty) {
            return Err(ScaleError::input(
                source_name,
                "line 1",
                "empty file: expected a header row",
            ));
        }
        let column = |name: &str| headers.iter().position(|h| h == name);
        for h in headers.iter() {
            if !allow_extra_columns && !REQUIRED.contains(&h) && !OPTIONAL.contains(&h) {
                return Err(ScaleError::input(
                    source_name,
                    "line 1",
                    format!(
                        "unknown column '{h}' (expected {} and optionally {}; use --allow-extra-columns to ignore others)",
                        REQUIRED.join(","),
                        OPTIONAL.join(",")
                    ),
                ));
            }
        }
        let mut idx = [0usize; 4];
        for (k, name) in REQUIRED.iter().enumerate() {
            idx[k] = column(name).ok_or_else(|| {
                ScaleError::input(
                    source_name,
                    "line 1",
                    format!(
                        "missing column '{name}' (header: {})",
                        headers.iter().collect::<Vec<_>>().join(",")
                    ),
                )
            })?;
        }
        let scene_col = column("scene");
        let mut answers = Vec::new();
        for (row, record) in rdr.records().enumerate() {
            let line = row + 2;
            let record = record.map_err(|e| {
                ScaleError::input(source_name, format!("line {line}"), e.to_string())
            })?;
            let field = |k: usize| record.get(idx[k]).unwrap_or("");
            let place = |name: &str| format!("line {line}, column '{name}'");
            for (k, name) in REQUIRED.iter().enumerate().take(3) {
                if field(k).is_empty() {
                    return Err(ScaleError::input(source_name, place(name), "empty value"));
                }
            }
            if field(1) == field(2) {
                return Err(ScaleError::input(
                    source_name,
                    place("condition_B"),
                    format!("condition '{}' compared with itself", field(1)),
                ));
            }
            let a_selected = match field(3) {
                "1" | "true" | "TRUE" | "True" => true,
                "0" | "false" | "FALSE" | "False" => false,
                other => {
                    return Err(ScaleError::input(
                        source_name,
                        place("is_A_selected"),
                        format!("expected 0 or 1, found '{other}'"),
                    ));
                }
            };
            answers.push(Answer {
                observer: field(0).to_string(),
                scene: scene_col.map(|c| record.get(c).unwrap_or("").to_string()),
                condition_a: field(1).to_string(),
                condition_b: field(2).to_string(),
                a_selected,
            });
        }
        if answers.is_empty() {
            return Err(ScaleError::input(
                source_name,
                "line 2",
                "no answers after the header",
            ));
        }
        Ok(Self::from_answers(answers))
    }

    pub fn from_answers(answers: Vec<Answer>) -> Self {
        let sorted = |f: &dyn Fn(&Answer) -> Vec<String>| -> Vec<String> {
            answers
                .iter()
                .flat_map(f)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        let conditions = sorted(&|a| vec![a.condition_a.clone(), a.condition_b.clone()]);
        let observers = sorted(&|a| vec![a.observer.clone()]);
        let scenes = sorted(&|a| a.scene.iter().cloned().collect());
        Comparisons {
            answers,
            conditions,
            observers,
            scenes,
        }
    }

    /// Only the answers of one scene (conditions re-derived from them).
    pub fn scene(&self, scene: &str) -> Comparisons {
        Self::from_answers(
            self.answers
                .iter()
                .filter(|a| a.scene.as_deref() == Some(scene))
                .cloned()
                .collect(),
        )
    }

    /// Per-observer count matrices over `self.conditions`.
    pub fn observer_counts(&self) -> ObserverCounts {
        let n = self.conditions.len();
        let cond = |name: &str| {
            self.conditions
                .binary_search_by(|c| c.as_str().cmp(name))
                .expect("known condition")
        };
        let mut mats: Vec<DMatrix<f64>> = vec![DMatrix::zeros(n, n); self.observers.len()];
        for a in &self.answers {
            let o = self
                .observers
                .binary_search(&a.observer)
                .expect("known observer");
            let (i, j) = (cond(&a.condition_a), cond(&a.condition_b));
            let (win, lose) = if a.a_selected { (i, j) } else { (j, i) };
            mats[o][(win, lose)] += 1.0;
        }
        let matrices = mats
            .into_iter()
            .map(|m| {
                CountMatrix::new(m, Some(self.conditions.clone()))
                    .expect("counts are valid by construction")
            })
            .collect();
        ObserverCounts {
            observers: self.observers.clone(),
            matrices,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_per_observer_matrices() {
        let csv = "observer,scene,condition_A,condition_B,is_A_selected\no1,s,b,a,1\no1,s,a,b,1\no2,s,a,c,0\n";
        let c = Comparisons::read_csv(csv.as_bytes(), "x.csv", false).unwrap();
        assert_eq!(c.conditions, ["a", "b", "c"]);
        let oc = c.observer_counts();
        assert_eq!(oc.matrices[0].get(1, 0), 1.0);
        assert_eq!(oc.matrices[0].get(0, 1), 1.0);
        assert_eq!(oc.matrices[1].get(2, 0), 1.0);
        assert_eq!(oc.total().total(), 3.0);
    }

    #[test]
    fn rejects_bad_rows_naming_line_and_column() {
        let bad = |body: &str| {
            Comparisons::read_csv(
                format!("observer,condition_A,condition_B,is_A_selected\n{body}").as_bytes(),
                "x.csv",
                false,
            )
            .unwrap_err()
            .to_string()
        };
        assert!(
            bad("o,a,b,2\n").contains("line 2, column 'is_A_selected': expected 0 or 1, found '2'")
        );
        assert!(bad("o,a,b,1\no,a,a,1\n").contains("line 3"));
        assert!(bad("").contains("no answers"));
        let e = Comparisons::read_csv(
            "observer,cond,condition_B,is_A_selected\no,a,b,1\n".as_bytes(),
            "x.csv",
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown column 'cond'"), "{e}");
        let e = Comparisons::read_csv(
            "observer,cond,condition_B,is_A_selected\no,a,b,1\n".as_bytes(),
            "x.csv",
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("missing column 'condition_A'"), "{e}");
    }
}
