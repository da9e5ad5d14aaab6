//! Phase-1 training loop: scales trained one after another (coarsest first), each for a fixed
//! number of iterations, then frozen. Per iteration (SinGAN's `train_single_scale`):
//! the generator input is built by running the frozen generators from the coarsest scale, each on
//! the bicubic-upsampled previous output plus a fresh task distortion (coarsest: the seed at that
//! scale plus distortion); then `d_steps` critic updates (WGAN: `-mean D(real) + mean D(fake)`,
//! plus the gradient penalty `gp_weight * mean_pixels((||grad_x D(x^)||_2 over channels - 1)^2)`
//! at one random mix `x^ = a real + (1 - a) fake`, as SinGAN) and `g_steps` generator updates
//! (`-mean D(G(input)) + alpha * MSE(G(input), real)`), Adam for both, learning rates x`lr_drop`
//! from `lr_drop_at` of the iterations. Scale k starts from scale k-1's weights when the channel
//! counts agree (SinGAN), else from a fresh N(0, 0.02) initialisation seeded by (seed, k).
//!
//! Images are in [-1, 1] during training (see `discriminator` for the export to [0, 1]).
//! Randomness: network initialisation uses libtorch's RNG re-seeded at each scale start; every
//! draw during training comes from [`Rng::for_iteration`]; so a run resumed from a checkpoint
//! repeats the uninterrupted run exactly (same device and thread count).
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use tch::{Device, Kind, Tensor};
use tracing::info;

use super::adam::Adam;
use super::config::Phase1Config;
use super::discriminator::{Discriminator, to_signed, to_unit};
use super::distortion::Drawn;
use super::generator::Generator;
use super::rng::Rng;
use super::safetensors_meta;
use crate::image_io::{save_tensor, write_atomic};
use crate::resample::{Filter, imresize};

pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const LOG_FILE: &str = "log.csv";
const LOG_HEADER: &str = "scale,iter,d_loss,wasserstein,gp,g_adv,rec_mse,lr_d,lr_g,distortion";
pub const FORMAT: &str = "jndlab-mdf-phase1";

/// Losses of one iteration (the last D and G step).
#[derive(Debug, Clone, Copy, Default)]
pub struct IterStats {
    pub scale: usize,
    pub iter: usize,
    /// `-mean D(real) + mean D(fake) + gp`.
    pub d_loss: f64,
    /// `mean D(real) - mean D(fake)`, the critic's Wasserstein estimate.
    pub wasserstein: f64,
    pub gp: f64,
    /// `-mean D(G(input))`.
    pub g_adv: f64,
    /// `MSE(G(input), real)` in [-1, 1] units.
    pub rec: f64,
}

/// Measured speed of one finished scale.
#[derive(Debug, Clone)]
pub struct ScaleTiming {
    pub scale: usize,
    pub size: (i64, i64),
    pub iters: usize,
    pub seconds: f64,
}

pub struct Trainer {
    pub cfg: Phase1Config,
    device: Device,
    work_dir: PathBuf,
    /// The seed in [0, 1] as given (kept in checkpoints).
    seed_image: Tensor,
    pub seed_sha256: String,
    /// Seed per scale in [-1, 1], coarsest first.
    pub pyramid: Vec<Tensor>,
    pub gs: Vec<Generator>,
    pub ds: Vec<Discriminator>,
    /// Scale being trained (== cfg.scales when finished) and its next iteration.
    pub scale: usize,
    pub iter: usize,
    opt: Option<(Adam, Adam)>,
    pub progress: bool,
    pub timings: Vec<ScaleTiming>,
    log: Option<std::fs::File>,
}

impl Trainer {
    /// A new run on `seed` (`[1, 3, H, W]` in [0, 1]) writing into `work_dir`.
    pub fn new(
        cfg: Phase1Config,
        seed: &Tensor,
        seed_sha256: &str,
        device: Device,
        work_dir: &Path,
    ) -> Result<Self> {
        let mut t = Self::build(cfg, seed, seed_sha256, device, work_dir)?;
        std::fs::create_dir_all(work_dir)
            .with_context(|| format!("cannot create work folder {}", work_dir.display()))?;
        let path = work_dir.join(LOG_FILE);
        let mut log = std::fs::File::create(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        writeln!(log, "{LOG_HEADER}")?;
        t.log = Some(log);
        Ok(t)
    }

    fn build(
        cfg: Phase1Config,
        seed: &Tensor,
        seed_sha256: &str,
        device: Device,
        work_dir: &Path,
    ) -> Result<Self> {
        cfg.validate()?;
        let s = seed.size();
        if s.len() != 4 || s[0] != 1 || s[1] != 3 {
            bail!("seed image: expected a [1, 3, H, W] tensor, got {s:?}");
        }
        let sizes = cfg.scale_sizes(s[2], s[3])?;
        let seed_image = seed.to_kind(Kind::Float).to_device(device);
        let pyramid = sizes
            .iter()
            .map(|&(h, w)| -> Result<Tensor> {
                let t = if (h, w) == (s[2], s[3]) {
                    seed_image.shallow_clone()
                } else {
                    imresize(&seed_image, h, w, Filter::Lanczos3, true)?
                };
                Ok(to_signed(&t))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg,
            device,
            work_dir: work_dir.to_path_buf(),
            seed_image,
            seed_sha256: seed_sha256.to_string(),
            pyramid,
            gs: Vec::new(),
            ds: Vec::new(),
            scale: 0,
            iter: 0,
            opt: None,
            progress: false,
            timings: Vec::new(),
            log: None,
        })
    }

    /// Continues the run saved in `work_dir`'s checkpoint (its settings; the CSV log is cut back
    /// to the checkpoint's position).
    pub fn resume(work_dir: &Path, device: Device) -> Result<Self> {
        let path = work_dir.join(CHECKPOINT_FILE);
        if !path.exists() {
            bail!(
                "--resume: no checkpoint {} (start the run without --resume)",
                path.display()
            );
        }
        let meta = safetensors_meta::read_metadata(&path)?;
        let field = |k: &str| -> Result<&String> {
            meta.get(k)
                .with_context(|| format!("{}: metadata field {k:?} missing", path.display()))
        };
        if field("format")? != "jndlab-mdf-phase1-checkpoint" {
            bail!("{}: not a Phase-1 checkpoint", path.display());
        }
        let cfg: Phase1Config = toml::from_str(field("config")?)
            .with_context(|| format!("{}: metadata field \"config\" invalid", path.display()))?;
        let scale: usize = field("scale")?.parse().context("checkpoint scale")?;
        let iter: usize = field("iter")?.parse().context("checkpoint iter")?;
        let tensors: HashMap<String, Tensor> = Tensor::read_safetensors(&path)
            .with_context(|| format!("{}: unreadable checkpoint", path.display()))?
            .into_iter()
            .collect();
        let seed = tensors
            .get("seed")
            .with_context(|| format!("{}: tensor \"seed\" missing", path.display()))?;
        let mut t = Self::build(cfg, seed, field("seed_sha256")?, device, work_dir)
            .context("checkpoint settings")?;
        let what = path.display().to_string();
        let present = if iter > 0 { scale + 1 } else { scale };
        for k in 0..present.min(t.cfg.scales) {
            let ch = t.cfg.channels_at(k);
            let mut g = Generator::new(ch, device);
            let mut d = Discriminator::new(ch, device);
            g.net.load(&tensors, &format!("g.{k}."), &what)?;
            d.net.load(&tensors, &format!("d.{k}."), &what)?;
            t.gs.push(g);
            t.ds.push(d);
        }
        t.scale = scale;
        t.iter = iter;
        if iter > 0 {
            let (gp, dp) = (t.gs[scale].net.params(), t.ds[scale].net.params());
            let mut ag = Adam::new(&gp, t.cfg.beta1, t.cfg.beta2);
            let mut ad = Adam::new(&dp, t.cfg.beta1, t.cfg.beta2);
            ag.load(&tensors, "adam_g.")?;
            ad.load(&tensors, "adam_d.")?;
            t.opt = Some((ag, ad));
        }
        // Keep the log rows before the checkpoint.
        let log_path = work_dir.join(LOG_FILE);
        let old = std::fs::read_to_string(&log_path).unwrap_or_default();
        let mut kept = format!("{LOG_HEADER}\n");
        for line in old.lines().skip(1) {
            let mut f = line.split(',');
            let (Some(s), Some(i)) = (f.next(), f.next()) else {
                continue;
            };
            if let (Ok(s), Ok(i)) = (s.parse::<usize>(), i.parse::<usize>())
                && (s, i) < (scale, iter)
            {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        write_atomic(&log_path, kept.as_bytes())?;
        t.log = Some(
            std::fs::OpenOptions::new()
                .append(true)
                .open(&log_path)
                .with_context(|| format!("cannot append to {}", log_path.display()))?,
        );
        info!(scale, iter, checkpoint = %path.display(), "resumed");
        Ok(t)
    }

    pub fn finished(&self) -> bool {
        self.scale >= self.cfg.scales
    }

    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// Iterations done over all scales.
    pub fn global_iter(&self) -> usize {
        self.scale * self.cfg.iters + self.iter
    }

    fn start_scale(&mut self) -> Result<()> {
        let k = self.scale;
        let ch = self.cfg.channels_at(k);
        tch::manual_seed((self.cfg.seed as i64).wrapping_add(1_000_003 * k as i64));
        let mut g = Generator::new(ch, self.device);
        let mut d = Discriminator::new(ch, self.device);
        if k > 0 && self.cfg.channels_at(k - 1) == ch {
            g.net.copy_from(&self.gs[k - 1].net)?;
            d.net.copy_from(&self.ds[k - 1].net)?;
        }
        let ag = Adam::new(&g.net.params(), self.cfg.beta1, self.cfg.beta2);
        let ad = Adam::new(&d.net.params(), self.cfg.beta1, self.cfg.beta2);
        self.gs.truncate(k);
        self.ds.truncate(k);
        self.gs.push(g);
        self.ds.push(d);
        self.opt = Some((ag, ad));
        Ok(())
    }

    /// The generator input at scale `k`: frozen generators from the coarsest scale, each fed the
    /// upsampled previous output plus a new distortion. Returns (input, what was drawn last).
    pub fn generator_input(&mut self, k: usize, rng: &mut Rng) -> Result<(Tensor, Drawn)> {
        let dist = self.cfg.distortion();
        tch::no_grad(|| {
            let (mut x, mut drawn) = dist.apply(&self.pyramid[0], rng)?;
            for j in 1..=k {
                let out = self.gs[j - 1].forward(&x, false);
                let s = self.pyramid[j].size();
                let up = imresize(&out, s[2], s[3], Filter::Bicubic, true)?;
                (x, drawn) = dist.apply(&up, rng)?;
            }
            Ok((x, drawn))
        })
    }

    /// One training iteration of the current scale.
    pub fn step(&mut self) -> Result<IterStats> {
        if self.finished() {
            bail!("training already finished");
        }
        if self.opt.is_none() {
            self.start_scale()?;
        }
        let (k, i) = (self.scale, self.iter);
        let cfg = self.cfg.clone();
        let mut rng = Rng::for_iteration(cfg.seed, k, i);
        let (input, _) = self.generator_input(k, &mut rng)?;
        let real = self.pyramid[k].shallow_clone();
        let f = cfg.lr_factor(i);
        let (mut ag, mut ad) = self.opt.take().expect("optimisers exist");
        let (gp_params, dp_params) = (self.gs[k].net.params(), self.ds[k].net.params());
        let (g, d) = (&mut self.gs[k], &mut self.ds[k]);
        let mut st = IterStats {
            scale: k,
            iter: i,
            ..Default::default()
        };
        for _ in 0..cfg.d_steps {
            Adam::zero_grad(&dp_params);
            let out_real = d.forward(&real, true).mean(Kind::Float);
            let fake = tch::no_grad(|| g.forward(&input, true));
            let out_fake = d.forward(&fake, true).mean(Kind::Float);
            let a = rng.uniform();
            let mix = (&real * a + &fake * (1.0 - a))
                .detach()
                .set_requires_grad(true);
            let crit = d.forward(&mix, true);
            let grad = Tensor::run_backward(&[crit.sum(Kind::Float)], &[&mix], true, true);
            let gp = (grad[0].norm_scalaropt_dim(2, [1i64], false) - 1.0)
                .square()
                .mean(Kind::Float)
                * cfg.gp_weight;
            let loss = -&out_real + &out_fake + &gp;
            loss.backward();
            ad.step(&dp_params, cfg.lr_d * f);
            st.d_loss = loss.double_value(&[]);
            st.wasserstein = (out_real - out_fake).double_value(&[]);
            st.gp = gp.double_value(&[]);
        }
        for _ in 0..cfg.g_steps {
            Adam::zero_grad(&gp_params);
            let fake = g.forward(&input, true);
            let adv = -d.forward(&fake, true).mean(Kind::Float);
            let rec = (&fake - &real).square().mean(Kind::Float);
            let loss = &adv + &rec * cfg.alpha;
            loss.backward();
            ag.step(&gp_params, cfg.lr_g * f);
            st.g_adv = adv.double_value(&[]);
            st.rec = rec.double_value(&[]);
        }
        Adam::zero_grad(&dp_params);
        self.opt = Some((ag, ad));
        if let Some(log) = &mut self.log {
            writeln!(
                log,
                "{},{},{:.6e},{:.6e},{:.6e},{:.6e},{:.6e},{:.3e},{:.3e},{}",
                k,
                i,
                st.d_loss,
                st.wasserstein,
                st.gp,
                st.g_adv,
                st.rec,
                cfg.lr_d * f,
                cfg.lr_g * f,
                cfg.task.name()
            )?;
        }
        self.iter += 1;
        Ok(st)
    }

    /// Trains until finished, or until `stop_at` iterations (over all scales) are done.
    /// Checkpoints every `checkpoint_every` iterations and after each scale; writes samples
    /// after each scale (and every `sample_every` iterations when > 0).
    pub fn run(&mut self, stop_at: Option<usize>) -> Result<()> {
        while !self.finished() {
            let k = self.scale;
            let (h, w) = (self.pyramid[k].size()[2], self.pyramid[k].size()[3]);
            let pb = if self.progress {
                ProgressBar::new(self.cfg.iters as u64)
            } else {
                ProgressBar::hidden()
            };
            pb.set_style(
                ProgressStyle::with_template(
                    "{prefix} {bar:30} {pos}/{len} {msg} {per_sec} [{elapsed_precise} < {eta_precise}]",
                )
                .expect("valid template"),
            );
            pb.set_prefix(format!("scale {}/{} {w}x{h}", k + 1, self.cfg.scales));
            pb.set_position(self.iter as u64);
            pb.reset_eta();
            let t0 = Instant::now();
            let start_iter = self.iter;
            info!(
                scale = k + 1,
                of = self.cfg.scales,
                width = w,
                height = h,
                channels = self.cfg.channels_at(k),
                "training scale"
            );
            while self.iter < self.cfg.iters {
                if stop_at.is_some_and(|s| self.global_iter() >= s) {
                    pb.abandon();
                    return Ok(());
                }
                let st = self.step()?;
                pb.set_message(format!(
                    "D {:+.3} G {:+.3} rec {:.4}",
                    st.d_loss, st.g_adv, st.rec
                ));
                pb.inc(1);
                let it = self.iter;
                if self.cfg.sample_every > 0 && it.is_multiple_of(self.cfg.sample_every) {
                    self.write_samples(&format!("scale{}_iter{it}", k + 1))?;
                }
                if self.cfg.checkpoint_every > 0
                    && it.is_multiple_of(self.cfg.checkpoint_every)
                    && it < self.cfg.iters
                {
                    self.save_checkpoint()?;
                }
            }
            pb.finish();
            let secs = t0.elapsed().as_secs_f64();
            let done = self.iter - start_iter;
            self.timings.push(ScaleTiming {
                scale: k,
                size: (h, w),
                iters: done,
                seconds: secs,
            });
            info!(
                scale = k + 1,
                iters = done,
                seconds = secs,
                it_per_s = done as f64 / secs.max(1e-9),
                "scale done"
            );
            self.write_samples(&format!("scale{}", k + 1))?;
            self.scale += 1;
            self.iter = 0;
            self.opt = None;
            self.save_checkpoint()?;
        }
        Ok(())
    }

    /// Writes `samples/{name}_{real,input,fake}.png` for the current scale (a fresh draw, logged).
    pub fn write_samples(&mut self, name: &str) -> Result<()> {
        let k = self.scale;
        let mut rng = Rng::for_iteration(self.cfg.seed ^ 0x5a5a, k, self.iter);
        let (input, drawn) = self.generator_input(k, &mut rng)?;
        let fake = tch::no_grad(|| self.gs[k].forward(&input, false));
        let dir = self.work_dir.join("samples");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        info!(sample = name, distortion = ?drawn, dir = %dir.display(), "samples");
        save_tensor(
            &to_unit(&self.pyramid[k]),
            &dir.join(format!("{name}_real.png")),
        )?;
        save_tensor(&to_unit(&input), &dir.join(format!("{name}_input.png")))?;
        save_tensor(&to_unit(&fake), &dir.join(format!("{name}_fake.png")))?;
        Ok(())
    }

    fn base_metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("task".into(), self.cfg.task.name().into());
        m.insert("seed_sha256".into(), self.seed_sha256.clone());
        m.insert("scales".into(), self.cfg.scales.to_string());
        m.insert("rho".into(), self.cfg.rho.to_string());
        m.insert("iterations_per_scale".into(), self.cfg.iters.to_string());
        m.insert("version".into(), env!("CARGO_PKG_VERSION").into());
        m
    }

    /// Saves the whole state (seed, finished scales, the current scale with its optimisers).
    pub fn save_checkpoint(&self) -> Result<()> {
        let mut t = vec![("seed".to_string(), self.seed_image.shallow_clone())];
        let present = if self.opt.is_some() && self.iter > 0 {
            self.scale + 1
        } else {
            self.scale
        };
        for k in 0..present.min(self.gs.len()) {
            t.extend(self.gs[k].net.named(&format!("g.{k}.")));
            t.extend(self.ds[k].net.named(&format!("d.{k}.")));
        }
        if let (Some((ag, ad)), true) = (&self.opt, self.iter > 0) {
            t.extend(ag.named("adam_g."));
            t.extend(ad.named("adam_d."));
        }
        let mut m = self.base_metadata();
        m.insert("format".into(), "jndlab-mdf-phase1-checkpoint".into());
        m.insert("config".into(), self.cfg.to_toml());
        m.insert("scale".into(), self.scale.to_string());
        m.insert("iter".into(), self.iter.to_string());
        let path = self.work_dir.join(CHECKPOINT_FILE);
        crate::weights::write_safetensors(&t, Some(&m), &path)?;
        tracing::debug!(scale = self.scale, iter = self.iter, path = %path.display(), "checkpoint");
        Ok(())
    }

    /// Writes the trained discriminators as an MDF weights file (keys `{k}.head.conv.weight`, ...,
    /// index 0 = coarsest; for [0, 1] inputs) with metadata.
    pub fn export(&self, out: &Path) -> Result<()> {
        if !self.finished() {
            bail!(
                "cannot export: training stopped at scale {} of {}",
                self.scale + 1,
                self.cfg.scales
            );
        }
        let t: Vec<_> = self
            .ds
            .iter()
            .enumerate()
            .flat_map(|(k, d)| d.export(k))
            .collect();
        let mut m = self.base_metadata();
        m.insert("format".into(), FORMAT.into());
        m.insert("discriminators".into(), self.ds.len().to_string());
        m.insert("order".into(), "index 0 = coarsest scale".into());
        m.insert(
            "input_range".into(),
            "[0, 1] (trained on [-1, 1]; x -> 2x - 1 folded into each head conv)".into(),
        );
        m.insert("config".into(), self.cfg.to_toml());
        crate::weights::write_safetensors(&t, Some(&m), out)
    }
}
