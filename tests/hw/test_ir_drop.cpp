// IR drop: the nodal solver against closed forms of small circuits, and the fast model's map
// against the nodal solution of random tiles, its error measured.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "core/error.h"
#include "hw/ir_drop.h"

using namespace spinbayes;

namespace {

TileCircuit empty_tile(int rows, int cols, double wire_ohm) {
  TileCircuit t;
  t.rows = rows;
  t.cols = cols;
  t.g.assign(static_cast<std::size_t>(rows) * cols, 0.0);
  t.driven.assign(static_cast<std::size_t>(rows), 0);
  t.ref_p.assign(static_cast<std::size_t>(rows), 0.0);
  t.ref_ap.assign(static_cast<std::size_t>(rows), 0.0);
  t.wire_ohm = wire_ohm;
  t.read_v = 0.1;
  return t;
}

const double kGp = 1.0 / 3978.87, kGap = 1.0 / 9717.63;  // the default cell's, S

}  // namespace

TEST(IrDrop, OneCellSeesTheDividerOfItsWires) {
  // One driven cell (r, c), nothing else conducting: the current passes c + 1 read-line segments
  // and rows - r bit-line segments, so V_cell = V (1/g) / (1/g + (c + 1 + rows - r) r_w).
  const int rows = 8, cols = 5;
  const double rw = 50.0, g = kGp;
  for (const auto& [r, c] : {std::pair{0, 0}, std::pair{3, 4}, std::pair{7, 2}}) {
    TileCircuit t = empty_tile(rows, cols, rw);
    t.driven[static_cast<std::size_t>(r)] = 1;
    t.g[static_cast<std::size_t>(r) * cols + c] = g;
    const std::vector<double> across = nodal_cell_voltages(t);
    const double expected = t.read_v / g / (1.0 / g + (c + 1 + rows - r) * rw);
    EXPECT_NEAR(across[static_cast<std::size_t>(r) * (cols + 2) + c], expected, 1e-12) << r << " " << c;
  }
}

TEST(IrDrop, TwoCellsOnOneBitLineShareItsLastSegment) {
  // Rows 0 and 1 driven on one column of two rows, one segment each to their cells: the bit line
  // below row 1 (one segment to ground) carries both currents; row 0's also the segment between.
  // Node equations solved by hand (Cramer) for V0, V1 at the bit-line nodes.
  const double rw = 100.0, g = kGp, v = 0.1;
  TileCircuit t = empty_tile(2, 1, rw);
  t.driven = {1, 1};
  t.g = {g, g};
  // Each driven cell in series with its read-line segment: conductance h = 1 / (rw + 1/g) from v.
  const double h = 1.0 / (rw + 1.0 / g), w = 1.0 / rw;
  // Node 0: h (v - V0) = w (V0 - V1); node 1: h (v - V1) + w (V0 - V1) = w V1.
  // [h + w, -w; -w, h + 2w] [V0; V1] = [h v; h v]
  const double a = h + w, b = -w, d = h + 2 * w, det = a * d - b * b;
  const double v0 = (h * v * d - b * h * v) / det, v1 = (a * h * v - b * h * v) / det;
  const std::vector<double> across = nodal_cell_voltages(t);
  // The cell's voltage: its current h (v - Vbit) over g.
  EXPECT_NEAR(across[0], h * (v - v0) / g, 1e-12);
  EXPECT_NEAR(across[3], h * (v - v1) / g, 1e-12);
  EXPECT_LT(across[0], across[3]);  // the row further from the amplifier loses more
}

TEST(IrDrop, WithoutWiresEveryDrivenCellSeesTheReadVoltage) {
  TileCircuit t = empty_tile(4, 3, 0.0);
  t.driven = {1, 0, 1, 1};
  for (double& g : t.g) g = kGp;
  const std::vector<double> across = nodal_cell_voltages(t);
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 5; ++c) EXPECT_EQ(across[static_cast<std::size_t>(r) * 5 + c], t.driven[static_cast<std::size_t>(r)] ? 0.1 : 0.0);
  }
  // The nodal solve at a vanishing wire resistance tends to the same.
  t.wire_ohm = 1e-6;
  const std::vector<double> almost = nodal_cell_voltages(t);
  for (std::size_t i = 0; i < almost.size(); ++i) EXPECT_NEAR(almost[i], across[i], 1e-7);
}

TEST(IrDrop, TilesTooLargeForTheSolverAreOneLineErrors) {
  TileCircuit t = empty_tile(1024, 1024, 1.0);
  EXPECT_THROW(nodal_cell_voltages(t), Error);
  // Wires too thin for a double's conductance: refused, never a NaN.
  TileCircuit thin = empty_tile(4, 3, 1e-310);
  thin.driven = {1, 1, 1, 1};
  for (double& g : thin.g) g = kGp;
  EXPECT_THROW(nodal_cell_voltages(thin), Error);
}

TEST(IrDrop, FastModelMatchesTheNodalSolutionWithinItsStatedError) {
  // Random tiles (weights and inputs +-1, rows driven with probability 0.9 as under dropout at
  // p = 0.1, or all), the fast model's column values against the nodal solution's. The error is
  // a small share of what the wires take away, and the stated bounds hold.
  struct Case {
    int rows, cols;
    double wire, drive, max_share;
  };
  for (const Case& k : {Case{64, 64, 1.75, 0.9, 0.1}, Case{64, 64, 1.75, 1.0, 0.1}, Case{64, 64, 1.75, 0.5, 0.2},
                        Case{128, 128, 0.5, 0.9, 0.1}, Case{32, 32, 1.75, 0.9, 0.1}, Case{64, 64, 0.25, 0.9, 0.1}}) {
    const FastModelError e = fast_model_error(k.rows, k.cols, kGp, kGap, k.wire, 0.1, k.drive, 3, 7);
    std::printf("tile %dx%d, %.2f Ohm, drive %.1f: fast - nodal rms %.4f max %.4f (without the relief %.4f); drop rms "
                "%.4f max %.4f; value rms %.3f\n",
                k.rows, k.cols, k.wire, k.drive, e.rms, e.max, e.map_only_rms, e.drop_rms, e.drop_max, e.value_rms);
    EXPECT_GT(e.drop_rms, 0.0);
    EXPECT_LT(e.rms, k.max_share * e.drop_rms) << k.rows << "x" << k.cols;
  }
}
