package org.imstls;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * A structured imstls failure (the C {@code imstls_error}), immutable. Carried by
 * {@link ImsTlsException} and by failure events ({@link Event#failure()}). Strings are
 * {@code ""} when the field does not apply. No personal data: P-CSCF names are not identities.
 */
public final class Failure implements java.io.Serializable {
    private static final long serialVersionUID = 1L;

    private final int result;
    private final String message;
    private final String tlsFailure;
    private final String certificateFailure;
    private final int alertSent;
    private final String alertSentName;
    private final int alertReceived;
    private final String alertReceivedName;
    private final String expectedName;
    private final List<String> presentedNames;
    private final String configField;
    private final int sipStatus;

    private Failure(int result, String message, String tlsFailure, String certificateFailure,
            int alertSent, String alertSentName, int alertReceived, String alertReceivedName,
            String expectedName, List<String> presentedNames, String configField, int sipStatus) {
        this.result = result;
        this.message = message;
        this.tlsFailure = tlsFailure;
        this.certificateFailure = certificateFailure;
        this.alertSent = alertSent;
        this.alertSentName = alertSentName;
        this.alertReceived = alertReceived;
        this.alertReceivedName = alertReceivedName;
        this.expectedName = expectedName;
        this.presentedNames = presentedNames;
        this.configField = configField;
        this.sipStatus = sipStatus;
    }

    /** A failure known only by its code (e.g. {@code BUSY}, which records no detail). */
    static Failure ofCode(int result) {
        return new Failure(result, ResultCode.message(result), "", "", -1, "", -1, "", "",
                Collections.<String>emptyList(), "", 0);
    }

    /** Reads a native {@code imstls_error} (the caller frees it, if it owns it). */
    static Failure read(long error) {
        long count = Native.errorPresentedNameCount(error);
        List<String> names = new ArrayList<String>();
        for (long i = 0; i < count; i++) {
            names.add(Native.errorPresentedName(error, i));
        }
        return new Failure(Native.errorResult(error), Native.errorMessage(error),
                Native.errorTlsFailure(error), Native.errorCertificateFailure(error),
                Native.errorAlertSent(error), Native.errorAlertSentName(error),
                Native.errorAlertReceived(error), Native.errorAlertReceivedName(error),
                Native.errorExpectedName(error), Collections.unmodifiableList(names),
                Native.errorConfigField(error), Native.errorSipStatus(error));
    }

    /** Reads and frees an owned native error. */
    static Failure take(long error) {
        try {
            return read(error);
        } finally {
            Native.errorFree(error);
        }
    }

    /** The {@link ResultCode}. */
    public int result() { return result; }

    /** One line of English without personal data. */
    public String message() { return message; }

    /** The TLS failure kind ({@code "certificate"}, {@code "protocol_version"}, ...), or "". */
    public String tlsFailure() { return tlsFailure; }

    /**
     * Why the P-CSCF certificate was rejected: {@code "expired"}, {@code "not_yet_valid"},
     * {@code "unknown_issuer"}, {@code "name_mismatch"}, {@code "bad_signature"},
     * {@code "wrong_usage"}, {@code "pin_mismatch"}, {@code "revoked"}, ...; or "".
     */
    public String certificateFailure() { return certificateFailure; }

    /** The fatal alert imstls sent (already on the wire, TS 33.203 O.3.1.2), or -1. */
    public int alertSent() { return alertSent; }

    /** Its RFC 8446 name ({@code "certificate_expired"}, ...), or "". */
    public String alertSentName() { return alertSentName; }

    /** The fatal alert the peer sent, or -1. */
    public int alertReceived() { return alertReceived; }

    /** Its RFC 8446 name, or "". */
    public String alertReceivedName() { return alertReceivedName; }

    /** For a name mismatch: the identity imstls expected (RFC 5922), or "". */
    public String expectedName() { return expectedName; }

    /** For a name mismatch: the names the certificate presented. */
    public List<String> presentedNames() { return presentedNames; }

    /** For a configuration error: the field at fault ({@code "pcscf"}, ...), or "". */
    public String configField() { return configField; }

    /** For a registration failure: the SIP status, 0 when none (a timeout). */
    public int sipStatus() { return sipStatus; }

    @Override
    public String toString() {
        StringBuilder b = new StringBuilder(ResultCode.name(result)).append(": ").append(message);
        if (!certificateFailure.isEmpty()) {
            b.append(" [certificate ").append(certificateFailure).append(']');
        }
        if (!alertSentName.isEmpty()) {
            b.append(" [alert sent ").append(alertSentName).append(']');
        }
        if (!configField.isEmpty()) {
            b.append(" [field ").append(configField).append(']');
        }
        return b.toString();
    }
}
