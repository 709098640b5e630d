package main

// Run files: a YAML mapping whose keys are a command's flags (bear train --config FILE), so
// that a team keeps each run's settings in version control. The YAML library is
// go.yaml.in/yaml/v3, the YAML organisation's maintained home of go-yaml v3: pure Go, no
// dependencies, and its node tree carries the line of every key, which the errors name.

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// RunFileError is a key of a run file that cannot be used: unknown, of the wrong type, or a
// value its flag refuses.
type RunFileError struct {
	File string
	Line int    // 1-based; 0 for the file as a whole
	Key  string // the key at fault ("" for the file as a whole)
	Err  error
}

func (e *RunFileError) Error() string {
	switch {
	case e.Line == 0:
		return fmt.Sprintf("run file %s: %v", e.File, e.Err)
	case e.Key == "":
		return fmt.Sprintf("run file %s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("run file %s:%d: %s: %v", e.File, e.Line, e.Key, e.Err)
}

func (e *RunFileError) Unwrap() error { return e.Err }

// runFileFlags are --config and --print-config, and where each setting of a loaded file came
// from, so that a later error about its flag can name the file and line.
type runFileFlags struct {
	path  *string
	print *bool
	// lists are the string flags whose value is a comma-separated list: a YAML sequence
	// is accepted for them.
	lists   map[string]bool
	origins map[string]int // flag name -> line of the run file that set it
}

// addRunFileFlags defines --config and --print-config on fs.
func addRunFileFlags(fs *flag.FlagSet, lists ...string) *runFileFlags {
	r := &runFileFlags{
		path:    fs.String("config", "", "YAML run `FILE`: each key is one of these flags without its dashes (lora-r: 16); flags given on the command line override it"),
		print:   fs.Bool("print-config", false, "print the resolved settings (run file, then command line) as YAML and exit"),
		lists:   map[string]bool{},
		origins: map[string]int{},
	}
	for _, l := range lists {
		r.lists[l] = true
	}
	return r
}

// notSettable are the flags a run file cannot hold.
var notSettable = map[string]string{
	"config":       "a run file cannot name another",
	"print-config": "give it on the command line",
}

// parse parses args, then loads the run file, if any, into the flags the command line left
// unset.
func (r *runFileFlags) parse(fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return r.apply(fs)
}

// apply loads the run file, if any, into the flags of fs that the command line left unset
// (fs is parsed).
func (r *runFileFlags) apply(fs *flag.FlagSet) error {
	if *r.path == "" {
		return nil
	}
	data, err := os.ReadFile(*r.path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	return r.load(fs, *r.path, data, given)
}

// load sets the flags of fs from the run file's mapping, except those in given.
func (r *runFileFlags) load(fs *flag.FlagSet, file string, data []byte, given map[string]bool) error {
	top, err := topMapping(file, data)
	if err != nil || top == nil {
		return err
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		fail := func(format string, a ...any) error {
			return &RunFileError{File: file, Line: k.Line, Key: k.Value, Err: fmt.Errorf(format, a...)}
		}
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			return &RunFileError{File: file, Line: k.Line, Err: errors.New("a key must be a flag name")}
		}
		if line, dup := seen[k.Value]; dup {
			return fail("set twice (first on line %d)", line)
		}
		seen[k.Value] = k.Line
		f, err := settable(fs, k.Value)
		if err != nil {
			return fail("%v", err)
		}
		values, err := r.scalarValues(f, v)
		if err != nil {
			return fail("%v", err)
		}
		if given[f.Name] {
			continue // the command line wins
		}
		for _, s := range values {
			if err := fs.Set(f.Name, s); err != nil {
				return fail("%q: %v", s, err)
			}
		}
		r.origins[f.Name] = k.Line
	}
	return nil
}

// topMapping decodes data, which must be one YAML mapping (or empty: no settings).
func topMapping(file string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, nil
	} else if err != nil {
		return nil, &RunFileError{File: file, Line: yamlErrorLine(err), Err: fmt.Errorf("not valid YAML: %v", err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &RunFileError{File: file, Line: extra.Line, Err: errors.New("a second YAML document: a run file holds one mapping")}
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, &RunFileError{File: file, Line: top.Line, Err: errors.New("want a mapping of flag names to values (epochs: 10)")}
	}
	for i := 0; i < len(top.Content); i += 2 {
		if top.Content[i].Tag == "!!merge" {
			return nil, &RunFileError{File: file, Line: top.Content[i].Line, Err: errors.New("merge keys (<<) are not supported: write each key")}
		}
	}
	return top, nil
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// yamlErrorLine is the 1-based line of a YAML syntax error (0 when it names none). The
// library counts the lines of its parser's errors ("did not find expected ...") from 0 and
// those of its scanner's from 1.
func yamlErrorLine(err error) int {
	m := yamlLine.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	if strings.Contains(err.Error(), "did not find expected") {
		n++
	}
	return n
}

// settable returns the flag a key names, or why a run file cannot set it.
func settable(fs *flag.FlagSet, key string) (*flag.Flag, error) {
	if why, ok := notSettable[key]; ok {
		return nil, errors.New(why)
	}
	if f := fs.Lookup(key); f != nil {
		return f, nil
	}
	if alt := strings.ReplaceAll(key, "_", "-"); alt != key && fs.Lookup(alt) != nil {
		return nil, fmt.Errorf("unknown key: did you mean %s? (keys are the flags' names)", alt)
	}
	if alt := nearestFlag(fs, key); alt != "" {
		return nil, fmt.Errorf("unknown key: not a flag of %s; did you mean %s?", fs.Name(), alt)
	}
	return nil, fmt.Errorf("unknown key: not a flag of %s (-h lists them)", fs.Name())
}

// nearestFlag returns the settable flag whose name is nearest to key, within two edits and
// a third of the key's length (a typo or a plural, not any short name), or "".
func nearestFlag(fs *flag.FlagSet, key string) string {
	best, bestDist := "", 3
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := notSettable[f.Name]; ok {
			return
		}
		if d := editDistance(key, f.Name); d < bestDist && 3*d <= len(key) {
			best, bestDist = f.Name, d
		}
	})
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// scalarValues turns a key's node into the strings to Set, refusing a node of the wrong YAML
// type for the flag: a quoted "10" for an integer flag, a number for a path, a list for a
// single value.
func (r *runFileFlags) scalarValues(f *flag.Flag, v *yaml.Node) ([]string, error) {
	kind := flagKind(f)
	if v.Kind == yaml.SequenceNode && (r.lists[f.Name] || kind == "list") {
		var items []string
		for _, it := range v.Content {
			if it.Kind != yaml.ScalarNode || it.Tag != "!!str" {
				return nil, fmt.Errorf("line %d: want a list of strings", it.Line)
			}
			items = append(items, it.Value)
		}
		if kind == "list" {
			return items, nil
		}
		return []string{strings.Join(items, ",")}, nil
	}
	if v.Kind != yaml.ScalarNode {
		return nil, fmt.Errorf("want %s, not a YAML %s", kindName(kind), nodeKind(v))
	}
	if v.Tag == "!!null" {
		return nil, errors.New("no value: remove the key to keep the default")
	}
	want := map[string][]string{
		"bool": {"!!bool"}, "int": {"!!int"}, "uint": {"!!int"}, "float": {"!!int", "!!float"},
		"string": {"!!str"}, "list": {"!!str"},
	}[kind]
	ok := false
	for _, t := range want {
		ok = ok || v.Tag == t
	}
	if !ok {
		return nil, fmt.Errorf("want %s, not %s %q", kindName(kind), tagName(v.Tag), v.Value)
	}
	switch kind {
	case "float":
		var x float64
		if err := v.Decode(&x); err != nil {
			return nil, err
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%s: want a finite number", v.Value)
		}
		return []string{strconv.FormatFloat(x, 'g', -1, 64)}, nil
	case "int", "uint":
		var x int64
		if err := v.Decode(&x); err != nil {
			return nil, fmt.Errorf("%s: %v", v.Value, err)
		}
		return []string{strconv.FormatInt(x, 10)}, nil
	}
	return []string{v.Value}, nil
}

// flagKind is the YAML type a flag takes: bool, int, uint, float, string, or list (a flag
// that may be given several times).
func flagKind(f *flag.Flag) string {
	if _, ok := f.Value.(interface{ repeatable() }); ok {
		return "list"
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return "string"
	}
	switch g.Get().(type) {
	case bool:
		return "bool"
	case int, int64:
		return "int"
	case uint, uint64:
		return "uint"
	case float64:
		return "float"
	}
	return "string"
}

func kindName(kind string) string {
	return map[string]string{
		"bool": "true or false", "int": "an integer", "uint": "a non-negative integer", "float": "a number",
		"string": "a string", "list": "a string or a list of strings",
	}[kind]
}

func tagName(tag string) string {
	return map[string]string{
		"!!str": "the string", "!!int": "the integer", "!!float": "the number", "!!bool": "the boolean",
		"!!timestamp": "the date",
	}[tag]
}

func nodeKind(v *yaml.Node) string {
	switch v.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return "alias"
	}
	return "value"
}

// settingsError is an error of a command whose settings came in part from a run file:
// describe adds the lines that set the flags its message names.
type settingsError struct {
	err error
	r   *runFileFlags
}

func (e *settingsError) Error() string { return e.err.Error() }
func (e *settingsError) Unwrap() error { return e.err }

// wrap marks err as an error of these settings (nil stays nil).
func (r *runFileFlags) wrap(err error) error {
	if err == nil || len(r.origins) == 0 {
		return err
	}
	return &settingsError{err, r}
}

// describe is err as bear prints it: the libraries' option names as the command's flags
// (options), and for a flag a run file set, the file and line that set it.
func describe(err error, options map[string]string) string {
	msg := flagNames(err.Error(), options)
	var se *settingsError
	if !errors.As(err, &se) {
		return msg
	}
	var notes []string
	for _, name := range sortedFlagNames(se.r.origins) {
		if mentionsFlag(msg, name) {
			notes = append(notes, fmt.Sprintf("--%s is set by %s:%d", name, *se.r.path, se.r.origins[name]))
		}
	}
	if len(notes) == 0 {
		return msg
	}
	return msg + " (" + strings.Join(notes, "; ") + ")"
}

// mentionsFlag reports whether msg names --name as a whole flag (not --name-more).
func mentionsFlag(msg, name string) bool {
	for rest := msg; ; {
		i := strings.Index(rest, "--"+name)
		if i < 0 {
			return false
		}
		rest = rest[i+2+len(name):]
		if rest == "" || !(rest[0] == '-' || rest[0] >= 'a' && rest[0] <= 'z' || rest[0] >= '0' && rest[0] <= '9') {
			return true
		}
	}
}

func sortedFlagNames(m map[string]int) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// printConfig writes the resolved value of every flag of fs that a run file can hold, as a
// YAML mapping whose comments are the flags' usage lines: a run file to start from.
func (r *runFileFlags) printConfig(w io.Writer, fs *flag.FlagSet, skip ...string) error {
	doc := &yaml.Node{Kind: yaml.MappingNode}
	skipped := map[string]bool{}
	for _, s := range skip {
		skipped[s] = true
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if _, no := notSettable[f.Name]; no || skipped[f.Name] || err != nil {
			return
		}
		var v *yaml.Node
		if v, err = valueNode(f, r.lists[f.Name]); err != nil {
			return
		}
		usage := f.Usage
		if len(usage) > 100 {
			usage = usage[:97] + "..."
		}
		k := &yaml.Node{Kind: yaml.ScalarNode, Value: f.Name, HeadComment: "# " + strings.ReplaceAll(usage, "`", "")}
		doc.Content = append(doc.Content, k, v)
	})
	if err != nil {
		return err
	}
	src := "the defaults"
	if *r.path != "" {
		src = *r.path
	}
	fmt.Fprintf(w, "# %s settings resolved from %s and the command line\n", fs.Name(), src)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	return enc.Close()
}

// valueNode is a flag's current value as a typed YAML node.
func valueNode(f *flag.Flag, list bool) (*yaml.Node, error) {
	s := f.Value.String()
	switch flagKind(f) {
	case "bool":
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: s}, nil
	case "int", "uint":
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: s}, nil
	case "float":
		if !strings.ContainsAny(s, ".eEnN") { // 1 -> 1.0: YAML reads a plain 1 as an integer
			s += ".0"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: s}, nil
	case "list":
		seq := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		if lv, ok := f.Value.(interface{ values() []string }); ok {
			for _, item := range lv.values() {
				seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: item})
			}
		}
		return seq, nil
	}
	if list && s != "" && s != "none" {
		seq := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, item := range strings.Split(s, ",") {
			seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: item})
		}
		return seq, nil
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}, nil
}
