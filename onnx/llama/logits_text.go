package llama

import "fmt"

// logitsModeNames are the names of the logits modes in manifests and messages.
var logitsModeNames = map[LogitsMode]string{
	LogitsFullVocab:  "full",
	LogitsCandidates: "candidates",
	LogitsSubset:     "subset",
}

// String is the mode's name: full, candidates, subset.
func (m LogitsMode) String() string {
	if s, ok := logitsModeNames[m]; ok {
		return s
	}
	return fmt.Sprintf("LogitsMode(%d)", int(m))
}

// MarshalText writes the mode's name (manifest.json keeps names, not numbers).
func (m LogitsMode) MarshalText() ([]byte, error) {
	if _, ok := logitsModeNames[m]; !ok {
		return nil, fmt.Errorf("logits mode %d has no name", int(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText reads a mode's name.
func (m *LogitsMode) UnmarshalText(b []byte) error {
	for k, v := range logitsModeNames {
		if v == string(b) {
			*m = k
			return nil
		}
	}
	return fmt.Errorf("logits mode %q: want one of full, candidates, subset", b)
}
