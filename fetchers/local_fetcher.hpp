// local_fetcher: blobs are files `<dir>/<cookie name>` on a local filesystem, read through the
// daemon's io_uring. Open blob files are cached (bounded) so chunk reads do not reopen them.
// Threading: loop thread only.
#pragma once

#include <list>
#include <string>
#include <unordered_map>

#include "base/unique_fd.hpp"
#include "io/event_loop.hpp"
#include "fetchers/fetcher.hpp"

namespace blobd {

class local_fetcher final : public fetcher {
public:
    local_fetcher(event_loop& loop, std::string dir, std::size_t max_open_files = 256);
    void stat(const blob_ref& blob, deadline due, stat_done done) override;
    void fetch(const blob_ref& blob, std::uint64_t off, std::uint64_t len, deadline due, fetch_done done) override;
    void release(const blob_ref& blob) override;
    std::string describe() const override { return "local:" + dir_; }

private:
    struct open_file {
        std::shared_ptr<unique_fd> fd;
        std::uint64_t size;
    };
    /// Opens (or finds) the blob file; -errno on failure.
    result<open_file, int> get(const std::string& name);

    event_loop& loop_;
    std::string dir_;
    std::size_t max_open_;
    struct cached {
        open_file file;
        std::list<std::string>::iterator lru_pos;  // its name in lru_
    };
    // Open files by blob name; lru_ orders the names most recently used first. A hit moves the
    // name to the front with splice (O(1), no allocation): this runs on every fetch.
    std::unordered_map<std::string, cached> open_;
    std::list<std::string> lru_;
};

}  // namespace blobd
