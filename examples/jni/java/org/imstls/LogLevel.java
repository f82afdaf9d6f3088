package org.imstls;

/** Log levels, most severe first ({@code imstls_log_level}); {@link #OFF} turns logging off. */
public enum LogLevel {
    OFF(0), ERROR(1), WARN(2), INFO(3), DEBUG(4), TRACE(5);

    final int code;

    LogLevel(int code) {
        this.code = code;
    }

    /** The level of a C code; unknown codes read as {@link #TRACE}. */
    public static LogLevel of(int code) {
        for (LogLevel level : values()) {
            if (level.code == code) {
                return level;
            }
        }
        return TRACE;
    }
}
