package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	sugar "github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/pretrained"
)

// sugarme measures sugarme/tokenizer's own pipeline on the reference records: why the package
// encodes with its own code. Loading the original file panics (the split regex's lookahead),
// so the lookahead alternative is removed from a temporary copy first.
func sugarme(tokPath, ref string) error {
	func() {
		defer func() {
			if r := recover(); r != nil {
				fmt.Printf("pretrained.FromFile(original) panics: %v\n", r)
			}
		}()
		if _, err := pretrained.FromFile(tokPath); err != nil {
			fmt.Printf("pretrained.FromFile(original): %v\n", err)
		}
	}()
	data, err := os.ReadFile(tokPath)
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil {
		return err
	}
	split := cfg["pre_tokenizer"].(map[string]any)["pretokenizers"].([]any)[0].(map[string]any)
	pat := split["pattern"].(map[string]any)
	pat["Regex"] = strings.Replace(pat["Regex"].(string), `\s+(?!\S)|`, "", 1)
	tmp, err := os.MkdirTemp("", "tokcheck")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	patched := filepath.Join(tmp, "tokenizer.json")
	out, _ := json.Marshal(cfg)
	if err := os.WriteFile(patched, out, 0o644); err != nil {
		return err
	}
	tk, err := pretrained.FromFile(patched)
	if err != nil {
		return err
	}
	recs, err := readRecords(ref)
	if err != nil {
		return err
	}
	bad, total := map[string]int{}, map[string]int{}
	var titleTime time.Duration
	titles, nbad := 0, 0
	for _, r := range recs {
		kind := strings.Split(r.Cat, "/")[0]
		t0 := time.Now()
		en, err := tk.Encode(sugar.NewSingleEncodeInput(sugar.NewInputSequence(r.Text)), r.Special)
		if kind == "title" {
			titleTime += time.Since(t0)
			titles++
		}
		total[kind]++
		if err != nil || !slices.Equal(en.Ids, r.IDs) {
			bad[kind]++
			nbad++
		}
	}
	kinds := make([]string, 0, len(total))
	for k := range total {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	fmt.Println("sugarme v0.3.0 pipeline, lookahead alternative removed:")
	for _, k := range kinds {
		fmt.Printf("  %-12s %6d of %6d differ\n", k, bad[k], total[k])
	}
	fmt.Printf("  %-12s %6d of %6d differ\n", "total", nbad, len(recs))
	if titles > 0 {
		fmt.Printf("  %.0f titles/s\n", float64(titles)/titleTime.Seconds())
	}
	return nil
}
