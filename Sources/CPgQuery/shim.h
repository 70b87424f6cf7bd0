// PostgreSQL's own parser, packaged as libpg_query (Debian: libpg-query-dev).
#include <pg_query.h>
