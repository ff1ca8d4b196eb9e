#!/usr/bin/env bash
# Regenerates the README/docs figures from the real MNE "sample" data in ../shared/data
# (the 'Right Auditory' evoked, its noise covariance, and a forward model built from the
# sample subject's 3-layer BEM on the small cortical source space), and from the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
S=../shared/data/sample
OUT=$(mktemp -d)
PATH="$PWD/.venv/bin:$PATH"
meeg-inverse localize "$S/MEG/test-ave.fif.gz" --condition "Right Auditory" \
    --noise-cov "$S/MEG/test-cov.fif" --subject sample --subjects-dir "$S/subjects" \
    --trans "$S/MEG/sample_audvis_trunc-trans.fif" --src "$S/MEG/sample-small-src.fif.gz" \
    --bem "$S/subjects/sample/bem/sample-320-320-320-bem-sol.fif" \
    --tmin 0.05 --tmax 0.15 --out "$OUT/sample" --quiet
meeg-inverse demo --out "$OUT/demo" --quiet
for name in source_map time_courses fit_residual; do
    cp "$OUT/sample/$name.png" "docs/figures/sample_right_auditory_$name.png"
    cp "$OUT/demo/$name.png" "docs/figures/demo_$name.png"
done
# The whole 238-s EEGLAB recording, window by window, on the template head.
E=../shared/data/eeglab
meeg-inverse localize "$E/test_raw.set" --continuous --montage "$E/test_chans.locs" \
    --montage-match order --noise-segment 0,30 --l-freq 1 --h-freq 30 \
    --out "$OUT/eeglab_continuous" --quiet
for name in timeline peak_map; do
    cp "$OUT/eeglab_continuous/$name.png" "docs/figures/eeglab_continuous_$name.png"
done
rm -rf "$OUT"
