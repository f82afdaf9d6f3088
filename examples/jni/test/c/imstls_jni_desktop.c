/*
 * Test-only natives for the desktop JVM (libimstls_jni_desktop.so; never shipped):
 *
 * - org.imstls.test.DesktopSockets.fdOf(SocketChannel): the descriptor of a JDK socket
 *   channel, read from sun.nio.ch.SocketChannelImpl.fdVal. JNI field access ignores Java
 *   access control and module encapsulation, so no --add-opens is needed. Android apps do not
 *   need this: ParcelFileDescriptor.fromSocket(socket) gives the descriptor (docs/ANDROID.md).
 * - org.imstls.test.XcheckCanary.misuse(): a deliberate JNI mistake (a call that may throw,
 *   not followed by an exception check) that -Xcheck:jni must report, proving that the
 *   checker runs in the tests that expect it to stay silent.
 */
#include <jni.h>

#include <stddef.h>

static jclass g_channel_class; /* sun.nio.ch.SocketChannelImpl (global reference) or NULL */
static jfieldID g_fd_val;      /* its int fdVal, or NULL */
static jclass g_unsupported;   /* java.lang.UnsupportedOperationException */

JNIEXPORT jint JNICALL JNI_OnLoad(JavaVM *vm, void *reserved) {
    (void)reserved;
    JNIEnv *env = NULL;
    if ((*vm)->GetEnv(vm, (void **)&env, JNI_VERSION_1_6) != JNI_OK) return JNI_ERR;
    jclass unsupported = (*env)->FindClass(env, "java/lang/UnsupportedOperationException");
    if (unsupported == NULL) return JNI_ERR;
    g_unsupported = (jclass)(*env)->NewGlobalRef(env, unsupported);
    (*env)->DeleteLocalRef(env, unsupported);
    if (g_unsupported == NULL) return JNI_ERR;
    jclass channel = (*env)->FindClass(env, "sun/nio/ch/SocketChannelImpl");
    if (channel == NULL) {
        (*env)->ExceptionClear(env); /* another JVM: fdOf throws */
        return JNI_VERSION_1_6;
    }
    g_fd_val = (*env)->GetFieldID(env, channel, "fdVal", "I");
    if (g_fd_val == NULL) {
        (*env)->ExceptionClear(env);
    } else {
        g_channel_class = (jclass)(*env)->NewGlobalRef(env, channel);
    }
    (*env)->DeleteLocalRef(env, channel);
    return JNI_VERSION_1_6;
}

JNIEXPORT jint JNICALL Java_org_imstls_test_DesktopSockets_fdOf(JNIEnv *env, jclass cls,
                                                                jobject channel) {
    (void)cls;
    if (g_fd_val == NULL || g_channel_class == NULL || channel == NULL ||
        !(*env)->IsInstanceOf(env, channel, g_channel_class)) {
        (*env)->ThrowNew(env, g_unsupported, "not a sun.nio.ch.SocketChannelImpl on this JVM");
        return -1;
    }
    return (*env)->GetIntField(env, channel, g_fd_val);
}

JNIEXPORT void JNICALL Java_org_imstls_test_XcheckCanary_misuse(JNIEnv *env, jclass cls) {
    jmethodID noop = (*env)->GetStaticMethodID(env, cls, "noop", "()V");
    if (noop == NULL) return;
    (*env)->CallStaticVoidMethod(env, cls, noop);
    /* The mistake: CallStaticVoidMethod may throw, and no ExceptionCheck came first. */
    jclass again = (*env)->FindClass(env, "java/lang/Object");
    if (again != NULL) (*env)->DeleteLocalRef(env, again);
}
