#!/usr/bin/env python3
"""safetensors interop fixtures for tests/test_safetensors.cpp.

    safetensors_fixtures.py write DIR   # Python writes every dtype (values recomputable in C++: arange-based)
    safetensors_fixtures.py check FILE  # Python reads a file our C++ wrote and checks the same values
"""
import sys

import torch
from safetensors.torch import load_file, save_file

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}


def expected():
    t = {}
    for name, dt in DTYPES.items():
        base = torch.arange(24, dtype=torch.float64).reshape(2, 3, 4)
        if dt.is_floating_point:
            v = (base - 7.5) / 4
        elif dt == torch.bool:
            v = base.long() % 3 == 0
        elif dt == torch.uint8:
            v = base * 9
        else:
            v = base * 5 - 40
        t[name] = v.to(dt)
    t["scalar"] = torch.tensor(3.25, dtype=torch.float32)
    t["empty"] = torch.zeros(0, 5, dtype=torch.float32)
    return t


if __name__ == "__main__":
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "write":
        save_file(expected(), path + "/py.safetensors", metadata={"format": "pt", "who": "python"})
    else:
        got = load_file(path)
        exp = expected()
        assert set(got) == set(exp), (sorted(got), sorted(exp))
        for k in exp:
            assert got[k].dtype == exp[k].dtype and torch.equal(got[k], exp[k]), k
        print("ok")
