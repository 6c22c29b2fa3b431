// bench_rss_cookies: the daemon's memory per open cookie. Opens N (default 10 000) distinct small
// blobs through the fake kernel and reports how much the process's resident set grew, with the
// fake kernel's own heap growth measured separately and subtracted.
//
//   bench_rss_cookies [--dir DIR] [--count N] [--blob-size BYTES] [--no-read]
//
//   --dir        where the blobs and cache files live (default /tmp)
//   --count      cookies to open (default 10000)
//   --blob-size  bytes per blob (default 8192)
//   --no-read    skip the second phase (one 4 KiB READ per cookie, reported as info)
//
// How the figure is made: RSS is /proc/self/statm's resident pages just before the first OPEN and
// just after the last copen. Everything the fake kernel keeps (its per-object and per-request maps)
// is allocated inside its calls (queueing an OPEN or READ, handling a copen), so the bench measures
// the heap in use (mallinfo2) around each of those calls and reports the sum as the fake kernel's
// share; the daemon's figure is RSS growth minus that share. Kernel memory (anon fd files, the cache
// files' inodes) is not in RSS and not counted.
#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "bench/common.hpp"
#include "daemon/app.hpp"
#include "base/log.hpp"
#include "tests/support/fake_kernel.hpp"
#include "sources/kinds.hpp"

using namespace blobd;
using namespace blobd::bench;
namespace fs = std::filesystem;

namespace {

constexpr double MiB = 1024.0 * 1024.0;

[[noreturn]] void die(const std::string& why) {
    fmt::print(stderr, "bench_rss_cookies: {}\n", why);
    std::exit(1);
}

std::int64_t rss_bytes() {
    std::ifstream f("/proc/self/statm");
    std::int64_t size = 0, resident = 0;
    f >> size >> resident;
    return resident * ::sysconf(_SC_PAGESIZE);
}

std::int64_t heap_bytes() {
    const auto mi = ::mallinfo2();
    return static_cast<std::int64_t>(mi.uordblks + mi.hblkhd);
}

/// Accumulates the heap growth of the calls it wraps (the fake kernel's share).
struct heap_meter {
    std::int64_t total = 0, start = 0;
    void begin() { start = heap_bytes(); }
    void end() { total += heap_bytes() - start; }
    template <class F>
    auto operator()(F&& f) {
        begin();
        auto r = f();
        end();
        return r;
    }
};

std::string cookie(std::size_t i) { return fmt::format("cookie-{:06}", i); }

}  // namespace

int main(int argc, char** argv) {
    if (flag(argc, argv, "--help") || flag(argc, argv, "-h")) {
        fmt::print("usage: bench_rss_cookies [--dir DIR] [--count N] [--blob-size BYTES] [--no-read]\n");
        return 0;
    }
    const std::string dir = opt(argc, argv, "--dir", "/tmp");
    const std::size_t count = std::stoul(opt(argc, argv, "--count", "10000"));
    const std::size_t blob_size = std::stoul(opt(argc, argv, "--blob-size", "8192"));
    const bool do_read = !flag(argc, argv, "--no-read");
    const std::string name = fmt::format("fake: RSS growth, {}k cookies open", count / 1000.0);
    log::set_max_level(log::level::warning);
    if (sanitized_build()) fmt::print("# warning: sanitizer build: the figures below mean nothing\n");

    // One anon fd per cookie in the daemon (the fake kernel keeps none of its own here), plus the
    // local fetcher's cache of open blob files (256) and the process's other descriptors.
    const rlim_t need = count + 16 + 1024;
    if (raise_nofile(need) < need) {
        skip_line(name, fmt::format("needs {} descriptors (RLIMIT_NOFILE); raise it with ulimit -n", need));
        return 0;
    }

    std::string t = dir + "/blobd-bench-rss-XXXXXX";
    if (!::mkdtemp(t.data())) die(fmt::format("mkdtemp in {}: {}", dir, std::strerror(errno)));
    const fs::path blobs = t;
    struct cleanup {
        fs::path p;
        ~cleanup() {
            std::error_code ec;
            fs::remove_all(p, ec);
        }
    } clean{blobs};
    {
        const std::string data(blob_size, 'b');
        for (std::size_t i = 0; i < count + 16; ++i) {
            std::ofstream(blobs / cookie(i), std::ios::binary) << data;
        }
    }

    heap_meter fake;  // the fake kernel's heap growth
    test::fake_kernel k(dir, /*hold_cache_fds=*/false);
    observing_device dev(k.dev());
    dev.before_send = [&] { fake.begin(); };
    dev.after_send = [&] { fake.end(); };
    event_loop loop;
    cfg::config conf;
    conf.cache_dir = "/unused";
    conf.control_socket = "";
    conf.sources.push_back(sources::source_of(sources::local_settings{blobs.string()}));
    app daemon(loop, dev, std::make_shared<const cfg::config>(conf));
    if (!daemon.start()) die("app::start failed");
    auto run_until = [&](auto pred, const char* what) {
        const auto limit = now_ns() + 300'000'000'000ull;
        while (!pred()) {
            if (now_ns() > limit) die(fmt::format("timed out waiting for {}", what));
            loop.run_once(std::chrono::milliseconds(100));
        }
    };

    std::vector<std::uint32_t> objs;
    objs.reserve(count + 16);
    // Warm-up: first-use allocations (the loop's, the fetcher's, malloc's own) are not per cookie.
    for (std::size_t i = count; i < count + 16; ++i) objs.push_back(k.open("erofs,bench", cookie(i)));
    run_until([&] { return dev.copens == 16; }, "warm-up copens");
    for (std::size_t i = 0; i < 16; ++i) k.read(objs[i], 0, 4096);
    run_until([&] { return dev.completions == 16; }, "warm-up READs");

    constexpr std::size_t batch = 256;  // bounds the fds in flight in the socket
    const std::int64_t rss0 = rss_bytes(), heap0 = heap_bytes(), fake0 = fake.total;
    const auto t0 = now_ns();
    for (std::size_t i = 0; i < count;) {
        const std::size_t end = std::min(count, i + batch);
        for (; i < end; ++i) objs.push_back(fake([&] { return k.open("erofs,bench", cookie(i)); }));
        run_until([&] { return dev.copens == 16 + end; }, "copens");
    }
    const double open_s = static_cast<double>(now_ns() - t0) / 1e9;
    const std::int64_t rss1 = rss_bytes(), heap1 = heap_bytes(), fake1 = fake.total;
    for (std::size_t i = 16; i < objs.size(); ++i) {
        if (k.copen_result(objs[i]) != static_cast<std::int64_t>(blob_size)) die("an OPEN failed");
    }
    if (daemon.stats().objects_open != count + 16) die("the daemon does not hold every object");

    const double fake_mib = static_cast<double>(fake1 - fake0) / MiB;
    const double rss_mib = static_cast<double>(rss1 - rss0) / MiB;
    const double daemon_mib = rss_mib - fake_mib;
    const double daemon_heap_mib = static_cast<double>((heap1 - heap0) - (fake1 - fake0)) / MiB;
    fmt::print("# rss_cookies: {} cookies of {} bytes in {}: RSS +{:.1f} MiB in all, fake kernel heap +{:.1f} MiB, "
               "daemon +{:.1f} MiB RSS ({:.0f} bytes per cookie), daemon heap in use +{:.1f} MiB; {:.2f} s for the "
               "OPENs ({:.0f}/s)\n",
               count, blob_size, dir, rss_mib, fake_mib, daemon_mib, daemon_mib * MiB / static_cast<double>(count),
               daemon_heap_mib, open_s, static_cast<double>(count) / open_s);
    const bool ok = daemon_mib <= 32.0;
    result_line(name, fmt::format("{:.1f} MiB", daemon_mib), fmt::format("fake kernel {:.1f} MiB", fake_mib), "-",
                "<= 32 MiB", ok ? "PASS" : "FAIL");
    result_line(fmt::format("fake: OPENs/s, {}k distinct blobs", count / 1000.0),
                per_s(static_cast<double>(count) / open_s), "-", "-", "-", "info");

    if (do_read) {
        // Second phase: one 4 KiB READ per cookie (one chunk fetched and written per object).
        const std::uint64_t done0 = dev.completions;
        for (std::size_t i = 16; i < objs.size();) {
            const std::size_t end = std::min(objs.size(), i + batch);
            for (; i < end; ++i) fake([&] { return k.read(objs[i], 0, 4096); });
            run_until([&] { return dev.completions == done0 + (end - 16); }, "READ completions");
        }
        const std::int64_t rss2 = rss_bytes(), fake2 = fake.total;
        const double d2 = static_cast<double>((rss2 - rss0) - (fake2 - fake0)) / MiB;
        fmt::print("# rss_cookies: after one 4 KiB READ per cookie: daemon +{:.1f} MiB RSS in all, fake kernel heap "
                   "+{:.1f} MiB\n",
                   d2, static_cast<double>(fake2 - fake0) / MiB);
        result_line(fmt::format("fake: RSS growth, {}k cookies + 1 READ each", count / 1000.0),
                    fmt::format("{:.1f} MiB", d2),
                    fmt::format("fake kernel {:.1f} MiB", static_cast<double>(fake2 - fake0) / MiB), "-", "-",
                    "info");
    }

    daemon.request_stop(std::chrono::milliseconds(1000));
    run_until([&] { return daemon.finished(); }, "the daemon to stop");
    return ok ? 0 : 2;
}
