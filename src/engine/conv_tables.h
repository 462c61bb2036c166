#pragma once
// What a convolution's geometry alone decides: which kernel taps of each output pixel fall inside
// the map (the rest read the zero padding). For a 3x3 kernel with padding 1 these taps form one of
// nine rectangles of the kernel (the interior, four edges, four corners), shared by many pixels.
#include <cstdint>
#include <vector>

namespace spinbayes {

// Kernel taps [lo, hi) along one axis.
struct TapRange {
  int lo, hi;
};

// The shape of a convolution: what the rectangles of in-map taps depend on.
struct ConvGeometry {
  int height = -1, width = -1, channels = -1, kernel = -1, stride = -1, padding = -1;
  bool operator==(const ConvGeometry&) const = default;
};

// What follows from a geometry alone: the distinct ranges of taps inside the map along y and
// along x, each output pixel's rectangle (pair of ranges, y-major) and its taps; and its kept
// count for the channels kept by the last call of this geometry (row_taps times kept_channels).
struct ConvTables {
  ConvGeometry geometry;
  std::vector<TapRange> y_ranges, x_ranges;
  std::vector<std::int32_t> keep_index, row_taps, kept;
  int kept_channels = -1;
};

}  // namespace spinbayes
