#!/usr/bin/env bash
# Idempotent: creates the project-local venv (.venv) with PyPI torch==2.11.0 (what tch 0.24 expects)
# when it is missing or holds another torch version. ~1 min and 4.6 GB on a fresh machine.
# Extras are pinned together with torch: an unpinned torchvision silently upgrades torch.
# Optional: SETUP_TORCH_EXTRAS=1 also installs the Python packages used only to regenerate test data
# and run the side-by-side benchmark (piq, lpips, torchvision).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${JNDLAB_VENV:-$ROOT/.venv}"
TORCH_VERSION="2.11.0"
TORCHVISION_VERSION="0.26.0" # the torchvision built for torch 2.11 (extras only)
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup-torch: creating venv $VENV" >&2
  "$PY" -m venv "$VENV"
fi
have="$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true)"
if [ "$have" != "$TORCH_VERSION" ]; then
  echo "setup-torch: installing torch==$TORCH_VERSION into $VENV (found '${have:-none}')" >&2
  "$VENV/bin/pip" install --disable-pip-version-check -q "torch==$TORCH_VERSION"
fi
# numpy: torch warns without it at import; tiny.
"$VENV/bin/python" -c 'import numpy' 2>/dev/null ||
  "$VENV/bin/pip" install --disable-pip-version-check -q numpy
if [ "${SETUP_TORCH_EXTRAS:-0}" = "1" ]; then
  "$VENV/bin/python" -c "import piq, lpips, torchvision; assert torchvision.__version__.startswith('$TORCHVISION_VERSION')" 2>/dev/null ||
    "$VENV/bin/pip" install --disable-pip-version-check -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" piq lpips
fi
"$VENV/bin/python" -c 'import torch, os; print("setup-torch: torch", torch.__version__, "at", os.path.dirname(torch.__file__))' >&2
