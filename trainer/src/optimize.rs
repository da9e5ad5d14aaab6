//! Pixel optimisation, as the official MDF demo: Adam on the pixels of a uniform-random image
//! (seeded) towards a reference, recording the PSNR after every step. The reference's features are
//! computed once ([`Loss::fixed_target`]); the official demo recomputes them every step.
use anyhow::Result;
use tch::{Kind, Tensor, nn, nn::OptimizerConfig};

use crate::losses::Loss;
use crate::metrics::psnr;

pub struct OptimizeConfig {
    pub steps: usize,
    pub lr: f64,
    pub seed: i64,
}

/// One record per step: `(step, loss before the step, PSNR after the step)`.
pub struct StepRecord {
    pub step: usize,
    pub loss: f64,
    pub psnr_db: f64,
}

/// Runs the optimisation; `on_step` sees every record (progress bars, CSV writers).
pub fn optimize_pixels(
    loss: &dyn Loss,
    reference: &Tensor,
    cfg: &OptimizeConfig,
    mut on_step: impl FnMut(&StepRecord),
) -> Result<(Tensor, Vec<StepRecord>)> {
    let dev = reference.device();
    let min = loss.min_side();
    crate::losses::check_pair(&loss.name(), reference, reference, None, min)?;
    tch::manual_seed(cfg.seed);
    let vs = nn::VarStore::new(dev);
    let init = Tensor::rand(reference.size(), (Kind::Float, tch::Device::Cpu)).to_device(dev);
    let pixels = vs.root().var_copy("pixels", &init);
    let mut opt = nn::Adam::default().build(&vs, cfg.lr)?;
    let target = reference.to_kind(Kind::Float).detach();
    // The reference never changes: its features are computed once.
    let loss_fn = loss.fixed_target(&target)?;
    let mut records = Vec::with_capacity(cfg.steps);
    for step in 1..=cfg.steps {
        let l = loss_fn(&pixels)?;
        opt.zero_grad();
        l.backward();
        opt.step();
        let p = tch::no_grad(|| psnr(&pixels.clamp(0.0, 1.0), &target))?;
        let r = StepRecord {
            step,
            loss: l.double_value(&[]),
            psnr_db: p,
        };
        on_step(&r);
        records.push(r);
    }
    Ok((pixels.detach().clamp(0.0, 1.0), records))
}
