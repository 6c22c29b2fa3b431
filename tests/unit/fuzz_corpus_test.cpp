// Unit test: every fuzz target's seed corpus (tests/fuzz/corpus/<name>/), and mutations of it,
// through the target's own checks (tests/fuzz/*_check.hpp) under g++, so the normal and the
// ASan/UBSan test runs exercise them without clang. The config check runs fully linked here, with
// the fetchers behind the source kinds (the libFuzzer target leaves those out). A failing check
// aborts, naming the input ("corpus/url/ipv6", or "corpus/url/ipv6 mutation 17").
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <vector>

#include "tests/fuzz/auth_file_check.hpp"
#include "tests/fuzz/challenge_check.hpp"
#include "tests/fuzz/config_check.hpp"
#include "tests/fuzz/http_check.hpp"
#include "tests/fuzz/parse_invariants.hpp"
#include "tests/fuzz/rfc3339_check.hpp"
#include "tests/fuzz/fanotify_check.hpp"
#include "tests/fuzz/erofs_check.hpp"
#include "tests/fuzz/handoff_check.hpp"
#include "tests/fuzz/token_check.hpp"
#include "tests/fuzz/url_check.hpp"

namespace {

using bytes = std::vector<std::uint8_t>;
using check_fn = std::function<void(std::span<const std::uint8_t>)>;

std::vector<std::pair<std::string, bytes>> corpus(const std::string& target) {
    const std::filesystem::path dir = std::filesystem::path(BLOBD_SOURCE_DIR) / "tests/fuzz/corpus" / target;
    std::vector<std::pair<std::string, bytes>> out;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        std::ifstream f(e.path(), std::ios::binary);
        out.emplace_back("corpus/" + target + "/" + e.path().filename().string(),
                         bytes(std::istreambuf_iterator<char>(f), {}));
    }
    std::sort(out.begin(), out.end());
    return out;
}

// libFuzzer's simplest moves: flip a bit, set a byte, insert, erase, duplicate a span, splice in
// part of another seed. Bytes worth trying are the ones parsers branch on.
bytes mutate(bytes m, const std::vector<std::pair<std::string, bytes>>& seeds, std::mt19937_64& rng) {
    static constexpr std::uint8_t interesting[] = {0, '\n', '\r', ' ', '\t', '"', '\\', '/', ':', '-', '=', ',', '?',
                                                   '#', '%', '@', '[', ']', '{', '}', '0', '9', 0x7f, 0x80, 0xff};
    const int moves = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < moves; ++k) {
        const std::size_t at = m.empty() ? 0 : rng() % m.size();
        switch (rng() % 6) {
        case 0:
            if (!m.empty()) m[at] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
            break;
        case 1:
            if (!m.empty()) m[at] = interesting[rng() % std::size(interesting)];
            break;
        case 2:
            m.insert(m.begin() + static_cast<std::ptrdiff_t>(at), interesting[rng() % std::size(interesting)]);
            break;
        case 3:
            if (!m.empty()) m.erase(m.begin() + static_cast<std::ptrdiff_t>(at),
                                    m.begin() + static_cast<std::ptrdiff_t>(std::min(m.size(), at + 1 + rng() % 8)));
            break;
        case 4:
            if (!m.empty()) {
                const std::size_t n = std::min<std::size_t>(m.size() - at, 1 + rng() % 16);
                const bytes span(m.begin() + static_cast<std::ptrdiff_t>(at),
                                 m.begin() + static_cast<std::ptrdiff_t>(at + n));
                m.insert(m.begin() + static_cast<std::ptrdiff_t>(at), span.begin(), span.end());
            }
            break;
        default: {
            const bytes& other = seeds[rng() % seeds.size()].second;
            if (other.empty()) break;
            const std::size_t from = rng() % other.size();
            const std::size_t n = std::min<std::size_t>(other.size() - from, 1 + rng() % 32);
            m.erase(m.begin() + static_cast<std::ptrdiff_t>(at), m.end());
            m.insert(m.end(), other.begin() + static_cast<std::ptrdiff_t>(from),
                     other.begin() + static_cast<std::ptrdiff_t>(from + n));
            break;
        }
        }
    }
    return m;
}

// Every seed, then `mutations` mutants; returns the number of seeds.
std::size_t replay(const std::string& target, const check_fn& check, int mutations) {
    const auto seeds = corpus(target);
    for (const auto& [name, data] : seeds) {
        blobd::fuzz::input_name() = name;
        check(data);
    }
    std::mt19937_64 rng(std::hash<std::string>{}(target));
    for (int i = 0; i < mutations && !seeds.empty(); ++i) {
        const auto& [name, data] = seeds[rng() % seeds.size()];
        blobd::fuzz::input_name() = name + " mutation " + std::to_string(i);
        check(mutate(data, seeds, rng));
    }
    blobd::fuzz::input_name().clear();
    return seeds.size();
}

}  // namespace

// Description: each target's seeds pass its checks, and so do 3000 mutants of them; every corpus
// holds seeds (an empty or missing directory would make the rest of this test vacuous).
TEST_CASE("fuzz corpora replay through the fuzz checks", "[fuzz]") {
    const std::vector<std::pair<std::string, check_fn>> targets = {
        {"parse",
         [](std::span<const std::uint8_t> in) {
             blobd::test::check_parse_invariants(std::as_bytes(in));
         }},
        {"url", blobd::fuzz::check_url},
        {"http", blobd::fuzz::check_http},
        {"challenge", blobd::fuzz::check_challenge},
        {"token", blobd::fuzz::check_token},
        {"rfc3339", blobd::fuzz::check_rfc3339},
        {"auth_file", blobd::fuzz::check_auth_file},
        {"config", blobd::fuzz::check_config},
        {"fanotify", blobd::fuzz::check_fanotify},
        {"erofs", blobd::fuzz::check_erofs},
        {"handoff", blobd::fuzz::check_handoff},
    };
    for (const auto& [target, check] : targets) {
        INFO(target);
        CHECK(replay(target, check, 3000) >= 10);
    }
}

// Description: the checks can fail. Outputs of a parser that broke its contract, fed to the same
// helpers the checks use, are told apart from correct ones (a check that cannot fail tests nothing).
TEST_CASE("fuzz checks tell broken results apart", "[fuzz]") {
    using namespace blobd;
    // A redirect that left the origin without an absolute Location would be caught by this rule.
    auto base = http::parse_url("https://a.example/x/y");
    REQUIRE(base);
    auto moved = http::parse_url("https://b.example/x/y");
    REQUIRE(moved);
    CHECK_FALSE(fuzz::same_url(*base, *moved));
    CHECK(fuzz::has_dot_segment("/a/../b"));
    CHECK_FALSE(fuzz::has_dot_segment("/a/..b/.c"));
    CHECK(fuzz::percent_decode("%2F%zz") == std::nullopt);
    CHECK(fuzz::repository_ok_reference("library/app"));
    CHECK_FALSE(fuzz::repository_ok_reference("Library/app"));
    // The RFC 3339 reference refuses what the parser used to accept.
    CHECK(fuzz::rfc3339_reference("2024-04-31T00:00:00Z") == std::nullopt);
    CHECK(fuzz::rfc3339_reference("2024-04-30T00:00:00Z") == oci::parse_rfc3339("2024-04-30T00:00:00Z"));
    CHECK(fuzz::format_utc(0) == "1970-01-01T00:00:00Z");
    CHECK(fuzz::format_utc(-62167219200) == "0000-01-01T00:00:00Z");
    CHECK(fuzz::format_utc(253402300800) == std::nullopt);
    CHECK(fuzz::decimal_reference("18446744073709551615") == UINT64_MAX);
    CHECK(fuzz::decimal_reference("18446744073709551616") == std::nullopt);
    CHECK(fuzz::decimal_reference("000000000000000000000001") == 1);
    // A challenge printed back with an unescaped quote would not parse to itself.
    oci::challenge c{"bearer", {{"realm", "a\"b"}}, ""};
    CHECK(oci::parse_challenges(fuzz::print_challenges({c})) == std::vector{c});
    CHECK(oci::parse_challenges("bearer realm=\"a\"b\"") != std::vector{c});
    // The body-plan rules reject what plan_range_body must reject.
    fuzz::range_request r;
    r.off = 0;
    r.len = 16;
    CHECK(fuzz::plan_ok_reference(206, "bytes 0-15/100", "16", std::nullopt, r));
    CHECK_FALSE(fuzz::plan_ok_reference(206, "bytes 0-15/100", "17", std::nullopt, r));
    CHECK_FALSE(fuzz::plan_ok_reference(200, std::nullopt, "8", std::nullopt, r));
    CHECK_FALSE(fuzz::plan_ok_reference(200, std::nullopt, "16", "gzip", r));
}
