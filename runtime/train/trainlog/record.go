package trainlog

import (
	"encoding/json"
	"math"
	"strings"
)

// The record kinds of a log line.
const (
	kindStep = "step"
	kindEval = "eval"
	kindRun  = "run"
)

// Run describes the data of a run when it starts or resumes ("kind":"run").
type Run struct {
	Kind       string `json:"kind"`             // "run"; WriteRun sets it
	Step       int    `json:"step"`             // optimizer steps done when the process started (0: a fresh run)
	Split      string `json:"split"`            // the training split file
	Rows       int    `json:"rows"`             // rows trained on (after --samples)
	DroppedIDs int    `json:"dropped_item_ids"` // ids of those rows missing from the catalogue, dropped as the official code does
	// Settings maps each setting of the run (Settings lists the names) to its value as a
	// string, so that the run can be described and rerun from its log alone (bear report).
	Settings map[string]string `json:"settings,omitempty"`
	// Flags is what logs written before Settings held instead: the same settings keyed by the
	// flags of bear train ("--lr", "--model (content sha256)"). Read only; ReadRuns moves them
	// into Settings.
	Flags map[string]string `json:"flags,omitempty"`
	// ValidSplit and ValidRows are the validation set evaluated after each epoch, if any.
	ValidSplit string `json:"valid_split,omitempty"`
	ValidRows  int    `json:"valid_rows,omitempty"`
	// RunFile and RunFileSHA256 name the run file the settings were read from, if any.
	RunFile       string `json:"run_file,omitempty"`
	RunFileSHA256 string `json:"run_file_sha256,omitempty"`
}

// Settings are the names of a run's settings in the run record (and in the identity of a
// training checkpoint): the content hashes of its inputs, what decides its numbers, and the
// paths and machine settings that do not.
var Settings = []string{
	"model_sha256", "split_sha256", "tokenizer_sha256", "dataset", "samples", "loss", "tau", "xi", "lambda", "k",
	"epochs", "max_steps", "batch", "norm_group", "micro_batch", "bucket", "lr", "warmup", "seed", "lora_dropout",
	"train", "lora_r", "lora_alpha", "lora_targets", "model", "data", "split", "tokenizer", "out", "eval_users",
	"checkpoint_every", "policy", "device", "threads", "valid", "valid_file", "early_stop",
}

// legacyHashKeys are the keys the content hashes had before Settings.
var legacyHashKeys = map[string]string{
	"--model (content sha256)": "model_sha256", "--data split (sha256)": "split_sha256", "--tokenizer (sha256)": "tokenizer_sha256",
}

// CurrentSettings returns m with the keys of logs and checkpoints written before Settings
// ("--norm-group", "--model (content sha256)") renamed to the current names ("norm_group",
// "model_sha256"); current keys are kept as they are.
func CurrentSettings(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if name, ok := legacyHashKeys[k]; ok {
			k = name
		} else if strings.HasPrefix(k, "--") {
			k = strings.ReplaceAll(strings.TrimPrefix(k, "--"), "-", "_")
		}
		out[k] = v
	}
	return out
}

// Step is one optimizer step ("kind":"step").
type Step struct {
	Kind        string  `json:"kind"`         // "step"; WriteStep sets it
	Step        int     `json:"step"`         // optimizer steps done, 1-based
	Epoch       float64 `json:"epoch"`        // epochs done, fractional
	Loss        float64 `json:"loss"`         // mean of the norm groups' losses
	LR          float64 `json:"lr"`           // learning rate used by this step
	GradNorm    float64 `json:"grad_norm"`    // global gradient norm before clipping
	Tokens      int     `json:"tokens"`       // real (non-padding) tokens in the step
	TokensPerS  float64 `json:"tokens_per_s"` // Tokens / step wall time
	StepMS      float64 `json:"step_ms"`      // wall time of the step
	PrunedShare float64 `json:"pruned_share"` // share of response positions whose target is outside the top-K allowed tokens
	MeanWeight  float64 `json:"mean_weight"`  // mean raw BEAR weight (1 for LML/MSL)
	ElapsedS    float64 `json:"elapsed_s"`    // wall time since the run (or its first resume) started
}

// Eval is one evaluation after an epoch ("kind":"eval").
type Eval struct {
	Kind     string             `json:"kind"`      // "eval"; WriteEval sets it
	Step     int                `json:"step"`      // optimizer steps done when the evaluation ran
	Epoch    int                `json:"epoch"`     // epochs done, 1-based
	Split    string             `json:"split"`     // "valid" (held-out rows) or "test"; older logs: "" (test)
	Users    int                `json:"users"`     // users evaluated
	Metrics  map[string]float64 `json:"metrics"`   // lower-case keys: "ndcg@10", "hr@1", ...
	ElapsedS float64            `json:"elapsed_s"` // wall time since the run started, when the evaluation ended
}

// number is a float64 whose JSON form is null when it is not finite. encoding/json refuses NaN
// and ±Inf, yet the step on which a run diverges is the one a log must keep.
type number float64

func (n number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(f)
}

func (n *number) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = number(math.NaN())
		return nil
	}
	// A *json.UnmarshalTypeError from here gets the field name added by the caller's decoder.
	return json.Unmarshal(b, (*float64)(n))
}

// stepJSON is Step's wire form: the same fields, with floats that may be null.
type stepJSON struct {
	Kind        string `json:"kind"`
	Step        int    `json:"step"`
	Epoch       number `json:"epoch"`
	Loss        number `json:"loss"`
	LR          number `json:"lr"`
	GradNorm    number `json:"grad_norm"`
	Tokens      int    `json:"tokens"`
	TokensPerS  number `json:"tokens_per_s"`
	StepMS      number `json:"step_ms"`
	PrunedShare number `json:"pruned_share"`
	MeanWeight  number `json:"mean_weight"`
	ElapsedS    number `json:"elapsed_s"`
}

// MarshalJSON writes the step with "kind":"step" and null for each value that is not finite.
func (s Step) MarshalJSON() ([]byte, error) {
	return json.Marshal(stepJSON{
		Kind: kindStep, Step: s.Step, Epoch: number(s.Epoch), Loss: number(s.Loss), LR: number(s.LR),
		GradNorm: number(s.GradNorm), Tokens: s.Tokens, TokensPerS: number(s.TokensPerS),
		StepMS: number(s.StepMS), PrunedShare: number(s.PrunedShare),
		MeanWeight: number(s.MeanWeight), ElapsedS: number(s.ElapsedS),
	})
}

// UnmarshalJSON reads a step; null values become NaN.
func (s *Step) UnmarshalJSON(b []byte) error {
	var w stepJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*s = Step{
		Kind: w.Kind, Step: w.Step, Epoch: float64(w.Epoch), Loss: float64(w.Loss), LR: float64(w.LR),
		GradNorm: float64(w.GradNorm), Tokens: w.Tokens, TokensPerS: float64(w.TokensPerS),
		StepMS: float64(w.StepMS), PrunedShare: float64(w.PrunedShare),
		MeanWeight: float64(w.MeanWeight), ElapsedS: float64(w.ElapsedS),
	}
	return nil
}

// Metric returns the metric named name ("ndcg@10"), matched without regard to case so that
// keys written by other tools ("NDCG@10") are found too.
func (e Eval) Metric(name string) (float64, bool) {
	if v, ok := e.Metrics[name]; ok {
		return v, true
	}
	for k, v := range e.Metrics {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return 0, false
}
