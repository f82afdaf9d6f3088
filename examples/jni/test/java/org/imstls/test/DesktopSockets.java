package org.imstls.test;

import java.nio.channels.SocketChannel;

/** The descriptor of a desktop JDK socket channel (test-only native helper). */
final class DesktopSockets {
    static {
        System.load(System.getProperty("imstls.jni.desktop"));
    }

    private DesktopSockets() {}

    /** The channel's file descriptor; the channel keeps owning it. */
    static native int fdOf(SocketChannel channel);
}
