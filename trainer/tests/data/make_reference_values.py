"""Independent reference values for the baseline losses (committed as baseline_reference.json).

SSIM / MS-SSIM: piq 0.8 (downsample=False; MS-SSIM only where piq accepts the size).
LPIPS v0.1: the `lpips` package (its own v0.1 linear layers; backbone weights taken from our
converted torchvision-named safetensors since torchvision downloads are unavailable here).
VGG: torchvision's VGG16 `features` with the same weights (checks our graph, not the weights).

Run (after `bash scripts/setup-torch.sh` with SETUP_TORCH_EXTRAS=1 and `jndlab-train fetch-weights`):
    .venv/bin/python trainer/tests/data/make_reference_values.py > trainer/tests/data/baseline_reference.json
Images are read from ../shared/reference/mdf (not committed).
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
import st  # noqa: E402

import lpips  # noqa: E402
import piq  # noqa: E402
import torchvision  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
SHARED = os.environ.get("JNDLAB_SHARED", os.path.join(ROOT, "..", "shared"))
MDF = os.path.join(SHARED, "reference", "mdf")
WEIGHTS = os.environ.get("JNDLAB_WEIGHTS_DIR", os.path.join(ROOT, "trainer", "weights"))
torch.set_grad_enabled(False)


def img(name):
    a = np.asarray(Image.open(os.path.join(MDF, name)).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(a).permute(2, 0, 1)[None].contiguous()


def patterned(ref):
    """Deterministic distortion reproduced in the Rust test: ref + 0.1 * ((7h + 13w + 5c) % 11 - 5) / 5, 8-bit."""
    _, c, h, w = ref.shape
    ci = torch.arange(c).view(1, c, 1, 1)
    hi = torch.arange(h).view(1, 1, h, 1)
    wi = torch.arange(w).view(1, 1, 1, w)
    k = ((hi * 7 + wi * 13 + ci * 5) % 11).float()
    d = (ref + 0.1 * (k - 5.0) / 5.0).clamp(0, 1)
    return torch.round(d * 255.0) / 255.0


PAIRS = [
    (r, f"{r[:-4]}_{d}.png")
    for r in ["dev_ref0.png", "dev_ref1.png"]
    for d in ["noise25", "jpeg10", "bicubic_x4"]
]


def lpips_model(net):
    m = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False).eval()
    sd = st.load(os.path.join(WEIGHTS, "alexnet.safetensors" if net == "alex" else "vgg16.safetensors"))
    feats = (torchvision.models.alexnet() if net == "alex" else torchvision.models.vgg16()).features
    feats.load_state_dict({k[len("features."):]: v for k, v in sd.items()})
    for s in range(1, 6):
        sl = getattr(m.net, f"slice{s}")
        for name in list(sl._modules):
            sl._modules[name] = feats[int(name)]
    ours = st.load(os.path.join(WEIGHTS, f"lpips_{net}.safetensors"))
    lin_diff = max(
        float((getattr(m, f"lin{i}").model[1].weight - ours[f"lin{i}.model.1.weight"]).abs().max()) for i in range(5)
    )
    return m, lin_diff


def main():
    out = {"generator": "trainer/tests/data/make_reference_values.py",
           "versions": {"torch": torch.__version__, "piq": piq.__version__, "lpips": "0.1.4"},
           "pairs": [], "ms_ssim_large": []}
    alex, dalex = lpips_model("alex")
    vggl, dvgg = lpips_model("vgg")
    out["lpips_lin_max_abs_diff_vs_lpips_package"] = {"alex": dalex, "vgg": dvgg}
    vgg = torchvision.models.vgg16().features.eval()
    vgg.load_state_dict({k[len("features."):]: v for k, v in st.load(os.path.join(WEIGHTS, "vgg16.safetensors")).items()})
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    for r, d in PAIRS:
        x, y = img(d), img(r)
        fx, fy = vgg[:9]((x - mean) / std), vgg[:9]((y - mean) / std)  # relu2_2 = features[8]
        out["pairs"].append({
            "reference": r, "distorted": d,
            "ssim": float(piq.ssim(x, y, data_range=1.0, downsample=False)),
            "lpips_alex": float(alex(x, y, normalize=True).flatten()[0]),
            "lpips_vgg": float(vggl(x, y, normalize=True).flatten()[0]),
            "vgg_relu2_2_mse": float(((fx - fy) ** 2).mean()),
        })
    ref = img("i10.png")
    for name, dist in [("patterned", patterned(ref))]:
        out["ms_ssim_large"].append({
            "reference": "i10.png", "distortion": name,
            "ms_ssim": float(piq.multi_scale_ssim(dist, ref, data_range=1.0)),
            "ssim": float(piq.ssim(dist, ref, data_range=1.0, downsample=False)),
        })
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
