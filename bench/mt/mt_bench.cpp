// mt_bench: throughput of the native MarianMT engine on an OPUS-MT-base shaped checkpoint
// (see make_checkpoint.cpp), with the same protocol as the Hugging Face transformers reference
// numbers in README.md. A benchmark, not a test: it asserts nothing and is never run by CTest.
//
// Inputs: 32 rows of 24 seeded random ids in [2, 58099] followed by </s> (25 source tokens).
// Every output has exactly 32 new tokens: max_new_tokens = min_new_tokens = 32 (EOS suppressed
// until then; the checkpoint's bad_words_ids forbid <pad>). Scenarios:
//   encoder  encoder only, batch 32                  -> source tokens/s
//   a        batch 32, beam 4                        -> target tokens/s
//   b        batch 32, greedy
//   c        batch 1, greedy, 16 inputs one by one
//   d        batch 1, beam 4, 16 inputs one by one
// Target tokens/s = sequences x 32 / wall seconds; median of --runs runs after one warm-up.
// Also reports load time, RSS (VmRSS after load, VmHWM at the end of the scenarios) and the
// machine's limits measured in the same process (OpenBLAS sgemm, memcpy and triad bandwidth).
#include <cblas.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "marian/argmax_screen.h"
#include "marian/generate.h"
#include "marian/model.h"
#include "marian/parallel.h"

namespace {

using Clock = std::chrono::steady_clock;
using transnotes::marian::GenerateOptions;
using transnotes::marian::MarianModel;

constexpr int kSourceIds = 24;     // random ids per row, then </s>
constexpr int kNewTokens = 32;     // generated per sequence
constexpr int kBatch = 32;         // rows in the batched scenarios
constexpr int kSingleInputs = 16;  // rows fed one by one in (c) and (d)

double seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Timing {
  double median = 0, min = 0, max = 0;
};

// One untimed warm-up, then `runs` timed runs.
Timing time_runs(int runs, const std::function<void()>& body) {
  body();
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) {
    const auto start = Clock::now();
    body();
    t.push_back(seconds(start));
  }
  std::sort(t.begin(), t.end());
  const size_t n = t.size();
  const double median = n % 2 == 1 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
  return Timing{median, t.front(), t.back()};
}

// A field of /proc/self/status in kB ("VmRSS", "VmHWM"); -1 when unavailable.
long proc_status_kb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

std::string mb(long kb) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(0) << kb / 1024.0 << " MB";
  return out.str();
}

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

struct Row {
  std::string scenario;
  std::string work;
  Timing timing;
  double throughput = 0;
  std::string unit;
  std::string note;
};

// Checks the exactly-32-new-tokens protocol; returns "" or a warning.
std::string check_lengths(const std::vector<transnotes::marian::GenerateResult>& results) {
  size_t shortest = SIZE_MAX, longest = 0;
  for (const auto& r : results) {
    const size_t generated = r.ids.empty() ? 0 : r.ids.size() - 1;  // minus the start token
    shortest = std::min(shortest, generated);
    longest = std::max(longest, generated);
  }
  if (shortest == static_cast<size_t>(kNewTokens) && longest == static_cast<size_t>(kNewTokens)) {
    return "";
  }
  return "WARNING: outputs had " + std::to_string(shortest) + ".." + std::to_string(longest) +
         " new tokens, not " + std::to_string(kNewTokens);
}

double sgemm_gflops(int m, int n, int k) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> a(static_cast<size_t>(m) * k), b(static_cast<size_t>(k) * n),
      c(static_cast<size_t>(m) * n);
  for (auto& v : a) v = dist(rng);
  for (auto& v : b) v = dist(rng);
  const Timing t = time_runs(10, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a.data(), k, b.data(), n,
                0.0f, c.data(), n);
  });
  return 2.0 * m * n * k / t.median / 1e9;
}

// Single-threaded memcpy of a 256 MiB buffer: bytes copied per second (each byte read + written).
double memcpy_gbs() {
  const size_t bytes = size_t{256} << 20;
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  const Timing t = time_runs(5, [&] { std::memcpy(dst.data(), src.data(), bytes); });
  return bytes / t.median / 1e9;
}

// STREAM-style triad a[i] = b[i] + s * c[i] over 3 x 128 MiB of floats on `threads` threads;
// counts 12 bytes per element (2 reads + 1 write, no write-allocate traffic).
double triad_gbs(int threads) {
  const size_t n = size_t{32} << 20;
  std::vector<float> a(n, 0.0f), b(n, 1.0f), c(n, 2.0f);
  const float s = 3.0f;
  const Timing t = time_runs(5, [&] {
    std::vector<std::thread> workers;
    for (int w = 0; w < threads; ++w) {
      workers.emplace_back([&, w] {
        const size_t begin = n * w / threads, end = n * (w + 1) / threads;
        for (size_t i = begin; i < end; ++i) a[i] = b[i] + s * c[i];
      });
    }
    for (auto& worker : workers) worker.join();
  });
  return 12.0 * n / t.median / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"MarianMT engine throughput benchmark (see bench/mt/README.md)"};
  std::string model_dir;
  int threads = 2;
  int runs = 3;
  bool int8 = false;
  bool limits = true;
  unsigned seed = 1234;
  std::vector<std::string> scenarios = {"encoder", "a", "b", "c", "d"};
  app.add_option("--model", model_dir, "checkpoint folder (bench/mt/make_checkpoint output)")
      ->required();
  app.add_option("--threads", threads, "OpenBLAS threads = threads in total")
      ->capture_default_str();
  app.add_option("--runs", runs, "timed runs per scenario (after one warm-up)")
      ->capture_default_str();
  app.add_option("--scenarios", scenarios, "subset of encoder,a,b,c,d")->delimiter(',');
  app.add_flag("--int8", int8, "int8 linear weights (engine option)");
  bool screen = true, compare_screen = true;
  app.add_flag("!--no-screen", screen, "fp32 greedy: compute every logit (engine option)");
  app.add_flag("!--no-screen-compare", compare_screen,
               "skip re-running (b)/(c) without the greedy screen after the RSS figures");
  app.add_flag("!--no-limits", limits, "skip the sgemm / memory bandwidth measurements");
  app.add_option("--seed", seed, "seed of the random input ids")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (runs < 1 || threads < 1) {
    std::cerr << "--runs and --threads must be >= 1\n";
    return 2;
  }
  const auto wants = [&](const std::string& name) {
    return std::find(scenarios.begin(), scenarios.end(), name) != scenarios.end();
  };

  const std::time_t now = std::time(nullptr);
  char date[64];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  std::cout << "# mt_bench " << date << "\n"
            << "model: " << model_dir << "\nthreads: " << threads << "  runs: " << runs
            << " (median after 1 warm-up)  int8: " << (int8 ? "yes" : "no")
            << "  greedy screen: " << (screen && !int8 ? "on" : "off") << "\n"
            << "cpu: " << cpu_model() << "  online cpus: " << std::thread::hardware_concurrency()
            << "  loadavg at start: " << read_first_line("/proc/loadavg") << "\n\n";

  transnotes::marian::set_inference_threads(threads);
  transnotes::marian::ModelOptions model_options;
  model_options.num_threads = threads;
  model_options.int8 = int8;
  model_options.greedy_screen = screen;
  const auto load_start = Clock::now();
  std::shared_ptr<const MarianModel> model;
  try {
    model = MarianModel::load(model_dir, model_options);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  const double load_seconds = seconds(load_start);
  const long rss_after_load = proc_status_kb("VmRSS");
  const long peak_rss_load = proc_status_kb("VmHWM");  // e.g. int8 packing's transient pages
  const auto& config = model->config();
  // The engine maps model.safetensors lazily: the first generate() pages every weight in (the
  // output projection reads the whole embedding), so "load + first token" is what compares
  // with an eager loader such as transformers' from_pretrained.
  double first_token_seconds = 0;
  long rss_after_first_token = 0;
  {
    GenerateOptions one_token = GenerateOptions::from_model(*model);
    one_token.num_beams = 1;
    one_token.max_new_tokens = 1;
    const auto start = Clock::now();
    generate(*model, {{config.eos_token_id}}, one_token);
    first_token_seconds = seconds(start);
    rss_after_first_token = proc_status_kb("VmRSS");
  }

  // Inputs: kBatch rows of kSourceIds random ids (never </s>, <unk> or <pad>) + </s>.
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> id_dist(2, config.pad_token_id - 1);
  std::vector<std::vector<int>> inputs(kBatch);
  for (auto& row : inputs) {
    for (int i = 0; i < kSourceIds; ++i) row.push_back(id_dist(rng));
    row.push_back(config.eos_token_id);
  }
  const std::vector<std::vector<int>> singles(inputs.begin(), inputs.begin() + kSingleInputs);

  auto options_for = [&](int beams) {
    GenerateOptions options = GenerateOptions::from_model(*model);
    options.num_beams = beams;
    options.max_new_tokens = kNewTokens;
    options.min_new_tokens = kNewTokens;
    options.length_penalty = 1.0f;
    options.early_stopping = false;
    return options;
  };

  using Results = std::vector<transnotes::marian::GenerateResult>;
  std::vector<Row> rows;
  const auto batched = [&](const MarianModel& m, const std::string& name, int beams) {
    const GenerateOptions options = options_for(beams);
    Results last;
    const Timing t = time_runs(runs, [&] { last = generate(m, inputs, options); });
    rows.push_back({name, std::to_string(kBatch) + " seq x " + std::to_string(kNewTokens), t,
                    kBatch * kNewTokens / t.median, "tgt tok/s", check_lengths(last)});
    return last;
  };
  const auto one_by_one = [&](const MarianModel& m, const std::string& name, int beams) {
    const GenerateOptions options = options_for(beams);
    Results all;
    const Timing t = time_runs(runs, [&] {
      all.clear();
      for (const auto& row : singles) all.push_back(generate(m, {row}, options).front());
    });
    rows.push_back(
        {name, std::to_string(kSingleInputs) + " x (1 seq x " + std::to_string(kNewTokens) + ")", t,
         kSingleInputs * kNewTokens / t.median, "tgt tok/s", check_lengths(all)});
    return all;
  };

  if (wants("encoder")) {
    const Timing t = time_runs(runs, [&] { model->encode(inputs); });
    const int source_tokens = kBatch * (kSourceIds + 1);
    rows.push_back({"encoder, batch 32", std::to_string(source_tokens) + " src tokens", t,
                    source_tokens / t.median, "src tok/s", ""});
  }
  if (wants("a")) batched(*model, "(a) batch 32, beam 4", 4);
  Results greedy_b, greedy_c;
  if (wants("b")) greedy_b = batched(*model, "(b) batch 32, greedy", 1);
  if (wants("c")) greedy_c = one_by_one(*model, "(c) batch 1, greedy", 1);
  if (wants("d")) one_by_one(*model, "(d) batch 1, beam 4", 4);
  const long peak_rss = proc_status_kb("VmHWM");  // before the bandwidth buffers below
  const auto* greedy_screen = model->greedy_screen();
  const double candidates_per_row =
      greedy_screen && greedy_screen->rows_screened()
          ? static_cast<double>(greedy_screen->logits_verified()) / greedy_screen->rows_screened()
          : 0.0;

  // The same greedy scenarios with every logit in fp32, side by side, and whether the screen
  // chose exactly the same tokens (after the RSS figures: the second model maps the same file).
  std::string screen_check;
  const auto same_ids = [](const Results& x, const Results& y) {
    return std::equal(x.begin(), x.end(), y.begin(), y.end(),
                      [](const auto& p, const auto& q) { return p.ids == q.ids; });
  };
  if (greedy_screen && compare_screen && (wants("b") || wants("c"))) {
    auto all_logits_options = model_options;
    all_logits_options.greedy_screen = false;
    const auto all_logits = MarianModel::load(model_dir, all_logits_options);
    bool same = true;
    if (wants("b"))
      same &= same_ids(batched(*all_logits, "(b) greedy, every logit fp32", 1), greedy_b);
    if (wants("c"))
      same &= same_ids(one_by_one(*all_logits, "(c) greedy, every logit fp32", 1), greedy_c);
    screen_check = same ? "yes" : "NO";
  }
  // Where the RSS is at the end: file-backed = pages of the mapped model.safetensors (fp32
  // weights), anonymous = converted/int8 weights, caches and buffers (incl. freed-but-kept
  // malloc arenas).
  const long rss_anon = proc_status_kb("RssAnon");
  const long rss_file = proc_status_kb("RssFile");

  std::cout << "| scenario | work per run | median s | min s | max s | throughput |\n"
            << "| --- | --- | ---: | ---: | ---: | ---: |\n";
  std::cout << std::fixed;
  for (const auto& r : rows) {
    std::cout << "| " << r.scenario << " | " << r.work << " | " << std::setprecision(3)
              << r.timing.median << " | " << r.timing.min << " | " << r.timing.max << " | "
              << std::setprecision(1) << r.throughput << " " << r.unit << " |\n";
  }
  for (const auto& r : rows) {
    if (!r.note.empty()) std::cout << r.scenario << ": " << r.note << "\n";
  }
  if (greedy_screen)
    std::cout << "greedy screen: " << std::setprecision(1) << candidates_per_row
              << " fp32 logits per step and sequence (of " << config.decoder_vocab_size << ")"
              << (screen_check.empty() ? ""
                                       : "; same ids as with every logit in fp32: " + screen_check)
              << "\n";
  std::cout << "\nload: " << std::setprecision(2) << load_seconds << " s (RSS "
            << mb(rss_after_load) << ")  load + first token: " << load_seconds + first_token_seconds
            << " s (RSS " << mb(rss_after_first_token) << ")  peak RSS (VmHWM): " << mb(peak_rss)
            << "\n"
            << "peak RSS by the end of load: " << mb(peak_rss_load)
            << "  RSS after the scenarios: anonymous " << mb(rss_anon) << ", file-backed "
            << mb(rss_file) << "\n";

  if (limits) {
    std::cout << "\nmachine limits (same process, after the scenarios):\n";
    std::cout << "  OpenBLAS sgemm 512x2048x2048, " << threads
              << " threads: " << std::setprecision(1) << sgemm_gflops(512, 2048, 2048)
              << " GFLOP/s\n";
    std::cout << "  memcpy 256 MiB, 1 thread: " << memcpy_gbs() << " GB/s\n";
    std::cout << "  triad 3 x 128 MiB, " << threads << " threads: " << triad_gbs(threads)
              << " GB/s\n";
    std::cout << "  loadavg at end: " << read_first_line("/proc/loadavg") << "\n";
  }
  return 0;
}
