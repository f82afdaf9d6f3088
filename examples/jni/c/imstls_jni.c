/*
 * imstls_jni: the JNI glue between the Java API (org.imstls, examples/jni/java) and the
 * imstls C API (include/imstls.h). It is C over the public header on purpose: it uses the
 * C ABI exactly as an app team would, so every JVM test is also a test of that ABI.
 *
 * Thin by design: each native method of org.imstls.Native is one imstls_* call. Handles and
 * outputs cross as jlong; the Java classes own them (lock, close, exceptions, immutable
 * event objects). Result codes come back as jint; pointer and integer out-parameters
 * through a one-element array, written only on IMSTLS_OK (the C rule).
 *
 * Rules kept here:
 * - No upcalls from native threads. The only upcall is the log sink, which imstls calls
 *   synchronously on the thread that called into it -- a Java thread inside a native
 *   method. The trampoline uses GetEnv and never AttachCurrentThread: a record arriving on
 *   a thread the JVM does not know is dropped.
 * - No global state beyond the JavaVM and class/method IDs cached in JNI_OnLoad.
 * - Strings in: Java passes UTF-8 byte arrays (String.getBytes(UTF_8)) and the glue adds
 *   the NUL; JNI's GetStringUTFChars gives *modified* UTF-8, which imstls rightly rejects
 *   for characters outside the BMP. Strings out: decoded from UTF-8 to UTF-16 (NewString),
 *   not NewStringUTF, for the same reason.
 * - Every JNI call that can throw is checked before the next JNI call (-Xcheck:jni).
 * - Copies of identities, trust material and SIP messages are wiped before being freed.
 * - Never inside a GetPrimitiveArrayCritical region while imstls runs: imstls may call the
 *   log sink, which calls Java. Inputs are copied instead.
 *
 * Build: cc -std=c99 -Wall -Wextra -Werror -fPIC -shared -I include -I "$JAVA_HOME/include"
 *        -I "$JAVA_HOME/include/linux" imstls_jni.c -limstls -o libimstls_jni.so
 *        (libimstls with the C API: cargo build --release --features capi)
 */
#include <jni.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imstls.h"

/* ---- cached in JNI_OnLoad -------------------------------------------------------------- */

static JavaVM *g_vm;
static jmethodID g_log_method;      /* org.imstls.LogSink.log(int, String, String) */
static jclass g_out_of_memory;      /* java.lang.OutOfMemoryError (global reference) */

#define NATIVE_CLASS "org/imstls/Native"
#define LOG_SINK_CLASS "org/imstls/LogSink"

/* ---- small helpers ---------------------------------------------------------------------- */

#define PTR(type, handle) ((type *)(intptr_t)(handle))
#define HANDLE(pointer) ((jlong)(intptr_t)(pointer))

static void wipe(void *p, size_t n) {
    volatile unsigned char *v = (volatile unsigned char *)p;
    while (n--) *v++ = 0;
}

static void throw_oom(JNIEnv *env) {
    if (!(*env)->ExceptionCheck(env)) (*env)->ThrowNew(env, g_out_of_memory, "imstls_jni");
}

/* A NUL-terminated copy of a Java byte[]; data is NULL for a null array. */
typedef struct bytes {
    char *data;
    size_t len;
} bytes;

/* 0, or -1 with a Java exception pending. */
static int bytes_in(JNIEnv *env, jbyteArray array, bytes *out) {
    out->data = NULL;
    out->len = 0;
    if (array == NULL) return 0;
    jsize n = (*env)->GetArrayLength(env, array);
    char *p = malloc((size_t)n + 1);
    if (p == NULL) {
        throw_oom(env);
        return -1;
    }
    (*env)->GetByteArrayRegion(env, array, 0, n, (jbyte *)p);
    if ((*env)->ExceptionCheck(env)) {
        free(p);
        return -1;
    }
    p[n] = '\0';
    out->data = p;
    out->len = (size_t)n;
    return 0;
}

static void bytes_free(bytes *b) {
    if (b->data != NULL) {
        wipe(b->data, b->len);
        free(b->data);
    }
    b->data = NULL;
    b->len = 0;
}

/* A byte[][] as `const char *const *` (count in *n); 0, or -1 with an exception pending. */
static int strings_in(JNIEnv *env, jobjectArray array, bytes **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (array == NULL) return 0;
    jsize count = (*env)->GetArrayLength(env, array);
    bytes *list = calloc((size_t)count + 1, sizeof *list);
    if (list == NULL) {
        throw_oom(env);
        return -1;
    }
    for (jsize i = 0; i < count; i++) {
        jbyteArray element = (jbyteArray)(*env)->GetObjectArrayElement(env, array, i);
        if ((*env)->ExceptionCheck(env)) goto fail;
        int rc = bytes_in(env, element, &list[i]);
        if (element != NULL) (*env)->DeleteLocalRef(env, element);
        if (rc != 0) goto fail;
    }
    *out = list;
    *n = (size_t)count;
    return 0;
fail:
    for (jsize i = 0; i < count; i++) bytes_free(&list[i]);
    free(list);
    return -1;
}

static void strings_free(bytes *list, size_t n) {
    if (list == NULL) return;
    for (size_t i = 0; i < n; i++) bytes_free(&list[i]);
    free(list);
}

/* The pointers of a string list (an array of n + 1, the last NULL); NULL when out of memory. */
static const char **pointers(JNIEnv *env, const bytes *list, size_t n) {
    const char **p = calloc(n + 1, sizeof *p);
    if (p == NULL) {
        throw_oom(env);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) p[i] = list[i].data;
    return p;
}

/* One UTF-8 sequence at s (valid: imstls strings are UTF-8); U+FFFD for a malformed one. */
static uint32_t utf8_next(const unsigned char **s) {
    const unsigned char *p = *s;
    uint32_t c = p[0];
    int extra = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : -1;
    if (extra < 0) {
        *s = p + 1;
        return 0xFFFD;
    }
    if (extra > 0) c &= 0x3Fu >> extra;
    for (int i = 1; i <= extra; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            *s = p + i;
            return 0xFFFD;
        }
        c = (c << 6) | (p[i] & 0x3Fu);
    }
    *s = p + 1 + extra;
    return c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF) ? 0xFFFD : c;
}

/* A Java String from NUL-terminated UTF-8 (NULL for NULL, or with an exception pending). */
static jstring string_out(JNIEnv *env, const char *s) {
    if (s == NULL) return NULL;
    size_t n = strlen(s); /* UTF-16 units never outnumber UTF-8 bytes */
    jchar small[128];
    jchar *units = n <= sizeof small / sizeof small[0] ? small : malloc(n * sizeof *units);
    if (units == NULL) {
        throw_oom(env);
        return NULL;
    }
    size_t count = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        uint32_t c = utf8_next(&p);
        if (c >= 0x10000) {
            c -= 0x10000;
            units[count++] = (jchar)(0xD800 + (c >> 10));
            units[count++] = (jchar)(0xDC00 + (c & 0x3FF));
        } else {
            units[count++] = (jchar)c;
        }
    }
    jstring result = (*env)->NewString(env, units, (jsize)count);
    if (units != small) free(units);
    return result;
}

static void put_long(JNIEnv *env, jlongArray out, jlong value) {
    (*env)->SetLongArrayRegion(env, out, 0, 1, &value);
}

static void put_int(JNIEnv *env, jintArray out, jint value) {
    (*env)->SetIntArrayRegion(env, out, 0, 1, &value);
}

/* The result of a call with a pointer out-parameter. */
#define OUT_POINTER(call_expr, type, out)           \
    do {                                            \
        type *value_ = NULL;                        \
        imstls_result rc_ = (call_expr);            \
        if (rc_ == IMSTLS_OK) put_long(env, out, HANDLE(value_)); \
        return (jint)rc_;                           \
    } while (0)

/* ---- library ----------------------------------------------------------------------------- */

static jstring n_version(JNIEnv *env, jclass c) {
    (void)c;
    return string_out(env, imstls_version());
}

static jstring n_header_version(JNIEnv *env, jclass c) {
    (void)c;
    return string_out(env, IMSTLS_VERSION_STRING);
}

static jstring n_crypto_provider(JNIEnv *env, jclass c) {
    (void)c;
    return string_out(env, imstls_crypto_provider());
}

static jstring n_result_str(JNIEnv *env, jclass c, jint result) {
    (void)c;
    return string_out(env, imstls_result_str((uint32_t)result));
}

/* ---- the log sink ------------------------------------------------------------------------ */

/* imstls calls this synchronously, on the thread inside the native call; userdata is a
 * global reference to the Java LogSink. */
static void log_trampoline(void *userdata, imstls_log_level level, const char *target,
                           const char *message) {
    JNIEnv *env = NULL;
    if ((*g_vm)->GetEnv(g_vm, (void **)&env, JNI_VERSION_1_6) != JNI_OK) return; /* never attach */
    if ((*env)->ExceptionCheck(env)) return;
    if ((*env)->PushLocalFrame(env, 4) != 0) {
        (*env)->ExceptionClear(env);
        return;
    }
    jstring jtarget = string_out(env, target);
    jstring jmessage = jtarget != NULL ? string_out(env, message) : NULL;
    if (jmessage != NULL) {
        (*env)->CallVoidMethod(env, (jobject)userdata, g_log_method, (jint)level, jtarget, jmessage);
    }
    /* A sink that throws loses its record; the exception must not escape into imstls's call. */
    if ((*env)->ExceptionCheck(env)) (*env)->ExceptionClear(env);
    (*env)->PopLocalFrame(env, NULL);
}

static jlong n_log_sink_new(JNIEnv *env, jclass c, jobject sink) {
    (void)c;
    jobject ref = (*env)->NewGlobalRef(env, sink);
    if (ref == NULL) throw_oom(env);
    return HANDLE(ref);
}

static void n_log_sink_free(JNIEnv *env, jclass c, jlong ref) {
    (void)c;
    if (ref != 0) (*env)->DeleteGlobalRef(env, (jobject)(intptr_t)ref);
}

/* ---- configuration ---------------------------------------------------------------------- */

static jint n_builder_new(JNIEnv *env, jclass c, jlongArray out) {
    (void)c;
    OUT_POINTER(imstls_config_builder_new(&value_), imstls_config_builder, out);
}

static void n_builder_free(JNIEnv *env, jclass c, jlong b) {
    (void)env;
    (void)c;
    imstls_config_builder_free(PTR(imstls_config_builder, b));
}

/* A builder setter taking one string. */
#define BUILDER_STRING(name, function)                                               \
    static jint name(JNIEnv *env, jclass c, jlong b, jbyteArray value) {             \
        (void)c;                                                                     \
        bytes v;                                                                     \
        if (bytes_in(env, value, &v) != 0) return 0;                                 \
        jint rc = (jint)function(PTR(imstls_config_builder, b), v.data);            \
        bytes_free(&v);                                                              \
        return rc;                                                                   \
    }

/* A builder setter taking a byte buffer. */
#define BUILDER_BYTES(name, function)                                                \
    static jint name(JNIEnv *env, jclass c, jlong b, jbyteArray value) {             \
        (void)c;                                                                     \
        bytes v;                                                                     \
        if (bytes_in(env, value, &v) != 0) return 0;                                 \
        jint rc = (jint)function(PTR(imstls_config_builder, b), (const uint8_t *)v.data, v.len); \
        bytes_free(&v);                                                              \
        return rc;                                                                   \
    }

BUILDER_STRING(n_builder_add_pcscf, imstls_config_builder_add_pcscf)
BUILDER_STRING(n_builder_set_server_name, imstls_config_builder_set_server_name)
BUILDER_STRING(n_builder_add_trust_anchors_file, imstls_config_builder_add_trust_anchors_file)
BUILDER_STRING(n_builder_add_crls_file, imstls_config_builder_add_crls_file)
BUILDER_STRING(n_builder_set_key_log_file, imstls_config_builder_set_key_log_file)
BUILDER_STRING(n_builder_add_spki_pin, imstls_config_builder_add_spki_pin)
BUILDER_BYTES(n_builder_add_trust_anchors_pem, imstls_config_builder_add_trust_anchors_pem)
BUILDER_BYTES(n_builder_add_trust_anchors_der, imstls_config_builder_add_trust_anchors_der)
BUILDER_BYTES(n_builder_add_crls_pem, imstls_config_builder_add_crls_pem)

static jint n_builder_set_kx_groups(JNIEnv *env, jclass c, jlong b, jobjectArray names) {
    (void)c;
    bytes *list;
    size_t n;
    if (strings_in(env, names, &list, &n) != 0) return 0;
    const char **p = pointers(env, list, n);
    jint rc = 0;
    if (p != NULL) rc = (jint)imstls_config_builder_set_kx_groups(PTR(imstls_config_builder, b), p, n);
    free(p);
    strings_free(list, n);
    return rc;
}

static jint n_builder_set_tls_versions(JNIEnv *env, jclass c, jlong b, jint v) {
    (void)env;
    (void)c;
    return (jint)imstls_config_builder_set_tls_versions(PTR(imstls_config_builder, b), (uint32_t)v);
}

static jint n_builder_set_allow_wildcard(JNIEnv *env, jclass c, jlong b, jboolean v) {
    (void)env;
    (void)c;
    return (jint)imstls_config_builder_set_allow_wildcard_certificates(PTR(imstls_config_builder, b),
                                                                      v == JNI_TRUE);
}

static jint n_builder_set_certificate_request_policy(JNIEnv *env, jclass c, jlong b, jint v) {
    (void)env;
    (void)c;
    return (jint)imstls_config_builder_set_certificate_request_policy(PTR(imstls_config_builder, b),
                                                                     (uint32_t)v);
}

/* A builder setter taking one uint64_t. */
#define BUILDER_U64(name, function)                                                  \
    static jint name(JNIEnv *env, jclass c, jlong b, jlong v) {                       \
        (void)env;                                                                   \
        (void)c;                                                                     \
        return (jint)function(PTR(imstls_config_builder, b), (uint64_t)v);          \
    }

BUILDER_U64(n_builder_set_session_lifetime_ms, imstls_config_builder_set_session_lifetime_ms)
BUILDER_U64(n_builder_set_connect_timeout_ms, imstls_config_builder_set_connect_timeout_ms)
BUILDER_U64(n_builder_set_handshake_timeout_ms, imstls_config_builder_set_handshake_timeout_ms)
BUILDER_U64(n_builder_set_registration_timeout_ms, imstls_config_builder_set_registration_timeout_ms)
BUILDER_U64(n_builder_set_random_seed, imstls_config_builder_set_random_seed)

static jint n_builder_set_resumption(JNIEnv *env, jclass c, jlong b, jboolean v) {
    (void)env;
    (void)c;
    return (jint)imstls_config_builder_set_resumption(PTR(imstls_config_builder, b), v == JNI_TRUE);
}

static jint n_builder_set_keepalive(JNIEnv *env, jclass c, jlong b, jboolean enabled,
                                    jboolean battery_saving, jlong pong_timeout_ms) {
    (void)env;
    (void)c;
    return (jint)imstls_config_builder_set_keepalive(PTR(imstls_config_builder, b), enabled == JNI_TRUE,
                                                     battery_saving == JNI_TRUE,
                                                     (uint64_t)pong_timeout_ms);
}

static jint n_builder_set_backoff(JNIEnv *env, jclass c, jlong b, jlong all_failed,
                                  jlong not_all_failed, jlong max) {
    (void)env;
    (void)c;
    return (jint)imstls_config_builder_set_backoff(PTR(imstls_config_builder, b), (uint64_t)all_failed,
                                                   (uint64_t)not_all_failed, (uint64_t)max);
}

static jint n_builder_set_max_sip_message_size(JNIEnv *env, jclass c, jlong b, jlong v) {
    (void)env;
    (void)c;
    return (jint)imstls_config_builder_set_max_sip_message_size(PTR(imstls_config_builder, b), (size_t)v);
}

static jint n_builder_set_max_challenges(JNIEnv *env, jclass c, jlong b, jint v) {
    (void)env;
    (void)c;
    return (jint)imstls_config_builder_set_max_challenges(PTR(imstls_config_builder, b), (uint32_t)v);
}

static jint n_builder_set_conformance_log_entries(JNIEnv *env, jclass c, jlong b, jlong v) {
    (void)env;
    (void)c;
    return (jint)imstls_config_builder_set_conformance_log_entries(PTR(imstls_config_builder, b),
                                                                   (size_t)v);
}

static jint n_builder_set_queue_limits(JNIEnv *env, jclass c, jlong b, jlong engine_output,
                                       jlong driver_outgoing, jlong driver_events) {
    (void)env;
    (void)c;
    return (jint)imstls_config_builder_set_queue_limits(PTR(imstls_config_builder, b),
                                                        (size_t)engine_output,
                                                        (size_t)driver_outgoing,
                                                        (size_t)driver_events);
}

static jint n_builder_build(JNIEnv *env, jclass c, jlong b, jlongArray out) {
    (void)c;
    OUT_POINTER(imstls_config_builder_build(PTR(imstls_config_builder, b), &value_), imstls_config, out);
}

static jint n_builder_last_error(JNIEnv *env, jclass c, jlong b, jlongArray out) {
    (void)c;
    OUT_POINTER(imstls_config_builder_last_error(PTR(imstls_config_builder, b), &value_), imstls_error,
                out);
}

static void n_config_free(JNIEnv *env, jclass c, jlong config) {
    (void)env;
    (void)c;
    imstls_config_free(PTR(imstls_config, config));
}

/* ---- the sans-IO UE ----------------------------------------------------------------------- */

#define UE(h) PTR(imstls_ue, h)

static jint n_ue_new(JNIEnv *env, jclass c, jlong config, jlong now_ms, jlongArray out) {
    (void)c;
    OUT_POINTER(imstls_ue_new(PTR(imstls_config, config), (uint64_t)now_ms, &value_), imstls_ue, out);
}

static void n_ue_free(JNIEnv *env, jclass c, jlong ue) {
    (void)env;
    (void)c;
    imstls_ue_free(UE(ue));
}

static jint n_ue_start_registration(JNIEnv *env, jclass c, jlong ue, jlong now_ms, jbyteArray impi,
                                    jobjectArray impus) {
    (void)c;
    bytes id, *list;
    size_t n;
    if (bytes_in(env, impi, &id) != 0) return 0;
    if (strings_in(env, impus, &list, &n) != 0) {
        bytes_free(&id);
        return 0;
    }
    const char **p = pointers(env, list, n);
    jint rc = 0;
    if (p != NULL) rc = (jint)imstls_ue_start_registration(UE(ue), (uint64_t)now_ms, id.data, p, n);
    free(p);
    strings_free(list, n);
    bytes_free(&id);
    return rc;
}

static jint n_ue_send_sip(JNIEnv *env, jclass c, jlong ue, jlong now_ms, jbyteArray message) {
    (void)c;
    bytes m;
    if (bytes_in(env, message, &m) != 0) return 0;
    jint rc = (jint)imstls_ue_send_sip(UE(ue), (uint64_t)now_ms, (const uint8_t *)m.data, m.len);
    bytes_free(&m);
    return rc;
}

static jint n_ue_registration_challenged(JNIEnv *env, jclass c, jlong ue, jlong now_ms, jlong flow,
                                         jboolean stale) {
    (void)env;
    (void)c;
    return (jint)imstls_ue_registration_challenged(UE(ue), (uint64_t)now_ms, (uint64_t)flow,
                                                   stale == JNI_TRUE);
}

static jint n_ue_registration_succeeded(JNIEnv *env, jclass c, jlong ue, jlong now_ms, jlong flow,
                                        jint expires_s, jint flow_timer_s) {
    (void)env;
    (void)c;
    return (jint)imstls_ue_registration_succeeded(UE(ue), (uint64_t)now_ms, (uint64_t)flow,
                                                  (uint32_t)expires_s, (uint32_t)flow_timer_s);
}

static jint n_ue_registration_failed(JNIEnv *env, jclass c, jlong ue, jlong now_ms, jlong flow,
                                     jint status, jint retry_after_s) {
    (void)env;
    (void)c;
    return (jint)imstls_ue_registration_failed(UE(ue), (uint64_t)now_ms, (uint64_t)flow,
                                               (uint32_t)status, (uint32_t)retry_after_s);
}

/* A UE input taking only the time. */
#define UE_TIMED(name, function)                                    \
    static jint name(JNIEnv *env, jclass c, jlong ue, jlong now_ms) { \
        (void)env;                                                  \
        (void)c;                                                    \
        return (jint)function(UE(ue), (uint64_t)now_ms);            \
    }

UE_TIMED(n_ue_deregister, imstls_ue_deregister)
UE_TIMED(n_ue_network_changed, imstls_ue_network_changed)
UE_TIMED(n_ue_rekey, imstls_ue_rekey)
UE_TIMED(n_ue_handle_timeout, imstls_ue_handle_timeout)

static jint n_ue_connected(JNIEnv *env, jclass c, jlong ue, jlong now_ms, jlong flow, jbyteArray local,
                           jbyteArray remote) {
    (void)c;
    bytes l, r;
    if (bytes_in(env, local, &l) != 0) return 0;
    if (bytes_in(env, remote, &r) != 0) {
        bytes_free(&l);
        return 0;
    }
    jint rc = (jint)imstls_ue_connected(UE(ue), (uint64_t)now_ms, (uint64_t)flow, l.data, r.data);
    bytes_free(&r);
    bytes_free(&l);
    return rc;
}

static jint n_ue_connect_failed(JNIEnv *env, jclass c, jlong ue, jlong now_ms, jlong flow, jint reason,
                                jbyteArray detail) {
    (void)c;
    bytes d;
    if (bytes_in(env, detail, &d) != 0) return 0;
    jint rc = (jint)imstls_ue_connect_failed(UE(ue), (uint64_t)now_ms, (uint64_t)flow, (uint32_t)reason,
                                             d.data);
    bytes_free(&d);
    return rc;
}

static jint n_ue_receive(JNIEnv *env, jclass c, jlong ue, jlong now_ms, jlong flow, jbyteArray data,
                         jint offset, jint length) {
    (void)c;
    uint8_t *copy = malloc(length > 0 ? (size_t)length : 1);
    if (copy == NULL) {
        throw_oom(env);
        return 0;
    }
    (*env)->GetByteArrayRegion(env, data, offset, length, (jbyte *)copy);
    jint rc = 0;
    if (!(*env)->ExceptionCheck(env)) {
        rc = (jint)imstls_ue_receive(UE(ue), (uint64_t)now_ms, (uint64_t)flow, copy, (size_t)length);
    }
    wipe(copy, (size_t)length);
    free(copy);
    return rc;
}

static jint n_ue_peer_not_reading(JNIEnv *env, jclass c, jlong ue, jlong now_ms, jlong flow,
                                  jlong queued_bytes) {
    (void)env;
    (void)c;
    return (jint)imstls_ue_peer_not_reading(UE(ue), (uint64_t)now_ms, (uint64_t)flow,
                                            (size_t)queued_bytes);
}

static jint n_ue_transport_closed(JNIEnv *env, jclass c, jlong ue, jlong now_ms, jlong flow,
                                  jint closure, jbyteArray detail) {
    (void)c;
    bytes d;
    if (bytes_in(env, detail, &d) != 0) return 0;
    jint rc = (jint)imstls_ue_transport_closed(UE(ue), (uint64_t)now_ms, (uint64_t)flow,
                                               (uint32_t)closure, d.data);
    bytes_free(&d);
    return rc;
}

static jint n_ue_poll_output(JNIEnv *env, jclass c, jlong ue, jlongArray out) {
    (void)c;
    OUT_POINTER(imstls_ue_poll_output(UE(ue), &value_), imstls_output, out);
}

static jint n_ue_next_timeout(JNIEnv *env, jclass c, jlong ue, jlongArray out) {
    (void)c;
    uint64_t deadline = 0;
    imstls_result rc = imstls_ue_next_timeout(UE(ue), &deadline);
    if (rc == IMSTLS_OK) put_long(env, out, (jlong)deadline);
    return (jint)rc;
}

static jint n_ue_state(JNIEnv *env, jclass c, jlong ue, jintArray out) {
    (void)c;
    imstls_state state = 0;
    imstls_result rc = imstls_ue_state(UE(ue), &state);
    if (rc == IMSTLS_OK) put_int(env, out, (jint)state);
    return (jint)rc;
}

static jint n_ue_current_flow(JNIEnv *env, jclass c, jlong ue, jlongArray out) {
    (void)c;
    uint64_t flow = 0;
    imstls_result rc = imstls_ue_current_flow(UE(ue), &flow);
    if (rc == IMSTLS_OK) put_long(env, out, (jlong)flow);
    return (jint)rc;
}

static jint n_ue_binding(JNIEnv *env, jclass c, jlong ue, jlongArray out) {
    (void)c;
    OUT_POINTER(imstls_ue_binding(UE(ue), &value_), imstls_binding, out);
}

static jint n_ue_last_error(JNIEnv *env, jclass c, jlong ue, jlongArray out) {
    (void)c;
    OUT_POINTER(imstls_ue_last_error(UE(ue), &value_), imstls_error, out);
}

static jint n_ue_set_log_callback(JNIEnv *env, jclass c, jlong ue, jlong sink, jint level) {
    (void)env;
    (void)c;
    return (jint)imstls_ue_set_log_callback(UE(ue), sink != 0 ? log_trampoline : NULL,
                                            PTR(void, sink), (uint32_t)level);
}

/* ---- the managed driver ------------------------------------------------------------------- */

#define DRIVER(h) PTR(imstls_driver, h)

static jint n_driver_new(JNIEnv *env, jclass c, jlong config, jlongArray out) {
    (void)c;
    OUT_POINTER(imstls_driver_new(PTR(imstls_config, config), &value_), imstls_driver, out);
}

static void n_driver_free(JNIEnv *env, jclass c, jlong driver) {
    (void)env;
    (void)c;
    imstls_driver_free(DRIVER(driver));
}

static jint n_driver_stop(JNIEnv *env, jclass c, jlong driver) {
    (void)env;
    (void)c;
    return (jint)imstls_driver_stop(DRIVER(driver));
}

static jint n_driver_set_connect_mode(JNIEnv *env, jclass c, jlong driver, jint mode) {
    (void)env;
    (void)c;
    return (jint)imstls_driver_set_connect_mode(DRIVER(driver), (uint32_t)mode);
}

static jint n_driver_set_connection_attempt_delay_ms(JNIEnv *env, jclass c, jlong driver,
                                                    jint delay_ms) {
    (void)env;
    (void)c;
    /* A negative delay becomes a huge one, which the driver refuses. */
    return (jint)imstls_driver_set_connection_attempt_delay_ms(DRIVER(driver), (uint32_t)delay_ms);
}

static jint n_driver_start_registration(JNIEnv *env, jclass c, jlong driver, jbyteArray impi,
                                        jobjectArray impus) {
    (void)c;
    bytes id, *list;
    size_t n;
    if (bytes_in(env, impi, &id) != 0) return 0;
    if (strings_in(env, impus, &list, &n) != 0) {
        bytes_free(&id);
        return 0;
    }
    const char **p = pointers(env, list, n);
    jint rc = 0;
    if (p != NULL) rc = (jint)imstls_driver_start_registration(DRIVER(driver), id.data, p, n);
    free(p);
    strings_free(list, n);
    bytes_free(&id);
    return rc;
}

static jint n_driver_send_sip(JNIEnv *env, jclass c, jlong driver, jbyteArray message) {
    (void)c;
    bytes m;
    if (bytes_in(env, message, &m) != 0) return 0;
    jint rc = (jint)imstls_driver_send_sip(DRIVER(driver), (const uint8_t *)m.data, m.len);
    bytes_free(&m);
    return rc;
}

static jint n_driver_registration_challenged(JNIEnv *env, jclass c, jlong driver, jlong flow,
                                             jboolean stale) {
    (void)env;
    (void)c;
    return (jint)imstls_driver_registration_challenged(DRIVER(driver), (uint64_t)flow,
                                                       stale == JNI_TRUE);
}

static jint n_driver_registration_succeeded(JNIEnv *env, jclass c, jlong driver, jlong flow,
                                            jint expires_s, jint flow_timer_s) {
    (void)env;
    (void)c;
    return (jint)imstls_driver_registration_succeeded(DRIVER(driver), (uint64_t)flow,
                                                      (uint32_t)expires_s, (uint32_t)flow_timer_s);
}

static jint n_driver_registration_failed(JNIEnv *env, jclass c, jlong driver, jlong flow,
                                         jint status, jint retry_after_s) {
    (void)env;
    (void)c;
    return (jint)imstls_driver_registration_failed(DRIVER(driver), (uint64_t)flow, (uint32_t)status,
                                                   (uint32_t)retry_after_s);
}

/* A driver call taking no argument. */
#define DRIVER_CALL(name, function)                           \
    static jint name(JNIEnv *env, jclass c, jlong driver) {   \
        (void)env;                                            \
        (void)c;                                              \
        return (jint)function(DRIVER(driver));                \
    }

DRIVER_CALL(n_driver_deregister, imstls_driver_deregister)
DRIVER_CALL(n_driver_network_changed, imstls_driver_network_changed)
DRIVER_CALL(n_driver_rekey, imstls_driver_rekey)
DRIVER_CALL(n_driver_process, imstls_driver_process)

static jint n_driver_adopt_fd(JNIEnv *env, jclass c, jlong driver, jlong flow, jint fd, jint ownership) {
    (void)env;
    (void)c;
    return (jint)imstls_driver_adopt_fd(DRIVER(driver), (uint64_t)flow, (int)fd, (uint32_t)ownership);
}

static jint n_driver_connect_failed(JNIEnv *env, jclass c, jlong driver, jlong flow, jint reason,
                                    jbyteArray detail) {
    (void)c;
    bytes d;
    if (bytes_in(env, detail, &d) != 0) return 0;
    jint rc = (jint)imstls_driver_connect_failed(DRIVER(driver), (uint64_t)flow, (uint32_t)reason, d.data);
    bytes_free(&d);
    return rc;
}

static jint n_driver_fd(JNIEnv *env, jclass c, jlong driver, jintArray out) {
    (void)c;
    int fd = -1;
    imstls_result rc = imstls_driver_fd(DRIVER(driver), &fd);
    if (rc == IMSTLS_OK) put_int(env, out, (jint)fd);
    return (jint)rc;
}

static jint n_driver_interest(JNIEnv *env, jclass c, jlong driver, jintArray out) {
    (void)c;
    uint32_t interest = 0;
    imstls_result rc = imstls_driver_interest(DRIVER(driver), &interest);
    if (rc == IMSTLS_OK) put_int(env, out, (jint)interest);
    return (jint)rc;
}

static jint n_driver_timeout_ms(JNIEnv *env, jclass c, jlong driver, jlongArray out) {
    (void)c;
    uint64_t ms = 0;
    imstls_result rc = imstls_driver_timeout_ms(DRIVER(driver), &ms);
    if (rc == IMSTLS_OK) put_long(env, out, (jlong)ms);
    return (jint)rc;
}

static jint n_driver_run(JNIEnv *env, jclass c, jlong driver, jint max_wait_ms) {
    (void)env;
    (void)c;
    return (jint)imstls_driver_run(DRIVER(driver), (uint32_t)max_wait_ms);
}

static jint n_driver_poll_event(JNIEnv *env, jclass c, jlong driver, jlongArray out) {
    (void)c;
    OUT_POINTER(imstls_driver_poll_event(DRIVER(driver), &value_), imstls_output, out);
}

static jint n_driver_state(JNIEnv *env, jclass c, jlong driver, jintArray out) {
    (void)c;
    imstls_state state = 0;
    imstls_result rc = imstls_driver_state(DRIVER(driver), &state);
    if (rc == IMSTLS_OK) put_int(env, out, (jint)state);
    return (jint)rc;
}

static jint n_driver_binding(JNIEnv *env, jclass c, jlong driver, jlongArray out) {
    (void)c;
    OUT_POINTER(imstls_driver_binding(DRIVER(driver), &value_), imstls_binding, out);
}

static jint n_driver_last_error(JNIEnv *env, jclass c, jlong driver, jlongArray out) {
    (void)c;
    OUT_POINTER(imstls_driver_last_error(DRIVER(driver), &value_), imstls_error, out);
}

static jint n_driver_set_log_callback(JNIEnv *env, jclass c, jlong driver, jlong sink, jint level) {
    (void)env;
    (void)c;
    return (jint)imstls_driver_set_log_callback(DRIVER(driver), sink != 0 ? log_trampoline : NULL,
                                                PTR(void, sink), (uint32_t)level);
}

/* ---- outputs ------------------------------------------------------------------------------ */

#define OUTPUT(h) PTR(const imstls_output, h)

/* An accessor returning a string (borrowed from the object; copied into a Java String). */
#define STRING_ACCESSOR(name, type, function)                            \
    static jstring name(JNIEnv *env, jclass c, jlong object) {           \
        (void)c;                                                         \
        return string_out(env, function(PTR(const type, object)));       \
    }

/* An accessor returning a number. */
#define NUMBER_ACCESSOR(name, jtype, type, function)                     \
    static jtype name(JNIEnv *env, jclass c, jlong object) {             \
        (void)env;                                                       \
        (void)c;                                                         \
        return (jtype)function(PTR(const type, object));                 \
    }

NUMBER_ACCESSOR(n_output_kind, jint, imstls_output, imstls_output_kind)
NUMBER_ACCESSOR(n_output_event, jint, imstls_output, imstls_output_event)
STRING_ACCESSOR(n_output_event_name, imstls_output, imstls_output_event_name)
NUMBER_ACCESSOR(n_output_flow, jlong, imstls_output, imstls_output_flow)
NUMBER_ACCESSOR(n_output_candidate, jlong, imstls_output, imstls_output_candidate)
STRING_ACCESSOR(n_output_host, imstls_output, imstls_output_host)
NUMBER_ACCESSOR(n_output_port, jint, imstls_output, imstls_output_port)
STRING_ACCESSOR(n_output_reason, imstls_output, imstls_output_reason)
NUMBER_ACCESSOR(n_output_register_reason, jint, imstls_output, imstls_output_register_reason)
STRING_ACCESSOR(n_output_detail, imstls_output, imstls_output_detail)
STRING_ACCESSOR(n_output_clause, imstls_output, imstls_output_clause)
NUMBER_ACCESSOR(n_output_sip_status, jint, imstls_output, imstls_output_sip_status)
NUMBER_ACCESSOR(n_output_attempt, jlong, imstls_output, imstls_output_attempt)
NUMBER_ACCESSOR(n_output_delay_ms, jlong, imstls_output, imstls_output_delay_ms)
NUMBER_ACCESSOR(n_output_expires_s, jlong, imstls_output, imstls_output_expires_s)
NUMBER_ACCESSOR(n_output_refresh_in_s, jlong, imstls_output, imstls_output_refresh_in_s)
NUMBER_ACCESSOR(n_output_flags, jint, imstls_output, imstls_output_flags)
NUMBER_ACCESSOR(n_output_purged_sessions, jlong, imstls_output, imstls_output_purged_sessions)
NUMBER_ACCESSOR(n_output_dropped_bytes, jlong, imstls_output, imstls_output_dropped_bytes)
STRING_ACCESSOR(n_output_tls_version, imstls_output, imstls_output_tls_version)
STRING_ACCESSOR(n_output_cipher_suite, imstls_output, imstls_output_cipher_suite)
STRING_ACCESSOR(n_output_kx_group, imstls_output, imstls_output_kx_group)

NUMBER_ACCESSOR(n_output_failed_candidate_count, jlong, imstls_output,
                imstls_output_failed_candidate_count)

/* The index-th failed candidate (BACKING_OFF, REGISTRATION_FAILED); -1 when out of range. */
static jlong n_output_failed_candidate(JNIEnv *env, jclass c, jlong output, jlong index) {
    (void)env;
    (void)c;
    uint32_t candidate = imstls_output_failed_candidate(OUTPUT(output), (size_t)index);
    return candidate == UINT32_MAX ? -1 : (jlong)candidate;
}

static jlong n_output_failed_candidate_flow(JNIEnv *env, jclass c, jlong output, jlong index) {
    (void)env;
    (void)c;
    return (jlong)imstls_output_failed_candidate_flow(OUTPUT(output), (size_t)index);
}

static jstring n_output_failed_candidate_target(JNIEnv *env, jclass c, jlong output, jlong index) {
    (void)c;
    return string_out(env, imstls_output_failed_candidate_target(OUTPUT(output), (size_t)index));
}

static jstring n_output_failed_candidate_reason(JNIEnv *env, jclass c, jlong output, jlong index) {
    (void)c;
    return string_out(env, imstls_output_failed_candidate_reason(OUTPUT(output), (size_t)index));
}

static jstring n_output_failed_candidate_detail(JNIEnv *env, jclass c, jlong output, jlong index) {
    (void)c;
    return string_out(env, imstls_output_failed_candidate_detail(OUTPUT(output), (size_t)index));
}

/* The bytes of a TRANSMIT or SIP_RECEIVED output as a new byte[]. */
static jbyteArray n_output_data(JNIEnv *env, jclass c, jlong output) {
    (void)c;
    const uint8_t *data = NULL;
    size_t len = 0;
    if (imstls_output_data(OUTPUT(output), &data, &len) != IMSTLS_OK) len = 0;
    jbyteArray array = (*env)->NewByteArray(env, (jsize)len);
    if (array == NULL) return NULL; /* OutOfMemoryError pending */
    if (len > 0) (*env)->SetByteArrayRegion(env, array, 0, (jsize)len, (const jbyte *)data);
    return array;
}

/* The error an output lends (0 for none): never freed by the caller. */
static jlong n_output_error(JNIEnv *env, jclass c, jlong output) {
    (void)env;
    (void)c;
    return HANDLE(imstls_output_error(OUTPUT(output)));
}

static void n_output_free(JNIEnv *env, jclass c, jlong output) {
    (void)env;
    (void)c;
    imstls_output_free(PTR(imstls_output, output));
}

/* ---- errors ------------------------------------------------------------------------------- */

NUMBER_ACCESSOR(n_error_result, jint, imstls_error, imstls_error_result)
STRING_ACCESSOR(n_error_message, imstls_error, imstls_error_message)
STRING_ACCESSOR(n_error_tls_failure, imstls_error, imstls_error_tls_failure)
STRING_ACCESSOR(n_error_certificate_failure, imstls_error, imstls_error_certificate_failure)
STRING_ACCESSOR(n_error_alert_sent_name, imstls_error, imstls_error_alert_sent_name)
STRING_ACCESSOR(n_error_alert_received_name, imstls_error, imstls_error_alert_received_name)
STRING_ACCESSOR(n_error_expected_name, imstls_error, imstls_error_expected_name)
NUMBER_ACCESSOR(n_error_presented_name_count, jlong, imstls_error, imstls_error_presented_name_count)
STRING_ACCESSOR(n_error_config_field, imstls_error, imstls_error_config_field)
NUMBER_ACCESSOR(n_error_sip_status, jint, imstls_error, imstls_error_sip_status)

/* The alert number, or -1 when none was sent. */
static jint n_error_alert_sent(JNIEnv *env, jclass c, jlong error) {
    (void)env;
    (void)c;
    uint8_t alert = 0;
    return imstls_error_alert_sent(PTR(const imstls_error, error), &alert) == IMSTLS_OK ? (jint)alert : -1;
}

/* The alert number, or -1 when none was received. */
static jint n_error_alert_received(JNIEnv *env, jclass c, jlong error) {
    (void)env;
    (void)c;
    uint8_t alert = 0;
    return imstls_error_alert_received(PTR(const imstls_error, error), &alert) == IMSTLS_OK ? (jint)alert
                                                                                            : -1;
}

static jstring n_error_presented_name(JNIEnv *env, jclass c, jlong error, jlong index) {
    (void)c;
    return string_out(env, imstls_error_presented_name(PTR(const imstls_error, error), (size_t)index));
}

static void n_error_free(JNIEnv *env, jclass c, jlong error) {
    (void)env;
    (void)c;
    imstls_error_free(PTR(imstls_error, error));
}

/* ---- bindings ----------------------------------------------------------------------------- */

NUMBER_ACCESSOR(n_binding_flow, jlong, imstls_binding, imstls_binding_flow)
NUMBER_ACCESSOR(n_binding_registered, jboolean, imstls_binding, imstls_binding_registered)
STRING_ACCESSOR(n_binding_pcscf, imstls_binding, imstls_binding_pcscf)
STRING_ACCESSOR(n_binding_local_addr, imstls_binding, imstls_binding_local_addr)
STRING_ACCESSOR(n_binding_remote_addr, imstls_binding, imstls_binding_remote_addr)
STRING_ACCESSOR(n_binding_impi, imstls_binding, imstls_binding_impi)
NUMBER_ACCESSOR(n_binding_impu_count, jlong, imstls_binding, imstls_binding_impu_count)
STRING_ACCESSOR(n_binding_tls_version, imstls_binding, imstls_binding_tls_version)
STRING_ACCESSOR(n_binding_cipher_suite, imstls_binding, imstls_binding_cipher_suite)
STRING_ACCESSOR(n_binding_kx_group, imstls_binding, imstls_binding_kx_group)
NUMBER_ACCESSOR(n_binding_resumed, jboolean, imstls_binding, imstls_binding_resumed)
STRING_ACCESSOR(n_binding_peer_subject, imstls_binding, imstls_binding_peer_subject)
NUMBER_ACCESSOR(n_binding_peer_san_count, jlong, imstls_binding, imstls_binding_peer_san_count)
NUMBER_ACCESSOR(n_binding_peer_not_after, jlong, imstls_binding, imstls_binding_peer_not_after)

static jstring n_binding_impu(JNIEnv *env, jclass c, jlong binding, jlong index) {
    (void)c;
    return string_out(env, imstls_binding_impu(PTR(const imstls_binding, binding), (size_t)index));
}

static jstring n_binding_peer_san(JNIEnv *env, jclass c, jlong binding, jlong index) {
    (void)c;
    return string_out(env, imstls_binding_peer_san(PTR(const imstls_binding, binding), (size_t)index));
}

static void n_binding_free(JNIEnv *env, jclass c, jlong binding) {
    (void)env;
    (void)c;
    imstls_binding_free(PTR(imstls_binding, binding));
}

/* ---- registration ------------------------------------------------------------------------- */

/* Signatures. */
#define J "J"
#define I "I"
#define Z "Z"
#define BYTES "[B"
#define BYTES2 "[[B"
#define LONGS "[J"
#define INTS "[I"
#define STR "Ljava/lang/String;"
#define SINK "L" LOG_SINK_CLASS ";"

/* JNINativeMethod wants the function as a void pointer: ISO C leaves that conversion undefined,
 * POSIX (dlsym) and every JNI platform define it; __extension__ keeps -Wpedantic quiet about it. */
#if defined(__GNUC__) || defined(__clang__)
#define FUNCTION_POINTER(f) (__extension__(void *)(f))
#else
#define FUNCTION_POINTER(f) ((void *)(f))
#endif
#define M(name, signature, function) {(char *)(name), (char *)(signature), FUNCTION_POINTER(function)}

static const JNINativeMethod METHODS[] = {
    M("version", "()" STR, n_version),
    M("headerVersion", "()" STR, n_header_version),
    M("cryptoProvider", "()" STR, n_crypto_provider),
    M("resultStr", "(" I ")" STR, n_result_str),
    M("logSinkNew", "(" SINK ")" J, n_log_sink_new),
    M("logSinkFree", "(" J ")V", n_log_sink_free),

    M("builderNew", "(" LONGS ")" I, n_builder_new),
    M("builderFree", "(" J ")V", n_builder_free),
    M("builderAddPcscf", "(" J BYTES ")" I, n_builder_add_pcscf),
    M("builderSetServerName", "(" J BYTES ")" I, n_builder_set_server_name),
    M("builderAddTrustAnchorsPem", "(" J BYTES ")" I, n_builder_add_trust_anchors_pem),
    M("builderAddTrustAnchorsDer", "(" J BYTES ")" I, n_builder_add_trust_anchors_der),
    M("builderAddTrustAnchorsFile", "(" J BYTES ")" I, n_builder_add_trust_anchors_file),
    M("builderAddCrlsPem", "(" J BYTES ")" I, n_builder_add_crls_pem),
    M("builderAddCrlsFile", "(" J BYTES ")" I, n_builder_add_crls_file),
    M("builderSetKeyLogFile", "(" J BYTES ")" I, n_builder_set_key_log_file),
    M("builderAddSpkiPin", "(" J BYTES ")" I, n_builder_add_spki_pin),
    M("builderSetTlsVersions", "(" J I ")" I, n_builder_set_tls_versions),
    M("builderSetKxGroups", "(" J BYTES2 ")" I, n_builder_set_kx_groups),
    M("builderSetAllowWildcardCertificates", "(" J Z ")" I, n_builder_set_allow_wildcard),
    M("builderSetCertificateRequestPolicy", "(" J I ")" I, n_builder_set_certificate_request_policy),
    M("builderSetSessionLifetimeMs", "(" J J ")" I, n_builder_set_session_lifetime_ms),
    M("builderSetResumption", "(" J Z ")" I, n_builder_set_resumption),
    M("builderSetConnectTimeoutMs", "(" J J ")" I, n_builder_set_connect_timeout_ms),
    M("builderSetHandshakeTimeoutMs", "(" J J ")" I, n_builder_set_handshake_timeout_ms),
    M("builderSetRegistrationTimeoutMs", "(" J J ")" I, n_builder_set_registration_timeout_ms),
    M("builderSetKeepalive", "(" J Z Z J ")" I, n_builder_set_keepalive),
    M("builderSetBackoff", "(" J J J J ")" I, n_builder_set_backoff),
    M("builderSetMaxSipMessageSize", "(" J J ")" I, n_builder_set_max_sip_message_size),
    M("builderSetMaxChallenges", "(" J I ")" I, n_builder_set_max_challenges),
    M("builderSetConformanceLogEntries", "(" J J ")" I, n_builder_set_conformance_log_entries),
    M("builderSetQueueLimits", "(" J J J J ")" I, n_builder_set_queue_limits),
    M("builderSetRandomSeed", "(" J J ")" I, n_builder_set_random_seed),
    M("builderBuild", "(" J LONGS ")" I, n_builder_build),
    M("builderLastError", "(" J LONGS ")" I, n_builder_last_error),
    M("configFree", "(" J ")V", n_config_free),

    M("ueNew", "(" J J LONGS ")" I, n_ue_new),
    M("ueFree", "(" J ")V", n_ue_free),
    M("ueStartRegistration", "(" J J BYTES BYTES2 ")" I, n_ue_start_registration),
    M("ueSendSip", "(" J J BYTES ")" I, n_ue_send_sip),
    M("ueRegistrationChallenged", "(" J J J Z ")" I, n_ue_registration_challenged),
    M("ueRegistrationSucceeded", "(" J J J I I ")" I, n_ue_registration_succeeded),
    M("ueRegistrationFailed", "(" J J J I I ")" I, n_ue_registration_failed),
    M("ueDeregister", "(" J J ")" I, n_ue_deregister),
    M("ueNetworkChanged", "(" J J ")" I, n_ue_network_changed),
    M("ueRekey", "(" J J ")" I, n_ue_rekey),
    M("ueConnected", "(" J J J BYTES BYTES ")" I, n_ue_connected),
    M("ueConnectFailed", "(" J J J I BYTES ")" I, n_ue_connect_failed),
    M("ueReceive", "(" J J J BYTES I I ")" I, n_ue_receive),
    M("ueTransportClosed", "(" J J J I BYTES ")" I, n_ue_transport_closed),
    M("uePeerNotReading", "(" J J J J ")" I, n_ue_peer_not_reading),
    M("ueHandleTimeout", "(" J J ")" I, n_ue_handle_timeout),
    M("uePollOutput", "(" J LONGS ")" I, n_ue_poll_output),
    M("ueNextTimeout", "(" J LONGS ")" I, n_ue_next_timeout),
    M("ueState", "(" J INTS ")" I, n_ue_state),
    M("ueCurrentFlow", "(" J LONGS ")" I, n_ue_current_flow),
    M("ueBinding", "(" J LONGS ")" I, n_ue_binding),
    M("ueLastError", "(" J LONGS ")" I, n_ue_last_error),
    M("ueSetLogCallback", "(" J J I ")" I, n_ue_set_log_callback),

    M("driverNew", "(" J LONGS ")" I, n_driver_new),
    M("driverFree", "(" J ")V", n_driver_free),
    M("driverStop", "(" J ")" I, n_driver_stop),
    M("driverSetConnectMode", "(" J I ")" I, n_driver_set_connect_mode),
    M("driverSetConnectionAttemptDelayMs", "(" J I ")" I, n_driver_set_connection_attempt_delay_ms),
    M("driverStartRegistration", "(" J BYTES BYTES2 ")" I, n_driver_start_registration),
    M("driverSendSip", "(" J BYTES ")" I, n_driver_send_sip),
    M("driverRegistrationChallenged", "(" J J Z ")" I, n_driver_registration_challenged),
    M("driverRegistrationSucceeded", "(" J J I I ")" I, n_driver_registration_succeeded),
    M("driverRegistrationFailed", "(" J J I I ")" I, n_driver_registration_failed),
    M("driverDeregister", "(" J ")" I, n_driver_deregister),
    M("driverNetworkChanged", "(" J ")" I, n_driver_network_changed),
    M("driverRekey", "(" J ")" I, n_driver_rekey),
    M("driverAdoptFd", "(" J J I I ")" I, n_driver_adopt_fd),
    M("driverConnectFailed", "(" J J I BYTES ")" I, n_driver_connect_failed),
    M("driverFd", "(" J INTS ")" I, n_driver_fd),
    M("driverInterest", "(" J INTS ")" I, n_driver_interest),
    M("driverTimeoutMs", "(" J LONGS ")" I, n_driver_timeout_ms),
    M("driverProcess", "(" J ")" I, n_driver_process),
    M("driverRun", "(" J I ")" I, n_driver_run),
    M("driverPollEvent", "(" J LONGS ")" I, n_driver_poll_event),
    M("driverState", "(" J INTS ")" I, n_driver_state),
    M("driverBinding", "(" J LONGS ")" I, n_driver_binding),
    M("driverLastError", "(" J LONGS ")" I, n_driver_last_error),
    M("driverSetLogCallback", "(" J J I ")" I, n_driver_set_log_callback),

    M("outputKind", "(" J ")" I, n_output_kind),
    M("outputEvent", "(" J ")" I, n_output_event),
    M("outputEventName", "(" J ")" STR, n_output_event_name),
    M("outputFlow", "(" J ")" J, n_output_flow),
    M("outputCandidate", "(" J ")" J, n_output_candidate),
    M("outputHost", "(" J ")" STR, n_output_host),
    M("outputPort", "(" J ")" I, n_output_port),
    M("outputData", "(" J ")" BYTES, n_output_data),
    M("outputReason", "(" J ")" STR, n_output_reason),
    M("outputRegisterReason", "(" J ")" I, n_output_register_reason),
    M("outputDetail", "(" J ")" STR, n_output_detail),
    M("outputClause", "(" J ")" STR, n_output_clause),
    M("outputSipStatus", "(" J ")" I, n_output_sip_status),
    M("outputAttempt", "(" J ")" J, n_output_attempt),
    M("outputDelayMs", "(" J ")" J, n_output_delay_ms),
    M("outputFailedCandidateCount", "(" J ")" J, n_output_failed_candidate_count),
    M("outputFailedCandidate", "(" J J ")" J, n_output_failed_candidate),
    M("outputFailedCandidateFlow", "(" J J ")" J, n_output_failed_candidate_flow),
    M("outputFailedCandidateTarget", "(" J J ")" STR, n_output_failed_candidate_target),
    M("outputFailedCandidateReason", "(" J J ")" STR, n_output_failed_candidate_reason),
    M("outputFailedCandidateDetail", "(" J J ")" STR, n_output_failed_candidate_detail),
    M("outputExpiresS", "(" J ")" J, n_output_expires_s),
    M("outputRefreshInS", "(" J ")" J, n_output_refresh_in_s),
    M("outputFlags", "(" J ")" I, n_output_flags),
    M("outputPurgedSessions", "(" J ")" J, n_output_purged_sessions),
    M("outputDroppedBytes", "(" J ")" J, n_output_dropped_bytes),
    M("outputTlsVersion", "(" J ")" STR, n_output_tls_version),
    M("outputCipherSuite", "(" J ")" STR, n_output_cipher_suite),
    M("outputKxGroup", "(" J ")" STR, n_output_kx_group),
    M("outputError", "(" J ")" J, n_output_error),
    M("outputFree", "(" J ")V", n_output_free),

    M("errorResult", "(" J ")" I, n_error_result),
    M("errorMessage", "(" J ")" STR, n_error_message),
    M("errorTlsFailure", "(" J ")" STR, n_error_tls_failure),
    M("errorCertificateFailure", "(" J ")" STR, n_error_certificate_failure),
    M("errorAlertSent", "(" J ")" I, n_error_alert_sent),
    M("errorAlertReceived", "(" J ")" I, n_error_alert_received),
    M("errorAlertSentName", "(" J ")" STR, n_error_alert_sent_name),
    M("errorAlertReceivedName", "(" J ")" STR, n_error_alert_received_name),
    M("errorExpectedName", "(" J ")" STR, n_error_expected_name),
    M("errorPresentedNameCount", "(" J ")" J, n_error_presented_name_count),
    M("errorPresentedName", "(" J J ")" STR, n_error_presented_name),
    M("errorConfigField", "(" J ")" STR, n_error_config_field),
    M("errorSipStatus", "(" J ")" I, n_error_sip_status),
    M("errorFree", "(" J ")V", n_error_free),

    M("bindingFlow", "(" J ")" J, n_binding_flow),
    M("bindingRegistered", "(" J ")" Z, n_binding_registered),
    M("bindingPcscf", "(" J ")" STR, n_binding_pcscf),
    M("bindingLocalAddr", "(" J ")" STR, n_binding_local_addr),
    M("bindingRemoteAddr", "(" J ")" STR, n_binding_remote_addr),
    M("bindingImpi", "(" J ")" STR, n_binding_impi),
    M("bindingImpuCount", "(" J ")" J, n_binding_impu_count),
    M("bindingImpu", "(" J J ")" STR, n_binding_impu),
    M("bindingTlsVersion", "(" J ")" STR, n_binding_tls_version),
    M("bindingCipherSuite", "(" J ")" STR, n_binding_cipher_suite),
    M("bindingKxGroup", "(" J ")" STR, n_binding_kx_group),
    M("bindingResumed", "(" J ")" Z, n_binding_resumed),
    M("bindingPeerSubject", "(" J ")" STR, n_binding_peer_subject),
    M("bindingPeerSanCount", "(" J ")" J, n_binding_peer_san_count),
    M("bindingPeerSan", "(" J J ")" STR, n_binding_peer_san),
    M("bindingPeerNotAfter", "(" J ")" J, n_binding_peer_not_after),
    M("bindingFree", "(" J ")V", n_binding_free),
};

/* Registers the natives and caches the IDs; a mismatch with the Java class fails the load
 * (UnsatisfiedLinkError) instead of a later call. */
JNIEXPORT jint JNICALL JNI_OnLoad(JavaVM *vm, void *reserved) {
    (void)reserved;
    JNIEnv *env = NULL;
    if ((*vm)->GetEnv(vm, (void **)&env, JNI_VERSION_1_6) != JNI_OK) return JNI_ERR;
    g_vm = vm;

    jclass oom = (*env)->FindClass(env, "java/lang/OutOfMemoryError");
    if (oom == NULL) return JNI_ERR;
    g_out_of_memory = (jclass)(*env)->NewGlobalRef(env, oom);
    (*env)->DeleteLocalRef(env, oom);
    if (g_out_of_memory == NULL) return JNI_ERR;

    jclass sink = (*env)->FindClass(env, LOG_SINK_CLASS);
    if (sink == NULL) return JNI_ERR;
    g_log_method = (*env)->GetMethodID(env, sink, "log", "(I" STR STR ")V");
    (*env)->DeleteLocalRef(env, sink);
    if (g_log_method == NULL) return JNI_ERR;

    jclass native = (*env)->FindClass(env, NATIVE_CLASS);
    if (native == NULL) return JNI_ERR;
    jint rc = (*env)->RegisterNatives(env, native, METHODS, (jint)(sizeof METHODS / sizeof METHODS[0]));
    (*env)->DeleteLocalRef(env, native);
    return rc == 0 ? JNI_VERSION_1_6 : JNI_ERR;
}
