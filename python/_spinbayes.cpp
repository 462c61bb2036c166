// The compiled part of the Python package `spinbayes` (python/spinbayes/__init__.py wraps it):
// models from run directories or ONNX files, Monte Carlo predictions on the engine or a simulated
// chip with numpy in and out (the GIL released while they run), the chip's ledger, the cost model,
// hardware configs and the uncertainty metrics. Errors are spinbayes.Error with the CLI's message.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "cost/cost_model.h"
#include "cost/technology.h"
#include "engine/engine.h"
#include "hw/chip.h"
#include "hw/hardware_config.h"
#include "hw/ledger.h"
#include "interop/onnx_import.h"
#include "model/model_ir.h"
#include "train/export.h"
#include "train/run.h"
#include "uncertainty/metrics.h"

namespace py = pybind11;
using namespace spinbayes;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

// A hardware config: a preset name or file path, or JSON text (a dict from Python) applied over
// the defaults, validated as the CLI validates a file.
HardwareConfig hardware(const std::string& source, const std::string& json_text) {
  if (json_text.empty()) return HardwareConfig::load(source.empty() ? "default" : source, "hw");
  HardwareConfig hw = HardwareConfig::defaults();
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    throw Error("hw: not valid JSON");
  }
  hw.table().apply(doc, "hw");
  hw.validate("hw");
  return hw;
}

nlohmann::json hardware_json(HardwareConfig hw) {
  // The commented form is what `spinbayes hw` prints; comments are skipped here.
  return nlohmann::json::parse(hw.table().to_commented_json(), nullptr, true, true);
}

py::object to_python(const nlohmann::json& j) {
  return py::module_::import("json").attr("loads")(j.dump());
}

class Model {
 public:
  static Model load(const std::string& path, const std::string& dropout, double p, const std::string& dropout_layers) {
    Model m;
    if (path.find('\0') != std::string::npos) throw Error("path: holds a NUL byte");
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
      load_run_config(path);  // a run directory, its configuration readable
      m.ir_ = std::make_shared<const ModelIR>(load_model_ir(ensure_model_ir(path)));
      m.origin_ = path;
    } else {
      ImportDropout d;
      d.kind = parse_dropout_kind(dropout);
      d.p = p;
      d.layers = dropout_layers;
      if (d.kind != DropoutKind::none && !(p > 0.0 && p < 1.0)) throw Error("p: dropout " + dropout + " needs a probability in (0, 1)");
      m.ir_ = std::make_shared<const ModelIR>(import_onnx_file(path, d));
      m.origin_ = path;
    }
    m.engine_ = std::make_shared<const Engine>(*m.ir_);
    return m;
  }

  // [T, N, classes] probabilities (or logits).
  FloatArray predict(const FloatArray& images, int samples, std::uint64_t seed, const std::string& backend,
                     const std::string& hw, const std::string& hw_json, std::uint64_t chip_seed, bool dropout, bool logits) const {
    const ImageSet set = image_set(images);
    if (samples < 1 || samples > 100000) throw Error("samples: must be in 1..100000");
    std::vector<float> raw;
    McPredictions mc;
    {
      py::gil_scoped_release release;
      if (backend == "engine") {
        mc = engine_->predict(set, samples, seed, dropout, nullptr, &raw);
      } else if (backend == "cim") {
        const Chip chip(*ir_, hardware(hw, hw_json), chip_seed);
        mc = chip.predict(set, samples, seed, dropout, nullptr, &raw);
      } else {
        throw Error("backend: '" + backend + "' is not one of engine, cim");
      }
    }
    FloatArray out({mc.samples, mc.inputs, mc.classes});
    const std::vector<float>& values = logits ? raw : mc.probs;
    std::copy(values.begin(), values.end(), out.mutable_data());
    return out;
  }

  // The chip's event ledger of a run over `images`, as `eval --backend cim` reports it.
  py::object ledger(const FloatArray& images, int samples, std::uint64_t seed, const std::string& hw, const std::string& hw_json,
                    std::uint64_t chip_seed) const {
    const ImageSet set = image_set(images);
    if (samples < 1 || samples > 100000) throw Error("samples: must be in 1..100000");
    nlohmann::json j;
    {
      py::gil_scoped_release release;
      const Chip chip(*ir_, hardware(hw, hw_json), chip_seed);
      Ledger ledger;
      chip.predict(set, samples, seed, true, &ledger);
      j = ledger_json(ledger, chip.mapping());
    }
    return to_python(j);
  }

  // The hardware bill per dropout scheme, as `spinbayes cost --json` writes it.
  py::object cost(const std::string& hw, const std::string& hw_json, const std::string& tech, int samples, double p) const {
    const HardwareConfig config = hardware(hw, hw_json);
    // The technology's module energies follow the priced drop probability, as `spinbayes cost` derives them.
    const double priced = priced_p(ir_->spec, p);
    const Technology technology =
        Technology::load(tech.empty() ? "default" : tech, config, priced > 0 && priced < 1 ? priced : ModelSpec{}.p);
    const CostReport report = cost_report(ir_->spec, config, technology, samples, p);
    return to_python(cost_json(report));
  }

  py::object spec() const { return to_python(nlohmann::json(ir_->spec)); }
  std::vector<int> input_shape() const { return {ir_->spec.channels, ir_->spec.height, ir_->spec.width_px}; }
  int classes() const { return ir_->spec.classes; }
  std::string origin() const { return origin_; }

 private:
  ImageSet image_set(const FloatArray& images) const {
    if (images.ndim() != 4) throw Error("images: an array of rank " + std::to_string(images.ndim()) + ", expected 4 (N x C x H x W)");
    ImageSet set;
    set.name = "images";
    if (images.shape(0) < 1 || images.shape(0) > 10000000) throw Error("images: needs 1..10^7 images");
    set.n = static_cast<int>(images.shape(0));
    set.c = static_cast<int>(images.shape(1));
    set.h = static_cast<int>(images.shape(2));
    set.w = static_cast<int>(images.shape(3));
    ir_->spec.check_input("images", set.c, set.h, set.w);
    set.pixels.assign(images.data(), images.data() + images.size());
    for (const float v : set.pixels) {
      if (!std::isfinite(v)) throw Error("images: a value is not finite");
    }
    return set;
  }

  std::shared_ptr<const ModelIR> ir_;
  std::shared_ptr<const Engine> engine_;
  std::string origin_;
};

// Probabilities [T, N, K] (or [N, K]: one pass) as the metrics' Monte Carlo predictions.
McPredictions predictions(const FloatArray& probs) {
  McPredictions mc;
  if (probs.ndim() == 2) {
    mc.samples = 1;
    mc.inputs = static_cast<int>(probs.shape(0));
    mc.classes = static_cast<int>(probs.shape(1));
  } else if (probs.ndim() == 3) {
    mc.samples = static_cast<int>(probs.shape(0));
    mc.inputs = static_cast<int>(probs.shape(1));
    mc.classes = static_cast<int>(probs.shape(2));
  } else {
    throw Error("probs: an array of rank " + std::to_string(probs.ndim()) + ", expected 3 (T x N x classes) or 2 (N x classes)");
  }
  if (mc.samples < 1 || mc.inputs < 1 || mc.classes < 2) throw Error("probs: needs samples, inputs and at least 2 classes");
  mc.probs.assign(probs.data(), probs.data() + probs.size());
  for (const float v : mc.probs) {
    if (!(v >= 0.0f && v <= 1.0f)) throw Error("probs: a value outside [0, 1]");
  }
  // Each pass of each input a distribution (float32 softmax outputs sum to 1 within 1e-3).
  for (std::size_t row = 0; row * static_cast<std::size_t>(mc.classes) < mc.probs.size(); ++row) {
    double sum = 0.0;
    for (int k = 0; k < mc.classes; ++k) sum += mc.probs[row * static_cast<std::size_t>(mc.classes) + static_cast<std::size_t>(k)];
    if (std::fabs(sum - 1.0) > 1e-3) {
      throw Error("probs: row " + std::to_string(row) + " sums to " + std::to_string(sum) + ", not 1 (give probabilities, not logits)");
    }
  }
  return mc;
}

std::vector<std::int32_t> labels_of(const py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>& labels, const McPredictions& mc) {
  if (labels.ndim() != 1 || labels.shape(0) != mc.inputs) {
    throw Error("labels: expected one label per input (" + std::to_string(mc.inputs) + ")");
  }
  std::vector<std::int32_t> out(static_cast<std::size_t>(mc.inputs));
  for (int i = 0; i < mc.inputs; ++i) {
    const std::int64_t l = labels.data()[i];
    if (l < 0 || l >= mc.classes) throw Error("labels: label " + std::to_string(l) + " of input " + std::to_string(i) + " is not a class");
    out[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(l);
  }
  return out;
}

std::vector<double> scores(const py::array_t<double, py::array::c_style | py::array::forcecast>& a, const char* name) {
  if (a.ndim() != 1 || a.shape(0) < 1) throw Error(std::string(name) + ": expected a non-empty 1-D array of scores");
  std::vector<double> v(a.data(), a.data() + a.size());
  for (const double x : v) {
    if (!std::isfinite(x)) throw Error(std::string(name) + ": a score is not finite");
  }
  return v;
}

py::array_t<double> to_array(const std::vector<double>& v) {
  py::array_t<double> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

}  // namespace

PYBIND11_MODULE(_spinbayes, m) {
  m.doc() = "spinbayes' compiled core (use the package spinbayes)";
  static py::exception<Error> error(m, "Error", PyExc_ValueError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      error(e.what());
    }
  });

  py::class_<Model>(m, "Model")
      .def_static("load", &Model::load, py::arg("path"), py::arg("dropout") = "none", py::arg("p") = 0.0,
                  py::arg("dropout_layers") = "all")
      .def("predict", &Model::predict, py::arg("images"), py::arg("samples"), py::arg("seed"), py::arg("backend"), py::arg("hw"),
           py::arg("hw_json"), py::arg("chip_seed"), py::arg("dropout"), py::arg("logits"))
      .def("ledger", &Model::ledger, py::arg("images"), py::arg("samples"), py::arg("seed"), py::arg("hw"), py::arg("hw_json"),
           py::arg("chip_seed"))
      .def("cost", &Model::cost, py::arg("hw"), py::arg("hw_json"), py::arg("tech"), py::arg("samples"), py::arg("p"))
      .def_property_readonly("spec", &Model::spec)
      .def_property_readonly("input_shape", &Model::input_shape)
      .def_property_readonly("classes", &Model::classes)
      .def_property_readonly("origin", &Model::origin);

  m.def("hardware", [](const std::string& source, const std::string& json_text) { return to_python(hardware_json(hardware(source, json_text))); },
        py::arg("source"), py::arg("json_text"));
  m.def("set_threads", [](int threads) {
    if (threads < 1 || threads > 1024) throw Error("threads: must be in 1..1024");
    configure_threads(threads);
  });

  using Labels = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;
  m.def("accuracy", [](const FloatArray& p, const Labels& l) { const auto mc = predictions(p); return accuracy(summarize(mc), labels_of(l, mc)); });
  m.def("nll", [](const FloatArray& p, const Labels& l) {
    const auto mc = predictions(p);
    return negative_log_likelihood(summarize(mc), labels_of(l, mc));
  });
  m.def("brier", [](const FloatArray& p, const Labels& l) {
    const auto mc = predictions(p);
    return brier_score(summarize(mc), labels_of(l, mc), mc.classes);
  });
  m.def("ece", [](const FloatArray& p, const Labels& l) {
    const auto mc = predictions(p);
    return expected_calibration_error(summarize(mc), labels_of(l, mc), mc.classes);
  });
  m.def("entropy", [](const FloatArray& p) { return to_array(summarize(predictions(p)).entropy); });
  m.def("mutual_information", [](const FloatArray& p) { return to_array(summarize(predictions(p)).mutual_information); });
  using Scores = py::array_t<double, py::array::c_style | py::array::forcecast>;
  m.def("auroc", [](const Scores& in, const Scores& out) { return auroc(scores(in, "in_scores"), scores(out, "out_scores")); });
  m.def("aupr", [](const Scores& in, const Scores& out) { return aupr(scores(in, "in_scores"), scores(out, "out_scores")); });
  m.def("fpr95", [](const Scores& in, const Scores& out) { return fpr_at_95_tpr(scores(in, "in_scores"), scores(out, "out_scores")); });
}
