// bench_fake_throughput: READ throughput and latency of the whole daemon (fake kernel -> app ->
// registry -> local fetcher -> io_uring writes into O_DIRECT cache files -> READ_COMPLETE), measured
// side by side with a baseline that copies the same ranges with plain pread + pwrite (O_DIRECT
// destination, aligned buffer) in one thread.
//
//   bench_fake_throughput [--dir DIR] [--blob-dir DIR] [--cache-dir DIR] [--size MiB] [--window N]
//                         [--reps N] [--cases LIST] [--cpu N] [--tag NAME] [--info-only]
//                         [--latency-only] [--daemon-only]
//
//   --dir     where the blob and every cache file live (default /tmp): the filesystem measured
//   --blob-dir, --cache-dir  override --dir for the blob (the local source) or for the cache files
//             (the fake kernel's and the baseline's destination) alone
//   --size    blob size in MiB (default 256)
//   --window  READs kept in flight (default 64): the fake kernel queues a new READ as one completes
//   --reps    repetitions; each runs the baseline and then the daemon on fresh cache files, and the
//             figures are medians over repetitions (default 3)
//   --cases   comma-separated subset of 1m,4k,4k-1m (default all):
//               1m     1 MiB READs, chunk 1 MiB: bytes/s vs the baseline copying 1 MiB ranges
//               4k     4 KiB READs, chunk 4 KiB: one fetch + one write per READ; READs per
//                      CPU-second (target >= 0.5x of the baseline's) and per second of wall clock
//               4k-1m  4 KiB READs, chunk 1 MiB: one fetch + one write serve 256 READs; as 4k
//   --cpu     pin the process to this CPU (default: no pin; io_uring's io-wq workers follow the
//             cgroup's cpuset, not necessarily this)
//   --tag     suffix for the benchmark names in RESULT lines (e.g. the filesystem)
//   --info-only  report every figure as "info" (no PASS/FAIL): for what-if runs
//   --latency-only  report only the latency figures
//   --daemon-only  skip the baseline (for profiling the daemon; prints no RESULT lines)
//
// Page cache: the blob is written, fsync'd and then read once before anything is timed, so both
// the daemon and the baseline read it from the page cache (warm). Dropping caches would need root,
// affects the whole machine and measures the disk's read speed rather than either copier. Cache
// files are opened O_DIRECT (as the kernel's anon fds write through to the backing file), are
// fresh for every run, and are deleted afterwards.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <sstream>

#include "bench/common.hpp"
#include "daemon/app.hpp"
#include "base/buffer.hpp"
#include "base/log.hpp"
#include "tests/support/fake_kernel.hpp"
#include "sources/kinds.hpp"

using namespace blobd;
using namespace blobd::bench;
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t KiB = 1024, MiB = 1024 * 1024;

[[noreturn]] void die(const std::string& why) {
    fmt::print(stderr, "bench_fake_throughput: {}\n", why);
    std::exit(1);
}

struct options {
    std::string blob_dir = "/tmp", cache_dir = "/tmp";
    std::uint64_t size = 256 * MiB;
    unsigned window = 64;
    unsigned reps = 3;
    int cpu = -1;
    std::string tag;
    std::vector<std::string> cases;
    bool daemon_only = false;
};

struct case_def {
    std::string name;
    std::uint64_t chunk;
    std::uint64_t read_len;
};

/// A blob file full of pseudo-random bytes, resident in the page cache.
struct blob_file {
    fs::path dir;
    std::string name = "blob";
    std::uint64_t size;

    blob_file(const std::string& parent, std::uint64_t sz) : size(sz) {
        std::string t = parent + "/blobd-bench-XXXXXX";
        if (!::mkdtemp(t.data())) die(fmt::format("mkdtemp in {}: {}", parent, std::strerror(errno)));
        dir = t;
        if (auto err = write_random_file(path(), size); !err.empty()) die(err);
        warm();
    }
    ~blob_file() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    std::string path() const { return (dir / name).string(); }
    /// Reads the whole file once so that it is in the page cache.
    void warm() const {
        unique_fd fd(::open(path().c_str(), O_RDONLY | O_CLOEXEC));
        ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_WILLNEED);
        std::vector<char> buf(MiB);
        for (off_t off = 0; ::pread(fd.get(), buf.data(), buf.size(), off) > 0;) off += static_cast<off_t>(buf.size());
    }
};

struct run_result {
    double seconds = 0;
    std::uint64_t reads = 0, bytes = 0;
    std::vector<double> lat_ns;
    double loop_cpu_s = 0, proc_cpu_s = 0;
    // The fake kernel's work on the loop thread: queueing READs (the kernel does that in the
    // reader's context), the device reads and the READ_COMPLETE handling.
    double fake_queue_s = 0, dev_read_s = 0, dev_complete_s = 0;
    std::uint64_t dev_reads = 0;
    std::uint64_t preempted = 0;  // involuntary context switches of the process while timed
    bool direct = true;
};

// ---- baseline: one thread, pread from the blob, pwrite into a fresh O_DIRECT file ----
run_result run_baseline(const blob_file& blob, const case_def& c, const options& o) {
    run_result r;
    unique_fd src(::open(blob.path().c_str(), O_RDONLY | O_CLOEXEC));
    const std::string dst_path = o.cache_dir + "/blobd-bench-baseline-" + std::to_string(::getpid());
    unique_fd dst = create_cache_like_file(dst_path, r.direct);
    if (!src || !dst) die(fmt::format("baseline open: {}", std::strerror(errno)));
    aligned_buffer buf(c.read_len);
    const std::uint64_t n = blob.size / c.read_len;
    r.lat_ns.reserve(n);
    const auto wlen = round_up(c.read_len, io_alignment);
    const auto t0 = now_ns();
    const auto cpu0 = process_cpu_ns();
    for (std::uint64_t i = 0; i < n; ++i) {
        const auto t = now_ns();
        const auto off = static_cast<off_t>(i * c.read_len);
        for (std::size_t got = 0; got < c.read_len;) {
            ssize_t k = ::pread(src.get(), buf.data() + got, c.read_len - got, off + static_cast<off_t>(got));
            if (k <= 0) die(fmt::format("baseline pread: {}", k < 0 ? std::strerror(errno) : "end of file"));
            got += static_cast<std::size_t>(k);
        }
        if (::pwrite(dst.get(), buf.data(), wlen, off) != static_cast<ssize_t>(wlen)) {
            die(fmt::format("baseline pwrite: {}", std::strerror(errno)));
        }
        r.lat_ns.push_back(static_cast<double>(now_ns() - t));
    }
    r.seconds = static_cast<double>(now_ns() - t0) / 1e9;
    r.proc_cpu_s = static_cast<double>(process_cpu_ns() - cpu0) / 1e9;
    r.loop_cpu_s = r.proc_cpu_s;
    r.reads = n;
    r.bytes = n * c.read_len;
    ::unlink(dst_path.c_str());
    return r;
}

// ---- the daemon: the real loop and app against the in-process fake kernel ----
run_result run_daemon(const blob_file& blob, const case_def& c, const options& o) {
    run_result r;
    test::fake_kernel k(o.cache_dir);
    observing_device dev(k.dev());
    event_loop loop;
    cfg::config conf;
    conf.cache_dir = "/unused";
    conf.chunk_size = c.chunk;
    conf.control_socket = "";
    conf.sources.push_back(sources::source_of(sources::local_settings{blob.dir.string()}));
    app daemon(loop, dev, std::make_shared<const cfg::config>(conf));
    if (!daemon.start()) die("app::start failed");

    auto run_until = [&](auto pred, const char* what) {
        const auto limit = now_ns() + 120'000'000'000ull;
        while (!pred()) {
            if (now_ns() > limit) die(fmt::format("timed out waiting for {}", what));
            loop.run_once(std::chrono::milliseconds(100));
        }
    };

    const std::uint32_t obj = k.open("erofs,bench", blob.name);
    run_until([&] { return k.copen_result(obj).has_value(); }, "the copen");
    if (*k.copen_result(obj) != static_cast<std::int64_t>(blob.size)) die("OPEN failed");

    const std::uint64_t n = blob.size / c.read_len;
    std::vector<std::uint64_t> t_queue(n), t_done(n);
    const std::uint32_t first_msg = k.last_msg_id() + 1;
    std::uint64_t done = 0;
    dev.on_complete = [&](std::uint32_t msg) {
        const std::uint64_t i = msg - first_msg;
        if (i < n) {
            t_done[i] = now_ns();
            ++done;
        }
    };

    std::uint64_t issued = 0, fake_ns = 0;
    const auto dev_read0 = dev.read_ns, dev_complete0 = dev.complete_ns, dev_reads0 = dev.reads;
    const auto limit = now_ns() + 300'000'000'000ull;
    const auto t0 = now_ns();
    const auto loop_cpu0 = thread_cpu_ns();
    const auto proc_cpu0 = process_cpu_ns();
    const auto preempted0 = involuntary_switches();
    while (done < n) {
        if (issued < n && issued - done < o.window) {
            // The fake kernel's queueing is timed in CPU time, once per refill (a thread CPU
            // clock read is a syscall): wall time would count preemption on a loaded machine.
            const auto cpu = thread_cpu_ns();
            while (issued < n && issued - done < o.window) {
                t_queue[issued] = now_ns();
                const auto m = k.read(obj, issued * c.read_len, c.read_len);
                if (m != first_msg + issued) die("unexpected msg_id from the fake kernel");
                ++issued;
            }
            fake_ns += thread_cpu_ns() - cpu;
        }
        loop.run_once(std::chrono::milliseconds(1000));
        if (now_ns() > limit) die(fmt::format("timed out: {} of {} READs completed", done, n));
    }
    r.seconds = static_cast<double>(now_ns() - t0) / 1e9;
    r.loop_cpu_s = static_cast<double>(thread_cpu_ns() - loop_cpu0) / 1e9;
    r.proc_cpu_s = static_cast<double>(process_cpu_ns() - proc_cpu0) / 1e9;
    r.fake_queue_s = static_cast<double>(fake_ns) / 1e9;
    r.preempted = involuntary_switches() - preempted0;
    r.dev_read_s = static_cast<double>(dev.read_ns - dev_read0) / 1e9;
    r.dev_complete_s = static_cast<double>(dev.complete_ns - dev_complete0) / 1e9;
    r.dev_reads = dev.reads - dev_reads0;
    r.reads = n;
    r.bytes = n * c.read_len;
    r.lat_ns.reserve(n);
    for (std::uint64_t i = 0; i < n; ++i) r.lat_ns.push_back(static_cast<double>(t_done[i] - t_queue[i]));

    if (auto err = verify_run(daemon.stats(), dev, k, obj, blob.path(), blob.size); !err.empty()) die(err);

    daemon.request_stop(std::chrono::milliseconds(1000));
    run_until([&] { return daemon.finished(); }, "the daemon to stop");
    return r;
}

std::string ratio_str(double r) { return fmt::format("{:.2f}x", r); }

/// Stands in for the baseline with --daemon-only (its figures are not printed).
run_result placeholder_result() {
    run_result r;
    r.seconds = r.loop_cpu_s = r.proc_cpu_s = 1;
    r.reads = r.bytes = 1;
    return r;
}

}  // namespace

int main(int argc, char** argv) {
    if (flag(argc, argv, "--help") || flag(argc, argv, "-h")) {
        fmt::print("usage: bench_fake_throughput [--dir DIR] [--blob-dir DIR] [--cache-dir DIR] [--size MiB] "
                   "[--window N] [--reps N] [--cases 1m,4k,4k-1m] [--cpu N] [--tag NAME] [--info-only] "
                   "[--latency-only] [--daemon-only]\n");
        return 0;
    }
    options o;
    const std::string dir = opt(argc, argv, "--dir", "/tmp");
    o.blob_dir = opt(argc, argv, "--blob-dir", dir);
    o.cache_dir = opt(argc, argv, "--cache-dir", dir);
    o.size = std::stoull(opt(argc, argv, "--size", "256")) * MiB;
    o.window = static_cast<unsigned>(std::stoul(opt(argc, argv, "--window", "64")));
    o.reps = static_cast<unsigned>(std::stoul(opt(argc, argv, "--reps", "3")));
    o.cpu = std::stoi(opt(argc, argv, "--cpu", "-1"));
    o.tag = opt(argc, argv, "--tag", "");
    o.daemon_only = flag(argc, argv, "--daemon-only");
    const bool info_only = flag(argc, argv, "--info-only");
    const bool latency_only = flag(argc, argv, "--latency-only");
    {
        std::stringstream ss(opt(argc, argv, "--cases", "1m,4k,4k-1m"));
        for (std::string item; std::getline(ss, item, ',');) o.cases.push_back(item);
    }
    if (o.size < MiB || o.window == 0 || o.reps == 0) die("bad --size, --window or --reps");
    log::set_max_level(log::level::warning);
    const std::string suffix = o.tag.empty() ? "" : " [" + o.tag + "]";
    if (sanitized_build()) fmt::print("# warning: sanitizer build: the figures below mean nothing\n");
    if (o.cpu >= 0 && !pin_to_cpu(o.cpu)) {
        skip_line("fake throughput" + suffix, fmt::format("cannot pin to CPU {}", o.cpu));
        return 0;
    }

    fmt::print("# fake_throughput: blob in {}, cache files in {}, blob {} MiB, window {}, {} reps, cpu {}\n",
               o.blob_dir, o.cache_dir, o.size / MiB, o.window, o.reps, o.cpu >= 0 ? std::to_string(o.cpu) : "any");
    blob_file blob(o.blob_dir, o.size);
    {
        // tmpfs before 6.6 has no O_DIRECT: the figures would then compare buffered writes.
        const std::string probe = o.cache_dir + "/blobd-bench-probe-" + std::to_string(::getpid());
        unique_fd p(::open(probe.c_str(), O_WRONLY | O_CREAT | O_DIRECT | O_CLOEXEC, 0600));
        if (!p) fmt::print("# note: {} has no O_DIRECT; cache files are written buffered\n", o.cache_dir);
        ::unlink(probe.c_str());
    }

    const std::vector<case_def> all = {
        {"1m", MiB, MiB},
        {"4k", 4 * KiB, 4 * KiB},
        {"4k-1m", MiB, 4 * KiB},
    };
    auto verdict = [&](bool ok) -> std::string_view {
        if (info_only) return "info";
        return ok ? "PASS" : "FAIL";
    };
    bool failed = false;
    for (const auto& want : o.cases) {
        auto it = std::find_if(all.begin(), all.end(), [&](const case_def& c) { return c.name == want; });
        if (it == all.end()) die("unknown case " + want);
        const case_def& c = *it;
        // Per repetition: wall-clock rates (bytes/s for 1m, READs/s otherwise), rates per CPU-second
        // (READs / CPU time of every thread, the fake kernel's queueing excluded), and their ratios.
        std::vector<double> d_wall, b_wall, wall_ratio, d_cpu, b_cpu, cpu_ratio, d_lat, b_lat;
        // The same split by who does the work: the daemon's own (every thread's CPU time less all of
        // the fake kernel's: queueing, device reads, READ_COMPLETE) and the fake kernel's device
        // calls alone, which bound what any daemon could reach in this harness on this machine.
        std::vector<double> d_own, own_ratio, fake_ceiling;
        double loop_cpu = 0, proc_cpu = 0, fake_q = 0, dev_read = 0, dev_complete = 0, secs = 0;
        std::uint64_t reads = 0, dev_reads = 0, preempted = 0;
        const bool bytes = c.name == "1m";
        for (unsigned rep = 0; rep < o.reps; ++rep) {
            blob.warm();
            const run_result b = o.daemon_only ? placeholder_result() : run_baseline(blob, c, o);
            blob.warm();
            const run_result d = run_daemon(blob, c, o);
            const auto amount = [&](const run_result& r) { return static_cast<double>(bytes ? r.bytes : r.reads); };
            d_wall.push_back(amount(d) / d.seconds);
            b_wall.push_back(amount(b) / b.seconds);
            wall_ratio.push_back(d_wall.back() / b_wall.back());
            d_cpu.push_back(static_cast<double>(d.reads) / (d.proc_cpu_s - d.fake_queue_s));
            b_cpu.push_back(static_cast<double>(b.reads) / b.proc_cpu_s);
            cpu_ratio.push_back(d_cpu.back() / b_cpu.back());
            const double fake_dev_s = d.dev_read_s + d.dev_complete_s;
            d_own.push_back(static_cast<double>(d.reads) / (d.proc_cpu_s - d.fake_queue_s - fake_dev_s));
            own_ratio.push_back(d_own.back() / b_cpu.back());
            fake_ceiling.push_back(static_cast<double>(d.reads) / fake_dev_s);
            d_lat.insert(d_lat.end(), d.lat_ns.begin(), d.lat_ns.end());
            b_lat.insert(b_lat.end(), b.lat_ns.begin(), b.lat_ns.end());
            loop_cpu += d.loop_cpu_s;
            proc_cpu += d.proc_cpu_s;
            fake_q += d.fake_queue_s;
            dev_read += d.dev_read_s;
            dev_complete += d.dev_complete_s;
            dev_reads += d.dev_reads;
            preempted += d.preempted;
            secs += d.seconds;
            reads += d.reads;
            const auto show = [&](double v) { return bytes ? mib_s(v) : per_s(v); };
            fmt::print("# {} rep {}: daemon {:.3f} s ({}), baseline {:.3f} s ({}), ratio {:.2f}; daemon CPU: loop "
                       "thread {:.3f} s, all threads {:.3f} s\n",
                       c.name, rep + 1, d.seconds, show(d_wall.back()), b.seconds, show(b_wall.back()),
                       wall_ratio.back(), d.loop_cpu_s, d.proc_cpu_s);
        }
        // Where a READ's time goes, summed over the repetitions (microseconds per READ). The
        // fake kernel's queueing is CPU time; its device calls are wall time measured by the
        // observing device (a CPU clock per call would cost more than the calls), so they are
        // inflated when the thread is preempted in them; "daemon" is the rest of the loop thread's
        // CPU time; io-wq is io_uring's worker threads (the writes into the cache files).
        const double us = 1e6 / static_cast<double>(reads);
        const double fake_all = fake_q + dev_read + dev_complete;
        fmt::print("# {}: per READ (us): wall {:.2f}; loop thread CPU {:.2f} = fake kernel {:.2f} (queueing the READ "
                   "{:.2f}, device reads {:.2f} in {:.2f} calls, READ_COMPLETE {:.2f}) + daemon {:.2f}; other threads "
                   "(io-wq) {:.2f}; {:.3f} involuntary context switches per READ{}\n",
                   c.name, secs * us, loop_cpu * us, fake_all * us, fake_q * us, dev_read * us,
                   static_cast<double>(dev_reads) / static_cast<double>(reads), dev_complete * us,
                   (loop_cpu - fake_all) * us, (proc_cpu - loop_cpu) * us,
                   static_cast<double>(preempted) / static_cast<double>(reads),
                   static_cast<double>(preempted) / static_cast<double>(reads) > 0.01
                       ? " (the machine is busy: these figures are noisy)"
                       : "");
        if (o.daemon_only) {
            fmt::print("# {}: daemon median {} wall, {} per CPU-second\n", c.name,
                       bytes ? mib_s(median(d_wall)) : per_s(median(d_wall)), per_s(median(d_cpu)));
            continue;
        }
        if (latency_only) {
            // Rates are not reported (e.g. window 1, where they measure latency again).
        } else if (c.name == "1m") {
            const double r = median(wall_ratio);
            failed |= !info_only && r < 0.9;
            result_line("fake: 1 MiB READs, bytes/s" + suffix, mib_s(median(d_wall)), mib_s(median(b_wall)),
                        ratio_str(r), ">= 0.90x", verdict(r >= 0.9));
        } else {
            const std::string chunk = c.name == "4k" ? "chunk 4 KiB" : "chunk 1 MiB";
            const double per_core = median(d_cpu);
            if (c.name == "4k") {
                // Against the bare loop of the same machine (issue 16): an absolute rate (300k/s
                // was the target) says more about the machine than about the daemon.
                const double r = median(cpu_ratio);
                failed |= !info_only && r < 0.5;
                result_line("fake: 4 KiB READs per CPU-second, " + chunk + suffix, per_s(per_core),
                            per_s(median(b_cpu)), ratio_str(r), ">= 0.50x", verdict(r >= 0.5));
            } else {
                result_line("fake: 4 KiB READs per CPU-second, " + chunk + suffix, per_s(per_core),
                            per_s(median(b_cpu)), ratio_str(median(cpu_ratio)), "-", "info");
            }
            result_line("fake: 4 KiB READs per CPU-second of the daemon's own work (fake kernel excluded), " + chunk +
                            suffix,
                        per_s(median(d_own)), per_s(median(b_cpu)), ratio_str(median(own_ratio)), "-",
                        "info");
            result_line("fake: ceiling of the READs per CPU-second row: a daemon costing nothing (the fake kernel's "
                        "device calls alone), " +
                            chunk + suffix,
                        per_s(median(fake_ceiling)), "-", "-", "-", "info");
            result_line("fake: 4 KiB READs/s wall clock, " + chunk + suffix, per_s(median(d_wall)),
                        per_s(median(b_wall)), ratio_str(median(wall_ratio)), "-", "info");
        }
        const double p50 = percentile(d_lat, 0.5), p99 = percentile(d_lat, 0.99);
        const double bp50 = percentile(b_lat, 0.5), bp99 = percentile(b_lat, 0.99);
        result_line(fmt::format("fake: READ latency p50 / p99, {} (window {}){}", c.name, o.window, suffix),
                    usec(p50) + " / " + usec(p99), usec(bp50) + " / " + usec(bp99), "-", "-", "info");
    }
    return failed ? 2 : 0;
}
