// The bdi name in an FS_IOC_GETFSSYSFSPATH answer (frontends/fanotify/bdi.hpp). The lookup on a
// real mount is checked by tests/fanotify/read_ahead.sh (root, host kernel).
#include <catch2/catch.hpp>

#include <string>

#include "frontends/fanotify/bdi.hpp"

using blobd::fanotify::bdi_name_of_sysfs_path;

// Description: "erofs/<name>" gives <name>; other filesystems, empty names and names that are
// not one path component give nothing, so no path outside /sys/class/bdi is ever written.
TEST_CASE("fanotify bdi: the name in erofs' sysfs path", "[fanotify]") {
    CHECK(bdi_name_of_sysfs_path("erofs/erofs-3") == std::string("erofs-3"));
    CHECK(bdi_name_of_sysfs_path("erofs/erofs-123456") == std::string("erofs-123456"));
    CHECK(bdi_name_of_sysfs_path("erofs/d1,img1") == std::string("d1,img1"));  // fscache mode: no such bdi, checked later
    CHECK_FALSE(bdi_name_of_sysfs_path("ext4/vda"));
    CHECK_FALSE(bdi_name_of_sysfs_path("erofs"));
    CHECK_FALSE(bdi_name_of_sysfs_path("erofs/"));
    CHECK_FALSE(bdi_name_of_sysfs_path("erofs/.."));
    CHECK_FALSE(bdi_name_of_sysfs_path("erofs/."));
    CHECK_FALSE(bdi_name_of_sysfs_path("erofs/../../x"));
    CHECK_FALSE(bdi_name_of_sysfs_path("erofs/a/b"));
    CHECK_FALSE(bdi_name_of_sysfs_path(std::string("erofs/a\0b", 9)));
    CHECK_FALSE(bdi_name_of_sysfs_path(""));
}
