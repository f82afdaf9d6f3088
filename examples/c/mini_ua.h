/*
 * mini_ua: the smallest SIP UA that can register through imstls -- REGISTER, a 401 with a
 * Digest MD5 challenge (qop=auth or none, stale=true), the 200 OK, and a de-REGISTER. It
 * plays "the SIP stack" in examples/c/ue.c and in ffi-tests/. Not a SIP stack: no
 * transactions, no dialogs, MD5 only.
 */
#ifndef MINI_UA_H
#define MINI_UA_H

#include <stddef.h>
#include <stdint.h>

typedef struct mini_ua {
    char impi[128];
    char impu[256];
    char password[128];
    char domain[128];
    char local[64];
    char call_id[64];
    char from_tag[32];
    unsigned cseq;
    unsigned expires;
    /* The last challenge. */
    int have_challenge;
    int qop_auth;
    char realm[128];
    char nonce[256];
    char opaque[128];
    unsigned nc;
    /* The REGISTER waiting for its answer. */
    unsigned pending_cseq;
    int pending_deregister;
} mini_ua;

typedef enum mini_ua_outcome {
    MINI_UA_CHALLENGED = 1,
    MINI_UA_REGISTERED = 2,
    MINI_UA_DEREGISTERED = 3,
    MINI_UA_FAILED = 4,
    MINI_UA_OTHER = 5
} mini_ua_outcome;

typedef struct mini_ua_result {
    mini_ua_outcome outcome;
    int stale;
    unsigned status;
    unsigned expires;
    unsigned retry_after;
} mini_ua_result;

/* Sets up the UA; returns 0, or -1 when an argument does not fit (the domain comes from the
 * IMPU, sip:user@domain). */
int mini_ua_init(mini_ua *ua, const char *impi, const char *impu, const char *password,
                 unsigned expires);

/* Clears the password. */
void mini_ua_wipe(mini_ua *ua);

/* The local address written in Via and Contact ("127.0.0.1:40000"). */
void mini_ua_set_local(mini_ua *ua, const char *local);

/* A new registration: new Call-ID and From-tag, the challenge forgotten. */
void mini_ua_new_registration(mini_ua *ua);

/* Builds a REGISTER (Expires 0 when deregister) into buf, answering the stored challenge if
 * any. Returns its length, or 0 when it does not fit. */
size_t mini_ua_register(mini_ua *ua, int deregister, char *buf, size_t cap);

/* Reads a response to our REGISTER. */
mini_ua_result mini_ua_response(mini_ua *ua, const uint8_t *msg, size_t len);

/* MD5 of data as 32 lower-case hex digits plus NUL. */
void mini_ua_md5_hex(const void *data, size_t len, char out[33]);

#endif
