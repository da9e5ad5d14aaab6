//! Image files <-> tensors: PNG/JPEG via the `image` crate, 8-bit sRGB <-> float32 in [0, 1], NCHW.
//! Also a real JPEG encoder with a quality factor (the JPEG-artefact task).
use std::io::Cursor;
use std::path::Path;

use anyhow::{Context, Result, bail};
use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageFormat, RgbImage};
use tch::{Device, Kind, Tensor};

/// Loads an image file as 8-bit RGB. Grey images are replicated to 3 channels; an alpha channel
/// is rejected unless fully opaque (restoration losses have no meaning for transparency).
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read image {}", path.display()))?;
    decode_rgb(&bytes).with_context(|| format!("{}: not a readable PNG/JPEG image", path.display()))
}

/// Decodes PNG/JPEG bytes to 8-bit RGB (see [`load_rgb`]).
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage> {
    let fmt = image::guess_format(bytes).context("unknown image format")?;
    if !matches!(fmt, ImageFormat::Png | ImageFormat::Jpeg) {
        bail!("unsupported image format {fmt:?} (expected PNG or JPEG)");
    }
    let img = image::load_from_memory_with_format(bytes, fmt).context("corrupt image data")?;
    if img.color().has_alpha() {
        let rgba = img.to_rgba8();
        if rgba.pixels().any(|p| p.0[3] != 255) {
            bail!("image has a non-opaque alpha channel (expected RGB or grey)");
        }
    }
    Ok(match img {
        DynamicImage::ImageRgb8(i) => i,
        other => other.to_rgb8(),
    })
}

/// 8-bit RGB -> float32 tensor `[1, 3, H, W]` in [0, 1] (value / 255) on `device`.
pub fn rgb_to_tensor(img: &RgbImage, device: Device) -> Tensor {
    let (w, h) = img.dimensions();
    Tensor::from_slice(img.as_raw().as_slice())
        .view([1, h as i64, w as i64, 3])
        .permute([0, 3, 1, 2])
        .to_kind(Kind::Float)
        .divide_scalar(255.0)
        .contiguous()
        .to_device(device)
}

/// `[1, 3, H, W]` or `[3, H, W]` float tensor -> 8-bit RGB (clamped to [0, 1], rounded).
pub fn tensor_to_rgb(t: &Tensor) -> Result<RgbImage> {
    let t = match t.dim() {
        4 if t.size()[0] == 1 => t.squeeze_dim(0),
        3 => t.shallow_clone(),
        _ => bail!(
            "expected an image tensor [1, 3, H, W] or [3, H, W], got {:?}",
            t.size()
        ),
    };
    let s = t.size();
    if s[0] != 3 {
        bail!("expected 3 colour channels, got {} (shape {:?})", s[0], s);
    }
    let bytes = t
        .detach()
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .clamp(0.0, 1.0)
        .multiply_scalar(255.0)
        .round()
        .to_kind(Kind::Uint8)
        .permute([1, 2, 0])
        .contiguous();
    let v = Vec::<u8>::try_from(bytes.view(-1))?;
    RgbImage::from_raw(s[2] as u32, s[1] as u32, v).context("image buffer size")
}

/// Loads an image file as a `[1, 3, H, W]` tensor in [0, 1].
pub fn load_tensor(path: &Path, device: Device) -> Result<Tensor> {
    Ok(rgb_to_tensor(&load_rgb(path)?, device))
}

/// Saves a tensor as PNG, or JPEG (quality 95) for `.jpg`/`.jpeg`, atomically.
pub fn save_tensor(t: &Tensor, path: &Path) -> Result<()> {
    let img = tensor_to_rgb(t)?;
    save_rgb(&img, path)
}

/// Saves 8-bit RGB by extension (`.png`, `.jpg`/`.jpeg` at quality 95); temp file + rename.
pub fn save_rgb(img: &RgbImage, path: &Path) -> Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let bytes = match ext.as_deref() {
        Some("png") => {
            let mut buf = Cursor::new(Vec::new());
            img.write_to(&mut buf, ImageFormat::Png)?;
            buf.into_inner()
        }
        Some("jpg" | "jpeg") => encode_jpeg(img, 95)?,
        _ => bail!(
            "{}: unsupported output extension (use .png, .jpg or .jpeg)",
            path.display()
        ),
    };
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` atomically (`atomic-write-file`: a temporary file in the same folder, synced
/// and renamed into place), so a reader or a crash never sees half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = atomic_write_file::AtomicWriteFile::open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.commit()
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Baseline JPEG encoding (libjpeg-style quality scaling of the standard tables), quality 1-100.
pub fn encode_jpeg(img: &RgbImage, quality: u8) -> Result<Vec<u8>> {
    if !(1..=100).contains(&quality) {
        bail!("JPEG quality must be in 1..=100, got {quality}");
    }
    let mut buf = Vec::new();
    JpegEncoder::new_with_quality(&mut buf, quality).encode_image(img)?;
    Ok(buf)
}

/// Encodes at `quality` and decodes again: the JPEG-artefact distortion.
pub fn jpeg_roundtrip(img: &RgbImage, quality: u8) -> Result<RgbImage> {
    decode_rgb(&encode_jpeg(img, quality)?)
}

/// Checks that `t` is a `[N, 3, H, W]` float image batch with `H, W >= min_side`.
pub fn check_image_batch(t: &Tensor, what: &str, min_side: i64) -> Result<()> {
    let s = t.size();
    if s.len() != 4 {
        bail!("{what}: expected a [N, C, H, W] tensor, got shape {s:?}");
    }
    if s[1] != 3 {
        bail!(
            "{what}: expected 3 colour channels, got {} (shape {s:?})",
            s[1]
        );
    }
    if s[2] < min_side || s[3] < min_side {
        bail!(
            "{what}: image {}x{} (HxW) is too small: this loss needs at least {min_side} px per side",
            s[2],
            s[3]
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_u8_exact() {
        let img = RgbImage::from_fn(7, 5, |x, y| {
            image::Rgb([(x * 30) as u8, (y * 50) as u8, 255])
        });
        let t = rgb_to_tensor(&img, Device::Cpu);
        assert_eq!(t.size(), vec![1, 3, 5, 7]);
        assert!((t.double_value(&[0, 2, 0, 0]) - 1.0).abs() < 1e-7);
        assert!((t.double_value(&[0, 0, 0, 3]) - 90.0 / 255.0).abs() < 1e-7);
        assert_eq!(tensor_to_rgb(&t).unwrap(), img);
    }

    #[test]
    fn jpeg_quality_changes_size_and_error() {
        let img = RgbImage::from_fn(64, 64, |x, y| {
            image::Rgb([
                (x * 4) as u8,
                ((x * y) % 256) as u8,
                ((x + 3 * y) * 2 % 256) as u8,
            ])
        });
        let q10 = encode_jpeg(&img, 10).unwrap();
        let q90 = encode_jpeg(&img, 90).unwrap();
        assert!(q10.len() < q90.len());
        let err = |a: &RgbImage| -> f64 {
            a.as_raw()
                .iter()
                .zip(img.as_raw())
                .map(|(p, q)| (*p as f64 - *q as f64).powi(2))
                .sum::<f64>()
        };
        assert!(err(&jpeg_roundtrip(&img, 10).unwrap()) > err(&jpeg_roundtrip(&img, 90).unwrap()));
        assert!(encode_jpeg(&img, 0).is_err());
    }

    #[test]
    fn clear_errors() {
        let e = decode_rgb(b"not an image at all").unwrap_err();
        assert!(format!("{e:#}").contains("unknown image format"), "{e:#}");
        let mut png = Vec::new();
        RgbImage::new(4, 4)
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        png.truncate(png.len() / 2);
        assert!(decode_rgb(&png).is_err());
        let t = Tensor::zeros([1, 1, 8, 8], (Kind::Float, Device::Cpu));
        assert!(
            tensor_to_rgb(&t)
                .unwrap_err()
                .to_string()
                .contains("3 colour channels")
        );
        let e = check_image_batch(
            &Tensor::zeros([1, 3, 10, 40], (Kind::Float, Device::Cpu)),
            "x",
            11,
        );
        assert!(e.unwrap_err().to_string().contains("at least 11 px"));
    }
}
