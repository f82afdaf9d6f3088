package org.imstls;

/**
 * One P-CSCF candidate's failed attempt in a round over the candidates (failover), as listed
 * by {@link Event#failedCandidates()} on BACKING_OFF and REGISTRATION_FAILED. Immutable; no
 * personal data.
 */
public final class CandidateFailure {
    private final long candidate;
    private final long flow;
    private final String target;
    private final String reason;
    private final String detail;

    CandidateFailure(long candidate, long flow, String target, String reason, String detail) {
        this.candidate = candidate;
        this.flow = flow;
        this.target = target;
        this.reason = reason;
        this.detail = detail;
    }

    /** The candidate's index in the configuration (as CONNECTING's {@link Event#candidate()}). */
    public long candidate() { return candidate; }

    /** The flow of the attempt. */
    public long flow() { return flow; }

    /** {@code "host:port"} of the candidate. */
    public String target() { return target; }

    /**
     * Why it failed, a stable code: {@code "connect_refused"}, {@code "connect_timed_out"},
     * {@code "connect_unresolved"}, ...,
     * a TLS failure kind ({@code "no_common_cipher_suite"}, {@code "protocol_version"},
     * {@code "client_certificate_requested"}, ...) or a certificate failure ({@code "expired"},
     * ...).
     */
    public String reason() { return reason; }

    /** One line of English on the failure (alerts included), fit for a log. */
    public String detail() { return detail; }

    @Override
    public String toString() {
        return "candidate " + candidate + " (" + target + "): " + detail;
    }
}
