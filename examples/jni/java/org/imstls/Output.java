package org.imstls;

/**
 * One output of the sans-IO {@link ImsTlsUe}, in the order it must be acted on: connect,
 * transmit, close, or an {@link Event}. Immutable.
 */
public final class Output {
    /** What the output asks of the caller ({@code imstls_output_type}). */
    public enum Kind {
        /** Open a TCP connection to {@link #host()}:{@link #port()} for {@link #flow()}, then
         * report {@link ImsTlsUe#connected} or {@link ImsTlsUe#connectFailed}. */
        CONNECT,
        /** Write {@link #data()} to the flow's socket, in order. */
        TRANSMIT,
        /** Close the flow's socket (every earlier TRANSMIT written first: a fatal alert may be
         * among them, TS 33.203 O.3.1.2). */
        CLOSE,
        /** Something happened: {@link #event()}. */
        EVENT
    }

    private final Kind kind;
    private final long flow;
    private final String host;
    private final int port;
    private final long candidate;
    private final byte[] data;
    private final Event event;

    private Output(Kind kind, long flow, String host, int port, long candidate, byte[] data,
            Event event) {
        this.kind = kind;
        this.flow = flow;
        this.host = host;
        this.port = port;
        this.candidate = candidate;
        this.data = data;
        this.event = event;
    }

    /** Reads a native output (the caller frees it). */
    static Output read(long output) {
        int code = Native.outputKind(output);
        long flow = Native.outputFlow(output);
        switch (code) {
            case 1:
                return new Output(Kind.CONNECT, flow, Native.outputHost(output),
                        Native.outputPort(output), Native.outputCandidate(output), null, null);
            case 2:
                return new Output(Kind.TRANSMIT, flow, "", 0, 0, Native.outputData(output), null);
            case 3:
                return new Output(Kind.CLOSE, flow, "", 0, 0, null, null);
            case 4:
                return new Output(Kind.EVENT, flow, "", 0, 0, null, Event.read(output));
            default:
                throw new IllegalStateException("imstls output kind " + code + " is unknown");
        }
    }

    public Kind kind() { return kind; }

    /** The flow the output is about (flows count from 1). */
    public long flow() { return flow; }

    /** CONNECT: a DNS name (resolve it) or an IP literal without brackets. */
    public String host() { return host; }

    /** CONNECT: the TCP port. */
    public int port() { return port; }

    /** CONNECT: the P-CSCF candidate index. */
    public long candidate() { return candidate; }

    /** TRANSMIT: the TLS records to write (a copy); null otherwise. */
    public byte[] data() { return data == null ? null : data.clone(); }

    /** TRANSMIT: how many bytes {@link #data()} has. */
    public int dataLength() { return data == null ? 0 : data.length; }

    /** EVENT: the event; null otherwise. */
    public Event event() { return event; }

    @Override
    public String toString() {
        switch (kind) {
            case CONNECT: return "connect flow " + flow + " to candidate " + candidate;
            case TRANSMIT: return "transmit " + data.length + " bytes on flow " + flow;
            case CLOSE: return "close flow " + flow;
            default: return "event " + event;
        }
    }
}
