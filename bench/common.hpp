// Helpers shared by the benchmarks: clocks, percentiles, option parsing, the result lines that
// bench/run turns into its table, and a device wrapper that observes the daemon's calls into the
// fake kernel (completion timestamps, copen counts) without changing what they do.
//
// Result lines (one per figure, on stdout; everything else is commentary for humans):
//   RESULT|<benchmark>|<measured>|<baseline>|<ratio>|<target>|<PASS|FAIL|info>
//   SKIP|<benchmark>|<why>
// Threading: one thread (the benchmark's, which also runs the daemon's loop).
#pragma once

#include <sched.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "base/unique_fd.hpp"
#include "frontends/cachefiles/device.hpp"

namespace blobd::bench {

inline std::uint64_t now_ns() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
}

inline std::uint64_t clock_ns(clockid_t id) {
    timespec ts{};
    ::clock_gettime(id, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}
/// CPU time of the calling thread (the daemon's loop thread in these benchmarks).
inline std::uint64_t thread_cpu_ns() { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }
/// CPU time of every thread of the process, io_uring's io-wq workers included (they belong to it).
inline std::uint64_t process_cpu_ns() { return clock_ns(CLOCK_PROCESS_CPUTIME_ID); }

/// Busy CPU time of the whole machine so far (every process and the kernel: user, nice, system,
/// irq, softirq from /proc/stat), and the time the hypervisor stole; seconds. 0 if unreadable.
struct machine_cpu {
    double busy_s = 0, steal_s = 0;
};
inline machine_cpu machine_cpu_now() {
    machine_cpu m;
    std::FILE* f = std::fopen("/proc/stat", "re");
    if (!f) return m;
    unsigned long long user = 0, nice = 0, sys = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
    const int n = std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle, &iowait, &irq,
                              &softirq, &steal);
    std::fclose(f);
    if (n < 8) return m;
    const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
    m.busy_s = static_cast<double>(user + nice + sys + irq + softirq) / tick;
    m.steal_s = static_cast<double>(steal) / tick;
    return m;
}

/// Involuntary context switches of every thread of the process so far: the scheduler took the
/// CPU away, so timings over a span with many of them are noisy.
inline std::uint64_t involuntary_switches() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return static_cast<std::uint64_t>(ru.ru_nivcsw);
}

/// The q-quantile (0..1) of `v` by nearest rank; sorts `v`.
inline double percentile(std::vector<double>& v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    auto rank = static_cast<std::size_t>(q * static_cast<double>(v.size()) + 0.999999);
    rank = std::clamp<std::size_t>(rank, 1, v.size());
    return v[rank - 1];
}

inline double median(std::vector<double> v) { return percentile(v, 0.5); }

inline void result_line(std::string_view name, std::string_view measured, std::string_view baseline,
                        std::string_view ratio, std::string_view target, std::string_view verdict) {
    fmt::print("RESULT|{}|{}|{}|{}|{}|{}\n", name, measured, baseline, ratio, target, verdict);
    std::fflush(stdout);
}

inline void skip_line(std::string_view name, std::string_view why) {
    fmt::print("SKIP|{}|{}\n", name, why);
    std::fflush(stdout);
}

inline std::string mib_s(double bytes_per_s) { return fmt::format("{:.0f} MiB/s", bytes_per_s / (1 << 20)); }
inline std::string per_s(double n) {
    return n >= 1e6 ? fmt::format("{:.2f}M/s", n / 1e6) : fmt::format("{:.1f}k/s", n / 1e3);
}
inline std::string usec(double ns) { return fmt::format("{:.1f} us", ns / 1e3); }

/// Minimal "--name value" parsing: returns the value after `name`, or `def`.
inline std::string opt(int argc, char** argv, std::string_view name, std::string def) {
    for (int i = 1; i + 1 < argc; ++i) {
        if (name == argv[i]) return argv[i + 1];
    }
    return def;
}
inline bool flag(int argc, char** argv, std::string_view name) {
    for (int i = 1; i < argc; ++i) {
        if (name == argv[i]) return true;
    }
    return false;
}

/// Pins the calling thread, and the threads it creates later, to one CPU (io_uring's io-wq
/// workers may follow the cgroup's cpuset instead). Returns false if the CPU cannot be used.
inline bool pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return ::sched_setaffinity(0, sizeof set, &set) == 0;
}

/// Raises RLIMIT_NOFILE to at least `want` (up to the hard limit, or beyond it with
/// CAP_SYS_RESOURCE). Returns the soft limit in force afterwards.
inline rlim_t raise_nofile(rlim_t want) {
    rlimit rl{};
    ::getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur >= want) return rl.rlim_cur;
    rlimit more{std::max(want, rl.rlim_cur), std::max(want, rl.rlim_max)};
    if (::setrlimit(RLIMIT_NOFILE, &more) == 0) return more.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
    ::getrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur;
}

inline bool sanitized_build() {
#if defined(__SANITIZE_ADDRESS__)
    return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return true;
#else
    return false;
#endif
#else
    return false;
#endif
}

/// Forwards every call to the fake kernel's device and observes the answers: completed READs
/// (with a hook, to timestamp them), copens sent, and the time spent in the fake device's calls
/// (two clock reads per call, about 50 ns).
class observing_device final : public device {
public:
    explicit observing_device(device& inner) : in_(inner) {}
    int fd() const override { return in_.fd(); }
    ssize_t read_message(std::span<std::byte> buf) override {
        const auto t = now_ns();
        const ssize_t n = in_.read_message(buf);
        read_ns += now_ns() - t;
        ++reads;
        return n;
    }
    int send(std::string_view command) override {
        if (before_send) before_send();
        int r = in_.send(command);
        if (after_send) after_send();
        if (command.substr(0, 6) == "copen ") ++copens;
        return r;
    }
    int complete_read(int anon_fd, std::uint32_t msg_id) override {
        const auto t = now_ns();
        int r = in_.complete_read(anon_fd, msg_id);
        complete_ns += now_ns() - t;
        if (r == 0) {
            ++completions;
            if (on_complete) on_complete(msg_id);
        } else {
            ++failed_completions;
        }
        return r;
    }

    std::function<void(std::uint32_t msg_id)> on_complete;  ///< after a READ_COMPLETE the fake accepted
    std::function<void()> before_send, after_send;          ///< around the fake's copen handling
    std::uint64_t completions = 0, failed_completions = 0, copens = 0;
    /// Time spent inside the fake device's read_message (calls, including the empty one that ends
    /// a drain) and complete_read: the fake kernel's work done on the daemon's thread.
    std::uint64_t reads = 0, read_ns = 0, complete_ns = 0;

private:
    device& in_;
};

/// The figures of a run only count if the daemon did the work: nothing failed (daemon stats
/// `s`, the observing device, the fake kernel `k`) and 16 spots of object `obj`'s cache file hold
/// the blob's bytes. Returns "" or what is wrong. (Kernel: tests/support/fake_kernel.hpp.)
template <class Stats, class Kernel>
std::string verify_run(const Stats& s, const observing_device& dev, const Kernel& k, std::uint32_t obj,
                       const std::string& blob_path, std::uint64_t size) {
    if (s.reads_failed || dev.failed_completions || k.bad_completions() || s.write_errors || s.fetch_errors) {
        return fmt::format("daemon run had failures: reads_failed {}, refused completions {}, bad completions {}, "
                           "write errors {}, fetch errors {}",
                           s.reads_failed, dev.failed_completions, k.bad_completions(), s.write_errors, s.fetch_errors);
    }
    unique_fd src(::open(blob_path.c_str(), O_RDONLY | O_CLOEXEC));
    for (std::uint64_t j = 0; j < 16; ++j) {
        const std::uint64_t off = (size / 16) * j / 4096 * 4096;
        std::string want(4096, '\0');
        if (::pread(src.get(), want.data(), want.size(), static_cast<off_t>(off)) != 4096) return "verify pread";
        if (k.cache_bytes(obj, off, 4096) != want) return fmt::format("cache file differs from the blob at {}", off);
    }
    return {};
}

/// Creates (or truncates) `path` for writing like a cache file: O_DIRECT, as the kernel's anon fds
/// write through to their backing file, or buffered on a filesystem without direct I/O (tmpfs
/// before 6.6, where the fake kernel falls back too). `direct` says which. Invalid on failure.
inline unique_fd create_cache_like_file(const std::string& path, bool& direct) {
    unique_fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0600));
    direct = static_cast<bool>(fd);
    if (!fd) fd.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    return fd;
}

/// Creates `path` (mode `mode`) with `size` pseudo-random bytes (xorshift: incompressible, the same
/// every run). Returns "" or what failed, for the caller's error message.
inline std::string write_random_file(const std::string& path, std::uint64_t size, mode_t mode = 0600) {
    unique_fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (!fd) return fmt::format("create {}: {}", path, std::strerror(errno));
    constexpr std::uint64_t block_bytes = 1 << 20;
    std::vector<std::uint64_t> block(block_bytes / 8);
    std::uint64_t x = 0x9e3779b97f4a7c15ull;
    for (std::uint64_t done = 0; done < size;) {
        for (auto& w : block) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            w = x;
        }
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(block_bytes, size - done));
        if (::pwrite(fd.get(), block.data(), n, static_cast<off_t>(done)) != static_cast<ssize_t>(n)) {
            return fmt::format("write {}: {}", path, std::strerror(errno));
        }
        done += n;
    }
    // No writeback of the file may overlap the timed runs.
    ::fsync(fd.get());
    return {};
}

}  // namespace blobd::bench
