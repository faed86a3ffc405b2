// Compiled with TRANSNOTES_VERSION and TRANSNOTES_COMMIT (src/metrics/CMakeLists.txt), which only
// this file sees: a new commit recompiles it alone.
#include "metrics/metrics.h"

#ifndef TRANSNOTES_VERSION
#error "TRANSNOTES_VERSION must be defined by the build"
#endif
#ifndef TRANSNOTES_COMMIT
#error "TRANSNOTES_COMMIT must be defined by the build"
#endif

namespace transnotes::metrics {

const char* build_version() { return TRANSNOTES_VERSION; }
const char* build_commit() { return TRANSNOTES_COMMIT; }

}  // namespace transnotes::metrics
