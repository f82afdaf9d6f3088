package org.imstls;

/** Which REGISTER to build on {@link EventKind#REGISTER_NOW} ({@code imstls_register_reason}). */
public enum RegisterReason {
    /** Not a REGISTER_NOW event (or a reason this version does not name). */
    NONE(0),
    /** A new registration: new Call-ID, no credentials yet. */
    INITIAL(1),
    /** Answer the 401/407 just reported, on the same flow. */
    CHALLENGE(2),
    /** Answer a stale=true challenge with the same credentials (O.3.1.3). */
    STALE_CHALLENGE(3),
    /** Refresh the registration on its flow (O.4.3). */
    REFRESH(4),
    /** The flow was lost: a new registration on the new flow (O.4.1). */
    RECOVERY(5),
    /** The network changed: a new registration on the new flow. */
    NETWORK_CHANGED(6),
    /** A TLS 1.2 flow was replaced for fresh keys: a new registration. */
    REKEY(7),
    /** De-register: REGISTER with Expires: 0. */
    DEREGISTER(8);

    final int code;

    RegisterReason(int code) {
        this.code = code;
    }

    static RegisterReason of(int code) {
        for (RegisterReason reason : values()) {
            if (reason.code == code) {
                return reason;
            }
        }
        return NONE;
    }

    /** True when the REGISTER starts a new registration (new Call-ID, credentials forgotten). */
    public boolean startsNewRegistration() {
        return this == INITIAL || this == RECOVERY || this == NETWORK_CHANGED || this == REKEY;
    }
}
