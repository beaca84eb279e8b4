"""The decode stream's arithmetic on one 32-bit code word: the dot of its 8 int4 (or 4 int8) codes
with x, in packed half2 PTX on a GPU and in fp32 Triton ops under the interpreter (and for bf16).

Codes are read as 32-bit words and x as int64 quads (4 fp16 values). For int4 the stored order
already puts codes t and t + 4 of a word in the two 16-bit halves, so one LOP3 per half2 pair
unpacks (`ptx.INT4_WORD_UNPACK`), as in Marlin, without repacking the weight.
"""

from __future__ import annotations

import triton
import triton.language as tl

from autoquant.kernels.ptx import INT4_WORD_PRODUCTS, INT4_WORD_UNPACK
from autoquant.kernels.tile_ops import _halves, _half2_bits


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
    One PTX block with the unpack on purpose: built as the unpack block plus a separate product
    block, the asymmetric M = 1 kernel ran slower (docs/kernels.md)."""
    zl, zh = _zero_terms(zf)
    xa, xb, xc, xd = _x_pairs_of_words(q0, q1)
    return tl.inline_asm_elementwise(
        asm=INT4_WORD_PRODUCTS,
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
    (measurably faster at M = 1, docs/kernels.md). The last fp16 add sums 16 terms (q - z) / 32 * x: at most
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
                asm=INT4_WORD_UNPACK,
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

