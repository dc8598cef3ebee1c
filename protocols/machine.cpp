#include "protocols/machine.hpp"

#include "protocols/imap.hpp"
#include "protocols/pop3.hpp"
#include "protocols/smtp.hpp"

namespace postern::protocols {

// STARTTLS listeners (implicit_tls = false) get their pre-TLS dialogue in the next round;
// until then both modes build the implicit-TLS machines (RelayMachine::Phase leaves room for
// the pre-TLS phases before AwaitTls).
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
