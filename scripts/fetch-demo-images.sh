#!/usr/bin/env bash
# Regenerates assets/images/ (the permissively licensed photographs the demo pipeline trains and tests on)
# from the scikit-image 0.24.0 wheel on PyPI: public-domain and CC0 images only (see assets/images/README.md).
# Deterministic: fixed crops, PNG for test tiles and the seed, JPEG quality 95 for the training regions.
#   bash scripts/fetch-demo-images.sh        # needs the project venv (scripts/setup-torch.sh) for Pillow
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${JNDLAB_VENV:-.venv}/bin/python"
[ -x "$PY" ] || bash scripts/setup-torch.sh
"$PY" -c 'import PIL' 2>/dev/null || "$PY" -m pip install -q pillow
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
  --platform manylinux_2_17_x86_64 scikit-image==0.24.0 -d "$WORK"
WHEEL="$(ls "$WORK"/scikit_image-0.24.0-*.whl)"
"$PY" - "$WHEEL" <<'EOF'
import hashlib, io, os, shutil, sys, zipfile
from PIL import Image

wheel = sys.argv[1]
# name: (file in the wheel, licence, test tile (x, y) of 192x144 in the right-hand strip)
SOURCES = {
    "astronaut": ("astronaut.png", "public domain (NASA)", (320, 20)),
    "chelsea": ("chelsea.png", "CC0 (photographer Stefan van der Walt)", (259, 60)),
    "coffee": ("coffee.png", "CC0 (photographer Rachel Michetti)", (408, 120)),
    "rocket": ("rocket.jpg", "public domain (SpaceX)", (448, 150)),
}
TILE_W, TILE_H, GAP = 192, 144, 8
out = "assets/images"
for d in ("train", "test"):
    shutil.rmtree(os.path.join(out, d), ignore_errors=True)
    os.makedirs(os.path.join(out, d))
with zipfile.ZipFile(wheel) as z:
    for name, (member, licence, (tx, ty)) in SOURCES.items():
        raw = z.read(f"skimage/data/{member}")
        img = Image.open(io.BytesIO(raw)).convert("RGB")
        w, h = img.size
        assert tx + TILE_W == w or tx + TILE_W <= w, (name, w)
        # Test tile from the right-hand strip; training region = everything left of the strip (disjoint).
        img.crop((tx, ty, tx + TILE_W, ty + TILE_H)).save(f"{out}/test/{name}.png", optimize=True)
        img.crop((0, 0, tx - GAP, h)).save(f"{out}/train/{name}.jpg", quality=95)
        if name == "chelsea":
            # Phase 1 trains on every pixel of every scale: a small seed (eye and fur at native resolution,
            # as in the test scenes) keeps the CPU demo short.
            img.crop((107, 73, 187, 153)).save(f"{out}/seed.png", optimize=True)
        print(f"{name}: {member} {w}x{h} sha256 {hashlib.sha256(raw).hexdigest()[:16]}... ({licence})")
EOF
echo "wrote assets/images/{seed.png,train/,test/}"
