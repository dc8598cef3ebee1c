#include "tls/ossl.hpp"

#include <openssl/err.h>

namespace postern::tls {

std::string ossl_errors(const char* fallback) {
    std::string out;
    unsigned long code = 0;
    while ((code = ERR_get_error()) != 0) {
        if (!out.empty()) {
            out += "; ";
        }
        const char* reason = ERR_reason_error_string(code);
        const char* lib = ERR_lib_error_string(code);
        out += reason != nullptr ? reason : "unknown error";
        if (lib != nullptr) {
            out += " (";
            out += lib;
            out += ')';
        }
    }
    return out.empty() ? std::string{fallback} : out;
}

}  // namespace postern::tls
