package results

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/bearrec/bear/internal/atomicfs"
)

// File names inside an evaluation folder.
const (
	PredictionsName = "predictions.json"
	MetricsName     = "metrics.json"
)

// Config is the "config" section of metrics.json. Every field except those marked "not
// compared" must be equal for shards to be merged.
type Config struct {
	Dataset         string `json:"dataset"`
	SplitFile       string `json:"split_file"` // base name
	SplitSHA256     string `json:"split_sha256"`
	CatalogueSHA256 string `json:"catalogue_sha256"`
	TokenizerSHA256 string `json:"tokenizer_sha256"`
	ModelSHA256     string `json:"model_sha256"` // the model's content identity (hf.Checkpoint.ContentSHA256)
	AdapterSHA256   string `json:"adapter_sha256,omitempty"`
	Limit           int    `json:"limit"`
	SelectedUsers   int    `json:"selected_users"` // rows after --limit, before sharding
	ShardCount      int    `json:"shard_count"`

	Beams         int     `json:"beams"`
	Return        int     `json:"return"`
	Constrain     string  `json:"constrain"` // "after" (HF prefix_allowed_tokens_fn) or "before" (official custom CBS)
	LengthPenalty float64 `json:"length_penalty"`
	StopRule      string  `json:"stop_rule"`
	MaxNewTokens  int     `json:"max_new_tokens"`

	Pruning            bool     `json:"pruning"`
	ExactLengthPenalty *float64 `json:"exact_length_penalty,omitempty"`
	MaxFrontier        int      `json:"max_frontier,omitempty"`

	// Not compared.
	Shard     string `json:"shard"` // "i/n"
	Model     string `json:"model"`
	Adapter   string `json:"adapter,omitempty"`
	Data      string `json:"data"`
	KVCache   bool   `json:"kv_cache"`
	Batch     int    `json:"batch"`
	ShardList []int  `json:"merged_shards,omitempty"` // shard indices a merged file covers
}

// Comparable is the part of c that must agree across shards and with a resumed journal.
func (c Config) Comparable() Config {
	c.Shard, c.Model, c.Adapter, c.Data, c.KVCache, c.Batch, c.ShardList = "", "", "", "", false, 0, nil
	return c
}

// CatalogueInfo describes the catalogue in metrics.json.
type CatalogueInfo struct {
	Items  int `json:"items"`
	Titles int `json:"distinct_titles"`
	// CleanupChanged counts the titles that transformers' decode cleanup alters, which the
	// official string match can therefore never count as hits.
	CleanupChanged      int `json:"cleanup_changed_titles"`
	CleanupChangedItems int `json:"cleanup_changed_items"` // item ids with such a title
}

// Timing of the decoding in metrics.json (not part of any comparison).
type Timing struct {
	Users   int     `json:"users"`          // users decoded by this run (resumed ones excluded)
	WallS   float64 `json:"decode_seconds"` // decoding loop, scorer loading excluded
	ScorerS float64 `json:"scorer_seconds"` // inside Scorer.Start/Step (ONNX Runtime and the scorer's own Go work)
	GoShare float64 `json:"go_share"`       // 1 - scorer/decode: search, prompts, decoding strings
	ORTS    float64 `json:"ort_seconds"`    // inside ONNX Runtime's Run during the decoding loop
	// GoShareOutsideORT is 1 - ort/decode: every Go cost, the scorers' own (inputs, cache
	// bookkeeping, log-sum-exp without a cache) included.
	GoShareOutsideORT float64 `json:"go_share_outside_ort"`
	UsersPerS         float64 `json:"users_per_second"` // users / decode_seconds
	LoadS             float64 `json:"load_seconds"`     // opening the scorer
	TotalS            float64 `json:"total_seconds"`
}

// Finish derives the shares and the rate from the counts and seconds.
func (t *Timing) Finish() {
	if t.WallS > 0 {
		t.GoShare = 1 - t.ScorerS/t.WallS
		t.GoShareOutsideORT = 1 - t.ORTS/t.WallS
		t.UsersPerS = float64(t.Users) / t.WallS
	}
}

// Add sums the counts and seconds of another shard's timing (the shares are derived by Finish).
func (t *Timing) Add(o Timing) {
	t.Users += o.Users
	t.WallS += o.WallS
	t.ScorerS += o.ScorerS
	t.ORTS += o.ORTS
	t.LoadS += o.LoadS
	t.TotalS += o.TotalS
}

// PruningSummary is the "pruning" section of metrics.json (decode.PruneSummary).
type PruningSummary struct {
	Users       int     `json:"users"`
	InExact     int     `json:"target_in_exact_top_b"`
	InBeam      int     `json:"target_returned_by_beam"`
	Pruned      int     `json:"incorrectly_pruned"`
	Rate        float64 `json:"rate"`          // incorrectly_pruned / users
	RateOfExact float64 `json:"rate_of_exact"` // incorrectly_pruned / target_in_exact_top_b
	// LostHits counts the targets beam search did not return although their own score beats
	// the last returned hypothesis; LostHitRate = lost_hits / (target_returned_by_beam + lost_hits).
	LostHits    int            `json:"lost_hits"`
	LostHitRate float64        `json:"lost_hit_rate"`
	LostAtStep  map[string]int `json:"lost_at_step"` // decoding step (1-based) at which a pruned target fell out
	ByHow       map[string]int `json:"by_how"`
	Truncated   int            `json:"exact_search_capped"`
}

// Metrics is metrics.json.
type Metrics struct {
	ItemMatch     map[string]float64 `json:"item_match"`
	OfficialMatch map[string]float64 `json:"official_match"`
	Primary       string             `json:"primary"` // which of the two is the headline
	Users         int                `json:"users"`
	DroppedIDs    int                `json:"dropped_item_ids"` // ids of the users' rows missing from the catalogue, dropped as the official code does
	Pruning       *PruningSummary    `json:"pruning,omitempty"`
	Catalogue     CatalogueInfo      `json:"catalogue"`
	Config        Config             `json:"config"`
	Timing        Timing             `json:"timing"`
}

// Headline returns the primary metrics.
func (m *Metrics) Headline() map[string]float64 {
	if m.Primary == "official_match" {
		return m.OfficialMatch
	}
	return m.ItemMatch
}

// PruneInfo is the pruning analysis of one user (decode.PruneCase).
type PruneInfo struct {
	BeamRank  int    `json:"beam_rank"`
	ExactRank int    `json:"exact_rank"`
	Pruned    bool   `json:"pruned"`
	How       string `json:"how"`
	Step      int    `json:"step"`
	Truncated bool   `json:"truncated,omitempty"`
	// TargetScore is the beam's final score of the target's whole sequence (absent where no
	// search could return it); LostHit: not returned although it beats the last returned.
	TargetScore *float64 `json:"target_score,omitempty"`
	LostHit     bool     `json:"lost_hit"`
}

// Record is one user's entry of predictions.json: the official fields (instruction, input,
// output, predict, scores) followed by ours, all prefixed bear_.
type Record struct {
	Instruction string    `json:"instruction"`
	Input       string    `json:"input"`
	Output      string    `json:"output"`
	Predict     []string  `json:"predict"`
	Scores      []float64 `json:"scores"`

	Row          int        `json:"bear_row"` // 0-based row of the split file
	UserID       int        `json:"bear_user_id"`
	TargetItem   int        `json:"bear_target_item"`
	PredictItems [][]int    `json:"bear_predict_items"`     // item ids of each prediction (several for duplicate titles)
	Rank         int        `json:"bear_rank"`              // item identity, -1 if not predicted
	OfficialRank int        `json:"bear_official_rank"`     // official string match, -1 if not matched
	Pruning      *PruneInfo `json:"bear_pruning,omitempty"` // with --pruning
}

func writeJSON(path string, v any) error {
	return atomicfs.WriteBuffered(path, func(w io.Writer) error {
		e := json.NewEncoder(w)
		e.SetIndent("", "    ")
		e.SetEscapeHTML(false)
		return e.Encode(v)
	})
}

// Write writes predictions.json first and metrics.json last: a folder with a metrics.json is
// complete.
func Write(dir string, recs []Record, m *Metrics) error {
	if err := writeJSON(filepath.Join(dir, PredictionsName), recs); err != nil {
		return err
	}
	return writeJSON(filepath.Join(dir, MetricsName), m)
}

// Read reads a folder's metrics.json and predictions.json.
func Read(dir string) (*Metrics, []Record, error) {
	m, err := readMetrics(dir)
	if err != nil {
		return nil, nil, err
	}
	var recs []Record
	if err := readJSON(filepath.Join(dir, PredictionsName), &recs); err != nil {
		return nil, nil, err
	}
	if len(recs) != m.Users {
		return nil, nil, fmt.Errorf("%s: %d records but metrics.json says %d users", filepath.Join(dir, PredictionsName), len(recs), m.Users)
	}
	return m, recs, nil
}

// readMetrics reads a folder's metrics.json.
func readMetrics(dir string) (*Metrics, error) {
	var m Metrics
	if err := readJSON(filepath.Join(dir, MetricsName), &m); err != nil {
		return nil, err
	}
	return &m, nil
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Diff names the JSON fields in which the comparable parts of a and b differ ("" when none).
func Diff(a, b Config) string {
	a, b = a.Comparable(), b.Comparable()
	var ma, mb map[string]any
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	json.Unmarshal(ja, &ma)
	json.Unmarshal(jb, &mb)
	var keys []string
	for k := range ma {
		keys = append(keys, k)
	}
	for k := range mb {
		if _, ok := ma[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var diff []string
	for _, k := range keys {
		if fmt.Sprint(ma[k]) != fmt.Sprint(mb[k]) {
			diff = append(diff, fmt.Sprintf("%s: %v vs %v", k, ma[k], mb[k]))
		}
	}
	if len(diff) == 0 {
		return ""
	}
	return fmt.Sprint(diff)
}
