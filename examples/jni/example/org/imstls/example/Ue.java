package org.imstls.example;

import java.io.BufferedReader;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import org.imstls.Binding;
import org.imstls.CandidateFailure;
import org.imstls.Config;
import org.imstls.Event;
import org.imstls.Failure;
import org.imstls.ImsTlsException;
import org.imstls.ImsTlsUe;
import org.imstls.LogLevel;
import org.imstls.RegisterReason;

/**
 * ue: register to a P-CSCF over TS 33.203 Annex O TLS from Java -- the JVM twin of
 * {@code examples/ue.rs} and {@code examples/c/ue.c}, on the sans-IO UE with Java owning the
 * socket ({@link SansIoLink}) and {@link MiniUa} playing the SIP stack.
 *
 * <pre>
 * java -cp CLASSES org.imstls.example.Ue --pcscf HOST:PORT [--pcscf ...] [--server-name FQDN]
 *     [--ca FILE.pem ...] [--pin SPKI_SHA256_BASE64] --impi ID --impu URI [--impu ...]
 *     --password-file FILE|- [--expires SECS] [--tls13-only] [--hold SECS] [--json]
 *     [--keylog FILE]
 * </pre>
 *
 * The password comes from the first line of FILE (or standard input with {@code -});
 * {@code --password SECRET} still works but warns: it shows in {@code ps}. {@code --keylog}
 * appends the TLS secrets for Wireshark ({@link Config.Builder#keyLogFile}; debugging only).
 * {@code --help} lists every flag, the JSON events and the exit codes.
 *
 * Registers, stays registered {@code --hold} seconds (refreshing and recovering from loss),
 * then de-registers. {@code --json} prints one JSON object per event ("event", "t_ms", ...).
 * Exit codes: 0 success, 1 registration rejected, 2 usage or configuration error, 3 P-CSCF
 * certificate rejected, 4 other TLS failure, 5 connect failure or timeout. Identities and the
 * password are never printed; imstls warnings go to standard error through a {@code LogSink}.
 */
public final class Ue {
    static final int EXIT_REJECTED = 1;
    static final int EXIT_USAGE = 2;
    static final int EXIT_CERTIFICATE = 3;
    static final int EXIT_TLS = 4;
    static final int EXIT_CONNECT = 5;

    private static final long REGISTER_DEADLINE_MS = 60000;
    private static final long DEREGISTER_DEADLINE_MS = 35000;
    private static final String USAGE =
            "usage: ue --pcscf HOST:PORT [--pcscf ...] [--server-name FQDN] [--ca FILE.pem ...]\n"
            + "          [--pin SPKI_SHA256_BASE64] --impi ID --impu URI [--impu ...] --password-file FILE|-\n"
            + "          [--expires SECS] [--tls13-only] [--hold SECS] [--json] [--keylog FILE]\n"
            + "       ue --help";
    private static final String HELP = "\n"
            + "ue: register to a P-CSCF over TS 33.203 Annex O TLS, stay registered, de-register.\n"
            + "\n"
            + "Flags:\n"
            + "  --pcscf HOST:PORT         P-CSCF candidate, tried in order (repeat for failover); required\n"
            + "  --server-name FQDN        name the P-CSCF certificate must carry (RFC 5922), sent as SNI\n"
            + "  --ca FILE.pem             trust anchors (repeatable); default: the Mozilla roots\n"
            + "  --pin SPKI_SHA256_BASE64  also require this SPKI pin (repeatable)\n"
            + "  --impi ID                 private identity; required\n"
            + "  --impu URI                public identity, sip:user@domain (repeatable); required\n"
            + "  --password-file FILE      read the Digest password from the first line of FILE;\n"
            + "                            `-` reads it from standard input\n"
            + "  --password SECRET         the password on the command line: visible in `ps` and the shell\n"
            + "                            history, so it warns; prefer --password-file\n"
            + "  --expires SECS            requested registration expiry (default 3600)\n"
            + "  --tls13-only              offer TLS 1.3 only (default: TLS 1.3 and 1.2)\n"
            + "  --hold SECS               stay registered SECS seconds, then de-register (default 0)\n"
            + "  --json                    one JSON object per event and line\n"
            + "  --keylog FILE             DEBUGGING ONLY: append the TLS secrets (NSS key log) to FILE so\n"
            + "                            Wireshark can decrypt a capture; anyone with FILE can read the\n"
            + "                            flows. Never enabled by SSLKEYLOGFILE\n"
            + "  -h, --help                this text\n"
            + "\n"
            + "JSON events: each line has \"event\" (connecting, key_log_enabled, tls_established,\n"
            + "certificate_rejected, tls_failed, register_now, registering, sip_received, challenged,\n"
            + "registered, keepalive_sent, pong_received, ping_answered, connection_lost, backoff,\n"
            + "registration_failed, deregistered, ...) and \"t_ms\"; see examples/ue.rs --help for fields.\n"
            + "\n"
            + "Exit codes:\n"
            + "  0  registered, held and de-registered\n"
            + "  1  registration rejected\n"
            + "  2  usage or configuration error\n"
            + "  3  P-CSCF certificate rejected\n"
            + "  4  other TLS failure\n"
            + "  5  connect failure or timeout";
    private static final String PASSWORD_WARNING =
            "ue: warning: --password puts the password in every `ps` listing and in the shell "
            + "history; use --password-file FILE, or --password-file - to read it from standard input";

    private static final class Args {
        final List<String> pcscf = new ArrayList<String>();
        final List<String> ca = new ArrayList<String>();
        final List<String> pins = new ArrayList<String>();
        final List<String> impus = new ArrayList<String>();
        String serverName;
        String impi;
        char[] password;
        int expires = 3600;
        long hold;
        boolean tls13Only;
        boolean json;
        boolean help;
        String keylog;
    }

    private final Args args;
    private final long start = System.nanoTime();
    private ImsTlsUe ue;
    private SansIoLink link;
    private MiniUa ua;
    private boolean registered;
    private boolean everRegistered;
    private boolean deregistered;
    private int stop;

    private Ue(Args args) {
        this.args = args;
    }

    public static void main(String[] argv) {
        System.exit(run(argv));
    }

    /** Runs the CLI; returns the exit code. */
    public static int run(String[] argv) {
        Args args = parse(argv);
        if (args == null) {
            System.err.println(USAGE);
            return EXIT_USAGE;
        }
        if (args.help) {
            System.out.println(USAGE + "\n" + HELP);
            return 0;
        }
        return new Ue(args).register();
    }

    private static Args parse(String[] argv) {
        Args a = new Args();
        try {
            for (int i = 0; i < argv.length; i++) {
                String flag = argv[i];
                if (flag.equals("--tls13-only")) {
                    a.tls13Only = true;
                    continue;
                }
                if (flag.equals("--json")) {
                    a.json = true;
                    continue;
                }
                if (flag.equals("--help") || flag.equals("-h")) {
                    a.help = true;
                    return a;
                }
                if (i + 1 >= argv.length) {
                    return null;
                }
                String value = argv[++i];
                switch (flag) {
                    case "--pcscf": a.pcscf.add(value); break;
                    case "--ca": a.ca.add(value); break;
                    case "--pin": a.pins.add(value); break;
                    case "--impu": a.impus.add(value); break;
                    case "--server-name": a.serverName = value; break;
                    case "--impi": a.impi = value; break;
                    case "--password":
                        System.err.println(PASSWORD_WARNING);
                        a.password = value.toCharArray();
                        break;
                    case "--password-file":
                        a.password = readPassword(value);
                        if (a.password == null) {
                            return null;
                        }
                        break;
                    case "--keylog": a.keylog = value; break;
                    case "--expires":
                        a.expires = Integer.parseInt(value);
                        if (a.expires <= 0) {
                            return null;
                        }
                        break;
                    case "--hold":
                        a.hold = Long.parseLong(value);
                        if (a.hold < 0) {
                            return null;
                        }
                        break;
                    default:
                        return null;
                }
            }
        } catch (NumberFormatException e) {
            return null;
        }
        boolean complete = !a.pcscf.isEmpty() && a.impi != null && !a.impus.isEmpty()
                && a.password != null;
        return complete ? a : null;
    }

    /** The first line of {@code path} ({@code -}: standard input), or null (said why). */
    private static char[] readPassword(String path) {
        try {
            InputStream in = path.equals("-") ? System.in : new FileInputStream(path);
            BufferedReader reader =
                    new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
            String line = reader.readLine();
            if (!path.equals("-")) {
                reader.close();
            }
            if (line == null || line.isEmpty()) {
                System.err.println("ue: --password-file " + path + ": no password on the first line");
                return null;
            }
            return line.toCharArray();
        } catch (IOException e) {
            System.err.println("ue: --password-file " + path + ": " + e.getMessage());
            return null;
        }
    }

    /** A configuration error names the field; exit 2. */
    private static Config configure(Args a) {
        Config.Builder b = Config.builder();
        for (String p : a.pcscf) {
            b.addPcscf(p);
        }
        for (String c : a.ca) {
            b.addTrustAnchorsFile(c);
        }
        for (String p : a.pins) {
            b.addSpkiPin(p);
        }
        if (a.serverName != null) {
            b.serverName(a.serverName);
        }
        if (a.tls13Only) {
            b.tlsVersions(Config.TlsVersions.TLS_1_3_ONLY);
        }
        if (a.keylog != null) {
            System.err.println("ue: warning: TLS secrets are appended to " + a.keylog
                    + ": whoever holds it can decrypt the captured flows");
            b.keyLogFile(a.keylog);
        }
        return b.build();
    }

    private int register() {
        try {
            ua = new MiniUa(args.impi, args.impus.get(0), args.password, args.expires);
        } catch (IllegalArgumentException e) {
            System.err.println("ue: --impu must be sip:user@domain");
            return EXIT_USAGE;
        }
        java.util.Arrays.fill(args.password, '\0');
        Config config;
        try {
            config = configure(args);
        } catch (ImsTlsException e) {
            Failure f = e.failure();
            System.err.println("ue: " + f.message()
                    + (f.configField().isEmpty() ? "" : " (field " + f.configField() + ")"));
            ua.wipe();
            return EXIT_USAGE;
        }
        try {
            link = null;
            ue = ImsTlsUe.create(config, System.nanoTime() / 1000000L);
            link = new SansIoLink(ue, null);
            ue.setLogSink((level, target, message) -> System.err.println(
                    "imstls " + LogLevel.of(level) + " " + target + ": " + message), LogLevel.WARN);
            try {
                ue.startRegistration(link.now(), args.impi, args.impus);
            } catch (ImsTlsException e) {
                System.err.println("ue: " + e.failure().message());
                return EXIT_USAGE;
            }
            link.drain(this::act);
            int code = runUntil(() -> registered, REGISTER_DEADLINE_MS);
            if (code == 0 && !registered) {
                System.err.println("ue: not registered after " + REGISTER_DEADLINE_MS / 1000 + " s");
                code = EXIT_CONNECT;
            }
            if (code == 0) {
                code = runUntil(() -> false, args.hold * 1000);
            }
            if (code == 0 && !registered) {
                System.err.println("ue: not registered when the hold ended");
                code = EXIT_CONNECT;
            }
            if (code == 0) {
                ue.deregister(link.now());
                link.drain(this::act);
                code = runUntil(() -> deregistered, DEREGISTER_DEADLINE_MS);
                if (code == 0 && !deregistered) {
                    System.err.println("ue: de-registration did not complete");
                    code = EXIT_CONNECT;
                }
            }
            return code;
        } catch (IOException | ImsTlsException e) {
            System.err.println("ue: " + e.getMessage());
            return EXIT_CONNECT;
        } finally {
            ua.wipe();
            try {
                if (link != null) {
                    link.close();
                }
            } catch (IOException e) {
                System.err.println("ue: " + e.getMessage());
            }
            if (ue != null) {
                ue.close();
            }
        }
    }

    private interface Condition {
        boolean holds();
    }

    /** Runs the link until {@code done} or {@code forMs} passed; 0 or the exit code decided. */
    private int runUntil(Condition done, long forMs) throws IOException {
        long deadline = link.now() + forMs;
        while (stop == 0 && !done.holds() && link.now() < deadline) {
            link.step(Math.min(200, Math.max(1, deadline - link.now())), this::act);
        }
        return stop;
    }

    /** The SIP stack's part. */
    private void act(Event e) {
        print(e);
        try {
            switch (e.kind()) {
                case REGISTER_NOW: {
                    RegisterReason reason = e.registerReason();
                    if (reason.startsNewRegistration()) {
                        ua.newRegistration(); // a new flow: a new registration
                    }
                    Binding binding = ue.binding();
                    if (binding != null) {
                        ua.setLocal(binding.localAddr());
                    }
                    ue.sendSip(link.now(), ua.register(reason == RegisterReason.DEREGISTER));
                    break;
                }
                case SIP_RECEIVED: {
                    MiniUa.Result r = ua.response(e.sipMessage());
                    // The answer belongs to the flow it arrived on; a late one of an old flow is
                    // refused (false) and simply dropped.
                    long flow = e.flow();
                    switch (r.outcome) {
                        case CHALLENGED: ue.registrationChallenged(link.now(), flow, r.stale); break;
                        case REGISTERED: ue.registrationSucceeded(link.now(), flow, r.expires, 0); break;
                        case DEREGISTERED: ue.registrationSucceeded(link.now(), flow, 0, 0); break;
                        case FAILED: ue.registrationFailed(link.now(), flow, r.status, r.retryAfter); break;
                        default: break;
                    }
                    break;
                }
                case REGISTERED:
                    registered = true;
                    everRegistered = true;
                    break;
                case CONNECTION_LOST:
                    registered = false;
                    break;
                case DEREGISTERED:
                    deregistered = true;
                    break;
                case REGISTRATION_FAILED:
                    if (!e.retrying()) {
                        stop = e.reason().equals("certificate") ? EXIT_CERTIFICATE
                                : e.reason().equals("tls") ? EXIT_TLS : EXIT_REJECTED;
                    }
                    break;
                case BACKING_OFF:
                    // Before the first registration a back-off means the P-CSCF is out of reach.
                    if (!everRegistered) {
                        stop = EXIT_CONNECT;
                    }
                    break;
                default:
                    break;
            }
        } catch (ImsTlsException x) {
            System.err.println("ue: " + x.getMessage());
            stop = EXIT_CONNECT;
        }
    }

    // ---- printing (never identities or secrets) -------------------------------------------

    private void print(Event e) {
        long tMs = (System.nanoTime() - start) / 1000000L;
        if (!args.json) {
            System.out.printf("%8d ms  %-22s %s%n", tMs, e.name(), e.detail());
            System.out.flush();
            return;
        }
        StringBuilder j = new StringBuilder("{\"event\":").append(json(e.name()))
                .append(",\"t_ms\":").append(tMs);
        Failure f = e.failure();
        switch (e.kind()) {
            case TLS_ESTABLISHED:
                field(j, "version", e.tlsVersion());
                field(j, "cipher_suite", e.cipherSuite());
                field(j, "group", e.kxGroup());
                j.append(",\"resumed\":").append(e.resumed());
                break;
            case CERTIFICATE_REJECTED:
            case TLS_FAILED:
                field(j, "alert", f == null ? "" : !f.alertSentName().isEmpty()
                        ? f.alertSentName() : f.alertReceivedName());
                field(j, "alert_sent", f == null ? "" : f.alertSentName());
                field(j, "alert_received", f == null ? "" : f.alertReceivedName());
                field(j, "reason", e.reason());
                field(j, "detail", e.detail());
                break;
            case REGISTER_NOW:
            case CONNECT_FAILED:
                field(j, "reason", e.reason());
                break;
            case REGISTERING:
                field(j, "kind", e.reason());
                break;
            case CHALLENGED:
                j.append(",\"stale\":").append(e.stale());
                break;
            case REGISTERED:
                j.append(",\"expires\":").append(e.expiresS());
                break;
            case CONNECTION_LOST:
                field(j, "reason", e.reason());
                j.append(",\"registered\":").append(e.wasRegistered());
                break;
            case BACKING_OFF:
                j.append(",\"attempt\":").append(e.attempt()).append(",\"delay_ms\":")
                        .append(e.delayMs());
                candidates(j, e);
                break;
            case REGISTRATION_FAILED:
                j.append(",\"status\":").append(e.sipStatus() == 0 ? "null"
                        : String.valueOf(e.sipStatus()));
                field(j, "reason", e.reason());
                j.append(",\"retrying\":").append(e.retrying());
                candidates(j, e);
                break;
            default:
                break;
        }
        field(j, "clause", e.clause());
        System.out.println(j.append('}'));
        System.out.flush();
    }

    /** {@code "candidates":[{"candidate":0,"target":..,"reason":..,"detail":..}, ...]} */
    private static void candidates(StringBuilder j, Event e) {
        j.append(",\"candidates\":[");
        String separator = "";
        for (CandidateFailure c : e.failedCandidates()) {
            j.append(separator).append("{\"candidate\":").append(c.candidate())
                    .append(",\"target\":").append(json(c.target()))
                    .append(",\"reason\":").append(json(c.reason()))
                    .append(",\"detail\":").append(json(c.detail())).append('}');
            separator = ",";
        }
        j.append(']');
    }

    private static void field(StringBuilder j, String key, String value) {
        j.append(",\"").append(key).append("\":")
                .append(value == null || value.isEmpty() ? "null" : json(value));
    }

    private static String json(String s) {
        StringBuilder out = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20) {
                out.append(String.format(java.util.Locale.ROOT, "\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.append('"').toString();
    }
}
