package ortrun

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bearrec/bear/onnx/traingraph"
)

// loadArtifacts creates a Trainer from a folder bear export wrote (traingraph.WriteArtifacts),
// as a user of the artifacts would load them: TestArtifactsRoundTrip checks that they give the
// gradients of the graphs built in memory.
func loadArtifacts[T ComputeFloat](dir string, so SessionOptions) (*Trainer[T], error) {
	mp := filepath.Join(dir, traingraph.ManifestFile)
	data, err := os.ReadFile(mp)
	if err != nil {
		return nil, err
	}
	var m traingraph.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: malformed JSON: %w", mp, err)
	}
	if m.Format != traingraph.ManifestFormat {
		return nil, fmt.Errorf("%s: format %q, want %q", mp, m.Format, traingraph.ManifestFormat)
	}
	tg := &traingraph.Graphs{Manifest: &m}
	for name, dst := range map[string]*[]byte{traingraph.ForwardFile: &tg.Forward, traingraph.BackwardFile: &tg.Backward} {
		if *dst, err = os.ReadFile(filepath.Join(dir, name)); err != nil {
			return nil, err
		}
	}
	return newTrainer[T](tg, nil, so)
}
