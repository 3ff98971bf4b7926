// The Phantom paper's published headline numbers (Lee et al., 2024, "Phantom of Latent for Large Language and
// Vision Models", arXiv:2409.14713, main results table) and `phantom eval --summary`: our results beside them.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace phantom::eval {

// One column of the paper's table (in the paper's order), or a further set we evaluate that the table lacks.
struct PaperColumn {
  std::string title;      // "SQA-IMG", "MME", ...
  std::string results;    // the results name `phantom eval` files it under ("sqa", "mmbench_dev", ...)
  std::string metric;     // the metric of that results file the paper's number corresponds to
  bool in_paper = true;   // false: a set beyond the paper's table (no published number here)
};
const std::vector<PaperColumn>& paper_columns();

struct PaperRow {
  std::string size;                         // "0.5b", "1.8b", "3.8b", "7b"
  std::string model;                        // "Phantom-0.5B", ...
  std::vector<std::optional<double>> values;  // one per paper_columns() entry (empty where in_paper is false)
};
const std::vector<PaperRow>& paper_rows();
// The row of a size ("0.5b", "0.5B", "phantom-0.5b" accepted); throws naming the known sizes.
const PaperRow& paper_row(const std::string& size);

// One results directory's numbers per paper_columns() entry, read from its <name>.json files (nullopt when the
// file or the metric is absent).
std::vector<std::optional<double>> results_for_columns(const std::string& dir);

// One Markdown table in the paper's column order: the paper's row(s) (the given size, or all four when `size` is
// empty), then each directory's numbers and, with a size, a difference row (ours - paper).
std::string comparison_markdown(const std::vector<std::string>& dirs, const std::string& size);

}  // namespace phantom::eval
