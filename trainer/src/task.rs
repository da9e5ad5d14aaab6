//! The three restoration tasks of the MDF paper. Phase 1 (`phase1::distortion`) distorts the generator
//! input by the task; the restoration networks (`data::degrade`) are trained to undo it.
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    #[serde(alias = "sr")]
    #[value(alias = "sr")]
    Sisr,
    #[serde(alias = "denoising")]
    #[value(alias = "denoising")]
    Denoise,
    #[serde(alias = "jpg")]
    #[value(alias = "jpg")]
    Jpeg,
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Task {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl Task {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "sisr" | "sr" => Self::Sisr,
            "denoise" | "denoising" | "dn" => Self::Denoise,
            "jpeg" | "jpg" => Self::Jpeg,
            _ => bail!("unknown task {s:?}: expected sisr, denoise or jpeg"),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sisr => "sisr",
            Self::Denoise => "denoise",
            Self::Jpeg => "jpeg",
        }
    }

    /// The official MDF discriminators trained for this task's distortion.
    pub fn mdf_spec(self) -> &'static str {
        match self {
            Self::Sisr => "mdf:sisr",
            Self::Denoise => "mdf:denoising",
            Self::Jpeg => "mdf:jpeg",
        }
    }
}
