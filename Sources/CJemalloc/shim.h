// jemalloc from Debian's libjemalloc-dev (unprefixed: its malloc replaces glibc's in a binary
// that links it). Only mallctl is called, to name the allocator; linking is the point.
#include <jemalloc/jemalloc.h>
