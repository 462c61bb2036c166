#include "engine/bit_matrix.h"

#include <string>

#include "core/error.h"

namespace spinbayes {

BitMatrix pack_weights(const std::int8_t* signs, int out_channels, int in_channels, int kernel) {
  if (out_channels < 0 || in_channels <= 0 || kernel <= 0)
    throw Error("pack_weights: bad shape " + std::to_string(out_channels) + "x" +
                std::to_string(in_channels) + "x" + std::to_string(kernel) + "x" + std::to_string(kernel));
  BitMatrix w(out_channels, kernel * kernel * in_channels);
  // LibTorch order (o, c, ky, kx) in; patch order (ky, kx, c) out. sign(0) = +1 as in training.
  for (int o = 0; o < out_channels; ++o)
    for (int c = 0; c < in_channels; ++c)
      for (int ky = 0; ky < kernel; ++ky)
        for (int kx = 0; kx < kernel; ++kx)
          if (*signs++ >= 0) w.set(o, (ky * kernel + kx) * in_channels + c, true);
  return w;
}

}  // namespace spinbayes
