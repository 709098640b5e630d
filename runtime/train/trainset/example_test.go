package trainset_test

import (
	"fmt"

	"github.com/bearrec/bear/internal/testdeps"
	"github.com/bearrec/bear/runtime/train/trainset"
	"github.com/bearrec/bear/tokenize"
)

// smallSet builds a training set of six rows over a three-item catalogue (the tokenizer is
// all it needs: no ONNX Runtime).
func smallSet(opts trainset.Options) (*trainset.Set, error) {
	tok, err := tokenize.Load(testdeps.TokenizerPath())
	if err != nil {
		return nil, err
	}
	cat := &tokenize.Catalogue{IDs: []int{1, 2, 3}, Titles: map[int]string{
		1: "HP 12C Financial Calculator", 2: "Carcassonne", 3: "Carcassonne Basic Game"}}
	items, err := tokenize.NewItemSet(tok, cat)
	if err != nil {
		return nil, err
	}
	prompt, err := tokenize.DatasetPrompt("Office")
	if err != nil {
		return nil, err
	}
	var rows []tokenize.Row
	for u, ids := range [][]int{{1, 2}, {2, 3}, {3, 1}, {1, 3}, {2, 1}, {3, 2}} {
		rows = append(rows, tokenize.Row{UserID: u, HistoryIDs: ids[:1], History: []string{cat.Titles[ids[0]]},
			TargetID: ids[1], Target: cat.Titles[ids[1]]})
	}
	return trainset.Build(tok, prompt, items, rows, opts)
}

// The epoch order is a function of (Seed, epoch) alone, so a resumed run finds where it stopped
// from its step count.
func ExampleSet_Order() {
	set, err := smallSet(trainset.Options{Batch: 4, NormGroup: 2, Micro: 2, Seed: 42, Bucket: 8})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(set.Len(), "examples,", set.StepsPerEpoch(), "steps per epoch")
	order := set.Order(0)
	fmt.Println("epoch 0:", order)
	fmt.Println("epoch 1:", set.Order(1))
	last, err := set.StepRows(order, 1) // short: Options.FillLast is false
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("last step of epoch 0:", last)
	epoch, step := set.Locate(3)
	fmt.Println("after 3 steps: epoch", epoch, "step", step)
	// Output:
	// 6 examples, 2 steps per epoch
	// epoch 0: [1 2 3 0 4 5]
	// epoch 1: [0 3 5 4 2 1]
	// last step of epoch 0: [4 5]
	// after 3 steps: epoch 1 step 1
}

// A step of four sequences in norm groups of two, each group cut into micro-batches of at most
// one sequence (a group's shortest first), left-padded to a multiple of Bucket.
func ExampleBatcher_Step() {
	set, err := smallSet(trainset.Options{Batch: 4, NormGroup: 2, Micro: 1, Seed: 42, Bucket: 8})
	if err != nil {
		fmt.Println(err)
		return
	}
	step, err := set.NewBatcher().Step(0, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("rows", step.Rows)
	for g, group := range step.Groups {
		fmt.Println("group", g, "rows", group.Rows, "positions", group.Positions)
		for _, mb := range group.Micro {
			fmt.Printf("  micro-batch %dx%d: rows %v, lengths %v, %d supervised positions\n", mb.B, mb.T, mb.Rows, mb.Lengths, len(mb.Targets))
		}
	}
	// Output:
	// rows [1 2 3 0]
	// group 0 rows [1 2] positions 17
	//   micro-batch 1x96: rows [1], lengths [89], 8 supervised positions
	//   micro-batch 1x96: rows [2], lengths [92], 9 supervised positions
	// group 1 rows [3 0] positions 14
	//   micro-batch 1x96: rows [0], lengths [89], 6 supervised positions
	//   micro-batch 1x96: rows [3], lengths [91], 8 supervised positions
}
