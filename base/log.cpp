#include "base/log.hpp"

#include "base/assert.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <utility>

namespace blobd::log {

namespace {
std::atomic<int> g_max{static_cast<int>(level::info)};
}

std::optional<level> parse_level(std::string_view name) noexcept {
    // Kept in the order of level_names.
    static constexpr std::pair<std::string_view, level> names[] = {{"err", level::err},
                                                                   {"warning", level::warning},
                                                                   {"notice", level::notice},
                                                                   {"info", level::info},
                                                                   {"debug", level::debug}};
    for (auto [n, l] : names) {
        if (n == name) return l;
    }
    return std::nullopt;
}

void set_max_level(level l) noexcept { g_max.store(static_cast<int>(l), std::memory_order_relaxed); }
level max_level() noexcept { return static_cast<level>(g_max.load(std::memory_order_relaxed)); }
bool enabled(level l) noexcept { return static_cast<int>(l) <= g_max.load(std::memory_order_relaxed); }

void write(level l, std::string_view module, std::string_view msg) noexcept {
    try {
        fmt::memory_buffer buf;
        fmt::format_to(std::back_inserter(buf), "<{}>{}: ", static_cast<int>(l), module);
        // A message must stay one journal entry: embedded newlines would start new entries
        // without a priority prefix.
        for (char c : msg) buf.push_back(c == '\n' ? ' ' : c);
        buf.push_back('\n');
        const char* p = buf.data();
        size_t left = buf.size();
        while (left > 0) {
            ssize_t n = ::write(STDERR_FILENO, p, left);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return;
            p += n;
            left -= static_cast<size_t>(n);
        }
    } catch (...) {
        // Logging must never take the daemon down (e.g. bad_alloc while formatting).
    }
}

bool rate_limit::allow(unsigned& suppressed) noexcept {
    using namespace std::chrono;
    long long now = duration_cast<seconds>(steady_clock::now().time_since_epoch()).count();
    long long start = window_start_.load(std::memory_order_relaxed);
    if (now - start >= period_.count() &&
        window_start_.compare_exchange_strong(start, now, std::memory_order_relaxed)) {
        in_window_.store(0, std::memory_order_relaxed);
    }
    if (in_window_.fetch_add(1, std::memory_order_relaxed) < burst_) {
        suppressed = dropped_.exchange(0, std::memory_order_relaxed);
        return true;
    }
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
}

}  // namespace blobd::log
