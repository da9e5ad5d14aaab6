//! Phase 1's Adam: the state (step, first and second moments) of [`adam_update`] over a list of
//! parameters, checkpointed so that a resumed run continues bit for bit. SinGAN's betas are not
//! PyTorch's defaults, so they are part of the state's settings.
use anyhow::{Result, bail};
use tch::Tensor;

use crate::train::optim::{AdamBetas, adam_update};

pub struct Adam {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub step: i64,
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
}

impl Adam {
    pub fn new(params: &[Tensor], beta1: f64, beta2: f64) -> Self {
        Self {
            beta1,
            beta2,
            eps: 1e-8,
            step: 0,
            m: params.iter().map(Tensor::zeros_like).collect(),
            v: params.iter().map(Tensor::zeros_like).collect(),
        }
    }

    /// One update of `params` from their `.grad()` (parameters without a gradient are skipped).
    pub fn step(&mut self, params: &[Tensor], lr: f64) {
        self.step += 1;
        let b = AdamBetas {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
        };
        tch::no_grad(|| {
            for ((p, m), v) in params.iter().zip(&mut self.m).zip(&mut self.v) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                adam_update(&mut p.shallow_clone(), &g, m, v, self.step, b, lr);
            }
        });
    }

    /// State tensors under `prefix` (moments; the step count as an int64 scalar).
    pub fn named(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = vec![(format!("{prefix}step"), Tensor::from(self.step))];
        for (i, (m, v)) in self.m.iter().zip(&self.v).enumerate() {
            out.push((format!("{prefix}m.{i}"), m.shallow_clone()));
            out.push((format!("{prefix}v.{i}"), v.shallow_clone()));
        }
        out
    }

    pub fn load(
        &mut self,
        src: &std::collections::HashMap<String, Tensor>,
        prefix: &str,
    ) -> Result<()> {
        let get = |k: String| -> Result<&Tensor> {
            match src.get(&k) {
                Some(t) => Ok(t),
                None => bail!("checkpoint: optimiser tensor {k:?} missing"),
            }
        };
        self.step = get(format!("{prefix}step"))?.int64_value(&[]);
        for (i, (m, v)) in self.m.iter_mut().zip(&mut self.v).enumerate() {
            for (t, name) in [(m, "m"), (v, "v")] {
                let s = get(format!("{prefix}{name}.{i}"))?;
                if s.size() != t.size() {
                    bail!("checkpoint: optimiser tensor {prefix}{name}.{i} has the wrong shape");
                }
                tch::no_grad(|| t.copy_(&s.to_device(t.device())));
            }
        }
        Ok(())
    }

    /// Zeroes the gradients of `params`.
    pub fn zero_grad(params: &[Tensor]) {
        for p in params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }
}
