//! Power planning on the results page: how many more comparisons (and HITs) the study needs until the
//! mean width of the pooled 95% CIs reaches a target, by `scaling::power` (parametric simulation from
//! the pooled fitted scores over the study's design pairs). Cached like the results, per study, results
//! options and target, keyed by the same data version.

use scaling::power::WidthSummary;
use serde::{Deserialize, Serialize};

use super::db::Db;
use super::results::{self, ResultsOptions, StudyResults};
use super::study::Study;

/// Target width (JND) of the 95% CIs when none is asked for.
pub const DEFAULT_TARGET: f64 = 0.5;
/// Largest target accepted (wider CIs than 10 JND say nothing).
pub const MAX_TARGET: f64 = 10.0;
/// Synthetic studies per candidate total of comparisons.
pub const REPLICATES: usize = 200;

/// The power planning shown on the results page and in the results API (`power`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PowerReport {
    /// Target width of the 95% CIs (JND).
    pub target: f64,
    /// Which width the target applies to: the mean over conditions (default) or the widest.
    pub summary: WidthSummary,
    /// That width of the pooled bootstrap CIs on the page (absent without CIs).
    pub bootstrap_width: Option<f64>,
    /// The plan (absent when it could not be made: see `error`).
    pub plan: Option<scaling::power::Power>,
    /// Pair trials per HIT (the study's setting).
    pub trials_per_hit: i64,
    /// `plan.additional_comparisons / trials_per_hit`, rounded up.
    pub additional_hits: Option<u64>,
    pub error: Option<String>,
    /// Design pairs left out because a condition has no answers yet.
    pub notes: Vec<String>,
}

impl PowerReport {
    /// One sentence for people: how many more comparisons and HITs, or that the target is met.
    pub fn status(&self) -> String {
        let Some(plan) = &self.plan else {
            return format!(
                "No power planning: {}",
                self.error.as_deref().unwrap_or("no plan")
            );
        };
        if plan.target_met {
            "Target reached: the current answers already give CIs this narrow.".to_string()
        } else if plan.capped {
            format!(
                "Not reachable within {} comparisons in total.",
                plan.needed_comparisons
            )
        } else {
            format!(
                "About {} more comparisons ({} more HITs) for a {} CI width of {:.2} JND.",
                plan.additional_comparisons,
                self.additional_hits.unwrap_or(0),
                summary_name(self.summary),
                self.target
            )
        }
    }
}

fn cache_key(r: &ResultsOptions, target: f64, summary: WidthSummary) -> String {
    format!(
        "power;{};target={target};width={}",
        r.cache_key(),
        summary_name(summary)
    )
}

/// The default plan (default results options and target) when it is cached for the current answers;
/// None when it has not been computed since the last answer (the results page computes it).
pub async fn cached_default(db: &Db, study: &Study) -> anyhow::Result<Option<PowerReport>> {
    let key = cache_key(
        &ResultsOptions::default(),
        DEFAULT_TARGET,
        WidthSummary::Mean,
    );
    let version = results::data_version(db, study).await?;
    Ok(results::cache_get(db, study.id, &key, &version)
        .await?
        .and_then(|json| serde_json::from_str(&json).ok()))
}

/// The target of a query string value: empty or absent = the default; else a number in (0, MAX_TARGET].
pub fn parse_target(value: Option<&str>) -> Result<f64, String> {
    let Some(s) = value.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(DEFAULT_TARGET);
    };
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && t > 0.0 && t <= MAX_TARGET => Ok(t),
        _ => Err(format!(
            "target: expected a CI width in JND, a number > 0 and <= {MAX_TARGET}, found \"{s}\""
        )),
    }
}

/// The `width` query value: empty or absent = mean, else `mean` or `max`.
pub fn parse_summary(value: Option<&str>) -> Result<WidthSummary, String> {
    match value.map(str::trim).unwrap_or("") {
        "" | "mean" => Ok(WidthSummary::Mean),
        "max" => Ok(WidthSummary::Max),
        other => Err(format!(
            "width: expected \"mean\" or \"max\", found \"{other}\""
        )),
    }
}

pub fn summary_name(s: WidthSummary) -> &'static str {
    match s {
        WidthSummary::Mean => "mean",
        WidthSummary::Max => "max",
    }
}

/// The study's design pairs as (condition key, condition key), pooled over scenes.
pub async fn design_pairs(db: &Db, study_id: i64) -> anyhow::Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT DISTINCT ca.key, cb.key FROM design_items d \
         JOIN conditions ca ON ca.id = d.condition_a JOIN conditions cb ON cb.id = d.condition_b \
         WHERE d.study_id = $1 ORDER BY ca.key, cb.key",
    )
    .bind(study_id)
    .fetch_all(db)
    .await?)
}

/// Plans from the pooled results (CPU-bound: ~0.3 s for 4 conditions, ~2 s for 10 on 2 cores).
pub fn compute(
    r: &StudyResults,
    pairs: &[(String, String)],
    trials_per_hit: i64,
    target: f64,
    summary: WidthSummary,
) -> PowerReport {
    let mut report = PowerReport {
        target,
        summary,
        bootstrap_width: None,
        plan: None,
        trials_per_hit,
        additional_hits: None,
        error: None,
        notes: Vec::new(),
    };
    let Some(p) = &r.analysis.pooled else {
        report.error = Some("no scores yet: power planning starts from the first answers".into());
        return report;
    };
    if let (Some(l), Some(h)) = (&p.ci_low, &p.ci_high) {
        let n = l.len().max(1) as f64;
        let widths = h.iter().zip(l).map(|(h, l)| h - l);
        report.bootstrap_width = Some(match summary {
            WidthSummary::Mean => widths.sum::<f64>() / n,
            WidthSummary::Max => widths.fold(0.0, f64::max),
        });
    }
    let made = (|| -> Result<scaling::power::Power, String> {
        let data =
            scaling::CountMatrix::from_rows(&r.analysis.count_matrix, Some(p.conditions.clone()))
                .map_err(|e| e.to_string())?;
        let index = |k: &str| p.conditions.iter().position(|c| c == k);
        let mut idx = Vec::new();
        let mut missing = 0;
        for (a, b) in pairs {
            match (index(a), index(b)) {
                (Some(i), Some(j)) if i != j => idx.push((i, j)),
                _ => missing += 1,
            }
        }
        if missing > 0 {
            report.notes.push(format!(
                "{missing} design pairs left out: a condition of theirs has no answers yet"
            ));
        }
        if idx.is_empty() {
            idx = scaling::power::Design::full(p.conditions.len()).pairs();
        }
        let design = scaling::power::Design::observed(&data, &idx).map_err(|e| e.to_string())?;
        let o = scaling::power::PowerOptions {
            target,
            summary,
            replicates: REPLICATES,
            seed: r.options.seed,
            ..Default::default()
        };
        scaling::power::plan(&data, &p.jnd, &design, &o).map_err(|e| e.to_string())
    })();
    match made {
        Ok(plan) => {
            let per_hit = trials_per_hit.max(1) as u64;
            report.additional_hits = Some((plan.additional_comparisons as u64).div_ceil(per_hit));
            report.plan = Some(plan);
        }
        Err(e) => report.error = Some(e),
    }
    report
}

/// The report for `r` (the study's current results) and `target`: cached per study, results options and
/// target, recomputed when the data version changes.
pub async fn power(
    db: &Db,
    s: &Study,
    r: &StudyResults,
    target: f64,
    summary: WidthSummary,
) -> anyhow::Result<PowerReport> {
    let key = cache_key(&r.options, target, summary);
    if let Some(json) = results::cache_get(db, s.id, &key, &r.data_version).await? {
        match serde_json::from_str::<PowerReport>(&json) {
            Ok(p) if p.trials_per_hit == s.settings.trials_per_hit => return Ok(p),
            Ok(_) => {}
            Err(e) => tracing::warn!("study {}: unreadable cached power ({e}); recomputing", s.id),
        }
    }
    let pairs = design_pairs(db, s.id).await?;
    let (r2, tph) = (r.clone(), s.settings.trials_per_hit);
    let started = std::time::Instant::now();
    let report =
        tokio::task::spawn_blocking(move || compute(&r2, &pairs, tph, target, summary)).await?;
    tracing::info!(
        "study {}: power planning ({key}) in {:.2} s",
        s.id,
        started.elapsed().as_secs_f64()
    );
    results::cache_put(
        db,
        s.id,
        &key,
        &r.data_version,
        serde_json::to_string(&report)?,
    )
    .await?;
    Ok(report)
}

/// Width vs comparisons with the target line and the current total marked; None without a curve.
pub fn svg(p: &PowerReport) -> anyhow::Result<Option<String>> {
    let Some(plan) = &p.plan else { return Ok(None) };
    if plan.curve.len() < 2 {
        return Ok(None);
    }
    let curve: Vec<(f64, f64)> = plan
        .curve
        .iter()
        .map(|c| (c.comparisons as f64, c.width))
        .collect();
    let (x0, x1) = (curve[0].0, curve[curve.len() - 1].0);
    let (y0, y1) = curve
        .iter()
        .fold((p.target, p.target), |(a, b), c| (a.min(c.1), b.max(c.1)));
    let now = plan.current_comparisons as f64;
    let series = [
        scaling::Series {
            name: match p.summary {
                WidthSummary::Mean => "simulated mean 95% CI width",
                WidthSummary::Max => "simulated max 95% CI width",
            },
            points: curve,
        },
        scaling::Series {
            name: "target",
            points: vec![(x0, p.target), (x1, p.target)],
        },
        scaling::Series {
            name: "comparisons so far",
            points: vec![(now, y0), (now, y1)],
        },
    ];
    scaling::line_chart_svg(
        "Power planning: CI width vs comparisons",
        "comparisons (pooled over scenes)",
        match p.summary {
            WidthSummary::Mean => "mean width of the 95% CIs (JND)",
            WidthSummary::Max => "widest 95% CI (JND)",
        },
        &series,
    )
    .map(Some)
    .map_err(|e| anyhow::anyhow!("drawing the power plot: {e}"))
}
