# make fuzz [FUZZTIME=60s] [FUZZ=regexp]: every Go fuzz target of the project for a bounded time
# (tools/fuzz.sh); not part of `make test`, which replays the seed corpora and every crasher kept
# under testdata/fuzz/.
.PHONY: fuzz

fuzz: deps
	tools/fuzz.sh
