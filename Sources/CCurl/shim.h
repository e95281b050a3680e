#ifndef CCURL_SHIM_H
#define CCURL_SHIM_H
/* libcurl, opened at run time (dlopen) the first time an s3:// source is read, so that building
   the loader needs no curl headers, no libcurl.pc and no libcurl.so link: only the runtime
   library, libcurl.so.4, which Debian installs with curl, git and Swift's own
   FoundationNetworking. The few types and numbers the S3 client uses are declared here, with the
   values of libcurl's ABI (stable since 7.x: options and codes are only ever added); they were
   checked against curl 7.88.1's curl.h (Debian 12). */
#include <dlfcn.h>
#include <stddef.h>

typedef void CURL;

typedef enum {
    CURLE_OK = 0,
    CURLE_COULDNT_RESOLVE_HOST = 6,
    CURLE_COULDNT_CONNECT = 7,
    CURLE_HTTP2 = 16,
    CURLE_PARTIAL_FILE = 18,
    CURLE_WRITE_ERROR = 23,
    CURLE_OPERATION_TIMEDOUT = 28,
    CURLE_SSL_CONNECT_ERROR = 35,
    CURLE_GOT_NOTHING = 52,
    CURLE_SEND_ERROR = 55,
    CURLE_RECV_ERROR = 56,
    CURLE_HTTP2_STREAM = 92
} CURLcode;

typedef enum {
    CURLOPT_WRITEDATA = 10001,
    CURLOPT_URL = 10002,
    CURLOPT_ERRORBUFFER = 10010,
    CURLOPT_WRITEFUNCTION = 20011,
    CURLOPT_LOW_SPEED_LIMIT = 19,
    CURLOPT_LOW_SPEED_TIME = 20,
    CURLOPT_HTTPHEADER = 10023,
    CURLOPT_HEADERDATA = 10029,
    CURLOPT_CONNECTTIMEOUT = 78,
    CURLOPT_HEADERFUNCTION = 20079,
    CURLOPT_HTTPGET = 80,
    CURLOPT_BUFFERSIZE = 98,
    CURLOPT_NOSIGNAL = 99,
    CURLOPT_PROTOCOLS_STR = 10318,
    CURLOPT_POSTFIELDS = 10015,
    CURLOPT_POSTFIELDSIZE = 60,
    CURLOPT_CUSTOMREQUEST = 10036,
    CURLOPT_NOBODY = 44
} CURLoption;

typedef enum {
    CURLINFO_RESPONSE_CODE = 0x200002,
    CURLINFO_OS_ERRNO = 0x200019
} CURLINFO;

#define CURL_ERROR_SIZE 256
#define CURL_GLOBAL_DEFAULT 3L

struct curl_slist {
    char *data;
    struct curl_slist *next;
};

/* The functions the client calls, found in the library by name. curl_easy_setopt and
   curl_easy_getinfo are variadic, which Swift cannot call: they are kept untyped and called
   through one typed wrapper per kind of argument, below. */
typedef struct ccurl_api {
    CURLcode (*global_init)(long flags);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *handle);
    void (*easy_reset)(CURL *handle);
    CURLcode (*easy_perform)(CURL *handle);
    const char *(*easy_strerror)(CURLcode code);
    struct curl_slist *(*slist_append)(struct curl_slist *list, const char *line);
    void (*slist_free_all)(struct curl_slist *list);
    void *easy_setopt;
    void *easy_getinfo;
} ccurl_api;

/* Opens `file` and fills `api`: 1 when every function was found, else 0 (dlerror() says why). */
static inline int ccurl_open(const char *file, ccurl_api *api) {
    void *library = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) return 0;
    *(void **)&api->global_init = dlsym(library, "curl_global_init");
    *(void **)&api->easy_init = dlsym(library, "curl_easy_init");
    *(void **)&api->easy_cleanup = dlsym(library, "curl_easy_cleanup");
    *(void **)&api->easy_reset = dlsym(library, "curl_easy_reset");
    *(void **)&api->easy_perform = dlsym(library, "curl_easy_perform");
    *(void **)&api->easy_strerror = dlsym(library, "curl_easy_strerror");
    *(void **)&api->slist_append = dlsym(library, "curl_slist_append");
    *(void **)&api->slist_free_all = dlsym(library, "curl_slist_free_all");
    api->easy_setopt = dlsym(library, "curl_easy_setopt");
    api->easy_getinfo = dlsym(library, "curl_easy_getinfo");
    if (!api->global_init || !api->easy_init || !api->easy_cleanup || !api->easy_reset || !api->easy_perform
        || !api->easy_strerror || !api->slist_append || !api->slist_free_all || !api->easy_setopt || !api->easy_getinfo) {
        dlclose(library);
        return 0;
    }
    return 1;
}

typedef CURLcode (*ccurl_setopt_fn)(CURL *, CURLoption, ...);
typedef CURLcode (*ccurl_getinfo_fn)(CURL *, CURLINFO, ...);

static inline CURLcode ccurl_setopt_long(const ccurl_api *api, CURL *handle, CURLoption option, long value) {
    return ((ccurl_setopt_fn)api->easy_setopt)(handle, option, value);
}
static inline CURLcode ccurl_setopt_string(const ccurl_api *api, CURL *handle, CURLoption option, const char *value) {
    return ((ccurl_setopt_fn)api->easy_setopt)(handle, option, value);
}
static inline CURLcode ccurl_setopt_pointer(const ccurl_api *api, CURL *handle, CURLoption option, void *value) {
    return ((ccurl_setopt_fn)api->easy_setopt)(handle, option, value);
}
typedef size_t (*ccurl_data_callback)(char *data, size_t size, size_t count, void *context);
static inline CURLcode ccurl_setopt_callback(const ccurl_api *api, CURL *handle, CURLoption option, ccurl_data_callback value) {
    return ((ccurl_setopt_fn)api->easy_setopt)(handle, option, value);
}
static inline CURLcode ccurl_getinfo_long(const ccurl_api *api, CURL *handle, CURLINFO info, long *value) {
    return ((ccurl_getinfo_fn)api->easy_getinfo)(handle, info, value);
}
#endif
