package org.imstls;

/**
 * The {@code imstls_result} codes of the C API. Families by hundreds: 0-99 no error, 1xx a bad
 * argument, 2xx call order, 3xx the handle itself, 4xx configuration, 5xx network and peer
 * (failure events), 6xx the operating system. Values are never reused; a code this class
 * does not name still has a {@link #message}.
 */
public final class ResultCode {
    private ResultCode() {}

    public static final int OK = 0;
    public static final int NOTHING_MORE = 1;
    public static final int NOT_AVAILABLE = 2;
    public static final int NULL_ARGUMENT = 100;
    public static final int INVALID_UTF8 = 101;
    public static final int INVALID_ARGUMENT = 102;
    public static final int BUFFER_TOO_SMALL = 103;
    public static final int INVALID_IDENTITY = 104;
    public static final int BAD_SIP_MESSAGE = 105;
    public static final int WRONG_STATE = 200;
    public static final int UNKNOWN_FLOW = 201;
    public static final int REGISTER_FIRST = 202;
    public static final int REGISTER_IN_FLIGHT = 203;
    public static final int WRONG_MODE = 204;
    /** A REGISTER answer named a flow that is no longer current; nothing was applied. */
    public static final int STALE_REPORT = 205;
    public static final int REFUSED = 299;
    public static final int BUSY = 300;
    public static final int PANIC = 301;
    public static final int POISONED = 302;
    public static final int STOPPED = 303;
    public static final int INVALID_CONFIG = 400;
    public static final int CONFIG_FILE = 401;
    public static final int CERTIFICATE_REJECTED = 500;
    public static final int TLS_FAILED = 501;
    public static final int CONNECTION_LOST = 502;
    public static final int CONNECT_FAILED = 503;
    public static final int REGISTRATION_FAILED = 504;
    public static final int IO_ERROR = 600;
    public static final int LOGGER_UNAVAILABLE = 601;

    /** The C name without its prefix ({@code "BUSY"}), or {@code "UNKNOWN(n)"}. */
    public static String name(int code) {
        switch (code) {
            case OK: return "OK";
            case NOTHING_MORE: return "NOTHING_MORE";
            case NOT_AVAILABLE: return "NOT_AVAILABLE";
            case NULL_ARGUMENT: return "NULL_ARGUMENT";
            case INVALID_UTF8: return "INVALID_UTF8";
            case INVALID_ARGUMENT: return "INVALID_ARGUMENT";
            case BUFFER_TOO_SMALL: return "BUFFER_TOO_SMALL";
            case INVALID_IDENTITY: return "INVALID_IDENTITY";
            case BAD_SIP_MESSAGE: return "BAD_SIP_MESSAGE";
            case WRONG_STATE: return "WRONG_STATE";
            case UNKNOWN_FLOW: return "UNKNOWN_FLOW";
            case REGISTER_FIRST: return "REGISTER_FIRST";
            case REGISTER_IN_FLIGHT: return "REGISTER_IN_FLIGHT";
            case WRONG_MODE: return "WRONG_MODE";
            case STALE_REPORT: return "STALE_REPORT";
            case REFUSED: return "REFUSED";
            case BUSY: return "BUSY";
            case PANIC: return "PANIC";
            case POISONED: return "POISONED";
            case STOPPED: return "STOPPED";
            case INVALID_CONFIG: return "INVALID_CONFIG";
            case CONFIG_FILE: return "CONFIG_FILE";
            case CERTIFICATE_REJECTED: return "CERTIFICATE_REJECTED";
            case TLS_FAILED: return "TLS_FAILED";
            case CONNECTION_LOST: return "CONNECTION_LOST";
            case CONNECT_FAILED: return "CONNECT_FAILED";
            case REGISTRATION_FAILED: return "REGISTRATION_FAILED";
            case IO_ERROR: return "IO_ERROR";
            case LOGGER_UNAVAILABLE: return "LOGGER_UNAVAILABLE";
            default: return "UNKNOWN(" + code + ")";
        }
    }

    /** imstls's static English message for the code ({@code imstls_result_str}). */
    public static String message(int code) {
        return Native.resultStr(code);
    }
}
