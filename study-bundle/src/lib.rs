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

/// The image name that is not a condition: a scene's reference (metrics may be given for it).
pub const REFERENCE: &str = "reference";

/// A condition or scene key: 1-64 characters of `A-Za-z0-9._-`, starting with a letter or digit (so no
/// exported cell can start a spreadsheet formula), and not the reserved [`REFERENCE`].
pub fn valid_key(k: &str) -> bool {
    k.len() <= 64
        && k != REFERENCE
        && k.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// What is wrong with a manifest: the field (`conditions[2].key`) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{MANIFEST}: {}: {}", self.field, self.message)
    }
}

impl std::error::Error for ManifestError {}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ManifestError {
    ManifestError {
        field: field.into(),
        message: message.into(),
    }
}

impl Manifest {
    /// The rules every bundle obeys, whoever wrote it: the format, a name, at least 2 conditions and 1
    /// scene, valid and unique keys, scene images and metrics only for declared conditions (metrics
    /// finite), checks only for declared scenes. The files themselves are the reader's to check.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.format != FORMAT {
            return Err(invalid(
                "format",
                format!("expected \"{FORMAT}\", found \"{}\"", self.format),
            ));
        }
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        if self.conditions.len() < 2 {
            return Err(invalid(
                "conditions",
                format!(
                    "need at least 2 conditions to compare, found {}",
                    self.conditions.len()
                ),
            ));
        }
        let key_rule = "must be 1-64 characters of [A-Za-z0-9._-], starting with a letter or digit";
        let mut conditions = std::collections::BTreeSet::new();
        for (i, c) in self.conditions.iter().enumerate() {
            let field = format!("conditions[{i}].key");
            if c.key == REFERENCE {
                return Err(invalid(field, format!("\"{REFERENCE}\" is reserved")));
            }
            if !valid_key(&c.key) {
                return Err(invalid(field, format!("\"{}\" {key_rule}", c.key)));
            }
            if !conditions.insert(c.key.as_str()) {
                return Err(invalid(field, format!("duplicate condition \"{}\"", c.key)));
            }
        }
        if self.scenes.is_empty() {
            return Err(invalid("scenes", "need at least 1 scene"));
        }
        let mut scenes = std::collections::BTreeSet::new();
        for (si, scene) in self.scenes.iter().enumerate() {
            let f = format!("scenes[{si}]");
            if !valid_key(&scene.key) {
                return Err(invalid(
                    format!("{f}.key"),
                    format!("\"{}\" {key_rule}", scene.key),
                ));
            }
            if !scenes.insert(scene.key.as_str()) {
                return Err(invalid(
                    format!("{f}.key"),
                    format!("duplicate scene \"{}\"", scene.key),
                ));
            }
            for k in scene.images.keys() {
                if !conditions.contains(k.as_str()) {
                    return Err(invalid(
                        format!("{f}.images"),
                        format!("\"{k}\" is not one of the study's conditions"),
                    ));
                }
            }
            for c in &self.conditions {
                if !scene.images.contains_key(&c.key) {
                    return Err(invalid(
                        format!("{f}.images.{}", c.key),
                        format!("missing image for condition \"{}\"", c.key),
                    ));
                }
            }
            for (k, metrics) in &scene.metrics {
                if k != REFERENCE && !conditions.contains(k.as_str()) {
                    return Err(invalid(
                        format!("{f}.metrics"),
                        format!("\"{k}\" is neither \"{REFERENCE}\" nor a condition"),
                    ));
                }
                for (name, v) in metrics {
                    if !v.is_finite() {
                        return Err(invalid(
                            format!("{f}.metrics.{k}.{name}"),
                            "must be a finite number",
                        ));
                    }
                }
            }
        }
        for (ci, check) in self.checks.iter().enumerate() {
            if !scenes.contains(check.scene.as_str()) {
                return Err(invalid(
                    format!("checks[{ci}].scene"),
                    format!("\"{}\" is not a scene of the bundle", check.scene),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> &'static str {
        r#"{"format": "jndlab-bundle/1", "name": "n", "conditions": [{"key": "a"}, {"key": "b"}],
            "scenes": [{"key": "s", "reference": "s/r.png", "images": {"a": "s/a.png", "b": "s/b.png"}}]}"#
    }

    #[test]
    fn keys_follow_one_rule() {
        for good in ["a", "A1", "edsr-l2", "x_y.z", &"k".repeat(64)] {
            assert!(valid_key(good), "{good}");
        }
        for bad in [
            "",
            "-a",
            ".a",
            "_a",
            "=cmd",
            "a b",
            "a/b",
            "reference",
            &"k".repeat(65),
        ] {
            assert!(!valid_key(bad), "{bad}");
        }
    }

    #[test]
    fn validation_names_the_field() {
        let m: Manifest = serde_json::from_str(minimal()).unwrap();
        assert_eq!(m.validate(), Ok(()));
        let broken = |f: &dyn Fn(&mut Manifest)| {
            let mut b = m.clone();
            f(&mut b);
            b.validate().unwrap_err()
        };
        let field = |f: &dyn Fn(&mut Manifest)| broken(f).field;
        assert_eq!(field(&|b| b.format = "jndlab-bundle/2".into()), "format");
        assert_eq!(field(&|b| b.name = " ".into()), "name");
        assert_eq!(
            field(&|b| {
                b.conditions.pop();
            }),
            "conditions"
        );
        assert_eq!(
            field(&|b| b.conditions[1].key = "a".into()),
            "conditions[1].key"
        );
        assert_eq!(
            field(&|b| b.conditions[1].key = "=1+1".into()),
            "conditions[1].key"
        );
        let e = broken(&|b| b.conditions[0].key = "reference".into());
        assert!(e.message.contains("reserved"), "{e}");
        assert_eq!(field(&|b| b.scenes.clear()), "scenes");
        assert_eq!(
            field(&|b| {
                b.scenes[0].images.remove("b");
            }),
            "scenes[0].images.b"
        );
        assert_eq!(
            field(&|b| {
                b.scenes[0].images.insert("c".into(), "s/c.png".into());
            }),
            "scenes[0].images"
        );
        assert_eq!(
            field(&|b| {
                b.scenes[0]
                    .metrics
                    .insert("a".into(), [("psnr".to_string(), f64::NAN)].into());
            }),
            "scenes[0].metrics.a.psnr"
        );
        assert_eq!(
            field(&|b| b.checks.push(Check {
                scene: "t".into(),
                bad: "t/x.png".into()
            })),
            "checks[0].scene"
        );
        let dup = broken(&|b| {
            let s = b.scenes[0].clone();
            b.scenes.push(s);
        });
        assert_eq!(
            dup.to_string(),
            "bundle.json: scenes[1].key: duplicate scene \"s\""
        );
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
