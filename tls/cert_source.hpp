#pragma once
// Where sessions get the certificate store they handshake with. A reload publishes a complete,
// validated store in one swap; each session takes its snapshot once, at accept, so a handshake
// never sees two stores and open sessions keep theirs (the SSL_CTXs they use stay alive through
// the snapshot and OpenSSL's own reference counts). Safe to read from every worker thread.

#include "tls/cert_store.hpp"

#include <memory>
#include <mutex>

namespace postern::tls {

class CertSource {
public:
    explicit CertSource(std::shared_ptr<const CertStore> initial) : store_(std::move(initial)) {}

    [[nodiscard]] std::shared_ptr<const CertStore> current() const {
        const std::lock_guard lock(mutex_);
        return store_;
    }

    void publish(std::shared_ptr<const CertStore> store) {
        {
            const std::lock_guard lock(mutex_);
            store_.swap(store);
        }
        // `store` now holds the previous one: released here, outside the lock
    }

private:
    mutable std::mutex mutex_;  // a copy of a shared_ptr under a mutex costs nanoseconds
    std::shared_ptr<const CertStore> store_;
};

}  // namespace postern::tls
