"""Triton device functions the kernel paths share: codes to fp16, scale and zero-point loads, a
dequantized tile, and the split-K finish.

Codes become fp16 through the exponent trick (0x6400 | q is 1024 + q in fp16) rather than an
int -> float conversion, whose throughput on Hopper is below what streaming int4 at full
bandwidth needs; (q - z) is then exact and one multiply by the scale rounds once. On a GPU the
trick runs as PTX on four bytes at once (`autoquant.kernels.ptx`); under the interpreter (CPU
tests) the same arithmetic runs as Triton ops, which is all that differs.
"""

from __future__ import annotations

import triton
import triton.language as tl

from autoquant.kernels.ptx import INT4_MINUS_ZERO


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

    int4 on the GPU: four bytes at once in packed PTX (`ptx.INT4_MINUS_ZERO`)."""
    if USE_ASM and BITS == 4:
        zl = tl.broadcast_to(zf[:, None], byt.shape)
        zh = tl.broadcast_to((960.0 - zf)[:, None], byt.shape)  # -(64 + z), exact in fp16
        lo, hi = tl.inline_asm_elementwise(
            asm=INT4_MINUS_ZERO,
            constraints="=r,=r,=r,=r,r,r,r,r,r",
            args=[byt, zl, zh], dtype=(tl.float16, tl.float16), is_pure=True, pack=4,
        )
        return lo, hi
    c_lo, c_hi = _codes_to_fp16(byt, BITS, USE_ASM)
    return c_lo - zf[:, None], c_hi - zf[:, None]


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

