// sources: builds fetchers from configured sources (the one layer that knows both config/ and
// fetchers/). Loop thread.
#pragma once

#include <memory>

#include "config/config.hpp"
#include "fetchers/fetcher.hpp"
#include "fetchers/http/http_client.hpp"
#include "fetchers/oci/oci_fetcher.hpp"

namespace blobd {

class event_loop;
class net_thread;

namespace sources {

/// The HTTP fetcher's settings for an http source.
http_options http_options_from(const cfg::http_source& s);
/// The OCI fetcher's settings for an oci source; reads its auth_file. Throws std::system_error
/// (EINVAL) naming the file (never quoting a secret) when it cannot be read or parsed.
oci_options oci_options_from(const cfg::oci_source& s);

/// A fetcher for `s`. Sources that cross the network start `net` on first use. Throws
/// std::system_error (EINVAL) naming the file or URL when the source cannot be set up (an
/// unreadable ca_file or auth_file).
std::shared_ptr<fetcher> make_source(event_loop& loop, std::unique_ptr<net_thread>& net, const cfg::source& s);

}  // namespace sources
}  // namespace blobd
