//! The seeded generator of everything drawn during Phase 1 (distortion strengths, noise, JPEG
//! qualities, the gradient-penalty mix): a ChaCha8 stream (the project's one RNG family) chosen by
//! (seed, scale, iteration), so a resumed run draws exactly what an uninterrupted one draws without
//! storing a generator state, and CPU and CUDA runs see the same distortions.
use rand::seq::SliceRandom;
use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use tch::{Device, Kind, Tensor};

pub struct Rng(ChaCha8Rng);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }
    /// The stream of one training iteration: stream number (scale, iteration) of the seed's key.
    pub fn for_iteration(seed: u64, scale: usize, iter: usize) -> Self {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        r.set_stream(((scale as u64) << 40) | iter as u64);
        Self(r)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0.random()
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0.random()
    }
    /// Uniform integer in `lo..=hi`.
    pub fn int_in(&mut self, lo: i64, hi: i64) -> i64 {
        self.0.random_range(lo..=hi)
    }
    /// Standard normal.
    pub fn normal(&mut self) -> f64 {
        self.0.sample(StandardNormal)
    }
    /// A float32 tensor of standard normals.
    pub fn normal_tensor(&mut self, shape: &[i64], device: Device) -> Tensor {
        let n: i64 = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.normal() as f32).collect();
        Tensor::from_slice(&v)
            .view(shape)
            .to_kind(Kind::Float)
            .to_device(device)
    }
    /// A uniformly random permutation of `0..n`.
    pub fn permutation(&mut self, n: usize) -> Vec<i64> {
        let mut p: Vec<i64> = (0..n as i64).collect();
        p.shuffle(&mut self.0);
        p
    }
}
