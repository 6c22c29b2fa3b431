#include "base/metrics.hpp"

#include <cmath>
#include <map>
#include <set>

#include <fmt/format.h>

namespace blobd::metrics {

namespace {

// Prometheus parses floats as Go's strconv.ParseFloat does; fmt's shortest round-trip form
// ("0.005", "1", "1e-05") is one it accepts, and infinities and NaN have their own spellings.
std::string format_double(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    return fmt::format("{}", v);
}

// Backslash and newline are escaped in HELP text and label values alike; a quote only in label
// values (it is literal in HELP text).
std::string escape_text(std::string_view v, bool quote) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else if (quote && c == '"') {
            out += "\\\"";
        } else {
            out += c;
        }
    }
    return out;
}

// `{a="x",b="y"}` (with `le` last for a bucket), or "" without labels.
std::string label_text(const sample& s, std::string_view le = {}) {
    std::string out;
    const auto& names = s.where->labels;
    const std::size_t n = std::min(names.size(), s.labels.size());
    for (std::size_t i = 0; i < n; ++i) {
        out += out.empty() ? "{" : ",";
        out += names[i];
        out += "=\"";
        out += escape_label_value(s.labels[i]);
        out += '"';
    }
    if (!le.empty()) {
        out += out.empty() ? "{" : ",";
        out += "le=\"";
        out += le;
        out += '"';
    }
    if (!out.empty()) out += '}';
    return out;
}

std::string_view type_name(kind k) {
    switch (k) {
    case kind::counter: return "counter";
    case kind::gauge: return "gauge";
    case kind::histogram: return "histogram";
    }
    return "untyped";
}

nlohmann::ordered_json value_json(const sample& s) {
    if (s.decl->kind != kind::histogram) return s.value;
    auto buckets = nlohmann::ordered_json::array();
    for (std::size_t i = 0; i < s.bounds.size() && i < s.buckets.size(); ++i) {
        buckets.push_back({{"le", s.bounds[i]}, {"count", s.buckets[i]}});
    }
    return {{"count", s.value}, {"sum", s.sum}, {"buckets", std::move(buckets)}};
}

// The object of `arr` whose label fields hold the sample's label values; appended when none does.
nlohmann::ordered_json& labelled_object(nlohmann::ordered_json& arr, const sample& s) {
    const auto& names = s.where->labels;
    const std::size_t n = std::min(names.size(), s.labels.size());
    for (auto& e : arr) {
        bool same = true;
        for (std::size_t i = 0; i < n && same; ++i) {
            auto it = e.find(std::string(names[i]));
            same = it != e.end() && it->is_string() && it->get_ref<const std::string&>() == s.labels[i];
        }
        if (same) return e;
    }
    auto& e = arr.emplace_back(nlohmann::ordered_json::object());
    for (std::size_t i = 0; i < n; ++i) e[std::string(names[i])] = s.labels[i];
    return e;
}

}  // namespace

// Out of line rather than in snapshot::add: GCC 12, seeing the histogram branch inlined for
// structs without one, warns (-Warray-bounds) about the member it never reaches.
void snapshot::add_sample(const group& g, const declaration& d, const std::vector<std::string>& label_values,
                          std::uint64_t value) {
    samples_.push_back(sample{&g, &d, label_values, value, {}, {}, 0});
}

void snapshot::add_sample(const group& g, const declaration& d, const std::vector<std::string>& label_values,
                          const histogram& h) {
    sample s{&g, &d, label_values, h.count(), h.bounds(), {}, h.sum()};
    std::uint64_t total = 0;
    for (auto c : h.counts()) s.buckets.push_back(total += c);
    samples_.push_back(std::move(s));
}

std::string prometheus_name(const group& g, const declaration& d, std::string_view prefix) {
    std::string out(prefix);
    for (std::string_view part : {g.subsystem, d.name}) {
        if (part.empty()) continue;
        if (!out.empty()) out += '_';
        out += part;
    }
    out += suffix(d.unit);
    if (d.kind == kind::counter) out += "_total";
    return out;
}

std::string json_key(const declaration& d) {
    if (!d.json_key.empty()) return std::string(d.json_key);
    return std::string(d.name) + std::string(suffix(d.unit));
}

std::string escape_label_value(std::string_view v) { return escape_text(v, true); }

nlohmann::ordered_json to_json(const snapshot& s) {
    auto out = nlohmann::ordered_json::object();
    for (const auto& smp : s.samples()) {
        const group& g = *smp.where;
        nlohmann::ordered_json* target = &out;
        if (!g.json_key.empty()) {
            auto& slot = out[std::string(g.json_key)];
            if (g.labels.empty()) {
                if (!slot.is_object()) slot = nlohmann::ordered_json::object();
                target = &slot;
            } else {
                if (!slot.is_array()) slot = nlohmann::ordered_json::array();
                target = &labelled_object(slot, smp);
            }
        }
        (*target)[json_key(*smp.decl)] = value_json(smp);
    }
    return out;
}

std::string to_prometheus(const snapshot& s, std::string_view prefix) {
    // A family's samples must be contiguous, under one HELP and TYPE, but tables add them
    // instance by instance (every counter of source 1, then of source 2): gather them first.
    std::vector<std::pair<std::string, std::vector<const sample*>>> families;
    std::map<std::string, std::size_t, std::less<>> index;
    for (const auto& smp : s.samples()) {
        auto name = prometheus_name(*smp.where, *smp.decl, prefix);
        auto [it, added] = index.try_emplace(name, families.size());
        if (added) families.emplace_back(std::move(name), std::vector<const sample*>{});
        families[it->second].second.push_back(&smp);
    }
    std::string out;
    for (const auto& [name, list] : families) {
        const declaration& d = *list.front()->decl;
        out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, escape_text(d.help, false), name, type_name(d.kind));
        for (const sample* smp : list) {
            if (d.kind != kind::histogram) {
                out += fmt::format("{}{} {}\n", name, label_text(*smp), smp->value);
                continue;
            }
            for (std::size_t i = 0; i < smp->bounds.size() && i < smp->buckets.size(); ++i) {
                out += fmt::format("{}_bucket{} {}\n", name, label_text(*smp, format_double(smp->bounds[i])),
                                   smp->buckets[i]);
            }
            out += fmt::format("{}_bucket{} {}\n", name, label_text(*smp, "+Inf"), smp->value);
            out += fmt::format("{}_sum{} {}\n", name, label_text(*smp), format_double(smp->sum));
            out += fmt::format("{}_count{} {}\n", name, label_text(*smp), smp->value);
        }
    }
    return out;
}

std::vector<std::string> problems(const snapshot& s, std::string_view prefix) {
    std::vector<std::string> out;
    std::map<std::string, const declaration*> declared;     // Prometheus name -> its declaration
    std::set<std::string> series;                           // name + label values
    std::map<std::string, std::string> top;                 // top-level JSON key -> what it holds
    std::map<std::string, std::set<std::string>> objects;   // JSON object (path) -> its keys
    for (const auto& smp : s.samples()) {
        const group& g = *smp.where;
        const declaration& d = *smp.decl;
        const auto name = prometheus_name(g, d, prefix);
        if (smp.labels.size() != g.labels.size()) {
            out.push_back(fmt::format("{}: {} label values for {} labels", name, smp.labels.size(), g.labels.size()));
        }
        if (!g.labels.empty() && g.json_key.empty()) {
            out.push_back(fmt::format("{}: a labelled group needs a JSON key", name));
        }
        if (auto [it, added] = declared.try_emplace(name, &d); !added && it->second != &d) {
            out.push_back(fmt::format("{}: declared twice", name));
        }
        std::string id = name;
        for (const auto& v : smp.labels) id += '\0' + v;
        if (!series.insert(id).second) out.push_back(fmt::format("{}{}: sample given twice", name, label_text(smp)));

        const auto key = json_key(d);
        std::string path;  // the JSON object the key goes into: "" (top level), "store", "sources\0<labels>"
        if (!g.json_key.empty()) {
            const std::string holds = g.labels.empty() ? "object" : "array";
            auto [it, added] = top.try_emplace(std::string(g.json_key), holds);
            if (!added && it->second != holds) {
                out.push_back(fmt::format("JSON key \"{}\": holds both {} and {}", g.json_key, it->second, holds));
            }
            path = std::string(g.json_key);
            for (const auto& v : smp.labels) path += '\0' + v;
            if (!objects.count(path)) {
                for (auto l : g.labels) objects[path].insert(std::string(l));
            }
            if (!objects[path].insert(key).second) {
                out.push_back(fmt::format("JSON key \"{}\" twice in \"{}\"{}", key, g.json_key, label_text(smp)));
            }
        } else if (auto [it, added] = top.try_emplace(key, "a value"); !added) {
            out.push_back(fmt::format("JSON key \"{}\" twice at the top level ({})", key, name));
        }
    }
    return out;
}

}  // namespace blobd::metrics
