// Internal to src/marian: not part of the engine's API.
// Read-only view of a .safetensors file (u64 LE header length, JSON header, raw LE tensors).
// The file is mmap'ed; TensorInfo::data points into the mapping and stays valid for the
// lifetime of the SafetensorsFile. Immutable after construction, so safe to share across threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace transnotes::marian {

enum class DType { kF32, kF16, kBF16, kOther };

struct TensorInfo {
  std::string name;
  DType dtype = DType::kOther;
  std::string dtype_name;  // as written in the header ("F32", "I64", ...)
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;  // into the mapping
  size_t bytes = 0;
  int64_t elements() const;
};

class SafetensorsFile {
 public:
  // Throws ModelLoadError (checkpoint.h) naming the file on any I/O or format problem.
  explicit SafetensorsFile(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // nullptr when absent.
  const TensorInfo* find(const std::string& name) const;
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }

 private:
  std::filesystem::path path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::map<std::string, TensorInfo> tensors_;
};

}  // namespace transnotes::marian
