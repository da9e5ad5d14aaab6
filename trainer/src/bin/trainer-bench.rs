//! Table 1 of the MDF paper on this machine: forward and forward+backward time per loss and the
//! weight memory, plus the MDF's achieved GFLOP/s against a measured SGEMM rate.
//!
//!     source scripts/torch-env.sh
//!     cargo run --release -p trainer --bin trainer-bench -- --threads 2 --iters 3
use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use tch::{Device, Kind, Tensor};
use trainer::device::parse_device;
use trainer::losses::mdf::MdfLoss;
use trainer::losses::{LossOptions, build_loss};

#[derive(Parser)]
#[command(about = "Time every loss (forward, forward+backward) and report weight memory")]
struct Args {
    /// libtorch intra-op threads.
    #[arg(long, default_value_t = 2)]
    threads: i32,
    /// Timed iterations per measurement (median reported, after one warm-up).
    #[arg(long, default_value_t = 3)]
    iters: usize,
    /// Comma-separated NxCxHxW shapes.
    #[arg(long, default_value = "16x3x96x96,1x3x384x512")]
    shapes: String,
    /// Semicolon-separated loss specs.
    #[arg(
        long,
        default_value = "l1;l2;ssim;ms-ssim;ms-ssim+l1;vgg;vgg:relu4_3;lpips:alex;lpips:vgg;mdf:sisr;l2+1.0*vgg;l2+0.1*lpips"
    )]
    losses: String,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn sync(d: Device) {
    if let Device::Cuda(i) = d {
        tch::Cuda::synchronize(i as i64);
    }
}

fn median_time(iters: usize, dev: Device, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    sync(dev);
    let mut ts = Vec::new();
    for _ in 0..iters {
        let t = Instant::now();
        f()?;
        sync(dev);
        ts.push(t.elapsed().as_secs_f64());
    }
    ts.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    Ok(ts[ts.len() / 2])
}

/// MDF multiply-adds for one branch (valid 3x3 convs at full resolution).
fn mdf_macs(l: &MdfLoss, n: i64, h: i64, w: i64) -> f64 {
    let mut macs = 0.0;
    for d in l.discriminators() {
        let c = d.channels;
        let layers = [(3, c), (c, c), (c, c), (c, c), (c, 1)];
        for (i, (ci, co)) in layers.iter().enumerate() {
            let (oh, ow) = (h - 2 * (i as i64 + 1), w - 2 * (i as i64 + 1));
            macs += (n * ci * co * 9 * oh * ow) as f64;
        }
    }
    macs
}

fn main() -> Result<()> {
    let a = Args::parse();
    tch::set_num_threads(a.threads);
    let dev = parse_device(&a.device)?;
    let _ = tch::Cuda::is_available();
    // SGEMM rate as the practical peak of this CPU/GPU with these threads.
    let m = Tensor::rand([2048, 2048], (Kind::Float, dev));
    let t = median_time(a.iters.max(3), dev, || {
        let _ = m.matmul(&m);
        Ok(())
    })?;
    let gemm = 2.0 * 2048f64.powi(3) / t / 1e9;
    println!(
        "# device {dev:?}, threads {}, SGEMM 2048^3: {gemm:.1} GFLOP/s",
        a.threads
    );
    println!("| loss | shape | forward (s) | forward+backward (s) | weights (MiB) |");
    println!("|---|---|---|---|---|");
    let opts = LossOptions::new(dev);
    for shape in a.shapes.split(',') {
        let s: Vec<i64> = shape
            .split('x')
            .map(|v| v.parse())
            .collect::<Result<_, _>>()?;
        tch::manual_seed(0);
        let y = Tensor::rand(&s[..], (Kind::Float, dev));
        let x0 = Tensor::rand(&s[..], (Kind::Float, dev));
        for spec in a.losses.split(';') {
            let l = match build_loss(spec, &opts) {
                Ok(l) => l,
                Err(e) => {
                    println!("| {spec} | {shape} | n/a | n/a | ({e:#}) |");
                    continue;
                }
            };
            let fwd = median_time(a.iters, dev, || {
                let _ = tch::no_grad(|| l.forward(&x0, &y))?;
                Ok(())
            })?;
            let fb = median_time(a.iters, dev, || {
                let x = x0.copy().set_requires_grad(true);
                l.forward(&x, &y)?.backward();
                Ok(())
            })?;
            println!(
                "| {spec} | {shape} | {fwd:.4} | {fb:.4} | {:.2} |",
                l.weight_bytes() as f64 / (1 << 20) as f64
            );
            if spec.starts_with("mdf") {
                let mdf = MdfLoss::official(trainer::losses::mdf::MdfTask::Sisr, dev)?;
                let branch = mdf_macs(&mdf, s[0], s[2], s[3]);
                println!(
                    "|  ↳ MDF arithmetic | {shape} | {:.1} GFLOP/s ({:.1} GFLOP) | {:.1} GFLOP/s ({:.1} GFLOP) | |",
                    2.0 * 2.0 * branch / fwd / 1e9,
                    2.0 * 2.0 * branch / 1e9,
                    3.0 * 2.0 * branch / fb / 1e9,
                    3.0 * 2.0 * branch / 1e9
                );
            }
        }
    }
    Ok(())
}
