# make experiment [OUT=experiment-out] [SEEDS="1 2 3"] [USERS=100] [JOBS=2]: LML, MSL and BEAR
# from one shared base model, several seeds, pruning analysis, then bear report
# (experiment/run.sh, experiment/README.md). Not part of make test: about an hour on 2 cores.
.PHONY: experiment

experiment: build
	experiment/run.sh
