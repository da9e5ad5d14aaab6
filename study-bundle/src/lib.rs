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
}

impl Settings {
    pub fn is_default(&self) -> bool {
        *self == Settings::default()
    }
}
