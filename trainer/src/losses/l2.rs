//! L2 / MSE: mean squared error.
use anyhow::Result;
use tch::{Kind, Tensor};

use super::{Loss, check_pair};

pub fn l2(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    check_pair("l2", pred, target, None, 1)?;
    Ok((pred - target).square().mean(Kind::Float))
}

pub struct L2Loss;

impl Loss for L2Loss {
    fn name(&self) -> String {
        "l2".into()
    }
    fn forward(&self, pred: &Tensor, target: &Tensor) -> Result<Tensor> {
        l2(pred, target)
    }
}
