package org.imstls;

/** Which event an {@link Event} is ({@code imstls_event_kind}); see docs/C_API.md "Events". */
public enum EventKind {
    CONNECTING(1),
    CONNECT_FAILED(2),
    TLS_ESTABLISHED(3),
    CLIENT_CERTIFICATE_REQUESTED(4),
    CERTIFICATE_REJECTED(5),
    TLS_FAILED(6),
    /** Send a REGISTER now ({@link Event#registerReason()}): the one event that needs an answer. */
    REGISTER_NOW(7),
    REGISTERING(8),
    CHALLENGED(9),
    REGISTERED(10),
    CONNECTION_LOST(11),
    BACKING_OFF(12),
    SUPERSEDED(13),
    REGISTRATION_FAILED(14),
    DEREGISTERED(15),
    /** A SIP message arrived ({@link Event#sipMessage()}). */
    SIP_RECEIVED(16),
    KEEPALIVE_SENT(17),
    PONG_RECEIVED(18),
    PING_ANSWERED(19),
    REKEYED(20),
    /** Warning: this flow's TLS secrets go to the key log ({@link Config.Builder#keyLogFile}). */
    KEY_LOG_ENABLED(21),
    /** An event this version does not name: {@link Event#name()} has it. */
    OTHER(255);

    final int code;

    EventKind(int code) {
        this.code = code;
    }

    static EventKind of(int code) {
        for (EventKind kind : values()) {
            if (kind.code == code) {
                return kind;
            }
        }
        return OTHER;
    }
}
