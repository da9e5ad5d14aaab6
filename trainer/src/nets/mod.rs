//! Restoration networks, built by name: `edsr` (EDSR baseline x4), `srresnet` (SRResNet x4) and
//! `dncnn` (DnCNN, 17 layers). Inputs and outputs are `[N, 3, H, W]` images in [0, 1].
pub mod dncnn;
pub mod edsr;
pub mod srresnet;

use anyhow::{Result, bail};
use tch::{Tensor, nn};

/// A restoration network: `forward_t(x, train)` maps a degraded batch to its restoration.
pub trait Net: Send {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor;
    /// Output size / input size (4 for the super-resolution nets, 1 otherwise).
    fn scale(&self) -> i64;
}

/// Every network, registered once: its name (in recipes and on the command line), its description, its
/// scale and how it is built all follow from this enum, so they cannot disagree.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum NetKind {
    Edsr,
    Srresnet,
    Dncnn,
}

impl NetKind {
    pub const ALL: [NetKind; 3] = [NetKind::Edsr, NetKind::Srresnet, NetKind::Dncnn];

    pub fn name(self) -> &'static str {
        match self {
            NetKind::Edsr => "edsr",
            NetKind::Srresnet => "srresnet",
            NetKind::Dncnn => "dncnn",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            NetKind::Edsr => {
                "EDSR baseline x4: 16 res-blocks, 64 features, mean shift, 2 x PixelShuffle(2)"
            }
            NetKind::Srresnet => {
                "SRResNet x4 (Ledig et al.): 16 BN res-blocks with PReLU, 2 x PixelShuffle(2)"
            }
            NetKind::Dncnn => {
                "DnCNN: 17 conv layers, 64 channels, BN, residual (output = input - predicted noise)"
            }
        }
    }

    /// Output size / input size: 4 for the super-resolution nets, 1 for DnCNN.
    pub fn scale(self) -> i64 {
        match self {
            NetKind::Edsr | NetKind::Srresnet => 4,
            NetKind::Dncnn => 1,
        }
    }

    /// Builds the network with its variables under `p`.
    pub fn build(self, p: &nn::Path, o: &NetOptions) -> Result<Box<dyn Net>> {
        if o.features.is_some_and(|f| f < 1) || o.depth.is_some_and(|d| d < 1) {
            bail!("network {self}: features and depth must be positive ({o:?})");
        }
        Ok(match self {
            NetKind::Edsr => {
                let mut c = edsr::EdsrConfig::default();
                c.features = o.features.unwrap_or(c.features);
                c.blocks = o.depth.unwrap_or(c.blocks);
                Box::new(edsr::Edsr::new(p, &c))
            }
            NetKind::Srresnet => {
                let mut c = srresnet::SrResNetConfig::default();
                c.features = o.features.unwrap_or(c.features);
                c.blocks = o.depth.unwrap_or(c.blocks);
                Box::new(srresnet::SrResNet::new(p, &c))
            }
            NetKind::Dncnn => {
                let mut c = dncnn::DnCnnConfig::default();
                c.features = o.features.unwrap_or(c.features);
                c.depth = o.depth.unwrap_or(c.depth).max(2);
                Box::new(dncnn::DnCnn::new(p, &c))
            }
        })
    }
}

impl std::fmt::Display for NetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for NetKind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.to_ascii_lowercase();
        NetKind::ALL
            .into_iter()
            .find(|n| n.name() == lower)
            .ok_or_else(|| {
                let known: Vec<&str> = NetKind::ALL.iter().map(|n| n.name()).collect();
                anyhow::anyhow!("unknown network {s:?}; known: {}", known.join(", "))
            })
    }
}

/// Size overrides for small/fast variants (tests, quick experiments); `None` = the paper's.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetOptions {
    /// Feature channels (64 in all three papers).
    pub features: Option<i64>,
    /// Residual blocks (EDSR, SRResNet: 16) or conv layers (DnCNN: 17).
    pub depth: Option<usize>,
}

/// Number of trainable parameters (BatchNorm running statistics are buffers, not counted).
pub fn count_parameters(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(Tensor::numel)
        .sum::<usize>() as i64
}

/// A `k x k` convolution with "same" padding.
pub(crate) fn conv(p: nn::Path, cin: i64, cout: i64, k: i64, bias: bool) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        padding: k / 2,
        bias,
        ..Default::default()
    };
    nn::conv2d(p, cin, cout, k, cfg)
}

/// A single-parameter PReLU slope (initialised to 0.25, as PyTorch's `nn.PReLU()`).
pub(crate) fn prelu_weight(p: &nn::Path) -> Tensor {
    p.var("weight", &[1], nn::Init::Const(0.25))
}
