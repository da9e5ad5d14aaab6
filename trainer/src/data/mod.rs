//! Training data: image folders decoded once into memory ([`dataset`]), random patches and
//! augmentation ([`patches`]), the task degradations ([`degrade`]) and a prefetch thread that
//! assembles batches while the network trains ([`loader`]).
pub mod dataset;
pub mod degrade;
pub mod loader;
pub mod patches;

pub use dataset::{ImageSet, list_images};
pub use degrade::{Degradation, Task};
pub use loader::{Batch, BatchLoader, LoaderConfig};
