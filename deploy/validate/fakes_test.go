package validate

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The scripts under deploy/ run here for real, with this test binary standing in for the
// programs a cluster would provide: symlinks named bear, bear-mpi, sbatch and srun point at it,
// and TestMain dispatches on the name it was started as. The stand-ins append what they were
// asked to do to the log named by $VALIDATE_LOG, and the tests read it back.

// logVar names the file the stand-ins append their records to.
const logVar = "VALIDATE_LOG"

// mkdirVar set to 1 makes the bear stand-in create its --out folder, as bear would (only where
// --out is a temporary folder: never for the manifests' /work paths).
const mkdirVar = "VALIDATE_MKDIR"

// record is one stand-in call.
type record struct {
	Prog string            `json:"prog"`           // bear, bear-mpi, sbatch or srun
	Args []string          `json:"args"`           // arguments after the program name
	Env  map[string]string `json:"env,omitempty"`  // the variables in recordedEnv that were set
	Job  int               `json:"job,omitempty"`  // sbatch: the job id it answered
	OK   bool              `json:"ok,omitempty"`   // sbatch: every task of the job succeeded
	Note string            `json:"note,omitempty"` // sbatch: why a job did not run
}

// recordedEnv are the variables a bear stand-in notes: where a run would find its libraries, and
// which shard or rank it is.
var recordedEnv = []string{"ONNXRUNTIME_SHARED_LIBRARY_PATH", "BEAR_TOKENIZER", "JOB_COMPLETION_INDEX",
	"SLURM_ARRAY_TASK_ID", "SLURM_JOB_ID"}

var fakes = map[string]func(args []string) int{
	"bear":     fakeBear,
	"bear-mpi": fakeBear,
	"sbatch":   fakeSbatch,
	"srun":     fakeSrun,
}

func TestMain(m *testing.M) {
	if fake, ok := fakes[filepath.Base(os.Args[0])]; ok {
		os.Exit(fake(os.Args[1:]))
	}
	code := m.Run()
	removeBuiltBear()
	os.Exit(code)
}

// fakeBin makes a folder of stand-ins and returns it with a fresh log file.
func fakeBin(t *testing.T) (dir, log string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	for name := range fakes {
		if err := os.Symlink(self, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir, filepath.Join(t.TempDir(), "calls.jsonl")
}

// fakeEnv is the environment of a script run with the stand-ins first on PATH.
func fakeEnv(bin, log string, extra ...string) []string {
	env := []string{"PATH=" + bin + ":" + os.Getenv("PATH"), logVar + "=" + log, "HOME=" + os.Getenv("HOME")}
	return append(env, extra...)
}

func appendRecord(r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(os.Getenv(logVar), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%s\n", b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readRecords returns the stand-ins' calls in order.
func readRecords(t *testing.T, log string) []record {
	t.Helper()
	out, err := parseRecords(log)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// parseRecords reads the log: the records of every line it can read, and the first error (a
// missing log holds no records).
func parseRecords(log string) ([]record, error) {
	b, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []record
	var first error
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			first = cmp.Or(first, fmt.Errorf("%s:%d: %w", log, i+1, err))
			continue
		}
		out = append(out, r)
	}
	return out, first
}

// fakeBear records its arguments and succeeds.
func fakeBear(args []string) int {
	r := record{Prog: filepath.Base(os.Args[0]), Args: args, Env: map[string]string{}}
	for _, v := range recordedEnv {
		if val, ok := os.LookupEnv(v); ok {
			r.Env[v] = val
		}
	}
	if os.Getenv(mkdirVar) == "1" {
		if out, ok := flagValue(args, "out"); ok && out != "" {
			if err := os.MkdirAll(out, 0o755); err != nil {
				fmt.Fprintln(os.Stderr, "fake bear:", err)
				return 1
			}
		}
	}
	if err := appendRecord(r); err != nil {
		fmt.Fprintln(os.Stderr, "fake bear:", err)
		return 1
	}
	return 0
}

// flagValue finds --name VALUE or --name=VALUE (one or two dashes) in a command line.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		n := strings.TrimLeft(a, "-")
		if n == a {
			continue
		}
		if k, v, ok := strings.Cut(n, "="); ok && k == name {
			return v, true
		}
		if n == name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

// fakeSrun runs the program once, standing in for all of the step's tasks, and records its own
// options. It takes only --opt=value and --flag forms, so that the program is never mistaken.
func fakeSrun(args []string) int {
	i := 0
	for i < len(args) && strings.HasPrefix(args[i], "--") {
		i++
	}
	if i == len(args) {
		fmt.Fprintln(os.Stderr, "fake srun: no program (options must be written --opt=value)")
		return 2
	}
	if err := appendRecord(record{Prog: "srun", Args: args[:i]}); err != nil {
		fmt.Fprintln(os.Stderr, "fake srun:", err)
		return 1
	}
	cmd := exec.Command(args[i], args[i+1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return 1
	}
	return 0
}

// fakeSbatch runs a batch script at once, every task of a job array in turn with the SLURM_ARRAY_*
// variables Slurm sets, and answers a job id as `sbatch --parsable` does. A job with
// --dependency=afterok:ID runs only if job ID ran and every task of it succeeded.
func fakeSbatch(args []string) int {
	opts, script, err := sbatchArgs(args)
	if err == nil && opts["array"] == "" {
		opts["array"], err = scriptArray(script)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake sbatch:", err)
		return 2
	}
	prev := readLog()
	r := record{Prog: "sbatch", Args: args, Job: 1000 + len(prev), OK: true}
	if dep, ok := opts["dependency"]; ok {
		r.Note = dependencyMet(dep, prev)
	}
	if r.Note == "" {
		r.OK, r.Note = runJob(script, r.Job, opts["array"])
	} else {
		r.OK = false
	}
	if err := appendRecord(r); err != nil {
		fmt.Fprintln(os.Stderr, "fake sbatch:", err)
		return 1
	}
	fmt.Println(r.Job)
	return 0
}

// sbatchArgs splits sbatch's arguments into --opt=value options and the script.
func sbatchArgs(args []string) (map[string]string, string, error) {
	opts := map[string]string{}
	for i, a := range args {
		if !strings.HasPrefix(a, "-") {
			if i != len(args)-1 {
				return nil, "", fmt.Errorf("arguments after the script %s: %q", a, args[i+1:])
			}
			return opts, a, nil
		}
		k, v, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		switch k {
		case "parsable", "array", "dependency", "export":
			opts[k] = v
		default:
			return nil, "", fmt.Errorf("option %s is not emulated here", a)
		}
	}
	return nil, "", fmt.Errorf("no batch script in %q", args)
}

// scriptArray is the script's own #SBATCH --array, or "" for a plain job.
func scriptArray(script string) (string, error) {
	d, err := scriptDirectives(script)
	return d["array"], err
}

// arrayTasks expands an --array spec (0-3, 0,2,5, 0-7%2) into task ids.
func arrayTasks(spec string) ([]int, error) {
	spec, _, _ = strings.Cut(spec, "%") // the throttle limits concurrency, not the tasks
	var ids []int
	for _, part := range strings.Split(spec, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || b < a {
			return nil, fmt.Errorf("--array=%s: %q is not N or N-M", spec, part)
		}
		for id := a; id <= b; id++ {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// runJob runs the script with bash, once or per array task, its output on stderr (sbatch's
// stdout carries only the job id). It reports whether every task succeeded.
func runJob(script string, job int, array string) (bool, string) {
	submit, _ := os.Getwd()
	base := append(os.Environ(), "SLURM_JOB_ID="+strconv.Itoa(job), "SLURM_SUBMIT_DIR="+submit)
	if array == "" {
		return runTask(script, base), ""
	}
	ids, err := arrayTasks(array)
	if err != nil {
		return false, err.Error()
	}
	ok := true
	for _, id := range ids {
		env := slices.Concat(base, []string{"SLURM_ARRAY_JOB_ID=" + strconv.Itoa(job),
			"SLURM_ARRAY_TASK_ID=" + strconv.Itoa(id),
			"SLURM_ARRAY_TASK_COUNT=" + strconv.Itoa(len(ids)),
			"SLURM_ARRAY_TASK_MIN=" + strconv.Itoa(slices.Min(ids)),
			"SLURM_ARRAY_TASK_MAX=" + strconv.Itoa(slices.Max(ids))})
		ok = runTask(script, env) && ok
	}
	return ok, ""
}

func runTask(script string, env []string) bool {
	cmd := exec.Command("bash", script)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, os.Stderr, os.Stderr
	return cmd.Run() == nil
}

// dependencyMet returns "" when an afterok:ID dependency is satisfied, else why not.
func dependencyMet(dep string, prev []record) string {
	id, ok := strings.CutPrefix(dep, "afterok:")
	if !ok {
		return "dependency " + dep + " is not emulated here"
	}
	for _, r := range prev {
		if r.Prog == "sbatch" && strconv.Itoa(r.Job) == id {
			if r.OK {
				return ""
			}
			return "job " + id + " failed: afterok never satisfied"
		}
	}
	return "no job " + id
}

// readLog reads the log from inside a stand-in, where there is no testing.T; a line it cannot
// read makes readRecords fail the test later.
func readLog() []record {
	out, _ := parseRecords(os.Getenv(logVar))
	return out
}
