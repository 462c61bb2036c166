#pragma once
// Figures through gnuplot (pngcairo): the script and its data files go to a private temporary
// directory, gnuplot runs there, and the PNG is copied to its destination atomically.
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace spinbayes {

// Runs `script` with `data` (file name, contents) in its working directory; the script must
// write 'out.png' there. `option` names the command-line option in errors ("--plot").
void render_plot(const std::string& script, const std::vector<std::pair<std::string, std::string>>& data,
                 const std::filesystem::path& png, const std::string& option);
// The same, returning the PNG's bytes (for a command that writes it together with other files).
std::string render_plot_png(const std::string& script, const std::vector<std::pair<std::string, std::string>>& data,
                            const std::string& option);

// Throws Error("<option>: gnuplot not found ...") when gnuplot is not on PATH: for commands that
// draw their figure after long work, to fail before it.
void check_gnuplot(const std::string& option);

// Text inside a gnuplot single-quoted string: a quote is written twice.
std::string gnuplot_escaped(const std::string& text);

}  // namespace spinbayes
