package tfevents

import (
	"fmt"
	"os"
	"strings"
)

// Event is one scalar event of a file: the values of one call of Writer.Scalars.
type event struct {
	Step     int64
	WallTime float64 // seconds since the Unix epoch
	Scalars  []Scalar
}

// Read returns the scalar events of the event file at path, in file order, after checking the
// CRCs of every record. Like Open it skips a torn final record (a writer may be appending);
// any other damage is an error naming the file and byte offset. Events other than summaries
// (the file_version event, graphs) are skipped; a summary value that is not a scalar is an error.
// A value comes back as the file holds it: a float32 (as Writer.Scalars stores it, or a
// simple_value) widened to float64, a DT_DOUBLE (as this package's first version wrote it) as it is.
func readEvents(path string) ([]event, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tfevents: %w", err)
	}
	evs, _, err := parseFile(path, b)
	if err != nil {
		return nil, err
	}
	var out []event
	for _, e := range evs {
		if !e.ev.hasSummary {
			continue
		}
		values, err := decodeSummary(e.ev.summary)
		if err != nil {
			return nil, fmt.Errorf("tfevents: %s: record at byte %d: %w", path, e.rec.off, err)
		}
		out = append(out, event{Step: e.ev.step, WallTime: e.ev.wall, Scalars: values})
	}
	return out, nil
}

// parsed is one verified record and the Event it holds.
type parsed struct {
	rec record
	ev  rawEvent
}

// parseFile verifies and decodes the records of the file whose content is b. The first must be
// a complete file_version event: anything else is not an event file, which Open must not
// rewrite.
func parseFile(path string, b []byte) (evs []parsed, torn bool, err error) {
	recs, torn, splitErr := splitRecords(path, b)
	if len(recs) == 0 {
		if splitErr == nil {
			splitErr = fmt.Errorf("%d bytes, no complete record", len(b))
		}
		return nil, false, fmt.Errorf("tfevents: %s is not a TensorBoard event file: %w", path, splitErr)
	}
	for _, r := range recs {
		ev, err := decodeEvent(r.data)
		if err != nil {
			return nil, false, fmt.Errorf("tfevents: %s: record at byte %d: bad Event: %w", path, r.off, err)
		}
		evs = append(evs, parsed{r, ev})
	}
	if first := evs[0].ev; !first.hasFileVersion || !strings.HasPrefix(first.fileVersion, "brain.Event:") {
		return nil, false, fmt.Errorf("tfevents: %s is not a TensorBoard event file: its first record holds no file_version \"brain.Event:*\"", path)
	}
	return evs, torn, splitErr
}
