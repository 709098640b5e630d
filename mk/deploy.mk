# deploy/: the Dockerfile, Kubernetes manifests and Slurm scripts for multi-machine runs.
# deploy/validate is its own Go module (k8s.io/api and friends stay out of bear's go.mod): it
# decodes the manifests strictly into the Kubernetes types, runs the scripts with stand-ins for
# bear, sbatch and srun, and checks every bear command line against the flags of ./tools/bear.

.PHONY: test-deploy
test-deploy:
	cd deploy/validate && $(GO) vet ./... && $(GO) test -count=1 ./...
