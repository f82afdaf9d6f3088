// Checks of include/imstls.hpp (C++17, strict warnings; built with and without exceptions and
// run under ASan+UBSan by tests/cpp_api.rs): every wrapper once, moves (a moved-from handle is
// inert), errors carried with their details, and a registration through the managed driver
// against the loopback simulator. Prints "passed=N failed=M" last; exits 0 only when nothing
// failed.
//
// usage: cpp_api --pcscf ADDR --expired ADDR --wrong-name ADDR --ca FILE --server-name FQDN
#include "imstls.hpp"  // first: the header needs nothing included before it

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

extern "C" {
#include "mini_ua.h"
}

namespace {

int passed = 0, failed = 0;
const char *scenario = "";

bool check(bool ok, const char *what, int line) {
    if (ok) {
        ++passed;
    } else {
        ++failed;
        std::printf("FAIL [%s] cpp_api.cpp:%d: %s\n", scenario, line, what);
        std::fflush(stdout);
    }
    return ok;
}

// A result with the expected code (status::ok for success).
template <class R>
bool check_code(const R &r, imstls::status want, const char *what, int line) {
    if (r.code() == want) return check(true, what, line);
    std::printf("FAIL [%s] cpp_api.cpp:%d: %s gave %u (%s: %s), expected %u\n", scenario, line, what,
                static_cast<unsigned>(r.code()), std::string(imstls::describe(r.code())).c_str(),
                r.error().message().c_str(), static_cast<unsigned>(want));
    ++failed;
    std::fflush(stdout);
    return false;
}

#define CHECK(cond) check((cond), #cond, __LINE__)
#define CHECK_CODE(expr, want) check_code((expr), (want), #expr, __LINE__)
#define CHECK_OK(expr) CHECK_CODE((expr), imstls::status::ok)

void begin(const char *name) {
    scenario = name;
    std::printf("== %s\n", name);
    std::fflush(stdout);
}

struct options {
    std::string pcscf, expired, wrong_name, ca, server_name;
} opt;

constexpr std::string_view IMPI = "alice@ims.test";
constexpr std::string_view IMPU = "sip:alice@ims.test";
constexpr const char *PASSWORD = "alice-secret";

imstls::config make_config(std::string_view pcscf) {
    auto b = imstls::config_builder::create();
    CHECK_OK(b);
    CHECK_OK(b->add_pcscf(pcscf));
    CHECK_OK(b->set_server_name(opt.server_name));
    CHECK_OK(b->add_trust_anchors_file(opt.ca));
    CHECK_OK(b->set_random_seed(7));
    auto config = b->build();
    CHECK_OK(config);
    return config ? std::move(*config) : imstls::config();
}

// Drains a UE's outputs into values.
std::vector<imstls::event> drain(imstls::ue &ue) {
    std::vector<imstls::event> events;
    for (;;) {
        auto polled = ue.poll_output();
        if (!CHECK_OK(polled) || !*polled) break;
        events.push_back((*polled)->copy());
    }
    return events;
}

const imstls::event *find(const std::vector<imstls::event> &events, imstls::event_kind type) {
    for (const imstls::event &e : events) {
        if (e.type == type) return &e;
    }
    return nullptr;
}

const imstls::event *find_kind(const std::vector<imstls::event> &events, imstls::output_kind kind) {
    for (const imstls::event &e : events) {
        if (e.kind == kind) return &e;
    }
    return nullptr;
}

// ---- library-wide ------------------------------------------------------------------------

void library() {
    begin("library");
    CHECK(imstls::version() == IMSTLS_VERSION_STRING);
    CHECK(imstls::crypto_provider() == "aws-lc-rs" || imstls::crypto_provider() == "ring");
    CHECK(imstls::describe(imstls::status::busy) == "another call on this handle is in progress");
    CHECK(imstls::describe(static_cast<imstls::status>(12345)) == "unknown result code");

    std::uint8_t raw[3] = {1, 2, 3};
    imstls::bytes_view bytes(raw, sizeof raw);
    CHECK(bytes.size() == 3 && bytes.data() == raw && !bytes.empty());
    CHECK(imstls::bytes_view(std::string_view("abc")).as_string() == "abc");
    CHECK(imstls::bytes_view().empty() && imstls::bytes_view().as_string().empty());
    std::vector<std::string_view> list = {"a", "b"};
    CHECK(imstls::list_view<std::string_view>(list).size() == 2);

    // result: value or error, never an exception unless value() is misused.
    imstls::result<int> good(5);
    CHECK(good && good.has_value() && *good == 5 && good.value_or(1) == 5);
    CHECK(good.code() == imstls::status::ok && good.error().code() == imstls::status::ok);
    imstls::result<int> bad(imstls::error(imstls::status::wrong_state));
    CHECK(!bad && bad.code() == imstls::status::wrong_state && bad.value_or(1) == 1);
    CHECK(bad.error().message() == imstls::describe(imstls::status::wrong_state));
    imstls::result<void> fine;
    CHECK(fine && fine.code() == imstls::status::ok);
    imstls::result<void> broken(imstls::error(imstls::status::busy));
    CHECK(!broken && broken.error().code() == imstls::status::busy);
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
    bool threw = false;
    try {
        (void)bad.value();
    } catch (const imstls::bad_result_access &e) {
        threw = e.error().code() == imstls::status::wrong_state &&
                std::string_view(e.what()) == imstls::describe(imstls::status::wrong_state);
    }
    CHECK(threw);
    std::printf("exceptions: on\n");
#else
    std::printf("exceptions: off\n");
#endif
}

// ---- configuration --------------------------------------------------------------------------

std::atomic<int> log_records{0};
std::atomic<int> wakes{0};

extern "C" void count_log(void *userdata, imstls_log_level, const char *, const char *) {
    ++*static_cast<std::atomic<int> *>(userdata);
}
extern "C" void count_wake(void *userdata) { ++*static_cast<std::atomic<int> *>(userdata); }

void configuration() {
    begin("configuration");
    auto created = imstls::config_builder::create();
    CHECK_OK(created);
    imstls::config_builder b = std::move(*created);
    CHECK(static_cast<bool>(b) && b.get() != nullptr);
    CHECK(!b.last_error().has_value());

    // Errors carry the builder's last error: code, message and field.
    auto bad_pcscf = b.add_pcscf("not a host name:99999");
    CHECK_CODE(bad_pcscf, imstls::status::invalid_config);
    CHECK(bad_pcscf.error().config_field() == "pcscf" && !bad_pcscf.error().message().empty());
    CHECK(b.last_error() && b.last_error()->code() == imstls::status::invalid_config);
    // A string_view with a NUL inside is refused here: C would read a shorter string.
    CHECK_CODE(b.add_pcscf(std::string_view("127.0.0.1\0:5061", 15)), imstls::status::invalid_argument);
    CHECK_CODE(b.set_tls_versions(static_cast<imstls::tls_versions>(99)), imstls::status::invalid_argument);
    CHECK_CODE(b.set_certificate_request_policy(static_cast<imstls::certificate_request_policy>(0)),
               imstls::status::invalid_argument);

    // Every setter with a good value.
    CHECK_OK(b.add_pcscf(opt.pcscf));
    CHECK_OK(b.set_server_name(opt.server_name));
    std::ifstream file(opt.ca, std::ios::binary);
    std::string pem((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    CHECK(!pem.empty());
    CHECK_OK(b.add_trust_anchors_pem(pem));
    CHECK_OK(b.add_trust_anchors_file(opt.ca));
    CHECK_OK(b.set_tls_versions(imstls::tls_versions::tls13_and_tls12));
    CHECK_OK(b.set_kx_groups({"X25519", "secp256r1"}));
    CHECK_OK(b.set_allow_wildcard_certificates(false));
    CHECK_OK(b.set_certificate_request_policy(imstls::certificate_request_policy::proceed));
    CHECK_OK(b.set_session_lifetime_ms(600000));
    CHECK_OK(b.set_resumption(true));
    CHECK_OK(b.set_connect_timeout_ms(5000));
    CHECK_OK(b.set_handshake_timeout_ms(5000));
    CHECK_OK(b.set_registration_timeout_ms(10000));
    CHECK_OK(b.set_keepalive(true, false, 10000));
    CHECK_OK(b.set_backoff(30000, 90000, 1800000));
    CHECK_OK(b.set_max_sip_message_size(65536));
    CHECK_OK(b.set_max_challenges(3));
    CHECK_OK(b.set_conformance_log_entries(0));
    CHECK_OK(b.set_queue_limits(0, 0, 0));
    CHECK_OK(b.set_random_seed(42));
    // Key log: a NUL inside the path is refused; a null callback turns it off again.
    CHECK_CODE(b.set_key_log_file(std::string_view("a\0b", 3)), imstls::status::invalid_argument);
    CHECK_OK(b.set_key_log_callback(nullptr, nullptr));
    CHECK_OK(b.set_log_callback(count_log, &log_records, imstls::log_level::trace));
    auto config = b.build();
    CHECK_OK(config);
    CHECK(config && config->candidate_count() == 1);
    CHECK_OK(b.set_log_callback(nullptr, nullptr, imstls::log_level::off));

    // build() fails with the field: P-256 must be offered (TS 33.210 §6.2).
    CHECK_OK(b.set_kx_groups({"X25519"}));
    auto no_p256 = b.build();
    CHECK_CODE(no_p256, imstls::status::invalid_config);
    CHECK(no_p256.error().config_field() == "kx_groups");
    CHECK_OK(b.set_kx_groups(std::vector<std::string_view>{"secp256r1"}));
    CHECK_CODE(b.set_kx_groups({std::string_view("X25519\0", 7)}), imstls::status::invalid_argument);

    // Bad trust material is found by build(), which names the field.
    auto bad_input = [](const std::function<imstls::result<void>(imstls::config_builder &)> &add, const char *field,
                        int line) {
        auto builder = imstls::config_builder::create();
        if (!check_code(builder, imstls::status::ok, "create", line)) return;
        check_code(builder->add_pcscf(opt.pcscf), imstls::status::ok, "add_pcscf", line);
        check_code(add(*builder), imstls::status::ok, "the setter", line);
        auto built = builder->build();
        check_code(built, imstls::status::invalid_config, "build", line);
        check(built.error().config_field() == field, field, line);
        check(builder->last_error() && builder->last_error()->config_field() == field, field, line);
    };
    bad_input([](auto &b) { return b.add_trust_anchors_pem(std::string_view("not a pem")); }, "trust_anchors",
              __LINE__);
    bad_input([](auto &b) { return b.add_trust_anchors_der(std::string_view("not a der")); }, "trust_anchors",
              __LINE__);
    bad_input([](auto &b) { return b.add_crls_pem(std::string_view("not a pem")); }, "crls", __LINE__);

    // Files are read by build().
    auto other = imstls::config_builder::create();
    CHECK_OK(other);
    CHECK_OK(other->add_pcscf(opt.pcscf));
    CHECK_OK(other->add_crls_file("/nonexistent/imstls-test.crl"));
    auto unreadable = other->build();
    CHECK_CODE(unreadable, imstls::status::config_file);
    auto pinned = imstls::config_builder::create();
    CHECK_OK(pinned);
    CHECK_OK(pinned->add_pcscf(opt.pcscf));
    CHECK_OK(pinned->add_spki_pin("not base64"));
    CHECK_CODE(pinned->build(), imstls::status::invalid_config);

    // clone(): another reference, usable after the first is gone.
    if (config) {
        auto copy = config->clone();
        CHECK_OK(copy);
        imstls::config first = std::move(*config);
        first = imstls::config();  // frees the first reference
        CHECK(copy && copy->candidate_count() == 1);
    }

    // Moves: the moved-from builder is inert and answers like C does for NULL.
    imstls::config_builder moved = std::move(b);
    CHECK(!b && b.get() == nullptr && moved);
    CHECK_CODE(b.add_pcscf(opt.pcscf), imstls::status::null_argument);
    CHECK_CODE(b.build(), imstls::status::null_argument);
    CHECK(!b.last_error().has_value());
    b = std::move(moved);  // move-assignment back
    CHECK(b && !moved);
    imstls::config_builder released(b.release());
    CHECK(!b && released);
    imstls::config empty;
    CHECK(!empty && empty.candidate_count() == 0);
    CHECK_CODE(empty.clone(), imstls::status::null_argument);
}

// ---- sans-IO UE -------------------------------------------------------------------------------

void sans_io() {
    begin("sans-io ue");
    imstls::config config = make_config("127.0.0.1:9");
    CHECK_CODE(imstls::ue::create(imstls::config(), 0), imstls::status::null_argument);
    auto created = imstls::ue::create(config, 1000);
    CHECK_OK(created);
    imstls::ue ue = std::move(*created);
    config = imstls::config();  // the UE keeps its own reference

    CHECK_OK(ue.set_log_callback(count_log, &log_records, imstls::log_level::debug));
    CHECK_OK(ue.set_wake_callback(count_wake, &wakes));
    auto st = ue.state();
    CHECK(st && *st == imstls::state::idle);
    auto flow0 = ue.current_flow();
    CHECK(flow0 && !*flow0);
    auto timeout0 = ue.next_timeout();
    CHECK(timeout0 && !*timeout0);
    auto binding0 = ue.binding();
    CHECK(binding0 && !*binding0);
    CHECK(!ue.last_error());

    // A call in the wrong state: the error is the UE's last error, with its message.
    auto early = ue.send_sip(1000, std::string_view("REGISTER sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n"));
    CHECK_CODE(early, imstls::status::wrong_state);
    CHECK(!early.error().message().empty() && early.error().message() != imstls::describe(imstls::status::wrong_state));
    CHECK(ue.last_error() && ue.last_error()->code() == imstls::status::wrong_state);
    CHECK_CODE(ue.start_registration(1000, "", {IMPU}), imstls::status::invalid_identity);
    CHECK_CODE(ue.start_registration(1000, std::string_view("alice\0@ims.test", 15), {IMPU}),
               imstls::status::invalid_argument);
    CHECK_CODE(ue.start_registration(1000, IMPI, {std::string_view("sip:a\0", 6)}), imstls::status::invalid_argument);

    int wakes_before = wakes.load();
    CHECK_OK(ue.start_registration(1000, IMPI, {IMPU}));
    CHECK(wakes.load() > wakes_before);
    std::vector<imstls::event> out = drain(ue);
    const imstls::event *connect = find_kind(out, imstls::output_kind::connect);
    CHECK(connect != nullptr);
    if (connect == nullptr) return;
    CHECK(connect->host == "127.0.0.1" && connect->port == 9 && connect->flow >= 1 && connect->candidate == 0);
    std::uint64_t flow = connect->flow;
    CHECK(ue.state() && *ue.state() == imstls::state::connecting);
    CHECK(ue.current_flow() && *ue.current_flow() == std::optional<std::uint64_t>(flow));
    CHECK(ue.next_timeout() && ue.next_timeout()->has_value());  // the connect timeout

    // The TCP connect failed: one candidate, so the round ends in a back-off.
    CHECK_CODE(ue.connect_failed(1010, flow + 100, imstls::connect_error::refused), imstls::status::unknown_flow);
    CHECK_OK(ue.connect_failed(1010, flow, imstls::connect_error::refused, "refused in a test"));
    out = drain(ue);
    const imstls::event *failed_connect = find(out, imstls::event_kind::connect_failed);
    CHECK(failed_connect && failed_connect->reason == "refused" && failed_connect->failure &&
          failed_connect->failure->code() == imstls::status::connect_failed);
    const imstls::event *backoff = find(out, imstls::event_kind::backing_off);
    CHECK(backoff && backoff->delay_ms > 0 && backoff->attempt == 1 && !backoff->clause.empty());
    CHECK(backoff && backoff->failed_candidates.size() == 1 &&
          backoff->failed_candidates[0].reason == "connect_refused" &&
          backoff->failed_candidates[0].target == "127.0.0.1:9" && backoff->failed_candidates[0].flow == flow &&
          backoff->failed_candidates[0].candidate == 0);
    CHECK(ue.state() && *ue.state() == imstls::state::backing_off);
    CHECK(ue.last_error() && ue.last_error()->code() == imstls::status::connect_failed);

    // The back-off ends: a new flow, which connects; the handshake starts.
    auto deadline = ue.next_timeout();
    CHECK(deadline && deadline->has_value());
    std::uint64_t now = deadline && *deadline ? **deadline : 200000;
    CHECK_OK(ue.handle_timeout(now));
    out = drain(ue);
    connect = find_kind(out, imstls::output_kind::connect);
    CHECK(connect && connect->flow > flow);
    if (connect == nullptr) return;
    flow = connect->flow;
    CHECK_CODE(ue.connected(now, flow, std::string_view("127.0.0.1\0", 10)), imstls::status::invalid_argument);
    CHECK_OK(ue.connected(now, flow, "127.0.0.1:40000", "127.0.0.1:9"));
    out = drain(ue);
    const imstls::event *hello = find_kind(out, imstls::output_kind::transmit);
    CHECK(hello && hello->flow == flow && hello->data.size() > 5 && hello->data.view().data()[0] == 0x16);
    CHECK(ue.state() && *ue.state() == imstls::state::handshaking);

    // Inputs of this state that do not fit: the C answers, forwarded.
    CHECK_CODE(ue.registration_challenged(now, flow + 100, false), imstls::status::stale_report);
    CHECK_CODE(ue.registration_succeeded(now, flow + 100, 3600, 0), imstls::status::stale_report);
    CHECK_CODE(ue.registration_failed(now, flow + 100, 403, 0), imstls::status::stale_report);
    CHECK_CODE(ue.peer_not_reading(now, flow + 100, 1 << 20), imstls::status::unknown_flow);
    CHECK_CODE(ue.transport_closed(now, flow + 100, imstls::transport_closure::eof), imstls::status::unknown_flow);
    CHECK_CODE(ue.receive(now, flow + 100, std::string_view("x")), imstls::status::unknown_flow);
    CHECK_CODE(ue.rekey(now), imstls::status::wrong_state);

    // Not TLS from the "P-CSCF": the handshake fails, the flow closes.
    CHECK_OK(ue.receive(now, flow, std::string_view("HTTP/1.1 400 Bad Request\r\n\r\n")));
    out = drain(ue);
    const imstls::event *tls_failed = find(out, imstls::event_kind::tls_failed);
    CHECK(tls_failed && tls_failed->failure && tls_failed->failure->code() == imstls::status::tls_failed &&
          !tls_failed->failure->tls_failure().empty());
    const imstls::event *close = find_kind(out, imstls::output_kind::close);
    CHECK(close && close->flow == flow);

    // Other inputs, forwarded: a network change starts a new flow, peer_not_reading and
    // transport_closed fail it, deregister ends the procedure.
    CHECK_OK(ue.network_changed(now + 1));
    out = drain(ue);
    connect = find_kind(out, imstls::output_kind::connect);
    CHECK(connect != nullptr);
    if (connect != nullptr) {
        flow = connect->flow;
        CHECK_OK(ue.connected(now + 2, flow));
        drain(ue);
        CHECK_OK(ue.peer_not_reading(now + 3, flow, 1 << 20));
        out = drain(ue);
        const imstls::event *lost = find(out, imstls::event_kind::connection_lost);
        CHECK(lost && lost->reason == "peer_not_reading");
    }
    CHECK_OK(ue.deregister(now + 4));
    drain(ue);
    CHECK_OK(ue.start_registration(now + 5, IMPI, {IMPU}));
    out = drain(ue);
    connect = find_kind(out, imstls::output_kind::connect);
    if (CHECK(connect != nullptr)) {
        CHECK_OK(ue.connected(now + 6, connect->flow));
        drain(ue);
        // O.4.1: a new procedure tears the incomplete one down (SUPERSEDED, then a new flow).
        std::uint64_t handshaking_flow = connect->flow;  // `connect` points into `out`
        CHECK_OK(ue.start_registration(now + 6, IMPI, {IMPU}));
        out = drain(ue);
        const imstls::event *superseded = find(out, imstls::event_kind::superseded);
        CHECK(superseded && superseded->flow == handshaking_flow && superseded->reason == "handshaking" &&
              superseded->purged_sessions == 0 && superseded->dropped_bytes == 0);
        connect = find_kind(out, imstls::output_kind::connect);
        if (!CHECK(connect != nullptr)) return;
        CHECK_OK(ue.connected(now + 6, connect->flow));
        drain(ue);
        CHECK_OK(ue.transport_closed(now + 7, connect->flow, imstls::transport_closure::reset, "reset in a test"));
        out = drain(ue);
        CHECK(find_kind(out, imstls::output_kind::close) || find(out, imstls::event_kind::tls_failed) ||
              find(out, imstls::event_kind::connection_lost));
    }

    // A borrowed output: views into it, then a moved-from output is inert.
    CHECK_OK(ue.start_registration(now + 8, IMPI, {IMPU}));
    auto polled = ue.poll_output();
    CHECK_OK(polled);
    if (polled && *polled) {
        imstls::output o = std::move(**polled);
        CHECK(o.kind() != imstls::output_kind::none);
        imstls::event value = o.copy();
        CHECK(value.kind == o.kind() && value.type == o.type() && value.name == o.name() &&
              value.flow == o.flow() && value.host == o.host() && value.port == o.port() &&
              value.reason == o.reason() && value.detail == o.detail() && value.clause == o.clause() &&
              value.register_reason == o.register_reason() && value.flags == o.flags());
        imstls::output taken = std::move(o);
        CHECK(!o && o.kind() == imstls::output_kind::none && o.type() == imstls::event_kind::none &&
              o.name().empty() && o.flow() == 0 && o.data().empty() && !o.failure() &&
              o.failed_candidate_count() == 0 && o.failed_candidate(0) == UINT32_MAX &&
              o.failed_candidate_target(0).empty());
        CHECK(taken && taken.kind() == value.kind);
        imstls::event copied = value;  // events are values: copies are independent
        value = imstls::event();
        CHECK(copied.kind == taken.kind() && value.kind == imstls::output_kind::none);
    }

    // A moved-from UE is inert; the new owner works.
    imstls::ue owner = std::move(ue);
    CHECK(!ue && owner);
    CHECK_CODE(ue.state(), imstls::status::null_argument);
    CHECK_CODE(ue.poll_output(), imstls::status::null_argument);
    CHECK_CODE(ue.handle_timeout(1), imstls::status::null_argument);
    CHECK(!ue.last_error());
    CHECK_OK(owner.state());
    CHECK_OK(owner.set_wake_callback(nullptr, nullptr));
    CHECK_OK(owner.set_log_callback(nullptr, nullptr, imstls::log_level::off));
    CHECK(log_records.load() > 0);
}

// ---- managed driver ---------------------------------------------------------------------------

// Runs a driver until `stop(event)` says so or `seconds` pass; every event goes to `stop`.
void run_driver(imstls::driver &d, int seconds, const std::function<bool(const imstls::event &)> &stop) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
        if (!CHECK_OK(d.run(100))) return;
        for (;;) {
            auto polled = d.poll_event();
            if (!CHECK_OK(polled) || !*polled) break;
            imstls::event e = (*polled)->copy();
            CHECK(e.kind == imstls::output_kind::event);
            if (stop(e)) return;
        }
    }
    CHECK(!"the driver did not reach its goal in time");
}

void driver_calls() {
    begin("driver calls");
    imstls::config config = make_config("127.0.0.1:9");
    CHECK_CODE(imstls::driver::create(imstls::config()), imstls::status::null_argument);
    auto created = imstls::driver::create(config);
    CHECK_OK(created);
    imstls::driver d = std::move(*created);
    CHECK_OK(d.set_log_callback(count_log, &log_records, imstls::log_level::info));
    CHECK_OK(d.set_wake_callback(count_wake, &wakes));
    CHECK_CODE(d.set_connect_mode(static_cast<imstls::connect_mode>(9)), imstls::status::invalid_argument);
    CHECK_OK(d.set_connect_mode(imstls::connect_mode::external));
    CHECK_CODE(d.set_connection_attempt_delay_ms(9), imstls::status::invalid_argument);
    CHECK_CODE(d.set_connection_attempt_delay_ms(2001), imstls::status::invalid_argument);
    CHECK_OK(d.set_connection_attempt_delay_ms(100));
    CHECK(d.state() && *d.state() == imstls::state::idle);
    auto fd = d.fd();
    CHECK(fd && !*fd);
    auto interest = d.interest();
    CHECK(interest && *interest == 0);
    auto binding = d.binding();
    CHECK(binding && !*binding);
    CHECK_CODE(d.send_sip(std::string_view("REGISTER sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n")), imstls::status::wrong_state);
    CHECK(d.last_error() && d.last_error()->code() == imstls::status::wrong_state);

    CHECK_OK(d.start_registration(IMPI, {IMPU}));
    CHECK_OK(d.process());
    std::uint64_t flow = 0;
    auto polled = d.poll_event();
    while (polled && *polled && flow == 0) {
        if ((*polled)->type() == imstls::event_kind::connecting) flow = (*polled)->flow();
        polled = d.poll_event();
    }
    CHECK(flow != 0);
    CHECK_CODE(d.adopt_fd(flow, -1, imstls::fd_ownership::transfer), imstls::status::invalid_argument);
    CHECK_CODE(d.adopt_fd(flow, -1, imstls::fd_ownership::borrow), imstls::status::invalid_argument);
    CHECK_CODE(d.adopt_fd(flow + 100, 0, imstls::fd_ownership::borrow), imstls::status::unknown_flow);
    CHECK_CODE(d.registration_challenged(flow + 100, false), imstls::status::stale_report);
    CHECK_CODE(d.registration_succeeded(flow + 100, 3600, 0), imstls::status::stale_report);
    CHECK_CODE(d.registration_failed(flow + 100, 403, 0), imstls::status::stale_report);
    CHECK_CODE(d.rekey(), imstls::status::wrong_state);
    CHECK_OK(d.connect_failed(flow, imstls::connect_error::unreachable, "no route in a test"));
    bool backing_off = false;
    run_driver(d, 10, [&](const imstls::event &e) {
        if (e.type != imstls::event_kind::backing_off) return false;
        backing_off = e.failed_candidates.size() == 1 && e.failed_candidates[0].reason == "connect_unreachable";
        return true;
    });
    CHECK(backing_off);
    auto timeout = d.timeout_ms();
    CHECK(timeout && timeout->has_value());
    CHECK_OK(d.network_changed());
    CHECK_OK(d.deregister());
    CHECK_CODE(d.set_connect_mode(imstls::connect_mode::managed), imstls::status::ok);

    imstls::driver owner = std::move(d);
    CHECK(!d && owner);
    CHECK_CODE(d.run(0), imstls::status::null_argument);
    CHECK_CODE(d.poll_event(), imstls::status::null_argument);
    CHECK_CODE(d.fd(), imstls::status::null_argument);
    CHECK(!d.last_error());
    CHECK_OK(owner.set_wake_callback(nullptr, nullptr));
    CHECK_OK(owner.set_log_callback(nullptr, nullptr, imstls::log_level::off));
    auto queued = owner.queued_bytes();
    CHECK(queued && queued->outgoing == 0);
    CHECK_CODE(d.queued_bytes(), imstls::status::null_argument);
    // wake ends one wait; stop makes every later run return STOPPED.
    CHECK_OK(owner.wake());
    CHECK_OK(owner.run(0));
    CHECK_OK(owner.stop());
    CHECK_CODE(owner.run(0), imstls::status::stopped);
    CHECK_CODE(owner.run(100), imstls::status::stopped);
    CHECK_CODE(d.stop(), imstls::status::null_argument);
    CHECK_CODE(d.wake(), imstls::status::null_argument);
}

// A P-CSCF certificate rejected: the event and the driver's last error carry reason, alert and
// names (TS 33.203 O.3.1.2).
void certificate_rejected(const std::string &pcscf, const char *reason, const char *alert) {
    begin(reason);
    imstls::config config = make_config(pcscf);
    auto d = imstls::driver::create(config);
    CHECK_OK(d);
    if (!d) return;
    CHECK_OK(d->start_registration(IMPI, {IMPU}));
    std::optional<imstls::event> rejected;
    bool stopped = false;
    run_driver(*d, 20, [&](const imstls::event &e) {
        if (e.type == imstls::event_kind::certificate_rejected) rejected = e;
        if (e.type == imstls::event_kind::registration_failed) {
            stopped = !e.has_flag(imstls::flag::retrying) && e.reason == "certificate";
            return true;
        }
        return false;
    });
    CHECK(stopped);
    CHECK(rejected && rejected->reason == reason && rejected->failure);
    if (rejected && rejected->failure) {
        const imstls::error &e = *rejected->failure;
        CHECK(e.code() == imstls::status::certificate_rejected);
        CHECK(e.certificate_failure() == reason && e.alert_sent_name() == alert && e.alert_sent().has_value());
        CHECK(!e.alert_received().has_value() && e.alert_received_name().empty());
        if (std::string_view(reason) == "name_mismatch") {
            CHECK(e.expected_name().find(opt.server_name) != std::string::npos);
            CHECK(!e.presented_names().empty());
        }
    }
    auto last = d->last_error();
    CHECK(last && (last->code() == imstls::status::registration_failed ||
                   last->code() == imstls::status::certificate_rejected));
    CHECK(d->state() && *d->state() == imstls::state::closed);
}

// The SIP stack's side for a driver, with the tiny UA of examples/c/mini_ua.c.
struct sip_stack {
    imstls::driver &d;
    mini_ua ua{};
    bool tls = false, challenged = false;

    sip_stack(imstls::driver &driver, const char *password) : d(driver) {
        CHECK(mini_ua_init(&ua, std::string(IMPI).c_str(), std::string(IMPU).c_str(), password, 600) == 0);
    }
    ~sip_stack() { mini_ua_wipe(&ua); }

    void act(const imstls::event &e) {
        if (e.type == imstls::event_kind::tls_established) {
            tls = !e.tls_version.empty() && !e.cipher_suite.empty() && !e.has_flag(imstls::flag::resumed);
        } else if (e.type == imstls::event_kind::register_now) {
            if (e.register_reason == imstls::register_reason::initial) mini_ua_new_registration(&ua);
            char buf[4096];
            std::size_t len =
                mini_ua_register(&ua, e.register_reason == imstls::register_reason::deregister, buf, sizeof buf);
            CHECK(len > 0);
            CHECK_OK(d.send_sip(imstls::bytes_view(buf, len)));
        } else if (e.type == imstls::event_kind::sip_received) {
            mini_ua_result r = mini_ua_response(&ua, e.data.view().data(), e.data.size());
            if (r.outcome == MINI_UA_CHALLENGED) CHECK_OK(d.registration_challenged(e.flow, r.stale != 0));
            if (r.outcome == MINI_UA_REGISTERED) CHECK_OK(d.registration_succeeded(e.flow, r.expires, 0));
            if (r.outcome == MINI_UA_DEREGISTERED) CHECK_OK(d.registration_succeeded(e.flow, 0, 0));
            if (r.outcome == MINI_UA_FAILED) CHECK_OK(d.registration_failed(e.flow, r.status, r.retry_after));
        } else if (e.type == imstls::event_kind::challenged) {
            challenged = true;
        }
    }
};

// The C example's job in C++: register with a 401 challenge through the managed driver, read
// the binding, de-register.
void registration() {
    begin("registration");
    imstls::config config = make_config(opt.pcscf);
    auto created = imstls::driver::create(config);
    CHECK_OK(created);
    if (!created) return;
    imstls::driver d = std::move(*created);
    sip_stack stack(d, PASSWORD);
    CHECK_OK(d.start_registration(IMPI, {IMPU}));
    std::optional<imstls::event> registered;
    run_driver(d, 30, [&](const imstls::event &e) {
        stack.act(e);
        if (e.type == imstls::event_kind::registered) registered = e;
        return registered.has_value();
    });
    CHECK(stack.tls && stack.challenged && registered);
    CHECK(registered && registered->expires_s == 600 && registered->refresh_in_s > 0 &&
          registered->refresh_in_s < 600 && !registered->clause.empty());
    CHECK(d.state() && *d.state() == imstls::state::registered);
    auto fd = d.fd();
    CHECK(fd && fd->has_value() && **fd >= 0);
    auto interest = d.interest();
    CHECK(interest && (*interest & imstls::interest::readable) != 0);
    auto b = d.binding();
    CHECK(b && *b);
    if (b && *b) {
        const imstls::binding &binding = **b;
        CHECK(binding.registered() && binding.flow() >= 1 && binding.pcscf() == opt.pcscf);
        CHECK(binding.impi() == IMPI && binding.impu_count() == 1 && binding.impu(0) == IMPU &&
              binding.impu(1).empty());
        CHECK(binding.local_addr().rfind("127.0.0.1:", 0) == 0 && binding.remote_addr() == opt.pcscf);
        CHECK(binding.tls_version() == "TLSv1.3" && !binding.cipher_suite().empty() && !binding.kx_group().empty());
        CHECK(!binding.resumed() && binding.peer_not_after() > 0);
        CHECK(binding.peer_san_count() >= 1 && !binding.peer_san(0).empty() &&
              binding.peer_san(binding.peer_san_count()).empty());
        CHECK(binding.peer_subject().size() < 256);
        imstls::binding moved = std::move(**b);
        CHECK(!**b && (**b).impi().empty() && (**b).impu_count() == 0 && (**b).flow() == 0);
        CHECK(moved.impi() == IMPI);
    }
    CHECK_OK(d.deregister());
    bool deregistered = false;
    run_driver(d, 30, [&](const imstls::event &e) {
        stack.act(e);
        deregistered = e.type == imstls::event_kind::deregistered;
        return deregistered;
    });
    CHECK(deregistered);
}

// A wrong password: the registrar's 403 reaches the event and the driver's last error.
void rejected() {
    begin("rejected");
    auto created = imstls::driver::create(make_config(opt.pcscf));
    CHECK_OK(created);
    if (!created) return;
    sip_stack stack(*created, "not-the-password");
    CHECK_OK(created->start_registration(IMPI, {IMPU}));
    std::optional<imstls::event> failed;
    run_driver(*created, 30, [&](const imstls::event &e) {
        stack.act(e);
        if (e.type == imstls::event_kind::registration_failed) failed = e;
        return failed.has_value();
    });
    CHECK(failed && failed->sip_status == 403 && !failed->has_flag(imstls::flag::retrying));
    CHECK(failed && failed->failure && failed->failure->code() == imstls::status::registration_failed &&
          failed->failure->sip_status() == 403);
    auto last = created->last_error();
    CHECK(last && last->code() == imstls::status::registration_failed && last->sip_status() == 403);
    CHECK(created->state() && *created->state() == imstls::state::closed);
}

// External connect mode: this program connects the socket and hands it in (adopt_fd).
void external_connect() {
    begin("external connect");
    auto created = imstls::driver::create(make_config(opt.pcscf));
    CHECK_OK(created);
    if (!created) return;
    imstls::driver &d = *created;
    CHECK_OK(d.set_connect_mode(imstls::connect_mode::external));
    CHECK_OK(d.start_registration(IMPI, {IMPU}));
    std::optional<imstls::event> connecting;
    run_driver(d, 10, [&](const imstls::event &e) {
        if (e.type == imstls::event_kind::connecting) connecting = e;
        return connecting.has_value();
    });
    if (!CHECK(connecting && connecting->host == "127.0.0.1" && connecting->port > 0)) return;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(connecting->port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr *>(&addr), sizeof addr) == 0);
    CHECK_OK(d.adopt_fd(connecting->flow, fd, imstls::fd_ownership::borrow));
    close(fd);  // borrowed: the driver works on its own duplicate
    bool tls = false;
    run_driver(d, 20, [&](const imstls::event &e) {
        tls = e.type == imstls::event_kind::tls_established && e.flow == connecting->flow;
        return tls || e.type == imstls::event_kind::register_now;
    });
    CHECK(tls);
    auto own = d.fd();
    CHECK(own && own->has_value() && **own != fd);
}

bool parse(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string_view flag = argv[i];
        std::string value = argv[i + 1];
        if (flag == "--pcscf") opt.pcscf = value;
        else if (flag == "--expired") opt.expired = value;
        else if (flag == "--wrong-name") opt.wrong_name = value;
        else if (flag == "--ca") opt.ca = value;
        else if (flag == "--server-name") opt.server_name = value;
        else return false;
    }
    return !opt.pcscf.empty() && !opt.expired.empty() && !opt.wrong_name.empty() && !opt.ca.empty() &&
           !opt.server_name.empty();
}

}  // namespace

int main(int argc, char **argv) {
    if (!parse(argc, argv)) {
        std::fputs("usage: cpp_api --pcscf ADDR --expired ADDR --wrong-name ADDR --ca FILE --server-name FQDN\n",
                   stderr);
        return 2;
    }
    library();
    configuration();
    sans_io();
    driver_calls();
    certificate_rejected(opt.expired, "expired", "certificate_expired");
    certificate_rejected(opt.wrong_name, "name_mismatch", "bad_certificate");
    registration();
    rejected();
    external_connect();
    std::printf("passed=%d failed=%d\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
