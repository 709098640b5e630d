package validate

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Without a Docker daemon the image cannot be built in a test; what can go wrong without one is
// checked here: a COPY of a file that is not in the build context (or that the .dockerignore
// drops), a stage used before it exists, a make target that does not exist, an output of the
// builder that no make target produces, the two variables pointing at files the image lacks,
// and stages on different Debian releases (bear-mpi links the builder's libmpi).

// dockerfiles are the images: the CPU one, and the CUDA one (whose ONNX Runtime library must
// have the CUDA provider's files beside it).
var dockerfiles = []struct {
	path string
	cuda bool
}{
	{filepath.Join(repoRoot, "deploy", "Dockerfile"), false},
	{filepath.Join(repoRoot, "deploy", "Dockerfile.cuda"), true},
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int
	op   string   // upper case: FROM, RUN, COPY, ...
	args []string // whitespace-separated (no JSON form is used here)
}

func parseDockerfile(text string) []instruction {
	var out []instruction
	var cur []string
	start := 0
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue // comments may sit between continuation lines too
		}
		if cur == nil {
			start = i + 1
		}
		body, more := strings.CutSuffix(trimmed, `\`)
		cur = append(cur, strings.Fields(body)...)
		if more {
			continue
		}
		out = append(out, instruction{start, strings.ToUpper(cur[0]), cur[1:]})
		cur = nil
	}
	return out
}

// stage is one FROM of the Dockerfile.
type stage struct {
	name, image, workdir string
	copied               map[string]bool // COPY destinations and ln -s targets
	env                  map[string]string
}

// copyArgs splits COPY's arguments into --flags, sources and the destination.
func copyArgs(args []string) (flags map[string]string, srcs []string, dst string) {
	flags = map[string]string{}
	for len(args) > 0 && strings.HasPrefix(args[0], "--") {
		k, v, _ := strings.Cut(strings.TrimPrefix(args[0], "--"), "=")
		flags[k], args = v, args[1:]
	}
	if len(args) < 2 {
		return flags, nil, ""
	}
	return flags, args[:len(args)-1], args[len(args)-1]
}

var lnTarget = regexp.MustCompile(`\bln\s+-s\S*\s+\S+\s+(/\S+)`)

func TestDockerfile(t *testing.T) {
	for _, d := range dockerfiles {
		t.Run(filepath.Base(d.path), func(t *testing.T) { checkDockerfile(t, d.path, d.cuda) })
	}
}

func checkDockerfile(t *testing.T, dockerfile string, cuda bool) {
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	ignore := dockerIgnore(t, dockerfile)
	outputs := buildOutputs(t)
	var stages []*stage
	for _, in := range parseDockerfile(string(b)) {
		where := fmt.Sprintf("Dockerfile:%d", in.line)
		if in.op == "FROM" {
			s := &stage{image: in.args[0], copied: map[string]bool{}, env: map[string]string{}}
			if len(in.args) == 3 && strings.EqualFold(in.args[1], "AS") {
				s.name = in.args[2]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("%s: %s before FROM", where, in.op)
		}
		cur := stages[len(stages)-1]
		switch in.op {
		case "WORKDIR":
			cur.workdir = path.Join(cur.workdir, in.args[0])
		case "ENV":
			for _, kv := range in.args {
				k, v, _ := strings.Cut(kv, "=")
				cur.env[k] = v
			}
		case "RUN":
			run := strings.Join(in.args, " ")
			for _, m := range lnTarget.FindAllStringSubmatch(run, -1) {
				cur.copied[m[1]] = true
			}
			checkMakeTargets(t, where, run, outputs.targets)
		case "COPY", "ADD":
			flags, srcs, dst := copyArgs(in.args)
			if dst == "" {
				t.Errorf("%s: COPY without a source and a destination", where)
			}
			for _, src := range srcs {
				if from, ok := flags["from"]; ok {
					checkStageSource(t, where, stages[:len(stages)-1], from, src, outputs.paths)
				} else {
					checkContextSource(t, where, src, ignore)
				}
				if len(srcs) == 1 && !strings.HasSuffix(dst, "/") {
					cur.copied[path.Join(cur.workdir, dst)] = true
				}
			}
		}
	}
	checkRuntimeStage(t, stages)
	if cuda {
		checkCUDAProvider(t, stages[len(stages)-1])
	}
}

// checkCUDAProvider: the CUDA image's ONNX Runtime library has the provider's two files beside
// it (bear looks for them there), and the library path names where the CUDA packages put
// their libraries.
func checkCUDAProvider(t *testing.T, last *stage) {
	t.Helper()
	dir := path.Dir(last.env["ONNXRUNTIME_SHARED_LIBRARY_PATH"])
	for _, f := range []string{"libonnxruntime_providers_cuda.so", "libonnxruntime_providers_shared.so"} {
		if !last.copied[path.Join(dir, f)] {
			t.Errorf("the runtime stage has no %s beside its ONNX Runtime library (%s)", f, dir)
		}
	}
	if !strings.Contains(last.env["LD_LIBRARY_PATH"], "/usr/local/cuda-13") {
		t.Errorf("LD_LIBRARY_PATH=%q does not name the CUDA 13 libraries' folder", last.env["LD_LIBRARY_PATH"])
	}
}

// checkContextSource: a COPY from the build context needs the path in the repository and not
// dropped by Dockerfile.dockerignore.
func checkContextSource(t *testing.T, where, src string, ignore []string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
		t.Errorf("%s: COPY %s: not in the repository: %v", where, src, err)
	}
	first := strings.Split(path.Clean(src), "/")[0]
	for _, pat := range ignore {
		if ok, _ := path.Match(pat, first); ok && src != "." {
			t.Errorf("%s: COPY %s: Dockerfile.dockerignore drops it (%s)", where, src, pat)
		}
	}
}

// checkStageSource: a COPY --from needs an earlier stage, and a file of the repository copy in
// it that is in the repository or that a make target writes.
func checkStageSource(t *testing.T, where string, earlier []*stage, from, src string, outputs []string) {
	t.Helper()
	i := slices.IndexFunc(earlier, func(s *stage) bool { return s.name == from })
	if i < 0 {
		t.Errorf("%s: COPY --from=%s: no earlier stage of that name", where, from)
		return
	}
	rel, ok := strings.CutPrefix(src, earlier[i].workdir+"/")
	if !ok || earlier[i].workdir == "" {
		t.Errorf("%s: COPY --from=%s %s: not under the stage's WORKDIR %q", where, from, src, earlier[i].workdir)
		return
	}
	if _, err := os.Stat(filepath.Join(repoRoot, rel)); err != nil && !slices.Contains(outputs, rel) {
		t.Errorf("%s: COPY --from=%s %s: %s is neither in the repository nor named by a make target's recipe", where, from, src, rel)
	}
}

// checkRuntimeStage: the last stage holds bear under both names and the files the two
// variables name, and every stage is on the same Debian release.
func checkRuntimeStage(t *testing.T, stages []*stage) {
	t.Helper()
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a builder and a runtime stage", len(stages))
	}
	last := stages[len(stages)-1]
	for _, f := range []string{"/usr/local/bin/bear", "/usr/local/bin/bear-mpi"} {
		if !last.copied[f] {
			t.Errorf("the runtime stage has no %s", f)
		}
	}
	for _, v := range []string{"ONNXRUNTIME_SHARED_LIBRARY_PATH", "BEAR_TOKENIZER"} {
		if f := last.env[v]; f == "" || !last.copied[f] {
			t.Errorf("the runtime stage sets %s=%q, which is no file it copies", v, f)
		}
	}
	release := regexp.MustCompile(`bookworm|trixie|bullseye|noble|jammy`)
	want := release.FindString(stages[0].image)
	for _, s := range stages {
		if got := release.FindString(s.image); got == "" || got != want {
			t.Errorf("stage %s is on %q (%s), stage %s on %q: bear-mpi needs the same libmpi", s.name, got, s.image, stages[0].name, want)
		}
	}
}

// makeCall is make as a command (not the word in a package list), with its arguments.
var makeCall = regexp.MustCompile(`(?:^|&&|\|\||;)\s*make\s+([^&|;]+)`)

// checkMakeTargets: every target a RUN make names is defined in the Makefile or mk/*.mk.
func checkMakeTargets(t *testing.T, where, run string, targets []string) {
	t.Helper()
	for _, m := range makeCall.FindAllStringSubmatch(run, -1) {
		for _, target := range strings.Fields(m[1]) {
			if !strings.HasPrefix(target, "-") && !strings.Contains(target, "=") && !slices.Contains(targets, target) {
				t.Errorf("%s: make %s: no such target in the Makefile or mk/*.mk", where, target)
			}
		}
	}
}

// makeInfo is what the Makefile and mk/*.mk define: targets, and the repository paths their
// text names (bin/bear-mpi, .cache/onnxruntime/libonnxruntime.so.1, ...).
type makeInfo struct {
	targets, paths []string
}

var (
	makeTarget = regexp.MustCompile(`(?m)^([\w.-]+(?:[ \t]+[\w.-]+)*)[ \t]*:([^=]|$)`)
	makePath   = regexp.MustCompile(`[\w.-]+(?:/[\w.-]+)+`)
)

func buildOutputs(t *testing.T) makeInfo {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(repoRoot, "mk", "*.mk"))
	var info makeInfo
	for _, f := range append(files, filepath.Join(repoRoot, "Makefile")) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range makeTarget.FindAllStringSubmatch(string(b), -1) {
			info.targets = append(info.targets, strings.Fields(m[1])...)
		}
		info.paths = append(info.paths, makePath.FindAllString(string(b), -1)...)
	}
	return info
}

// dockerIgnore reads the Dockerfile's .dockerignore, which BuildKit applies to it.
func dockerIgnore(t *testing.T, dockerfile string) []string {
	t.Helper()
	b, err := os.ReadFile(dockerfile + ".dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var pats []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			pats = append(pats, line)
		}
	}
	return pats
}

func TestParseDockerfile(t *testing.T) {
	got := parseDockerfile("FROM a AS b\n# note\nRUN x \\\n  # inside\n  y\nCOPY --from=b /s/f /d\n")
	want := []instruction{{1, "FROM", []string{"a", "AS", "b"}}, {3, "RUN", []string{"x", "y"}},
		{6, "COPY", []string{"--from=b", "/s/f", "/d"}}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
