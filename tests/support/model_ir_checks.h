#pragma once
// Shared by the model IR tests and the export tests: a small spec and field-by-field comparisons.
#include <gtest/gtest.h>

#include <string>

#include "model/model_ir.h"
#include "model/model_spec.h"

namespace spinbayes {

inline ModelSpec small_spec(const std::string& architecture, int width) {
  ModelSpec spec;
  spec.architecture = architecture;
  spec.width = width;
  spec.dropout = DropoutKind::spatial;
  spec.p = 0.25;
  spec.dropout_layers = "last:2";
  spec.input_mean = {0.2860f};
  spec.input_std = {0.3530f};
  return spec;
}

inline void expect_same_spec(const ModelSpec& a, const ModelSpec& b) {
  EXPECT_EQ(a.architecture, b.architecture);
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.dropout, b.dropout);
  EXPECT_EQ(a.p, b.p);
  EXPECT_EQ(a.dropout_layers, b.dropout_layers);
  EXPECT_EQ(a.channels, b.channels);
  EXPECT_EQ(a.height, b.height);
  EXPECT_EQ(a.width_px, b.width_px);
  EXPECT_EQ(a.classes, b.classes);
  EXPECT_EQ(a.input_mean, b.input_mean);
  EXPECT_EQ(a.input_std, b.input_std);
}

inline void expect_same_ir(const ModelIR& a, const ModelIR& b) {
  expect_same_spec(a.spec, b.spec);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (std::size_t i = 0; i < a.layers.size(); ++i) {
    SCOPED_TRACE("layer " + std::to_string(i));
    const BinaryLayerIR& x = a.layers[i];
    const BinaryLayerIR& y = b.layers[i];
    EXPECT_EQ(x.shape.kind, y.shape.kind);
    EXPECT_EQ(x.shape.in_channels, y.shape.in_channels);
    EXPECT_EQ(x.shape.out_channels, y.shape.out_channels);
    EXPECT_EQ(x.shape.kernel, y.shape.kernel);
    EXPECT_EQ(x.shape.stride, y.shape.stride);
    EXPECT_EQ(x.shape.padding, y.shape.padding);
    EXPECT_EQ(x.shape.in_h, y.shape.in_h);
    EXPECT_EQ(x.shape.in_w, y.shape.in_w);
    EXPECT_EQ(x.shape.out_h, y.shape.out_h);
    EXPECT_EQ(x.shape.out_w, y.shape.out_w);
    EXPECT_EQ(x.shape.pool_after, y.shape.pool_after);
    EXPECT_EQ(x.shape.real_input, y.shape.real_input);
    EXPECT_EQ(x.shape.output, y.shape.output);
    EXPECT_EQ(x.shape.dropout_before, y.shape.dropout_before);
    EXPECT_EQ(x.weights, y.weights);
    EXPECT_EQ(x.bn_mean, y.bn_mean);
    EXPECT_EQ(x.bn_var, y.bn_var);
    EXPECT_EQ(x.bn_gamma, y.bn_gamma);
    EXPECT_EQ(x.bn_beta, y.bn_beta);
    EXPECT_EQ(x.bn_eps, y.bn_eps);
  }
}

}  // namespace spinbayes
