package org.imstls;

/** What the engine waits for ({@code imstls_state}). */
public enum State {
    /** Waiting for {@code startRegistration}. */
    IDLE(1),
    /** Waiting for the TCP connect result. */
    CONNECTING(2),
    /** Waiting for the TLS handshake. */
    HANDSHAKING(3),
    /** Flow up: waiting for the stack's REGISTER. */
    AWAITING_REGISTER(4),
    /** REGISTER sent: waiting for the stack to report the answer. */
    REGISTERING(5),
    /** Registered (refreshes run in this state). */
    REGISTERED(6),
    /** De-REGISTER due or sent. */
    DEREGISTERING(7),
    /** Waiting out an RFC 5626 back-off. */
    BACKING_OFF(8),
    /** Stopped after a failure that is not retried (certificate, 4xx). */
    CLOSED(9),
    /** A state this version of the Java API does not name. */
    UNKNOWN(0);

    final int code;

    State(int code) {
        this.code = code;
    }

    static State of(int code) {
        for (State state : values()) {
            if (state.code == code) {
                return state;
            }
        }
        return UNKNOWN;
    }
}
