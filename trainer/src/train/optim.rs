//! SGD (momentum, Nesterov, L2 weight decay) and Adam with their state held as named tensors,
//! so checkpoints can save and restore it exactly (libtorch's optimisers in tch cannot). Update
//! rules as documented for `torch.optim.SGD` and `torch.optim.Adam` (L2 weight decay added to
//! the gradient).
use anyhow::{Result, bail};
use tch::{Kind, Tensor};

use super::config::OptimConfig;

pub struct Optimizer {
    kind: OptKind,
    params: Vec<(String, Tensor)>,
    /// SGD: momentum buffers; Adam: first moments.
    m: Vec<Tensor>,
    /// Adam: second moments.
    v: Vec<Tensor>,
    pub step: i64,
    pub lr: f64,
    c: OptimConfig,
}

#[derive(Clone, Copy, PartialEq)]
enum OptKind {
    Sgd,
    Adam,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

impl Optimizer {
    /// Optimises `params` (named trainable variables).
    pub fn new(params: Vec<(String, Tensor)>, c: &OptimConfig) -> Result<Self> {
        let kind = match c.optimizer.as_str() {
            "sgd" => OptKind::Sgd,
            "adam" => OptKind::Adam,
            o => bail!("optim.optimizer: expected adam or sgd, got {o:?}"),
        };
        let zeros = |ps: &[(String, Tensor)]| ps.iter().map(|(_, p)| p.zeros_like()).collect();
        Ok(Self {
            kind,
            m: zeros(&params),
            v: if kind == OptKind::Adam {
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
                    OptKind::Sgd => {
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
                    OptKind::Adam => {
                        let (m, v) = (&mut self.m[i], &mut self.v[i]);
                        let _ = m.g_mul_scalar_(BETA1);
                        let _ = m.g_add_(&(&g * (1.0 - BETA1)));
                        let _ = v.g_mul_scalar_(BETA2);
                        let _ = v.g_add_(&(g.square() * (1.0 - BETA2)));
                        let bc1 = 1.0 - BETA1.powi(t as i32);
                        let bc2 = 1.0 - BETA2.powi(t as i32);
                        let denom = (&*v / bc2).sqrt() + EPS;
                        let _ = p.g_sub_(&(&*m / denom * (lr / bc1)));
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
            if self.kind == OptKind::Adam {
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
                if self.kind == OptKind::Adam {
                    self.v[i].copy_(get(&format!("v.{n}"))?);
                }
            }
            Ok(())
        })
    }
}
