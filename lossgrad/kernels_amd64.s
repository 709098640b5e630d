//go:build amd64 && !purego

#include "textflag.h"

// Polynomial of Cephes' expf for exp(r) - 1 - r = r^2 * P(r), |r| <= ln2/2, as 8-lane vectors.
DATA expPoly<>+0(SB)/8, $0x3950696739506967
DATA expPoly<>+8(SB)/8, $0x3950696739506967
DATA expPoly<>+16(SB)/8, $0x3950696739506967
DATA expPoly<>+24(SB)/8, $0x3950696739506967
DATA expPoly<>+32(SB)/8, $0x3ab743ce3ab743ce
DATA expPoly<>+40(SB)/8, $0x3ab743ce3ab743ce
DATA expPoly<>+48(SB)/8, $0x3ab743ce3ab743ce
DATA expPoly<>+56(SB)/8, $0x3ab743ce3ab743ce
DATA expPoly<>+64(SB)/8, $0x3c0889083c088908
DATA expPoly<>+72(SB)/8, $0x3c0889083c088908
DATA expPoly<>+80(SB)/8, $0x3c0889083c088908
DATA expPoly<>+88(SB)/8, $0x3c0889083c088908
DATA expPoly<>+96(SB)/8, $0x3d2aa9c13d2aa9c1
DATA expPoly<>+104(SB)/8, $0x3d2aa9c13d2aa9c1
DATA expPoly<>+112(SB)/8, $0x3d2aa9c13d2aa9c1
DATA expPoly<>+120(SB)/8, $0x3d2aa9c13d2aa9c1
DATA expPoly<>+128(SB)/8, $0x3e2aaaaa3e2aaaaa
DATA expPoly<>+136(SB)/8, $0x3e2aaaaa3e2aaaaa
DATA expPoly<>+144(SB)/8, $0x3e2aaaaa3e2aaaaa
DATA expPoly<>+152(SB)/8, $0x3e2aaaaa3e2aaaaa
DATA expPoly<>+160(SB)/8, $0x3f0000003f000000
DATA expPoly<>+168(SB)/8, $0x3f0000003f000000
DATA expPoly<>+176(SB)/8, $0x3f0000003f000000
DATA expPoly<>+184(SB)/8, $0x3f0000003f000000
GLOBL expPoly<>(SB), RODATA|NOPTR, $192

// 1.5*2^23: adding it rounds a float32 below 2^22 in magnitude to an integer, which then
// sits in the low mantissa bits.
DATA expMagic<>+0(SB)/8, $0x4b4000004b400000
DATA expMagic<>+8(SB)/8, $0x4b4000004b400000
DATA expMagic<>+16(SB)/8, $0x4b4000004b400000
DATA expMagic<>+24(SB)/8, $0x4b4000004b400000
GLOBL expMagic<>(SB), RODATA|NOPTR, $32

// EXP8 computes Y3 = exp(max((x - m)*it, -86)) for the 8 floats at off(SI) and stores
// them at off(DI). Constants: Y15 m, Y14 it, Y13 log2(e), Y12 -86, Y11 ln2 high part,
// Y10 ln2 low part, Y9 1. Clobbers Y0-Y4.
//   k = round(d*log2e) via the 1.5*2^23 trick (FMA, one rounding), r = d - k*ln2 in two
//   parts, exp(r) = 1 + r + r^2*P(r) (Cephes expf), times 2^k by adding k<<23 to the bits.
#define EXP8(off) \
	VMOVUPS off(SI), Y0 \
	VSUBPS Y15, Y0, Y0 \
	VMULPS Y14, Y0, Y0 \
	VMAXPS Y0, Y12, Y0 \
	VMOVUPS expMagic<>(SB), Y1 \
	VFMADD231PS Y13, Y0, Y1 \
	VSUBPS expMagic<>(SB), Y1, Y2 \
	VFNMADD231PS Y11, Y2, Y0 \
	VFNMADD231PS Y10, Y2, Y0 \
	VMOVUPS expPoly<>+0(SB), Y3 \
	VFMADD213PS expPoly<>+32(SB), Y0, Y3 \
	VFMADD213PS expPoly<>+64(SB), Y0, Y3 \
	VFMADD213PS expPoly<>+96(SB), Y0, Y3 \
	VFMADD213PS expPoly<>+128(SB), Y0, Y3 \
	VFMADD213PS expPoly<>+160(SB), Y0, Y3 \
	VMULPS Y0, Y0, Y4 \
	VFMADD213PS Y0, Y4, Y3 \
	VADDPS Y9, Y3, Y3 \
	VPSLLD $23, Y1, Y1 \
	VPADDD Y1, Y3, Y3 \
	VMOVUPS Y3, off(DI)

// ACC64(src) adds the 8 float32 lanes of Y<src> to the float64 accumulators Y7, Y8.
#define ACC64(ysrc, xsrc) \
	VCVTPS2PD xsrc, Y6 \
	VADDPD Y6, Y7, Y7 \
	VEXTRACTF128 $1, ysrc, X6 \
	VCVTPS2PD X6, Y6 \
	VADDPD Y6, Y8, Y8

// func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL leaf+0(FP), AX
	MOVL sub+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// func xgetbv0() (eax uint32)
TEXT ·xgetbv0(SB), NOSPLIT, $0-4
	MOVL $0, CX
	XGETBV
	MOVL AX, eax+0(FP)
	RET

// func expStoreAVX2(x, out *float32, n int, m, it float32) float64
//
// For j < n (a multiple of 8): out[j] = exp(max((x[j]-m)*it, -86)) in float32 arithmetic
// (about 1e-7 relative; below -86 the result, under 3e-38, is left at exp(-86) instead of
// underflowing); returns the sum of the out[j]: blocks of 4 float32 values per lane are
// added in float32, then accumulated in float64.
TEXT ·expStoreAVX2(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ out+8(FP), DI
	MOVQ n+16(FP), CX
	VBROADCASTSS m+24(FP), Y15
	VBROADCASTSS it+28(FP), Y14
	MOVL $0x3fb8aa3b, AX // log2(e)
	VMOVD AX, X13
	VBROADCASTSS X13, Y13
	MOVL $0xc2ac0000, AX // -86: exp stays a normal float32
	VMOVD AX, X12
	VBROADCASTSS X12, Y12
	MOVL $0x3f318000, AX // ln2 high part (exact products with k)
	VMOVD AX, X11
	VBROADCASTSS X11, Y11
	MOVL $0xb95e8083, AX // ln2 low part (negative)
	VMOVD AX, X10
	VBROADCASTSS X10, Y10
	MOVL $0x3f800000, AX // 1
	VMOVD AX, X9
	VBROADCASTSS X9, Y9
	VXORPD Y7, Y7, Y7
	VXORPD Y8, Y8, Y8
	MOVQ CX, DX
	SHRQ $5, DX
	JZ   exp8

exp32loop:
	EXP8(0)
	VMOVAPS Y3, Y5
	EXP8(32)
	VADDPS Y3, Y5, Y5
	EXP8(64)
	VADDPS Y3, Y5, Y5
	EXP8(96)
	VADDPS Y3, Y5, Y5
	ACC64(Y5, X5)
	ADDQ $128, SI
	ADDQ $128, DI
	DECQ DX
	JNZ  exp32loop

exp8:
	ANDQ $31, CX
	SHRQ $3, CX
	JZ   expdone

exp8loop:
	EXP8(0)
	ACC64(Y3, X3)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  exp8loop

expdone:
	VADDPD Y8, Y7, Y7
	VEXTRACTF128 $1, Y7, X8
	VADDPD X8, X7, X7
	VUNPCKHPD X7, X7, X8
	VADDSD X8, X7, X7
	VMOVSD X7, ret+32(FP)
	VZEROUPPER
	RET

// func scaleAVX2(out *float32, n int, a float32)
//
// g[j] *= a for j < n (a multiple of 8).
TEXT ·scaleAVX2(SB), NOSPLIT, $0-20
	MOVQ out+0(FP), DI
	MOVQ n+8(FP), CX
	VBROADCASTSS a+16(FP), Y15
	MOVQ CX, DX
	SHRQ $5, DX
	JZ   scale8

scale32:
	VMULPS (DI), Y15, Y0
	VMULPS 32(DI), Y15, Y1
	VMULPS 64(DI), Y15, Y2
	VMULPS 96(DI), Y15, Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, DI
	DECQ DX
	JNZ  scale32

scale8:
	ANDQ $31, CX
	SHRQ $3, CX
	JZ   scaledone

scale8loop:
	VMULPS (DI), Y15, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	DECQ CX
	JNZ  scale8loop

scaledone:
	VZEROUPPER
	RET

// func scanAboveAVX2(x *float32, n int, thr float32) (skip int, mask uint32)
//
// Scans x[:n] in blocks of 16 for elements above thr (NaNs compare false). Returns the
// start of the first such block and the 16-bit mask of its elements above thr, or the
// largest multiple of 16 <= n and mask 0 when no full block holds one.
TEXT ·scanAboveAVX2(SB), NOSPLIT, $0-36
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS thr+16(FP), Y15
	XORQ AX, AX
	XORL DX, DX
	SHRQ $4, CX
	JZ   scandone

scanloop:
	VCMPPS $0x11, (SI), Y15, Y0   // thr < x (ordered, quiet)
	VCMPPS $0x11, 32(SI), Y15, Y1
	VORPS Y1, Y0, Y2
	VPTEST Y2, Y2
	JNZ  scanfound
	ADDQ $64, SI
	ADDQ $16, AX
	DECQ CX
	JNZ  scanloop
	JMP  scandone

scanfound:
	VMOVMSKPS Y0, DX
	VMOVMSKPS Y1, BX
	SHLL $8, BX
	ORL  BX, DX

scandone:
	MOVQ AX, skip+24(FP)
	MOVL DX, mask+32(FP)
	VZEROUPPER
	RET
