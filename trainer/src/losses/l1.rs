//! L1: mean absolute error.
use anyhow::Result;
use tch::{Kind, Tensor};

use super::{Loss, check_pair};

pub fn l1(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    check_pair("l1", pred, target, None, 1)?;
    Ok((pred - target).abs().mean(Kind::Float))
}

pub struct L1Loss;

impl Loss for L1Loss {
    fn name(&self) -> String {
        "l1".into()
    }
    fn forward(&self, pred: &Tensor, target: &Tensor) -> Result<Tensor> {
        l1(pred, target)
    }
}
