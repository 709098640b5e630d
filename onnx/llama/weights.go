package llama

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/bearrec/bear/internal/atomicfs"
	"github.com/bearrec/bear/onnx/hf"
)

// ExternalRef locates one initializer's bytes for ONNX external data.
type ExternalRef struct {
	Location string   `json:"location"` // relative to the external-data folder
	Offset   int64    `json:"offset"`
	Length   int64    `json:"length"`
	DType    hf.DType `json:"dtype"` // the bytes' element type; the graph casts it to the compute dtype at use
}

// WeightBinding says where ONNX Runtime finds every base weight.
type WeightBinding struct {
	Dir       string // the folder locations are relative to
	Refs      map[string]ExternalRef
	Converted bool // true when the weights were converted into Dir rather than referenced in place
}

// BindWeights locates the checkpoint's weights in compute dtype dt. When the checkpoint already
// stores dt and all its files live in one real folder (symlinks resolved, as in the HF cache),
// the weights are referenced in place. Otherwise they are converted once into a cache entry of
// cacheDir (see convertWeights) that later calls reuse. Conversion streams tensor by tensor and
// keeps no copy in memory.
func BindWeights(ck *hf.Checkpoint, dt hf.DType, cacheDir string) (*WeightBinding, error) {
	if ck.StorageDType() == dt {
		if b, ok := BindStored(ck); ok {
			return b, nil
		}
	}
	if cacheDir == "" {
		return nil, fmt.Errorf("%s: weights are stored as %s and need converting to %s, but no cache folder was given", ck.Dir, storedAs(ck), dt)
	}
	return convertWeights(ck, dt, cacheDir)
}

// BindStored references every weight in place, in its stored dtype (the graph casts it at
// use), when all the checkpoint's files live in one real folder (symlinks resolved, as in the HF
// cache): ONNX Runtime resolves external data inside one folder only.
func BindStored(ck *hf.Checkpoint) (*WeightBinding, bool) {
	real := map[string]string{}
	dir := ""
	for _, f := range ck.Files {
		r, err := filepath.EvalSymlinks(f)
		if err != nil {
			return nil, false
		}
		if dir == "" {
			dir = filepath.Dir(r)
		} else if filepath.Dir(r) != dir {
			return nil, false
		}
		real[f] = filepath.Base(r)
	}
	b := &WeightBinding{Dir: dir, Refs: map[string]ExternalRef{}}
	for name, t := range ck.Weights {
		b.Refs[name] = ExternalRef{Location: real[t.File], Offset: t.Offset, Length: t.Size, DType: t.DType}
	}
	return b, true
}

// CacheDirError is a converted-weight cache folder that cannot be created or written. It says
// why the cache is needed; the caller adds how to point it elsewhere.
type CacheDirError struct {
	Dir             string
	Stored, Compute hf.DType // Stored is "" for a checkpoint of mixed dtypes
	Err             error
}

func (e *CacheDirError) Error() string {
	return fmt.Sprintf("converted-weight cache folder %s: %v (the checkpoint stores its weights as %s; they are converted to %s once and kept in this folder)",
		e.Dir, e.Err, storedAsDType(e.Stored), e.Compute)
}

func (e *CacheDirError) Unwrap() error { return e.Err }

func storedAs(ck *hf.Checkpoint) string { return storedAsDType(ck.StorageDType()) }

func storedAsDType(d hf.DType) string {
	if d == "" {
		return "mixed dtypes"
	}
	return string(d)
}

// Converted weights live in one file per content: weights-<dt>-<key>.bin, where key is the
// SHA-256 of the format version, the compute dtype and the checkpoint's content identity
// (hf.Checkpoint.ContentSHA256: its configuration and each expected tensor's name, stored
// dtype, shape and bytes). The
// file's name is a function of its content, so two checkpoints sharing a cache folder never
// share an entry, a checkpoint replaced by another of the same size and modification time (cp -p)
// gets a new entry, and identical checkpoints in different folders share one. Entries are written
// to a temporary file and renamed into place (atomicfs), so a reader sees a complete entry or
// none, and concurrent writers of the same entry write the same bytes.
//
// The entry's first page is a JSON header (format, version, dtype, full key, size); tensors
// follow, each page-aligned so ONNX Runtime can map it. The layout is a function of the
// configuration and dtype, so reuse needs no index: it checks the size and the header.
const (
	conversionAlign  = 4096 // keeps every converted tensor page-aligned
	conversionFormat = "bear converted weights"
	conversionVer    = 1
)

type entryHeader struct {
	Format  string   `json:"format"`
	Version int      `json:"version"`
	DType   hf.DType `json:"dtype"`
	SHA256  string   `json:"sha256"`
	Bytes   int64    `json:"bytes"`
}

// conversionLayout places every expected weight, in the configuration's order, after the header
// page; total is the entry's size in bytes.
func conversionLayout(ck *hf.Checkpoint, dt hf.DType, location string) (refs map[string]ExternalRef, order []string, total int64) {
	refs = map[string]ExternalRef{}
	off := int64(conversionAlign)
	for _, spec := range ck.Config.ExpectedWeights() {
		off += (conversionAlign - off%conversionAlign) % conversionAlign
		n := ck.Weights[spec.Name].NumElements() * int64(dt.Size())
		refs[spec.Name] = ExternalRef{Location: location, Offset: off, Length: n, DType: dt}
		order = append(order, spec.Name)
		off += n
	}
	return refs, order, off
}

// contentKey names the cache entry of ck converted to dt: the SHA-256 of the entry format and
// dtype and the checkpoint's identity (hf.Checkpoint.ContentSHA256, whose pass over the weights
// a process makes once).
func contentKey(ck *hf.Checkpoint, dt hf.DType) (string, error) {
	model, err := ck.ContentSHA256()
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(fmt.Appendf(nil, "%s v%d\n%s\n%s\n", conversionFormat, conversionVer, dt, model))
	return hex.EncodeToString(h[:]), nil
}

// convertWeights binds the checkpoint to its cache entry in dir, writing the entry when it is
// missing or fails the cheap checks (size, header).
func convertWeights(ck *hf.Checkpoint, dt hf.DType, dir string) (*WeightBinding, error) {
	if dt != hf.F32 && dt != hf.F64 {
		return nil, fmt.Errorf("compute dtype %s: want F32 or F64", dt)
	}
	key, err := contentKey(ck, dt)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("weights-%s-%s.bin", dt, key[:32])
	refs, order, total := conversionLayout(ck, dt, name)
	hdr := entryHeader{Format: conversionFormat, Version: conversionVer, DType: dt, SHA256: key, Bytes: total}
	b := &WeightBinding{Dir: dir, Refs: refs, Converted: true}
	path := filepath.Join(dir, name)
	if entryIntact(path, hdr) {
		return b, nil
	}
	cacheErr := func(err error) error {
		return &CacheDirError{Dir: dir, Stored: ck.StorageDType(), Compute: dt, Err: err}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, cacheErr(err)
	}
	// A conversion killed before its rename leaves a temporary file of the entry's size; other
	// processes may be converting into the folder now, but a write not touched for an hour is dead.
	if _, err := atomicfs.CleanLeftovers(dir, staleConversion); err != nil {
		return nil, cacheErr(err)
	}
	var srcErr error // a failure reading the checkpoint, as opposed to writing the cache
	err = atomicfs.WriteBuffered(path, func(w io.Writer) error {
		srcErr = writeEntry(w, ck, dt, hdr, order, refs)
		return srcErr
	})
	switch {
	case srcErr != nil:
		return nil, srcErr
	case err != nil:
		return nil, cacheErr(err)
	}
	return b, nil
}

// staleConversion is the age after which an unfinished conversion's temporary file is removed.
const staleConversion = time.Hour

// entryIntact reports whether path holds a complete entry with header hdr.
func entryIntact(path string, hdr entryHeader) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() != hdr.Bytes {
		return false
	}
	page := make([]byte, conversionAlign)
	if _, err := io.ReadFull(f, page); err != nil {
		return false
	}
	var got entryHeader
	return json.Unmarshal(bytes.TrimRight(page, " "), &got) == nil && got == hdr
}

// writeEntry writes the header page and the converted tensors at their layout offsets.
func writeEntry(w io.Writer, ck *hf.Checkpoint, dt hf.DType, hdr entryHeader, order []string, refs map[string]ExternalRef) error {
	js, err := json.Marshal(hdr)
	if err != nil || len(js) >= conversionAlign {
		return fmt.Errorf("cache entry header: %v", err)
	}
	if _, err := w.Write(append(js, bytes.Repeat([]byte{' '}, conversionAlign-len(js))...)); err != nil {
		return err
	}
	off := int64(conversionAlign)
	for _, name := range order {
		ref := refs[name]
		if _, err := w.Write(make([]byte, ref.Offset-off)); err != nil {
			return err
		}
		n, err := convertTensor(w, ck.Weights[name], dt)
		if err != nil {
			return err
		}
		if n != ref.Length {
			return fmt.Errorf("tensor %s: converted %d bytes, layout expects %d", name, n, ref.Length)
		}
		off = ref.Offset + n
	}
	return nil
}

// convertTensor streams one tensor in rows so that memory stays bounded for 1B-scale embeddings.
func convertTensor(w io.Writer, t hf.TensorInfo, dt hf.DType) (int64, error) {
	rows, cols := int64(1), t.NumElements()
	if len(t.Shape) == 2 {
		rows, cols = t.Shape[0], t.Shape[1]
	}
	per := max(1, (1<<20)/cols) // rows per chunk
	var written int64
	for r := int64(0); r < rows; r += per {
		n := min(per, rows-r)
		part := t
		part.Shape = []int64{n * cols}
		part.Offset = t.Offset + r*cols*int64(t.DType.Size())
		part.Size = n * cols * int64(t.DType.Size())
		if dt == hf.F64 {
			vals, err := part.ReadFloat64()
			if err != nil {
				return 0, err
			}
			if err := hf.EncodeFloat64(w, vals); err != nil {
				return 0, err
			}
		} else {
			vals, err := part.ReadFloat32()
			if err != nil {
				return 0, err
			}
			if err := hf.EncodeFloat32(w, dt, vals); err != nil {
				return 0, err
			}
		}
		written += n * cols * int64(dt.Size())
	}
	return written, nil
}
