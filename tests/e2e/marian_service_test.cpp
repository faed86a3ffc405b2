// The service and the CLI translating through a real MarianMT checkpoint (the Hugging Face
// fixture in tests/fixtures), found through MODELS_DIR like any installed model.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "e2e/harness.h"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

const fs::path kFixture =
    fs::path(TRANSNOTES_SOURCE_DIR) / "tests" / "fixtures" / "marian" / "tiny-en-es";

// A MODELS_DIR holding the fixture as opus-mt-en-es, the way `models pull` lays it out.
std::string make_models_dir() {
  fs::path dir = e2e::make_temp_dir("transnotes-models");
  fs::copy(kFixture, dir / "opus-mt-en-es", fs::copy_options::recursive);
  return dir.string();
}

json::value load_expected() {
  std::ifstream in(kFixture / "expected.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

TEST(MarianService, TranslatesANoteThroughTheModel) {
  ASSERT_TRUE(fs::exists(kFixture / "model.safetensors")) << "fixture not found at " << kFixture;
  e2e::ServiceOptions options;
  options.env["MODELS_DIR"] = make_models_dir();
  options.env["TRANSNOTES_ENGINES"] = "marian,apertium";
  options.args = {"--workers", "1"};
  e2e::Service service(options);
  auto note = e2e::request(
      service.port(), "POST", "/api/v1/notes/",
      R"({"title": "cat", "original_text": "The cat is on the table.\n\nThe dog is on the table."})");
  ASSERT_EQ(note.status, 201);
  auto id = note.json().at("id").as_int64();
  auto res =
      e2e::request(service.port(), "POST", "/api/v1/notes/" + std::to_string(id) + "/translate/",
                   R"({"target_language": "es"})");
  ASSERT_EQ(res.status, 202) << res.body;
  EXPECT_EQ(res.json().at("translation").at("engine"), "marian");
  auto job = e2e::wait_for_job(service.port(), res.json().at("translation").at("id").as_int64());
  ASSERT_EQ(job["status"], "succeeded") << json::serialize(job) << service.log();
  EXPECT_EQ(job["engine"], "marian");
  EXPECT_EQ(job["text"], "El gato está en la mesa.\n\nEl perro está en la mesa.");
  // The worker's figures count the model's tokens and its weights. It counts the attempt just
  // after storing its outcome, so a scrape can come just before that.
  const std::string attempts =
      "transnotes_translation_attempts_total{engine=\"marian\",outcome=\"succeeded\","
      "pair=\"en-es\"} ";
  std::string metrics;
  for (int i = 0; i < 100; ++i) {
    metrics = e2e::request(service.port(), "GET", "/metrics").body;
    if (metrics.find(attempts) != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const auto number_after = [&metrics](const std::string& series) -> double {
    const auto at = metrics.find("\n" + series + " ");
    return at == std::string::npos ? -1 : std::stod(metrics.substr(at + series.size() + 2));
  };
  EXPECT_GT(number_after("transnotes_translated_tokens_total{engine=\"marian\"}"), 0) << metrics;
  EXPECT_GT(number_after("transnotes_engine_model_bytes{engine=\"marian\"}"), 0) << metrics;
  EXPECT_EQ(number_after(attempts.substr(0, attempts.size() - 1)), 1) << metrics;
  // Apertium still serves the pair the model does not cover.
  auto languages = e2e::request(service.port(), "GET", "/api/v1/languages/").body;
  EXPECT_NE(languages.find("marian"), std::string::npos) << languages;
  EXPECT_NE(languages.find("apertium"), std::string::npos) << languages;
}

// Copies the fixture to `dir` with one vocab.json id set far outside the vocabulary (it used to
// become a negative index and crash the process).
void write_model_with_bad_vocab_id(const fs::path& dir) {
  fs::copy(kFixture, dir, fs::copy_options::recursive);
  std::ifstream in(dir / "vocab.json");
  std::stringstream ss;
  ss << in.rdbuf();
  auto vocab = json::parse(ss.str()).as_object();
  vocab.begin()->value() = 4294967295LL;
  std::ofstream(dir / "vocab.json", std::ios::trunc) << json::serialize(vocab);
}

TEST(MarianService, AnInvalidModelIsLoggedAndLeftOutWhileTheOthersServe) {
  e2e::ServiceOptions options;
  std::string models = make_models_dir();
  write_model_with_bad_vocab_id(fs::path(models) / "opus-mt-es-en");
  options.env["MODELS_DIR"] = models;
  options.env["TRANSNOTES_ENGINES"] = "marian";
  options.args = {"--workers", "0"};
  e2e::Service service(options);
  auto languages = e2e::request(service.port(), "GET", "/api/v1/languages/");
  ASSERT_EQ(languages.status, 200);
  EXPECT_NE(languages.body.find(R"("en")"), std::string::npos) << languages.body;
  const std::string log = service.log();
  const auto named = log.find("opus-mt-es-en/vocab.json");
  ASSERT_NE(named, std::string::npos) << log;
  EXPECT_NE(log.find("4294967295", named), std::string::npos) << log;
}

TEST(MarianCli, AnInvalidModelNamedOnTheCommandLineFailsWithOneClearLine) {
  fs::path dir = fs::path(e2e::make_temp_dir("transnotes-bad-model")) / "opus-mt-en-es";
  write_model_with_bad_vocab_id(dir);
  std::string command = "echo 'Hello.' | " + std::string(TRANSNOTES_BINARY) +
                        " translate --from en --to es --model " + dir.string() + " 2>&1";
  const auto [exit_code, output] = e2e::run_command(command);
  EXPECT_EQ(exit_code, 1) << output;  // a clean refusal, not a crash (-1)
  EXPECT_NE(output.find("vocab.json"), std::string::npos) << output;
  EXPECT_NE(output.find("4294967295"), std::string::npos) << output;
}

TEST(MarianCli, LinesModeMatchesTransformersGenerate) {
  ASSERT_TRUE(fs::exists(kFixture / "model.safetensors")) << "fixture not found at " << kFixture;
  auto expected = load_expected();
  std::string input;
  std::vector<std::string> greedy;
  for (const auto& c : expected.at("cases").as_array()) {
    const auto& kwargs = c.at("greedy").at("kwargs").as_object();
    if (kwargs.at("max_length").as_int64() != 64) continue;  // cases with their own max_length
    std::string src(c.at("src").as_string());
    if (src.find('\n') != std::string::npos || src.empty()) continue;
    input += src + "\n";
    greedy.emplace_back(c.at("greedy").at("text").as_string());
  }
  ASSERT_GT(greedy.size(), 5u);
  fs::path in_file = fs::path(e2e::make_temp_dir("transnotes-cli")) / "in.txt";
  std::ofstream(in_file) << input;
  const fs::path log_file = in_file.parent_path() / "log.txt";
  // float32 (greedy tokens through the int8 screen on CPUs with VNNI: the same outputs), and
  // int8 (the fixture's greedy outputs are unchanged by it, as the engine's oracle tests check).
  for (const std::string flags : {"", " --marian-int8"}) {
    SCOPED_TRACE("flags:" + flags);
    std::string command = "LOG_LEVEL=info " + std::string(TRANSNOTES_BINARY) +
                          " translate --from en --to es --model " + kFixture.string() +
                          " --beams 1 --lines" + flags + " < " + in_file.string() + " 2> " +
                          log_file.string();
    const auto [exit_code, output] = e2e::run_command(command);
    ASSERT_EQ(exit_code, 0) << output;
    std::vector<std::string> lines;
    std::stringstream ss(output);
    std::string line;
    while (std::getline(ss, line)) lines.push_back(line);
    EXPECT_EQ(lines, greedy);
    std::ifstream log(log_file);
    const std::string logged((std::istreambuf_iterator<char>(log)), {});
    EXPECT_NE(logged.find(flags.empty() ? "(float32" : "(int8)"), std::string::npos) << logged;
  }
}

}  // namespace
