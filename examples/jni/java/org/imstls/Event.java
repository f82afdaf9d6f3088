package org.imstls;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * One event, pulled from {@link ImsTlsUe#pollOutput()} or {@link ImsTlsDriver#pollEvent()}:
 * immutable, copied out of the native output (which is freed at once). Fields that do not
 * apply to the kind are "" / 0 / false / null. Only {@link #sipMessage()} can carry personal
 * data; {@link #toString()} never does.
 */
public final class Event {
    /** Flag bits ({@code IMSTLS_FLAG_*}). */
    static final int FLAG_STALE = 1;
    static final int FLAG_WAS_REGISTERED = 2;
    static final int FLAG_RETRYING = 4;
    static final int FLAG_RESUMED = 8;
    static final int FLAG_ABORTED = 16;

    private final EventKind kind;
    private final String name;
    private final long flow;
    private final String reason;
    private final RegisterReason registerReason;
    private final String detail;
    private final String clause;
    private final String host;
    private final int port;
    private final long candidate;
    private final long attempt;
    private final long delayMs;
    private final long expiresS;
    private final long refreshInS;
    private final int sipStatus;
    private final int flags;
    private final long purgedSessions;
    private final long droppedBytes;
    private final String tlsVersion;
    private final String cipherSuite;
    private final String kxGroup;
    private final byte[] sipMessage;
    private final Failure failure;
    private final List<CandidateFailure> failedCandidates;

    private Event(long output) {
        kind = EventKind.of(Native.outputEvent(output));
        name = Native.outputEventName(output);
        flow = Native.outputFlow(output);
        reason = Native.outputReason(output);
        registerReason = RegisterReason.of(Native.outputRegisterReason(output));
        detail = Native.outputDetail(output);
        clause = Native.outputClause(output);
        host = Native.outputHost(output);
        port = Native.outputPort(output);
        candidate = Native.outputCandidate(output);
        attempt = Native.outputAttempt(output);
        delayMs = Native.outputDelayMs(output);
        expiresS = Native.outputExpiresS(output);
        refreshInS = Native.outputRefreshInS(output);
        sipStatus = Native.outputSipStatus(output);
        flags = Native.outputFlags(output);
        purgedSessions = Native.outputPurgedSessions(output);
        droppedBytes = Native.outputDroppedBytes(output);
        tlsVersion = Native.outputTlsVersion(output);
        cipherSuite = Native.outputCipherSuite(output);
        kxGroup = Native.outputKxGroup(output);
        sipMessage = kind == EventKind.SIP_RECEIVED ? Native.outputData(output) : null;
        long error = Native.outputError(output); // lent by the output: not freed here
        failure = error != 0 ? Failure.read(error) : null;
        long count = Native.outputFailedCandidateCount(output);
        List<CandidateFailure> failed = new ArrayList<CandidateFailure>();
        for (long i = 0; i < count; i++) {
            failed.add(new CandidateFailure(Native.outputFailedCandidate(output, i),
                    Native.outputFailedCandidateFlow(output, i),
                    Native.outputFailedCandidateTarget(output, i),
                    Native.outputFailedCandidateReason(output, i),
                    Native.outputFailedCandidateDetail(output, i)));
        }
        failedCandidates = Collections.unmodifiableList(failed);
    }

    /** Reads a native output of kind EVENT (the caller frees it). */
    static Event read(long output) {
        return new Event(output);
    }

    public EventKind kind() { return kind; }

    /** The stable snake_case name ({@code "registered"}, ...), as in the {@code ue} CLI's JSON. */
    public String name() { return name; }

    /** The flow the event is about (from 1); 0 when none. */
    public long flow() { return flow; }

    /**
     * A stable code qualifying the event: the certificate reason ({@code "expired"}, ...), the
     * connection-loss reason, the registration-failure reason ({@code "certificate"},
     * {@code "tls"}, {@code "rejected"}, ...); "" otherwise.
     */
    public String reason() { return reason; }

    /** REGISTER_NOW: which REGISTER to build. */
    public RegisterReason registerReason() { return registerReason; }

    /** One line of English without personal data, fit for a log. */
    public String detail() { return detail; }

    /** The clause behind the event, e.g. {@code "TS 33.203 O.3.1.2"}. */
    public String clause() { return clause; }

    /** CONNECTING: where to connect (external connect mode). */
    public String host() { return host; }

    /** CONNECTING: the TCP port. */
    public int port() { return port; }

    /** CONNECTING: the P-CSCF candidate index. */
    public long candidate() { return candidate; }

    /** CONNECTING: attempt number; BACKING_OFF: consecutive failures. */
    public long attempt() { return attempt; }

    /** BACKING_OFF: the wait before the next attempt. */
    public long delayMs() { return delayMs; }

    /** REGISTERED: the granted expiry. */
    public long expiresS() { return expiresS; }

    /** REGISTERED: when the refresh is due, seconds from now. */
    public long refreshInS() { return refreshInS; }

    /** REGISTRATION_FAILED: the SIP status, 0 for a timeout. */
    public int sipStatus() { return sipStatus; }

    /** CHALLENGED: stale=true. */
    public boolean stale() { return (flags & FLAG_STALE) != 0; }

    /** CONNECTION_LOST: the UE was registered on the lost flow. */
    public boolean wasRegistered() { return (flags & FLAG_WAS_REGISTERED) != 0; }

    /** REGISTRATION_FAILED: imstls retries by itself after a back-off. */
    public boolean retrying() { return (flags & FLAG_RETRYING) != 0; }

    /** TLS_ESTABLISHED: the handshake resumed a session. */
    public boolean resumed() { return (flags & FLAG_RESUMED) != 0; }

    /** CLIENT_CERTIFICATE_REQUESTED: the handshake was aborted. */
    public boolean aborted() { return (flags & FLAG_ABORTED) != 0; }

    /** SUPERSEDED: TLS sessions purged (O.4.1). */
    public long purgedSessions() { return purgedSessions; }

    /** SUPERSEDED: queued bytes dropped. */
    public long droppedBytes() { return droppedBytes; }

    /** TLS_ESTABLISHED: {@code "TLSv1.3"} or {@code "TLSv1.2"}. */
    public String tlsVersion() { return tlsVersion; }

    /** TLS_ESTABLISHED: the IANA cipher suite name. */
    public String cipherSuite() { return cipherSuite; }

    /** TLS_ESTABLISHED: the key-exchange group ("" on a TLS 1.2 resumption). */
    public String kxGroup() { return kxGroup; }

    /** SIP_RECEIVED: a copy of the SIP message (personal data); null otherwise. */
    public byte[] sipMessage() { return sipMessage == null ? null : sipMessage.clone(); }

    /**
     * CERTIFICATE_REJECTED, TLS_FAILED, CONNECT_FAILED, CONNECTION_LOST, REGISTRATION_FAILED:
     * the failure in detail (reason, alert sent, expected and presented names); null otherwise.
     */
    public Failure failure() { return failure; }

    /**
     * BACKING_OFF and REGISTRATION_FAILED: each candidate that failed in the round that ended,
     * in the order tried (failover). A REGISTRATION_FAILED with reason {@code "tls"} lists every
     * candidate, each failed for its TLS configuration; with {@code "certificate"} the rejected
     * one last. Empty otherwise.
     */
    public List<CandidateFailure> failedCandidates() { return failedCandidates; }

    /** Name and detail: no personal data. */
    @Override
    public String toString() {
        return name + ": " + detail;
    }
}
