// The energy convention: every event priced at what it draws from the supply, V_DD x I x t or
// C V_DD^2, with the MTJ's own dissipation a part of it; the element/spatial ratio of dropout-module
// energy under each accounting, recomputed from its per-event energies and the counts; conditional
// reset's counts.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numbers>
#include <string>

#include "core/error.h"
#include "cost/cost_model.h"
#include "cost/technology.h"
#include "cost_fixtures.h"
#include "hw/mtj.h"

using namespace spinbayes;
using namespace spinbayes::testing;
namespace fs = std::filesystem;

namespace {

void expect_near_rel(double actual, double expected, const std::string& what, double rel = 1e-9) {
  EXPECT_NEAR(actual, expected, rel * std::max(1e-12, std::abs(expected))) << what;
}

// The closed forms from the hardware config's own quantities: R_P = RA / (pi d^2 / 4), R_AP(V) =
// R_P (1 + TMR / (1 + (V / V_h)^2)), the write current of thermal activation (n = 1):
// I = Ic0 (1 - ln(tau / tau0) / Delta), tau = -t / ln(1 - p).
struct ClosedForms {
  double rp, rap_read, iw;
};
ClosedForms closed_forms(const HardwareConfig& hw, double p) {
  const double radius_um = hw.mtj.diameter_nm * 1e-3 / 2;
  ClosedForms c;
  c.rp = hw.mtj.ra_ohm_um2 / (std::numbers::pi * radius_um * radius_um);
  const double v = hw.crossbar.read_voltage_v / hw.mtj.tmr_half_bias_v;
  c.rap_read = c.rp * (1 + hw.mtj.tmr / (1 + v * v));
  const double tau = -hw.dropout_module.pulse_width_ns / std::log(1 - p);
  c.iw = hw.mtj.ic0_ua * (1 - std::log(tau / hw.mtj.tau0_ns) / hw.mtj.delta);
  return c;
}

}  // namespace

TEST(CostEnergy, ModuleEventsAreSupplyTimesCurrentTimesPulse) {
  const HardwareConfig hw = HardwareConfig::unwired();
  ASSERT_EQ(hw.mtj.switching_exponent, 1.0);
  ASSERT_EQ(hw.crossbar.access_resistance_ohm, 0.0);
  for (const double p : {0.05, 0.1, 0.3}) {
    SCOPED_TRACE(p);
    const Technology t = Technology::defaults(hw, p);
    const ClosedForms c = closed_forms(hw, p);
    const double vdd = t.supply.vdd_v, v = hw.crossbar.read_voltage_v;
    const DropoutModuleParams& dm = hw.dropout_module;
    expect_near_rel(t.module.write_current_ua, c.iw, "write current", 1e-9);
    // V [V] x I [uA] x t [ns] = fJ.
    expect_near_rel(t.module.write_pj * 1e3, vdd * c.iw * dm.pulse_width_ns, "write");
    expect_near_rel(t.module.reset_pj * 1e3, vdd * dm.reset_current_ua * dm.reset_pulse_ns, "reset");
    const double read_ua = v * ((1 - p) / c.rp + p / c.rap_read) * 1e6;  // modules in P, and the p in AP
    expect_near_rel(t.module.read_fj, vdd * read_ua * t.module.read_ns + t.sense.capacitance_ff * vdd * vdd, "read");
    // The MTJ's parts: I^2 R t and V^2 G t, each below the supply's figure.
    expect_near_rel(t.module.write_mtj_fj, c.iw * c.iw * 1e-12 * c.rp * dm.pulse_width_ns * 1e6, "write, MTJ part");
    expect_near_rel(t.module.read_mtj_fj, v * v * ((1 - p) / c.rp + p / c.rap_read) * t.module.read_ns * 1e6,
                    "read, MTJ part");
    // The reset's AP modules at their bias: between R_P and R_AP at zero bias, and V = I R_AP(V).
    const double i_r = dm.reset_current_ua * 1e-6, t_r = dm.reset_pulse_ns * 1e-9;
    const double r_mean = t.module.reset_mtj_fj * 1e-15 / (i_r * i_r * t_r);
    const double rap_reset = (r_mean - (1 - p) * c.rp) / p;
    const double bias = i_r * rap_reset / hw.mtj.tmr_half_bias_v;
    expect_near_rel(rap_reset, c.rp * (1 + hw.mtj.tmr / (1 + bias * bias)), "R_AP at the reset's bias", 1e-6);
    EXPECT_GT(rap_reset, c.rp);
    EXPECT_LT(rap_reset, c.rap_read);
    EXPECT_LT(t.module.write_mtj_fj, t.module.write_pj * 1e3);
    EXPECT_LT(t.module.reset_mtj_fj, t.module.reset_pj * 1e3);
    EXPECT_LT(t.module.read_mtj_fj, t.module.read_fj);
    EXPECT_LT(t.crossbar.cell_read_mtj_fj, t.crossbar.cell_read_fj);
    // Capacitive events: C V_DD^2; the trim DAC's reference branch: V_DD x fraction x I_w x t_w.
    expect_near_rel(t.crossbar.wordline_fj, t.crossbar.wordline_capacitance_ff * vdd * vdd, "word line");
    expect_near_rel(t.sense.decision_fj, t.sense.capacitance_ff * vdd * vdd, "sense decision");
    expect_near_rel(t.decoder.fj, t.decoder.capacitance_ff * vdd * vdd, "decoder");
    expect_near_rel(t.module.trim_dac_fj, vdd * t.module.trim_dac_bias_fraction * c.iw * dm.pulse_width_ns, "trim DAC");
  }
}

TEST(CostEnergy, SupplyOverrideRepricesWhatTheFileDoesNotSet) {
  const auto dir = fresh_dir("supply");
  const HardwareConfig hw = HardwareConfig::defaults();
  const Technology base = Technology::defaults(hw);
  write_file(dir / "supply.json", R"({"supply": {"vdd_v": 1.0}, "module": {"reset_pj": 0.5, "reset": "conditional"}})");
  const Technology t = Technology::load((dir / "supply.json").string(), hw);
  const double scale = 1.0 / base.supply.vdd_v;
  expect_near_rel(t.module.write_pj, base.module.write_pj * scale, "write follows V_DD");
  expect_near_rel(t.crossbar.cell_read_fj, base.crossbar.cell_read_fj * scale, "cell read follows V_DD");
  expect_near_rel(t.crossbar.wordline_fj, base.crossbar.wordline_fj * scale * scale, "word line follows V_DD^2");
  EXPECT_EQ(t.module.reset_pj, 0.5);  // set by the file
  EXPECT_EQ(t.module.reset, ResetPolicy::conditional);
  EXPECT_EQ(t.module.write_mtj_fj, base.module.write_mtj_fj);  // the MTJ's part does not depend on the supply
  // Validated like every key.
  write_file(dir / "bad.json", R"({"supply": {"vdd_v": 12}})");
  EXPECT_THROW(Technology::load((dir / "bad.json").string(), hw), Error);
  write_file(dir / "bad-reset.json", R"({"module": {"reset": "sometimes"}})");
  EXPECT_THROW(Technology::load((dir / "bad-reset.json").string(), hw), Error);
  // Files that set nothing (an empty object, empty sections): the defaults.
  for (const char* nothing : {"{}", R"({"module": {}})", R"({"module": {}, "supply": {}})"}) {
    write_file(dir / "empty.json", nothing);
    Technology same = Technology::load((dir / "empty.json").string(), hw);
    EXPECT_EQ(same.table().to_commented_json(), Technology::defaults(hw).table().to_commented_json()) << nothing;
  }
  fs::remove_all(dir);
}

TEST(CostEnergy, ConditionalResetReadsFirstAndResetsTheApModules) {
  const HardwareConfig hw = HardwareConfig::unwired();
  const double p = 0.2;
  Technology always = Technology::defaults(hw, p), conditional = always;
  conditional.module.reset = ResetPolicy::conditional;
  const ModelSpec spec = spec_of("vgg-small", 8, "all", DropoutKind::spatial, p);
  const CostReport a = cost_report(spec, hw, always, 5), c = cost_report(spec, hw, conditional, 5);
  const double ap = a.rates.p;  // p and what failed resets add (module_rates)
  EXPECT_NEAR(ap, p, 1e-5);
  for (const DropoutKind s : {DropoutKind::element, DropoutKind::spatial}) {
    SCOPED_TRACE(to_string(s));
    for (std::size_t i = 0; i < a.mapping.size(); ++i) {
      const EventCounts& ea = a.scheme(s).layers[i].pass;
      const EventCounts& ec = c.scheme(s).layers[i].pass;
      EXPECT_DOUBLE_EQ(ec.module_resets, ap * ea.module_resets);
      EXPECT_DOUBLE_EQ(ec.module_writes, ea.module_writes);
      EXPECT_DOUBLE_EQ(ec.module_reads, ea.module_reads + ea.module_resets);
    }
    const EventCounts& n = a.scheme(s).total.inference;
    // Reads priced by the state they find: an AP fraction ap of them.
    const double read_fj = (1 - ap) * always.module.read_p_fj + ap * always.module.read_ap_fj;
    expect_near_rel(c.scheme(s).total.energy.modules_pj,
                    ap * n.module_resets * always.module.reset_pj + n.module_writes * always.module.write_pj +
                        (n.module_reads + n.module_resets) * read_fj * 1e-3,
                    "module energy");
    // Each write round reads first.
    EXPECT_GT(c.scheme(s).total.latency_ns, a.scheme(s).total.latency_ns);
  }
}

TEST(CostEnergy, AccountingRatiosFollowTheirEnergiesAndTheCounts) {
  const HardwareConfig hw = HardwareConfig::unwired();
  const double p = 0.1;
  const Technology t = Technology::defaults(hw, p);
  const CostReport r = cost_report(spec_of("vgg-small", 16, "all", DropoutKind::spatial, p), hw, t, 20);
  ASSERT_GE(r.accountings.size(), 8u);
  // Counts: the sum over layers of the schemes' module events per inference.
  EventCounts el, sp;
  for (std::size_t i = 0; i < r.mapping.size(); ++i) {
    el += r.scheme(DropoutKind::element).layers[i].inference;
    sp += r.scheme(DropoutKind::spatial).layers[i].inference;
  }
  const ClosedForms c = closed_forms(hw, p);
  const DropoutModuleParams& dm = hw.dropout_module;
  int conditional_seen = 0;
  for (const ModuleAccounting& a : r.accountings) {
    SCOPED_TRACE(a.name);
    const EventCounts e = a.conditional_reset ? conditional_reset_events(el) : el;
    const EventCounts s = a.conditional_reset ? conditional_reset_events(sp) : sp;
    EXPECT_DOUBLE_EQ(a.element.module_resets, e.module_resets);
    EXPECT_DOUBLE_EQ(a.element.module_reads, e.module_reads);
    EXPECT_DOUBLE_EQ(a.spatial.module_reads, s.module_reads);
    const double el_pj = e.module_resets * a.reset_pj + e.module_writes * a.write_pj + e.module_reads * a.read_fj * 1e-3;
    const double sp_pj = s.module_resets * a.reset_pj + s.module_writes * a.write_pj + s.module_reads * a.read_fj * 1e-3;
    expect_near_rel(a.ratio(), el_pj / sp_pj, "ratio");
    EXPECT_GT(a.ratio(), 1.0);
    if (a.vdd_v > 0 && a.read_v == hw.crossbar.read_voltage_v && a.name.find("NVSim") == std::string::npos &&
        a.name.find("earlier") == std::string::npos) {
      // Supply-referred: V x I x t.
      expect_near_rel(a.write_pj * 1e3, a.vdd_v * c.iw * dm.pulse_width_ns, "write");
      expect_near_rel(a.reset_pj * 1e3, a.vdd_v * dm.reset_current_ua * dm.reset_pulse_ns, "reset");
    }
    conditional_seen += a.conditional_reset ? 1 : 0;
  }
  EXPECT_EQ(conditional_seen, 1);
  // The first accounting is the technology's own, and its ratio the report's.
  expect_near_rel(r.accountings.front().ratio(), r.dropout_energy_element_over_spatial(), "this technology");
  // The earlier figures: 0.1 pJ writes, a read of V_read^2 G t with a 5 fJ sense decision.
  bool earlier = false;
  for (const ModuleAccounting& a : r.accountings) {
    if (a.name.find("earlier") == std::string::npos) continue;
    earlier = true;
    const double v = hw.crossbar.read_voltage_v;
    EXPECT_EQ(a.write_pj, 0.1);
    expect_near_rel(a.read_fj, v * v * 0.5 * (1 / c.rp + 1 / c.rap_read) * t.module.read_ns * 1e6 + 5.0, "read");
  }
  EXPECT_TRUE(earlier);
  // Dearer reads against the same writes narrow the gap: the 0.25 V read's ratio is the lowest of
  // the supply-referred ones at V_DD.
  double at_vdd = 0, quarter_volt = 0;
  for (const ModuleAccounting& a : r.accountings) {
    if (a.read_v == 0.25) quarter_volt = a.ratio();
  }
  at_vdd = r.accountings.front().ratio();
  EXPECT_GT(quarter_volt, 0.0);
  EXPECT_LT(quarter_volt, at_vdd);
}
