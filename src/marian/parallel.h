// A tiny process-wide worker pool for the engine's own loops (few-row linear kernel, attention,
// activations, beam-search scoring). OpenBLAS keeps its own threads for the large sgemm calls.
// Thread safety: parallel_for may be called from any thread; while one call is running, a
// concurrent call (another translation thread) simply runs its loop inline on its caller.
#pragma once

namespace transnotes::marian {

// Total threads a parallel_for uses (caller included); process-wide, >= 1. Changing it
// starts/stops helper threads.
void set_parallel_threads(int threads);
int parallel_threads();

// The process-wide thread settings of neural inference: OpenBLAS's threads (the large sgemm
// calls) and this pool's. Loading a model never changes them; the owner of the process does,
// once (MarianEngine when MarianEngineOptions::num_threads is set, the benchmark, the tests).
void set_inference_threads(int threads);

namespace detail {
using ChunkFn = void (*)(const void* context, int begin, int end);
void parallel_for_impl(int n, int grain, ChunkFn fn, const void* context);
}  // namespace detail

// Calls body(begin, end) on disjoint contiguous chunks covering [0, n), chunk boundaries at
// multiples of `grain` (except n), in parallel; returns when all are done. body must not call
// parallel_for itself and must not throw.
template <class Body>
void parallel_for(int n, int grain, const Body& body) {
  if (n <= 0) return;
  detail::parallel_for_impl(
      n, grain,
      [](const void* context, int begin, int end) {
        (*static_cast<const Body*>(context))(begin, end);
      },
      &body);
}

}  // namespace transnotes::marian
