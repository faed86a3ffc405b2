// Model discovery tests over real folder layouts: MODELS_DIR folders and a Hugging Face hub
// cache (snapshots of symlinks into blobs/), as huggingface_hub leaves it. Fetching models from a
// hub is tested with the command line (src/app/model_commands_test.cpp).
#include "marian/model_hub.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "marian/marian_engine.h"
#include "marian/tiny_fixture_test_support.h"

namespace transnotes::marian {
namespace {

namespace fs = std::filesystem;

const std::filesystem::path kFixtureDir = tiny_fixture::dir();

// Files of an OPUS-MT repository (no target_vocab.json).
const std::vector<std::string> kRepoFiles = {
    "config.json", "generation_config.json", "model.safetensors",      "source.spm", "target.spm",
    "vocab.json",  "tokenizer_config.json",  "special_tokens_map.json"};

void write_file(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

class ModelHubTest : public tiny_fixture::TempModelsTest {};

TEST_F(ModelHubTest, DiscoversHuggingFaceCacheLayout) {
  const fs::path hf_home = root_ / "hf";
  const fs::path repo = hf_home / "hub" / "models--Helsinki-NLP--opus-mt-en-es";
  // Real layout: snapshot files are symlinks into blobs/; refs/main names the revision.
  std::uint64_t total = 0;
  for (const auto& file : kRepoFiles) {
    const fs::path blob = repo / "blobs" / ("blob-" + file);
    fs::create_directories(blob.parent_path());
    fs::copy_file(kFixtureDir / file, blob);
    total += fs::file_size(blob);
    fs::create_directories(repo / "snapshots" / "rev2");
    fs::create_symlink(fs::path("..") / ".." / "blobs" / ("blob-" + file),
                       repo / "snapshots" / "rev2" / file);
  }
  fs::create_directories(repo / "snapshots" / "rev1");  // an older, emptier snapshot
  write_file(repo / "snapshots" / "rev1" / "config.json", "{}");
  write_file(repo / "refs" / "main", "rev2\n");
  // An incomplete Marian repo (no refs: newest snapshot is used) and a non-Marian repo.
  write_file(
      hf_home / "hub" / "models--Helsinki-NLP--opus-mt-de-en" / "snapshots" / "abc" / "config.json",
      R"({"model_type": "marian"})");
  write_file(hf_home / "hub" / "models--google-bert--bert-base-uncased" / "snapshots" / "x" /
                 "config.json",
             R"({"model_type": "bert"})");
  // A MODELS_DIR folder named freely but declared Marian in config.json, and unrelated clutter.
  write_file(models_dir_ / "my-model" / "config.json", R"({"model_type": "marian"})");
  write_file(models_dir_ / "notes" / "readme.txt", "not a model");
  write_file(models_dir_ / ".pull-opus-mt-xx-yy-abc" / "config.json", "{}");
  // A hub-layout repo copied into MODELS_DIR whose refs/main names a snapshot without weights:
  // the snapshot with weights is used (as MarianEngine does).
  const fs::path copied = models_dir_ / "models--Helsinki-NLP--opus-mt-fr-en";
  write_file(copied / "refs" / "main", "empty");
  write_file(copied / "snapshots" / "empty" / "README.md", "nothing here");
  write_file(copied / "snapshots" / "good" / "config.json", R"({"model_type": "marian"})");
  write_file(copied / "snapshots" / "good" / "model.safetensors", "x");

  const auto models = list_models(models_dir_, hf_home);
  ASSERT_EQ(models.size(), 4u);
  EXPECT_EQ(models.back().name, "Helsinki-NLP/opus-mt-en-es");  // MODELS_DIR entries first

  const ModelInfo copied_info = models[0];
  EXPECT_EQ(copied_info.name, "Helsinki-NLP/opus-mt-fr-en");
  EXPECT_EQ(copied_info.origin, ModelOrigin::kModelsDir);
  EXPECT_EQ(copied_info.revision, "good");
  EXPECT_EQ(copied_info.source_language, "fr");
  EXPECT_FALSE(copied_info.complete);
  const std::vector<ModelInfo> rest(models.begin() + 1, models.end());
  ASSERT_EQ(rest.size(), 3u);

  EXPECT_EQ(rest[0].name, "my-model");
  EXPECT_EQ(rest[0].origin, ModelOrigin::kModelsDir);
  EXPECT_FALSE(rest[0].complete);
  EXPECT_TRUE(rest[0].source_language.empty());

  EXPECT_EQ(rest[1].name, "Helsinki-NLP/opus-mt-de-en");
  EXPECT_EQ(rest[1].origin, ModelOrigin::kHfCache);
  EXPECT_EQ(rest[1].revision, "abc");
  EXPECT_EQ(rest[1].source_language, "de");
  EXPECT_EQ(rest[1].target_language, "en");
  EXPECT_FALSE(rest[1].complete);
  EXPECT_EQ(rest[1].missing_files, (std::vector<std::string>{"model.safetensors", "source.spm",
                                                             "target.spm", "vocab.json"}));

  EXPECT_EQ(rest[2].name, "Helsinki-NLP/opus-mt-en-es");
  EXPECT_EQ(rest[2].repo_id, "Helsinki-NLP/opus-mt-en-es");
  EXPECT_EQ(rest[2].origin, ModelOrigin::kHfCache);
  EXPECT_EQ(rest[2].revision, "rev2");
  EXPECT_EQ(rest[2].path, repo / "snapshots" / "rev2");
  EXPECT_EQ(rest[2].source_language, "en");
  EXPECT_EQ(rest[2].target_language, "es");
  EXPECT_TRUE(rest[2].complete);
  EXPECT_EQ(rest[2].size_bytes, total);  // symlinks followed
}

// ---- where models are looked for ----

// Sets (or, with nullptr, unsets) environment variables for one test and restores them.
class ScopedEnvironment {
 public:
  void set(const char* name, const char* value) {
    if (!saved_.count(name)) {
      const char* old = std::getenv(name);
      saved_[name] = old ? std::optional<std::string>(old) : std::nullopt;
    }
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnvironment() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

// A hub-cache snapshot of the fixture, as transformers leaves it.
fs::path cache_fixture(const fs::path& hub_cache) {
  const fs::path snapshot =
      hub_cache / "models--Helsinki-NLP--opus-mt-en-es" / "snapshots" / "rev1";
  fs::create_directories(snapshot);
  for (const auto& file : kRepoFiles) fs::copy_file(kFixtureDir / file, snapshot / file);
  write_file(hub_cache / "models--Helsinki-NLP--opus-mt-en-es" / "refs" / "main", "rev1");
  return snapshot;
}

TEST_F(ModelHubTest, ListAndEngineSearchTheSameHubCache) {
  ScopedEnvironment env;
  env.set("HF_HUB_CACHE", nullptr);
  env.set("HF_HOME", nullptr);
  struct Case {
    const char* variable;
    fs::path value;
    fs::path hub_cache;
  };
  // huggingface_hub's order: HF_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME/huggingface/hub,
  // ~/.cache/huggingface/hub.
  const std::vector<Case> cases = {
      {"HOME", root_ / "home", root_ / "home" / ".cache" / "huggingface" / "hub"},
      {"XDG_CACHE_HOME", root_ / "xdg", root_ / "xdg" / "huggingface" / "hub"},
      {"HF_HOME", root_ / "hf", root_ / "hf" / "hub"},
      {"HF_HUB_CACHE", root_ / "hub-cache", root_ / "hub-cache"},
  };
  env.set("XDG_CACHE_HOME", nullptr);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.variable);
    env.set(c.variable, c.value.c_str());
    const fs::path snapshot = cache_fixture(c.hub_cache);
    const ModelSearchDirs dirs = model_search_dirs(models_dir_);
    EXPECT_EQ(dirs.models_dir, models_dir_);
    EXPECT_EQ(dirs.hub_cache, c.hub_cache);

    const auto listed = list_models(dirs);
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0].path, snapshot);

    const auto served = discover_marian_models_default(models_dir_);
    ASSERT_EQ(served.size(), 1u);
    EXPECT_EQ(served[0].dir, snapshot);
    fs::remove_all(c.hub_cache);
  }
}

TEST(ModelNames, LanguagesFromName) {
  const auto plain = languages_from_model_name("Helsinki-NLP/opus-mt-en-es");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->source, "en");
  EXPECT_EQ(plain->target, "es");
  const auto big = languages_from_model_name("opus-mt-tc-big-en-pt");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->source, "en");
  EXPECT_EQ(big->target, "pt");
  EXPECT_FALSE(languages_from_model_name("bert-base-uncased"));
  EXPECT_FALSE(languages_from_model_name("Helsinki-NLP/opus-mt-en-ROMANCE"));
  EXPECT_FALSE(languages_from_model_name("opus-mt-en"));
  EXPECT_FALSE(languages_from_model_name("opus-mt-en-"));
}

}  // namespace
}  // namespace transnotes::marian
