//! SGD (momentum, Nesterov, L2 weight decay) and Adam with their state held as named tensors,
//! so checkpoints can save and restore it exactly (libtorch's optimisers in tch cannot). Update
//! rules as documented for `torch.optim.SGD` and `torch.optim.Adam` (L2 weight decay added to
//! the gradient).
use anyhow::{Result, bail};
use tch::{Kind, Tensor};

use super::config::{OptimConfig, OptimizerKind};

pub struct Optimizer {
    kind: OptimizerKind,
    params: Vec<(String, Tensor)>,
    /// SGD: momentum buffers; Adam: first moments.
    m: Vec<Tensor>,
    /// Adam: second moments.
    v: Vec<Tensor>,
    pub step: i64,
    pub lr: f64,
    c: OptimConfig,
}

/// Adam's constants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamBetas {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl AdamBetas {
    /// PyTorch's defaults (and the restoration nets' papers').
    pub const DEFAULT: AdamBetas = AdamBetas {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
}

/// One Adam update of `p` from its gradient `g` at step `step` (from 1), in the order of operations of
/// `torch.optim.Adam` (moments, bias corrections, `eps` added to the corrected root): the project's one
/// Adam, used by the restoration training here and by Phase 1 (`phase1::adam`).
pub fn adam_update(
    p: &mut Tensor,
    g: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    step: i64,
    b: AdamBetas,
    lr: f64,
) {
    let _ = m.g_mul_scalar_(b.beta1).g_add_(&(g * (1.0 - b.beta1)));
    let _ = v.g_mul_scalar_(b.beta2).g_add_(&(g * g * (1.0 - b.beta2)));
    let bc1 = 1.0 - b.beta1.powi(step as i32);
    let bc2 = 1.0 - b.beta2.powi(step as i32);
    let denom = v.sqrt() / bc2.sqrt() + b.eps;
    let _ = p.g_sub_(&(&*m / &denom * (lr / bc1)));
}

impl Optimizer {
    /// Optimises `params` (named trainable variables).
    pub fn new(params: Vec<(String, Tensor)>, c: &OptimConfig) -> Result<Self> {
        let kind = c.optimizer;
        let zeros = |ps: &[(String, Tensor)]| ps.iter().map(|(_, p)| p.zeros_like()).collect();
        Ok(Self {
            kind,
            m: zeros(&params),
            v: if kind == OptimizerKind::Adam {
                zeros(&params)
            } else {
                Vec::new()
            },
            params,
            step: 0,
            lr: c.lr,
            c: c.clone(),
        })
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// Clips the global gradient norm to `max`; returns the norm before clipping.
    fn clip(&self, max: f64) -> f64 {
        let mut sq = 0.0;
        for (_, p) in &self.params {
            let g = p.grad();
            if g.defined() {
                sq += g.square().sum(Kind::Double).double_value(&[]);
            }
        }
        let norm = sq.sqrt();
        if norm > max {
            for (_, p) in &self.params {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.g_mul_scalar_(max / (norm + 1e-12));
                }
            }
        }
        norm
    }

    /// One update with the current gradients.
    pub fn step(&mut self) {
        if let Some(mx) = self.c.grad_clip {
            self.clip(mx);
        }
        self.step += 1;
        let t = self.step;
        let (lr, wd, mom) = (self.lr, self.c.weight_decay, self.c.momentum);
        tch::no_grad(|| {
            for (i, (_, p)) in self.params.iter_mut().enumerate() {
                let g0 = p.grad();
                if !g0.defined() {
                    continue;
                }
                let g = if wd != 0.0 { &g0 + &*p * wd } else { g0 };
                match self.kind {
                    OptimizerKind::Sgd => {
                        let g = if mom != 0.0 {
                            let buf = &mut self.m[i];
                            if t == 1 {
                                buf.copy_(&g);
                            } else {
                                let _ = buf.g_mul_scalar_(mom);
                                let _ = buf.g_add_(&g);
                            }
                            if self.c.nesterov {
                                &g + &*buf * mom
                            } else {
                                buf.shallow_clone()
                            }
                        } else {
                            g
                        };
                        let _ = p.g_sub_(&(g * lr));
                    }
                    OptimizerKind::Adam => {
                        let (m, v) = (&mut self.m[i], &mut self.v[i]);
                        adam_update(p, &g, m, v, t, AdamBetas::DEFAULT, lr);
                    }
                }
            }
        });
    }

    /// The state as named tensors (for a checkpoint).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("step".to_string(), Tensor::from_slice(&[self.step]))];
        for (i, (n, _)) in self.params.iter().enumerate() {
            out.push((format!("m.{n}"), self.m[i].shallow_clone()));
            if self.kind == OptimizerKind::Adam {
                out.push((format!("v.{n}"), self.v[i].shallow_clone()));
            }
        }
        out
    }

    /// Restores a state written by [`Optimizer::state`].
    pub fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        let get = |k: &str| {
            state
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, t)| t)
                .ok_or_else(|| anyhow::anyhow!("optimizer state lacks {k:?}"))
        };
        self.step = get("step")?.int64_value(&[0]);
        tch::no_grad(|| -> Result<()> {
            for (i, (n, p)) in self.params.iter().enumerate() {
                let m = get(&format!("m.{n}"))?;
                if m.size() != p.size() {
                    bail!(
                        "optimizer state m.{n} has shape {:?}, expected {:?}",
                        m.size(),
                        p.size()
                    );
                }
                self.m[i].copy_(m);
                if self.kind == OptimizerKind::Adam {
                    self.v[i].copy_(get(&format!("v.{n}"))?);
                }
            }
            Ok(())
        })
    }
}
