//! `bundle.json`, the manifest of a study bundle (`docs/bundle.md`): one definition for the program that
//! writes it (`jndlab-train export-bundle`) and the ones that read it (`jndlab-app import`, the `jndlab`
//! report). Unknown fields are an error, so a typo in a hand-written bundle is reported, not ignored.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The value of `format`.
pub const FORMAT: &str = "jndlab-bundle/1";
/// The manifest's file name at the bundle root.
pub const MANIFEST: &str = "bundle.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    /// Demo data, shown as such on every page.
    #[serde(default)]
    pub synthetic: bool,
    pub conditions: Vec<Condition>,
    pub scenes: Vec<Scene>,
    /// Admin-supplied attention checks (besides the generated ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    #[serde(default, skip_serializing_if = "Settings::is_default")]
    pub settings: Settings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scene {
    pub key: String,
    pub reference: String,
    /// condition key -> image path (relative to the bundle root)
    pub images: BTreeMap<String, String>,
    /// image ("reference" or a condition key) -> metric name -> value
    #[serde(default)]
    pub metrics: BTreeMap<String, BTreeMap<String, f64>>,
}

/// An admin-supplied attention check: the scene's reference against `bad` (an obviously worse image).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub scene: String,
    pub bad: String,
}

/// Study settings a bundle may preset (the admin page can change them while the study is a draft).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials_per_hit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks_per_hit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repetitions: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hits_per_worker: Option<i64>,
    /// Seconds without an answer after which a HIT is abandoned (its answers left out, its items reassigned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hit_timeout_s: Option<i64>,
    /// Quality control (README "Quality control"): an answer sooner than this after its trial was sent is fast.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_response_ms: Option<i64>,
    /// A HIT with a larger share of fast answers is flagged `too_fast`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fast_share: Option<f64>,
    /// A HIT whose left/right split has a two-sided binomial p-value below this is flagged `straight_line`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub straight_line_alpha: Option<f64>,
    /// dist_L at or above which pwcmp's outlier screen flags an observer `outlier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_fence: Option<f64>,
    /// `hit` (each HIT judged alone) or `worker` (a worker's HITs pooled; a flag applies to all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qc_scope: Option<String>,
    /// The flags that exclude a HIT: any of `failed_check`, `too_fast`, `straight_line`, `outlier`,
    /// `unverified` (blocked workers are always excluded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_flags: Option<Vec<String>>,
}

impl Settings {
    pub fn is_default(&self) -> bool {
        *self == Settings::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> &'static str {
        r#"{"format": "jndlab-bundle/1", "name": "n", "conditions": [{"key": "a"}],
            "scenes": [{"key": "s", "reference": "s/r.png", "images": {"a": "s/a.png"}}]}"#
    }

    #[test]
    fn optional_parts_default_and_are_not_written_back() {
        let m: Manifest = serde_json::from_str(minimal()).unwrap();
        assert!(m.checks.is_empty() && m.settings.is_default() && !m.synthetic);
        let out = serde_json::to_value(&m).unwrap();
        for absent in ["checks", "settings", "slug", "question"] {
            assert!(out.get(absent).is_none(), "{absent} written");
        }
        assert_eq!(serde_json::from_value::<Manifest>(out).unwrap(), m);
    }

    #[test]
    fn unknown_fields_are_errors_that_name_them() {
        let typo = minimal().replace("\"name\"", "\"nmae\": \"x\", \"name\"");
        let e = serde_json::from_str::<Manifest>(&typo)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nmae"), "{e}");
        let bad_setting = minimal().replace(
            "\"name\": \"n\"",
            "\"name\": \"n\", \"settings\": {\"trials_per_hits\": 9}",
        );
        let e = serde_json::from_str::<Manifest>(&bad_setting)
            .unwrap_err()
            .to_string();
        assert!(e.contains("trials_per_hits"), "{e}");
    }
}
