// safetensors I/O against the Python reference (tests/tools/safetensors_fixtures.py): Python's files load bit for
// bit, ours are byte-identical to Python's and load there, sharding matches huggingface_hub, and corrupted files
// give one-line errors naming the file instead of crashing.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "phantom/io/safetensors.h"
#include "tests/helpers.h"

namespace fs = std::filesystem;
namespace st = phantom::st;
using phantom::test::TempDir;

namespace {

// Mirrors value() in the Python tool: names are "<DTYPE>.<shape>", shape "2x3x4", "scalar" or "0x4".
at::Tensor value(const std::string& name) {
  const auto dot = name.find('.');
  const auto dtype = st::dtype_from_name(name.substr(0, dot));
  const std::string shape = name.substr(dot + 1, name.find('.', dot + 1) - dot - 1);
  std::vector<int64_t> dims;
  if (shape != "scalar") {
    std::stringstream ss(shape);
    for (std::string d; std::getline(ss, d, 'x');) dims.push_back(std::stoll(d));
  }
  int64_t n = 1;
  for (auto d : dims) n *= d;
  auto i = torch::arange(n, torch::kLong);
  at::Tensor t;
  if (dtype == at::kBool)
    t = i % 3 == 0;
  else if (at::isFloatingType(dtype) || at::isFloat8Type(dtype))
    t = (i.to(at::kDouble) * 0.734 - 3.3).to(dtype);
  else if (dtype == at::kUInt64)
    t = (i * int64_t(1234567890123) + 17).to(dtype);
  else
    t = (i * int64_t(1234567890123) - 987654321).to(dtype);
  return t.reshape(dims);
}

const char* kDtypes[] = {"BOOL", "U8",  "I8",  "F8_E5M2", "F8_E4M3", "I16", "U16", "F16",
                         "BF16", "I32", "U32", "F32",     "F64",     "I64", "U64"};

std::vector<std::string> all_names() {
  std::vector<std::string> out;
  for (auto d : kDtypes)
    for (auto s : {"2x3x4", "scalar", "0x4", "7"}) out.push_back(std::string(d) + "." + s);
  return out;
}

bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  auto ac = a.contiguous(), bc = b.contiguous();
  return std::memcmp(ac.data_ptr(), bc.data_ptr(), ac.nbytes()) == 0;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// A file from raw parts: u64 little-endian header length, header, data.
std::string craft(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; i++) out[i] = static_cast<char>((uint64_t(header.size()) >> (8 * i)) & 0xff);
  return out + header + data;
}

int python(const std::string& args) {
  const std::string cmd = std::string(PHANTOM_PYTHON) + " " +
                          phantom::test::source_path("tests/tools/safetensors_fixtures.py") + " " + args;
  return std::system(cmd.c_str());
}

// Opens and reads every tensor; returns the error message, or "" when the file is fine.
std::string open_error(const std::string& path) {
  try {
    st::File f(path);
    for (const auto& n : f.names()) f.get(n);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("safetensors: dtype names") {
  CHECK(st::dtype_name(at::kBFloat16) == "BF16");
  CHECK(st::dtype_from_name("F8_E4M3") == at::kFloat8_e4m3fn);
  CHECK_THROWS_WITH(st::dtype_name(at::kComplexFloat), Catch::Contains("cannot store"));
  CHECK_THROWS_WITH(st::dtype_from_name("F33"), Catch::Contains("unknown"));
}

TEST_CASE("safetensors: interop with Python safetensors and huggingface_hub") {
  TempDir t;
  REQUIRE(python("write " + t.str("py")) == 0);

  // Python's files load bit-exactly: every dtype, 0-d scalars, empty tensors, metadata.
  {
    st::File f(t.str("py/dtypes.safetensors"));
    auto names = all_names();
    std::sort(names.begin(), names.end());
    CHECK(f.names() == names);
    for (const auto& n : names) {
      INFO(n);
      CHECK(same_bits(f.get(n), value(n)));
      CHECK(f.info(n).dtype == value(n).scalar_type());
    }
    CHECK(f.metadata() == st::Metadata{{"format", "pt"}});
    st::File m(t.str("py/meta.safetensors"));
    CHECK(m.metadata() == st::Metadata{{"format", "pt"}, {"producer", "python"}, {"note", "quotes \" and\nnewlines"}});
  }

  // Zero-copy: two gets share memory, and tensors outlive the File (they hold the mapping).
  at::Tensor kept;
  {
    st::File f(t.str("py/dtypes.safetensors"));
    kept = f.get("F32.2x3x4");
    CHECK(kept.data_ptr() == f.get("F32.2x3x4").data_ptr());
  }
  CHECK(same_bits(kept, value("F32.2x3x4")));
  // The mapping is copy-on-write: in-place ops work and never reach the file.
  kept.add_(1);
  CHECK(same_bits(st::File(t.str("py/dtypes.safetensors")).get("F32.2x3x4"), value("F32.2x3x4")));

  // Our writer: byte-identical to save_file, given in any order and layout, and readable by Python.
  {
    st::Named tensors;
    auto names = all_names();
    std::shuffle(names.begin(), names.end(), std::mt19937(7));
    for (const auto& n : names) {
      auto v = value(n);
      if (v.dim() == 3) v = v.transpose(0, 2).contiguous().transpose(0, 2);  // same values, not contiguous
      tensors.emplace_back(n, v);
    }
    st::save(t.str("ours.safetensors"), tensors, {{"format", "pt"}});
    REQUIRE(fs::file_size(t.str("py/dtypes.safetensors")) > 1000);
    CHECK(read_bytes(t.str("ours.safetensors")) == read_bytes(t.str("py/dtypes.safetensors")));
    st::save(t.str("meta.safetensors"), {{"F32.2x3x4", value("F32.2x3x4")}},
             {{"format", "pt"}, {"producer", "c++"}, {"z", "\"\n\\"}});
    CHECK(st::File(t.str("meta.safetensors")).metadata().at("z") == "\"\n\\");
  }

  // Sharding: the same split, file names and shard bytes as huggingface_hub's save_torch_state_dict.
  st::Named sd;
  for (auto n : {"F32.2x3x4", "I64.2x2", "I32.scalar", "F64.4x7", "F32.4x6", "BF16.4x6", "U8.0x4"})
    sd.emplace_back(n, value(n));
  const auto written = st::save_sharded(t.str("sharded"), sd, 150, {{"format", "pt"}});
  CHECK(written.size() == 4);
  for (const auto& e : fs::directory_iterator(t.str("py/hf"))) {
    const auto name = e.path().filename().string();
    INFO(name);
    REQUIRE(fs::exists(t.str("sharded/" + name)));
    if (name.find(".index.json") == std::string::npos)
      CHECK(read_bytes(e.path().string()) == read_bytes(t.str("sharded/" + name)));
  }
  auto ours_index = nlohmann::json::parse(read_bytes(t.str("sharded/model.safetensors.index.json")));
  auto hf_index = nlohmann::json::parse(read_bytes(t.str("py/hf/model.safetensors.index.json")));
  CHECK(ours_index == hf_index);

  for (const auto& dir : {t.str("sharded"), t.str("py/hf"), t.str("py/hf/model.safetensors.index.json")}) {
    INFO(dir);
    st::Checkpoint ck(dir);
    REQUIRE(ck.files().size() == 3);
    CHECK_THAT(ck.files()[0]->path(), Catch::EndsWith("/model-00001-of-00003.safetensors"));
    CHECK(ck.file_of("F64.4x7").path() == ck.files()[0]->path());  // the oversized tensor's own shard
    CHECK(ck.names().size() == sd.size());
    for (const auto& [n, v] : sd) CHECK(same_bits(ck.get(n), v));
    CHECK(ck.metadata() == st::Metadata{{"format", "pt"}});
  }

  CHECK(python("check " + t.str("ours.safetensors") + " " + t.str("meta.safetensors") + " " + t.str("sharded")) == 0);

  // Saving again unsharded replaces the shards and the index: a directory open finds only the new file.
  st::save_sharded(t.str("sharded"), sd, 1 << 20);
  int entries = 0;
  for (const auto& e : fs::directory_iterator(t.str("sharded"))) (void)e, ++entries;
  CHECK(entries == 1);
  st::Checkpoint one(t.str("sharded"));
  CHECK(one.files().size() == 1);
  CHECK(one.names().size() == sd.size());
  CHECK(python("check " + t.str("sharded/model.safetensors")) == 0);
}

TEST_CASE("safetensors: sharded checkpoints with a broken index") {
  TempDir t;
  st::Named sd;
  for (auto n : {"F32.2x3x4", "F64.4x7", "F32.4x6"}) sd.emplace_back(n, value(n));
  st::save_sharded(t.str("ck"), sd, 100);
  const auto index = t.str("ck/model.safetensors.index.json");
  const std::string good = read_bytes(index);

  auto j = nlohmann::json::parse(good);
  j["weight_map"]["nope"] = "model-00001-of-00003.safetensors";
  write_bytes(index, j.dump());
  CHECK_THROWS_WITH(st::Checkpoint(t.str("ck")), Catch::Contains("model.safetensors.index.json") &&
                                                     Catch::Contains("\"nope\"") &&
                                                     Catch::Contains("does not contain it"));

  write_bytes(index, "{\"weight_map\": [");
  CHECK_THROWS_WITH(st::Checkpoint(index), Catch::Contains("model.safetensors.index.json: not valid JSON"));
  write_bytes(index, "{\"metadata\": {}}");
  CHECK_THROWS_WITH(st::Checkpoint(index), Catch::Contains("no \"weight_map\""));
  // A shard that exists but is not a safetensors file (here the directory itself, "" in the index): the shard's
  // own error, said to come from the index (the fuzz pass, tests/fuzz, mutates shard names).
  j = nlohmann::json::parse(good);
  j["weight_map"]["F64.4x7"] = "";
  write_bytes(index, j.dump());
  CHECK_THROWS_WITH(st::Checkpoint(index), Catch::Contains("model.safetensors.index.json: shard \"\" (listed for tensor \"F64.4x7\")"));

  write_bytes(index, good);
  CHECK(st::Checkpoint(t.str("ck")).names().size() == 3);
  fs::remove(t.str("ck/model-00002-of-00003.safetensors"));
  CHECK_THROWS_WITH(st::Checkpoint(t.str("ck")), Catch::Contains("model.safetensors.index.json: shard") &&
                                                     Catch::Contains("model-00002-of-00003.safetensors") &&
                                                     Catch::Contains("missing"));

  // Directory resolution: a lone *.safetensors is found; an empty directory is an error naming it.
  fs::create_directories(t.str("lone"));
  st::save(t.str("lone/weights.safetensors"), {{"F32.7", value("F32.7")}});
  CHECK(st::Checkpoint(t.str("lone")).names() == std::vector<std::string>{"F32.7"});
  fs::create_directories(t.str("empty"));
  CHECK_THROWS_WITH(st::Checkpoint(t.str("empty")), Catch::Contains("empty: no model.safetensors"));
  CHECK_THROWS_WITH(st::Checkpoint(t.str("absent.safetensors")), Catch::Contains("absent.safetensors: cannot open"));
  CHECK_THROWS_WITH(st::Checkpoint(t.str("lone")).get("x"), Catch::Contains("no tensor \"x\""));
}

TEST_CASE("safetensors: corrupted files give one-line errors naming the file") {
  TempDir t;
  const auto good_path = t.str("good.safetensors");
  st::save(good_path, {{"a", value("F32.2x3")}, {"b", value("I64.4")}, {"c", value("BOOL.3")}}, {{"k", "v"}});
  const std::string good = read_bytes(good_path);
  const auto bad = t.str("bad.safetensors");
  auto error_for = [&](const std::string& bytes) {
    write_bytes(bad, bytes);
    return open_error(bad);
  };
  CHECK(open_error(good_path).empty());

  // Truncated at every length, the empty file included.
  for (size_t cut = 0; cut < good.size(); cut++) {
    INFO("cut at " << cut);
    const auto e = error_for(good.substr(0, cut));
    CHECK_THAT(e, Catch::StartsWith(bad + ": "));
    CHECK(e.find('\n') == std::string::npos);
  }
  CHECK_THAT(error_for(""), Catch::Contains("file is empty"));
  CHECK_THAT(error_for(good.substr(0, 5)), Catch::Contains("shorter than the 8-byte header length"));
  CHECK_THAT(error_for(good.substr(0, 40)), Catch::Contains("exceeds file size 40"));
  CHECK_THAT(error_for(good.substr(0, good.size() - 1)), Catch::Contains("exceed the data section"));

  std::string huge = good;
  huge[7] = '\x40';
  CHECK_THAT(error_for(huge), Catch::Contains("header length 46116860184273") && Catch::Contains("exceeds file size"));

  const std::string f32 = std::string(24, '\0');
  auto hdr = [](const std::string& entry) { return "{\"a\":" + entry + "}"; };
  CHECK_THAT(error_for(craft("{\"a\":", f32)), Catch::Contains("header is not valid JSON"));
  CHECK_THAT(error_for(craft("[1,2]", "")), Catch::Contains("header is not a JSON object"));
  CHECK_THAT(error_for(craft(hdr(R"({"dtype":"F32","shape":[2,6],"data_offsets":[0,48]})"), f32)),
             Catch::Contains("tensor \"a\" data_offsets [0,48] exceed the data section of 24 bytes"));
  CHECK_THAT(error_for(craft(hdr(R"({"dtype":"F32","shape":[2,4],"data_offsets":[0,24]})"), f32)),
             Catch::Contains("tensor \"a\" data_offsets [0,24] span 24 bytes but F32 [2,4] needs 32"));
  CHECK_THAT(error_for(craft(hdr(R"({"dtype":"F32","shape":[2,3],"data_offsets":[24,0]})"), f32)),
             Catch::Contains("end before they begin"));
  CHECK_THAT(error_for(craft(hdr(R"({"dtype":"Q7","shape":[2,3],"data_offsets":[0,24]})"), f32)),
             Catch::Contains("unknown dtype \"Q7\""));
  CHECK_THAT(error_for(craft(hdr(R"({"dtype":"F32","shape":[-2,3],"data_offsets":[0,24]})"), f32)),
             Catch::Contains("shape entry"));
  CHECK_THAT(error_for(craft(hdr(R"({"dtype":"F32","shape":[2,3]})"), f32)), Catch::Contains("data_offsets"));
  CHECK_THAT(
      error_for(craft(hdr(R"({"dtype":"U8","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,0]})"), "")),
      Catch::Contains("overflows"));
  CHECK_THAT(error_for(craft(R"({"a":{"dtype":"F32","shape":[6],"data_offsets":[0,24]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}})",
                             f32)),
             Catch::Contains("overlap"));
  CHECK_THAT(error_for(craft(hdr(R"({"dtype":"F32","shape":[5],"data_offsets":[4,24]})"), f32)),
             Catch::Contains("gap of 4 bytes"));
  CHECK_THAT(error_for(craft(hdr(R"({"dtype":"F32","shape":[5],"data_offsets":[0,20]})"), f32)),
             Catch::Contains("4 bytes after the last tensor"));
  CHECK_THAT(error_for(craft(R"({"__metadata__":{"a":1}})", "")), Catch::Contains("__metadata__ value of \"a\""));
  CHECK_THAT(error_for(craft(hdr(R"({"dtype":"BOOL","shape":[2],"data_offsets":[0,2]})"), "\x01\x02")),
             Catch::Contains("BOOL but holds bytes other than 0 and 1"));
  CHECK_THAT(open_error(t.str("")), Catch::Contains("not a regular file"));

  // Random byte flips anywhere: either a valid file or a runtime_error naming it, never a crash.
  std::mt19937 rng(1);
  int rejected = 0;
  for (int iter = 0; iter < 500; iter++) {
    std::string bytes = good;
    for (int k = 0, n = 1 + rng() % 3; k < n; k++) bytes[rng() % bytes.size()] ^= static_cast<char>(1 + rng() % 255);
    const auto e = error_for(bytes);
    if (!e.empty()) {
      CHECK_THAT(e, Catch::StartsWith(bad + ": "));
      rejected++;
    }
  }
  CHECK(rejected > 0);
}

TEST_CASE("safetensors: unaligned data and writer errors") {
  TempDir t;
  // A header of odd length puts F32 data at an unaligned address: get() copies instead of viewing.
  std::string data(12, '\0');
  const float vals[3] = {1.5f, -2.0f, 3.25f};
  std::memcpy(data.data(), vals, 12);
  write_bytes(t.str("odd.safetensors"), craft(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})", data));
  st::File odd(t.str("odd.safetensors"));
  CHECK(odd.get("x").equal(torch::tensor({1.5f, -2.0f, 3.25f})));

  const auto p = t.str("w.safetensors");
  st::save(p, {{"a", value("F32.7")}});
  CHECK_THROWS_WITH(st::save(p, {{"a", value("F32.7")}, {"a", value("F32.7")}}),
                    Catch::Contains("w.safetensors: tensor \"a\" given twice"));
  CHECK_THROWS_WITH(st::save(p, {{"__metadata__", value("F32.7")}}), Catch::Contains("cannot be a tensor name"));
  CHECK_THROWS_WITH(st::save(p, {{"c", torch::zeros({2}, torch::kComplexFloat)}}),
                    Catch::Contains("w.safetensors: tensor \"c\" has dtype ComplexFloat"));
  CHECK_THROWS_WITH(st::save(p, {{"u", at::Tensor()}}), Catch::Contains("undefined"));
  // A failure in the middle of writing leaves the previous file and no temporary behind.
  CHECK_THROWS_WITH(st::save(p, {{"a", value("F32.7")}, {"m", torch::empty({2}, torch::Device(torch::kMeta))}}),
                    Catch::Contains("w.safetensors: tensor \"m\" cannot be copied to the CPU"));
  int entries = 0;
  for (const auto& e : fs::directory_iterator(t.path)) (void)e, ++entries;
  CHECK(entries == 2);  // odd.safetensors, w.safetensors
  CHECK(same_bits(st::File(p).get("a"), value("F32.7")));
  CHECK_THROWS_WITH(st::save(t.str("no/dir/x.safetensors"), {{"a", value("F32.7")}}), Catch::Contains("cannot create"));
  // An empty checkpoint is valid, as in Python.
  st::save(t.str("none.safetensors"), st::Named{});
  CHECK(read_bytes(t.str("none.safetensors")) == craft("{}      ", ""));
  CHECK(st::File(t.str("none.safetensors")).names().empty());
}
