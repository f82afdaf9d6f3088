/*
 * osip_ua: a SIP user agent built on GNU oSIP (libosip2, unmodified, from the distribution
 * package) that registers over TS 33.203 Annex O TLS through imstls's managed driver.
 *
 *   osip_ua --pcscf HOST:PORT [--pcscf ...] [--server-name FQDN] [--ca FILE.pem ...]
 *           --impi ID --impu URI --password-file FILE [--expires SECS] [--hold SECS]
 *
 * The split is the transport-adapter pattern of docs/INTEGRATING.md:
 * - oSIP owns SIP: the REGISTER is an osip_message_t, it travels in oSIP's non-INVITE client
 *   transaction (NICT) with oSIP's own timers, answers are parsed by osip_message_parse and
 *   matched to the transaction by osip_find_transaction_and_add_event.
 * - imstls owns the flow: oSIP's send callback hands the serialized request to
 *   imstls_driver_send_sip; imstls's SIP_RECEIVED events go to oSIP; its REGISTER_NOW,
 *   CONNECTION_LOST and SUPERSEDED events drive the UA.
 *
 * Registers (answering a 401 with Digest MD5, qop=auth or none, using oSIP's MD5), stays
 * registered --hold seconds (a lost flow is registered again on a new one), then
 * de-registers. Prints one line per step: "<ms> imstls <event> ..." or "<ms> osip <step>".
 * Exit codes (as the ue CLI): 0 success, 1 registration rejected, 2 usage or configuration
 * error, 3 P-CSCF certificate rejected, 4 other TLS failure, 5 connect failure or timeout.
 * The password is read from a file (never the command line); identities and the password are
 * never printed.
 *
 * Build: cc -std=c99 osip_ua.c $(pkg-config --cflags --libs imstls libosip2) -o osip_ua
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include <osip2/osip.h>
#include <osipparser2/osip_md5.h>

#include "imstls.h"

/* libosip2 exports this (osip_parse uses it) but its installed headers do not declare it:
 * the event type of an incoming message, e.g. RCV_STATUS_2XX for a 200 OK. */
type_t evt_set_type_incoming_sipmessage(osip_message_t *sip);

enum { EXIT_REJECTED = 1, EXIT_USAGE = 2, EXIT_CERTIFICATE = 3, EXIT_TLS = 4, EXIT_CONNECT = 5 };

#define MAX_LIST 8
#define REGISTER_DEADLINE_MS 60000u
#define DEREGISTER_DEADLINE_MS 35000u
/* Longest wait in imstls_driver_run, so oSIP's timers run at least this often. */
#define MAX_WAIT_MS 200u
#define REGISTRATION_BACKSTOP_MS 40000u

static const char USAGE[] =
    "usage: osip_ua --pcscf HOST:PORT [--pcscf ...] [--server-name FQDN] [--ca FILE.pem ...]\n"
    "               --impi ID --impu URI --password-file FILE [--expires SECS] [--hold SECS]\n";

typedef struct args {
    const char *pcscf[MAX_LIST], *ca[MAX_LIST];
    size_t n_pcscf, n_ca;
    const char *server_name, *impi, *impu, *password_file;
    unsigned expires, hold;
} args;

/* The registration as the SIP stack sees it. */
typedef struct ua {
    const args *a;
    char password[128];
    char domain[128], user[128];
    imstls_driver *driver;
    osip_t *osip;
    uint64_t start;
    /* The dialog-like state of the registration: RFC 3261 §10.2. */
    char call_id[64], from_tag[32];
    unsigned cseq;
    /* The last challenge (RFC 7616 / RFC 2617). */
    int have_challenge, qop_auth;
    char realm[128], nonce[256], opaque[128];
    unsigned nc;
    /* The REGISTER transaction waiting for its answer, the flow it went out on, and whether
     * it is a de-REGISTER. */
    osip_transaction_t *pending;
    uint64_t pending_flow;
    int pending_deregister;
    /* The flow of the SIP_RECEIVED event being handed to oSIP: its answer callbacks report
     * with it (imstls refuses an answer of an older flow: IMSTLS_STALE_REPORT). */
    uint64_t rx_flow;
    /* Transactions oSIP finished, freed once its execute functions returned. */
    osip_transaction_t *finished[8];
    size_t n_finished;
    int registered, ever_registered, deregistered, stop;
} ua;

/* oSIP's callbacks carry no user pointer for the stack: one UA per process. */
static ua *the_ua;

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void say(const ua *u, const char *source, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(const ua *u, const char *source, const char *fmt, ...) {
    va_list ap;
    printf("%8llu ms %-6s ", (unsigned long long)(now_ms() - u->start), source);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* ---- arguments ------------------------------------------------------------------------- */

static int number(const char *text, unsigned *out) {
    char *end = NULL;
    unsigned long value = strtoul(text, &end, 10);
    if (end == text || *end != '\0' || value > 86400ul * 365) return -1;
    *out = (unsigned)value;
    return 0;
}

static int parse_args(int argc, char **argv, args *a) {
    memset(a, 0, sizeof *a);
    a->expires = 3600;
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (i + 1 >= argc) return -1;
        const char *value = argv[++i];
        int bad = 0;
        if (strcmp(flag, "--pcscf") == 0) {
            bad = a->n_pcscf == MAX_LIST;
            if (!bad) a->pcscf[a->n_pcscf++] = value;
        } else if (strcmp(flag, "--ca") == 0) {
            bad = a->n_ca == MAX_LIST;
            if (!bad) a->ca[a->n_ca++] = value;
        } else if (strcmp(flag, "--server-name") == 0) a->server_name = value;
        else if (strcmp(flag, "--impi") == 0) a->impi = value;
        else if (strcmp(flag, "--impu") == 0) a->impu = value;
        else if (strcmp(flag, "--password-file") == 0) a->password_file = value;
        else if (strcmp(flag, "--expires") == 0) bad = number(value, &a->expires) || a->expires == 0;
        else if (strcmp(flag, "--hold") == 0) bad = number(value, &a->hold);
        else bad = 1;
        if (bad) return -1;
    }
    return a->n_pcscf && a->impi && a->impu && a->password_file ? 0 : -1;
}

/* The first line of the file, without its line end. */
static int read_password(const char *path, char *out, size_t cap) {
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    int ok = fgets(out, (int)cap, f) != NULL;
    fclose(f);
    if (!ok) return -1;
    out[strcspn(out, "\r\n")] = '\0';
    return out[0] ? 0 : -1;
}

/* "sip:alice@ims.test" -> user "alice", domain "ims.test". */
static int split_impu(ua *u, const char *impu) {
    const char *colon = strchr(impu, ':');
    const char *at = strchr(impu, '@');
    if (colon == NULL || at == NULL || at < colon) return -1;
    size_t user = (size_t)(at - colon - 1), domain = strcspn(at + 1, ";>:");
    if (user == 0 || user >= sizeof u->user || domain == 0 || domain >= sizeof u->domain) return -1;
    memcpy(u->user, colon + 1, user);
    u->user[user] = '\0';
    memcpy(u->domain, at + 1, domain);
    u->domain[domain] = '\0';
    return 0;
}

static imstls_config *configure(const args *a) {
    imstls_config_builder *b = NULL;
    imstls_config *config = NULL;
    imstls_result rc = imstls_config_builder_new(&b);
    for (size_t i = 0; rc == IMSTLS_OK && i < a->n_pcscf; i++) rc = imstls_config_builder_add_pcscf(b, a->pcscf[i]);
    for (size_t i = 0; rc == IMSTLS_OK && i < a->n_ca; i++) rc = imstls_config_builder_add_trust_anchors_file(b, a->ca[i]);
    if (rc == IMSTLS_OK && a->server_name) rc = imstls_config_builder_set_server_name(b, a->server_name);
    /* oSIP's NICT times the REGISTER out (Timer F, 64*T1 = 32 s) and the UA reports the 408;
     * imstls's own registration timeout stays behind it as a backstop. */
    if (rc == IMSTLS_OK) rc = imstls_config_builder_set_registration_timeout_ms(b, REGISTRATION_BACKSTOP_MS);
    if (rc == IMSTLS_OK) rc = imstls_config_builder_build(b, &config);
    if (rc != IMSTLS_OK) {
        imstls_error *e = NULL;
        int named = imstls_config_builder_last_error(b, &e) == IMSTLS_OK;
        fprintf(stderr, "osip_ua: %s\n", named ? imstls_error_message(e) : imstls_result_str(rc));
        imstls_error_free(e);
    }
    imstls_config_builder_free(b);
    return config;
}

/* ---- Digest (RFC 7616 / RFC 2617, MD5) with oSIP's MD5 ---------------------------------- */

static void md5_hex(const char *text, char out[33]) {
    osip_MD5_CTX ctx;
    unsigned char digest[16];
    osip_MD5Init(&ctx);
    osip_MD5Update(&ctx, (unsigned char *)(uintptr_t)text, (unsigned int)strlen(text));
    osip_MD5Final(digest, &ctx);
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", digest[i]);
    memset(digest, 0, sizeof digest);
    memset(&ctx, 0, sizeof ctx);
}

static void wipe(void *p, size_t n) {
    volatile unsigned char *v = p;
    while (n--) *v++ = 0;
}

static void random_hex(char *out, size_t digits) {
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < digits; i++) out[i] = hex[osip_build_random_number() % 16];
    out[digits] = '\0';
}

/* The Authorization value answering the stored challenge for a REGISTER to `uri`. */
static int authorization(ua *u, const char *uri, char *out, size_t cap) {
    char a1[512], ha1[33], a2[256], ha2[33], all[1024], response[33], cnonce[17], nc[9];
    snprintf(a1, sizeof a1, "%s:%s:%s", u->a->impi, u->realm, u->password);
    md5_hex(a1, ha1);
    wipe(a1, sizeof a1);
    snprintf(a2, sizeof a2, "REGISTER:%s", uri);
    md5_hex(a2, ha2);
    int n;
    if (u->qop_auth) {
        snprintf(nc, sizeof nc, "%08x", ++u->nc);
        random_hex(cnonce, 16);
        snprintf(all, sizeof all, "%s:%s:%s:%s:auth:%s", ha1, u->nonce, nc, cnonce, ha2);
        md5_hex(all, response);
        n = snprintf(out, cap,
                     "Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", uri=\"%s\", "
                     "response=\"%s\", algorithm=MD5, cnonce=\"%s\", qop=auth, nc=%s",
                     u->a->impi, u->realm, u->nonce, uri, response, cnonce, nc);
    } else {
        snprintf(all, sizeof all, "%s:%s:%s", ha1, u->nonce, ha2);
        md5_hex(all, response);
        n = snprintf(out, cap,
                     "Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", uri=\"%s\", "
                     "response=\"%s\", algorithm=MD5",
                     u->a->impi, u->realm, u->nonce, uri, response);
    }
    wipe(ha1, sizeof ha1);
    wipe(all, sizeof all);
    if (n < 0 || (size_t)n >= cap) return -1;
    if (u->opaque[0]) {
        int m = snprintf(out + n, cap - (size_t)n, ", opaque=\"%s\"", u->opaque);
        if (m < 0 || (size_t)m >= cap - (size_t)n) return -1;
    }
    return 0;
}

/* A challenge parameter from oSIP's parsed WWW-Authenticate, without its quotes. */
static void unquoted(const char *value, char *out, size_t cap) {
    out[0] = '\0';
    if (value == NULL) return;
    size_t n = strlen(value);
    if (n >= 2 && value[0] == '"' && value[n - 1] == '"') {
        value++;
        n -= 2;
    }
    if (n >= cap) n = cap - 1;
    memcpy(out, value, n);
    out[n] = '\0';
}

/* Stores the 401's MD5 challenge; -1 when there is none this UA can answer. */
static int store_challenge(ua *u, osip_message_t *response, int *stale) {
    osip_www_authenticate_t *w = NULL;
    char algorithm[32], qop[64], stale_text[16];
    if (osip_message_get_www_authenticate(response, 0, &w) != 0 || w == NULL) return -1;
    unquoted(osip_www_authenticate_get_algorithm(w), algorithm, sizeof algorithm);
    if (algorithm[0] && strcasecmp(algorithm, "MD5") != 0) return -1;
    unquoted(osip_www_authenticate_get_realm(w), u->realm, sizeof u->realm);
    unquoted(osip_www_authenticate_get_nonce(w), u->nonce, sizeof u->nonce);
    unquoted(osip_www_authenticate_get_opaque(w), u->opaque, sizeof u->opaque);
    unquoted(osip_www_authenticate_get_qop_options(w), qop, sizeof qop);
    unquoted(osip_www_authenticate_get_stale(w), stale_text, sizeof stale_text);
    if (!u->realm[0] || !u->nonce[0]) return -1;
    u->qop_auth = strstr(qop, "auth") != NULL;
    u->nc = 0;
    u->have_challenge = 1;
    *stale = strcasecmp(stale_text, "true") == 0;
    return 0;
}

/* ---- the REGISTER as an osip_message_t ----------------------------------------------------- */

static void new_registration(ua *u) {
    char id[25];
    random_hex(id, 24);
    snprintf(u->call_id, sizeof u->call_id, "%s@osip-ua", id);
    random_hex(u->from_tag, 12);
    u->cseq = 0;
    u->have_challenge = 0;
    u->nc = 0;
}

static osip_message_t *build_register(ua *u, const char *local, int deregister) {
    osip_message_t *req = NULL;
    osip_uri_t *uri = NULL;
    char request_uri[160], value[1024], branch[17];
    unsigned expires = deregister ? 0 : u->a->expires;
    snprintf(request_uri, sizeof request_uri, "sip:%s", u->domain);
    random_hex(branch, 16);
    if (osip_message_init(&req) != 0) return NULL;
    osip_message_set_method(req, osip_strdup("REGISTER"));
    osip_message_set_version(req, osip_strdup("SIP/2.0"));
    osip_message_set_status_code(req, 0);
    osip_message_set_reason_phrase(req, NULL);
    int bad = osip_uri_init(&uri) != 0 || osip_uri_parse(uri, request_uri) != 0;
    if (bad) {
        osip_uri_free(uri);
        osip_message_free(req);
        return NULL;
    }
    osip_message_set_uri(req, uri);
    /* TLS in the Via: oSIP runs the NICT for a reliable transport (no Timer E resends). */
    snprintf(value, sizeof value, "SIP/2.0/TLS %s;branch=z9hG4bK%s;rport", local, branch);
    bad |= osip_message_set_via(req, value);
    bad |= osip_message_set_max_forwards(req, "70");
    snprintf(value, sizeof value, "<%s>;tag=%s", u->a->impu, u->from_tag);
    bad |= osip_message_set_from(req, value);
    snprintf(value, sizeof value, "<%s>", u->a->impu);
    bad |= osip_message_set_to(req, value);
    bad |= osip_message_set_call_id(req, u->call_id);
    snprintf(value, sizeof value, "%u REGISTER", ++u->cseq);
    bad |= osip_message_set_cseq(req, value);
    snprintf(value, sizeof value, "<sip:%s@%s;transport=tls>;expires=%u", u->user, local, expires);
    bad |= osip_message_set_contact(req, value);
    snprintf(value, sizeof value, "%u", expires);
    bad |= osip_message_set_expires(req, value);
    if (u->have_challenge) {
        if (authorization(u, request_uri, value, sizeof value) != 0) bad = 1;
        else bad |= osip_message_set_authorization(req, value);
        wipe(value, sizeof value);
    }
    bad |= osip_message_set_content_length(req, "0");
    if (bad) {
        osip_message_free(req);
        return NULL;
    }
    return req;
}

/* Forgets the REGISTER transaction in progress (its flow is gone or a new one replaces it). */
static void drop_pending(ua *u) {
    if (u->pending == NULL) return;
    osip_remove_transaction(u->osip, u->pending);
    osip_transaction_free2(u->pending);
    u->pending = NULL;
}

/* Frees the transactions oSIP finished during its last execute call. */
static void collect_finished(ua *u) {
    for (size_t i = 0; i < u->n_finished; i++) osip_transaction_free2(u->finished[i]); /* removed in cb_kill */
    u->n_finished = 0;
}

/* oSIP's transaction layer: events queued by add_event, then timers. */
static void run_osip(ua *u) {
    osip_nict_execute(u->osip);
    osip_timers_nict_execute(u->osip);
    osip_nict_execute(u->osip);
    collect_finished(u);
}

/* REGISTER_NOW: a new NICT carries the REGISTER; oSIP's send callback gives it to imstls. */
static imstls_result send_register(ua *u, const imstls_output *o) {
    imstls_register_reason reason = imstls_output_register_reason(o);
    int deregister = reason == IMSTLS_REGISTER_REASON_DEREGISTER;
    if (reason != IMSTLS_REGISTER_REASON_CHALLENGE && reason != IMSTLS_REGISTER_REASON_STALE_CHALLENGE &&
        reason != IMSTLS_REGISTER_REASON_REFRESH && !deregister) {
        new_registration(u); /* a new flow: a new registration (new Call-ID, no credentials) */
    }
    drop_pending(u);
    char local[64] = "127.0.0.1:5061";
    imstls_binding *binding = NULL;
    if (imstls_driver_binding(u->driver, &binding) == IMSTLS_OK) {
        snprintf(local, sizeof local, "%s", imstls_binding_local_addr(binding));
        imstls_binding_free(binding);
    }
    osip_message_t *req = build_register(u, local, deregister);
    if (req == NULL) return IMSTLS_INVALID_ARGUMENT;
    osip_transaction_t *tr = NULL;
    if (osip_transaction_init(&tr, NICT, u->osip, req) != 0) {
        osip_message_free(req);
        return IMSTLS_INVALID_ARGUMENT;
    }
    u->pending = tr;
    u->pending_flow = imstls_output_flow(o);
    u->pending_deregister = deregister;
    osip_transaction_add_event(tr, osip_new_outgoing_sipmessage(req));
    run_osip(u); /* the send callback runs here */
    return IMSTLS_OK;
}

/* oSIP's send callback: the serialized request goes to imstls, which encrypts and writes it on
 * the current flow. Host, port and socket are imstls's business, not oSIP's. */
static int cb_send(osip_transaction_t *tr, osip_message_t *sip, char *host, int port, int socket) {
    (void)tr, (void)host, (void)port, (void)socket;
    ua *u = the_ua;
    char *text = NULL;
    size_t len = 0;
    if (osip_message_to_str(sip, &text, &len) != 0) return -1;
    imstls_result rc = imstls_driver_send_sip(u->driver, (const uint8_t *)text, len);
    wipe(text, len); /* it holds the Digest response */
    osip_free(text);
    say(u, "osip", "send REGISTER cseq=%s flow=%llu: %s", osip_cseq_get_number(sip->cseq),
        (unsigned long long)u->pending_flow, imstls_result_str(rc));
    return rc == IMSTLS_OK ? 0 : -1;
}

/* The registration expiry the 2xx granted our Contact (RFC 3261 §10.2.4), else Expires. */
static unsigned granted_expires(const ua *u, osip_message_t *response) {
    osip_contact_t *contact = NULL;
    for (int i = 0; osip_message_get_contact(response, i, &contact) == 0; i++) {
        osip_generic_param_t *p = NULL;
        if (contact && contact->url && contact->url->username &&
            strcmp(contact->url->username, u->user) == 0 &&
            osip_contact_param_get_byname(contact, "expires", &p) == 0 && p && p->gvalue) {
            return (unsigned)strtoul(p->gvalue, NULL, 10);
        }
    }
    osip_header_t *h = NULL;
    if (osip_message_get_expires(response, 0, &h) >= 0 && h && h->hvalue) {
        return (unsigned)strtoul(h->hvalue, NULL, 10);
    }
    return u->a->expires;
}

static unsigned header_number(osip_message_t *response, const char *name) {
    osip_header_t *h = NULL;
    if (osip_message_header_get_byname(response, name, 0, &h) >= 0 && h && h->hvalue) {
        return (unsigned)strtoul(h->hvalue, NULL, 10);
    }
    return 0;
}

static void reported(ua *u, const char *what, imstls_result rc) {
    if (rc == IMSTLS_STALE_REPORT) {
        /* An answer of a flow imstls already left (O.4.1): not an error, drop it. */
        say(u, "osip", "%s on flow %llu: stale, dropped", what, (unsigned long long)u->rx_flow);
    } else if (rc != IMSTLS_OK) {
        fprintf(stderr, "osip_ua: reporting %s: %s\n", what, imstls_result_str(rc));
        u->stop = EXIT_CONNECT;
    }
}

/* oSIP's NICT answer callbacks: report the answer to imstls with the flow it arrived on. */
static void cb_answer(int type, osip_transaction_t *tr, osip_message_t *response) {
    (void)tr;
    ua *u = the_ua;
    int status = response->status_code;
    say(u, "osip", "NICT got %d %s cseq=%s flow=%llu", status,
        response->reason_phrase ? response->reason_phrase : "", osip_cseq_get_number(response->cseq),
        (unsigned long long)u->rx_flow);
    if (type == OSIP_NICT_STATUS_2XX_RECEIVED) {
        unsigned expires = u->pending_deregister ? 0 : granted_expires(u, response);
        reported(u, "2xx", imstls_driver_registration_succeeded(u->driver, u->rx_flow, expires,
                                                                header_number(response, "flow-timer")));
        return;
    }
    int stale = 0;
    if ((status == 401 || status == 407) && store_challenge(u, response, &stale) == 0) {
        reported(u, "challenge", imstls_driver_registration_challenged(u->driver, u->rx_flow, stale != 0));
        return;
    }
    reported(u, "final error",
             imstls_driver_registration_failed(u->driver, u->rx_flow, (uint32_t)status,
                                               header_number(response, "retry-after")));
}

/* Timer F: no answer within 64*T1. The REGISTER's own flow gets the 408. */
static void cb_timeout(int type, osip_transaction_t *tr, osip_message_t *request) {
    (void)type, (void)tr, (void)request;
    ua *u = the_ua;
    say(u, "osip", "NICT timer F fired flow=%llu", (unsigned long long)u->pending_flow);
    u->rx_flow = u->pending_flow;
    reported(u, "timeout", imstls_driver_registration_failed(u->driver, u->pending_flow, 408, 0));
    u->rx_flow = 0;
}

static void cb_transport_error(int type, osip_transaction_t *tr, int error) {
    (void)type, (void)tr;
    say(the_ua, "osip", "NICT transport error %d (imstls reports the flow's fate)", error);
}

/* oSIP ends the transaction (Timer K, timeout, error): free it after execute returns. */
static void cb_kill(int type, osip_transaction_t *tr) {
    (void)type;
    ua *u = the_ua;
    osip_remove_transaction(u->osip, tr);
    if (tr == u->pending) u->pending = NULL;
    if (u->n_finished < sizeof u->finished / sizeof u->finished[0]) u->finished[u->n_finished++] = tr;
}

/* SIP_RECEIVED: oSIP parses the message and its transaction layer matches the answer. */
static void receive_sip(ua *u, const imstls_output *o) {
    const uint8_t *data = NULL;
    size_t len = 0;
    osip_message_t *msg = NULL;
    if (imstls_output_data(o, &data, &len) != IMSTLS_OK || osip_message_init(&msg) != 0) return;
    if (osip_message_parse(msg, (const char *)data, len) != 0) {
        say(u, "osip", "unparsable message of %zu bytes dropped", len);
        osip_message_free(msg);
        return;
    }
    if (!MSG_IS_RESPONSE(msg)) {
        /* This UA handles no requests; a full stack would start a NIST here. */
        say(u, "osip", "request %s dropped", msg->sip_method ? msg->sip_method : "?");
        osip_message_free(msg);
        return;
    }
    osip_event_t *evt = osip_malloc(sizeof *evt);
    if (evt == NULL) {
        osip_message_free(msg);
        return;
    }
    memset(evt, 0, sizeof *evt);
    evt->type = evt_set_type_incoming_sipmessage(msg);
    evt->sip = msg;
    u->rx_flow = imstls_output_flow(o);
    if (osip_find_transaction_and_add_event(u->osip, evt) != 0) {
        say(u, "osip", "response of no transaction dropped (flow %llu)", (unsigned long long)u->rx_flow);
        osip_event_free(evt);
    } else {
        run_osip(u); /* the answer callbacks run here, with rx_flow set */
    }
    u->rx_flow = 0;
}

/* ---- imstls events ------------------------------------------------------------------------- */

static void print_event(const ua *u, const imstls_output *o) {
    imstls_event_kind event = imstls_output_event(o);
    const char *reason = imstls_output_reason(o);
    char extra[512] = "";
    if (event == IMSTLS_EVENT_CERTIFICATE_REJECTED || event == IMSTLS_EVENT_TLS_FAILED) {
        const imstls_error *e = imstls_output_error(o);
        const char *alert = imstls_error_alert_sent_name(e);
        snprintf(extra, sizeof extra, " alert=%s expected=%s", alert[0] ? alert : imstls_error_alert_received_name(e),
                 imstls_error_expected_name(e));
    } else if (event == IMSTLS_EVENT_CONNECTION_LOST) {
        snprintf(extra, sizeof extra, " was_registered=%s",
                 imstls_output_flags(o) & IMSTLS_FLAG_WAS_REGISTERED ? "true" : "false");
    } else if (event == IMSTLS_EVENT_REGISTERED) {
        snprintf(extra, sizeof extra, " expires=%llu", (unsigned long long)imstls_output_expires_s(o));
    } else if (event == IMSTLS_EVENT_REGISTRATION_FAILED) {
        snprintf(extra, sizeof extra, " status=%u retrying=%s", (unsigned)imstls_output_sip_status(o),
                 imstls_output_flags(o) & IMSTLS_FLAG_RETRYING ? "true" : "false");
    }
    say(u, "imstls", "%s flow=%llu%s%s%s -- %s", imstls_output_event_name(o),
        (unsigned long long)imstls_output_flow(o), reason[0] ? " reason=" : "", reason, extra,
        imstls_output_detail(o));
}

static void act(ua *u, const imstls_output *o) {
    switch (imstls_output_event(o)) {
    case IMSTLS_EVENT_REGISTER_NOW: {
        imstls_result rc = send_register(u, o);
        if (rc != IMSTLS_OK) {
            fprintf(stderr, "osip_ua: building the REGISTER: %s\n", imstls_result_str(rc));
            u->stop = EXIT_USAGE;
        }
        break;
    }
    case IMSTLS_EVENT_SIP_RECEIVED:
        receive_sip(u, o);
        break;
    case IMSTLS_EVENT_REGISTERED:
        u->registered = u->ever_registered = 1;
        break;
    case IMSTLS_EVENT_CONNECTION_LOST:
    case IMSTLS_EVENT_SUPERSEDED:
        /* The REGISTER in flight died with its flow: end its transaction now, not at Timer F. */
        u->registered = 0;
        drop_pending(u);
        break;
    case IMSTLS_EVENT_DEREGISTERED:
        u->deregistered = 1;
        break;
    case IMSTLS_EVENT_REGISTRATION_FAILED:
        if (!(imstls_output_flags(o) & IMSTLS_FLAG_RETRYING)) {
            const char *reason = imstls_output_reason(o);
            u->stop = strcmp(reason, "certificate") == 0 ? EXIT_CERTIFICATE
                      : strcmp(reason, "tls") == 0       ? EXIT_TLS
                                                         : EXIT_REJECTED;
        }
        break;
    case IMSTLS_EVENT_BACKING_OFF:
        /* Before the first registration a back-off means the P-CSCF is out of reach. */
        if (!u->ever_registered) u->stop = EXIT_CONNECT;
        break;
    default:
        break;
    }
}

/* Runs imstls and oSIP until `done`, a stopping event or the deadline. */
static int run_until(ua *u, int (*done)(const ua *), uint64_t deadline) {
    while (!u->stop && !done(u) && now_ms() < deadline) {
        /* Wake for oSIP's next timer too: its transactions keep their own time. */
        struct timeval tv = {0, (long)MAX_WAIT_MS * 1000};
        osip_timers_gettimeout(u->osip, &tv);
        uint64_t wait = (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
        imstls_result rc = imstls_driver_run(u->driver, (uint32_t)(wait < MAX_WAIT_MS ? wait : MAX_WAIT_MS));
        if (rc != IMSTLS_OK) {
            fprintf(stderr, "osip_ua: %s\n", imstls_result_str(rc));
            return EXIT_CONNECT;
        }
        imstls_output *o = NULL;
        while (!u->stop && imstls_driver_poll_event(u->driver, &o) == IMSTLS_OK) {
            print_event(u, o);
            act(u, o);
            imstls_output_free(o);
        }
        run_osip(u);
    }
    return u->stop;
}

static int is_registered(const ua *u) { return u->registered; }
static int never(const ua *u) { (void)u; return 0; }
static int is_deregistered(const ua *u) { return u->deregistered; }

int main(int argc, char **argv) {
    args a;
    if (parse_args(argc, argv, &a) != 0) {
        fputs(USAGE, stderr);
        return EXIT_USAGE;
    }
    static ua u;
    u.a = &a;
    u.start = now_ms();
    the_ua = &u;
    if (read_password(a.password_file, u.password, sizeof u.password) != 0 || split_impu(&u, a.impu) != 0) {
        fputs("osip_ua: --password-file unreadable or empty, or --impu not sip:user@domain\n", stderr);
        return EXIT_USAGE;
    }
    if (osip_init(&u.osip) != 0) {
        fputs("osip_ua: osip_init failed\n", stderr);
        return EXIT_USAGE;
    }
    osip_set_cb_send_message(u.osip, cb_send);
    osip_set_message_callback(u.osip, OSIP_NICT_STATUS_2XX_RECEIVED, cb_answer);
    osip_set_message_callback(u.osip, OSIP_NICT_STATUS_3XX_RECEIVED, cb_answer);
    osip_set_message_callback(u.osip, OSIP_NICT_STATUS_4XX_RECEIVED, cb_answer);
    osip_set_message_callback(u.osip, OSIP_NICT_STATUS_5XX_RECEIVED, cb_answer);
    osip_set_message_callback(u.osip, OSIP_NICT_STATUS_6XX_RECEIVED, cb_answer);
    osip_set_message_callback(u.osip, OSIP_NICT_STATUS_TIMEOUT, cb_timeout);
    osip_set_kill_transaction_callback(u.osip, OSIP_NICT_KILL_TRANSACTION, cb_kill);
    osip_set_transport_error_callback(u.osip, OSIP_NICT_TRANSPORT_ERROR, cb_transport_error);

    int code = EXIT_USAGE;
    imstls_config *config = configure(&a);
    if (config != NULL) {
        imstls_result rc = imstls_driver_new(config, &u.driver);
        imstls_config_free(config);
        const char *impus[] = {a.impu};
        if (rc == IMSTLS_OK) rc = imstls_driver_start_registration(u.driver, a.impi, impus, 1);
        if (rc != IMSTLS_OK) {
            fprintf(stderr, "osip_ua: %s\n", imstls_result_str(rc));
        } else {
            code = run_until(&u, is_registered, now_ms() + REGISTER_DEADLINE_MS);
            if (code == 0 && !u.registered) {
                fprintf(stderr, "osip_ua: not registered after %u s\n", REGISTER_DEADLINE_MS / 1000);
                code = EXIT_CONNECT;
            }
            if (code == 0) code = run_until(&u, never, now_ms() + (uint64_t)a.hold * 1000u);
            if (code == 0 && !u.registered) {
                fputs("osip_ua: not registered when the hold ended\n", stderr);
                code = EXIT_CONNECT;
            }
            if (code == 0) {
                rc = imstls_driver_deregister(u.driver);
                code = rc == IMSTLS_OK ? run_until(&u, is_deregistered, now_ms() + DEREGISTER_DEADLINE_MS)
                                       : EXIT_CONNECT;
                if (code == 0 && !u.deregistered) {
                    fputs("osip_ua: de-registration did not complete\n", stderr);
                    code = EXIT_CONNECT;
                }
            }
        }
    }
    drop_pending(&u);
    collect_finished(&u);
    imstls_driver_free(u.driver);
    osip_release(u.osip);
    wipe(u.password, sizeof u.password);
    wipe(u.nonce, sizeof u.nonce);
    return code;
}
