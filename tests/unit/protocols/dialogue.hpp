#pragma once
// Test driver for protocol machines: plays a scripted dialogue (events, client bytes, backend
// bytes) the way proxy::Session drives a machine (the same loop, protocols/driver.hpp: keep what
// was not consumed, offer it again with more appended, re-offer client bytes after backend
// progress, relay leftovers raw after Passthrough, drop them after Close, and drop the client's
// unconsumed bytes at StartTls as the session's begin_upgrade() does) and records a Transcript.
// check_splits() replays the script with every step split at every byte offset, and byte at a time,
// and requires the same Transcript each time (h11's "one big chunk vs byte at a time" invariant).

#include "protocols/driver.hpp"
#include "protocols/machine.hpp"

#include <doctest/doctest.h>

#include <cstddef>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace postern::protocols::test {

struct Step {
    enum class Kind : std::uint8_t { Event, Client, Backend, Identity };
    Kind kind = Kind::Event;
    Event event = Event::TlsReady;
    std::string bytes;
    ClientIdentity identity;  // Kind::Identity: handed to forward_identity()
};

inline Step event(Event e) {
    return {Step::Kind::Event, e, {}, {}};
}
inline Step client(std::string_view bytes) {
    return {Step::Kind::Client, Event::TlsReady, std::string(bytes), {}};
}
inline Step backend(std::string_view bytes) {
    return {Step::Kind::Backend, Event::TlsReady, std::string(bytes), {}};
}
// The session's forward_identity() call (backend option `xclient`).
inline Step identity(ClientIdentity id) {
    return {Step::Kind::Identity, Event::TlsReady, {}, std::move(id)};
}

using Script = std::vector<Step>;

// The usual start of a STARTTLS session: postern greets the plaintext client.
inline Script accepted(Script rest) {
    Script script{event(Event::ClientConnected)};
    script.insert(script.end(), rest.begin(), rest.end());
    return script;
}

// The usual start of an implicit-TLS session: TLS done, backend connected.
inline Script connected(Script rest) {
    Script script{event(Event::TlsReady), event(Event::BackendReady)};
    script.insert(script.end(), rest.begin(), rest.end());
    return script;
}

// A STARTTLS session through the upgrade: `before` in plaintext, then TLS done, the backend
// connected and its greeting (`backend_greeting`, which postern reads and drops), then `after`.
inline Script upgraded(std::string_view backend_greeting, Script before, const Script& after) {
    Script script = accepted(std::move(before));
    script.push_back(event(Event::TlsReady));
    script.push_back(event(Event::BackendReady));
    script.push_back(backend(backend_greeting));
    script.insert(script.end(), after.begin(), after.end());
    return script;
}

inline std::string cat(std::initializer_list<std::string_view> parts) {
    std::string out;
    for (const auto p : parts) {
        out.append(p);
    }
    return out;
}

// One action per entry; consecutive sends of the same direction are merged, since how the
// bytes are cut into actions depends on how they arrived.
struct Transcript {
    std::vector<std::string> actions;  // "to_client:...", "to_backend:...", "connect", ...
    std::string raw_to_backend;        // client bytes the session relays after Passthrough
    std::string raw_to_client;         // backend bytes the session relays after Passthrough
    std::string client_pending;        // offered but not consumed when the script ended
    std::string backend_pending;
    std::string state;
    bool between_commands = false;  // Machine::between_commands() when the script ended
    // Not rendered (how much is left over depends on how the bytes arrived): client bytes
    // dropped at StartTls, as the session drops them.
    std::string dropped_at_starttls;

    [[nodiscard]] std::string render() const;
    [[nodiscard]] std::string to_backend() const;  // every byte the machine sent to the backend
    [[nodiscard]] std::string to_client() const;   // every byte the machine sent to the client
    [[nodiscard]] bool has(std::string_view action) const;
};

inline std::string escape(std::string_view s) {
    std::string out;
    for (const char c : s) {
        if (c == '\r') {
            out += "\\r";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\0') {
            out += "\\0";
        } else {
            out.push_back(c);
        }
    }
    return out;
}

inline std::string Transcript::render() const {
    std::string out;
    for (const auto& a : actions) {
        out += escape(a) + "\n";
    }
    out += "raw_to_backend=" + escape(raw_to_backend) + "\nraw_to_client=" + escape(raw_to_client);
    out += "\nclient_pending=" + escape(client_pending) +
           "\nbackend_pending=" + escape(backend_pending) + "\nstate=" + state +
           "\nbetween_commands=" + (between_commands ? "yes" : "no") + "\n";
    return out;
}

inline std::string collect(const std::vector<std::string>& actions, std::string_view prefix) {
    std::string out;
    for (const auto& a : actions) {
        if (a.starts_with(prefix)) {
            out += a.substr(prefix.size());
        }
    }
    return out;
}

inline std::string Transcript::to_backend() const {
    return collect(actions, "to_backend:");
}
inline std::string Transcript::to_client() const {
    return collect(actions, "to_client:");
}
inline bool Transcript::has(std::string_view action) const {
    for (const auto& a : actions) {
        if (a == action) {
            return true;
        }
    }
    return false;
}

// What the driver does with the client bytes left unconsumed when StartTls arrives.
enum class AtStartTls : std::uint8_t {
    Drop,     // as proxy::Session does
    Reoffer,  // keep offering them, to show the machine ignores them (defence in depth)
};

class Driver {
public:
    explicit Driver(const MachineSettings& settings, AtStartTls at_start_tls = AtStartTls::Drop)
        : machine_(make_machine(settings)), at_start_tls_(at_start_tls) {}

    void event(Event e) {
        deliver(*this, e, out_);
        pump(*this, out_);
    }

    void identity(const ClientIdentity& id) {
        if (!done_) {
            machine_->forward_identity(id);
        }
    }

    void bytes(Peer from, std::string_view chunk) {
        if (passthrough_) {
            (from == Peer::Client ? t_.raw_to_backend : t_.raw_to_client).append(chunk);
            return;
        }
        if (done_) {
            return;
        }
        (from == Peer::Client ? client_ : backend_).append(chunk);
        pump(*this, out_);
    }

    Transcript finish() {
        t_.client_pending = client_;
        t_.backend_pending = backend_;
        t_.state = std::string(machine_->state_name());
        t_.between_commands = machine_->between_commands();
        return t_;
    }

    // The host side of protocols/driver.hpp, which runs the session's loop: backend bytes
    // first, then client bytes kept back earlier, until neither side makes progress.
    Machine* machine() { return done_ ? nullptr : machine_.get(); }
    std::string_view unread(Peer from) const { return from == Peer::Client ? client_ : backend_; }
    void act(Actions& /*actions: out_*/) { record(); }

    void consumed(Peer from, std::size_t n, Actions& /*actions: out_*/) {
        std::string& buffer = from == Peer::Client ? client_ : backend_;
        REQUIRE(n <= buffer.size());
        // "0 with no new action" means wait; 0 with ConnectBackend is a line held for the
        // backend a STARTTLS listener connects in plaintext (require_tls = false).
        bool only_connect = true;
        for (const auto& action : out_) {
            only_connect = only_connect && std::holds_alternative<ConnectBackend>(action);
            if (std::holds_alternative<StartTls>(action)) {
                // Consumed exactly through the STARTTLS line, not a byte past it.
                REQUIRE(from == Peer::Client);
                REQUIRE(n > 0);
                REQUIRE(buffer[n - 1] == '\n');
            }
        }
        buffer.erase(0, n);
        record();
        REQUIRE((n > 0 || only_connect || done_));
    }

private:
    void add(std::string_view prefix, std::string_view bytes) {
        if (!t_.actions.empty() && t_.actions.back().starts_with(prefix)) {
            t_.actions.back().append(bytes);
        } else {
            t_.actions.push_back(std::string(prefix) + std::string(bytes));
        }
    }

    void record() {
        for (auto& action : out_) {
            REQUIRE_FALSE(done_);  // nothing may follow Passthrough or Close
            if (auto* c = std::get_if<SendToClient>(&action)) {
                REQUIRE_FALSE(c->bytes.empty());
                add("to_client:", c->bytes);
            } else if (auto* b = std::get_if<SendToBackend>(&action)) {
                REQUIRE_FALSE(b->bytes.empty());
                add("to_backend:", b->bytes);
            } else if (std::holds_alternative<ConnectBackend>(action)) {
                t_.actions.emplace_back("connect");
            } else if (std::holds_alternative<StartTls>(action)) {
                t_.actions.emplace_back("start_tls");
                REQUIRE(t_.actions.size() >= 2);  // the "go ahead" reply comes first
                REQUIRE(t_.actions[t_.actions.size() - 2].starts_with("to_client:"));
                if (at_start_tls_ == AtStartTls::Drop) {
                    t_.dropped_at_starttls += client_;
                    client_.clear();
                }
            } else if (std::holds_alternative<Passthrough>(action)) {
                t_.actions.emplace_back("passthrough");
                done_ = passthrough_ = true;
                t_.raw_to_backend += client_;
                t_.raw_to_client += backend_;
                client_.clear();
                backend_.clear();
            } else if (auto* close = std::get_if<Close>(&action)) {
                t_.actions.push_back("close:" + std::string(to_string(close->reason)));
                done_ = true;
                client_.clear();
                backend_.clear();
            }
        }
        out_.clear();
    }

    std::unique_ptr<Machine> machine_;
    AtStartTls at_start_tls_;
    Actions out_;
    Transcript t_;
    std::string client_;
    std::string backend_;
    bool done_ = false;
    bool passthrough_ = false;
};

// Cuts a step's bytes into chunks; `step` is its index in the script.
using Chunker = std::function<std::vector<std::string_view>(std::size_t step, std::string_view)>;

inline Transcript play(const MachineSettings& settings, const Script& script,
                       const Chunker& chunker, AtStartTls at_start_tls = AtStartTls::Drop) {
    Driver driver(settings, at_start_tls);
    for (std::size_t i = 0; i < script.size(); ++i) {
        const Step& step = script[i];
        if (step.kind == Step::Kind::Event) {
            driver.event(step.event);
            continue;
        }
        if (step.kind == Step::Kind::Identity) {
            driver.identity(step.identity);
            continue;
        }
        const Peer peer = step.kind == Step::Kind::Client ? Peer::Client : Peer::Backend;
        for (const auto chunk : chunker(i, step.bytes)) {
            driver.bytes(peer, chunk);
        }
    }
    return driver.finish();
}

inline Transcript play(const MachineSettings& settings, const Script& script,
                       AtStartTls at_start_tls = AtStartTls::Drop) {
    return play(
        settings, script,
        [](std::size_t, std::string_view b) { return std::vector<std::string_view>{b}; },
        at_start_tls);
}

// Plays `script` whole, byte at a time, and cut once at every offset of every step; all
// must agree. Returns the whole-chunk transcript for the caller's own checks.
inline Transcript check_splits(const MachineSettings& settings, const Script& script,
                               AtStartTls at_start_tls = AtStartTls::Drop) {
    const Transcript whole = play(settings, script, at_start_tls);
    const std::string expected = whole.render();

    const Transcript bytewise = play(
        settings, script,
        [](std::size_t, std::string_view b) {
            std::vector<std::string_view> chunks;
            for (std::size_t i = 0; i < b.size(); ++i) {
                chunks.push_back(b.substr(i, 1));
            }
            return chunks;
        },
        at_start_tls);
    INFO("byte at a time");
    REQUIRE(bytewise.render() == expected);

    for (std::size_t step = 0; step < script.size(); ++step) {
        for (std::size_t cut = 1; cut < script[step].bytes.size(); ++cut) {
            const Transcript split = play(
                settings, script,
                [&](std::size_t i, std::string_view b) {
                    if (i != step) {
                        return std::vector<std::string_view>{b};
                    }
                    return std::vector<std::string_view>{b.substr(0, cut), b.substr(cut)};
                },
                at_start_tls);
            INFO("step " << step << " cut at " << cut);
            REQUIRE(split.render() == expected);
        }
    }
    return whole;
}

inline MachineSettings settings_for(Protocol protocol) {
    MachineSettings s;
    s.protocol = protocol;
    s.implicit_tls = true;
    s.hostname = "mx.test";
    return s;
}

// A STARTTLS listener.
inline MachineSettings starttls_settings_for(Protocol protocol, bool require_tls = true) {
    MachineSettings s = settings_for(protocol);
    s.implicit_tls = false;
    s.require_tls = require_tls;
    return s;
}

}  // namespace postern::protocols::test
