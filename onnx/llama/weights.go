package llama

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bearrec/bear/onnx/hf"
)

// ExternalRef locates one initializer's bytes for ONNX external data.
type ExternalRef struct {
	Location string `json:"location"` // relative to the external-data folder
	Offset   int64  `json:"offset"`
	Length   int64  `json:"length"`
}

// WeightBinding says where ONNX Runtime finds every base weight in the compute dtype.
type WeightBinding struct {
	Dir       string // the folder locations are relative to
	Refs      map[string]ExternalRef
	Converted bool // true when the weights were converted into Dir rather than referenced in place
}

// BindWeights locates the checkpoint's weights in compute dtype dt. When the checkpoint already
// stores dt and all its files live in one real folder (symlinks resolved, as in the HF cache),
// the weights are referenced in place. Otherwise they are converted once into
// cacheDir/weights-<dt>.bin; a stamp of the source files' sizes and modification times lets later
// calls reuse the conversion. Conversion streams tensor by tensor and keeps no copy in memory.
func BindWeights(ck *hf.Checkpoint, dt hf.DType, cacheDir string) (*WeightBinding, error) {
	if b, ok := bindInPlace(ck, dt); ok {
		return b, nil
	}
	if cacheDir == "" {
		return nil, fmt.Errorf("%s: weights are stored as %s and need converting to %s, but no cache folder was given", ck.Dir, ck.StorageDType(), dt)
	}
	return convertWeights(ck, dt, cacheDir)
}

func bindInPlace(ck *hf.Checkpoint, dt hf.DType) (*WeightBinding, bool) {
	if ck.StorageDType() != dt {
		return nil, false
	}
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
		b.Refs[name] = ExternalRef{Location: real[t.File], Offset: t.Offset, Length: t.Size}
	}
	return b, true
}

type stampFile struct {
	Size    int64 `json:"size"`
	ModTime int64 `json:"mtime_ns"`
}

type conversionStamp struct {
	DType   hf.DType               `json:"dtype"`
	Sources map[string]stampFile   `json:"sources"`
	Refs    map[string]ExternalRef `json:"tensors"`
}

func sourceStamp(ck *hf.Checkpoint) (map[string]stampFile, error) {
	m := map[string]stampFile{}
	for _, f := range ck.Files {
		st, err := os.Stat(f)
		if err != nil {
			return nil, err
		}
		abs, _ := filepath.Abs(f)
		m[abs] = stampFile{st.Size(), st.ModTime().UnixNano()}
	}
	return m, nil
}

// conversionAlign keeps every converted tensor page-aligned, so ONNX Runtime can map it.
const conversionAlign = 4096

func convertWeights(ck *hf.Checkpoint, dt hf.DType, dir string) (*WeightBinding, error) {
	if dt != hf.F32 && dt != hf.F64 {
		return nil, fmt.Errorf("compute dtype %s: want F32 or F64", dt)
	}
	src, err := sourceStamp(ck)
	if err != nil {
		return nil, err
	}
	binName := fmt.Sprintf("weights-%s.bin", dt)
	stampPath := filepath.Join(dir, fmt.Sprintf("weights-%s.json", dt))
	if data, err := os.ReadFile(stampPath); err == nil {
		var s conversionStamp
		if json.Unmarshal(data, &s) == nil && s.DType == dt && sameSources(s.Sources, src) && len(s.Refs) == len(ck.Weights) {
			if _, err := os.Stat(filepath.Join(dir, binName)); err == nil {
				return &WeightBinding{Dir: dir, Refs: s.Refs, Converted: true}, nil
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, binName+".tmp*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriterSize(tmp, 4<<20)
	refs := map[string]ExternalRef{}
	var off int64
	for _, spec := range ck.Config.ExpectedWeights() {
		t := ck.Weights[spec.Name]
		if pad := (conversionAlign - off%conversionAlign) % conversionAlign; pad > 0 {
			w.Write(make([]byte, pad))
			off += pad
		}
		n, err := convertTensor(w, t, dt)
		if err != nil {
			tmp.Close()
			return nil, err
		}
		refs[spec.Name] = ExternalRef{Location: binName, Offset: off, Length: n}
		off += n
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, binName)); err != nil {
		return nil, err
	}
	stamp, _ := json.MarshalIndent(conversionStamp{DType: dt, Sources: src, Refs: refs}, "", " ")
	if err := os.WriteFile(stampPath, stamp, 0o644); err != nil {
		return nil, err
	}
	return &WeightBinding{Dir: dir, Refs: refs, Converted: true}, nil
}

// convertTensor streams one tensor in rows so that memory stays bounded for 1B-scale embeddings.
func convertTensor(w *bufio.Writer, t hf.TensorInfo, dt hf.DType) (int64, error) {
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

func sameSources(a, b map[string]stampFile) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
