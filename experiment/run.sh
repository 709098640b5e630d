#!/usr/bin/env bash
# make experiment: LML, MSL and BEAR (two settings) fine-tuned from one shared base model with
# several seeds, each evaluated on the same Office test users with the pruning analysis, then
# `bear report`. See experiment/README.md for why the setting is what it is.
#
# Every job runs with --threads 1 so that its numbers do not depend on thread scheduling
# (rerunning gives the same numbers); JOBS jobs run side by side (default: one per core).
# Finished steps are skipped on a rerun into the same OUT (each writes its folder last), so an
# interrupted experiment continues where it stopped; FRESH=1 starts over.
set -euo pipefail
BEAR=${BEAR:-bin/bear}
OUT=${OUT:-experiment-out}
SEEDS=${SEEDS:-1 2 3}
USERS=${USERS:-100}          # first USERS rows of Office's test_5000.csv (1 925 in all)
PRE_ROWS=${PRE_ROWS:-6144}   # rows of the domain "pretraining" stage (LML, every weight)
TUNE_ROWS=${TUNE_ROWS:-2048} # rows of each LoRA fine-tune
JOBS=${JOBS:-$(nproc)}
LAMBDA2=${LAMBDA2:-1}        # the second BEAR lambda beside the official Toy setting's 0.25
[[ ${FRESH:-0} == 1 ]] && rm -rf "$OUT"
mkdir -p "$OUT"
# OUT stays as given (relative to the checkout by default), so the report names portable paths.

# The data: the committed Office catalogue and training split, and the whole official test split.
data=$OUT/data/Office
mkdir -p "$data"
cp testdata/office/id2name4Rec.json testdata/office/train_10000.csv "$data/"
cp experiment/office_test_5000.csv "$data/test_5000.csv"
cache=$OUT/cache
log() { echo "== $(date +%H:%M:%S) $*" >&2; }

# Stage 1, shared by every run: a random `tiny` Llama-3.2 (hidden 64, 2 layers, the real
# 128 256-token vocabulary) trained on every weight with LML on the Office training prompts.
if [[ ! -d $OUT/base/final ]]; then
	log "base: init + LML on $PRE_ROWS rows, every weight"
	rm -rf "$OUT/base" "$OUT/init"
	"$BEAR" init --preset tiny --seed 42 --out "$OUT/init"
	"$BEAR" train --model "$OUT/init" --data "$data" --loss lml --train full --lora-targets none \
		--samples "$PRE_ROWS" --epochs 1 --batch 32 --norm-group 16 --lr 3e-3 --warmup 8 --seed 42 \
		--threads 1 --cache-dir "$cache" --no-progress --out "$OUT/base"
fi
base=$OUT/base/final

# Stage 2: LoRA (the official r 8, alpha 16, dropout 0.05 on q_proj, v_proj) with each loss.
settings=(
	"lml|--loss lml"
	"msl|--loss msl"
	"bear-l0.25|--loss bear --tau 1 --xi 2.75 --lambda 0.25"
	"bear-l$LAMBDA2|--loss bear --tau 1 --xi 2.75 --lambda $LAMBDA2"
)
eval_flags=(--data "$data" --limit "$USERS" --beams 10 --constrain before --pruning --exact-length-penalty 0 --threads 1
	--cache-dir "$cache" --no-progress)

# One fine-tune and its evaluation; run in the background by the job pool below.
run_one() {
	local name=$1 seed=$2 flags=$3 dir=$OUT/runs/$1-seed$2 logs=$OUT/logs/$1-seed$2
	if [[ ! -f $dir/eval/metrics.json ]]; then
		if [[ ! -d $dir/final ]]; then
			rm -rf "$dir"
			# shellcheck disable=SC2086 # flags is a list of words
			"$BEAR" train --model "$base" --data "$data" $flags --samples "$TUNE_ROWS" --epochs 1 \
				--batch 32 --norm-group 16 --lr 2e-3 --warmup 4 --seed "$seed" --threads 1 \
				--cache-dir "$cache" --no-progress --out "$dir" >"$logs.train.log" 2>&1 ||
				{ tail -5 "$logs.train.log" >&2; return 1; }
		fi
		# shellcheck disable=SC2086 # EVAL_FLAGS is a list of words without spaces inside
		"$BEAR" eval --model "$base" --adapter "$dir/final" --out "$dir/eval" $EVAL_FLAGS \
			>"$logs.eval.log" 2>&1 || { tail -5 "$logs.eval.log" >&2; return 1; }
	fi
	log "done $name seed $seed"
}

mkdir -p "$OUT/runs" "$OUT/logs"
log "fine-tunes: ${#settings[@]} settings x seeds ($SEEDS), $JOBS at a time"
export BEAR OUT TUNE_ROWS base data cache
export -f run_one log
export EVAL_FLAGS="${eval_flags[*]}"
for seed in $SEEDS; do
	for s in "${settings[@]}"; do
		printf '%s\t%s\t%s\n' "${s%%|*}" "$seed" "${s#*|}"
	done
done | xargs -P "$JOBS" -L 1 -d '\n' bash -c 'set -euo pipefail; IFS=$'"'"'\t'"'"' read -r n sd fl <<<"$1"; run_one "$n" "$sd" "$fl"' _

# The base model itself, evaluated the same way (a reference row of the report).
if [[ ! -f $OUT/base-eval/metrics.json ]]; then
	log "base model evaluation"
	"$BEAR" eval --model "$base" --out "$OUT/base-eval" "${eval_flags[@]}" >"$OUT/logs/base-eval.log" 2>&1
fi

log "report"
"$BEAR" report "$OUT"/runs/*-seed* "$OUT/base-eval" --notes experiment/notes.md --out "$OUT/report" --force
log "wrote $OUT/report/report.md"
