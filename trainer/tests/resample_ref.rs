//! Bicubic x4 down/up-sampling against the reference `dev_*_bicubic_x4.png`. Those files were made
//! with PIL's antialiased bicubic (checked: PIL reproduces them exactly), which has the same kernel
//! (a = -0.5) and antialiasing as MATLAB but truncates the kernel at the borders instead of
//! mirroring and rounds to 8 bits between its two passes; so we bound the difference instead of
//! asking for equality (measured: 77% of values identical, mean <= 0.32/255, max 3/255 away from the borders).
mod common;

use tch::{Device, Kind};
use trainer::image_io::{load_tensor, rgb_to_tensor, tensor_to_rgb};
use trainer::resample::{Filter, imresize};

#[test]
#[ignore = "needs ../shared/reference/mdf (the official MDF weights and golden values)"]
fn bicubic_x4_down_up_reproduces_reference_files() {
    let dir = common::mdf_dir();
    for name in ["dev_ref0", "dev_ref1"] {
        let r = load_tensor(&dir.join(format!("{name}.png")), Device::Cpu).unwrap();
        let expect = load_tensor(&dir.join(format!("{name}_bicubic_x4.png")), Device::Cpu).unwrap();
        let s = r.size();
        let lr = imresize(&r, s[2] / 4, s[3] / 4, Filter::Bicubic, true).unwrap();
        let lr8 = rgb_to_tensor(&tensor_to_rgb(&lr).unwrap(), Device::Cpu);
        let up = imresize(&lr8, s[2], s[3], Filter::Bicubic, true).unwrap();
        let up8 = rgb_to_tensor(&tensor_to_rgb(&up).unwrap(), Device::Cpu);
        let diff = (&up8 - &expect).abs() * 255.0;
        let max = diff.max().double_value(&[]);
        let mean = diff.mean(Kind::Double).double_value(&[]);
        let b = 8;
        let inner = diff
            .narrow(2, b, s[2] - 2 * b)
            .narrow(3, b, s[3] - 2 * b)
            .max()
            .double_value(&[]);
        let hist: Vec<i64> = (0..4)
            .map(|v| diff.round().eq(v as f64).sum(Kind::Int64).int64_value(&[]))
            .collect();
        eprintln!(
            "{name}: max |diff| {max} /255, mean {mean}, interior max {inner}, histogram 0..3 {hist:?}"
        );
        assert!(mean < 0.4, "{name}: mean difference {mean}/255");
        assert!(
            inner <= 3.0 + 1e-4,
            "{name}: interior max difference {inner}/255"
        );
    }
}
