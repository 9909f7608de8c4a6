// SPDX-License-Identifier: MIT
// What a person sees during training: a progress line (rewritten in place on a terminal, plain
// periodic lines otherwise), one JSON line per epoch in metrics.jsonl, an SVG plot of loss and
// accuracy per epoch, and the final summary row in the seed's results-table columns.
#pragma once
#include <convnextv2/core/config.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace convnextv2::train {

inline std::string format_duration(double seconds)
{
    if (!std::isfinite(seconds) || seconds < 0) return "--:--";
    long s = static_cast<long>(seconds + 0.5);
    char buf[32];
    if (s >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
    else std::snprintf(buf, sizeof buf, "%02ld:%02ld", s / 60, s % 60);
    return buf;
}

class progress_printer {
public:
    explicit progress_printer(int log_interval, bool enabled = true)
        : tty_(isatty(fileno(stderr)) != 0), interval_(std::max(1, log_interval)), enabled_(enabled) {}

    void update(int epoch, int epochs, long step, long steps, double loss, double lr, double images_per_s, double eta_s)
    {
        if (!enabled_) return;
        if (!tty_ && step % interval_ != 0 && step != steps) return;
        std::fprintf(stderr, "%sepoch %d/%d  step %ld/%ld  loss %.4f  lr %.3e  %.0f img/s  ETA %s%s", tty_ ? "\r\033[K" : "",
                     epoch, epochs, step, steps, loss, lr, images_per_s, format_duration(eta_s).c_str(), tty_ ? "" : "\n");
        std::fflush(stderr);
        dirty_ = tty_;
    }
    // Ends the in-place line before other output.
    void finish_line()
    {
        if (dirty_) std::fputc('\n', stderr);
        dirty_ = false;
    }

private:
    bool tty_;
    int interval_;
    bool enabled_;
    bool dirty_ = false;
};

// Appends one JSON object per line; the file is opened per call so a crash loses nothing written.
inline void append_jsonl(const std::string& path, const nlohmann::json& row)
{
    std::ofstream out(path, std::ios::app);
    CONVNEXTV2_CHECK(out.good(), path, ": cannot open for appending (is the output directory writable?)");
    out << row.dump() << '\n';
    out.flush();
    CONVNEXTV2_CHECK(out.good(), path, ": write failed (disk full?)");
}

// Rewrites a metrics.jsonl from a history (after a resume: no rows of the interrupted run twice).
inline void write_text_atomic(const std::string& path, const std::string& text);
inline void rewrite_jsonl(const std::string& path, const nlohmann::json& history)
{
    std::string text;
    for (auto& row : history) text += row.dump() + "\n";
    write_text_atomic(path, text);
}

struct plot_series {
    std::string label, color;
    std::vector<double> values;  // one per epoch; NaN = missing
};

// A two-panel SVG: training loss (left) and, by default, accuracy % (right) over epochs.
inline std::string plot_svg(const std::string& title, const std::vector<plot_series>& loss, const std::vector<plot_series>& acc,
                            const std::string& right_panel = "top-1 accuracy (%)")
{
    const int W = 900, H = 360, pw = 380, ph = 250, top = 60, left1 = 60, left2 = 510;
    std::string s = "<svg xmlns='http://www.w3.org/2000/svg' width='" + std::to_string(W) + "' height='" + std::to_string(H) +
                    "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n";
    s += "<text x='" + std::to_string(W / 2) + "' y='24' text-anchor='middle' font-size='16'>" + title + "</text>\n";
    auto panel = [&](int left, const std::string& name, const std::vector<plot_series>& series) {
        double lo = INFINITY, hi = -INFINITY;
        std::size_t n = 0;
        for (auto& ser : series)
            for (double v : ser.values)
                if (std::isfinite(v)) { lo = std::min(lo, v); hi = std::max(hi, v); }
        for (auto& ser : series) n = std::max(n, ser.values.size());
        if (!std::isfinite(lo)) { lo = 0; hi = 1; }
        if (hi - lo < 1e-9) { hi += 0.5; lo -= 0.5; }
        double pad = 0.05 * (hi - lo);
        lo -= pad;
        hi += pad;
        char buf[256];
        std::snprintf(buf, sizeof buf, "<rect x='%d' y='%d' width='%d' height='%d' fill='none' stroke='#888'/>\n", left, top, pw, ph);
        s += buf;
        std::snprintf(buf, sizeof buf, "<text x='%d' y='%d' text-anchor='middle'>%s</text>\n", left + pw / 2, top - 8, name.c_str());
        s += buf;
        for (int t = 0; t <= 4; ++t) {
            double v = lo + (hi - lo) * t / 4.0;
            int y = top + ph - static_cast<int>(ph * t / 4.0);
            std::snprintf(buf, sizeof buf, "<text x='%d' y='%d' text-anchor='end'>%.3g</text>\n", left - 4, y + 4, v);
            s += buf;
        }
        std::snprintf(buf, sizeof buf, "<text x='%d' y='%d' text-anchor='middle'>epoch (1..%zu)</text>\n", left + pw / 2,
                      top + ph + 20, n);
        s += buf;
        int li = 0;
        for (auto& ser : series) {
            std::string pts;
            for (std::size_t i = 0; i < ser.values.size(); ++i) {
                if (!std::isfinite(ser.values[i])) continue;
                double x = left + (n > 1 ? pw * static_cast<double>(i) / static_cast<double>(n - 1) : pw / 2.0);
                double y = top + ph - ph * (ser.values[i] - lo) / (hi - lo);
                std::snprintf(buf, sizeof buf, "%.1f,%.1f ", x, y);
                pts += buf;
            }
            s += "<polyline fill='none' stroke-width='2' stroke='" + ser.color + "' points='" + pts + "'/>\n";
            std::snprintf(buf, sizeof buf, "<text x='%d' y='%d' fill='%s'>%s</text>\n", left + 8, top + 16 + 14 * li++,
                          ser.color.c_str(), ser.label.c_str());
            s += buf;
        }
    };
    panel(left1, "loss", loss);
    panel(left2, right_panel, acc);
    return s + "</svg>\n";
}

// Writes a file atomically (temp + rename) so a reader never sees a partial plot.
inline void write_text_atomic(const std::string& path, const std::string& text)
{
    std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        CONVNEXTV2_CHECK(out.good(), tmp, ": cannot open for writing (is the output directory writable?)");
        out << text;
        out.flush();
        CONVNEXTV2_CHECK(out.good(), tmp, ": write failed (disk full?)");
    }
    CONVNEXTV2_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, path, ": cannot rename ", tmp, " into place");
}

} // namespace convnextv2::train
