package org.imstls.example;

import java.io.IOException;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.NoRouteToHostException;
import java.net.SocketAddress;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;

import org.imstls.ConnectError;
import org.imstls.Event;
import org.imstls.ImsTlsUe;
import org.imstls.Output;
import org.imstls.TransportClosure;

/**
 * Drives a sans-IO {@link ImsTlsUe} with {@code java.nio}: Java owns the socket and the clock.
 * Acts on CONNECT (opens a {@link SocketChannel}), TRANSMIT (writes), CLOSE (closes), hands
 * events to the SIP stack, and feeds socket bytes, end of stream and timeouts back in.
 *
 * <p>On Android, bind each socket to the {@code Network} you want before it connects with a
 * {@link Binder}: {@code channel -> network.bindSocket(channel.socket())}.
 */
public final class SansIoLink implements AutoCloseable {
    /** The SIP stack: reacts to one event (it may call the UE's inputs). */
    public interface Handler {
        void onEvent(Event event) throws IOException;
    }

    /** Prepares a new, unconnected channel (e.g. binds it to an Android Network). */
    public interface Binder {
        void bind(SocketChannel channel) throws IOException;
    }

    private static final int CONNECT_TIMEOUT_MS = 10000;

    private final ImsTlsUe ue;
    private final Binder binder;
    private final Selector readable;
    private final Selector writable;
    private final ByteBuffer buffer = ByteBuffer.allocate(16 * 1024);
    private SocketChannel channel;
    private long flow;
    private long skippedMs;

    public SansIoLink(ImsTlsUe ue, Binder binder) throws IOException {
        this.ue = ue;
        this.binder = binder;
        this.readable = Selector.open();
        this.writable = Selector.open();
    }

    /**
     * The clock given to the UE: monotonic milliseconds. (Android: use
     * {@code SystemClock.elapsedRealtime()}, which counts deep sleep.)
     */
    public long now() {
        return System.nanoTime() / 1000000L + skippedMs;
    }

    /** Moves this link's clock forward, as if the device had slept (tests of Doze wake-ups). */
    public void skipClock(long ms) {
        skippedMs += ms;
    }

    /** The flow whose socket is open, or 0. */
    public long flow() {
        return channel == null ? 0 : flow;
    }

    /** Acts on every queued output, in order; events go to {@code handler}. */
    public void drain(Handler handler) throws IOException {
        Output output;
        while ((output = ue.pollOutput()) != null) {
            switch (output.kind()) {
                case CONNECT:
                    connect(output);
                    break;
                case TRANSMIT:
                    transmit(output);
                    break;
                case CLOSE:
                    if (output.flow() == flow) {
                        closeChannel();
                    }
                    break;
                case EVENT:
                    handler.onEvent(output.event());
                    break;
                default:
                    break;
            }
        }
    }

    /**
     * Waits at most {@code maxWaitMs} for socket bytes or the UE's next deadline, feeds in what
     * happened, and drains the outputs.
     */
    public void step(long maxWaitMs, Handler handler) throws IOException {
        long deadline = ue.nextTimeoutMs();
        long wait = maxWaitMs;
        if (deadline >= 0) {
            wait = Math.max(0, Math.min(wait, deadline - now()));
        }
        if (channel != null) {
            int ready = wait == 0 ? readable.selectNow() : readable.select(wait);
            if (ready > 0) {
                readable.selectedKeys().clear();
                read();
            }
        } else if (wait > 0) {
            try {
                Thread.sleep(wait);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted", e);
            }
        }
        if (deadline >= 0 && now() >= deadline) {
            ue.handleTimeout(now());
        }
        drain(handler);
    }

    private void connect(Output output) throws IOException {
        closeChannel();
        InetSocketAddress address = new InetSocketAddress(output.host(), output.port());
        if (address.isUnresolved()) {
            ue.connectFailed(now(), output.flow(), ConnectError.UNRESOLVED, "name not resolved");
            return;
        }
        SocketChannel fresh = SocketChannel.open();
        try {
            if (binder != null) {
                binder.bind(fresh);
            }
            fresh.socket().connect(address, CONNECT_TIMEOUT_MS);
            fresh.configureBlocking(false);
            fresh.register(readable, SelectionKey.OP_READ);
        } catch (IOException e) {
            fresh.close();
            ue.connectFailed(now(), output.flow(), classify(e), e.getClass().getSimpleName());
            return;
        }
        channel = fresh;
        flow = output.flow();
        ue.connected(now(), flow, text(fresh.getLocalAddress()), text(fresh.getRemoteAddress()));
    }

    private void transmit(Output output) throws IOException {
        if (channel == null || output.flow() != flow) {
            return; // bytes for a flow already closed
        }
        ByteBuffer bytes = ByteBuffer.wrap(output.data());
        try {
            while (bytes.hasRemaining()) {
                if (channel.write(bytes) == 0) {
                    if (channel.keyFor(writable) == null) {
                        channel.register(writable, SelectionKey.OP_WRITE);
                    }
                    writable.select(1000);
                    writable.selectedKeys().clear();
                }
            }
        } catch (IOException e) {
            lost(TransportClosure.ERROR, e);
        }
    }

    private void read() throws IOException {
        while (channel != null) {
            buffer.clear();
            int n;
            try {
                n = channel.read(buffer);
            } catch (IOException e) {
                lost(TransportClosure.RESET, e);
                return;
            }
            if (n < 0) {
                long ended = flow;
                closeChannel();
                ue.transportClosed(now(), ended, TransportClosure.EOF, null);
                return;
            }
            if (n > 0) {
                ue.receive(now(), flow, buffer.array(), 0, n);
            }
            if (n < buffer.capacity()) {
                return;
            }
        }
    }

    private void lost(TransportClosure closure, IOException e) throws IOException {
        long ended = flow;
        closeChannel();
        ue.transportClosed(now(), ended, closure, e.getClass().getSimpleName());
    }

    private void closeChannel() throws IOException {
        if (channel != null) {
            SocketChannel old = channel;
            channel = null;
            old.close();
            readable.selectNow(); // completes the deregistration of the closed channel
            writable.selectNow();
        }
    }

    private static ConnectError classify(IOException e) {
        if (e instanceof ConnectException) {
            return ConnectError.REFUSED;
        }
        if (e instanceof SocketTimeoutException) {
            return ConnectError.TIMED_OUT;
        }
        if (e instanceof NoRouteToHostException) {
            return ConnectError.UNREACHABLE;
        }
        return ConnectError.OTHER;
    }

    /** {@code "ip:port"} or {@code "[v6]:port"}. */
    static String text(SocketAddress address) {
        if (!(address instanceof InetSocketAddress)) {
            return null;
        }
        InetSocketAddress a = (InetSocketAddress) address;
        String ip = a.getAddress().getHostAddress();
        int scope = ip.indexOf('%');
        if (scope >= 0) {
            ip = ip.substring(0, scope);
        }
        return (ip.indexOf(':') >= 0 ? "[" + ip + "]" : ip) + ":" + a.getPort();
    }

    @Override
    public void close() throws IOException {
        closeChannel();
        readable.close();
        writable.close();
    }
}
