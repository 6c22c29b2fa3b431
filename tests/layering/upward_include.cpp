// Description: a file of the lowest layer (base) that includes the core must fail to build: the
// layer include roots (CMakeLists.txt, blobd_layer) give base/ no view of the folders above it.
// Built only by the `layering` test, which passes when the compiler cannot find the header.
#include "core/registry.hpp"
