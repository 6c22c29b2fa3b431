// Reader for the real-kernel benchmarks (bench/uml): random aligned preads from N threads, or one
// sequential pass.
//
//   randread FILE [--threads N] [--ops M] [--bs 4096] [--seed S]     random: M preads in all
//   randread FILE --seq [--bs 1M] [--bytes B]                        sequential: the whole file (or B)
//
// Random mode: each thread has its own generator (seed + thread index) and does its share of the
// M operations at block-aligned offsets drawn uniformly from [0, size - bs]. Sequential mode reads
// the file front to back with one thread. Every byte count read is checked (a short read or an
// error is reported and the exit status is 1). Output, one line, easy to parse:
//   RESULT mode=rand threads=16 ops=4000 bs=4096 secs=1.234 ops_s=3241.5 MBps=13.28 p50_us=812 p99_us=9120 max_us=..
//   RESULT mode=seq bs=1048576 bytes=67108864 secs=0.812 MBps=82.65
// (MBps is 10^6 bytes per second.)
//
// Build: g++ -std=c++20 -O2 -pthread bench/uml/randread.cpp -o randread
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using clk = std::chrono::steady_clock;

[[noreturn]] void usage() {
    std::fprintf(stderr,
                 "usage: randread FILE [--threads N] [--ops M] [--bs SIZE] [--seed S]\n"
                 "       randread FILE --seq [--bs SIZE] [--bytes B]\n");
    std::exit(2);
}

std::uint64_t parse_size(const std::string& s) {
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    std::uint64_t mul = 1;
    if (end && *end) {
        switch (*end) {
            case 'k': case 'K': mul = 1024; break;
            case 'm': case 'M': mul = 1024 * 1024; break;
            case 'g': case 'G': mul = 1024ull * 1024 * 1024; break;
            default: usage();
        }
    }
    if (v <= 0) usage();
    return static_cast<std::uint64_t>(v * static_cast<double>(mul));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) usage();
    std::string file = argv[1];
    unsigned threads = 1;
    std::uint64_t ops = 1000, bs = 0, seed = 1, max_bytes = 0;
    bool seq = false;
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) usage();
            return argv[++i];
        };
        if (a == "--threads") threads = static_cast<unsigned>(std::stoul(next()));
        else if (a == "--ops") ops = std::stoull(next());
        else if (a == "--bs") bs = parse_size(next());
        else if (a == "--seed") seed = std::stoull(next());
        else if (a == "--seq") seq = true;
        else if (a == "--bytes") max_bytes = parse_size(next());
        else usage();
    }
    if (bs == 0) bs = seq ? 1024 * 1024 : 4096;
    if (threads == 0 || ops == 0) usage();

    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        std::fprintf(stderr, "randread: %s: %s\n", file.c_str(), std::strerror(errno));
        return 1;
    }
    struct stat sb {};
    ::fstat(fd, &sb);
    const std::uint64_t size = static_cast<std::uint64_t>(sb.st_size);
    if (size < bs) {
        std::fprintf(stderr, "randread: %s: %llu bytes, smaller than one block of %llu\n", file.c_str(),
                     (unsigned long long)size, (unsigned long long)bs);
        return 1;
    }

    if (seq) {
        std::vector<char> buf(bs);
        const std::uint64_t limit = max_bytes ? std::min(max_bytes, size) : size;
        std::uint64_t total = 0;
        auto t0 = clk::now();
        while (total < limit) {
            ssize_t n = ::pread(fd, buf.data(), std::min<std::uint64_t>(bs, limit - total), static_cast<off_t>(total));
            if (n <= 0) {
                std::fprintf(stderr, "randread: read at %llu: %s\n", (unsigned long long)total,
                             n < 0 ? std::strerror(errno) : "unexpected end of file");
                return 1;
            }
            total += static_cast<std::uint64_t>(n);
        }
        double secs = std::chrono::duration<double>(clk::now() - t0).count();
        std::printf("RESULT mode=seq bs=%llu bytes=%llu secs=%.4f MBps=%.2f\n", (unsigned long long)bs,
                    (unsigned long long)total, secs, static_cast<double>(total) / secs / 1e6);
        return 0;
    }

    const std::uint64_t blocks = size / bs;
    std::vector<std::vector<std::uint32_t>> lat(threads);  // microseconds
    std::atomic<int> errors{0};
    std::atomic<unsigned> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t) {
        const std::uint64_t mine = ops / threads + (t < ops % threads ? 1 : 0);
        pool.emplace_back([&, t, mine] {
            std::mt19937_64 rng(seed * 1000003 + t);
            std::uniform_int_distribution<std::uint64_t> pick(0, blocks - 1);
            void* p = nullptr;
            if (posix_memalign(&p, 4096, bs) != 0) std::abort();
            auto* buf = static_cast<char*>(p);
            lat[t].reserve(mine);
            ready.fetch_add(1);
            while (!go.load()) std::this_thread::yield();
            for (std::uint64_t i = 0; i < mine; ++i) {
                const std::uint64_t off = pick(rng) * bs;
                auto s = clk::now();
                ssize_t n = ::pread(fd, buf, bs, static_cast<off_t>(off));
                auto e = clk::now();
                if (n != static_cast<ssize_t>(bs)) {
                    if (errors.fetch_add(1) < 5) {
                        std::fprintf(stderr, "randread: pread %llu at %llu: %s\n", (unsigned long long)bs,
                                     (unsigned long long)off, n < 0 ? std::strerror(errno) : "short read");
                    }
                }
                lat[t].push_back(static_cast<std::uint32_t>(
                    std::chrono::duration_cast<std::chrono::microseconds>(e - s).count()));
            }
            std::free(p);
        });
    }
    while (ready.load() < threads) std::this_thread::yield();
    auto t0 = clk::now();
    go.store(true);
    for (auto& th : pool) th.join();
    double secs = std::chrono::duration<double>(clk::now() - t0).count();
    std::vector<std::uint32_t> all;
    for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
    std::sort(all.begin(), all.end());
    auto pct = [&](double q) -> unsigned {
        if (all.empty()) return 0;
        std::size_t i = static_cast<std::size_t>(q * static_cast<double>(all.size() - 1) + 0.5);
        return all[std::min(i, all.size() - 1)];
    };
    std::printf("RESULT mode=rand threads=%u ops=%zu bs=%llu secs=%.4f ops_s=%.1f MBps=%.2f p50_us=%u p99_us=%u "
                "max_us=%u errors=%d\n",
                threads, all.size(), (unsigned long long)bs, secs, static_cast<double>(all.size()) / secs,
                static_cast<double>(all.size() * bs) / secs / 1e6, pct(0.50), pct(0.99),
                all.empty() ? 0u : all.back(), errors.load());
    return errors.load() ? 1 : 0;
}
