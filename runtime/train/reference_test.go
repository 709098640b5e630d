package train

// The stepper against an independent PyTorch reference (tools/reference/trainref.py): for LML,
// MSL and BEAR, with LoRA dropout off and on, five optimizer steps of two norm groups of two
// micro-batches each. The reference's LML softmax runs over the model's 128 256 logits, as
// bear's does (the official script's over 128 257, its added <pad> row included).
// testdata/train/README.md says how the files are made:
//
//	go test ./runtime/train -run Reference -update   # case.json.gz and adapters/
//	make goldens-train                               # golden.json.gz

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/bearrec/bear/internal/testdeps"
	"github.com/bearrec/bear/lossgrad"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
	"github.com/bearrec/bear/onnx/peft"
	"github.com/bearrec/bear/runtime/ortrun"
	"github.com/bearrec/bear/runtime/train/optim"
	"github.com/bearrec/bear/runtime/train/trainset"
)

var updateReference = flag.Bool("update", false, "rewrite testdata/train/case.json.gz and the adapters (then run make goldens-train)")

const (
	refDir      = "../../testdata/train"
	refCaseFile = "case.json.gz"
	refGoldFile = "golden.json.gz"
	refSteps    = 5 // optimizer steps compared; inside the warm-up (refWarmup)
	refWarmup   = 8
	refSamples  = 40 // 5 steps of 8 sequences per epoch, 2 epochs: the schedule's total is 10
	refDropout  = 0.1
	// The weights have HF-like scales (std 0.05; float32 rounding grows with them: std 0.25
	// gave 4e-5). The gradient norm exceeds 1 (clipping) through a sharp temperature and a
	// large LoRA scaling alpha/r = 128 on small A and B (std 0.05), which leave the LoRA
	// branch's output moderate.
	refTau, refAlpha, refLoRAStd = 0.25, 512, 0.05
	// Tolerances, relative to the largest reference magnitude of what is compared (float32
	// against float64): the 1e-5 for gradients and adapters; losses and norms are
	// single sums and get the same bound; PEFT logits 1e-4 absolute.
	refGradTol, refParamTol, refScalarTol, refLogitTol = 1e-5, 1e-5, 1e-5, 1e-4
)

// refRun is one configuration of the stepper.
type refRun struct {
	Name    string
	Kind    lossgrad.Kind
	Dropout float64
}

var refRuns = []refRun{
	{"lml", lossgrad.LML, 0}, {"lml-dropout", lossgrad.LML, refDropout},
	{"msl", lossgrad.MSL, 0}, {"msl-dropout", lossgrad.MSL, refDropout},
	{"bear", lossgrad.BEAR, 0}, {"bear-dropout", lossgrad.BEAR, refDropout},
}

// refModelConfig is the tiny preset shrunk further (width 32, GQA 4:2, two layers) in float32,
// with the real Llama-3.2 vocabulary and tied embeddings.
func refModelConfig() hf.Config {
	p, _ := hf.LookupPreset("tiny")
	c := p.Config
	c.HiddenSize, c.IntermediateSize, c.NumLayers, c.NumHeads, c.NumKVHeads, c.HeadDim = 32, 64, 2, 4, 2, 8
	c.DType = hf.F32
	return c
}

// refInit is how the checkpoint is drawn (`bear init --config` flags).
var refInit = caseInit{Seed: 11, Std: 0.05, NormJitter: 0.1, DType: "fp32"}

// refOptions are the run settings shared by every configuration.
func refOptions(model, tok, out string, r refRun) Options {
	o := DefaultOptions()
	o.Model, o.Data, o.Tokenizer, o.Out = model, officeData, tok, out
	o.Samples, o.Epochs, o.LR, o.Warmup = refSamples, 2, 2e-2, refWarmup
	o.Loss.Kind, o.Loss.Tau = r.Kind, refTau // the run's defaults otherwise (xi, lambda, K)
	o.Batch = trainset.Options{Batch: 8, NormGroup: 4, Micro: 2, Seed: 42, Bucket: 16}
	o.LoRA = &llama.LoRASpec{Targets: []string{"q_proj", "v_proj"}, Rank: 4, Alpha: refAlpha}
	o.LoRADropout = r.Dropout
	o.Runtime = ortrun.ModelOptions{SessionOptions: ortrun.SessionOptions{Threads: 1}, CacheDir: filepath.Join(out, "cache")}
	return o
}

// TestReferenceTraining runs each configuration for refSteps optimizer steps and compares, step
// by step, the loss, the gradient norm, the accumulated gradient before clipping and the
// adapter after AdamW with the PyTorch reference; then writes the adapter as a run does and
// checks that its logits are those the reference computed from that file read by PEFT's names.
func TestReferenceTraining(t *testing.T) {
	tok := testdeps.Tokenizer(t)
	model := filepath.Join(t.TempDir(), "model")
	cfg := refModelConfig()
	if err := hf.WriteRandom(model, cfg, refInit.options()); err != nil {
		t.Fatal(err)
	}
	c := newCase(t, model, cfg)
	o := refOptions(model, tok, t.TempDir(), refRuns[0])
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	d, err := loadData(&o)
	if err != nil {
		t.Fatal(err)
	}
	shared := &refData{data: d, model: model, tokenizer: tok}
	var gold *refGolden
	if !*updateReference {
		gold = loadRefGolden(t)
	}
	for _, r := range refRuns {
		t.Run(r.Name, func(t *testing.T) {
			res := runReference(t, shared, r, c)
			if *updateReference {
				copyAdapterFiles(t, res.adapter, filepath.Join(refDir, "adapters", r.Name))
				return
			}
			g, ok := gold.run(r.Name)
			if !ok {
				t.Fatalf("%s has no run %s: run make goldens-train", refGoldFile, r.Name)
			}
			compareSteps(t, res, g)
			comparePEFT(t, model, res.adapter, r.Name, c, g.PEFT)
		})
	}
	if !*updateReference {
		checkCaseCurrent(t, c)
		return
	}
	if len(c.Runs) != len(refRuns) {
		t.Fatalf("-update ran %d of the %d configurations: drop the -run filter below Reference", len(c.Runs), len(refRuns))
	}
	writeGz(t, filepath.Join(refDir, refCaseFile), c)
	t.Log("wrote the case and adapters: now run make goldens-train")
}

// checkCaseCurrent fails when the inputs the stepper ran (data, masks, initialisation, settings)
// are not those of the committed case the golden was computed from. Only the configurations
// that ran are compared, so that -run can select some.
func checkCaseCurrent(t *testing.T, c *refCase) {
	var want refCase
	if err := json.Unmarshal(readGz(t, filepath.Join(refDir, refCaseFile)), &want); err != nil {
		t.Fatalf("%s: %v", refCaseFile, err)
	}
	ran := map[string]bool{}
	for _, r := range c.Runs {
		ran[r.Name] = true
	}
	runs := want.Runs[:0:0]
	for _, r := range want.Runs {
		if ran[r.Name] {
			runs = append(runs, r)
		}
	}
	want.Runs = runs
	if len(c.Steps) == 0 {
		want.Steps = nil
	}
	got, _ := json.Marshal(c)
	committed, _ := json.Marshal(&want)
	if !bytes.Equal(got, committed) {
		t.Errorf("%s is stale: the stepper's inputs changed (data, masks, initialisation or settings); rerun go test ./runtime/train -run Reference -update and make goldens-train", refCaseFile)
	}
}

// refData is the tokenised training rows every configuration shares.
type refData struct {
	*data
	model, tokenizer string
}

// refResult is what bear's stepper did in one configuration.
type refResult struct {
	steps   []StepStats
	grads   []map[string][]float64 // per step, the accumulated gradient before clipping
	params  []map[string][]float64 // per step, the adapter after AdamW
	adapter string                 // folder of the adapter written after the last step
}

// runReference builds a run as prepare does (sharing the tokenised data d between the
// configurations, which saves most of the test's time), replaces its LoRA initialisation by
// the case's, and performs refSteps optimizer steps. The first configuration adds the steps'
// inputs to the case (the data of every configuration is the same); each adds its dropout masks.
func runReference(t *testing.T, d *refData, r refRun, c *refCase) *refResult {
	record := len(c.Steps) == 0
	dir := t.TempDir()
	o := refOptions(d.model, d.tokenizer, filepath.Join(dir, "run"), r)
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	j := &job{o: &o, d: d.data, total: o.Epochs * d.set.StepsPerEpoch()}
	defer j.close()
	ck, err := hf.Open(o.Model)
	if err != nil {
		t.Fatal(err)
	}
	if j.tr, err = newTrainer(&o, ck); err != nil {
		t.Fatal(err)
	}
	if j.st, err = newStepper(&o, j.tr, d.set, j.total); err != nil {
		t.Fatal(err)
	}
	setInitial(t, j.tr, c)
	run := refCaseRun{Name: r.Name, Loss: caseLoss(o.Loss), Dropout: r.Dropout}
	res := &refResult{}
	for global := range refSteps {
		if record || r.Dropout > 0 {
			stepInputs(t, j, global, c, record, &run)
		}
		st, err := j.st.run(global)
		if err != nil {
			t.Fatal(err)
		}
		res.steps = append(res.steps, st)
		t.Logf("step %d: loss %.6g, grad norm %.4g, lr %.3g", st.Step, st.Loss, st.GradNorm, st.LR)
		res.grads = append(res.grads, unclipped(j, st.GradNorm))
		res.params = append(res.params, peftValues(j.tr, func(name string) []float64 { return widen(j.tr.Params[name], 1) }))
	}
	c.Runs = append(c.Runs, run)
	res.adapter = filepath.Join(dir, "adapter")
	if err := writeAdapter(res.adapter, &o, j.tr); err != nil {
		t.Fatal(err)
	}
	return res
}

// setInitial writes the case's A and B into the trainer in place of initLoRA's: B is not 0
// (PEFT's start), which would leave A's first gradients 0 and untested.
func setInitial(t *testing.T, tr *ortrun.Trainer[float32], c *refCase) {
	for _, in := range tr.Manifest.LoRAInputs {
		m, ok := c.Init[peft.Key(in.Layer, in.Module, in.Which)]
		if !ok {
			t.Fatalf("case has no initial %s", in.Name)
		}
		copy(tr.Params[in.Name], narrow(m))
	}
}

// stepInputs records optimizer step global as the stepper will run it: its micro-batches in
// the stepper's order and, with dropout, every LoRA module's mask for each of them.
func stepInputs(t *testing.T, j *job, global int, c *refCase, record bool, run *refCaseRun) {
	spe := j.d.set.StepsPerEpoch()
	st, err := j.d.set.NewBatcher().Step(global/spe, global%spe)
	if err != nil {
		t.Fatal(err)
	}
	var step refStep
	var masks [][]string
	micro := 0
	for _, g := range st.Groups {
		var group refGroup
		for _, mb := range g.Micro {
			group.Micro = append(group.Micro, caseMicro(mb))
			if run.Dropout > 0 {
				masks = append(masks, dropoutMasks(t, j, mb, dropoutSeed(j.o.Seed, global, micro)))
			}
			micro++
		}
		step.Groups = append(step.Groups, group)
	}
	if record {
		c.Steps = append(c.Steps, step)
	}
	if run.Dropout > 0 {
		run.Masks = append(run.Masks, masks)
	}
}

// dropoutMasks are the keep masks of every LoRA module for one micro-batch, by module index,
// packed 8 per byte (first element in the high bit, as numpy's packbits) and base64-encoded.
func dropoutMasks(t *testing.T, j *job, mb *trainset.MicroBatch, seed int64) []string {
	var out []string
	for _, in := range j.tr.Manifest.LoRAInputs {
		if in.Which != "A" {
			continue
		}
		m, _ := j.o.LoRA.ModuleIndex(in.Layer, in.Module)
		keep := llama.DropoutMask(seed, m, mb.B*mb.T, in.Cols, j.o.LoRADropout)
		packed := make([]byte, (len(keep)+7)/8)
		for i, k := range keep {
			if k {
				packed[i/8] |= 1 << (7 - i%8)
			}
		}
		if m != len(out) {
			t.Fatalf("LoRA input %s has module index %d, want %d: the A inputs are not in module order", in.Name, m, len(out))
		}
		out = append(out, base64.StdEncoding.EncodeToString(packed))
	}
	return out
}

// unclipped is the step's accumulated gradient before clipping, by PEFT key: the params'
// gradients after the step hold it multiplied by clip_grad_norm_'s factor
// min(1, 1/(norm + 1e-6)).
func unclipped(j *job, norm float64) map[string][]float64 {
	coef := min(1, maxGradNorm/(norm+1e-6))
	grads := map[string][]float32{}
	for _, p := range j.st.params {
		grads[p.Name] = p.Grad
	}
	return peftValues(j.tr, func(name string) []float64 { return widen(grads[name], 1/coef) })
}

// peftValues maps f of every LoRA matrix's graph name to PEFT's key names.
func peftValues(tr *ortrun.Trainer[float32], f func(name string) []float64) map[string][]float64 {
	out := map[string][]float64{}
	for _, in := range tr.Manifest.LoRAInputs {
		out[peft.Key(in.Layer, in.Module, in.Which)] = f(in.Name)
	}
	return out
}

func widen(x []float32, scale float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v) * scale
	}
	return out
}

func narrow(rows [][]float64) []float32 {
	var out []float32
	for _, r := range rows {
		for _, v := range r {
			out = append(out, float32(v))
		}
	}
	return out
}

// compareSteps checks every step against the reference and logs the worst relative errors.
func compareSteps(t *testing.T, res *refResult, g refGoldRun) {
	if len(g.Steps) < refSteps {
		t.Fatalf("golden has %d steps, want %d", len(g.Steps), refSteps)
	}
	clipped := 0
	var worst [4]float64 // loss, norm, gradient, adapter
	for s := range refSteps {
		want, got := g.Steps[s], res.steps[s]
		if got.LR != want.LR {
			t.Errorf("step %d: lr %v, reference %v", s+1, got.LR, want.LR)
		}
		if want.GradNorm > maxGradNorm {
			clipped++
		}
		errs := [4]float64{
			math.Abs(got.Loss-want.Loss) / math.Abs(want.Loss),
			math.Abs(got.GradNorm-want.GradNorm) / want.GradNorm,
			relErr(t, res.grads[s], flatByName(want.Grads)),
			relErr(t, res.params[s], flatByName(want.Params)),
		}
		for k, tol := range [4]float64{refScalarTol, refScalarTol, refGradTol, refParamTol} {
			worst[k] = max(worst[k], errs[k])
			if !(errs[k] <= tol) {
				t.Errorf("step %d: %s relative error %.3g > %g", s+1, [4]string{"loss", "grad norm", "gradient", "adapter"}[k], errs[k], tol)
			}
		}
	}
	if clipped == 0 {
		t.Errorf("the reference's gradient norm never exceeds %g in %d steps: clipping is untested", maxGradNorm, refSteps)
	}
	t.Logf("step 1's gradient: relative error %.2g; worst over %d steps (%d clipped): loss %.2g, grad norm %.2g, gradient %.2g, adapter %.2g",
		relErr(t, res.grads[0], flatByName(g.Steps[0].Grads)), refSteps, clipped, worst[0], worst[1], worst[2], worst[3])
}

// relErr is max |got - want| / max |want| over every matrix (the matrices of one step share a
// scale: the optimizer clips and steps them together).
func relErr(t *testing.T, got, want map[string][]float64) float64 {
	var diff, scale float64
	for name, w := range want {
		g, ok := got[name]
		if !ok || len(g) != len(w) {
			t.Fatalf("%s: %d values, reference %d", name, len(g), len(w))
		}
		for i := range w {
			diff, scale = max(diff, math.Abs(g[i]-w[i])), max(scale, math.Abs(w[i]))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d matrices, reference %d", len(got), len(want))
	}
	return diff / scale
}

func flatByName(m map[string][][]float64) map[string][]float64 {
	out := map[string][]float64{}
	for k, rows := range m {
		for _, r := range rows {
			out[k] = append(out[k], r...)
		}
	}
	return out
}

// comparePEFT loads the adapter bear wrote into a forward model and compares its logits with
// the reference's, computed from the committed copy of that adapter read by PEFT's key names.
// The fresh adapter must equal the committed one within float32 noise, or the golden is stale.
func comparePEFT(t *testing.T, model, adapter, name string, c *refCase, want refGoldPEFT) {
	cfg, err := hf.ReadConfig(model)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := peft.ReadAdapter(adapter, cfg)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := peft.ReadAdapter(filepath.Join(refDir, "adapters", name), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAdapterDiff(fresh, committed); d > 1e-6 {
		t.Fatalf("the adapter differs from testdata/train/adapters/%s by %.3g: rerun go test -run Reference -update and make goldens-train", name, d)
	}
	ck, err := hf.Open(model)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ortrun.Load(ck, ortrun.ModelOptions{LoRA: &fresh.Spec, Logits: llama.LogitsFullVocab, CacheDir: filepath.Join(t.TempDir(), "cache"), SessionOptions: ortrun.SessionOptions{Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.SetAdapter(fresh); err != nil {
		t.Fatal(err)
	}
	mb := c.Steps[want.Step].Groups[want.Group].Micro[want.Micro]
	logits, err := m.Logits(ortrun.TokenBatch{B: mb.B, T: mb.T, IDs: mb.IDs, Mask: mb.Mask, Pos: mb.Pos}, mb.Index, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var worst float64
	for p, row := range want.Logits {
		for k, col := range want.Columns {
			worst = max(worst, math.Abs(float64(logits[p*cfg.VocabSize+col])-row[k]))
		}
	}
	if !(worst <= refLogitTol) || len(want.Logits) != len(mb.Index) {
		t.Errorf("PEFT check: %d positions, max |logit error| %.3g (want %d, ≤ %g)", len(want.Logits), worst, len(mb.Index), refLogitTol)
	}
	t.Logf("PEFT check: max |logit error| %.2g over %d positions × %d columns; bear's adapter vs the reference's after %d steps: max |diff| %.2g",
		worst, len(want.Logits), len(want.Columns), refSteps, want.AdapterVsReference)
}

func maxAdapterDiff(a, b *peft.Adapter) float64 {
	d := 0.0
	for name, x := range a.Weights {
		y := b.Weights[name]
		if len(y) != len(x) {
			return math.Inf(1)
		}
		for i := range x {
			d = max(d, math.Abs(float64(x[i]-y[i])))
		}
	}
	return d
}

// copyAdapterFiles copies the files of an adapter folder into dst (the committed copy).
func copyAdapterFiles(t *testing.T, src, dst string) {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The case file: everything trainref.py needs besides the checkpoint, which it rebuilds with
// `bear init --config` from Model and checks against Model.SHA256.
type refCase struct {
	Generator string `json:"generator"`
	Model     struct {
		Config json.RawMessage `json:"config"`
		Init   caseInit        `json:"init"`
		SHA256 string          `json:"sha256"` // of model.safetensors
	} `json:"model"`
	LoRA struct {
		R       int      `json:"r"`
		Alpha   float64  `json:"alpha"`
		Targets []string `json:"targets"`
		// Modules[i] is the (layer, module) of dropout mask i (llama.LoRASpec.ModuleIndex).
		Modules []caseModule `json:"modules"`
	} `json:"lora"`
	Optim caseOptim              `json:"optim"`
	Init  map[string][][]float64 `json:"init"` // A and B before step 1, by PEFT key
	Steps []refStep              `json:"steps"`
	Runs  []refCaseRun           `json:"runs"`
	// PEFTCheck names the micro-batch whose logits the adapter check compares.
	PEFTCheck caseMicroRef `json:"peft_check"`
}

type caseMicroRef struct {
	Step  int `json:"step"`
	Group int `json:"group"`
	Micro int `json:"micro"`
}

type caseInit struct {
	Seed       uint64  `json:"seed"`
	Std        float64 `json:"std"`
	NormJitter float64 `json:"norm_jitter"`
	DType      string  `json:"dtype"`
}

func (i caseInit) options() hf.InitOptions {
	dt := hf.F32
	if i.DType == "bf16" {
		dt = hf.BF16
	}
	return hf.InitOptions{Seed: i.Seed, Std: i.Std, NormJitter: i.NormJitter, DType: dt}
}

type caseModule struct {
	Layer  int    `json:"layer"`
	Module string `json:"module"`
}

type caseOptim struct {
	LR          float64 `json:"lr"`
	Beta1       float64 `json:"beta1"`
	Beta2       float64 `json:"beta2"`
	Eps         float64 `json:"eps"`
	WeightDecay float64 `json:"weight_decay"`
	MaxGradNorm float64 `json:"max_grad_norm"`
	Warmup      int     `json:"warmup"`
	Total       int     `json:"total"` // optimizer steps of the schedule
	Steps       int     `json:"steps"` // optimizer steps to run
}

type caseLossConfig struct {
	Kind   string  `json:"kind"`
	Tau    float64 `json:"tau"`
	Xi     float64 `json:"xi"`
	Lambda float64 `json:"lambda"`
	K      int     `json:"k"`
}

func caseLoss(c lossgrad.Config) caseLossConfig {
	return caseLossConfig{Kind: c.Kind.String(), Tau: c.Tau, Xi: c.Xi, Lambda: c.Lambda, K: c.K}
}

type refStep struct {
	Groups []refGroup `json:"groups"`
}

type refGroup struct {
	Micro []refMicro `json:"micro"`
}

// refMicro is one micro-batch in trainset's layout: [B·T] ids, mask and positions, the flat
// slot of the logit of each supervised position, its target and allowed tokens.
type refMicro struct {
	B       int     `json:"b"`
	T       int     `json:"t"`
	IDs     []int64 `json:"ids"`
	Mask    []int64 `json:"mask"`
	Pos     []int64 `json:"pos"`
	Index   []int64 `json:"index"`
	Targets []int   `json:"targets"`
	Allowed [][]int `json:"allowed"`
}

func caseMicro(mb *trainset.MicroBatch) refMicro {
	return refMicro{B: mb.B, T: mb.T, IDs: clone(mb.IDs), Mask: clone(mb.Mask), Pos: clone(mb.Pos),
		Index: clone(mb.Index), Targets: clone(mb.Targets), Allowed: clone(mb.Allowed)}
}

func clone[S ~[]E, E any](s S) S { return append(S(nil), s...) }

// refCaseRun is one configuration; Masks[step][micro][module] with dropout (micro counts
// across the step's groups, as the stepper's dropout seeds do).
type refCaseRun struct {
	Name    string         `json:"name"`
	Loss    caseLossConfig `json:"loss"`
	Dropout float64        `json:"dropout"`
	Masks   [][][]string   `json:"masks,omitempty"`
}

// newCase fills everything but the steps and runs.
func newCase(t *testing.T, model string, cfg hf.Config) *refCase {
	c := &refCase{Generator: "go test ./runtime/train -run Reference -update"}
	cj, err := cfg.JSON()
	if err != nil {
		t.Fatal(err)
	}
	c.Model.Config, c.Model.Init = cj, refInit
	if c.Model.SHA256, err = hf.FileSHA256(filepath.Join(model, "model.safetensors")); err != nil {
		t.Fatal(err)
	}
	o := refOptions(model, "", "", refRuns[0])
	c.LoRA.R, c.LoRA.Alpha, c.LoRA.Targets = o.LoRA.Rank, o.LoRA.Alpha, o.LoRA.Targets
	a := optim.DefaultAdamW()
	c.Optim = caseOptim{LR: o.LR, Beta1: a.Beta1, Beta2: a.Beta2, Eps: a.Eps, WeightDecay: a.WeightDecay, MaxGradNorm: maxGradNorm,
		Warmup: o.Warmup, Total: o.Epochs * refSamples / o.Batch.Batch, Steps: refSteps}
	c.Init = map[string][][]float64{}
	rng := rand.New(rand.NewPCG(5, 5))
	spec := *o.LoRA
	for _, in := range spec.Inputs(cfg) {
		if in.Which == "A" {
			c.LoRA.Modules = append(c.LoRA.Modules, caseModule{in.Layer, in.Module})
		}
		rows := make([][]float64, in.Rows)
		for r := range rows {
			rows[r] = make([]float64, in.Cols)
			for k := range rows[r] {
				rows[r][k] = float64(float32(refLoRAStd * rng.NormFloat64()))
			}
		}
		c.Init[peft.Key(in.Layer, in.Module, in.Which)] = rows
	}
	return c
}

// The golden file written by trainref.py.
type refGolden struct {
	Generator string       `json:"generator"`
	Torch     string       `json:"torch"`
	Runs      []refGoldRun `json:"runs"`
}

type refGoldRun struct {
	Name  string `json:"name"`
	Steps []struct {
		Loss     float64                `json:"loss"`
		GradNorm float64                `json:"grad_norm"`
		LR       float64                `json:"lr"`
		Grads    map[string][][]float64 `json:"grads"`  // accumulated, before clipping
		Params   map[string][][]float64 `json:"params"` // after the optimizer step
	} `json:"steps"`
	PEFT refGoldPEFT `json:"peft"`
}

type refGoldPEFT struct {
	caseMicroRef
	Columns []int       `json:"columns"`
	Logits  [][]float64 `json:"logits"` // [position][column]
	// AdapterVsReference is max |bear's adapter - the reference's| after the last step.
	AdapterVsReference float64 `json:"adapter_vs_reference"`
}

func (g *refGolden) run(name string) (refGoldRun, bool) {
	for _, r := range g.Runs {
		if r.Name == name {
			return r, true
		}
	}
	return refGoldRun{}, false
}

func loadRefGolden(t *testing.T) *refGolden {
	var g refGolden
	if err := json.Unmarshal(readGz(t, filepath.Join(refDir, refGoldFile)), &g); err != nil {
		t.Fatalf("%s: %v", refGoldFile, err)
	}
	return &g
}

func readGz(t *testing.T, path string) []byte {
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%v (make it with go test -run Reference -update, then make goldens-train)", err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	data, err := io.ReadAll(z)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return data
}

func writeGz(t *testing.T, path string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	z := gzip.NewWriter(&buf) // no name, no time: the same case gives the same bytes
	z.Write(data)
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(fmt.Errorf("write %s: %w", path, err))
	}
}
