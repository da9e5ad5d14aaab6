//! The simulated observer's decision rule: a Thurstone case V observer whose qualities come from MS-SSIM.
//!
//! A candidate's quality in JND is q = -(1 - MS-SSIM(reference, candidate)) / jnd_step, where `jnd_step` is
//! the metric difference that equals 1 JND. The observer prefers left with probability
//! Phi((q_left - q_right) / scaling::SIGMA), so a 1-JND difference is preferred 75% of the time (the model
//! the app's scaling fits). A trial in which one candidate is pixel-identical to the reference (an
//! attention check: the reference against a JPEG quality-2 copy) is recognised as the obvious trial, as a
//! person would: answered wrong with probability `check_fail_rate`, else right. Random numbers come from a
//! ChaCha8 stream per observer (stream number = the observer's number), so the answers depend on the seed
//! and the observer's number only, not on task scheduling.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObserverModel {
    /// The MS-SSIM difference that equals 1 JND.
    pub jnd_step: f64,
    /// Probability of answering an obvious (attention-check) trial wrong.
    pub check_fail_rate: f64,
}

impl Default for ObserverModel {
    fn default() -> Self {
        ObserverModel {
            jnd_step: 0.01,
            check_fail_rate: 0.05,
        }
    }
}

/// What the observer sees of one candidate: its MS-SSIM against the trial's reference, and whether it is
/// pixel-identical to the reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seen {
    pub ms_ssim: f64,
    pub identical: bool,
}

/// One decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub left: bool,
    /// The trial was recognised as an obvious one (one side identical to the reference).
    pub obvious: bool,
    /// An obvious trial answered wrong.
    pub obvious_wrong: bool,
    /// A plausible response time (harder pairs take longer).
    pub rt_ms: i64,
}

impl ObserverModel {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(self.jnd_step.is_finite() && self.jnd_step > 0.0) {
            anyhow::bail!(
                "jnd-step: expected a positive number, found {}",
                self.jnd_step
            );
        }
        if !(0.0..=1.0).contains(&self.check_fail_rate) {
            anyhow::bail!(
                "check-fail-rate: expected a probability in [0, 1], found {}",
                self.check_fail_rate
            );
        }
        Ok(())
    }

    /// Quality in JND of a candidate with this MS-SSIM against its reference (0 = identical, lower = worse).
    pub fn quality(&self, ms_ssim: f64) -> f64 {
        -(1.0 - ms_ssim) / self.jnd_step
    }

    /// Probability of choosing left.
    pub fn p_left(&self, left: Seen, right: Seen) -> f64 {
        match (left.identical, right.identical) {
            (true, false) => 1.0 - self.check_fail_rate,
            (false, true) => self.check_fail_rate,
            _ => scaling::normal::cdf(
                (self.quality(left.ms_ssim) - self.quality(right.ms_ssim)) / scaling::SIGMA,
            ),
        }
    }

    /// Decides one trial, drawing from the observer's stream.
    pub fn decide(&self, left: Seen, right: Seen, stream: &mut ChaCha8Rng) -> Decision {
        let obvious = left.identical != right.identical;
        let chose_left = stream.random::<f64>() < self.p_left(left, right);
        let dq = (self.quality(left.ms_ssim) - self.quality(right.ms_ssim)).abs();
        let difficulty = if obvious { 0.0 } else { (-dq / 2.0).exp() };
        let rt_ms = (600.0 + 1800.0 * difficulty + 900.0 * stream.random::<f64>()).round() as i64;
        Decision {
            left: chose_left,
            obvious,
            obvious_wrong: obvious && chose_left != left.identical,
            rt_ms,
        }
    }
}

/// Observer `i`'s random stream under `seed` (independent of the other observers').
pub fn stream(seed: u64, i: usize) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(i as u64);
    r
}
