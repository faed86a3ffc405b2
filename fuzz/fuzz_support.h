// Shared by the fuzz targets: a private scratch folder for inputs that the code under test reads
// from files, and the source tree's fixtures.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace transnotes::fuzz {

// The tiny MarianMT checkpoint the marian tests use.
inline std::filesystem::path tiny_checkpoint() {
  return std::filesystem::path(TRANSNOTES_SOURCE_DIR) / "tests/fixtures/marian/tiny-en-es";
}

// A folder of this process's own, created on first use and removed at exit. In /dev/shm when it
// exists: every input is written to a file, and tmpfs keeps that off the disk.
inline const std::filesystem::path& scratch_dir() {
  struct Scratch {
    std::filesystem::path path;
    Scratch() {
      std::filesystem::path base = "/dev/shm";
      std::error_code ec;
      if (!std::filesystem::is_directory(base, ec)) base = std::filesystem::temp_directory_path();
      std::string pattern = (base / "transnotes-fuzz.XXXXXX").string();
      if (::mkdtemp(pattern.data()) == nullptr) std::abort();
      path = pattern;
    }
    ~Scratch() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static const Scratch scratch;
  return scratch.path;
}

inline void write_file(const std::filesystem::path& path, const std::uint8_t* data,
                       std::size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) std::abort();  // the harness itself failed: not a finding in the code under test
}

}  // namespace transnotes::fuzz
