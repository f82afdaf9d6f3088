package org.imstls;

/** Library facts. */
public final class ImsTls {
    private ImsTls() {}

    /** The version of the loaded libimstls, {@code "MAJOR.MINOR.PATCH"}. */
    public static String version() {
        return Native.version();
    }

    /** The version of the C header the JNI glue was compiled against; equal to
     * {@link #version()} unless the glue and the library were built apart. */
    public static String headerVersion() {
        return Native.headerVersion();
    }

    /** The crypto provider built in: {@code "aws-lc-rs"} or {@code "ring"}. */
    public static String cryptoProvider() {
        return Native.cryptoProvider();
    }
}
