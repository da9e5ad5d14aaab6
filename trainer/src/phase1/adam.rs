//! Adam (Kingma & Ba) with the update PyTorch's `torch.optim.Adam` performs (bias corrections,
//! `eps` added to the corrected root), written out so that its state (step, first and second
//! moments) can be checkpointed and a resumed run continues bit for bit.
use anyhow::{Result, bail};
use tch::Tensor;

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
        let bc1 = 1.0 - self.beta1.powi(self.step as i32);
        let bc2 = 1.0 - self.beta2.powi(self.step as i32);
        tch::no_grad(|| {
            for ((p, m), v) in params.iter().zip(&mut self.m).zip(&mut self.v) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let _ = m
                    .g_mul_scalar_(self.beta1)
                    .g_add_(&(&g * (1.0 - self.beta1)));
                let _ = v
                    .g_mul_scalar_(self.beta2)
                    .g_add_(&(&g * &g * (1.0 - self.beta2)));
                let denom = v.sqrt() / bc2.sqrt() + self.eps;
                let mut p = p.shallow_clone();
                let _ = p.g_sub_(&(&*m / &denom * (lr / bc1)));
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
