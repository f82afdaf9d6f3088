package org.imstls;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;

/**
 * A validated, immutable UE configuration: P-CSCF candidates, trust, TLS profile, timers. Built
 * with {@link #builder()}; {@link Builder#build()} validates everything in imstls and throws
 * {@link ImsTlsException} (with {@link Failure#configField()}) when a value cannot be used.
 * Pure Java: nothing to close. Share it between UEs and threads freely.
 */
public final class Config {
    /** Which TLS versions to offer (TLS 1.0/1.1 never: TS 33.210 section 6.2, RFC 8996). */
    public enum TlsVersions {
        /** TLS 1.3 preferred, TLS 1.2 accepted (the default). */
        TLS_1_3_AND_1_2(1),
        /** TLS 1.3 only. */
        TLS_1_3_ONLY(2);

        final int code;

        TlsVersions(int code) {
            this.code = code;
        }
    }

    /** What to do when the P-CSCF sends a CertificateRequest, which O.2.1 forbids. */
    public enum CertificateRequestPolicy {
        /** Send no certificate, carry on, report it with an event (the default). */
        CONTINUE(1),
        /** Abort the handshake. */
        ABORT(2);

        final int code;

        CertificateRequestPolicy(int code) {
            this.code = code;
        }
    }

    /** One builder setting, replayed on a native builder. */
    private interface Step {
        int apply(long builder);
    }

    private final List<Step> steps;
    private final int candidates;

    private Config(List<Step> steps, int candidates) {
        this.steps = steps;
        this.candidates = candidates;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** How many P-CSCF candidates the configuration holds. */
    public int candidateCount() {
        return candidates;
    }

    /** A native {@code imstls_config} for one UE or driver; the caller frees it. */
    long toNative() {
        long[] out = new long[1];
        int rc = Native.builderNew(out);
        if (rc != ResultCode.OK) {
            throw new ImsTlsException(Failure.ofCode(rc));
        }
        long builder = out[0];
        try {
            for (Step step : steps) {
                rc = step.apply(builder);
                if (rc != ResultCode.OK) {
                    throw builderError(builder, rc);
                }
            }
            rc = Native.builderBuild(builder, out);
            if (rc != ResultCode.OK) {
                throw builderError(builder, rc);
            }
            return out[0];
        } finally {
            Native.builderFree(builder);
        }
    }

    private static ImsTlsException builderError(long builder, int rc) {
        long[] out = new long[1];
        Failure failure = Failure.ofCode(rc);
        if (Native.builderLastError(builder, out) == ResultCode.OK) {
            Failure recorded = Failure.take(out[0]);
            if (recorded.result() == rc) {
                failure = recorded;
            }
        }
        return new ImsTlsException(failure);
    }

    @Override
    public String toString() {
        return "Config(" + candidates + " P-CSCF candidate(s))";
    }

    /**
     * Collects settings; every one has a sound default except the P-CSCF. Setters record the
     * value (copies of byte arrays); {@link #build()} validates all of them. Not thread-safe.
     */
    public static final class Builder {
        private final List<Step> steps = new ArrayList<Step>();
        private int candidates;

        private Builder() {}

        private Builder add(Step step) {
            steps.add(step);
            return this;
        }

        private static byte[] copy(byte[] bytes, String what) {
            if (bytes == null) {
                throw new NullPointerException(what);
            }
            return bytes.clone();
        }

        private static String nonNull(String text, String what) {
            if (text == null) {
                throw new NullPointerException(what);
            }
            return text;
        }

        private static long nonNegative(long value, String what) {
            if (value < 0) {
                throw new IllegalArgumentException(what + " must not be negative");
            }
            return value;
        }

        /**
         * Adds a P-CSCF candidate, tried in the order added: {@code host}, {@code host:port},
         * {@code v4[:port]}, {@code [v6][:port]} (port 5061 unless given).
         */
        public Builder addPcscf(String candidate) {
            final byte[] v = Native.utf8(nonNull(candidate, "candidate"), "candidate");
            candidates++;
            return add(b -> Native.builderAddPcscf(b, v));
        }

        /** The P-CSCF FQDN the certificate must name (RFC 5922), sent as SNI. */
        public Builder serverName(String fqdn) {
            final byte[] v = Native.utf8(nonNull(fqdn, "fqdn"), "fqdn");
            return add(b -> Native.builderSetServerName(b, v));
        }

        /** Operator trust anchors, PEM (one or more certificates). Without any, the Mozilla
         * roots are used. */
        public Builder addTrustAnchorsPem(byte[] pem) {
            final byte[] v = copy(pem, "pem");
            return add(b -> Native.builderAddTrustAnchorsPem(b, v));
        }

        /** One DER-encoded trust anchor. */
        public Builder addTrustAnchorsDer(byte[] der) {
            final byte[] v = copy(der, "der");
            return add(b -> Native.builderAddTrustAnchorsDer(b, v));
        }

        /** Trust anchors from a file (PEM, or one DER certificate), read by {@link #build()}. */
        public Builder addTrustAnchorsFile(String path) {
            final byte[] v = Native.utf8(nonNull(path, "path"), "path");
            return add(b -> Native.builderAddTrustAnchorsFile(b, v));
        }

        /** Certificate revocation lists, PEM (supplied, never fetched). */
        public Builder addCrlsPem(byte[] pem) {
            final byte[] v = copy(pem, "pem");
            return add(b -> Native.builderAddCrlsPem(b, v));
        }

        /** CRLs from a file (PEM or one DER CRL). */
        public Builder addCrlsFile(String path) {
            final byte[] v = Native.utf8(nonNull(path, "path"), "path");
            return add(b -> Native.builderAddCrlsFile(b, v));
        }

        /**
         * Debugging only: appends every flow's TLS secrets to {@code path} as NSS key-log
         * lines, which Wireshark uses to decrypt a capture (whoever holds the file can read
         * the flows). Off unless called; {@code SSLKEYLOGFILE} is never read. Each flow then
         * starts with {@link EventKind#KEY_LOG_ENABLED}.
         */
        public Builder keyLogFile(String path) {
            final byte[] v = Native.utf8(nonNull(path, "path"), "path");
            return add(b -> Native.builderSetKeyLogFile(b, v));
        }

        /** An SPKI SHA-256 pin (standard base64, 44 characters). */
        public Builder addSpkiPin(String base64) {
            final byte[] v = Native.utf8(nonNull(base64, "base64"), "base64");
            return add(b -> Native.builderAddSpkiPin(b, v));
        }

        public Builder tlsVersions(TlsVersions versions) {
            final int v = versions.code;
            return add(b -> Native.builderSetTlsVersions(b, v));
        }

        /** Key-exchange groups in preference order: {@code "X25519MLKEM768"}, {@code "X25519"},
         * {@code "secp256r1"}, {@code "secp384r1"}; P-256 must be among them. */
        public Builder kxGroups(String... names) {
            final byte[][] v = Native.utf8(Arrays.asList(names), "kx group");
            return add(b -> Native.builderSetKxGroups(b, v));
        }

        /** Accepts wildcard certificates, which RFC 5922 forbids (default false). */
        public Builder allowWildcardCertificates(boolean allow) {
            return add(b -> Native.builderSetAllowWildcardCertificates(b, allow));
        }

        public Builder certificateRequestPolicy(CertificateRequestPolicy policy) {
            final int v = policy.code;
            return add(b -> Native.builderSetCertificateRequestPolicy(b, v));
        }

        /** TLS session lifetime for resumption (default one hour, at most 24 h). */
        public Builder sessionLifetimeMs(long ms) {
            final long v = nonNegative(ms, "session lifetime");
            return add(b -> Native.builderSetSessionLifetimeMs(b, v));
        }

        /** TLS session resumption (default enabled). */
        public Builder resumption(boolean enabled) {
            return add(b -> Native.builderSetResumption(b, enabled));
        }

        /** TCP connect timeout (default 10 000 ms). */
        public Builder connectTimeoutMs(long ms) {
            final long v = nonNegative(ms, "connect timeout");
            return add(b -> Native.builderSetConnectTimeoutMs(b, v));
        }

        /** TLS handshake timeout (default 15 000 ms). */
        public Builder handshakeTimeoutMs(long ms) {
            final long v = nonNegative(ms, "handshake timeout");
            return add(b -> Native.builderSetHandshakeTimeoutMs(b, v));
        }

        /** How long a REGISTER may stay unanswered (default 32 000 ms, O.3.1.4). */
        public Builder registrationTimeoutMs(long ms) {
            final long v = nonNegative(ms, "registration timeout");
            return add(b -> Native.builderSetRegistrationTimeoutMs(b, v));
        }

        /**
         * RFC 5626 keep-alive: CRLF pings once registered (default on); {@code batterySaving}
         * pings every 672-840 s instead of 95-120 s when the P-CSCF gives no Flow-Timer; how long
         * to wait for the pong (default 10 000 ms).
         */
        public Builder keepalive(boolean enabled, boolean batterySaving, long pongTimeoutMs) {
            final long v = nonNegative(pongTimeoutMs, "pong timeout");
            return add(b -> Native.builderSetKeepalive(b, enabled, batterySaving, v));
        }

        /** RFC 5626 section 4.5 back-off bases and cap. */
        public Builder backoff(long baseAllFailedMs, long baseOtherMs, long maxMs) {
            final long a = nonNegative(baseAllFailedMs, "back-off base");
            final long o = nonNegative(baseOtherMs, "back-off base");
            final long m = nonNegative(maxMs, "back-off cap");
            return add(b -> Native.builderSetBackoff(b, a, o, m));
        }

        /** Largest SIP message accepted or sent (default 131 072 bytes). */
        public Builder maxSipMessageSize(long bytes) {
            final long v = nonNegative(bytes, "max SIP message size");
            return add(b -> Native.builderSetMaxSipMessageSize(b, v));
        }

        /** How many 401/407 challenges one registration may receive (default 3). */
        public Builder maxChallenges(int count) {
            final int v = (int) nonNegative(count, "max challenges");
            return add(b -> Native.builderSetMaxChallenges(b, v));
        }

        /**
         * How many of its latest events each UE keeps in its conformance log (default 128, at
         * most 4096). The log is not readable from Java, so an app saves about 3 KiB per
         * long-running UE with 0.
         */
        public Builder conformanceLogEntries(long entries) {
            final long v = nonNegative(entries, "conformance log entries");
            return add(b -> Native.builderSetConformanceLogEntries(b, v));
        }

        /**
         * Caps in bytes on the engine output queue, the driver's unsent TLS bytes and the
         * driver's unpolled events (0: the default, 1 MiB each). At a cap the flow fails
         * (CONNECTION_LOST with reason "queue_overflow" or "peer_not_reading") and recovery
         * backs off.
         */
        public Builder queueLimits(long engineOutputBytes, long driverOutgoingBytes,
                long driverEventBytes) {
            final long e = nonNegative(engineOutputBytes, "engine output bytes");
            final long o = nonNegative(driverOutgoingBytes, "driver outgoing bytes");
            final long v = nonNegative(driverEventBytes, "driver event bytes");
            return add(b -> Native.builderSetQueueLimits(b, e, o, v));
        }

        /** Seeds the engine's jitter, for reproducible tests. */
        public Builder randomSeed(long seed) {
            return add(b -> Native.builderSetRandomSeed(b, seed));
        }

        /**
         * Validates every setting in imstls.
         *
         * @throws ImsTlsException {@link ResultCode#INVALID_CONFIG} or {@link ResultCode#CONFIG_FILE},
         *     with {@link Failure#configField()} naming the field at fault
         */
        public Config build() {
            Config config = new Config(Collections.unmodifiableList(new ArrayList<Step>(steps)),
                    candidates);
            Native.configFree(config.toNative());
            return config;
        }
    }
}
