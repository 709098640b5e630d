package hf

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// MappedWeights are a checkpoint's expected weights in memory outside the Go heap: from Map, in
// place in their stored dtype (each safetensors file is mapped read-only once, every tensor is
// a view of its bytes; the pages are the page cache's, so the process holds no private copy,
// and two processes mapping one checkpoint share its pages); from Widen, float32 copies.
//
// A weight file truncated or rewritten while it is mapped is undefined behaviour (reads of
// vanished pages fault), as with any memory-mapped model file.
type MappedWeights struct {
	// Tensors holds each expected weight's little-endian bytes by HF name: a view of its file's
	// mapping, or a copy in an anonymous mapping for a tensor whose offset in its file is not a
	// multiple of its element size (safetensors writers align them; a copy keeps readers that
	// need aligned elements correct whatever wrote the file).
	Tensors map[string][]byte
	maps    [][]byte
}

// Map maps the checkpoint's weight files and checks that every expected weight lies inside
// its file.
func (ck *Checkpoint) Map() (_ *MappedWeights, err error) {
	m := &MappedWeights{Tensors: map[string][]byte{}}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	files := map[string][]byte{}
	for _, f := range ck.Files {
		data, err := mapFile(f)
		if err != nil {
			return nil, err
		}
		files[f] = data
		m.maps = append(m.maps, data)
	}
	for _, spec := range ck.Config.ExpectedWeights() {
		t := ck.Weights[spec.Name]
		data := files[t.File]
		if t.Offset < 0 || t.Size < 0 || t.Offset+t.Size > int64(len(data)) {
			return nil, fmt.Errorf("%s: truncated: tensor %s needs bytes [%d, %d), the file has %d", t.File, t.Name, t.Offset, t.Offset+t.Size, len(data))
		}
		view := data[t.Offset : t.Offset+t.Size : t.Offset+t.Size]
		if es := int64(t.DType.Size()); es > 0 && t.Offset%es != 0 {
			if view, err = anonCopy(view); err != nil {
				return nil, fmt.Errorf("%s: tensor %s: %w", t.File, t.Name, err)
			}
			m.maps = append(m.maps, view)
		}
		m.Tensors[spec.Name] = view
	}
	return m, nil
}

// Widen reads every expected weight from its file into a float32 copy in anonymous memory
// (outside the Go heap; Close returns it). Reading rather than mapping leaves the stored bytes in
// the page cache, not in the process's resident memory.
func (ck *Checkpoint) Widen() (_ *MappedWeights, err error) {
	m := &MappedWeights{Tensors: map[string][]byte{}}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	for _, spec := range ck.Config.ExpectedWeights() {
		t := ck.Weights[spec.Name]
		n := t.NumElements()
		buf, err := anonAlloc(int(4 * n))
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %s: %w", t.File, t.Name, err)
		}
		m.maps = append(m.maps, buf)
		if n > 0 {
			dst := unsafe.Slice((*float32)(unsafe.Pointer(&buf[0])), n)
			es := int64(t.DType.Size())
			if err := t.readChunks(func(src []byte, at int64) { decodeFloat32(t.DType, src, dst[at:at+int64(len(src))/es]) }); err != nil {
				return nil, err
			}
		}
		m.Tensors[spec.Name] = buf
	}
	return m, nil
}

// mapFile maps a whole file read-only; an empty file maps to nil.
func mapFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() == 0 {
		return nil, nil
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", path, err)
	}
	return data, nil
}

// anonCopy copies b into a fresh anonymous mapping (page-aligned, outside the Go heap).
func anonCopy(b []byte) ([]byte, error) {
	out, err := anonAlloc(len(b))
	if err != nil {
		return nil, fmt.Errorf("aligned copy: %w", err)
	}
	copy(out, b)
	return out, nil
}

// anonAlloc maps n zeroed bytes of anonymous memory (nil for n = 0).
func anonAlloc(n int) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	return syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
}

// Close unmaps the files and copies; the tensors must not be used afterwards.
func (m *MappedWeights) Close() error {
	var errs []error
	for _, d := range m.maps {
		if d != nil {
			errs = append(errs, syscall.Munmap(d))
		}
	}
	m.maps, m.Tensors = nil, nil
	return errors.Join(errs...)
}
