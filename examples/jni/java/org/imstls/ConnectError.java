package org.imstls;

/** Why a TCP connect the app made failed ({@code imstls_connect_error}). */
public enum ConnectError {
    /** ECONNREFUSED. */
    REFUSED(1),
    /** Host or network unreachable. */
    UNREACHABLE(2),
    /** The connect timed out. */
    TIMED_OUT(3),
    /** Reset by the peer. */
    RESET(4),
    /** Anything else (describe it in the detail). */
    OTHER(5),
    /** The P-CSCF's name did not resolve to any address. */
    UNRESOLVED(6);

    final int code;

    ConnectError(int code) {
        this.code = code;
    }
}
