//! Random patches and the dihedral augmentations (rotations by 90/180/270 degrees and flips).
use image::{RgbImage, imageops};
use rand::Rng;

/// A `size x size` crop at a uniformly random position (`img` must be at least that large).
pub fn random_patch(img: &RgbImage, size: u32, rng: &mut impl Rng) -> RgbImage {
    let x = rng.random_range(0..=img.width() - size);
    let y = rng.random_range(0..=img.height() - size);
    imageops::crop_imm(img, x, y, size, size).to_image()
}

/// The largest centred crop whose sides are multiples of `m` (at most `max` px when given).
pub fn center_crop(img: &RgbImage, m: u32, max: Option<u32>) -> RgbImage {
    let lim = |s: u32| {
        let s = max.map_or(s, |mx| s.min(mx));
        s - s % m
    };
    let (w, h) = (lim(img.width()), lim(img.height()));
    imageops::crop_imm(img, (img.width() - w) / 2, (img.height() - h) / 2, w, h).to_image()
}

/// Dihedral transform `k` in 0..8: rotation by `(k % 4) * 90` degrees, then a horizontal flip if
/// `k >= 4`. `k = 0` is the identity.
pub fn dihedral(img: &RgbImage, k: u8) -> RgbImage {
    let r = match k % 4 {
        0 => img.clone(),
        1 => imageops::rotate90(img),
        2 => imageops::rotate180(img),
        _ => imageops::rotate270(img),
    };
    if k >= 4 {
        imageops::flip_horizontal(&r)
    } else {
        r
    }
}

/// A uniformly random dihedral transform (covers rot90/180/270 and horizontal/vertical flips).
pub fn random_dihedral(img: &RgbImage, rng: &mut impl Rng) -> RgbImage {
    dihedral(img, rng.random_range(0..8))
}
