package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/bearrec/bear/runtime/train"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Progress of long work goes to stderr: a progress bar on a terminal, and elsewhere (a log file,
// Slurm's output, a pipe), or with --no-progress, one plain line at the start, then at most one
// a minute, and one at the end, so that a log shows that the work moves without carriage-return
// frames.

// lineInterval is the least time between two plain progress lines.
const lineInterval = time.Minute

// barThrottle is the least time between two redraws of a bar.
const barThrottle = 250 * time.Millisecond

// useBar reports whether progress on w is drawn as a bar: w is a terminal and the user did not
// ask for plain lines.
func useBar(w io.Writer, noProgress bool) bool {
	f, ok := w.(*os.File)
	return !noProgress && ok && term.IsTerminal(int(f.Fd()))
}

// meter paces the updates of one piece of work: it says when to redraw or print, and what the
// rate and the remaining time are, from the units done since it started.
type meter struct {
	now        func() time.Time
	interval   time.Duration
	start      time.Time
	startUnits int // units already done when the work started (a resumed run)
	last       time.Time
}

func newMeter(now func() time.Time, interval time.Duration, startUnits int) *meter {
	t := now()
	return &meter{now: now, interval: interval, start: t, startUnits: startUnits}
}

// due reports whether an update of units done of total is due (the first, the last, or one
// after the interval), and marks it shown.
func (m *meter) due(done, total int) bool {
	t := m.now()
	if !m.last.IsZero() && done < total && t.Sub(m.last) < m.interval {
		return false
	}
	m.last = t
	return true
}

// eta is the time left for the units not done, at the rate of the units done since the start
// ("?" before there is a rate).
func (m *meter) eta(done, total int) string {
	ran := done - m.startUnits
	el := m.now().Sub(m.start)
	if ran <= 0 || el <= 0 {
		return "?"
	}
	left := time.Duration(float64(el) / float64(ran) * float64(total-done))
	return left.Round(time.Second).String()
}

// rate is the units per second since the start ("?" before there is one).
func (m *meter) rate(done int) string {
	el := m.now().Sub(m.start).Seconds()
	if done <= m.startUnits || el <= 0 {
		return "?"
	}
	return fmt.Sprintf("%.2f", float64(done-m.startUnits)/el)
}

func (m *meter) elapsed() string { return m.now().Sub(m.start).Round(time.Second).String() }

// trainProgress reports optimizer steps: a bar whose count and values always belong to the same
// step, or plain lines. The returned finish ends the bar.
func trainProgress(w io.Writer, bar bool, now func() time.Time) (func(step, total int, loss, tokensPerS float64), func()) {
	var m *meter
	var b *progressbar.ProgressBar
	interval := lineInterval
	if bar {
		interval = barThrottle
	}
	update := func(step, total int, loss, tokensPerS float64) {
		if m == nil {
			m = newMeter(now, interval, step) // the rate counts the steps after this one
		}
		if !m.due(step, total) {
			return
		}
		if !bar {
			fmt.Fprintf(w, "bear train: step %d/%d (%.0f%%), loss %.4f, %.0f tokens/s, %s elapsed, %s left\n",
				step, total, 100*float64(step)/float64(total), loss, tokensPerS, m.elapsed(), m.eta(step, total))
			return
		}
		if b == nil {
			b = newBar(w, total, "steps")
			b.Set(step - 1)
		}
		// The bar redraws on each call: the description first, then the count, so that the
		// frame left on screen shows one step's count and values.
		b.Describe(fmt.Sprintf("train loss %.4f %6.0f tok/s", loss, tokensPerS))
		b.Set(step)
	}
	return update, func() { finishBar(w, b) }
}

// evalProgress reports the users of an evaluation (label names it): a bar, or plain lines. The
// first call gives the users already done (resumed from the journal), which the rate excludes.
func evalProgress(w io.Writer, bar bool, label string, now func() time.Time) (func(done, total int), func()) {
	var m *meter
	var b *progressbar.ProgressBar
	interval := lineInterval
	if bar {
		interval = barThrottle
	}
	update := func(done, total int) {
		if m == nil {
			m = newMeter(now, interval, done)
			if done > 0 {
				label = fmt.Sprintf("%s (%d resumed)", label, done)
			}
		}
		if !m.due(done, total) {
			return
		}
		if !bar {
			fmt.Fprintf(w, "bear: %s: %d/%d users (%.0f%%), %s users/s, %s elapsed, %s left\n",
				label, done, total, 100*float64(done)/float64(max(total, 1)), m.rate(done), m.elapsed(), m.eta(done, total))
			return
		}
		if b == nil {
			b = newBar(w, total-m.startUnits, "users")
			b.Describe(label)
		}
		b.Set(done - m.startUnits)
	}
	return update, func() { finishBar(w, b) }
}

// runProgress reports a training run: its steps, and the evaluations after its epochs, each of
// which ends the steps' bar (or lines) and starts its own.
type runProgress struct {
	w        io.Writer
	bar      bool
	now      func() time.Time
	steps    func(step, total int, loss, tokensPerS float64)
	users    func(done, total int)
	epoch    int
	split    string
	finishFn func()
}

func (r *runProgress) step(p train.Progress) {
	if r.steps == nil {
		r.finish()
		r.steps, r.finishFn = trainProgress(r.w, r.bar, r.now)
	}
	r.steps(p.Step, p.Total, p.Loss, p.TokensPerS)
}

func (r *runProgress) eval(split string, e, done, total int) {
	if r.users == nil || r.epoch != e || r.split != split {
		r.finish()
		label := fmt.Sprintf("evaluation after epoch %d", e)
		if split == "valid" {
			label = fmt.Sprintf("validation after epoch %d", e)
		}
		r.users, r.finishFn = evalProgress(r.w, r.bar, label, r.now)
		r.epoch, r.split = e, split
	}
	r.users(done, total)
}

// finish ends what is being reported.
func (r *runProgress) finish() {
	if r.finishFn != nil {
		r.finishFn()
	}
	r.steps, r.users, r.finishFn = nil, nil, nil
}

// newBar is a bar of total units; redraws are paced by the meter, not by the bar.
func newBar(w io.Writer, total int, units string) *progressbar.ProgressBar {
	return progressbar.NewOptions(max(total, 1),
		progressbar.OptionSetWriter(w), progressbar.OptionShowCount(), progressbar.OptionSetItsString(units),
		progressbar.OptionShowIts(), progressbar.OptionSetPredictTime(true), progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetWidth(25), progressbar.OptionThrottle(0), progressbar.OptionSetRenderBlankState(true))
}

// finishBar ends a bar (nil: none was drawn) and the line it stood on.
func finishBar(w io.Writer, b *progressbar.ProgressBar) {
	if b != nil {
		b.Exit()
		fmt.Fprintln(w)
	}
}
