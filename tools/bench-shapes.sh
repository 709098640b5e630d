#!/usr/bin/env bash
# make bench-shapes: the real shapes' memory and speed on this machine (issue: real shapes).
# For each shape, one optimizer step of BEAR with LoRA r 8 on q_proj,v_proj (bear bench train:
# peak PSS and RSS, prepare time, step time, bytes bound to ONNX Runtime) under both policies,
# on a random bf16 checkpoint in the Llama-3.2 layout (bear init --weights), and bear eval at
# the 1B shape on 4 Office test users. Prints a Markdown table; the JSON lines stay in
# .cache/bench/shapes/results.jsonl.
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

train() { # preset policy batch
	local m
	m=$(model "$1")
	local out rc=0
	out=$("$BEAR" bench train --model "$m" --data testdata/office --loss bear --lora-r 8 --lora-targets q_proj,v_proj \
		--batch "$3" --norm-group "$3" --micro-batch "$3" --steps 1 --threads "$THREADS" --policy "$2" \
		--cache-dir "$DIR/cache" 2>>"$DIR/stderr.log") || rc=$?
	if [ "$rc" != 0 ]; then # a shape that does not fit is a row of the table, not the end of it
		out="{\"batch\": $3, \"policy\": \"$2\", \"failed\": \"exit $rc\"}"
	fi
	/usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[2]); d["preset"]=sys.argv[1]; print(json.dumps(d))' "$1" "$out" >>"$results"
}

shapes=(small llama-3.2-1b)
if [ "${SHAPES_3B:-1}" = 1 ]; then
	shapes+=(llama-3.2-3b)
fi
for preset in "${shapes[@]}"; do
	batch=1
	[ "$preset" = small ] && batch=16
	for policy in stash recompute; do
		echo "bench-shapes: $preset, --policy $policy" >&2
		train "$preset" "$policy" "$batch"
	done
done

echo "bench-shapes: bear eval, llama-3.2-1b, 4 users" >&2
m=$(model llama-3.2-1b)
rm -rf "$DIR/eval-1b"
/usr/bin/time -f '%M' -o "$DIR/eval-1b.rss" "$BEAR" eval --model "$m" --data testdata/office --limit 4 --threads "$THREADS" \
	--constrain before --cache-dir "$DIR/cache" --out "$DIR/eval-1b" --no-progress >"$DIR/eval-1b.out" 2>>"$DIR/stderr.log"

/usr/bin/python3 - "$results" "$DIR/eval-1b/metrics.json" "$DIR/eval-1b.rss" "${shapes[*]}" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| shape | policy | sequences × tokens | peak PSS (GiB) | peak RSS (GiB) | prepare (s) | step (s) | tokens/s | bytes to/from ORT per step (MiB) |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    if "failed" in r:
        print(f"| {r['preset']} | {r['policy']} | {r['batch']} × — | failed ({r['failed']}{': killed, out of memory?' if r['failed'] == 'exit 137' else ''}) | | | | | |")
        continue
    print(f"| {r['preset']} | {r['policy']} | {r['batch']} × {r['tokens'] / r['batch']:.0f} | {r['peak_pss_mb'] / 1024:.2f} | "
          f"{r['peak_rss_mb'] / 1024:.2f} | {r['prepare_s']:.1f} | {r['step_ms'] / 1000:.2f} | {r['tokens_per_s']:.0f} | {r['ort_io_mb']:.1f} |")
if "llama-3.2-3b" not in sys.argv[4]:
    print("| llama-3.2-3b | both | 1 × — | not run (SHAPES_3B=0) | | | | | |")
t = json.load(open(sys.argv[2]))["timing"]
rss = int(open(sys.argv[3]).read().split()[-1]) / 1048576
print()
print(f"bear eval, llama-3.2-1b, 4 Office users, 10 beams, KV cache: {t['users_per_second']:.3f} users/s, peak RSS {rss:.2f} GiB")
PY
