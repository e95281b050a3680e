#ifndef CCRYPTO_SHIM_H
#define CCRYPTO_SHIM_H
/* OpenSSL's libcrypto (Debian's libssl-dev), for SHA-256 only. Its one-shot and EVP
 * interfaces look the algorithm up on every call; the SHA256_Init/Update/Final functions go
 * straight to the assembly and keep their state in a plain struct on the caller's stack.
 * OpenSSL 3 marks them deprecated (they stay in every 3.x release), so the marks are
 * suppressed here rather than turned into a warning at every call. */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>
#endif
