// The space keeper (frontends/cachefiles/space_keeper.hpp) on a real directory tree shaped like a
// cachefiles cache (cache/I<volume>/@<fan>/D<name>), with a stand-in for the kernel's `inuse` and
// `cull` commands that does what fs/cachefiles/namei.c does: resolve the name against the calling
// thread's working directory, refuse names with '/', EBUSY for a file it holds, else unlink it.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <sys/stat.h>
#include <unistd.h>

#include "frontends/cachefiles/space_keeper.hpp"
#include "io/event_loop.hpp"

using namespace blobd;
namespace fs = std::filesystem;

namespace {

struct fake_cull_kernel {
    std::mutex mu;
    std::set<std::string> held;  // absolute paths the kernel holds (S_KERNEL_FILE)
    std::vector<std::string> commands;
    std::atomic<int> inuse_calls{0};

    int operator()(std::string_view cmd) {
        std::lock_guard g(mu);
        commands.emplace_back(cmd);
        const auto sp = cmd.find(' ');
        if (sp == std::string_view::npos) return -EINVAL;
        const std::string verb(cmd.substr(0, sp)), name(cmd.substr(sp + 1));
        if (name.find('/') != std::string::npos) return -EINVAL;
        char cwd[4096];
        if (!::getcwd(cwd, sizeof cwd)) return -errno;
        const std::string path = std::string(cwd) + "/" + name;
        struct stat st{};
        if (::lstat(path.c_str(), &st) != 0) return -ESTALE;
        if (verb == "inuse") {
            ++inuse_calls;
            return held.count(path) ? -EBUSY : 0;
        }
        if (verb != "cull") return -EINVAL;
        if (held.count(path)) return -EBUSY;
        return ::unlink(path.c_str()) == 0 ? 0 : -errno;
    }
};

struct cache_tree {
    fs::path root;
    cache_tree() {
        char tmpl[] = "/tmp/blobd-keeper-XXXXXX";
        REQUIRE(::mkdtemp(tmpl));
        root = tmpl;
        fs::create_directories(root / "cache");
        fs::create_directories(root / "graveyard");
    }
    ~cache_tree() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    /// A cache file of `kib` KiB of data, last used `age` seconds before now.
    fs::path add(const std::string& domain, const std::string& fan, const std::string& name, int kib, int age) {
        const fs::path dir = root / "cache" / cachefiles_volume_dir(domain) / fan;
        fs::create_directories(dir);
        const fs::path p = dir / *cachefiles_file_name(name);
        std::ofstream(p, std::ios::binary) << std::string(static_cast<std::size_t>(kib) * 1024, 'x');
        const timespec t{::time(nullptr) - age, 0};
        const timespec both[2] = {t, t};
        REQUIRE(::utimensat(AT_FDCWD, p.c_str(), both, 0) == 0);
        return p;
    }
};

// Limits that never trigger on blocks or files (the host's free space is whatever it is), so that
// only the byte budget decides.
space_limits budget(std::uint64_t max_bytes) {
    space_limits l;
    l.blocks = {2, 1, 0};
    l.files = {2, 1, 0};
    l.max_bytes = max_bytes;
    return l;
}

keeper_options options(const cache_tree& t, space_limits l, std::size_t batch = 4096) {
    keeper_options o;
    o.cache_dir = t.root.string();
    o.limits = l;
    o.interval = std::chrono::milliseconds(50);
    o.min_gap = std::chrono::milliseconds(10);
    o.walk_interval = std::chrono::milliseconds(50);
    o.batch = batch;
    return o;
}

template <class Pred>
bool wait_for(Pred p, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (p()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return p();
}

std::uint64_t allocated(const fs::path& p) {
    struct stat st{};
    REQUIRE(::stat(p.c_str(), &st) == 0);
    return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

}  // namespace

// Description: over the byte budget, the keeper culls the least recently used cache files the
// kernel does not hold until the cache is at 90 % of the budget, in eviction order and across
// several walks when its victim batch is small; it never culls a held file, asks `inuse` only of
// would-be victims, empties the graveyard, counts what it culled, and leaves the daemon's working
// directory where it was.
TEST_CASE("space keeper: culls the oldest files not in use down to the budget", "[keeper]") {
    cache_tree t;
    fake_cull_kernel k;
    std::vector<fs::path> files;
    std::uint64_t each = 0;
    for (int i = 0; i < 12; ++i) {
        // Ages 120, 110, ...: file 0 is the oldest. Two domains, several fan-out directories.
        files.push_back(t.add(i % 2 ? "d1" : "d2", "@0" + std::to_string(i % 3), "blob" + std::to_string(i), 64, 120 - i * 10));
        each = allocated(files.back());
    }
    // The oldest file is held by the kernel (a mounted image): it must stay.
    k.held.insert(files[0].string());
    fs::create_directories(t.root / "graveyard" / "0000aaaa00000001" / "@00");
    std::ofstream(t.root / "graveyard" / "0000aaaa00000001" / "@00" / "Dold") << "x";

    const std::uint64_t total = each * files.size();
    // Budget: 10 files' worth; the keeper goes down to 90 % of it, so 9 files (of 12) at most.
    const std::uint64_t max_bytes = each * 10;
    char before[4096];
    REQUIRE(::getcwd(before, sizeof before));
    event_loop loop(64);
    space_keeper keeper(loop, options(t, budget(max_bytes), /*batch*/ 2),
                        [&](std::string_view c) { return k(c); });
    keeper.start();
    REQUIRE(wait_for([&] { return keeper.stats().culled_objects >= 3 && keeper.stats().culling == 0; }));
    keeper.stop();

    const auto s = keeper.stats();
    CHECK(s.culled_objects == 3);  // 12 files, down to 9: the held one spared, files 1, 2, 3 culled
    CHECK(s.culled_bytes == 3 * each);
    CHECK(s.cull_busy == 0);       // the held file was found by `inuse` and never offered
    CHECK(s.graveyard_removed == 3);
    CHECK(s.cache_files + s.culled_objects >= 12);
    CHECK(fs::exists(files[0]));
    for (int i = 1; i <= 3; ++i) CHECK_FALSE(fs::exists(files[i]));
    for (int i = 4; i < 12; ++i) CHECK(fs::exists(files[i]));
    CHECK(fs::is_empty(t.root / "graveyard"));
    CHECK(total - s.culled_bytes <= max_bytes / 10 * 9);
    CHECK(k.inuse_calls.load() > 0);  // the held file was asked about before it could be a victim
    char after[4096];
    REQUIRE(::getcwd(after, sizeof after));
    CHECK(std::string(before) == after);
    // Disk use per domain, from the last walk.
    const auto use = keeper.usage();
    REQUIRE(use.count("d1"));
    REQUIRE(use.count("d2"));
    CHECK(use.at("d1").files + use.at("d2").files == 9);
}

// Description: when everything over the budget is held by the kernel, the keeper culls nothing,
// counts the pass as unsatisfied, and does not spin: walks pause instead of following every write.
TEST_CASE("space keeper: all in use: nothing culled, no spinning", "[keeper]") {
    cache_tree t;
    fake_cull_kernel k;
    std::uint64_t each = 0;
    for (int i = 0; i < 4; ++i) {
        auto p = t.add("d", "@00", "b" + std::to_string(i), 64, 10);
        k.held.insert(p.string());
        each = allocated(p);
    }
    event_loop loop(64);
    auto o = options(t, budget(each));
    o.walk_interval = std::chrono::seconds(10);  // only culling walks
    space_keeper keeper(loop, o, [&](std::string_view c) { return k(c); });
    keeper.start();
    REQUIRE(wait_for([&] { return keeper.stats().unsatisfied >= 1; }));
    for (int i = 0; i < 50; ++i) {
        keeper.wrote(4096, i % 10 == 0);  // writes, some refused for space
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const auto s = keeper.stats();
    keeper.stop();
    CHECK(s.culled_objects == 0);
    CHECK(s.culling == 1);
    CHECK(s.nospace_kicks == 5);
    // The pause after an unsatisfied pass (100 ms here): a handful of walks in ~0.3 s, not one per write.
    CHECK(s.walks <= 6);
    for (int i = 0; i < 4; ++i) CHECK(fs::exists(t.root / "cache" / cachefiles_volume_dir("d") / "@00" / ("Db" + std::to_string(i))));
}

// Description: the blob store's files are culled in one order with the cache files: first a store
// copy of a blob that a cache file also holds (tier 0, although it is younger than every other
// candidate), then the least recently used of cache and store files alike; a store file the store
// says is in use stays however old it is. The store deletes on the loop (hooks), and what it freed
// counts towards the budget at once.
TEST_CASE("space keeper: one eviction order with the blob store", "[keeper]") {
    cache_tree t;
    fake_cull_kernel k;
    const std::string hex(64, 'a');
    auto young = t.add("d1", "@01", "young", 64, 1);
    auto old_cache = t.add("d1", "@01", "old-cache", 64, 100);
    auto digest_cache = t.add("d1", "@02", "sha256:" + hex, 64, 5);
    const std::uint64_t each = allocated(young);

    // The store: three files on the same filesystem, in the test's own bookkeeping.
    struct stored {
        fs::path path;
        std::uint64_t bytes;
        int age;
        bool in_use;
    };
    std::map<std::string, stored> store;
    auto put = [&](const std::string& key, int age, bool in_use) {
        const fs::path p = t.root / "store" / key;
        fs::create_directories(p.parent_path());
        std::ofstream(p, std::ios::binary) << std::string(64 * 1024, 's');
        store[key] = {p, allocated(p), age, in_use};
    };
    put("sha256/" + hex, 50, false);        // held by d1's cache file: tier 0
    put("src-0123456789abcdef/lonely", 200, false);  // the oldest candidate of tier 1
    put("src-0123456789abcdef/busy", 300, true);     // older still, but in use
    std::uint64_t store_bytes = 0;
    for (auto& [key, f] : store) store_bytes += f.bytes;

    event_loop loop(64);
    const std::thread::id loop_thread = std::this_thread::get_id();
    std::atomic<bool> off_loop{false};
    store_hooks hooks;
    hooks.dir = (t.root / "store").string();
    hooks.files = [&] {
        if (std::this_thread::get_id() != loop_thread) off_loop = true;
        std::vector<store_file> out;
        const auto now = std::chrono::system_clock::now();
        for (auto& [key, f] : store) {
            const auto at = now - std::chrono::seconds(f.age);
            out.push_back({key, f.bytes, std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count(),
                           f.in_use});
        }
        return out;
    };
    std::vector<std::string> removed;
    hooks.remove = [&](std::vector<std::string> keys, std::function<void(std::uint64_t, std::uint64_t)> done) {
        if (std::this_thread::get_id() != loop_thread) off_loop = true;
        std::uint64_t files = 0, bytes = 0;
        for (const auto& key : keys) {
            auto it = store.find(key);
            if (it == store.end() || it->second.in_use) continue;
            fs::remove(it->second.path);
            bytes += it->second.bytes;
            ++files;
            removed.push_back(key);
            store.erase(it);
        }
        loop.defer([=] { done(files, bytes); });
    };
    // Six files in all; a budget of five leaves 4.5 after culling: two go.
    space_keeper keeper(loop, options(t, budget(each * 5)), [&](std::string_view c) { return k(c); });
    keeper.set_store(std::move(hooks));
    keeper.set_other_bytes(store_bytes);
    keeper.start();
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < until &&
           !(keeper.stats().store_culled_files >= 2 && keeper.stats().culling == 0)) {
        loop.run_once(std::chrono::milliseconds(20));
    }
    keeper.stop();
    const auto s = keeper.stats();
    CHECK_FALSE(off_loop.load());  // the hooks ran on the loop thread only
    CHECK(s.store_culled_files == 2);
    CHECK(s.store_culled_bytes == 2 * each);
    CHECK(s.culled_objects == 0);  // no cache file had to go
    REQUIRE(removed.size() == 2);
    CHECK(removed[0] == "sha256/" + hex);  // tier 0 first
    CHECK(removed[1] == "src-0123456789abcdef/lonely");
    CHECK(store.count("src-0123456789abcdef/busy"));
    CHECK(fs::exists(old_cache));
    CHECK(fs::exists(digest_cache));
    CHECK(fs::exists(young));
}

TEST_CASE("space keeper: store and cookie names meet in one match key", "[keeper]") {
    const std::string hex(64, 'b');
    CHECK(store_match_of_key("sha256/" + hex) == "sha256/" + hex);
    CHECK(store_match_of_cookie("sha256:" + hex) == "sha256/" + hex);
    CHECK(store_match_of_cookie(hex) == "sha256/" + hex);
    CHECK(store_match_of_key("src-0123456789abcdef/blob1") == "name:blob1");
    CHECK(store_match_of_cookie("blob1") == "name:blob1");
    CHECK(store_match_of_cookie("sha256:" + hex.substr(1)) == "name:sha256:" + hex.substr(1));
}

// Description: culling on request: a whole domain, or one blob of it; files the kernel holds are
// kept and reported; unknown domains and blobs, and names cachefiles encodes, get a clear error.
TEST_CASE("space keeper: cull on request", "[keeper]") {
    cache_tree t;
    fake_cull_kernel k;
    auto a = t.add("d1", "@01", "a", 8, 5);
    auto b = t.add("d1", "@02", "b", 8, 5);
    auto c = t.add("d1", "@02", "c", 8, 5);
    auto other = t.add("d2", "@01", "a", 8, 5);
    k.held.insert(c.string());
    event_loop loop(64);
    // No budget and limits that never trigger: only requests cull.
    space_keeper keeper(loop, options(t, budget(0)), [&](std::string_view cmd) { return k(cmd); });
    keeper.start();
    auto ask = [&](std::string domain, std::string blob) {
        std::optional<cull_report> got;
        keeper.cull(std::move(domain), std::move(blob), [&](cull_report r) { got = std::move(r); });
        for (int i = 0; i < 500 && !got; ++i) loop.run_once(std::chrono::milliseconds(20));
        REQUIRE(got);
        return *got;
    };
    // Usage lists the domain's files, culling nothing.
    std::optional<cull_report> listed;
    keeper.usage("d1", [&](cull_report rep) { listed = std::move(rep); });
    for (int i = 0; i < 500 && !listed; ++i) loop.run_once(std::chrono::milliseconds(20));
    REQUIRE(listed);
    CHECK(listed->error.empty());
    REQUIRE(listed->blobs.size() == 3);
    CHECK(listed->blobs[0].name == "a");
    CHECK(listed->blobs[2].name == "c");
    CHECK_FALSE(listed->blobs[1].encoded);
    CHECK(listed->bytes == allocated(a) + allocated(b) + allocated(c));
    CHECK(listed->culled == 0);
    CHECK(fs::exists(a));

    auto r = ask("d1", "a");
    CHECK(r.error.empty());
    CHECK(r.culled == 1);
    CHECK_FALSE(fs::exists(a));
    CHECK(fs::exists(other));  // the same blob in another domain is another cache file

    r = ask("d1", "c");
    CHECK(r.culled == 0);
    CHECK(r.busy == 1);
    CHECK(fs::exists(c));

    r = ask("d1", "");
    CHECK(r.culled == 1);  // b; c is held
    CHECK(r.busy == 1);
    CHECK_FALSE(fs::exists(b));
    CHECK(fs::exists(c));

    r = ask("d1", "nope");
    CHECK(r.error.find("no cache file") != std::string::npos);
    r = ask("d9", "");
    CHECK(r.error.find("no cache files") != std::string::npos);
    r = ask("../d1", "");
    CHECK_FALSE(r.error.empty());
    r = ask("d1", "with space");
    CHECK(r.error.find("not supported") != std::string::npos);
    keeper.stop();
    CHECK(keeper.stats().culled_objects == 2);
    CHECK(fs::exists(other));
}

TEST_CASE("space keeper: cachefiles names", "[keeper]") {
    CHECK(cachefiles_file_name("sha256:ab") == "Dsha256:ab");
    CHECK(cachefiles_file_name("a/b") == std::nullopt);
    CHECK(cachefiles_file_name("a b") == std::nullopt);
    CHECK(cachefiles_file_name(std::string(253, 'x')) == std::nullopt);
    CHECK(cachefiles_file_name(std::string(252, 'x')).has_value());
    CHECK(cachefiles_volume_dir("d1") == "Ierofs,d1");
    CHECK(cachefiles_volume_domain("Ierofs,d1") == "d1");
    CHECK(cachefiles_volume_domain("Ierofs,") == std::nullopt);
    CHECK(cachefiles_volume_domain("Iother") == std::nullopt);
}
