#include "base/log.hpp"

#include "base/assert.hpp"

#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include <cerrno>
#include <cstdlib>
#include <utility>

namespace blobd::log {

namespace {
std::atomic<int> g_max{static_cast<int>(level::info)};

bool valid_field_name(std::string_view n) {
    // journald: uppercase ASCII letters, digits and '_', not starting with '_' or a digit, at most 64.
    if (n.empty() || n.size() > 64 || n[0] == '_' || (n[0] >= '0' && n[0] <= '9')) return false;
    for (char c : n) {
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
    }
    return true;
}

// Decided once: systemd sets $JOURNAL_STREAM for a service whose stderr is the journal; a
// daemon started by hand (or stderr redirected by a test) keeps the stderr lines.
bool to_journal() {
    static const bool yes = [] {
        const char* env = std::getenv("JOURNAL_STREAM");
        struct stat st{};
        return env && ::fstat(STDERR_FILENO, &st) == 0 &&
               journal_stream_is(env, static_cast<unsigned long long>(st.st_dev), static_cast<unsigned long long>(st.st_ino));
    }();
    return yes;
}
}  // namespace

bool journal_stream_is(std::string_view env, unsigned long long dev, unsigned long long ino) noexcept {
    const auto colon = env.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == env.size()) return false;
    auto number = [](std::string_view t, unsigned long long& out) {
        out = 0;
        for (char c : t) {
            if (c < '0' || c > '9' || out > (~0ULL - 9) / 10) return false;
            out = out * 10 + static_cast<unsigned>(c - '0');
        }
        return true;
    };
    unsigned long long d = 0, i = 0;
    return number(env.substr(0, colon), d) && number(env.substr(colon + 1), i) && d == dev && i == ino;
}

std::vector<std::string> journal_entry(level l, std::string_view module, std::string_view msg,
                                       std::span<const field> fields) {
    std::vector<std::string> out;
    out.reserve(4 + fields.size());
    out.push_back(fmt::format("PRIORITY={}", static_cast<int>(l)));
    out.push_back(fmt::format("MESSAGE={}: {}", module, msg));
    out.emplace_back("SYSLOG_IDENTIFIER=erofs-blobd");
    out.push_back(fmt::format("BLOBD_MODULE={}", module));
    for (const auto& f : fields) {
        if (valid_field_name(f.name)) out.push_back(fmt::format("{}={}", f.name, f.value));
    }
    return out;
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

void write(level l, std::string_view module, std::string_view msg, std::span<const field> fields) noexcept {
    try {
        if (to_journal()) {
            const auto entry = journal_entry(l, module, msg, fields);
            std::vector<iovec> iov;
            iov.reserve(entry.size());
            for (const auto& e : entry) iov.push_back({const_cast<char*>(e.data()), e.size()});
            if (sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) == 0) return;
            // The journal socket refused it: the stderr line below still reaches the journal.
        }
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
