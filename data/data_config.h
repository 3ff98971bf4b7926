// The `data:` section: where samples come from, how they become tokens and pixels, and what happens to bad ones.
#pragma once

#include <cstdint>
#include <string>

#include "phantom/util/config.h"

namespace phantom::data {
using config::Check;

// Field names of a user's JSON, so Phantom's released triples and a custom file both load without code.
struct FieldMap {
  std::string id = "id";
  std::string image = "image";                  // a path or a list of paths, relative to image_root
  std::string conversations = "conversations";  // LLaVA/ShareGPT turns
  std::string question = "question";            // preference triples
  std::string chosen = "chosen";
  std::string rejected = "rejected";            // a string or a list of strings

  template <class V>
  void visit(V& v) {
    v.field("id", id, "sample id field");
    v.field("image", image, "image path field (string or list)");
    v.field("conversations", conversations, "LLaVA/ShareGPT turns field");
    v.field("question", question, "preference: question field");
    v.field("chosen", chosen, "preference: correct answer field");
    v.field("rejected", rejected, "preference: incorrect-and-ambiguous answer(s) field");
  }
};

struct DataConfig {
  std::string format = "preference";  // conversations | preference | internvl_meta
  std::string train;                  // training file (JSON / JSONL / meta JSON)
  std::string val;                    // held-out file for validation (optional)
  std::string image_root;             // image paths are relative to this
  std::string tokenizer;              // tokenizer.json (byte-level BPE) or tokenizer.model (SentencePiece)
  std::string chat_template = "auto"; // auto (from model family) | chatml | phi3
  std::string image_placement = "prepend";  // prepend ("<image>" + question) | prepend_newline ("<image>\n" + ...)
  std::string multi_image = "interleaved";  // interleaved (<image> kept where written) | first_turn
  std::string answer_tokenization = "in_context";  // in_context (prompt + answer one string) | per_segment
  int64_t max_tiles = 6;              // dynamic tiling: at most this many tiles (+ thumbnail)
  bool use_thumbnail = true;          // append a whole-image tile when tiling
  int64_t max_length = 2048;          // tokens after image expansion; longer samples follow on_error
  int64_t batch_size = 1;             // questions per micro-batch per rank (global = x ranks x grad_accum)
  int64_t num_workers = 2;            // loader threads
  int64_t prefetch = 4;               // batches prepared ahead
  int64_t image_cache_mb = 0;         // tiled images kept in memory (0: off)
  bool shuffle = true;
  bool group_by_length = true;        // batch samples of similar length (less padding)
  bool packing = false;               // SFT: several samples per row (attention confined to each), no padding
  std::string on_error = "fail";      // fail | skip
  int64_t upfront_check_mb = 64;      // annotation files up to this size: every row checked before training
  FieldMap fields;

  template <class V>
  void visit(V& v) {
    v.field("format", format, "conversations | preference | internvl_meta",
            Check::one_of({"conversations", "preference", "internvl_meta"}));
    v.field("train", train, "training annotations (JSON, JSONL or InternVL meta JSON)");
    v.field("val", val, "held-out annotations for validation (empty: none)");
    v.field("image_root", image_root, "directory image paths are relative to");
    v.field("tokenizer", tokenizer, "tokenizer.json (BPE) or tokenizer.model (SentencePiece)");
    v.field("chat_template", chat_template, "auto | chatml | phi3", Check::one_of({"auto", "chatml", "phi3"}));
    v.field("image_placement", image_placement,
            "where images go in every format and at inference: prepend (<image>+question, official) | prepend_newline "
            "(<image>\\n+question); saved with the exported model",
            Check::one_of({"prepend", "prepend_newline"}));
    v.field("multi_image", multi_image,
            "where a sample's images go: interleaved (each <image> where the text writes it, InternVL's convention; "
            "images a turn starts with, or a text without placeholders, by image_placement) | first_turn (every image "
            "at the start of the first user turn); saved with the exported model",
            Check::one_of({"interleaved", "first_turn"}));
    v.field("answer_tokenization", answer_tokenization,
            "in_context: prompt + answer + end token tokenised as one string, supervision from the first token ending "
            "after the prompt (the official code's ids) | per_segment: the answer tokenised on its own",
            Check::one_of({"in_context", "per_segment"}));
    v.field("max_tiles", max_tiles, "dynamic tiling: max tiles per image (Phantom: 6)", Check::positive());
    v.field("use_thumbnail", use_thumbnail, "append a thumbnail tile when an image has several tiles");
    v.field("max_length", max_length, "max tokens after image expansion", Check::positive());
    v.field("batch_size", batch_size, "questions per micro-batch per rank (one step: batch_size x ranks x grad_accum)", Check::positive());
    v.field("num_workers", num_workers, "loader worker threads", Check::non_negative());
    v.field("prefetch", prefetch, "batches prepared ahead", Check::positive());
    v.field("image_cache_mb", image_cache_mb,
            "MiB of tiled images kept in memory, keyed by file, mtime and tiling (0: off; pays off when images repeat)",
            Check::non_negative());
    v.field("shuffle", shuffle, "shuffle each epoch (seeded by run.seed and the epoch)");
    v.field("group_by_length", group_by_length, "group similar lengths into batches");
    v.field("packing", packing,
            "SFT batches: pack the batch's samples into rows of up to max_length tokens, each attending only to "
            "itself (positions and Phantom's sos restart); same loss as unpacked, less padding");
    v.field("on_error", on_error, "bad samples: fail (error with file:line) | skip (drop and count)",
            Check::one_of({"fail", "skip"}));
    v.field("upfront_check_mb", upfront_check_mb,
            "annotation files up to this many MiB have every row checked before the first step (bad rows fail or are "
            "counted then); larger files are indexed and each row is checked when it is read (0: always when read)",
            Check::non_negative());
    v.section("fields", fields, "JSON field names of your annotation files");
  }
};

// Every path in the section exists (errors name the key).
void check_paths(const DataConfig& c);

}  // namespace phantom::data
