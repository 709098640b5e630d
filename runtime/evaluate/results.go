package evaluate

import (
	"errors"
	"fmt"
	"github.com/bearrec/bear/runtime/evaluate/results"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/bearrec/bear/decode"
	"github.com/bearrec/bear/internal/atomicfs"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/peft"
)

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

func runConfig(o Options, d *Data, ck *hf.Checkpoint) (results.Config, error) {
	o.defaults()
	sc := o.SearchConfig()
	c := results.Config{
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
	c.SplitSHA256, c.CatalogueSHA256, c.TokenizerSHA256 = d.SplitSHA256, d.Catalogue.SHA256, d.Tok.SHA256()
	if c.ModelSHA256, err = ck.ContentSHA256(); err != nil {
		return c, err
	}
	if o.Adapter != "" {
		if c.AdapterSHA256, err = peft.ContentSHA256(o.Adapter); err != nil {
			return c, err
		}
	}
	return c, nil
}

// compute derives the metrics of records (item identity and official string match, and the
// pruning summary where the records carry it), as the official evaluate script does
// (decode.RankMetrics). Every cut-off of decode.Ks is written whatever the beam count: ranks
// stay below the beams, so with B < 10 beams each @K with K >= B equals @B (the official script
// would omit them).
func compute(recs []results.Record, cfg results.Config, official bool) *results.Metrics {
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
	m := &results.Metrics{ItemMatch: decode.RankMetrics(item, nil).Map(), OfficialMatch: decode.RankMetrics(off, nil).Map(), Primary: "item_match", Users: len(recs), Config: cfg}
	if official {
		m.Primary = "official_match"
	}
	if cfg.Pruning {
		s := decode.Summarise(cases)
		ps := &results.PruningSummary{Users: s.Prompts, InExact: s.InExact, InBeam: s.InBeam, Pruned: s.Pruned, Rate: s.Rate,
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

// Merge combines shard folders into out: predictions.json (all users, in split order) and
// metrics.json recomputed from the per-user ranks of the union (not averaged). The shards must
// share one configuration (results.Config.identity) and be exactly the shards 0..n-1 of it.
func Merge(dirs []string, out string) (*results.Metrics, error) {
	if len(dirs) == 0 {
		return nil, errors.New("merge: no shard folders")
	}
	lock, err := atomicfs.ClaimOutput("the merged output folder", out, dirs, nil)
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	defer lock.Unlock()
	var cfg results.Config
	var all []results.Record
	var timing results.Timing
	var cat results.CatalogueInfo
	dropped := 0
	official := false
	seen := map[int]string{}
	rows := map[int]string{}
	for i, dir := range dirs {
		m, recs, err := results.Read(dir)
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
		} else if diff := results.Diff(cfg, m.Config); diff != "" {
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
		timing.Add(m.Timing)
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
	m := compute(all, cfg, official)
	m.Catalogue, m.DroppedIDs = cat, dropped
	timing.Finish() // summed seconds over the shards' machines
	m.Timing = timing
	if err := results.Write(out, all, m); err != nil {
		return nil, err
	}
	return m, nil
}
