#!/usr/bin/env python3
"""Test helper for VisualWebBench and BLINK (tests/test_benchmarks_parquet_sets.cpp).

    parquet_sets.py fixtures OUT_DIR      tiny parquet files in the Hugging Face layouts of both sets (pyarrow)
    parquet_sets.py reference IN.json     the Python the sets are scored with: rouge 1.0.1 and str(list)

reference reads {"rouge": [[hyp, ref], ...], "floats": [[...], ...], "strings": [[...], ...]} and prints
{"rouge": [[r1, r2, rl] | null, ...], "floats": [str(list), ...], "strings": [str(list), ...]} (null where the
rouge package raises).
"""
import io
import json
import os
import sys


def png(color, fmt="PNG"):
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (4, 3), color).save(buf, format=fmt)
    return {"bytes": buf.getvalue(), "path": None}


def write(path, rows, schema):
    import pyarrow as pa
    import pyarrow.parquet as pq
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def fixtures(out):
    import pyarrow as pa
    img = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    base = [("id", pa.string()), ("task_type", pa.string()), ("website", pa.string()), ("image", img)]

    def vwb(task, extra_fields, rows):
        schema = pa.schema(base + extra_fields)
        full = [dict({"task_type": task, "website": "shop.example", "image": png((200, 10, 10))}, **r) for r in rows]
        write(os.path.join(out, "VisualWebBench", task, "test-00000-of-00001.parquet"), full, schema)

    s, i64, f64 = pa.string(), pa.int64(), pa.float64()
    vwb("web_caption", [("answer", s)], [{"id": "0", "answer": "the cat sat on the mat"}])
    vwb("heading_ocr", [("answer", s)], [{"id": "0", "answer": "Welcome Home"}, {"id": "1", "answer": "Deals"}])
    vwb("webqa", [("question", s), ("answer", pa.list_(s))],
        [{"id": "0", "question": "Which city?", "answer": ["Paris", "paris, france"]},
         {"id": "1", "question": "What price?", "answer": ["$5"]}])
    vwb("element_ocr", [("bbox", pa.list_(f64)), ("answer", s)],
        [{"id": "0", "bbox": [0.1, 0.25, 0.5, 1.0], "answer": "Sign in"},
         {"id": "1", "bbox": [0.1, 0.2, 0.3], "answer": "x"}])  # 3 numbers: a row error
    vwb("element_ground", [("elem_desc", s), ("answer", i64)], [{"id": "0", "elem_desc": "the search box", "answer": 2}])
    vwb("action_prediction", [("bbox", pa.list_(f64)), ("options", pa.list_(s)), ("answer", i64)],
        [{"id": "0", "bbox": [0.1, 0.25, 0.5, 1.0], "options": ["Sam's Club: Home", "Cart"], "answer": 1},
         {"id": "1", "bbox": [1e-05, 0.5, 0.75, 0.875], "options": ["A page", "B page"], "answer": 0}])
    vwb("action_ground", [("instruction", s), ("answer", i64)], [{"id": "0", "instruction": "open the cart", "answer": 0}])

    blink = pa.schema([("idx", s), ("question", s), ("sub_task", s), ("image_1", img), ("image_2", img),
                       ("image_3", img), ("image_4", img), ("choices", pa.list_(s)), ("answer", s), ("prompt", s),
                       ("explanation", s)])

    def row(idx, task, images, choices, answer):
        r = {"idx": idx, "question": "q", "sub_task": task, "choices": choices, "answer": answer, "explanation": "",
             "prompt": "Which one?\nSelect from the following choices.\n" +
                       "\n".join(f"({chr(65 + k)}) {c}" for k, c in enumerate(choices))}
        for k in range(4):
            r[f"image_{k + 1}"] = images[k] if k < len(images) else None
        return r

    write(os.path.join(out, "BLINK", "Art_Style", "val-00000-of-00001.parquet"),
          [row("val_Art_Style_1", "Art_Style", [png((0, 0, 0)), png((9, 9, 9), "JPEG"), png((5, 5, 5))],
               ["the second image", "the third image"], "(A)"),
           row("val_Art_Style_2", "Art_Style", [png((0, 0, 0))], ["the second image", "the third image"], "(B)")],
          blink)
    write(os.path.join(out, "BLINK", "Counting", "val-00000-of-00001.parquet"),
          [row("val_Counting_1", "Counting", [png((1, 2, 3))], ["1", "2", "3", "4"], "(C)"),
           row("val_Counting_2", "Counting", [png((1, 2, 3))], ["1", "2", "3", "4"], "(A)"),
           row("val_Counting_3", "Counting", [png((1, 2, 3))], ["1", "2", "3", "4"], "(D)"),
           row("val_Counting_4", "Counting", [png((1, 2, 3))], ["1", "2"], "hidden")],  # a row error
          blink)


def reference(path):
    from rouge import Rouge
    q = json.load(open(path))
    rouge = Rouge()
    out = {"rouge": [], "floats": [str(list(v)) for v in q.get("floats", [])],
           "strings": [str(list(v)) for v in q.get("strings", [])]}
    for hyp, ref in q.get("rouge", []):
        try:
            s = rouge.get_scores([hyp], [ref], avg=True)
            out["rouge"].append([s["rouge-1"]["f"], s["rouge-2"]["f"], s["rouge-l"]["f"]])
        except ValueError:
            out["rouge"].append(None)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("fixtures", "reference"):
        sys.exit(__doc__)
    (fixtures if sys.argv[1] == "fixtures" else reference)(sys.argv[2])
