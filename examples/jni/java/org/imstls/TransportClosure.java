package org.imstls;

/** How the app's socket ended ({@code imstls_transport_closure}). */
public enum TransportClosure {
    /** {@code read} returned end of stream (FIN). */
    EOF(1),
    /** ECONNRESET. */
    RESET(2),
    /** Another socket error (describe it in the detail). */
    ERROR(3);

    final int code;

    TransportClosure(int code) {
        this.code = code;
    }
}
