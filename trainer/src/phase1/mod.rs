//! MDF Phase 1 (Mustafa et al., WACV 2022, Sec. 3.1): train task-specific multi-scale SinGAN
//! discriminators on one seed image; export them as an MDF loss weights file.
//!
//! **Input range.** Training runs on images in [-1, 1], as SinGAN (whose hyper-parameters the
//! paper adopts: alpha = 100 for an MSE in [-1, 1] units, gradient-penalty weight 0.1, the
//! generator's tanh residual of +-1) does. The loss is used on [0, 1] images, so the export folds
//! `x -> 2x - 1` into each discriminator's first convolution (`W' = 2W`, `b' = b - sum W`), which is
//! exact because the convolution has no padding: the exported D on x in [0, 1] computes exactly
//! the trained D on 2x - 1 (tested). Training on [0, 1] directly would change the balance of the
//! paper's loss weights (the MSE would shrink 4x, the noise/tanh scales would differ).
pub mod adam;
pub mod cli;
pub mod config;
pub mod discriminator;
pub mod distortion;
pub mod eval;
pub mod generator;
pub mod net;
pub mod rng;
pub mod safetensors_meta;
pub mod seed;
pub mod train;
