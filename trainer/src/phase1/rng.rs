//! Our own seeded RNG for everything drawn during training (distortion strengths, noise, JPEG
//! qualities, the gradient-penalty mix): SplitMix64, re-derived from (seed, scale, iteration) at
//! every iteration, so a resumed run draws exactly what an uninterrupted one draws without having
//! to store a generator state, and CPU and CUDA runs see the same distortions.
use tch::{Device, Kind, Tensor};

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    /// The stream of one training iteration.
    pub fn for_iteration(seed: u64, scale: usize, iter: usize) -> Self {
        let mut r = Self(seed ^ 0x6a09_e667_f3bc_c908);
        let a = r.next_u64();
        let mut r = Self(a ^ (scale as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let b = r.next_u64();
        Self(b ^ (iter as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform integer in `lo..=hi`.
    pub fn int_in(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % ((hi - lo + 1) as u64)) as i64
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
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
    /// Fisher-Yates permutation of `0..n`.
    pub fn permutation(&mut self, n: usize) -> Vec<i64> {
        let mut p: Vec<i64> = (0..n as i64).collect();
        for i in (1..n).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            p.swap(i, j);
        }
        p
    }
}
