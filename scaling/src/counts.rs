//! The count matrix D: `D[i][j]` = how often condition i was chosen over condition j.

use crate::error::{Result, ScaleError};
use nalgebra::DMatrix;
use std::io::Read;

/// A square matrix of comparison counts with condition names. The diagonal is ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct CountMatrix {
    names: Vec<String>,
    counts: DMatrix<f64>,
}

impl CountMatrix {
    /// Builds a matrix from rows of counts; conditions are named `C1..CN` unless `names` is given.
    pub fn new(counts: DMatrix<f64>, names: Option<Vec<String>>) -> Result<Self> {
        let n = counts.nrows();
        if n == 0 {
            return Err(ScaleError::Invalid("the count matrix is empty".into()));
        }
        if counts.ncols() != n {
            return Err(ScaleError::Invalid(format!(
                "the count matrix is {}x{}, expected a square matrix",
                n,
                counts.ncols()
            )));
        }
        for ((i, j), &v) in counts.iter().enumerate().map(|(k, v)| ((k % n, k / n), v)) {
            if !(v.is_finite() && v >= 0.0 && v.fract() == 0.0) {
                return Err(ScaleError::Invalid(format!(
                    "count [{}][{}] = {v} is not a non-negative integer",
                    i + 1,
                    j + 1
                )));
            }
        }
        let names = match names {
            Some(names) if names.len() != n => {
                return Err(ScaleError::Invalid(format!(
                    "{} condition names given for {n} conditions",
                    names.len()
                )));
            }
            Some(names) => names,
            None => (1..=n).map(|i| format!("C{i}")).collect(),
        };
        let mut counts = counts;
        counts.fill_diagonal(0.0);
        Ok(CountMatrix { names, counts })
    }

    /// Builds a matrix from nested rows (`rows[i][j]` = times i chosen over j).
    pub fn from_rows(rows: &[Vec<f64>], names: Option<Vec<String>>) -> Result<Self> {
        let n = rows.len();
        if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != n) {
            return Err(ScaleError::Invalid(format!(
                "row {} has {} counts, expected {n}",
                i + 1,
                r.len()
            )));
        }
        Self::new(DMatrix::from_fn(n, n, |i, j| rows[i][j]), names)
    }

    /// Reads the CSV format of `jnd-scale --matrix`: N rows of N non-negative integers, optionally
    /// preceded by a header row of condition names. `source_name` is used in error messages.
    pub fn read_csv(reader: impl Read, source_name: &str) -> Result<Self> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(reader);
        let mut names = None;
        let mut rows: Vec<Vec<f64>> = Vec::new();
        for (idx, record) in rdr.records().enumerate() {
            let line = idx + 1;
            let record = record.map_err(|e| {
                ScaleError::input(source_name, format!("line {line}"), e.to_string())
            })?;
            if record.iter().all(|f| f.is_empty()) {
                continue;
            }
            let is_header = idx == 0 && record.iter().any(|f| f.parse::<f64>().is_err());
            if is_header {
                names = Some(record.iter().map(str::to_string).collect::<Vec<_>>());
                continue;
            }
            let mut row = Vec::with_capacity(record.len());
            for (col, field) in record.iter().enumerate() {
                let v = field.parse::<u64>().map_err(|_| {
                    ScaleError::input(
                        source_name,
                        format!("line {line}, column {}", col + 1),
                        format!("expected a non-negative integer count, found '{field}'"),
                    )
                })?;
                row.push(v as f64);
            }
            rows.push(row);
        }
        if rows.is_empty() {
            return Err(ScaleError::input(
                source_name,
                "line 1",
                "no counts found (expected N rows of N integers)",
            ));
        }
        let n = rows.len();
        let header_lines = usize::from(names.is_some());
        for (i, r) in rows.iter().enumerate() {
            if r.len() != n {
                return Err(ScaleError::input(
                    source_name,
                    format!("line {}", i + 1 + header_lines),
                    format!(
                        "{} counts in this row but {n} rows: the matrix must be square",
                        r.len()
                    ),
                ));
            }
        }
        if let Some(names) = &names {
            if names.len() != n {
                return Err(ScaleError::input(
                    source_name,
                    "line 1",
                    format!("{} names in the header for {n} conditions", names.len()),
                ));
            }
            check_unique_names(names, source_name)?;
        }
        Self::from_rows(&rows, names)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Replaces the condition names (e.g. from `--names`).
    pub fn with_names(self, names: Vec<String>) -> Result<Self> {
        if names.len() != self.len() {
            return Err(ScaleError::Invalid(format!(
                "{} names given for {} conditions",
                names.len(),
                self.len()
            )));
        }
        check_unique_names(&names, "--names")?;
        Ok(CountMatrix { names, ..self })
    }

    pub fn counts(&self) -> &DMatrix<f64> {
        &self.counts
    }

    /// Times condition i was chosen over j.
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.counts[(i, j)]
    }

    /// Total number of comparisons (each answer counted once).
    pub fn total(&self) -> f64 {
        self.counts.sum()
    }

    pub(crate) fn add(&mut self, i: usize, j: usize, wins: f64) {
        self.counts[(i, j)] += wins;
    }

    /// `self - other` (same conditions; `other` must be part of `self`, as one observer of a sum).
    pub(crate) fn minus(&self, other: &CountMatrix) -> CountMatrix {
        debug_assert!(
            self.counts
                .iter()
                .zip(other.counts.iter())
                .all(|(a, b)| a >= b)
        );
        CountMatrix {
            names: self.names.clone(),
            counts: &self.counts - &other.counts,
        }
    }
}

fn check_unique_names(names: &[String], source_name: &str) -> Result<()> {
    for (i, a) in names.iter().enumerate() {
        if a.is_empty() {
            return Err(ScaleError::input(
                source_name,
                format!("name {}", i + 1),
                "empty condition name",
            ));
        }
        if names[..i].contains(a) {
            return Err(ScaleError::input(
                source_name,
                format!("name {}", i + 1),
                format!("duplicate condition name '{a}'"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<CountMatrix> {
        CountMatrix::read_csv(text.as_bytes(), "t.csv")
    }

    #[test]
    fn reads_header_and_counts() {
        let m = read("a,b,c\n0,1,2\n3,0,4\n5,6,0\n").unwrap();
        assert_eq!(m.names(), ["a", "b", "c"]);
        assert_eq!(m.get(1, 2), 4.0);
        assert_eq!(m.total(), 21.0);
    }

    #[test]
    fn diagonal_is_ignored() {
        let m = read("7,1\n2,9\n").unwrap();
        assert_eq!(m.get(0, 0), 0.0);
        assert_eq!(m.names(), ["C1", "C2"]);
    }

    #[test]
    fn rejects_bad_input_naming_the_place() {
        let e = read("0,1\n2.5,0\n").unwrap_err().to_string();
        assert!(
            e.contains("t.csv: line 2, column 1") && e.contains("'2.5'"),
            "{e}"
        );
        let e = read("0,-1\n2,0\n").unwrap_err().to_string();
        assert!(e.contains("line 1, column 2") && e.contains("'-1'"), "{e}");
        let e = read("0,NaN\n2,0\n").unwrap_err().to_string();
        assert!(e.contains("'NaN'"), "{e}");
        let e = read("0,1,2\n2,0,1\n").unwrap_err().to_string();
        assert!(e.contains("square"), "{e}");
        assert!(read("").unwrap_err().to_string().contains("no counts"));
        let e = read("a,a\n0,1\n1,0\n").unwrap_err().to_string();
        assert!(e.contains("duplicate condition name 'a'"), "{e}");
    }
}
