package org.imstls;

import java.util.Arrays;
import java.util.List;

/**
 * One UE with a managed socket ({@code imstls_driver}): imstls owns the TCP socket and reads
 * the clock. Drive it with {@link #run(int)} in a loop (it blocks up to the given time), or
 * from your own loop: wait for {@link #fd()} with {@link #interest()} or for
 * {@link #timeoutMs()}, then {@link #process()}. After either, drain {@link #pollEvent()} and
 * answer {@link EventKind#REGISTER_NOW} with {@link #sendSip}.
 *
 * <p>Android {@code Network.bindSocket}: {@link #setConnectMode} {@link ConnectMode#EXTERNAL};
 * each new flow then arrives as a {@link EventKind#CONNECTING} event with host and port: create
 * and connect the socket on the network you want and hand its descriptor in with
 * {@link #adoptFd} (see docs/ANDROID.md).
 *
 * <p>Threads: as {@link ImsTlsUe}. {@link #run(int)} holds the driver only while it works, so
 * another thread may call {@link #sendSip} meanwhile. {@link #close()} first stops the driver
 * ({@link #stop()}): a {@code run} waiting on another thread returns {@code false} at once,
 * then the driver is freed; a loop thread that was between two calls gets an
 * {@link IllegalStateException} on its next call.
 */
public final class ImsTlsDriver implements AutoCloseable {
    /** {@link #interest()} bit: wait until the descriptor is readable. */
    public static final int INTEREST_READABLE = 1;
    /** {@link #interest()} bit: wait until the descriptor is writable. */
    public static final int INTEREST_WRITABLE = 2;

    /** Who opens the TCP connections. */
    public enum ConnectMode {
        /** The driver resolves, connects (IPv6 and IPv4, every address) and owns the sockets. */
        MANAGED(1),
        /** The app creates and connects each flow's socket and hands it in ({@link #adoptFd}). */
        EXTERNAL(2);

        final int code;

        ConnectMode(int code) {
            this.code = code;
        }
    }

    /** Who closes a descriptor handed to {@link #adoptFd}. */
    public enum FdOwnership {
        /** The driver owns it from a successful call on and closes it when the flow ends. */
        TRANSFER(1),
        /** It stays yours: the driver works on a duplicate, shuts the connection down when the
         * flow ends and closes only its duplicate. Close yours whenever you like. */
        BORROW(2);

        final int code;

        FdOwnership(int code) {
            this.code = code;
        }
    }

    private final NativeHandle handle;

    private ImsTlsDriver(long pointer) {
        handle = new NativeHandle("ImsTlsDriver", pointer, Native::driverFree);
    }

    /** A driver in managed connect mode, engine idle. */
    public static ImsTlsDriver create(Config config) {
        long nativeConfig = config.toNative();
        try {
            long[] out = new long[1];
            int rc = Native.driverNew(nativeConfig, out);
            if (rc != ResultCode.OK) {
                throw new ImsTlsException(Failure.ofCode(rc));
            }
            return new ImsTlsDriver(out[0]);
        } finally {
            Native.configFree(nativeConfig);
        }
    }

    // ---- plumbing -----------------------------------------------------------------------

    private interface Call {
        int run(long driver);
    }

    /** A REGISTER answer report: true when applied, false for {@link ResultCode#STALE_REPORT}. */
    private boolean report(Call call) {
        long driver = handle.acquire();
        try {
            int rc = call.run(driver);
            if (rc == ResultCode.STALE_REPORT) {
                return false;
            }
            check(driver, rc);
            return true;
        } finally {
            handle.release();
        }
    }

    private void call(Call call) {
        long driver = handle.acquire();
        try {
            check(driver, call.run(driver));
        } finally {
            handle.release();
        }
    }

    private static void check(long driver, int rc) {
        if (rc == ResultCode.OK) {
            return;
        }
        Failure failure = Failure.ofCode(rc);
        long[] out = new long[1];
        if (rc != ResultCode.BUSY && Native.driverLastError(driver, out) == ResultCode.OK) {
            Failure recorded = Failure.take(out[0]);
            if (recorded.result() == rc) {
                failure = recorded;
            }
        }
        throw new ImsTlsException(failure);
    }

    // ---- inputs -------------------------------------------------------------------------

    /** Chooses who connects new flows; takes effect for the next flow. */
    public void setConnectMode(ConnectMode mode) {
        final int code = ImsTlsUe.requireNonNull(mode, "mode").code;
        call(d -> Native.driverSetConnectMode(d, code));
    }

    /**
     * RFC 8305's Connection Attempt Delay (managed mode): how long one connect attempt runs
     * alone before the next address of the P-CSCF is tried as well (default 250 ms, allowed 10
     * to 2000 ms, else {@code INVALID_ARGUMENT}); takes effect for the next flow.
     */
    public void setConnectionAttemptDelayMs(int delayMs) {
        call(d -> Native.driverSetConnectionAttemptDelayMs(d, delayMs));
    }

    /**
     * Starts a registration procedure (see {@link ImsTlsUe#startRegistration}); in managed mode
     * it starts connecting (a host name is resolved on a resolver thread, never this one; a
     * name that does not resolve fails the attempt with reason {@code "unresolved"}).
     */
    public void startRegistration(String impi, List<String> impus) {
        final byte[] id = Native.utf8(ImsTlsUe.requireNonNull(impi, "impi"), "impi");
        final byte[][] ids = Native.utf8(impus, "impu");
        try {
            call(d -> Native.driverStartRegistration(d, id, ids));
        } finally {
            Native.wipe(id);
            Native.wipe(ids);
        }
    }

    /** {@link #startRegistration(String, List)} with IMPUs as arguments. */
    public void startRegistration(String impi, String... impus) {
        startRegistration(impi, Arrays.asList(impus));
    }

    /** Sends one complete SIP message on the current flow; written at once. */
    public void sendSip(byte[] message) {
        ImsTlsUe.requireNonNull(message, "message");
        call(d -> Native.driverSendSip(d, message));
    }

    /**
     * The stack got a 401/407 on {@code flow}, the {@link Event#flow()} of the SIP_RECEIVED
     * event that carried it. False, nothing applied, when that flow is no longer current.
     */
    public boolean registrationChallenged(long flow, boolean stale) {
        return report(d -> Native.driverRegistrationChallenged(d, flow, stale));
    }

    /** The stack got a 2xx on {@code flow}; false when the flow is stale. */
    public boolean registrationSucceeded(long flow, int expiresS, int flowTimerS) {
        ImsTlsUe.u32(expiresS, "expiresS");
        ImsTlsUe.u32(flowTimerS, "flowTimerS");
        return report(d -> Native.driverRegistrationSucceeded(d, flow, expiresS, flowTimerS));
    }

    /** The stack got a final error 300-699 on {@code flow}; false when the flow is stale. */
    public boolean registrationFailed(long flow, int status, int retryAfterS) {
        ImsTlsUe.u32(status, "status");
        ImsTlsUe.u32(retryAfterS, "retryAfterS");
        return report(d -> Native.driverRegistrationFailed(d, flow, status, retryAfterS));
    }

    public void deregister() {
        call(Native::driverDeregister);
    }

    /** The device changed network: the socket is closed, a new flow and registration start. */
    public void networkChanged() {
        call(Native::driverNetworkChanged);
    }

    public void rekey() {
        call(Native::driverRekey);
    }

    /**
     * External connect mode: hands in the socket for {@code flow} (from a CONNECTING event),
     * connected or with a non-blocking connect in progress. On an exception the descriptor
     * stays yours.
     */
    public void adoptFd(long flow, int fd, FdOwnership ownership) {
        final int code = ImsTlsUe.requireNonNull(ownership, "ownership").code;
        call(d -> Native.driverAdoptFd(d, flow, fd, code));
    }

    /** External connect mode: you could not connect {@code flow}; {@code detail} may be null. */
    public void connectFailed(long flow, ConnectError reason, String detail) {
        final int code = ImsTlsUe.requireNonNull(reason, "reason").code;
        final byte[] d = Native.utf8(detail, "detail");
        call(p -> Native.driverConnectFailed(p, flow, code, d));
    }

    /** Does everything possible without blocking; then drain {@link #pollEvent()}. */
    public void process() {
        call(Native::driverProcess);
    }

    /**
     * Blocks at most {@code maxWaitMs} until the socket is ready, a timer is due or another
     * thread's input needs attention, then processes. Returns at once when events wait.
     *
     * @return {@code true}; {@code false} once the driver is stopped ({@link #stop()} or
     *     {@link #close()} from another thread; nothing was processed): leave your loop.
     */
    public boolean run(int maxWaitMs) {
        ImsTlsUe.u32(maxWaitMs, "maxWaitMs");
        long driver = handle.acquire();
        try {
            int rc = Native.driverRun(driver, maxWaitMs);
            if (rc == ResultCode.STOPPED) {
                return false;
            }
            check(driver, rc);
            return true;
        } finally {
            handle.release();
        }
    }

    /**
     * Stops the driver's loop from any thread ({@code imstls_driver_stop}): a {@link #run}
     * waiting now returns {@code false} at once, and so does every later one. Other calls keep
     * working (drain the last events, then {@link #close()}). Final; idempotent.
     */
    public void stop() {
        call(Native::driverStop);
    }

    // ---- events and queries -------------------------------------------------------------

    /** The next event, or null when none is waiting. */
    public Event pollEvent() {
        long driver = handle.acquire();
        try {
            long[] out = new long[1];
            int rc = Native.driverPollEvent(driver, out);
            if (rc == ResultCode.NOTHING_MORE) {
                return null;
            }
            check(driver, rc);
            try {
                return Event.read(out[0]);
            } finally {
                Native.outputFree(out[0]);
            }
        } finally {
            handle.release();
        }
    }

    /** The socket to wait on, or -1 when there is none. Never close it yourself. */
    public int fd() {
        long driver = handle.acquire();
        try {
            int[] out = new int[1];
            int rc = Native.driverFd(driver, out);
            if (rc == ResultCode.NOT_AVAILABLE) {
                return -1;
            }
            check(driver, rc);
            return out[0];
        } finally {
            handle.release();
        }
    }

    /** What to wait for on {@link #fd()}: {@link #INTEREST_READABLE}, {@link #INTEREST_WRITABLE}. */
    public int interest() {
        long driver = handle.acquire();
        try {
            int[] out = new int[1];
            check(driver, Native.driverInterest(driver, out));
            return out[0];
        } finally {
            handle.release();
        }
    }

    /** Milliseconds until {@link #process()} must run at the latest; -1 when no timer runs. */
    public long timeoutMs() {
        long driver = handle.acquire();
        try {
            long[] out = new long[1];
            int rc = Native.driverTimeoutMs(driver, out);
            if (rc == ResultCode.NOT_AVAILABLE) {
                return -1;
            }
            check(driver, rc);
            return out[0];
        } finally {
            handle.release();
        }
    }

    public State state() {
        long driver = handle.acquire();
        try {
            int[] out = new int[1];
            check(driver, Native.driverState(driver, out));
            return State.of(out[0]);
        } finally {
            handle.release();
        }
    }

    /** The O.2.2 binding once TLS is up; null before. */
    public Binding binding() {
        long driver = handle.acquire();
        try {
            long[] out = new long[1];
            int rc = Native.driverBinding(driver, out);
            if (rc == ResultCode.NOT_AVAILABLE) {
                return null;
            }
            check(driver, rc);
            return Binding.take(out[0]);
        } finally {
            handle.release();
        }
    }

    /** The last failure (of a call, or a failure event delivered); null when none. */
    public Failure lastError() {
        long driver = handle.acquire();
        try {
            long[] out = new long[1];
            int rc = Native.driverLastError(driver, out);
            if (rc == ResultCode.NOT_AVAILABLE) {
                return null;
            }
            check(driver, rc);
            return Failure.take(out[0]);
        } finally {
            handle.release();
        }
    }

    /** See {@link ImsTlsUe#setLogSink}. */
    public void setLogSink(LogSink sink, LogLevel level) {
        handle.setLogSink(sink, level, Native::driverSetLogCallback);
    }

    public boolean isClosed() {
        return handle.isClosed();
    }

    /**
     * Stops the driver (see {@link #stop()}: a {@link #run} waiting on another thread returns
     * {@code false} at once), then frees it: its socket is closed after writing what is
     * queued; descriptors lent with {@link FdOwnership#BORROW} are not closed. Idempotent;
     * safe from any thread; waits for calls running on other threads, which the stop cuts
     * short.
     */
    @Override
    public void close() {
        long driver;
        try {
            driver = handle.acquire();
        } catch (IllegalStateException alreadyClosed) {
            return;
        }
        try {
            Native.driverStop(driver); // never BUSY; wakes a waiting run without its lock
        } finally {
            handle.release();
        }
        handle.close();
    }
}
