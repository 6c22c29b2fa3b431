// The journald side of base/log: when stderr counts as the journal ($JOURNAL_STREAM), and what one
// entry's fields are (pure parts; the daemon under journald sends them with sd_journal_sendv).
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "base/log.hpp"

using namespace blobd::log;

TEST_CASE("journal: $JOURNAL_STREAM names stderr's device and inode", "[log]") {
    CHECK(journal_stream_is("8:1234", 8, 1234));
    CHECK_FALSE(journal_stream_is("8:1234", 8, 1235));
    CHECK_FALSE(journal_stream_is("9:1234", 8, 1234));
    for (const char* bad : {"", ":", "8:", ":1234", "8", "8:12x", "x:1", "8:1234:5", "-8:1234", "99999999999999999999999:1"}) {
        INFO(bad);
        CHECK_FALSE(journal_stream_is(bad, 8, 1234));
    }
    // This process's stderr, as the daemon checks it at its first log line.
    struct stat st {};
    REQUIRE(::fstat(STDERR_FILENO, &st) == 0);
    const std::string env = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
    CHECK(journal_stream_is(env, st.st_dev, st.st_ino));
}

TEST_CASE("journal: one entry's fields", "[log]") {
    const field fields[] = {{"DOMAIN", "d1"}, {"BLOB", "sha256:ab\ncd"}, {"lower", "x"}, {"_TRUSTED", "y"},
                            {"1ST", "z"}, {"SOURCE", "oci:https://r/app"}};
    const auto e = journal_entry(level::err, "core", "blob d1/x: not available", fields);
    const std::vector<std::string> want = {"PRIORITY=3",        "MESSAGE=core: blob d1/x: not available",
                                           "SYSLOG_IDENTIFIER=erofs-blobd", "BLOBD_MODULE=core",
                                           "DOMAIN=d1",         "BLOB=sha256:ab\ncd",
                                           "SOURCE=oci:https://r/app"};
    CHECK(e == want);  // invalid names (lowercase, leading '_' or digit) dropped, values kept as they are
    CHECK(journal_entry(level::debug, "m", "x", {}).size() == 4);
}
