package hf

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"

	"github.com/bearrec/bear/internal/atomicfs"
)

// TensorInfo locates one tensor's bytes in a safetensors file.
type TensorInfo struct {
	Name   string
	File   string // path of the safetensors file
	DType  DType
	Shape  []int64
	Offset int64 // absolute byte offset of the first element in File
	Size   int64 // bytes
}

// NumElements is the product of the shape (1 for a scalar).
func (t TensorInfo) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

type headerEntry struct {
	DType       string  `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// maxHeader bounds the JSON header; safetensors itself refuses headers over 100 MB.
const maxHeader = 100 << 20

// ReadSafetensorsHeader reads and validates the header of a safetensors file: every tensor's
// dtype is known, its byte range matches its shape and lies inside the file.
func ReadSafetensorsHeader(path string) (map[string]TensorInfo, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	return parseSafetensorsHeader(f, st.Size(), path)
}

// parseSafetensorsHeader reads the header of a safetensors file of size bytes from r; path names
// the file in errors and in the TensorInfos. Nothing is allocated beyond what the file holds: the
// header length and every tensor's byte range are checked against size first.
func parseSafetensorsHeader(r io.ReaderAt, size int64, path string) (map[string]TensorInfo, map[string]string, error) {
	var lenBuf [8]byte
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, nil, fmt.Errorf("%s: truncated: no 8-byte header length (file is %d bytes)", path, size)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > maxHeader || n > uint64(size-8) {
		return nil, nil, fmt.Errorf("%s: malformed header: length %d does not fit in the file (%d bytes)", path, n, size)
	}
	hdr := make([]byte, n)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, nil, fmt.Errorf("%s: truncated header: %w", path, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, nil, fmt.Errorf("%s: malformed header: %w", path, err)
	}
	dataStart := 8 + int64(n)
	dataLen := size - dataStart
	tensors := make(map[string]TensorInfo, len(raw))
	var meta map[string]string
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &meta); err != nil {
				return nil, nil, fmt.Errorf("%s: malformed header: __metadata__: %w", path, err)
			}
			continue
		}
		t, err := parseHeaderEntry(name, msg, dataStart, dataLen, path)
		if err != nil {
			return nil, nil, err
		}
		tensors[name] = t
	}
	return tensors, meta, nil
}

// parseHeaderEntry checks one tensor's header entry against the data section
// [dataStart, dataStart+dataLen) of the file.
func parseHeaderEntry(name string, msg json.RawMessage, dataStart, dataLen int64, path string) (TensorInfo, error) {
	var e headerEntry
	if err := json.Unmarshal(msg, &e); err != nil {
		return TensorInfo{}, fmt.Errorf("%s: malformed header: tensor %s: %w", path, name, err)
	}
	d := DType(e.DType)
	if d.Size() == 0 {
		return TensorInfo{}, fmt.Errorf("%s: tensor %s: unknown dtype %q", path, name, e.DType)
	}
	if len(e.DataOffsets) != 2 || e.DataOffsets[0] < 0 || e.DataOffsets[1] < e.DataOffsets[0] {
		return TensorInfo{}, fmt.Errorf("%s: malformed header: tensor %s: data_offsets %v", path, name, e.DataOffsets)
	}
	if e.DataOffsets[1] > dataLen {
		return TensorInfo{}, fmt.Errorf("%s: truncated: tensor %s ends at byte %d of the data section, which has %d bytes", path, name, e.DataOffsets[1], dataLen)
	}
	t := TensorInfo{Name: name, File: path, DType: d, Shape: e.Shape,
		Offset: dataStart + e.DataOffsets[0], Size: e.DataOffsets[1] - e.DataOffsets[0]}
	// The shape's byte count is computed with an overflow check: a product that wrapped around
	// could otherwise match a small byte range.
	want := int64(d.Size())
	for _, s := range e.Shape {
		if s < 0 {
			return TensorInfo{}, fmt.Errorf("%s: malformed header: tensor %s: negative dimension in shape %v", path, name, e.Shape)
		}
		if s != 0 && want > math.MaxInt64/s {
			return TensorInfo{}, fmt.Errorf("%s: malformed header: tensor %s: shape %v of %s needs more bytes than any file holds", path, name, e.Shape, d)
		}
		want *= s
	}
	if want != t.Size {
		return TensorInfo{}, fmt.Errorf("%s: malformed header: tensor %s: shape %v of %s needs %d bytes, data_offsets give %d", path, name, e.Shape, d, want, t.Size)
	}
	return t, nil
}

// ReadFloat32 reads a floating-point tensor, widening or narrowing it to float32.
func (t TensorInfo) ReadFloat32() ([]float32, error) {
	out := make([]float32, t.NumElements())
	err := t.readChunks(func(src []byte, at int64) { decodeFloat32(t.DType, src, out[at:at+int64(len(src)/t.DType.Size())]) })
	return out, err
}

// ReadFloat64 reads a floating-point tensor as float64 (exact for every stored dtype).
func (t TensorInfo) ReadFloat64() ([]float64, error) {
	out := make([]float64, t.NumElements())
	err := t.readChunks(func(src []byte, at int64) { decodeFloat64(t.DType, src, out[at:at+int64(len(src)/t.DType.Size())]) })
	return out, err
}

// readChunks streams the tensor's bytes in bounded chunks, calling fn with each chunk and the
// index of its first element, so that conversions never hold a second full copy.
func (t TensorInfo) readChunks(fn func(src []byte, at int64)) error {
	if !t.DType.IsFloat() {
		return fmt.Errorf("%s: tensor %s: dtype %s is not floating point", t.File, t.Name, t.DType)
	}
	f, err := os.Open(t.File)
	if err != nil {
		return fmt.Errorf("tensor %s: %w", t.Name, err)
	}
	defer f.Close()
	es := int64(t.DType.Size())
	chunk := (int64(4<<20) / es) * es
	buf := make([]byte, min(chunk, t.Size))
	for done := int64(0); done < t.Size; {
		n := min(int64(len(buf)), t.Size-done)
		if _, err := f.ReadAt(buf[:n], t.Offset+done); err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%s: truncated: tensor %s", t.File, t.Name)
			}
			return fmt.Errorf("%s: tensor %s: %w", t.File, t.Name, err)
		}
		fn(buf[:n], done/es)
		done += n
	}
	return nil
}

// WriteTensor is one tensor to be written by WriteSafetensors. Data is produced on demand, in
// element order, so that large tensors are never held twice.
type WriteTensor struct {
	Name  string
	DType DType
	Shape []int64
	// Fill writes the tensor's little-endian bytes to w.
	Fill func(w io.Writer) error
}

func (t WriteTensor) size() int64 {
	n := int64(t.DType.Size())
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// WriteSafetensors writes tensors (sorted by name, as the safetensors library does) to path,
// through a temporary file renamed into place (atomicfs), so that a crash never leaves a torn file.
func WriteSafetensors(path string, tensors []WriteTensor, metadata map[string]string) error {
	err := atomicfs.WriteBuffered(path, func(w io.Writer) error { return encodeSafetensors(w, tensors, metadata) })
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// encodeSafetensors writes the 8-byte header length, the JSON header and the tensors' bytes.
func encodeSafetensors(w io.Writer, tensors []WriteTensor, metadata map[string]string) error {
	sorted := append([]WriteTensor(nil), tensors...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	hdr := map[string]any{}
	if len(metadata) > 0 {
		hdr["__metadata__"] = metadata
	}
	var off int64
	for _, t := range sorted {
		shape := t.Shape
		if shape == nil {
			shape = []int64{}
		}
		hdr[t.Name] = headerEntry{DType: string(t.DType), Shape: shape, DataOffsets: []int64{off, off + t.size()}}
		off += t.size()
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	// Pad the header with spaces to a multiple of 8 so that the data is aligned, as safetensors does.
	for len(js)%8 != 0 {
		js = append(js, ' ')
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(js)))
	if _, err := w.Write(append(lenBuf[:], js...)); err != nil {
		return err
	}
	for _, t := range sorted {
		cw := &countingWriter{w: w}
		if err := t.Fill(cw); err != nil {
			return fmt.Errorf("tensor %s: %w", t.Name, err)
		}
		if cw.n != t.size() {
			return fmt.Errorf("tensor %s: wrote %d bytes, shape needs %d", t.Name, cw.n, t.size())
		}
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Float32Tensor is a WriteTensor holding float32 values, stored as dtype d (F32, BF16 or F64).
func Float32Tensor(name string, d DType, shape []int64, vals []float32) WriteTensor {
	return WriteTensor{Name: name, DType: d, Shape: shape, Fill: func(w io.Writer) error {
		return EncodeFloat32(w, d, vals)
	}}
}

// EncodeFloat32 writes vals as little-endian elements of dtype d.
func EncodeFloat32(w io.Writer, d DType, vals []float32) error {
	es := d.Size()
	buf := make([]byte, 0, 1<<16)
	for i, v := range vals {
		switch d {
		case F32:
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		case BF16:
			buf = binary.LittleEndian.AppendUint16(buf, float32ToBF16(v))
		case F64:
			buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(float64(v)))
		default:
			return fmt.Errorf("cannot encode float32 values as %s", d)
		}
		if len(buf)+es > cap(buf) || i == len(vals)-1 {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	return nil
}

// EncodeFloat64 writes vals as little-endian float64 elements.
func EncodeFloat64(w io.Writer, vals []float64) error {
	buf := make([]byte, 0, 1<<16)
	for i, v := range vals {
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
		if len(buf)+8 > cap(buf) || i == len(vals)-1 {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	return nil
}
