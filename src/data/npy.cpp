#include "data/npy.h"

#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "core/error.h"
#include "core/read_file.h"

namespace spinbayes {

namespace {

static_assert(std::endian::native == std::endian::little, "npy data is read as little-endian");

constexpr std::int64_t kMaxElements = std::int64_t{1} << 31;

// The header dict, parsed strictly: the three keys, each once, in any order.
struct Header {
  std::string descr;
  bool fortran = false;
  std::vector<std::int64_t> shape;
};

class HeaderParser {
 public:
  explicit HeaderParser(std::string_view text) : s_(text) {}

  Header parse() {
    Header h;
    bool seen_descr = false, seen_order = false, seen_shape = false;
    expect('{');
    while (true) {
      skip();
      if (peek() == '}') break;
      const std::string key = quoted();
      expect(':');
      if (key == "descr") {
        if (seen_descr) fail("'descr' twice");
        seen_descr = true;
        h.descr = quoted();
      } else if (key == "fortran_order") {
        if (seen_order) fail("'fortran_order' twice");
        seen_order = true;
        skip();
        if (s_.substr(at_, 4) == "True") {
          h.fortran = true;
          at_ += 4;
        } else if (s_.substr(at_, 5) == "False") {
          at_ += 5;
        } else {
          fail("fortran_order is neither True nor False");
        }
      } else if (key == "shape") {
        if (seen_shape) fail("'shape' twice");
        seen_shape = true;
        h.shape = tuple();
      } else {
        fail("unknown key '" + printable_head(key, 40) + "'");
      }
      skip();
      if (peek() == ',') {
        ++at_;
        continue;
      }
      if (peek() != '}') fail("expected ',' or '}'");
    }
    ++at_;
    skip();
    if (at_ != s_.size()) fail("text after the dict");
    if (!seen_descr || !seen_order || !seen_shape) fail("needs 'descr', 'fortran_order' and 'shape'");
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const { throw Error("header: " + why); }
  void skip() {
    while (at_ < s_.size() && (s_[at_] == ' ' || s_[at_] == '\n' || s_[at_] == '\t')) ++at_;
  }
  char peek() const { return at_ < s_.size() ? s_[at_] : '\0'; }
  void expect(char c) {
    skip();
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++at_;
  }
  std::string quoted() {
    skip();
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string");
    const std::size_t end = s_.find(q, at_ + 1);
    if (end == std::string_view::npos) fail("unterminated string");
    std::string out(s_.substr(at_ + 1, end - at_ - 1));
    at_ = end + 1;
    return out;
  }
  std::vector<std::int64_t> tuple() {
    expect('(');
    std::vector<std::int64_t> dims;
    while (true) {
      skip();
      if (peek() == ')') break;
      if (peek() < '0' || peek() > '9') fail("a dimension is not a non-negative integer");
      std::int64_t d = 0;
      while (peek() >= '0' && peek() <= '9') {
        if (d > (std::int64_t{1} << 40)) fail("a dimension is too large");
        d = d * 10 + (s_[at_++] - '0');
      }
      dims.push_back(d);
      if (dims.size() > 8) fail("rank over 8");
      skip();
      if (peek() == ',') {
        ++at_;
        continue;
      }
      if (peek() != ')') fail("expected ',' or ')' in the shape");
    }
    ++at_;
    return dims;
  }

  std::string_view s_;
  std::size_t at_ = 0;
};

}  // namespace

NpyArray parse_npy(const std::string& bytes, const std::string& origin) {
  try {
    if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) throw Error("not a .npy file (bad magic)");
    const auto major = static_cast<unsigned char>(bytes[6]);
    if (major < 1 || major > 3) throw Error("unsupported .npy version " + std::to_string(major));
    std::size_t header_len = 0, start = 0;
    if (major == 1) {
      header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<std::size_t>(static_cast<unsigned char>(bytes[9])) << 8);
      start = 10;
    } else {
      if (bytes.size() < 12) throw Error("truncated header");
      for (int i = 0; i < 4; ++i) header_len |= static_cast<std::size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
      start = 12;
    }
    if (header_len > bytes.size() - start) throw Error("truncated header");
    const Header h = HeaderParser(std::string_view(bytes).substr(start, header_len)).parse();
    std::size_t item = 0;
    if (h.descr == "<f4") {
      item = 4;
    } else if (h.descr == "<f8") {
      item = 8;
    } else {
      throw Error("dtype '" + printable_head(h.descr, 20) + "', expected float32 ('<f4') or float64 ('<f8')");
    }
    if (h.fortran) throw Error("Fortran order is not supported (save a C-order array)");
    if (h.shape.empty()) throw Error("a scalar, expected an array");
    std::int64_t n = 1;
    for (const std::int64_t d : h.shape) {
      if (d > 0 && n > kMaxElements / d) throw Error("more than 2^31 elements");
      n *= d;
    }
    const std::size_t data = start + header_len;
    if (bytes.size() - data != static_cast<std::size_t>(n) * item) {
      throw Error("holds " + std::to_string(bytes.size() - data) + " data bytes, the shape needs " +
                  std::to_string(static_cast<std::size_t>(n) * item));
    }
    NpyArray a;
    a.shape = h.shape;
    a.values.resize(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < a.values.size(); ++i) {
      double v;
      if (item == 4) {
        float f;
        std::memcpy(&f, bytes.data() + data + i * 4, 4);
        v = f;
      } else {
        std::memcpy(&v, bytes.data() + data + i * 8, 8);
      }
      if (!std::isfinite(v) || std::fabs(v) > 3.4e38) {
        // i: the element's flat index, in C order.
        char what[32];
        std::snprintf(what, sizeof what, "%.9g", v);
        throw Error("element " + std::to_string(i) + " is " + (std::isnan(v) ? std::string("NaN") : std::string(what)) +
                    ", not a finite float");
      }
      a.values[i] = static_cast<float>(v);
    }
    return a;
  } catch (const Error& e) {
    throw Error(origin + ": " + e.what());
  }
}

NpyArray read_npy(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec)) {
    throw Error(printable_head(path.string()) + ": not a regular file");
  }
  return parse_npy(read_file_bytes(path, std::uint64_t{1} << 33), printable_head(path.string()));
}

std::string npy_bytes(const std::vector<std::int64_t>& shape, const std::vector<float>& values) {
  std::string dims;  // (2, 3) but (5,)
  for (std::size_t i = 0; i < shape.size(); ++i) dims += (i > 0 ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) dims += ",";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  // Magic (6) + version (2) + length (2) + header + newline: a multiple of 64 bytes.
  const std::size_t total = (10 + header.size() + 1 + 63) / 64 * 64;
  header.append(total - 10 - header.size() - 1, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  const std::size_t at = out.size();
  out.resize(at + values.size() * 4);
  // An empty array's data() may be null, which memcpy may not be given even for 0 bytes.
  if (!values.empty()) std::memcpy(out.data() + at, values.data(), values.size() * 4);
  return out;
}

}  // namespace spinbayes
