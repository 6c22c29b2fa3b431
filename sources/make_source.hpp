// sources: builds fetchers from configured sources (the one layer that knows both config/ and
// fetchers/), through the table of kinds (sources/kinds.hpp). Loop thread unless said otherwise.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "config/config.hpp"
#include "fetchers/fetcher.hpp"
#include "fetchers/http/http_client.hpp"
#include "fetchers/oci/oci_fetcher.hpp"
#include "sources/kinds.hpp"

namespace blobd {

class event_loop;
class net_thread;

namespace sources {

/// The HTTP client's settings for a transport (url, and the client's own limits, left as they are).
void apply(const transport& t, http_options& o);
/// The HTTP fetcher's settings for an http source.
http_options http_options_from(const http_settings& s);
/// The per-host credentials in the docker-style auth file `path`. The error names the file and
/// never quotes its contents. Any thread; blocking.
result<std::map<std::string, oci::credentials>, std::string> read_auth_file(const std::string& path);
/// The OCI fetcher's settings for an oci source; reads its auth_file. Throws std::system_error
/// (EINVAL) naming the file (never quoting a secret) when it cannot be read or parsed.
oci_options oci_options_from(const oci_settings& s);

/// A fetcher for `s` (its kind's maker). Sources that cross the network start `net` on first use.
/// Throws std::system_error (EINVAL) naming the file or URL when the source cannot be set up (an
/// unreadable ca_file or auth_file), or when `s` was read with another table of kinds.
std::shared_ptr<fetcher> make_source(event_loop& loop, std::unique_ptr<net_thread>& net, const cfg::source& s);

}  // namespace sources
}  // namespace blobd
