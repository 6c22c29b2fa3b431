// oci_fetcher: blobs from an OCI (docker) registry, by digest (see docs/oci.md).
//
// A cookie named "sha256:<64 hex>" or "<64 hex>" is the blob
// `<endpoint>/v2/<repository>/blobs/sha256:<hex>`; any other name is not this source's
// (stat answers -ENOENT, so the source chain moves on). Endpoints are the mirrors, in order, then
// the registry: one that fails (refused, 404, 5xx after retries, refused credentials) hands over to
// the next, and the endpoint that served a blob is asked first for it afterwards. A mirror that
// failed with anything but 404 goes to the back of the order for endpoint_cooldown (still asked
// when everything else fails; a success ends its cooldown).
//
// Auth: every request goes out anonymously first (or with a token or Basic credentials already
// known to be needed for that endpoint). A 401 is answered once: `Bearer realm=...` gets a token
// from the realm (with Basic credentials for that endpoint, if any), cached per (endpoint, scope)
// until shortly before it expires and shared by every request waiting for it; `Basic` is answered
// with the endpoint's credentials. A 401 after that is -EACCES for that endpoint: no loops. A
// cached token the registry refuses is dropped and replaced once.
//
// Redirects (a registry's 307 to blob storage) are followed by http_client, which never sends the
// Authorization header to another origin. The URL that finally served a blob is remembered for
// 5 minutes (or until release) and asked directly, without credentials, for the blob's next chunks;
// if it fails (an expired signature), the fetcher goes back to the endpoint.
//
// Credentials and tokens never appear in logs or in describe() ("oci:https://host/repo").
//
// Threading: public calls and all the auth/mirror bookkeeping are loop-thread only; requests run
// on the net_thread through an http_client and their results are posted back. Ownership and
// teardown as for http_fetcher: destroying the fetcher (loop thread) shuts its client down on the
// net thread synchronously; results already posted are dropped. The net_thread and the event_loop
// must outlive it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/event_loop.hpp"
#include "io/net_thread.hpp"
#include "fetchers/fetcher.hpp"
#include "fetchers/http/http_client.hpp"
#include "protocol/oci/oci_util.hpp"

namespace blobd {

struct oci_options {
    std::string registry;                         ///< base URL
    std::string repository;
    std::vector<std::string> mirrors;             ///< base URLs, tried before the registry
    std::optional<oci::credentials> credentials;  ///< for the registry (and its token realm) only
    std::map<std::string, oci::credentials> auths;  ///< per host (an auth file), for every endpoint
    http_options http;                            ///< TLS, timeouts, retries, connections
    std::chrono::milliseconds redirect_ttl{std::chrono::minutes(5)};
    /// An endpoint that failed (anything but "no such blob") is tried last, after the healthy
    /// ones, for this long, instead of first for every new blob: a dead mirror costs one timeout
    /// per cooldown rather than one per blob. Still tried when all else fails; a success ends it.
    std::chrono::milliseconds endpoint_cooldown{std::chrono::seconds(30)};
};

/// What an oci_fetcher counts beyond source_stats (loop thread).
struct oci_stats {
    std::uint64_t token_requests = 0;       ///< token requests sent to realms
    std::uint64_t endpoint_cooldowns = 0;   ///< an endpoint failed while healthy and went to the back
    std::uint64_t endpoints_cooling = 0;    ///< endpoints in their cooldown now (filled in by collect())
};

/// oci_stats as metrics, per source: keys of the source's object in the stats JSON's "sources"
/// array, erofs_blobd_oci_<name>{source="..."} in Prometheus.
inline constexpr auto oci_metrics = [] {
    using s = oci_stats;
    using metrics::counter, metrics::gauge;
    return metrics::make_table(
        metrics::group{"oci", source_labels, "sources"},
        counter(&s::token_requests, "token_requests", "Token requests sent to the registry's token realms."),
        counter(&s::endpoint_cooldowns, "endpoint_cooldowns",
                "Times a healthy mirror failed and was asked last for endpoint_cooldown."),
        gauge(&s::endpoints_cooling, "endpoints_cooling", "Mirrors in their cooldown now."));
}();

class oci_fetcher final : public fetcher {
public:
    /// Throws std::system_error (EINVAL) when a URL does not parse or ca_file cannot be loaded.
    oci_fetcher(event_loop& loop, net_thread& net, oci_options opts);
    ~oci_fetcher() override;
    oci_fetcher(const oci_fetcher&) = delete;
    oci_fetcher& operator=(const oci_fetcher&) = delete;

    void stat(const blob_ref& blob, deadline due, stat_done done) override;
    void fetch(const blob_ref& blob, std::uint64_t off, std::uint64_t len, deadline due, fetch_done done) override;
    void release(const blob_ref& blob) override;
    /// "oci:https://host:port/library/app".
    std::string describe() const override { return describe_; }

    /// HTTP requests sent so far (any thread).
    std::uint64_t requests_sent() const noexcept { return client_->requests_sent(); }
    /// TCP connections opened so far (any thread).
    std::uint64_t connections_opened() const noexcept { return client_->connections_opened(); }
    /// Token requests sent to realms so far (loop thread).
    std::uint64_t token_requests() const noexcept { return stats_oci_.token_requests; }
    /// Times an endpoint failed while healthy and was moved to the back for endpoint_cooldown
    /// (loop thread).
    std::uint64_t endpoint_cooldowns() const noexcept { return stats_oci_.endpoint_cooldowns; }
    /// source_metrics, http_client_metrics and oci_metrics (loop thread).
    void collect(metrics::snapshot& out, const std::string& label) const override;

private:
    struct endpoint {
        http::url base;
        std::optional<oci::credentials> creds;
        bool basic = false;  // answered a Basic challenge: send the credentials up front from now on
        std::optional<oci::challenge> bearer;  // its last Bearer challenge: renew tokens before they are refused
        std::chrono::steady_clock::time_point down_until{};  // failed: tried last until then
    };
    struct token {
        std::string value;
        std::chrono::steady_clock::time_point until;
    };
    using token_done = std::function<void(result<std::string, int>)>;
    struct blob_info {
        std::optional<std::size_t> endpoint;  // the one that served it last
        std::optional<std::uint64_t> size;    // from stat
        std::optional<http::url> redirect;    // where the last fetch ended up, until redirect_until
        std::chrono::steady_clock::time_point redirect_until{};
    };
    struct op;

    void start(std::unique_ptr<op> o);
    void try_endpoint(std::uint64_t id);
    http::request endpoint_request(const op& o) const;  // the blob at o's current endpoint, with o.auth
    void send(std::uint64_t id, http::request req);
    void on_response(std::uint64_t id, http::response r);
    void with_token(std::uint64_t id, result<std::string, int> t);  // send op `id` with a token (or fail)
    void answer_challenge(std::uint64_t id, const std::vector<std::string>& challenges);
    void endpoint_failed(std::uint64_t id, int err, std::string_view why);
    void finish(std::uint64_t id, http::response r);
    void get_token(std::size_t ep, const oci::challenge& c, const std::string& refused, deadline due,
                   token_done done);
    void on_token(const std::string& key, http::response r);
    std::string token_key(std::size_t ep) const;
    std::string default_auth(std::size_t ep) const;
    blob_info& info(const std::string& hex);

    event_loop& loop_;
    net_thread& net_;
    oci_options opts_;
    std::string scope_;
    std::string describe_;
    std::vector<endpoint> endpoints_;  // mirrors in order, then the registry
    std::shared_ptr<http_client> client_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    std::uint64_t next_id_ = 1;
    std::unordered_map<std::uint64_t, std::unique_ptr<op>> ops_;
    std::map<std::string, token> tokens_;                         // by token_key()
    std::map<std::string, std::vector<token_done>> token_waiting_;  // token requests in flight
    std::unordered_map<std::string, blob_info> blobs_;             // by hex digest; bounded
    oci_stats stats_oci_;
};

}  // namespace blobd
