package org.imstls;

/**
 * Receives one UE's or driver's log records ({@code imstls_ue_set_log_callback}); route them to
 * logcat with {@code android.util.Log.println}. imstls never logs secrets, identities or SIP
 * content.
 *
 * <p>Threading: records are delivered synchronously, on the thread that called into that UE or
 * driver, while the call runs -- never on a thread of imstls's own (it has none). A call back
 * into the same UE or driver from here gets {@link ResultCode#BUSY}; other handles work. An
 * exception thrown here is discarded with its record. Keep it short.
 */
public interface LogSink {
    /**
     * One record.
     *
     * @param level a {@link LogLevel} code (1 = error ... 5 = trace); see {@link LogLevel#of}
     * @param target the Rust module that logged, e.g. {@code "imstls::engine"}
     * @param message the text
     */
    void log(int level, String target, String message);
}
