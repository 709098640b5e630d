package tfevents

import (
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"time"
)

func Example() {
	dir, err := os.MkdirTemp("", "tfevents-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// TensorBoard reads the files whose name contains "tfevents" under --logdir.
	path := filepath.Join(dir, "events.out.tfevents.1700000000.host")

	w, err := Open(path, 0) // a new file; a resumed run passes its checkpoint's step
	if err != nil {
		log.Fatal(err)
	}
	start := time.Unix(1700000000, 0)
	for step := int64(1); step <= 3; step++ {
		loss := 1 / float64(step)
		if step == 3 {
			loss = math.NaN() // a diverged step is kept as it is
		}
		wall := start.Add(time.Duration(step) * 1500 * time.Millisecond)
		if err := w.Scalars(step, wall, []Scalar{{Tag: "train/loss", Value: loss}}); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	events, err := readEvents(path)
	if err != nil {
		log.Fatal(err)
	}
	for _, ev := range events {
		fmt.Printf("step %d at %.1f s: %s = %v\n", ev.Step, ev.WallTime-1700000000, ev.Scalars[0].Tag, ev.Scalars[0].Value)
	}
	// Output:
	// step 1 at 1.5 s: train/loss = 1
	// step 2 at 3.0 s: train/loss = 0.5
	// step 3 at 4.5 s: train/loss = NaN
}
