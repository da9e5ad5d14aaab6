//! The stages of the loop, in order, each with the files that show it is done (so `--resume` skips it):
//! Phase-1 MDF -> restoration training (one run per loss) -> evaluation -> study bundle -> study (import,
//! simulated observers over HTTP, JND export) -> report.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::config::PipelineConfig;
use crate::tools::{Tools, run};

/// The run folder's layout.
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn recipe(&self) -> PathBuf {
        self.root.join("pipeline.toml")
    }
    pub fn phase1_dir(&self) -> PathBuf {
        self.root.join("phase1")
    }
    pub fn mdf_weights(&self) -> PathBuf {
        self.phase1_dir().join("phase1.safetensors")
    }
    pub fn train_dir(&self) -> PathBuf {
        self.root.join("train")
    }
    pub fn runs_dir(&self) -> PathBuf {
        self.train_dir().join("runs")
    }
    pub fn eval_dir(&self) -> PathBuf {
        self.root.join("eval")
    }
    pub fn bundle_dir(&self) -> PathBuf {
        self.root.join("bundle")
    }
    pub fn study_dir(&self) -> PathBuf {
        self.root.join("study")
    }
    pub fn study_db(&self) -> PathBuf {
        self.study_dir().join("study.db")
    }
    pub fn jnd_json(&self) -> PathBuf {
        self.root.join("jnd.json")
    }
    pub fn timings(&self) -> PathBuf {
        self.root.join("timings.json")
    }
    pub fn report_dir(&self) -> PathBuf {
        self.root.join("report")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Phase1,
    Train,
    Eval,
    Bundle,
    Study,
    Report,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Phase1,
        Stage::Train,
        Stage::Eval,
        Stage::Bundle,
        Stage::Study,
        Stage::Report,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Stage::Phase1 => "Phase 1: MDF discriminators on the seed image",
            Stage::Train => "restoration networks, one per loss",
            Stage::Eval => "evaluation on the test scenes",
            Stage::Bundle => "study bundle",
            Stage::Study => "study: import, simulated observers over HTTP, JND scaling",
            Stage::Report => "report",
        }
    }

    /// The file whose presence means the stage finished.
    fn done_marker(self, l: &Layout) -> PathBuf {
        match self {
            Stage::Phase1 => l.mdf_weights(),
            Stage::Train => l.train_dir().join("results.md"),
            Stage::Eval => l.eval_dir().join("eval.json"),
            Stage::Bundle => l.bundle_dir().join(study_bundle::MANIFEST),
            Stage::Study => l.jnd_json(),
            Stage::Report => l.report_dir().join("report.html"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Continue an interrupted run: skip finished stages.
    pub resume: bool,
    /// Delete an existing run folder first.
    pub force: bool,
}

/// Seconds per stage, kept across `--resume`d invocations for the report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timings {
    pub stages: Vec<(String, f64)>,
}

impl Timings {
    /// The run's timings so far (none when the file is missing or unreadable: they are informative only).
    pub fn load(l: &Layout) -> Timings {
        std::fs::read(l.timings())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
}

/// Runs every stage that is not done yet; returns the report's path.
pub fn run_pipeline(
    c: &PipelineConfig,
    recipe_text: &str,
    tools: &Tools,
    o: &RunOptions,
) -> Result<PathBuf> {
    let l = Layout {
        root: c.out.clone(),
    };
    prepare_root(&l, recipe_text, o)?;
    let mut timings = Timings::load(&l);
    let stages: Vec<Stage> = Stage::ALL
        .into_iter()
        .filter(|s| *s != Stage::Phase1 || c.needs_phase1())
        .collect();
    for (i, s) in stages.iter().enumerate() {
        let marker = s.done_marker(&l);
        // The report is cheap and reflects the latest results: always written again.
        if marker.exists() && *s != Stage::Report {
            eprintln!("[{}/{}] {}: done, skipped", i + 1, stages.len(), s.title());
            continue;
        }
        eprintln!("[{}/{}] {} ...", i + 1, stages.len(), s.title());
        let t = Instant::now();
        run_stage(*s, c, &l, tools).with_context(|| format!("stage {} ({})", i + 1, s.title()))?;
        let secs = t.elapsed().as_secs_f64();
        info!(stage = s.title(), secs, "stage finished");
        timings.stages.retain(|(n, _)| n != s.title());
        timings.stages.push((s.title().to_string(), secs));
        std::fs::write(l.timings(), serde_json::to_vec_pretty(&timings)?)?;
    }
    Ok(l.report_dir().join("report.html"))
}

/// A new run writes its recipe; a resumed one must have been started with the same recipe.
fn prepare_root(l: &Layout, recipe_text: &str, o: &RunOptions) -> Result<()> {
    if l.root.exists() {
        if o.force {
            std::fs::remove_dir_all(&l.root)
                .with_context(|| format!("{}: cannot remove", l.root.display()))?;
        } else if !o.resume {
            bail!(
                "{} exists: pass --resume to continue that run or --force to start it again",
                l.root.display()
            );
        } else {
            let old = std::fs::read_to_string(l.recipe()).with_context(|| {
                format!(
                    "{}: not a pipeline run folder (no pipeline.toml); use another `out` or --force",
                    l.root.display()
                )
            })?;
            if old != recipe_text {
                bail!(
                    "{} was started with another recipe ({}): use --force to start again",
                    l.root.display(),
                    l.recipe().display()
                );
            }
            return Ok(());
        }
    }
    std::fs::create_dir_all(&l.root)
        .with_context(|| format!("{}: cannot create", l.root.display()))?;
    std::fs::write(l.recipe(), recipe_text)?;
    Ok(())
}

/// Replaces a stage's output folder (a half-written one from an interrupted run included).
fn fresh_dir(d: &Path) -> Result<()> {
    if d.exists() {
        std::fs::remove_dir_all(d).with_context(|| format!("{}: cannot remove", d.display()))?;
    }
    std::fs::create_dir_all(d).with_context(|| format!("{}: cannot create", d.display()))
}

fn train(tools: &Tools, c: &PipelineConfig) -> Command {
    let mut cmd = Command::new(&tools.train);
    if let Some(t) = c.threads {
        cmd.arg("--threads").arg(t.to_string());
    }
    cmd
}

fn app(tools: &Tools, l: &Layout) -> Command {
    let mut cmd = Command::new(&tools.app);
    // The study lives in the run folder, whatever the environment says.
    cmd.env_remove("DATABASE_URL")
        .env_remove("JNDLAB_DB")
        .env_remove("JNDLAB_DATA_DIR")
        .arg("--db")
        .arg(l.study_db())
        .arg("--data-dir")
        .arg(l.study_dir().join("data"));
    cmd
}

fn run_stage(s: Stage, c: &PipelineConfig, l: &Layout, tools: &Tools) -> Result<()> {
    match s {
        Stage::Phase1 => {
            let dir = l.phase1_dir();
            std::fs::create_dir_all(&dir)?;
            let settings = dir.join("settings.toml");
            std::fs::write(&settings, c.phase1_toml()?)?;
            let work = dir.join("work");
            let mut cmd = train(tools, c);
            cmd.arg("mdf-train")
                .arg("--output")
                .arg(l.mdf_weights())
                .arg("--work-dir")
                .arg(&work)
                .arg("--device")
                .arg(&c.device);
            // mdf-train continues from its own checkpoint after an interruption.
            if work.join("checkpoint.safetensors").exists() {
                cmd.arg("--resume");
            } else {
                cmd.arg("--config")
                    .arg(&settings)
                    .arg("--seed")
                    .arg(&c.phase1.seed_image);
            }
            run("mdf-train", &mut cmd)
        }
        Stage::Train => {
            let dir = l.train_dir();
            std::fs::create_dir_all(&dir)?;
            let recipe = dir.join("recipe.toml");
            std::fs::write(&recipe, c.recipe_toml(&l.runs_dir())?)?;
            let specs = c.loss_specs(&l.mdf_weights());
            run(
                "sweep",
                train(tools, c)
                    .arg("sweep")
                    .arg("--config")
                    .arg(&recipe)
                    .arg("--losses")
                    .arg(specs.join(";"))
                    .arg("--out")
                    .arg(&dir)
                    // Finished runs are kept, interrupted ones continue from their checkpoint.
                    .arg("--resume"),
            )
        }
        Stage::Eval => {
            let runs: Vec<PathBuf> = std::fs::read_dir(l.runs_dir())
                .with_context(|| format!("{}: no training runs", l.runs_dir().display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect();
            let mut runs = runs;
            runs.sort();
            fresh_dir(&l.eval_dir())?;
            let mut cmd = train(tools, c);
            cmd.arg("eval")
                .arg("--runs")
                .args(&runs)
                .arg("--test")
                .arg(&c.eval.test)
                .arg("--out")
                .arg(l.eval_dir())
                .arg("--sigma")
                .arg(c.eval.sigma.to_string())
                .arg("--quality")
                .arg(c.eval.quality.to_string())
                .arg("--lpips")
                .arg(&c.eval.lpips)
                .arg("--device")
                .arg(&c.device);
            if let Some(m) = c.eval.max_side {
                cmd.arg("--max-side").arg(m.to_string());
            }
            run("eval", &mut cmd)
        }
        Stage::Bundle => {
            let mut cmd = train(tools, c);
            cmd.arg("export-bundle")
                .arg("--eval")
                .arg(l.eval_dir())
                .arg("--out")
                .arg(l.bundle_dir())
                .arg("--zip")
                .arg(l.root.join("bundle.zip"))
                .arg("--name")
                .arg(&c.study.title)
                .arg("--slug")
                .arg(&c.name)
                .arg("--force");
            if c.study.include_input {
                cmd.arg("--include-input");
            }
            run("export-bundle", &mut cmd)
        }
        Stage::Study => {
            // A fresh database each time: the answers below are the run's, nothing else.
            fresh_dir(&l.study_dir())?;
            run(
                "import",
                app(tools, l)
                    .arg("import")
                    .arg(l.bundle_dir())
                    .arg("--live")
                    // Every simulated observer does one whole HIT (a worker never sees an item twice, so
                    // this many answers per item is enough), answering at once: no minimum response time.
                    .arg("--repetitions")
                    .arg(c.study.observers.max(1).to_string())
                    .arg("--min-response-ms")
                    .arg("0"),
            )?;
            let mut sim = app(tools, l);
            sim.arg("simulate")
                .arg(&c.name)
                .arg("--observers")
                .arg(c.study.observers.to_string())
                .arg("--check-fail-rate")
                .arg(c.study.check_fail_rate.to_string())
                .arg("--seed")
                .arg(c.study.seed.to_string())
                // The pipeline's own database holds nothing but simulated answers.
                .arg("--force");
            if let Some(s) = c.study.jnd_step {
                sim.arg("--jnd-step").arg(s.to_string());
            }
            run("simulate", &mut sim)?;
            let tmp = l.root.join("jnd.json.partial");
            run(
                "export",
                app(tools, l)
                    .arg("export")
                    .arg(&c.name)
                    .arg("--format")
                    .arg("jnd-json")
                    .arg("--replicates")
                    .arg(c.study.bootstrap.to_string())
                    .arg("--seed")
                    .arg(c.study.seed.to_string())
                    .arg("--output")
                    .arg(&tmp),
            )?;
            std::fs::rename(&tmp, l.jnd_json())?;
            Ok(())
        }
        Stage::Report => crate::report::write_report(c, l),
    }
}
