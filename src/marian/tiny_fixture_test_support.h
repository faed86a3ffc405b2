// Tests only: where the tiny-en-es MarianMT fixture lives in the repository and its oracle outputs
// (expected.json, produced by Hugging Face transformers itself). Needs TRANSNOTES_SOURCE_DIR, which
// the build defines for every test executable.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace transnotes::marian::tiny_fixture {

inline std::filesystem::path dir() {
  return std::filesystem::path(TRANSNOTES_SOURCE_DIR) / "tests" / "fixtures" / "marian" /
         "tiny-en-es";
}

// Parsed once per test process.
inline const boost::json::object& expected() {
  static const boost::json::object root = [] {
    std::ifstream in(dir() / "expected.json");
    std::stringstream text;
    text << in.rdbuf();
    return boost::json::parse(text.str()).as_object();
  }();
  return root;
}

// A test with a fresh temporary folder (root_, removed afterwards) and a models folder path in it
// (models_dir_, not created), for tests that lay out or pull models. Fails when the fixture is
// missing.
class TempModelsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::is_regular_file(dir() / "model.safetensors"))
        << "MarianMT fixture not found at " << dir();
    std::string pattern =
        (std::filesystem::temp_directory_path() / "transnotes-models-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    models_dir_ = root_ / "models";
  }
  void TearDown() override {
    if (!root_.empty()) std::filesystem::remove_all(root_);
  }

  std::filesystem::path root_;
  std::filesystem::path models_dir_;
};

}  // namespace transnotes::marian::tiny_fixture
