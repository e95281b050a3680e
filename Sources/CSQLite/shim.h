#ifndef CSQLITE_SHIM_H
#define CSQLITE_SHIM_H
#include <sqlite3.h>

/// SQLITE_TRANSIENT is a macro casting -1 to a function pointer, which Swift cannot import.
static inline sqlite3_destructor_type csqlite_transient(void) {
    return SQLITE_TRANSIENT;
}
/// sqlite3_config is variadic, which Swift cannot call. Turns off the memory statistics, whose
/// global mutex every allocation takes (https://sqlite.org/c3ref/c_config_covering_index_scan.html).
/// Works only before SQLite initializes; returns SQLITE_MISUSE after.
static inline int csqlite_disable_memstatus(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}
#endif
