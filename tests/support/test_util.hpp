// test_util: small helpers every test binary may use (no sockets, no Catch2).
// Threading: pure or read-only; any thread.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <system_error>

namespace blobd::test {

/// `n` pseudo-random bytes (deterministic per seed).
inline std::string random_bytes(std::size_t n, unsigned seed) {
    std::string s(n, '\0');
    std::mt19937 rng(seed);
    for (auto& ch : s) ch = static_cast<char>(rng());
    return s;
}

/// The executable `name` on $PATH or in the sbin directories (where Debian puts nginx and
/// docker-registry), or "" when it is not installed.
inline std::string find_program(const std::string& name) {
    std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
    path += ":/usr/sbin:/sbin:/usr/local/sbin";
    std::size_t start = 0;
    while (start <= path.size()) {
        std::size_t end = path.find(':', start);
        if (end == std::string::npos) end = path.size();
        const std::string dir = path.substr(start, end - start);
        if (!dir.empty()) {
            const std::string candidate = dir + "/" + name;
            if (::access(candidate.c_str(), X_OK) == 0) return candidate;
        }
        start = end + 1;
    }
    return {};
}

/// A fresh directory under /tmp ("/tmp/blobd-<what>-XXXXXX"), removed with its contents at the end.
struct temp_dir {
    std::filesystem::path path;
    explicit temp_dir(const std::string& what = "test") {
        std::string t = "/tmp/blobd-" + what + "-XXXXXX";
        if (!::mkdtemp(t.data())) throw std::system_error(errno, std::generic_category(), "mkdtemp " + t);
        path = t;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
};

}  // namespace blobd::test
