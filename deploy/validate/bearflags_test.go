package validate

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// A bear command line in a manifest or a script is checked against `bear CMD -h` of a bear built
// from this checkout, with the rules of Go's flag package that bear parses with: a mistyped or
// removed flag, a missing value or a missing required flag fails here rather than on a cluster.

// bearVar names a bear binary to use instead of building one (the test builds ./tools/bear from
// the repository root, so that the flags are this checkout's and never a stale bin/bear's).
const bearVar = "VALIDATE_BEAR"

// flagSpec is one flag from `bear CMD -h`.
type flagSpec struct {
	kind     string // "" for a boolean flag, else the value's name: int, float, string, FILE, ...
	def      string // default, as the help prints it ("" when it prints none)
	required bool   // the usage says "(required)"
}

// commandSpec is the flags of one subcommand.
type commandSpec struct {
	name  string
	flags map[string]flagSpec
}

var (
	flagLine    = regexp.MustCompile(`^  -([A-Za-z0-9][\w.-]*)(?: ([^\t]+))?(?:\t(.*))?$`)
	defaultPart = regexp.MustCompile(`\(default "?([^")]*)"?\)\s*$`)
)

// parseHelp reads Go's flag.PrintDefaults layout: "  -name type" (no type for a boolean), the
// usage on the following lines after "    \t", or after a tab on the same line.
func parseHelp(cmd, help string) (commandSpec, error) {
	if !strings.HasPrefix(help, "usage: bear "+cmd+" ") {
		first, _, _ := strings.Cut(help, "\n")
		return commandSpec{}, fmt.Errorf("bear %s -h: not a command's help: %q", cmd, first)
	}
	spec := commandSpec{name: cmd, flags: map[string]flagSpec{}}
	last := ""
	for _, line := range strings.Split(help, "\n") {
		if m := flagLine.FindStringSubmatch(line); m != nil {
			last = m[1]
			spec.flags[last] = flagSpec{kind: m[2]}
			line = m[3]
		} else if !strings.HasPrefix(line, "    \t") || last == "" {
			continue
		}
		f := spec.flags[last]
		f.required = f.required || strings.Contains(line, "(required)")
		if d := defaultPart.FindStringSubmatch(line); d != nil {
			f.def = d[1]
		}
		spec.flags[last] = f
	}
	if len(spec.flags) == 0 {
		return spec, fmt.Errorf("bear %s -h lists no flags", cmd)
	}
	return spec, nil
}

// parsedArgs is a command line read as Go's flag package reads it.
type parsedArgs struct {
	set        map[string]string // flags given, with their values ("true" for a bare boolean)
	positional []string
}

// checkArgs parses the arguments after the subcommand and returns every problem found.
func checkArgs(spec commandSpec, args []string) (parsedArgs, []error) {
	p := parsedArgs{set: map[string]string{}}
	var errs []error
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			p.positional = args[i+1:]
			break
		}
		if a == "-" || !strings.HasPrefix(a, "-") {
			p.positional = args[i:]
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		f, ok := spec.flags[name]
		switch {
		case !ok || name == "" || strings.HasPrefix(name, "-"):
			errs = append(errs, fmt.Errorf("bear %s has no flag %s", spec.name, a))
			continue
		case f.kind == "" && !hasValue:
			value = "true"
		case !hasValue && i+1 == len(args):
			errs = append(errs, fmt.Errorf("bear %s %s: the value is missing", spec.name, a))
			continue
		case !hasValue:
			i++
			value = args[i]
		}
		if err := checkValue(f.kind, value); err != nil {
			errs = append(errs, fmt.Errorf("bear %s --%s %q: %w", spec.name, name, value, err))
		}
		p.set[name] = value
	}
	return p, append(errs, checkRequired(spec, p)...)
}

// checkValue checks a value against its flag's type; a value with a shell or Kubernetes variable
// in it is only known at run time.
func checkValue(kind, v string) error {
	if strings.Contains(v, "$") {
		return nil
	}
	var err error
	switch kind {
	case "":
		_, err = strconv.ParseBool(v)
	case "int":
		_, err = strconv.ParseInt(v, 0, 64)
	case "uint":
		_, err = strconv.ParseUint(v, 0, 64)
	case "float":
		_, err = strconv.ParseFloat(v, 64)
	}
	return err
}

// checkRequired: every command takes flags only, and needs its "(required)" ones, except
// `bear eval --merge`, which takes --out and the shard folders as arguments.
func checkRequired(spec commandSpec, p parsedArgs) []error {
	if spec.name == "eval" && p.set["merge"] == "true" {
		if len(p.positional) == 0 {
			return []error{errors.New("bear eval --merge: no shard folders")}
		}
		return nil
	}
	var errs []error
	if len(p.positional) > 0 {
		errs = append(errs, fmt.Errorf("bear %s takes flags only, not %q", spec.name, p.positional))
	}
	for name, f := range spec.flags {
		if _, ok := p.set[name]; f.required && !ok {
			errs = append(errs, fmt.Errorf("bear %s: --%s is required", spec.name, name))
		}
	}
	return errs
}

// value is a flag's value on the command line, else its default from the help.
func (s commandSpec) value(p parsedArgs, name string) string {
	if v, ok := p.set[name]; ok {
		return v
	}
	return s.flags[name].def
}

var bearBuild struct {
	once sync.Once
	path string
	err  error
	mu   sync.Mutex
	help map[string]commandSpec
}

// bearBinary returns $VALIDATE_BEAR, or a bear built from the repository once per test run.
func bearBinary(t *testing.T) string {
	t.Helper()
	bearBuild.once.Do(func() {
		if p := os.Getenv(bearVar); p != "" {
			bearBuild.path = p
			return
		}
		dir, err := os.MkdirTemp("", "validate-bear-")
		if err != nil {
			bearBuild.err = err
			return
		}
		bearBuild.path = filepath.Join(dir, "bear")
		cmd := exec.Command("go", "build", "-o", bearBuild.path, "./tools/bear")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			bearBuild.err = fmt.Errorf("go build ./tools/bear: %v\n%s", err, out)
		}
	})
	if bearBuild.err != nil {
		t.Fatal(bearBuild.err)
	}
	return bearBuild.path
}

// removeBuiltBear deletes the folder of the bear that bearBinary built, if it built one.
func removeBuiltBear() {
	if bearBuild.path != "" && os.Getenv(bearVar) == "" {
		os.RemoveAll(filepath.Dir(bearBuild.path))
	}
}

// bearSpec returns the flags of `bear cmd`, from its -h.
func bearSpec(t *testing.T, cmd string) commandSpec {
	t.Helper()
	bin := bearBinary(t)
	bearBuild.mu.Lock()
	defer bearBuild.mu.Unlock()
	if s, ok := bearBuild.help[cmd]; ok {
		return s
	}
	// -h exits with status 2 after printing the help; an unknown command prints the command list.
	out, _ := exec.Command(bin, cmd, "-h").CombinedOutput()
	s, err := parseHelp(cmd, string(out))
	if err != nil {
		t.Fatal(err)
	}
	if bearBuild.help == nil {
		bearBuild.help = map[string]commandSpec{}
	}
	bearBuild.help[cmd] = s
	return s
}

// checkBear checks one bear command line (argv[0] is the program) and returns its parse.
func checkBear(t *testing.T, where string, argv []string) (commandSpec, parsedArgs) {
	t.Helper()
	if len(argv) < 2 || strings.HasPrefix(argv[1], "-") {
		t.Errorf("%s: %q names no bear subcommand", where, argv)
		return commandSpec{}, parsedArgs{}
	}
	spec := bearSpec(t, argv[1])
	p, errs := checkArgs(spec, argv[2:])
	for _, err := range errs {
		t.Errorf("%s: %v", where, err)
	}
	return spec, p
}

// normGroups is a train command line's --batch/--norm-group: the most ranks it can spread over.
func normGroups(t *testing.T, where string, spec commandSpec, p parsedArgs) int {
	t.Helper()
	batch, err1 := strconv.Atoi(spec.value(p, "batch"))
	group, err2 := strconv.Atoi(spec.value(p, "norm-group"))
	if err := errors.Join(err1, err2); err != nil || group <= 0 {
		t.Fatalf("%s: --batch %q --norm-group %q: %v", where, spec.value(p, "batch"), spec.value(p, "norm-group"), err)
	}
	return batch / group
}

func TestParseHelpAndCheckArgs(t *testing.T) {
	const help = "usage: bear train --model DIR [flags]\n\nflags:\n" +
		"  -batch int\n    \tsequences per step (default 128)\n" +
		"  -model string\n    \tcheckpoint folder (required)\n" +
		"  -ort-lib FILE\n    \tlibrary FILE\n" +
		"  -no-progress\n    \tno progress bar\n" +
		"  -q\tquiet\n"
	spec, err := parseHelp("train", help)
	if err != nil {
		t.Fatal(err)
	}
	if f := spec.flags["batch"]; f.kind != "int" || f.def != "128" || f.required {
		t.Errorf("batch: %+v", f)
	}
	if f := spec.flags["model"]; !f.required {
		t.Errorf("model: %+v, want required", f)
	}
	if f, ok := spec.flags["q"]; !ok || f.kind != "" {
		t.Errorf("q: %+v %v, want a boolean", f, ok)
	}
	cases := []struct {
		args    []string
		wantErr string // "" for none
	}{
		{[]string{"--model", "/m", "--batch", "64", "--no-progress"}, ""},
		{[]string{"-model=/m", "-q", "--ort-lib=$LIB"}, ""},
		{[]string{"--model", "/m", "--batch", "$N"}, ""},
		{[]string{"--model", "/m", "--bacth", "64"}, "no flag --bacth"},
		{[]string{"--model", "/m", "--batch", "x"}, "invalid syntax"},
		{[]string{"--model", "/m", "--batch"}, "value is missing"},
		{[]string{"--model", "/m", "--no-progress=maybe"}, "invalid syntax"},
		{[]string{"--batch", "64"}, "--model is required"},
		{[]string{"--model", "/m", "extra"}, "flags only"},
		{[]string{"--model", "/m", "---batch", "1"}, "no flag"},
	}
	for _, c := range cases {
		_, errs := checkArgs(spec, c.args)
		got := errors.Join(errs...)
		switch {
		case c.wantErr == "" && got != nil:
			t.Errorf("%q: %v", c.args, got)
		case c.wantErr != "" && (got == nil || !strings.Contains(got.Error(), c.wantErr)):
			t.Errorf("%q: error %v, want one with %q", c.args, got, c.wantErr)
		}
	}
	if _, err := parseHelp("trian", "bear: unknown command \"trian\"\nusage: bear COMMAND"); err == nil {
		t.Error("an unknown command's output parsed as help")
	}
}
