//! Quality control: the flags a HIT can carry and the documented rules that set them (README "Quality
//! control"). Every rule is a pure function of counters the answer path keeps per HIT, so the same numbers
//! decide at the last answer, when an experimenter changes a rule (everything is re-evaluated), and in the
//! exports. Which flags *exclude* a HIT is the study's choice (`exclude_flags`); a blocked worker's HITs are
//! always excluded.

use serde::{Deserialize, Serialize};
use statrs::distribution::{Binomial, DiscreteCDF};

bitflags::bitflags! {
    /// What the quality rules (and the admin) found about a HIT. Stored as a BIGINT bit mask (`hits.flags`,
    /// `studies.exclude_flags`); the bit values are part of the schema.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Flags: i64 {
        /// An attention check was answered wrong.
        const FAILED_CHECK = 1;
        /// More than `max_fast_share` of the answers came faster than `min_response_ms` after the trial was
        /// sent (server clock).
        const TOO_FAST = 2;
        /// One side chosen far more often than chance: two-sided binomial test p < `straight_line_alpha`.
        const STRAIGHT_LINE = 4;
        /// pwcmp's outlier screen: dist_L >= `outlier_fence` (set by the results computation).
        const OUTLIER = 8;
        /// The worker was blocked by an experimenter (always excludes).
        const BLOCKED = 16;
        /// No matching submission on the recruiting platform (MTurk/Prolific reconciliation).
        const UNVERIFIED = 32;
    }
}

/// The flags computed from a HIT's own counters (or, with worker scope, the worker's pooled counters).
pub const RULE_FLAGS: Flags = Flags::FAILED_CHECK
    .union(Flags::TOO_FAST)
    .union(Flags::STRAIGHT_LINE);

impl Flags {
    /// Lowercase names of the set flags (`failed_check`, `too_fast`, ...), in bit order.
    pub fn names(self) -> Vec<String> {
        self.iter_names()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect()
    }

    /// `failed_check;too_fast` (empty when none), for CSV cells and messages.
    pub fn joined(self) -> String {
        self.names().join(";")
    }

    /// Parses lowercase names as written by [`Flags::names`].
    pub fn parse_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Flags, String> {
        let mut f = Flags::empty();
        for n in names.into_iter().map(str::trim).filter(|n| !n.is_empty()) {
            f |= Flags::from_name(&n.to_ascii_uppercase()).ok_or_else(|| {
                format!(
                    "unknown flag \"{n}\" (expected one of {})",
                    Flags::all().names().join(", ")
                )
            })?;
        }
        Ok(f)
    }

    /// What each flag means, for the admin page and the exports' documentation.
    pub fn describe(self) -> &'static str {
        match self {
            Flags::FAILED_CHECK => "an attention check was answered wrong",
            Flags::TOO_FAST => "too many answers faster than the minimum response time",
            Flags::STRAIGHT_LINE => "one side chosen far more often than chance (binomial test)",
            Flags::OUTLIER => {
                "pwcmp outlier screen: the model of everyone else predicts these answers badly"
            }
            Flags::BLOCKED => "the worker was blocked",
            Flags::UNVERIFIED => "no matching submission on the recruiting platform",
            _ => "several flags",
        }
    }
}

impl Serialize for Flags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

impl<'de> Deserialize<'de> for Flags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Flags, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        Flags::parse_names(names.iter().map(String::as_str)).map_err(serde::de::Error::custom)
    }
}

/// Whose answers a rule looks at.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum QcScope {
    /// Each HIT is judged on its own answers.
    #[default]
    Hit,
    /// The rules are applied to all of a worker's completed HITs pooled, and a flag applies to every HIT of
    /// that worker (so excluding a worker excludes all their HITs).
    Worker,
}

/// The per-HIT numbers the rules read, kept by the answer path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct Counters {
    /// Trials answered (pairs and checks).
    pub answered: i64,
    /// Answers that came faster than the study's minimum response time.
    pub fast_answers: i64,
    /// Answers "left".
    pub left_answers: i64,
    /// Attention checks answered wrong.
    pub failed_checks: i64,
}

impl std::ops::Add for Counters {
    type Output = Counters;
    fn add(self, o: Counters) -> Counters {
        Counters {
            answered: self.answered + o.answered,
            fast_answers: self.fast_answers + o.fast_answers,
            left_answers: self.left_answers + o.left_answers,
            failed_checks: self.failed_checks + o.failed_checks,
        }
    }
}

/// The study's quality rules.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rules {
    /// An answer sooner than this after its trial was sent counts as fast (ms, server clock).
    pub min_response_ms: i64,
    /// TOO_FAST when the share of fast answers exceeds this.
    pub max_fast_share: f64,
    /// STRAIGHT_LINE when the two-sided binomial p-value of the left/right split is below this.
    pub straight_line_alpha: f64,
    /// OUTLIER when pwcmp's dist_L is at least this.
    pub outlier_fence: f64,
    pub scope: QcScope,
    /// The flags that exclude a HIT from the design and the results (BLOCKED always does).
    pub exclude: Flags,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            min_response_ms: 300,
            max_fast_share: 0.2,
            straight_line_alpha: 0.01,
            outlier_fence: scaling::OUTLIER_FENCE,
            scope: QcScope::Hit,
            exclude: Flags::FAILED_CHECK
                | Flags::TOO_FAST
                | Flags::STRAIGHT_LINE
                | Flags::UNVERIFIED,
        }
    }
}

impl Rules {
    pub fn validate(&self) -> Result<(), String> {
        if !(0..=60_000).contains(&self.min_response_ms) {
            return Err(format!(
                "min_response_ms: expected 0..=60000, found {}",
                self.min_response_ms
            ));
        }
        if !(0.0..=1.0).contains(&self.max_fast_share) {
            return Err(format!(
                "max_fast_share: expected 0..=1, found {}",
                self.max_fast_share
            ));
        }
        if !(0.0..1.0).contains(&self.straight_line_alpha) {
            return Err(format!(
                "straight_line_alpha: expected 0 <= alpha < 1, found {}",
                self.straight_line_alpha
            ));
        }
        if !(self.outlier_fence > 0.0 && self.outlier_fence.is_finite()) {
            return Err(format!(
                "outlier_fence: expected a positive number, found {}",
                self.outlier_fence
            ));
        }
        Ok(())
    }

    /// The flags that exclude a HIT under these rules.
    pub fn excluding(&self) -> Flags {
        self.exclude | Flags::BLOCKED
    }

    /// The rule flags ([`RULE_FLAGS`]) of these counters.
    pub fn judge(&self, c: &Counters) -> Flags {
        let mut f = Flags::empty();
        if c.failed_checks > 0 {
            f |= Flags::FAILED_CHECK;
        }
        if c.answered > 0 && c.fast_answers as f64 > self.max_fast_share * c.answered as f64 {
            f |= Flags::TOO_FAST;
        }
        if c.answered > 0
            && binomial_two_sided_p(c.left_answers as u64, c.answered as u64)
                < self.straight_line_alpha
        {
            f |= Flags::STRAIGHT_LINE;
        }
        f
    }
}

/// Two-sided p-value of k successes in n fair coin flips: 2 min(P(X <= k), P(X >= k)), at most 1 (the
/// binomial distribution with p = 1/2 is symmetric, so this equals the exact test's p-value).
pub fn binomial_two_sided_p(k: u64, n: u64) -> f64 {
    if n == 0 {
        return 1.0;
    }
    let b = Binomial::new(0.5, n).expect("p = 0.5 is a valid probability");
    let low = b.cdf(k);
    let high = if k == 0 { 1.0 } else { b.sf(k - 1) };
    (2.0 * low.min(high)).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_p_values_match_hand_computed_ones() {
        // 10 of 10: 2 * 0.5^10
        assert!((binomial_two_sided_p(10, 10) - 2.0 / 1024.0).abs() < 1e-12);
        assert!((binomial_two_sided_p(0, 10) - 2.0 / 1024.0).abs() < 1e-12);
        // 9 of 10: 2 * (1 + 10) / 1024
        assert!((binomial_two_sided_p(9, 10) - 22.0 / 1024.0).abs() < 1e-12);
        // 5 of 10 is the centre: p = 1
        assert_eq!(binomial_two_sided_p(5, 10), 1.0);
        assert_eq!(binomial_two_sided_p(0, 0), 1.0);
    }

    #[test]
    fn rules_flag_exactly_at_their_thresholds() {
        let r = Rules::default();
        let c = |answered, fast, left, failed| Counters {
            answered,
            fast_answers: fast,
            left_answers: left,
            failed_checks: failed,
        };
        assert_eq!(
            r.judge(&c(10, 2, 5, 0)),
            Flags::empty(),
            "20% fast is allowed"
        );
        assert_eq!(r.judge(&c(10, 3, 5, 0)), Flags::TOO_FAST);
        assert_eq!(
            r.judge(&c(10, 0, 9, 0)),
            Flags::empty(),
            "p = 0.021 >= 0.01"
        );
        assert_eq!(r.judge(&c(10, 0, 10, 0)), Flags::STRAIGHT_LINE);
        assert_eq!(r.judge(&c(10, 0, 5, 1)), Flags::FAILED_CHECK);
        assert_eq!(
            r.judge(&c(10, 10, 0, 2)),
            Flags::FAILED_CHECK | Flags::TOO_FAST | Flags::STRAIGHT_LINE
        );
    }

    #[test]
    fn flag_names_round_trip_and_unknown_names_are_refused() {
        let f = Flags::TOO_FAST | Flags::OUTLIER;
        assert_eq!(f.names(), ["too_fast", "outlier"]);
        assert_eq!(Flags::parse_names(["too_fast", " outlier "]).unwrap(), f);
        let e = Flags::parse_names(["too_slow"]).unwrap_err();
        assert!(e.contains("too_slow") && e.contains("failed_check"), "{e}");
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(json, r#"["too_fast","outlier"]"#);
        assert_eq!(serde_json::from_str::<Flags>(&json).unwrap(), f);
    }

    #[test]
    fn blocked_always_excludes() {
        let r = Rules {
            exclude: Flags::empty(),
            ..Rules::default()
        };
        assert_eq!(r.excluding(), Flags::BLOCKED);
    }
}
