package optim

import "fmt"

// AdamWState is everything AdamW needs to continue a run exactly: the completed step
// count and both moments of every parameter, by name. It is the content of torch's
// optimizer.state_dict()["state"] for one param group with a shared step.
type AdamWState struct {
	Step   int           // completed steps; the next Step uses bias corrections for Step+1
	Params []MomentState // one per parameter; order does not matter to SetState
}

// MomentState holds one parameter's AdamW moments.
type MomentState struct {
	Name     string
	ExpAvg   []float32 // first moment (torch "exp_avg")
	ExpAvgSq []float32 // second moment (torch "exp_avg_sq")
}

// State returns a copy of the optimizer state, in parameter order; later steps do not
// change it.
func (o *AdamW) State() AdamWState {
	s := AdamWState{Step: o.steps, Params: make([]MomentState, len(o.params))}
	for i, p := range o.params {
		s.Params[i] = MomentState{
			Name:     p.Name,
			ExpAvg:   append([]float32(nil), o.expAvg[i]...),
			ExpAvgSq: append([]float32(nil), o.expAvgSq[i]...),
		}
	}
	return s
}

// SetState replaces the step count and moments with a copy of s. s must name every
// parameter exactly once, with moments of the parameter's length, and no other; on error
// the optimizer is left unchanged.
func (o *AdamW) SetState(s AdamWState) error {
	if err := o.checkState(s); err != nil {
		return fmt.Errorf("set AdamW state: %w", err)
	}
	index := o.indexByName()
	for _, ps := range s.Params {
		i := index[ps.Name]
		copy(o.expAvg[i], ps.ExpAvg)
		copy(o.expAvgSq[i], ps.ExpAvgSq)
	}
	o.steps = s.Step
	return nil
}

func (o *AdamW) indexByName() map[string]int {
	index := make(map[string]int, len(o.params))
	for i, p := range o.params {
		index[p.Name] = i
	}
	return index
}

// checkState validates s against the optimizer's parameters without changing anything.
func (o *AdamW) checkState(s AdamWState) error {
	if s.Step < 0 {
		return fmt.Errorf("step %d is negative", s.Step)
	}
	index := o.indexByName()
	seen := make([]bool, len(o.params))
	for _, ps := range s.Params {
		i, ok := index[ps.Name]
		if !ok {
			return fmt.Errorf("parameter %q is not one of the optimizer's", ps.Name)
		}
		if seen[i] {
			return fmt.Errorf("parameter %q appears twice", ps.Name)
		}
		seen[i] = true
		n := len(o.params[i].Value)
		if len(ps.ExpAvg) != n || len(ps.ExpAvgSq) != n {
			return fmt.Errorf("parameter %q: moments have %d and %d values, the parameter %d",
				ps.Name, len(ps.ExpAvg), len(ps.ExpAvgSq), n)
		}
	}
	var missing []string
	for i, ok := range seen {
		if !ok {
			missing = append(missing, o.params[i].Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("no moments for %d parameter(s): %q", len(missing), missing)
	}
	return nil
}
