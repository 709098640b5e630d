package trainlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// Read returns the step and evaluation records of the log at path, in file order. A final line
// that is not newline-terminated and not valid JSON is a write cut short (SIGKILL) and is
// skipped; any other line that does not decode, lacks "kind" or "step", or has an unknown kind
// is an error naming the file and line ("train.jsonl:12: ...").
func Read(path string) (steps []Step, evals []Eval, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	recs, _, err := parseLog(path, data)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range recs {
		switch r.kind {
		case kindStep:
			steps = append(steps, r.stepRec)
		case kindEval:
			evals = append(evals, r.evalRec)
		}
	}
	return steps, evals, nil
}

// ReadRuns returns the run records of the log at path (one per start or resume of the run), in
// file order; the file is checked as Read checks it.
//
// Run records of logs written before Run.Settings have their flags read as Settings.
func ReadRuns(path string) ([]Run, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	recs, _, err := parseLog(path, data)
	if err != nil {
		return nil, err
	}
	var runs []Run
	for _, r := range recs {
		if r.kind == kindRun {
			run := r.runRec
			if run.Settings == nil && run.Flags != nil { // a log written before settings
				run.Settings = CurrentSettings(run.Flags)
			}
			run.Flags = nil
			runs = append(runs, run)
		}
	}
	return runs, nil
}

// record is one decoded line together with its bytes, so that a rewrite keeps them unchanged.
type record struct {
	raw     []byte // the line including its '\n'
	kind    string
	step    int
	stepRec Step
	evalRec Eval
	runRec  Run
}

// parseLog splits data into records. torn reports a final line without '\n': dropped when it
// is not valid JSON (torn), kept with a '\n' added to its raw bytes when it is.
func parseLog(path string, data []byte) (recs []record, torn bool, err error) {
	for lineNo := 1; len(data) > 0; lineNo++ {
		line, rest, terminated := bytes.Cut(data, []byte{'\n'})
		data = rest
		if !terminated && !json.Valid(line) {
			return recs, true, nil // a write cut short: a JSON object cut before its last byte is invalid
		}
		r, err := decodeRecord(line)
		if err != nil {
			return nil, false, fmt.Errorf("%s:%d: %w", path, lineNo, err)
		}
		if !terminated { // complete but for its '\n'
			r.raw = append(append([]byte(nil), line...), '\n')
			return append(recs, r), true, nil
		}
		r.raw = line[:len(line)+1] // line is a prefix of data: this takes its '\n' along
		recs = append(recs, r)
	}
	return recs, false, nil
}

// decodeRecord decodes one line (without its '\n').
func decodeRecord(line []byte) (record, error) {
	if len(bytes.TrimSpace(line)) == 0 {
		return record{}, errors.New("empty line")
	}
	var head struct {
		Kind *string `json:"kind"`
		Step *int    `json:"step"`
	}
	if err := json.Unmarshal(line, &head); err != nil {
		return record{}, fmt.Errorf("not a JSON record: %w", err)
	}
	if head.Kind == nil {
		return record{}, errors.New(`no "kind"`)
	}
	if head.Step == nil {
		return record{}, fmt.Errorf(`%s record without "step"`, *head.Kind)
	}
	r := record{kind: *head.Kind, step: *head.Step}
	var err error
	switch r.kind {
	case kindStep:
		err = json.Unmarshal(line, &r.stepRec)
	case kindEval:
		err = json.Unmarshal(line, &r.evalRec)
		if r.evalRec.Split == "" {
			r.evalRec.Split = "test" // logs written before validation sets evaluated only test users
		}
	case kindRun:
		err = json.Unmarshal(line, &r.runRec)
	default:
		return record{}, fmt.Errorf("unknown record kind %q (want %q, %q or %q)", r.kind, kindStep, kindEval, kindRun)
	}
	if err != nil {
		return record{}, fmt.Errorf("%s record: %w", r.kind, err)
	}
	return r, nil
}
