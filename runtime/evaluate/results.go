package evaluate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/bearrec/bear/decode"
	"github.com/bearrec/bear/internal/atomicfs"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/runtime"
)

// File names inside an output folder.
const (
	PredictionsName = "predictions.json"
	MetricsName     = "metrics.json"
	journalName     = "journal.jsonl"
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

// identity is the part of c that must agree across shards and with a resumed journal.
func (c Config) identity() Config {
	c.Shard, c.Model, c.Adapter, c.Data, c.KVCache, c.Batch, c.ShardList = "", "", "", "", false, 0, nil
	return c
}

func constrainName(m decode.Mode) string {
	if m == decode.BeforeSoftmax {
		return "before"
	}
	return "after"
}

func stopName(s decode.StopRule) string {
	if s == decode.StopVectorized {
		return "vectorized"
	}
	return "scorer"
}

func runConfig(o Options, d *Data) (Config, error) {
	o.defaults()
	sc := o.SearchConfig()
	c := Config{
		Dataset: d.Name, SplitFile: filepath.Base(d.SplitFile), Limit: o.Limit, SelectedUsers: d.Selected,
		ShardCount: o.Shard.count(), Beams: sc.Beams, Return: sc.Return, Constrain: constrainName(sc.Mode),
		LengthPenalty: sc.LengthPenalty, StopRule: stopName(sc.Stop), MaxNewTokens: sc.MaxNewTokens,
		Pruning: o.Pruning, Shard: o.Shard.String(), Model: o.Model, Adapter: o.Adapter, Data: o.Data,
		KVCache: o.KVCache, Batch: o.Batch,
	}
	if o.Pruning {
		lp := o.ExactLengthPenalty
		c.ExactLengthPenalty, c.MaxFrontier = &lp, o.MaxFrontier
	}
	var err error
	if c.SplitSHA256, err = runtime.FileSHA256(d.SplitFile); err != nil {
		return c, err
	}
	if c.CatalogueSHA256, err = runtime.FileSHA256(filepath.Join(o.Data, "id2name4Rec.json")); err != nil {
		return c, err
	}
	if c.TokenizerSHA256, err = runtime.FileSHA256(o.Tokenizer); err != nil {
		return c, err
	}
	if c.ModelSHA256, err = modelSHA256(o.Model); err != nil {
		return c, err
	}
	if o.Adapter != "" {
		if c.AdapterSHA256, err = dirSHA256(o.Adapter, "adapter_config.json", "adapter_model.safetensors"); err != nil {
			return c, err
		}
	}
	return c, nil
}

func dirSHA256(dir string, names ...string) (string, error) {
	h := sha256.New()
	for _, n := range names {
		s, err := runtime.FileSHA256(filepath.Join(dir, n))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %s\n", n, s)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// modelSHA256 is the content identity of the checkpoint in dir: shards or journals of two
// different models never merge or resume into one result, whatever their shapes and names.
func modelSHA256(dir string) (string, error) {
	ck, err := hf.Open(dir)
	if err != nil {
		return "", err
	}
	return ck.ContentSHA256()
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

func (t *Timing) finish() {
	if t.WallS > 0 {
		t.GoShare = 1 - t.ScorerS/t.WallS
		t.GoShareOutsideORT = 1 - t.ORTS/t.WallS
		t.UsersPerS = float64(t.Users) / t.WallS
	}
}

// add sums the counts and seconds of another shard's timing (the shares are derived by finish).
func (t *Timing) add(o Timing) {
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

// Compute derives the metrics of records (item identity and official string match, and the
// pruning summary where the records carry it).
func Compute(recs []Record, cfg Config, official bool) *Metrics {
	item := make([]int, len(recs))
	off := make([]int, len(recs))
	var cases []decode.PruneCase
	hows := map[string]decode.Loss{}
	for l := decode.Kept; l <= decode.NotReturned; l++ {
		hows[l.String()] = l
	}
	for i, r := range recs {
		item[i], off[i] = r.Rank, r.OfficialRank
		if p := r.Pruning; p != nil {
			cases = append(cases, decode.PruneCase{Target: r.TargetItem, BeamRank: p.BeamRank, ExactRank: p.ExactRank,
				Pruned: p.Pruned, Trace: decode.Trace{Target: r.TargetItem, How: hows[p.How], Step: p.Step}, Truncated: p.Truncated, LostHit: p.LostHit})
		}
	}
	m := &Metrics{ItemMatch: decode.RankMetrics(item, nil).Map(), OfficialMatch: decode.RankMetrics(off, nil).Map(), Primary: "item_match", Users: len(recs), Config: cfg}
	if official {
		m.Primary = "official_match"
	}
	if cfg.Pruning {
		s := decode.Summarise(cases)
		ps := &PruningSummary{Users: s.Prompts, InExact: s.InExact, InBeam: s.InBeam, Pruned: s.Pruned, Rate: s.Rate,
			RateOfExact: s.RateOfExact, LostHits: s.LostHits, LostHitRate: s.LostHitRate, LostAtStep: map[string]int{}, ByHow: map[string]int{}, Truncated: s.Truncated}
		for k, v := range s.LostAt {
			ps.LostAtStep[strconv.Itoa(k)] = v
		}
		for k, v := range s.ByHow {
			ps.ByHow[k.String()] = v
		}
		m.Pruning = ps
	}
	return m
}

func writeJSON(path string, v any) error {
	return atomicfs.WriteBuffered(path, func(w io.Writer) error {
		e := json.NewEncoder(w)
		e.SetIndent("", "    ")
		e.SetEscapeHTML(false)
		return e.Encode(v)
	})
}

// writeResults writes predictions.json first and metrics.json last: a folder with a
// metrics.json is complete.
func writeResults(dir string, recs []Record, m *Metrics) error {
	if err := writeJSON(filepath.Join(dir, PredictionsName), recs); err != nil {
		return err
	}
	return writeJSON(filepath.Join(dir, MetricsName), m)
}

// ReadResults reads a folder's metrics.json and predictions.json.
func ReadResults(dir string) (*Metrics, []Record, error) {
	var m Metrics
	if err := readJSON(filepath.Join(dir, MetricsName), &m); err != nil {
		return nil, nil, err
	}
	var recs []Record
	if err := readJSON(filepath.Join(dir, PredictionsName), &recs); err != nil {
		return nil, nil, err
	}
	if len(recs) != m.Users {
		return nil, nil, fmt.Errorf("%s: %d records but metrics.json says %d users", filepath.Join(dir, PredictionsName), len(recs), m.Users)
	}
	return &m, recs, nil
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

// Merge combines shard folders into out: predictions.json (all users, in split order) and
// metrics.json recomputed from the per-user ranks of the union (not averaged). The shards must
// share one configuration (Config.identity) and be exactly the shards 0..n-1 of it.
func Merge(dirs []string, out string) (*Metrics, error) {
	if len(dirs) == 0 {
		return nil, errors.New("merge: no shard folders")
	}
	lock, err := atomicfs.ClaimOutput("--out", out, dirs, nil)
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	defer lock.Unlock()
	var cfg Config
	var all []Record
	var timing Timing
	var cat CatalogueInfo
	dropped := 0
	official := false
	seen := map[int]string{}
	rows := map[int]string{}
	for i, dir := range dirs {
		m, recs, err := ReadResults(dir)
		if err != nil {
			return nil, fmt.Errorf("merge: %w", err)
		}
		var sh Shard
		if len(m.Config.ShardList) > 0 {
			return nil, fmt.Errorf("merge: %s is itself a merged result", dir)
		}
		if sh, err = ParseShard(m.Config.Shard); err != nil {
			return nil, fmt.Errorf("merge: %s: config.shard: %w", dir, err)
		}
		if i == 0 {
			cfg, cat, official = m.Config, m.Catalogue, m.Primary == "official_match"
		} else if diff := configDiff(cfg.identity(), m.Config.identity()); diff != "" {
			return nil, fmt.Errorf("merge: %s and %s were evaluated with different configurations (%s)", dirs[0], dir, diff)
		}
		if prev, dup := seen[sh.Index]; dup {
			return nil, fmt.Errorf("merge: %s and %s are both shard %s", prev, dir, m.Config.Shard)
		}
		seen[sh.Index] = dir
		for _, r := range recs {
			if prev, dup := rows[r.Row]; dup {
				return nil, fmt.Errorf("merge: row %d is in %s and %s", r.Row, prev, dir)
			}
			rows[r.Row] = dir
		}
		all = append(all, recs...)
		timing.add(m.Timing)
		dropped += m.DroppedIDs
	}
	for i := 0; i < cfg.ShardCount; i++ {
		if _, ok := seen[i]; !ok {
			return nil, fmt.Errorf("merge: shard %d/%d is missing", i, cfg.ShardCount)
		}
	}
	if len(all) != cfg.SelectedUsers {
		return nil, fmt.Errorf("merge: the shards hold %d users but the configuration selects %d", len(all), cfg.SelectedUsers)
	}
	sort.Slice(all, func(a, b int) bool { return all[a].Row < all[b].Row })
	cfg.Shard = fmt.Sprintf("merged %d", cfg.ShardCount)
	for i := 0; i < cfg.ShardCount; i++ {
		cfg.ShardList = append(cfg.ShardList, i)
	}
	m := Compute(all, cfg, official)
	m.Catalogue, m.DroppedIDs = cat, dropped
	timing.finish() // summed seconds over the shards' machines
	m.Timing = timing
	if err := writeResults(out, all, m); err != nil {
		return nil, err
	}
	return m, nil
}

// configDiff names the first JSON fields in which a and b differ.
func configDiff(a, b Config) string {
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
