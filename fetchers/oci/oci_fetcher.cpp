// The OCI fetcher: digest names to registry blob URLs, the walk over mirrors and registry, and the
// answers to 401 challenges. Everything here runs on the loop thread; http_client does the network
// work on the net thread and each response is posted back and matched to its operation by id.
#include "fetchers/oci/oci_fetcher.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "base/digest.hpp"
#include "base/log.hpp"

namespace blobd {

namespace {
const log::logger lg{"oci"};
log::rate_limit warn_limit;

constexpr std::size_t max_blob_infos = 4096;
constexpr std::uint64_t token_body_limit = 64 * 1024;

[[noreturn]] void invalid(const std::string& what) { throw std::system_error(EINVAL, std::generic_category(), what); }

http::url parse_base(const std::string& text, const char* what) {
    if (auto e = oci::registry_url_error(text)) invalid(fmt::format("oci {} URL: {}", what, *e));
    return *http::parse_url(text);
}

std::string strip_slash(std::string s) {
    if (s.ends_with('/')) s.pop_back();
    return s;
}
}  // namespace

struct oci_fetcher::op {
    bool is_fetch = false;
    std::string hex;
    std::uint64_t off = 0, len = 0;
    deadline due = no_deadline;  // for every request of this operation (tokens too)
    stat_done stat_cb;
    fetch_done fetch_cb;
    std::vector<std::size_t> order;  // endpoint indexes, in the order to try them
    std::size_t pos = 0;             // into order
    std::string auth;                // the Authorization value of the current attempt ("" = none)
    bool fresh = false;              // `auth` answers a challenge of this attempt: a 401 now is final
    bool via_redirect = false;       // the current attempt asks a remembered redirect target
    int err = 0;                     // the registry's error, once it failed

    std::size_t ep() const { return order[pos]; }
};

oci_fetcher::oci_fetcher(event_loop& loop, net_thread& net, oci_options opts)
    : loop_(loop), net_(net), opts_(std::move(opts)) {
    if (auto e = oci::repository_error(opts_.repository)) invalid("oci repository: " + *e);
    scope_ = oci::pull_scope(opts_.repository);
    const http::url registry = parse_base(opts_.registry, "registry");
    describe_ = "oci:" + strip_slash(registry.redacted()) + "/" + opts_.repository;
    for (const auto& m : opts_.mirrors) {
        endpoint e{parse_base(m, "mirror"), std::nullopt, false, std::nullopt};
        e.creds = oci::credentials_for(opts_.auths, e.base);
        endpoints_.push_back(std::move(e));
    }
    endpoint r{registry, opts_.credentials, false, std::nullopt};
    if (!r.creds) r.creds = oci::credentials_for(opts_.auths, registry);
    endpoints_.push_back(std::move(r));
    client_ = std::make_shared<http_client>(net_.context(), opts_.http, describe_);
    std::size_t with_creds = 0;
    for (const auto& e : endpoints_) with_creds += e.creds ? 1 : 0;
    lg.info("source {}: {} mirror(s), credentials for {} of {} endpoint(s)", describe_, opts_.mirrors.size(),
            with_creds, endpoints_.size());
}

oci_fetcher::~oci_fetcher() {
    *alive_ = false;
    net_.run_sync([c = client_] { c->shutdown(); });
}

oci_fetcher::blob_info& oci_fetcher::info(const std::string& hex) {
    // A cache: losing it costs a round trip (or a relaxed size check), never correctness.
    if (blobs_.size() >= max_blob_infos && !blobs_.contains(hex)) blobs_.clear();
    return blobs_[hex];
}

std::string oci_fetcher::token_key(std::size_t ep) const { return endpoints_[ep].base.origin() + " " + scope_; }

std::string oci_fetcher::default_auth(std::size_t ep) const {
    if (auto it = tokens_.find(token_key(ep)); it != tokens_.end() && it->second.until > std::chrono::steady_clock::now()) {
        return "Bearer " + it->second.value;
    }
    const endpoint& e = endpoints_[ep];
    if (e.basic && e.creds) return oci::basic_authorization(*e.creds);
    return {};
}

void oci_fetcher::stat(const blob_ref& blob, deadline due, stat_done done) {
    ++stats_.stats;
    auto o = std::make_unique<op>();
    o->hex = sha256_of_name(blob.name);
    if (o->hex.empty()) {  // not a digest: not ours; the chain asks the next source
        ++stats_.stat_misses;
        loop_.defer([done = std::move(done)] { done(unexpected{-ENOENT}); });
        return;
    }
    o->due = due;
    o->stat_cb = std::move(done);
    start(std::move(o));
}

void oci_fetcher::fetch(const blob_ref& blob, std::uint64_t off, std::uint64_t len, deadline due, fetch_done done) {
    ++stats_.fetches;
    auto o = std::make_unique<op>();
    o->hex = sha256_of_name(blob.name);
    if (o->hex.empty() || len == 0 || len > (std::uint64_t{1} << 30) || off > UINT64_MAX - len) {
        ++stats_.fetch_errors;
        loop_.defer([done = std::move(done), err = o->hex.empty() ? -ENOENT : -EINVAL] { done(unexpected{err}); });
        return;
    }
    o->is_fetch = true;
    o->off = off;
    o->len = len;
    o->due = due;
    o->fetch_cb = std::move(done);
    start(std::move(o));
}

void oci_fetcher::release(const blob_ref& blob) {
    if (auto hex = sha256_of_name(blob.name); !hex.empty()) blobs_.erase(hex);
}

void oci_fetcher::collect(metrics::snapshot& out, const std::string& label) const {
    fetcher::collect(out, label);
    out.add(http_client_metrics, client_->stats(), {label});
    oci_stats s = stats_oci_;
    // Counted when asked rather than kept up to date: a cooldown ends by the clock, not by an event.
    const auto now = std::chrono::steady_clock::now();
    s.endpoints_cooling = static_cast<std::uint64_t>(
        std::count_if(endpoints_.begin(), endpoints_.end(), [&](const endpoint& e) { return e.down_until > now; }));
    out.add(oci_metrics, s, {label});
}

void oci_fetcher::start(std::unique_ptr<op> o) {
    const std::uint64_t id = next_id_++;
    blob_info& bi = info(o->hex);
    // The endpoint that served this blob last goes first; the others keep their configured order,
    // except that endpoints in their cooldown come after all healthy ones: a dead mirror would
    // otherwise cost every new blob a timeout before the registry is asked.
    const auto now = std::chrono::steady_clock::now();
    auto healthy = [&](std::size_t i) { return endpoints_[i].down_until <= now; };
    const bool last_first = bi.endpoint && *bi.endpoint < endpoints_.size() && healthy(*bi.endpoint);
    if (last_first) o->order.push_back(*bi.endpoint);
    for (std::size_t i = 0; i < endpoints_.size(); ++i) {
        if (healthy(i) && !(last_first && i == *bi.endpoint)) o->order.push_back(i);
    }
    for (std::size_t i = 0; i < endpoints_.size(); ++i) {
        if (!healthy(i)) o->order.push_back(i);
    }
    const bool use_redirect = o->is_fetch && bi.redirect && bi.redirect_until > std::chrono::steady_clock::now();
    op& ref = *o;
    ops_.emplace(id, std::move(o));
    if (!use_redirect) return try_endpoint(id);
    // Straight to where the registry sent the last chunk (a pre-signed URL carries its own
    // authorization; ours is not for that origin).
    ref.via_redirect = true;
    http::request req;
    req.what = http::request::kind::fetch;
    req.target = *bi.redirect;
    req.off = ref.off;
    req.len = ref.len;
    req.known_size = bi.size;
    send(id, std::move(req));
}

void oci_fetcher::try_endpoint(std::uint64_t id) {
    op& o = *ops_.at(id);
    o.fresh = false;
    o.via_redirect = false;
    o.auth = default_auth(o.ep());
    const endpoint& e = endpoints_[o.ep()];
    if (o.auth.empty() && e.bearer) {
        // The endpoint wanted a token before and ours has expired: get the next one first rather
        // than collect a 401 for it.
        return get_token(o.ep(), *e.bearer, "", o.due, [this, id](result<std::string, int> t) { with_token(id, std::move(t)); });
    }
    send(id, endpoint_request(o));
}

void oci_fetcher::with_token(std::uint64_t id, result<std::string, int> t) {
    auto it = ops_.find(id);
    if (it == ops_.end()) return;
    if (!t) return endpoint_failed(id, t.error(), "no token");
    op& o = *it->second;
    o.fresh = true;
    o.auth = "Bearer " + *t;
    send(id, endpoint_request(o));
}

http::request oci_fetcher::endpoint_request(const op& o) const {
    http::request req;
    req.what = o.is_fetch ? http::request::kind::fetch : http::request::kind::stat;
    req.target = oci::blob_url(endpoints_[o.ep()].base, opts_.repository, o.hex);
    req.off = o.off;
    req.len = o.len;
    if (auto it = blobs_.find(o.hex); it != blobs_.end()) req.known_size = it->second.size;
    req.authorization = o.auth;
    req.report_unauthorized = true;
    return req;
}

void oci_fetcher::send(std::uint64_t id, http::request req) {
    // Endpoints share the operation's deadline as the sources of a chain do: a stalling mirror
    // leaves the registry behind it time to answer.
    if (auto it = ops_.find(id); it != ops_.end()) {
        const op& o = *it->second;
        const std::size_t left = o.pos < o.order.size() ? o.order.size() - o.pos : 1;
        req.deadline = source_chain::share(o.due, left, std::chrono::steady_clock::now());
    }
    auto back = [loop = &loop_, alive = alive_, self = this, id](http::response r) {
        loop->post([alive, self, id, r = std::move(r)]() mutable {
            if (*alive) self->on_response(id, std::move(r));
        });
    };
    boost::asio::post(net_.context(), [c = client_, req = std::move(req), back = std::move(back)]() mutable {
        c->start(std::move(req), std::move(back));
    });
}

void oci_fetcher::on_response(std::uint64_t id, http::response r) {
    auto it = ops_.find(id);
    if (it == ops_.end()) return;
    op& o = *it->second;
    if (o.via_redirect) {
        if (r.err == 0) return finish(id, std::move(r));
        lg.debug("{}: remembered redirect for sha256:{} failed ({}); asking the registry again", describe_, o.hex,
                 std::strerror(-r.err));
        info(o.hex).redirect.reset();
        return try_endpoint(id);
    }
    if (r.err == 0) {
        endpoints_[o.ep()].down_until = {};  // serving again: back in its configured place
        blob_info& bi = info(o.hex);
        bi.endpoint = o.ep();
        if (!o.is_fetch) bi.size = r.size;
        if (o.is_fetch && r.redirected_to) {
            bi.redirect = std::move(r.redirected_to);
            bi.redirect_until = std::chrono::steady_clock::now() + opts_.redirect_ttl;
        }
        return finish(id, std::move(r));
    }
    // A reported 401 (err -EACCES, with its challenges); not a request that failed after a 401's
    // header arrived (its deadline passed while the body was drained: -ETIMEDOUT, status 401),
    // which is no challenge to answer. (Found by the fault matrix: it came out as -EACCES.)
    if (r.status == 401 && r.err == -EACCES) {
        if (o.fresh) return endpoint_failed(id, -EACCES, "credentials refused");
        return answer_challenge(id, r.challenges);
    }
    endpoint_failed(id, r.err, "");
}

void oci_fetcher::answer_challenge(std::uint64_t id, const std::vector<std::string>& values) {
    op& o = *ops_.at(id);
    std::vector<oci::challenge> all;
    for (const auto& v : values) {
        auto some = oci::parse_challenges(v);
        all.insert(all.end(), some.begin(), some.end());
    }
    auto find = [&](std::string_view scheme) -> const oci::challenge* {
        for (const auto& c : all) {
            if (c.scheme == scheme) return &c;
        }
        return nullptr;
    };
    endpoint& e = endpoints_[o.ep()];
    if (const oci::challenge* bearer = find("bearer")) {
        // A cached token the registry refused is not offered again.
        const std::string refused = o.auth.starts_with("Bearer ") ? o.auth.substr(7) : std::string();
        e.bearer = *bearer;
        return get_token(o.ep(), *bearer, refused, o.due, [this, id](result<std::string, int> t) { with_token(id, std::move(t)); });
    }
    if (find("basic")) {
        if (!e.creds) return endpoint_failed(id, -EACCES, "Basic authentication required, no credentials configured");
        e.basic = true;
        o.fresh = true;
        o.auth = oci::basic_authorization(*e.creds);
        return send(id, endpoint_request(o));
    }
    endpoint_failed(id, -EACCES,
                    all.empty() ? "401 without a usable WWW-Authenticate challenge"
                                : fmt::format("unsupported authentication scheme \"{}\"", all.front().scheme));
}

void oci_fetcher::get_token(std::size_t ep, const oci::challenge& c, const std::string& refused, deadline due,
                            token_done done) {
    const std::string key = token_key(ep);
    if (auto it = tokens_.find(key); it != tokens_.end()) {
        if (it->second.value != refused && it->second.until > std::chrono::steady_clock::now()) {
            return done(it->second.value);  // another request fetched one meanwhile
        }
        tokens_.erase(it);
    }
    if (auto it = token_waiting_.find(key); it != token_waiting_.end()) {
        it->second.push_back(std::move(done));  // one token request serves every waiter
        return;
    }
    const endpoint& e = endpoints_[ep];
    auto realm = c.params.find("realm");
    if (realm == c.params.end()) {
        lg.warn("{}: {} asks for a bearer token without a realm", describe_, e.base.origin());
        return done(unexpected{-EACCES});
    }
    auto service = c.params.find("service");
    auto u = oci::token_url(realm->second, service == c.params.end() ? "" : service->second, scope_);
    if (!u) {
        lg.warn("{}: {}: {}", describe_, e.base.origin(), u.error());
        return done(unexpected{-EACCES});
    }
    if (e.base.tls() && !u->tls()) {
        // Credentials (and the token) would cross the network in clear text.
        lg.warn("{}: {} names a plain-http token realm {}; refused", describe_, e.base.origin(), u->redacted());
        return done(unexpected{-EACCES});
    }
    token_waiting_[key].push_back(std::move(done));
    ++stats_oci_.token_requests;
    lg.debug("{}: token request to {} for {}{}", describe_, u->redacted(), e.base.origin(),
             e.creds ? " (with credentials)" : "");
    http::request req;
    req.what = http::request::kind::body;
    req.target = std::move(*u);
    req.body_limit = token_body_limit;
    // The operation that asked first sets the token request's deadline; a later waiter with less
    // time left is still bounded by its own deadline in the engine.
    req.deadline = due;
    if (e.creds) req.authorization = oci::basic_authorization(*e.creds);
    auto back = [loop = &loop_, alive = alive_, self = this, key](http::response r) {
        loop->post([alive, self, key, r = std::move(r)]() mutable {
            if (*alive) self->on_token(key, std::move(r));
        });
    };
    boost::asio::post(net_.context(), [c = client_, req = std::move(req), back = std::move(back)]() mutable {
        c->start(std::move(req), std::move(back));
    });
}

void oci_fetcher::on_token(const std::string& key, http::response r) {
    auto it = token_waiting_.find(key);
    if (it == token_waiting_.end()) return;
    auto waiters = std::move(it->second);
    token_waiting_.erase(it);
    result<std::string, int> out = unexpected{-EIO};
    if (r.err) {
        // 401/403 from the token service: the credentials (or their absence) were refused.
        out = unexpected{r.status >= 400 && r.status < 500 ? -EACCES : r.err};
        unsigned suppressed = 0;
        if (warn_limit.allow(suppressed)) {
            lg.warn("{}: token request failed ({}{})", describe_,
                    r.status ? fmt::format("HTTP status {}", r.status) : std::string(std::strerror(-r.err)),
                    suppressed ? fmt::format(", {} similar suppressed", suppressed) : "");
        }
    } else if (auto t = oci::parse_token_response(r.body); !t) {
        lg.warn("{}: unusable token answer: {}", describe_, t.error());
    } else {
        const auto life = oci::token_cache_time(*t, std::chrono::duration_cast<std::chrono::seconds>(
                                                        std::chrono::system_clock::now().time_since_epoch())
                                                        .count());
        tokens_[key] = token{t->token, std::chrono::steady_clock::now() + life};
        lg.debug("{}: got a token (expires in {} s, cached {} ms)", describe_, t->expires_in, life.count());
        out = t->token;
    }
    for (auto& w : waiters) w(out);
}

void oci_fetcher::endpoint_failed(std::uint64_t id, int err, std::string_view why) {
    op& o = *ops_.at(id);
    const bool is_registry = o.ep() + 1 == endpoints_.size();
    if (is_registry) o.err = err;
    endpoint& e = endpoints_[o.ep()];
    // Not having the blob is an answer, not a failure (a pull-through mirror fills up over time).
    if (err != -ENOENT && !is_registry) {
        const auto now = std::chrono::steady_clock::now();
        if (e.down_until <= now) {
            ++stats_oci_.endpoint_cooldowns;
            lg.warn({{"SOURCE", describe_}}, "{}: mirror {} failed ({}); asking it last for the next {:g} s", describe_, e.base.origin(),
                    std::strerror(-err), static_cast<double>(opts_.endpoint_cooldown.count()) / 1000);
        }
        e.down_until = now + opts_.endpoint_cooldown;
    }
    if (err == -EACCES) {
        unsigned suppressed = 0;
        if (warn_limit.allow(suppressed)) {
            lg.warn("{}: {}: access denied to sha256:{}{}{}", describe_, e.base.origin(), o.hex,
                    why.empty() ? "" : fmt::format(" ({})", why),
                    log::suppressed_note(suppressed));
        }
    } else {
        lg.debug("{}: {}: sha256:{}: {}{}", describe_, e.base.origin(), o.hex, std::strerror(-err),
                 why.empty() ? "" : fmt::format(" ({})", why));
    }
    if (++o.pos < o.order.size() && std::chrono::steady_clock::now() < o.due) return try_endpoint(id);
    // Every endpoint failed: the registry's answer is the one reported, wherever it came in the
    // order (a mirror in its cooldown may have come after it).
    http::response r;
    r.err = o.err ? o.err : err;
    finish(id, std::move(r));
}

void oci_fetcher::finish(std::uint64_t id, http::response r) {
    auto it = ops_.find(id);
    if (it == ops_.end()) return;
    std::unique_ptr<op> o = std::move(it->second);
    ops_.erase(it);
    if (!o->is_fetch) {
        if (r.err) {
            ++stats_.stat_misses;
            return o->stat_cb(unexpected{r.err});
        }
        return o->stat_cb(r.size);
    }
    if (r.err || !r.data) {
        ++stats_.fetch_errors;
        return o->fetch_cb(unexpected{r.err ? r.err : -EIO});
    }
    stats_.bytes += r.data->filled;
    o->fetch_cb(buffer_ptr(std::move(r.data)));
}

}  // namespace blobd
