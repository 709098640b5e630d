#!/usr/bin/env bash
# make bench-shapes: the real shapes' memory and speed on this machine (issue: real shapes).
# For each shape, one optimizer step of BEAR with LoRA r 8 on q_proj,v_proj (bear bench train:
# peak RSS and PSS, prepare time, step time, bytes bound to ONNX Runtime) under both policies,
# on a random bf16 checkpoint in the Llama-3.2 layout (bear init --weights), with the weights
# mapped at their stored precision (the default) and, at small and 1B, converted to float32
# (the earlier default) for comparison; and bear eval at the 1B shape on 4 Office test users
# with the weights widened to float32 in memory (the decoder's default), mapped, and converted.
# Prints a Markdown table; the JSON lines stay in .cache/bench/shapes/results.jsonl.
#
#   small          16 Office sequences in one micro-batch (the training default's norm group)
#   llama-3.2-1b   one micro-batch of one Office sequence (the first of the epoch)
#   llama-3.2-3b   the same (SHAPES_3B=0 leaves it out: its runs take most of the time)
set -euo pipefail
cd "$(dirname "$0")/.."
BEAR=${BEAR:-bin/bear}
THREADS=${THREADS:-2}
DIR=.cache/bench/shapes
mkdir -p "$DIR"
results=$DIR/results.jsonl
: >"$results"

model() { # preset -> a bf16 checkpoint of that shape, written once
	local dir=$DIR/$1
	if [ ! -f "$dir/config.json" ] || ! ls "$dir"/*.safetensors >/dev/null 2>&1; then
		rm -rf "$dir"
		"$BEAR" init --preset "$1" --weights --seed 1 --out "$dir" >&2
	fi
	echo "$dir"
}

train() { # preset policy batch weights steps
	local m
	m=$(model "$1")
	local out rc=0
	out=$("$BEAR" bench train --model "$m" --data testdata/office --loss bear --lora-r 8 --lora-targets q_proj,v_proj \
		--batch "$3" --norm-group "$3" --micro-batch "$3" --steps "$5" --threads "$THREADS" --policy "$2" \
		--weights "$4" --cache-dir "$DIR/cache" 2>>"$DIR/stderr.log") || rc=$?
	if [ "$rc" != 0 ]; then # a shape that does not fit is a row of the table, not the end of it
		out="{\"batch\": $3, \"policy\": \"$2\", \"failed\": \"exit $rc\"}"
	fi
	/usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[2]); d["preset"]=sys.argv[1]; d["weights"]=sys.argv[3]; print(json.dumps(d))' "$1" "$out" "$4" >>"$results"
}

shapes=(small llama-3.2-1b)
if [ "${SHAPES_3B:-1}" = 1 ]; then
	shapes+=(llama-3.2-3b)
fi
for preset in "${shapes[@]}"; do
	batch=1 steps=1
	[ "$preset" = small ] && batch=16 steps=3 # a median of 3 steps: small steps are quick and noisy
	# The float32 conversion (the weights as earlier versions held them) runs beside the mapped
	# bf16 weights at small and 1B, in this run, for the memory and speed ratios.
	sources=(mapped converted)
	[ "$preset" = llama-3.2-3b ] && sources=(mapped)
	for policy in stash recompute; do
		for weights in "${sources[@]}"; do
			echo "bench-shapes: $preset, --policy $policy --weights $weights" >&2
			train "$preset" "$policy" "$batch" "$weights" "$steps"
		done
	done
done

m=$(model llama-3.2-1b)
for weights in widened mapped converted; do
	echo "bench-shapes: bear eval, llama-3.2-1b, 4 users, --weights $weights" >&2
	rm -rf "$DIR/eval-1b-$weights"
	/usr/bin/time -f '%M' -o "$DIR/eval-1b-$weights.rss" "$BEAR" eval --model "$m" --data testdata/office --limit 4 \
		--threads "$THREADS" --constrain before --weights "$weights" --cache-dir "$DIR/cache" --out "$DIR/eval-1b-$weights" \
		--no-progress >"$DIR/eval-1b-$weights.out" 2>>"$DIR/stderr.log"
done

/usr/bin/python3 - "$results" "$DIR" "${shapes[*]}" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| shape | policy | weights | sequences × tokens | peak RSS (GiB) | peak PSS (GiB) | prepare (s) | step (s) | tokens/s | bytes to/from ORT per step (MiB) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    if "failed" in r:
        print(f"| {r['preset']} | {r['policy']} | {r['weights']} | {r['batch']} × — | failed ({r['failed']}{': killed, out of memory?' if r['failed'] == 'exit 137' else ''}) | | | | | |")
        continue
    print(f"| {r['preset']} | {r['policy']} | {r['weights']} | {r['batch']} × {r['tokens'] / r['batch']:.0f} | {r['peak_rss_mb'] / 1024:.2f} | "
          f"{r['peak_pss_mb'] / 1024:.2f} | {r['prepare_s']:.1f} | {r['step_ms'] / 1000:.2f} | {r['tokens_per_s']:.0f} | {r['ort_io_mb']:.1f} |")
if "llama-3.2-3b" not in sys.argv[3]:
    print("| llama-3.2-3b | both | mapped | 1 × — | not run (SHAPES_3B=0) | | | | | |")
print()
ok = {(r["preset"], r["policy"], r["weights"]): r for r in rows if "failed" not in r}
for (preset, policy, weights), r in ok.items():
    ref = ok.get((preset, policy, "converted"))
    if weights == "mapped" and ref:
        print(f"{preset}, {policy}: mapped bf16 / float32 conversion: peak RSS {r['peak_rss_mb'] / ref['peak_rss_mb']:.2f}, "
              f"step time {r['step_ms'] / ref['step_ms']:.2f}")
print()
for weights in ("widened", "mapped", "converted"):
    t = json.load(open(f"{sys.argv[2]}/eval-1b-{weights}/metrics.json"))["timing"]
    rss = int(open(f"{sys.argv[2]}/eval-1b-{weights}.rss").read().split()[-1]) / 1048576
    print(f"bear eval, llama-3.2-1b, --weights {weights}, 4 Office users, 10 beams, KV cache: "
          f"{t['users_per_second']:.3f} users/s, peak RSS {rss:.2f} GiB")
PY
