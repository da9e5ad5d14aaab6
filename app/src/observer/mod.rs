//! Simulated observers over HTTP with known truth: a pure-Rust image metric (MS-SSIM), a Thurstonian
//! observer driven by it, bots that do whole HITs like a browser, and the model's expected scores.

pub mod bots;
pub mod expected;
pub mod judge;
pub mod metric;
pub mod model;
