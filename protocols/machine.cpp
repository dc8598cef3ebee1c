#include "protocols/machine.hpp"

#include "protocols/imap.hpp"
#include "protocols/pop3.hpp"
#include "protocols/smtp.hpp"

namespace postern::protocols {

// One machine per protocol serves both listener kinds: RelayMachine starts in its pre-TLS
// phase when settings.implicit_tls is false.
std::unique_ptr<Machine> make_machine(const MachineSettings& settings) {
    switch (settings.protocol) {
        case Protocol::Imap:
            return make_imap_machine(settings);
        case Protocol::Pop3:
            return make_pop3_machine(settings);
        case Protocol::Smtp:
            return make_smtp_machine(settings);
    }
    return nullptr;
}

}  // namespace postern::protocols
