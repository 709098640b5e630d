package report

import (
	"math"
	"sort"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// confidence is the two-sided level of every interval in the report.
const confidence = 0.95

// Interval is a mean over seeds with the half-width of its Student's t confidence interval.
type Interval struct {
	N    int     // finite values the mean is over
	Mean float64 // NaN when N is 0
	Half float64 // t(1-(1-confidence)/2, N-1) * s / sqrt(N); NaN when N < 2 (no interval)
}

// HasCI reports whether the interval exists (two values or more).
func (iv Interval) HasCI() bool { return iv.N >= 2 }

// ContainsZero reports whether the interval exists and holds 0.
func (iv Interval) ContainsZero() bool {
	return iv.HasCI() && iv.Mean-iv.Half <= 0 && 0 <= iv.Mean+iv.Half
}

// meanCI returns the mean of the finite values of xs and its t interval. Values that are not
// finite (a metric that does not exist for a run) are left out and not counted.
func meanCI(xs []float64) Interval {
	var vals []float64
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			vals = append(vals, x)
		}
	}
	iv := Interval{N: len(vals), Mean: math.NaN(), Half: math.NaN()}
	if iv.N == 0 {
		return iv
	}
	iv.Mean = stat.Mean(vals, nil)
	if iv.N < 2 {
		return iv
	}
	sd := stat.StdDev(vals, nil) // the sample (n-1) standard deviation
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(iv.N - 1)}.Quantile(1 - (1-confidence)/2)
	iv.Half = t * sd / math.Sqrt(float64(iv.N))
	return iv
}

// median of the finite values of xs; NaN when there are none.
func median(xs []float64) float64 {
	var vals []float64
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			vals = append(vals, x)
		}
	}
	if len(vals) == 0 {
		return math.NaN()
	}
	sort.Float64s(vals)
	n := len(vals)
	if n%2 == 1 {
		return vals[n/2]
	}
	return (vals[n/2-1] + vals[n/2]) / 2
}
