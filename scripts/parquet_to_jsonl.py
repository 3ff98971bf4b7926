#!/usr/bin/env python3
"""Hugging Face parquet benchmark files -> one JSONL file + image files, for `phantom eval`.

VisualWebBench and BLINK are published only as parquet (images embedded as {"bytes", "path"} structs). The C++
side has no parquet reader, so this converts them once:

    python scripts/parquet_to_jsonl.py VisualWebBench/ --out vwb/           # -> vwb/data.jsonl + vwb/images/
    python scripts/parquet_to_jsonl.py BLINK/*/val-*.parquet --out blink/   # the validation split of each subtask

Inputs are parquet files or directories (searched recursively for *.parquet, in sorted order). Every row becomes
one JSON object with the same columns: an image struct becomes the path of the written file (relative to the
output directory, "images/<row>_<column>.<ext>", the extension from the image's magic bytes), a null image stays
null, lists stay lists, and each row gets "_source": the parquet file it came from. Nothing else is interpreted:
the benchmark readers in trainers/eval decide what the columns mean (docs/evaluation.md).

Needs pyarrow (scripts/requirements.txt). Rows are streamed in batches, so a large file is not held in memory.
"""
import argparse
import base64
import json
import os
import sys

# Magic bytes -> file extension; what OpenCV (our decoder) reads.
_MAGIC = [(b"\x89PNG\r\n\x1a\n", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"GIF8", ".gif"), (b"BM", ".bmp"),
          (b"RIFF", ".webp")]


def image_ext(data, path_hint):
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    ext = os.path.splitext(path_hint or "")[1].lower()
    return ext if ext else ".bin"


def is_image_struct(v):
    return isinstance(v, dict) and "bytes" in v and set(v) <= {"bytes", "path"}


def parquet_files(inputs):
    out = []
    for p in inputs:
        if os.path.isdir(p):
            found = sorted(os.path.join(d, f) for d, _, fs in os.walk(p) for f in fs if f.endswith(".parquet"))
            if not found:
                sys.exit(f"error: {p}: no .parquet files under this directory")
            out.extend(found)
        elif os.path.isfile(p):
            out.append(p)
        else:
            sys.exit(f"error: {p}: no such file or directory")
    return out


def to_json_value(v):
    """Arrow's Python values -> JSON: bytes that are not an image become base64 text."""
    if isinstance(v, dict):
        return {k: to_json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_json_value(x) for x in v]
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(v, float) and v != v:  # NaN is not JSON
        return None
    return v


def convert(files, out_dir, batch_rows=64):
    import pyarrow.parquet as pq  # imported here so --help works without pyarrow

    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    jsonl = os.path.join(out_dir, "data.jsonl")
    n = 0
    images = 0
    with open(jsonl + ".tmp", "w", encoding="utf-8") as f:
        for path in files:
            try:
                pf = pq.ParquetFile(path)
            except Exception as e:  # pyarrow raises several types for a file that is not parquet
                sys.exit(f"error: {path}: not a readable parquet file ({e})")
            for batch in pf.iter_batches(batch_size=batch_rows):
                for row in batch.to_pylist():
                    obj = {}
                    for col, v in row.items():
                        if is_image_struct(v):
                            if v.get("bytes") is None:
                                obj[col] = None
                                continue
                            rel = os.path.join("images", f"{n}_{col}{image_ext(v['bytes'], v.get('path'))}")
                            with open(os.path.join(out_dir, rel), "wb") as img:
                                img.write(v["bytes"])
                            obj[col] = rel
                            images += 1
                        else:
                            obj[col] = to_json_value(v)
                    obj["_source"] = path
                    f.write(json.dumps(obj, ensure_ascii=False) + "\n")
                    n += 1
    os.replace(jsonl + ".tmp", jsonl)  # a partial file never looks complete
    return n, images, jsonl


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", help="parquet files or directories")
    ap.add_argument("--out", required=True, help="output directory (data.jsonl and images/)")
    args = ap.parse_args(argv)
    n, images, jsonl = convert(parquet_files(args.inputs), args.out)
    print(f"{jsonl}: {n} rows, {images} images")


if __name__ == "__main__":
    main()
