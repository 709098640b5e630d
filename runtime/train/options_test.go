package train

import "testing"

// TestSeedReachesDataOrder: --seed drives the data order as well as the LoRA initialisation and
// the dropout masks (the batching options must not keep a seed of their own).
func TestSeedReachesDataOrder(t *testing.T) {
	o := DefaultOptions()
	o.Model, o.Data, o.Out, o.Seed = "m", "d", "o", 7
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.Batch.Seed != 7 {
		t.Errorf("data order seed %d, want --seed 7", o.Batch.Seed)
	}
}
