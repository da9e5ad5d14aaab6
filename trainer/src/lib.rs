//! jndlab trainer: the MDF loss (Mustafa et al., WACV 2022) with the official weights, the baseline
//! image losses, the image pipeline they need, and tools to measure their cost.
pub mod bundle;
pub mod commands;
pub mod data;
pub mod device;
pub mod eval;
pub mod image_io;
pub mod losses;
pub mod metrics;
pub mod nets;
pub mod optimize;
pub mod phase1;
pub mod resample;
pub mod summary;
pub mod table;
pub mod task;
pub mod train;
pub mod weights;
