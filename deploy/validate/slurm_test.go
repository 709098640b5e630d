package validate

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The Slurm scripts run here through stand-in sbatch, srun and bear (fakes_test.go): sbatch runs
// a job at once, every array task in turn with the variables Slurm sets, and honours afterok.

var slurmDir = filepath.Join(repoRoot, "deploy", "slurm")

func TestSlurmScriptsParse(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(slurmDir, "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts in %s (%v)", slurmDir, err)
	}
	for _, f := range files {
		// One file per call: `bash -n a b` reads only a.
		if out, err := exec.Command("bash", "-n", f).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", filepath.Base(f), err, out)
		}
	}
}

var sbatchDirective = regexp.MustCompile(`(?m)^#SBATCH\s+--([\w-]+)(?:=(\S+))?`)

// directives returns a script's #SBATCH --name=value lines.
func directives(t *testing.T, script string) map[string]string {
	t.Helper()
	d, err := scriptDirectives(script)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// scriptDirectives reads a script's #SBATCH --name=value lines (for the sbatch stand-in too,
// which has no testing.T).
func scriptDirectives(script string) (map[string]string, error) {
	b, err := os.ReadFile(script)
	if err != nil {
		return nil, err
	}
	d := map[string]string{}
	for _, m := range sbatchDirective.FindAllStringSubmatch(string(b), -1) {
		d[m[1]] = m[2]
	}
	return d, nil
}

// slurmRun runs a command (sbatch: the stand-in) in a fresh folder, the submit directory, with
// the stand-ins and MODEL, ADAPTER, DATA and OUT under it, after prepare (if any) has set the
// folder up. It returns the folder and the calls made.
func slurmRun(t *testing.T, prepare func(dir string) error, name string, args ...string) (string, []record) {
	t.Helper()
	bin, log := fakeBin(t)
	if _, err := os.Lstat(filepath.Join(bin, name)); err == nil {
		name = filepath.Join(bin, name)
	}
	dir := t.TempDir()
	if prepare != nil {
		if err := prepare(dir); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = fakeEnv(bin, log, "BEAR_BIN="+bin, mkdirVar+"=1",
		"MODEL="+dir+"/model", "ADAPTER="+dir+"/run/final", "DATA="+dir+"/data", "OUT="+dir+"/out")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %q: %v\n%s", filepath.Base(name), args, err, out)
	}
	return dir, readRecords(t, log)
}

func bearCalls(rs []record) []record {
	var out []record
	for _, r := range rs {
		if strings.HasPrefix(r.Prog, "bear") {
			out = append(out, r)
		}
	}
	return out
}

// train.sbatch must start one bear-mpi rank per task through srun's PMIx, on the GPU Slurm gives
// each task, and resume a run folder that holds a checkpoint (a requeued job continues).
func TestSlurmTrain(t *testing.T) {
	script := filepath.Join(slurmDir, "train.sbatch")
	d := directives(t, script)
	nodes, err1 := strconv.Atoi(d["nodes"])
	perNode, err2 := strconv.Atoi(d["ntasks-per-node"])
	if err1 != nil || err2 != nil || d["gpus-per-task"] != "1" {
		t.Fatalf("train.sbatch: #SBATCH --nodes=%q --ntasks-per-node=%q --gpus-per-task=%q: want numbers, one GPU per task",
			d["nodes"], d["ntasks-per-node"], d["gpus-per-task"])
	}
	ranks := nodes * perNode
	for _, resume := range []bool{false, true} {
		t.Run(fmt.Sprintf("resume=%v", resume), func(t *testing.T) {
			var checkpoint func(dir string) error // a run folder with a checkpoint, before the job
			if resume {
				checkpoint = func(dir string) error {
					if err := os.MkdirAll(dir+"/out", 0o755); err != nil {
						return err
					}
					return os.WriteFile(dir+"/out/checkpoint.safetensors", nil, 0o644)
				}
			}
			dir, calls := slurmRun(t, checkpoint, "sbatch", script)
			bears := bearCalls(calls)
			if len(bears) != 1 || bears[0].Prog != "bear-mpi" {
				t.Fatalf("calls %+v: want one bear-mpi", calls)
			}
			if i := slices.IndexFunc(calls, func(r record) bool { return r.Prog == "srun" }); i < 0 || !slices.Contains(calls[i].Args, "--mpi=pmix") {
				t.Errorf("bear-mpi is not started by srun --mpi=pmix: %+v", calls)
			}
			spec, p := checkBear(t, "train.sbatch", append([]string{"bear-mpi"}, bears[0].Args...))
			if g := normGroups(t, "train.sbatch", spec, p); spec.name != "train" || g < ranks {
				t.Errorf("train.sbatch: bear %s with %d norm groups for %d ranks", spec.name, g, ranks)
			}
			want := ""
			if resume {
				want = dir + "/out"
			}
			if got, ok := p.set["resume"]; !ok || got != want || p.set["out"] != dir+"/out" || p.set["device"] != "cuda" {
				t.Errorf("train.sbatch: --resume %q (given: %v) --out %q --device %q; want --resume %q --out %s/out --device cuda",
					got, ok, p.set["out"], p.set["device"], want, dir)
			}
			if bears[0].Env["ONNXRUNTIME_SHARED_LIBRARY_PATH"] == "" || bears[0].Env["BEAR_TOKENIZER"] == "" {
				t.Errorf("train.sbatch: bear-mpi runs without ONNXRUNTIME_SHARED_LIBRARY_PATH or BEAR_TOKENIZER: %v", bears[0].Env)
			}
		})
	}
}

// eval.sh must run shard i of n in array task i, where n is the array's size, and merge exactly
// those shards once all succeeded; an array that is not 0..n-1 runs no shard and no merge.
func TestSlurmEval(t *testing.T) {
	if d := directives(t, filepath.Join(slurmDir, "eval.sbatch")); d["array"] == "" {
		t.Fatal("eval.sbatch has no #SBATCH --array")
	}
	cases := []struct {
		args   []string
		shards int // 0: the tasks must refuse
	}{
		{nil, 4}, // eval.sbatch's own --array=0-3
		{[]string{"--array=0-7"}, 8},
		{[]string{"--array=0-11%4"}, 12},
		{[]string{"--array=0,2"}, 0},
		{[]string{"--array=1-4"}, 0},
	}
	for _, c := range cases {
		t.Run(strings.Join(append([]string{"args"}, c.args...), " "), func(t *testing.T) {
			dir, calls := slurmRun(t, nil, "bash", append([]string{filepath.Join(slurmDir, "eval.sh")}, c.args...)...)
			checkEvalCalls(t, dir+"/out", calls, c.shards)
		})
	}
}

func checkEvalCalls(t *testing.T, out string, calls []record, n int) {
	t.Helper()
	var jobs []record
	for _, r := range calls {
		if r.Prog == "sbatch" {
			jobs = append(jobs, r)
		}
	}
	if len(jobs) != 2 || !slices.Contains(jobs[1].Args, "--dependency=afterok:"+strconv.Itoa(jobs[0].Job)) {
		t.Fatalf("want the array job, then the merge after it (afterok): %+v", jobs)
	}
	bears := bearCalls(calls)
	if n == 0 {
		if len(bears) != 0 || jobs[0].OK || jobs[1].OK {
			t.Errorf("a gapped array ran bear %d times (jobs %+v)", len(bears), jobs)
		}
		return
	}
	if len(bears) != n+1 {
		t.Fatalf("%d bear calls, want %d shards and a merge", len(bears), n)
	}
	var shardDirs []string
	for i, r := range bears[:n] {
		spec, p := checkBear(t, fmt.Sprintf("eval.sbatch task %d", i), append([]string{"bear"}, r.Args...))
		wantOut := fmt.Sprintf("%s/shard-%d", out, i)
		if spec.name != "eval" || p.set["shard"] != fmt.Sprintf("%d/%d", i, n) || p.set["out"] != wantOut {
			t.Errorf("task %d: bear %s --shard %q --out %q, want eval --shard %d/%d --out %s",
				i, spec.name, p.set["shard"], p.set["out"], i, n, wantOut)
		}
		shardDirs = append(shardDirs, wantOut)
	}
	spec, p := checkBear(t, "eval-merge.sbatch", append([]string{"bear"}, bears[n].Args...))
	got := slices.Sorted(slices.Values(p.positional))
	slices.Sort(shardDirs)
	if spec.name != "eval" || p.set["merge"] != "true" || !slices.Equal(got, shardDirs) {
		t.Errorf("merge: bear %s %q, want eval --merge of %q", spec.name, bears[n].Args, shardDirs)
	}
}
