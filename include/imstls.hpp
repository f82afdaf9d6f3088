#ifndef IMSTLS_HPP
#define IMSTLS_HPP

/*
 * imstls for C++17: a header-only layer over the C API in imstls.h, with no behaviour of its
 * own. Every member function is one imstls_* call (named in its comment); read that
 * function's documentation in imstls.h for ownership, state and thread rules.
 *
 * - Handles (config_builder, config, ue, driver, output, binding) are move-only RAII owners
 *   of the C object. A moved-from handle holds NULL: it is inert, its calls return the C
 *   API's answer to NULL (status::null_argument or the accessor's empty value) and its
 *   destructor does nothing. Calls on one handle may come from any thread (the C rules,
 *   IMSTLS_BUSY included); moving or destroying it may not race with them, as for C's _free.
 * - Failures come back as imstls::result<T> (value or imstls::error, like std::expected),
 *   not as exceptions, so the header works with -fno-exceptions; only result::value() on an
 *   error throws (bad_result_access), or aborts without exceptions: test the result first.
 *   The error copies the handle's last error when that belongs to the failed call, else it
 *   holds the code only.
 * - Strings are taken as std::string_view and copied once into a NUL-terminated buffer for
 *   the C call (wiped afterwards: they may be identities); a string_view holding a NUL byte
 *   is refused with status::invalid_argument (C would silently cut it there). Byte buffers
 *   are taken as bytes_view (pointer + size); lists as list_view<T>.
 * - Strings read back are std::string_view borrowed from the object they came from (valid
 *   until it is freed), as in C. output::copy() turns an output into an imstls::event value
 *   that owns its data.
 *
 * Adding a C function later is one line in the handle it belongs to, e.g.
 *     result<void> stop() { return check(imstls_driver_stop(get())); }
 * (tests/cpp_api.rs fails while a function of imstls.h is not named in this file).
 *
 * Not wrapped, on purpose: imstls_error_copy_message and imstls_output_copy_data (the
 * values here copy the message and the bytes already).
 */

#if __cplusplus < 201703L && !(defined(_MSVC_LANG) && _MSVC_LANG >= 201703L)
#error "imstls.hpp needs C++17 (-std=c++17); older C++ can use imstls.h directly"
#endif

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "imstls.h"

namespace imstls {

// ---- enums: mirrors of the C enums ------------------------------------------------------

/// `imstls_result`: the outcome of a call (named `status` so that `result<T>` can be the
/// value-or-error type).
enum class status : std::uint32_t {
    ok = IMSTLS_OK,
    nothing_more = IMSTLS_NOTHING_MORE,
    not_available = IMSTLS_NOT_AVAILABLE,
    null_argument = IMSTLS_NULL_ARGUMENT,
    invalid_utf8 = IMSTLS_INVALID_UTF8,
    invalid_argument = IMSTLS_INVALID_ARGUMENT,
    buffer_too_small = IMSTLS_BUFFER_TOO_SMALL,
    invalid_identity = IMSTLS_INVALID_IDENTITY,
    bad_sip_message = IMSTLS_BAD_SIP_MESSAGE,
    wrong_state = IMSTLS_WRONG_STATE,
    unknown_flow = IMSTLS_UNKNOWN_FLOW,
    register_first = IMSTLS_REGISTER_FIRST,
    register_in_flight = IMSTLS_REGISTER_IN_FLIGHT,
    wrong_mode = IMSTLS_WRONG_MODE,
    stale_report = IMSTLS_STALE_REPORT,
    refused = IMSTLS_REFUSED,
    busy = IMSTLS_BUSY,
    panic = IMSTLS_PANIC,
    poisoned = IMSTLS_POISONED,
    stopped = IMSTLS_STOPPED,
    invalid_config = IMSTLS_INVALID_CONFIG,
    config_file = IMSTLS_CONFIG_FILE,
    certificate_rejected = IMSTLS_CERTIFICATE_REJECTED,
    tls_failed = IMSTLS_TLS_FAILED,
    connection_lost = IMSTLS_CONNECTION_LOST,
    connect_failed = IMSTLS_CONNECT_FAILED,
    registration_failed = IMSTLS_REGISTRATION_FAILED,
    io_error = IMSTLS_IO_ERROR,
    logger_unavailable = IMSTLS_LOGGER_UNAVAILABLE,
};

/// `imstls_log_level`.
enum class log_level : std::uint32_t {
    off = IMSTLS_LOG_OFF,
    error = IMSTLS_LOG_ERROR,
    warn = IMSTLS_LOG_WARN,
    info = IMSTLS_LOG_INFO,
    debug = IMSTLS_LOG_DEBUG,
    trace = IMSTLS_LOG_TRACE,
};

/// `imstls_state`: what the engine waits for.
enum class state : std::uint32_t {
    idle = IMSTLS_STATE_IDLE,
    connecting = IMSTLS_STATE_CONNECTING,
    handshaking = IMSTLS_STATE_HANDSHAKING,
    awaiting_register = IMSTLS_STATE_AWAITING_REGISTER,
    registering = IMSTLS_STATE_REGISTERING,
    registered = IMSTLS_STATE_REGISTERED,
    deregistering = IMSTLS_STATE_DEREGISTERING,
    backing_off = IMSTLS_STATE_BACKING_OFF,
    closed = IMSTLS_STATE_CLOSED,
};

/// `imstls_output_type`: what an output asks of the caller.
enum class output_kind : std::uint32_t {
    none = IMSTLS_OUTPUT_NONE,
    connect = IMSTLS_OUTPUT_CONNECT,
    transmit = IMSTLS_OUTPUT_TRANSMIT,
    close = IMSTLS_OUTPUT_CLOSE,
    event = IMSTLS_OUTPUT_EVENT,
};

/// `imstls_event_kind`.
enum class event_kind : std::uint32_t {
    none = IMSTLS_EVENT_NONE,
    connecting = IMSTLS_EVENT_CONNECTING,
    connect_failed = IMSTLS_EVENT_CONNECT_FAILED,
    tls_established = IMSTLS_EVENT_TLS_ESTABLISHED,
    client_certificate_requested = IMSTLS_EVENT_CLIENT_CERTIFICATE_REQUESTED,
    certificate_rejected = IMSTLS_EVENT_CERTIFICATE_REJECTED,
    tls_failed = IMSTLS_EVENT_TLS_FAILED,
    register_now = IMSTLS_EVENT_REGISTER_NOW,
    registering = IMSTLS_EVENT_REGISTERING,
    challenged = IMSTLS_EVENT_CHALLENGED,
    registered = IMSTLS_EVENT_REGISTERED,
    connection_lost = IMSTLS_EVENT_CONNECTION_LOST,
    backing_off = IMSTLS_EVENT_BACKING_OFF,
    superseded = IMSTLS_EVENT_SUPERSEDED,
    registration_failed = IMSTLS_EVENT_REGISTRATION_FAILED,
    deregistered = IMSTLS_EVENT_DEREGISTERED,
    sip_received = IMSTLS_EVENT_SIP_RECEIVED,
    keepalive_sent = IMSTLS_EVENT_KEEPALIVE_SENT,
    pong_received = IMSTLS_EVENT_PONG_RECEIVED,
    ping_answered = IMSTLS_EVENT_PING_ANSWERED,
    rekeyed = IMSTLS_EVENT_REKEYED,
    key_log_enabled = IMSTLS_EVENT_KEY_LOG_ENABLED,
    other = IMSTLS_EVENT_OTHER,
};

/// `imstls_register_reason`: which REGISTER a REGISTER_NOW asks for.
enum class register_reason : std::uint32_t {
    none = IMSTLS_REGISTER_REASON_NONE,
    initial = IMSTLS_REGISTER_REASON_INITIAL,
    challenge = IMSTLS_REGISTER_REASON_CHALLENGE,
    stale_challenge = IMSTLS_REGISTER_REASON_STALE_CHALLENGE,
    refresh = IMSTLS_REGISTER_REASON_REFRESH,
    recovery = IMSTLS_REGISTER_REASON_RECOVERY,
    network_changed = IMSTLS_REGISTER_REASON_NETWORK_CHANGED,
    rekey = IMSTLS_REGISTER_REASON_REKEY,
    deregister = IMSTLS_REGISTER_REASON_DEREGISTER,
};

/// `imstls_tls_versions`.
enum class tls_versions : std::uint32_t {
    tls13_and_tls12 = IMSTLS_TLS_1_3_AND_1_2,
    tls13_only = IMSTLS_TLS_1_3_ONLY,
};

/// `imstls_certificate_request_policy`.
enum class certificate_request_policy : std::uint32_t {
    proceed = IMSTLS_CERTIFICATE_REQUEST_CONTINUE,  // `continue` is a keyword
    abort = IMSTLS_CERTIFICATE_REQUEST_ABORT,
};

/// `imstls_connect_error`.
enum class connect_error : std::uint32_t {
    refused = IMSTLS_CONNECT_REFUSED,
    unreachable = IMSTLS_CONNECT_UNREACHABLE,
    timed_out = IMSTLS_CONNECT_TIMED_OUT,
    reset = IMSTLS_CONNECT_RESET,
    other = IMSTLS_CONNECT_OTHER,
    unresolved = IMSTLS_CONNECT_UNRESOLVED,
};

/// `imstls_transport_closure`.
enum class transport_closure : std::uint32_t {
    eof = IMSTLS_CLOSURE_EOF,
    reset = IMSTLS_CLOSURE_RESET,
    error = IMSTLS_CLOSURE_ERROR,
};

/// `imstls_connect_mode`.
enum class connect_mode : std::uint32_t {
    managed = IMSTLS_CONNECT_MANAGED,
    external = IMSTLS_CONNECT_EXTERNAL,
};

/// `imstls_fd_ownership`.
enum class fd_ownership : std::uint32_t {
    transfer = IMSTLS_FD_TRANSFER,
    borrow = IMSTLS_FD_BORROW,
};

/// `IMSTLS_FLAG_*` bits of `output::flags()`.
namespace flag {
constexpr std::uint32_t stale = IMSTLS_FLAG_STALE;
constexpr std::uint32_t was_registered = IMSTLS_FLAG_WAS_REGISTERED;
constexpr std::uint32_t retrying = IMSTLS_FLAG_RETRYING;
constexpr std::uint32_t resumed = IMSTLS_FLAG_RESUMED;
constexpr std::uint32_t aborted = IMSTLS_FLAG_ABORTED;
}  // namespace flag

/// `IMSTLS_INTEREST_*` bits of `driver::interest()`.
namespace interest {
constexpr std::uint32_t readable = IMSTLS_INTEREST_READABLE;
constexpr std::uint32_t writable = IMSTLS_INTEREST_WRITABLE;
}  // namespace interest

// The mirrors must stay equal to the C constants, value by value.
#define IMSTLS_HPP_SAME(cpp, c) \
    static_assert(static_cast<std::uint32_t>(cpp) == static_cast<std::uint32_t>(c), #cpp " != " #c)
IMSTLS_HPP_SAME(status::ok, IMSTLS_OK);
IMSTLS_HPP_SAME(status::nothing_more, IMSTLS_NOTHING_MORE);
IMSTLS_HPP_SAME(status::not_available, IMSTLS_NOT_AVAILABLE);
IMSTLS_HPP_SAME(status::null_argument, IMSTLS_NULL_ARGUMENT);
IMSTLS_HPP_SAME(status::invalid_utf8, IMSTLS_INVALID_UTF8);
IMSTLS_HPP_SAME(status::invalid_argument, IMSTLS_INVALID_ARGUMENT);
IMSTLS_HPP_SAME(status::buffer_too_small, IMSTLS_BUFFER_TOO_SMALL);
IMSTLS_HPP_SAME(status::invalid_identity, IMSTLS_INVALID_IDENTITY);
IMSTLS_HPP_SAME(status::bad_sip_message, IMSTLS_BAD_SIP_MESSAGE);
IMSTLS_HPP_SAME(status::wrong_state, IMSTLS_WRONG_STATE);
IMSTLS_HPP_SAME(status::unknown_flow, IMSTLS_UNKNOWN_FLOW);
IMSTLS_HPP_SAME(status::register_first, IMSTLS_REGISTER_FIRST);
IMSTLS_HPP_SAME(status::register_in_flight, IMSTLS_REGISTER_IN_FLIGHT);
IMSTLS_HPP_SAME(status::wrong_mode, IMSTLS_WRONG_MODE);
IMSTLS_HPP_SAME(status::stale_report, IMSTLS_STALE_REPORT);
IMSTLS_HPP_SAME(status::refused, IMSTLS_REFUSED);
IMSTLS_HPP_SAME(status::busy, IMSTLS_BUSY);
IMSTLS_HPP_SAME(status::panic, IMSTLS_PANIC);
IMSTLS_HPP_SAME(status::poisoned, IMSTLS_POISONED);
IMSTLS_HPP_SAME(status::stopped, IMSTLS_STOPPED);
IMSTLS_HPP_SAME(status::invalid_config, IMSTLS_INVALID_CONFIG);
IMSTLS_HPP_SAME(status::config_file, IMSTLS_CONFIG_FILE);
IMSTLS_HPP_SAME(status::certificate_rejected, IMSTLS_CERTIFICATE_REJECTED);
IMSTLS_HPP_SAME(status::tls_failed, IMSTLS_TLS_FAILED);
IMSTLS_HPP_SAME(status::connection_lost, IMSTLS_CONNECTION_LOST);
IMSTLS_HPP_SAME(status::connect_failed, IMSTLS_CONNECT_FAILED);
IMSTLS_HPP_SAME(status::registration_failed, IMSTLS_REGISTRATION_FAILED);
IMSTLS_HPP_SAME(status::io_error, IMSTLS_IO_ERROR);
IMSTLS_HPP_SAME(status::logger_unavailable, IMSTLS_LOGGER_UNAVAILABLE);
IMSTLS_HPP_SAME(log_level::off, IMSTLS_LOG_OFF);
IMSTLS_HPP_SAME(log_level::error, IMSTLS_LOG_ERROR);
IMSTLS_HPP_SAME(log_level::warn, IMSTLS_LOG_WARN);
IMSTLS_HPP_SAME(log_level::info, IMSTLS_LOG_INFO);
IMSTLS_HPP_SAME(log_level::debug, IMSTLS_LOG_DEBUG);
IMSTLS_HPP_SAME(log_level::trace, IMSTLS_LOG_TRACE);
IMSTLS_HPP_SAME(state::idle, IMSTLS_STATE_IDLE);
IMSTLS_HPP_SAME(state::connecting, IMSTLS_STATE_CONNECTING);
IMSTLS_HPP_SAME(state::handshaking, IMSTLS_STATE_HANDSHAKING);
IMSTLS_HPP_SAME(state::awaiting_register, IMSTLS_STATE_AWAITING_REGISTER);
IMSTLS_HPP_SAME(state::registering, IMSTLS_STATE_REGISTERING);
IMSTLS_HPP_SAME(state::registered, IMSTLS_STATE_REGISTERED);
IMSTLS_HPP_SAME(state::deregistering, IMSTLS_STATE_DEREGISTERING);
IMSTLS_HPP_SAME(state::backing_off, IMSTLS_STATE_BACKING_OFF);
IMSTLS_HPP_SAME(state::closed, IMSTLS_STATE_CLOSED);
IMSTLS_HPP_SAME(output_kind::none, IMSTLS_OUTPUT_NONE);
IMSTLS_HPP_SAME(output_kind::connect, IMSTLS_OUTPUT_CONNECT);
IMSTLS_HPP_SAME(output_kind::transmit, IMSTLS_OUTPUT_TRANSMIT);
IMSTLS_HPP_SAME(output_kind::close, IMSTLS_OUTPUT_CLOSE);
IMSTLS_HPP_SAME(output_kind::event, IMSTLS_OUTPUT_EVENT);
IMSTLS_HPP_SAME(event_kind::none, IMSTLS_EVENT_NONE);
IMSTLS_HPP_SAME(event_kind::connecting, IMSTLS_EVENT_CONNECTING);
IMSTLS_HPP_SAME(event_kind::connect_failed, IMSTLS_EVENT_CONNECT_FAILED);
IMSTLS_HPP_SAME(event_kind::tls_established, IMSTLS_EVENT_TLS_ESTABLISHED);
IMSTLS_HPP_SAME(event_kind::client_certificate_requested, IMSTLS_EVENT_CLIENT_CERTIFICATE_REQUESTED);
IMSTLS_HPP_SAME(event_kind::certificate_rejected, IMSTLS_EVENT_CERTIFICATE_REJECTED);
IMSTLS_HPP_SAME(event_kind::tls_failed, IMSTLS_EVENT_TLS_FAILED);
IMSTLS_HPP_SAME(event_kind::register_now, IMSTLS_EVENT_REGISTER_NOW);
IMSTLS_HPP_SAME(event_kind::registering, IMSTLS_EVENT_REGISTERING);
IMSTLS_HPP_SAME(event_kind::challenged, IMSTLS_EVENT_CHALLENGED);
IMSTLS_HPP_SAME(event_kind::registered, IMSTLS_EVENT_REGISTERED);
IMSTLS_HPP_SAME(event_kind::connection_lost, IMSTLS_EVENT_CONNECTION_LOST);
IMSTLS_HPP_SAME(event_kind::backing_off, IMSTLS_EVENT_BACKING_OFF);
IMSTLS_HPP_SAME(event_kind::superseded, IMSTLS_EVENT_SUPERSEDED);
IMSTLS_HPP_SAME(event_kind::registration_failed, IMSTLS_EVENT_REGISTRATION_FAILED);
IMSTLS_HPP_SAME(event_kind::deregistered, IMSTLS_EVENT_DEREGISTERED);
IMSTLS_HPP_SAME(event_kind::sip_received, IMSTLS_EVENT_SIP_RECEIVED);
IMSTLS_HPP_SAME(event_kind::keepalive_sent, IMSTLS_EVENT_KEEPALIVE_SENT);
IMSTLS_HPP_SAME(event_kind::pong_received, IMSTLS_EVENT_PONG_RECEIVED);
IMSTLS_HPP_SAME(event_kind::ping_answered, IMSTLS_EVENT_PING_ANSWERED);
IMSTLS_HPP_SAME(event_kind::rekeyed, IMSTLS_EVENT_REKEYED);
IMSTLS_HPP_SAME(event_kind::key_log_enabled, IMSTLS_EVENT_KEY_LOG_ENABLED);
IMSTLS_HPP_SAME(event_kind::other, IMSTLS_EVENT_OTHER);
IMSTLS_HPP_SAME(register_reason::none, IMSTLS_REGISTER_REASON_NONE);
IMSTLS_HPP_SAME(register_reason::initial, IMSTLS_REGISTER_REASON_INITIAL);
IMSTLS_HPP_SAME(register_reason::challenge, IMSTLS_REGISTER_REASON_CHALLENGE);
IMSTLS_HPP_SAME(register_reason::stale_challenge, IMSTLS_REGISTER_REASON_STALE_CHALLENGE);
IMSTLS_HPP_SAME(register_reason::refresh, IMSTLS_REGISTER_REASON_REFRESH);
IMSTLS_HPP_SAME(register_reason::recovery, IMSTLS_REGISTER_REASON_RECOVERY);
IMSTLS_HPP_SAME(register_reason::network_changed, IMSTLS_REGISTER_REASON_NETWORK_CHANGED);
IMSTLS_HPP_SAME(register_reason::rekey, IMSTLS_REGISTER_REASON_REKEY);
IMSTLS_HPP_SAME(register_reason::deregister, IMSTLS_REGISTER_REASON_DEREGISTER);
IMSTLS_HPP_SAME(tls_versions::tls13_and_tls12, IMSTLS_TLS_1_3_AND_1_2);
IMSTLS_HPP_SAME(tls_versions::tls13_only, IMSTLS_TLS_1_3_ONLY);
IMSTLS_HPP_SAME(certificate_request_policy::proceed, IMSTLS_CERTIFICATE_REQUEST_CONTINUE);
IMSTLS_HPP_SAME(certificate_request_policy::abort, IMSTLS_CERTIFICATE_REQUEST_ABORT);
IMSTLS_HPP_SAME(connect_error::refused, IMSTLS_CONNECT_REFUSED);
IMSTLS_HPP_SAME(connect_error::unreachable, IMSTLS_CONNECT_UNREACHABLE);
IMSTLS_HPP_SAME(connect_error::timed_out, IMSTLS_CONNECT_TIMED_OUT);
IMSTLS_HPP_SAME(connect_error::reset, IMSTLS_CONNECT_RESET);
IMSTLS_HPP_SAME(connect_error::other, IMSTLS_CONNECT_OTHER);
IMSTLS_HPP_SAME(connect_error::unresolved, IMSTLS_CONNECT_UNRESOLVED);
IMSTLS_HPP_SAME(transport_closure::eof, IMSTLS_CLOSURE_EOF);
IMSTLS_HPP_SAME(transport_closure::reset, IMSTLS_CLOSURE_RESET);
IMSTLS_HPP_SAME(transport_closure::error, IMSTLS_CLOSURE_ERROR);
IMSTLS_HPP_SAME(connect_mode::managed, IMSTLS_CONNECT_MANAGED);
IMSTLS_HPP_SAME(connect_mode::external, IMSTLS_CONNECT_EXTERNAL);
IMSTLS_HPP_SAME(fd_ownership::transfer, IMSTLS_FD_TRANSFER);
IMSTLS_HPP_SAME(fd_ownership::borrow, IMSTLS_FD_BORROW);
#undef IMSTLS_HPP_SAME

/// `imstls_result_str`: a static English message for a code.
inline std::string_view describe(status code) noexcept {
    return imstls_result_str(static_cast<std::uint32_t>(code));
}

/// `imstls_version`: the library's version (compare with `IMSTLS_VERSION_STRING`).
inline std::string_view version() noexcept { return imstls_version(); }

/// `imstls_crypto_provider`: `"aws-lc-rs"` or `"ring"`.
inline std::string_view crypto_provider() noexcept { return imstls_crypto_provider(); }

// ---- inputs: views --------------------------------------------------------------------------

/// Bytes borrowed for one call (std::span<const uint8_t> before C++20).
class bytes_view {
public:
    constexpr bytes_view() noexcept = default;
    constexpr bytes_view(const std::uint8_t *data, std::size_t size) noexcept : data_(data), size_(size) {}
    bytes_view(const void *data, std::size_t size) noexcept
        : data_(static_cast<const std::uint8_t *>(data)), size_(size) {}
    bytes_view(std::string_view text) noexcept : bytes_view(text.data(), text.size()) {}
    bytes_view(const std::string &text) noexcept : bytes_view(text.data(), text.size()) {}
    bytes_view(const char *text) = delete;  // say how long: bytes_view(std::string_view(text))
    bytes_view(const std::vector<std::uint8_t> &bytes) noexcept : data_(bytes.data()), size_(bytes.size()) {}
    constexpr const std::uint8_t *data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr const std::uint8_t *begin() const noexcept { return data_; }
    constexpr const std::uint8_t *end() const noexcept { return data_ + size_; }
    /// The bytes as text (SIP messages are text).
    std::string_view as_string() const noexcept {
        return size_ == 0 ? std::string_view() : std::string_view(reinterpret_cast<const char *>(data_), size_);
    }

private:
    const std::uint8_t *data_ = nullptr;
    std::size_t size_ = 0;
};

/// A list borrowed for one call (std::span<const T> before C++20), e.g.
/// `{"sip:alice@ims.test", "tel:+15550100"}` or a std::vector.
template <class T>
class list_view {
public:
    constexpr list_view() noexcept = default;
    constexpr list_view(const T *data, std::size_t size) noexcept : data_(data), size_(size) {}
// The list outlives the call it is an argument of, which is all a list_view is for (as
// C++26's std::span(std::initializer_list)); GCC cannot know that and warns.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winit-list-lifetime"
#endif
    constexpr list_view(std::initializer_list<T> items) noexcept : data_(items.begin()), size_(items.size()) {}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
    list_view(const std::vector<T> &items) noexcept : data_(items.data()), size_(items.size()) {}
    template <std::size_t N>
    constexpr list_view(const std::array<T, N> &items) noexcept : data_(items.data()), size_(N) {}
    constexpr const T *begin() const noexcept { return data_; }
    constexpr const T *end() const noexcept { return data_ + size_; }
    constexpr std::size_t size() const noexcept { return size_; }

private:
    const T *data_ = nullptr;
    std::size_t size_ = 0;
};

// ---- errors and results ---------------------------------------------------------------------

/// A failure: the code and, when imstls recorded one, the details of an `imstls_error`
/// (copied, so it outlives the handle). Holds no personal data (the C error has none).
class error {
public:
    error() = default;
    /// An error known by its code only; the message is `imstls_result_str(code)`.
    explicit error(status code) : code_(code), message_(describe(code)) {}
    /// Copies an `imstls_error` (every `imstls_error_*` accessor). NULL gives `status::ok`.
    explicit error(const imstls_error *e)
        : code_(static_cast<status>(imstls_error_result(e))),
          message_(text(imstls_error_message(e))),
          tls_failure_(text(imstls_error_tls_failure(e))),
          certificate_failure_(text(imstls_error_certificate_failure(e))),
          alert_sent_name_(text(imstls_error_alert_sent_name(e))),
          alert_received_name_(text(imstls_error_alert_received_name(e))),
          expected_name_(text(imstls_error_expected_name(e))),
          config_field_(text(imstls_error_config_field(e))),
          sip_status_(imstls_error_sip_status(e)) {
        std::uint8_t alert = 0;
        if (imstls_error_alert_sent(e, &alert) == IMSTLS_OK) alert_sent_ = alert;
        if (imstls_error_alert_received(e, &alert) == IMSTLS_OK) alert_received_ = alert;
        for (std::size_t i = 0; i < imstls_error_presented_name_count(e); ++i) {
            presented_names_.emplace_back(text(imstls_error_presented_name(e, i)));
        }
    }

    /// `imstls_error_result`.
    status code() const noexcept { return code_; }
    /// `imstls_error_message` (or `imstls_result_str` for a code-only error).
    const std::string &message() const noexcept { return message_; }
    /// `imstls_error_tls_failure`: `"protocol_version"`, `"certificate"`, ... or empty.
    const std::string &tls_failure() const noexcept { return tls_failure_; }
    /// `imstls_error_certificate_failure`: `"expired"`, `"name_mismatch"`, ... or empty.
    const std::string &certificate_failure() const noexcept { return certificate_failure_; }
    /// `imstls_error_alert_sent`: the RFC 8446 number of the fatal alert imstls sent.
    std::optional<std::uint8_t> alert_sent() const noexcept { return alert_sent_; }
    /// `imstls_error_alert_received`.
    std::optional<std::uint8_t> alert_received() const noexcept { return alert_received_; }
    /// `imstls_error_alert_sent_name`: `"certificate_expired"`, ... or empty.
    const std::string &alert_sent_name() const noexcept { return alert_sent_name_; }
    /// `imstls_error_alert_received_name`.
    const std::string &alert_received_name() const noexcept { return alert_received_name_; }
    /// `imstls_error_expected_name` (name mismatches).
    const std::string &expected_name() const noexcept { return expected_name_; }
    /// `imstls_error_presented_name_count` / `imstls_error_presented_name`.
    const std::vector<std::string> &presented_names() const noexcept { return presented_names_; }
    /// `imstls_error_config_field`: the configuration field at fault, or empty.
    const std::string &config_field() const noexcept { return config_field_; }
    /// `imstls_error_sip_status`: the registrar's status, 0 when none.
    std::uint16_t sip_status() const noexcept { return sip_status_; }

private:
    static std::string text(const char *s) { return s == nullptr ? std::string() : std::string(s); }

    status code_ = status::ok;
    std::string message_;
    std::string tls_failure_;
    std::string certificate_failure_;
    std::optional<std::uint8_t> alert_sent_;
    std::optional<std::uint8_t> alert_received_;
    std::string alert_sent_name_;
    std::string alert_received_name_;
    std::string expected_name_;
    std::vector<std::string> presented_names_;
    std::string config_field_;
    std::uint16_t sip_status_ = 0;
};

#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
/// Thrown by `result::value()` on an error (only when exceptions are enabled).
class bad_result_access : public std::exception {
public:
    explicit bad_result_access(imstls::error e) : error_(std::move(e)) {}
    const imstls::error &error() const noexcept { return error_; }
    const char *what() const noexcept override { return error_.message().c_str(); }

private:
    imstls::error error_;
};
#endif

namespace detail {
// value() on an error: throw when exceptions exist, otherwise stop (a caller bug either way;
// test has_value() first).
[[noreturn]] inline void bad_access(const imstls::error &e) {
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
    throw bad_result_access(e);
#else
    (void)e;
    std::abort();
#endif
}
}  // namespace detail

/// A value or an `imstls::error`, like C++23 std::expected. Test it (`if (r)`,
/// `has_value()`) before `value()` / `*r`; `error()` is valid on failure.
template <class T>
class [[nodiscard]] result {
public:
    result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    result(imstls::error e) : v_(std::in_place_index<1>, std::move(e)) {}

    bool has_value() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }
    /// `status::ok`, or the error's code.
    status code() const noexcept { return has_value() ? status::ok : std::get_if<1>(&v_)->code(); }

    T &value() & {
        if (!has_value()) detail::bad_access(*std::get_if<1>(&v_));
        return *std::get_if<0>(&v_);
    }
    const T &value() const & {
        if (!has_value()) detail::bad_access(*std::get_if<1>(&v_));
        return *std::get_if<0>(&v_);
    }
    T &&value() && {
        if (!has_value()) detail::bad_access(*std::get_if<1>(&v_));
        return std::move(*std::get_if<0>(&v_));
    }
    T &operator*() & { return value(); }
    const T &operator*() const & { return value(); }
    T &&operator*() && { return std::move(*this).value(); }
    T *operator->() { return &value(); }
    const T *operator->() const { return &value(); }
    template <class U>
    T value_or(U &&fallback) const & {
        return has_value() ? *std::get_if<0>(&v_) : static_cast<T>(std::forward<U>(fallback));
    }
    /// The error; a default (`status::ok`) error when there is a value.
    const imstls::error &error() const & {
        static const imstls::error none;
        return has_value() ? none : *std::get_if<1>(&v_);
    }

private:
    std::variant<T, imstls::error> v_;
};

/// Success or an `imstls::error`.
template <>
class [[nodiscard]] result<void> {
public:
    result() = default;
    result(imstls::error e) : error_(std::move(e)) {}

    bool has_value() const noexcept { return !error_.has_value(); }
    explicit operator bool() const noexcept { return has_value(); }
    status code() const noexcept { return error_ ? error_->code() : status::ok; }
    void value() const {
        if (error_) detail::bad_access(*error_);
    }
    const imstls::error &error() const & {
        static const imstls::error none;
        return error_ ? *error_ : none;
    }

private:
    std::optional<imstls::error> error_;
};

// ---- handles --------------------------------------------------------------------------------

namespace detail {

/// A NUL-terminated copy of a string_view for one C call, wiped when dropped (the strings
/// may be identities). `ok()` is false when the view holds a NUL byte.
class c_string {
public:
    explicit c_string(std::string_view s) : text_(s), ok_(s.find('\0') == std::string_view::npos) {}
    c_string(const c_string &) = delete;
    c_string &operator=(const c_string &) = delete;
    ~c_string() { wipe(text_); }
    const char *get() const noexcept { return text_.c_str(); }
    bool ok() const noexcept { return ok_; }
    /// NULL for an empty string: the C API's "none" for optional strings.
    const char *or_null() const noexcept { return text_.empty() ? nullptr : text_.c_str(); }

    static void wipe(std::string &s) noexcept {
        volatile char *p = &s[0];
        for (std::size_t i = 0; i < s.size(); ++i) p[i] = '\0';
    }

private:
    std::string text_;
    bool ok_;
};

/// The C strings of a list, for `const char *const *` parameters.
class c_string_list {
public:
    explicit c_string_list(list_view<std::string_view> items) {
        copies_.reserve(items.size());
        pointers_.reserve(items.size());
        for (std::string_view item : items) {
            copies_.emplace_back(item);
            ok_ = ok_ && item.find('\0') == std::string_view::npos;
        }
        for (std::string &copy : copies_) pointers_.push_back(copy.c_str());
    }
    c_string_list(const c_string_list &) = delete;
    c_string_list &operator=(const c_string_list &) = delete;
    ~c_string_list() {
        for (std::string &copy : copies_) c_string::wipe(copy);
    }
    const char *const *get() const noexcept { return pointers_.data(); }
    std::size_t size() const noexcept { return pointers_.size(); }
    bool ok() const noexcept { return ok_; }

private:
    std::vector<std::string> copies_;
    std::vector<const char *> pointers_;
    bool ok_ = true;
};

/// A copy of a handle's last error (the `imstls_*_last_error` functions), or none.
template <class C, class F>
std::optional<imstls::error> copy_last_error(const C *raw, F fn) {
    imstls_error *e = nullptr;
    if (fn(raw, &e) != IMSTLS_OK) return std::nullopt;
    imstls::error copy(e);
    imstls_error_free(e);
    return copy;
}

inline std::string_view view(const char *s) noexcept { return s == nullptr ? std::string_view() : s; }

constexpr std::uint32_t raw(status v) noexcept { return static_cast<std::uint32_t>(v); }

/// Where each C type is freed and where its handle keeps its last error.
template <class C>
struct traits;
template <>
struct traits<imstls_config_builder> {
    static void free(imstls_config_builder *p) noexcept { imstls_config_builder_free(p); }
    static imstls_result last_error(const imstls_config_builder *p, imstls_error **e) noexcept {
        return imstls_config_builder_last_error(p, e);
    }
};
template <>
struct traits<imstls_config> {
    static void free(imstls_config *p) noexcept { imstls_config_free(p); }
};
template <>
struct traits<imstls_ue> {
    static void free(imstls_ue *p) noexcept { imstls_ue_free(p); }
    static imstls_result last_error(const imstls_ue *p, imstls_error **e) noexcept {
        return imstls_ue_last_error(p, e);
    }
};
template <>
struct traits<imstls_driver> {
    static void free(imstls_driver *p) noexcept { imstls_driver_free(p); }
    static imstls_result last_error(const imstls_driver *p, imstls_error **e) noexcept {
        return imstls_driver_last_error(p, e);
    }
};
template <>
struct traits<imstls_output> {
    static void free(imstls_output *p) noexcept { imstls_output_free(p); }
};
template <>
struct traits<imstls_binding> {
    static void free(imstls_binding *p) noexcept { imstls_binding_free(p); }
};

/// The move-only owner of one C object; NULL after a move.
template <class C>
class handle {
public:
    handle() noexcept = default;
    explicit handle(C *raw) noexcept : raw_(raw) {}
    handle(const handle &) = delete;
    handle &operator=(const handle &) = delete;
    handle(handle &&other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
    handle &operator=(handle &&other) noexcept {
        if (this != &other) traits<C>::free(std::exchange(raw_, std::exchange(other.raw_, nullptr)));
        return *this;
    }
    ~handle() { traits<C>::free(raw_); }

    /// The C object, still owned by this handle (for C functions not wrapped here).
    C *get() const noexcept { return raw_; }
    /// Gives up ownership: the caller frees the C object.
    C *release() noexcept { return std::exchange(raw_, nullptr); }
    /// False after a move (or for a default-constructed handle).
    explicit operator bool() const noexcept { return raw_ != nullptr; }

protected:
    /// The error for a failed call: the handle's last error when it is this call's (same
    /// code; `IMSTLS_BUSY` is never recorded), else the code alone.
    imstls::error failure(imstls_result rc) const {
        status code = static_cast<status>(rc);
        if constexpr (has_last_error) {
            imstls_error *e = nullptr;
            if (code != status::busy && traits<C>::last_error(raw_, &e) == IMSTLS_OK) {
                imstls::error copy(e);
                imstls_error_free(e);
                if (copy.code() == code) return copy;
            }
        }
        return imstls::error(code);
    }
    result<void> check(imstls_result rc) const {
        if (rc == IMSTLS_OK) return {};
        return failure(rc);
    }
    /// A call whose out-parameter becomes a new handle.
    template <class H, class Raw>
    result<H> made(imstls_result rc, Raw *out) const {
        if (rc == IMSTLS_OK) return H(out);
        return failure(rc);
    }
    /// A call with an out-parameter that may legitimately be absent (`absent` code).
    template <class T>
    result<std::optional<T>> maybe(imstls_result rc, T value, imstls_result absent) const {
        if (rc == IMSTLS_OK) return std::optional<T>(std::move(value));
        if (rc == absent) return std::optional<T>();
        return failure(rc);
    }
    template <class T>
    result<T> got(imstls_result rc, T value) const {
        if (rc == IMSTLS_OK) return value;
        return failure(rc);
    }

private:
    template <class X, class = void>
    struct probe : std::false_type {};
    template <class X>
    struct probe<X, std::void_t<decltype(traits<X>::last_error(nullptr, nullptr))>> : std::true_type {};
    static constexpr bool has_last_error = probe<C>::value;

    C *raw_ = nullptr;
};

}  // namespace detail

/// One candidate that failed in a round (BACKING_OFF, REGISTRATION_FAILED).
struct candidate_failure {
    std::uint32_t candidate = 0;
    std::uint64_t flow = 0;
    std::string target;
    std::string reason;
    std::string detail;
};

/// Owned bytes that are wiped when dropped (SIP messages may carry identities and nonces).
class owned_bytes {
public:
    owned_bytes() = default;
    explicit owned_bytes(bytes_view bytes) : bytes_(bytes.begin(), bytes.end()) {}
    owned_bytes(const owned_bytes &) = default;
    owned_bytes(owned_bytes &&) noexcept = default;
    owned_bytes &operator=(const owned_bytes &other) {
        if (this != &other) {
            wipe();
            bytes_ = other.bytes_;
        }
        return *this;
    }
    owned_bytes &operator=(owned_bytes &&other) noexcept {
        if (this != &other) {
            wipe();
            bytes_ = std::move(other.bytes_);
        }
        return *this;
    }
    ~owned_bytes() { wipe(); }
    bytes_view view() const noexcept { return bytes_view(bytes_.data(), bytes_.size()); }
    std::size_t size() const noexcept { return bytes_.size(); }
    bool empty() const noexcept { return bytes_.empty(); }

private:
    void wipe() noexcept {
        volatile std::uint8_t *p = bytes_.data();
        for (std::size_t i = 0; i < bytes_.size(); ++i) p[i] = 0;
    }
    std::vector<std::uint8_t> bytes_;
};

/// An output copied out of its `imstls_output` (`output::copy()`): a plain value that owns its
/// data. The fields are those of the `imstls_output_*` accessors with the same names; fields
/// that do not apply to `kind` / `type` are empty or 0.
struct event {
    output_kind kind = output_kind::none;  // imstls_output_kind
    event_kind type = event_kind::none;    // imstls_output_event
    std::string name;                      // imstls_output_event_name
    std::uint64_t flow = 0;
    std::uint32_t candidate = 0;
    std::string host;
    std::uint16_t port = 0;
    owned_bytes data;  // TRANSMIT: TLS records; SIP_RECEIVED: the SIP message
    std::string reason;
    imstls::register_reason register_reason = imstls::register_reason::none;
    std::string detail;
    std::string clause;
    std::uint16_t sip_status = 0;
    std::uint32_t attempt = 0;
    std::uint64_t delay_ms = 0;
    std::uint64_t expires_s = 0;
    std::uint64_t refresh_in_s = 0;
    std::uint32_t flags = 0;  // flag::*
    std::size_t purged_sessions = 0;
    std::size_t dropped_bytes = 0;
    std::string tls_version;
    std::string cipher_suite;
    std::string kx_group;
    std::optional<imstls::error> failure;          // imstls_output_error
    std::vector<candidate_failure> failed_candidates;  // imstls_output_failed_candidate_*

    bool has_flag(std::uint32_t bit) const noexcept { return (flags & bit) != 0; }
};

/// `imstls_binding`: the O.2.2 binding snapshot. Holds personal data (IMPI, IMPUs, the UE's
/// address): views borrow from it, and freeing it zeroizes the identities.
class binding : public detail::handle<imstls_binding> {
public:
    using handle::handle;
    /// `imstls_binding_flow`.
    std::uint64_t flow() const noexcept { return imstls_binding_flow(get()); }
    /// `imstls_binding_registered`.
    bool registered() const noexcept { return imstls_binding_registered(get()); }
    /// `imstls_binding_pcscf`.
    std::string_view pcscf() const noexcept { return detail::view(imstls_binding_pcscf(get())); }
    /// `imstls_binding_local_addr` (personal data).
    std::string_view local_addr() const noexcept { return detail::view(imstls_binding_local_addr(get())); }
    /// `imstls_binding_remote_addr`.
    std::string_view remote_addr() const noexcept { return detail::view(imstls_binding_remote_addr(get())); }
    /// `imstls_binding_impi` (personal data).
    std::string_view impi() const noexcept { return detail::view(imstls_binding_impi(get())); }
    /// `imstls_binding_impu_count`.
    std::size_t impu_count() const noexcept { return imstls_binding_impu_count(get()); }
    /// `imstls_binding_impu`; empty when out of range (personal data).
    std::string_view impu(std::size_t index) const noexcept { return detail::view(imstls_binding_impu(get(), index)); }
    /// `imstls_binding_tls_version`.
    std::string_view tls_version() const noexcept { return detail::view(imstls_binding_tls_version(get())); }
    /// `imstls_binding_cipher_suite`.
    std::string_view cipher_suite() const noexcept { return detail::view(imstls_binding_cipher_suite(get())); }
    /// `imstls_binding_kx_group`.
    std::string_view kx_group() const noexcept { return detail::view(imstls_binding_kx_group(get())); }
    /// `imstls_binding_resumed`.
    bool resumed() const noexcept { return imstls_binding_resumed(get()); }
    /// `imstls_binding_peer_subject`.
    std::string_view peer_subject() const noexcept { return detail::view(imstls_binding_peer_subject(get())); }
    /// `imstls_binding_peer_san_count`.
    std::size_t peer_san_count() const noexcept { return imstls_binding_peer_san_count(get()); }
    /// `imstls_binding_peer_san`; empty when out of range.
    std::string_view peer_san(std::size_t index) const noexcept {
        return detail::view(imstls_binding_peer_san(get(), index));
    }
    /// `imstls_binding_peer_not_after`.
    std::int64_t peer_not_after() const noexcept { return imstls_binding_peer_not_after(get()); }
};

/// `imstls_output`: one output or event, borrowed views into it. `copy()` makes a value.
class output : public detail::handle<imstls_output> {
public:
    using handle::handle;
    /// `imstls_output_kind`.
    output_kind kind() const noexcept { return static_cast<output_kind>(imstls_output_kind(get())); }
    /// `imstls_output_event`.
    event_kind type() const noexcept { return static_cast<event_kind>(imstls_output_event(get())); }
    /// `imstls_output_event_name`.
    std::string_view name() const noexcept { return detail::view(imstls_output_event_name(get())); }
    /// `imstls_output_flow`.
    std::uint64_t flow() const noexcept { return imstls_output_flow(get()); }
    /// `imstls_output_candidate`.
    std::uint32_t candidate() const noexcept { return imstls_output_candidate(get()); }
    /// `imstls_output_host`.
    std::string_view host() const noexcept { return detail::view(imstls_output_host(get())); }
    /// `imstls_output_port`.
    std::uint16_t port() const noexcept { return imstls_output_port(get()); }
    /// `imstls_output_data`: borrowed, no copy (empty for outputs without bytes).
    bytes_view data() const noexcept {
        const std::uint8_t *bytes = nullptr;
        std::size_t len = 0;
        if (imstls_output_data(get(), &bytes, &len) != IMSTLS_OK) return bytes_view();
        return bytes_view(bytes, len);
    }
    /// `imstls_output_reason`.
    std::string_view reason() const noexcept { return detail::view(imstls_output_reason(get())); }
    /// `imstls_output_register_reason`.
    imstls::register_reason register_reason() const noexcept {
        return static_cast<imstls::register_reason>(imstls_output_register_reason(get()));
    }
    /// `imstls_output_detail`.
    std::string_view detail() const noexcept { return detail::view(imstls_output_detail(get())); }
    /// `imstls_output_clause`.
    std::string_view clause() const noexcept { return detail::view(imstls_output_clause(get())); }
    /// `imstls_output_sip_status`.
    std::uint16_t sip_status() const noexcept { return imstls_output_sip_status(get()); }
    /// `imstls_output_attempt`.
    std::uint32_t attempt() const noexcept { return imstls_output_attempt(get()); }
    /// `imstls_output_delay_ms`.
    std::uint64_t delay_ms() const noexcept { return imstls_output_delay_ms(get()); }
    /// `imstls_output_expires_s`.
    std::uint64_t expires_s() const noexcept { return imstls_output_expires_s(get()); }
    /// `imstls_output_refresh_in_s`.
    std::uint64_t refresh_in_s() const noexcept { return imstls_output_refresh_in_s(get()); }
    /// `imstls_output_flags` (`flag::*` bits).
    std::uint32_t flags() const noexcept { return imstls_output_flags(get()); }
    /// `imstls_output_purged_sessions`.
    std::size_t purged_sessions() const noexcept { return imstls_output_purged_sessions(get()); }
    /// `imstls_output_dropped_bytes`.
    std::size_t dropped_bytes() const noexcept { return imstls_output_dropped_bytes(get()); }
    /// `imstls_output_tls_version`.
    std::string_view tls_version() const noexcept { return detail::view(imstls_output_tls_version(get())); }
    /// `imstls_output_cipher_suite`.
    std::string_view cipher_suite() const noexcept { return detail::view(imstls_output_cipher_suite(get())); }
    /// `imstls_output_kx_group`.
    std::string_view kx_group() const noexcept { return detail::view(imstls_output_kx_group(get())); }
    /// `imstls_output_error`, copied; none for outputs that are not failures.
    std::optional<imstls::error> failure() const {
        const imstls_error *e = imstls_output_error(get());
        if (e == nullptr) return std::nullopt;
        return imstls::error(e);
    }
    /// `imstls_output_failed_candidate_count`.
    std::size_t failed_candidate_count() const noexcept { return imstls_output_failed_candidate_count(get()); }
    /// `imstls_output_failed_candidate`.
    std::uint32_t failed_candidate(std::size_t i) const noexcept { return imstls_output_failed_candidate(get(), i); }
    /// `imstls_output_failed_candidate_flow`.
    std::uint64_t failed_candidate_flow(std::size_t i) const noexcept {
        return imstls_output_failed_candidate_flow(get(), i);
    }
    /// `imstls_output_failed_candidate_target`.
    std::string_view failed_candidate_target(std::size_t i) const noexcept {
        return detail::view(imstls_output_failed_candidate_target(get(), i));
    }
    /// `imstls_output_failed_candidate_reason`.
    std::string_view failed_candidate_reason(std::size_t i) const noexcept {
        return detail::view(imstls_output_failed_candidate_reason(get(), i));
    }
    /// `imstls_output_failed_candidate_detail`.
    std::string_view failed_candidate_detail(std::size_t i) const noexcept {
        return detail::view(imstls_output_failed_candidate_detail(get(), i));
    }

    /// Every field above, copied into a value.
    event copy() const {
        event e;
        e.kind = kind();
        e.type = type();
        e.name = std::string(name());
        e.flow = flow();
        e.candidate = candidate();
        e.host = std::string(host());
        e.port = port();
        e.data = owned_bytes(data());
        e.reason = std::string(reason());
        e.register_reason = register_reason();
        e.detail = std::string(detail());
        e.clause = std::string(clause());
        e.sip_status = sip_status();
        e.attempt = attempt();
        e.delay_ms = delay_ms();
        e.expires_s = expires_s();
        e.refresh_in_s = refresh_in_s();
        e.flags = flags();
        e.purged_sessions = purged_sessions();
        e.dropped_bytes = dropped_bytes();
        e.tls_version = std::string(tls_version());
        e.cipher_suite = std::string(cipher_suite());
        e.kx_group = std::string(kx_group());
        e.failure = failure();
        for (std::size_t i = 0; i < failed_candidate_count(); ++i) {
            e.failed_candidates.push_back(candidate_failure{
                failed_candidate(i), failed_candidate_flow(i), std::string(failed_candidate_target(i)),
                std::string(failed_candidate_reason(i)), std::string(failed_candidate_detail(i))});
        }
        return e;
    }
};

/// `imstls_config`: a validated, immutable configuration.
class config : public detail::handle<imstls_config> {
public:
    using handle::handle;
    /// `imstls_config_clone`: another reference to the same configuration.
    result<config> clone() const {
        imstls_config *out = nullptr;
        imstls_result rc = imstls_config_clone(get(), &out);  // before reading `out`
        return made<config>(rc, out);
    }
    /// `imstls_config_candidate_count`.
    std::size_t candidate_count() const noexcept { return imstls_config_candidate_count(get()); }
};

/// `imstls_config_builder`: collects settings; `build()` validates them.
class config_builder : public detail::handle<imstls_config_builder> {
public:
    using handle::handle;
    /// `imstls_config_builder_new`.
    static result<config_builder> create() {
        imstls_config_builder *out = nullptr;
        imstls_result rc = imstls_config_builder_new(&out);
        if (rc != IMSTLS_OK) return imstls::error(static_cast<status>(rc));
        return config_builder(out);
    }
    /// `imstls_config_builder_add_pcscf`.
    result<void> add_pcscf(std::string_view candidate) {
        return with(candidate, [&](const char *s) { return imstls_config_builder_add_pcscf(get(), s); });
    }
    /// `imstls_config_builder_set_server_name`.
    result<void> set_server_name(std::string_view fqdn) {
        return with(fqdn, [&](const char *s) { return imstls_config_builder_set_server_name(get(), s); });
    }
    /// `imstls_config_builder_add_trust_anchors_pem`.
    result<void> add_trust_anchors_pem(bytes_view pem) {
        return check(imstls_config_builder_add_trust_anchors_pem(get(), pem.data(), pem.size()));
    }
    /// `imstls_config_builder_add_trust_anchors_der`.
    result<void> add_trust_anchors_der(bytes_view der) {
        return check(imstls_config_builder_add_trust_anchors_der(get(), der.data(), der.size()));
    }
    /// `imstls_config_builder_add_trust_anchors_file`.
    result<void> add_trust_anchors_file(std::string_view path) {
        return with(path, [&](const char *s) { return imstls_config_builder_add_trust_anchors_file(get(), s); });
    }
    /// `imstls_config_builder_add_crls_pem`.
    result<void> add_crls_pem(bytes_view pem) {
        return check(imstls_config_builder_add_crls_pem(get(), pem.data(), pem.size()));
    }
    /// `imstls_config_builder_add_crls_file`.
    result<void> add_crls_file(std::string_view path) {
        return with(path, [&](const char *s) { return imstls_config_builder_add_crls_file(get(), s); });
    }
    /// `imstls_config_builder_add_spki_pin`.
    result<void> add_spki_pin(std::string_view base64) {
        return with(base64, [&](const char *s) { return imstls_config_builder_add_spki_pin(get(), s); });
    }
    /// `imstls_config_builder_set_tls_versions`.
    result<void> set_tls_versions(tls_versions versions) {
        return check(imstls_config_builder_set_tls_versions(get(), static_cast<std::uint32_t>(versions)));
    }
    /// `imstls_config_builder_set_kx_groups`.
    result<void> set_kx_groups(list_view<std::string_view> names) {
        detail::c_string_list list(names);
        if (!list.ok()) return imstls::error(status::invalid_argument);
        return check(imstls_config_builder_set_kx_groups(get(), list.get(), list.size()));
    }
    /// `imstls_config_builder_set_allow_wildcard_certificates`.
    result<void> set_allow_wildcard_certificates(bool allow) {
        return check(imstls_config_builder_set_allow_wildcard_certificates(get(), allow));
    }
    /// `imstls_config_builder_set_certificate_request_policy`.
    result<void> set_certificate_request_policy(certificate_request_policy policy) {
        return check(
            imstls_config_builder_set_certificate_request_policy(get(), static_cast<std::uint32_t>(policy)));
    }
    /// `imstls_config_builder_set_session_lifetime_ms`.
    result<void> set_session_lifetime_ms(std::uint64_t ms) {
        return check(imstls_config_builder_set_session_lifetime_ms(get(), ms));
    }
    /// `imstls_config_builder_set_resumption`.
    result<void> set_resumption(bool enabled) { return check(imstls_config_builder_set_resumption(get(), enabled)); }
    /// `imstls_config_builder_set_connect_timeout_ms`.
    result<void> set_connect_timeout_ms(std::uint64_t ms) {
        return check(imstls_config_builder_set_connect_timeout_ms(get(), ms));
    }
    /// `imstls_config_builder_set_handshake_timeout_ms`.
    result<void> set_handshake_timeout_ms(std::uint64_t ms) {
        return check(imstls_config_builder_set_handshake_timeout_ms(get(), ms));
    }
    /// `imstls_config_builder_set_registration_timeout_ms`.
    result<void> set_registration_timeout_ms(std::uint64_t ms) {
        return check(imstls_config_builder_set_registration_timeout_ms(get(), ms));
    }
    /// `imstls_config_builder_set_keepalive`.
    result<void> set_keepalive(bool enabled, bool battery_saving, std::uint64_t pong_timeout_ms) {
        return check(imstls_config_builder_set_keepalive(get(), enabled, battery_saving, pong_timeout_ms));
    }
    /// `imstls_config_builder_set_backoff`.
    result<void> set_backoff(std::uint64_t base_all_failed_ms, std::uint64_t base_not_all_failed_ms,
                             std::uint64_t max_ms) {
        return check(imstls_config_builder_set_backoff(get(), base_all_failed_ms, base_not_all_failed_ms, max_ms));
    }
    /// `imstls_config_builder_set_max_sip_message_size`.
    result<void> set_max_sip_message_size(std::size_t bytes) {
        return check(imstls_config_builder_set_max_sip_message_size(get(), bytes));
    }
    /// `imstls_config_builder_set_max_challenges`.
    result<void> set_max_challenges(std::uint32_t count) {
        return check(imstls_config_builder_set_max_challenges(get(), count));
    }
    /// `imstls_config_builder_set_conformance_log_entries`.
    result<void> set_conformance_log_entries(std::size_t entries) {
        return check(imstls_config_builder_set_conformance_log_entries(get(), entries));
    }
    /// `imstls_config_builder_set_queue_limits` (0: the default).
    result<void> set_queue_limits(std::size_t engine_output_bytes, std::size_t driver_outgoing_bytes,
                                  std::size_t driver_event_bytes) {
        return check(imstls_config_builder_set_queue_limits(get(), engine_output_bytes, driver_outgoing_bytes,
                                                             driver_event_bytes));
    }
    /// `imstls_config_builder_set_random_seed`.
    result<void> set_random_seed(std::uint64_t seed) { return check(imstls_config_builder_set_random_seed(get(), seed)); }
    /// `imstls_config_builder_set_log_callback` (see `imstls_log_callback` for its rules).
    result<void> set_log_callback(imstls_log_callback callback, void *userdata, log_level level) {
        return check(
            imstls_config_builder_set_log_callback(get(), callback, userdata, static_cast<std::uint32_t>(level)));
    }
    /// `imstls_config_builder_set_key_log_file` (debugging only: whoever holds the file reads
    /// the flows).
    result<void> set_key_log_file(std::string_view path) {
        return with(path, [&](const char *s) { return imstls_config_builder_set_key_log_file(get(), s); });
    }
    /// `imstls_config_builder_set_key_log_callback` (a null callback turns the key log off).
    result<void> set_key_log_callback(imstls_key_log_callback callback, void *userdata) {
        return check(imstls_config_builder_set_key_log_callback(get(), callback, userdata));
    }
    /// `imstls_config_builder_build`; on failure `error().config_field()` names the field.
    result<config> build() const {
        imstls_config *out = nullptr;
        imstls_result rc = imstls_config_builder_build(get(), &out);  // before reading `out`
        return made<config>(rc, out);
    }
    /// `imstls_config_builder_last_error`: a copy, or none when nothing failed yet.
    std::optional<imstls::error> last_error() const { return detail::copy_last_error(get(), imstls_config_builder_last_error); }

private:
    template <class F>
    result<void> with(std::string_view s, F call) {
        detail::c_string c(s);
        if (!c.ok()) return imstls::error(status::invalid_argument);
        return check(call(c.get()));
    }
};

/// `imstls_ue`: one UE, sans-IO. Every input takes `now_ms` from your monotonic clock;
/// drain `poll_output()` after each.
class ue : public detail::handle<imstls_ue> {
public:
    using handle::handle;
    /// `imstls_ue_new`.
    static result<ue> create(const config &cfg, std::uint64_t now_ms) {
        imstls_ue *out = nullptr;
        imstls_result rc = imstls_ue_new(cfg.get(), now_ms, &out);
        if (rc != IMSTLS_OK) return imstls::error(static_cast<status>(rc));
        return ue(out);
    }
    /// `imstls_ue_start_registration`.
    result<void> start_registration(std::uint64_t now_ms, std::string_view impi, list_view<std::string_view> impus) {
        detail::c_string id(impi);
        detail::c_string_list publics(impus);
        if (!id.ok() || !publics.ok()) return imstls::error(status::invalid_argument);
        return check(imstls_ue_start_registration(get(), now_ms, id.get(), publics.get(), publics.size()));
    }
    /// `imstls_ue_send_sip`.
    result<void> send_sip(std::uint64_t now_ms, bytes_view message) {
        return check(imstls_ue_send_sip(get(), now_ms, message.data(), message.size()));
    }
    /// `imstls_ue_registration_challenged` (`flow`: of the SIP_RECEIVED that carried it).
    result<void> registration_challenged(std::uint64_t now_ms, std::uint64_t flow, bool stale) {
        return check(imstls_ue_registration_challenged(get(), now_ms, flow, stale));
    }
    /// `imstls_ue_registration_succeeded`.
    result<void> registration_succeeded(std::uint64_t now_ms, std::uint64_t flow, std::uint32_t expires_s,
                                        std::uint32_t flow_timer_s) {
        return check(imstls_ue_registration_succeeded(get(), now_ms, flow, expires_s, flow_timer_s));
    }
    /// `imstls_ue_registration_failed`.
    result<void> registration_failed(std::uint64_t now_ms, std::uint64_t flow, std::uint32_t sip_status,
                                     std::uint32_t retry_after_s) {
        return check(imstls_ue_registration_failed(get(), now_ms, flow, sip_status, retry_after_s));
    }
    /// `imstls_ue_deregister`.
    result<void> deregister(std::uint64_t now_ms) { return check(imstls_ue_deregister(get(), now_ms)); }
    /// `imstls_ue_network_changed`.
    result<void> network_changed(std::uint64_t now_ms) { return check(imstls_ue_network_changed(get(), now_ms)); }
    /// `imstls_ue_rekey`.
    result<void> rekey(std::uint64_t now_ms) { return check(imstls_ue_rekey(get(), now_ms)); }
    /// `imstls_ue_connected`; an empty address is passed as NULL (unknown).
    result<void> connected(std::uint64_t now_ms, std::uint64_t flow, std::string_view local_addr = {},
                           std::string_view remote_addr = {}) {
        detail::c_string local(local_addr), remote(remote_addr);
        if (!local.ok() || !remote.ok()) return imstls::error(status::invalid_argument);
        return check(imstls_ue_connected(get(), now_ms, flow, local.or_null(), remote.or_null()));
    }
    /// `imstls_ue_connect_failed`; an empty detail is passed as NULL.
    result<void> connect_failed(std::uint64_t now_ms, std::uint64_t flow, connect_error reason,
                                std::string_view detail = {}) {
        detail::c_string text(detail);
        if (!text.ok()) return imstls::error(status::invalid_argument);
        return check(
            imstls_ue_connect_failed(get(), now_ms, flow, static_cast<std::uint32_t>(reason), text.or_null()));
    }
    /// `imstls_ue_receive`.
    result<void> receive(std::uint64_t now_ms, std::uint64_t flow, bytes_view data) {
        return check(imstls_ue_receive(get(), now_ms, flow, data.data(), data.size()));
    }
    /// `imstls_ue_peer_not_reading`.
    result<void> peer_not_reading(std::uint64_t now_ms, std::uint64_t flow, std::size_t queued_bytes) {
        return check(imstls_ue_peer_not_reading(get(), now_ms, flow, queued_bytes));
    }
    /// `imstls_ue_transport_closed`; an empty detail is passed as NULL.
    result<void> transport_closed(std::uint64_t now_ms, std::uint64_t flow, transport_closure closure,
                                  std::string_view detail = {}) {
        detail::c_string text(detail);
        if (!text.ok()) return imstls::error(status::invalid_argument);
        return check(
            imstls_ue_transport_closed(get(), now_ms, flow, static_cast<std::uint32_t>(closure), text.or_null()));
    }
    /// `imstls_ue_handle_timeout`.
    result<void> handle_timeout(std::uint64_t now_ms) { return check(imstls_ue_handle_timeout(get(), now_ms)); }
    /// `imstls_ue_poll_output`: the next output, or none when the queue is drained.
    result<std::optional<output>> poll_output() {
        imstls_output *out = nullptr;
        imstls_result rc = imstls_ue_poll_output(get(), &out);
        return maybe(rc, output(rc == IMSTLS_OK ? out : nullptr), IMSTLS_NOTHING_MORE);
    }
    /// `imstls_ue_next_timeout`: the deadline, or none when no timer runs.
    result<std::optional<std::uint64_t>> next_timeout() const {
        std::uint64_t ms = 0;
        imstls_result rc = imstls_ue_next_timeout(get(), &ms);
        return maybe(rc, ms, IMSTLS_NOT_AVAILABLE);
    }
    /// `imstls_ue_state`.
    result<imstls::state> state() const {
        imstls_state s = IMSTLS_STATE_IDLE;
        imstls_result rc = imstls_ue_state(get(), &s);
        return got(rc, static_cast<imstls::state>(s));
    }
    /// `imstls_ue_current_flow`: none when there is no flow.
    result<std::optional<std::uint64_t>> current_flow() const {
        std::uint64_t flow = 0;
        imstls_result rc = imstls_ue_current_flow(get(), &flow);
        return maybe(rc, flow, IMSTLS_NOT_AVAILABLE);
    }
    /// `imstls_ue_binding`: none before TLS is up.
    result<std::optional<imstls::binding>> binding() const {
        imstls_binding *out = nullptr;
        imstls_result rc = imstls_ue_binding(get(), &out);
        return maybe(rc, imstls::binding(rc == IMSTLS_OK ? out : nullptr), IMSTLS_NOT_AVAILABLE);
    }
    /// `imstls_ue_last_error`: a copy, or none when nothing failed yet.
    std::optional<imstls::error> last_error() const {
        return detail::copy_last_error(get(), imstls_ue_last_error);
    }
    /// `imstls_ue_set_log_callback` (see `imstls_log_callback` for its rules).
    result<void> set_log_callback(imstls_log_callback callback, void *userdata, log_level level) {
        return check(imstls_ue_set_log_callback(get(), callback, userdata, static_cast<std::uint32_t>(level)));
    }
    /// `imstls_ue_set_wake_callback`.
    result<void> set_wake_callback(imstls_wake_callback callback, void *userdata) {
        return check(imstls_ue_set_wake_callback(get(), callback, userdata));
    }
};

/// `imstls_driver`: one UE with a managed socket (imstls reads the clock itself). Call
/// `run()` (or wait on `fd()` / `timeout_ms()` and call `process()`), then drain
/// `poll_event()`.
class driver : public detail::handle<imstls_driver> {
public:
    using handle::handle;
    /// `imstls_driver_new`.
    static result<driver> create(const config &cfg) {
        imstls_driver *out = nullptr;
        imstls_result rc = imstls_driver_new(cfg.get(), &out);
        if (rc != IMSTLS_OK) return imstls::error(static_cast<status>(rc));
        return driver(out);
    }
    /// `imstls_driver_set_connect_mode`.
    result<void> set_connect_mode(connect_mode mode) {
        return check(imstls_driver_set_connect_mode(get(), static_cast<std::uint32_t>(mode)));
    }
    /// `imstls_driver_set_connection_attempt_delay_ms` (RFC 8305; 10..=2000, default 250).
    result<void> set_connection_attempt_delay_ms(std::uint32_t delay_ms) {
        return check(imstls_driver_set_connection_attempt_delay_ms(get(), delay_ms));
    }
    /// `imstls_driver_start_registration`.
    result<void> start_registration(std::string_view impi, list_view<std::string_view> impus) {
        detail::c_string id(impi);
        detail::c_string_list publics(impus);
        if (!id.ok() || !publics.ok()) return imstls::error(status::invalid_argument);
        return check(imstls_driver_start_registration(get(), id.get(), publics.get(), publics.size()));
    }
    /// `imstls_driver_send_sip`.
    result<void> send_sip(bytes_view message) {
        return check(imstls_driver_send_sip(get(), message.data(), message.size()));
    }
    /// `imstls_driver_registration_challenged` (`flow`: of the SIP_RECEIVED that carried it).
    result<void> registration_challenged(std::uint64_t flow, bool stale) {
        return check(imstls_driver_registration_challenged(get(), flow, stale));
    }
    /// `imstls_driver_registration_succeeded`.
    result<void> registration_succeeded(std::uint64_t flow, std::uint32_t expires_s, std::uint32_t flow_timer_s) {
        return check(imstls_driver_registration_succeeded(get(), flow, expires_s, flow_timer_s));
    }
    /// `imstls_driver_registration_failed`.
    result<void> registration_failed(std::uint64_t flow, std::uint32_t sip_status, std::uint32_t retry_after_s) {
        return check(imstls_driver_registration_failed(get(), flow, sip_status, retry_after_s));
    }
    /// `imstls_driver_deregister`.
    result<void> deregister() { return check(imstls_driver_deregister(get())); }
    /// `imstls_driver_network_changed`.
    result<void> network_changed() { return check(imstls_driver_network_changed(get())); }
    /// `imstls_driver_rekey`.
    result<void> rekey() { return check(imstls_driver_rekey(get())); }
    /// `imstls_driver_adopt_fd` (external connect mode).
    result<void> adopt_fd(std::uint64_t flow, int fd, fd_ownership ownership) {
        return check(imstls_driver_adopt_fd(get(), flow, fd, static_cast<std::uint32_t>(ownership)));
    }
    /// `imstls_driver_connect_failed` (external connect mode); an empty detail is NULL.
    result<void> connect_failed(std::uint64_t flow, connect_error reason, std::string_view detail = {}) {
        detail::c_string text(detail);
        if (!text.ok()) return imstls::error(status::invalid_argument);
        return check(imstls_driver_connect_failed(get(), flow, static_cast<std::uint32_t>(reason), text.or_null()));
    }
    /// `imstls_driver_fd`: none when there is no socket.
    result<std::optional<int>> fd() const {
        int out = -1;
        imstls_result rc = imstls_driver_fd(get(), &out);
        return maybe(rc, out, IMSTLS_NOT_AVAILABLE);
    }
    /// `imstls_driver_interest` (`interest::*` bits).
    result<std::uint32_t> interest() const {
        std::uint32_t out = 0;
        imstls_result rc = imstls_driver_interest(get(), &out);
        return got(rc, out);
    }
    /// `imstls_driver_timeout_ms`: none when no timer runs.
    result<std::optional<std::uint64_t>> timeout_ms() const {
        std::uint64_t out = 0;
        imstls_result rc = imstls_driver_timeout_ms(get(), &out);
        return maybe(rc, out, IMSTLS_NOT_AVAILABLE);
    }
    /// `imstls_driver_process`.
    result<void> process() { return check(imstls_driver_process(get())); }
    /// `imstls_driver_run`: blocks up to `max_wait_ms`.
    result<void> run(std::uint32_t max_wait_ms) { return check(imstls_driver_run(get(), max_wait_ms)); }
    /// `imstls_driver_poll_event`: the next event, or none.
    result<std::optional<output>> poll_event() {
        imstls_output *out = nullptr;
        imstls_result rc = imstls_driver_poll_event(get(), &out);
        return maybe(rc, output(rc == IMSTLS_OK ? out : nullptr), IMSTLS_NOTHING_MORE);
    }
    /// `imstls_driver_state`.
    result<imstls::state> state() const {
        imstls_state s = IMSTLS_STATE_IDLE;
        imstls_result rc = imstls_driver_state(get(), &s);
        return got(rc, static_cast<imstls::state>(s));
    }
    /// `imstls_driver_binding`: none before TLS is up.
    result<std::optional<imstls::binding>> binding() const {
        imstls_binding *out = nullptr;
        imstls_result rc = imstls_driver_binding(get(), &out);
        return maybe(rc, imstls::binding(rc == IMSTLS_OK ? out : nullptr), IMSTLS_NOT_AVAILABLE);
    }
    /// `imstls_driver_last_error`: a copy, or none when nothing failed yet.
    std::optional<imstls::error> last_error() const {
        return detail::copy_last_error(get(), imstls_driver_last_error);
    }
    /// `imstls_driver_set_log_callback`.
    result<void> set_log_callback(imstls_log_callback callback, void *userdata, log_level level) {
        return check(imstls_driver_set_log_callback(get(), callback, userdata, static_cast<std::uint32_t>(level)));
    }
    /// `imstls_driver_set_wake_callback`.
    result<void> set_wake_callback(imstls_wake_callback callback, void *userdata) {
        return check(imstls_driver_set_wake_callback(get(), callback, userdata));
    }
    /// `imstls_driver_queued_bytes`: unsent TLS bytes and undelivered event bytes, as the
    /// queue caps count them.
    struct queued_bytes_t {
        std::size_t outgoing = 0;
        std::size_t events = 0;
    };
    /// `imstls_driver_queued_bytes`.
    result<queued_bytes_t> queued_bytes() const {
        queued_bytes_t out;
        imstls_result rc = imstls_driver_queued_bytes(get(), &out.outgoing, &out.events);
        return got(rc, out);
    }
    /// `imstls_driver_stop`: a waiting `run` (on any thread) returns `status::stopped`, and so
    /// does every later one.
    result<void> stop() { return check(imstls_driver_stop(get())); }
    /// `imstls_driver_wake`: ends the current wait of `run` without stopping the driver.
    result<void> wake() { return check(imstls_driver_wake(get())); }
};

}  // namespace imstls

#endif  // IMSTLS_HPP
