//! Network shapes and parameter counts (expected counts derived here from the architectures).
use tch::{Device, Kind, Tensor, nn};
use trainer::nets::{NetKind, NetOptions, count_parameters};

/// Weights + bias of a k x k convolution.
fn conv(cin: i64, cout: i64, k: i64, bias: bool) -> i64 {
    cin * cout * k * k + if bias { cout } else { 0 }
}

fn built(name: &str) -> (nn::VarStore, Box<dyn trainer::nets::Net>) {
    let vs = nn::VarStore::new(Device::Cpu);
    let kind: NetKind = name.parse().unwrap();
    assert_eq!(kind.name(), name);
    let net = kind.build(&vs.root(), &Default::default()).unwrap();
    (vs, net)
}

#[test]
fn edsr_baseline_x4() {
    let (vs, net) = built("edsr");
    // head 3->64, 16 blocks x 2 convs 64->64, body-closing conv, 2 upsamplers 64->256, tail 64->3;
    // the mean shift is a constant, not a parameter.
    let expect = conv(3, 64, 3, true)
        + 32 * conv(64, 64, 3, true)
        + conv(64, 64, 3, true)
        + 2 * conv(64, 256, 3, true)
        + conv(64, 3, 3, true);
    assert_eq!(expect, 1_517_571); // the published "1.5M" of EDSR baseline x4
    assert_eq!(count_parameters(&vs), expect);
    let y = net.forward_t(
        &Tensor::rand([2, 3, 12, 10], (Kind::Float, Device::Cpu)),
        false,
    );
    assert_eq!(y.size(), vec![2, 3, 48, 40]);
    assert_eq!(net.scale(), 4);
}

#[test]
fn srresnet_x4() {
    let (vs, net) = built("srresnet");
    let bn = 2 * 64; // affine weight + bias (running stats are buffers)
    let prelu = 1;
    // 9x9 head + PReLU; 16 x (conv, BN, PReLU, conv, BN); conv + BN; 2 x (conv 64->256, PReLU); 9x9 tail
    let expect = conv(3, 64, 9, true)
        + prelu
        + 16 * (2 * conv(64, 64, 3, true) + 2 * bn + prelu)
        + conv(64, 64, 3, true)
        + bn
        + 2 * (conv(64, 256, 3, true) + prelu)
        + conv(64, 3, 9, true);
    assert_eq!(count_parameters(&vs), expect);
    assert!((1_500_000..1_600_000).contains(&expect)); // Ledig et al.'s ~1.5M
    let y = net.forward_t(
        &Tensor::rand([1, 3, 8, 9], (Kind::Float, Device::Cpu)),
        true,
    );
    assert_eq!(y.size(), vec![1, 3, 32, 36]);
}

#[test]
fn dncnn_17() {
    let (vs, net) = built("dncnn");
    // conv 3->64 (+bias) + 15 x (conv 64->64 without bias + BN affine) + conv 64->3 (+bias)
    let expect =
        conv(3, 64, 3, true) + 15 * (conv(64, 64, 3, false) + 2 * 64) + conv(64, 3, 3, true);
    assert_eq!(expect, 558_403); // ~0.56M as in Zhang et al.
    assert_eq!(count_parameters(&vs), expect);
    let x = Tensor::rand([2, 3, 17, 20], (Kind::Float, Device::Cpu));
    let y = net.forward_t(&x, false);
    assert_eq!(y.size(), x.size());
    assert_eq!(net.scale(), 1);
    // residual learning: zeroing the last layer makes the net the identity
    tch::no_grad(|| {
        for (k, mut v) in vs.variables() {
            if k.starts_with("last.") {
                let _ = v.zero_();
            }
        }
    });
    let y = net.forward_t(&x, false);
    assert!(y.allclose(&x, 0.0, 0.0, false));
}

#[test]
fn size_overrides() {
    let vs = nn::VarStore::new(Device::Cpu);
    let o = NetOptions {
        features: Some(8),
        depth: Some(3),
    };
    let net = NetKind::Dncnn.build(&vs.root(), &o).unwrap();
    // conv 3->8 (+bias), 1 x (conv 8->8 without bias + BN), conv 8->3 (+bias)
    let expect = conv(3, 8, 3, true) + conv(8, 8, 3, false) + 2 * 8 + conv(8, 3, 3, true);
    assert_eq!(count_parameters(&vs), expect);
    let x = Tensor::rand([1, 3, 9, 9], (Kind::Float, Device::Cpu));
    assert_eq!(net.forward_t(&x, true).size(), x.size());
}

#[test]
fn unknown_net_is_named() {
    let e = "unet".parse::<NetKind>().unwrap_err().to_string();
    assert!(
        e.contains("unknown network \"unet\"") && e.contains("dncnn"),
        "{e}"
    );
}
