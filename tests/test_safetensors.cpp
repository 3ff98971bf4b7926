// safetensors: Python-written files load bit-exactly, ours load in Python, sharding round-trips, and damaged
// files give one-line errors naming the file instead of crashing.
#include <fstream>

#include "phantom/safetensors.h"
#include "tests/helpers.h"

using phantom::test::TempDir;

namespace {

std::map<std::string, at::Tensor> expected() {
  std::map<std::string, at::Tensor> t;
  auto base = torch::arange(24, torch::kDouble).reshape({2, 3, 4});
  const std::pair<const char*, c10::ScalarType> types[] = {
      {"F64", torch::kDouble}, {"F32", torch::kFloat}, {"F16", torch::kHalf}, {"BF16", torch::kBFloat16},
      {"I64", torch::kLong},   {"I32", torch::kInt},   {"I16", torch::kShort}, {"I8", torch::kChar},
      {"U8", torch::kByte},    {"BOOL", torch::kBool}};
  for (auto& [name, dt] : types) {
    at::Tensor v;
    if (c10::isFloatingType(dt)) v = (base - 7.5) / 4;
    else if (dt == torch::kBool) v = base.to(torch::kLong).remainder(3).eq(0);
    else if (dt == torch::kByte) v = base * 9;
    else v = base * 5 - 40;
    t[name] = v.to(dt);
  }
  t["scalar"] = torch::tensor(3.25f);
  t["empty"] = torch::zeros({0, 5});
  return t;
}

int python(const std::string& args) {
  return std::system((std::string(PHANTOM_PYTHON) + " " +
                      phantom::test::source_path("tests/tools/safetensors_fixtures.py") + " " + args + " > /dev/null 2>&1")
                         .c_str());
}

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& b) { std::ofstream(path, std::ios::binary) << b; }

}  // namespace

TEST_CASE("safetensors: files written by Python load bit-exactly, with metadata") {
  TempDir t;
  REQUIRE(python("write " + t.str()) == 0);
  phantom::st::File f(t.str("py.safetensors"));
  CHECK(f.metadata().at("who") == "python");
  auto exp = expected();
  CHECK(f.names().size() == exp.size());
  for (auto& [name, v] : exp) {
    INFO(name);
    auto got = f.get(name);
    CHECK(got.scalar_type() == v.scalar_type());
    CHECK(got.sizes() == v.sizes());
    CHECK(got.equal(v));
  }
}

TEST_CASE("safetensors: our files load in Python; sharded checkpoints round-trip") {
  TempDir t;
  phantom::st::save(t.str("ours.safetensors"), expected(), {{"format", "pt"}});
  CHECK(python("check " + t.str("ours.safetensors")) == 0);
  phantom::st::save_sharded(t.str("sharded"), expected(), 300);
  CHECK(std::filesystem::exists(t.str("sharded/model.safetensors.index.json")));
  std::string second;
  int shards = 0;
  for (auto& e : std::filesystem::directory_iterator(t.str("sharded"))) {
    const auto n = e.path().filename().string();
    if (n.rfind("model-", 0) == 0) ++shards;
    if (n.rfind("model-00002-of-", 0) == 0) second = n;
  }
  CHECK(shards >= 3);
  auto back = phantom::st::load(t.str("sharded"));
  for (auto& [name, v] : expected()) {
    INFO(name);
    REQUIRE(back.count(name));
    CHECK(back[name].equal(v));
  }
  // A shard listed in the index but gone: named.
  std::filesystem::remove(t.str("sharded/" + second));
  CHECK_THROWS_WITH(phantom::st::load(t.str("sharded")), Catch::Contains("shard " + second + " is missing"));
}

TEST_CASE("safetensors: damaged files give clear errors, never a crash") {
  TempDir t;
  phantom::st::save(t.str("good.safetensors"), expected());
  const std::string good = bytes_of(t.str("good.safetensors"));
  const auto hlen = static_cast<size_t>(static_cast<unsigned char>(good[0]) | static_cast<unsigned char>(good[1]) << 8);
  // Truncation anywhere: in the length, in the header, in the data.
  for (size_t cut : {size_t(0), size_t(5), size_t(8), size_t(8 + hlen / 2), size_t(8 + hlen + 3), good.size() - 1}) {
    INFO("cut at " << cut);
    auto p = t.str("cut.safetensors");
    write_bytes(p, good.substr(0, cut));
    CHECK_THROWS_WITH(phantom::st::load(p), Catch::Contains("cut.safetensors"));
  }
  auto p = t.str("bad.safetensors");
  std::string huge = good;
  huge[6] = '\x7f';  // header length ~ 2^55
  write_bytes(p, huge);
  CHECK_THROWS_WITH(phantom::st::load(p), Catch::Contains("exceeds the file size"));
  std::string badjson = good;
  badjson[8] = '#';
  write_bytes(p, badjson);
  CHECK_THROWS_WITH(phantom::st::load(p), Catch::Contains("invalid JSON header"));
  auto with_header = [&](const std::string& h, const std::string& data) {
    std::string hdr = h;
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((hdr.size() >> (8 * i)) & 0xFF);
    write_bytes(p, s + hdr + data);
  };
  with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", std::string(8, '\0'));
  CHECK_THROWS_WITH(phantom::st::load(p), Catch::Contains("outside the data section"));
  with_header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0'));
  CHECK_THROWS_WITH(phantom::st::load(p), Catch::Contains("8 bytes for 3 elements"));
  with_header(R"({"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,1]}})", std::string(1, '\0'));
  CHECK_THROWS_WITH(phantom::st::load(p), Catch::Contains("unsupported dtype Q4"));
  with_header(R"({"a":{"dtype":"F32","shape":[2]}})", std::string(8, '\0'));
  CHECK_THROWS_WITH(phantom::st::load(p), Catch::Contains("malformed entry"));
  CHECK_THROWS_WITH(phantom::st::load(t.str("missing.safetensors")), Catch::Contains("cannot open"));
  CHECK_THROWS_WITH(phantom::st::load(t.str()), Catch::Contains("no model.safetensors"));
}
