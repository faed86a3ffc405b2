// Fuzzes the safetensors reader (marian/safetensors.h) with whole files: the 8-byte header length,
// the JSON header and the data offsets, then binds what parsed to a micro MarianMT model
// (marian/weights.h), which checks every tensor's name, shape and dtype and converts f16/bf16.
#include <cstddef>
#include <cstdint>

#include "fuzz_support.h"
#include "marian/checkpoint.h"
#include "marian/model.h"
#include "marian/safetensors.h"
#include "marian/weights.h"

namespace {

using namespace transnotes;

// The smallest model with every kind of tensor: the seeds in corpus/fuzz_safetensors bind to it.
marian::MarianConfig micro_config() {
  marian::MarianConfig c;
  c.d_model = 2;
  c.encoder_layers = 1;
  c.decoder_layers = 1;
  c.encoder_attention_heads = 1;
  c.decoder_attention_heads = 1;
  c.encoder_ffn_dim = 3;
  c.decoder_ffn_dim = 3;
  c.activation_function = "swish";
  c.max_position_embeddings = 4;
  c.vocab_size = 5;
  c.decoder_vocab_size = 5;
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto path = fuzz::scratch_dir() / "model.safetensors";
  static const marian::MarianConfig config = micro_config();
  fuzz::write_file(path, data, size);
  try {
    marian::SafetensorsFile file(path);
    for (const auto& [name, tensor] : file.tensors()) {
      // A range the reader accepted must lie inside the file: reading its ends faults otherwise.
      if (tensor.bytes > size || tensor.elements() < 0) __builtin_trap();
      if (tensor.bytes > 0) {
        volatile std::byte first = tensor.data[0];
        volatile std::byte last = tensor.data[tensor.bytes - 1];
        (void)first;
        (void)last;
      }
    }
    marian::ModelOptions options;
    options.num_threads = 1;
    auto weights = marian::bind_weights(file, config, options);
  } catch (const marian::ModelLoadError&) {
    // The documented answer to a malformed file.
  }
  return 0;
}
