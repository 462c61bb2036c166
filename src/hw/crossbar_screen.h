#pragma once
// Which of a window's sense decisions need the analog column sum. The exact integer dots come from
// the engine's binary GEMM; the analog sum over a column is evaluated only where the decision could
// differ: where the margin about the expected value lies within screen_sigmas standard deviations
// of what the devices and the ADCs can add.
//
// Ensemble screen: centred on the dot; the deviation's variance over chips is known per window
// from the dot itself: of k driven rows, (k + dot) / 2 read a P MTJ and (k - dot) / 2 an AP one.
// ADC rounding: each tile's code is off by up to half a step, uniformly, a variance of
// step^2 / 12 per tile; a sum of uniform errors is strictly sub-Gaussian (its tail falls at least
// as fast as the normal's of the same variance), so it joins the devices' variance.
// screen_sigmas = 0 evaluates every column: the reference path.
// Conditioned screen: where a window's driven rows are its valid taps' rows of the same kept
// channels (spatial masks: every tap inside the map holds kc of its C rows, those outside none),
// the screen centres each column on what the chip's own cells predict, not on the ideal dot. Of a
// driven row's deviation delta[x] = delta0 + x * e (e = delta1 - delta0), the sums of delta0 and
// of e over each rectangle of taps are known per column once per chip; with kappa = kc / C kept
// and nu = n1 / k of the k driven rows reading bit 1, the centre is
//   mu = kappa * (S0 + nu * Se),
// and what is left, sum(delta0 * (keep - kappa) + e * (keep and x - kappa nu)), is a sum over
// rows whose variance the window's counts give (terms()): about 0.4x the ensemble variance at
// p = 0.1, so about 0.63x the screen's width. Other windows (element masks drawn per window) use
// the ensemble screen. Under IR drop, reference error or calibration (cell_array.h) the column is
// further off its dot by a systematic part, centred from the window's counts and bounded about
// that centre; delta is then the devices' deviation as the read-out sees it (the systematic part
// taken out, divided by the tile's gain), and every device variance is scaled by the layer's
// largest 1 / gain^2.
#include <cstdint>
#include <vector>

#include "engine/backend.h"
#include "hw/adc.h"
#include "hw/cell_array.h"
#include "hw/mapping.h"

namespace spinbayes {

class CrossbarScreen {
 public:
  CrossbarScreen() = default;
  // `adc`: the ADC the columns are read through, or nullptr for sense amplifiers alone.
  CrossbarScreen(const CellArray& cells, const LayerMapping& mapping, const Adc* adc, double sigmas);

  // What the screen knows of window m before any analog sum: column j's value is expected at
  // dot_j + a * s0[j] + b * se[j] + the systematic centre (dot units), with variance base + slope
  // * dot_j + its own (column_variance: stuck cells, ADC rounding, the systematic bound).
  // Conditioned: the chip's sums over the window's taps (s0: delta0, se: e, in 1 / cell_scale);
  // otherwise a = b = 0 and the ensemble variance. Systematic (IR drop, reference error,
  // calibration; cell_array.h): the centre c[j] + kept * per_row[j] + dot_j * per_dot[j] of the
  // window's `kept` driven rows; otherwise the pointers are null.
  struct Terms {
    bool conditioned = false;
    double a = 0, b = 0, base = 0, slope = 0;
    const std::int32_t* s0 = nullptr;
    const std::int32_t* se = nullptr;
    int kept = 0;
    const double* c = nullptr;
    const double* per_row = nullptr;
    const double* per_dot = nullptr;
    // Column j's expected departure from its dot.
    double centre(int j, std::int32_t dot) const {
      const auto jj = static_cast<std::size_t>(j);
      double mu = a * s0[jj] + b * se[jj];
      if (c != nullptr) mu += c[jj] + (kept * per_row[jj] + dot * per_dot[jj]);
      return mu;
    }
  };
  Terms terms(const PatchRows& patches, int m) const;

  double sigmas() const { return sigmas_; }
  const double* column_variance() const { return column_variance_.data(); }
  // Whether an analog sum of this variance can move the decision across the threshold from
  // `margin`, at sigmas() standard deviations.
  bool within(double margin, double variance) const;
  // The screen of n columns at once (AVX-512): bit j of `fire` is the decision on the margin
  // sign * (dot + terms.centre) - bound + 1/2 + offset, bit j of `near` whether within() holds for it.
  // Both ORed into (the caller zeroes them). False where this build has no AVX-512 kernel.
  bool screen(const std::int32_t* dots, const std::int32_t* sign, const std::int32_t* bound, const double* offset,
              const Terms& terms, int n, BitWord* fire, BitWord* near) const;

 private:
  // rect_s0_, rect_se_ from the cell values.
  void conditioned_sums(const CellArray& cells);
  // Each rectangle of taps (rows ky0..ky1, columns kx0..kx1 of the kernel): its index into
  // rect_s0_ / rect_se_ (times cols_).
  int rectangle(int ky0, int ky1, int kx0, int kx1) const { return ((ky0 * kernel_ + ky1) * kernel_ + kx0) * kernel_ + kx1; }

  // Fixed point of the systematic case's sums per tap: up to 2^14 units per dot unit (rounding
  // 3e-5 dot units a sum), fewer where a layer's sums would not fit int32 with room.
  static constexpr int kSystematicSumScale = 1 << 14;
  int cols_ = 0, sum_scale_ = 64;  // sum_scale_: units of rect_s0_, rect_se_ per dot unit
  double sigmas_ = 0;
  CellArray::Variances variances_;
  // Per column, what every window adds to the screen's variance: its stuck cells (a P read where
  // the dot counts a mismatch) and the ADC rounding of its tiles.
  std::vector<double> column_variance_;
  // The conditioned screen: taps of tap_rows_ rows (C_in), kernel_ x kernel_ of them; per
  // rectangle of taps and column, the sums of delta0 and e (cell_scale units).
  bool conditioned_ = false;
  bool popcnt_ = false;  // the CPU's POPCNT instruction
  int kernel_ = 1, tap_rows_ = 0;
  std::vector<std::int32_t> rect_s0_, rect_se_, no_sums_;  // no_sums_: cols_ zeros (the ensemble centre)
  // The systematic centre's terms per column (empty: none).
  std::vector<double> systematic_c_, systematic_per_row_, systematic_per_dot_;
};

}  // namespace spinbayes
