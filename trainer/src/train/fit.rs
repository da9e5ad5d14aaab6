//! The training loop: random degraded patches from a prefetching loader, validation on fixed
//! degraded crops after every epoch, the best model by validation loss (as the paper), a
//! checkpoint (weights + optimiser state) after every epoch, `--resume`, a metrics CSV.
//!
//! Run folder `run.out/NAME/`: `config.toml` (resolved recipe), `metrics.csv`, `state.json`,
//! `checkpoint.safetensors` (`net.*`, `opt.*`, `epochs_done`), `best.safetensors` (net weights).
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor, nn};
use tracing::info;

use super::config::Config;
use super::optim::Optimizer;
use crate::data::dataset::{ImageSet, list_images, split};
use crate::data::degrade::{Pair, degrade_set};
use crate::data::loader::{BatchLoader, LoaderConfig};
use crate::device::parse_device;
use crate::image_io::write_atomic;
use crate::losses::{Loss, LossOptions, build_loss};
use crate::metrics::psnr;
use crate::nets::{Net, count_parameters};
use crate::weights::write_safetensors;

pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub const BEST: &str = "best.safetensors";
pub const STATE: &str = "state.json";
pub const METRICS: &str = "metrics.csv";
pub const CONFIG: &str = "config.toml";

/// Seed offset of the validation degradations (independent of the training patches).
const VAL_SEED: u64 = 0x5EED_0FA1;

#[derive(Debug, Clone, Default)]
pub struct FitOptions {
    /// Continue the run in the run folder from its last checkpoint.
    pub resume: bool,
    /// Stop after this many epochs in total (as if interrupted), keeping the schedule of the
    /// full run.
    pub stop_after: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub val_loss: f64,
    /// Mean PSNR (RGB, dB) of the restored validation crops.
    pub val_psnr: f64,
    /// Mean PSNR of the degraded input (SISR: its bicubic upscaling).
    pub input_psnr: f64,
    pub patches_per_s: f64,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    pub epochs_done: usize,
    pub best_epoch: Option<usize>,
    pub best_val_loss: Option<f64>,
    pub records: Vec<EpochRecord>,
}

#[derive(Debug, Clone)]
pub struct FitSummary {
    pub run_dir: PathBuf,
    pub state: RunState,
    pub parameters: i64,
}

impl FitSummary {
    pub fn best(&self) -> Option<&EpochRecord> {
        let b = self.state.best_epoch?;
        self.state.records.iter().find(|r| r.epoch == b)
    }
    /// Mean training throughput over the epochs run.
    pub fn patches_per_s(&self) -> f64 {
        let r = &self.state.records;
        r.iter().map(|r| r.patches_per_s).sum::<f64>() / r.len().max(1) as f64
    }
}

/// A network with its variables.
pub struct Model {
    pub vs: nn::VarStore,
    pub net: Box<dyn Net>,
}

impl Model {
    pub fn new(c: &Config, device: Device) -> Result<Self> {
        let vs = nn::VarStore::new(device);
        let net = c.net.build(&vs.root(), &c.net_options)?;
        Ok(Self { vs, net })
    }

    /// Loads weights saved by [`fit`] (`best.safetensors` or a checkpoint's `net.*`).
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let named = Tensor::read_safetensors(path)
            .with_context(|| format!("cannot read weights {}", path.display()))?;
        let mut vars = self.vs.variables();
        let mut n = 0;
        tch::no_grad(|| -> Result<()> {
            for (k, t) in &named {
                let k = k.strip_prefix("net.").unwrap_or(k);
                if let Some(v) = vars.get_mut(k) {
                    if v.size() != t.size() {
                        bail!(
                            "{}: {k} has shape {:?}, the network expects {:?}",
                            path.display(),
                            t.size(),
                            v.size()
                        );
                    }
                    v.copy_(t);
                    n += 1;
                }
            }
            Ok(())
        })?;
        if n != vars.len() {
            bail!(
                "{}: holds {n} of the network's {} tensors (wrong network or options?)",
                path.display(),
                vars.len()
            );
        }
        Ok(())
    }

    fn named(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut v: Vec<_> = self
            .vs
            .variables()
            .into_iter()
            .map(|(k, t)| (format!("{prefix}{k}"), t))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Restores a batch `[N, 3, h, w]` in evaluation mode (BatchNorm running statistics).
    pub fn restore(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| self.net.forward_t(&x.to_device(self.vs.device()), false))
    }
}

/// The validation crops of a recipe (fixed degradations).
pub fn validation_pairs(c: &Config, val: &ImageSet) -> Result<Vec<Pair>> {
    degrade_set(
        &val.names,
        &val.images,
        &c.val_degradation()?,
        Some(c.data.val_crop),
        c.run.seed ^ VAL_SEED,
    )
}

/// Mean loss, restored PSNR and input PSNR over pairs.
pub fn validate(model: &Model, loss: &dyn Loss, pairs: &[Pair]) -> Result<(f64, f64, f64)> {
    let dev = model.vs.device();
    let (mut l, mut p, mut pin) = (0.0, 0.0, 0.0);
    for pair in pairs {
        let y = pair.target.to_device(dev);
        let out = model.restore(&pair.input);
        l += tch::no_grad(|| loss.forward(&out, &y))?.double_value(&[]);
        p += psnr(&out.clamp(0.0, 1.0), &y)?;
        pin += psnr(&pair.baseline()?.to_device(dev), &y)?;
    }
    let n = pairs.len().max(1) as f64;
    Ok((l / n, p / n, pin / n))
}

fn load_data(c: &Config) -> Result<(ImageSet, ImageSet)> {
    let all = list_images(&c.data.train).context("data.train")?;
    let (tr, va) = match &c.data.val {
        Some(v) => (all, list_images(v).context("data.val")?),
        None => split(&all, c.data.val_ratio).context("data.val_ratio")?,
    };
    let train = ImageSet::load(&tr, c.data.prescale, "training images")?;
    train.check_min_side(c.data.patch, "data.train")?;
    let val = ImageSet::load(&va, c.data.prescale, "validation images")?;
    Ok((train, val))
}

fn write_csv(path: &Path, records: &[EpochRecord]) -> Result<()> {
    let header = [
        "epoch",
        "lr",
        "train_loss",
        "val_loss",
        "val_psnr",
        "input_psnr",
        "patches_per_s",
        "seconds",
    ];
    let rows = records.iter().map(|r| {
        let mut row = vec![r.epoch.to_string()];
        row.extend(
            [
                r.lr,
                r.train_loss,
                r.val_loss,
                r.val_psnr,
                r.input_psnr,
                r.patches_per_s,
                r.seconds,
            ]
            .map(|x| x.to_string()),
        );
        row
    });
    write_atomic(path, &crate::table::csv_bytes(&header, rows)?)
}

/// Trains the recipe `c` (see the module docs for the run folder).
pub fn fit(c: &Config, o: &FitOptions) -> Result<FitSummary> {
    c.validate()?;
    let device = parse_device(&c.run.device).context("run.device")?;
    let dir = c.run_dir();
    let state_path = dir.join(STATE);
    if state_path.exists() && !o.resume {
        bail!(
            "run folder {} already holds a run: pass --resume to continue it, or choose another name",
            dir.display()
        );
    }
    if o.resume && !state_path.exists() {
        bail!("--resume: {} does not exist", state_path.display());
    }
    let (train, val) = load_data(c)?;
    let val_pairs = validation_pairs(c, &val)?;
    let loss = build_loss(&c.loss, &LossOptions::new(device)).context("loss")?;
    let need = loss.min_side() as u32;
    if c.data.patch < need {
        bail!(
            "data.patch: {} px is too small for loss {} (needs {need})",
            c.data.patch,
            loss.name()
        );
    }
    // only now (inputs checked) does the run folder appear
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    tch::manual_seed(c.run.seed as i64);
    let mut model = Model::new(c, device)?;
    let params = count_parameters(&model.vs);
    let mut trainable: Vec<(String, Tensor)> = model
        .vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    trainable.sort_by(|a, b| a.0.cmp(&b.0));
    let mut opt = Optimizer::new(trainable, &c.optim)?;

    let mut state = if o.resume {
        let s: RunState = serde_json::from_slice(&std::fs::read(&state_path)?)
            .with_context(|| format!("{}: invalid run state", state_path.display()))?;
        let ck = dir.join(CHECKPOINT);
        let named = Tensor::read_safetensors(&ck)
            .with_context(|| format!("cannot read checkpoint {}", ck.display()))?;
        let done = named
            .iter()
            .find(|(k, _)| k == "epochs_done")
            .map(|(_, t)| t.int64_value(&[0]) as usize);
        if done != Some(s.epochs_done) {
            bail!(
                "{} ({done:?} epochs) and {} ({} epochs) disagree",
                ck.display(),
                state_path.display(),
                s.epochs_done
            );
        }
        model.load(&ck)?;
        let opt_state: Vec<(String, Tensor)> = named
            .into_iter()
            .filter_map(|(k, t)| k.strip_prefix("opt.").map(|k| (k.to_string(), t)))
            .collect();
        opt.load_state(&opt_state)
            .with_context(|| format!("{}: optimizer state", ck.display()))?;
        info!(epochs_done = s.epochs_done, run = %dir.display(), "resuming");
        s
    } else {
        write_atomic(&dir.join(CONFIG), c.to_toml()?.as_bytes())?;
        RunState {
            epochs_done: 0,
            best_epoch: None,
            best_val_loss: None,
            records: Vec::new(),
        }
    };
    info!(
        net = %c.net, parameters = params, loss = %loss.name(), task = %c.task, ?device,
        train_images = train.images.len(), val_images = val_pairs.len(), "training"
    );

    let images = Arc::new(train.images);
    let lc = LoaderConfig {
        patch: c.data.patch,
        batch: c.data.batch,
        batches_per_epoch: c.data.batches_per_epoch,
        augment: c.data.augment,
        degradation: c.train_degradation()?,
        seed: c.run.seed,
        prefetch: c.data.prefetch,
    };
    let last = o.stop_after.unwrap_or(c.run.epochs).min(c.run.epochs);
    for epoch in state.epochs_done..last {
        let lr = c.lr_at(epoch);
        opt.lr = lr;
        let pb = ProgressBar::new(lc.batches_per_epoch as u64);
        pb.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} {bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta}]",
            )
            .expect("valid template"),
        );
        pb.set_prefix(format!("{}/{}", epoch + 1, c.run.epochs));
        let t0 = Instant::now();
        let mut sum = 0.0;
        for b in BatchLoader::epoch(images.clone(), &lc, epoch)? {
            let b = b?;
            let x = b.input.to_device(device);
            let y = b.target.to_device(device);
            let out = model.net.forward_t(&x, true);
            let l = loss.forward(&out, &y)?;
            opt.zero_grad();
            l.backward();
            opt.step();
            let v = l.double_value(&[]);
            if !v.is_finite() {
                bail!(
                    "epoch {}: the training loss became {v} (lower optim.lr?)",
                    epoch + 1
                );
            }
            sum += v;
            pb.inc(1);
            pb.set_message(format!("loss {:.5}", sum / pb.position() as f64));
        }
        let train_s = t0.elapsed().as_secs_f64();
        pb.finish_and_clear();
        let (val_loss, val_psnr, input_psnr) = validate(&model, loss.as_ref(), &val_pairs)?;
        let rec = EpochRecord {
            epoch: epoch + 1,
            lr,
            train_loss: sum / lc.batches_per_epoch as f64,
            val_loss,
            val_psnr,
            input_psnr,
            patches_per_s: (lc.batches_per_epoch * lc.batch) as f64 / train_s,
            seconds: t0.elapsed().as_secs_f64(),
        };
        info!(
            epoch = rec.epoch,
            lr,
            train_loss = rec.train_loss,
            val_loss,
            val_psnr,
            input_psnr,
            patches_per_s = rec.patches_per_s,
            "epoch done"
        );
        if state.best_val_loss.is_none_or(|b| val_loss < b) {
            write_safetensors(&model.named(""), None, &dir.join(BEST))?;
            state.best_val_loss = Some(val_loss);
            state.best_epoch = Some(rec.epoch);
        }
        state.records.push(rec);
        state.epochs_done = epoch + 1;
        let mut ck = model.named("net.");
        ck.extend(
            opt.state()
                .into_iter()
                .map(|(k, t)| (format!("opt.{k}"), t)),
        );
        ck.push((
            "epochs_done".into(),
            Tensor::from_slice(&[state.epochs_done as i64]).to_kind(Kind::Int64),
        ));
        write_safetensors(&ck, None, &dir.join(CHECKPOINT))?;
        write_csv(&dir.join(METRICS), &state.records)?;
        write_atomic(&state_path, &serde_json::to_vec_pretty(&state)?)?;
    }
    Ok(FitSummary {
        run_dir: dir,
        state,
        parameters: params,
    })
}
