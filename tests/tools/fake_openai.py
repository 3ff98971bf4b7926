#!/usr/bin/env python3
"""A canned OpenAI-compatible chat-completions server on 127.0.0.1 for the triple builder's endpoint tests.

    fake_openai.py --port-file F --log L [--fail-429 N] [--fail-500 N] [--delay S]

Writes its port to F once listening. Every request is logged to L as one JSON line: {"key": sha256 of the body,
"status", "t"}. The first --fail-429 requests are answered 429 with "Retry-After: 1"; request number --fail-500
(1-based, counted over all requests) is answered 500 once. Replies are deterministic, by the request's seed:
seed 0 a wrong answer (the next option letter for a letter, else "a striped umbrella"), seed 1 the correct answer
itself, seed 2 an empty answer, others "a striped umbrella N". Judge requests (max_tokens 4) get "no".
"""
import argparse
import hashlib
import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("--port-file", required=True)
ap.add_argument("--log", required=True)
ap.add_argument("--fail-429", type=int, default=0)
ap.add_argument("--fail-500", type=int, default=0)
ap.add_argument("--delay", type=float, default=0.0)
args = ap.parse_args()
lock = threading.Lock()
count = [0]


def wrong_answer(body):
    user = body["messages"][-1]["content"]
    m = re.search(r"Correct answer:\n(.*)\n\nWrong answer:", user, re.S)
    correct = m.group(1) if m else ""
    seed = body.get("seed", 0)
    if seed == 1:
        return correct
    if seed == 2:
        return ""
    if seed == 0 and re.fullmatch(r"[A-D]", correct.strip()):
        return "ABCD"[("ABCD".index(correct.strip()) + 1) % 4]
    return "a striped umbrella" + ("" if seed == 0 else f" {seed}")


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def handle(self):
        try:
            super().handle()
        except BrokenPipeError:  # the client was killed mid-reply (the kill-and-resume test)
            pass

    def do_POST(self):
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        with lock:
            count[0] += 1
            n = count[0]
        status = 200
        if n <= args.fail_429:
            status = 429
        elif n == args.fail_500:
            status = 500
        if self.path != "/v1/chat/completions":
            status = 404
        # Logged on arrival: a request in flight when its client is killed is in the log of that run.
        with lock, open(args.log, "a") as f:
            f.write(json.dumps({"key": hashlib.sha256(raw).hexdigest(), "status": status, "t": time.time()}) + "\n")
        if status == 200 and args.delay:
            time.sleep(args.delay)
        if status != 200:
            out = json.dumps({"error": {"message": f"canned {status}"}}).encode()
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "1")
        else:
            body = json.loads(raw)
            text = "no" if body.get("max_tokens") == 4 else wrong_answer(body)
            out = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}],
                              "usage": {"prompt_tokens": len(raw) // 4, "completion_tokens": 3}}).encode()
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(args.port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))

os.replace(args.port_file + ".tmp", args.port_file)
server.serve_forever()
