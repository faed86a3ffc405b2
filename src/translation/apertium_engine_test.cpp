#include "translation/apertium_engine.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "domain/errors.h"
#include "translation/apertium_pipeline.h"
#include "translation/registry.h"

namespace transnotes::translation {
namespace {

namespace fs = std::filesystem;

const char* const kSystemModes = "/usr/share/apertium/modes";

bool apertium_installed() {
  return fs::exists(fs::path(kSystemModes) / "eng-spa.mode") &&
         fs::exists(fs::path(kSystemModes) / "spa-eng.mode") && fs::exists("/usr/bin/lt-proc");
}

#define REQUIRE_APERTIUM()                                                                      \
  if (!apertium_installed()) {                                                                  \
    GTEST_FAIL() << "apertium with eng-spa data is not installed (apt install apertium-en-es)"; \
  }

// A private modes directory with hand-written pipelines, for protocol tests without Apertium.
class ModesDir {
 public:
  ModesDir()
      : path_(fs::temp_directory_path() /
              ("transnotes-modes-" + std::to_string(getpid()) + "-" + std::to_string(counter_++))) {
    fs::create_directories(path_);
  }
  ~ModesDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  void write(const std::string& file, const std::string& content) {
    std::ofstream(path_ / file) << content << "\n";
  }
  std::string path() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

std::string translate_one(ApertiumEngine& engine, const std::string& from, const std::string& to,
                          const std::string& text) {
  const auto out = engine.translate_batch(from, to, {text});
  EXPECT_EQ(out.size(), 1u);
  return out.empty() ? "" : out[0];
}

TEST(ApertiumFormat, AddsNullFlushToEveryStage) {
  EXPECT_EQ(ApertiumEngine::null_flush_command(
                "lt-proc 'a|b.bin' | apertium-tagger -g $2 'x'\n|lt-proc -z $1 'g.bin'"),
            "lt-proc -z 'a|b.bin' | apertium-tagger -z -g $2 'x' | lt-proc -z $1 'g.bin'");
}

TEST(ApertiumFormat, EncodesAndDecodesStreamFormat) {
  EXPECT_EQ(ApertiumEngine::encode_segment("a [b] ^c$ @d\te\\"),
            "a \\[b\\] \\^c\\$ \\@d[\t]e\\\\.[]");
  EXPECT_EQ(ApertiumEngine::encode_segment(std::string("x\0y", 3)), "xy.[]");
  EXPECT_EQ(ApertiumEngine::decode_segment("Un \\[b\\] \\@d[\t]e\\\\ @palabra.[]"),
            "Un [b] @d\te\\ palabra");
  EXPECT_EQ(ApertiumEngine::decode_segment(" Hola Mundo..[]"), "Hola Mundo.");
}

TEST(ApertiumEngineDiscovery, ReadsModeFilesAndSkipsVariants) {
  ModesDir modes;
  modes.write("eng-spa.mode", "sed -u s/x/y/");
  modes.write("spa-eng_US.mode", "sed -u s/x/y/");
  modes.write("cat-ast.mode", "sed -u s/x/y/");
  modes.write("README", "not a mode");
  ApertiumEngine engine(ApertiumOptions{.modes_dir = modes.path()});
  std::vector<std::string> found;
  for (const auto& pair : engine.pairs()) found.push_back(pair.source + ">" + pair.target);
  std::sort(found.begin(), found.end());
  EXPECT_EQ(found, (std::vector<std::string>{"ca>ast", "en>es"}));
  EXPECT_TRUE(ApertiumEngine(ApertiumOptions{.modes_dir = "/nonexistent/modes"}).pairs().empty());
}

TEST(ApertiumEngineProtocol, TalksNullFlushToAFakePipeline) {
  ModesDir modes;
  modes.write("eng-spa.mode", "sed -u s/Hello/Hola/");  // sed gets -z: NUL-delimited records
  ApertiumEngine engine(ApertiumOptions{.modes_dir = modes.path(), .pipelines_per_pair = 1});
  EXPECT_EQ(engine.translate_batch("en", "es", {"Hello [you].", "Hello@x", "  "}),
            (std::vector<std::string>{"Hola [you].", "Hola@x", "  "}));
  const std::string big(200000, 'a');  // larger than pipe buffers both ways
  EXPECT_EQ(translate_one(engine, "en", "es", big), big);
  EXPECT_THROW(engine.translate_batch("en", "fr", {"x"}), TranslationFailed);
}

TEST(ApertiumEngineProtocol, SendsTheWholeBatchBeforeWaitingForAnAnswer) {
  ModesDir modes;
  // Answers nothing until it holds three blocks, then all three: a batch sent one block at a
  // time, each waiting for its answer, would time out.
  modes.write("eng-spa.mode", "sed -u 'N;N;s/\\n/\\x00/g;s/Hello/Hola/g'");
  ApertiumEngine engine(ApertiumOptions{.modes_dir = modes.path(),
                                        .pipelines_per_pair = 1,
                                        .segment_timeout = std::chrono::seconds(10)});
  EXPECT_EQ(engine.translate_batch("en", "es", {"Hello a", " ", "Hello b", "c"}),
            (std::vector<std::string>{"Hola a", " ", "Hola b", "c"}));
}

TEST(ApertiumEngineProtocol, PipelineDyingMidBatchResendsOnlyWhatIsUnanswered) {
  ModesDir modes;
  // Each pipeline answers two blocks, then exits: five segments need three pipelines, and every
  // answer must land at its own segment.
  modes.write("eng-spa.mode", "sed -u 's/^/t-/;2q'");
  ApertiumEngine engine(ApertiumOptions{.modes_dir = modes.path(), .pipelines_per_pair = 1});
  EXPECT_EQ(engine.translate_batch("en", "es", {"a", "b", "", "c", "d", "e"}),
            (std::vector<std::string>{"t-a", "t-b", "", "t-c", "t-d", "t-e"}));
}

TEST(ApertiumEngineProtocol, BlockFailingTwiceEndsTheBatch) {
  ModesDir modes;
  // Answers the first block of each pipeline, then exits before answering the second.
  modes.write("eng-spa.mode", "sed -u 1q");
  ApertiumEngine engine(ApertiumOptions{.modes_dir = modes.path(), .pipelines_per_pair = 1});
  EXPECT_EQ(engine.translate_batch("en", "es", {"a", "b"}), (std::vector<std::string>{"a", "b"}));
  ModesDir dying;
  dying.write("eng-spa.mode", "sed -u /^b/Q");  // exits unanswered at block "b", every time
  ApertiumEngine failing(ApertiumOptions{.modes_dir = dying.path(), .pipelines_per_pair = 1});
  EXPECT_THROW(failing.translate_batch("en", "es", {"a", "b", "c"}), TranslationFailed);
}

TEST(ApertiumEngineProtocol, HungPipelineTimesOutAndFails) {
  ModesDir modes;
  modes.write("eng-spa.mode", "tail -z -f /dev/null");  // never answers
  ApertiumEngine engine(ApertiumOptions{.modes_dir = modes.path(),
                                        .segment_timeout = std::chrono::milliseconds(200)});
  EXPECT_THROW(engine.translate_batch("en", "es", {"Hello."}), TranslationFailed);
}

TEST(ApertiumEngineProtocol, BrokenPipelineFailsWithoutKillingTheProcess) {
  ModesDir modes;
  modes.write("eng-spa.mode", "false");  // exits at once: EOF / EPIPE
  ApertiumEngine engine(ApertiumOptions{.modes_dir = modes.path()});
  const std::string big(300000, 'b');  // the write hits a closed pipe: SIGPIPE must not kill us
  EXPECT_THROW(engine.translate_batch("en", "es", {big}), TranslationFailed);
  EXPECT_THROW(engine.translate_batch("en", "es", {"x"}), TranslationFailed);
}

TEST(ApertiumEngineReal, DiscoversInstalledPairs) {
  REQUIRE_APERTIUM();
  ApertiumEngine engine;
  bool en_es = false;
  bool es_en = false;
  for (const auto& pair : engine.pairs()) {
    en_es |= pair.source == "en" && pair.target == "es";
    es_en |= pair.source == "es" && pair.target == "en";
    EXPECT_EQ(pair.target.find('_'), std::string::npos);
  }
  EXPECT_TRUE(en_es);
  EXPECT_TRUE(es_en);
}

TEST(ApertiumEngineReal, TranslatesBothDirections) {
  REQUIRE_APERTIUM();
  ApertiumEngine engine;
  EXPECT_EQ(translate_one(engine, "en", "es", "Hello world."), "Hola Mundo.");
  EXPECT_EQ(engine.translate_batch("en", "es", {"The cat is black.", "I like dogs."}),
            (std::vector<std::string>{"El gato es negro.", "Me gustan los perros."}));
  EXPECT_EQ(translate_one(engine, "es", "en", "El gato es negro."), "The cat is black.");
  // Same output as `apertium -u eng-spa`; unknown words unmarked, special characters kept.
  EXPECT_EQ(translate_one(engine, "en", "es", "I like xyzzyq dogs."), "Me gusta xyzzyq perros.");
  EXPECT_EQ(translate_one(engine, "en", "es", "Hello [world] ^$ @me"), "Hola [Mundial] ^$ @me");
}

TEST(ApertiumEngineReal, RegistryKeepsParagraphBreaks) {
  REQUIRE_APERTIUM();
  EngineRegistry registry;
  registry.add(std::make_shared<ApertiumEngine>());
  const TranslationOutput out =
      registry.translate("EN", "es-ES", "Hello world. The cat is black.\n\nI like dogs.\r\n");
  EXPECT_EQ(out.engine, "apertium");
  EXPECT_EQ(out.text, "Hola Mundo. El gato es negro.\n\nMe gustan los perros.\r\n");
}

TEST(ApertiumEngineReal, ConcurrentTranslationsShareAPool) {
  REQUIRE_APERTIUM();
  ApertiumEngine engine(ApertiumOptions{.pipelines_per_pair = 3});
  const std::vector<std::string> input = {"Hello world.", "The cat is black."};
  const std::vector<std::string> expected = engine.translate_batch("en", "es", input);
  std::vector<std::vector<std::string>> results(20);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] {
      try {
        results[i] = engine.translate_batch("en", "es", input);
      } catch (const std::exception& error) {
        results[i] = {error.what()};
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& result : results) EXPECT_EQ(result, expected);
  EXPECT_LE(engine.idle_pipeline_groups("en", "es").size(), 3u);
}

TEST(ApertiumEngineReal, ConcurrentBatchesMatchOneSegmentAtATimeInOrder) {
  REQUIRE_APERTIUM();
  const std::vector<std::string> sentences = {"Hello world.",           "The cat is black.",
                                              "I like dogs.",           "We eat bread at home.",
                                              "The house is very big.", "She reads a book.",
                                              "They live in the city.", "My brother works today."};
  ApertiumEngine engine(ApertiumOptions{.pipelines_per_pair = 2});
  std::vector<std::string> one_at_a_time;
  for (const auto& sentence : sentences) {
    one_at_a_time.push_back(translate_one(engine, "en", "es", sentence));
  }
  // Each thread sends the sentences rotated by its index, so neighbouring answers differ.
  const auto rotated = [](std::vector<std::string> items, std::size_t by) {
    std::rotate(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(by % items.size()),
                items.end());
    return items;
  };
  std::vector<std::vector<std::string>> results(12);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] {
      try {
        results[i] = engine.translate_batch("en", "es", rotated(sentences, i));
      } catch (const std::exception& error) {
        results[i] = {error.what()};
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (std::size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i], rotated(one_at_a_time, i)) << "thread " << i;
  }
}

TEST(ApertiumEngineReal, KilledPipelineIsRestartedTransparently) {
  REQUIRE_APERTIUM();
  ApertiumEngine engine(ApertiumOptions{.pipelines_per_pair = 1});
  ASSERT_EQ(translate_one(engine, "en", "es", "Hello world."), "Hola Mundo.");
  const auto groups = engine.idle_pipeline_groups("en", "es");
  ASSERT_EQ(groups.size(), 1u);
  ASSERT_EQ(::kill(-groups[0], SIGKILL), 0);
  EXPECT_EQ(translate_one(engine, "en", "es", "Hello world."), "Hola Mundo.");
  const auto restarted = engine.idle_pipeline_groups("en", "es");
  ASSERT_EQ(restarted.size(), 1u);
  EXPECT_NE(restarted[0], groups[0]);
}

// A process whose parent is this test process, as /proc tells it.
struct ChildProcess {
  pid_t pid = 0;
  char state = '?';  // 'Z': exited, never reaped (<defunct>)
  pid_t group = 0;
  std::string command;
};

std::vector<ChildProcess> children_of_this_process() {
  std::vector<ChildProcess> children;
  std::error_code error;
  for (fs::directory_iterator it("/proc", error), end; !error && it != end; it.increment(error)) {
    std::ifstream file(it->path() / "stat");
    std::string stat;
    if (!std::getline(file, stat)) continue;  // gone meanwhile, or not a process
    // "pid (command) state ppid pgrp ...": the command may hold spaces and parentheses.
    const auto open = stat.find('(');
    const auto close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    ChildProcess child;
    pid_t parent = 0;
    std::istringstream rest(stat.substr(close + 1));
    rest >> child.state >> parent >> child.group;
    if (!rest || parent != getpid()) continue;
    child.pid = static_cast<pid_t>(std::stol(stat.substr(0, open)));
    child.command = stat.substr(open + 1, close - open - 1);
    children.push_back(child);
  }
  return children;
}

std::string describe(const std::vector<ChildProcess>& children) {
  std::string text;
  for (const auto& child : children) {
    text += std::to_string(child.pid) + " " + child.command + " state " + child.state + "; ";
  }
  return text;
}

// While alive, this process adopts orphaned descendants the way PID 1 in a container does, so
// stages a pipeline leaves behind show up as its children (<defunct> once dead).
class ActsAsInit {
 public:
  ActsAsInit() { EXPECT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0); }
  ~ActsAsInit() { ::prctl(PR_SET_CHILD_SUBREAPER, 0); }
};

// Waits until the test process has at least `count` children, as a pipeline that started its
// stages has.
bool wait_for_children(std::size_t count) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    if (children_of_this_process().size() >= count) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

TEST(ApertiumPipelineReaping, StoppedPipelineLeavesNoChildBehind) {
  ActsAsInit init;
  ASSERT_TRUE(children_of_this_process().empty()) << describe(children_of_this_process());
  {
    ApertiumPipeline pipeline("cat | cat | cat", "-n");
    EXPECT_EQ(pipeline.exchange("hello", std::chrono::seconds(30)), "hello");  // stages all up
  }
  const auto left = children_of_this_process();
  EXPECT_TRUE(left.empty()) << "left behind: " << describe(left);
}

TEST(ApertiumPipelineReaping, KilledPipelineLeavesNoZombie) {
  ActsAsInit init;
  ApertiumPipeline pipeline("cat | sleep 600 | cat", "-n");
  ASSERT_TRUE(wait_for_children(1));
  // Someone kills the whole pipeline from outside; the engine notices and discards it.
  ASSERT_EQ(::kill(-pipeline.process_group(), SIGKILL), 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (pipeline.alive() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_FALSE(pipeline.alive());
  const auto left = children_of_this_process();
  EXPECT_TRUE(left.empty()) << "left behind: " << describe(left);
}

TEST(ApertiumEngineProtocol, HungPipelineLeavesNoZombies) {
  ActsAsInit init;
  ModesDir modes;
  modes.write("eng-spa.mode", "cat | tail -z -f /dev/null");  // never answers: killed twice
  {
    ApertiumEngine engine(ApertiumOptions{.modes_dir = modes.path(),
                                          .segment_timeout = std::chrono::milliseconds(100)});
    EXPECT_THROW(engine.translate_batch("en", "es", {"x"}), TranslationFailed);
    const auto left = children_of_this_process();
    EXPECT_TRUE(left.empty()) << "left behind: " << describe(left);
  }
}

TEST(ApertiumEngineProtocol, AbandonEndsAStuckTranslationAtOnce) {
  ActsAsInit init;
  ModesDir modes;
  modes.write("eng-spa.mode", "cat | tail -z -f /dev/null");  // never answers
  ApertiumEngine engine(
      ApertiumOptions{.modes_dir = modes.path(), .segment_timeout = std::chrono::minutes(10)});
  std::string outcome;
  std::thread translating([&] {
    try {
      engine.translate_batch("en", "es", {"Hello."});
      outcome = "translated";
    } catch (const TranslationFailed& error) {
      outcome = error.what();
    }
  });
  ASSERT_TRUE(wait_for_children(1));  // the pipeline is up and the segment sent or on its way
  const auto began = std::chrono::steady_clock::now();
  engine.abandon();
  translating.join();
  EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(5));
  EXPECT_NE(outcome.find("abandoned"), std::string::npos) << outcome;
  EXPECT_THROW(engine.translate_batch("en", "es", {"Hello."}), TranslationFailed);
  const auto left = children_of_this_process();
  EXPECT_TRUE(left.empty()) << "left behind: " << describe(left);
}

TEST(EngineRegistryAbandon, ReachesEveryEngine) {
  ModesDir modes;
  modes.write("eng-spa.mode", "sed -u s/Hello/Hola/");
  auto engine = std::make_shared<ApertiumEngine>(ApertiumOptions{.modes_dir = modes.path()});
  EngineRegistry registry;
  registry.add(engine);
  EXPECT_EQ(registry.translate("en", "es", "Hello.").text, "Hola.");
  registry.abandon();
  EXPECT_THROW(registry.translate("en", "es", "Hello."), TranslationFailed);
}

}  // namespace
}  // namespace transnotes::translation
