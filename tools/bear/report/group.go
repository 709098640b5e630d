package report

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// notSetting are the recorded flags that do not make a setting: the seed (runs of one setting
// differ in it) and paths and machine settings, which do not decide the numbers.
var notSetting = map[string]bool{
	"--seed": true, "--model": true, "--data": true, "--split": true, "--tokenizer": true, "--out": true,
	"--eval-users": true, "--checkpoint-every": true, "--policy": true, "--device": true, "--threads": true,
	"--resume": true, "--cache-dir": true, "--loss": true,
}

// labelFirst are the flags named first in a label, in this order; the others follow by name.
var labelFirst = []string{"--tau", "--xi", "--lambda", "--k"}

// labelSettings sets each run's Setting: the loss, followed in brackets by the flags whose
// values differ between the runs of that loss ("bear (xi 2.75, lambda 0.25)"). A plain
// evaluation folder is labelled by what it evaluated.
func labelSettings(runs []*Run) {
	byLoss := map[string][]*Run{}
	for _, r := range runs {
		if r.IsTraining() {
			byLoss[r.Loss] = append(byLoss[r.Loss], r)
		} else {
			r.Setting = "eval " + evaluated(r)
		}
	}
	for loss, group := range byLoss {
		keys := differingFlags(group)
		for _, r := range group {
			var parts []string
			for _, k := range keys {
				parts = append(parts, strings.TrimPrefix(k, "--")+" "+labelValue(k, r.Flags[k]))
			}
			r.Setting = loss
			if len(parts) > 0 {
				r.Setting += " (" + strings.Join(parts, ", ") + ")"
			}
		}
	}
}

// evaluated names what a plain evaluation folder evaluated: its adapter, or else its model.
func evaluated(r *Run) string {
	if r.Metrics.Config.Adapter != "" {
		return r.Metrics.Config.Adapter
	}
	return r.Metrics.Config.Model
}

// differingFlags returns the setting flags whose values are not the same in every run of
// group, in label order.
func differingFlags(group []*Run) []string {
	all := map[string]bool{}
	for _, r := range group {
		for k := range r.Flags {
			all[k] = true
		}
	}
	var keys []string
	for k := range all {
		if notSetting[k] {
			continue
		}
		for _, r := range group[1:] {
			if r.Flags[k] != group[0].Flags[k] {
				keys = append(keys, k)
				break
			}
		}
	}
	sort.Slice(keys, func(i, j int) bool { return labelLess(keys[i], keys[j]) })
	return keys
}

func labelLess(a, b string) bool {
	ia, ib := labelRank(a), labelRank(b)
	if ia != ib {
		return ia < ib
	}
	return a < b
}

func labelRank(k string) int {
	for i, f := range labelFirst {
		if f == k {
			return i
		}
	}
	return len(labelFirst)
}

// labelValue shortens content hashes to 8 hex digits of their own hash, enough to tell the
// inputs apart in a label; the full values are in the report's run list.
func labelValue(key, v string) string {
	if v == "" {
		return "(none)"
	}
	if strings.Contains(key, "sha256") {
		sum := sha256.Sum256([]byte(v))
		return hex.EncodeToString(sum[:4])
	}
	return v
}

// sortRuns orders runs by setting, then seed (numerically when both are numbers), then folder.
func sortRuns(runs []*Run) {
	sort.SliceStable(runs, func(i, j int) bool {
		a, b := runs[i], runs[j]
		if a.Setting != b.Setting {
			return a.Setting < b.Setting
		}
		if a.Seed != b.Seed {
			na, ea := strconv.ParseUint(a.Seed, 10, 64)
			nb, eb := strconv.ParseUint(b.Seed, 10, 64)
			if ea == nil && eb == nil {
				return na < nb
			}
			return a.Seed < b.Seed
		}
		return a.Dir < b.Dir
	})
}

// checkDistinct refuses two folders of one setting and seed (the same run given twice, or a
// copy), which would count one seed twice.
func checkDistinct(runs []*Run) error {
	seen := map[string]*Run{}
	for _, r := range runs {
		key := r.Setting + "\x00" + r.Seed
		if prev, dup := seen[key]; dup {
			return fmt.Errorf("%s and %s are both %s with seed %s: give each run once", prev.Dir, r.Dir, r.Setting, seedName(r.Seed))
		}
		seen[key] = r
	}
	return nil
}

func seedName(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
