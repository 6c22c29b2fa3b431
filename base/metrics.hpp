// metrics: counters declared once, next to the struct that holds them, and rendered from one
// snapshot both as the JSON of `erofs-blobctl stats` and as Prometheus text.
//
// A component keeps its counters in a plain struct of std::uint64_t fields (and histograms) that
// its own thread increments: no atomics, no locks. Next to the struct it declares them once, in a
// constexpr table that names each field (name, help text, kind, unit) and says where the samples
// go (a group: Prometheus subsystem, label names, JSON placement):
//
//     struct source_stats { std::uint64_t fetches = 0, bytes = 0; };
//     inline constexpr std::string_view source_labels[] = {"source"};
//     inline constexpr auto source_metrics = metrics::make_table(
//         metrics::group{"source", source_labels, "sources"},
//         metrics::counter(&source_stats::fetches, "fetches", "Range fetches asked of the source."),
//         metrics::counter(&source_stats::bytes, "received", "Bytes the source delivered.",
//                          metrics::unit::bytes).json("bytes"));
//
// Whoever answers a stats request (the daemon, on the loop thread) copies the values into a
// snapshot, table by table, with the label values of each instance, and renders it:
//
//     metrics::snapshot s;
//     s.add(source_metrics, fetcher.stats(), {fetcher.describe()});
//     nlohmann::ordered_json j = metrics::to_json(s);
//     std::string text = metrics::to_prometheus(s);
//
// Names. A declaration's name is snake_case without the "erofs_blobd" prefix, the group's
// subsystem, the unit or "_total": the renderers add those. In Prometheus a counter `received` of
// unit bytes in subsystem `source` is `erofs_blobd_source_received_bytes_total`; in JSON its key is
// the name plus the unit suffix (`received_bytes`) unless the declaration names another JSON key
// (`.json("bytes")`, kept for scripts written against older releases).
//
// JSON shape (to_json): one object. A sample of a group whose json_key is "" is a top-level key; of
// a group with a json_key and no labels, a key of the object under that key (`"store": {...}`); of
// a group with labels, a key of one object in the array under that key, the object whose label
// fields equal the sample's label values (`"sources": [{"source": "local:/srv", "fetches": 3}]`),
// so groups that share a json_key and label names (a source's own counters, its HTTP client's,
// its auth's) fill the same objects. Counters and gauges are JSON integers; a histogram is
// `{"count": n, "sum": s, "buckets": [{"le": bound, "count": cumulative}, ...]}` (finite bounds
// only: the +Inf bucket is `count`). Keys keep the order in which they were added.
//
// Prometheus (to_prometheus): the text exposition format 0.0.4. One `# HELP` and `# TYPE` per
// family, in the order families first appear in the snapshot, then all of its samples, whichever
// table added them; counters end in `_total`; histograms give `_bucket{le=...}` (cumulative, up to
// `+Inf`), `_sum` and `_count`. Label values escape backslash, double quote and newline.
//
// Ownership: tables must have static storage (namespace-scope constexpr variables): a snapshot's
// samples point into them. Threading: none inside; a snapshot is a value, built and rendered by one
// thread. Errors: nothing throws on a bad snapshot; problems() lists what the renderers would
// get wrong (a name declared twice, a series or JSON key twice, missing label values), for tests.
#pragma once

#include <algorithm>
#include <array>
#include <concepts>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace blobd::metrics {

enum class kind : std::uint8_t { counter, gauge, histogram };
enum class unit : std::uint8_t { none, bytes, seconds };

/// "_bytes", "_seconds" or "".
constexpr std::string_view suffix(unit u) noexcept {
    switch (u) {
    case unit::bytes: return "_bytes";
    case unit::seconds: return "_seconds";
    case unit::none: break;
    }
    return {};
}

/// True for snake_case ([a-z][a-z0-9_]*, no "__", no trailing '_') that does not end in a suffix
/// the renderers add ("_total", "_bytes", "_seconds") or that histograms use ("_bucket", "_sum",
/// "_count").
constexpr bool valid_name(std::string_view n) noexcept {
    if (n.empty() || n.front() < 'a' || n.front() > 'z' || n.back() == '_') return false;
    char prev = 0;
    for (char c : n) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        if (!ok || (c == '_' && prev == '_')) return false;
        prev = c;
    }
    for (std::string_view s : {"_total", "_bytes", "_seconds", "_bucket", "_sum", "_count"}) {
        if (n.size() >= s.size() && n.substr(n.size() - s.size()) == s) return false;
    }
    return true;
}

/// What one metric is.
struct declaration {
    std::string_view name;              ///< snake_case; no prefix, subsystem, unit or "_total"
    std::string_view help;              ///< one sentence: what is counted
    metrics::kind kind = kind::counter;
    metrics::unit unit = unit::none;
    std::string_view json_key = {};     ///< the JSON key when it is not name + unit suffix
};

/// Where the samples of one table go, and the labels they carry.
struct group {
    std::string_view subsystem;                  ///< Prometheus <prefix>_<subsystem>_<name>; "" for none
    std::span<const std::string_view> labels;    ///< label names, in order; every sample has a value for each
    std::string_view json_key;                   ///< JSON: "" top level; else the object or array it goes under
};

/// A fixed-bucket histogram. Plain integers: only the thread that owns it observes and reads.
class histogram {
public:
    /// `bounds`: finite upper bounds, ascending, with static storage; +Inf is implied.
    explicit histogram(std::span<const double> bounds) : bounds_(bounds), counts_(bounds.size() + 1) {}

    /// Counts `v` in the first bucket whose bound is >= v (Prometheus `le`).
    void observe(double v) noexcept {
        const auto i = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
        ++counts_[i];
        sum_ += v;
        ++count_;
    }
    std::span<const double> bounds() const noexcept { return bounds_; }
    /// Observations per bucket (not cumulative), one per bound and a last one for +Inf.
    std::span<const std::uint64_t> counts() const noexcept { return counts_; }
    double sum() const noexcept { return sum_; }
    std::uint64_t count() const noexcept { return count_; }

private:
    std::span<const double> bounds_;
    std::vector<std::uint64_t> counts_;
    double sum_ = 0;
    std::uint64_t count_ = 0;
};

/// One metric of struct S: its declaration and the member that holds it.
template <class S>
struct field {
    declaration decl;
    std::uint64_t S::*value = nullptr;   ///< counter, gauge
    histogram S::*hist = nullptr;        ///< histogram

    /// The same field under another JSON key (one that readers of older releases expect).
    constexpr field json(std::string_view key) const {
        field f = *this;
        f.decl.json_key = key;
        return f;
    }
};

/// A counter: only ever goes up (restarts at 0 with the process).
template <class S>
constexpr field<S> counter(std::uint64_t S::*m, std::string_view name, std::string_view help, unit u = unit::none) {
    return {{name, help, kind::counter, u, {}}, m, nullptr};
}
/// A gauge: a value now (may go down).
template <class S>
constexpr field<S> gauge(std::uint64_t S::*m, std::string_view name, std::string_view help, unit u = unit::none) {
    return {{name, help, kind::gauge, u, {}}, m, nullptr};
}
/// A histogram of observed values (e.g. seconds).
template <class S>
constexpr field<S> histogram_of(histogram S::*m, std::string_view name, std::string_view help, unit u = unit::none) {
    return {{name, help, kind::histogram, u, {}}, nullptr, m};
}

/// One component's declarations: a group and the fields of struct S.
template <class S, std::size_t N>
struct table {
    group where;
    std::array<field<S>, N> fields;
};

/// Builds a table at compile time, rejecting (as a compile error) a name that is not valid_name()
/// and a name or JSON key used twice in the table.
template <class S, std::same_as<field<S>>... F>
consteval table<S, 1 + sizeof...(F)> make_table(group g, field<S> first, F... rest) {
    table<S, 1 + sizeof...(F)> t{g, {first, rest...}};
    for (std::size_t i = 0; i < t.fields.size(); ++i) {
        const auto& a = t.fields[i].decl;
        if (!valid_name(a.name)) throw std::invalid_argument("metrics: not a valid metric name");
        if (a.help.empty()) throw std::invalid_argument("metrics: every metric needs help text");
        for (std::size_t j = 0; j < i; ++j) {
            const auto& b = t.fields[j].decl;
            if (a.name == b.name && a.unit == b.unit) throw std::invalid_argument("metrics: name declared twice");
            if (!a.json_key.empty() && a.json_key == b.json_key) {
                throw std::invalid_argument("metrics: JSON key declared twice");
            }
        }
    }
    return t;
}

/// One value of one metric, with its label values.
struct sample {
    const group* where = nullptr;
    const declaration* decl = nullptr;
    std::vector<std::string> labels;     ///< values, one per where->labels
    std::uint64_t value = 0;             ///< counter, gauge
    std::span<const double> bounds;      ///< histogram: finite bounds
    std::vector<std::uint64_t> buckets;  ///< histogram: cumulative counts, one per bound, then +Inf (= count)
    double sum = 0;                      ///< histogram
};

/// The values of several components at one moment, ready to render.
class snapshot {
public:
    /// Adds one sample per field of `t`, read from `values`, each with `label_values` (one per
    /// label of t.where). `t` must have static storage.
    template <class S, std::size_t N>
    void add(const table<S, N>& t, const S& values, const std::vector<std::string>& label_values = {}) {
        for (const auto& f : t.fields) {
            if (f.hist) {
                add_sample(t.where, f.decl, label_values, values.*(f.hist));
            } else {
                add_sample(t.where, f.decl, label_values, values.*(f.value));
            }
        }
    }
    /// One sample of a counter or gauge (`g` and `d` with static storage).
    void add_sample(const group& g, const declaration& d, const std::vector<std::string>& label_values,
                    std::uint64_t value);
    /// One sample of a histogram: its counts, copied.
    void add_sample(const group& g, const declaration& d, const std::vector<std::string>& label_values,
                    const histogram& h);
    const std::vector<sample>& samples() const noexcept { return samples_; }

private:
    std::vector<sample> samples_;
};

/// The Prometheus family name: <prefix>_<subsystem>_<name><unit suffix>, plus "_total" for a counter.
std::string prometheus_name(const group& g, const declaration& d, std::string_view prefix = "erofs_blobd");
/// The JSON key: d.json_key, or name + unit suffix.
std::string json_key(const declaration& d);

/// The snapshot as one JSON object (shape: see the top of this file).
nlohmann::ordered_json to_json(const snapshot& s);
/// The snapshot in the Prometheus text exposition format 0.0.4.
std::string to_prometheus(const snapshot& s, std::string_view prefix = "erofs_blobd");
/// A label value with backslash, double quote and newline escaped (Prometheus text format).
std::string escape_label_value(std::string_view v);

/// What would render wrongly, one line each; empty when nothing: a Prometheus name or JSON key
/// that two declarations share, a series (name and label values) or JSON key given twice, label
/// values that do not match the group's label names, labels on a top-level group.
std::vector<std::string> problems(const snapshot& s, std::string_view prefix = "erofs_blobd");

}  // namespace blobd::metrics
