#pragma once
// A chip specification for the yield: requirements on the per-chip metrics, e.g.
// "accuracy>=0.89,ece<=0.05,auroc.mnist>=0.9". A chip meets the spec when it meets every one.
#include <string>
#include <string_view>
#include <vector>

namespace spinbayes {

enum class Comparison { at_least, at_most, above, below };  // >=, <=, >, <

struct Requirement {
  std::string metric;
  Comparison comparison = Comparison::at_least;
  double bound = 0;
  bool met_by(double value) const;
  std::string text() const;  // as written canonically, "accuracy>=0.89"
};

struct YieldSpec {
  std::vector<Requirement> requirements;
  std::string text() const;  // the canonical form, requirements joined by ','
};

// `text`: requirements "METRIC OP NUMBER" (OP: >=, <=, >, <) separated by commas, blanks around
// the parts allowed. Every metric must be one of `metrics`. Throws Error("<option>: ...") naming
// the requirement that does not parse, or the unknown metric with the known ones.
YieldSpec parse_yield_spec(std::string_view text, const std::vector<std::string>& metrics,
                           const std::string& option = "--spec");

}  // namespace spinbayes
