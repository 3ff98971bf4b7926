#!/usr/bin/env bash
# CLI config errors: each must exit non-zero with exactly one line on stderr naming the problem.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cfg="$SRC/configs/demo.yaml"
expect_error "optim\.lr: expected a number, got 'abc'" train --config "$cfg" run.output_dir="$tmp/runs" optim.lr=abc
expect_error "optim\.lr: expected a value in \[0, 1\]" train --config "$cfg" run.output_dir="$tmp/runs" optim.lr=5
expect_error "unknown key 'optim\.lrr'.*did you mean 'optim\.lr'" train --config "$cfg" optim.lrr=1e-5
expect_error "unknown key 'optm'.*did you mean 'optim'" train --config "$cfg" optm.lr=1e-5
expect_error "data\.batch_size: expected a decimal integer" train --config "$cfg" data.batch_size=2.5
expect_error "config file not found: .*nope\.yaml" train --config "$tmp/nope.yaml"
expect_error "missing required option --config" train
expect_error "model\.phantom: expected one of gate, sum, mean, off, got 'gated'.*did you mean 'gate'" train --config "$cfg" model.phantom=gated
expect_error "stages\.1\.loss: expected one of sft, po, simpo, dpo, ipo, orpo, got 'simpoo'.*did you mean 'simpo'" train --config "$cfg" stages.1.loss=simpoo
# unknown key inside a file: names the file and line
printf 'base: %s\noptim:\n  lr: 1e-5\n  warmup: 3\n' "$cfg" >"$tmp/child.yaml"
expect_error "unknown key 'optim\.warmup' \(.*child\.yaml:4\); did you mean 'optim\.warmup_steps'" train --config "$tmp/child.yaml"
# a good run: resolved config printed and saved in the run directory
# (input paths are checked before the run directory is created, so they must exist even for a dry run)
: >"$tmp/train.jsonl"; : >"$tmp/tokenizer.json"
"$PHANTOM" train --config "$cfg" --dry-run run.output_dir="$tmp/runs" optim.lr=2e-3 data.train="$tmp/train.jsonl" \
  data.val= data.tokenizer="$tmp/tokenizer.json" data.image_root="$tmp" validation.benchmark= >"$tmp/out" 2>&1 \
  || { echo "FAIL: dry run"; cat "$tmp/out"; fail=1; }
grep -q "lr: 0.002" "$tmp/runs/demo/config.yaml" || { echo "FAIL: resolved config not saved with the override"; fail=1; }
# the saved config loads back to the same resolved config
"$PHANTOM" config --config "$tmp/runs/demo/config.yaml" >"$tmp/again" 2>&1 || { echo "FAIL: saved config does not load"; cat "$tmp/again"; fail=1; }
diff <(grep -v '^#' "$tmp/runs/demo/config.yaml") <(grep -v '^#' "$tmp/again") >/dev/null || { echo "FAIL: saved config does not round-trip"; fail=1; }
"$PHANTOM" --help | grep -q "generate" || { echo "FAIL: --help does not list subcommands"; fail=1; }
exit $fail
