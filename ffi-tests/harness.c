/*
 * The C harness for imstls's C ABI (include/imstls.h): C99 + POSIX threads and sockets.
 *
 * It registers to the loopback P-CSCF simulator in both driving modes -- sans-IO (this file
 * owns the socket and the clock) and the managed driver (imstls owns the socket) -- with a
 * tiny SIP UA of its own (examples/c/mini_ua.c), and it misuses the API on purpose: NULL
 * everywhere, invalid UTF-8, calls in the wrong order, small buffers, concurrent and
 * re-entrant calls, a panic inside an export.
 *
 * Run by tests/c_harness.rs, which starts the simulators and answers control requests
 * ("@ctl kill" on stdout -> "ok" on stdin). Prints "passed=N failed=M" last; exits 0 only
 * when nothing failed.
 *
 * usage: harness --pcscf ADDR --expired ADDR --wrong-name ADDR --flood ADDR --ca FILE
 *                --server-name FQDN
 *
 * --flood is a P-CSCF that registers the UE, then floods CRLFCRLF pings and never reads
 * (imstls_testkit::Flooder, issue 12 s5).
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "imstls.h"
#include "mini_ua.h"

#ifdef IMSTLS_TEST_HOOKS
/* Debug builds of imstls export these (never in the header): they panic inside the boundary. */
imstls_result imstls_test_panic(void);
imstls_result imstls_test_panic_in_ue(imstls_ue *ue);
#endif

/* The C++ translation unit (harness_cpp.cpp): returns the number of failed checks. */
int cpp_checks(const char *pcscf);

/* ---- checks ------------------------------------------------------------------------------ */

static int passed, failed;
static const char *scenario = "";

static int check(int ok, const char *what, const char *file, int line) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL [%s] %s:%d: %s\n", scenario, file, line, what);
        fflush(stdout);
    }
    return ok;
}

static int check_result(imstls_result got, imstls_result want, const char *what,
                        const char *file, int line) {
    if (got == want) {
        passed++;
        return 1;
    }
    failed++;
    printf("FAIL [%s] %s:%d: %s gave %u (%s), expected %u (%s)\n", scenario, file, line, what,
           (unsigned)got, imstls_result_str(got), (unsigned)want, imstls_result_str(want));
    fflush(stdout);
    return 0;
}

#define CHECK(cond) check((cond) != 0, #cond, __FILE__, __LINE__)
#define CHECK_RESULT(expr, want) check_result((expr), (want), #expr, __FILE__, __LINE__)
#define CHECK_OK(expr) CHECK_RESULT((expr), IMSTLS_OK)

static void begin(const char *name) {
    scenario = name;
    printf("== %s\n", name);
    fflush(stdout);
}

/* ---- environment --------------------------------------------------------------------------- */

static struct {
    const char *pcscf, *expired, *wrong_name, *flood, *ca, *server_name;
} opt;

static const char *IMPI = "alice@ims.test";
static const char *IMPU = "sip:alice@ims.test";
static const char *PASSWORD = "alice-secret";

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Asks the test driver (tests/c_harness.rs) to act on the simulator; 1 when it did. */
static int ctl(const char *command) {
    char line[64];
    printf("@ctl %s\n", command);
    fflush(stdout);
    if (fgets(line, sizeof line, stdin) == NULL) return 0;
    return strncmp(line, "ok", 2) == 0;
}

/* A configuration with the candidates `first` and, unless NULL, `second`. */
static imstls_config *make_config2(const char *first, const char *second) {
    imstls_config_builder *b = NULL;
    imstls_config *config = NULL;
    if (!CHECK_OK(imstls_config_builder_new(&b))) return NULL;
    CHECK_OK(imstls_config_builder_add_pcscf(b, first));
    if (second != NULL) CHECK_OK(imstls_config_builder_add_pcscf(b, second));
    CHECK_OK(imstls_config_builder_set_server_name(b, opt.server_name));
    CHECK_OK(imstls_config_builder_add_trust_anchors_file(b, opt.ca));
    /* Generous for Valgrind; short back-off so that recovery is quick. */
    CHECK_OK(imstls_config_builder_set_connect_timeout_ms(b, 10000));
    CHECK_OK(imstls_config_builder_set_handshake_timeout_ms(b, 20000));
    CHECK_OK(imstls_config_builder_set_registration_timeout_ms(b, 20000));
    CHECK_OK(imstls_config_builder_set_keepalive(b, true, false, 10000));
    CHECK_OK(imstls_config_builder_set_backoff(b, 200, 200, 1000));
    CHECK_OK(imstls_config_builder_set_random_seed(b, 7));
    CHECK_OK(imstls_config_builder_set_conformance_log_entries(b, 16));
    CHECK_OK(imstls_config_builder_build(b, &config));
    imstls_config_builder_free(b);
    return config;
}

static imstls_config *make_config(const char *pcscf) { return make_config2(pcscf, NULL); }

static void addr_text(const struct sockaddr *sa, char *out, size_t cap) {
    char host[INET6_ADDRSTRLEN] = "";
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(out, cap, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
    } else {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &in4->sin_addr, host, sizeof host);
        snprintf(out, cap, "%s:%u", host, (unsigned)ntohs(in4->sin_port));
    }
}

/* A blocking TCP connect; the socket's local and remote addresses as "ip:port". */
static int tcp_connect(const char *host, uint16_t port, char *local, char *remote, size_t cap) {
    struct addrinfo hints, *list = NULL;
    char service[8];
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof service, "%u", (unsigned)port);
    if (getaddrinfo(host, service, &hints, &list) != 0) return -1;
    int fd = -1;
    for (struct addrinfo *ai = list; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
            continue;
        }
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        getsockname(fd, (struct sockaddr *)&ss, &len);
        addr_text((struct sockaddr *)&ss, local, cap);
        addr_text(ai->ai_addr, remote, cap);
    }
    freeaddrinfo(list);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

/* ---- the SIP stack, shared by both driving modes ------------------------------------------ */

typedef struct stack {
    const char *name;
    mini_ua ua;
    imstls_ue *ue;         /* sans-IO mode */
    imstls_driver *driver; /* driver mode */
    int hold_challenges;   /* leave the procedure incomplete after a 401 */
    int hold_answers;      /* keep REGISTER answers unreported (a stack that is late) */
    int held;
    uint64_t held_flow[4];
    mini_ua_result held_answer[4];
    int external;          /* driver in external-connect mode: this file connects */
    int borrow;            /* ... and lends its descriptor instead of giving it away */
    int lent_fd;
    int send_buffer;       /* ... and gives each socket this SO_SNDBUF (0: the default) */
    int quiet_pings;       /* count PING_ANSWERED events without printing them (a flood) */
    /* sans-IO socket */
    int fd;
    uint64_t fd_flow;
    int transmits_since_input;
    int transmit_before_close;
    uint64_t closed_flow;
    /* what happened */
    int connecting, tls_established, registered, deregistered, challenged, pongs, superseded,
        lost, cert_rejected, tls_failed, reg_failed, send_errors;
    uint64_t registered_flow, superseded_flow, first_registered_flow;
    unsigned failed_status;
    char cert_reason[64], alert_name[64], expected_name[128], presented[256], tls_version[32];
    uint8_t alert;
    int have_alert;
    /* the failed candidates the last BACKING_OFF / REGISTRATION_FAILED listed */
    int backoffs;
    size_t failed_count;
    uint32_t failed_index[2];
    uint64_t failed_flow[2];
    char failed_target[2][64], failed_reason[2][48], failed_detail[2][160];
    int failed_out_of_range_ok;
    /* the first losses and back-offs, and when this file saw them */
    int ping_answers;
    char lost_reason[2][32];
    size_t lost_dropped[2];
    uint64_t backoff_delay_ms[2], backoff_step_ms[2], reconnect_seen_ms[2];
    uint64_t step_started_ms; /* when the current driver step began: no event is older */
} stack;

static void stack_init(stack *s, const char *name) {
    memset(s, 0, sizeof *s);
    s->name = name;
    s->fd = -1;
    s->lent_fd = -1;
    mini_ua_init(&s->ua, IMPI, IMPU, PASSWORD, 600);
}

static imstls_result stack_send(stack *s, const char *buf, size_t len) {
    if (s->ue != NULL) return imstls_ue_send_sip(s->ue, now_ms(), (const uint8_t *)buf, len);
    return imstls_driver_send_sip(s->driver, (const uint8_t *)buf, len);
}

static void copy_str(char *dst, size_t cap, const char *src) {
    snprintf(dst, cap, "%s", src != NULL ? src : "(null)");
}

/* Reports a REGISTER answer that arrived on `flow` (the flow of its SIP_RECEIVED event). */
static imstls_result report_answer(stack *s, uint64_t flow, mini_ua_result r) {
    uint64_t now = now_ms();
    switch (r.outcome) {
    case MINI_UA_CHALLENGED:
        return s->ue ? imstls_ue_registration_challenged(s->ue, now, flow, r.stale != 0)
                     : imstls_driver_registration_challenged(s->driver, flow, r.stale != 0);
    case MINI_UA_REGISTERED:
        return s->ue ? imstls_ue_registration_succeeded(s->ue, now, flow, r.expires, 0)
                     : imstls_driver_registration_succeeded(s->driver, flow, r.expires, 0);
    case MINI_UA_DEREGISTERED:
        return s->ue ? imstls_ue_registration_succeeded(s->ue, now, flow, 0, 0)
                     : imstls_driver_registration_succeeded(s->driver, flow, 0, 0);
    case MINI_UA_FAILED:
        return s->ue ? imstls_ue_registration_failed(s->ue, now, flow, r.status, r.retry_after)
                     : imstls_driver_registration_failed(s->driver, flow, r.status, r.retry_after);
    default:
        return IMSTLS_OK;
    }
}

static void on_sip(stack *s, const imstls_output *o) {
    const uint8_t *data = NULL;
    size_t len = 0;
    CHECK_OK(imstls_output_data(o, &data, &len));
    mini_ua_result r = mini_ua_response(&s->ua, data, len);
    if (r.outcome < MINI_UA_CHALLENGED || r.outcome == MINI_UA_OTHER) return;
    if (s->hold_answers) {
        if (s->held < 4) {
            s->held_flow[s->held] = imstls_output_flow(o);
            s->held_answer[s->held] = r;
        }
        s->held++;
        return;
    }
    if (r.outcome == MINI_UA_CHALLENGED) s->challenged++;
    imstls_result rc = report_answer(s, imstls_output_flow(o), r);
    /* A flow that ended in the same read makes its answer stale: dropped, as a stack does. */
    if (rc != IMSTLS_STALE_REPORT) CHECK_OK(rc);
}

static void on_register_now(stack *s, const imstls_output *o) {
    imstls_register_reason reason = imstls_output_register_reason(o);
    if (s->hold_challenges && (reason == IMSTLS_REGISTER_REASON_CHALLENGE ||
                               reason == IMSTLS_REGISTER_REASON_STALE_CHALLENGE)) {
        return;
    }
    switch (reason) {
    case IMSTLS_REGISTER_REASON_INITIAL:
    case IMSTLS_REGISTER_REASON_RECOVERY:
    case IMSTLS_REGISTER_REASON_NETWORK_CHANGED:
    case IMSTLS_REGISTER_REASON_REKEY:
        mini_ua_new_registration(&s->ua);
        break;
    default:
        break;
    }
    if (reason == IMSTLS_REGISTER_REASON_INITIAL && s->ue != NULL) {
        /* O.4.2: a new flow carries REGISTER first. */
        static const char options[] = "OPTIONS sip:ims.test SIP/2.0\r\nCSeq: 1 OPTIONS\r\n"
                                      "Content-Length: 0\r\n\r\n";
        CHECK_RESULT(stack_send(s, options, sizeof options - 1), IMSTLS_REGISTER_FIRST);
    }
    char buf[4096];
    size_t len = mini_ua_register(&s->ua, reason == IMSTLS_REGISTER_REASON_DEREGISTER, buf,
                                  sizeof buf);
    if (!CHECK(len > 0)) return;
    if (!CHECK_OK(stack_send(s, buf, len))) s->send_errors++;
}

static void adopt_socket(stack *s, const imstls_output *o) {
    char local[64] = "", remote[64] = "";
    uint64_t flow = imstls_output_flow(o);
    int fd = tcp_connect(imstls_output_host(o), imstls_output_port(o), local, remote, sizeof local);
    if (fd < 0) {
        CHECK_OK(imstls_driver_connect_failed(s->driver, flow, IMSTLS_CONNECT_REFUSED, strerror(errno)));
        return;
    }
    mini_ua_set_local(&s->ua, local);
    if (s->send_buffer > 0) {
        CHECK(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &s->send_buffer, sizeof s->send_buffer) == 0);
    }
    int status_flags = fcntl(fd, F_GETFL);
    CHECK(status_flags != -1 && !(status_flags & O_NONBLOCK)); /* a blocking socket */
    CHECK(!(fcntl(fd, F_GETFD) & FD_CLOEXEC));
    int driver_fd = -1;
    if (s->borrow) {
        CHECK_OK(imstls_driver_adopt_fd(s->driver, flow, fd, IMSTLS_FD_BORROW));
        if (s->lent_fd >= 0) close(s->lent_fd); /* an earlier flow's: ours to close */
        s->lent_fd = fd;
        /* The duplicate shares the open file description: imstls must not have changed its
         * status flags (O_NONBLOCK would be ours too), nor our descriptor flags. */
        CHECK(fcntl(fd, F_GETFL) == status_flags);
        CHECK(!(fcntl(fd, F_GETFD) & FD_CLOEXEC));
        if (CHECK_OK(imstls_driver_fd(s->driver, &driver_fd))) {
            CHECK(driver_fd != fd);
            CHECK(fcntl(driver_fd, F_GETFD) & FD_CLOEXEC);
        }
    } else {
        CHECK_OK(imstls_driver_adopt_fd(s->driver, flow, fd, IMSTLS_FD_TRANSFER));
        /* Given away: the driver's now, and close-on-exec. */
        if (CHECK_OK(imstls_driver_fd(s->driver, &driver_fd))) {
            CHECK(driver_fd == fd);
            CHECK(fcntl(driver_fd, F_GETFD) & FD_CLOEXEC);
        }
    }
}

static void copy_failed_candidates(stack *s, const imstls_output *o) {
    size_t count = imstls_output_failed_candidate_count(o);
    s->failed_count = count;
    for (size_t i = 0; i < count && i < 2; i++) {
        s->failed_index[i] = imstls_output_failed_candidate(o, i);
        s->failed_flow[i] = imstls_output_failed_candidate_flow(o, i);
        copy_str(s->failed_target[i], sizeof s->failed_target[i],
                 imstls_output_failed_candidate_target(o, i));
        copy_str(s->failed_reason[i], sizeof s->failed_reason[i],
                 imstls_output_failed_candidate_reason(o, i));
        copy_str(s->failed_detail[i], sizeof s->failed_detail[i],
                 imstls_output_failed_candidate_detail(o, i));
    }
    /* Past the end: the documented "nothing" values, never a crash. */
    s->failed_out_of_range_ok = imstls_output_failed_candidate(o, count) == UINT32_MAX &&
                                imstls_output_failed_candidate_flow(o, count) == 0 &&
                                imstls_output_failed_candidate_target(o, count)[0] == '\0' &&
                                imstls_output_failed_candidate_reason(o, count)[0] == '\0' &&
                                imstls_output_failed_candidate_detail(o, count)[0] == '\0' &&
                                imstls_output_failed_candidate_count(NULL) == 0 &&
                                imstls_output_failed_candidate(NULL, 0) == UINT32_MAX;
}

static void on_event(stack *s, const imstls_output *o) {
    imstls_event_kind event = imstls_output_event(o);
    if (event == IMSTLS_EVENT_PING_ANSWERED && s->quiet_pings) {
        s->ping_answers++;
        return;
    }
    printf("   %-5s %-22s %s\n", s->name, imstls_output_event_name(o), imstls_output_detail(o));
    switch (event) {
    case IMSTLS_EVENT_CONNECTING:
        if (s->backoffs >= 1 && s->backoffs <= 2 && s->reconnect_seen_ms[s->backoffs - 1] == 0) {
            s->reconnect_seen_ms[s->backoffs - 1] = now_ms();
        }
        s->connecting++;
        CHECK(imstls_output_port(o) > 0 && imstls_output_host(o)[0] != '\0');
        if (s->external) adopt_socket(s, o);
        break;
    case IMSTLS_EVENT_TLS_ESTABLISHED:
        s->tls_established++;
        copy_str(s->tls_version, sizeof s->tls_version, imstls_output_tls_version(o));
        break;
    case IMSTLS_EVENT_REGISTER_NOW:
        on_register_now(s, o);
        break;
    case IMSTLS_EVENT_SIP_RECEIVED:
        on_sip(s, o);
        break;
    case IMSTLS_EVENT_REGISTERED:
        s->registered++;
        s->registered_flow = imstls_output_flow(o);
        if (s->first_registered_flow == 0) s->first_registered_flow = s->registered_flow;
        CHECK(imstls_output_expires_s(o) > 0);
        break;
    case IMSTLS_EVENT_PONG_RECEIVED:
        s->pongs++;
        break;
    case IMSTLS_EVENT_SUPERSEDED:
        s->superseded++;
        s->superseded_flow = imstls_output_flow(o);
        break;
    case IMSTLS_EVENT_CONNECTION_LOST:
        if (s->lost < 2) {
            copy_str(s->lost_reason[s->lost], sizeof s->lost_reason[s->lost], imstls_output_reason(o));
            s->lost_dropped[s->lost] = imstls_output_dropped_bytes(o);
        }
        s->lost++;
        CHECK(imstls_output_flags(o) & IMSTLS_FLAG_WAS_REGISTERED);
        break;
    case IMSTLS_EVENT_CERTIFICATE_REJECTED: {
        const imstls_error *e = imstls_output_error(o);
        s->cert_rejected++;
        copy_str(s->cert_reason, sizeof s->cert_reason, imstls_output_reason(o));
        if (CHECK(e != NULL)) {
            copy_str(s->alert_name, sizeof s->alert_name, imstls_error_alert_sent_name(e));
            s->have_alert = imstls_error_alert_sent(e, &s->alert) == IMSTLS_OK;
            copy_str(s->expected_name, sizeof s->expected_name, imstls_error_expected_name(e));
            s->presented[0] = '\0';
            for (size_t i = 0; i < imstls_error_presented_name_count(e); i++) {
                strncat(s->presented, imstls_error_presented_name(e, i),
                        sizeof s->presented - strlen(s->presented) - 2);
                strcat(s->presented, " ");
            }
            CHECK(imstls_error_result(e) == IMSTLS_CERTIFICATE_REJECTED);
        }
        break;
    }
    case IMSTLS_EVENT_TLS_FAILED:
        s->tls_failed++;
        break;
    case IMSTLS_EVENT_REGISTRATION_FAILED:
        s->reg_failed++;
        s->failed_status = imstls_output_sip_status(o);
        copy_failed_candidates(s, o);
        break;
    case IMSTLS_EVENT_BACKING_OFF:
        if (s->backoffs < 2) {
            s->backoff_delay_ms[s->backoffs] = imstls_output_delay_ms(o);
            s->backoff_step_ms[s->backoffs] = s->step_started_ms;
        }
        s->backoffs++;
        copy_failed_candidates(s, o);
        break;
    case IMSTLS_EVENT_DEREGISTERED:
        s->deregistered++;
        break;
    default:
        break;
    }
    fflush(stdout);
}

/* Sans-IO: one output. */
static void on_output(stack *s, const imstls_output *o) {
    uint64_t flow = imstls_output_flow(o);
    switch (imstls_output_kind(o)) {
    case IMSTLS_OUTPUT_CONNECT: {
        char local[64] = "", remote[64] = "";
        if (s->fd >= 0) close(s->fd);
        s->fd = tcp_connect(imstls_output_host(o), imstls_output_port(o), local, remote, sizeof local);
        if (s->fd < 0) {
            CHECK_OK(imstls_ue_connect_failed(s->ue, now_ms(), flow, IMSTLS_CONNECT_REFUSED, NULL));
            return;
        }
        s->fd_flow = flow;
        mini_ua_set_local(&s->ua, local);
        CHECK_OK(imstls_ue_connected(s->ue, now_ms(), flow, local, remote));
        break;
    }
    case IMSTLS_OUTPUT_TRANSMIT: {
        const uint8_t *data = NULL;
        size_t len = 0;
        CHECK_OK(imstls_output_data(o, &data, &len));
        if (flow != s->fd_flow || s->fd < 0) break;
        while (len > 0) {
            ssize_t n = send(s->fd, data, len, MSG_NOSIGNAL);
            if (n <= 0) break; /* the read side reports the failure */
            data += n;
            len -= (size_t)n;
        }
        s->transmits_since_input++;
        break;
    }
    case IMSTLS_OUTPUT_CLOSE:
        s->closed_flow = flow;
        if (flow == s->fd_flow && s->fd >= 0) {
            s->transmit_before_close = s->transmits_since_input > 0;
            close(s->fd);
            s->fd = -1;
        }
        break;
    case IMSTLS_OUTPUT_EVENT:
        on_event(s, o);
        break;
    default:
        CHECK(!"an unknown output kind");
    }
}

static void drain(stack *s) {
    imstls_output *o = NULL;
    if (s->ue != NULL) {
        while (imstls_ue_poll_output(s->ue, &o) == IMSTLS_OK) {
            on_output(s, o);
            imstls_output_free(o);
        }
    } else {
        while (imstls_driver_poll_event(s->driver, &o) == IMSTLS_OK) {
            CHECK(imstls_output_kind(o) == IMSTLS_OUTPUT_EVENT);
            on_event(s, o);
            imstls_output_free(o);
        }
    }
}

/* Sans-IO: wait for the socket or the next deadline (at most max_ms), feed what happened. */
static void sansio_step(stack *s, int max_ms) {
    uint64_t deadline = 0, now = now_ms();
    int timeout = max_ms;
    if (imstls_ue_next_timeout(s->ue, &deadline) == IMSTLS_OK) {
        uint64_t wait = deadline > now ? deadline - now : 0;
        if (wait < (uint64_t)timeout) timeout = (int)wait;
    }
    if (s->fd >= 0) {
        struct pollfd pfd = {s->fd, POLLIN, 0};
        if (poll(&pfd, 1, timeout) > 0) {
            uint8_t buf[16384];
            ssize_t n = recv(s->fd, buf, sizeof buf, 0);
            s->transmits_since_input = 0;
            if (n > 0) {
                CHECK_OK(imstls_ue_receive(s->ue, now_ms(), s->fd_flow, buf, (size_t)n));
            } else {
                uint32_t closure = n == 0 ? IMSTLS_CLOSURE_EOF
                                   : errno == ECONNRESET ? IMSTLS_CLOSURE_RESET
                                                         : IMSTLS_CLOSURE_ERROR;
                uint64_t flow = s->fd_flow;
                close(s->fd);
                s->fd = -1;
                CHECK_OK(imstls_ue_transport_closed(s->ue, now_ms(), flow, closure,
                                                    n < 0 ? strerror(errno) : NULL));
            }
        }
    } else {
        sleep_ms(timeout);
    }
    drain(s);
    CHECK_OK(imstls_ue_handle_timeout(s->ue, now_ms()));
    drain(s);
}

static void step(stack *s, int max_ms) {
    if (s->ue != NULL) {
        sansio_step(s, max_ms);
    } else {
        s->step_started_ms = now_ms();
        CHECK_OK(imstls_driver_run(s->driver, (uint32_t)max_ms));
        drain(s);
    }
}

typedef int (*predicate)(const stack *);

/* Runs until `done` holds or limit_ms pass; whether it holds. */
static int until(stack *s, predicate done, int limit_ms) {
    uint64_t end = now_ms() + (uint64_t)limit_ms;
    drain(s);
    while (!done(s) && now_ms() < end) step(s, 100);
    return done(s);
}

static int is_registered_and_proven(const stack *s) { return s->registered >= 1 && s->pongs >= 1; }
static int is_registered_again(const stack *s) { return s->registered >= 2 && s->pongs >= 2; }
static int is_challenged(const stack *s) { return s->challenged >= 1; }
static int is_superseded_and_registered(const stack *s) { return s->superseded >= 1 && s->registered >= 1; }
static int is_failed(const stack *s) { return s->reg_failed >= 1; }
static int is_deregistered(const stack *s) { return s->deregistered >= 1; }
static int holds_one_answer(const stack *s) { return s->held >= 1; }
static int holds_two_answers(const stack *s) { return s->held >= 2; }

/* ---- callbacks ----------------------------------------------------------------------------- */

typedef struct wake_probe {
    imstls_ue *ue;
    int calls;
    imstls_result reentrant; /* a call back into the same UE from the wake-up callback */
} wake_probe;

static void on_wake(void *userdata) {
    wake_probe *probe = userdata;
    imstls_state state;
    probe->calls++;
    probe->reentrant = imstls_ue_state(probe->ue, &state);
}

typedef struct log_probe {
    int records, leaks;
} log_probe;

static void on_log(void *userdata, imstls_log_level level, const char *target, const char *message) {
    log_probe *probe = userdata;
    probe->records++;
    (void)level;
    (void)target;
    /* Never secrets or identities in logs. */
    if (strstr(message, PASSWORD) != NULL || strstr(message, IMPI) != NULL ||
        strstr(message, "alice") != NULL) {
        probe->leaks++;
        printf("LEAK in log: %s\n", message);
    }
}

/* ---- scenarios: sans-IO ------------------------------------------------------------------ */

static void sansio_register(void) {
    begin("sans-IO: register, connection killed, re-register, de-register");
    imstls_config *config = make_config(opt.pcscf);
    stack s;
    stack_init(&s, "ue");
    wake_probe wake = {NULL, 0, IMSTLS_PANIC};
    log_probe logs = {0, 0};
    if (!CHECK_OK(imstls_ue_new(config, now_ms(), &s.ue))) return;
    imstls_config_free(config); /* the UE keeps its own reference */
    wake.ue = s.ue;
    CHECK_OK(imstls_ue_set_wake_callback(s.ue, on_wake, &wake));
    CHECK_OK(imstls_ue_set_log_callback(s.ue, on_log, &logs, IMSTLS_LOG_DEBUG));

    const char *impus[] = {IMPU};
    CHECK_OK(imstls_ue_start_registration(s.ue, now_ms(), IMPI, impus, 1));
    CHECK(until(&s, is_registered_and_proven, 30000));
    CHECK(s.tls_established >= 1 && strcmp(s.tls_version, "TLSv1.3") == 0);

    imstls_binding *binding = NULL;
    if (CHECK_OK(imstls_ue_binding(s.ue, &binding))) {
        CHECK(imstls_binding_registered(binding));
        CHECK(strcmp(imstls_binding_impi(binding), IMPI) == 0);
        CHECK(imstls_binding_impu_count(binding) == 1);
        CHECK(strcmp(imstls_binding_impu(binding, 0), IMPU) == 0);
        CHECK(imstls_binding_impu(binding, 1) == NULL);
        CHECK(strcmp(imstls_binding_tls_version(binding), "TLSv1.3") == 0);
        CHECK(imstls_binding_cipher_suite(binding)[0] != '\0');
        CHECK(strstr(imstls_binding_remote_addr(binding), "127.0.0.1:") != NULL);
        CHECK(imstls_binding_peer_san_count(binding) >= 1);
        imstls_binding_free(binding);
    }
    imstls_state state = 0;
    CHECK_OK(imstls_ue_state(s.ue, &state));
    CHECK(state == IMSTLS_STATE_REGISTERED);

    /* O.4.1: the P-CSCF resets the connection -> a new flow and a new registration. */
    CHECK(ctl("kill"));
    CHECK(until(&s, is_registered_again, 30000));
    CHECK(s.lost >= 1);
    CHECK(s.registered_flow != s.first_registered_flow);

    CHECK_OK(imstls_ue_deregister(s.ue, now_ms()));
    CHECK(until(&s, is_deregistered, 30000));
    CHECK_OK(imstls_ue_state(s.ue, &state));
    CHECK(state == IMSTLS_STATE_IDLE);
    uint64_t deadline = 4242;
    CHECK_RESULT(imstls_ue_next_timeout(s.ue, &deadline), IMSTLS_NOT_AVAILABLE);
    CHECK(deadline == 4242); /* out-parameters are written only on success */

    /* The wake-up callback ran after the UE was unlocked, so it could call back in. */
    CHECK(wake.calls > 0);
    CHECK_OK(wake.reentrant);
    CHECK(logs.records > 0);
    CHECK(logs.leaks == 0);
    imstls_ue_free(s.ue);
    if (s.fd >= 0) close(s.fd);
}

static void sansio_supersede(void) {
    begin("sans-IO: a second registration supersedes an incomplete one");
    imstls_config *config = make_config(opt.pcscf);
    stack s;
    stack_init(&s, "ue");
    if (!CHECK_OK(imstls_ue_new(config, now_ms(), &s.ue))) return;
    const char *impus[] = {IMPU};
    s.hold_challenges = 1;
    CHECK_OK(imstls_ue_start_registration(s.ue, now_ms(), IMPI, impus, 1));
    CHECK(until(&s, is_challenged, 30000));
    uint64_t old_flow = 0;
    CHECK_OK(imstls_ue_current_flow(s.ue, &old_flow));
    imstls_state state = 0;
    CHECK_OK(imstls_ue_state(s.ue, &state));
    CHECK(state == IMSTLS_STATE_AWAITING_REGISTER);

    s.hold_challenges = 0;
    CHECK_OK(imstls_ue_start_registration(s.ue, now_ms(), IMPI, impus, 1));
    CHECK(until(&s, is_superseded_and_registered, 30000));
    CHECK(s.superseded_flow == old_flow);
    CHECK(s.registered_flow != old_flow);
    imstls_ue_free(s.ue);
    imstls_config_free(config);
    if (s.fd >= 0) close(s.fd);
}

static void certificate_checks(stack *s, const char *reason, const char *alert, uint8_t number) {
    CHECK(s->cert_rejected == 1);
    CHECK(strcmp(s->cert_reason, reason) == 0);
    CHECK(strcmp(s->alert_name, alert) == 0);
    CHECK(s->have_alert && s->alert == number);
    CHECK(s->registered == 0);
}

static void sansio_certificate(void) {
    begin("sans-IO: expired P-CSCF certificate -> alert on the wire, reason \"expired\"");
    imstls_config *config = make_config(opt.expired);
    stack s;
    stack_init(&s, "ue");
    if (!CHECK_OK(imstls_ue_new(config, now_ms(), &s.ue))) return;
    const char *impus[] = {IMPU};
    CHECK_OK(imstls_ue_start_registration(s.ue, now_ms(), IMPI, impus, 1));
    CHECK(until(&s, is_failed, 30000));
    certificate_checks(&s, "expired", "certificate_expired", 45);
    CHECK(s.transmit_before_close); /* O.3.1.2: the fatal alert went out before the close */

    imstls_state state = 0;
    CHECK_OK(imstls_ue_state(s.ue, &state));
    CHECK(state == IMSTLS_STATE_CLOSED);
    imstls_error *e = NULL;
    if (CHECK_OK(imstls_ue_last_error(s.ue, &e))) {
        CHECK(imstls_error_result(e) == IMSTLS_CERTIFICATE_REJECTED);
        CHECK(strcmp(imstls_error_certificate_failure(e), "expired") == 0);
        CHECK(strcmp(imstls_error_tls_failure(e), "certificate") == 0);
        CHECK(strcmp(imstls_error_alert_sent_name(e), "certificate_expired") == 0);
        uint8_t alert = 0;
        CHECK_RESULT(imstls_error_alert_received(e, &alert), IMSTLS_NOT_AVAILABLE);
        CHECK(alert == 0);
        /* BUFFER_TOO_SMALL reports the size needed, then a copy of that size works. */
        char small[4];
        size_t needed = 0;
        CHECK_RESULT(imstls_error_copy_message(e, small, sizeof small, &needed),
                     IMSTLS_BUFFER_TOO_SMALL);
        CHECK(needed == strlen(imstls_error_message(e)) + 1);
        char *buf = malloc(needed);
        size_t written = 0;
        if (buf != NULL) {
            CHECK_OK(imstls_error_copy_message(e, buf, needed, &written));
            CHECK(written == needed && strcmp(buf, imstls_error_message(e)) == 0);
            free(buf);
        }
        imstls_error_free(e);
    }
    imstls_ue_free(s.ue);
    imstls_config_free(config);
    if (s.fd >= 0) close(s.fd);
}

static int is_backing_off(const stack *s) { return s->backoffs >= 1; }

/* A candidate nobody listens on (connect refused). */
static const char *REFUSED = "127.0.0.1:1";

static void sansio_failover(void) {
    begin("sans-IO failover: refused, then an expired certificate -> one event lists both");
    imstls_config *config = make_config2(REFUSED, opt.expired);
    stack s;
    stack_init(&s, "ue");
    if (!CHECK_OK(imstls_ue_new(config, now_ms(), &s.ue))) return;
    const char *impus[] = {IMPU};
    CHECK_OK(imstls_ue_start_registration(s.ue, now_ms(), IMPI, impus, 1));
    CHECK(until(&s, is_failed, 30000));
    CHECK(s.connecting == 2);
    CHECK(s.cert_rejected == 1);
    CHECK(s.failed_count == 2);
    CHECK(s.failed_index[0] == 0 && s.failed_index[1] == 1);
    CHECK(strcmp(s.failed_target[0], REFUSED) == 0);
    CHECK(strcmp(s.failed_reason[0], "connect_refused") == 0);
    CHECK(strcmp(s.failed_target[1], opt.expired) == 0);
    CHECK(strcmp(s.failed_reason[1], "expired") == 0);
    CHECK(strstr(s.failed_detail[1], "certificate_expired") != NULL);
    CHECK(s.failed_flow[0] != 0 && s.failed_flow[1] == s.closed_flow);
    CHECK(s.failed_out_of_range_ok);
    imstls_ue_free(s.ue);
    imstls_config_free(config);
    if (s.fd >= 0) close(s.fd);

    begin("sans-IO failover: every candidate refused -> BACKING_OFF lists each");
    config = make_config2(REFUSED, REFUSED);
    stack_init(&s, "ue");
    if (!CHECK_OK(imstls_ue_new(config, now_ms(), &s.ue))) return;
    CHECK_OK(imstls_ue_start_registration(s.ue, now_ms(), IMPI, impus, 1));
    CHECK(until(&s, is_backing_off, 30000));
    CHECK(s.reg_failed == 0);
    CHECK(s.failed_count == 2);
    CHECK(s.failed_index[0] == 0 && s.failed_index[1] == 1);
    CHECK(strcmp(s.failed_reason[0], "connect_refused") == 0);
    CHECK(strcmp(s.failed_reason[1], "connect_refused") == 0);
    CHECK(s.failed_flow[0] != s.failed_flow[1]);
    CHECK(s.failed_out_of_range_ok);
    imstls_ue_free(s.ue);
    imstls_config_free(config);
    if (s.fd >= 0) close(s.fd);
}

static void sansio_name_mismatch(void) {
    begin("sans-IO: P-CSCF certificate for another name -> expected vs presented names");
    imstls_config *config = make_config(opt.wrong_name);
    stack s;
    stack_init(&s, "ue");
    if (!CHECK_OK(imstls_ue_new(config, now_ms(), &s.ue))) return;
    const char *impus[] = {IMPU};
    CHECK_OK(imstls_ue_start_registration(s.ue, now_ms(), IMPI, impus, 1));
    CHECK(until(&s, is_failed, 30000));
    certificate_checks(&s, "name_mismatch", "bad_certificate", 42);
    CHECK(strcmp(s.expected_name, opt.server_name) == 0);
    CHECK(strstr(s.presented, "other.ims.test") != NULL);
    imstls_ue_free(s.ue);
    imstls_config_free(config);
    if (s.fd >= 0) close(s.fd);
}

/* ---- scenarios: managed driver ------------------------------------------------------------ */

static void driver_register(void) {
    begin("driver: register, connection killed, re-register, de-register");
    imstls_config *config = make_config(opt.pcscf);
    stack s;
    stack_init(&s, "drv");
    if (!CHECK_OK(imstls_driver_new(config, &s.driver))) return;
    imstls_config_free(config);
    const char *impus[] = {IMPU};
    CHECK_OK(imstls_driver_start_registration(s.driver, IMPI, impus, 1));
    CHECK(until(&s, is_registered_and_proven, 30000));
    int fd = -1;
    if (CHECK_OK(imstls_driver_fd(s.driver, &fd))) {
        CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC); /* the driver's own socket too */
    }
    imstls_binding *binding = NULL;
    if (CHECK_OK(imstls_driver_binding(s.driver, &binding))) {
        CHECK(imstls_binding_registered(binding));
        CHECK(strstr(imstls_binding_local_addr(binding), "127.0.0.1:") != NULL);
        imstls_binding_free(binding);
    }
    CHECK(ctl("kill"));
    CHECK(until(&s, is_registered_again, 30000));
    CHECK(s.lost >= 1);
    CHECK(s.registered_flow != s.first_registered_flow);
    CHECK_OK(imstls_driver_deregister(s.driver));
    CHECK(until(&s, is_deregistered, 30000));
    fd = -1;
    CHECK_RESULT(imstls_driver_fd(s.driver, &fd), IMSTLS_NOT_AVAILABLE);
    CHECK(fd == -1);
    imstls_driver_free(s.driver);
}

static void driver_supersede(void) {
    begin("driver: a second registration supersedes an incomplete one");
    imstls_config *config = make_config(opt.pcscf);
    stack s;
    stack_init(&s, "drv");
    if (!CHECK_OK(imstls_driver_new(config, &s.driver))) return;
    imstls_config_free(config);
    const char *impus[] = {IMPU};
    s.hold_challenges = 1;
    CHECK_OK(imstls_driver_start_registration(s.driver, IMPI, impus, 1));
    CHECK(until(&s, is_challenged, 30000));
    s.hold_challenges = 0;
    CHECK_OK(imstls_driver_start_registration(s.driver, IMPI, impus, 1));
    CHECK(until(&s, is_superseded_and_registered, 30000));
    CHECK(s.superseded_flow != 0 && s.superseded_flow != s.registered_flow);
    imstls_driver_free(s.driver);
}

/* O.4.1, issue 12 s3: a stack that handles the old flow's 401 only after a new procedure
 * started must be told that the answer is stale; it must not be applied to the new flow. */
static void stale_answer(int driver_mode) {
    begin(driver_mode ? "driver: an old flow's 401 reported late is refused as stale"
                      : "sans-IO: an old flow's 401 reported late is refused as stale");
    imstls_config *config = make_config(opt.pcscf);
    stack s;
    stack_init(&s, driver_mode ? "drv" : "ue");
    imstls_result created = driver_mode ? imstls_driver_new(config, &s.driver)
                                        : imstls_ue_new(config, now_ms(), &s.ue);
    imstls_config_free(config);
    if (!CHECK_OK(created)) return;
    const char *impus[] = {IMPU};
    s.hold_answers = 1;
    CHECK_OK(s.ue ? imstls_ue_start_registration(s.ue, now_ms(), IMPI, impus, 1)
                  : imstls_driver_start_registration(s.driver, IMPI, impus, 1));
    CHECK(until(&s, holds_one_answer, 30000));
    CHECK_OK(s.ue ? imstls_ue_start_registration(s.ue, now_ms(), IMPI, impus, 1)
                  : imstls_driver_start_registration(s.driver, IMPI, impus, 1));
    CHECK(until(&s, holds_two_answers, 30000));
    if (!CHECK(s.held == 2 && s.held_flow[0] != s.held_flow[1])) goto done;
    imstls_state state = 0;
    CHECK_OK(s.ue ? imstls_ue_state(s.ue, &state) : imstls_driver_state(s.driver, &state));
    CHECK(state == IMSTLS_STATE_REGISTERING);
    /* The old flow's 401, and a 200 or 403 claimed for it: all refused, nothing changes. */
    mini_ua_result ok = {MINI_UA_REGISTERED, 0, 200, 600, 0};
    mini_ua_result forbidden = {MINI_UA_FAILED, 0, 403, 0, 0};
    CHECK_RESULT(report_answer(&s, s.held_flow[0], s.held_answer[0]), IMSTLS_STALE_REPORT);
    CHECK_RESULT(report_answer(&s, s.held_flow[0], ok), IMSTLS_STALE_REPORT);
    CHECK_RESULT(report_answer(&s, s.held_flow[0], forbidden), IMSTLS_STALE_REPORT);
    CHECK(strcmp(imstls_result_str(IMSTLS_STALE_REPORT), "unknown result code") != 0);
    CHECK_OK(s.ue ? imstls_ue_state(s.ue, &state) : imstls_driver_state(s.driver, &state));
    CHECK(state == IMSTLS_STATE_REGISTERING);
    /* The new flow's own answer is applied and the registration completes. */
    s.hold_answers = 0;
    s.challenged++;
    CHECK_OK(report_answer(&s, s.held_flow[1], s.held_answer[1]));
    CHECK(until(&s, is_superseded_and_registered, 30000));
    CHECK(s.registered_flow == s.held_flow[1]);
done:
    if (s.ue) imstls_ue_free(s.ue);
    if (s.driver) imstls_driver_free(s.driver);
    if (s.fd >= 0) close(s.fd);
}

static void driver_certificate(void) {
    begin("driver: expired P-CSCF certificate -> reason \"expired\", alert certificate_expired");
    imstls_config *config = make_config(opt.expired);
    stack s;
    stack_init(&s, "drv");
    if (!CHECK_OK(imstls_driver_new(config, &s.driver))) return;
    imstls_config_free(config);
    const char *impus[] = {IMPU};
    CHECK_OK(imstls_driver_start_registration(s.driver, IMPI, impus, 1));
    CHECK(until(&s, is_failed, 30000));
    certificate_checks(&s, "expired", "certificate_expired", 45);
    imstls_error *e = NULL;
    if (CHECK_OK(imstls_driver_last_error(s.driver, &e))) {
        CHECK(imstls_error_result(e) == IMSTLS_CERTIFICATE_REJECTED);
        CHECK(strcmp(imstls_error_certificate_failure(e), "expired") == 0);
        imstls_error_free(e);
    }
    imstls_driver_free(s.driver);
}

/* Drives the driver from this file's own poll() loop: fd, interest, timeout, process. */
static void own_loop_step(stack *s, int max_ms) {
    int fd = -1;
    uint32_t interest = 0;
    uint64_t timeout = (uint64_t)max_ms;
    struct pollfd pfd = {-1, 0, 0};
    if (imstls_driver_fd(s->driver, &fd) == IMSTLS_OK) {
        CHECK_OK(imstls_driver_interest(s->driver, &interest));
        pfd.fd = fd;
        pfd.events = (short)(((interest & IMSTLS_INTEREST_READABLE) ? POLLIN : 0) |
                             ((interest & IMSTLS_INTEREST_WRITABLE) ? POLLOUT : 0));
    }
    uint64_t next = 0;
    if (imstls_driver_timeout_ms(s->driver, &next) == IMSTLS_OK && next < timeout) timeout = next;
    poll(&pfd, 1, (int)timeout);
    CHECK_OK(imstls_driver_process(s->driver));
    drain(s);
}

static void driver_own_loop(void) {
    begin("driver: the application's own poll() loop (fd, interest, timeout, process)");
    imstls_config *config = make_config(opt.pcscf);
    stack s;
    stack_init(&s, "loop");
    if (!CHECK_OK(imstls_driver_new(config, &s.driver))) return;
    imstls_config_free(config);
    const char *impus[] = {IMPU};
    CHECK_OK(imstls_driver_start_registration(s.driver, IMPI, impus, 1));
    uint64_t end = now_ms() + 30000;
    drain(&s);
    while (!is_registered_and_proven(&s) && now_ms() < end) own_loop_step(&s, 200);
    CHECK(is_registered_and_proven(&s));
    CHECK_OK(imstls_driver_deregister(s.driver));
    end = now_ms() + 30000;
    while (!is_deregistered(&s) && now_ms() < end) own_loop_step(&s, 200);
    CHECK(is_deregistered(&s));
    imstls_driver_free(s.driver);
}

/* `.invalid` never resolves (RFC 6761 §6.4). Resolution runs on imstls's own thread: right
 * after start_registration the loop has a descriptor to wait on (the driver's wake-up one),
 * and the failures come back through the application's own poll() loop. */
static void driver_unresolved(void) {
    begin("driver: names resolve off the caller's thread; one that does not is \"connect_unresolved\"");
    imstls_config *config = make_config2("nonexistent.invalid:5061", "nonexistent.invalid:5062");
    stack s;
    stack_init(&s, "dns");
    if (!CHECK_OK(imstls_driver_new(config, &s.driver))) return;
    imstls_config_free(config);
    CHECK_RESULT(imstls_driver_set_connection_attempt_delay_ms(s.driver, 9), IMSTLS_INVALID_ARGUMENT);
    CHECK_RESULT(imstls_driver_set_connection_attempt_delay_ms(s.driver, 2001), IMSTLS_INVALID_ARGUMENT);
    CHECK_OK(imstls_driver_set_connection_attempt_delay_ms(s.driver, 250));
    const char *impus[] = {IMPU};
    CHECK_OK(imstls_driver_start_registration(s.driver, IMPI, impus, 1));
    int fd = -1;
    uint32_t interest = 0;
    CHECK_OK(imstls_driver_fd(s.driver, &fd));
    CHECK_OK(imstls_driver_interest(s.driver, &interest));
    CHECK(fd >= 0 && interest == IMSTLS_INTEREST_READABLE);
    uint64_t end = now_ms() + 20000;
    drain(&s);
    while (!is_backing_off(&s) && now_ms() < end) own_loop_step(&s, 200);
    CHECK(is_backing_off(&s));
    CHECK(s.failed_count == 2);
    CHECK(strcmp(s.failed_reason[0], "connect_unresolved") == 0);
    CHECK(strcmp(s.failed_reason[1], "connect_unresolved") == 0);
    imstls_driver_free(s.driver);
}

static void driver_adopt(int borrow) {
    begin(borrow ? "driver: the application's socket, lent (IMSTLS_FD_BORROW)"
                 : "driver: the application's socket, given (IMSTLS_FD_TRANSFER)");
    imstls_config *config = make_config(opt.pcscf);
    stack s;
    stack_init(&s, borrow ? "lent" : "given");
    if (!CHECK_OK(imstls_driver_new(config, &s.driver))) return;
    imstls_config_free(config);
    CHECK_RESULT(imstls_driver_adopt_fd(s.driver, 1, 0, IMSTLS_FD_BORROW), IMSTLS_WRONG_MODE);
    CHECK_RESULT(imstls_driver_set_connect_mode(s.driver, 7), IMSTLS_INVALID_ARGUMENT);
    CHECK_OK(imstls_driver_set_connect_mode(s.driver, IMSTLS_CONNECT_EXTERNAL));
    s.external = 1;
    s.borrow = borrow;
    const char *impus[] = {IMPU};
    CHECK_OK(imstls_driver_start_registration(s.driver, IMPI, impus, 1));
    CHECK(until(&s, is_registered_and_proven, 30000));
    CHECK_RESULT(imstls_driver_adopt_fd(s.driver, 999, 0, IMSTLS_FD_BORROW), IMSTLS_UNKNOWN_FLOW);
    CHECK_OK(imstls_driver_deregister(s.driver));
    CHECK(until(&s, is_deregistered, 30000));
    imstls_driver_free(s.driver);
    if (borrow) {
        /* The driver never closes a lent descriptor: it is still open, and ours to close. */
        CHECK(s.lent_fd >= 0 && fcntl(s.lent_fd, F_GETFD) != -1);
        if (s.lent_fd >= 0) close(s.lent_fd);
    }
}

/* Issue 12 s5: a registered P-CSCF that floods CRLFCRLF pings and never reads. The smallest
 * socket buffers on both ends (its receive buffer, our send buffer) make the driver's own
 * outgoing queue grow after a few hundred pongs: at FLOOD_CAP the flow must fail with "peer_not_reading", the queue must never
 * be seen above the cap, and recovery must back off before the next flow (which the
 * P-CSCF floods again). Bounded: FLOOD_FLOWS flows, at most FLOOD_LIMIT_MS. */
#define FLOOD_CAP 4096 /* the smallest allowed is twice the largest SIP message, 2 x 2 KiB */
#define FLOOD_FLOWS 2
#define FLOOD_LIMIT_MS 90000

static int flood_done(const stack *s) {
    return s->lost >= FLOOD_FLOWS && s->backoffs >= FLOOD_FLOWS &&
           s->reconnect_seen_ms[FLOOD_FLOWS - 1] != 0;
}

static int is_registered(const stack *s) { return s->registered >= 1; }

static void driver_flood(void) {
    begin("driver: a P-CSCF floods pings and never reads -> peer_not_reading, queue capped, "
          "back-off");
    imstls_config_builder *b = NULL;
    imstls_config *config = NULL;
    if (!CHECK_OK(imstls_config_builder_new(&b))) return;
    CHECK_OK(imstls_config_builder_add_pcscf(b, opt.flood));
    CHECK_OK(imstls_config_builder_set_server_name(b, opt.server_name));
    CHECK_OK(imstls_config_builder_add_trust_anchors_file(b, opt.ca));
    CHECK_OK(imstls_config_builder_set_connect_timeout_ms(b, 10000));
    CHECK_OK(imstls_config_builder_set_handshake_timeout_ms(b, 20000));
    CHECK_OK(imstls_config_builder_set_registration_timeout_ms(b, 20000));
    /* Our own keep-alive goes unanswered: a long pong wait, so that the cap is what fails
     * the flow even under Valgrind. */
    CHECK_OK(imstls_config_builder_set_keepalive(b, true, false, 60000));
    CHECK_OK(imstls_config_builder_set_backoff(b, 250, 250, 1000));
    CHECK_OK(imstls_config_builder_set_max_sip_message_size(b, 2048));
    CHECK_OK(imstls_config_builder_set_queue_limits(b, 0, FLOOD_CAP, 0));
    CHECK_OK(imstls_config_builder_set_random_seed(b, 11));
    CHECK_OK(imstls_config_builder_build(b, &config));
    imstls_config_builder_free(b);
    stack s;
    stack_init(&s, "flood");
    imstls_result created = imstls_driver_new(config, &s.driver);
    imstls_config_free(config);
    if (!CHECK_OK(created)) return;
    CHECK_OK(imstls_driver_set_connect_mode(s.driver, IMSTLS_CONNECT_EXTERNAL));
    s.external = 1;
    s.send_buffer = 1024; /* the kernel's minimum, about 4.5 KiB */
    s.quiet_pings = 1;
    const char *impus[] = {IMPU};
    CHECK_OK(imstls_driver_start_registration(s.driver, IMPI, impus, 1));
    CHECK(until(&s, is_registered, 30000));

    size_t outgoing = 0, events = 0, outgoing_peak = 0, events_peak = 0;
    CHECK_RESULT(imstls_driver_queued_bytes(NULL, &outgoing, &events), IMSTLS_NULL_ARGUMENT);
    CHECK_OK(imstls_driver_queued_bytes(s.driver, NULL, NULL));
    uint64_t start = now_ms(), end = start + FLOOD_LIMIT_MS;
    while (!flood_done(&s) && now_ms() < end) {
        s.step_started_ms = now_ms();
        CHECK_OK(imstls_driver_run(s.driver, 50));
        /* Before draining: what one run left queued. */
        if (CHECK_OK(imstls_driver_queued_bytes(s.driver, &outgoing, &events))) {
            if (outgoing > outgoing_peak) outgoing_peak = outgoing;
            if (events > events_peak) events_peak = events;
        }
        drain(&s);
    }
    printf("   flood: %d losses in %llu ms (%s, %zu bytes dropped; %s, %zu bytes dropped), "
           "%d pings answered, outgoing queue peak %zu bytes (cap %d), event queue peak %zu "
           "bytes, back-off %llu ms (next flow after %lld ms) then %llu ms (after %lld ms)\n",
           s.lost, (unsigned long long)(now_ms() - start), s.lost_reason[0], s.lost_dropped[0],
           s.lost_reason[1], s.lost_dropped[1], s.ping_answers, outgoing_peak, FLOOD_CAP,
           events_peak, (unsigned long long)s.backoff_delay_ms[0],
           (long long)(s.reconnect_seen_ms[0] - s.backoff_step_ms[0]),
           (unsigned long long)s.backoff_delay_ms[1],
           (long long)(s.reconnect_seen_ms[1] - s.backoff_step_ms[1]));
    CHECK(flood_done(&s));
    for (int i = 0; i < FLOOD_FLOWS; i++) {
        CHECK(strcmp(s.lost_reason[i], "peer_not_reading") == 0);
        /* Failed as the queue crossed the cap: over it by at most the record that crossed. */
        CHECK(s.lost_dropped[i] > FLOOD_CAP && s.lost_dropped[i] <= FLOOD_CAP + 64);
        /* An overload never counts as a proven flow: a real wait, not an instant reconnect
         * (RFC 5626 s4.5: at least half the 250 ms base, at most the 1 s cap). */
        CHECK(s.backoff_delay_ms[i] >= 125 && s.backoff_delay_ms[i] <= 1000);
        /* ... and the next flow waited for it: the back-off began no earlier than the step
         * that reported it (1 ms for rounding). */
        CHECK(s.reconnect_seen_ms[i] + 1 >= s.backoff_step_ms[i] + s.backoff_delay_ms[i]);
    }
    CHECK(outgoing_peak <= FLOOD_CAP);
    CHECK(s.ping_answers > 0);
    CHECK(s.registered >= FLOOD_FLOWS);
    imstls_driver_free(s.driver);
}

typedef struct runner {
    imstls_driver *driver;
    imstls_result result;
} runner;

static void *run_driver(void *arg) {
    runner *r = arg;
    /* BUSY only if the main thread happens to hold the driver at this very moment. */
    for (int attempt = 0; attempt < 50; attempt++) {
        r->result = imstls_driver_run(r->driver, 1500);
        if (r->result != IMSTLS_BUSY) break;
        sleep_ms(5);
    }
    return NULL;
}

/* Retries a call that may meet the other thread's brief hold; the final result. */
#define RETRY_BUSY(expr)                                                  \
    do {                                                                  \
        rc = (expr);                                                      \
        for (int attempt = 0; rc == IMSTLS_BUSY && attempt < 50; attempt++) { \
            sleep_ms(20);                                                 \
            rc = (expr);                                                  \
        }                                                                 \
    } while (0)

static void driver_run_unlocked(void) {
    begin("driver: run() does not hold the driver while it waits");
    imstls_config *config = make_config("127.0.0.1:9");
    runner r = {NULL, IMSTLS_PANIC};
    imstls_result rc;
    if (!CHECK_OK(imstls_driver_new(config, &r.driver))) return;
    imstls_config_free(config);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, run_driver, &r) == 0);
    sleep_ms(100);
    imstls_state state = 0;
    /* While run() waits (1.5 s) the driver is free: this call gets through. */
    RETRY_BUSY(imstls_driver_state(r.driver, &state));
    CHECK_OK(rc);
    CHECK(state == IMSTLS_STATE_IDLE);
    RETRY_BUSY(imstls_driver_network_changed(r.driver)); /* an input wakes the waiting run() */
    CHECK_OK(rc);
    pthread_join(thread, NULL);
    CHECK_OK(r.result);
    imstls_driver_free(r.driver);
}

/* ---- scenarios: races between threads on one driver --------------------------------------- */

static int wake_race_entered, wake_race_finished;

/* Sits in the wake-up callback long enough for the main thread to replace it and free the
 * userdata; then writes through the userdata. */
static void on_wake_slow(void *userdata) {
    int *counter = userdata;
    __atomic_store_n(&wake_race_entered, 1, __ATOMIC_SEQ_CST);
    sleep_ms(300);
    (*counter)++;
    __atomic_store_n(&wake_race_finished, 1, __ATOMIC_SEQ_CST);
}

typedef struct wake_race {
    imstls_driver *driver; /* one of the two */
    imstls_ue *ue;
} wake_race;

static void *input_on_thread(void *arg) {
    wake_race *w = arg;
    /* An input: the wake-up callback runs on this thread after it. */
    if (w->driver != NULL) imstls_driver_set_connect_mode(w->driver, IMSTLS_CONNECT_MANAGED);
    else imstls_ue_handle_timeout(w->ue, now_ms());
    return NULL;
}

static void race_wake_callback_replaced(int use_ue) {
    begin(use_ue ? "race: replacing a UE's wake-up callback waits for a call on another thread"
                 : "race: replacing the wake-up callback waits for a call running on another thread");
    imstls_config *config = make_config("127.0.0.1:9");
    wake_race w = {NULL, NULL};
    if (use_ue) {
        if (!CHECK_OK(imstls_ue_new(config, now_ms(), &w.ue))) return;
    } else if (!CHECK_OK(imstls_driver_new(config, &w.driver))) {
        return;
    }
    imstls_config_free(config);
    int *counter = malloc(sizeof *counter);
    if (!CHECK(counter != NULL)) return;
    *counter = 0;
    __atomic_store_n(&wake_race_entered, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&wake_race_finished, 0, __ATOMIC_SEQ_CST);
    CHECK_OK(use_ue ? imstls_ue_set_wake_callback(w.ue, on_wake_slow, counter)
                    : imstls_driver_set_wake_callback(w.driver, on_wake_slow, counter));
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, input_on_thread, &w) == 0);
    uint64_t give_up = now_ms() + 10000;
    while (!__atomic_load_n(&wake_race_entered, __ATOMIC_SEQ_CST) && now_ms() < give_up) sleep_ms(1);
    CHECK(__atomic_load_n(&wake_race_entered, __ATOMIC_SEQ_CST));
    /* The callback is running on the other thread now. */
    CHECK_OK(use_ue ? imstls_ue_set_wake_callback(w.ue, NULL, NULL)
                    : imstls_driver_set_wake_callback(w.driver, NULL, NULL));
    /* The barrier: the old callback has returned; freeing its userdata is safe. */
    CHECK(__atomic_load_n(&wake_race_finished, __ATOMIC_SEQ_CST));
    free(counter);
    pthread_join(thread, NULL);
    if (use_ue) imstls_ue_free(w.ue);
    else imstls_driver_free(w.driver);
}

typedef struct blocked_run {
    imstls_driver *driver;
    uint32_t max_wait_ms;
    imstls_result result;
    uint64_t elapsed_ms;
    int started;
} blocked_run;

static void *run_once(void *arg) {
    blocked_run *r = arg;
    uint64_t start = now_ms();
    __atomic_store_n(&r->started, 1, __ATOMIC_SEQ_CST);
    r->result = imstls_driver_run(r->driver, r->max_wait_ms);
    r->elapsed_ms = now_ms() - start;
    return NULL;
}

static void race_free_while_run_waits(void) {
    begin("race: imstls_driver_free while imstls_driver_run waits on another thread");
    imstls_config *config = make_config("127.0.0.1:9");
    blocked_run r = {NULL, 2000, IMSTLS_PANIC, 0, 0};
    if (!CHECK_OK(imstls_driver_new(config, &r.driver))) return;
    imstls_config_free(config);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, run_once, &r) == 0);
    while (!__atomic_load_n(&r.started, __ATOMIC_SEQ_CST)) sleep_ms(1);
    sleep_ms(300); /* run() is in its wait now (an idle driver: nothing to process) */
    imstls_driver_free(r.driver); /* must not pull the driver from under the waiting run */
    pthread_join(thread, NULL);
    printf("   run returned %s after %llu ms\n", imstls_result_str(r.result),
           (unsigned long long)r.elapsed_ms);
    /* The free stopped the run: it returned at once, not after its 2 s. */
    CHECK_RESULT(r.result, IMSTLS_STOPPED);
    CHECK(r.elapsed_ms < 1500);
}

typedef struct loop_thread {
    imstls_driver *driver;
    int iterations;
    imstls_result last;
    uint64_t stopped_at;
} loop_thread;

static void *run_loop(void *arg) {
    loop_thread *l = arg;
    for (;;) {
        imstls_result rc = imstls_driver_run(l->driver, 5000);
        if (rc == IMSTLS_BUSY) continue;
        __atomic_add_fetch(&l->iterations, 1, __ATOMIC_SEQ_CST);
        if (rc != IMSTLS_OK) {
            l->last = rc;
            l->stopped_at = now_ms();
            return NULL;
        }
    }
}

static void driver_stop_and_wake(void) {
    begin("driver: imstls_driver_wake and imstls_driver_stop end a waiting run early");
    imstls_config *config = make_config("127.0.0.1:9");
    loop_thread l = {NULL, 0, IMSTLS_PANIC, 0};
    if (!CHECK_OK(imstls_driver_new(config, &l.driver))) return;
    imstls_config_free(config);
    CHECK_RESULT(imstls_driver_stop(NULL), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_driver_wake(NULL), IMSTLS_NULL_ARGUMENT);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, run_loop, &l) == 0);
    sleep_ms(200);
    int before = __atomic_load_n(&l.iterations, __ATOMIC_SEQ_CST);
    CHECK_OK(imstls_driver_wake(l.driver));
    uint64_t give_up = now_ms() + 2500;
    while (__atomic_load_n(&l.iterations, __ATOMIC_SEQ_CST) == before && now_ms() < give_up) sleep_ms(1);
    CHECK(__atomic_load_n(&l.iterations, __ATOMIC_SEQ_CST) > before); /* woken before its 5 s */
    sleep_ms(100);
    uint64_t stop_at = now_ms();
    CHECK_OK(imstls_driver_stop(l.driver));
    pthread_join(thread, NULL);
    CHECK_RESULT(l.last, IMSTLS_STOPPED);
    CHECK(l.stopped_at - stop_at < 1500);
    /* Stopping is final for run; everything else still works. */
    CHECK_RESULT(imstls_driver_run(l.driver, 1000), IMSTLS_STOPPED);
    CHECK_OK(imstls_driver_stop(l.driver));
    imstls_state state = 0;
    CHECK_OK(imstls_driver_state(l.driver, &state));
    CHECK(state == IMSTLS_STATE_IDLE);
    imstls_driver_free(l.driver);
}

typedef struct wake_swap {
    imstls_driver *driver;
    int first_calls, second_calls;
    imstls_result replaced;
} wake_swap;

static void on_wake_second(void *userdata) {
    wake_swap *w = userdata;
    w->second_calls++;
}

/* Replaces itself from inside: must neither deadlock nor fail. */
static void on_wake_first(void *userdata) {
    wake_swap *w = userdata;
    w->first_calls++;
    w->replaced = imstls_driver_set_wake_callback(w->driver, on_wake_second, w);
}

static void on_wake_free(void *userdata) {
    imstls_driver_free(userdata); /* frees the driver whose call is still on its way out */
}

static void driver_wake_reentrant(void) {
    begin("driver: the wake-up callback replaces itself, and frees its driver");
    imstls_config *config = make_config("127.0.0.1:9");
    wake_swap w = {NULL, 0, 0, IMSTLS_PANIC};
    if (!CHECK_OK(imstls_driver_new(config, &w.driver))) return;
    CHECK_OK(imstls_driver_set_wake_callback(w.driver, on_wake_first, &w));
    CHECK_OK(imstls_driver_set_connect_mode(w.driver, IMSTLS_CONNECT_MANAGED));
    CHECK_OK(w.replaced);
    CHECK(w.first_calls == 1 && w.second_calls == 0);
    CHECK_OK(imstls_driver_set_connect_mode(w.driver, IMSTLS_CONNECT_MANAGED));
    CHECK(w.first_calls == 1 && w.second_calls == 1);
    imstls_driver_free(w.driver);

    imstls_driver *driver = NULL;
    if (!CHECK_OK(imstls_driver_new(config, &driver))) return;
    imstls_config_free(config);
    CHECK_OK(imstls_driver_set_wake_callback(driver, on_wake_free, driver));
    /* The callback frees the driver; this call still returns normally (Valgrind watches). */
    CHECK_OK(imstls_driver_set_connect_mode(driver, IMSTLS_CONNECT_EXTERNAL));
}

/* ---- scenarios: misuse --------------------------------------------------------------------- */

static void misuse_null(void) {
    begin("misuse: NULL everywhere");
    imstls_config_builder *b = NULL;
    imstls_config *config = NULL;
    imstls_ue *ue = NULL;
    imstls_output *o = NULL;
    uint64_t now = now_ms();
    const char *impus[] = {IMPU};
    const char *null_impus[] = {NULL};

    CHECK_RESULT(imstls_config_builder_new(NULL), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_config_builder_add_pcscf(NULL, "127.0.0.1"), IMSTLS_NULL_ARGUMENT);
    CHECK_OK(imstls_config_builder_new(&b));
    CHECK_RESULT(imstls_config_builder_add_pcscf(b, NULL), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_config_builder_add_trust_anchors_pem(b, NULL, 10), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_config_builder_set_kx_groups(b, NULL, 2), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_config_builder_build(b, NULL), IMSTLS_NULL_ARGUMENT);
    CHECK_OK(imstls_config_builder_add_pcscf(b, "127.0.0.1:9"));
    CHECK_OK(imstls_config_builder_build(b, &config));
    imstls_error *e = NULL;
    if (CHECK_OK(imstls_config_builder_last_error(b, &e))) {
        CHECK(imstls_error_result(e) == IMSTLS_NULL_ARGUMENT);
        imstls_error_free(e);
    }
    CHECK_RESULT(imstls_config_builder_last_error(b, NULL), IMSTLS_NULL_ARGUMENT);

    CHECK_RESULT(imstls_ue_new(NULL, now, &ue), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_ue_new(config, now, NULL), IMSTLS_NULL_ARGUMENT);
    CHECK_OK(imstls_ue_new(config, now, &ue));
    CHECK_RESULT(imstls_ue_start_registration(NULL, now, IMPI, impus, 1), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_ue_start_registration(ue, now, NULL, impus, 1), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_ue_start_registration(ue, now, IMPI, NULL, 1), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_ue_start_registration(ue, now, IMPI, null_impus, 1), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_ue_start_registration(ue, now, IMPI, impus, 0), IMSTLS_INVALID_IDENTITY);
    CHECK_RESULT(imstls_ue_send_sip(ue, now, NULL, 10), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_ue_receive(ue, now, 1, NULL, 10), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_ue_poll_output(NULL, &o), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_ue_poll_output(ue, NULL), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_ue_handle_timeout(NULL, now), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_ue_next_timeout(ue, NULL), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_ue_state(NULL, NULL), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_ue_binding(ue, NULL), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_ue_last_error(NULL, &e), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_driver_run(NULL, 0), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_driver_poll_event(NULL, &o), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_driver_new(config, NULL), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_config_clone(NULL, &config), IMSTLS_NULL_ARGUMENT);
    CHECK(o == NULL); /* untouched by every failing call */

    /* Accessors on NULL give neutral values, never crash. */
    CHECK(imstls_output_kind(NULL) == IMSTLS_OUTPUT_NONE);
    CHECK(imstls_output_event(NULL) == IMSTLS_EVENT_NONE);
    CHECK(strcmp(imstls_output_host(NULL), "") == 0);
    CHECK(imstls_output_error(NULL) == NULL);
    CHECK(imstls_output_flow(NULL) == 0);
    CHECK(strcmp(imstls_error_message(NULL), "") == 0);
    CHECK(imstls_error_presented_name(NULL, 0) == NULL);
    CHECK(imstls_binding_impu(NULL, 0) == NULL);
    CHECK(imstls_config_candidate_count(NULL) == 0);
    CHECK(strcmp(imstls_result_str(99999), "unknown result code") == 0);
    CHECK(strcmp(imstls_result_str(IMSTLS_BUSY), "another call on this handle is in progress") == 0);

    /* Every _free accepts NULL. */
    imstls_config_builder_free(NULL);
    imstls_config_free(NULL);
    imstls_ue_free(NULL);
    imstls_driver_free(NULL);
    imstls_output_free(NULL);
    imstls_error_free(NULL);
    imstls_binding_free(NULL);

    imstls_ue_free(ue);
    imstls_config_free(config);
    imstls_config_builder_free(b);
}

static void misuse_utf8_and_arguments(void) {
    begin("misuse: invalid UTF-8, out-of-range codes, bad configuration");
    imstls_config_builder *b = NULL;
    imstls_config *config = (imstls_config *)&passed; /* a sentinel that must stay untouched */
    imstls_error *e = NULL;
    uint64_t now = now_ms();
    CHECK_OK(imstls_config_builder_new(&b));
    CHECK_RESULT(imstls_config_builder_add_pcscf(b, "pcscf\xff\xfe.example"), IMSTLS_INVALID_UTF8);
    if (CHECK_OK(imstls_config_builder_last_error(b, &e))) {
        CHECK(strstr(imstls_error_message(e), "UTF-8") != NULL);
        imstls_error_free(e);
    }
    /* Nothing is configured yet: build fails and names the field. */
    CHECK_RESULT(imstls_config_builder_build(b, &config), IMSTLS_INVALID_CONFIG);
    CHECK(config == (imstls_config *)&passed);
    if (CHECK_OK(imstls_config_builder_last_error(b, &e))) {
        CHECK(strcmp(imstls_error_config_field(e), "pcscf") == 0);
        imstls_error_free(e);
    }
    CHECK_RESULT(imstls_config_builder_add_pcscf(b, "pcscf.example:99999"), IMSTLS_INVALID_CONFIG);
    CHECK_RESULT(imstls_config_builder_set_tls_versions(b, 3), IMSTLS_INVALID_ARGUMENT);
    CHECK_OK(imstls_config_builder_set_tls_versions(b, IMSTLS_TLS_1_3_ONLY));
    CHECK_RESULT(imstls_config_builder_set_certificate_request_policy(b, 0), IMSTLS_INVALID_ARGUMENT);
    CHECK_RESULT(imstls_config_builder_set_connect_timeout_ms(b, 0), IMSTLS_INVALID_CONFIG);
    const char *weak[] = {"X25519"};
    const char *unknown[] = {"ffdhe2048"};
    CHECK_RESULT(imstls_config_builder_set_kx_groups(b, unknown, 1), IMSTLS_INVALID_CONFIG);
    CHECK_OK(imstls_config_builder_set_kx_groups(b, weak, 1));
    CHECK_OK(imstls_config_builder_add_pcscf(b, "127.0.0.1:9"));
    CHECK_RESULT(imstls_config_builder_build(b, &config), IMSTLS_INVALID_CONFIG);
    if (CHECK_OK(imstls_config_builder_last_error(b, &e))) {
        CHECK(strcmp(imstls_error_config_field(e), "kx_groups") == 0); /* P-256 is mandatory */
        imstls_error_free(e);
    }
    const char *good[] = {"X25519", "secp256r1"};
    CHECK_OK(imstls_config_builder_set_kx_groups(b, good, 2));
    CHECK_OK(imstls_config_builder_add_trust_anchors_file(b, "/nonexistent/imstls-ca.pem"));
    CHECK_RESULT(imstls_config_builder_build(b, &config), IMSTLS_CONFIG_FILE);
    imstls_config_builder_free(b);

    /* The key log: an unopenable file fails the build and names key_log; off again, it builds. */
    CHECK_OK(imstls_config_builder_new(&b));
    CHECK_OK(imstls_config_builder_add_pcscf(b, "127.0.0.1:9"));
    CHECK_RESULT(imstls_config_builder_set_key_log_file(NULL, "/tmp/k"), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_config_builder_set_key_log_file(b, NULL), IMSTLS_NULL_ARGUMENT);
    CHECK_RESULT(imstls_config_builder_set_key_log_callback(NULL, NULL, NULL), IMSTLS_NULL_ARGUMENT);
    CHECK_OK(imstls_config_builder_set_key_log_file(b, "/nonexistent/imstls-keys.log"));
    CHECK_RESULT(imstls_config_builder_build(b, &config), IMSTLS_CONFIG_FILE);
    if (CHECK_OK(imstls_config_builder_last_error(b, &e))) {
        CHECK(strcmp(imstls_error_config_field(e), "key_log") == 0);
        imstls_error_free(e);
    }
    CHECK_OK(imstls_config_builder_set_key_log_callback(b, NULL, NULL)); /* off */
    if (CHECK_OK(imstls_config_builder_build(b, &config))) imstls_config_free(config);
    config = (imstls_config *)&passed;
    imstls_config_builder_free(b);

    CHECK_OK(imstls_config_builder_new(&b));
    CHECK_OK(imstls_config_builder_add_pcscf(b, "127.0.0.1:9"));
    CHECK_OK(imstls_config_builder_set_conformance_log_entries(b, 100000));
    CHECK_RESULT(imstls_config_builder_build(b, &config), IMSTLS_INVALID_CONFIG);
    if (CHECK_OK(imstls_config_builder_last_error(b, &e))) {
        CHECK(strcmp(imstls_error_config_field(e), "conformance_log_entries") == 0);
        CHECK(strstr(imstls_error_message(e), "4096") != NULL);
        imstls_error_free(e);
    }
    CHECK_OK(imstls_config_builder_set_conformance_log_entries(b, 0));
    /* A queue cap below twice the largest SIP message (default 128 KiB) is refused. */
    CHECK_OK(imstls_config_builder_set_queue_limits(b, 0, 4096, 0));
    CHECK_RESULT(imstls_config_builder_build(b, &config), IMSTLS_INVALID_CONFIG);
    if (CHECK_OK(imstls_config_builder_last_error(b, &e))) {
        CHECK(strcmp(imstls_error_config_field(e), "max_driver_outgoing_bytes") == 0);
        imstls_error_free(e);
    }
    CHECK_OK(imstls_config_builder_set_queue_limits(b, 0, 512 * 1024, 0));
    CHECK_OK(imstls_config_builder_build(b, &config));
    imstls_config_builder_free(b);
    imstls_ue *ue = NULL;
    CHECK_OK(imstls_ue_new(config, now, &ue));
    const char *impus[] = {IMPU};
    const char *bad_impus[] = {"sip:al\xc3\x28ice@ims.test"};
    CHECK_RESULT(imstls_ue_start_registration(ue, now, "al\xc3\x28ice@ims.test", impus, 1),
                 IMSTLS_INVALID_UTF8);
    CHECK_RESULT(imstls_ue_start_registration(ue, now, IMPI, bad_impus, 1), IMSTLS_INVALID_UTF8);
    const char *not_uri[] = {"mailto:alice@ims.test"};
    CHECK_RESULT(imstls_ue_start_registration(ue, now, IMPI, not_uri, 1), IMSTLS_INVALID_IDENTITY);
    CHECK_RESULT(imstls_ue_transport_closed(ue, now, 1, 77, NULL), IMSTLS_INVALID_ARGUMENT);
    CHECK_RESULT(imstls_ue_connect_failed(ue, now, 1, 0, NULL), IMSTLS_INVALID_ARGUMENT);
    CHECK_RESULT(imstls_ue_registration_failed(ue, now, 0, 70000, 0), IMSTLS_INVALID_ARGUMENT);
    CHECK_RESULT(imstls_ue_set_log_callback(ue, on_log, NULL, 9), IMSTLS_INVALID_ARGUMENT);
    CHECK_RESULT(imstls_ue_handle_timeout(ue, UINT64_MAX), IMSTLS_INVALID_ARGUMENT);
    CHECK_OK(imstls_ue_handle_timeout(ue, now > 5000 ? now - 5000 : 0)); /* backwards: clamped */
    imstls_ue_free(ue);
    imstls_config_free(config);
}

static void misuse_order(void) {
    begin("misuse: calls in the wrong order");
    imstls_config *config = make_config("127.0.0.1:9");
    imstls_ue *ue = NULL;
    uint64_t now = now_ms();
    static const char reg[] = "REGISTER sip:ims.test SIP/2.0\r\nCSeq: 1 REGISTER\r\n"
                              "Content-Length: 0\r\n\r\n";
    if (!CHECK_OK(imstls_ue_new(config, now, &ue))) return;
    CHECK_RESULT(imstls_ue_send_sip(ue, now, (const uint8_t *)reg, sizeof reg - 1), IMSTLS_WRONG_STATE);
    CHECK_RESULT(imstls_ue_send_sip(ue, now, (const uint8_t *)"junk", 4), IMSTLS_BAD_SIP_MESSAGE);
    /* No flow yet: an answer can only belong to a flow that is gone. */
    CHECK_RESULT(imstls_ue_registration_succeeded(ue, now, 1, 600, 0), IMSTLS_STALE_REPORT);
    CHECK_RESULT(imstls_ue_registration_challenged(ue, now, 1, false), IMSTLS_STALE_REPORT);
    /* A bare LF ending the head with an INVITE behind it: refused, and the error says why. */
    static const char smuggle[] = "REGISTER sip:ims.test SIP/2.0\r\nCSeq: 1 REGISTER\r\n"
                                  "Content-Length: 0\r\n\nINVITE sip:bob@ims.test SIP/2.0\r\n"
                                  "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    CHECK_RESULT(imstls_ue_send_sip(ue, now, (const uint8_t *)smuggle, sizeof smuggle - 1),
                 IMSTLS_BAD_SIP_MESSAGE);
    imstls_error *smuggle_error = NULL;
    if (CHECK_OK(imstls_ue_last_error(ue, &smuggle_error))) {
        CHECK(strstr(imstls_error_message(smuggle_error), "bare LF") != NULL);
        imstls_error_free(smuggle_error);
    }
    CHECK_RESULT(imstls_ue_deregister(ue, now), IMSTLS_WRONG_STATE);
    CHECK_RESULT(imstls_ue_rekey(ue, now), IMSTLS_WRONG_STATE);
    CHECK_RESULT(imstls_ue_connected(ue, now, 42, NULL, NULL), IMSTLS_UNKNOWN_FLOW);
    CHECK_RESULT(imstls_ue_receive(ue, now, 42, (const uint8_t *)"x", 1), IMSTLS_UNKNOWN_FLOW);
    CHECK_RESULT(imstls_ue_peer_not_reading(ue, now, 42, 1 << 20), IMSTLS_UNKNOWN_FLOW);
    imstls_error *e = NULL;
    if (CHECK_OK(imstls_ue_last_error(ue, &e))) {
        CHECK(imstls_error_result(e) == IMSTLS_UNKNOWN_FLOW);
        imstls_error_free(e);
    }
    imstls_binding *binding = (imstls_binding *)&passed;
    CHECK_RESULT(imstls_ue_binding(ue, &binding), IMSTLS_NOT_AVAILABLE);
    CHECK(binding == (imstls_binding *)&passed);

    /* Now a flow exists; the output data can be copied, with BUFFER_TOO_SMALL first. */
    const char *impus[] = {IMPU, "tel:+15551234"};
    CHECK_OK(imstls_ue_start_registration(ue, now, IMPI, impus, 2));
    imstls_output *o = NULL;
    CHECK_OK(imstls_ue_poll_output(ue, &o));
    CHECK(imstls_output_kind(o) == IMSTLS_OUTPUT_CONNECT);
    CHECK(strcmp(imstls_output_host(o), "127.0.0.1") == 0 && imstls_output_port(o) == 9);
    uint64_t flow = imstls_output_flow(o);
    imstls_output_free(o);
    CHECK_RESULT(imstls_ue_connected(ue, now, flow, "not an address", NULL), IMSTLS_INVALID_ARGUMENT);
    CHECK_OK(imstls_ue_connected(ue, now, flow, "127.0.0.1:40000", "127.0.0.1:9"));
    CHECK_RESULT(imstls_ue_connected(ue, now, flow, NULL, NULL), IMSTLS_WRONG_STATE);
    int transmits = 0;
    while (imstls_ue_poll_output(ue, &o) == IMSTLS_OK) {
        if (imstls_output_kind(o) == IMSTLS_OUTPUT_TRANSMIT) {
            transmits++;
            uint8_t small[8];
            size_t needed = 0;
            const uint8_t *data = NULL;
            size_t len = 0;
            CHECK_OK(imstls_output_data(o, &data, &len));
            CHECK_RESULT(imstls_output_copy_data(o, small, sizeof small, &needed), IMSTLS_BUFFER_TOO_SMALL);
            CHECK(needed == len && len > sizeof small); /* the ClientHello */
            CHECK_RESULT(imstls_output_copy_data(o, NULL, 0, &needed), IMSTLS_BUFFER_TOO_SMALL);
            uint8_t *copy = malloc(needed);
            if (copy != NULL) {
                CHECK_OK(imstls_output_copy_data(o, copy, needed, &needed));
                CHECK(memcmp(copy, data, len) == 0);
                free(copy);
            }
        }
        imstls_output_free(o);
    }
    CHECK(transmits == 1);
    CHECK_RESULT(imstls_ue_poll_output(ue, &o), IMSTLS_NOTHING_MORE);
    uint64_t deadline = 0;
    CHECK_OK(imstls_ue_next_timeout(ue, &deadline));
    CHECK(deadline > now);
    imstls_ue_free(ue);
    imstls_config_free(config);
}

/* ---- scenarios: threads and re-entrancy ---------------------------------------------------- */

typedef struct busy_probe {
    imstls_ue *ue, *other;
    int fired;
    imstls_result from_thread, reentrant, other_handle, free_attempted;
} busy_probe;

static void *call_from_thread(void *arg) {
    busy_probe *probe = arg;
    probe->from_thread = imstls_ue_handle_timeout(probe->ue, now_ms());
    return NULL;
}

/* Runs inside a call on probe->ue, which is locked meanwhile. */
static void on_log_busy(void *userdata, imstls_log_level level, const char *target, const char *message) {
    busy_probe *probe = userdata;
    imstls_output *o = NULL;
    imstls_state state;
    pthread_t thread;
    (void)level;
    (void)target;
    (void)message;
    if (probe->fired++) return;
    /* Another thread: BUSY at once (if it blocked, this join would never return). */
    if (pthread_create(&thread, NULL, call_from_thread, probe) == 0) pthread_join(thread, NULL);
    /* This thread, re-entering the same UE: BUSY. */
    probe->reentrant = imstls_ue_poll_output(probe->ue, &o);
    if (probe->reentrant == IMSTLS_OK) imstls_output_free(o);
    /* Another UE is independent. */
    probe->other_handle = imstls_ue_state(probe->other, &state);
    /* Freeing the UE from its own callback is refused (leaking beats a use-after-free). */
    imstls_ue_free(probe->ue);
}

#define STRESS_THREADS 4
#define STRESS_ROUNDS 400

typedef struct stress {
    imstls_ue *ue;
    int unexpected, busy, ok;
} stress;

static void *hammer(void *arg) {
    stress *st = arg;
    for (int i = 0; i < STRESS_ROUNDS; i++) {
        imstls_result results[4];
        imstls_output *o = NULL;
        imstls_state state;
        uint64_t deadline;
        results[0] = imstls_ue_handle_timeout(st->ue, now_ms());
        results[1] = imstls_ue_poll_output(st->ue, &o);
        if (results[1] == IMSTLS_OK) imstls_output_free(o);
        results[2] = imstls_ue_state(st->ue, &state);
        results[3] = imstls_ue_next_timeout(st->ue, &deadline);
        for (int k = 0; k < 4; k++) {
            switch (results[k]) {
            case IMSTLS_OK:
            case IMSTLS_NOTHING_MORE:
            case IMSTLS_NOT_AVAILABLE:
                __atomic_add_fetch(&st->ok, 1, __ATOMIC_RELAXED);
                break;
            case IMSTLS_BUSY:
                __atomic_add_fetch(&st->busy, 1, __ATOMIC_RELAXED);
                break;
            default:
                __atomic_add_fetch(&st->unexpected, 1, __ATOMIC_RELAXED);
            }
        }
    }
    return NULL;
}

static void threads_and_reentrancy(void) {
    begin("threads: concurrent and re-entrant calls return BUSY, never deadlock");
    imstls_config *config = make_config("127.0.0.1:9");
    busy_probe probe;
    memset(&probe, 0, sizeof probe);
    probe.from_thread = probe.reentrant = probe.other_handle = IMSTLS_PANIC;
    if (!CHECK_OK(imstls_ue_new(config, now_ms(), &probe.ue))) return;
    CHECK_OK(imstls_ue_new(config, now_ms(), &probe.other));
    CHECK_OK(imstls_ue_set_log_callback(probe.ue, on_log_busy, &probe, IMSTLS_LOG_DEBUG));
    const char *impus[] = {IMPU};
    /* Starting a registration logs (at debug level) while the UE is locked. */
    CHECK_OK(imstls_ue_start_registration(probe.ue, now_ms(), IMPI, impus, 1));
    CHECK(probe.fired > 0);
    CHECK_RESULT(probe.from_thread, IMSTLS_BUSY);
    CHECK_RESULT(probe.reentrant, IMSTLS_BUSY);
    CHECK_OK(probe.other_handle);
    /* The UE survived the free attempt from its own callback and still works. */
    imstls_state state = 0;
    CHECK_OK(imstls_ue_state(probe.ue, &state));
    CHECK(state == IMSTLS_STATE_CONNECTING);
    CHECK_OK(imstls_ue_set_log_callback(probe.ue, NULL, NULL, IMSTLS_LOG_OFF));

    stress st = {probe.ue, 0, 0, 0};
    pthread_t threads[STRESS_THREADS];
    for (int i = 0; i < STRESS_THREADS; i++) CHECK(pthread_create(&threads[i], NULL, hammer, &st) == 0);
    for (int i = 0; i < STRESS_THREADS; i++) pthread_join(threads[i], NULL);
    printf("   stress: %d ok, %d busy, %d unexpected\n", st.ok, st.busy, st.unexpected);
    CHECK(st.unexpected == 0);
    CHECK(st.ok + st.busy == STRESS_THREADS * STRESS_ROUNDS * 4);

    imstls_ue_free(probe.ue);
    imstls_ue_free(probe.other);
    imstls_config_free(config);
}

static void panic_boundary(void) {
    begin("panic: caught at the boundary, poisons only its handle");
#ifdef IMSTLS_TEST_HOOKS
    imstls_config *config = make_config("127.0.0.1:9");
    imstls_ue *ue = NULL, *other = NULL;
    CHECK_OK(imstls_ue_new(config, now_ms(), &ue));
    CHECK_OK(imstls_ue_new(config, now_ms(), &other));
    CHECK_RESULT(imstls_test_panic(), IMSTLS_PANIC);
    CHECK_RESULT(imstls_test_panic_in_ue(ue), IMSTLS_PANIC);
    imstls_state state = 0;
    CHECK_RESULT(imstls_ue_state(ue, &state), IMSTLS_POISONED);
    CHECK_RESULT(imstls_ue_handle_timeout(ue, now_ms()), IMSTLS_POISONED);
    CHECK_RESULT(imstls_test_panic_in_ue(ue), IMSTLS_POISONED);
    imstls_error *e = NULL;
    if (CHECK_OK(imstls_ue_last_error(ue, &e))) {
        CHECK(imstls_error_result(e) == IMSTLS_PANIC);
        imstls_error_free(e);
    }
    CHECK_OK(imstls_ue_state(other, &state)); /* other handles are unaffected */
    imstls_ue_free(ue);                       /* a poisoned handle can still be freed */
    imstls_ue_free(other);
    imstls_config_free(config);
#else
    printf("   skipped: this libimstls has no test hooks (release build)\n");
#endif
}

static void version_and_sharing(void) {
    begin("version macros, shared configuration");
    CHECK(strcmp(imstls_version(), IMSTLS_VERSION_STRING) == 0);
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", IMSTLS_VERSION_MAJOR, IMSTLS_VERSION_MINOR,
             IMSTLS_VERSION_PATCH);
    CHECK(strcmp(expected, IMSTLS_VERSION_STRING) == 0);
    CHECK(strcmp(imstls_crypto_provider(), "aws-lc-rs") == 0 ||
          strcmp(imstls_crypto_provider(), "ring") == 0);

    imstls_config *config = make_config("127.0.0.1:9"), *copy = NULL;
    imstls_ue *a = NULL, *b = NULL;
    CHECK_OK(imstls_config_clone(config, &copy));
    CHECK(imstls_config_candidate_count(copy) == 1);
    CHECK_OK(imstls_ue_new(config, now_ms(), &a));
    CHECK_OK(imstls_ue_new(copy, now_ms(), &b));
    imstls_config_free(config);
    imstls_config_free(copy);
    const char *impus[] = {IMPU};
    CHECK_OK(imstls_ue_start_registration(a, now_ms(), IMPI, impus, 1));
    CHECK_OK(imstls_ue_start_registration(b, now_ms(), IMPI, impus, 1));
    imstls_output *o = NULL;
    CHECK_OK(imstls_ue_poll_output(b, &o));
    CHECK(imstls_output_kind(o) == IMSTLS_OUTPUT_CONNECT);
    imstls_output_free(o);
    imstls_ue_free(a);
    imstls_ue_free(b);
}

/* ---- main --------------------------------------------------------------------------------- */

static int parse(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *flag = argv[i], *value = argv[i + 1];
        if (strcmp(flag, "--pcscf") == 0) opt.pcscf = value;
        else if (strcmp(flag, "--expired") == 0) opt.expired = value;
        else if (strcmp(flag, "--wrong-name") == 0) opt.wrong_name = value;
        else if (strcmp(flag, "--flood") == 0) opt.flood = value;
        else if (strcmp(flag, "--ca") == 0) opt.ca = value;
        else if (strcmp(flag, "--server-name") == 0) opt.server_name = value;
        else return -1;
    }
    return opt.pcscf && opt.expired && opt.wrong_name && opt.flood && opt.ca && opt.server_name
               ? 0
               : -1;
}

int main(int argc, char **argv) {
    if (parse(argc, argv) != 0) {
        fprintf(stderr, "usage: harness --pcscf ADDR --expired ADDR --wrong-name ADDR "
                        "--flood ADDR --ca FILE --server-name FQDN\n");
        return 2;
    }
    srand((unsigned)now_ms());
    char md5[33];
    mini_ua_md5_hex("abc", 3, md5);
    CHECK(strcmp(md5, "900150983cd24fb0d6963f7d28e17f72") == 0);

    version_and_sharing();
    misuse_null();
    misuse_utf8_and_arguments();
    misuse_order();
    threads_and_reentrancy();
    panic_boundary();
    sansio_register();
    sansio_supersede();
    sansio_certificate();
    sansio_name_mismatch();
    sansio_failover();
    driver_register();
    driver_supersede();
    stale_answer(0);
    stale_answer(1);
    driver_certificate();
    driver_own_loop();
    driver_unresolved();
    driver_adopt(0);
    driver_adopt(1);
    driver_flood();
    driver_run_unlocked();
    race_wake_callback_replaced(0);
    race_wake_callback_replaced(1);
    race_free_while_run_waits();
    driver_stop_and_wake();
    driver_wake_reentrant();
    begin("C++: the header in a C++ translation unit");
    CHECK(cpp_checks("127.0.0.1:9") == 0);

    printf("passed=%d failed=%d\n", passed, failed);
    fflush(stdout);
    return failed == 0 ? 0 : 1;
}
