//! Batches of random degraded patches, produced on a worker thread ahead of the training loop
//! (std::thread + a bounded channel), so decoding/degrading overlaps with the network's work.
//! Each epoch's patches come from an RNG seeded by `(seed, epoch)`: a resumed run sees exactly
//! the batches an uninterrupted one would.
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use anyhow::{Result, bail};
use image::RgbImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::Tensor;

use super::degrade::Degradation;
use super::patches::{random_dihedral, random_patch};

/// A training batch on the CPU: `input` `[N, 3, h, w]`, `target` `[N, 3, s*h, s*w]`.
pub struct Batch {
    pub input: Tensor,
    pub target: Tensor,
}

#[derive(Debug, Clone)]
pub struct LoaderConfig {
    /// Side of the target (HR/clean) patch.
    pub patch: u32,
    pub batch: usize,
    pub batches_per_epoch: usize,
    pub augment: bool,
    pub degradation: Degradation,
    pub seed: u64,
    /// Batches buffered ahead of the consumer.
    pub prefetch: usize,
}

/// The RNG of one epoch: stream `epoch` of the run's seed (ChaCha8, the project's one RNG family).
pub fn epoch_rng(seed: u64, epoch: usize) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(epoch as u64);
    r
}

/// Makes one batch from `rng` (used by the worker thread; public for tests).
pub fn make_batch(images: &[RgbImage], c: &LoaderConfig, rng: &mut ChaCha8Rng) -> Result<Batch> {
    use rand::Rng;
    let (mut xs, mut ys) = (Vec::with_capacity(c.batch), Vec::with_capacity(c.batch));
    for _ in 0..c.batch {
        let img = &images[rng.random_range(0..images.len())];
        let mut p = random_patch(img, c.patch, rng);
        if c.augment {
            p = random_dihedral(&p, rng);
        }
        let (x, y) = c.degradation.apply(&p, rng)?;
        xs.push(x);
        ys.push(y);
    }
    Ok(Batch {
        input: Tensor::stack(&xs, 0),
        target: Tensor::stack(&ys, 0),
    })
}

/// One epoch of batches from a worker thread.
pub struct BatchLoader {
    rx: Receiver<Result<Batch>>,
    worker: Option<JoinHandle<()>>,
}

impl BatchLoader {
    /// Starts producing the batches of `epoch`.
    pub fn epoch(images: Arc<Vec<RgbImage>>, c: &LoaderConfig, epoch: usize) -> Result<Self> {
        let s = c.degradation.scale();
        if c.patch == 0 || !c.patch.is_multiple_of(s) {
            bail!(
                "patch size {} must be a positive multiple of the scale {s}",
                c.patch
            );
        }
        if let Some(small) = images
            .iter()
            .find(|i| i.width() < c.patch || i.height() < c.patch)
        {
            bail!(
                "a training image is {}x{}, smaller than the {} px patch",
                small.width(),
                small.height(),
                c.patch
            );
        }
        let (tx, rx) = sync_channel(c.prefetch.max(1));
        let c = c.clone();
        let worker = std::thread::Builder::new()
            .name("batch-loader".into())
            .spawn(move || {
                let mut rng = epoch_rng(c.seed, epoch);
                for _ in 0..c.batches_per_epoch {
                    let b = make_batch(&images, &c, &mut rng);
                    let stop = b.is_err();
                    if tx.send(b).is_err() || stop {
                        return;
                    }
                }
            })?;
        Ok(Self {
            rx,
            worker: Some(worker),
        })
    }
}

impl Iterator for BatchLoader {
    type Item = Result<Batch>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}

impl Drop for BatchLoader {
    fn drop(&mut self) {
        // Drain so a blocked sender returns, then join.
        while self.rx.try_recv().is_ok() {}
        if let Some(w) = self.worker.take() {
            let rx = std::mem::replace(&mut self.rx, sync_channel(1).1);
            drop(rx);
            let _ = w.join();
        }
    }
}
