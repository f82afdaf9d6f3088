/*
 * ue: register to a P-CSCF over TS 33.203 Annex O TLS from C -- the C twin of
 * examples/ue.rs, on imstls's managed driver (imstls owns the socket, this program plays
 * the SIP stack with the tiny UA in mini_ua.c: MD5 Digest only).
 *
 *   ue --pcscf HOST:PORT [--pcscf ...] [--server-name FQDN] [--ca FILE.pem ...]
 *      [--pin SPKI_SHA256_BASE64] --impi ID --impu URI [--impu ...] --password SECRET
 *      [--expires SECS] [--tls13-only] [--hold SECS] [--json]
 *
 * Registers, stays registered --hold seconds (refreshing and recovering from loss), then
 * de-registers. --json prints one JSON object per event ("event", "t_ms", ...). Exit codes:
 * 0 success, 1 registration rejected, 2 usage or configuration error, 3 P-CSCF certificate
 * rejected, 4 other TLS failure, 5 connect failure or timeout. Identities and the password
 * are never printed.
 *
 * Build: cc -std=c99 ue.c mini_ua.c $(pkg-config --cflags --libs imstls) -lm -o ue
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "imstls.h"
#include "mini_ua.h"

enum { EXIT_REJECTED = 1, EXIT_USAGE = 2, EXIT_CERTIFICATE = 3, EXIT_TLS = 4, EXIT_CONNECT = 5 };

#define MAX_LIST 8
#define REGISTER_DEADLINE_MS 60000u
#define DEREGISTER_DEADLINE_MS 35000u

static const char USAGE[] =
    "usage: ue --pcscf HOST:PORT [--pcscf ...] [--server-name FQDN] [--ca FILE.pem ...]\n"
    "          [--pin SPKI_SHA256_BASE64] --impi ID --impu URI [--impu ...] --password SECRET\n"
    "          [--expires SECS] [--tls13-only] [--hold SECS] [--json]\n";

typedef struct args {
    const char *pcscf[MAX_LIST], *ca[MAX_LIST], *pins[MAX_LIST], *impus[MAX_LIST];
    size_t n_pcscf, n_ca, n_pins, n_impus;
    const char *server_name, *impi, *password;
    unsigned expires, hold;
    int tls13_only, json;
} args;

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int add(const char **list, size_t *n, const char *value) {
    if (*n == MAX_LIST) return -1;
    list[(*n)++] = value;
    return 0;
}

static int number(const char *text, unsigned *out) {
    char *end = NULL;
    unsigned long value = strtoul(text, &end, 10);
    if (end == text || *end != '\0' || value > 86400ul * 365) return -1;
    *out = (unsigned)value;
    return 0;
}

static int parse(int argc, char **argv, args *a) {
    memset(a, 0, sizeof *a);
    a->expires = 3600;
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (strcmp(flag, "--tls13-only") == 0) { a->tls13_only = 1; continue; }
        if (strcmp(flag, "--json") == 0) { a->json = 1; continue; }
        if (i + 1 >= argc) return -1;
        const char *value = argv[++i];
        int bad = 0;
        if (strcmp(flag, "--pcscf") == 0) bad = add(a->pcscf, &a->n_pcscf, value);
        else if (strcmp(flag, "--ca") == 0) bad = add(a->ca, &a->n_ca, value);
        else if (strcmp(flag, "--pin") == 0) bad = add(a->pins, &a->n_pins, value);
        else if (strcmp(flag, "--impu") == 0) bad = add(a->impus, &a->n_impus, value);
        else if (strcmp(flag, "--server-name") == 0) a->server_name = value;
        else if (strcmp(flag, "--impi") == 0) a->impi = value;
        else if (strcmp(flag, "--password") == 0) a->password = value;
        else if (strcmp(flag, "--expires") == 0) bad = number(value, &a->expires) || a->expires == 0;
        else if (strcmp(flag, "--hold") == 0) bad = number(value, &a->hold);
        else bad = 1;
        if (bad) return -1;
    }
    return a->n_pcscf && a->impi && a->n_impus && a->password ? 0 : -1;
}

/* A configuration error names the field; exit 2. */
static imstls_config *configure(const args *a) {
    imstls_config_builder *b = NULL;
    imstls_config *config = NULL;
    imstls_result rc = imstls_config_builder_new(&b);
    for (size_t i = 0; rc == IMSTLS_OK && i < a->n_pcscf; i++) rc = imstls_config_builder_add_pcscf(b, a->pcscf[i]);
    for (size_t i = 0; rc == IMSTLS_OK && i < a->n_ca; i++) rc = imstls_config_builder_add_trust_anchors_file(b, a->ca[i]);
    for (size_t i = 0; rc == IMSTLS_OK && i < a->n_pins; i++) rc = imstls_config_builder_add_spki_pin(b, a->pins[i]);
    if (rc == IMSTLS_OK && a->server_name) rc = imstls_config_builder_set_server_name(b, a->server_name);
    if (rc == IMSTLS_OK && a->tls13_only) rc = imstls_config_builder_set_tls_versions(b, IMSTLS_TLS_1_3_ONLY);
    if (rc == IMSTLS_OK) rc = imstls_config_builder_build(b, &config);
    if (rc != IMSTLS_OK) {
        imstls_error *e = NULL;
        if (imstls_config_builder_last_error(b, &e) == IMSTLS_OK) {
            fprintf(stderr, "ue: %s\n", imstls_error_message(e));
            imstls_error_free(e);
        } else {
            fprintf(stderr, "ue: %s\n", imstls_result_str(rc));
        }
    }
    imstls_config_builder_free(b);
    return config;
}

/* ---- printing (never identities or secrets) ------------------------------------------------ */

static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

/* "candidates":[{"candidate":0,"target":"host:port","reason":"...","detail":"..."}, ...] */
static void json_candidates(const imstls_output *o) {
    printf(",\"candidates\":[");
    for (size_t i = 0; i < imstls_output_failed_candidate_count(o); i++) {
        printf("%s{\"candidate\":%u,\"target\":", i ? "," : "",
               (unsigned)imstls_output_failed_candidate(o, i));
        json_string(imstls_output_failed_candidate_target(o, i));
        printf(",\"reason\":");
        json_string(imstls_output_failed_candidate_reason(o, i));
        printf(",\"detail\":");
        json_string(imstls_output_failed_candidate_detail(o, i));
        printf("}");
    }
    printf("]");
}

static void json_field(const char *key, const char *value) {
    printf(",\"%s\":", key);
    if (value && value[0]) json_string(value);
    else fputs("null", stdout);
}

static void print_event(const args *a, const imstls_output *o, uint64_t t_ms) {
    imstls_event_kind event = imstls_output_event(o);
    if (!a->json) {
        printf("%8llu ms  %-22s %s\n", (unsigned long long)t_ms, imstls_output_event_name(o),
               imstls_output_detail(o));
        fflush(stdout);
        return;
    }
    printf("{\"event\":");
    json_string(imstls_output_event_name(o));
    printf(",\"t_ms\":%llu", (unsigned long long)t_ms);
    const imstls_error *e = imstls_output_error(o);
    switch (event) {
    case IMSTLS_EVENT_TLS_ESTABLISHED:
        json_field("version", imstls_output_tls_version(o));
        json_field("cipher_suite", imstls_output_cipher_suite(o));
        json_field("group", imstls_output_kx_group(o));
        printf(",\"resumed\":%s", imstls_output_flags(o) & IMSTLS_FLAG_RESUMED ? "true" : "false");
        break;
    case IMSTLS_EVENT_CERTIFICATE_REJECTED:
    case IMSTLS_EVENT_TLS_FAILED:
        json_field("alert", imstls_error_alert_sent_name(e)[0] ? imstls_error_alert_sent_name(e)
                                                               : imstls_error_alert_received_name(e));
        json_field("alert_sent", imstls_error_alert_sent_name(e));
        json_field("alert_received", imstls_error_alert_received_name(e));
        json_field("reason", imstls_output_reason(o));
        json_field("detail", imstls_output_detail(o));
        break;
    case IMSTLS_EVENT_REGISTER_NOW:
    case IMSTLS_EVENT_REGISTERING:
    case IMSTLS_EVENT_CONNECT_FAILED:
        json_field(event == IMSTLS_EVENT_REGISTERING ? "kind" : "reason", imstls_output_reason(o));
        break;
    case IMSTLS_EVENT_CHALLENGED:
        printf(",\"stale\":%s", imstls_output_flags(o) & IMSTLS_FLAG_STALE ? "true" : "false");
        break;
    case IMSTLS_EVENT_REGISTERED:
        printf(",\"expires\":%llu", (unsigned long long)imstls_output_expires_s(o));
        break;
    case IMSTLS_EVENT_CONNECTION_LOST:
        json_field("reason", imstls_output_reason(o));
        printf(",\"registered\":%s", imstls_output_flags(o) & IMSTLS_FLAG_WAS_REGISTERED ? "true" : "false");
        break;
    case IMSTLS_EVENT_BACKING_OFF:
        printf(",\"attempt\":%u,\"delay_ms\":%llu", (unsigned)imstls_output_attempt(o),
               (unsigned long long)imstls_output_delay_ms(o));
        json_candidates(o);
        break;
    case IMSTLS_EVENT_REGISTRATION_FAILED:
        if (imstls_output_sip_status(o)) printf(",\"status\":%u", (unsigned)imstls_output_sip_status(o));
        else printf(",\"status\":null");
        json_field("reason", imstls_output_reason(o));
        printf(",\"retrying\":%s", imstls_output_flags(o) & IMSTLS_FLAG_RETRYING ? "true" : "false");
        json_candidates(o);
        break;
    default:
        break;
    }
    json_field("clause", imstls_output_clause(o));
    printf("}\n");
    fflush(stdout);
}

/* ---- the SIP stack ------------------------------------------------------------------------- */

typedef struct app {
    const args *a;
    imstls_driver *driver;
    mini_ua ua;
    uint64_t start;
    int registered, ever_registered, deregistered, stop;
} app;

static void act(app *p, const imstls_output *o) {
    imstls_result rc = IMSTLS_OK;
    switch (imstls_output_event(o)) {
    case IMSTLS_EVENT_REGISTER_NOW: {
        imstls_register_reason reason = imstls_output_register_reason(o);
        if (reason != IMSTLS_REGISTER_REASON_CHALLENGE && reason != IMSTLS_REGISTER_REASON_STALE_CHALLENGE &&
            reason != IMSTLS_REGISTER_REASON_REFRESH && reason != IMSTLS_REGISTER_REASON_DEREGISTER) {
            mini_ua_new_registration(&p->ua); /* a new flow: a new registration */
        }
        imstls_binding *binding = NULL;
        if (imstls_driver_binding(p->driver, &binding) == IMSTLS_OK) {
            mini_ua_set_local(&p->ua, imstls_binding_local_addr(binding));
            imstls_binding_free(binding);
        }
        char buf[4096];
        size_t len = mini_ua_register(&p->ua, reason == IMSTLS_REGISTER_REASON_DEREGISTER, buf, sizeof buf);
        rc = len ? imstls_driver_send_sip(p->driver, (const uint8_t *)buf, len) : IMSTLS_INVALID_ARGUMENT;
        memset(buf, 0, sizeof buf);
        break;
    }
    case IMSTLS_EVENT_SIP_RECEIVED: {
        const uint8_t *data = NULL;
        size_t len = 0;
        imstls_output_data(o, &data, &len);
        mini_ua_result r = mini_ua_response(&p->ua, data, len);
        /* The answer belongs to the flow it arrived on: imstls refuses it once that flow is
         * gone (IMSTLS_STALE_REPORT), so a late answer never lands on a newer procedure. */
        uint64_t flow = imstls_output_flow(o);
        if (r.outcome == MINI_UA_CHALLENGED) rc = imstls_driver_registration_challenged(p->driver, flow, r.stale != 0);
        else if (r.outcome == MINI_UA_REGISTERED) rc = imstls_driver_registration_succeeded(p->driver, flow, r.expires, 0);
        else if (r.outcome == MINI_UA_DEREGISTERED) rc = imstls_driver_registration_succeeded(p->driver, flow, 0, 0);
        else if (r.outcome == MINI_UA_FAILED) rc = imstls_driver_registration_failed(p->driver, flow, r.status, r.retry_after);
        if (rc == IMSTLS_STALE_REPORT) rc = IMSTLS_OK; /* a late answer of an old flow: drop it */
        break;
    }
    case IMSTLS_EVENT_REGISTERED:
        p->registered = p->ever_registered = 1;
        break;
    case IMSTLS_EVENT_CONNECTION_LOST:
        p->registered = 0;
        break;
    case IMSTLS_EVENT_DEREGISTERED:
        p->deregistered = 1;
        break;
    case IMSTLS_EVENT_REGISTRATION_FAILED:
        if (!(imstls_output_flags(o) & IMSTLS_FLAG_RETRYING)) {
            const char *reason = imstls_output_reason(o);
            p->stop = strcmp(reason, "certificate") == 0 ? EXIT_CERTIFICATE
                      : strcmp(reason, "tls") == 0       ? EXIT_TLS
                                                         : EXIT_REJECTED;
        }
        break;
    case IMSTLS_EVENT_BACKING_OFF:
        /* Before the first registration a back-off means the P-CSCF is out of reach. */
        if (!p->ever_registered) p->stop = EXIT_CONNECT;
        break;
    default:
        break;
    }
    if (rc != IMSTLS_OK) {
        fprintf(stderr, "ue: %s\n", imstls_result_str(rc));
        p->stop = EXIT_CONNECT;
    }
}

/* Runs the driver until `done` or the deadline; 0, or the exit code an event decided. */
static int run_until(app *p, int (*done)(const app *), uint64_t deadline) {
    while (!p->stop && !done(p) && now_ms() < deadline) {
        imstls_result rc = imstls_driver_run(p->driver, 200);
        if (rc != IMSTLS_OK) {
            fprintf(stderr, "ue: %s\n", imstls_result_str(rc));
            return EXIT_CONNECT;
        }
        imstls_output *o = NULL;
        while (!p->stop && imstls_driver_poll_event(p->driver, &o) == IMSTLS_OK) {
            print_event(p->a, o, now_ms() - p->start);
            act(p, o);
            imstls_output_free(o);
        }
    }
    return p->stop;
}

static int is_registered(const app *p) { return p->registered; }
static int never(const app *p) { (void)p; return 0; }
static int is_deregistered(const app *p) { return p->deregistered; }

int main(int argc, char **argv) {
    args a;
    if (parse(argc, argv, &a) != 0) {
        fputs(USAGE, stderr);
        return EXIT_USAGE;
    }
    app p;
    memset(&p, 0, sizeof p);
    p.a = &a;
    p.start = now_ms();
    srand((unsigned)p.start);
    if (mini_ua_init(&p.ua, a.impi, a.impus[0], a.password, a.expires) != 0) {
        fputs("ue: --impi, --impu (sip:user@domain) or --password does not fit\n", stderr);
        return EXIT_USAGE;
    }
    imstls_config *config = configure(&a);
    if (config == NULL) return EXIT_USAGE;
    imstls_result rc = imstls_driver_new(config, &p.driver);
    imstls_config_free(config);
    if (rc != IMSTLS_OK) {
        fprintf(stderr, "ue: %s\n", imstls_result_str(rc));
        return EXIT_TLS;
    }
    rc = imstls_driver_start_registration(p.driver, a.impi, a.impus, a.n_impus);
    if (rc != IMSTLS_OK) {
        imstls_error *e = NULL;
        imstls_driver_last_error(p.driver, &e);
        fprintf(stderr, "ue: %s\n", e ? imstls_error_message(e) : imstls_result_str(rc));
        imstls_error_free(e);
        imstls_driver_free(p.driver);
        return EXIT_USAGE;
    }

    int code = run_until(&p, is_registered, now_ms() + REGISTER_DEADLINE_MS);
    if (code == 0 && !p.registered) {
        fprintf(stderr, "ue: not registered after %u s\n", REGISTER_DEADLINE_MS / 1000);
        code = EXIT_CONNECT;
    }
    if (code == 0) code = run_until(&p, never, now_ms() + (uint64_t)a.hold * 1000u);
    if (code == 0 && !p.registered) {
        fputs("ue: not registered when the hold ended\n", stderr);
        code = EXIT_CONNECT;
    }
    if (code == 0) {
        rc = imstls_driver_deregister(p.driver);
        code = rc == IMSTLS_OK ? run_until(&p, is_deregistered, now_ms() + DEREGISTER_DEADLINE_MS) : EXIT_CONNECT;
        if (code == 0 && !p.deregistered) {
            fputs("ue: de-registration did not complete\n", stderr);
            code = EXIT_CONNECT;
        }
    }
    mini_ua_wipe(&p.ua);
    imstls_driver_free(p.driver);
    return code;
}
