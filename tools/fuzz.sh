#!/usr/bin/env bash
# Runs every Go fuzz target of the project (each `func FuzzXxx(f *testing.F)` in a *_test.go) for
# FUZZTIME (default 60s) and prints a table: target, package, executions, new corpus entries,
# result. A crasher is written by Go under the package's testdata/fuzz/FuzzXxx/, where `go test`
# (and so `make test`) replays it from then on; the script goes on with the other targets and
# exits non-zero at the end if any failed. FUZZ=regexp limits the targets.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-60s}
filter=${FUZZ:-.}
logdir=.cache/fuzz
mkdir -p "$logdir"
summary=$logdir/summary.tsv
printf 'target\tpackage\texecs\tnew_interesting\tresult\n' >"$summary"
failed=0
while IFS=: read -r file name; do
	[[ $name =~ $filter ]] || continue
	pkg=./$(dirname "$file")
	log=$logdir/$name.log
	echo "fuzz $name ($pkg) for $fuzztime" >&2
	result=ok
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 5s "$pkg" >"$log" 2>&1; then
		result="FAILED (see $log)"
		failed=1
	fi
	# Go prints "fuzz: elapsed: 60s, execs: 123456 (2057/sec), new interesting: 3 (total: 40)".
	last=$(grep -E 'execs: [0-9]+' "$log" | tail -1 || true)
	execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
	newi=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
	printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$pkg" "${execs:-?}" "${newi:-?}" "$result" >>"$summary"
done < <(grep -rhoE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+' --with-filename . |
	sed -E 's/^\.\///; s/:func /:/' | grep -v '^\.cache' | sort)
column -t -s $'\t' "$summary"
exit $failed
