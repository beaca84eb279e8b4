"""The packed-PTX int4 dequantize, written once for the Triton kernels and the Gluon wgmma kernel.

Codes become fp16 through the exponent trick: 0x6400 | q is 1024 + q in fp16, exactly, so an
int -> float conversion (whose throughput on Hopper is below what streaming int4 at full
bandwidth needs) is never issued. Four code bytes are handled at once in 32-bit registers:
PRMT spreads two bytes into the halves of a word; the low nibble is LOP3'd under the exponent
of 1024 (1024 + q) and one HSUB2 takes 1024 + z off; the high nibble is masked in place
(1024 + 16 q) and one HFMA2 (x 1/16, - (64 + z)) both shifts and subtracts, as in Marlin.

Operands of both blocks: $4 the four code bytes, $5 / $6 1024 + z and $7 / $8 -(64 + z) as
half2 pairs for the low / high two bytes; outputs $0 $1 the low nibbles, $2 $3 the high ones.
`INT4_DEQUANT_SCALED` also takes the scales ($9, $10) and multiplies them in.

The strings are `tl.constexpr`, which both `triton.jit` and `gluon.jit` functions may read as
globals.
"""

from __future__ import annotations

import triton.language as tl

_INT4_UNPACK = """
    prmt.b32 t0, $4, 0, 0x4140;
    prmt.b32 t1, $4, 0, 0x4342;
    lop3.b32 u0, t0, 0x000F000F, 0x64006400, 0xEA;
    lop3.b32 u1, t1, 0x000F000F, 0x64006400, 0xEA;
    lop3.b32 v0, t0, 0x00F000F0, 0x64006400, 0xEA;
    lop3.b32 v1, t1, 0x00F000F0, 0x64006400, 0xEA;"""
_REGS = """{
    .reg .b32 t0, t1, u0, u1, v0, v1, r16;
    mov.b32 r16, 0x2C002C00;"""

# (q - z) in fp16 for the low and high nibbles of four code bytes (the tl.dot kernel's operand)
INT4_MINUS_ZERO = tl.constexpr(_REGS + _INT4_UNPACK + """
    sub.f16x2 $0, u0, $5;
    sub.f16x2 $1, u1, $6;
    fma.rn.f16x2 $2, v0, r16, $7;
    fma.rn.f16x2 $3, v1, r16, $8;
    }""")

# (q - z) * s: the same, then one HMUL2 a pair applies the scale (the wgmma kernel's A fragment)
INT4_DEQUANT_SCALED = tl.constexpr(_REGS + _INT4_UNPACK + """
    sub.f16x2 u0, u0, $5;
    sub.f16x2 u1, u1, $6;
    fma.rn.f16x2 v0, v0, r16, $7;
    fma.rn.f16x2 v1, v1, r16, $8;
    mul.f16x2 $0, u0, $9;
    mul.f16x2 $1, u1, $10;
    mul.f16x2 $2, v0, $9;
    mul.f16x2 $3, v1, $10;
    }""")

# The int4 magic-number unpack of one stored code word (code t at bits 4t): masking with
# 0x000F000F / 0x00F000F0 and OR-ing 0x6400 gives the half2 pairs (c0, c4), 16 (c1, c5), and of
# word >> 8, (c2, c6), 16 (c3, c7); one FMA a pair with r32 = 1/32, r512 = 1/512 and the zero
# terms makes (q - z) / 32 exactly. The word is `$W`, the zero terms `$ZL` / `$ZH`, the pairs
# land in `$A`..`$D` (placeholders each user fills with its operand numbers).
_WORD_UNPACK = """
    mov.b32 r32, 0x28002800;
    mov.b32 r512, 0x18001800;
    lop3.b32 $A, $W, 0x000F000F, 0x64006400, 0xEA;
    lop3.b32 $B, $W, 0x00F000F0, 0x64006400, 0xEA;
    shr.u32 t, $W, 8;
    lop3.b32 $C, t, 0x000F000F, 0x64006400, 0xEA;
    lop3.b32 $D, t, 0x00F000F0, 0x64006400, 0xEA;
    fma.rn.f16x2 $A, $A, r32, $ZL;
    fma.rn.f16x2 $B, $B, r512, $ZH;
    fma.rn.f16x2 $C, $C, r32, $ZL;
    fma.rn.f16x2 $D, $D, r512, $ZH;"""


def _word_unpack(a: str, b: str, c: str, d: str, word: str, zl: str, zh: str) -> str:
    out = _WORD_UNPACK
    for name, reg in (("$ZL", zl), ("$ZH", zh), ("$A", a), ("$B", b), ("$C", c), ("$D", d), ("$W", word)):
        out = out.replace(name, reg)
    return out


# One int4 word's products with x: the unpacked pairs times the x pairs ($4..$7), summed in half2
# into $0 (`_int4_word_products`).
INT4_WORD_PRODUCTS = tl.constexpr("""{
    .reg .b32 t, a, b, c, d, r32, r512;""" + _word_unpack("a", "b", "c", "d", "$1", "$2", "$3") + """
    mul.rn.f16x2 $0, a, $4;
    fma.rn.f16x2 $0, b, $5, $0;
    fma.rn.f16x2 $0, c, $6, $0;
    fma.rn.f16x2 $0, d, $7, $0;
    }""")

# The unpacked pairs themselves ($0..$3), for kernels that multiply them with several rows of x.
INT4_WORD_UNPACK = tl.constexpr("""{
    .reg .b32 t, r32, r512;""" + _word_unpack("$0", "$1", "$2", "$3", "$4", "$5", "$6") + """
    }""")
