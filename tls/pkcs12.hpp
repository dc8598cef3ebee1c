#pragma once
// PKCS#12 bundles (.pfx, .p12): private key, leaf and chain in one password-protected file, as
// Windows and many control panels export them. OpenSSL 3 reads current bundles (PBES2 with
// AES, what `openssl pkcs12 -export` writes) with its default provider; older ones (RC2-40,
// `-legacy`) need its legacy provider, which is loaded into the process on first need and
// kept. Called by tls::load_certificate, possibly from several loader threads at once.

#include "conf/file_snapshot.hpp"
#include "tls/ossl.hpp"

#include <filesystem>
#include <optional>
#include <string>

namespace postern::tls {

struct Pkcs12Contents {
    PkeyPtr key;
    X509Ptr leaf;        // the certificate for `key`
    X509StackPtr chain;  // the bundle's other certificates, in the bundle's order; never null
};

struct Pkcs12Read {
    enum class Problem : std::uint8_t {
        None,
        Unreadable,         // cannot open the file
        NotPkcs12,          // not DER PKCS#12
        WrongPassword,      // the MAC does not verify with the password
        LegacyUnavailable,  // needs OpenSSL's legacy provider, which cannot be loaded
        Broken,             // decrypts, but holds no key or no certificate for the key
    };
    std::optional<Pkcs12Contents> contents;  // set exactly when problem is None
    Problem problem = Problem::None;
    std::string error;  // names the file and says what to do
};

// Reads `bundle` (named in errors; its bytes as the file snapshot read them) with `password`
// ("" also tries "no password": both spellings exist).
[[nodiscard]] Pkcs12Read read_pkcs12(const std::filesystem::path& bundle,
                                     const conf::FileRead& content, const std::string& password);

struct PasswordRead {
    std::optional<std::string> password;
    std::string error;  // set when password is not
};

// The content of `file` (as the file snapshot read it) with one trailing "\n" (or "\r\n")
// removed, so `echo secret > f` works.
[[nodiscard]] PasswordRead read_password_file(const std::filesystem::path& file,
                                              const conf::FileRead& content);

}  // namespace postern::tls
