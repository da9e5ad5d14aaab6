#!/usr/bin/env bash
# Training throughput (patches/s) of each restoration net x loss: one short epoch each
# (`BATCHES` batches after one warm-up batch is not separated: the first batch is included).
# Usage: bash scripts/trainer-throughput.sh [DEVICE] [LOSSES]   (from the repository root)
# Needs ../shared/datasets (CSet14 for training patches, CSet5 for validation).
set -euo pipefail
DEVICE=${1:-cpu}
LOSSES=${2:-l2,l1,mdf}
BATCHES=${BATCHES:-4}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/debug/jndlab-train}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
echo "| net | loss | patch | batch | patches/s |"
echo "|---|---|---|---|---|"
for net in edsr srresnet dncnn; do
  case $net in
    dncnn) cfg=trainer/configs/dncnn_denoise.toml; patch=40; batch=8; mdf=mdf:denoising ;;
    *) cfg=trainer/configs/${net}_sisr.toml; patch=96; batch=4; mdf=mdf:sisr ;;
  esac
  for loss in ${LOSSES//,/ }; do
    [ "$loss" = mdf ] && loss=$mdf
    line=$("$BIN" --log warn fit --config "$cfg" --device "$DEVICE" \
      --set name="tp-$net-${loss//[:*+]/_}" --set run.out="\"$OUT\"" --set loss="\"$loss\"" \
      --set data.train='"../shared/datasets/CSet14"' --set data.val='"../shared/datasets/CSet5"' \
      --set data.prescale=1.0 --set data.patch=$patch --set data.batch=$batch \
      --set data.batches_per_epoch="$BATCHES" --set data.val_crop=64 --set run.epochs=1 | tail -1)
    pps=$(echo "$line" | sed -E 's/.*, ([0-9.]+) patches\/s/\1/')
    echo "| $net | $loss | $patch | $batch | $pps |"
  done
done
