//! `jndlab`: the whole jndlab loop in one command. `jndlab pipeline --config configs/demo.toml` trains
//! Phase-1 MDF discriminators on one seed image, trains a restoration network once per loss (MDF and
//! baselines), evaluates them, exports a study bundle, imports it into a fresh study database, lets
//! simulated observers take the study over HTTP, scales their answers into JND and writes an HTML report.
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use pipeline::config::PipelineConfig;
use pipeline::stages::{Layout, RunOptions, run_pipeline};
use pipeline::tools::Tools;

#[derive(Parser)]
#[command(
    name = "jndlab",
    version,
    about = "The whole loop: train (MDF + baselines) -> restore -> study -> simulated observers -> JND report"
)]
struct Cli {
    /// Log filter (tracing EnvFilter syntax, e.g. `info`, `pipeline=debug`); also RUST_LOG.
    #[arg(long, global = true, default_value = "info")]
    log: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args)]
struct RecipeArgs {
    /// Pipeline recipe (TOML), e.g. configs/demo.toml.
    #[arg(long)]
    config: PathBuf,
    /// Override a recipe value: dotted key = TOML value, e.g. `--set study.observers=50`,
    /// `--set out="runs/other"` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

impl RecipeArgs {
    fn load(&self) -> Result<(PipelineConfig, String)> {
        let c = PipelineConfig::load(&self.config, &self.sets)?;
        // The recipe as used (file + overrides): a resumed run must match it.
        let mut text = std::fs::read_to_string(&self.config)?;
        for s in &self.sets {
            text.push_str(&format!("# --set {s}\n"));
        }
        Ok((c, text))
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run every stage (or, with --resume, the ones not finished yet) and write report/report.html.
    Pipeline {
        #[command(flatten)]
        recipe: RecipeArgs,
        /// Continue the run in the recipe's `out` folder: finished stages are skipped, interrupted
        /// training continues from its checkpoints.
        #[arg(long, conflicts_with = "force")]
        resume: bool,
        /// Delete the recipe's `out` folder first and start again.
        #[arg(long)]
        force: bool,
        /// Folder holding jndlab-train and jndlab-app (default: the folder of this executable).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
    },
    /// Write report/report.html again from a finished run folder (no training, no study).
    Report {
        #[command(flatten)]
        recipe: RecipeArgs,
    },
}

fn main() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(cli.cmd) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Pipeline {
            recipe,
            resume,
            force,
            bin_dir,
        } => {
            let (c, text) = recipe.load()?;
            let tools = Tools::find(bin_dir.as_deref())?;
            let t = std::time::Instant::now();
            let report = run_pipeline(&c, &text, &tools, &RunOptions { resume, force })?;
            println!(
                "pipeline {} finished in {:.1} min; report: {}",
                c.name,
                t.elapsed().as_secs_f64() / 60.0,
                report.display()
            );
            let l = Layout {
                root: c.out.clone(),
            };
            println!(
                "to open the study and its results page: bash scripts/start.sh --db {} --data-dir {}",
                l.study_db().display(),
                l.study_dir().join("data").display(),
            );
        }
        Cmd::Report { recipe } => {
            let (c, _) = recipe.load()?;
            let l = Layout {
                root: c.out.clone(),
            };
            pipeline::report::write_report(&c, &l)
                .with_context(|| format!("report of {}", l.root.display()))?;
            println!("{}", l.report_dir().join("report.html").display());
        }
    }
    Ok(())
}
