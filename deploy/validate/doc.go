// Package validate checks deploy/ without a cluster: the Kubernetes manifests, the Slurm scripts
// and the Dockerfile are examples that nothing else runs, so a renamed bear flag, a shard count
// changed in one place only or a typo in a manifest field would otherwise surface only when
// someone submits a job. It has no code of its own, only tests, and is a module of its own so
// that bear's go.mod does not take on k8s.io/api. `make test-deploy` runs it.
//
// What the tests check, and why:
//
//   - Every YAML document under deploy/kubernetes decodes strictly (duplicate keys, unknown or
//     miscased fields and wrong types are errors, as with the API server's strict field
//     validation) into its Go type: batch/v1 Job and v1 PersistentVolumeClaim from k8s.io/api, and
//     the MPI Operator's kubeflow.org/v2beta1 MPIJob from a struct written here after the
//     operator's published API (its module is not on the Go module proxy). A kind without a type
//     here fails.
//   - Sharded evaluation: the Indexed Job has completions == parallelism == the n of --shard i/n;
//     its pod script runs for every index with a stand-in bear, which shows that each index
//     evaluates its own shard into its own folder; the merge Job names exactly those folders.
//   - Training: mpirun -np equals Worker replicas × slotsPerWorker, every worker has one GPU per
//     slot and the launcher none, --batch/--norm-group gives every rank at least one group, and
//     mpirun passes ONNXRUNTIME_SHARED_LIBRARY_PATH and BEAR_TOKENIZER on (ranks started over ssh
//     do not see the image's ENV) without pinning a rank to one core.
//   - Every path bear reads or writes is on a mounted claim from pvc.yaml, where bear runs (the
//     workers, for the MPIJob), writable for --out; the evaluation reads the adapter the training
//     writes, of the same model and data; all pods use one image.
//   - Every bear command line, in the manifests and as the Slurm scripts actually run it, names a
//     real subcommand and real flags with well-typed values and its required flags, checked
//     against `bear CMD -h` of a bear built from this checkout ($VALIDATE_BEAR overrides it).
//   - The Slurm scripts pass bash -n and run with stand-in sbatch, srun and bear: shard i of n in
//     array task i for arrays of several sizes, a refusal for arrays with gaps, the merge as an
//     afterok dependency over exactly the shards; training through srun --mpi=pmix with as many
//     norm groups as ranks, resuming a run folder that holds a checkpoint.
//   - The Dockerfile: COPY sources exist in the build context and survive its .dockerignore, or
//     come from an earlier stage and are files a make target writes; the make targets exist; the
//     runtime stage holds bear, bear-mpi and the files the two variables name; every stage is on
//     the same Debian release, since bear-mpi links the builder's libmpi.
//
// What they cannot check: that a cluster accepts the manifests (admission, quotas, the storage
// class, the operator's version) or that the image builds; deploy/README.md says what was run.
package validate
