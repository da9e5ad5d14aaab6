//! Writes a simulated study in pwcmp's long format: Thurstone case V observers with known true scores
//! answer a full design. Used to make `assets/examples/study.csv`:
//!
//!     cargo run -p scaling --example simulate_study -- assets/examples/study.csv
//!
//! Arguments: OUTPUT [OBSERVERS=24] [SEED=7]. The true scores are printed to stderr.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::Write;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = args
        .get(1)
        .expect("usage: simulate_study OUTPUT [OBSERVERS] [SEED]");
    let observers: usize = args
        .get(2)
        .map_or(24, |s| s.parse().expect("OBSERVERS: a number"));
    let seed: u64 = args
        .get(3)
        .map_or(7, |s| s.parse().expect("SEED: a number"));
    // Hypothetical losses with true quality in JND (what a study would try to find out).
    let conditions = [
        ("l2", 0.0),
        ("l1", 0.3),
        ("ssim", 0.5),
        ("vgg", 1.4),
        ("mdf", 1.9),
    ];
    let scenes = ["baboon", "bridge", "lighthouse"];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut w = std::io::BufWriter::new(std::fs::File::create(out)?);
    writeln!(w, "observer,scene,condition_A,condition_B,is_A_selected")?;
    for o in 0..observers {
        for scene in scenes {
            for (a, &(name_a, qa)) in conditions.iter().enumerate() {
                for &(name_b, qb) in &conditions[a + 1..] {
                    // random left/right naming, as a study would record it
                    let ((na, qa), (nb, qb)) = if rng.random::<bool>() {
                        ((name_a, qa), (name_b, qb))
                    } else {
                        ((name_b, qb), (name_a, qa))
                    };
                    let p_a = scaling::normal::cdf((qa - qb) / scaling::SIGMA);
                    writeln!(
                        w,
                        "obs{:02},{scene},{na},{nb},{}",
                        o + 1,
                        u8::from(rng.random::<f64>() < p_a)
                    )?;
                }
            }
        }
    }
    eprintln!("true scores (JND): {conditions:?}");
    Ok(())
}
