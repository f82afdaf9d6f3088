package org.imstls.test;

/**
 * Makes one deliberate JNI mistake, which {@code -Xcheck:jni} must report: proof that the
 * checker is on in the runs that must stay free of JNI warnings.
 */
public final class XcheckCanary {
    static {
        System.load(System.getProperty("imstls.jni.desktop"));
    }

    private XcheckCanary() {}

    static void noop() {}

    static native void misuse();

    public static void main(String[] args) {
        misuse();
        System.out.println("canary done");
    }
}
