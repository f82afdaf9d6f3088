/* mini_ua: see mini_ua.h. C99 + POSIX; MD5 per RFC 1321, Digest per RFC 7616 / RFC 2617. */
#define _POSIX_C_SOURCE 200809L
#include "mini_ua.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- MD5 (RFC 1321) ------------------------------------------------------------------- */

typedef struct md5 {
    uint32_t state[4];
    uint64_t length;
    uint8_t block[64];
    size_t used;
} md5;

static uint32_t md5_k[64];
static const uint8_t md5_shift[64] = {
    7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
    5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
    4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
    6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};

static uint32_t rotl(uint32_t x, unsigned n) { return (x << n) | (x >> (32 - n)); }

static void md5_block(md5 *m, const uint8_t *p) {
    uint32_t w[16];
    for (int i = 0; i < 16; i++) {
        w[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
               (uint32_t)p[4 * i + 3] << 24;
    }
    uint32_t a = m->state[0], b = m->state[1], c = m->state[2], d = m->state[3];
    for (int i = 0; i < 64; i++) {
        uint32_t f;
        int g;
        if (i < 16) {
            f = (b & c) | (~b & d);
            g = i;
        } else if (i < 32) {
            f = (d & b) | (~d & c);
            g = (5 * i + 1) % 16;
        } else if (i < 48) {
            f = b ^ c ^ d;
            g = (3 * i + 5) % 16;
        } else {
            f = c ^ (b | ~d);
            g = (7 * i) % 16;
        }
        uint32_t next = d;
        d = c;
        c = b;
        b = b + rotl(a + f + md5_k[i] + w[g], md5_shift[i]);
        a = next;
    }
    m->state[0] += a;
    m->state[1] += b;
    m->state[2] += c;
    m->state[3] += d;
}

static void md5_init(md5 *m) {
    if (md5_k[0] == 0) {
        /* K[i] = floor(|sin(i + 1)| * 2^32), as RFC 1321 defines the table. */
        for (int i = 0; i < 64; i++) md5_k[i] = (uint32_t)(fabs(sin((double)(i + 1))) * 4294967296.0);
    }
    m->state[0] = 0x67452301u;
    m->state[1] = 0xefcdab89u;
    m->state[2] = 0x98badcfeu;
    m->state[3] = 0x10325476u;
    m->length = 0;
    m->used = 0;
}

static void md5_update(md5 *m, const void *data, size_t len) {
    const uint8_t *p = data;
    m->length += len;
    while (len > 0) {
        size_t take = 64 - m->used < len ? 64 - m->used : len;
        memcpy(m->block + m->used, p, take);
        m->used += take;
        p += take;
        len -= take;
        if (m->used == 64) {
            md5_block(m, m->block);
            m->used = 0;
        }
    }
}

static void md5_final(md5 *m, uint8_t out[16]) {
    uint64_t bits = m->length * 8;
    uint8_t pad = 0x80;
    md5_update(m, &pad, 1);
    pad = 0;
    while (m->used != 56) md5_update(m, &pad, 1);
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)(bits >> (8 * i));
    md5_update(m, len, 8);
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 4; j++) out[4 * i + j] = (uint8_t)(m->state[i] >> (8 * j));
    }
}

void mini_ua_md5_hex(const void *data, size_t len, char out[33]) {
    md5 m;
    uint8_t digest[16];
    md5_init(&m);
    md5_update(&m, data, len);
    md5_final(&m, digest);
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

/* ---- the UA ---------------------------------------------------------------------------- */

static void random_hex(char *out, size_t digits) {
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < digits; i++) out[i] = hex[rand() % 16];
    out[digits] = '\0';
}

static int copy(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n >= cap) return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

int mini_ua_init(mini_ua *ua, const char *impi, const char *impu, const char *password,
                 unsigned expires) {
    memset(ua, 0, sizeof *ua);
    if (copy(ua->impi, sizeof ua->impi, impi) || copy(ua->impu, sizeof ua->impu, impu) ||
        copy(ua->password, sizeof ua->password, password)) {
        return -1;
    }
    const char *at = strchr(impu, '@');
    if (at == NULL) return -1;
    size_t n = strcspn(at + 1, ";>:");
    if (n == 0 || n >= sizeof ua->domain) return -1;
    memcpy(ua->domain, at + 1, n);
    ua->domain[n] = '\0';
    ua->expires = expires;
    copy(ua->local, sizeof ua->local, "127.0.0.1:5061");
    mini_ua_new_registration(ua);
    return 0;
}

void mini_ua_wipe(mini_ua *ua) {
    volatile char *p = ua->password;
    for (size_t i = 0; i < sizeof ua->password; i++) p[i] = 0;
}

void mini_ua_set_local(mini_ua *ua, const char *local) {
    copy(ua->local, sizeof ua->local, local);
}

void mini_ua_new_registration(mini_ua *ua) {
    char id[25];
    random_hex(id, 24);
    snprintf(ua->call_id, sizeof ua->call_id, "%s@mini-ua", id);
    random_hex(ua->from_tag, 12);
    ua->have_challenge = 0;
    ua->nc = 0;
    ua->pending_cseq = 0;
}

/* The user part of the IMPU ("sip:alice@ims.test" -> "alice"), for the Contact. */
static void user_part(const mini_ua *ua, char *out, size_t cap) {
    const char *start = strchr(ua->impu, ':');
    start = start ? start + 1 : ua->impu;
    size_t n = strcspn(start, "@");
    if (n >= cap) n = cap - 1;
    memcpy(out, start, n);
    out[n] = '\0';
}

static size_t authorization(mini_ua *ua, const char *uri, char *buf, size_t cap) {
    char a1[512], a2[512], ha1[33], ha2[33], response[33], cnonce[17], nc[9], all[1024];
    snprintf(a1, sizeof a1, "%s:%s:%s", ua->impi, ua->realm, ua->password);
    mini_ua_md5_hex(a1, strlen(a1), ha1);
    memset(a1, 0, sizeof a1);
    snprintf(a2, sizeof a2, "REGISTER:%s", uri);
    mini_ua_md5_hex(a2, strlen(a2), ha2);
    int n;
    if (ua->qop_auth) {
        ua->nc++;
        snprintf(nc, sizeof nc, "%08x", ua->nc);
        random_hex(cnonce, 16);
        snprintf(all, sizeof all, "%s:%s:%s:%s:auth:%s", ha1, ua->nonce, nc, cnonce, ha2);
        mini_ua_md5_hex(all, strlen(all), response);
        n = snprintf(buf, cap,
                     "Authorization: Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", "
                     "uri=\"%s\", response=\"%s\", algorithm=MD5, cnonce=\"%s\", qop=auth, "
                     "nc=%s",
                     ua->impi, ua->realm, ua->nonce, uri, response, cnonce, nc);
    } else {
        snprintf(all, sizeof all, "%s:%s:%s", ha1, ua->nonce, ha2);
        mini_ua_md5_hex(all, strlen(all), response);
        n = snprintf(buf, cap,
                     "Authorization: Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", "
                     "uri=\"%s\", response=\"%s\", algorithm=MD5",
                     ua->impi, ua->realm, ua->nonce, uri, response);
    }
    memset(ha1, 0, sizeof ha1);
    if (n < 0 || (size_t)n >= cap) return 0;
    if (ua->opaque[0] != '\0') {
        int m = snprintf(buf + n, cap - (size_t)n, ", opaque=\"%s\"", ua->opaque);
        if (m < 0 || (size_t)m >= cap - (size_t)n) return 0;
        n += m;
    }
    return (size_t)n;
}

size_t mini_ua_register(mini_ua *ua, int deregister, char *buf, size_t cap) {
    char uri[160], user[128], branch[17], auth[1024] = "";
    unsigned expires = deregister ? 0 : ua->expires;
    snprintf(uri, sizeof uri, "sip:%s", ua->domain);
    user_part(ua, user, sizeof user);
    random_hex(branch, 16);
    if (ua->have_challenge) {
        size_t n = authorization(ua, uri, auth, sizeof auth - 2);
        if (n == 0) return 0;
        memcpy(auth + n, "\r\n", 3);
    }
    ua->cseq++;
    int n = snprintf(buf, cap,
                     "REGISTER %s SIP/2.0\r\n"
                     "Via: SIP/2.0/TLS %s;branch=z9hG4bK%s;rport\r\n"
                     "Max-Forwards: 70\r\n"
                     "From: <%s>;tag=%s\r\n"
                     "To: <%s>\r\n"
                     "Call-ID: %s\r\n"
                     "CSeq: %u REGISTER\r\n"
                     "Contact: <sip:%s@%s;transport=tls>;expires=%u\r\n"
                     "Expires: %u\r\n"
                     "%s"
                     "Content-Length: 0\r\n"
                     "\r\n",
                     uri, ua->local, branch, ua->impu, ua->from_tag, ua->impu, ua->call_id,
                     ua->cseq, user, ua->local, expires, expires, auth);
    memset(auth, 0, sizeof auth);
    if (n < 0 || (size_t)n >= cap) return 0;
    ua->pending_cseq = ua->cseq;
    ua->pending_deregister = deregister;
    return (size_t)n;
}

/* The value of header `name` (case-insensitive) in a NUL-terminated message, copied into out. */
static int header(const char *msg, const char *name, char *out, size_t cap) {
    size_t len = strlen(name);
    for (const char *line = strstr(msg, "\r\n"); line != NULL; line = strstr(line + 2, "\r\n")) {
        const char *start = line + 2;
        if (start[0] == '\r') break; /* end of the headers */
        if (strncasecmp(start, name, len) != 0) continue;
        const char *p = start + len;
        while (*p == ' ' || *p == '\t') p++;
        if (*p != ':') continue;
        p++;
        while (*p == ' ' || *p == '\t') p++;
        size_t n = strcspn(p, "\r");
        if (n >= cap) n = cap - 1;
        memcpy(out, p, n);
        out[n] = '\0';
        return 1;
    }
    return 0;
}

/* A Digest parameter (quoted or not) from a challenge. */
static int param(const char *value, const char *name, char *out, size_t cap) {
    size_t len = strlen(name);
    for (const char *p = value; *p != '\0'; p++) {
        if ((p == value || p[-1] == ' ' || p[-1] == ',') && strncasecmp(p, name, len) == 0 &&
            p[len] == '=') {
            const char *v = p + len + 1;
            size_t n;
            if (*v == '"') {
                v++;
                n = strcspn(v, "\"");
            } else {
                n = strcspn(v, ", ");
            }
            if (n >= cap) n = cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return 1;
        }
    }
    return 0;
}

mini_ua_result mini_ua_response(mini_ua *ua, const uint8_t *msg, size_t len) {
    mini_ua_result result = {MINI_UA_OTHER, 0, 0, 0, 0};
    char *text = malloc(len + 1);
    if (text == NULL) return result;
    memcpy(text, msg, len);
    text[len] = '\0';
    char value[1024];
    unsigned status = 0, cseq = 0;
    if (sscanf(text, "SIP/2.0 %u", &status) != 1 || !header(text, "CSeq", value, sizeof value) ||
        sscanf(value, "%u", &cseq) != 1 || strstr(value, "REGISTER") == NULL ||
        cseq != ua->pending_cseq || !header(text, "Call-ID", value, sizeof value) ||
        strcmp(value, ua->call_id) != 0 || status < 200) {
        free(text);
        return result;
    }
    ua->pending_cseq = 0;
    result.status = status;
    if (status >= 200 && status < 300) {
        result.outcome = ua->pending_deregister ? MINI_UA_DEREGISTERED : MINI_UA_REGISTERED;
        result.expires = ua->expires;
        if (header(text, "Expires", value, sizeof value)) result.expires = (unsigned)atoi(value);
    } else if (status == 401 && header(text, "WWW-Authenticate", value, sizeof value) &&
               param(value, "realm", ua->realm, sizeof ua->realm) &&
               param(value, "nonce", ua->nonce, sizeof ua->nonce)) {
        char algorithm[32] = "MD5", qop[64] = "", stale[16] = "";
        param(value, "algorithm", algorithm, sizeof algorithm);
        if (strcasecmp(algorithm, "MD5") != 0) {
            result.outcome = MINI_UA_FAILED; /* this tiny UA speaks MD5 only */
        } else {
            if (!param(value, "opaque", ua->opaque, sizeof ua->opaque)) ua->opaque[0] = '\0';
            ua->qop_auth = param(value, "qop", qop, sizeof qop) && strstr(qop, "auth") != NULL;
            result.stale = param(value, "stale", stale, sizeof stale) && strcasecmp(stale, "true") == 0;
            ua->have_challenge = 1;
            ua->nc = 0;
            result.outcome = MINI_UA_CHALLENGED;
        }
    } else {
        result.outcome = MINI_UA_FAILED;
        if (header(text, "Retry-After", value, sizeof value)) result.retry_after = (unsigned)atoi(value);
    }
    free(text);
    return result;
}
