#include "trainers/evaluate.h"

#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "phantom/util/atomic_file.h"
#include "phantom/util/log.h"

namespace phantom::eval {

namespace {

std::string base64_decode(const std::string& in) {
  static int table[256];
  static bool init = false;
  if (!init) {
    for (auto& t : table) t = -1;
    const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) table[static_cast<unsigned char>(a[i])] = i;
    init = true;
  }
  std::string out;
  int val = 0, bits = -8;
  for (unsigned char c : in) {
    if (table[c] < 0) continue;  // '=', newlines
    val = (val << 6) | table[c];
    bits += 6;
    if (bits >= 0) out.push_back(static_cast<char>((val >> bits) & 0xFF)), bits -= 8;
  }
  return out;
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream ss(line);
  while (std::getline(ss, cur, '\t')) out.push_back(cur);
  if (!line.empty() && line.back() == '\t') out.emplace_back();
  return out;
}

const char* kMcSuffix = "\nAnswer with the option's letter from the given choices directly.";

}  // namespace

std::vector<Answer> answer_batch(PhantomModelImpl& model, const data::Tokenizer& tok, const data::SampleEncoder& enc,
                                 const data::TileOptions& tiles, const std::vector<Question>& batch,
                                 const GenerationConfig& gc_in) {
  torch::NoGradGuard ng;
  model.eval();
  const auto dev = model.language_model->body->parameters().front().device();
  GenerationConfig gc = gc_in;
  if (gc.eos_token_ids.empty())
    if (auto e = tok.token_to_id(enc.chat_template().assistant_end)) gc.eos_token_ids.push_back(*e);
  std::vector<std::vector<int32_t>> prompts;
  std::vector<at::Tensor> pixels;
  size_t L = 0;
  for (const auto& q : batch) {
    std::vector<int64_t> counts;
    for (auto& img : q.images) {
      auto t = data::preprocess_image(img, tiles);
      counts.push_back(t.size(0));
      pixels.push_back(t);
    }
    prompts.push_back(enc.prompt(q.prompt, counts));
    L = std::max(L, prompts.back().size());
  }
  const auto B = static_cast<int64_t>(prompts.size());
  auto ids = torch::zeros({B, static_cast<int64_t>(L)}, torch::kInt64);
  auto mask = torch::zeros({B, static_cast<int64_t>(L)}, torch::kInt64);
  for (int64_t r = 0; r < B; ++r) {
    const auto& p = prompts[static_cast<size_t>(r)];
    const int64_t off = static_cast<int64_t>(L - p.size());  // left padding
    for (size_t k = 0; k < p.size(); ++k) ids[r][off + static_cast<int64_t>(k)] = p[k], mask[r][off + static_cast<int64_t>(k)] = 1;
  }
  at::Tensor px = pixels.empty() ? at::Tensor() : torch::cat(pixels, 0).to(dev);
  auto embeds = model.embed_inputs(ids.to(dev), px);
  auto res = generate(*model.language_model, embeds, mask.to(dev), gc);
  std::vector<Answer> answers;
  for (int64_t r = 0; r < B; ++r) {
    const auto& gen = res.tokens[static_cast<size_t>(r)];
    answers.push_back({batch[static_cast<size_t>(r)].id,
                       tok.decode(std::vector<int32_t>(gen.begin(), gen.end()), /*skip_special=*/true)});
  }
  return answers;
}

std::vector<Answer> answer_questions(PhantomModelImpl& model, const data::Tokenizer& tok, const data::SampleEncoder& enc,
                                     const data::TileOptions& tiles, const std::vector<Question>& questions,
                                     GenerationConfig gc, int64_t batch_size,
                                     const std::function<void(const Answer&)>& on_answer) {
  std::vector<Answer> answers;
  log::Progress progress("answering", static_cast<int64_t>(questions.size()));
  for (size_t b0 = 0; b0 < questions.size(); b0 += static_cast<size_t>(batch_size)) {
    const size_t b1 = std::min(questions.size(), b0 + static_cast<size_t>(batch_size));
    const std::vector<Question> batch(questions.begin() + static_cast<std::ptrdiff_t>(b0),
                                      questions.begin() + static_cast<std::ptrdiff_t>(b1));
    for (auto& a : answer_batch(model, tok, enc, tiles, batch, gc)) {
      if (on_answer) on_answer(a);
      answers.push_back(std::move(a));
    }
    progress.update(static_cast<int64_t>(answers.size()));
  }
  progress.finish();
  return answers;
}

std::string extract_option_letter(const std::string& raw, const std::vector<std::string>& options) {
  std::string a = raw;
  while (!a.empty() && std::isspace(static_cast<unsigned char>(a.front()))) a.erase(a.begin());
  const int n = static_cast<int>(options.size());
  auto is_letter = [&](char c) { return c >= 'A' && c < 'A' + n; };
  // "B", "B.", "B)", "(B)" at the start.
  if (!a.empty() && a[0] == '(' && a.size() > 1 && is_letter(a[1])) return std::string(1, a[1]);
  if (!a.empty() && is_letter(a[0]) && (a.size() == 1 || !std::isalpha(static_cast<unsigned char>(a[1]))))
    return std::string(1, a[0]);
  // "The answer is B" / "answer: (C)"
  for (size_t i = 0; i < a.size(); ++i)
    if (is_letter(a[i]) && (i == 0 || !std::isalpha(static_cast<unsigned char>(a[i - 1]))) &&
        (i + 1 == a.size() || !std::isalpha(static_cast<unsigned char>(a[i + 1]))))
      return std::string(1, a[i]);
  // The option text itself.
  for (int i = 0; i < n; ++i)
    if (!options[static_cast<size_t>(i)].empty() && a.find(options[static_cast<size_t>(i)]) != std::string::npos)
      return std::string(1, static_cast<char>('A' + i));
  return "";
}

std::string option_named(const std::string& answer, const std::vector<std::string>& options) {
  std::string lower = answer;
  for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  int best = -1;
  size_t best_len = 0;
  for (size_t i = 0; i < options.size(); ++i) {
    std::string o = options[i];
    for (auto& ch : o) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (!o.empty() && o.size() > best_len && lower.find(o) != std::string::npos) best = static_cast<int>(i), best_len = o.size();
  }
  return best < 0 ? "" : std::string(1, static_cast<char>('A' + best));
}

std::vector<McItem> read_mc_tsv(const std::string& path, int64_t limit, bool open) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open benchmark file " + path);
  std::string line;
  std::getline(in, line);
  const auto header = split_tabs(line);
  auto col = [&](const std::string& name) -> int {
    for (size_t i = 0; i < header.size(); ++i)
      if (header[i] == name) return static_cast<int>(i);
    return -1;
  };
  const int c_index = col("index"), c_q = col("question"), c_hint = col("hint"), c_ans = col("answer"),
            c_cat = col("category"), c_img = col("image");
  if (c_index < 0 || c_q < 0 || c_img < 0) throw std::runtime_error(path + ": not an MMBench-format TSV (needs index, question, image)");
  std::vector<McItem> items;
  int64_t row = 1;
  while (std::getline(in, line) && (limit <= 0 || static_cast<int64_t>(items.size()) < limit)) {
    ++row;
    auto f = split_tabs(line);
    if (f.size() < header.size()) throw std::runtime_error(path + ":" + std::to_string(row) + ": " + std::to_string(f.size()) + " columns, expected " + std::to_string(header.size()));
    McItem it;
    it.q.id = f[static_cast<size_t>(c_index)];
    for (const char* L : {"A", "B", "C", "D", "E"}) {
      const int c = col(L);
      if (c >= 0 && !f[static_cast<size_t>(c)].empty() && f[static_cast<size_t>(c)] != "nan") it.options.push_back(f[static_cast<size_t>(c)]);
    }
    std::string q = f[static_cast<size_t>(c_q)];
    if (c_hint >= 0 && !f[static_cast<size_t>(c_hint)].empty() && f[static_cast<size_t>(c_hint)] != "nan")
      q = f[static_cast<size_t>(c_hint)] + "\n" + q;
    if (!open)
      for (size_t i = 0; i < it.options.size(); ++i) q += "\n" + std::string(1, static_cast<char>('A' + i)) + ". " + it.options[i];
    it.q.prompt = open ? q : q + kMcSuffix;
    const std::string bytes = base64_decode(f[static_cast<size_t>(c_img)]);
    try {
      it.q.images.push_back(data::decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                               path + " row " + it.q.id));
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string(e.what()));
    }
    if (c_ans >= 0) it.answer = f[static_cast<size_t>(c_ans)];
    if (c_cat >= 0) it.category = f[static_cast<size_t>(c_cat)];
    items.push_back(std::move(it));
  }
  return items;
}

McScore evaluate_mc(PhantomModelImpl& model, const data::Tokenizer& tok, const data::SampleEncoder& enc,
                    const data::TileOptions& tiles, const std::vector<McItem>& items, GenerationConfig gc,
                    int64_t batch_size, const std::string& out_jsonl, bool open) {
  std::vector<Question> qs;
  for (auto& it : items) qs.push_back(it.q);
  auto answers = answer_questions(model, tok, enc, tiles, qs, gc, batch_size);
  McScore s;
  std::map<std::string, std::pair<int64_t, int64_t>> cat;
  std::string out;
  int64_t right = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const auto letter = open ? option_named(answers[i].text, items[i].options)
                             : extract_option_letter(answers[i].text, items[i].options);
    const bool ok = letter == items[i].answer;
    right += ok;
    auto& c = cat[items[i].category];
    c.first += ok, c.second += 1;
    out += nlohmann::json{{"id", items[i].q.id}, {"answer", answers[i].text}, {"letter", letter},
                          {"gt", items[i].answer}, {"correct", ok}}.dump() + "\n";
  }
  s.n = static_cast<int64_t>(items.size());
  s.accuracy = s.n ? static_cast<double>(right) / static_cast<double>(s.n) : 0.0;
  for (auto& [k, v] : cat) s.per_category[k] = static_cast<double>(v.first) / static_cast<double>(v.second);
  if (!out_jsonl.empty()) util::write_file_atomic(out_jsonl, out);
  return s;
}

}  // namespace phantom::eval
