#!/usr/bin/env bash
# make demo: the main job on an embedded default. A random `tiny` Llama-3.2 checkpoint is
# evaluated on 50 Office test users, trained with BEAR on 2 048 rows of the committed Office
# training split (recipes/tiny-demo.yaml: every weight, since the weights are random; the latest
# 100 rows held out for validation), its validation-selected model is evaluated on the same
# users and recommends items for one history, and its training curves are drawn.
set -euo pipefail
BEAR=${BEAR:-bin/bear}
OUT=${1:-demo-out}
DATA=testdata/office
rm -rf "$OUT"
mkdir -p "$OUT"
common=(--data "$DATA" --limit 50 --constrain before --cache-dir "$OUT/cache" --no-progress)

"$BEAR" init --preset tiny --seed 42 --out "$OUT/tiny"
echo "== untrained model, 50 test users"
"$BEAR" eval --model "$OUT/tiny" --out "$OUT/eval-untrained" "${common[@]}" | tee "$OUT/untrained.txt"
echo "== training: recipes/tiny-demo.yaml (BEAR, tau 1, xi 2.75, lambda 0.25; every weight; 64 steps of 32 sequences)"
"$BEAR" train --config recipes/tiny-demo.yaml --model "$OUT/tiny" --out "$OUT/run" --cache-dir "$OUT/cache"
echo "== trained model (best/: the epoch validation chose), the same 50 test users"
"$BEAR" eval --model "$OUT/run/best" --out "$OUT/eval-trained" "${common[@]}" | tee "$OUT/trained.txt"
echo "== its top 5 items after two Office purchases"
"$BEAR" recommend --model "$OUT/run/best" --data "$DATA" --top 5 --cache-dir "$OUT/cache" --no-progress \
	--history "HP 12C Financial Calculator" --history "Texas Instruments TI-83 Graphing Calculator"
"$BEAR" plot --log "$OUT/run/train.jsonl" --out "$OUT/curves.png" --title "bear demo: BEAR on Office, tiny model"

ndcg() { grep -o 'NDCG@10 [0-9.]*' "$1" | head -1 | cut -d' ' -f2; }
before=$(ndcg "$OUT/untrained.txt")
after=$(ndcg "$OUT/trained.txt")
echo
echo "NDCG@10 on 50 Office test users: untrained $before, trained $after"
echo "(the model was trained from random weights for a few minutes: low absolute numbers are expected)"
echo "curves: $OUT/curves.png, log: $OUT/run/train.jsonl, TensorBoard: tensorboard --logdir $OUT"
if ! awk -v a="$after" -v b="$before" 'BEGIN { exit !(a > b) }'; then
	echo "demo: training did not improve NDCG@10" >&2
	exit 1
fi
