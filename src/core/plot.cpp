#include "core/plot.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"

namespace spinbayes {

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    const auto base = std::filesystem::temp_directory_path();
    for (int attempt = 0; attempt < 100; ++attempt) {
      path = base / fmt::format("spinbayes-plot-{}-{}", ::getpid(), attempt);
      std::error_code ec;
      if (std::filesystem::create_directory(path, ec)) return;
    }
    throw Error("plot: cannot create a temporary directory in " + base.string());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw Error(path.string() + ": cannot write");
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::string gnuplot_escaped(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out;
}

void render_plot(const std::string& script, const std::vector<std::pair<std::string, std::string>>& data,
                 const std::filesystem::path& png, const std::string& option) {
  write_file_atomic(png, render_plot_png(script, data, option));
}

void check_gnuplot(const std::string& option) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    throw Error(option + ": gnuplot not found (install the Debian package gnuplot-nox)");
  }
}

std::string render_plot_png(const std::string& script, const std::vector<std::pair<std::string, std::string>>& data,
                            const std::string& option) {
  check_gnuplot(option);
  const TempDir dir;
  const std::string where = dir.path.string();
  if (where.find('\'') != std::string::npos) throw Error("plot: temporary path " + where + " contains a quote");
  for (const auto& [name, contents] : data) write_text(dir.path / name, contents);
  write_text(dir.path / "plot.gp", script);
  const int rc = std::system(fmt::format("cd '{}' && gnuplot plot.gp 2>gnuplot.err", where).c_str());
  const auto out = dir.path / "out.png";
  if (rc != 0 || !std::filesystem::exists(out)) {
    std::string why = read_text(dir.path / "gnuplot.err");
    why = why.substr(0, why.find_first_of('\n', why.find_first_not_of(" \n")));
    throw Error(option + ": gnuplot failed" + (why.empty() ? std::string() : ": " + why));
  }
  return read_text(out);
}

}  // namespace spinbayes
