#pragma once
// The project's error contract as a test check: `f` must throw spinbayes::Error with a one-line
// message that contains every one of `parts`.
#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

#include "core/error.h"

namespace spinbayes::testing {

template <typename F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "expected spinbayes::Error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    for (const auto& part : parts)
      EXPECT_NE(message.find(part), std::string::npos) << message << "\nlacks: " << part;
  }
}

}  // namespace spinbayes::testing
