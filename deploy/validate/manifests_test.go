package validate

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// repoRoot is the bear checkout this module sits in (deploy/validate).
var repoRoot, _ = filepath.Abs(filepath.Join("..", ".."))

var kubeDir = filepath.Join(repoRoot, "deploy", "kubernetes")

// manifest is one YAML document under deploy/kubernetes, decoded into its Kubernetes type.
type manifest struct {
	where string // file and document number
	obj   any    // *batchv1.Job, *corev1.PersistentVolumeClaim or *mpiJob
}

// newObject returns the Go type for an apiVersion and kind; the test knows no others, so that a
// manifest of another kind gets a type here before it ships.
func newObject(tm metav1.TypeMeta) (any, error) {
	switch tm.APIVersion + " " + tm.Kind {
	case "batch/v1 Job":
		return &batchv1.Job{}, nil
	case "v1 PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}, nil
	case "kubeflow.org/v2beta1 MPIJob":
		return &mpiJob{}, nil
	}
	return nil, fmt.Errorf("apiVersion %q kind %q: no type for it in deploy/validate", tm.APIVersion, tm.Kind)
}

// decodeStrict decodes one YAML document as the API server's strict field validation does:
// duplicate keys, unknown fields and fields in the wrong case are errors.
func decodeStrict(doc []byte) (any, error) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, err
	}
	var tm metav1.TypeMeta
	if err := sjson.UnmarshalCaseSensitivePreserveInts(j, &tm); err != nil {
		return nil, err
	}
	obj, err := newObject(tm)
	if err != nil {
		return nil, err
	}
	strict, err := sjson.UnmarshalStrict(j, obj)
	if err == nil && len(strict) > 0 {
		err = fmt.Errorf("%d strict decoding errors, first: %w", len(strict), strict[0])
	}
	return obj, err
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// loadManifests decodes every document of every .yaml file under deploy/kubernetes.
func loadManifests(t *testing.T) []manifest {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(kubeDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (%v)", kubeDir, err)
	}
	var out []manifest
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSeparator.Split(string(b), -1) {
			where := fmt.Sprintf("%s#%d", filepath.Base(f), i)
			if j, err := yaml.YAMLToJSON([]byte(doc)); err == nil && string(j) == "null" {
				continue // comments only
			}
			obj, err := decodeStrict([]byte(doc))
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			out = append(out, manifest{where, obj})
		}
	}
	return out
}

// manifestsOf returns the decoded objects of type T.
func manifestsOf[T any](ms []manifest) (objs []T, where []string) {
	for _, m := range ms {
		if o, ok := m.obj.(T); ok {
			objs, where = append(objs, o), append(where, m.where)
		}
	}
	return objs, where
}

// one returns the only object of type T that matches, failing the test otherwise.
func one[T any](t *testing.T, ms []manifest, what string, match func(T) bool) (T, string) {
	t.Helper()
	objs, where := manifestsOf[T](ms)
	var hits []int
	for i, o := range objs {
		if match(o) {
			hits = append(hits, i)
		}
	}
	if len(hits) != 1 {
		t.Fatalf("want exactly one %s among the manifests, found %d", what, len(hits))
	}
	return objs[hits[0]], where[hits[0]]
}

func indexedJob(j *batchv1.Job) bool {
	return j.Spec.CompletionMode != nil && *j.Spec.CompletionMode == batchv1.IndexedCompletion
}

func isMergeJob(j *batchv1.Job) bool {
	c := j.Spec.Template.Spec.Containers
	return len(c) > 0 && slices.Contains(c[0].Args, "--merge")
}

// onlyContainer is a pod's single container: every pod here runs one.
func onlyContainer(t *testing.T, where string, pod corev1.PodSpec) corev1.Container {
	t.Helper()
	if len(pod.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", where, len(pod.Containers))
	}
	return pod.Containers[0]
}

// argv is a container's command line. Only a shell expands variables here: Kubernetes' own
// $(VAR) expansion knows only the container's declared env, and reads like shell syntax.
func argv(t *testing.T, where string, c corev1.Container) []string {
	t.Helper()
	a := slices.Concat(c.Command, c.Args)
	if len(a) == 0 {
		t.Fatalf("%s: container %s has no command", where, c.Name)
	}
	if !isShell(a) {
		for _, s := range a {
			if strings.Contains(s, "$") {
				t.Errorf("%s: %q: a variable outside a shell (use sh -c)", where, s)
			}
		}
	}
	return a
}

// isShell reports whether a command line is `sh -c SCRIPT` (or bash).
func isShell(a []string) bool {
	return len(a) == 3 && (a[0] == "sh" || a[0] == "bash" || a[0] == "/bin/sh" || a[0] == "/bin/bash") && a[1] == "-c"
}

func TestManifestsDecodeStrictly(t *testing.T) {
	ms := loadManifests(t)
	jobs, _ := manifestsOf[*batchv1.Job](ms)
	mpi, _ := manifestsOf[*mpiJob](ms)
	pvcs, _ := manifestsOf[*corev1.PersistentVolumeClaim](ms)
	if len(jobs) != 2 || len(mpi) != 1 || len(pvcs) != 1 {
		t.Errorf("found %d Jobs, %d MPIJobs, %d PersistentVolumeClaims; want 2, 1, 1", len(jobs), len(mpi), len(pvcs))
	}
	names := map[string]string{}
	for _, m := range ms {
		meta := m.obj.(metav1.Object)
		key := fmt.Sprintf("%T/%s", m.obj, meta.GetName())
		if meta.GetName() == "" || names[key] != "" {
			t.Errorf("%s: name %q is empty or also in %s", m.where, meta.GetName(), names[key])
		}
		names[key] = m.where
	}
}

// The decoder must refuse what the API server refuses; each case breaks a valid Job once.
func TestDecodeStrictRefuses(t *testing.T) {
	const valid = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: x\nspec:\n  completions: 2\n" +
		"  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: c\n          image: i\n"
	if _, err := decodeStrict([]byte(valid)); err != nil {
		t.Fatalf("the valid Job: %v", err)
	}
	cases := map[string][2]string{ // name: {old, new}
		"unknown field":   {"completions: 2", "completion: 2"},
		"wrong case":      {"completions: 2", "Completions: 2"},
		"duplicate key":   {"completions: 2", "completions: 2\n  completions: 3"},
		"wrong type":      {"completions: 2", "completions: two"},
		"unknown kind":    {"kind: Job", "kind: CronJob"},
		"nested unknown":  {"image: i", "image: i\n          imagePullPolicy: Always\n          gpu: 1"},
		"misplaced field": {"restartPolicy: Never", "restartPolicy: Never\n      completions: 2"},
	}
	for name, c := range cases {
		doc := strings.Replace(valid, c[0], c[1], 1)
		if _, err := decodeStrict([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func TestMPIJobEnums(t *testing.T) {
	jobs, _ := manifestsOf[*mpiJob](loadManifests(t))
	for i, j := range jobs {
		s := j.Spec
		check := func(field, v string) {
			if v != "" && !slices.Contains(mpiEnums[field], v) {
				t.Errorf("MPIJob %d: %s %q, want one of %q", i, field, v, mpiEnums[field])
			}
		}
		if s.RunPolicy.CleanPodPolicy != nil {
			check("cleanPodPolicy", *s.RunPolicy.CleanPodPolicy)
		}
		check("launcherCreationPolicy", s.LauncherCreationPolicy)
		check("mpiImplementation", s.MPIImplementation)
		for role, r := range s.MPIReplicaSpecs {
			check("mpiReplicaSpecs", role)
			check("restartPolicy", r.RestartPolicy)
		}
	}
}

// The Indexed Job's pods must together evaluate every shard once, and the merge Job must name
// exactly the folders they write. The pods' script runs here for each index with a stand-in bear.
func TestEvalShardsCoverEveryIndex(t *testing.T) {
	ms := loadManifests(t)
	job, where := one(t, ms, "Indexed Job", indexedJob)
	n := int(ptrValue(job.Spec.Completions))
	if n < 1 || ptrValue(job.Spec.Parallelism) != int32(n) {
		t.Errorf("%s: completions %d, parallelism %d: want them equal and positive", where, n, ptrValue(job.Spec.Parallelism))
	}
	if job.Spec.BackoffLimitPerIndex != nil && job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("%s: backoffLimitPerIndex needs restartPolicy Never", where)
	}
	c := onlyContainer(t, where, job.Spec.Template.Spec)
	shards := runIndexed(t, where, c, n)
	var outs []string
	for i, inv := range shards {
		spec, p := checkBear(t, fmt.Sprintf("%s index %d", where, i), inv.argv)
		if spec.name != "eval" {
			t.Fatalf("%s index %d runs bear %s, want eval", where, i, spec.name)
		}
		if got, want := p.set["shard"], fmt.Sprintf("%d/%d", i, n); got != want {
			t.Errorf("%s index %d: --shard %q, want %q (n must equal completions)", where, i, got, want)
		}
		outs = append(outs, p.set["out"])
	}
	slices.Sort(outs)
	if distinct := slices.Compact(slices.Clone(outs)); len(distinct) != len(outs) {
		t.Errorf("%s: shards share an --out folder: %q", where, outs)
	}

	merge, mwhere := one(t, ms, "merge Job", isMergeJob)
	mc := onlyContainer(t, mwhere, merge.Spec.Template.Spec)
	spec, p := checkBear(t, mwhere, argv(t, mwhere, mc))
	dirs := slices.Sorted(slices.Values(p.positional))
	if spec.name != "eval" || !slices.Equal(dirs, outs) {
		t.Errorf("%s: merges %q, want exactly the shard folders %q", mwhere, dirs, outs)
	}
	if slices.Contains(outs, p.set["out"]) {
		t.Errorf("%s: --out %s is a shard folder", mwhere, p.set["out"])
	}
}

func ptrValue[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// invocation is one bear command line and where it came from.
type invocation struct {
	where string
	argv  []string
}

// runIndexed runs an Indexed Job's container script once per completion index, with the
// container's env, JOB_COMPLETION_INDEX and a stand-in bear, and returns each index's bear call.
func runIndexed(t *testing.T, where string, c corev1.Container, n int) []invocation {
	t.Helper()
	a := argv(t, where, c)
	if !isShell(a) {
		t.Fatalf("%s: the command is not sh -c SCRIPT: JOB_COMPLETION_INDEX needs a shell to expand it", where)
	}
	bin, log := fakeBin(t)
	var out []invocation
	for i := range n {
		env := fakeEnv(bin, log, "JOB_COMPLETION_INDEX="+strconv.Itoa(i))
		for _, e := range c.Env {
			env = append(env, e.Name+"="+e.Value)
		}
		before := len(readRecords(t, log))
		cmd := exec.Command(a[0], a[1:]...)
		cmd.Env = env
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s index %d: %v\n%s", where, i, err, b)
		}
		calls := readRecords(t, log)[before:]
		if len(calls) != 1 {
			t.Fatalf("%s index %d: %d bear calls, want 1", where, i, len(calls))
		}
		out = append(out, invocation{fmt.Sprintf("%s index %d", where, i), append([]string{"bear"}, calls[0].Args...)})
	}
	return out
}

// mpirunOptions are the mpirun options the launcher may use, with the values each one takes;
// another option fails the test until it is added here (it might take a value).
var mpirunOptions = map[string]int{
	"--allow-run-as-root": 0, "-np": 1, "-n": 1, "--np": 1, "-x": 1, "--bind-to": 1, "--map-by": 1,
	"--mca": 2, "-mca": 2, "--oversubscribe": 0, "--tag-output": 0, "--report-bindings": 0,
}

// mpirunLine is an mpirun command line: its options and the program it starts.
type mpirunLine struct {
	opts    map[string][]string // each option's values, in order of appearance
	program []string
}

func parseMpirun(a []string) (mpirunLine, error) {
	if len(a) == 0 || filepath.Base(a[0]) != "mpirun" {
		return mpirunLine{}, fmt.Errorf("%q does not start with mpirun", a)
	}
	l := mpirunLine{opts: map[string][]string{}}
	for i := 1; i < len(a); i++ {
		if !strings.HasPrefix(a[i], "-") {
			l.program = a[i:]
			return l, nil
		}
		n, ok := mpirunOptions[a[i]]
		if !ok || i+n >= len(a) {
			return l, fmt.Errorf("mpirun option %s: unknown to deploy/validate or missing its value", a[i])
		}
		l.opts[a[i]] = append(l.opts[a[i]], a[i+1:i+1+n]...)
		i += n
	}
	return l, fmt.Errorf("%q: mpirun starts no program", a)
}

// mpiLaunch returns the only MPIJob and its launcher's mpirun command line.
func mpiLaunch(t *testing.T, ms []manifest) (*mpiJob, string, mpirunLine) {
	t.Helper()
	job, where := one(t, ms, "MPIJob", func(*mpiJob) bool { return true })
	launcher := job.Spec.MPIReplicaSpecs["Launcher"]
	if launcher == nil {
		t.Fatalf("%s: no Launcher", where)
	}
	line, err := parseMpirun(argv(t, where, onlyContainer(t, where, launcher.Template.Spec)))
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	return job, where, line
}

// The MPIJob must start one rank per worker slot, each with one GPU of its own, and give the
// ranks what they cannot find themselves once started over ssh.
func TestMPIJobRanks(t *testing.T) {
	job, where, line := mpiLaunch(t, loadManifests(t))
	launcher, worker := job.Spec.MPIReplicaSpecs["Launcher"], job.Spec.MPIReplicaSpecs["Worker"]
	if worker == nil || ptrValue(launcher.Replicas) != 1 {
		t.Fatalf("%s: want a Launcher (1 replica) and Workers", where)
	}
	slots := int32(1) // the operator's default
	if job.Spec.SlotsPerWorker != nil {
		slots = *job.Spec.SlotsPerWorker
	}
	ranks := int(ptrValue(worker.Replicas) * slots)
	np := slices.Concat(line.opts["-np"], line.opts["-n"], line.opts["--np"])
	if len(np) != 1 || np[0] != strconv.Itoa(ranks) {
		t.Errorf("%s: mpirun -np %q, want %d (Worker replicas × slotsPerWorker)", where, np, ranks)
	}
	for _, v := range []string{"ONNXRUNTIME_SHARED_LIBRARY_PATH", "BEAR_TOKENIZER"} {
		if !slices.Contains(line.opts["-x"], v) {
			t.Errorf("%s: mpirun does not pass %s on (-x): ranks started over ssh lack the image's ENV", where, v)
		}
	}
	if got := line.opts["--bind-to"]; !slices.Equal(got, []string{"none"}) {
		t.Errorf("%s: --bind-to %q, want none (ONNX Runtime uses every core of the worker)", where, got)
	}
	spec, p := checkBear(t, where+" launcher", line.program)
	if spec.name != "train" {
		t.Fatalf("%s: the launcher runs bear %s, want train", where, spec.name)
	}
	if g := normGroups(t, where, spec, p); g < ranks {
		t.Errorf("%s: --batch/--norm-group = %d groups for %d ranks: bear needs at least one per rank", where, g, ranks)
	}
	gpus := func(c corev1.Container) int64 { q := c.Resources.Limits["nvidia.com/gpu"]; return q.Value() }
	if g := gpus(onlyContainer(t, where, worker.Template.Spec)); g != int64(slots) || p.set["device"] != "cuda" {
		t.Errorf("%s: workers have %d GPUs for %d slots with --device %q: want one GPU per rank, on cuda", where, g, slots, p.set["device"])
	}
	if g := gpus(onlyContainer(t, where, launcher.Template.Spec)); g != 0 {
		t.Errorf("%s: the launcher holds %d GPUs but runs no rank", where, g)
	}
}

// pathFlags name files that every pod of a run must see alike: they must be on a mounted
// PersistentVolumeClaim, never in a container's own file system.
var pathFlags = []string{"model", "data", "adapter", "out", "resume", "cache-dir"}

// Each bear call's folders must be on a volume mounted where bear runs (for the MPIJob: on the
// workers), writable for --out, from a claim that pvc.yaml defines.
func TestPathsOnSharedVolume(t *testing.T) {
	ms := loadManifests(t)
	claims := map[string]bool{}
	pvcs, _ := manifestsOf[*corev1.PersistentVolumeClaim](ms)
	for _, c := range pvcs {
		claims[c.Name] = true
	}
	for _, r := range bearRuns(t, ms) {
		_, p := checkBear(t, r.where, r.argv)
		paths := map[string]string{}
		for _, f := range pathFlags {
			if v, ok := p.set[f]; ok && v != "" {
				paths["--"+f] = v
			}
		}
		for i, v := range p.positional {
			paths[fmt.Sprintf("argument %d", i+1)] = v
		}
		for what, path := range paths {
			m, ok := mountOf(r.pod, r.container, path)
			switch {
			case !ok:
				t.Errorf("%s: %s %s is on no volume mount of container %s", r.where, what, path, r.container.Name)
			case !claims[m.claim]:
				t.Errorf("%s: %s %s is on volume %s, not on a claim from pvc.yaml", r.where, what, path, m.volume)
			case what == "--out" && m.readOnly:
				t.Errorf("%s: --out %s is on a read-only mount", r.where, path)
			}
		}
	}
}

// bearRun is a bear call with the pod and container it runs in.
type bearRun struct {
	invocation
	pod       corev1.PodSpec
	container corev1.Container
}

// bearRuns returns the bear calls of the manifests: the MPIJob's (whose ranks run on the
// workers), each index of the Indexed Job, and the merge Job.
func bearRuns(t *testing.T, ms []manifest) []bearRun {
	t.Helper()
	var runs []bearRun
	mj, where, line := mpiLaunch(t, ms)
	wpod := mj.Spec.MPIReplicaSpecs["Worker"].Template.Spec
	runs = append(runs, bearRun{invocation{where, line.program}, wpod, onlyContainer(t, where, wpod)})
	ij, where := one(t, ms, "Indexed Job", indexedJob)
	c := onlyContainer(t, where, ij.Spec.Template.Spec)
	for _, inv := range runIndexed(t, where, c, int(ptrValue(ij.Spec.Completions))) {
		runs = append(runs, bearRun{inv, ij.Spec.Template.Spec, c})
	}
	mjob, where := one(t, ms, "merge Job", isMergeJob)
	c = onlyContainer(t, where, mjob.Spec.Template.Spec)
	return append(runs, bearRun{invocation{where, argv(t, where, c)}, mjob.Spec.Template.Spec, c})
}

type mountInfo struct {
	volume, claim string
	readOnly      bool
}

// mountOf finds the deepest mount of the container that holds path.
func mountOf(pod corev1.PodSpec, c corev1.Container, path string) (mountInfo, bool) {
	var best corev1.VolumeMount
	for _, m := range c.VolumeMounts {
		mp := strings.TrimSuffix(m.MountPath, "/")
		if (path == mp || strings.HasPrefix(path, mp+"/")) && len(mp) >= len(best.MountPath) {
			best = m
		}
	}
	if best.Name == "" {
		return mountInfo{}, false
	}
	info := mountInfo{volume: best.Name, readOnly: best.ReadOnly}
	for _, v := range pod.Volumes {
		if v.Name == best.Name && v.PersistentVolumeClaim != nil {
			info.claim = v.PersistentVolumeClaim.ClaimName
			info.readOnly = info.readOnly || v.PersistentVolumeClaim.ReadOnly
		}
	}
	return info, true
}

// The evaluation must read the adapter the training writes, of the same model and data.
func TestTrainAndEvalAgree(t *testing.T) {
	runs := bearRuns(t, loadManifests(t))
	_, train := checkBear(t, runs[0].where, runs[0].argv)
	_, eval := checkBear(t, runs[1].where, runs[1].argv)
	if got, want := eval.set["adapter"], train.set["out"]+"/final"; got != want {
		t.Errorf("%s: --adapter %q, want the training run's %q", runs[1].where, got, want)
	}
	for _, f := range []string{"model", "data"} {
		if train.set[f] != eval.set[f] {
			t.Errorf("--%s: training %q, evaluation %q", f, train.set[f], eval.set[f])
		}
	}
}

// Every shell script in a manifest must parse, and use no $( (Kubernetes would expand $(VAR)
// of a declared variable before the shell sees it); all pods run the same image.
func TestManifestShellsAndImages(t *testing.T) {
	images := map[string][]string{}
	for _, m := range loadManifests(t) {
		for _, pod := range podSpecs(m.obj) {
			for _, c := range pod.Containers {
				images[c.Image] = append(images[c.Image], m.where)
				a := argv(t, m.where, c)
				if !isShell(a) {
					continue
				}
				if strings.Contains(a[2], "$(") {
					t.Errorf("%s: %q has $(: use ${VAR}", m.where, a[2])
				}
				if out, err := exec.Command(a[0], "-n", "-c", a[2]).CombinedOutput(); err != nil {
					t.Errorf("%s: %s -n: %v\n%s", m.where, a[0], err, bytes.TrimSpace(out))
				}
			}
		}
	}
	if len(images) != 1 {
		t.Errorf("the pods use %d images, want one: %v", len(images), images)
	}
}

// podSpecs returns the pod templates of a manifest.
func podSpecs(obj any) []corev1.PodSpec {
	switch o := obj.(type) {
	case *batchv1.Job:
		return []corev1.PodSpec{o.Spec.Template.Spec}
	case *mpiJob:
		var pods []corev1.PodSpec
		for _, role := range slices.Sorted(maps.Keys(o.Spec.MPIReplicaSpecs)) {
			pods = append(pods, o.Spec.MPIReplicaSpecs[role].Template.Spec)
		}
		return pods
	}
	return nil
}
