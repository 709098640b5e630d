package train

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/bearrec/bear/runtime/train/comm"
)

// Data parallelism (package comm): every rank holds the whole run (data, graphs, trainable
// values, optimizer) and computes the norm groups g of each step with g mod N = its rank. The
// gradient a group adds (its un-normalised gradient over its normaliser and the step's number of
// groups) does not depend on where it is computed, so the sum over ranks of their partial
// gradients is the single-process gradient: the all-reduce of one flat buffer per step makes
// every rank hold it, and every rank then clips and applies the same AdamW step. The dropout
// masks are keyed by the micro-batch's index in the whole step, so a group draws the masks it
// would draw in one process. Only rank 0 writes (adapters, checkpoints, train.jsonl,
// evaluations); it also starts the others: its initial or restored trainable values, AdamW
// moments and step are broadcast before the first step. Every rank agrees at each step's start
// whether to stop (an interrupt seen by any rank stops all at the same step), and a checksum of
// the trainable values is compared across ranks before every checkpoint (drift is an error).

// comm is the run's communicator (comm.Single when Options.Comm is nil).
func (o *Options) comm() comm.Comm {
	if o.Comm == nil {
		return comm.Single{}
	}
	return o.Comm
}

// writer reports whether this process writes the run's outputs (rank 0).
func (o *Options) writer() bool { return o.comm().Rank() == 0 }

// ownsGroup reports whether this rank computes norm group g of a step.
func (s *stepper) ownsGroup(g int) bool {
	c := s.o.comm()
	return g%c.Size() == c.Rank()
}

// reduce adds up the ranks' partial gradients and step statistics in place, and records the
// time spent doing it.
func (s *stepper) reduce(stats *StepStats) error {
	c := s.o.comm()
	if c.Size() == 1 {
		return nil
	}
	t0 := time.Now()
	n := 0
	for _, p := range s.params {
		n += len(p.Grad)
	}
	s.flat = resize(s.flat, n)
	off := 0
	for _, p := range s.params {
		off += copy(s.flat[off:], p.Grad)
	}
	if err := c.AllreduceSum32(s.flat); err != nil {
		return fmt.Errorf("step %d: gradient all-reduce: %w", stats.Step, err)
	}
	off = 0
	for _, p := range s.params {
		off += copy(p.Grad, s.flat[off:])
	}
	sums := []float64{stats.Loss, float64(stats.Violations), stats.RawWeights}
	if err := c.AllreduceSum64(sums); err != nil {
		return fmt.Errorf("step %d: statistics all-reduce: %w", stats.Step, err)
	}
	stats.Loss, stats.Violations, stats.RawWeights = sums[0], int(sums[1]), sums[2]
	stats.Comm += time.Since(t0)
	return nil
}

// agreeStop reports whether any rank wants to stop before the next step (its context was
// cancelled): all ranks then stop at the same step.
func agreeStop(c comm.Comm, local bool) (bool, error) {
	if c.Size() == 1 {
		return local, nil
	}
	flag := []float64{0}
	if local {
		flag[0] = 1
	}
	if err := c.AllreduceSum64(flag); err != nil {
		return false, fmt.Errorf("agreeing on an interrupt: %w", err)
	}
	return flag[0] > 0, nil
}

// shareDecision gives every rank rank 0's decision (rank 0 alone reads the log it is made on).
func shareDecision(c comm.Comm, mine bool) (bool, error) {
	if c.Size() == 1 {
		return mine, nil
	}
	flag := []float64{0}
	if mine {
		flag[0] = 1
	}
	if err := c.Broadcast64(flag, 0); err != nil {
		return false, fmt.Errorf("sharing the early-stopping decision: %w", err)
	}
	return flag[0] == 1, nil
}

// sameOnAllRanks compares a digest with rank 0's on every rank and reports whether every rank
// matched (the same answer on all ranks).
func sameOnAllRanks(c comm.Comm, d [sha256.Size]byte) (bool, error) {
	if c.Size() == 1 {
		return true, nil
	}
	// 32-bit words travel exactly in float64.
	words := make([]float64, sha256.Size/4)
	for i := range words {
		words[i] = float64(binary.LittleEndian.Uint32(d[4*i:]))
	}
	mine := append([]float64(nil), words...)
	if err := c.Broadcast64(words, 0); err != nil {
		return false, err
	}
	differ := []float64{0}
	for i := range words {
		if words[i] != mine[i] {
			differ[0] = 1
		}
	}
	if err := c.AllreduceSum64(differ); err != nil {
		return false, err
	}
	return differ[0] == 0, nil
}

// identityDigest hashes the run's identity (content hashes of the inputs and every flag that
// decides the numbers) in key order.
func identityDigest(id map[string]string) [sha256.Size]byte {
	keys := make([]string, 0, len(id))
	for k := range id {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%q=%q\n", k, id[k])
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

// valuesDigest hashes the trainable values bit for bit.
func (s *stepper) valuesDigest() [sha256.Size]byte {
	h := sha256.New()
	var buf [4]byte
	for _, p := range s.params {
		for _, v := range p.Value {
			binary.LittleEndian.PutUint32(buf[:], math.Float32bits(v))
			h.Write(buf[:])
		}
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

// startTogether makes every rank start from rank 0's state: it checks that every rank read the
// same inputs with the same flags, then broadcasts rank 0's step, trainable values and AdamW
// moments. It returns the step to continue from.
func (j *job) startTogether(done int) (int, error) {
	c := j.o.comm()
	if c.Size() == 1 {
		return done, nil
	}
	same, err := sameOnAllRanks(c, identityDigest(j.id))
	if err != nil {
		return 0, err
	}
	if !same {
		return 0, fmt.Errorf("the ranks do not share their inputs: a rank's model, data split, tokenizer (content hashes) or flags differ from rank 0's; every rank must read the same files with the same flags")
	}
	step := []float64{float64(done)}
	if err := c.Broadcast64(step, 0); err != nil {
		return 0, err
	}
	for _, p := range j.st.params {
		if err := c.Broadcast32(p.Value, 0); err != nil {
			return 0, err
		}
	}
	as := j.st.opt.State()
	as.Step = int(step[0])
	for _, m := range as.Params {
		if err := c.Broadcast32(m.ExpAvg, 0); err != nil {
			return 0, err
		}
		if err := c.Broadcast32(m.ExpAvgSq, 0); err != nil {
			return 0, err
		}
	}
	return as.Step, j.st.opt.SetState(as)
}

// checkInSync fails when a rank's trainable values differ from rank 0's after step done.
func (j *job) checkInSync(done int) error {
	same, err := sameOnAllRanks(j.o.comm(), j.st.valuesDigest())
	if err != nil {
		return err
	}
	if !same {
		return fmt.Errorf("after step %d the ranks' trainable values differ (checksum): the ranks drifted apart; resume from the last checkpoint", done)
	}
	return nil
}
