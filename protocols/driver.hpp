#pragma once
// The one loop that drives a Machine's bytes (the driving contract in protocols/machine.hpp),
// shared by proxy::Session, the dialogue unit tests (tests/unit/protocols/dialogue.hpp) and the
// fuzzers (tests/fuzz/machine_fuzz.hpp), so that what is tested is what runs. Pure: the host
// holds the unconsumed bytes wherever it likes and applies the actions itself.
//
// A Host provides:
//   Machine* machine();                   the machine to offer bytes to; null once it may be
//                                         offered nothing more (Passthrough, Close, StartTls)
//   std::string_view unread(Peer from);   bytes from `from` offered but not consumed yet
//   void consumed(Peer from, std::size_t n, Actions& actions);
//                                         on_bytes() returned `n` (unchecked: the host drops
//                                         what was used) and emitted `actions`: apply them
//   void act(Actions& actions);           an event's actions: apply them
// Templates, so the session's loop costs no virtual call beyond the machine's own.

#include "protocols/machine.hpp"

#include <string_view>

namespace postern::protocols {

// Offers `from`'s unconsumed bytes once; true when the machine consumed some.
template <class Host>
bool offer(Host& host, Peer from, Actions& actions) {
    Machine* machine = host.machine();
    if (machine == nullptr) {
        return false;
    }
    const std::string_view unread = host.unread(from);
    if (unread.empty()) {
        return false;
    }
    actions.clear();
    const std::size_t n = machine->on_bytes(from, unread, actions);
    host.consumed(from, n, actions);
    return n > 0;
}

// The machine may leave complete backend lines unread while it holds client bytes (so its
// output does not depend on how bytes were cut): offers the backend's and then the client's
// leftovers until neither call consumes anything. True when anything was consumed.
template <class Host>
bool pump(Host& host, Actions& actions) {
    bool moved = false;
    bool progressed = true;
    while (progressed && host.machine() != nullptr) {
        progressed = offer(host, Peer::Backend, actions);
        progressed = offer(host, Peer::Client, actions) || progressed;
        moved = moved || progressed;
    }
    return moved;
}

// Delivers `event` and hands its actions to the host.
template <class Host>
void deliver(Host& host, Event event, Actions& actions) {
    Machine* machine = host.machine();
    if (machine == nullptr) {
        return;
    }
    actions.clear();
    machine->on_event(event, actions);
    host.act(actions);
}

}  // namespace postern::protocols
