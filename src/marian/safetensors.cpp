#include "marian/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdint>
#include <cstring>

#include "marian/checkpoint.h"

namespace transnotes::marian {

namespace json = boost::json;

int64_t TensorInfo::elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

size_t dtype_size(const std::string& name) {
  if (name == "F64" || name == "I64" || name == "U64") return 8;
  if (name == "F32" || name == "I32" || name == "U32") return 4;
  if (name == "F16" || name == "BF16" || name == "I16" || name == "U16") return 2;
  if (name == "I8" || name == "U8" || name == "BOOL" || name == "F8_E4M3" || name == "F8_E5M2")
    return 1;
  return 0;
}

DType dtype_of(const std::string& name) {
  if (name == "F32") return DType::kF32;
  if (name == "F16") return DType::kF16;
  if (name == "BF16") return DType::kBF16;
  return DType::kOther;
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : path_(path) {
  const std::string where = path.string();
  // O_NONBLOCK: opening a FIFO put in place of the weights must not hang the loader.
  int fd = ::open(where.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw ModelLoadError(where + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw ModelLoadError(where + ": cannot stat");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw ModelLoadError(where + ": not a regular file");
  }
  map_size_ = static_cast<size_t>(st.st_size);
  if (map_size_ < 8) {
    ::close(fd);
    throw ModelLoadError(where + ": truncated safetensors file (no header length)");
  }
  map_ = ::mmap(nullptr, map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw ModelLoadError(where + ": mmap failed");
  }
  try {
    const auto* base = static_cast<const std::byte*>(map_);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(base[i]);
    if (header_len > map_size_ - 8)
      throw ModelLoadError(where + ": safetensors header length " + std::to_string(header_len) +
                           " exceeds file size " + std::to_string(map_size_));
    std::string_view header(reinterpret_cast<const char*>(base + 8), header_len);
    json::value root;
    try {
      root = json::parse(header);
    } catch (const std::exception& e) {
      throw ModelLoadError(where + ": malformed safetensors JSON header: " + e.what());
    }
    if (!root.is_object()) throw ModelLoadError(where + ": safetensors header is not an object");
    const std::byte* data_start = base + 8 + header_len;
    const size_t data_size = map_size_ - 8 - header_len;
    for (const auto& [key, value] : root.as_object()) {
      std::string name(key);
      if (name == "__metadata__") continue;
      const std::string what = where + ": tensor '" + name + "'";
      const auto* obj = value.if_object();
      if (!obj) throw ModelLoadError(what + ": entry is not an object");
      const auto* dtype = obj->if_contains("dtype");
      const auto* shape = obj->if_contains("shape");
      const auto* offsets = obj->if_contains("data_offsets");
      if (!dtype || !dtype->is_string() || !shape || !shape->is_array() || !offsets ||
          !offsets->is_array() || offsets->as_array().size() != 2)
        throw ModelLoadError(what + ": missing dtype/shape/data_offsets");
      TensorInfo info;
      info.name = name;
      info.dtype_name = std::string(dtype->as_string());
      info.dtype = dtype_of(info.dtype_name);
      // The element count (and below, the byte count) must not wrap: a wrapped product could
      // match a tiny data range and pass the size check.
      uint64_t elements = 1;
      for (const auto& d : shape->as_array()) {
        if (!d.is_int64() || d.as_int64() < 0)
          throw ModelLoadError(what + ": shape entry " + json::serialize(d) +
                               " is not a non-negative integer");
        if (__builtin_mul_overflow(elements, static_cast<uint64_t>(d.as_int64()), &elements) ||
            elements > static_cast<uint64_t>(INT64_MAX))
          throw ModelLoadError(what + ": shape " + json::serialize(*shape) +
                               " has more elements than any file can hold");
        info.shape.push_back(d.as_int64());
      }
      auto to_u64 = [&](const json::value& v) -> uint64_t {
        if (v.is_uint64()) return v.as_uint64();
        if (v.is_int64() && v.as_int64() >= 0) return static_cast<uint64_t>(v.as_int64());
        throw ModelLoadError(what + ": bad data_offsets");
      };
      uint64_t begin = to_u64(offsets->as_array()[0]);
      uint64_t end = to_u64(offsets->as_array()[1]);
      if (begin > end || end > data_size)
        throw ModelLoadError(what + ": data_offsets [" + std::to_string(begin) + ", " +
                             std::to_string(end) + ") outside the data section (" +
                             std::to_string(data_size) + " bytes; file truncated?)");
      size_t elem = dtype_size(info.dtype_name);
      if (elem == 0) throw ModelLoadError(what + ": unknown dtype " + info.dtype_name);
      uint64_t expected_bytes = 0;
      if (__builtin_mul_overflow(elements, static_cast<uint64_t>(elem), &expected_bytes) ||
          expected_bytes != end - begin)
        throw ModelLoadError(what + ": data_offsets hold " + std::to_string(end - begin) +
                             " bytes, but shape " + json::serialize(*shape) + " of " +
                             info.dtype_name + " needs " + std::to_string(elements) + " x " +
                             std::to_string(elem));
      info.data = data_start + begin;
      info.bytes = end - begin;
      tensors_.emplace(name, std::move(info));
    }
  } catch (...) {
    ::munmap(map_, map_size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

}  // namespace transnotes::marian
