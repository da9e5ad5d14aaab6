//! The whole jndlab loop (`jndlab pipeline`): recipe, the programs it drives, its stages and its report.
pub mod config;
pub mod report;
pub mod stages;
pub mod tools;
