package train

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/bearrec/bear/internal/opterr"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/runtime/train/optim"
	"github.com/bearrec/bear/runtime/train/trainlog"
)

// Files of a run folder.
const (
	checkpointFile = "checkpoint.safetensors" // trainable values, AdamW moments, step, run identity
	LogFile        = "train.jsonl"            // one line per optimizer step (package trainlog)
	checkpointKind = "bear-train-checkpoint/1"
)

// state is the checkpoint's metadata: where the run stands and what it is. The data order and
// the dropout masks are functions of (seed, step), so the step is the whole RNG state.
type state struct {
	Format string `json:"format"`
	Step   int    `json:"step"` // optimizer steps done
	// Identity maps each flag (or input's content hash) that decides the run's numbers to its
	// value; a resumed run must match it exactly.
	Identity map[string]string `json:"identity"`
	// Checksums holds the CRC-32C of every tensor's values (absent in checkpoints written before
	// them): a flipped bit in a moment that no other check would notice stops the resume.
	Checksums map[string]string `json:"checksums,omitempty"`
	// LastStep is the log record of step Step (nil at step 0, and in older checkpoints): an
	// interruption that cuts its line from train.jsonl does not lose it.
	LastStep *trainlog.Step `json:"last_step,omitempty"`
}

// The settings of a run, as its checkpoint's identity and its log's run record store them, by
// stable names (trainlog documents them), each with the field of Options it comes from.
var settingOptions = map[string]string{
	"model_sha256": "Model", "split_sha256": "Split", "tokenizer_sha256": "Tokenizer", "dataset": "Dataset",
	"samples": "Samples", "loss": "Loss.Kind", "tau": "Loss.Tau", "xi": "Loss.Xi", "lambda": "Loss.Lambda", "k": "Loss.K",
	"epochs": "Epochs", "max_steps": "MaxSteps", "batch": "Batch.Batch", "norm_group": "Batch.NormGroup",
	"micro_batch": "Batch.Micro", "bucket": "Batch.Bucket", "lr": "LR", "warmup": "Warmup", "seed": "Seed",
	"lora_dropout": "LoRADropout", "train": "Full", "lora_r": "LoRA.Rank", "lora_alpha": "LoRA.Alpha", "lora_targets": "LoRA.Targets",
	"model": "Model", "data": "Data", "split": "Split", "tokenizer": "Tokenizer", "out": "Out", "eval_users": "EvalUsers",
	"checkpoint_every": "CheckpointEvery", "policy": "Policy", "device": "Runtime.Device", "threads": "Runtime.Threads",
}

// modelKey is the identity's key of the model's content.
const modelKey = "model_sha256"

// identity lists what a resumed run must share with the checkpoint: the content hashes of its
// inputs and every setting that decides the numbers.
func identity(o *Options, d *data, ck *hf.Checkpoint) (map[string]string, error) {
	model, err := ck.ContentSHA256()
	if err != nil {
		return nil, err
	}
	split, tok := d.SHA256, d.Tok.SHA256()
	id := map[string]string{
		modelKey: model, "split_sha256": split, "tokenizer_sha256": tok,
		"dataset": d.Name, "samples": strconv.Itoa(d.set.Len()), "loss": o.Loss.Kind.String(),
		"tau": fmtF(o.Loss.Tau), "xi": fmtF(o.Loss.Xi), "lambda": fmtF(o.Loss.Lambda), "k": strconv.Itoa(o.Loss.K),
		"epochs": strconv.Itoa(o.Epochs), "max_steps": strconv.Itoa(o.MaxSteps),
		"batch": strconv.Itoa(o.Batch.Batch), "norm_group": strconv.Itoa(o.Batch.NormGroup),
		"micro_batch": strconv.Itoa(o.Batch.Micro), "bucket": strconv.Itoa(o.Batch.Bucket),
		"lr": fmtF(o.LR), "warmup": strconv.Itoa(o.Warmup), "seed": strconv.FormatUint(o.Seed, 10),
		"lora_dropout": fmtF(o.LoRADropout), "train": trainMode(o),
	}
	if o.LoRA != nil {
		id["lora_r"], id["lora_alpha"] = strconv.Itoa(o.LoRA.Rank), fmtF(o.LoRA.Alpha)
		id["lora_targets"] = strings.Join(o.LoRA.Targets, ",")
	}
	if o.Valid > 0 { // the held-out rows are not trained on
		id["valid"] = strconv.Itoa(o.Valid)
	}
	return id, nil
}

// runSettings is the run record's description of the run (trainlog.Run.Settings): the identity
// plus the paths and machine settings that do not decide the numbers, so that a report can show
// how to rerun it. A run without LoRA records lora_targets "none".
func runSettings(o *Options, id map[string]string) map[string]string {
	f := map[string]string{
		"model": o.Model, "data": o.Data, "split": o.Split, "tokenizer": o.Tokenizer, "out": o.Out,
		"eval_users": strconv.Itoa(o.EvalUsers), "checkpoint_every": strconv.Itoa(o.CheckpointEvery),
		"policy": o.Policy.String(), "device": string(o.Runtime.Device),
		"threads": strconv.Itoa(o.Runtime.Threads), "lora_targets": "none",
		"valid": strconv.Itoa(o.Valid), "valid_file": o.ValidFile, "early_stop": strconv.Itoa(o.EarlyStop),
	}
	for k, v := range id {
		f[k] = v
	}
	return f
}

func fmtF(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func trainMode(o *Options) string {
	if o.Full {
		return "full"
	}
	return "lora"
}

// legacyModelHash is the model identity of checkpoints written before models were identified by
// hf.Checkpoint.ContentSHA256: "config.json=SHA;model.safetensors=SHA" over the files. A run
// from such a checkpoint resumes when its files hash the same.
func legacyModelHash(dir string) (string, error) {
	return contentHash(dir, "config.json", "*.safetensors")
}

// contentHash is the sha256 of the named files of dir (globs), in name order.
func contentHash(dir string, patterns ...string) (string, error) {
	var parts []string
	for _, p := range patterns {
		files, err := filepath.Glob(filepath.Join(dir, p))
		if err != nil {
			return "", err
		}
		sort.Strings(files)
		for _, f := range files {
			sum, err := hf.FileSHA256(f)
			if err != nil {
				return "", err
			}
			parts = append(parts, filepath.Base(f)+"="+sum)
		}
	}
	return strings.Join(parts, ";"), nil
}

// saveCheckpoint writes the trainable values, the AdamW state and the step atomically.
// rec is the log record of step (nil when the step was not logged here, as on the ranks that
// do not write).
func saveCheckpoint(dir string, s *stepper, step int, id map[string]string, rec *trainlog.Step) error {
	st := state{Format: checkpointKind, Step: step, Identity: id, Checksums: map[string]string{}, LastStep: rec}
	var ts []hf.WriteTensor
	add := func(prefix, name string, vals []float32) {
		ts = append(ts, hf.Float32Tensor(prefix+name, hf.F32, []int64{int64(len(vals))}, vals))
		st.Checksums[prefix+name] = checksum(vals)
	}
	for _, p := range s.params {
		add("param/", p.Name, p.Value)
	}
	for _, m := range s.opt.State().Params {
		add("exp_avg/", m.Name, m.ExpAvg)
		add("exp_avg_sq/", m.Name, m.ExpAvgSq)
	}
	meta, err := json.Marshal(st)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, checkpointFile)
	// hf.WriteSafetensors writes through internal/atomicfs: a crash leaves the previous
	// checkpoint or this one, never a torn file.
	return hf.WriteSafetensors(path, ts, map[string]string{"bear_train_state": string(meta)})
}

// checksum is the CRC-32C of vals' little-endian bytes, as "crc32c:%08x".
func checksum(vals []float32) string {
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	var buf [4096]byte
	for len(vals) > 0 {
		n := min(len(vals), len(buf)/4)
		for i, v := range vals[:n] {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		h.Write(buf[:4*n])
		vals = vals[n:]
	}
	return fmt.Sprintf("crc32c:%08x", h.Sum32())
}

// loadCheckpoint restores a run from dir's checkpoint after checking that it is the same run
// (model is the model folder, for checkpoints that identify it the old way), and returns its
// state (the number of optimizer steps done, the last step's log record).
func loadCheckpoint(dir, model string, s *stepper, id map[string]string) (*state, error) {
	path := filepath.Join(dir, checkpointFile)
	resumeErr := func(format string, args ...any) error { return opterr.New(opt("Resume"), dir, format, args...) }
	if _, err := os.Stat(path); err != nil {
		return nil, resumeErr("no %s there (a run writes it every %s steps and at each epoch's end)", checkpointFile, opt("CheckpointEvery"))
	}
	ts, meta, err := hf.ReadSafetensorsHeader(path)
	if err != nil {
		return nil, resumeErr("%v", err)
	}
	var st state
	if err := json.Unmarshal([]byte(meta["bear_train_state"]), &st); err != nil || st.Format != checkpointKind {
		return nil, resumeErr("%s is not a bear training checkpoint", path)
	}
	st.Identity = trainlog.CurrentSettings(st.Identity)
	if err := upgradeModelIdentity(st.Identity, id, model); err != nil {
		return nil, err
	}
	if err := sameRun(st.Identity, id); err != nil {
		return nil, resumeErr("%v", err)
	}
	read := func(key string, want int) ([]float32, error) {
		t, ok := ts[key]
		if !ok || t.NumElements() != int64(want) {
			return nil, resumeErr("%s: tensor %s missing or of the wrong size", path, key)
		}
		v, err := t.ReadFloat32()
		if err != nil {
			return nil, resumeErr("%v", err)
		}
		if sum, ok := st.Checksums[key]; st.Checksums != nil && (!ok || sum != checksum(v)) {
			return nil, resumeErr("%s: tensor %s does not match its checksum (%s recorded): the file is damaged; resume from a copy, or start a new %s", path, key, orNone(sum), opt("Out"))
		}
		return v, nil
	}
	var as optim.AdamWState
	as.Step = st.Step
	for _, p := range s.params {
		v, err := read("param/"+p.Name, len(p.Value))
		if err != nil {
			return nil, err
		}
		copy(p.Value, v)
		m, err := read("exp_avg/"+p.Name, len(p.Value))
		if err != nil {
			return nil, err
		}
		v2, err := read("exp_avg_sq/"+p.Name, len(p.Value))
		if err != nil {
			return nil, err
		}
		as.Params = append(as.Params, optim.MomentState{Name: p.Name, ExpAvg: m, ExpAvgSq: v2})
	}
	if err := s.opt.SetState(as); err != nil {
		return nil, resumeErr("%s: %v", path, err)
	}
	return &st, nil
}

// upgradeModelIdentity replaces, in a checkpoint's identity, a model hash of the old form
// (legacyModelHash) by this run's content identity when the model's files still hash the same,
// so that runs started before the change resume.
func upgradeModelIdentity(saved, now map[string]string, model string) error {
	old := saved[modelKey]
	if !strings.HasPrefix(old, "config.json=") {
		return nil
	}
	h, err := legacyModelHash(model)
	if err != nil {
		return err
	}
	if h == old {
		saved[modelKey] = now[modelKey]
	}
	return nil
}

// sameRun names the first setting in which a checkpoint's run and this one differ, by its
// field of Options.
func sameRun(saved, now map[string]string) error {
	keys := make([]string, 0, len(now))
	for k := range now {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if saved[k] != now[k] {
			a, b := showDifference(saved[k], now[k])
			name := opt(settingOptions[k])
			if strings.HasSuffix(k, "_sha256") {
				name += " (content sha256)"
			}
			return fmt.Errorf("the checkpoint was trained with %s %s, this run has %s %s: resume with the same settings, or start a new %s",
				name, a, name, b, opt("Out"))
		}
	}
	return nil
}

// showDifference shortens two differing values for a message so that the difference stays in
// view: values of up to 40 bytes whole, longer ones (content hashes) as the same window around
// their first differing byte.
func showDifference(a, b string) (string, string) {
	if len(a) <= 40 && len(b) <= 40 {
		return orNone(a), orNone(b)
	}
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	from := max(0, i-16)
	window := func(s string) string {
		if s == "" {
			return "(none)"
		}
		lo, hi := min(from, len(s)), min(len(s), i+16)
		out := s[lo:hi]
		if lo > 0 {
			out = "…" + out
		}
		if hi < len(s) {
			out += "…"
		}
		return out
	}
	return window(a), window(b)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
