// Oracle tests against the tiny-en-es fixture (expected.json from HF transformers 4.46.3).
#include <cblas.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include "marian/argmax_screen.h"
#include "marian/checkpoint.h"
#include "marian/generate.h"
#include "marian/marian_engine.h"
#include "marian/model.h"
#include "marian/parallel.h"
#include "marian/safetensors.h"
#include "marian/tiny_fixture_test_support.h"
#include "marian/tokenizer.h"
#include "marian/translator.h"

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace transnotes::marian;

namespace {

bool have_fixture() { return fs::exists(tiny_fixture::dir() / "expected.json"); }

// The fixture is part of the repository: a missing one is a broken checkout, never a skip.
#define REQUIRE_FIXTURE() \
  ASSERT_TRUE(have_fixture()) << "MarianMT fixture not found at " << tiny_fixture::dir()

std::vector<int> ints(const json::value& v) {
  std::vector<int> out;
  for (const auto& x : v.as_array()) out.push_back(static_cast<int>(x.as_int64()));
  return out;
}

// Flattens nested arrays of numbers (null -> -inf).
void flatten(const json::value& v, std::vector<double>& out) {
  if (v.is_array()) {
    for (const auto& x : v.as_array()) flatten(x, out);
  } else if (v.is_null()) {
    out.push_back(-INFINITY);
  } else {
    out.push_back(v.to_number<double>());
  }
}

// generate() rows carry no padding; HF pads batch rows with <pad> after </s>.
std::vector<int> strip_padding(std::vector<int> ids, int pad) {
  while (ids.size() > 1 && ids.back() == pad) ids.pop_back();
  return ids;
}

const MarianModel& model() {
  static auto m = MarianModel::load(tiny_fixture::dir(), ModelOptions{1, false});
  return *m;
}
const MarianTokenizer& tokenizer() {
  static MarianTokenizer t(tiny_fixture::dir());
  return t;
}

GenerateOptions options_from(const json::object& kwargs, const MarianModel& m) {
  GenerateOptions o = GenerateOptions::from_model(m);
  o.num_beams = static_cast<int>(kwargs.at("num_beams").as_int64());
  o.max_length = static_cast<int>(kwargs.at("max_length").as_int64());
  if (auto* lp = kwargs.if_contains("length_penalty")) o.length_penalty = lp->to_number<float>();
  if (auto* es = kwargs.if_contains("early_stopping")) o.early_stopping = es->as_bool();
  return o;
}

TEST(MarianTokenizer, MatchesHfPiecesAndIds) {
  REQUIRE_FIXTURE();
  for (const auto& cv : tiny_fixture::expected().at("cases").as_array()) {
    const auto& c = cv.as_object();
    SCOPED_TRACE(std::string(c.at("id").as_string()));
    const std::string src(c.at("src").as_string());
    EXPECT_EQ(tokenizer().encode(src), ints(c.at("input_ids")));
    auto pieces = tokenizer().pieces(src);
    pieces.push_back("</s>");
    // expected source_pieces are the vocab pieces of the ids: "<unk>" stands for any
    // piece missing from vocab.json.
    std::vector<std::string> want;
    for (const auto& p : c.at("source_pieces").as_array()) want.emplace_back(p.as_string());
    ASSERT_EQ(pieces.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i)
      if (want[i] != "<unk>") {
        EXPECT_EQ(pieces[i], want[i]) << i;
      }
  }
}

TEST(MarianTokenizer, DecodeMatchesHf) {
  REQUIRE_FIXTURE();
  for (const auto& cv : tiny_fixture::expected().at("cases").as_array()) {
    const auto& c = cv.as_object();
    SCOPED_TRACE(std::string(c.at("id").as_string()));
    for (const char* kind : {"greedy", "beam"}) {
      const auto& g = c.at(kind).as_object();
      EXPECT_EQ(tokenizer().decode(ints(g.at("output_ids"))),
                std::string(g.at("text").as_string()));
    }
  }
}

TEST(MarianModel, EncoderHiddenStatesAndLogits) {
  REQUIRE_FIXTURE();
  int checked = 0;
  for (const auto& cv : tiny_fixture::expected().at("cases").as_array()) {
    const auto& c = cv.as_object();
    const auto* numerics = c.if_contains("numerics");
    if (!numerics) continue;
    SCOPED_TRACE(std::string(c.at("id").as_string()));
    const auto& n = numerics->as_object();
    const auto input = ints(c.at("input_ids"));
    std::vector<std::vector<float>> layers;
    auto enc = model().encode({input}, &layers);
    std::vector<double> want;
    flatten(n.at("encoder_hidden_states").at("values"), want);
    std::vector<float> got;
    for (const auto& l : layers) got.insert(got.end(), l.begin(), l.end());
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4) << "index " << i;
    want.clear();
    flatten(n.at("encoder_last_hidden_state").at("values"), want);
    ASSERT_EQ(enc->hidden.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(enc->hidden[i], want[i], 1e-4);

    auto logits = model().teacher_forced_logits({input}, {ints(n.at("decoder_input_ids"))});
    want.clear();
    flatten(n.at("decoder_logits").at("values"), want);
    ASSERT_EQ(logits.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(logits[i], want[i], 1e-3) << "index " << i;

    // Step-0 processed scores: pad -> -inf, then log_softmax.
    want.clear();
    flatten(n.at("greedy_step0_processed_scores").at("values"), want);
    const int V = model().decoder_vocab_size();
    std::vector<double> row(logits.begin(), logits.begin() + V);
    for (const auto& bad : model().generation_config().bad_words_ids) row[bad[0]] = -INFINITY;
    double mx = *std::max_element(row.begin(), row.end()), sum = 0;
    for (double v : row) sum += std::exp(v - mx);
    for (int t = 0; t < V; ++t) {
      double got_t = row[t] - mx - std::log(sum);
      if (std::isinf(want[t])) {
        EXPECT_TRUE(std::isinf(got_t)) << t;
      } else {
        EXPECT_NEAR(got_t, want[t], 1e-3) << t;
      }
    }
    ++checked;
  }
  EXPECT_EQ(checked, 3);
}

// Every fixture case, greedy and beam, one sentence at a time: ids exactly HF's.
void expect_single_cases_match(const MarianModel& m) {
  for (const auto& cv : tiny_fixture::expected().at("cases").as_array()) {
    const auto& c = cv.as_object();
    SCOPED_TRACE(std::string(c.at("id").as_string()));
    for (const char* kind : {"greedy", "beam"}) {
      SCOPED_TRACE(kind);
      const auto& k = c.at(kind).as_object();
      auto result =
          generate(m, {ints(c.at("input_ids"))}, options_from(k.at("kwargs").as_object(), m));
      ASSERT_EQ(result.size(), 1u);
      EXPECT_EQ(result[0].ids, ints(k.at("output_ids")));
    }
  }
}

// The fixture's padded batch case, its padding removed (what the engine is given).
std::vector<std::vector<int>> batch_case_inputs() {
  const auto& bc = tiny_fixture::expected().at("batch_case").as_object();
  std::vector<std::vector<int>> inputs;
  const auto& masks = bc.at("attention_mask").as_array();
  const auto& rows = bc.at("input_ids").as_array();
  for (size_t i = 0; i < rows.size(); ++i) {
    auto ids = ints(rows[i]);
    auto mask = ints(masks[i]);
    std::vector<int> row;
    for (size_t t = 0; t < ids.size(); ++t)
      if (mask[t]) row.push_back(ids[t]);
    inputs.push_back(row);
  }
  return inputs;
}

// Generates the padded batch case with `m`, greedy and beam, and checks every row's ids.
void expect_batch_case_matches(const MarianModel& m) {
  const auto& bc = tiny_fixture::expected().at("batch_case").as_object();
  const auto inputs = batch_case_inputs();
  for (const char* kind : {"greedy", "beam"}) {
    SCOPED_TRACE(kind);
    const auto& k = bc.at(kind).as_object();
    auto result = generate(m, inputs, options_from(k.at("kwargs").as_object(), m));
    const auto& want = k.at("output_ids").as_array();
    ASSERT_EQ(result.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_EQ(result[i].ids, strip_padding(ints(want[i]), m.config().pad_token_id));
  }
}

void expect_greedy_cases_match(const MarianModel& m) {
  for (const auto& cv : tiny_fixture::expected().at("cases").as_array()) {
    const auto& c = cv.as_object();
    SCOPED_TRACE(std::string(c.at("id").as_string()));
    const auto& g = c.at("greedy").as_object();
    auto result =
        generate(m, {ints(c.at("input_ids"))}, options_from(g.at("kwargs").as_object(), m));
    ASSERT_EQ(result.size(), 1u);
    EXPECT_EQ(result[0].ids, ints(g.at("output_ids")));
    EXPECT_EQ(tokenizer().decode(result[0].ids), std::string(g.at("text").as_string()));
  }
}

TEST(MarianGenerate, GreedyMatchesHfExactly) {
  REQUIRE_FIXTURE();
  const ArgmaxScreen* screen = model().greedy_screen();
  const uint64_t screened_before = screen ? screen->rows_screened() : 0;
  expect_greedy_cases_match(model());
  // On CPUs with AVX-512 VNNI the default fp32 model picks greedy tokens through the screen.
  EXPECT_EQ(screen != nullptr, ArgmaxScreen::supported());
  if (screen) {
    EXPECT_GT(screen->rows_screened(), screened_before);
  }
}

TEST(MarianGenerate, GreedyWithEveryLogitMatchesHfExactly) {
  REQUIRE_FIXTURE();
  ModelOptions options{1, false};
  options.greedy_screen = false;
  const auto every_logit = MarianModel::load(tiny_fixture::dir(), options);
  EXPECT_EQ(every_logit->greedy_screen(), nullptr);
  expect_greedy_cases_match(*every_logit);
}

// int8 weights (per-row scales) are an engine option; on the fixture they must not change any
// greedy output.
TEST(MarianGenerate, Int8GreedyMatchesHf) {
  REQUIRE_FIXTURE();
  auto int8_model = MarianModel::load(tiny_fixture::dir(), ModelOptions{1, true});
  int same = 0, total = 0;
  for (const auto& cv : tiny_fixture::expected().at("cases").as_array()) {
    const auto& c = cv.as_object();
    const auto& g = c.at("greedy").as_object();
    auto result = generate(*int8_model, {ints(c.at("input_ids"))},
                           options_from(g.at("kwargs").as_object(), *int8_model));
    ++total;
    if (result[0].ids == ints(g.at("output_ids"))) {
      ++same;
    } else {
      ADD_FAILURE() << "int8 greedy differs for " << c.at("id").as_string();
    }
  }
  EXPECT_EQ(same, total);
}

TEST(MarianGenerate, BeamMatchesHfExactly) {
  REQUIRE_FIXTURE();
  for (const auto& cv : tiny_fixture::expected().at("cases").as_array()) {
    const auto& c = cv.as_object();
    SCOPED_TRACE(std::string(c.at("id").as_string()));
    const auto& b = c.at("beam").as_object();
    auto result = generate(model(), {ints(c.at("input_ids"))},
                           options_from(b.at("kwargs").as_object(), model()));
    ASSERT_EQ(result.size(), 1u);
    EXPECT_EQ(result[0].ids, ints(b.at("output_ids")));
    EXPECT_EQ(tokenizer().decode(result[0].ids), std::string(b.at("text").as_string()));
    EXPECT_NEAR(result[0].score, b.at("sequences_score").to_number<double>(), 1e-3);
  }
}

// Two threads (the engine's worker pool splits linear layers, attention, activations and the
// beam-search scoring) must give exactly the single-threaded HF results, fp32 and int8.
TEST(MarianGenerate, WorkerPoolMatchesHf) {
  REQUIRE_FIXTURE();
  // Back to the single thread the other tests use (the setting is process-wide), also when an
  // assertion ends the test early.
  struct RestoreOneThread {
    ~RestoreOneThread() {
      set_parallel_threads(1);
      openblas_set_num_threads(1);
    }
  } restore;
  set_inference_threads(2);
  auto fp32 = MarianModel::load(tiny_fixture::dir(), ModelOptions{2, false});
  auto int8 = MarianModel::load(tiny_fixture::dir(), ModelOptions{2, true});
  EXPECT_EQ(parallel_threads(), 2);
  expect_single_cases_match(*fp32);
  for (const auto& cv : tiny_fixture::expected().at("cases").as_array()) {
    const auto& c = cv.as_object();
    SCOPED_TRACE(std::string(c.at("id").as_string()));
    const auto& g = c.at("greedy").as_object();
    auto result =
        generate(*int8, {ints(c.at("input_ids"))}, options_from(g.at("kwargs").as_object(), *int8));
    EXPECT_EQ(result[0].ids, ints(g.at("output_ids")));
  }
  // A padded batch: beam search then multiplies 12 rows (the L2-tiled kernel, split by rows).
  expect_batch_case_matches(*fp32);
}

TEST(MarianGenerate, PaddedBatchMatchesHf) {
  REQUIRE_FIXTURE();
  const auto& bc = tiny_fixture::expected().at("batch_case").as_object();
  const int pad = model().config().pad_token_id;
  const auto inputs = batch_case_inputs();
  for (const char* kind : {"greedy", "beam"}) {
    SCOPED_TRACE(kind);
    const auto& k = bc.at(kind).as_object();
    auto result = generate(model(), inputs, options_from(k.at("kwargs").as_object(), model()));
    const auto& want = k.at("output_ids").as_array();
    const auto& texts = k.at("text").as_array();
    ASSERT_EQ(result.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(result[i].ids, strip_padding(ints(want[i]), pad));
      EXPECT_EQ(tokenizer().decode(result[i].ids), std::string(texts[i].as_string()));
    }
  }
}

// int8 mode on a CPU with AVX-512 VNNI also quantizes the activations (int8 GEMM) for
// products of several rows: beam search (4 rows) and batches go through it. Every fixture beam
// output and the padded batch (greedy and beam) must still be exactly HF's.
TEST(MarianGenerate, Int8BeamMatchesHf) {
  REQUIRE_FIXTURE();
  auto int8_model = MarianModel::load(tiny_fixture::dir(), ModelOptions{1, true});
  for (const auto& cv : tiny_fixture::expected().at("cases").as_array()) {
    const auto& c = cv.as_object();
    SCOPED_TRACE(std::string(c.at("id").as_string()));
    const auto& b = c.at("beam").as_object();
    auto result = generate(*int8_model, {ints(c.at("input_ids"))},
                           options_from(b.at("kwargs").as_object(), *int8_model));
    ASSERT_EQ(result.size(), 1u);
    EXPECT_EQ(result[0].ids, ints(b.at("output_ids")));
  }
}

// The weight-only int8 path (CPUs without VNNI; forced here with int8_vnni = false so that it is
// tested on every machine): greedy and beam outputs, single and padded batch, are HF's.
TEST(MarianGenerate, Int8WeightOnlyPathMatchesHf) {
  REQUIRE_FIXTURE();
  ModelOptions options{1, true};
  options.int8_vnni = false;
  auto int8_model = MarianModel::load(tiny_fixture::dir(), options);
  expect_single_cases_match(*int8_model);
  expect_batch_case_matches(*int8_model);
}

TEST(MarianGenerate, Int8PaddedBatchMatchesHf) {
  REQUIRE_FIXTURE();
  for (int threads : {1, 2}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    struct RestoreOneThread {
      ~RestoreOneThread() {
        set_parallel_threads(1);
        openblas_set_num_threads(1);
      }
    } restore;
    auto int8_model = MarianModel::load(tiny_fixture::dir(), ModelOptions{threads, true});
    expect_batch_case_matches(*int8_model);
  }
}

TEST(MarianGenerate, MinAndMaxNewTokensGiveExactLength) {
  REQUIRE_FIXTURE();
  auto input = tokenizer().encode("The cat is on the table.");
  for (int beams : {1, 4}) {
    GenerateOptions o = GenerateOptions::from_model(model());
    o.num_beams = beams;
    o.max_new_tokens = 32;
    o.min_new_tokens = 32;
    auto r = generate(model(), {input, tokenizer().encode("Hello")}, o);
    for (const auto& row : r) {
      EXPECT_EQ(row.ids.size(), 33u) << "beams " << beams;
      for (size_t t = 1; t + 1 < row.ids.size(); ++t) EXPECT_NE(row.ids[t], 0);
    }
  }
}

TEST(MarianTranslator, TranslatesTextsInAnyBatching) {
  REQUIRE_FIXTURE();
  MarianTranslatorOptions opts;
  opts.num_beams = 1;
  opts.max_batch_tokens = 16;  // forces several batches
  MarianTranslator t(tiny_fixture::dir(), opts);
  std::vector<std::string> src, want;
  for (const auto& cv : tiny_fixture::expected().at("cases").as_array()) {
    const auto& c = cv.as_object();
    if (c.at("greedy").at("kwargs").at("max_length").as_int64() != 64) continue;
    if (std::string(c.at("src").as_string()).empty()) continue;
    src.emplace_back(c.at("src").as_string());
    want.emplace_back(c.at("greedy").at("text").as_string());
  }
  opts.max_length = 64;
  MarianTranslator t64(tiny_fixture::dir(), opts);
  EXPECT_EQ(t64.translate(src), want);
  EXPECT_EQ(t.translate({"", "   "}), (std::vector<std::string>{"", ""}));
  EXPECT_EQ(t64.translate_lines("The cat is on the table.\n\nHello"),
            "El gato está en la mesa.\n\nHola.");
}

// ---- engine ----

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("marian_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  static int& counter() {
    static int c = 0;
    return c;
  }
};

fs::path copy_fixture(const fs::path& dest) {
  fs::create_directories(dest);
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors", "source.spm",
                        "target.spm", "vocab.json", "tokenizer_config.json"})
    fs::copy_file(tiny_fixture::dir() / f, dest / f);
  return dest;
}

TEST(MarianEngine, TranslatesThroughEngineInterface) {
  REQUIRE_FIXTURE();
  TempDir tmp;
  auto dir = copy_fixture(tmp.path / "opus-mt-en-es");
  transnotes::marian::MarianEngineOptions opts;
  opts.num_threads = 1;
  opts.num_beams = 4;
  opts.max_length = 64;
  transnotes::marian::MarianEngine engine(std::vector<fs::path>{dir}, opts);
  EXPECT_EQ(engine.name(), "marian");
  ASSERT_EQ(engine.pairs().size(), 1u);
  EXPECT_EQ(engine.pairs()[0].source, "en");
  EXPECT_EQ(engine.pairs()[0].target, "es");
  auto out = engine.translate_batch("en", "es", {"Hello", "The dog is on the table.", ""});
  EXPECT_EQ(out, (std::vector<std::string>{"Hola.", "El perro está en la mesa.", ""}));
  EXPECT_THROW(engine.translate_batch("en", "fr", {"Hello"}), transnotes::TranslationFailed);
}

TEST(MarianEngine, ConcurrentCallersShareOneModel) {
  REQUIRE_FIXTURE();
  TempDir tmp;
  auto dir = copy_fixture(tmp.path / "opus-mt-en-es");
  transnotes::marian::MarianEngineOptions opts;
  opts.num_threads = 1;
  opts.max_length = 64;
  transnotes::marian::MarianEngine engine(std::vector<fs::path>{dir}, opts);
  std::vector<std::vector<std::string>> inputs = {
      {"The cat is on the table.", "Hello"},
      {"Where is the train station?", "What time is it?", "Good morning!"},
      {"I have 2 cats and 1 dog."},
      {"My brother works in a hospital.", "The house has 4 rooms."}};
  std::vector<std::vector<std::string>> serial;
  for (const auto& in : inputs) serial.push_back(engine.translate_batch("en", "es", in));
  std::vector<std::vector<std::string>> parallel(inputs.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < inputs.size(); ++i)
    threads.emplace_back([&, i] {
      for (int round = 0; round < 5; ++round)
        parallel[i] = engine.translate_batch("en", "es", inputs[i]);
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(parallel, serial);
  EXPECT_EQ(serial[0][0], "El gato está en la mesa.");
}

TEST(MarianEngine, DiscoversModelFoldersAndHubCache) {
  REQUIRE_FIXTURE();
  TempDir tmp;
  copy_fixture(tmp.path / "models" / "opus-mt-en-es");
  fs::create_directories(tmp.path / "models" / "not-a-model");
  copy_fixture(tmp.path / "hub" / "models--Helsinki-NLP--opus-mt-es-en" / "snapshots" / "abc123");
  auto found = transnotes::marian::discover_marian_models(tmp.path / "models");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].pair.source, "en");
  auto hub = transnotes::marian::discover_marian_hub_models(tmp.path / "hub");
  ASSERT_EQ(hub.size(), 1u);
  EXPECT_EQ(hub[0].pair.source, "es");
  EXPECT_EQ(hub[0].dir.filename(), "abc123");
  EXPECT_FALSE(transnotes::marian::marian_pair_from_name("opus-mt-en-ROMANCE"));
  EXPECT_EQ(transnotes::marian::marian_pair_from_name("opus-mt-tc-big-en-fr")->target, "fr");
}

// ---- error handling ----

template <typename F>
std::string load_error(F&& f) {
  try {
    f();
  } catch (const ModelLoadError& e) {
    return e.what();
  }
  return "<no ModelLoadError>";
}

TEST(MarianErrors, MissingFiles) {
  REQUIRE_FIXTURE();
  for (const char* missing : {"config.json", "model.safetensors", "source.spm", "vocab.json"}) {
    TempDir tmp;
    auto dir = copy_fixture(tmp.path / "m");
    fs::remove(dir / missing);
    auto msg = load_error([&] { MarianTranslator t(dir); });
    EXPECT_NE(msg.find(missing), std::string::npos) << msg;
  }
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(MarianErrors, MalformedSafetensors) {
  REQUIRE_FIXTURE();
  TempDir tmp;
  auto dir = copy_fixture(tmp.path / "m");
  const auto original = read_bytes(dir / "model.safetensors");
  // Truncated inside the 8-byte header length.
  write_bytes(dir / "model.safetensors", original.substr(0, 5));
  EXPECT_NE(load_error([&] { MarianModel::load(dir); }).find("model.safetensors"),
            std::string::npos);
  // Truncated inside the JSON header.
  write_bytes(dir / "model.safetensors", original.substr(0, 100));
  EXPECT_NE(load_error([&] { MarianModel::load(dir); }).find("header"), std::string::npos);
  // Truncated data.
  write_bytes(dir / "model.safetensors", original.substr(0, original.size() - 1000));
  EXPECT_NE(load_error([&] { MarianModel::load(dir); }).find("truncated"), std::string::npos);
  // Garbage JSON of the right length.
  std::string bad = original;
  bad[8] = '#';
  write_bytes(dir / "model.safetensors", bad);
  EXPECT_NE(load_error([&] { MarianModel::load(dir); }).find("malformed"), std::string::npos);
}

TEST(MarianErrors, WrongTensorShapeNamesTensor) {
  REQUIRE_FIXTURE();
  TempDir tmp;
  auto dir = copy_fixture(tmp.path / "m");
  // A config claiming a larger FFN than the stored fc1 weights.
  auto cfg = json::parse(read_bytes(dir / "config.json")).as_object();
  cfg["encoder_ffn_dim"] = 256;
  write_bytes(dir / "config.json", json::serialize(cfg));
  auto msg = load_error([&] { MarianModel::load(dir); });
  EXPECT_NE(msg.find("model.encoder.layers.0.fc1.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[128, 64]"), std::string::npos) << msg;
}

TEST(MarianErrors, UnknownActivation) {
  REQUIRE_FIXTURE();
  TempDir tmp;
  auto dir = copy_fixture(tmp.path / "m");
  auto cfg = json::parse(read_bytes(dir / "config.json")).as_object();
  cfg["activation_function"] = "mystery";
  write_bytes(dir / "config.json", json::serialize(cfg));
  auto msg = load_error([&] { MarianModel::load(dir); });
  EXPECT_NE(msg.find("mystery"), std::string::npos) << msg;
  EXPECT_NE(msg.find("config.json"), std::string::npos) << msg;
}

TEST(MarianErrors, MalformedConfigJson) {
  REQUIRE_FIXTURE();
  TempDir tmp;
  auto dir = copy_fixture(tmp.path / "m");
  write_bytes(dir / "config.json", "{ not json");
  auto msg = load_error([&] { MarianModel::load(dir); });
  EXPECT_NE(msg.find("config.json"), std::string::npos) << msg;
}

}  // namespace

// ---- long segments and process-wide settings ----

namespace {

// The text a run of source pieces stands for (sentencepiece's "▁" is a space).
std::string text_of(const std::vector<std::string>& pieces) {
  std::string joined;
  for (const auto& piece : pieces) joined += piece;
  std::string text;
  const std::string space = "\xE2\x96\x81";
  for (size_t i = 0; i < joined.size();) {
    if (joined.compare(i, space.size(), space) == 0) {
      text += ' ';
      i += space.size();
    } else {
      text += joined[i++];
    }
  }
  return text.substr(text.find_first_not_of(' '));
}

}  // namespace

TEST(MarianTranslator, SplitSourcePiecesKeepsEveryPieceAndCutsAtWords) {
  const std::string w = "\xE2\x96\x81";  // word start
  const std::vector<std::string> pieces = {w + "The", w + "ca", "t",   w + "is", w + "on",
                                           w + "the", w + "ta", "ble", "s",      "."};
  // Fits (10 pieces + </s> = 11): one run, untouched.
  EXPECT_EQ(split_source_pieces(pieces, 11), std::vector<std::vector<std::string>>{pieces});
  // 7 pieces per run at most: the cut moves back before "▁ta" so that "▁ta ble s" stays whole.
  const auto runs = split_source_pieces(pieces, 8);
  EXPECT_EQ(runs, (std::vector<std::vector<std::string>>{
                      {w + "The", w + "ca", "t", w + "is", w + "on", w + "the"},
                      {w + "ta", "ble", "s", "."}}));
  std::vector<std::string> rejoined;
  for (const auto& run : split_source_pieces(pieces, 6)) {
    EXPECT_LE(run.size() + 1, 6u);
    EXPECT_EQ(run.front().rfind(w, 0), 0u) << run.front();
    rejoined.insert(rejoined.end(), run.begin(), run.end());
  }
  EXPECT_EQ(rejoined, pieces);
  // A word longer than a run is cut hard, still without losing a piece.
  const std::vector<std::string> long_word = {w + "a", "b", "c", "d", "e", "f", "g"};
  const auto hard = split_source_pieces(long_word, 4);
  EXPECT_EQ(hard,
            (std::vector<std::vector<std::string>>{{w + "a", "b", "c"}, {"d", "e", "f"}, {"g"}}));
  // A target-language token heads every run.
  const std::vector<std::string> coded = {">>es<<", w + "a", w + "b", w + "c", w + "d"};
  EXPECT_EQ(split_source_pieces(coded, 4),
            (std::vector<std::vector<std::string>>{{">>es<<", w + "a", w + "b"},
                                                   {">>es<<", w + "c", w + "d"}}));
  EXPECT_THROW(split_source_pieces(coded, 2), transnotes::TranslationFailed);
}

TEST(MarianTranslator, SegmentLongerThanThePositionTableIsSplitNotTruncated) {
  REQUIRE_FIXTURE();
  MarianTranslatorOptions opts;
  opts.num_beams = 1;
  MarianTranslator t(tiny_fixture::dir(), opts);
  const int positions = t.model().config().max_position_embeddings;  // 128 in the fixture
  std::string text;
  const char* words[] = {"the", "cat",     "is",    "on", "the", "table",   "and",
                         "my",  "brother", "works", "in", "a",   "hospital"};
  for (int i = 0; static_cast<int>(t.tokenizer().pieces(text).size()) < 2 * positions + 10; ++i)
    text += std::string(i ? " " : "") + words[i % std::size(words)];
  const auto runs = split_source_pieces(t.tokenizer().pieces(text), positions);
  ASSERT_EQ(runs.size(), 3u);
  std::vector<std::string> run_texts;
  for (const auto& run : runs) {
    run_texts.push_back(text_of(run));
    EXPECT_EQ(t.tokenizer().pieces(run_texts.back()), run);  // each run stands alone
  }
  // The whole text is translated: the runs' translations, joined by a space. Truncating at the
  // position table would have given the first run's translation alone.
  const auto parts = t.translate(run_texts);
  const std::string joined = parts[0] + " " + parts[1] + " " + parts[2];
  EXPECT_EQ(t.translate({text})[0], joined);
  EXPECT_FALSE(parts[2].empty());
  // In a batch with short texts, each text keeps its own result.
  const auto batch = t.translate({"Hello", text, "The cat is on the table."});
  EXPECT_EQ(batch[0], "Hola.");
  EXPECT_EQ(batch[1], joined);
  EXPECT_EQ(batch[2], t.translate({"The cat is on the table."})[0]);
}

TEST(MarianModel, LoadingLeavesProcessWideThreadsAlone) {
  REQUIRE_FIXTURE();
  struct RestoreOneThread {
    ~RestoreOneThread() { set_inference_threads(1); }
  } restore;
  set_inference_threads(1);
  for (const bool int8 : {false, true}) {
    auto model = MarianModel::load(tiny_fixture::dir(), ModelOptions{3, int8});
    EXPECT_EQ(openblas_get_num_threads(), 1) << "int8 " << int8;
    EXPECT_EQ(parallel_threads(), 1) << "int8 " << int8;
  }
  MarianTranslatorOptions three_threads;
  three_threads.model.num_threads = 3;
  MarianTranslator translator(tiny_fixture::dir(), three_threads);
  EXPECT_EQ(openblas_get_num_threads(), 1);
  EXPECT_EQ(parallel_threads(), 1);
  // The engine changes them only when its caller asks, through the option that says so.
  TempDir tmp;
  const auto dir = copy_fixture(tmp.path / "opus-mt-en-es");
  transnotes::marian::MarianEngine unset(std::vector<fs::path>{dir});
  EXPECT_EQ(openblas_get_num_threads(), 1);
  EXPECT_EQ(parallel_threads(), 1);
  transnotes::marian::MarianEngineOptions two;
  two.num_threads = 2;
  transnotes::marian::MarianEngine set(std::vector<fs::path>{dir}, two);
  EXPECT_EQ(openblas_get_num_threads(), 2);
  EXPECT_EQ(parallel_threads(), 2);
}
