"""Weight-only quantized matmul `y = x @ dequant(W)^T` in Triton, autotuned.

The weight stays in the layout `autoquant.quant` writes (see `autoquant.formats`):
codes uint8 [N, K] (int8) or [N, ceil(K/2)] (int4, code 2j in the low nibble of byte
j), fp16 scales [N, G] and, for asymmetric formats, uint8 zero-points [N, G].

Kernels by regime (the launcher picks; `triton.autotune` picks each one's tiles per
(N, K, group, M bucket, bits, zero-point mode), results cached on disk):

* M = 1, decode (and M = 2 for int4): `_gemv_words_kernel`, CUDA cores only, a persistent
  stream: the (row tile, K step) pairs of the layer are flattened and every program takes an
  equal contiguous share (stream-K), so all SMs stream until the end whatever the layer's
  shape; a tile split between programs is summed by the last of them to arrive (one launch,
  deterministic, no memset). On short rows the tuner may instead give each program whole row
  tiles, so that none is split. Codes are read as 32-bit words, each word through one packed-PTX
  block (unpack, dequantize, multiply-add in half2, one fp32 out); with two token rows a word
  is unpacked once for both. In CUDA graph capture on sm_90+ it launches with programmatic
  dependent launch, so back-to-back calls overlap (`DECODE_PDL`). `_gemv_kernel` is a split-K
  GEMV on bytes, for shapes that cannot be read as words (K not a multiple of 8, misaligned x).
* 2 <= M <= 16 otherwise: `_small_m_kernel` computes y^T = W x^T so the weight tile is the
  *A* operand of `tl.dot` and stays in registers (wgmma, or mma.sync for tiles of 1-2 warps,
  which the tuner prefers: x^T stays in registers for a warp's rows); x^T, 4, 8 or 16 columns
  (`DOT_ROWS`: the fewest that hold M pay the least shared-memory traffic), is B. The dot runs
  on the exact integers q - z (one HSUB2 or HFMA2 a pair) and each scale group's scale
  multiplies the fp32 partial product, not every weight; a step may hold two or four whole
  groups (NG), so a pipeline stage carries that many times the bytes. int4 bytes are not interleaved: low nibbles multiply
  x[0::2] and high nibbles x[1::2], two dots a group.
* 16 < M < DEQUANT_MIN_M (or any M > 16 with an explicit config): `_large_m_kernel`, a
  tiled GEMM whose B tile is dequantized in registers (`tl.join` interleaves the nibbles)
  before `tl.dot`.
* DEQUANT_MIN_M <= M < 2048, tuned launches, on Hopper with fp16 x and int4 codes whose scale
  groups are whole 64-input steps, when the tiles fill the GPU: `kernels/wgmma_int4.py`, a Gluon
  kernel whose wgmma takes the dequantized W straight from registers (no W tile is stored);
  `wgmma_int4.pays_off` holds the measured rule.
* M >= DEQUANT_MIN_M, tuned launches, otherwise: `_dequant_kernel` writes W in x's dtype to a
  temporary [N, K] buffer and cuBLAS (`torch.mm`/`addmm`) multiplies; the extra ~2.5 bytes a
  weight of traffic costs ~10% of a 2048-token GEMM, less than the tl.dot kernel loses to cuBLAS.

Format knobs other than the bit width are mostly runtime arguments, so one compiled variant
serves every group size: a step never straddles a scale group (configs are pruned so the
sub-block divides GROUP). The decode word kernel compiles the zero-point mode in (a symmetric
format's fixed zero-point costs no loads); the others read it from a one-byte tensor with
stride 0.

Codes become fp16 through the exponent trick (0x6400 | q is 1024 + q in fp16) rather than
an int->float conversion, whose throughput on Hopper is below what streaming int4 at full
bandwidth needs; (q - z) is then exact and one multiply by the scale rounds once. On a GPU
the trick runs as PTX on four bytes at once (`_codes_to_fp16`, `_word_dot`; for int4 words
the stored order already puts codes t and t+4 of a word in the two 16-bit halves, so one LOP3
per half2 pair unpacks, as in Marlin, without repacking the weight); under the
interpreter (CPU tests) the same arithmetic runs as Triton ops, which is all that differs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from autoquant.formats import QuantFormat
from autoquant.quant import QuantizedWeight
from autoquant.kernels import wgmma_int4
from autoquant.kernels.timing import cold_l2_bench

SMALL_M_MAX = 16  # M up to this runs the decode kernel (tokens are one 16-wide dot operand)
MAX_SPLIT_K = 8
DEQUANT_MIN_M = 512  # from here on (tuned launches) W is dequantized to fp16 and cuBLAS multiplies
_SPLIT_MAX_N = 16384  # split-K only pays on layers too narrow to fill the GPU
# 2 <= M <= this, int4: the CUDA-core word kernel with M rows (one unpack per word for all rows);
# otherwise tl.dot (tensor cores). Measured on the H100 (bench/results/kernel-variants-h100.json):
# rows win at M = 2 for int4 (10-14% faster), lose from M = 4 and for int8 (FMA-bound).
ROWS_MAX_M = 2
DEQUANT_TILE = (64, 4)  # M >= DEQUANT_MIN_M: rows a program and warps of the dequantize pass


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def m_bucket(m: int) -> int:
    """Autotuning key for the token count: the next power of two (capped)."""
    return min(1 << max(m - 1, 0).bit_length(), 4096)


# ---------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------
@triton.jit
def _code_to_fp16(q):
    """uint8 code q -> 1024 + q in fp16, exactly (the exponent of 1024 has ulp 1)."""
    return (q.to(tl.uint16) | 0x6400).to(tl.float16, bitcast=True)


@triton.jit
def _codes_to_fp16(byt, BITS: tl.constexpr, USE_ASM: tl.constexpr):
    """Packed codes -> 1024 + code in fp16: (low, high) nibbles for int4, one value for int8.

    On the GPU four bytes are converted at once in 32-bit registers (PRMT spreads two bytes
    into the halves of a word, LOP3 masks and ORs the exponent), producing half2-packed
    results; the interpreter runs the same arithmetic byte by byte."""
    if USE_ASM:
        if BITS == 4:
            lo, hi = tl.inline_asm_elementwise(
                asm="""{
                .reg .b32 t0, t1, u0, u1;
                prmt.b32 t0, $4, 0, 0x4140;
                prmt.b32 t1, $4, 0, 0x4342;
                lop3.b32 $0, t0, 0x000F000F, 0x64006400, 0xEA;
                lop3.b32 $1, t1, 0x000F000F, 0x64006400, 0xEA;
                shr.u32 u0, t0, 4;
                shr.u32 u1, t1, 4;
                lop3.b32 $2, u0, 0x000F000F, 0x64006400, 0xEA;
                lop3.b32 $3, u1, 0x000F000F, 0x64006400, 0xEA;
                }""",
                constraints="=r,=r,=r,=r,r",
                args=[byt], dtype=(tl.float16, tl.float16), is_pure=True, pack=4,
            )
            return lo, hi
        v = tl.inline_asm_elementwise(
            asm="""{
            .reg .b32 m;
            mov.b32 m, 0x64646464;
            prmt.b32 $0, $2, m, 0x4140;
            prmt.b32 $1, $2, m, 0x4342;
            }""",
            constraints="=r,=r,r",
            args=[byt], dtype=tl.float16, is_pure=True, pack=4,
        )
        return v, v
    if BITS == 4:
        return _code_to_fp16(byt & 0xF), _code_to_fp16(byt >> 4)
    v = _code_to_fp16(byt)
    return v, v


@triton.jit
def _half2_bits(h):
    """fp16 [..] -> int32 holding (h, h) as a half2, for the packed PTX below."""
    bits = h.to(tl.int16, bitcast=True).to(tl.int32) & 0xFFFF
    return bits | (bits << 16)


@triton.jit
def _halves(p, dtype: tl.constexpr):
    """The two 16-bit values packed in int32 p (low half first), as dtype (fp16/bf16) bits."""
    return (p & 0xFFFF).to(tl.int16).to(dtype, bitcast=True), (p >> 16).to(tl.int16).to(dtype, bitcast=True)


@triton.jit
def _pair_half(p, HIGH: tl.constexpr, dtype: tl.constexpr):
    """x[2j + HIGH] in fp32 from the int32 pair (x[2j], x[2j+1])."""
    lo, hi = _halves(p, dtype)
    return (hi if HIGH else lo).to(tl.float32)


@triton.jit
def _zero_terms(zf):
    """Half2 operands -(32 + z/32) and -(2 + z/32) [BN, NG, 1] of the int4 magic-number unpack,
    from 1024 + z in fp16: they are fp16 0xD000 | z and 0xC000 | 16 z (z < 64), integer ops."""
    zi = zf.to(tl.int16, bitcast=True).to(tl.int32) & 0xFF
    zl = zi | 0xD000
    zh = (zi << 4) | 0xC000
    return (zl | (zl << 16))[:, :, None], (zh | (zh << 16))[:, :, None]


@triton.jit
def _code_x(p0, p1, p2, p3, T: tl.constexpr, dtype: tl.constexpr):
    """x (fp32) of code T of a word: half T % 2 of the int32 pair T // 2."""
    if T // 2 == 0:
        return _pair_half(p0, T % 2, dtype)
    elif T // 2 == 1:
        return _pair_half(p1, T % 2, dtype)
    elif T // 2 == 2:
        return _pair_half(p2, T % 2, dtype)
    return _pair_half(p3, T % 2, dtype)


@triton.jit
def _x_pairs_of_words(q0, q1):
    """A word's x quads -> the half2 pairs (x0, x4), (x1, x5), (x2, x6), (x3, x7) that match the
    magic-number unpack's code pairs (int32 each)."""
    return tl.inline_asm_elementwise(
        asm="""{
        .reg .b32 p0, p1, p2, p3;
        mov.b64 {p0, p1}, $4;
        mov.b64 {p2, p3}, $5;
        prmt.b32 $0, p0, p2, 0x5410;
        prmt.b32 $1, p0, p2, 0x7632;
        prmt.b32 $2, p1, p3, 0x5410;
        prmt.b32 $3, p1, p3, 0x7632;
        }""",
        constraints="=r,=r,=r,=r,l,l", args=[q0, q1],
        dtype=(tl.int32, tl.int32, tl.int32, tl.int32), is_pure=True, pack=1,
    )


@triton.jit
def _int4_word_products(wd, zf, q0, q1):
    """Per int4 code word wd [BN, NG, WPG]: the half2 (as int32) holding the sums of (q - z) / 32 * x
    over its codes 0-3 and 4-7 (see `_word_dot`); zf [BN, NG] 1024 + zero-point, q0, q1 [NG, WPG] x quads.
    The unpack is written again in `_word_dot_rows`, which needs it apart from the products; one
    block here on purpose: built from that unpack and a separate product block, the asymmetric
    M = 1 kernel was 4-10% slower on the H100 (`bench/results/kernel-variants-h100-split-unpack.json`)."""
    zl, zh = _zero_terms(zf)
    xa, xb, xc, xd = _x_pairs_of_words(q0, q1)
    return tl.inline_asm_elementwise(
        asm="""{
        .reg .b32 t, a, b, c, d, r32, r512;
        mov.b32 r32, 0x28002800;
        mov.b32 r512, 0x18001800;
        lop3.b32 a, $1, 0x000F000F, 0x64006400, 0xEA;
        lop3.b32 b, $1, 0x00F000F0, 0x64006400, 0xEA;
        shr.u32 t, $1, 8;
        lop3.b32 c, t, 0x000F000F, 0x64006400, 0xEA;
        lop3.b32 d, t, 0x00F000F0, 0x64006400, 0xEA;
        fma.rn.f16x2 a, a, r32, $2;
        fma.rn.f16x2 b, b, r512, $3;
        fma.rn.f16x2 c, c, r32, $2;
        fma.rn.f16x2 d, d, r512, $3;
        mul.rn.f16x2 $0, a, $4;
        fma.rn.f16x2 $0, b, $5, $0;
        fma.rn.f16x2 $0, c, $6, $0;
        fma.rn.f16x2 $0, d, $7, $0;
        }""",
        constraints="=r,r,r,r,r,r,r,r",
        args=[wd, zl, zh, xa[None, :, :], xb[None, :, :], xc[None, :, :], xd[None, :, :]],
        dtype=tl.int32, is_pure=True, pack=1,
    )


@triton.jit
def _word_dot(wd, xp, zf, s, BITS: tl.constexpr, ASM: tl.constexpr, dtype: tl.constexpr):
    """Per code word wd [BN, NG, WPG] (int32: 8 int4 or 4 int8 codes), sum over its codes of
    (q - z) * s * x, fp32. xp [NG, WPG, 32 // BITS // 4]: the word's x as int64 quads (4 values
    each); zf, s [BN, NG]: 1024 + zero-point and scale of each row's group in each of the NG
    sub-blocks.

    ASM (fp16 x on a GPU): one PTX block a word in packed half2 arithmetic. int4: LOP3 masks
    build the pairs (1024 + q) / (1024 + 16 q) straight from the word, one FMA a pair makes
    (q - z) / 32, FMAs with x, halves summed, then times 32 s in fp32. int8: PRMT builds 1024 + q,
    then (v - (1024 + z)) * s and FMAs with x, halves summed last.
    Otherwise the same sum in fp32 Triton ops (the interpreter's path, and bf16's)."""
    if ASM:
        q0, q1 = _word_quads(xp, BITS)
        if BITS == 4:
            # Magic-number unpack straight from the stored word (code t at bits 4t): masking with
            # 0x000F000F / 0x00F000F0 and OR-ing 0x6400 gives the half2 pairs (c0, c4), 16 (c1, c5),
            # and of word >> 8, (c2, c6), 16 (c3, c7): one LOP3 each, one shift a word. One FMA a
            # pair then makes (q - z) / 32 exactly (v / 32 - (32 + z/32), v / 512 - (2 + z/32)),
            # |.| <= 15/32, so the fp16 sum of a word's 8 products with x stays within 3.75 max|x|
            # (two words, `_word_dot_pairs`: 7.5); the scale (times 32) is applied in fp32. x operands are paired to
            # match: (x0,x4) (x1,x5) (x2,x6) (x3,x7), by PRMT from the two quads before x is
            # spread over the rows' threads (`_x_pairs_of_words`), so once a word, not a row.
            part = tl.inline_asm_elementwise(
                asm="""{
                .reg .f16 h0, h1;
                mov.b32 {h0, h1}, $1;
                add.rn.f16 h0, h0, h1;
                cvt.f32.f16 $0, h0;
                }""",
                constraints="=r,r", args=[_int4_word_products(wd, zf, q0, q1)], dtype=tl.float32, is_pure=True,
                pack=1,
            )
            return part * (s.to(tl.float32) * 32.0)[:, :, None]
        zz = _half2_bits(zf)[:, :, None]
        ss = _half2_bits(s)[:, :, None]
        return tl.inline_asm_elementwise(
            asm="""{
            .reg .b32 m, v01, v23, p, x01, x23;
            .reg .f16 a, b;
            mov.b64 {x01, x23}, $2;
            mov.b32 m, 0x64646464;
            prmt.b32 v01, $1, m, 0x4140;
            prmt.b32 v23, $1, m, 0x4342;
            sub.f16x2 v01, v01, $3;
            sub.f16x2 v23, v23, $3;
            mul.f16x2 v01, v01, $4;
            mul.f16x2 v23, v23, $4;
            mul.f16x2 p, v01, x01;
            fma.rn.f16x2 p, v23, x23, p;
            mov.b32 {a, b}, p;
            add.f16 a, a, b;
            cvt.f32.f16 $0, a;
            }""",
            constraints="=r,r,l,r,r",
            args=[wd, q0[None, :, :], zz, ss], dtype=tl.float32, is_pure=True, pack=1,
        )
    return tl.reshape(_word_dot_ref(wd, xp[None, :, :, :], zf, s, BITS, dtype), wd.shape)


@triton.jit
def _word_dot_pairs(wd, xp, zf, s):
    """`_word_dot` for int4 with fp16 x on a GPU, two words of a row summed in half2 before the one
    conversion to fp32 and the scale: [BN, NG, WPG] words -> fp32 [BN, NG, WPG // 2]. One half2
    add, one horizontal add, one conversion and one FFMA for two words instead of two of each
    (H100: 3-6% faster at M = 1). The last fp16 add sums 16 terms (q - z) / 32 * x: at most
    7.5 max|x| (|q - z| <= 15; symmetric codes 4 max|x|), what one word with (q - z) / 16 had."""
    q0, q1 = _word_quads(xp, 4)
    prod = _int4_word_products(wd, zf, q0, q1)
    pa, pb = tl.split(tl.reshape(prod, (wd.shape[0], wd.shape[1], wd.shape[2] // 2, 2)))
    part = tl.inline_asm_elementwise(
        asm="""{
        .reg .b32 p;
        .reg .f16 h0, h1;
        add.rn.f16x2 p, $1, $2;
        mov.b32 {h0, h1}, p;
        add.rn.f16 h0, h0, h1;
        cvt.f32.f16 $0, h0;
        }""",
        constraints="=r,r,r", args=[pa, pb], dtype=tl.float32, is_pure=True, pack=1,
    )
    return part * (s.to(tl.float32) * 32.0)[:, :, None]


@triton.jit
def _word_dot_rows(wd, xp, zf, s, BITS: tl.constexpr, ASM: tl.constexpr, dtype: tl.constexpr):
    """`_word_dot` for several token rows: xp [BM, NG, WPG, Q] -> fp32 [BM, BN, NG, WPG].

    Each word is unpacked once (into half2 pairs of (q - z) / 32, or of the dequantized weight
    for int8) and then multiplied with every row's x, so the unpack cost is shared by the rows."""
    if ASM:
        if BITS == 4:
            zl, zh = _zero_terms(zf)
            ua, ub, uc, ud = tl.inline_asm_elementwise(
                asm="""{
                .reg .b32 t, r32, r512;
                mov.b32 r32, 0x28002800;
                mov.b32 r512, 0x18001800;
                lop3.b32 $0, $4, 0x000F000F, 0x64006400, 0xEA;
                lop3.b32 $1, $4, 0x00F000F0, 0x64006400, 0xEA;
                shr.u32 t, $4, 8;
                lop3.b32 $2, t, 0x000F000F, 0x64006400, 0xEA;
                lop3.b32 $3, t, 0x00F000F0, 0x64006400, 0xEA;
                fma.rn.f16x2 $0, $0, r32, $5;
                fma.rn.f16x2 $1, $1, r512, $6;
                fma.rn.f16x2 $2, $2, r32, $5;
                fma.rn.f16x2 $3, $3, r512, $6;
                }""",
                constraints="=r,=r,=r,=r,r,r,r", args=[wd, zl, zh],
                dtype=(tl.int32, tl.int32, tl.int32, tl.int32), is_pure=True, pack=1,
            )
            q0, q1 = _word_quads(xp, BITS)
            xa, xb, xc, xd = _x_pairs_of_words(q0, q1)
            part = tl.inline_asm_elementwise(
                asm="""{
                .reg .b32 p;
                .reg .f16 h0, h1;
                mul.rn.f16x2 p, $1, $5;
                fma.rn.f16x2 p, $2, $6, p;
                fma.rn.f16x2 p, $3, $7, p;
                fma.rn.f16x2 p, $4, $8, p;
                mov.b32 {h0, h1}, p;
                add.rn.f16 h0, h0, h1;
                cvt.f32.f16 $0, h0;
                }""",
                constraints="=r,r,r,r,r,r,r,r,r",
                args=[ua[None, :, :, :], ub[None, :, :, :], uc[None, :, :, :], ud[None, :, :, :],
                      xa[:, None, :, :], xb[:, None, :, :], xc[:, None, :, :], xd[:, None, :, :]],
                dtype=tl.float32, is_pure=True, pack=1,
            )
            return part * (s.to(tl.float32) * 32.0)[None, :, :, None]
        zz = _half2_bits(zf)[:, :, None]
        ss = _half2_bits(s)[:, :, None]
        w01, w23 = tl.inline_asm_elementwise(
            asm="""{
            .reg .b32 m;
            mov.b32 m, 0x64646464;
            prmt.b32 $0, $2, m, 0x4140;
            prmt.b32 $1, $2, m, 0x4342;
            sub.f16x2 $0, $0, $3;
            sub.f16x2 $1, $1, $3;
            mul.f16x2 $0, $0, $4;
            mul.f16x2 $1, $1, $4;
            }""",
            constraints="=r,=r,r,r,r", args=[wd, zz, ss], dtype=(tl.int32, tl.int32), is_pure=True, pack=1,
        )
        q0, _ = _word_quads(xp, BITS)
        return tl.inline_asm_elementwise(
            asm="""{
            .reg .b32 p, x01, x23;
            .reg .f16 a, b;
            mov.b64 {x01, x23}, $3;
            mul.f16x2 p, $1, x01;
            fma.rn.f16x2 p, $2, x23, p;
            mov.b32 {a, b}, p;
            add.f16 a, a, b;
            cvt.f32.f16 $0, a;
            }""",
            constraints="=r,r,r,l",
            args=[w01[None, :, :, :], w23[None, :, :, :], q0[:, None, :, :]],
            dtype=tl.float32, is_pure=True, pack=1,
        )
    return _word_dot_ref(wd, xp, zf, s, BITS, dtype)


@triton.jit
def _word_quads(xp, BITS: tl.constexpr):
    """x quads [..., Q] (int64, 4 fp16 each) -> the word's first and second quad (int8: one)."""
    if BITS == 4:
        return tl.split(xp)  # x[8w..8w+3], x[8w+4..8w+7]
    q = tl.sum(xp, axis=len(xp.shape) - 1)  # the one quad (a size-1 axis: exact)
    return q, q


@triton.jit
def _word_dot_ref(wd, xp, zf, s, BITS: tl.constexpr, dtype: tl.constexpr):
    """The word dot in fp32 Triton ops (the interpreter's path, and bf16's): wd [BN, NG, WPG],
    xp [BM, NG, WPG, Q] int64 quads -> [BM, BN, NG, WPG]."""
    q0, q1 = _word_quads(xp, BITS)
    p0 = (q0 & 0xFFFFFFFF).to(tl.int32)
    p1 = (q0 >> 32).to(tl.int32)
    p2 = (q1 & 0xFFFFFFFF).to(tl.int32)
    p3 = (q1 >> 32).to(tl.int32)
    z = zf.to(tl.float32)[None, :, :, None] - 1024.0
    sc = s.to(tl.float32)[None, :, :, None]
    mask: tl.constexpr = (1 << BITS) - 1
    total = tl.zeros((xp.shape[0], wd.shape[0], wd.shape[1], wd.shape[2]), dtype=tl.float32)
    for t in tl.static_range(32 // BITS):  # code t of the word pairs with x[t] = half t%2 of pair t//2
        q = ((wd >> (BITS * t)) & mask).to(tl.float32)[None, :, :, :]
        xt = _code_x(p0, p1, p2, p3, t, dtype)
        total += (q - z) * xt[:, None, :, :]
    return total * sc


@triton.jit
def _sym_zero_term(shape: tl.constexpr, BITS: tl.constexpr):
    """1024 + the symmetric formats' fixed zero-point 2^(BITS-1), in fp16 (nothing is loaded)."""
    return tl.full(shape, 1024 + (1 << (BITS - 1)), tl.float16)


@triton.jit
def _scale_zero(s_ptr, z_ptr, offs_n, n_mask, k, K, GROUP, stride_sn, stride_zn, stride_zg,
                SYM: tl.constexpr = False, BITS: tl.constexpr = 4):
    """Scale [BN] and 1024 + zero-point [BN] (fp16) of the group holding input k (clamped to K - 1);
    SYM: the format's fixed zero-point 2^(BITS-1), not loaded."""
    g = tl.minimum(k, K - 1) // GROUP
    s = tl.load(s_ptr + offs_n * stride_sn + g, mask=n_mask, other=0.0)
    if SYM:
        return s, _sym_zero_term(s.shape, BITS)
    z = tl.load(z_ptr + offs_n * stride_zn + g * stride_zg, mask=n_mask, other=0)
    return s, _code_to_fp16(z)


@triton.jit
def _load_codes(c_rows, kb, n_mask, row_bytes, EVEN_K: tl.constexpr):
    # Without the K mask (EVEN_K) the loads are 16-byte vectors the pipeliner can stream
    # with cp.async; a mask of unknown alignment would force byte loads.
    if EVEN_K:
        return tl.load(c_rows + kb[None, :], mask=n_mask[:, None], other=0)
    return tl.load(c_rows + kb[None, :], mask=n_mask[:, None] & (kb[None, :] < row_bytes), other=0)


@triton.jit
def _dequant_tile(byt, s, zf, BITS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                  USE_ASM: tl.constexpr, dtype: tl.constexpr):
    """Code bytes [BLOCK_N, BLOCK_K * BITS / 8] -> (q - z) * s [BLOCK_N, BLOCK_K] in dtype, inputs in
    stored order (int4: the two nibbles of each byte interleaved back, `tl.join`); s, zf [BLOCK_N]."""
    c_lo, c_hi = _codes_to_fp16(byt, BITS, USE_ASM)
    if BITS == 8:
        w = ((c_lo - zf[:, None]) * s[:, None]).to(dtype)
    else:
        w_lo = (c_lo - zf[:, None]) * s[:, None]
        w_hi = (c_hi - zf[:, None]) * s[:, None]
        w = tl.reshape(tl.join(w_lo, w_hi), (BLOCK_N, BLOCK_K)).to(dtype)
    return w


@triton.jit
def _codes_minus_zero(byt, zf, BITS: tl.constexpr, USE_ASM: tl.constexpr):
    """Packed codes [BN, B] and 1024 + z [BN] (fp16) -> q - z in fp16, exact: (low, high) nibbles
    for int4, one value (twice) for int8.

    int4 on the GPU, four bytes at once: PRMT spreads two bytes into the halves of a word; the
    low nibble is LOP3'd under the exponent of 1024 (1024 + q) and one HSUB2 takes 1024 + z off;
    the high nibble is masked in place (1024 + 16 q) and one HFMA2 (x 1/16, - (64 + z)) both
    scales and subtracts, so no shift is needed (as in Marlin)."""
    if USE_ASM and BITS == 4:
        zl = tl.broadcast_to(zf[:, None], byt.shape)
        zh = tl.broadcast_to((960.0 - zf)[:, None], byt.shape)  # -(64 + z), exact in fp16
        lo, hi = tl.inline_asm_elementwise(
            asm="""{
            .reg .b32 t0, t1, u0, u1, v0, v1, r16;
            mov.b32 r16, 0x2C002C00;
            prmt.b32 t0, $4, 0, 0x4140;
            prmt.b32 t1, $4, 0, 0x4342;
            lop3.b32 u0, t0, 0x000F000F, 0x64006400, 0xEA;
            lop3.b32 u1, t1, 0x000F000F, 0x64006400, 0xEA;
            lop3.b32 v0, t0, 0x00F000F0, 0x64006400, 0xEA;
            lop3.b32 v1, t1, 0x00F000F0, 0x64006400, 0xEA;
            sub.f16x2 $0, u0, $5;
            sub.f16x2 $1, u1, $6;
            fma.rn.f16x2 $2, v0, r16, $7;
            fma.rn.f16x2 $3, v1, r16, $8;
            }""",
            constraints="=r,=r,=r,=r,r,r,r,r,r",
            args=[byt, zl, zh], dtype=(tl.float16, tl.float16), is_pure=True, pack=4,
        )
        return lo, hi
    c_lo, c_hi = _codes_to_fp16(byt, BITS, USE_ASM)
    return c_lo - zf[:, None], c_hi - zf[:, None]


@triton.jit
def _step_scales(s_ptr, z_ptr, offs_n, n_mask, k, K, GROUP, stride_sn, stride_zn, stride_zg,
                 SUB: tl.constexpr, NG: tl.constexpr, SYM: tl.constexpr, BITS: tl.constexpr,
                 SZ_PAIRS: tl.constexpr = False):
    """(scale, 1024 + zero-point) [BN] of each of the NG (1, 2 or 4) sub-blocks of SUB inputs from
    k, as four pairs (unused ones repeat the first). [BN] loads, not one [BN, NG] tile: a 2-D
    tile's layout makes Triton run the unpack in the load layout and convert the whole weight
    tile to the dot operand's (sm_90 SASS: 692 instructions a step, not 360). SZ_PAIRS (NG = 2
    whole groups a step, aligned): both scales of a row in one 4-byte load, both zero-points in
    one 2-byte load."""
    if SZ_PAIRS:
        g = tl.minimum(k, K - 2 * SUB) // GROUP  # even
        sp = tl.load(s_ptr.to(tl.pointer_type(tl.int32)) + (offs_n * stride_sn + g) // 2, mask=n_mask, other=0)
        s0, s1 = _halves(sp, tl.float16)
        if SYM:
            z0 = _sym_zero_term(s0.shape, BITS)
            z1 = z0
        else:
            zp = tl.load(z_ptr.to(tl.pointer_type(tl.int16)) + (offs_n * stride_zn + g) // 2, mask=n_mask, other=0)
            z0 = _code_to_fp16(zp & 0xFF)
            z1 = _code_to_fp16((zp >> 8) & 0xFF)
        s2, z2, s3, z3 = s0, z0, s0, z0
    else:
        s0, z0 = _scale_zero(s_ptr, z_ptr, offs_n, n_mask, k, K, GROUP, stride_sn, stride_zn, stride_zg, SYM, BITS)
        s1, z1, s2, z2, s3, z3 = s0, z0, s0, z0, s0, z0
        if NG >= 2:
            s1, z1 = _scale_zero(s_ptr, z_ptr, offs_n, n_mask, k + SUB, K, GROUP, stride_sn, stride_zn, stride_zg,
                                 SYM, BITS)
        if NG == 4:
            s2, z2 = _scale_zero(s_ptr, z_ptr, offs_n, n_mask, k + 2 * SUB, K, GROUP, stride_sn, stride_zn,
                                 stride_zg, SYM, BITS)
            s3, z3 = _scale_zero(s_ptr, z_ptr, offs_n, n_mask, k + 3 * SUB, K, GROUP, stride_sn, stride_zn,
                                 stride_zg, SYM, BITS)
    return s0, z0, s1, z1, s2, z2, s3, z3


@triton.jit
def _pick(J: tl.constexpr, a0, a1, a2, a3):
    if J == 0:
        v = a0
    elif J == 1:
        v = a1
    elif J == 2:
        v = a2
    else:
        v = a3
    return v


@triton.jit
def _small_m_part(c_rows, x_cols, x_pairs, k0, zf, n_mask, m_mask, K, row_bytes,
                  BITS: tl.constexpr, BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr, X_PAIRS: tl.constexpr,
                  USE_ASM: tl.constexpr, dtype: tl.constexpr):
    """The [BN, BLOCK_M] fp32 product of (q - z) for inputs k0 .. k0 + BLOCK_K (inside one scale
    group) with x^T, unscaled."""
    PACK: tl.constexpr = 8 // BITS  # codes per byte
    offs_b = tl.arange(0, BLOCK_K // PACK)
    kb = k0 // PACK + offs_b
    byt = _load_codes(c_rows, kb, n_mask, row_bytes, EVEN_K)
    q_lo, q_hi = _codes_minus_zero(byt, zf, BITS, USE_ASM)
    if BITS == 8:
        xk = k0 + offs_b
        if EVEN_K:
            xt = tl.load(x_cols + xk[:, None], mask=m_mask[None, :], other=0.0)
        else:
            xt = tl.load(x_cols + xk[:, None], mask=m_mask[None, :] & (xk[:, None] < K), other=0.0)
        return tl.dot(q_lo.to(dtype), xt)
    if X_PAIRS:
        if EVEN_K:
            pairs = tl.load(x_pairs + kb[:, None], mask=m_mask[None, :], other=0)
        else:
            pairs = tl.load(x_pairs + kb[:, None], mask=m_mask[None, :] & (kb[:, None] < K // 2), other=0)
        xe, xo = _halves(pairs, dtype)
    else:
        xk = 2 * kb
        xe = tl.load(x_cols + xk[:, None], mask=m_mask[None, :] & (xk[:, None] < K), other=0.0)
        xo = tl.load(x_cols + xk[:, None] + 1, mask=m_mask[None, :] & (xk[:, None] + 1 < K), other=0.0)
    part = tl.dot(q_lo.to(dtype), xe)
    return tl.dot(q_hi.to(dtype), xo, part)


@triton.jit(do_not_specialize=["GROUP", "SPLIT_K", "M_BUCKET", "stride_zn", "stride_zg"])
def _small_m_kernel(
    x_ptr, c_ptr, s_ptr, z_ptr, b_ptr, y_ptr, ws_ptr, lock_ptr,
    M, N, K, GROUP, SPLIT_K,
    stride_xm, stride_cn, stride_sn, stride_zn, stride_zg, stride_ym,
    M_BUCKET,
    BITS: tl.constexpr, HAS_BIAS: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr, X_PAIRS: tl.constexpr,
    USE_ASM: tl.constexpr, BLOCK_M: tl.constexpr = 16, SYM: tl.constexpr = False, NG: tl.constexpr = 1,
    SZ_PAIRS: tl.constexpr = False, PDL: tl.constexpr = False,
):
    """y^T = W x^T for 2 <= M <= 16 on tensor cores. A step is NG (1, 2 or 4) sub-blocks, each inside
    one scale group, so the dot runs on the exact integers q - z and the group's scale multiplies
    the sub-block's [BN, M] partial product (fp32) instead of every weight: one HFMA2/HSUB2 a
    weight pair, not two. SYM: the format's fixed zero-point, nothing loaded. PDL: launched with
    programmatic dependent launch (`_pick_dot`): the next kernel may start now; this one asks L2
    for the first 256 code bytes of each of its rows (a prefetch into L2, the point of coherence,
    cannot read stale data) and waits for the kernel before it ahead of any load or store."""
    PACK: tl.constexpr = 8 // BITS  # codes per byte
    SUB: tl.constexpr = BLOCK_K // NG
    dtype = x_ptr.dtype.element_ty
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)

    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    n_mask = offs_n < N
    m_mask = offs_m < M
    row_bytes = (K + PACK - 1) // PACK

    steps_per_split = tl.cdiv(tl.cdiv(K, BLOCK_K), SPLIT_K)
    k_begin = pid_k * steps_per_split * BLOCK_K
    k_end = tl.minimum(K, k_begin + steps_per_split * BLOCK_K)

    c_rows = c_ptr + offs_n[:, None] * stride_cn
    if PDL:
        tl.extra.cuda.gdc_launch_dependents()
        pf = tl.minimum(k_begin // PACK + tl.arange(0, 2) * 128, row_bytes - 1)
        tl.inline_asm_elementwise("prefetch.global.L2 [$1]; mov.u32 $0, 0;", "=r,l",
                                  [c_ptr + tl.where(n_mask, offs_n, 0)[:, None] * stride_cn + pf[None, :]],
                                  dtype=tl.int32, is_pure=False, pack=1)
        tl.extra.cuda.gdc_wait()
    x_cols = x_ptr + offs_m[None, :] * stride_xm
    # x as int32 pairs (x[2j], x[2j+1]): one 4-byte load feeds the low- and high-nibble dots
    x_pairs = x_ptr.to(tl.pointer_type(tl.int32)) + offs_m[None, :] * (stride_xm // 2)
    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    # Scales and zero-points are per-row gathers too narrow to pipeline: fetch one step ahead.
    s0, z0, s1, z1, s2, z2, s3, z3 = _step_scales(s_ptr, z_ptr, offs_n, n_mask, k_begin, K, GROUP, stride_sn,
                                                  stride_zn, stride_zg, SUB, NG, SYM, BITS, SZ_PAIRS)
    for k0 in range(k_begin, k_end, BLOCK_K):
        n0, nz0, n1, nz1, n2, nz2, n3, nz3 = _step_scales(s_ptr, z_ptr, offs_n, n_mask, k0 + BLOCK_K, K, GROUP,
                                                          stride_sn, stride_zn, stride_zg, SUB, NG, SYM, BITS,
                                                          SZ_PAIRS)
        for j in tl.static_range(NG):
            part = _small_m_part(c_rows, x_cols, x_pairs, k0 + j * SUB, _pick(j, z0, z1, z2, z3), n_mask, m_mask, K,
                                 row_bytes, BITS, SUB, EVEN_K, X_PAIRS, USE_ASM, dtype)
            acc += part * _pick(j, s0, s1, s2, s3).to(tl.float32)[:, None]
        s0, z0, s1, z1, s2, z2, s3, z3 = n0, nz0, n1, nz1, n2, nz2, n3, nz3

    # acc is y^T [BLOCK_N, BLOCK_M]; written as y [BLOCK_M, BLOCK_N] (split-K: `_splitk_finish`)
    _splitk_finish(tl.trans(acc), y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :],
                   ws_ptr + offs_m[:, None] * N + offs_n[None, :], m_mask[:, None] & n_mask[None, :],
                   b_ptr, offs_n, n_mask, lock_ptr, pid_n, pid_k, M, N, SPLIT_K, HAS_BIAS)


@triton.jit
def _splitk_finish(acc, y_ptrs, ws_ptrs, out_mask, b_ptr, offs_n, n_mask, lock_ptr, pid_n, pid_k, M, N,
                   SPLIT_K, HAS_BIAS: tl.constexpr):
    """Write acc (+ bias) to y; with split-K, park it and let the last arriving program sum the
    partials in a fixed order (deterministic, one launch) and reset the counter for the next launch."""
    dtype = y_ptrs.dtype.element_ty
    if SPLIT_K == 1:
        if HAS_BIAS:
            acc += tl.load(b_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)
        tl.store(y_ptrs, acc.to(dtype), mask=out_mask)
    else:
        tl.store(ws_ptrs + pid_k * M * N, acc, mask=out_mask)
        tl.debug_barrier()
        arrived = tl.atomic_add(lock_ptr + pid_n, 1, sem="acq_rel", scope="gpu")
        if arrived == SPLIT_K - 1:
            total = tl.zeros(acc.shape, dtype=tl.float32)
            for s_idx in range(SPLIT_K):
                total += tl.load(ws_ptrs + s_idx * M * N, mask=out_mask, other=0.0, cache_modifier=".cg")
            if HAS_BIAS:
                total += tl.load(b_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)
            tl.store(y_ptrs, total.to(dtype), mask=out_mask)
            tl.atomic_xchg(lock_ptr + pid_n, 0, sem="relaxed", scope="gpu")


@triton.jit(do_not_specialize=["GROUP", "SPLIT_K", "M_BUCKET", "stride_zn", "stride_zg"])
def _gemv_kernel(
    x_ptr, c_ptr, s_ptr, z_ptr, b_ptr, y_ptr, ws_ptr, lock_ptr,
    M, N, K, GROUP, SPLIT_K,
    stride_xm, stride_cn, stride_sn, stride_zn, stride_zg, stride_ym,
    M_BUCKET,
    BITS: tl.constexpr, HAS_BIAS: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr, X_PAIRS: tl.constexpr,
    USE_ASM: tl.constexpr,
):
    """M = 1 on CUDA cores, any shape (the word kernel below is the fast path): each thread
    streams code bytes straight into registers, the next step's codes and scales already in
    flight (prefetched one step ahead), fp32 products per byte, one row reduction at the end."""
    PACK: tl.constexpr = 8 // BITS
    BKB: tl.constexpr = BLOCK_K // PACK
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_b = tl.arange(0, BKB)
    n_mask = offs_n < N
    row_bytes = (K + PACK - 1) // PACK
    steps_per_split = tl.cdiv(tl.cdiv(K, BLOCK_K), SPLIT_K)
    k_begin = pid_k * steps_per_split * BLOCK_K
    k_end = tl.minimum(K, k_begin + steps_per_split * BLOCK_K)

    c_rows = c_ptr + offs_n[:, None] * stride_cn
    x_pairs = x_ptr.to(tl.pointer_type(tl.int32))

    acc = tl.zeros((BLOCK_N, BKB), dtype=tl.float32)
    # (offs_n * 0 + scalar: a vector comparison; the interpreter rejects scalar-broadcast masks)
    byt = _load_codes(c_rows, k_begin // PACK + offs_b, n_mask & (offs_n * 0 + k_begin < k_end), row_bytes, EVEN_K)
    s, zf = _scale_zero(s_ptr, z_ptr, offs_n, n_mask, k_begin, K, GROUP, stride_sn, stride_zn, stride_zg)
    for k0 in range(k_begin, k_end, BLOCK_K):
        nxt = k0 + BLOCK_K
        kb = k0 // PACK + offs_b
        # next step's operands first, so their latency overlaps this step's arithmetic
        rows_next = n_mask & (offs_n * 0 + nxt < k_end)
        byt_next = _load_codes(c_rows, nxt // PACK + offs_b, rows_next, row_bytes, EVEN_K)
        s_next, zf_next = _scale_zero(s_ptr, z_ptr, offs_n, n_mask, nxt, K, GROUP, stride_sn, stride_zn, stride_zg)
        if BITS == 8:
            c_lo, c_hi = _codes_to_fp16(byt, BITS, USE_ASM)
            xk = k0 + offs_b
            if EVEN_K:
                xv = tl.load(x_ptr + xk)
            else:
                xv = tl.load(x_ptr + xk, mask=xk < K, other=0.0)
            w = (c_lo - zf[:, None]) * s[:, None]
            acc += w.to(tl.float32) * xv.to(tl.float32)[None, :]
        else:
            c_lo, c_hi = _codes_to_fp16(byt, BITS, USE_ASM)
            if X_PAIRS:
                if EVEN_K:
                    pairs = tl.load(x_pairs + kb)
                else:
                    pairs = tl.load(x_pairs + kb, mask=kb < K // 2, other=0)
                xe, xo = _halves(pairs, x_ptr.dtype.element_ty)
            else:
                xe = tl.load(x_ptr + 2 * kb, mask=2 * kb < K, other=0.0)
                xo = tl.load(x_ptr + 2 * kb + 1, mask=2 * kb + 1 < K, other=0.0)
            w_lo = (c_lo - zf[:, None]) * s[:, None]
            w_hi = (c_hi - zf[:, None]) * s[:, None]
            acc += w_lo.to(tl.float32) * xe.to(tl.float32)[None, :]
            acc += w_hi.to(tl.float32) * xo.to(tl.float32)[None, :]
        byt = byt_next
        s, zf = s_next, zf_next

    out = tl.sum(acc, axis=1)
    _splitk_finish(out, y_ptr + offs_n, ws_ptr + offs_n, n_mask, b_ptr, offs_n, n_mask, lock_ptr, pid_n, pid_k,
                   1, N, SPLIT_K, HAS_BIAS)


@triton.jit
def _word_codes(w_rows, s_ptr, z_ptr, offs_n, n_mask, k0, K, GROUP, stride_sn, stride_zn,
                row_words, word_off, offs_g, rows_ok, BITS: tl.constexpr, CPW: tl.constexpr, SUB: tl.constexpr,
                EVEN_K: tl.constexpr, SYM: tl.constexpr, SUB_IS_GROUP: tl.constexpr, EVICT: tl.constexpr = False):
    """Weight operands of one step at input k0: code words [BN, NG, WPG] and the scale and
    1024 + zero-point [BN, NG] of each sub-block's group. SUB_IS_GROUP (a sub-block is one whole
    group): the step's groups are consecutive, found without dividing by the run-time GROUP (~5%
    fewer instructions in the loop). SYM: the zero-point is the format's constant, nothing is loaded."""
    NG: tl.constexpr = offs_g.shape[0]
    pw = k0 // CPW + word_off  # [NG, WPG] word index in the row
    # EVICT: codes are read once; mark them first out of L1/L2 so x and scales stay cached
    policy: tl.constexpr = "evict_first" if EVICT else ""
    if EVEN_K:
        wd = tl.load(w_rows + pw[None, :, :], mask=rows_ok[:, None, None], other=0, eviction_policy=policy)
    else:
        wd = tl.load(w_rows + pw[None, :, :], mask=rows_ok[:, None, None] & (pw < row_words)[None, :, :], other=0,
                     eviction_policy=policy)
    if SUB_IS_GROUP:
        g = (k0 // (SUB * NG)) * NG + offs_g
        if not EVEN_K:
            g = tl.minimum(g, (K - 1) // GROUP)
    else:
        g = tl.minimum(k0 + offs_g * SUB, K - 1) // GROUP  # [NG]
    sz_mask = n_mask[:, None] & (offs_g[None, :] >= 0)
    s = tl.load(s_ptr + offs_n[:, None] * stride_sn + g[None, :], mask=sz_mask, other=0.0)
    if SYM:
        zf = _sym_zero_term(s.shape, BITS)
    else:
        zf = _code_to_fp16(tl.load(z_ptr + offs_n[:, None] * stride_zn + g[None, :], mask=sz_mask, other=0))
    return wd, s, zf


@triton.jit
def _word_x(x_base, m_mask, k0, row_words, word_off, CPW: tl.constexpr, Q: tl.constexpr, ROWS: tl.constexpr,
            EVEN_K: tl.constexpr):
    """x of one step as int64 quads (4 fp16 each; Q a word: 2 for int4, 1 for int8):
    [NG, WPG, Q], or [BM, NG, WPG, Q] for several rows (ROWS)."""
    pw = k0 // CPW + word_off
    if ROWS:
        idx = (pw * Q)[None, :, :, None]
        if EVEN_K:
            xp = tl.load(x_base + idx, mask=m_mask[:, None, None, None], other=0)
        else:
            xp = tl.load(x_base + idx, mask=m_mask[:, None, None, None] & (pw < row_words)[None, :, :, None], other=0)
    else:
        if EVEN_K:
            xp = tl.load(x_base + (pw * Q)[:, :, None])
        else:
            xp = tl.load(x_base + (pw * Q)[:, :, None], mask=(pw < row_words)[:, :, None], other=0)
    return xp


@triton.jit
def _stream_step(c_ptr, s_ptr, z_ptr, x_base, m_mask, tile, kk, N, K, GROUP, stride_cn, stride_sn, stride_zn,
                 row_words, word_off, offs_g, ar_n, valid, BITS: tl.constexpr, BLOCK_N: tl.constexpr,
                 BLOCK_K: tl.constexpr, CPW: tl.constexpr, Q: tl.constexpr, SUB: tl.constexpr, ROWS: tl.constexpr,
                 EVEN_K: tl.constexpr, SYM: tl.constexpr, SUB_IS_GROUP: tl.constexpr, EVICT: tl.constexpr,
                 WAIT: tl.constexpr = False):
    """Operands of the step at row tile `tile`, inputs from kk * BLOCK_K; with `valid` false no
    codes are read (x and scales stay in bounds). WAIT (programmatic dependent launch): the
    weight loads are issued, then the kernel waits for the previous grid before it reads x."""
    k0 = kk * BLOCK_K
    offs_n = tile * BLOCK_N + ar_n
    n_mask = offs_n < N
    w_rows = c_ptr.to(tl.pointer_type(tl.int32)) + offs_n[:, None, None] * (stride_cn // 4)
    # (offs_n * 0 + valid: a vector mask; the interpreter rejects scalar-broadcast masks)
    wd, s, zf = _word_codes(w_rows, s_ptr, z_ptr, offs_n, n_mask, k0, K, GROUP, stride_sn, stride_zn,
                            row_words, word_off, offs_g, n_mask & ((offs_n * 0 + valid) != 0), BITS, CPW, SUB, EVEN_K,
                            SYM, SUB_IS_GROUP, EVICT)
    if WAIT:
        tl.extra.cuda.gdc_wait()
    xp = _word_x(x_base, m_mask, k0, row_words, word_off, CPW, Q, ROWS, EVEN_K)
    return wd, s, zf, xp


@triton.jit(do_not_specialize=["GROUP", "M_BUCKET", "OCC"])
def _gemv_words_kernel(
    x_ptr, c_ptr, s_ptr, z_ptr, b_ptr, y_ptr, ws_ptr, lock_ptr,
    M, N, K, GROUP,
    stride_xm, stride_cn, stride_sn, stride_zn, stride_zg, stride_ym,
    M_BUCKET, OCC,
    BITS: tl.constexpr, HAS_BIAS: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr, USE_ASM: tl.constexpr,
    NG: tl.constexpr = 1, BLOCK_M: tl.constexpr = 1, STAGES: tl.constexpr = 1, SYM: tl.constexpr = False,
    SUB_IS_GROUP: tl.constexpr = False, EVICT: tl.constexpr = False, PDL: tl.constexpr = False,
):
    """Decode on CUDA cores, M = 1 (the fast path) or a few rows (BLOCK_M > 1), as a persistent
    stream: the (row tile, K step) pairs are flattened in row-major order and each program takes
    one contiguous, equal share (stream-K), so every SM streams until the end whatever the
    layer's shape: no partial last wave, no ramp per tile. A tile split between programs is
    finished by the last of them to arrive (`_splitk_finish`: deterministic, one launch).

    Codes are read as 32-bit words (16-byte vectors), one packed PTX block per word (see
    `_word_dot`; with several rows, `_word_dot_rows` unpacks a word once for all of them), the
    next step prefetched into registers, no shared memory or barriers in the loop. A step of
    BLOCK_K inputs is NG sub-blocks, each inside one scale group, so a row is read in long runs
    (NG x 64 bytes for int4-g128) while scales stay one load per sub-block. Needs K a multiple
    of the codes per word, 4-byte aligned code rows and 8-byte aligned x rows (x is read as int64
    quads; the launcher checks). OCC (programs per SM, or whole row tiles a program) only sizes the grid."""
    CPW: tl.constexpr = 32 // BITS  # codes per word
    Q: tl.constexpr = CPW // 4  # x quads (int64) per word
    SUB: tl.constexpr = BLOCK_K // NG  # inputs per sub-block (divides the group size)
    WPG: tl.constexpr = SUB // CPW  # words per sub-block
    ROWS: tl.constexpr = BLOCK_M > 1
    dtype: tl.constexpr = x_ptr.dtype.element_ty
    ASM: tl.constexpr = USE_ASM and dtype == tl.float16
    PAIRED: tl.constexpr = ASM and BITS == 4 and not ROWS  # see `_word_dot_pairs`
    pid = tl.program_id(0)
    ar_n = tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_g = tl.arange(0, NG)
    word_off = offs_g[:, None] * WPG + tl.arange(0, WPG)[None, :]
    m_mask = offs_m < M
    row_words = K // CPW
    ksteps = tl.cdiv(K, BLOCK_K)
    total = tl.cdiv(N, BLOCK_N) * ksteps
    per = tl.cdiv(total, tl.num_programs(0))
    t_begin = pid * per
    t_end = tl.minimum(total, t_begin + per)

    x_quads = x_ptr.to(tl.pointer_type(tl.int64))
    if ROWS:
        x_base = x_quads + (offs_m * (stride_xm // 4))[:, None, None, None] + tl.arange(0, Q)[None, None, None, :]
        acc = tl.zeros((BLOCK_M, BLOCK_N, NG, WPG), dtype=tl.float32)
    else:
        x_base = x_quads + tl.arange(0, Q)[None, None, :]
        acc = tl.zeros((BLOCK_N, NG, WPG // 2 if PAIRED else WPG), dtype=tl.float32)
    # Register prefetch, STAGES steps ahead: step t + STAGES is loaded before step t's arithmetic,
    # so STAGES steps of codes are in flight per warp with no shared memory or barriers.
    # Steps are tracked as (row tile, K step) counters advanced one step at a time (dividing the
    # flat index by ksteps each step cost two integer divisions). Past the range end nothing is
    # read (`valid` off; x and scales stay in bounds).
    tile = t_begin // ksteps
    kk = t_begin - tile * ksteps
    # PDL (programmatic dependent launch, in CUDA graphs): let the next kernel launch now, so its
    # programs take SMs as this one's finish; load the first step's weights, which no kernel
    # before this one writes in a forward pass, and wait for the previous kernel before reading x
    # (`_stream_step` WAIT). Nothing is written before that wait.
    if PDL:
        tl.extra.cuda.gdc_launch_dependents()
    wd, s, zf, xp = _stream_step(c_ptr, s_ptr, z_ptr, x_base, m_mask, tile, kk, N, K, GROUP, stride_cn, stride_sn,
                                 stride_zn, row_words, word_off, offs_g, ar_n, t_begin < t_end, BITS, BLOCK_N,
                                 BLOCK_K, CPW, Q, SUB, ROWS, EVEN_K, SYM, SUB_IS_GROUP, EVICT, PDL)
    tile_p, kk_p = _next_step(tile, kk, ksteps)
    if STAGES == 2:
        wd1, s1, zf1, xp1 = _stream_step(c_ptr, s_ptr, z_ptr, x_base, m_mask, tile_p, kk_p, N, K, GROUP, stride_cn,
                                         stride_sn, stride_zn, row_words, word_off, offs_g, ar_n, t_begin + 1 < t_end,
                                         BITS, BLOCK_N, BLOCK_K, CPW, Q, SUB, ROWS, EVEN_K, SYM, SUB_IS_GROUP, EVICT)
        tile_p, kk_p = _next_step(tile_p, kk_p, ksteps)
    for t in range(t_begin, t_end):
        wd2, s2, zf2, xp2 = _stream_step(c_ptr, s_ptr, z_ptr, x_base, m_mask, tile_p, kk_p, N, K, GROUP,
                                         stride_cn, stride_sn, stride_zn, row_words, word_off, offs_g, ar_n,
                                         t + STAGES < t_end, BITS, BLOCK_N, BLOCK_K, CPW, Q, SUB, ROWS, EVEN_K,
                                         SYM, SUB_IS_GROUP, EVICT)
        tile_p, kk_p = _next_step(tile_p, kk_p, ksteps)
        if ROWS:
            acc += _word_dot_rows(wd, xp, zf, s, BITS, ASM, dtype)
        elif PAIRED:
            acc += _word_dot_pairs(wd, xp, zf, s)
        else:
            acc += _word_dot(wd, xp, zf, s, BITS, ASM, dtype)
        acc = _stream_tile_end(acc, tile, kk, t, t_end, ksteps, per, pid, ar_n, offs_m, m_mask, N, M, stride_ym,
                               y_ptr, ws_ptr, b_ptr, lock_ptr, BLOCK_N, ROWS, HAS_BIAS)
        tile, kk = _next_step(tile, kk, ksteps)
        if STAGES == 2:
            wd, s, zf, xp = wd1, s1, zf1, xp1
            wd1, s1, zf1, xp1 = wd2, s2, zf2, xp2
        else:
            wd, s, zf, xp = wd2, s2, zf2, xp2


@triton.jit
def _next_step(tile, kk, ksteps):
    """(row tile, K step) of the stream's next step."""
    kk += 1
    wrap = kk == ksteps
    return tile + wrap.to(tl.int32), tl.where(wrap, 0, kk)


@triton.jit
def _stream_tile_end(acc, tile, kk, t, t_end, ksteps, per, pid, ar_n, offs_m, m_mask, N, M, stride_ym, y_ptr, ws_ptr, b_ptr,
                     lock_ptr, BLOCK_N: tl.constexpr, ROWS: tl.constexpr, HAS_BIAS: tl.constexpr):
    """After step t: if it ends this program's part of its row tile, reduce the accumulator and
    write the tile (or its partial, `_splitk_finish`), and return a cleared accumulator."""
    if (kk == ksteps - 1) | (t == t_end - 1):
        first = tile * ksteps
        p_first = first // per
        parts = (first + ksteps - 1) // per - p_first + 1  # programs sharing the tile
        offs_n = tile * BLOCK_N + ar_n
        n_mask = offs_n < N
        if ROWS:
            out = tl.sum(tl.sum(acc, axis=3), axis=2)  # [BLOCK_M, BLOCK_N]
            _splitk_finish(out, y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :],
                           ws_ptr + offs_m[:, None] * N + offs_n[None, :], m_mask[:, None] & n_mask[None, :],
                           b_ptr, offs_n, n_mask, lock_ptr, tile, pid - p_first, M, N, parts, HAS_BIAS)
        else:
            out = tl.sum(tl.sum(acc, axis=2), axis=1)
            _splitk_finish(out, y_ptr + offs_n, ws_ptr + offs_n, n_mask, b_ptr, offs_n, n_mask, lock_ptr,
                           tile, pid - p_first, 1, N, parts, HAS_BIAS)
        acc = tl.zeros(acc.shape, dtype=tl.float32)
    return acc


@triton.jit(do_not_specialize=["GROUP", "M_BUCKET", "stride_zn", "stride_zg"])
def _large_m_kernel(
    x_ptr, c_ptr, s_ptr, z_ptr, b_ptr, y_ptr,
    M, N, K, GROUP,
    stride_xm, stride_cn, stride_sn, stride_zn, stride_zg, stride_ym,
    M_BUCKET,
    BITS: tl.constexpr, HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr,
    USE_ASM: tl.constexpr, GROUP_M: tl.constexpr = 8,
):
    PACK: tl.constexpr = 8 // BITS
    BKB: tl.constexpr = BLOCK_K // PACK
    dtype = x_ptr.dtype.element_ty
    # Grouped tile order: GROUP_M row tiles share each weight tile while it is in L2.
    pid = tl.program_id(0)
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(N, BLOCK_N)
    per_group = GROUP_M * tiles_n
    first_m = (pid // per_group) * GROUP_M
    group_rows = tl.minimum(tiles_m - first_m, GROUP_M)
    pid_m = first_m + (pid % per_group) % group_rows
    pid_n = (pid % per_group) // group_rows

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    offs_b = tl.arange(0, BKB)
    m_mask = offs_m < M
    n_mask = offs_n < N
    row_bytes = (K + PACK - 1) // PACK

    x_rows = x_ptr + offs_m[:, None] * stride_xm
    c_rows = c_ptr + offs_n[:, None] * stride_cn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    s, zf = _scale_zero(s_ptr, z_ptr, offs_n, n_mask, 0, K, GROUP, stride_sn, stride_zn, stride_zg)
    for k0 in range(0, K, BLOCK_K):
        s_next, zf_next = _scale_zero(s_ptr, z_ptr, offs_n, n_mask, k0 + BLOCK_K, K, GROUP,
                                      stride_sn, stride_zn, stride_zg)
        xk = k0 + offs_k
        if EVEN_K:
            x = tl.load(x_rows + xk[None, :], mask=m_mask[:, None], other=0.0)
        else:
            x = tl.load(x_rows + xk[None, :], mask=m_mask[:, None] & (xk[None, :] < K), other=0.0)
        byt = _load_codes(c_rows, k0 // PACK + offs_b, n_mask, row_bytes, EVEN_K)
        w = _dequant_tile(byt, s, zf, BITS, BLOCK_N, BLOCK_K, USE_ASM, dtype)
        acc = tl.dot(x, tl.trans(w), acc)
        s, zf = s_next, zf_next

    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)[None, :]
    y_ptrs = y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :]
    tl.store(y_ptrs, acc.to(dtype), mask=m_mask[:, None] & n_mask[None, :])


@triton.jit(do_not_specialize=["GROUP", "stride_zn", "stride_zg"])
def _dequant_kernel(
    c_ptr, s_ptr, z_ptr, w_ptr, N, K, GROUP, stride_cn, stride_sn, stride_zn, stride_zg, stride_wn,
    BITS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, USE_ASM: tl.constexpr,
):
    """W tile [BLOCK_N, BLOCK_K] -> fp16/bf16 in w_ptr (row-major [N, K]); BLOCK_K inside one group.
    Consecutive programs take consecutive K tiles of the same rows, so the writes in flight at once
    fill whole stretches of each row: 0.88 of copy bandwidth on the H100 against 0.75 with
    consecutive programs down N (median of the 10 benchmark layers; bench/README.md)."""
    PACK: tl.constexpr = 8 // BITS
    BKB: tl.constexpr = BLOCK_K // PACK
    dtype = w_ptr.dtype.element_ty
    pid_n = tl.program_id(1)
    k0 = tl.program_id(0) * BLOCK_K
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_b = tl.arange(0, BKB)
    n_mask = offs_n < N
    row_bytes = (K + PACK - 1) // PACK
    kb = k0 // PACK + offs_b
    byt = _load_codes(c_ptr + offs_n[:, None] * stride_cn, kb, n_mask, row_bytes, False)
    s, zf = _scale_zero(s_ptr, z_ptr, offs_n, n_mask, k0, K, GROUP, stride_sn, stride_zn, stride_zg)
    w = _dequant_tile(byt, s, zf, BITS, BLOCK_N, BLOCK_K, USE_ASM, dtype)
    offs_k = k0 + tl.arange(0, BLOCK_K)
    tl.store(w_ptr + offs_n[:, None] * stride_wn + offs_k[None, :], w,
             mask=n_mask[:, None] & (offs_k[None, :] < K))


def _even_k(a: dict) -> bool:
    return a["K"] % a["BLOCK_K"] == 0


def _x_pairs(a: dict) -> bool:
    """x can be read as int32 pairs: even K and row stride, 4-byte aligned base."""
    return a["K"] % 2 == 0 and a["stride_xm"] % 2 == 0 and a["x_ptr"].data_ptr() % 4 == 0


def _use_asm(a: dict) -> bool:
    """Packed PTX conversions on the GPU; the interpreter cannot run inline assembly."""
    return not interpreting()


_gemv_heur = triton.heuristics({"EVEN_K": _even_k, "X_PAIRS": _x_pairs, "USE_ASM": _use_asm})(_gemv_kernel)
_gemv_words_heur = triton.heuristics({
    "EVEN_K": _even_k, "USE_ASM": _use_asm, "SYM": lambda a: a["stride_zg"] == 0,
    "SUB_IS_GROUP": lambda a: a["GROUP"] * a.get("NG", 1) == a["BLOCK_K"],
})(_gemv_words_kernel)


def _sz_pairs(a: dict) -> bool:
    """tl.dot kernel, two whole groups a step: each row's two scales (zero-points) can be read as one
    4-byte (2-byte) word: even group count per row and aligned bases."""
    return (a.get("NG", 1) == 2 and a["GROUP"] * 2 == a["BLOCK_K"] and _even_k(a)
            and a["stride_sn"] % 2 == 0 and a["s_ptr"].data_ptr() % 4 == 0
            and (a["stride_zg"] == 0 or (a["stride_zn"] % 2 == 0 and a["z_ptr"].data_ptr() % 2 == 0)))


_small_m_heur = triton.heuristics({
    "EVEN_K": _even_k, "X_PAIRS": _x_pairs, "USE_ASM": _use_asm, "SYM": lambda a: a["stride_zg"] == 0,
    "SZ_PAIRS": _sz_pairs,
})(_small_m_kernel)
_large_m_heur = triton.heuristics({"EVEN_K": _even_k, "USE_ASM": _use_asm})(_large_m_kernel)


# ---------------------------------------------------------------------------
# configs and autotuning
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class KernelConfig:
    """One launch configuration; `block_m` is the large-M kernel's row tile, and the tl.dot small-M
    kernel's rows of x a step (one of DOT_ROWS, >= M); `split_k` only matters for small M.
    For the decode word kernel (a persistent stream) `num_stages` is how many steps ahead it
    prefetches into registers (1 or 2; more counts as 2); its grid comes from `ctas`, or from
    `split_k` programs per row tile."""

    block_n: int
    block_k: int
    num_warps: int = 4
    num_stages: int = 3
    split_k: int = 1
    block_m: int = 16
    groups_per_step: int = 1  # word GEMV and tl.dot (1, 2, 4) kernels: sub-blocks a step, each inside one group
    ctas: int = 0  # decode word kernel: programs in the grid (0: cdiv(N, block_n) * split_k)
    kernel: str = "auto"  # 2 <= M <= 16: "words" (CUDA cores) or "dot" (tensor cores); auto: by ROWS_MAX_M



# (BLOCK_N, BLOCK_K, warps, stages): few distinct compiled variants; SPLIT_K is a runtime
# argument, so the split factors multiply benchmarks but not compilations.
_SMALL_TILES = [
    (64, 128, 4, 4), (64, 256, 4, 3), (128, 128, 4, 4), (128, 64, 4, 4), (128, 32, 4, 6),
    (64, 32, 4, 8), (32, 64, 2, 6),
    # 1-2 warps of 32-64 rows: mma.sync with x^T in registers. At M = 16, wgmma (4+ warps, 64-row
    # instructions that each read x^T from shared memory) is bound by shared-memory traffic, not
    # DRAM; these run up to 1.5x faster there (bench/results/kernel-variants-h100-dot-tiles.json)
    (64, 128, 2, 3), (64, 128, 2, 4), (32, 128, 1, 4), (32, 128, 1, 6), (64, 64, 2, 6), (32, 64, 1, 8),
    (64, 32, 2, 8),
    # (.., NG = 2): two scale groups a step, twice the bytes in flight a pipeline stage; at M = 4-16
    # on the H100 the tuner picks 64x256 on most layers >= 30 MB (70B gate/up 67.9 -> 52.0 us).
    # Four groups, and deeper pipelines of one group, were slower (bench/results/kernel-variants-h100-dot-groups.json)
    (64, 256, 2, 3, 2), (64, 256, 2, 4, 2), (32, 256, 1, 4, 2),
    # the same for groups of 64 and 32 (2-4 groups a step), offered only where a sub-block is one group
    # (int4-g64-asym M = 16 1.73x -> 1.97x, int8-g32-sym 0.99x -> 1.18x; int4-g32 stays at ~0.94x:
    # bench/results/kernel-variants-h100-small-groups.json)
    (64, 128, 2, 3, 2), (64, 128, 2, 4, 2), (64, 256, 2, 3, 4), (64, 128, 2, 3, 4), (64, 128, 2, 4, 4),
    (64, 64, 2, 4, 2), (32, 128, 1, 4, 4), (64, 128, 4, 3, 4),
]
_SPLITS = (1, 2, 4, 8)
# Rows of x a tl.dot step multiplies (its N): every row costs shared-memory traffic whether or
# not it holds a token, so M <= 8 need not pay for 16 (M = 4: 1.45x faster with 4 rows than with
# 16, bench/results/kernels-h100.json against the run before). The launcher takes the fewest
# that hold M_BUCKET (in the tuning key), so tuning does not multiply by them.
DOT_ROWS = (4, 8, 16)
# GEMV (M = 1): (BLOCK_N, BLOCK_K, warps); no cp.async stages, the kernel prefetches in registers.
_GEMV_TILES = [
    (32, 128, 4), (64, 128, 4), (128, 128, 4), (128, 128, 8), (16, 256, 4), (32, 256, 4),
    (16, 512, 4), (32, 64, 4), (64, 64, 4), (128, 64, 8), (128, 32, 4), (256, 32, 8),
]
_LARGE_TILES = [
    # (BLOCK_M, BLOCK_N, BLOCK_K, warps, stages)
    (128, 128, 64, 8, 3), (128, 256, 64, 8, 3), (64, 128, 64, 4, 4), (128, 128, 32, 8, 4),
    (64, 256, 64, 8, 3), (128, 64, 64, 4, 4), (32, 128, 64, 4, 4), (64, 64, 32, 4, 5),
    (128, 128, 128, 8, 3), (128, 256, 64, 8, 4), (256, 128, 64, 8, 3),
]


def _small_configs() -> list[triton.Config]:
    return [
        triton.Config({"BLOCK_N": t[0], "BLOCK_K": t[1], "SPLIT_K": sk, "NG": t[4] if len(t) > 4 else 1},
                      num_warps=t[2], num_stages=t[3])
        for t in _SMALL_TILES
        for sk in _SPLITS
    ]


def dot_rows(m: int) -> int:
    """Rows of the tl.dot kernel's x tile for M tokens: the fewest of DOT_ROWS that hold them."""
    return next(r for r in DOT_ROWS if r >= m)


def _gemv_configs() -> list[triton.Config]:
    return [
        triton.Config({"BLOCK_N": bn, "BLOCK_K": bk, "SPLIT_K": sk}, num_warps=w, num_stages=1)
        for bn, bk, w in _GEMV_TILES
        for sk in _SPLITS
    ]


# Word kernel (decode stream): (BLOCK_N, BLOCK_K, warps, NG), NG sub-blocks a step, each inside
# one scale group (int4-g128: 256 bytes a row a step with NG = 4); times programs per SM (OCC, a
# runtime argument: it sizes the grid, so it multiplies benchmarks but not compilations).
_WORDS_TILES = [  # (BLOCK_N, BLOCK_K, warps, NG, STAGES[, EVICT]): STAGES steps prefetched into registers
    (16, 1024, 4, 8, 1), (16, 1024, 4, 8, 2), (8, 1024, 2, 8, 1), (4, 1024, 1, 8, 1), (4, 1024, 1, 8, 2),
    (4, 2048, 1, 16, 1), (8, 512, 1, 4, 1), (8, 512, 2, 4, 2), (32, 256, 4, 2, 1), (16, 512, 4, 4, 1),
    (32, 1024, 8, 8, 1), (64, 128, 4, 1, 1), (128, 64, 8, 1, 1), (16, 2048, 4, 16, 1),
    (16, 1024, 4, 8, 1, True), (4, 1024, 1, 8, 1, True), (8, 1024, 2, 8, 1, True),
]
# with several rows: fewer, smaller tiles (the accumulator grows with the rows)
_ROWS_TILES = [
    (16, 512, 4, 4, 2), (32, 256, 4, 2, 2), (16, 256, 4, 2, 2), (32, 128, 4, 1, 2), (8, 1024, 4, 8, 2),
    (16, 512, 4, 4, 1), (32, 256, 4, 2, 1), (64, 128, 4, 1, 1), (8, 1024, 4, 8, 1), (16, 1024, 4, 8, 1),
    (4, 512, 1, 4, 1), (4, 512, 1, 4, 2), (8, 256, 2, 2, 2), (4, 1024, 1, 8, 1),
]
_OCCUPANCY = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)  # programs per SM (x warps: at most 64 warps)
# M = 1 only: shares of 1, 2 or 4 whole row tiles (OCC = -1, -2, -4), so no tile is split between
# programs and none pays the split-K finish (a release/acquire atomic and a read of the others'
# partials). That finish weighs most where rows are short: on the H100, K = 4096 layers ran
# 8B gate/up 15.5 -> 13.5 us (sym), 16.3 -> 14.7 (asym), k/v 4.7 -> 4.5, 5.0 -> 4.7; on K >= 8192
# the tuner (timing single launches) picked them where graphs of back-to-back calls ran them
# slower (70B q/o 15.0 -> 15.6 us), so they are offered up to this K only
# (bench/results/kernel-variants-h100-whole-tiles.json).
_WHOLE_TILES = (-1, -2, -4)
WHOLE_TILES_MAX_K = 4096


def _words_configs(tiles=None, occupancy=_OCCUPANCY) -> list[triton.Config]:
    return [
        triton.Config({"BLOCK_N": t[0], "BLOCK_K": t[1], "NG": t[3], "OCC": occ, "STAGES": t[4],
                       "EVICT": len(t) > 5 and t[5]}, num_warps=t[2], num_stages=1)
        for t in (tiles or _WORDS_TILES)
        for occ in occupancy
        if occ * t[2] <= 64
    ]


def stream_programs(n: int, block_n: int, occ: int, sms: int) -> int:
    """Programs the decode stream asks for: OCC > 0 programs a SM; OCC = -j, one program a j whole
    row tiles (no tile shared between programs, so no split-K finish) where j divides the tiles."""
    return sms * occ if occ > 0 else triton.cdiv(triton.cdiv(n, block_n), -occ)


def stream_parts(n: int, k: int, block_n: int, block_k: int, programs: int) -> tuple[int, int]:
    """Decode stream: (programs that get work, most programs sharing one row tile)."""
    ksteps = triton.cdiv(k, block_k)
    total = triton.cdiv(n, block_n) * ksteps
    per = triton.cdiv(total, max(1, min(programs, total)))
    # a tile's ksteps consecutive steps, starting anywhere in a share of `per`, meet at most
    # cdiv(ksteps - 1, per) + 1 programs; none is shared when shares are whole tiles
    return triton.cdiv(total, per), 1 if per % ksteps == 0 else triton.cdiv(ksteps - 1, per) + 1


def _large_configs() -> list[triton.Config]:
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=st)
        for bm, bn, bk, w, st in _LARGE_TILES
    ]


def _num_sms() -> int:
    return wgmma_int4.sm_count(torch.cuda.current_device()) if torch.cuda.is_available() else 132


def block_k_fits(block_k: int, group: int, bits: int) -> bool:
    """A BLOCK_K step must lie inside one scale group, and hold at least 16 bytes-worth
    of codes for a dot (int4: K/2 >= 16)."""
    min_k = min_block_k(bits)
    return block_k >= min_k and group % block_k == 0


def fits_groups(sub: int, group: int, k: int, bits: int) -> bool:
    """Whether sub-blocks of `sub` inputs, each under one scale, fit scale groups of `group` (any
    sub-block fits a per-channel format's single group)."""
    return group == k or block_k_fits(sub, group, bits)


def min_block_k(bits: int) -> int:
    return 32 if bits == 4 else 16


def _prune_small(configs, named_args, **kwargs):
    a = {**named_args, **kwargs}
    n, k, group, bits = a["N"], a["K"], a["GROUP"], a["BITS"]
    per_channel = group == k
    sms = _num_sms()
    out, fitting = {}, []
    for c in configs:
        bn, bk = c.kwargs["BLOCK_N"], c.kwargs["BLOCK_K"]
        ng = c.kwargs.get("NG", 1)
        sub = bk // ng  # what must lie inside one scale group
        if not fits_groups(sub, group, k, bits):
            if "OCC" not in c.kwargs or (c := _one_group_a_sub_block(c, group, bits)) is None:
                continue
        fitting.append(c)
        if ng > 1 and "OCC" not in c.kwargs and not per_channel and sub != group:
            continue  # tl.dot kernel: sub-blocks smaller than a group only add dots
        if bk > max(32, triton.next_power_of_2(k)):
            continue
        if "OCC" in c.kwargs:  # decode stream
            rows = a.get("BLOCK_M", 1)
            if rows * bn * bk // (32 // bits) > 64 * 32 * c.num_warps:
                continue  # fp32 accumulator: at most 64 registers a thread
            if c.kwargs["OCC"] < 0 and (k > WHOLE_TILES_MAX_K or triton.cdiv(n, bn) % -c.kwargs["OCC"]):
                continue  # (shares are whole tiles only where j divides the tile count)
            if stream_parts(n, k, bn, bk, stream_programs(n, bn, c.kwargs["OCC"], sms))[1] > MAX_SPLIT_K:
                continue  # more partial sums per tile than the workspace holds
        elif c.kwargs["SPLIT_K"] > 1:
            sk = c.kwargs["SPLIT_K"]
            tiles = triton.cdiv(n, bn)
            # split only layers whose column tiles leave the GPU idle, and keep >= 2 steps a split
            if n > _SPLIT_MAX_N or tiles * sk > 4 * sms or tiles >= 2 * sms or triton.cdiv(k, bk) < 2 * sk:
                continue
        out.setdefault((tuple(sorted(c.kwargs.items())), c.num_warps), c)
    if out:
        return list(out.values())
    if fitting:  # a shape smaller than every tile: one that fits the groups (masks cover the rest)
        return fitting[:1]
    # never run a config whose sub-blocks straddle scale groups: its results would be wrong
    raise ValueError(f"no kernel config fits scale groups of {group} ({bits}-bit, K = {k})")


def _one_group_a_sub_block(c: triton.Config, group: int, bits: int) -> triton.Config | None:
    """A decode-stream config whose sub-blocks span several scale groups (groups of 32 or 64 under
    sub-blocks of 64-128), re-cut into one sub-block a group: same tile, warps and stages. None
    where the step is not whole groups."""
    bk = c.kwargs["BLOCK_K"]
    if bk % group or not block_k_fits(group, group, bits):
        return None
    return triton.Config({**c.kwargs, "NG": bk // group}, num_warps=c.num_warps, num_stages=c.num_stages)


def _prune_large(configs, named_args, **kwargs):
    a = {**named_args, **kwargs}
    k, group, bits, m = a["K"], a["GROUP"], a["BITS"], a["M"]
    fitting = [c for c in configs if fits_groups(c.kwargs["BLOCK_K"], group, k, bits)]
    out = [c for c in fitting if c.kwargs["BLOCK_M"] <= max(32, triton.next_power_of_2(m))]
    if not fitting:  # a step straddling two scale groups would give wrong numbers
        raise ValueError(f"no kernel config fits scale groups of {group} ({bits}-bit, K = {k})")
    return out or fitting[:1]


# stride_zg: 0 for symmetric formats (a fixed zero-point, compiled in), 1 with zero-points
_SMALL_KEY = ["N", "K", "GROUP", "M_BUCKET", "BITS", "HAS_BIAS", "stride_zg"]
_gemv_tuned = triton.autotune(
    configs=_gemv_configs(), key=_SMALL_KEY, prune_configs_by={"early_config_prune": _prune_small},
    do_bench=cold_l2_bench, cache_results=True,
)(_gemv_heur)
_gemv_words_tuned = triton.autotune(
    configs=_words_configs(occupancy=_OCCUPANCY + _WHOLE_TILES), key=_SMALL_KEY,
    prune_configs_by={"early_config_prune": _prune_small}, do_bench=cold_l2_bench, cache_results=True,
)(_gemv_words_heur)
_gemv_rows_tuned = triton.autotune(
    configs=_words_configs(_ROWS_TILES), key=_SMALL_KEY, prune_configs_by={"early_config_prune": _prune_small},
    do_bench=cold_l2_bench, cache_results=True,
)(_gemv_words_heur)
_small_m_tuned = triton.autotune(
    configs=_small_configs(), key=_SMALL_KEY, prune_configs_by={"early_config_prune": _prune_small},
    do_bench=cold_l2_bench, cache_results=True,
)(_small_m_heur)
_large_m_tuned = triton.autotune(
    configs=_large_configs(), key=_SMALL_KEY, prune_configs_by={"early_config_prune": _prune_large},
    do_bench=cold_l2_bench, cache_results=True,
)(_large_m_heur)


def default_config(m: int, group: int, k: int, bits: int) -> KernelConfig:
    """The config used without autotuning (interpreter, tests): small tiles, valid for the group."""
    bk = 64
    if group != k:
        bk = next(b for b in (64, 32, 16) if block_k_fits(b, group, bits))
    if m == 1:
        return KernelConfig(block_n=32, block_k=bk, num_warps=4, num_stages=1)
    if m <= SMALL_M_MAX:
        return KernelConfig(block_n=32, block_k=bk, num_warps=4, num_stages=2, block_m=dot_rows(m))
    return KernelConfig(block_n=32, block_k=bk, num_warps=4, num_stages=2, block_m=32)


# ---------------------------------------------------------------------------
# launcher
# ---------------------------------------------------------------------------
_LOCKS: dict[torch.device, torch.Tensor] = {}
# last tuned configs; decode_pdl: last decode used PDL; prefill at M >= DEQUANT_MIN_M: the path's name
_LAST_CONFIG: dict[str, triton.Config | bool | str] = {}
_SYM_ZERO: dict[tuple[torch.device, int], torch.Tensor] = {}


# Programmatic dependent launch (PDL) of the decode word kernel: inside CUDA graph capture on
# sm_90+, each call lets the next one launch early and load its first weights while this one
# finishes (the graph of a decode step runs consecutive quantized layers back to back). H100,
# same config with and without: 8B down 14.8 -> 12.8 us, 70B q/o 15.7 -> 13.7 us; median of the
# 10 benchmark shapes 3.05x -> 3.44x fp16 (bench/results/kernel-variants-h100-pdl.json). Only
# with at least PDL_MIN_PROGRAMS_PER_SM programs a SM: with one or two, the next grid's programs,
# placed while this one still runs, crowd some SMs and leave others idle, and the stream's equal
# shares then run up to 2x slower (int4-g32 on 8B down: 25 -> 44 us; results/kernel-variants-h100-pdl-programs.txt).
# Past that rule a tuned launch takes PDL only where its config ran faster with it, timed back to
# back in a graph at the eager launch (`_pick_words_pdl`): with 3-7 programs a SM it still cost
# int4-g32-asym 39% on 8B gate/up (17.9 -> 24.9 us, whole-tile shares; bench/README.md).
# Only in capture: there a kernel just before never writes this one's weights, while eagerly a
# `quantize` can (its kernels write the codes that the next call would load before its wait).
DECODE_PDL = True
PDL_MIN_PROGRAMS_PER_SM = 3
_PDL_CHAIN: dict = {}  # (tensor alignments, problem) -> PDL in capture, chosen at the eager launch
_PDL_WARM: set = set()


@contextlib.contextmanager
def decode_pdl(enabled: bool) -> Iterator[None]:
    """Within the block, the decode kernel's launches in CUDA graph capture use PDL or not (on by
    default); the benchmark times both."""
    global DECODE_PDL
    before, DECODE_PDL = DECODE_PDL, enabled
    try:
        yield
    finally:
        DECODE_PDL = before


def _pdl_capable(x: torch.Tensor) -> bool:
    """Whether decode launches on x's device may use PDL (in capture, with enough programs)."""
    return DECODE_PDL and x.is_cuda and not interpreting() and torch.cuda.get_device_capability(x.device)[0] >= 9


def _launch_sig(args: tuple, common: dict) -> tuple:
    """A decode launch's problem and its tensors' alignments (what its compiled variant depends on):
    the key of the choices made at the eager launch for capture. Built only where PDL can apply,
    as it is Python on every decode call."""
    return tuple((a.dtype, a.data_ptr() % 16) for a in args), tuple(sorted(common.items()))


def _warm_pdl(sig: tuple, launch: dict, args: tuple, common: dict) -> None:
    """Compile the PDL variant of an eager launch's kernel now: a graph capture must not compile
    (loading a module is not allowed while a stream captures)."""
    key = (sig, tuple(sorted(launch.items())))
    if key not in _PDL_WARM:
        _gemv_words_heur.warmup(*args, **common, **launch, PDL=True, launch_pdl=True, grid=(1,))
        _PDL_WARM.add(key)


# The tl.dot kernel (2 <= M <= 16) in capture: the config and PDL setting timed fastest back to back
# in a CUDA graph among the tuner's best few (kernels/graph_pick.py), picked at the eager launch.
_DOT_PICK: dict = {}  # (tensor alignments, problem) -> (triton.Config, PDL)


def _graph_pick_key(kernel, sig: tuple, best: triton.Config) -> list[str]:
    """What a graph pick is cached under: the problem, the tuner's pick and what compiled it."""
    return [triton.__version__, torch.cuda.get_device_name(), kernel.cache_key, str(sig), str(best)]


def _pick_words_pdl(sig: tuple, best: triton.Config, launch: dict, programs: int, args: tuple, common: dict) -> bool:
    """Whether the decode word kernel's tuned config runs faster with PDL than without, launched
    back to back in a CUDA graph (kernels/graph_pick.py; cached on disk, as the tuner's pick is)."""
    from autoquant.kernels import graph_pick

    def run(c: triton.Config, pdl: bool, weight: tuple) -> None:
        _gemv_words_heur[(programs,)](args[0], *weight, *args[4:], **common, **launch, PDL=pdl, launch_pdl=pdl)

    return bool(graph_pick.pick(_graph_pick_key(_gemv_words_kernel, sig, best), [best], run, args[1:4])["pdl"])


def _pick_dot(sig: tuple, tuned, fresh: bool, launch, weight: tuple) -> tuple[triton.Config, bool]:
    from autoquant.kernels import graph_pick

    best = tuned.best_config
    configs = graph_pick.candidates(getattr(tuned, "configs_timings", None) if fresh else None, best)
    result = graph_pick.pick(_graph_pick_key(_small_m_kernel, sig, best), configs, launch, weight)
    return graph_pick.config_of(result["config"]), result["pdl"]


def _locks(device: torch.device, n: int) -> torch.Tensor:
    """Split-K arrival counters, zero between launches (the last program resets its own)."""
    t = _LOCKS.get(device)
    if t is None or t.numel() < n:
        t = torch.zeros(max(n, 4096), dtype=torch.int32, device=device)
        _LOCKS[device] = t
    return t


def _sym_zero(device: torch.device, bits: int) -> torch.Tensor:
    key = (device, bits)
    t = _SYM_ZERO.get(key)
    if t is None:
        t = torch.full((1,), 1 << (bits - 1), dtype=torch.uint8, device=device)
        _SYM_ZERO[key] = t
    return t


def _check(x: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None,
           fmt: QuantFormat, n: int, k: int) -> None:
    if fmt.is_float:
        raise ValueError(f"{fmt} is not a weight-only integer format")
    if x.dtype not in (torch.float16, torch.bfloat16):
        raise TypeError(f"activations must be fp16 or bf16, got {x.dtype}")
    if x.shape[-1] != k:
        raise ValueError(f"x has {x.shape[-1]} features, the weight expects {k}")
    want = (n, k) if fmt.bits == 8 else (n, (k + 1) // 2)
    if tuple(codes.shape) != want or codes.dtype != torch.uint8:
        raise ValueError(f"codes must be uint8 {want}, got {codes.dtype} {tuple(codes.shape)}")
    g = fmt.groups(k)
    if tuple(scales.shape) != (n, g) or scales.dtype != torch.float16:
        raise ValueError(f"scales must be fp16 {(n, g)}, got {scales.dtype} {tuple(scales.shape)}")
    if fmt.symmetric != (zeros is None):
        raise ValueError(f"{fmt} {'takes no' if fmt.symmetric else 'needs'} zero-points")
    if zeros is not None and (tuple(zeros.shape) != (n, g) or zeros.dtype != torch.uint8):
        raise ValueError(f"zeros must be uint8 {(n, g)}, got {zeros.dtype} {tuple(zeros.shape)}")
    group = fmt.effective_group(k)
    if group != k and group % min_block_k(fmt.bits):
        raise ValueError(f"group size {group} is not supported by the kernels (a multiple of {min_block_k(fmt.bits)})")


def _words_ok(x: torch.Tensor, codes: torch.Tensor, bits: int, k: int) -> bool:
    """The word kernel reads codes as int32 words and x as int64 quads: whole words per row,
    code rows 4-byte and x rows 8-byte aligned."""
    return (k % (32 // bits) == 0 and codes.data_ptr() % 4 == 0 and x.data_ptr() % 8 == 0
            and (x.shape[0] == 1 or x.stride(0) % 4 == 0))


def _use_words(m: int, bits: int, config: KernelConfig | None) -> bool:
    """2 <= M <= 16: CUDA-core word kernel (unpack once, M rows of FMAs) or tensor cores."""
    if config is not None and config.kernel != "auto":
        return config.kernel == "words"
    return m <= ROWS_MAX_M and bits == 4


def _dequant_matmul(x2, codes, scales, z, stride_zn, stride_zg, fmt, group, n, k, bias, y) -> None:
    """Many tokens: dequantize W (0.5-1 byte a weight read, 2 written) and let cuBLAS run the
    GEMM, which outpaces a tl.dot kernel that dequantizes each tile. (Row chunks through one
    reused buffer, to keep each in L2 for the GEMM, were measured and lost: smaller GEMMs.)"""
    w = torch.empty((n, k), dtype=x2.dtype, device=x2.device)
    bk = 128 if group == k else max(b_ for b_ in (128, 64, 32, 16) if group % b_ == 0)
    bn, warps = DEQUANT_TILE
    _dequant_kernel[(triton.cdiv(k, bk), triton.cdiv(n, bn))](
        codes, scales, z, w, n, k, group, codes.stride(0), scales.stride(0), stride_zn, stride_zg, w.stride(0),
        BITS=fmt.bits, BLOCK_N=bn, BLOCK_K=bk, USE_ASM=not interpreting(), num_warps=warps,
    )
    if bias is not None:
        torch.addmm(bias.to(x2.dtype), x2, w.t(), out=y)
    else:
        torch.mm(x2, w.t(), out=y)


def zero_args(zeros: torch.Tensor | None, device: torch.device, bits: int) -> tuple[torch.Tensor, int, int]:
    """The kernels' zero-point tensor and its (row, group) strides: the stored [N, G] bytes, or for a
    symmetric format one byte holding the fixed zero-point, read with stride 0."""
    if zeros is None:
        return _sym_zero(device, bits), 0, 0
    z = zeros.contiguous()
    return z, z.stride(0), 1


def wo_matmul_packed(
    x: torch.Tensor,
    codes: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    fmt: QuantFormat,
    out_features: int,
    in_features: int,
    bias: torch.Tensor | None = None,
    *,
    config: KernelConfig | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """`x @ dequant(W)^T (+ bias)` from the stored tensors. x [..., K] fp16/bf16 -> [..., N].

    `config=None` autotunes on a GPU (cached on disk) and uses `default_config` under the
    interpreter; an explicit config bypasses tuning (tests, benchmarks of one config).
    `out`, a contiguous [M, N] tensor of x's dtype, receives the result (tests poison it).
    """
    n, k = out_features, in_features
    _check(x, codes, scales, zeros, fmt, n, k)
    lead = x.shape[:-1]
    x2 = x.reshape(-1, k)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    m = x2.shape[0]
    if out is None:
        y = torch.empty((m, n), dtype=x.dtype, device=x.device)
    else:
        if tuple(out.shape) != (m, n) or out.dtype != x.dtype or not out.is_contiguous():
            raise ValueError(f"out must be a contiguous {x.dtype} tensor of shape {(m, n)}")
        y = out
    if m == 0:
        return y.reshape(*lead, n)
    codes, scales = codes.contiguous(), scales.contiguous()
    z, stride_zn, stride_zg = zero_args(zeros, x.device, fmt.bits)
    group = fmt.effective_group(k)
    has_bias = bias is not None
    b = bias.contiguous() if has_bias else y  # any float dtype: read as fp32; y is a dummy pointer
    common = {
        "M": m, "N": n, "K": k, "GROUP": group,
        "stride_xm": x2.stride(0), "stride_cn": codes.stride(0), "stride_sn": scales.stride(0),
        "stride_zn": stride_zn, "stride_zg": stride_zg, "stride_ym": y.stride(0),
        "M_BUCKET": m_bucket(m), "BITS": fmt.bits, "HAS_BIAS": has_bias,
    }
    dequant = config is None and m >= DEQUANT_MIN_M
    tune = config is None and not interpreting()
    if config is None and not tune:
        config = default_config(m, group, k, fmt.bits)
    elif config is not None and group != k:
        step = config.block_k // (config.groups_per_step if m <= SMALL_M_MAX else 1)
        if not block_k_fits(step, group, fmt.bits):
            raise ValueError(f"block_k {config.block_k} (/{config.groups_per_step} groups a step) does not fit "
                             f"scale groups of {group}")

    if m <= SMALL_M_MAX:
        words = _words_ok(x2, codes, fmt.bits, k) and (m == 1 or _use_words(m, fmt.bits, config))
        ws = torch.empty(0, dtype=torch.float32, device=x.device)
        if words or n <= _SPLIT_MAX_N or (config is not None and config.split_k > 1):
            ws = torch.empty(MAX_SPLIT_K * m * n, dtype=torch.float32, device=x.device)
        locks = _locks(x.device, n)  # one counter a row tile: enough for any BLOCK_N
        args = (x2, codes, scales, z, b, y, ws, locks)
        if words:
            sms = _num_sms()
            tuned = _gemv_words_tuned if m == 1 else _gemv_rows_tuned
            capable = _pdl_capable(x2)
            capturing = capable and torch.cuda.is_current_stream_capturing()
            sig = _launch_sig(args, common) if capable else None
            if tune:
                pdl = capturing and _PDL_CHAIN.get(sig, False)  # decided at the eager launch (below)
                tuned[lambda meta: (stream_parts(n, k, meta["BLOCK_N"], meta["BLOCK_K"],
                                                 stream_programs(n, meta["BLOCK_N"], meta["OCC"], sms))[0],)](
                    *args, **common, BLOCK_M=m_bucket(m), PDL=pdl, launch_pdl=pdl)
                best = tuned.best_config
                _LAST_CONFIG["decode"] = best
                launch = {"BLOCK_M": m_bucket(m), **best.all_kwargs()}
                programs = stream_parts(n, k, best.kwargs["BLOCK_N"], best.kwargs["BLOCK_K"],
                                        stream_programs(n, best.kwargs["BLOCK_N"], best.kwargs["OCC"], sms))[0]
                chain = programs >= PDL_MIN_PROGRAMS_PER_SM * sms
            else:
                # an explicit config's split_k sets the programs per row tile (or `ctas` the total)
                want = config.ctas or triton.cdiv(n, config.block_n) * config.split_k
                programs, parts = stream_parts(n, k, config.block_n, config.block_k, want)
                if parts > MAX_SPLIT_K:
                    raise ValueError(f"{want} programs would split a row tile {parts} ways (at most {MAX_SPLIT_K})")
                launch = {"OCC": 0, "BLOCK_M": m_bucket(m), "NG": config.groups_per_step,
                          "STAGES": min(config.num_stages, 2), "BLOCK_N": config.block_n, "BLOCK_K": config.block_k,
                          "num_warps": config.num_warps, "num_stages": 1}
                chain = programs >= PDL_MIN_PROGRAMS_PER_SM * sms
                pdl = capturing and chain
                _gemv_words_heur[(programs,)](*args, **common, **launch, PDL=pdl, launch_pdl=pdl)
            _LAST_CONFIG["decode_pdl"] = pdl
            if capable and not capturing:
                if chain:
                    _warm_pdl(sig, launch, args, common)
                if tune and sig not in _PDL_CHAIN:
                    _PDL_CHAIN[sig] = chain and _pick_words_pdl(sig, best, launch, programs, args, common)
        else:
            tuned, fixed = (_gemv_tuned, _gemv_heur) if m == 1 else (_small_m_tuned, _small_m_heur)

            def grid(meta):
                return (triton.cdiv(n, meta["BLOCK_N"]), meta["SPLIT_K"])

            rows = {} if m == 1 else {"BLOCK_M": dot_rows(m_bucket(m))}  # the tl.dot kernel's x rows

            def launch(c: triton.Config, pdl: bool, weight: tuple) -> None:
                fixed[(triton.cdiv(n, c.kwargs["BLOCK_N"]), c.kwargs["SPLIT_K"])](
                    x2, *weight, *args[4:], **common, **rows, **c.all_kwargs(), PDL=pdl, launch_pdl=pdl)

            capable = m > 1 and _pdl_capable(x2)
            capturing = capable and torch.cuda.is_current_stream_capturing()
            sig = _launch_sig(args, common) if capable else None
            picked = _DOT_PICK.get(sig) if capable else None
            if tune and picked is not None and capturing:
                launch(picked[0], picked[1], (codes, scales, z))  # the graph-timed choice (below)
                _LAST_CONFIG["decode"], _LAST_CONFIG["decode_pdl"] = picked
            elif tune:
                seen = len(tuned.cache)
                tuned[grid](*args, **common, **rows)
                _LAST_CONFIG["decode"], _LAST_CONFIG["decode_pdl"] = tuned.best_config, False
                if capable and picked is None and not capturing:
                    # the tuner's timings belong to this problem only if this launch tuned it
                    fresh = len(tuned.cache) > seen
                    _DOT_PICK[sig] = _pick_dot(sig, tuned, fresh, launch, (codes, scales, z))
            else:
                if config.split_k > MAX_SPLIT_K:
                    raise ValueError(f"split_k at most {MAX_SPLIT_K}")
                if m > 1:  # an explicit config may take more rows than the launcher would
                    if config.block_m not in DOT_ROWS or config.block_m < m:
                        raise ValueError(f"block_m {config.block_m} for {m} tokens: one of {DOT_ROWS}, at least {m}")
                    if config.groups_per_step not in (1, 2, 4):
                        raise ValueError("the tl.dot kernel takes 1, 2 or 4 scale groups a step")
                    rows = {"BLOCK_M": config.block_m, "NG": config.groups_per_step}
                fixed[(triton.cdiv(n, config.block_n), config.split_k)](
                    *args, **common, SPLIT_K=config.split_k, BLOCK_N=config.block_n, BLOCK_K=config.block_k,
                    num_warps=config.num_warps, num_stages=config.num_stages, **rows,
                )
                _LAST_CONFIG["decode_pdl"] = False
    elif dequant and wgmma_int4.supported(x2, codes, scales, fmt.bits, group, k) and wgmma_int4.pays_off(
            m, n, _num_sms()):
        wgmma_int4.wgmma_int4_matmul(x2, codes, scales, zeros, group, bias if has_bias else None, y)
        _LAST_CONFIG["prefill"] = "wgmma_int4"
    elif dequant:
        _dequant_matmul(x2, codes, scales, z, stride_zn, stride_zg, fmt, group, n, k, bias if has_bias else None, y)
        _LAST_CONFIG["prefill"] = "dequant+cublas"
    else:
        args = (x2, codes, scales, z, b, y)

        def grid(meta):
            return (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(n, meta["BLOCK_N"]),)

        if tune:
            _large_m_tuned[grid](*args, **common)
            _LAST_CONFIG["prefill"] = _large_m_tuned.best_config
        else:
            _large_m_heur[grid({"BLOCK_M": config.block_m, "BLOCK_N": config.block_n})](
                *args, **common, BLOCK_M=config.block_m, BLOCK_N=config.block_n, BLOCK_K=config.block_k,
                num_warps=config.num_warps, num_stages=config.num_stages,
            )
    return y.reshape(*lead, n)


def wo_matmul(
    x: torch.Tensor,
    qw: QuantizedWeight,
    bias: torch.Tensor | None = None,
    *,
    config: KernelConfig | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """`x @ dequant(qw)^T (+ bias)` with the Triton kernels (CUDA, or CPU under TRITON_INTERPRET=1)."""
    n, k = qw.shape
    return wo_matmul_packed(x, qw.codes, qw.scales, qw.zeros, qw.format, n, k, bias, config=config, out=out)


def last_decode_pdl() -> bool:
    """Whether the last decode launch (M <= 16) used programmatic dependent launch."""
    return bool(_LAST_CONFIG.get("decode_pdl", False))


def tuned_config(m: int) -> triton.Config | str | None:
    """The config the autotuner picked on the last tuned launch for this regime (benchmark records);
    for M >= DEQUANT_MIN_M the path taken, "wgmma_int4" or "dequant+cublas"."""
    return _LAST_CONFIG.get("decode" if m <= SMALL_M_MAX else "prefill")
