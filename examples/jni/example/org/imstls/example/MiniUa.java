package org.imstls.example;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.util.Arrays;
import java.util.Locale;

/**
 * The smallest SIP UA that registers through imstls: REGISTER, a 401 with an RFC 7616 Digest
 * challenge (MD5 or SHA-256, qop=auth or none, stale=true), the 200 OK, and the de-REGISTER. It
 * plays "the SIP stack" in the Java {@code ue} example and the JVM tests. Not a SIP stack: no
 * transactions, no dialogs.
 */
public final class MiniUa {
    /** What a response to our REGISTER meant. */
    public enum Outcome { CHALLENGED, REGISTERED, DEREGISTERED, FAILED, OTHER }

    /** A response, read. */
    public static final class Result {
        public final Outcome outcome;
        public final boolean stale;
        public final int status;
        public final int expires;
        public final int retryAfter;

        Result(Outcome outcome, boolean stale, int status, int expires, int retryAfter) {
            this.outcome = outcome;
            this.stale = stale;
            this.status = status;
            this.expires = expires;
            this.retryAfter = retryAfter;
        }
    }

    private static final SecureRandom RANDOM = new SecureRandom();

    private final String impi;
    private final String impu;
    private final char[] password;
    private final String domain;
    private final int expires;
    private String local = "127.0.0.1:5061";
    private String callId;
    private String fromTag;
    private int cseq;
    // The last challenge.
    private boolean haveChallenge;
    private String realm;
    private String nonce;
    private String opaque;
    private String algorithm;
    private boolean qopAuth;
    private int nc;
    // The REGISTER waiting for its answer.
    private int pendingCseq;
    private boolean pendingDeregister;

    /** @throws IllegalArgumentException when the IMPU is not {@code sip:user@domain} */
    public MiniUa(String impi, String impu, char[] password, int expires) {
        this.impi = impi;
        this.impu = impu;
        this.password = password.clone();
        this.expires = expires;
        int at = impu.indexOf('@');
        if (!impu.startsWith("sip:") || at < 0 || at == impu.length() - 1) {
            throw new IllegalArgumentException("the IMPU must be sip:user@domain");
        }
        String rest = impu.substring(at + 1);
        int end = 0;
        while (end < rest.length() && ";>:".indexOf(rest.charAt(end)) < 0) {
            end++;
        }
        this.domain = rest.substring(0, end);
        newRegistration();
    }

    /** Clears the password copy. */
    public void wipe() {
        Arrays.fill(password, '\0');
    }

    /** The local address written in Via and Contact. */
    public void setLocal(String local) {
        if (local != null && !local.isEmpty()) {
            this.local = local;
        }
    }

    /** A new registration: new Call-ID and From-tag; the challenge forgotten. */
    public void newRegistration() {
        callId = hex(12) + "@mini-ua";
        fromTag = hex(6);
        haveChallenge = false;
        nc = 0;
        pendingCseq = 0;
    }

    /** A REGISTER (Expires: 0 when {@code deregister}), answering the stored challenge if any. */
    public byte[] register(boolean deregister) {
        String uri = "sip:" + domain;
        int exp = deregister ? 0 : expires;
        String user = impu.substring(4, impu.indexOf('@'));
        cseq++;
        StringBuilder m = new StringBuilder(512)
                .append("REGISTER ").append(uri).append(" SIP/2.0\r\n")
                .append("Via: SIP/2.0/TLS ").append(local).append(";branch=z9hG4bK").append(hex(8))
                .append(";rport\r\n")
                .append("Max-Forwards: 70\r\n")
                .append("From: <").append(impu).append(">;tag=").append(fromTag).append("\r\n")
                .append("To: <").append(impu).append(">\r\n")
                .append("Call-ID: ").append(callId).append("\r\n")
                .append("CSeq: ").append(cseq).append(" REGISTER\r\n")
                .append("Contact: <sip:").append(user).append('@').append(local)
                .append(";transport=tls>;expires=").append(exp).append("\r\n")
                .append("Expires: ").append(exp).append("\r\n");
        if (haveChallenge) {
            m.append(authorization(uri)).append("\r\n");
        }
        m.append("Content-Length: 0\r\n\r\n");
        pendingCseq = cseq;
        pendingDeregister = deregister;
        return m.toString().getBytes(StandardCharsets.UTF_8);
    }

    private String authorization(String uri) {
        String ha1 = hash(impi + ":" + realm + ":" + new String(password));
        String ha2 = hash("REGISTER:" + uri);
        StringBuilder a = new StringBuilder("Authorization: Digest username=\"").append(impi)
                .append("\", realm=\"").append(realm).append("\", nonce=\"").append(nonce)
                .append("\", uri=\"").append(uri).append("\", algorithm=").append(algorithm);
        String response;
        if (qopAuth) {
            nc++;
            String count = String.format(Locale.ROOT, "%08x", nc);
            String cnonce = hex(8);
            response = hash(ha1 + ":" + nonce + ":" + count + ":" + cnonce + ":auth:" + ha2);
            a.append(", cnonce=\"").append(cnonce).append("\", qop=auth, nc=").append(count);
        } else {
            response = hash(ha1 + ":" + nonce + ":" + ha2);
        }
        a.append(", response=\"").append(response).append('"');
        if (opaque != null) {
            a.append(", opaque=\"").append(opaque).append('"');
        }
        return a.toString();
    }

    /** Reads a response to our pending REGISTER ({@link Outcome#OTHER} for anything else). */
    public Result response(byte[] message) {
        Result other = new Result(Outcome.OTHER, false, 0, 0, 0);
        String text = new String(message, StandardCharsets.UTF_8);
        if (!text.startsWith("SIP/2.0 ") || text.length() < 11) {
            return other;
        }
        int status;
        try {
            status = Integer.parseInt(text.substring(8, 11));
        } catch (NumberFormatException e) {
            return other;
        }
        String cseqHeader = header(text, "CSeq");
        if (status < 200 || cseqHeader == null || !cseqHeader.endsWith("REGISTER")
                || !String.valueOf(pendingCseq).equals(cseqHeader.split("\\s+")[0])
                || !callId.equals(header(text, "Call-ID"))) {
            return other;
        }
        pendingCseq = 0;
        if (status >= 200 && status < 300) {
            int granted = number(header(text, "Expires"), expires);
            return new Result(pendingDeregister ? Outcome.DEREGISTERED : Outcome.REGISTERED, false,
                    status, granted, 0);
        }
        String challenge = header(text, "WWW-Authenticate");
        if (status == 401 && challenge != null && param(challenge, "realm") != null
                && param(challenge, "nonce") != null) {
            String alg = param(challenge, "algorithm");
            alg = alg == null ? "MD5" : alg.toUpperCase(Locale.ROOT);
            if (!alg.equals("MD5") && !alg.equals("SHA-256")) {
                return new Result(Outcome.FAILED, false, status, 0, 0);
            }
            realm = param(challenge, "realm");
            nonce = param(challenge, "nonce");
            opaque = param(challenge, "opaque");
            algorithm = alg;
            String qop = param(challenge, "qop");
            qopAuth = qop != null && Arrays.asList(qop.split("\\s*,\\s*")).contains("auth");
            boolean stale = "true".equalsIgnoreCase(param(challenge, "stale"));
            haveChallenge = true;
            nc = 0;
            return new Result(Outcome.CHALLENGED, stale, status, 0, 0);
        }
        return new Result(Outcome.FAILED, false, status, 0,
                number(header(text, "Retry-After"), 0));
    }

    // ---- helpers ------------------------------------------------------------------------

    private static int number(String text, int fallback) {
        if (text == null) {
            return fallback;
        }
        try {
            return Integer.parseInt(text.trim().split("[\\s;(]")[0]);
        } catch (NumberFormatException e) {
            return fallback;
        }
    }

    /** The value of a header (case-insensitive name), or null. */
    private static String header(String message, String name) {
        int end = message.indexOf("\r\n\r\n");
        String[] lines = (end < 0 ? message : message.substring(0, end)).split("\r\n");
        for (int i = 1; i < lines.length; i++) {
            int colon = lines[i].indexOf(':');
            if (colon > 0 && lines[i].substring(0, colon).trim().equalsIgnoreCase(name)) {
                return lines[i].substring(colon + 1).trim();
            }
        }
        return null;
    }

    /** A Digest parameter (quoted or not), or null. */
    private static String param(String challenge, String name) {
        String lower = challenge.toLowerCase(Locale.ROOT);
        String key = name.toLowerCase(Locale.ROOT) + "=";
        for (int i = lower.indexOf(key); i >= 0; i = lower.indexOf(key, i + 1)) {
            char before = i == 0 ? ' ' : lower.charAt(i - 1);
            if (before != ' ' && before != ',') {
                continue;
            }
            int v = i + key.length();
            if (v < challenge.length() && challenge.charAt(v) == '"') {
                int close = challenge.indexOf('"', v + 1);
                return close < 0 ? null : challenge.substring(v + 1, close);
            }
            int stop = v;
            while (stop < challenge.length() && ", ".indexOf(challenge.charAt(stop)) < 0) {
                stop++;
            }
            return challenge.substring(v, stop);
        }
        return null;
    }

    private String hash(String text) {
        try {
            MessageDigest digest = MessageDigest.getInstance(algorithm);
            byte[] out = digest.digest(text.getBytes(StandardCharsets.UTF_8));
            StringBuilder hex = new StringBuilder(out.length * 2);
            for (byte b : out) {
                hex.append(String.format(Locale.ROOT, "%02x", b & 0xff));
            }
            return hex.toString();
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(algorithm + " is missing from this JVM", e);
        }
    }

    private static String hex(int bytes) {
        byte[] b = new byte[bytes];
        RANDOM.nextBytes(b);
        StringBuilder s = new StringBuilder(bytes * 2);
        for (byte x : b) {
            s.append(String.format(Locale.ROOT, "%02x", x & 0xff));
        }
        return s.toString();
    }
}
