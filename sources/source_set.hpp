// source_set: every configured source, built once, and the source chain of each domain, with the
// one blob store in front of the sources it is enabled for. The daemon's fetcher_directory.
//
//  domain d1: source_chain -> [store view -> breaker -> http A] -> [store view -> breaker -> http B]
//  domain d2: source_chain -> [store view -> breaker -> http B]   (views of one source are one object)
//                                 \------ one cas_store shared by every domain
//
// Every source has one circuit breaker (fetchers/breaker.hpp), below the store: what the store
// already holds is served however the source is doing, and the breaker sees only real requests.
//
// The store wraps each source on its own rather than a whole chain: chains differ per domain but
// the store must be one for all of them (that is the cross-domain dedup), and after an integrity
// failure only the view of the source that delivered the bad bytes refuses the blob (-EIO), so the
// chain itself moves on to the next source, whose view refetches through the same store.
//
// Owns the network thread (started by the first source that needs it), the sources, the store and
// the chains. Threading: loop thread only; stop_network() before destroying anything that
// receives fetch results.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "fetchers/breaker.hpp"
#include "fetchers/cas_fetcher.hpp"
#include "fetchers/fetcher.hpp"
#include "io/event_loop.hpp"
#include "io/net_thread.hpp"

namespace blobd::sources {

class source_set final : public fetcher_directory {
public:
    /// Builds every source of `config`. Throws std::system_error naming the source when one cannot
    /// be set up (an unreadable ca_file or auth_file, a bad URL).
    source_set(event_loop& loop, const cfg::config& config);
    /// A reload: as above, but the blob store is `previous` when it has the settings `config`
    /// asks for (dir, verify, max_bytes), so that one store object owns the directory across the
    /// swap; otherwise a new one is built.
    source_set(event_loop& loop, const cfg::config& config, std::shared_ptr<cas_store> previous);
    ~source_set() override;
    source_set(const source_set&) = delete;
    source_set& operator=(const source_set&) = delete;

    fetcher& for_domain(std::string_view domain) override;

    /// Called with a blob's name when its bytes in the store failed their sha256 check: the cache
    /// files written from them must be written again (engine::refetch).
    void on_integrity_failure(std::function<void(const std::string& name)> fn);

    /// Stops the network thread: no fetch result is posted to the loop after this. Idempotent.
    void stop_network();

    /// One configured source, as used by some domain.
    struct entry {
        cfg::source config;
        std::shared_ptr<fetcher> upstream;   ///< what crosses the network (or reads local files)
        std::shared_ptr<guarded_fetcher> guard;  ///< the source's circuit breaker, in front of upstream
        std::shared_ptr<cas_fetcher> view;   ///< the store in front of the breaker, once a chain wants that
    };
    const std::vector<entry>& entries() const noexcept { return sources_; }
    /// The blob store, or null when no chain uses it.
    const cas_store* store() const noexcept { return store_.get(); }
    cas_store* store() noexcept { return store_.get(); }
    /// The same, shared (for the next source_set of a reload).
    std::shared_ptr<cas_store> shared_store() const noexcept { return store_; }
    /// "local:/srv/blobs, http://..." of the default chain, for the start-up log.
    std::string describe_default() const { return default_chain_->describe(); }

private:
    std::shared_ptr<fetcher> chain(const cfg::config& config, const std::vector<cfg::source>& list,
                                   std::string_view domain);

    event_loop& loop_;
    // Declared before the fetchers so that it outlives them; stop_network() stops it first.
    std::unique_ptr<net_thread> net_;
    std::shared_ptr<cas_store> store_;
    std::shared_ptr<cas_store> previous_store_;  // offered by a reload, taken if it fits
    std::vector<entry> sources_;
    std::shared_ptr<fetcher> default_chain_;
    std::map<std::string, std::shared_ptr<fetcher>, std::less<>> domain_chains_;
};

}  // namespace blobd::sources
