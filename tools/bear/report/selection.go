package report

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"strings"

	"github.com/bearrec/bear/onnx/peft"
	"github.com/bearrec/bear/runtime/train/trainlog"
)

// bestDir is the run folder's model of the best validated epoch (runtime/train.BestDir).
const bestDir = "best"

// modelUsed says which of the run's models its evaluation evaluated, and why that one: best/
// (chosen on the held-out validation rows), final/ (the last step), or an epoch folder chosen
// by hand. The test split never selects: the evaluations of --eval-users are not read here.
func modelUsed(r *Run, evals []trainlog.Eval) (string, error) {
	dir, m, steps := r.Dir, r.Metrics, r.Steps
	evaluated := m.Config.Adapter
	if evaluated == "" {
		evaluated = m.Config.Model // a run with --train full and no LoRA
	}
	name := filepath.Base(evaluated)
	if err := checkSameAdapter(r, name); err != nil {
		return "", err
	}
	last := steps[len(steps)-1]
	epochs := int(math.Floor(last.Epoch + 1e-9))
	sel, err := trainlog.ReadSelection(filepath.Join(dir, bestDir))
	hasBest := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	switch {
	case name == bestDir && !hasBest:
		return "", fmt.Errorf("%s evaluated %s, which has no %s: not a best/ folder of bear train", metricsPath(r), evaluated, trainlog.SelectionFile)
	case name == bestDir:
		return fmt.Sprintf("best/ = epoch %d of %d: the highest validation NDCG@10 (%.4f on %d held-out rows)", sel.Epoch, epochs, sel.Value, sel.Rows), nil
	case name == finalDir && hasBest:
		return fmt.Sprintf("final/ = step %d (epoch %.4g), the last: validation chose epoch %d (evaluate %s to use it)",
			last.Step, last.Epoch, sel.Epoch, filepath.Join(dir, bestDir)), nil
	case name == finalDir:
		return fmt.Sprintf("final/ = step %d (epoch %.4g), the last: the run had no validation set to select with", last.Step, last.Epoch), nil
	case strings.HasPrefix(name, "epoch-"):
		if hasValidation(evals) {
			return fmt.Sprintf("%s/, chosen by hand: validation chose epoch %d", name, sel.Epoch), nil
		}
		return fmt.Sprintf("%s/, chosen by hand", name), nil
	}
	return fmt.Sprintf("%s (not one of the run's model folders)", evaluated), nil
}

func hasValidation(evals []trainlog.Eval) bool {
	for _, e := range evals {
		if e.Split == "valid" {
			return true
		}
	}
	return false
}

// checkSameAdapter refuses an evaluation of one of the run's adapter folders that holds another
// adapter now (the run went on, or best/ moved to a later epoch, after the evaluation).
func checkSameAdapter(r *Run, name string) error {
	dir, m := r.Dir, r.Metrics
	if m.Config.AdapterSHA256 == "" || (name != bestDir && name != finalDir && !strings.HasPrefix(name, "epoch-")) {
		return nil
	}
	sum, err := peft.ContentSHA256(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // not an adapter folder of this run
	}
	if err != nil {
		return err
	}
	if sum != m.Config.AdapterSHA256 {
		return fmt.Errorf("%s evaluated an adapter that %s no longer holds (the run went on after the evaluation): evaluate it again",
			metricsPath(r), filepath.Join(dir, name))
	}
	return nil
}
