/*
 * ue: register to a P-CSCF over TS 33.203 Annex O TLS from C -- the C twin of
 * examples/ue.rs, on imstls's managed driver (imstls owns the socket, this program plays
 * the SIP stack with the tiny UA in mini_ua.c: MD5 Digest only).
 *
 *   ue --pcscf HOST:PORT [--pcscf ...] [--server-name FQDN] [--ca FILE.pem ...]
 *      [--pin SPKI_SHA256_BASE64] --impi ID --impu URI [--impu ...] --password-file FILE|-
 *      [--expires SECS] [--tls13-only] [--hold SECS] [--json | --ladder] [--keylog FILE]
 *   ue --help
 *
 * Registers, stays registered --hold seconds (refreshing and recovering from loss), then
 * de-registers. The password comes from the first line of a file (or of standard input with
 * `-`); --password SECRET works but warns (it shows in `ps`). --json prints one JSON object
 * per event ("event", "t_ms", ...), --ladder a sequence diagram in the same lines as
 * `examples/ue.rs --ladder`. --keylog FILE appends the TLS secrets for Wireshark through
 * imstls_config_builder_set_key_log_callback (debugging only). Exit codes:
 * 0 success, 1 registration rejected, 2 usage or configuration error, 3 P-CSCF certificate
 * rejected, 4 other TLS failure, 5 connect failure or timeout. Identities and the password
 * are never printed.
 *
 * Build: cc -std=c99 ue.c mini_ua.c $(pkg-config --cflags --libs imstls) -lm -o ue
 */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
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
    "          [--pin SPKI_SHA256_BASE64] --impi ID --impu URI [--impu ...] --password-file FILE|-\n"
    "          [--expires SECS] [--tls13-only] [--hold SECS] [--json | --ladder] [--keylog FILE]\n"
    "       ue --help\n";

static const char HELP[] =
    "\n"
    "ue: register to a P-CSCF over TS 33.203 Annex O TLS, stay registered, de-register.\n"
    "\n"
    "Flags:\n"
    "  --pcscf HOST:PORT         P-CSCF candidate, tried in order (repeat for failover); required\n"
    "  --server-name FQDN        name the P-CSCF certificate must carry (RFC 5922), sent as SNI\n"
    "  --ca FILE.pem             trust anchors (repeatable); default: the Mozilla roots\n"
    "  --pin SPKI_SHA256_BASE64  also require this SPKI pin (repeatable)\n"
    "  --impi ID                 private identity; required\n"
    "  --impu URI                public identity, sip:user@domain (repeatable); required\n"
    "  --password-file FILE      read the Digest password from the first line of FILE;\n"
    "                            `-` reads it from standard input\n"
    "  --password SECRET         the password on the command line: visible in `ps` and the shell\n"
    "                            history, so it warns; prefer --password-file\n"
    "  --expires SECS            requested registration expiry (default 3600)\n"
    "  --tls13-only              offer TLS 1.3 only (default: TLS 1.3 and 1.2)\n"
    "  --hold SECS               stay registered SECS seconds (refreshing, recovering), then\n"
    "                            de-register (default 0)\n"
    "  --json                    one JSON object per event and line\n"
    "  --ladder                  a sequence diagram: UE | P-CSCF, one line per event with its time\n"
    "  --keylog FILE             DEBUGGING ONLY: append the TLS secrets (NSS key log) to FILE so\n"
    "                            Wireshark can decrypt a capture; anyone with FILE can read the\n"
    "                            flows. Never enabled by SSLKEYLOGFILE. Warns on stderr and with\n"
    "                            a key_log_enabled event per flow\n"
    "  -h, --help                this text\n"
    "\n"
    "Output: one line per event, as text (default), JSON (--json) or a ladder (--ladder).\n"
    "Identities and the password are never printed.\n"
    "\n"
    "JSON events: every line has \"event\", \"t_ms\" (since start) and \"clause\"; besides:\n"
    "  connecting               (see the text output for the target)\n"
    "  key_log_enabled          (warning: this flow's secrets go to the key log)\n"
    "  connect_failed           reason\n"
    "  tls_established          version, cipher_suite, group, resumed\n"
    "  client_certificate_requested\n"
    "  certificate_rejected     alert, alert_sent, alert_received, reason, detail\n"
    "  tls_failed               alert, alert_sent, alert_received, reason, detail\n"
    "  register_now             reason (initial, challenge, stale_challenge, refresh, recovery,\n"
    "                           network_changed, rekey, deregister)\n"
    "  registering              kind (register, refresh, deregister)\n"
    "  sip_received\n"
    "  challenged               stale\n"
    "  registered               expires\n"
    "  keepalive_sent, pong_received, ping_answered, rekeyed\n"
    "  connection_lost          reason, registered\n"
    "  backoff                  attempt, delay_ms, candidates\n"
    "  superseded\n"
    "  registration_failed      status, reason, retrying, candidates\n"
    "  deregistered\n"
    "  candidates: [{\"candidate\":N,\"target\":\"host:port\",\"reason\":\"...\",\"detail\":\"...\"}, ...]\n"
    "\n"
    "Exit codes:\n"
    "  0  registered, held and de-registered\n"
    "  1  registration rejected\n"
    "  2  usage or configuration error\n"
    "  3  P-CSCF certificate rejected\n"
    "  4  other TLS failure\n"
    "  5  connect failure or timeout\n";

static const char PASSWORD_WARNING[] =
    "ue: warning: --password puts the password in every `ps` listing and in the shell history; "
    "use --password-file FILE, or --password-file - to read it from standard input\n";

typedef struct args {
    const char *pcscf[MAX_LIST], *ca[MAX_LIST], *pins[MAX_LIST], *impus[MAX_LIST];
    size_t n_pcscf, n_ca, n_pins, n_impus;
    const char *server_name, *impi, *password, *keylog;
    unsigned expires, hold;
    int tls13_only, json, ladder, help;
    char password_buffer[128]; /* from --password-file; wiped before exit */
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

/* The first line of `path` (`-`: standard input) into a->password_buffer, without its end. */
static int read_password(args *a, const char *path) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "ue: --password-file %s: cannot open it\n", path);
        return -1;
    }
    char *line = fgets(a->password_buffer, sizeof a->password_buffer, f);
    int whole = line != NULL && (strchr(line, '\n') != NULL || feof(f));
    if (f != stdin) fclose(f);
    if (line != NULL && !whole) {
        memset(a->password_buffer, 0, sizeof a->password_buffer);
        fprintf(stderr, "ue: --password-file %s: the password is longer than %u bytes\n", path,
                (unsigned)sizeof a->password_buffer - 2);
        return -1;
    }
    if (line != NULL) line[strcspn(line, "\r\n")] = '\0';
    if (line == NULL || line[0] == '\0') {
        fprintf(stderr, "ue: --password-file %s: no password on the first line\n", path);
        return -1;
    }
    a->password = a->password_buffer;
    return 0;
}

static int parse(int argc, char **argv, args *a) {
    memset(a, 0, sizeof *a);
    a->expires = 3600;
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (strcmp(flag, "--tls13-only") == 0) { a->tls13_only = 1; continue; }
        if (strcmp(flag, "--json") == 0) { a->json = 1; continue; }
        if (strcmp(flag, "--ladder") == 0) { a->ladder = 1; continue; }
        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) { a->help = 1; return 0; }
        if (i + 1 >= argc) return -1;
        const char *value = argv[++i];
        int bad = 0;
        if (strcmp(flag, "--pcscf") == 0) bad = add(a->pcscf, &a->n_pcscf, value);
        else if (strcmp(flag, "--ca") == 0) bad = add(a->ca, &a->n_ca, value);
        else if (strcmp(flag, "--pin") == 0) bad = add(a->pins, &a->n_pins, value);
        else if (strcmp(flag, "--impu") == 0) bad = add(a->impus, &a->n_impus, value);
        else if (strcmp(flag, "--server-name") == 0) a->server_name = value;
        else if (strcmp(flag, "--impi") == 0) a->impi = value;
        else if (strcmp(flag, "--password") == 0) { fputs(PASSWORD_WARNING, stderr); a->password = value; }
        else if (strcmp(flag, "--password-file") == 0) bad = read_password(a, value);
        else if (strcmp(flag, "--keylog") == 0) a->keylog = value;
        else if (strcmp(flag, "--expires") == 0) bad = number(value, &a->expires) || a->expires == 0;
        else if (strcmp(flag, "--hold") == 0) bad = number(value, &a->hold);
        else bad = 1;
        if (bad) return -1;
    }
    return a->n_pcscf && a->impi && a->n_impus && a->password && !(a->json && a->ladder) ? 0 : -1;
}

/* --keylog: each NSS line imstls hands over, appended to the file (opened 0600). */
static void write_key_log_line(void *userdata, const char *line, size_t len) {
    FILE *f = userdata;
    fwrite(line, 1, len, f);
    fputc('\n', f);
    fflush(f);
}

static FILE *open_key_log(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "a");
    if (f == NULL) fprintf(stderr, "ue: --keylog %s: cannot open it\n", path);
    else fprintf(stderr, "ue: warning: TLS secrets are appended to %s: whoever holds it can decrypt the captured flows\n", path);
    return f;
}

/* A configuration error names the field; exit 2. */
static imstls_config *configure(const args *a, FILE *key_log) {
    imstls_config_builder *b = NULL;
    imstls_config *config = NULL;
    imstls_result rc = imstls_config_builder_new(&b);
    for (size_t i = 0; rc == IMSTLS_OK && i < a->n_pcscf; i++) rc = imstls_config_builder_add_pcscf(b, a->pcscf[i]);
    for (size_t i = 0; rc == IMSTLS_OK && i < a->n_ca; i++) rc = imstls_config_builder_add_trust_anchors_file(b, a->ca[i]);
    for (size_t i = 0; rc == IMSTLS_OK && i < a->n_pins; i++) rc = imstls_config_builder_add_spki_pin(b, a->pins[i]);
    if (rc == IMSTLS_OK && a->server_name) rc = imstls_config_builder_set_server_name(b, a->server_name);
    if (rc == IMSTLS_OK && a->tls13_only) rc = imstls_config_builder_set_tls_versions(b, IMSTLS_TLS_1_3_ONLY);
    if (rc == IMSTLS_OK && key_log) rc = imstls_config_builder_set_key_log_callback(b, write_key_log_line, key_log);
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

/* ---- the ladder: the same lines as examples/support/ladder.rs ---------------------------- */

#define LADDER_WIDTH 44 /* characters between the two lifelines */

static void ladder_header(void) { printf("%9s  %-*sP-CSCF\n", "time (s)", LADDER_WIDTH + 1, "UE"); }

static void ladder_time(uint64_t t_ms) {
    char time[32];
    snprintf(time, sizeof time, "%llu.%03llu", (unsigned long long)(t_ms / 1000), (unsigned long long)(t_ms % 1000));
    printf("%9s  ", time);
}

/* |<head><label> <fill...><end>|  <right> */
static void ladder_arrow(uint64_t t_ms, const char *head, const char *label, char fill, const char *end,
                         const char *right) {
    char inner[256];
    int n = snprintf(inner, sizeof inner, "%s%s ", head, label);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof inner ? (size_t)n : sizeof inner - 1;
    while (len + strlen(end) < LADDER_WIDTH && len < sizeof inner - 1) inner[len++] = fill;
    inner[len] = '\0';
    ladder_time(t_ms);
    printf("|%s%s|%s%s\n", inner, end, right[0] ? "  " : "", right);
}

static void to_pcscf(uint64_t t, const char *label, const char *right) { ladder_arrow(t, "-- ", label, '-', ">", right); }
static void to_ue(uint64_t t, const char *label, const char *right) { ladder_arrow(t, "<-- ", label, '-', "", right); }

static void note(uint64_t t_ms, char marker, const char *text) {
    ladder_time(t_ms);
    printf("| %c %s\n", marker, text);
}

/* A SIP start line without the version ("401 Unauthorized"), or a request's method: never headers. */
static void start_line(const imstls_output *o, char *out, size_t size) {
    const uint8_t *data = NULL;
    size_t len = 0, n = 0;
    imstls_output_data(o, &data, &len);
    for (size_t i = 0; i < len && n < 40 && n + 1 < size && data[i] != '\r' && data[i] != '\n'; i++)
        if (data[i] >= 0x20 && data[i] < 0x7f) out[n++] = (char)data[i];
    out[n] = '\0';
    if (strncmp(out, "SIP/2.0 ", 8) == 0) memmove(out, out + 8, n - 8 + 1);
    else out[strcspn(out, " ")] = '\0';
}

static void print_ladder(const imstls_output *o, uint64_t t) {
    static char register_reason[32] = "initial";
    char label[128], right[256];
    unsigned long long flow = (unsigned long long)imstls_output_flow(o);
    const imstls_error *e = imstls_output_error(o);
    switch (imstls_output_event(o)) {
    case IMSTLS_EVENT_CONNECTING: {
        const char *host = imstls_output_host(o);
        snprintf(label, sizeof label, "TCP connect flow#%llu", flow);
        snprintf(right, sizeof right, strchr(host, ':') ? "[%s]:%u (attempt %u)" : "%s:%u (attempt %u)", host,
                 (unsigned)imstls_output_port(o), (unsigned)imstls_output_attempt(o));
        to_pcscf(t, label, right);
        break;
    }
    case IMSTLS_EVENT_CONNECT_FAILED:
        snprintf(label, sizeof label, "connect failed: %s", imstls_output_detail(o));
        note(t, 'x', label);
        break;
    case IMSTLS_EVENT_KEY_LOG_ENABLED:
        snprintf(label, sizeof label, "key log on: flow#%llu can be decrypted by whoever holds it", flow);
        note(t, '!', label);
        break;
    case IMSTLS_EVENT_TLS_ESTABLISHED: {
        int resumed = imstls_output_flags(o) & IMSTLS_FLAG_RESUMED;
        const char *group = imstls_output_kx_group(o);
        snprintf(label, sizeof label, "TLS handshake %s%s", imstls_output_tls_version(o), resumed ? " resumed" : "");
        snprintf(right, sizeof right, "%s %s", imstls_output_cipher_suite(o), group[0] ? group : "-");
        ladder_arrow(t, "<== ", label, '=', ">", right);
        break;
    }
    case IMSTLS_EVENT_CLIENT_CERTIFICATE_REQUESTED:
        to_ue(t, "CertificateRequest", imstls_output_flags(o) & IMSTLS_FLAG_ABORTED ? "aborted" : "sent no certificate");
        break;
    case IMSTLS_EVENT_CERTIFICATE_REJECTED:
    case IMSTLS_EVENT_TLS_FAILED:
        if (imstls_error_alert_sent_name(e)[0]) {
            snprintf(label, sizeof label, "alert %s", imstls_error_alert_sent_name(e));
            to_pcscf(t, label, imstls_output_reason(o));
        } else if (imstls_error_alert_received_name(e)[0]) {
            snprintf(label, sizeof label, "alert %s", imstls_error_alert_received_name(e));
            to_ue(t, label, imstls_output_reason(o));
        }
        snprintf(right, sizeof right, "%s: %s", imstls_output_event_name(o), imstls_output_detail(o));
        note(t, 'x', right);
        break;
    case IMSTLS_EVENT_REGISTER_NOW:
        snprintf(register_reason, sizeof register_reason, "%s", imstls_output_reason(o));
        break;
    case IMSTLS_EVENT_REGISTERING:
        to_pcscf(t, "REGISTER", register_reason);
        break;
    case IMSTLS_EVENT_SIP_RECEIVED:
        start_line(o, label, sizeof label);
        to_ue(t, label, "");
        break;
    case IMSTLS_EVENT_CHALLENGED:
        break;
    case IMSTLS_EVENT_REGISTERED:
        snprintf(label, sizeof label, "registered for %llu s", (unsigned long long)imstls_output_expires_s(o));
        note(t, '*', label);
        break;
    case IMSTLS_EVENT_KEEPALIVE_SENT:
        to_pcscf(t, "ping CRLFCRLF", "");
        break;
    case IMSTLS_EVENT_PONG_RECEIVED:
        to_ue(t, "pong CRLF", "");
        break;
    case IMSTLS_EVENT_PING_ANSWERED:
        to_ue(t, "ping CRLFCRLF", "");
        to_pcscf(t, "pong CRLF", "");
        break;
    case IMSTLS_EVENT_CONNECTION_LOST:
        snprintf(label, sizeof label, "flow#%llu lost: %s%s", flow, imstls_output_reason(o),
                 imstls_output_flags(o) & IMSTLS_FLAG_WAS_REGISTERED ? " (was registered)" : "");
        note(t, 'x', label);
        break;
    case IMSTLS_EVENT_BACKING_OFF:
        snprintf(label, sizeof label, "back-off %llu ms (failure %u)", (unsigned long long)imstls_output_delay_ms(o),
                 (unsigned)imstls_output_attempt(o));
        note(t, '~', label);
        break;
    case IMSTLS_EVENT_REGISTRATION_FAILED: {
        char status[16] = "";
        if (imstls_output_sip_status(o)) snprintf(status, sizeof status, " %u", (unsigned)imstls_output_sip_status(o));
        snprintf(label, sizeof label, "registration failed: %s%s%s", imstls_output_reason(o), status,
                 imstls_output_flags(o) & IMSTLS_FLAG_RETRYING ? ", will retry" : "");
        note(t, 'x', label);
        break;
    }
    case IMSTLS_EVENT_DEREGISTERED:
        note(t, '*', "de-registered");
        break;
    default:
        note(t, '*', imstls_output_detail(o));
        break;
    }
    fflush(stdout);
}

static void print_event(const args *a, const imstls_output *o, uint64_t t_ms) {
    imstls_event_kind event = imstls_output_event(o);
    if (a->ladder) {
        print_ladder(o, t_ms);
        return;
    }
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

static int run(args *a);

int main(int argc, char **argv) {
    args a;
    int parsed = parse(argc, argv, &a);
    if (parsed == 0 && a.help) {
        printf("%s%s", USAGE, HELP);
        return 0;
    }
    int code = EXIT_USAGE;
    if (parsed != 0) fputs(USAGE, stderr);
    else code = run(&a);
    memset(a.password_buffer, 0, sizeof a.password_buffer);
    return code;
}

static int drive(app *p, FILE *key_log);

static int run(args *ap) {
    app p;
    memset(&p, 0, sizeof p);
    p.a = ap;
    p.start = now_ms();
    srand((unsigned)p.start);
    int fits = mini_ua_init(&p.ua, ap->impi, ap->impus[0], ap->password, ap->expires) == 0;
    memset(ap->password_buffer, 0, sizeof ap->password_buffer); /* mini_ua keeps its own copy */
    if (!fits) {
        fputs("ue: --impi, --impu (sip:user@domain) or --password does not fit\n", stderr);
        mini_ua_wipe(&p.ua);
        return EXIT_USAGE;
    }
    FILE *key_log = NULL;
    if (ap->keylog && (key_log = open_key_log(ap->keylog)) == NULL) {
        mini_ua_wipe(&p.ua);
        return EXIT_USAGE;
    }
    if (ap->ladder) ladder_header();
    int code = drive(&p, key_log);
    mini_ua_wipe(&p.ua);
    /* The driver (freed in drive) was the last user of the callback's FILE. */
    if (key_log) fclose(key_log);
    return code;
}

/* Configure, register, hold, de-register; frees the driver. */
static int drive(app *p, FILE *key_log) {
    const args a = *p->a;
    imstls_config *config = configure(&a, key_log);
    if (config == NULL) return EXIT_USAGE;
    imstls_result rc = imstls_driver_new(config, &p->driver);
    imstls_config_free(config);
    if (rc != IMSTLS_OK) {
        fprintf(stderr, "ue: %s\n", imstls_result_str(rc));
        return EXIT_TLS;
    }
    rc = imstls_driver_start_registration(p->driver, a.impi, a.impus, a.n_impus);
    if (rc != IMSTLS_OK) {
        imstls_error *e = NULL;
        imstls_driver_last_error(p->driver, &e);
        fprintf(stderr, "ue: %s\n", e ? imstls_error_message(e) : imstls_result_str(rc));
        imstls_error_free(e);
        imstls_driver_free(p->driver);
        return EXIT_USAGE;
    }

    int code = run_until(p, is_registered, now_ms() + REGISTER_DEADLINE_MS);
    if (code == 0 && !p->registered) {
        fprintf(stderr, "ue: not registered after %u s\n", REGISTER_DEADLINE_MS / 1000);
        code = EXIT_CONNECT;
    }
    if (code == 0) code = run_until(p, never, now_ms() + (uint64_t)a.hold * 1000u);
    if (code == 0 && !p->registered) {
        fputs("ue: not registered when the hold ended\n", stderr);
        code = EXIT_CONNECT;
    }
    if (code == 0) {
        rc = imstls_driver_deregister(p->driver);
        code = rc == IMSTLS_OK ? run_until(p, is_deregistered, now_ms() + DEREGISTER_DEADLINE_MS) : EXIT_CONNECT;
        if (code == 0 && !p->deregistered) {
            fputs("ue: de-registration did not complete\n", stderr);
            code = EXIT_CONNECT;
        }
    }
    imstls_driver_free(p->driver);
    return code;
}
