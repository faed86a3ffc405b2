#include "marian/parallel.h"

#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace transnotes::marian {

namespace {

// Helpers spin briefly after each job (decoder steps issue many short jobs back to back), then
// sleep on a futex so that they do not steal a core from OpenBLAS or other work.
constexpr int kSpinIterations = 4000;

// Jobs are split into a few chunks per thread that the caller and the helpers claim from a
// shared counter, so a helper that is slow to wake (the machine is shared) only means the caller
// does more chunks itself; the caller never waits for a helper that has not started one.
class Pool {
 public:
  ~Pool() { resize(1); }

  void resize(int threads) {
    std::lock_guard<std::mutex> lock(busy_);
    threads = std::max(1, threads);
    if (threads == static_cast<int>(helpers_.size()) + 1) return;
    stop_.store(true, std::memory_order_relaxed);
    job_.fetch_add(1, std::memory_order_release);
    job_.notify_all();
    for (auto& h : helpers_) h.join();
    helpers_.clear();
    stop_.store(false, std::memory_order_relaxed);
    for (int i = 1; i < threads; ++i)
      helpers_.emplace_back([this, seen = job_.load()] { work(seen); });
    threads_.store(threads, std::memory_order_relaxed);
  }

  int threads() const { return threads_.load(std::memory_order_relaxed); }

  void run(int n, int grain, detail::ChunkFn fn, const void* context) {
    grain = std::max(1, grain);
    const int threads = threads_.load(std::memory_order_relaxed);
    if (threads == 1 || n <= grain) {
      fn(context, 0, n);
      return;
    }
    std::unique_lock<std::mutex> lock(busy_, std::try_to_lock);
    if (!lock.owns_lock()) {
      fn(context, 0, n);
      return;
    }
    const int grains = (n + grain - 1) / grain;
    const int chunks = std::min({grains, 4 * threads, 0xffff});
    chunk_ = (grains + chunks - 1) / chunks * grain;
    chunks_ = (n + chunk_ - 1) / chunk_;
    n_ = n;
    fn_ = fn;
    context_ = context;
    done_.store(0, std::memory_order_relaxed);
    const uint32_t job = job_.load(std::memory_order_relaxed) + 1;
    claim_.store(static_cast<uint64_t>(job) << 32 | static_cast<uint64_t>(chunks_) << 16,
                 std::memory_order_release);
    job_.store(job, std::memory_order_release);
    job_.notify_all();
    help(job);
    for (int spins = 0; done_.load(std::memory_order_acquire) != chunks_; ++spins) {
      if (spins < kSpinIterations) {
        _mm_pause();
      } else {
        std::this_thread::yield();
      }
    }
  }

 private:
  // Runs chunks of `job` until none is left (or a newer job replaced it).
  void help(uint32_t job) {
    for (;;) {
      uint64_t state = claim_.load(std::memory_order_acquire);
      if (static_cast<uint32_t>(state >> 32) != job) return;
      // The chunk count travels in the same word, so a claim never reads another job's fields.
      const int chunks = static_cast<int>((state >> 16) & 0xffffu);
      const int chunk = static_cast<int>(state & 0xffffu);
      if (chunk >= chunks) return;
      if (!claim_.compare_exchange_weak(state, state + 1, std::memory_order_acq_rel)) continue;
      // Claimed: the job cannot finish (and its fields be replaced) before this chunk is done.
      const int begin = chunk * chunk_;
      fn_(context_, begin, std::min(n_, begin + chunk_));
      done_.fetch_add(1, std::memory_order_release);
    }
  }

  void work(uint32_t seen) {
    for (;;) {
      uint32_t now;
      int spins = 0;
      while ((now = job_.load(std::memory_order_acquire)) == seen) {
        if (++spins < kSpinIterations) {
          _mm_pause();
        } else {
          job_.wait(seen, std::memory_order_acquire);
        }
      }
      seen = now;
      if (stop_.load(std::memory_order_relaxed)) return;
      help(now);
    }
  }

  std::mutex busy_;  // one job at a time
  std::vector<std::thread> helpers_;
  std::atomic<int> threads_{1};
  std::atomic<uint32_t> job_{0};    // id of the latest job (helpers sleep on it)
  std::atomic<uint64_t> claim_{0};  // job id << 32 | chunks << 16 | next unclaimed chunk
  std::atomic<int> done_{0};        // chunks of the current job finished
  std::atomic<bool> stop_{false};
  // The current job; written before claim_/job_ are published (release).
  detail::ChunkFn fn_ = nullptr;
  const void* context_ = nullptr;
  int n_ = 0;
  int chunk_ = 0;
  int chunks_ = 0;
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

void set_parallel_threads(int threads) { pool().resize(threads); }
int parallel_threads() { return pool().threads(); }

void set_inference_threads(int threads) {
  threads = std::max(1, threads);
  openblas_set_num_threads(threads);
  set_parallel_threads(threads);
}

namespace detail {
void parallel_for_impl(int n, int grain, ChunkFn fn, const void* context) {
  pool().run(n, grain, fn, context);
}
}  // namespace detail

}  // namespace transnotes::marian
