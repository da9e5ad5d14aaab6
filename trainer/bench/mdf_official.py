"""Times the official MDF loss (gfxdisp/mdf `MDFLoss` + SinGAN `WDiscriminator`) in PyTorch, built
from the same safetensors as the Rust code, and VGG16 (torchvision, to relu4_3 and relu2_2) for
comparison. Mirrors the official code: modules in eval mode whose parameters keep
requires_grad=True (as `torch.load` of the pickled modules gives), both branches with autograd.

    source scripts/torch-env.sh
    python trainer/bench/mdf_official.py --threads 2 --iters 3 [--check] [--variant frozen]

Prints one JSON object per configuration (times in seconds, median of --iters after one warm-up).
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.environ.get("JNDLAB_SHARED", os.path.join(ROOT, "..", "shared"))
WEIGHTS = os.environ.get("JNDLAB_WEIGHTS_DIR", os.path.join(ROOT, "trainer", "weights"))


class ConvBlock(nn.Sequential):  # SinGAN models.py, verbatim structure
    def __init__(self, in_channel, out_channel, ker_size, padd, stride):
        super().__init__()
        self.add_module("conv", nn.Conv2d(in_channel, out_channel, kernel_size=ker_size, stride=stride, padding=padd))
        self.add_module("norm", nn.BatchNorm2d(out_channel))
        self.add_module("LeakyRelu", nn.LeakyReLU(0.2, inplace=True))


class WDiscriminator(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.head = ConvBlock(3, n, 3, 0, 1)
        self.body = nn.Sequential()
        for i in range(3):
            self.body.add_module("block%d" % (i + 1), ConvBlock(n, n, 3, 0, 1))
        self.tail = nn.Conv2d(n, 1, kernel_size=3, stride=1, padding=0)

    def forward(self, x, is_loss=False):
        x1 = self.head(x)
        x2 = self.body(x1)
        x = self.tail(x2)
        if is_loss:
            return [x1, x2, x]
        return x


class MDFLoss(nn.Module):  # gfxdisp/mdf mdfloss.py
    def __init__(self, ds):
        super().__init__()
        self.Ds = ds
        self.num_discs = len(ds)

    def forward(self, x, y, num_scales=8, is_ascending=1):
        batch_size = x.shape[0]
        loss = torch.zeros([batch_size]).to(x.device)
        for scale_idx in range(num_scales):
            scale = scale_idx if is_ascending else self.num_discs - 1 - scale_idx
            D = self.Ds[scale]
            pxs = D(x, is_loss=True)
            pys = D(y, is_loss=True)
            for idx in range(len(pxs)):
                l2 = (pxs[idx] - pys[idx]) ** 2
                l2 = torch.mean(l2, dim=(1, 2, 3))
                loss += l2
        return torch.mean(loss)


def load_ds(path, device):
    sd = st.load(path)
    ds = []
    k = 0
    while f"{k}.head.conv.weight" in sd:
        n = sd[f"{k}.head.conv.weight"].shape[0]
        d = WDiscriminator(n)
        d.load_state_dict({key[len(f"{k}."):]: v for key, v in sd.items() if key.startswith(f"{k}.")})
        ds.append(d.to(device).eval())
        k += 1
    return ds


def vgg16_features(upto, device):
    import torchvision

    f = torchvision.models.vgg16().features[:upto].eval().to(device)
    p = os.path.join(WEIGHTS, "vgg16.safetensors")
    if os.path.exists(p):
        sd = {k[len("features."):]: v for k, v in st.load(p).items() if int(k.split(".")[1]) < upto}
        f.load_state_dict(sd)
    return f


def timeit(fn, iters, device):
    fn()
    ts = []
    for _ in range(iters):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--weights", default=os.path.join(SHARED, "reference", "mdf", "Ds_SISR.safetensors"))
    ap.add_argument("--shapes", default="16x3x96x96,1x3x384x512")
    ap.add_argument("--variant", default="official", choices=["official", "frozen"],
                    help="frozen: requires_grad_(False) on the Ds and no-grad reference branch")
    ap.add_argument("--no-vgg", action="store_true")
    ap.add_argument("--check", action="store_true", help="verify against dev_mdf_golden.json first")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    ds = load_ds(a.weights, dev)
    mdf = MDFLoss(ds)
    if a.variant == "frozen":
        for d in ds:
            d.requires_grad_(False)
    if a.check:
        from PIL import Image
        import numpy as np

        g = json.load(open(os.path.join(SHARED, "reference", "mdf", "dev_mdf_golden.json")))
        for c in g["cases"]:
            if c["weights"] != "SISR":
                continue
            ld = lambda n: torch.from_numpy(np.asarray(Image.open(os.path.join(SHARED, "reference", "mdf", n)).convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)[None].contiguous().to(dev)  # noqa: E731
            r, d = ld(c["reference"]), ld(c["distorted"]).requires_grad_(True)
            v = mdf(r, d)
            v.backward()
            print(json.dumps({"check": c["distorted"], "loss": float(v), "golden": c["mdf_loss"],
                              "grad_norm": float(d.grad.norm()), "golden_grad_norm": c["grad_l2_norm"]}))
    for shape in a.shapes.split(","):
        n, c, h, w = map(int, shape.split("x"))
        torch.manual_seed(0)
        y = torch.rand(n, c, h, w, device=dev)
        x0 = torch.rand(n, c, h, w, device=dev)

        def fwd():
            with torch.no_grad():
                return mdf(x0, y)

        def fwdbwd():
            x = x0.clone().requires_grad_(True)
            if a.variant == "frozen":
                loss = 0
                for D in ds[:8]:
                    with torch.no_grad():
                        pys = D(y, is_loss=True)
                    pxs = D(x, is_loss=True)
                    for p, q in zip(pxs, pys):
                        loss = loss + ((p - q) ** 2).mean(dim=(1, 2, 3))
                loss = loss.mean()
            else:
                loss = mdf(x, y)
            loss.backward()
            for D in ds:
                D.zero_grad(set_to_none=True)

        res = {"loss": "mdf", "variant": a.variant, "shape": shape, "threads": a.threads, "device": a.device,
               "forward_s": timeit(fwd, a.iters, dev), "forward_backward_s": timeit(fwdbwd, a.iters, dev),
               "torch": torch.__version__}
        print(json.dumps(res), flush=True)
        if not a.no_vgg:
            mean = torch.tensor([0.485, 0.456, 0.406], device=dev).view(1, 3, 1, 1)
            std = torch.tensor([0.229, 0.224, 0.225], device=dev).view(1, 3, 1, 1)
            for layer, upto in [("relu2_2", 9), ("relu4_3", 23)]:
                f = vgg16_features(upto, dev)
                for p in f.parameters():
                    p.requires_grad_(False)

                def vfwd():
                    with torch.no_grad():
                        return ((f((x0 - mean) / std) - f((y - mean) / std)) ** 2).mean()

                def vfb():
                    x = x0.clone().requires_grad_(True)
                    with torch.no_grad():
                        fy = f((y - mean) / std)
                    ((f((x - mean) / std) - fy) ** 2).mean().backward()

                print(json.dumps({"loss": f"vgg16:{layer}", "shape": shape, "threads": a.threads, "device": a.device,
                                  "forward_s": timeit(vfwd, a.iters, dev), "forward_backward_s": timeit(vfb, a.iters, dev)}),
                      flush=True)


if __name__ == "__main__":
    main()
