package evaluate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/bearrec/bear/decode"
	"github.com/bearrec/bear/internal/atomicfs"
)

// TrainingRecordName is the file bear train writes beside every adapter (or fully trained
// checkpoint) it saves: how the model was trained, as far as evaluating it depends on it.
const TrainingRecordName = "bear_training.json"

// TrainingRecord is the content of TrainingRecordName.
type TrainingRecord struct {
	Loss string `json:"loss"` // lml, msl or bear
}

// WriteTrainingRecord writes rec into dir.
func WriteTrainingRecord(dir string, rec TrainingRecord) error {
	js, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return atomicfs.WriteBytes(filepath.Join(dir, TrainingRecordName), append(js, '\n'))
}

// ReadTrainingRecord reads dir's training record; ok is false when dir has none (a model or
// adapter that bear did not train).
func ReadTrainingRecord(dir string) (rec TrainingRecord, ok bool, err error) {
	path := filepath.Join(dir, TrainingRecordName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, err
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, false, fmt.Errorf("%s: %w", path, err)
	}
	if _, known := officialModes[rec.Loss]; !known {
		return rec, false, fmt.Errorf("%s: loss %q: want lml, msl or bear", path, rec.Loss)
	}
	return rec, true, nil
}

// officialModes is where the official inference applies the trie constraint for a model trained
// with each loss: before the softmax for MSL and BEAR (their custom constrained beam search,
// matching a loss whose softmax runs over the allowed tokens), after it for LML (HF's
// prefix_allowed_tokens_fn, matching a loss over the whole vocabulary).
var officialModes = map[string]decode.Mode{"lml": decode.AfterSoftmax, "msl": decode.BeforeSoftmax, "bear": decode.BeforeSoftmax}

// OfficialMode is the constraint mode the official inference uses for a model trained with
// loss (lml, msl or bear); AfterSoftmax, HF's default, for anything else.
func OfficialMode(loss string) decode.Mode {
	if m, ok := officialModes[loss]; ok {
		return m
	}
	return decode.AfterSoftmax
}
