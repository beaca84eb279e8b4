"""autoquant's quantized layers in compressed-tensors' `pack-quantized` form, and back.

The config and the packing are compressed-tensors' own (`QuantizationArgs`, `QuantizationScheme`,
`QuantizationConfig`, `pack_to_int32` / `unpack_from_int32`); this module only maps autoquant's
numbers onto them. Both sides compute w = (q - z) * s, but autoquant stores codes and zero points
unsigned in [0, 2^bits - 1] (symmetric: z = 2^(bits-1)) while compressed-tensors stores them
signed in [-2^(bits-1), 2^(bits-1) - 1] (symmetric: z = 0). Shifting both q and z by 2^(bits-1)
keeps q - z, so the exported weight dequantizes to exactly autoquant's (auto-round pull request
2273 is what skipping the shift does: loads fine, computes garbage).

Per layer (name = the linear layer's module name), as llm-compressor writes it:
    name.weight_packed      int32 [N, ceil(K * bits / 32)]   codes, `pack_to_int32`
    name.weight_scale       fp16  [N, G]                     autoquant's scales (G = 1 per channel)
    name.weight_zero_point  int32 [ceil(N * bits / 32), G]   asymmetric only, packed along N
    name.weight_shape       int64 [2]                        (N, K)
"""

from __future__ import annotations

from collections import defaultdict

import torch

from autoquant.formats import QuantFormat
from autoquant.quant import QuantizedWeight, pack_int4

CT_FORMAT = "pack-quantized"


def quantization_args(fmt: QuantFormat):
    from compressed_tensors.quantization import QuantizationArgs

    grouped = fmt.group_size is not None
    return QuantizationArgs(
        num_bits=fmt.bits, type="int", symmetric=fmt.symmetric, dynamic=False,
        strategy="group" if grouped else "channel", group_size=fmt.group_size if grouped else None,
    )


def format_of_args(args) -> QuantFormat:
    """The autoquant format a compressed-tensors weight scheme stores (ValueError if none)."""
    if args.type != "int" or args.num_bits not in (4, 8) or args.dynamic:
        raise ValueError(f"{args.type} {args.num_bits}-bit weights (dynamic={args.dynamic}) have no autoquant format")
    if args.strategy == "channel":
        group = None
    elif args.strategy == "group":
        group = args.group_size
    else:
        raise ValueError(f"strategy {args.strategy!r} has no autoquant format")
    return QuantFormat(f"int{args.num_bits}", group, bool(args.symmetric))


def quantization_config(formats: dict[str, QuantFormat]):
    """One config group per format, targeting its layers by name; 16-bit layers are ignored."""
    from compressed_tensors.quantization import QuantizationConfig, QuantizationScheme, QuantizationStatus

    by_format: dict[QuantFormat, list[str]] = defaultdict(list)
    ignore = []
    for name, fmt in formats.items():
        (ignore.append(name) if fmt.is_float else by_format[fmt].append(name))
    groups = {
        f"group_{i}": QuantizationScheme(targets=names, weights=quantization_args(fmt), format=CT_FORMAT)
        for i, (fmt, names) in enumerate(sorted(by_format.items(), key=lambda kv: str(kv[0])))
    }
    return QuantizationConfig(config_groups=groups, format=CT_FORMAT, ignore=ignore,
                              quantization_status=QuantizationStatus.COMPRESSED)


def _signed(codes: torch.Tensor, bits: int) -> torch.Tensor:
    return (codes.to(torch.int16) - (1 << (bits - 1))).to(torch.int8)


def _unsigned(codes: torch.Tensor, bits: int) -> torch.Tensor:
    return (codes.to(torch.int16) + (1 << (bits - 1))).to(torch.uint8)


def encode(qw: QuantizedWeight) -> dict[str, torch.Tensor]:
    """A QuantizedWeight as the tensors of one compressed-tensors layer (suffix -> tensor)."""
    from compressed_tensors.compressors import pack_to_int32

    from autoquant.quant import unpacked_codes

    bits = qw.format.bits
    out = {
        "weight_packed": pack_to_int32(_signed(unpacked_codes(qw), bits), bits),
        "weight_scale": qw.scales.to(torch.float16),
        "weight_shape": torch.tensor(qw.shape, dtype=torch.int64),
    }
    if qw.zeros is not None:
        out["weight_zero_point"] = pack_to_int32(_signed(qw.zeros, bits), bits, packed_dim=0)
    return out


def encode_rows(read_rows, n_rows: int, fmt: QuantFormat, chunk_rows: int = 2048) -> dict[str, torch.Tensor]:
    """`encode(quantize(W, fmt))` for a W read `chunk_rows` rows at a time by `read_rows(start, stop)`:
    rows are quantized and packed independently (groups run along a row), so a vocabulary-sized
    matrix never has its float copy and quantization temporaries in memory at once."""
    from autoquant.quant import quantize

    parts = [encode(quantize(read_rows(r, min(r + chunk_rows, n_rows)).float(), fmt))
             for r in range(0, n_rows, chunk_rows)]
    out = {
        "weight_packed": torch.cat([p["weight_packed"] for p in parts]),
        "weight_scale": torch.cat([p["weight_scale"] for p in parts]),
        "weight_shape": torch.tensor((n_rows, int(parts[0]["weight_shape"][1])), dtype=torch.int64),
    }
    if not fmt.symmetric:  # zero points are packed along the rows: pack them whole, once
        from compressed_tensors.compressors import pack_to_int32, unpack_from_int32

        zeros = torch.cat([unpack_from_int32(p["weight_zero_point"], fmt.bits, p["weight_scale"].shape, packed_dim=0)
                           for p in parts])
        out["weight_zero_point"] = pack_to_int32(zeros, fmt.bits, packed_dim=0)
    return out


def decode(fmt: QuantFormat, tensors: dict[str, torch.Tensor]) -> QuantizedWeight:
    """The tensors of one compressed-tensors layer as autoquant's QuantizedWeight: unpacked by
    compressed-tensors, then repacked into the layout the Triton kernels read."""
    from compressed_tensors.compressors import unpack_from_int32

    n, k = (int(x) for x in tensors["weight_shape"].tolist())
    bits = fmt.bits
    codes = _unsigned(unpack_from_int32(tensors["weight_packed"], bits, torch.Size((n, k))), bits)
    scales = tensors["weight_scale"].to(torch.float16).reshape(n, -1)
    zeros = None
    if not fmt.symmetric:
        packed = tensors["weight_zero_point"]
        zeros = _unsigned(unpack_from_int32(packed, bits, torch.Size((n, scales.shape[1])), packed_dim=0), bits)
    if bits == 4:
        codes = pack_int4(codes)
    return QuantizedWeight(fmt, (n, k), codes.contiguous(), scales.contiguous(), zeros)
