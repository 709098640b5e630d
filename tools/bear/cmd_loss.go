package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/bearrec/bear/lossgrad"
)

func init() {
	register(&command{name: "loss", summary: "evaluate an LML/MSL/BEAR case file: loss, gradients, pruning diagnostics as JSON", run: func(args []string) error {
		return lossMain(args, os.Stdout)
	}})
}

// lossMain reads one case file,
//
//	{"loss":"bear","tau":1,"xi":2.75,"lambda":0.25,"k":10,"positions":[{"logits":[...],"target":3},...]}
//
// evaluates it in float64 and writes
//
//	{"loss":x,"grads":[[...],...],"positions":[{"logp":..,"logbeta":..,"margin":..,"in_top_k":true,...},...],...}
func lossMain(args []string, stdout io.Writer) error {
	fs := newFlagSet("loss", "--cases FILE.json [--out FILE] [--indent]")
	cases := fs.String("cases", "", "case file (JSON; - reads standard input); absent tau, xi, lambda, k default to 1, 2.75, 0.25, 10")
	out := fs.String("out", "", "write the result here instead of standard output")
	indent := fs.Bool("indent", false, "indent the JSON output")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cases == "" {
		return fmt.Errorf("--cases is required")
	}
	if *out != "" {
		if st, err := os.Stat(*out); err == nil && st.IsDir() {
			return fmt.Errorf("--out %s is a folder, want a file", *out)
		}
	}
	var in io.Reader = os.Stdin
	name := "stdin"
	if *cases != "-" {
		f, err := os.Open(*cases)
		if err != nil {
			return fmt.Errorf("--cases: %w", err)
		}
		defer f.Close()
		in, name = bufio.NewReader(f), *cases
	}
	c, err := lossgrad.DecodeCase(name, in)
	if err != nil {
		return err
	}
	res, err := c.Run()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	w := stdout
	var f *os.File
	if *out != "" {
		if f, err = os.Create(*out); err != nil {
			return err
		}
		w = f
	}
	enc := json.NewEncoder(w)
	if *indent {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(res); err != nil {
		if f != nil {
			f.Close()
		}
		return fmt.Errorf("write result: %w", err)
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return fmt.Errorf("write %s: %w", *out, err)
		}
	}
	return nil
}
