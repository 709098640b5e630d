package hf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// DType is a safetensors element type.
type DType string

const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	F64  DType = "F64"
	I64  DType = "I64"
	I32  DType = "I32"
)

// Size is the number of bytes of one element.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16:
		return 2
	}
	return 0
}

// IsFloat reports whether the dtype holds floating-point weights.
func (d DType) IsFloat() bool { return d == F32 || d == F16 || d == BF16 || d == F64 }

// parseTorchDType maps the config.json spelling ("bfloat16", "float32", ...) to a DType.
func parseTorchDType(s string) (DType, error) {
	switch s {
	case "bfloat16":
		return BF16, nil
	case "float16":
		return F16, nil
	case "float32":
		return F32, nil
	case "float64":
		return F64, nil
	}
	return "", fmt.Errorf("unknown torch dtype %q (want bfloat16, float16, float32 or float64)", s)
}

// TorchName is the config.json spelling of a floating-point dtype.
func (d DType) TorchName() string {
	switch d {
	case BF16:
		return "bfloat16"
	case F16:
		return "float16"
	case F32:
		return "float32"
	case F64:
		return "float64"
	}
	return string(d)
}

// bF16ToFloat32 widens a bfloat16 bit pattern exactly.
func bF16ToFloat32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// float32ToBF16 rounds to nearest even, as torch's .to(torch.bfloat16) does; NaN stays NaN.
func float32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

// f16ToFloat32 widens an IEEE half-precision bit pattern exactly.
func f16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal half: normalise into a float32 normal
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// decodeFloat32 converts little-endian elements of dtype d in src into dst (len(dst) elements).
func decodeFloat32(d DType, src []byte, dst []float32) {
	switch d {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = bF16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = f16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:])))
		}
	default:
		panic("hf: decodeFloat32 of " + string(d))
	}
}

// decodeFloat64 is decodeFloat32 widened to float64 (exact for every source dtype).
func decodeFloat64(d DType, src []byte, dst []float64) {
	if d == F64 {
		for i := range dst {
			dst[i] = math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:]))
		}
		return
	}
	tmp := make([]float32, len(dst))
	decodeFloat32(d, src, tmp)
	for i, v := range tmp {
		dst[i] = float64(v)
	}
}
