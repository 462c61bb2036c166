#pragma once
// The ADC that digitizes a column's partial sum in one row tile: codes -K..K, K = (2^bits - 1) / 2,
// at a step of full_scale / K dot units, full scale +-tile_rows; exact integers when K >= tile_rows.
// It reads the tile sum in the cell array's fixed point (1 / cell_scale dot units). A gain g (the
// crossbar's drift times the ADC's own gain error) scales its input: codes of g x the sum.
#include <cstdint>

namespace spinbayes {

// K, the largest code of a `bits`-bit ADC: codes -K..K.
constexpr int adc_codes_per_sign(int bits) { return ((1 << bits) - 1) / 2; }

class Adc {
 public:
  Adc() = default;
  Adc(int bits, int tile_rows, int cell_scale, double gain = 1.0);

  double step() const { return step_; }  // dot units per code
  double gain() const { return gain_; }
  int levels() const { return levels_; }  // largest |code|
  // One conversion: round(gain x sum / cell_scale / step), half away from zero (the comparator ladder has
  // no notion of ties-to-even), clamped to the levels.
  std::int32_t code(std::int32_t sum) const;
  // n conversions, eight at a time with AVX-512 where the CPU has it: the same codes.
  void codes(const std::int32_t* sums, int n, std::int32_t* codes) const;
  // code()'s arithmetic, for kernels that convert as they go: sum x multiplier() / divisor(), the
  // division a product by the exact reciprocal where divides_by_power_of_two().
  double multiplier() const { return multiplier_; }
  double divisor() const { return divisor_; }
  bool divides_by_power_of_two() const { return divisor_power_of_two_; }

 private:
  double step_ = 1.0, gain_ = 1.0;
  // A code is sum x multiplier_ / divisor_, rounded: one exact product over one division.
  double multiplier_ = 1.0, divisor_ = 1.0;
  bool divisor_power_of_two_ = true;
  int levels_ = 0;
  bool simd_ = false;
};

}  // namespace spinbayes
