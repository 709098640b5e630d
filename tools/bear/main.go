// Command bear fine-tunes Llama-3.2 checkpoints for generative recommendation with the BEAR
// objective and evaluates them with trie-constrained beam search.
//
// Each subcommand lives in its own cmd_*.go file and registers itself in init.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/bearrec/bear/runtime/ortrun"
	"github.com/bearrec/bear/runtime/train/comm"
)

// command is one `bear NAME` subcommand. run receives the arguments after NAME and owns its flags.
type command struct {
	name    string
	summary string
	run     func(args []string) error
	// options maps the names the command's libraries give options in errors (train.Options.LR)
	// to the command's flags (--lr): see optionflags.go.
	options map[string]string
}

var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("bear: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: bear COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'bear COMMAND -h' or 'bear help COMMAND' for the flags of one command, 'bear --version' for the versions.")
}

func main() { os.Exit(runMain(os.Args[1:], os.Stderr)) }

// tracebackEnv set to 1 adds the Go stack trace to an internal error's message.
const tracebackEnv = "BEAR_TRACEBACK"

// runMain runs `bear ARGS...` and returns the exit status: 0 (help and --version included), 1
// for an error, 2 for a usage error.
func runMain(args []string, stderr io.Writer) int {
	if len(args) < 1 {
		usage()
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage()
		return 0
	case "help":
		return runHelp(args[1:], stderr)
	case "-version", "--version", "version":
		printVersion(os.Stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "bear: unknown command %q\n", args[0])
		usage()
		return 2
	}
	err := runCommand(c, args[1:])
	var ie *internalError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp): // -h: the flags were printed as asked
		return 0
	case errors.As(err, &ie):
		fmt.Fprintf(stderr, "bear %s: internal error: %v (a bug in bear: please report it with the command line; "+
			"%s=1 adds the stack trace)\n", c.name, ie.value, tracebackEnv)
		if os.Getenv(tracebackEnv) == "1" {
			stderr.Write(ie.stack)
		}
		return 1
	}
	fmt.Fprintf(stderr, "bear %s: %s\n", c.name, describe(err, c.options))
	return 1
}

// runHelp is `bear help [COMMAND]`: the general usage, or the command's own (its -h).
func runHelp(args []string, stderr io.Writer) int {
	if len(args) == 0 {
		usage()
		return 0
	}
	c, ok := commands[args[0]]
	if !ok || len(args) > 1 {
		fmt.Fprintf(stderr, "bear help: unknown command %q\n", strings.Join(args, " "))
		usage()
		return 2
	}
	if err := runCommand(c, []string{"-h"}); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stderr, "bear %s: %v\n", c.name, err)
		return 1
	}
	return 0
}

// buildCommit is set by the Makefile's build (-ldflags -X main.buildCommit=...): the checkout's
// `git describe`, which works where Go's own VCS stamp is turned off.
var buildCommit string

// printVersion prints bear's module version and commit (from the build information Go embeds,
// or buildCommit) and the ONNX Runtime library it finds, or why it finds none.
func printVersion(w io.Writer) {
	version, commit := "(unknown)", "(unknown)"
	if buildCommit != "" {
		commit = buildCommit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		version = bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					commit += " (with uncommitted changes)"
				}
			}
		}
	}
	fmt.Fprintf(w, "bear %s, commit %s, %s, MPI binding: %v\n", version, commit, goruntime.Version(), comm.Built)
	if lib, v, err := ortrun.LibraryVersion(""); err != nil {
		fmt.Fprintf(w, "ONNX Runtime: not loaded: %v\n", err)
	} else {
		fmt.Fprintf(w, "ONNX Runtime %s (%s)\n", v, lib)
	}
}

// internalError is a panic inside a command, recovered so that the user gets one line, not a
// Go stack trace (kept for $BEAR_TRACEBACK=1).
type internalError struct {
	value any
	stack []byte
}

func (e *internalError) Error() string { return fmt.Sprintf("internal error: %v", e.value) }

// runCommand runs c, turning a panic of the command's own goroutine into an internalError: the
// last resort behind the validation of every flag before work starts.
func runCommand(c *command, args []string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &internalError{value: r, stack: debug.Stack()}
		}
	}()
	return c.run(args)
}

// newFlagSet returns a flag set for one subcommand whose usage line names it.
func newFlagSet(name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet("bear "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: bear %s %s\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// isFlagSet reports whether the flag was given on the command line.
func isFlagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// parseFlags parses a command's arguments and refuses positional ones: every command but
// `bear eval --merge` takes flags only, and a stray word is a mistyped flag or a missing "--".
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: %s takes flags only (-h lists them)", fs.Args(), fs.Name())
	}
	return nil
}

// checkPositive refuses a count below 1 for the flag name.
func checkPositive(name string, v int) error {
	if v < 1 {
		return fmt.Errorf("--%s %d: want a positive count", name, v)
	}
	return nil
}

// checkFinite refuses NaN and infinities for the flag name.
func checkFinite(name string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("--%s %v: want a finite number", name, v)
	}
	return nil
}
