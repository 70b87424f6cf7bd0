// MaxMind DB reader (Debian: libmaxminddb-dev).
#include <maxminddb.h>
