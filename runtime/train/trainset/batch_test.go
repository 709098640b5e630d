package trainset

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/bearrec/bear/tokenize"
)

func TestOrder(t *testing.T) {
	for _, n := range []int{0, 1, 2, 60, 1000} {
		for epoch := range 3 {
			p := order(n, 42, epoch)
			seen := make([]bool, n)
			for _, i := range p {
				if i < 0 || i >= n || seen[i] {
					t.Fatalf("n %d epoch %d: %d repeated or out of range in %v", n, epoch, i, p)
				}
				seen[i] = true
			}
			if len(p) != n {
				t.Fatalf("n %d: %d indices", n, len(p))
			}
			if !slices.Equal(p, order(n, 42, epoch)) {
				t.Errorf("n %d epoch %d: two calls give two orders", n, epoch)
			}
			if n >= 60 && (slices.Equal(p, order(n, 42, epoch+1)) || slices.Equal(p, order(n, 43, epoch)) || slices.IsSorted(p)) {
				t.Errorf("n %d epoch %d: the order does not change with the epoch or the seed, or is not shuffled", n, epoch)
			}
		}
	}
}

// TestUniform checks the bounded draw's range and, loosely, its balance: each of 6 values
// within 5% of its expected count over 60 000 draws (a fair die misses this with probability
// far below 1e-6).
func TestUniform(t *testing.T) {
	src := rand.NewPCG(1, 2)
	counts := make([]int, 6)
	for range 60000 {
		v := uniform(src, 6)
		if v >= 6 {
			t.Fatalf("draw %d out of [0, 6)", v)
		}
		counts[v]++
	}
	for v, c := range counts {
		if c < 9500 || c > 10500 {
			t.Errorf("value %d drawn %d times of 60000", v, c)
		}
	}
}

// TestSteps builds every step of an epoch and checks the invariants that do not depend on the
// layout: the steps' rows are the epoch order (each example once, or the fill at the end),
// groups are consecutive runs, micro-batches partition their group, sorted by length.
func TestSteps(t *testing.T) {
	f := loadOffice(t)
	cases := []struct {
		name string
		opts Options
	}{
		{"defaults: one short step", DefaultOptions()},
		{"16 per step, groups of 4, micro 3", Options{Batch: 16, NormGroup: 4, Micro: 3, Seed: 1, Bucket: 32}},
		{"groups of 10 in micro-batches of 3, 3, 2, 2", Options{Batch: 20, NormGroup: 10, Micro: 3, Seed: 6, Bucket: 8}},
		{"micro clamped", Options{Batch: 8, NormGroup: 8, Micro: 100, Seed: 2, Bucket: 16}},
		{"micro 1, bucket 1", Options{Batch: 6, NormGroup: 2, Micro: 1, Seed: 3, Bucket: 1}},
		{"fill last", Options{Batch: 16, NormGroup: 4, Micro: 2, Seed: 4, Bucket: 32, FillLast: true}},
		{"fill beyond the set", Options{Batch: 128, NormGroup: 16, Micro: 16, Seed: 5, Bucket: 32, FillLast: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := f.build(t, f.rows, c.opts)
			o := s.Options()
			b := s.NewBatcher()
			for epoch := range 2 {
				order := s.Order(epoch)
				var all []int
				for step := range s.StepsPerEpoch() {
					st, err := b.Step(epoch, step)
					if err != nil {
						t.Fatal(err)
					}
					if st.Epoch != epoch || st.Index != step {
						t.Fatalf("step %d/%d labelled %d/%d", epoch, step, st.Epoch, st.Index)
					}
					checkStep(t, s, st)
					all = append(all, st.Rows...)
				}
				n := len(order)
				want := order
				if o.FillLast {
					for i := 0; len(want)%o.Batch != 0; i++ {
						want = append(slices.Clone(want), order[i%n])
					}
				}
				if !slices.Equal(all, want) {
					t.Fatalf("epoch %d: steps cover %v, want the epoch order %v", epoch, all, want)
				}
			}
			if _, err := b.Step(0, s.StepsPerEpoch()); err == nil {
				t.Error("step past the epoch: no error")
			}
			if _, err := b.Step(-1, 0); err == nil {
				t.Error("negative epoch: no error")
			}
		})
	}
}

func checkStep(t *testing.T, s *Set, st *Step) {
	t.Helper()
	o := s.Options()
	if len(st.Rows) > o.Batch || (st.Index < s.StepsPerEpoch()-1 && len(st.Rows) != o.Batch) {
		t.Fatalf("step %d has %d rows (batch %d)", st.Index, len(st.Rows), o.Batch)
	}
	var micro []*MicroBatch
	tokens, positions := 0, 0
	for g, group := range st.Groups {
		from := g * o.NormGroup
		if !slices.Equal(group.Rows, st.Rows[from:min(from+o.NormGroup, len(st.Rows))]) {
			t.Fatalf("group %d rows %v are not the step's run %d", g, group.Rows, from)
		}
		var rows []int
		last, groupPositions := 0, 0
		for _, mb := range group.Micro {
			if mb.Group != g || mb.B > o.Micro || mb.B < 1 || mb.T%o.Bucket != 0 || mb.T != s.Bucket(slices.Max(mb.Lengths)) {
				t.Fatalf("group %d: micro-batch group %d, B %d (micro %d), T %d, lengths %v", g, mb.Group, mb.B, o.Micro, mb.T, mb.Lengths)
			}
			if len(group.Micro) > 1 && mb.B < len(group.Rows)/len(group.Micro) {
				t.Fatalf("group %d: unbalanced micro-batch of %d rows", g, mb.B)
			}
			for _, l := range mb.Lengths {
				if l < last {
					t.Fatalf("group %d: lengths not sorted across micro-batches", g)
				}
				last = l
			}
			rows = append(rows, mb.Rows...)
			groupPositions += len(mb.Targets)
			tokens += mb.Tokens
			checkMicroBatch(t, s, mb)
		}
		slices.Sort(rows)
		if !slices.Equal(rows, slices.Sorted(slices.Values(group.Rows))) {
			t.Fatalf("group %d: micro-batches hold %v, group %v", g, rows, group.Rows)
		}
		if groupPositions != group.Positions {
			t.Fatalf("group %d: %d positions, recorded %d", g, groupPositions, group.Positions)
		}
		positions += groupPositions
		micro = append(micro, group.Micro...)
	}
	if !slices.Equal(micro, st.Micro) || tokens != st.Tokens || positions != st.Positions {
		t.Fatalf("step totals: %d micro-batches (%d listed), %d tokens (%d), %d positions (%d)", len(micro), len(st.Micro), tokens, st.Tokens, positions, st.Positions)
	}
}

// checkMicroBatch checks the layout against the examples: left padding as
// ortrun.NewTokenBatch, Index at the slot before each label, Union and the index slices.
func checkMicroBatch(t *testing.T, s *Set, mb *MicroBatch) {
	t.Helper()
	if len(mb.IDs) != mb.B*mb.T || len(mb.Mask) != mb.B*mb.T || len(mb.Pos) != mb.B*mb.T || len(mb.Rows) != mb.B || len(mb.Lengths) != mb.B {
		t.Fatalf("micro-batch arrays: %d/%d/%d slots, %d rows, for %d×%d", len(mb.IDs), len(mb.Mask), len(mb.Pos), len(mb.Rows), mb.B, mb.T)
	}
	p, tokens := 0, 0
	var union []int
	for r, e := range mb.Rows {
		ex := &s.Examples[e]
		pad := mb.T - len(ex.IDs)
		if pad < 0 || mb.Lengths[r] != len(ex.IDs) {
			t.Fatalf("row %d: %d tokens in %d slots (length %d)", r, len(ex.IDs), mb.T, mb.Lengths[r])
		}
		for k := range mb.T {
			id, mask, pos := mb.IDs[r*mb.T+k], mb.Mask[r*mb.T+k], mb.Pos[r*mb.T+k]
			if k < pad && (id != tokenize.PadID || mask != 0 || pos != 1) {
				t.Fatalf("row %d slot %d: padding holds %d/%d/%d", r, k, id, mask, pos)
			}
			if k >= pad && (id != int64(ex.IDs[k-pad]) || mask != 1 || pos != int64(k-pad)) {
				t.Fatalf("row %d slot %d: %d/%d/%d, want token %d at position %d", r, k, id, mask, pos, ex.IDs[k-pad], k-pad)
			}
		}
		tokens += len(ex.IDs)
		for j, target := range ex.Targets() {
			slot := mb.Index[p]
			if slot/int64(mb.T) != int64(r) || mb.IDs[slot+1] != int64(target) || slot+1-int64(r*mb.T+pad) != int64(ex.LabelStart+j) || mb.Mask[slot] != 1 {
				t.Fatalf("row %d label %d: index %d does not precede token %d", r, j, slot, target)
			}
			if p > 0 && slot <= mb.Index[p-1] {
				t.Fatalf("index not in row-major order at %d", p)
			}
			if mb.Targets[p] != target || !slices.Equal(mb.Allowed[p], ex.Allowed[j]) || mb.Allowed[p][mb.TargetIdx[p]] != target {
				t.Fatalf("row %d label %d: target %d (idx %d), allowed %d tokens", r, j, mb.Targets[p], mb.TargetIdx[p], len(mb.Allowed[p]))
			}
			if len(mb.AllowedIdx[p]) != len(mb.Allowed[p]) {
				t.Fatalf("position %d: %d union indices for %d tokens", p, len(mb.AllowedIdx[p]), len(mb.Allowed[p]))
			}
			for k, u := range mb.AllowedIdx[p] {
				if mb.Union[u] != int64(mb.Allowed[p][k]) {
					t.Fatalf("position %d: Union[%d] = %d, allowed %d", p, u, mb.Union[u], mb.Allowed[p][k])
				}
			}
			union = append(union, ex.Allowed[j]...)
			p++
		}
	}
	if p != len(mb.Index) || p != len(mb.Targets) || p != len(mb.Allowed) || p != len(mb.AllowedIdx) || p != len(mb.TargetIdx) || tokens != mb.Tokens {
		t.Fatalf("%d positions, slices of %d/%d/%d/%d/%d; %d tokens, recorded %d", p, len(mb.Index), len(mb.Targets), len(mb.Allowed), len(mb.AllowedIdx), len(mb.TargetIdx), tokens, mb.Tokens)
	}
	slices.Sort(union)
	union = slices.Compact(union)
	if len(union) != len(mb.Union) {
		t.Fatalf("union of %d tokens, want %d", len(mb.Union), len(union))
	}
	for i, u := range union {
		if mb.Union[i] != int64(u) {
			t.Fatalf("union[%d] = %d, want %d", i, mb.Union[i], u)
		}
	}
}

// TestBatcherReuse: a Batcher that reuses its buffers gives the same steps as a fresh Batcher
// per step, and going over the same epochs again allocates no further micro-batch.
func TestBatcherReuse(t *testing.T) {
	f := loadOffice(t)
	s := f.build(t, f.rows, Options{Batch: 16, NormGroup: 8, Micro: 3, Seed: 9, Bucket: 64})
	reused := s.NewBatcher()
	pooled := 0
	for pass, epoch := range []int{0, 1, 0, 1} {
		for step := range s.StepsPerEpoch() {
			got, err := reused.Step(epoch, step)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := s.NewBatcher().Step(epoch, step)
			if len(got.Micro) != len(want.Micro) {
				t.Fatalf("epoch %d step %d: %d micro-batches, fresh %d", epoch, step, len(got.Micro), len(want.Micro))
			}
			for i := range got.Micro {
				if !reflect.DeepEqual(exported(got.Micro[i]), exported(want.Micro[i])) {
					t.Fatalf("epoch %d step %d micro %d differs from a fresh build", epoch, step, i)
				}
			}
		}
		n := len(reused.step.Micro)
		for _, list := range reused.free {
			n += len(list)
		}
		if pass >= 2 && n != pooled {
			t.Errorf("pass %d: %d micro-batches allocated in all, %d after the first two epochs", pass, n, pooled)
		}
		pooled = max(pooled, n)
	}
}

// exported is a micro-batch without its private scratch.
func exported(mb *MicroBatch) MicroBatch {
	c := *mb
	c.idxArena = nil
	return c
}
