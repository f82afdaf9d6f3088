package org.imstls;

import java.util.Arrays;
import java.util.List;

/**
 * One UE, sans-IO: the TS 33.203 Annex O registration state machine with the app owning the
 * socket and the clock ({@code imstls_ue}). After every input, drain {@link #pollOutput()}
 * until it returns null: connect, transmit, close, and events (answer
 * {@link EventKind#REGISTER_NOW} with {@link #sendSip}); then wait for socket input or
 * {@link #nextTimeoutMs()}.
 *
 * <p>Time: every input takes {@code nowMs} from one monotonic clock of your choice -- on
 * Android {@code SystemClock.elapsedRealtime()}, which keeps counting in deep sleep. Deadlines
 * come back in the same clock.
 *
 * <p>Threads: any thread may call; a call made while another is in progress throws
 * {@link ImsTlsException} with {@link ResultCode#BUSY} and does nothing. {@link #close()} is
 * idempotent, may be called from any thread at any time, and never frees the UE under a running
 * call; every method called after it throws {@link IllegalStateException}. Close it (try with
 * resources): there is no finalizer.
 */
public final class ImsTlsUe implements AutoCloseable {
    private final NativeHandle handle;

    private ImsTlsUe(long pointer) {
        handle = new NativeHandle("ImsTlsUe", pointer, Native::ueFree);
    }

    /** A UE in {@link State#IDLE}; {@code nowMs} starts its clock. */
    public static ImsTlsUe create(Config config, long nowMs) {
        time(nowMs);
        long nativeConfig = config.toNative();
        try {
            long[] out = new long[1];
            int rc = Native.ueNew(nativeConfig, nowMs, out);
            if (rc != ResultCode.OK) {
                throw new ImsTlsException(Failure.ofCode(rc));
            }
            return new ImsTlsUe(out[0]);
        } finally {
            Native.configFree(nativeConfig);
        }
    }

    // ---- plumbing -----------------------------------------------------------------------

    private interface Call {
        int run(long ue);
    }

    /**
     * A REGISTER answer report: true when applied, false when the flow it names is no longer
     * current ({@link ResultCode#STALE_REPORT}: the answer belongs to an earlier procedure
     * and nothing was applied). Every other failure throws.
     */
    private boolean report(Call call) {
        long ue = handle.acquire();
        try {
            int rc = call.run(ue);
            if (rc == ResultCode.STALE_REPORT) {
                return false;
            }
            check(ue, rc);
            return true;
        } finally {
            handle.release();
        }
    }

    private void call(Call call) {
        long ue = handle.acquire();
        try {
            check(ue, call.run(ue));
        } finally {
            handle.release();
        }
    }

    /** Throws for a failed result, with the UE's recorded error when it is this call's. */
    private static void check(long ue, int rc) {
        if (rc == ResultCode.OK) {
            return;
        }
        Failure failure = Failure.ofCode(rc);
        long[] out = new long[1];
        if (rc != ResultCode.BUSY && Native.ueLastError(ue, out) == ResultCode.OK) {
            Failure recorded = Failure.take(out[0]);
            if (recorded.result() == rc) {
                failure = recorded;
            }
        }
        throw new ImsTlsException(failure);
    }

    static long time(long nowMs) {
        if (nowMs < 0) {
            throw new IllegalArgumentException("nowMs must not be negative");
        }
        return nowMs;
    }

    static int u32(int value, String what) {
        if (value < 0) {
            throw new IllegalArgumentException(what + " must not be negative");
        }
        return value;
    }

    // ---- inputs -------------------------------------------------------------------------

    /**
     * Starts a registration procedure for the IMPI ({@code user@realm}) and IMPUs
     * ({@code sip:}, {@code sips:}, {@code tel:}) -- O.4.1: one at a time; an incomplete one is
     * torn down first (event SUPERSEDED). A CONNECT output follows.
     */
    public void startRegistration(long nowMs, String impi, List<String> impus) {
        time(nowMs);
        final byte[] id = Native.utf8(requireNonNull(impi, "impi"), "impi");
        final byte[][] ids = Native.utf8(impus, "impu");
        try {
            call(ue -> Native.ueStartRegistration(ue, nowMs, id, ids));
        } finally {
            Native.wipe(id);
            Native.wipe(ids);
        }
    }

    /** {@link #startRegistration(long, String, List)} with IMPUs as arguments. */
    public void startRegistration(long nowMs, String impi, String... impus) {
        startRegistration(nowMs, impi, Arrays.asList(impus));
    }

    /**
     * Sends one complete SIP message on the current flow (after REGISTER_NOW: the REGISTER).
     * O.4.2: until registered only REGISTER may go ({@link ResultCode#REGISTER_FIRST}).
     */
    public void sendSip(long nowMs, byte[] message) {
        time(nowMs);
        requireNonNull(message, "message");
        call(ue -> Native.ueSendSip(ue, nowMs, message));
    }

    /**
     * The stack got a 401/407 ({@code stale}: stale=true, O.3.1.3) on {@code flow}: the
     * {@link Event#flow()} of the SIP_RECEIVED event that carried it. Returns false, applying
     * nothing, when that flow is no longer current (a late answer of an earlier procedure).
     */
    public boolean registrationChallenged(long nowMs, long flow, boolean stale) {
        time(nowMs);
        return report(ue -> Native.ueRegistrationChallenged(ue, nowMs, flow, stale));
    }

    /**
     * The stack got a 2xx on {@code flow} (see {@link #registrationChallenged}): the granted
     * expiry and the RFC 5626 Flow-Timer (0: none). False when the flow is stale.
     */
    public boolean registrationSucceeded(long nowMs, long flow, int expiresS, int flowTimerS) {
        time(nowMs);
        u32(expiresS, "expiresS");
        u32(flowTimerS, "flowTimerS");
        return report(ue -> Native.ueRegistrationSucceeded(ue, nowMs, flow, expiresS, flowTimerS));
    }

    /**
     * The stack got a final error 300-699 on {@code flow}; {@code retryAfterS} 0 when none
     * (O.3.1.1). False when the flow is stale.
     */
    public boolean registrationFailed(long nowMs, long flow, int status, int retryAfterS) {
        time(nowMs);
        u32(status, "status");
        u32(retryAfterS, "retryAfterS");
        return report(ue -> Native.ueRegistrationFailed(ue, nowMs, flow, status, retryAfterS));
    }

    /** De-registers (a REGISTER_NOW with reason DEREGISTER follows when registered). */
    public void deregister(long nowMs) {
        time(nowMs);
        call(ue -> Native.ueDeregister(ue, nowMs));
    }

    /** The device changed network: new flow, new registration at once (O.4.1). */
    public void networkChanged(long nowMs) {
        time(nowMs);
        call(ue -> Native.ueNetworkChanged(ue, nowMs));
    }

    /** Fresh keys: a TLS 1.3 KeyUpdate, or on TLS 1.2 a new flow and registration. */
    public void rekey(long nowMs) {
        time(nowMs);
        call(ue -> Native.ueRekey(ue, nowMs));
    }

    /**
     * Your TCP connection for {@code flow} (from a CONNECT output) is up. The addresses
     * ({@code "ip:port"}, {@code "[v6]:port"}, or null) feed the binding. A TRANSMIT follows.
     */
    public void connected(long nowMs, long flow, String localAddr, String remoteAddr) {
        time(nowMs);
        final byte[] local = Native.utf8(localAddr, "localAddr");
        final byte[] remote = Native.utf8(remoteAddr, "remoteAddr");
        call(ue -> Native.ueConnected(ue, nowMs, flow, local, remote));
    }

    /** Your TCP connect for {@code flow} failed; {@code detail} may be null. */
    public void connectFailed(long nowMs, long flow, ConnectError reason, String detail) {
        time(nowMs);
        final int code = requireNonNull(reason, "reason").code;
        final byte[] d = Native.utf8(detail, "detail");
        call(ue -> Native.ueConnectFailed(ue, nowMs, flow, code, d));
    }

    /**
     * Bytes read from {@code flow}'s socket. On {@link ResultCode#BUSY} they were not taken:
     * feed them again.
     */
    public void receive(long nowMs, long flow, byte[] data, int offset, int length) {
        time(nowMs);
        requireNonNull(data, "data");
        if (offset < 0 || length < 0 || offset > data.length - length) {
            throw new IndexOutOfBoundsException("offset " + offset + ", length " + length
                    + ", array " + data.length);
        }
        call(ue -> Native.ueReceive(ue, nowMs, flow, data, offset, length));
    }

    /**
     * The P-CSCF does not read: {@code queuedBytes} TLS bytes of {@code flow} wait in your
     * write buffer, at the cap you keep. The flow fails (CONNECTION_LOST "peer_not_reading",
     * a CLOSE follows) and a new registration follows after a back-off.
     */
    public void peerNotReading(long nowMs, long flow, long queuedBytes) {
        time(nowMs);
        if (queuedBytes < 0) {
            throw new IllegalArgumentException("queuedBytes is negative: " + queuedBytes);
        }
        call(ue -> Native.uePeerNotReading(ue, nowMs, flow, queuedBytes));
    }

    /** Your socket for {@code flow} ended; close it yourself. {@code detail} may be null. */
    public void transportClosed(long nowMs, long flow, TransportClosure closure, String detail) {
        time(nowMs);
        final int code = requireNonNull(closure, "closure").code;
        final byte[] d = Native.utf8(detail, "detail");
        call(ue -> Native.ueTransportClosed(ue, nowMs, flow, code, d));
    }

    /**
     * Time passed: fires every timer due at {@code nowMs}. Call it at {@link #nextTimeoutMs()};
     * early or often is harmless, and late is fine too (after Doze, call it at once: missed
     * deadlines fire now).
     */
    public void handleTimeout(long nowMs) {
        time(nowMs);
        call(ue -> Native.ueHandleTimeout(ue, nowMs));
    }

    // ---- outputs and queries ------------------------------------------------------------

    /** The next output, or null when the queue is drained. */
    public Output pollOutput() {
        long ue = handle.acquire();
        try {
            long[] out = new long[1];
            int rc = Native.uePollOutput(ue, out);
            if (rc == ResultCode.NOTHING_MORE) {
                return null;
            }
            check(ue, rc);
            try {
                return Output.read(out[0]);
            } finally {
                Native.outputFree(out[0]);
            }
        } finally {
            handle.release();
        }
    }

    /** When {@link #handleTimeout} is next due, in your clock; -1 when no timer runs. */
    public long nextTimeoutMs() {
        long ue = handle.acquire();
        try {
            long[] out = new long[1];
            int rc = Native.ueNextTimeout(ue, out);
            if (rc == ResultCode.NOT_AVAILABLE) {
                return -1;
            }
            check(ue, rc);
            return out[0];
        } finally {
            handle.release();
        }
    }

    /** What the UE waits for. */
    public State state() {
        long ue = handle.acquire();
        try {
            int[] out = new int[1];
            check(ue, Native.ueState(ue, out));
            return State.of(out[0]);
        } finally {
            handle.release();
        }
    }

    /** The current flow, or 0 when there is none. */
    public long currentFlow() {
        long ue = handle.acquire();
        try {
            long[] out = new long[1];
            int rc = Native.ueCurrentFlow(ue, out);
            if (rc == ResultCode.NOT_AVAILABLE) {
                return 0;
            }
            check(ue, rc);
            return out[0];
        } finally {
            handle.release();
        }
    }

    /** The O.2.2 binding once TLS is up; null before. */
    public Binding binding() {
        long ue = handle.acquire();
        try {
            long[] out = new long[1];
            int rc = Native.ueBinding(ue, out);
            if (rc == ResultCode.NOT_AVAILABLE) {
                return null;
            }
            check(ue, rc);
            return Binding.take(out[0]);
        } finally {
            handle.release();
        }
    }

    /**
     * The last failure -- of a call ({@code BUSY} excepted) or a failure event delivered by
     * {@link #pollOutput()} -- or null when nothing failed yet.
     */
    public Failure lastError() {
        long ue = handle.acquire();
        try {
            long[] out = new long[1];
            int rc = Native.ueLastError(ue, out);
            if (rc == ResultCode.NOT_AVAILABLE) {
                return null;
            }
            check(ue, rc);
            return Failure.take(out[0]);
        } finally {
            handle.release();
        }
    }

    /**
     * Sends this UE's log records up to {@code level} to {@code sink} (null or
     * {@link LogLevel#OFF}: off). See {@link LogSink} for the threading rules.
     */
    public void setLogSink(LogSink sink, LogLevel level) {
        handle.setLogSink(sink, level, Native::ueSetLogCallback);
    }

    /** True once {@link #close()} was called. */
    public boolean isClosed() {
        return handle.isClosed();
    }

    /**
     * Frees the UE (identities and buffered SIP bytes are zeroized). Idempotent; safe from any
     * thread; waits for calls running on other threads. Sockets are yours: close them.
     */
    @Override
    public void close() {
        handle.close();
    }

    static <T> T requireNonNull(T value, String what) {
        if (value == null) {
            throw new NullPointerException(what);
        }
        return value;
    }
}
