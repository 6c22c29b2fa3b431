// Logging to stderr in the form journald understands: each line starts with a syslog priority
// prefix ("<3>" error ... "<7>" debug), then "module: message". fmt format strings are checked at
// compile time. Thread-safe: one write() per line. Rate-limited helpers keep per-request warnings
// from flooding the journal when a source fails for every READ.
//
// Under journald (stderr is the stream $JOURNAL_STREAM names), entries go through
// sd_journal_sendv instead, with structured fields: PRIORITY, MESSAGE ("module: message"),
// SYSLOG_IDENTIFIER=erofs-blobd, BLOBD_MODULE, and those the call passes
// (`lg.err({{"DOMAIN", d}, {"BLOB", b}}, "...", ...)`: `journalctl DOMAIN=d1`). On stderr the
// fields are not printed: the message names what it is about.
#pragma once

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <initializer_list>
#include <span>
#include <string_view>
#include <vector>

namespace blobd::log {

enum class level : int { err = 3, warning = 4, notice = 5, info = 6, debug = 7 };

/// The level called `name` ("err", "warning", "notice", "info", "debug": the names the config
/// and --log-level accept), or nothing.
std::optional<level> parse_level(std::string_view name) noexcept;
/// "err, warning, notice, info, debug": the accepted names, for error messages.
inline constexpr std::string_view level_names = "err, warning, notice, info, debug";

/// Messages above this level are dropped. Set once at startup (main), read by every thread.
void set_max_level(level l) noexcept;
level max_level() noexcept;
bool enabled(level l) noexcept;

/// A structured journal field: NAME (uppercase letters, digits, '_') and its value.
struct field {
    std::string_view name, value;
};

/// Writes one line; `module` names the subsystem ("loop", "registry", "local").
void write(level l, std::string_view module, std::string_view msg, std::span<const field> fields = {}) noexcept;

/// Whether $JOURNAL_STREAM ("<device>:<inode>", as systemd sets it) names the file stderr is
/// (`dev`, `ino` of fstat(2)): then stderr goes to the journal and entries may carry fields. Pure.
bool journal_stream_is(std::string_view env, unsigned long long dev, unsigned long long ino) noexcept;
/// The "NAME=value" strings of one journal entry (what write() hands sd_journal_sendv): PRIORITY,
/// MESSAGE, SYSLOG_IDENTIFIER, BLOBD_MODULE, then `fields` whose names are valid journal field
/// names (others are dropped). Newlines in values stay (the journal keeps them). Pure.
std::vector<std::string> journal_entry(level l, std::string_view module, std::string_view msg,
                                       std::span<const field> fields);

template <class... Args>
void emit(level l, std::string_view module, fmt::format_string<Args...> f, Args&&... args) {
    if (!enabled(l)) return;
    write(l, module, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void emit_with(level l, std::string_view module, std::initializer_list<field> fields, fmt::format_string<Args...> f,
               Args&&... args) {
    if (!enabled(l)) return;
    write(l, module, fmt::format(f, std::forward<Args>(args)...), std::span<const field>(fields.begin(), fields.size()));
}

/// A named logger per module, as in Seastar: `inline log::logger lg{"loop"}; lg.info("x {}", 1);`
class logger {
public:
    constexpr explicit logger(std::string_view name) : name_(name) {}
    template <class... A> void err(fmt::format_string<A...> f, A&&... a) const { emit(level::err, name_, f, std::forward<A>(a)...); }
    template <class... A> void warn(fmt::format_string<A...> f, A&&... a) const { emit(level::warning, name_, f, std::forward<A>(a)...); }
    template <class... A> void notice(fmt::format_string<A...> f, A&&... a) const { emit(level::notice, name_, f, std::forward<A>(a)...); }
    template <class... A> void info(fmt::format_string<A...> f, A&&... a) const { emit(level::info, name_, f, std::forward<A>(a)...); }
    template <class... A> void debug(fmt::format_string<A...> f, A&&... a) const { emit(level::debug, name_, f, std::forward<A>(a)...); }
    // The same with journal fields ({{"DOMAIN", d}, {"BLOB", b}}).
    template <class... A> void err(std::initializer_list<field> fs, fmt::format_string<A...> f, A&&... a) const { emit_with(level::err, name_, fs, f, std::forward<A>(a)...); }
    template <class... A> void warn(std::initializer_list<field> fs, fmt::format_string<A...> f, A&&... a) const { emit_with(level::warning, name_, fs, f, std::forward<A>(a)...); }
    template <class... A> void info(std::initializer_list<field> fs, fmt::format_string<A...> f, A&&... a) const { emit_with(level::info, name_, fs, f, std::forward<A>(a)...); }

private:
    std::string_view name_;
};

/// " (N similar suppressed)" when n > 0, else "": the tail of a rate-limited message.
inline std::string suppressed_note(unsigned n) { return n ? fmt::format(" ({} similar suppressed)", n) : std::string(); }

/// Allows at most `burst` messages per `period`; the next allowed message reports how many were
/// suppressed. Cheap enough for per-request paths; any thread.
class rate_limit {
public:
    explicit rate_limit(unsigned burst = 10, std::chrono::seconds period = std::chrono::seconds(5))
        : burst_(burst), period_(period) {}
    /// Returns true if the caller may log; `suppressed` receives the count dropped since the last allowed one.
    bool allow(unsigned& suppressed) noexcept;

private:
    unsigned burst_;
    std::chrono::seconds period_;
    std::atomic<long long> window_start_{0};
    std::atomic<unsigned> in_window_{0};
    std::atomic<unsigned> dropped_{0};
};

}  // namespace blobd::log
