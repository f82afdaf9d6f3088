package org.imstls;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The O.2.2 binding the P-CSCF keeps, as a snapshot once TLS is up: addresses, identities, and
 * the TLS parameters. Immutable. It holds personal data (IMPI, IMPUs, the UE's address): do not
 * log it; {@link #toString()} leaves those out.
 */
public final class Binding {
    private final long flow;
    private final boolean registered;
    private final String pcscf;
    private final String localAddr;
    private final String remoteAddr;
    private final String impi;
    private final List<String> impus;
    private final String tlsVersion;
    private final String cipherSuite;
    private final String kxGroup;
    private final boolean resumed;
    private final String peerSubject;
    private final List<String> peerSans;
    private final long peerNotAfter;

    private Binding(long b) {
        flow = Native.bindingFlow(b);
        registered = Native.bindingRegistered(b);
        pcscf = Native.bindingPcscf(b);
        localAddr = Native.bindingLocalAddr(b);
        remoteAddr = Native.bindingRemoteAddr(b);
        impi = Native.bindingImpi(b);
        List<String> list = new ArrayList<String>();
        for (long i = 0, n = Native.bindingImpuCount(b); i < n; i++) {
            list.add(Native.bindingImpu(b, i));
        }
        impus = Collections.unmodifiableList(list);
        tlsVersion = Native.bindingTlsVersion(b);
        cipherSuite = Native.bindingCipherSuite(b);
        kxGroup = Native.bindingKxGroup(b);
        resumed = Native.bindingResumed(b);
        peerSubject = Native.bindingPeerSubject(b);
        List<String> sans = new ArrayList<String>();
        for (long i = 0, n = Native.bindingPeerSanCount(b); i < n; i++) {
            sans.add(Native.bindingPeerSan(b, i));
        }
        peerSans = Collections.unmodifiableList(sans);
        peerNotAfter = Native.bindingPeerNotAfter(b);
    }

    /** Reads and frees a native binding (which zeroizes its identities). */
    static Binding take(long binding) {
        try {
            return new Binding(binding);
        } finally {
            Native.bindingFree(binding);
        }
    }

    public long flow() { return flow; }
    public boolean registered() { return registered; }
    /** The P-CSCF candidate as configured, {@code host:port}. */
    public String pcscf() { return pcscf; }
    /** The UE's address and port ("" when unknown). Personal data. */
    public String localAddr() { return localAddr; }
    /** The P-CSCF's address and port ("" when unknown). */
    public String remoteAddr() { return remoteAddr; }
    /** The private identity. Personal data. */
    public String impi() { return impi; }
    /** The public identities. Personal data. */
    public List<String> impus() { return impus; }
    public String tlsVersion() { return tlsVersion; }
    public String cipherSuite() { return cipherSuite; }
    public String kxGroup() { return kxGroup; }
    public boolean resumed() { return resumed; }
    /** The certificate's subject CN (diagnostics only; never used for matching). */
    public String peerSubject() { return peerSubject; }
    /** The certificate's subjectAltNames (empty after a resumption). */
    public List<String> peerSans() { return peerSans; }
    /** The certificate's notAfter, seconds since the epoch (0 when unknown). */
    public long peerNotAfter() { return peerNotAfter; }

    /** The TLS parameters only: no identities, no local address. */
    @Override
    public String toString() {
        return "flow " + flow + (registered ? " registered" : "") + " " + tlsVersion + " "
                + cipherSuite + " " + kxGroup + (resumed ? " resumed" : "");
    }
}
