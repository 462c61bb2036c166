#include "hw/ir_drop.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <mutex>
#include <tuple>

#include <Eigen/SparseCholesky>
#include <Eigen/SparseCore>

#include "core/counter_rng.h"
#include "core/error.h"
#include "core/streams.h"

namespace spinbayes {

namespace {

double cell_g(const TileCircuit& t, int r, int c) {
  if (c < t.cols) return t.g[static_cast<std::size_t>(r) * t.cols + c];
  return c == t.cols ? t.ref_p[static_cast<std::size_t>(r)] : t.ref_ap[static_cast<std::size_t>(r)];
}

void check_shape(const TileCircuit& t) {
  if (t.rows < 1 || t.cols < 1 || t.g.size() != static_cast<std::size_t>(t.rows) * t.cols ||
      t.driven.size() != static_cast<std::size_t>(t.rows) || t.ref_p.size() != static_cast<std::size_t>(t.rows) ||
      t.ref_ap.size() != static_cast<std::size_t>(t.rows)) {
    throw Error("IR drop: tile circuit of inconsistent shape");
  }
  if (static_cast<std::int64_t>(t.rows) * (t.cols + 2) > kMaxIrDropCells) {
    throw Error("crossbar.wire_resistance_ohm: IR drop is solved on tiles of at most " +
                std::to_string(kMaxIrDropCells) + " cells (rows x (columns + 2)); this tile has " +
                std::to_string(static_cast<std::int64_t>(t.rows) * (t.cols + 2)));
  }
}

}  // namespace

namespace {

// The nodal solution: the voltage across every cell and at every bit-line node, rows x (cols + 2).
void solve_nodes(const TileCircuit& t, std::vector<double>& across, std::vector<double>& bit_v) {
  check_shape(t);
  const int rows = t.rows, width = t.cols + 2;
  across.assign(static_cast<std::size_t>(rows) * width, 0.0);
  bit_v.assign(across.size(), 0.0);
  if (t.wire_ohm <= 0.0) {
    for (int r = 0; r < rows; ++r) {
      if (!t.driven[static_cast<std::size_t>(r)]) continue;
      std::fill_n(across.begin() + static_cast<std::ptrdiff_t>(r) * width, width, t.read_v);
    }
    return;
  }
  // Unknowns: bit line node (r, c) at r * width + c for every row; read line node (k, c) of the
  // k-th driven row after them.
  std::vector<int> line(static_cast<std::size_t>(rows), -1);
  int driven = 0;
  for (int r = 0; r < rows; ++r) {
    if (t.driven[static_cast<std::size_t>(r)]) line[static_cast<std::size_t>(r)] = driven++;
  }
  const int bit_nodes = rows * width;
  const int n = bit_nodes + driven * width;
  const auto bit = [&](int r, int c) { return r * width + c; };
  const auto read = [&](int r, int c) { return bit_nodes + line[static_cast<std::size_t>(r)] * width + c; };
  const double gw = 1.0 / t.wire_ohm;
  std::vector<Eigen::Triplet<double>> entries;
  entries.reserve(static_cast<std::size_t>(n) * 7);
  Eigen::VectorXd rhs = Eigen::VectorXd::Zero(n);
  const auto connect = [&](int i, int j, double g) {
    entries.emplace_back(i, i, g);
    entries.emplace_back(j, j, g);
    entries.emplace_back(i, j, -g);
    entries.emplace_back(j, i, -g);
  };
  for (int c = 0; c < width; ++c) {
    for (int r = 0; r + 1 < rows; ++r) connect(bit(r, c), bit(r + 1, c), gw);
    entries.emplace_back(bit(rows - 1, c), bit(rows - 1, c), gw);  // to the amplifier's virtual ground
  }
  for (int r = 0; r < rows; ++r) {
    if (line[static_cast<std::size_t>(r)] < 0) continue;
    entries.emplace_back(read(r, 0), read(r, 0), gw);  // from the driver at read_v
    rhs[read(r, 0)] += gw * t.read_v;
    for (int c = 0; c + 1 < width; ++c) connect(read(r, c), read(r, c + 1), gw);
    for (int c = 0; c < width; ++c) {
      const double g = cell_g(t, r, c);
      if (g > 0.0) connect(read(r, c), bit(r, c), g);
    }
  }
  Eigen::SparseMatrix<double> a(n, n);
  a.setFromTriplets(entries.begin(), entries.end());
  Eigen::SimplicialLDLT<Eigen::SparseMatrix<double>> solver(a);
  if (solver.info() != Eigen::Success) throw Error("IR drop: the tile's nodal equations could not be factorized");
  const Eigen::VectorXd v = solver.solve(rhs);
  if (solver.info() != Eigen::Success || !v.allFinite()) {
    throw Error("crossbar.wire_resistance_ohm: the tile's nodal equations have no finite solution");
  }
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < width; ++c) bit_v[static_cast<std::size_t>(bit(r, c))] = v[bit(r, c)];
    if (line[static_cast<std::size_t>(r)] < 0) continue;
    for (int c = 0; c < width; ++c) across[static_cast<std::size_t>(bit(r, c))] = v[read(r, c)] - v[bit(r, c)];
  }
}

}  // namespace

std::vector<double> nodal_cell_voltages(const TileCircuit& t) {
  std::vector<double> across, bit_v;
  solve_nodes(t, across, bit_v);
  return across;
}

std::vector<double> nodal_column_values(const TileCircuit& t, double g_half) {
  const std::vector<double> across = nodal_cell_voltages(t);
  const int width = t.cols + 2;
  std::vector<double> current(static_cast<std::size_t>(width), 0.0);
  for (int r = 0; r < t.rows; ++r) {
    for (int c = 0; c < width; ++c) current[static_cast<std::size_t>(c)] += cell_g(t, r, c) * across[static_cast<std::size_t>(r) * width + c];
  }
  const double reference = 0.5 * (current[static_cast<std::size_t>(t.cols)] + current[static_cast<std::size_t>(t.cols) + 1]);
  std::vector<double> values(static_cast<std::size_t>(t.cols));
  for (int c = 0; c < t.cols; ++c) values[static_cast<std::size_t>(c)] = (current[static_cast<std::size_t>(c)] - reference) / (t.read_v * g_half);
  return values;
}

std::shared_ptr<const IrDropMap> ir_drop_map(int rows, int cols, double g_p, double g_ap, double wire_ohm,
                                             double read_v) {
  using Key = std::tuple<int, int, double, double, double, double>;
  static std::mutex mutex;
  static std::map<Key, std::shared_ptr<const IrDropMap>> cache;
  const Key key{rows, cols, g_p, g_ap, wire_ohm, read_v};
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto found = cache.find(key); found != cache.end()) return found->second;
  }
  TileCircuit t;
  t.rows = rows;
  t.cols = cols;
  t.g.assign(static_cast<std::size_t>(rows) * cols, 0.5 * (g_p + g_ap));
  t.driven.assign(static_cast<std::size_t>(rows), 1);
  t.ref_p.assign(static_cast<std::size_t>(rows), g_p);
  t.ref_ap.assign(static_cast<std::size_t>(rows), g_ap);
  t.wire_ohm = wire_ohm;
  t.read_v = read_v;
  std::vector<double> across, bit_v;
  solve_nodes(t, across, bit_v);
  auto map = std::make_shared<IrDropMap>();
  map->rows = rows;
  map->cols = cols;
  map->g_p = g_p;
  map->g_ap = g_ap;
  map->wire_ohm = wire_ohm;
  map->read_v = read_v;
  map->across.resize(across.size());
  map->bit.resize(across.size());
  for (std::size_t i = 0; i < across.size(); ++i) {
    map->across[i] = across[i] / read_v;
    map->bit[i] = bit_v[i] / read_v;
  }
  std::lock_guard<std::mutex> lock(mutex);
  return cache.emplace(key, std::move(map)).first->second;
}

TileReads fast_tile_reads(const IrDropMap& map, const std::vector<double>& g, const std::vector<double>& ref_p,
                          const std::vector<double>& ref_ap) {
  const int rows = map.rows, cols = map.cols, width = cols + 2;
  const double rw = map.wire_ohm, g_mid = 0.5 * (map.g_p + map.g_ap);
  TileReads reads;
  reads.rows = rows;
  reads.cols = cols;
  reads.cell.assign(static_cast<std::size_t>(rows) * cols * 2, 0.0);
  reads.ref.assign(static_cast<std::size_t>(rows) * 2, 0.0);
  // W_k: the bit-line segments row k's current shares with every row's, summed over the rows.
  std::vector<double> shared(static_cast<std::size_t>(rows));
  for (int k = 0; k < rows; ++k) {
    // sum over r of (rows - max(r, k)) = k (rows - k) + sum_{r >= k} (rows - r)
    const double n = rows - k;
    shared[static_cast<std::size_t>(k)] = k * n + n * (n + 1) / 2;
  }
  std::vector<double> s(static_cast<std::size_t>(width)), u(static_cast<std::size_t>(width)), y(static_cast<std::size_t>(width));
  std::vector<double> cp(static_cast<std::size_t>(width)), dp(static_cast<std::size_t>(width));
  const double gw = 1.0 / rw;
  for (int r = 0; r < rows; ++r) {
    for (int one = 0; one < 2; ++one) {
      for (int c = 0; c < width; ++c) {
        s[static_cast<std::size_t>(c)] = c < cols ? g[(static_cast<std::size_t>(r) * cols + c) * 2 + one]
                                                  : (c == cols ? ref_p : ref_ap)[static_cast<std::size_t>(r)];
        u[static_cast<std::size_t>(c)] = map.bit_at(r, c);
      }
      // The read line in units of read_voltage_v: node c has gw to each neighbour (the driver at 1
      // left of node 0, none right of the last) and s_c to its bit-line node at u_c.
      // Thomas algorithm on -gw y_{c-1} + (gw_left + gw_right + s_c) y_c - gw y_{c+1} = rhs_c.
      for (int c = 0; c < width; ++c) {
        const auto i = static_cast<std::size_t>(c);
        const double diag = gw + (c + 1 < width ? gw : 0.0) + s[i];
        const double rhs = s[i] * u[i] + (c == 0 ? gw : 0.0);
        const double lower = c == 0 ? 0.0 : -gw;
        const double denom = diag - lower * (c == 0 ? 0.0 : cp[i - 1]);
        cp[i] = (c + 1 < width ? -gw : 0.0) / denom;
        dp[i] = (rhs - lower * (c == 0 ? 0.0 : dp[i - 1])) / denom;
      }
      for (int c = width - 1; c >= 0; --c) {
        const auto i = static_cast<std::size_t>(c);
        y[i] = dp[i] - (c + 1 < width ? cp[i] * y[i + 1] : 0.0);
      }
      for (int c = 0; c < width; ++c) {
        const auto i = static_cast<std::size_t>(c);
        const double current = s[i] * (y[i] - u[i]);
        // What the map's bit line assumed this cell carries, and the column's mean conductance.
        const double assumed = (c < cols ? g_mid : (c == cols ? map.g_p : map.g_ap)) * map.at(r, c);
        const double column_g = c < cols ? g_mid : (c == cols ? map.g_p : map.g_ap);
        const double read = current - rw * column_g * shared[static_cast<std::size_t>(r)] * (current - assumed);
        if (c < cols) {
          reads.cell[(static_cast<std::size_t>(r) * cols + c) * 2 + one] = read;
        } else {
          reads.ref[static_cast<std::size_t>(r) * 2 + one] += 0.5 * read;
        }
      }
    }
  }
  return reads;
}

namespace {

// The bit-line ladders of a relief's three columns (the mean column and the two reference
// columns) in read-voltage units: rows nodes, a segment of conductance gw between neighbours and
// below the last row to the amplifier's ground, row r's cell g[k] to its read line at line[k][r]
// where driven. Thomas algorithm, the three interleaved row by row so that their division chains
// overlap.
void bit_ladders(int rows, double gw, const double* g, const std::vector<double>* const* line, const char* driven,
                 double* const* v) {
  thread_local std::vector<double> cp, dp;
  cp.resize(3 * static_cast<std::size_t>(rows));
  dp.resize(3 * static_cast<std::size_t>(rows));
  for (int r = 0; r < rows; ++r) {
    const auto i = static_cast<std::size_t>(r);
    const double lower = r > 0 ? -gw : 0.0, upper = r + 1 < rows ? -gw : 0.0;
    for (int k = 0; k < 3; ++k) {
      const double shunt = driven[r] ? g[k] : 0.0;
      const double diag = (r > 0 ? gw : 0.0) + gw + shunt;
      const double denom = diag - (r > 0 ? lower * cp[3 * (i - 1) + k] : 0.0);
      cp[3 * i + k] = upper / denom;
      dp[3 * i + k] = (shunt * (*line[k])[i] - (r > 0 ? lower * dp[3 * (i - 1) + k] : 0.0)) / denom;
    }
  }
  for (int r = rows - 1; r >= 0; --r) {
    const auto i = static_cast<std::size_t>(r);
    for (int k = 0; k < 3; ++k) v[k][r] = dp[3 * i + k] - (r + 1 < rows ? cp[3 * i + k] * v[k][r + 1] : 0.0);
  }
}

}  // namespace

BitLineRelief bit_line_relief(const IrDropMap& map) {
  static std::atomic<std::uint64_t> serials{0};
  BitLineRelief relief;
  relief.serial = ++serials;
  const int rows = relief.rows = map.rows;
  relief.g_p = map.g_p;
  relief.g_ap = map.g_ap;
  relief.g_mid = 0.5 * (map.g_p + map.g_ap);
  relief.g_half = 0.5 * (map.g_p - map.g_ap);
  relief.wire_ohm = map.wire_ohm;
  relief.line.assign(static_cast<std::size_t>(rows), 0.0);
  relief.line_p.resize(static_cast<std::size_t>(rows));
  relief.line_ap.resize(static_cast<std::size_t>(rows));
  for (int r = 0; r < rows; ++r) {
    const auto i = static_cast<std::size_t>(r);
    for (int c = 0; c < map.cols; ++c) relief.line[i] += (map.at(r, c) + map.bit_at(r, c)) / map.cols;
    relief.line_p[i] = map.at(r, map.cols) + map.bit_at(r, map.cols);
    relief.line_ap[i] = map.at(r, map.cols + 1) + map.bit_at(r, map.cols + 1);
  }
  const std::vector<char> all(static_cast<std::size_t>(rows), 1);
  relief.full.resize(static_cast<std::size_t>(rows));
  relief.full_p.resize(static_cast<std::size_t>(rows));
  relief.full_ap.resize(static_cast<std::size_t>(rows));
  const double g[3] = {relief.g_mid, relief.g_p, relief.g_ap};
  const std::vector<double>* lines[3] = {&relief.line, &relief.line_p, &relief.line_ap};
  double* full[3] = {relief.full.data(), relief.full_p.data(), relief.full_ap.data()};
  bit_ladders(rows, 1.0 / map.wire_ohm, g, lines, all.data(), full);
  return relief;
}

double BitLineRelief::betas(const char* driven, double* beta, double* beta_p, double* beta_ap) const {
  const double gw = 1.0 / wire_ohm;
  const double g[3] = {g_mid, g_p, g_ap};
  const std::vector<double>* lines[3] = {&line, &line_p, &line_ap};
  double* v[3] = {beta, beta_p, beta_ap};
  bit_ladders(rows, gw, g, lines, driven, v);
  double shared = 0.0;
  for (int r = 0; r < rows; ++r) {
    const auto i = static_cast<std::size_t>(r);
    beta[r] = full[i] - beta[r];
    beta_p[r] = full_p[i] - beta_p[r];
    beta_ap[r] = full_ap[i] - beta_ap[r];
    if (driven[r]) shared += (g_mid * beta[r] - 0.5 * (g_p * beta_p[r] + g_ap * beta_ap[r])) / g_half;
  }
  return shared;
}

FastModelError fast_model_error(int rows, int cols, double g_p, double g_ap, double wire_ohm, double read_v,
                                double drive, int draws, std::uint64_t seed) {
  const auto map = ir_drop_map(rows, cols, g_p, g_ap, wire_ohm, read_v);
  const BitLineRelief relief = bit_line_relief(*map);
  const double g_half = 0.5 * (g_p - g_ap);
  FastModelError e;
  double n = 0, sq = 0, map_sq = 0, drop_sq = 0, value_sq = 0;
  std::vector<double> beta(static_cast<std::size_t>(rows)), beta_p(beta), beta_ap(beta);
  for (int d = 0; d < draws; ++d) {
    // Random weights and inputs; each cell's conductance for either input bit (P where they match).
    std::vector<double> both(static_cast<std::size_t>(rows) * cols * 2);
    std::vector<char> x(static_cast<std::size_t>(rows));
    TileCircuit t;
    t.rows = rows;
    t.cols = cols;
    t.wire_ohm = wire_ohm;
    t.read_v = read_v;
    t.ref_p.assign(static_cast<std::size_t>(rows), g_p);
    t.ref_ap.assign(static_cast<std::size_t>(rows), g_ap);
    t.driven.resize(static_cast<std::size_t>(rows));
    t.g.resize(static_cast<std::size_t>(rows) * cols);
    for (int r = 0; r < rows; ++r) {
      t.driven[static_cast<std::size_t>(r)] = uniform_at(seed, streams::kIrDropCheck, d, r, 0) < drive;
      x[static_cast<std::size_t>(r)] = uniform_at(seed, streams::kIrDropCheck, d, r, 1) < 0.5;
      for (int c = 0; c < cols; ++c) {
        const bool w = uniform_at(seed, streams::kIrDropCheck, d, r, 2 + c) < 0.5;
        const std::size_t i = static_cast<std::size_t>(r) * cols + c;
        both[2 * i + 1] = w ? g_p : g_ap;
        both[2 * i] = w ? g_ap : g_p;
        t.g[i] = both[2 * i + x[static_cast<std::size_t>(r)]];
      }
    }
    const TileReads reads = fast_tile_reads(*map, both, t.ref_p, t.ref_ap);
    const double shared = relief.betas(t.driven.data(), beta.data(), beta_p.data(), beta_ap.data());
    const std::vector<double> nodal = nodal_column_values(t, g_half);
    TileCircuit ideal = t;
    ideal.wire_ohm = 0.0;
    const std::vector<double> plain = nodal_column_values(ideal, g_half);
    for (int c = 0; c < cols; ++c) {
      double fast = 0.0, given_back = shared;
      for (int r = 0; r < rows; ++r) {
        if (!t.driven[static_cast<std::size_t>(r)]) continue;
        const int one = x[static_cast<std::size_t>(r)];
        fast += (reads.cell[(static_cast<std::size_t>(r) * cols + c) * 2 + one] - reads.ref[static_cast<std::size_t>(r) * 2 + one]) / g_half;
        const double s = t.g[static_cast<std::size_t>(r) * cols + c] == g_p ? 1.0 : -1.0;
        given_back += beta[static_cast<std::size_t>(r)] * s;
      }
      const auto i = static_cast<std::size_t>(c);
      const double err = fast + given_back - nodal[i], drop = plain[i] - nodal[i];
      map_sq += (fast - nodal[i]) * (fast - nodal[i]);
      sq += err * err;
      drop_sq += drop * drop;
      value_sq += nodal[i] * nodal[i];
      e.max = std::max(e.max, std::fabs(err));
      e.drop_max = std::max(e.drop_max, std::fabs(drop));
      n += 1;
    }
  }
  e.rms = std::sqrt(sq / n);
  e.map_only_rms = std::sqrt(map_sq / n);
  e.drop_rms = std::sqrt(drop_sq / n);
  e.value_rms = std::sqrt(value_sq / n);
  return e;
}

}  // namespace spinbayes
