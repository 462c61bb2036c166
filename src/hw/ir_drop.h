#pragma once
// IR drop: the resistance of a tile's wires between its cells, and what it does to each cell's read.
//
// The tile's circuit. Each driven row has a read line that its driver holds at read_voltage_v at
// the tile's left edge; each column (and the tile's reference columns after the last one) has a
// bit line that its sense amplifier or ADC holds at virtual ground below the last row. Every wire
// segment between neighbouring cells, and between the edge cells and the driver or the amplifier,
// has crossbar.wire_resistance_ohm. A driven cell (r, c) conducts g between read line node (r, c)
// and bit line node (r, c); an undriven row's access transistors are off, so it conducts nothing
// and its read line carries no current. The reference is two columns, one of P and one of AP
// MTJs, whose currents are averaged (cell_array.h): a column's value is its current minus the
// reference's, over V G_half.
//
// Reference model: the nodal equations of that network (Kirchhoff's current law at every node,
// a symmetric positive definite sparse system), solved by a sparse Cholesky factorization
// (Eigen's SimplicialLDLT).
// Fast model (fast_tile_reads): from the nodal solution of the same tile with every row driven
// and uniform cells (a map per tile shape), each cell's current for either input bit is fixed
// per chip, so it folds into the cell values the crossbar sums anyway and costs nothing per
// window. What it leaves out: the drop's dependence on which rows a window drives (fewer driven
// rows, less bit-line current), other columns' cells on a read line under other inputs than the
// row's own, and second-order terms. Its error against the nodal solution: fast_model_error().
#include <cstdint>
#include <memory>
#include <vector>

namespace spinbayes {

// A tile's circuit: rows x cols data cells (row-major conductances in S; a row is driven iff
// `driven`), then the reference columns.
struct TileCircuit {
  int rows = 0, cols = 0;
  std::vector<double> g;          // rows x cols, S
  std::vector<char> driven;       // rows
  std::vector<double> ref_p, ref_ap;  // rows: the reference columns' cells, S
  double wire_ohm = 0.0;          // per cell pitch, on read lines and bit lines alike
  double read_v = 0.1;
};

// The voltage across every cell (rows x (cols + 2), the two reference columns last; 0 on
// undriven rows) from the nodal equations. Throws Error where the factorization fails.
std::vector<double> nodal_cell_voltages(const TileCircuit& circuit);

// Each column's value in dot units (current minus the reference's average, over V G_half):
// from the nodal solution, and from the cells at full read voltage (no wires), for comparison.
std::vector<double> nodal_column_values(const TileCircuit& circuit, double g_half);

// The fast model's map: the nodal solution of a tile of `rows` x `cols` with every row driven,
// data cells at g_mid = (g_p + g_ap) / 2 and the reference columns at g_p and g_ap, as fractions
// of read_voltage_v: each cell's voltage (`across`) and each bit-line node's (`bit`), rows x
// (cols + 2). Computed once per distinct circuit and shared (a chip's layers have few tile shapes).
struct IrDropMap {
  int rows = 0, cols = 0;
  double g_p = 0, g_ap = 0, wire_ohm = 0, read_v = 0;
  std::vector<double> across, bit;
  double at(int r, int c) const { return across[static_cast<std::size_t>(r) * (cols + 2) + c]; }
  double bit_at(int r, int c) const { return bit[static_cast<std::size_t>(r) * (cols + 2) + c]; }
};
std::shared_ptr<const IrDropMap> ir_drop_map(int rows, int cols, double g_p, double g_ap, double wire_ohm,
                                             double read_v);

// The fast model of one tile with its own cells: per cell and input bit, the current its read
// adds to its column, and per row and input bit the reference's (the average of its P and AP
// cells), over read_voltage_v (S). Three steps, each closed:
//  1. The bit lines at the map's voltages.
//  2. Each row's read line solved exactly for each input bit (a ladder: the driver, a wire
//     segment per cell, each cell to its bit-line node; tridiagonal), with the row's own
//     conductances: what its other cells draw is in each cell's voltage.
//  3. A column's own currents moving its bit line: a cell carrying dI more than the map's
//     lowers the voltage of every cell r of its column by r_w dI (rows - max(r, k)) (the bit-line
//     segments the two currents share), which costs the column r_w G dI W_k with W_k = sum over r
//     of (rows - max(r, k)) and G the column's mean conductance: charged to the cell that causes it.
// `g`: (r * cols + c) * 2 + bit, the conductance of the MTJ cell (r, c) reads for that input bit;
// ref_p, ref_ap: per row.
struct TileReads {
  int rows = 0, cols = 0;
  std::vector<double> cell;  // (r * cols + c) * 2 + bit
  std::vector<double> ref;   // r * 2 + bit
};
TileReads fast_tile_reads(const IrDropMap& map, const std::vector<double>& g, const std::vector<double>& ref_p,
                          const std::vector<double>& ref_ap);

// What a window that leaves rows undriven gives back (the map assumes every row driven): an
// undriven row no longer draws current from the bit lines, so they sit lower and the driven cells
// see more voltage. Per window, the bit line of a mean data column (cells at G_mid) and of each
// reference column (G_P, G_AP) is solved as a ladder (a wire segment per row, the driven rows'
// cells to their read lines at the map's voltages; tridiagonal) for the window's driven rows and
// compared with the same ladder fully driven: beta(r), the rise of row r's cell voltage over the
// read voltage. A driven cell then draws g beta(r) more: over V G_half, a column's value rises
// by sum over driven r of beta(r) s_r + (G_mid beta(r) - (G_P beta_P(r) + G_AP beta_AP(r)) / 2) /
// G_half, s_r = +1 for a match and -1 for a mismatch.
struct BitLineRelief {
  std::uint64_t serial = 0;  // unique to this relief in the process (a cache key)
  int rows = 0;
  double g_mid = 0, g_p = 0, g_ap = 0, g_half = 0, wire_ohm = 0;
  std::vector<double> line, line_p, line_ap;  // per row: the read line's voltage fraction at the column
  std::vector<double> full, full_p, full_ap;  // per row: the fully driven ladders' bit lines
  // beta, beta_p, beta_ap per row of the tile for the window's driven rows (rows entries, 0/1);
  // returns sum over driven r of (G_mid beta - (G_P beta_p + G_AP beta_ap) / 2) / G_half, the part
  // every column shares.
  double betas(const char* driven, double* beta, double* beta_p, double* beta_ap) const;
};
BitLineRelief bit_line_relief(const IrDropMap& map);

// The smallest wire resistance other than 0 (none) a config may give, Ohm per cell pitch.
constexpr double kMinWireOhm = 1e-6;

// The largest tile the nodal solver takes: rows x (cols + 2) cells.
constexpr std::int64_t kMaxIrDropCells = 1 << 18;

// The fast model against the nodal solution over `draws` random tiles (weights and inputs +-1 with
// equal odds, each row driven with probability `drive`): the error of the column values in dot
// units, and how large the drop itself is (the values without wires against the nodal ones).
struct FastModelError {
  double rms = 0, max = 0;                // fast model (with the relief) - nodal, dot units
  double map_only_rms = 0;                // the map and read lines alone, without the relief
  double drop_rms = 0, drop_max = 0;      // no wires - nodal, dot units
  double value_rms = 0;                   // of the nodal values themselves
};
FastModelError fast_model_error(int rows, int cols, double g_p, double g_ap, double wire_ohm, double read_v,
                                double drive, int draws, std::uint64_t seed);

}  // namespace spinbayes
