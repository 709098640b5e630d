package trainlog

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// SelectionFile is the record, in a run's best/ folder, of the epoch whose model it holds.
const SelectionFile = "bear_selection.json"

// SelectionRule is how a run selects its best epoch on the validation set.
const SelectionRule = "the highest validation NDCG@10 over the epochs so far; a tie keeps the earlier epoch"

// Selection is best/'s record of the epoch it holds and why.
type Selection struct {
	Epoch  int     `json:"epoch"`
	Step   int     `json:"step"`
	Metric string  `json:"metric"` // "ndcg@10"
	Value  float64 `json:"value"`
	Rows   int     `json:"rows"`  // validation rows evaluated
	Split  string  `json:"split"` // the validation split file
	Rule   string  `json:"rule"`
}

// ReadSelection reads the selection record of a best/ folder.
func ReadSelection(dir string) (Selection, error) {
	var s Selection
	path := filepath.Join(dir, SelectionFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}
