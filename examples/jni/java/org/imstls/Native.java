package org.imstls;

import java.nio.charset.StandardCharsets;

/**
 * The JNI surface: one static native method per imstls C function (the glue is
 * {@code examples/jni/c/imstls_jni.c}, registered in its {@code JNI_OnLoad}). Package-private:
 * the public classes own every pointer that crosses here, so application code never sees one.
 *
 * <p>Conventions: pointers are {@code long}; results are the {@code imstls_result} code;
 * out-parameters are one-element arrays written only on {@link ResultCode#OK}; strings go in
 * as UTF-8 byte arrays (see {@link #utf8}) and come back as Java strings.
 */
final class Native {
    static {
        // Desktop JVMs and tests may name the library file; Android loads it from the APK.
        String path = System.getProperty("imstls.jni.library");
        if (path != null && !path.isEmpty()) {
            System.load(path);
        } else {
            try {
                // Android before 6.0 does not load a library's dependencies from the app's
                // own directory: load libimstls first. Elsewhere the loader finds it anyway.
                System.loadLibrary("imstls");
            } catch (UnsatisfiedLinkError notSeparate) {
                // statically linked into libimstls_jni, or found through its DT_NEEDED entry
            }
            System.loadLibrary("imstls_jni");
        }
    }

    private Native() {}

    /** UTF-8 bytes of {@code text} for the glue, which adds the NUL; null stays null. */
    static byte[] utf8(String text, String what) {
        if (text == null) {
            return null;
        }
        if (text.indexOf('\0') >= 0) {
            throw new IllegalArgumentException(what + " contains a NUL character");
        }
        return text.getBytes(StandardCharsets.UTF_8);
    }

    /** UTF-8 bytes of each string; a null list or element is refused. */
    static byte[][] utf8(java.util.List<String> texts, String what) {
        if (texts == null) {
            throw new NullPointerException(what);
        }
        byte[][] out = new byte[texts.size()][];
        for (int i = 0; i < out.length; i++) {
            String text = texts.get(i);
            if (text == null) {
                throw new NullPointerException(what + "[" + i + "]");
            }
            out[i] = utf8(text, what);
        }
        return out;
    }

    /** Overwrites byte copies of identities once the native side has its own copy. */
    static void wipe(byte[] array) {
        if (array != null) {
            java.util.Arrays.fill(array, (byte) 0);
        }
    }

    static void wipe(byte[][] arrays) {
        for (byte[] a : arrays) {
            wipe(a);
        }
    }

    // ---- library ------------------------------------------------------------------------
    static native String version();
    static native String headerVersion();
    static native String cryptoProvider();
    static native String resultStr(int result);
    static native long logSinkNew(LogSink sink);
    static native void logSinkFree(long ref);

    // ---- configuration ------------------------------------------------------------------
    static native int builderNew(long[] out);
    static native void builderFree(long builder);
    static native int builderAddPcscf(long builder, byte[] candidate);
    static native int builderSetServerName(long builder, byte[] fqdn);
    static native int builderAddTrustAnchorsPem(long builder, byte[] pem);
    static native int builderAddTrustAnchorsDer(long builder, byte[] der);
    static native int builderAddTrustAnchorsFile(long builder, byte[] path);
    static native int builderAddCrlsPem(long builder, byte[] pem);
    static native int builderAddCrlsFile(long builder, byte[] path);
    static native int builderSetKeyLogFile(long builder, byte[] path);
    static native int builderAddSpkiPin(long builder, byte[] base64);
    static native int builderSetTlsVersions(long builder, int versions);
    static native int builderSetKxGroups(long builder, byte[][] names);
    static native int builderSetAllowWildcardCertificates(long builder, boolean allow);
    static native int builderSetCertificateRequestPolicy(long builder, int policy);
    static native int builderSetSessionLifetimeMs(long builder, long ms);
    static native int builderSetResumption(long builder, boolean enabled);
    static native int builderSetConnectTimeoutMs(long builder, long ms);
    static native int builderSetHandshakeTimeoutMs(long builder, long ms);
    static native int builderSetRegistrationTimeoutMs(long builder, long ms);
    static native int builderSetKeepalive(long builder, boolean enabled, boolean batterySaving,
            long pongTimeoutMs);
    static native int builderSetBackoff(long builder, long baseAllFailedMs, long baseOtherMs,
            long maxMs);
    static native int builderSetMaxSipMessageSize(long builder, long bytes);
    static native int builderSetMaxChallenges(long builder, int count);
    static native int builderSetConformanceLogEntries(long builder, long entries);
    static native int builderSetQueueLimits(long builder, long engineOutputBytes,
            long driverOutgoingBytes, long driverEventBytes);
    static native int builderSetRandomSeed(long builder, long seed);
    static native int builderBuild(long builder, long[] out);
    static native int builderLastError(long builder, long[] out);
    static native void configFree(long config);

    // ---- the sans-IO UE -----------------------------------------------------------------
    static native int ueNew(long config, long nowMs, long[] out);
    static native void ueFree(long ue);
    static native int ueStartRegistration(long ue, long nowMs, byte[] impi, byte[][] impus);
    static native int ueSendSip(long ue, long nowMs, byte[] message);
    static native int ueRegistrationChallenged(long ue, long nowMs, long flow, boolean stale);
    static native int ueRegistrationSucceeded(long ue, long nowMs, long flow, int expiresS,
            int flowTimerS);
    static native int ueRegistrationFailed(long ue, long nowMs, long flow, int status,
            int retryAfterS);
    static native int ueDeregister(long ue, long nowMs);
    static native int ueNetworkChanged(long ue, long nowMs);
    static native int ueRekey(long ue, long nowMs);
    static native int ueConnected(long ue, long nowMs, long flow, byte[] local, byte[] remote);
    static native int ueConnectFailed(long ue, long nowMs, long flow, int reason, byte[] detail);
    static native int ueReceive(long ue, long nowMs, long flow, byte[] data, int offset, int length);
    static native int ueTransportClosed(long ue, long nowMs, long flow, int closure, byte[] detail);
    static native int uePeerNotReading(long ue, long nowMs, long flow, long queuedBytes);
    static native int ueHandleTimeout(long ue, long nowMs);
    static native int uePollOutput(long ue, long[] out);
    static native int ueNextTimeout(long ue, long[] out);
    static native int ueState(long ue, int[] out);
    static native int ueCurrentFlow(long ue, long[] out);
    static native int ueBinding(long ue, long[] out);
    static native int ueLastError(long ue, long[] out);
    static native int ueSetLogCallback(long ue, long sink, int level);

    // ---- the managed driver -------------------------------------------------------------
    static native int driverNew(long config, long[] out);
    static native void driverFree(long driver);
    static native int driverStop(long driver);
    static native int driverSetConnectMode(long driver, int mode);
    static native int driverSetConnectionAttemptDelayMs(long driver, int delayMs);
    static native int driverStartRegistration(long driver, byte[] impi, byte[][] impus);
    static native int driverSendSip(long driver, byte[] message);
    static native int driverRegistrationChallenged(long driver, long flow, boolean stale);
    static native int driverRegistrationSucceeded(long driver, long flow, int expiresS,
            int flowTimerS);
    static native int driverRegistrationFailed(long driver, long flow, int status,
            int retryAfterS);
    static native int driverDeregister(long driver);
    static native int driverNetworkChanged(long driver);
    static native int driverRekey(long driver);
    static native int driverAdoptFd(long driver, long flow, int fd, int ownership);
    static native int driverConnectFailed(long driver, long flow, int reason, byte[] detail);
    static native int driverFd(long driver, int[] out);
    static native int driverInterest(long driver, int[] out);
    static native int driverTimeoutMs(long driver, long[] out);
    static native int driverProcess(long driver);
    static native int driverRun(long driver, int maxWaitMs);
    static native int driverPollEvent(long driver, long[] out);
    static native int driverState(long driver, int[] out);
    static native int driverBinding(long driver, long[] out);
    static native int driverLastError(long driver, long[] out);
    static native int driverSetLogCallback(long driver, long sink, int level);

    // ---- outputs ------------------------------------------------------------------------
    static native int outputKind(long output);
    static native int outputEvent(long output);
    static native String outputEventName(long output);
    static native long outputFlow(long output);
    static native long outputCandidate(long output);
    static native String outputHost(long output);
    static native int outputPort(long output);
    static native byte[] outputData(long output);
    static native String outputReason(long output);
    static native int outputRegisterReason(long output);
    static native String outputDetail(long output);
    static native String outputClause(long output);
    static native int outputSipStatus(long output);
    static native long outputAttempt(long output);
    static native long outputDelayMs(long output);
    static native long outputFailedCandidateCount(long output);
    static native long outputFailedCandidate(long output, long index);
    static native long outputFailedCandidateFlow(long output, long index);
    static native String outputFailedCandidateTarget(long output, long index);
    static native String outputFailedCandidateReason(long output, long index);
    static native String outputFailedCandidateDetail(long output, long index);
    static native long outputExpiresS(long output);
    static native long outputRefreshInS(long output);
    static native int outputFlags(long output);
    static native long outputPurgedSessions(long output);
    static native long outputDroppedBytes(long output);
    static native String outputTlsVersion(long output);
    static native String outputCipherSuite(long output);
    static native String outputKxGroup(long output);
    static native long outputError(long output);
    static native void outputFree(long output);

    // ---- errors -------------------------------------------------------------------------
    static native int errorResult(long error);
    static native String errorMessage(long error);
    static native String errorTlsFailure(long error);
    static native String errorCertificateFailure(long error);
    static native int errorAlertSent(long error);
    static native int errorAlertReceived(long error);
    static native String errorAlertSentName(long error);
    static native String errorAlertReceivedName(long error);
    static native String errorExpectedName(long error);
    static native long errorPresentedNameCount(long error);
    static native String errorPresentedName(long error, long index);
    static native String errorConfigField(long error);
    static native int errorSipStatus(long error);
    static native void errorFree(long error);

    // ---- bindings -----------------------------------------------------------------------
    static native long bindingFlow(long binding);
    static native boolean bindingRegistered(long binding);
    static native String bindingPcscf(long binding);
    static native String bindingLocalAddr(long binding);
    static native String bindingRemoteAddr(long binding);
    static native String bindingImpi(long binding);
    static native long bindingImpuCount(long binding);
    static native String bindingImpu(long binding, long index);
    static native String bindingTlsVersion(long binding);
    static native String bindingCipherSuite(long binding);
    static native String bindingKxGroup(long binding);
    static native boolean bindingResumed(long binding);
    static native String bindingPeerSubject(long binding);
    static native long bindingPeerSanCount(long binding);
    static native String bindingPeerSan(long binding, long index);
    static native long bindingPeerNotAfter(long binding);
    static native void bindingFree(long binding);
}
