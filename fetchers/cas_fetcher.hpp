// cas_fetcher: a content-addressed store in front of a source, so that a blob used in several
// domains (several cookies, several cache files) is downloaded once.
//
// Every chunk fetched from the upstream source is also written to `<dir>/<blob name>` (a sparse
// file of the blob's size); a later fetch of a range that is already there is served from that file
// instead of the network. What is present is read from the file itself (SEEK_DATA/SEEK_HOLE, as
// cachefiles does for its cache files), so the store survives restarts without any index. The
// blob name identifies the content: true for digests (OCI, nydus) and assumed for other names
// within one source.
//
// Integrity: when a blob named by a sha256 digest ("sha256:<hex>" or 64 hex digits) is complete in
// the store, its digest is checked on a worker thread. On a mismatch the file is deleted, the
// failure is counted and logged, and this source answers -EIO for that blob from then on, so the
// source chain refetches from the next source. (Bytes already handed to the kernel cannot be
// recalled; they are logged.)
//
// Threading: loop thread only; digest checks run on short-lived worker threads that post back.
#pragma once

#include <memory>
#include <set>
#include <map>
#include <optional>
#include <tuple>
#include <string>
#include <thread>
#include <vector>

#include "daemon/base/unique_fd.hpp"
#include "daemon/loop/event_loop.hpp"
#include "fetchers/fetcher.hpp"
#include "fetchers/oci/oci_util.hpp"  // sha256_of_name

namespace blobd {

/// SHA-256 of a whole file as 64 lowercase hex digits, or empty on a read error. Blocking.
std::string sha256_file(const std::string& path);

class cas_fetcher final : public fetcher {
public:
    struct options {
        std::string dir;      ///< created if missing
        bool verify = true;   ///< check sha256-named blobs once complete
    };
    cas_fetcher(event_loop& loop, std::shared_ptr<fetcher> upstream, options opt);
    ~cas_fetcher() override;

    void stat(const blob_ref& blob, stat_done done) override;
    void fetch(const blob_ref& blob, std::uint64_t off, std::uint64_t len, fetch_done done) override;
    void release(const blob_ref& blob) override;
    std::string describe() const override;

    /// Counters of the store itself (the upstream's own are in upstream().stats()).
    struct cas_stats {
        std::uint64_t hits = 0, bytes_saved = 0, stored_bytes = 0, store_errors = 0;
        std::uint64_t verified = 0, integrity_failures = 0;
    };
    const cas_stats& store_stats() const noexcept { return cas_; }
    const fetcher& upstream() const noexcept { return *upstream_; }

private:
    struct entry {
        std::shared_ptr<unique_fd> fd;
        std::uint64_t size = 0;
        bool verifying = false;
        bool verified = false;
    };
    struct waiter_list {
        std::vector<fetch_done> waiters;
    };
    entry* open_entry(const std::string& name, std::optional<std::uint64_t> size);
    bool present(const entry& e, std::uint64_t off, std::uint64_t len) const;
    void from_upstream(const blob_ref& blob, std::uint64_t off, std::uint64_t len);
    void maybe_verify(const std::string& name);
    void on_verified(const std::string& name, bool ok, const std::string& got);
    std::string path_of(const std::string& name) const { return opt_.dir + "/" + name; }

    event_loop& loop_;
    std::shared_ptr<fetcher> upstream_;
    options opt_;
    std::map<std::string, entry> entries_;
    std::map<std::tuple<std::string, std::uint64_t, std::uint64_t>, waiter_list> inflight_;
    std::set<std::string> poisoned_;
    std::map<std::string, std::thread> workers_;   // digest checks in progress, by blob name
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    cas_stats cas_;
};

}  // namespace blobd
