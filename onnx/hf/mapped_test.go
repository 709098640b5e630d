package hf

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"unsafe"
)

// mappedEqualsFile checks every expected weight's mapped bytes against the file's, and their
// alignment to the element size.
func mappedEqualsFile(t *testing.T, ck *Checkpoint, m *MappedWeights) {
	t.Helper()
	for _, spec := range ck.Config.ExpectedWeights() {
		info := ck.Weights[spec.Name]
		data, err := os.ReadFile(info.File)
		if err != nil {
			t.Fatal(err)
		}
		got := m.Tensors[spec.Name]
		if !bytes.Equal(got, data[info.Offset:info.Offset+info.Size]) {
			t.Fatalf("%s: mapped bytes differ from the file's", spec.Name)
		}
		if uintptr(unsafe.Pointer(&got[0]))%uintptr(info.DType.Size()) != 0 {
			t.Fatalf("%s: mapped at an address not aligned to its %d-byte elements", spec.Name, info.DType.Size())
		}
	}
}

func TestMapWeights(t *testing.T) {
	for _, dt := range []DType{BF16, F32} {
		for _, shard := range []int64{0, 3000} {
			ck, err := Open(writeTiny(t, InitOptions{Seed: 3, DType: dt, ShardBytes: shard}))
			if err != nil {
				t.Fatal(err)
			}
			m, err := ck.Map()
			if err != nil {
				t.Fatalf("%s shard %d: %v", dt, shard, err)
			}
			mappedEqualsFile(t, ck, m)
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestMapMisalignedWeights: a header of odd length (safetensors writers pad it to 8 bytes; a
// file that does not is still valid) puts every bf16 tensor at an odd offset: the mapping then
// holds aligned copies with the same bytes.
func TestMapMisalignedWeights(t *testing.T) {
	dir := writeTiny(t, InitOptions{Seed: 3, DType: BF16})
	path := dir + "/model.safetensors"
	pad := ""
	for odd := false; !odd; pad += "x" {
		rewriteHeader(t, path, func(h map[string]any) { h["__metadata__"] = map[string]any{"pad": pad} })
		data, _ := os.ReadFile(path)
		odd = data[0]%2 == 1
	}
	ck, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Weights[EmbedName].Offset%2 != 1 {
		t.Fatal("the rewritten header did not make the offsets odd")
	}
	m, err := ck.Map()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mappedEqualsFile(t, ck, m)
}

func TestMapTruncatedFile(t *testing.T) {
	dir := writeTiny(t, InitOptions{Seed: 3, DType: BF16})
	ck, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(ck.Files[0])
	if err := os.Truncate(ck.Files[0], st.Size()-2); err != nil {
		t.Fatal(err)
	}
	if _, err := ck.Map(); err == nil || !strings.Contains(err.Error(), ck.Files[0]+": truncated: tensor") {
		t.Fatalf("truncated file: %v", err)
	}
}
