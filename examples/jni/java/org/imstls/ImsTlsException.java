package org.imstls;

/**
 * A call into imstls failed: the {@link ResultCode} and the structured {@link Failure}
 * (certificate reason, alerts, expected and presented names, configuration field, SIP status).
 *
 * <p>Unchecked, like {@link IllegalStateException}: most codes are programming errors (call
 * order, arguments); the ones an app handles at run time are {@link ResultCode#BUSY} (another
 * call on the handle was in progress: nothing was done, try again) and the configuration
 * codes from {@link Config.Builder#build()}. Network and certificate failures are not thrown:
 * they arrive as events ({@link Event#failure()}) and as {@code lastError()}.
 */
public final class ImsTlsException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final Failure failure;

    public ImsTlsException(Failure failure) {
        super(failure.toString());
        this.failure = failure;
    }

    /** The {@link ResultCode}. */
    public int result() { return failure.result(); }

    /** The structured failure. */
    public Failure failure() { return failure; }
}
