#!/usr/bin/env bash
# Rebuild docs/sweep.png, the README's figure (the paper's Figure 2 on a small case, about 15 minutes on 2 cores):
# a one-block attention + Mamba hybrid on MAD selective copying, fine-tuned at 11 fixed mixture weights,
# with the weight that search found and the weight programmed from MAD proxy searches marked.
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/readme-figure
rm -rf "$out"
# 1. proxy searches on two MAD tasks -> mad-results.json
hybridc mad specs/mad-sweep.yaml --tasks in-context-recall,selective-copying --steps 300 --lrs 3e-3 -o "$out/mad" -q
# 2. the programmed mixture from them -> mad-sweep.programmed.yaml + .alphas.json
hybridc program specs/mad-sweep.yaml --from "$out/mad/mad-results.json" -o "$out/mad-sweep.programmed.yaml"
# 3. search on the target task itself
hybridc train specs/mad-sweep.yaml -o "$out/search" -q
# 4. the grid of fixed mixtures, both marked
hybridc sweep specs/mad-sweep.yaml --alphas 0:1:11 --search "$out/search" \
    --programmed "$out/mad-sweep.programmed.alphas.json" -o "$out/sweep" -q
cp "$out/sweep/sweep.png" docs/sweep.png
cp "$out/sweep/sweep.csv" docs/sweep.csv
