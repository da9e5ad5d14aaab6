//! Image losses. Each module has a function and a loss type (like piq); [`registry`] builds them by
//! name and [`spec`] parses weighted sums such as `l2+1.0*vgg`.
//!
//! Convention: `forward(pred, target)` with `[N, C, H, W]` float tensors in [0, 1]; gradients flow
//! to `pred`; `target` is the reference (treated as a constant by the feature losses).
pub mod gauss;
pub mod l1;
pub mod l2;
pub mod lpips;
pub mod mdf;
pub mod ms_ssim;
pub mod ms_ssim_l1;
pub mod registry;
pub mod spec;
pub mod ssim;
pub mod vgg;

use anyhow::{Result, bail};
use tch::Tensor;

pub use registry::{LossOptions, build_loss};

/// A differentiable image loss returning a scalar (mean over the batch).
pub trait Loss: Send {
    /// The canonical name (as in a spec string).
    fn name(&self) -> String;
    fn forward(&self, pred: &Tensor, target: &Tensor) -> Result<Tensor>;
    /// Smallest height/width accepted.
    fn min_side(&self) -> i64 {
        1
    }
    /// Bytes of pretrained weights held (Table 1's "memory").
    fn weight_bytes(&self) -> usize {
        0
    }
    /// The loss against a fixed target, precomputing what depends only on it (the MDF's reference
    /// features) so that repeated evaluations (pixel optimisation) skip that work. Same values.
    fn fixed_target<'a>(&'a self, target: &Tensor) -> Result<FixedTarget<'a>> {
        let t = target.detach();
        Ok(Box::new(move |p: &Tensor| self.forward(p, &t)))
    }
}

/// A loss with its target bound (see [`Loss::fixed_target`]).
pub type FixedTarget<'a> = Box<dyn Fn(&Tensor) -> Result<Tensor> + 'a>;

/// Shape checks shared by all losses: same shape, 4-D, `channels` if given, `min_side`.
pub fn check_pair(
    name: &str,
    pred: &Tensor,
    target: &Tensor,
    channels: Option<i64>,
    min_side: i64,
) -> Result<()> {
    let (p, t) = (pred.size(), target.size());
    if p.len() != 4 {
        bail!("{name}: expected [N, C, H, W] tensors, got shape {p:?}");
    }
    if p != t {
        bail!("{name}: prediction {p:?} and reference {t:?} differ in shape");
    }
    if let Some(c) = channels
        && p[1] != c
    {
        bail!("{name}: expected {c} channels, got {} (shape {p:?})", p[1]);
    }
    if p[2] < min_side || p[3] < min_side {
        bail!(
            "{name}: image {}x{} (HxW) is too small: this loss needs at least {min_side} px per side",
            p[2],
            p[3]
        );
    }
    if pred.device() != target.device() {
        bail!(
            "{name}: prediction on {:?}, reference on {:?}",
            pred.device(),
            target.device()
        );
    }
    Ok(())
}

/// `sum_i w_i * loss_i` (a parsed spec with several terms).
pub struct Weighted {
    pub terms: Vec<(f64, Box<dyn Loss>)>,
}

impl Loss for Weighted {
    fn name(&self) -> String {
        self.terms
            .iter()
            .map(|(w, l)| {
                if *w == 1.0 {
                    l.name()
                } else {
                    format!("{w}*{}", l.name())
                }
            })
            .collect::<Vec<_>>()
            .join("+")
    }
    fn forward(&self, pred: &Tensor, target: &Tensor) -> Result<Tensor> {
        let mut acc: Option<Tensor> = None;
        for (w, l) in &self.terms {
            let v = l.forward(pred, target)? * *w;
            acc = Some(match acc {
                None => v,
                Some(a) => a + v,
            });
        }
        acc.ok_or_else(|| anyhow::anyhow!("empty loss"))
    }
    fn min_side(&self) -> i64 {
        self.terms
            .iter()
            .map(|(_, l)| l.min_side())
            .max()
            .unwrap_or(1)
    }
    fn weight_bytes(&self) -> usize {
        self.terms.iter().map(|(_, l)| l.weight_bytes()).sum()
    }
    fn fixed_target<'a>(&'a self, target: &Tensor) -> Result<FixedTarget<'a>> {
        let fs = self
            .terms
            .iter()
            .map(|(w, l)| Ok((*w, l.fixed_target(target)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::new(move |p: &Tensor| {
            let mut acc: Option<Tensor> = None;
            for (w, f) in &fs {
                let v = f(p)? * *w;
                acc = Some(match acc {
                    None => v,
                    Some(a) => a + v,
                });
            }
            acc.ok_or_else(|| anyhow::anyhow!("empty loss"))
        }))
    }
}
