// register: the C++ twin of the core of examples/c/ue.c, on include/imstls.hpp. It registers
// to a P-CSCF through imstls's managed driver, answers the 401 Digest challenge with the tiny
// UA of examples/c/mini_ua.c, then de-registers. One line per event on stdout; exit 0 when
// registered and de-registered, 1 when not, 2 on a usage or configuration error. Identities
// and the password are never printed.
//
//   register --pcscf HOST:PORT [--server-name FQDN] [--ca FILE.pem] --impi ID --impu URI
//            --password SECRET
//
// Build: c++ -std=c++17 register.cpp mini_ua.o $(pkg-config --cflags --libs imstls) -o register
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "imstls.hpp"

extern "C" {
#include "mini_ua.h"
}

namespace {

struct args {
    std::string_view pcscf, server_name, ca;
    const char *impi = nullptr, *impu = nullptr, *password = nullptr;  // argv: NUL-terminated
};

bool parse(int argc, char **argv, args &a) {
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string_view flag = argv[i], value = argv[i + 1];
        if (flag == "--pcscf") a.pcscf = value;
        else if (flag == "--server-name") a.server_name = value;
        else if (flag == "--ca") a.ca = value;
        else if (flag == "--impi") a.impi = argv[i + 1];
        else if (flag == "--impu") a.impu = argv[i + 1];
        else if (flag == "--password") a.password = argv[i + 1];
        else return false;
    }
    return argc % 2 == 1 && !a.pcscf.empty() && a.impi && a.impu && a.password;
}

imstls::result<imstls::config> configure(const args &a) {
    auto builder = imstls::config_builder::create();
    if (!builder) return builder.error();
    imstls::result<void> r = builder->add_pcscf(a.pcscf);
    if (r && !a.server_name.empty()) r = builder->set_server_name(a.server_name);
    if (r && !a.ca.empty()) r = builder->add_trust_anchors_file(a.ca);
    if (!r) return r.error();
    return builder->build();
}

// The SIP stack's side: REGISTER_NOW -> build and send; SIP_RECEIVED -> report the answer on
// the flow it came from.
struct stack {
    imstls::driver &driver;
    mini_ua ua;
    bool registered = false, deregistered = false, failed = false;

    imstls::result<void> act(const imstls::event &e) {
        switch (e.type) {
        case imstls::event_kind::register_now: {
            using reason = imstls::register_reason;
            bool deregister = e.register_reason == reason::deregister;
            if (e.register_reason == reason::initial || e.register_reason == reason::recovery ||
                e.register_reason == reason::network_changed || e.register_reason == reason::rekey) {
                mini_ua_new_registration(&ua);
            }
            auto binding = driver.binding();
            if (binding && *binding) mini_ua_set_local(&ua, std::string((*binding)->local_addr()).c_str());
            char buf[4096];
            std::size_t len = mini_ua_register(&ua, deregister ? 1 : 0, buf, sizeof buf);
            if (len == 0) return imstls::error(imstls::status::invalid_argument);
            imstls::result<void> sent = driver.send_sip(imstls::bytes_view(buf, len));
            std::memset(buf, 0, sizeof buf);
            return sent;
        }
        case imstls::event_kind::sip_received: {
            imstls::bytes_view message = e.data.view();
            mini_ua_result answer = mini_ua_response(&ua, message.data(), message.size());
            imstls::result<void> r;
            switch (answer.outcome) {
            case MINI_UA_CHALLENGED: r = driver.registration_challenged(e.flow, answer.stale != 0); break;
            case MINI_UA_REGISTERED: r = driver.registration_succeeded(e.flow, answer.expires, 0); break;
            case MINI_UA_DEREGISTERED: r = driver.registration_succeeded(e.flow, 0, 0); break;
            case MINI_UA_FAILED: r = driver.registration_failed(e.flow, answer.status, answer.retry_after); break;
            case MINI_UA_OTHER: break;
            }
            // A late answer of an old flow is refused and dropped (TS 33.203 O.4.1).
            if (r.code() == imstls::status::stale_report) return {};
            return r;
        }
        case imstls::event_kind::registered: registered = true; break;
        case imstls::event_kind::deregistered: deregistered = true; break;
        case imstls::event_kind::registration_failed: failed = !e.has_flag(imstls::flag::retrying); break;
        default: break;
        }
        return {};
    }

    // Runs the driver until `done()` or `limit` passes; false on a failure.
    template <class Done>
    bool run_until(Done done, std::chrono::seconds limit) {
        auto deadline = std::chrono::steady_clock::now() + limit;
        while (!done() && !failed && std::chrono::steady_clock::now() < deadline) {
            if (auto ran = driver.run(200); !ran) {
                std::fprintf(stderr, "register: %s\n", ran.error().message().c_str());
                return false;
            }
            for (;;) {
                auto polled = driver.poll_event();
                if (!polled || !*polled) break;
                imstls::event e = (*polled)->copy();
                std::printf("%-22s %s\n", e.name.c_str(), e.detail.c_str());
                if (auto acted = act(e); !acted) {
                    std::fprintf(stderr, "register: %s\n", acted.error().message().c_str());
                    return false;
                }
            }
            std::fflush(stdout);
        }
        return done();
    }
};

}  // namespace

int main(int argc, char **argv) {
    args a;
    if (!parse(argc, argv, a)) {
        std::fputs("usage: register --pcscf HOST:PORT [--server-name FQDN] [--ca FILE.pem] --impi ID "
                   "--impu URI --password SECRET\n",
                   stderr);
        return 2;
    }
    auto config = configure(a);
    if (!config) {
        std::fprintf(stderr, "register: %s (field %s)\n", config.error().message().c_str(),
                     config.error().config_field().c_str());
        return 2;
    }
    auto driver = imstls::driver::create(*config);
    if (!driver) {
        std::fprintf(stderr, "register: %s\n", driver.error().message().c_str());
        return 2;
    }
    stack s{*driver, {}};
    if (mini_ua_init(&s.ua, a.impi, a.impu, a.password, 3600) != 0) {
        std::fputs("register: --impi, --impu or --password does not fit\n", stderr);
        return 2;
    }
    int code = 1;
    if (auto started = driver->start_registration(a.impi, {a.impu}); !started) {
        std::fprintf(stderr, "register: %s\n", started.error().message().c_str());
        code = 2;
    } else if (s.run_until([&] { return s.registered; }, std::chrono::seconds(30)) && driver->deregister() &&
               s.run_until([&] { return s.deregistered; }, std::chrono::seconds(30))) {
        code = 0;
    }
    mini_ua_wipe(&s.ua);
    return code;
}
