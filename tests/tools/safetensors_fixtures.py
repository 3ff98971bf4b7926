"""Reference side of tests/test_safetensors.cpp: Python's safetensors (and huggingface_hub's sharding) write
fixtures for the C++ reader, and read back what the C++ writer produced.

Tensor names encode how to rebuild them: "<DTYPE>.<shape>" with shape "2x3x4", "scalar" (0-d) or "0x4" (empty),
plus an optional ".<tag>" suffix. Values come from value() below; the C++ test computes the same formula with the
same torch casts, so both sides agree bit for bit.

  safetensors_fixtures.py write DIR       DIR/dtypes.safetensors  every dtype, scalars, empties; format=pt
                                          DIR/meta.safetensors    one tensor, several metadata keys
                                          DIR/hf/                 huggingface_hub sharded checkpoint
  safetensors_fixtures.py check PATH...   each PATH a .safetensors file or a directory with an index: every
                                          tensor must equal value(name); exit status 1 on any mismatch
"""
import json
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file

DTYPES = {
    "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "F8_E5M2": torch.float8_e5m2,
    "F8_E4M3": torch.float8_e4m3fn, "I16": torch.int16, "U16": torch.uint16, "F16": torch.float16,
    "BF16": torch.bfloat16, "I32": torch.int32, "U32": torch.uint32, "F32": torch.float32,
    "F64": torch.float64, "I64": torch.int64, "U64": torch.uint64,
}
SHAPES = ["2x3x4", "scalar", "0x4", "7"]


def parse(name):
    dtype, shape = name.split(".")[:2]
    dims = [] if shape == "scalar" else [int(d) for d in shape.split("x")]
    return DTYPES[dtype], dims


def value(name):
    # Mirrors value() in tests/test_safetensors.cpp.
    dtype, dims = parse(name)
    n = 1
    for d in dims:
        n *= d
    i = torch.arange(n, dtype=torch.int64)
    if dtype == torch.bool:
        t = i % 3 == 0
    elif dtype.is_floating_point:
        t = (i.to(torch.float64) * 0.734 - 3.3).to(dtype)
    elif dtype == torch.uint64:
        t = (i * 1234567890123 + 17).to(dtype)
    else:
        t = (i * 1234567890123 - 987654321).to(dtype)  # wraps for narrow types, identically in C++
    return t.reshape(dims)


def all_names():
    return [f"{d}.{s}" for d in DTYPES for s in SHAPES]


def write(out):
    os.makedirs(out, exist_ok=True)
    save_file({n: value(n) for n in all_names()}, os.path.join(out, "dtypes.safetensors"), metadata={"format": "pt"})
    save_file({"F32.2x3x4": value("F32.2x3x4")}, os.path.join(out, "meta.safetensors"),
              metadata={"format": "pt", "producer": "python", "note": "quotes \" and\nnewlines"})
    from huggingface_hub import save_torch_state_dict
    # Sizes in bytes: 96, 32, 4, 224 (over the limit: its own shard), 96, 48, 0.
    sd = {n: value(n) for n in ["F32.2x3x4", "I64.2x2", "I32.scalar", "F64.4x7", "F32.4x6", "BF16.4x6", "U8.0x4"]}
    os.makedirs(os.path.join(out, "hf"), exist_ok=True)
    save_torch_state_dict(sd, os.path.join(out, "hf"), max_shard_size=150)


def check(path):
    if os.path.isdir(path):
        with open(os.path.join(path, "model.safetensors.index.json")) as f:
            weight_map = json.load(f)["weight_map"]
        files = {os.path.join(path, s): [n for n, s2 in weight_map.items() if s2 == s] for s in set(weight_map.values())}
    else:
        with safe_open(path, "pt") as f:
            files = {path: list(f.keys())}
    bad = 0
    count = 0
    for file, names in files.items():
        with safe_open(file, "pt") as f:
            for name in names:
                got, want = f.get_tensor(name), value(name)
                count += 1
                if got.dtype != want.dtype or got.shape != want.shape or not torch.equal(
                        got.view(-1).view(torch.uint8), want.reshape(-1).view(torch.uint8)):
                    print(f"{file}: {name}: got {got.dtype} {list(got.shape)}, want {want.dtype} {list(want.shape)}")
                    bad += 1
    print(f"checked {count} tensors in {len(files)} file(s), {bad} mismatches")
    return 1 if bad or count == 0 else 0


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "write":
        write(args[0])
    elif cmd == "check":
        sys.exit(max(check(a) for a in args))
    else:
        sys.exit(f"unknown command {cmd}")
