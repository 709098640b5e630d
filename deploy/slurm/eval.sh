#!/bin/bash
# Submits the sharded evaluation (eval.sbatch, a job array) and its merge (eval-merge.sbatch),
# which starts only if every shard succeeded. Extra arguments go to the array's sbatch:
#
#   MODEL=... ADAPTER=/shared/runs/office-bear/final DATA=... OUT=/shared/eval/office-bear \
#     deploy/slurm/eval.sh --array=0-7
#
# Run it from the repository root after `make deps build` (bin/bear), or set BEAR_BIN. sbatch
# passes the environment (MODEL, ADAPTER, DATA, OUT, BEAR_BIN) on to both jobs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

: "${MODEL:?set MODEL}" "${ADAPTER:?set ADAPTER}" "${DATA:?set DATA}" "${OUT:?set OUT}"
shards=$(sbatch --parsable "$@" "$here/eval.sbatch")
shards=${shards%%;*} # --parsable prints "jobid[;cluster]"
merge=$(sbatch --parsable --dependency="afterok:$shards" "$here/eval-merge.sbatch")
echo "shards: job $shards; merge: job ${merge%%;*}, which starts once every shard has succeeded"
