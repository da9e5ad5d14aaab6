//! Training restoration networks: TOML recipes ([`config`]), optimisers with saveable state
//! ([`optim`]), the training loop with validation, checkpoints and resume ([`fit`]), and loss
//! comparisons / lambda searches ([`sweep`]).
pub mod config;
pub mod fit;
pub mod optim;
pub mod sweep;

pub use config::Config;
pub use fit::{FitOptions, FitSummary, fit};
