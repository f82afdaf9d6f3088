package org.imstls.test;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.InetSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import org.imstls.Binding;
import org.imstls.Config;
import org.imstls.CandidateFailure;
import org.imstls.ConnectError;
import org.imstls.Event;
import org.imstls.EventKind;
import org.imstls.Failure;
import org.imstls.ImsTls;
import org.imstls.ImsTlsDriver;
import org.imstls.ImsTlsException;
import org.imstls.ImsTlsUe;
import org.imstls.LogLevel;
import org.imstls.LogSink;
import org.imstls.RegisterReason;
import org.imstls.ResultCode;
import org.imstls.State;
import org.imstls.TransportClosure;
import org.imstls.example.MiniUa;
import org.imstls.example.SansIoLink;

/**
 * The Java API on a desktop JVM, against loopback P-CSCF simulators started by
 * {@code tests/jni.rs}, run with {@code -Xcheck:jni}. A plain runner (no JUnit: nothing is
 * fetched): every check counts; the last line is {@code passed=N failed=M}. A line
 * {@code @ctl kill} asks the Rust side to kill the good simulator's connections; it answers
 * {@code ok} on standard input.
 */
public final class JniTests {
    /** A bound on waiting for something to happen: a hang guard, not a timing assertion. */
    private static final long BOUND_MS = 20000;

    private static int passed;
    private static int failed;
    private static int cases;
    private static String current = "";
    private static final Map<String, String> OPTIONS = new HashMap<String, String>();
    private static BufferedReader control;

    private JniTests() {}

    public static void main(String[] argv) throws IOException {
        for (int i = 0; i + 1 < argv.length; i += 2) {
            OPTIONS.put(argv[i].replaceFirst("^--", ""), argv[i + 1]);
        }
        control = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));

        run("library_and_header_versions_match", JniTests::versions);
        run("result_codes_have_names_and_messages", JniTests::resultCodes);
        run("configuration_errors_name_the_field_at_fault", JniTests::configurationErrors);
        run("text_outside_the_bmp_crosses_jni_intact", JniTests::nonBmpText);
        run("arguments_are_checked_before_native_code", JniTests::argumentChecks);
        run("sans_io_registers_over_a_java_socket", JniTests::sansIoRegisters);
        run("sans_io_only_register_goes_first_on_a_new_flow", JniTests::registerFirst);
        run("sans_io_connection_loss_re_registers", JniTests::sansIoRecovers);
        run("sans_io_expired_certificate_is_an_event_with_reason_and_alert",
                JniTests::sansIoExpiredCertificate);
        run("sans_io_failover_lists_each_failed_candidate", JniTests::sansIoFailover);
        run("driver_registers_on_a_socket_java_created_and_handed_in",
                JniTests::driverExternalSocket);
        run("driver_managed_mode_registers_and_refuses_misuse", JniTests::driverManaged);
        run("a_name_that_does_not_resolve_is_connect_unresolved_in_both_modes",
                JniTests::unresolvedNames);
        run("sans_io_an_old_flows_answer_reported_late_is_refused", JniTests::sansIoStaleAnswer);
        run("driver_an_old_flows_answer_reported_late_is_refused", JniTests::driverStaleAnswer);
        run("driver_wrong_name_reports_expected_and_presented_names",
                JniTests::driverWrongName);
        run("log_sink_runs_on_the_calling_thread_and_busy_on_reentry", JniTests::logSinkThreads);
        run("a_throwing_log_sink_loses_only_its_record", JniTests::throwingLogSink);
        run("close_twice_is_harmless_and_use_after_close_throws", JniTests::useAfterClose);
        run("close_inside_the_log_sink_is_deferred_to_the_end_of_the_call",
                JniTests::closeInsideLogSink);
        run("close_from_another_thread_waits_for_the_running_call", JniTests::closeRacingRun);
        run("close_stops_a_run_blocked_on_another_thread_at_once", JniTests::closeStopsBlockedRun);
        run("close_racing_many_callers_never_crashes", JniTests::closeRacingCallers);

        System.out.println("cases=" + cases);
        System.out.println("passed=" + passed + " failed=" + failed);
        System.exit(failed == 0 ? 0 : 1);
    }

    // ---- the runner -------------------------------------------------------------------------

    private interface Body {
        void run() throws Exception;
    }

    private static void run(String name, Body body) {
        current = name;
        cases++;
        int before = failed;
        try {
            body.run();
        } catch (Throwable t) {
            failed++;
            System.out.println("FAIL " + name + ": threw " + t);
            for (StackTraceElement e : t.getStackTrace()) {
                System.out.println("    at " + e);
            }
        }
        System.out.println((failed == before ? "ok   " : "FAIL ") + name);
    }

    private static void check(boolean ok, String what) {
        if (ok) {
            passed++;
        } else {
            failed++;
            System.out.println("FAIL " + current + ": " + what);
        }
    }

    private static void checkEquals(Object expected, Object actual, String what) {
        check(expected == null ? actual == null : expected.equals(actual),
                what + ": expected <" + expected + ">, got <" + actual + ">");
    }

    /** The body throws {@code type}; returns it (or null after a failed check). */
    private static <T extends Throwable> T expect(Class<T> type, Body body, String what) {
        try {
            body.run();
        } catch (Throwable t) {
            check(type.isInstance(t), what + ": expected " + type.getSimpleName() + ", got " + t);
            return type.isInstance(t) ? type.cast(t) : null;
        }
        check(false, what + ": expected " + type.getSimpleName() + ", nothing thrown");
        return null;
    }

    /** The body throws an {@link ImsTlsException} with {@code code}. */
    private static Failure expectCode(int code, Body body, String what) {
        ImsTlsException e = expect(ImsTlsException.class, body, what);
        if (e == null) {
            return null;
        }
        checkEquals(ResultCode.name(code), ResultCode.name(e.result()), what);
        return e.failure();
    }

    private static String opt(String name) {
        String value = OPTIONS.get(name);
        if (value == null) {
            throw new IllegalStateException("--" + name + " was not given");
        }
        return value;
    }

    private static void killConnections() throws IOException {
        System.out.println("@ctl kill");
        System.out.flush();
        checkEquals("ok", control.readLine(), "the control channel answered");
    }

    private static Config config(String pcscf) {
        return Config.builder().addPcscf(pcscf).serverName(opt("server-name"))
                .addTrustAnchorsFile(opt("ca")).randomSeed(7).build();
    }

    private static MiniUa ua() {
        return new MiniUa(opt("impi"), opt("impu"), opt("password").toCharArray(), 3600);
    }

    private interface Condition {
        boolean holds();
    }

    // ---- the SIP stack, for either driving mode ------------------------------------------

    /** What the stack calls on the UE or driver. */
    private interface Inputs {
        void sendSip(byte[] message);
        /* Each returns false when the answer's flow is stale (nothing applied). */
        boolean challenged(long flow, boolean stale);
        boolean succeeded(long flow, int expires);
        boolean failed(long flow, int status, int retryAfter);
        Binding binding();
    }

    /** Records events and answers REGISTER_NOW and SIP responses, as a SIP stack would. */
    private static class Stack {
        final List<Event> events = new ArrayList<Event>();
        final MiniUa ua = ua();
        Inputs inputs;
        boolean registered;
        boolean deregistered;
        boolean stopped; // a registration failure that is not retried
        boolean holdAnswers; // a late stack: answers are kept, not reported
        int staleDropped;
        final List<Long> heldFlows = new ArrayList<Long>();
        final List<MiniUa.Result> heldAnswers = new ArrayList<MiniUa.Result>();

        /** Reports an answer that arrived on {@code flow}; false when imstls calls it stale. */
        boolean report(long flow, MiniUa.Result r) {
            switch (r.outcome) {
                case CHALLENGED: return inputs.challenged(flow, r.stale);
                case REGISTERED: return inputs.succeeded(flow, r.expires);
                case DEREGISTERED: return inputs.succeeded(flow, 0);
                case FAILED: return inputs.failed(flow, r.status, r.retryAfter);
                default: return true;
            }
        }

        void react(Event e) {
            events.add(e);
            switch (e.kind()) {
                case REGISTER_NOW: {
                    if (e.registerReason().startsNewRegistration()) {
                        ua.newRegistration();
                    }
                    Binding b = inputs.binding();
                    if (b != null) {
                        ua.setLocal(b.localAddr());
                    }
                    inputs.sendSip(ua.register(e.registerReason() == RegisterReason.DEREGISTER));
                    break;
                }
                case SIP_RECEIVED: {
                    MiniUa.Result r = ua.response(e.sipMessage());
                    if (holdAnswers) {
                        heldFlows.add(e.flow());
                        heldAnswers.add(r);
                    } else {
                        // False: the flow ended in the same read; the answer is dropped.
                        staleDropped += report(e.flow(), r) ? 0 : 1;
                    }
                    break;
                }
                case REGISTERED:
                    registered = true;
                    break;
                case CONNECTION_LOST:
                    registered = false;
                    break;
                case DEREGISTERED:
                    registered = false;
                    deregistered = true;
                    break;
                case REGISTRATION_FAILED:
                    stopped |= !e.retrying();
                    break;
                default:
                    break;
            }
        }

        int count(EventKind kind) {
            int n = 0;
            for (Event e : events) {
                n += e.kind() == kind ? 1 : 0;
            }
            return n;
        }

        Event first(EventKind kind) {
            for (Event e : events) {
                if (e.kind() == kind) {
                    return e;
                }
            }
            return null;
        }

        /** The event names so far, for a failure message. */
        String trail() {
            StringBuilder b = new StringBuilder();
            for (Event e : events) {
                b.append(e.name()).append(e.reason().isEmpty() ? "" : "(" + e.reason() + ")")
                        .append(' ');
            }
            return b.toString();
        }

        /** A flow proves healthy with its first pong (RFC 5626 section 4.5); only then is a
         * loss retried at once instead of after a back-off. */
        boolean sawRegisterNow(RegisterReason reason) {
            for (Event e : events) {
                if (e.kind() == EventKind.REGISTER_NOW && e.registerReason() == reason) {
                    return true;
                }
            }
            return false;
        }
    }

    /** The sans-IO UE on a Java socket ({@link SansIoLink}). */
    private static final class SansIoStack extends Stack implements AutoCloseable {
        final ImsTlsUe ue;
        final SansIoLink link;

        SansIoStack(Config config) throws IOException {
            ue = ImsTlsUe.create(config, System.nanoTime() / 1000000L);
            link = new SansIoLink(ue, null);
            inputs = new Inputs() {
                public void sendSip(byte[] m) { ue.sendSip(link.now(), m); }
                public boolean challenged(long flow, boolean stale) {
                    return ue.registrationChallenged(link.now(), flow, stale);
                }
                public boolean succeeded(long flow, int expires) {
                    return ue.registrationSucceeded(link.now(), flow, expires, 0);
                }
                public boolean failed(long flow, int s, int r) {
                    return ue.registrationFailed(link.now(), flow, s, r);
                }
                public Binding binding() { return ue.binding(); }
            };
        }

        void start() throws IOException {
            ue.startRegistration(link.now(), opt("impi"), opt("impu"));
            link.drain(this::react);
        }

        boolean until(Condition condition) throws IOException {
            long end = System.nanoTime() / 1000000L + BOUND_MS;
            while (!condition.holds() && System.nanoTime() / 1000000L < end) {
                link.step(100, this::react);
            }
            if (!condition.holds()) {
                System.out.println("    events: " + trail());
            }
            return condition.holds();
        }

        @Override
        public void close() throws IOException {
            link.close();
            ue.close();
            ua.wipe();
        }
    }

    /** The managed driver, optionally with sockets Java creates and hands in. */
    private static final class DriverStack extends Stack implements AutoCloseable {
        final ImsTlsDriver driver;
        final boolean external;
        final List<SocketChannel> channels = new ArrayList<SocketChannel>();
        Runnable beforeAdopt;

        DriverStack(Config config, boolean external) {
            driver = ImsTlsDriver.create(config);
            this.external = external;
            if (external) {
                driver.setConnectMode(ImsTlsDriver.ConnectMode.EXTERNAL);
            }
            inputs = new Inputs() {
                public void sendSip(byte[] m) { driver.sendSip(m); }
                public boolean challenged(long flow, boolean stale) {
                    return driver.registrationChallenged(flow, stale);
                }
                public boolean succeeded(long flow, int expires) {
                    return driver.registrationSucceeded(flow, expires, 0);
                }
                public boolean failed(long flow, int s, int r) {
                    return driver.registrationFailed(flow, s, r);
                }
                public Binding binding() { return driver.binding(); }
            };
        }

        @Override
        void react(Event e) {
            super.react(e);
            if (external && e.kind() == EventKind.CONNECTING) {
                if (beforeAdopt != null) {
                    beforeAdopt.run();
                }
                adopt(e);
            }
        }

        /** What an Android app does with Network.bindSocket: its own socket, handed in. */
        private void adopt(Event e) {
            try {
                SocketChannel channel = SocketChannel.open();
                channel.connect(new InetSocketAddress(e.host(), e.port()));
                channels.add(channel);
                driver.adoptFd(e.flow(), DesktopSockets.fdOf(channel),
                        ImsTlsDriver.FdOwnership.BORROW);
            } catch (IOException x) {
                driver.connectFailed(e.flow(), ConnectError.OTHER, x.getClass().getSimpleName());
            }
        }

        boolean until(Condition condition) {
            long end = System.nanoTime() / 1000000L + BOUND_MS;
            while (!condition.holds() && System.nanoTime() / 1000000L < end) {
                driver.run(100);
                Event e;
                while ((e = driver.pollEvent()) != null) {
                    react(e);
                }
            }
            if (!condition.holds()) {
                System.out.println("    events: " + trail());
            }
            return condition.holds();
        }

        @Override
        public void close() throws IOException {
            driver.close();
            for (SocketChannel c : channels) {
                c.close(); // BORROW: ours to close, after the driver shut the connection down
            }
            ua.wipe();
        }
    }

    // ---- cases ------------------------------------------------------------------------------

    private static void versions() {
        checkEquals(opt("version"), ImsTls.version(), "imstls_version()");
        checkEquals(ImsTls.version(), ImsTls.headerVersion(), "the glue's header version");
        check(Arrays.asList("aws-lc-rs", "ring").contains(ImsTls.cryptoProvider()),
                "crypto provider " + ImsTls.cryptoProvider());
    }

    private static void resultCodes() {
        checkEquals("BUSY", ResultCode.name(ResultCode.BUSY), "name of 300");
        check(!ResultCode.message(ResultCode.BUSY).isEmpty(), "BUSY has a message");
        checkEquals("unknown result code", ResultCode.message(12345), "an unknown code");
        checkEquals("UNKNOWN(12345)", ResultCode.name(12345), "an unknown code's name");
    }

    private static void configurationErrors() {
        Failure f = expectCode(ResultCode.INVALID_CONFIG, () -> Config.builder().build(),
                "a configuration without a P-CSCF");
        check(f != null && !f.configField().isEmpty(), "the field is named: " + f);
        f = expectCode(ResultCode.INVALID_CONFIG,
                () -> Config.builder().addPcscf("bad host:0").build(), "a malformed candidate");
        checkEquals("pcscf", f == null ? null : f.configField(), "field of a bad candidate");
        f = expectCode(ResultCode.CONFIG_FILE, () -> Config.builder().addPcscf("127.0.0.1:9")
                .addTrustAnchorsFile("/nonexistent/root.pem").build(), "a missing CA file");
        check(f != null && !f.configField().isEmpty(), "the file's field is named: " + f);
        f = expectCode(ResultCode.INVALID_CONFIG, () -> Config.builder().addPcscf("127.0.0.1:9")
                .kxGroups("X25519").build(), "key exchange without P-256");
        checkEquals("kx_groups", f == null ? null : f.configField(), "field of kx groups");
        f = expectCode(ResultCode.INVALID_CONFIG, () -> Config.builder().addPcscf("127.0.0.1:9")
                .conformanceLogEntries(5000).build(), "a conformance log over 4096 entries");
        checkEquals("conformance_log_entries", f == null ? null : f.configField(),
                "field of the conformance log bound");
        f = expectCode(ResultCode.INVALID_CONFIG, () -> Config.builder().addPcscf("127.0.0.1:9")
                .queueLimits(0, 0, 1000).build(), "an event queue cap under two SIP messages");
        checkEquals("max_driver_event_bytes", f == null ? null : f.configField(),
                "field of the event queue cap");
        Config capped = Config.builder().addPcscf("127.0.0.1:9")
                .queueLimits(256 * 1024, 512 * 1024, 0).build();
        checkEquals(1, capped.candidateCount(), "a UE with its own queue caps");
        Config noLog = Config.builder().addPcscf("127.0.0.1:9").conformanceLogEntries(0).build();
        checkEquals(1, noLog.candidateCount(), "a UE without conformance log");
        Config good = config(opt("pcscf"));
        checkEquals(1, good.candidateCount(), "candidate count");
    }

    private static void nonBmpText() {
        // A candidate with a character outside the BMP: Java's modified UTF-8 would encode it
        // as two 3-byte surrogates, which imstls rejects as invalid UTF-8. The glue passes real
        // UTF-8, so imstls sees (and names) the character itself; its message comes back to
        // Java as a proper surrogate pair.
        String host = "p\uD83D\uDE00.ims.test";
        Failure f = expectCode(ResultCode.INVALID_CONFIG,
                () -> Config.builder().addPcscf(host + ":bad").build(), "an emoji candidate");
        check(f != null && f.message().contains("\uD83D\uDE00"),
                "the message keeps the character: " + (f == null ? null : f.message()));
        checkEquals(ResultCode.name(ResultCode.INVALID_CONFIG),
                ResultCode.name(f == null ? -1 : f.result()), "not INVALID_UTF8");
    }

    private static void argumentChecks() throws IOException {
        expect(IllegalArgumentException.class, () -> Config.builder().addPcscf("a\0b"),
                "a NUL inside a string");
        expect(IllegalArgumentException.class, () -> Config.builder().sessionLifetimeMs(-1),
                "a negative duration");
        expect(NullPointerException.class, () -> Config.builder().tlsVersions(null),
                "a null enum");
        try (ImsTlsUe ue = ImsTlsUe.create(config(opt("pcscf")), 0)) {
            expect(IllegalArgumentException.class, () -> ue.handleTimeout(-1), "negative time");
            expect(NullPointerException.class,
                    () -> ue.startRegistration(1, null, opt("impu")), "a null IMPI");
            expect(NullPointerException.class,
                    () -> ue.startRegistration(1, opt("impi"), (String) null), "a null IMPU");
            expect(IndexOutOfBoundsException.class,
                    () -> ue.receive(1, 1, new byte[4], 2, 3), "bytes beyond the array");
            expect(IllegalArgumentException.class,
                    () -> ue.registrationSucceeded(1, 1, -1, 0), "a negative expiry");
            expectCode(ResultCode.INVALID_IDENTITY,
                    () -> ue.startRegistration(1, opt("impi"), "mailto:alice@ims.test"),
                    "an IMPU that is no sip:/tel: URI");
            expectCode(ResultCode.INVALID_IDENTITY,
                    () -> ue.startRegistration(1, opt("impi"), Collections.<String>emptyList()),
                    "no IMPU");
            expectCode(ResultCode.BAD_SIP_MESSAGE, () -> ue.sendSip(1, "x".getBytes(
                    StandardCharsets.UTF_8)), "bytes that are no SIP message");
            expectCode(ResultCode.WRONG_STATE, () -> ue.sendSip(1, ua().register(false)),
                    "a REGISTER before any flow");
            checkEquals(State.IDLE, ue.state(), "state after refused calls");
            checkEquals(-1L, ue.nextTimeoutMs(), "no timer when idle");
            checkEquals(0L, ue.currentFlow(), "no flow when idle");
            check(ue.binding() == null, "no binding before TLS");
            Failure last = ue.lastError();
            checkEquals("WRONG_STATE", last == null ? null : ResultCode.name(last.result()),
                    "the last error is the last failed call");
        }
    }

    private static void sansIoRegisters() throws IOException {
        try (SansIoStack s = new SansIoStack(config(opt("pcscf")))) {
            s.start();
            check(s.until(() -> s.registered), "registered");
            Event tls = s.first(EventKind.TLS_ESTABLISHED);
            checkEquals("TLSv1.3", tls == null ? null : tls.tlsVersion(), "TLS version");
            check(tls != null && !tls.cipherSuite().isEmpty(), "a cipher suite");
            checkEquals(1, s.count(EventKind.CHALLENGED), "one Digest challenge");
            Event reg = s.first(EventKind.REGISTERED);
            checkEquals(3600L, reg == null ? null : reg.expiresS(), "granted expiry");
            check(reg != null && reg.clause().startsWith("TS 24.229"), "clause " + reg);
            checkEquals(State.REGISTERED, s.ue.state(), "state");
            Binding b = s.ue.binding();
            check(b != null && b.registered(), "binding says registered");
            checkEquals(opt("impi"), b == null ? null : b.impi(), "binding IMPI");
            checkEquals(Collections.singletonList(opt("impu")), b == null ? null : b.impus(),
                    "binding IMPUs");
            checkEquals(opt("pcscf"), b == null ? null : b.remoteAddr(), "binding remote address");
            check(b != null && b.localAddr().startsWith("127.0.0.1:"), "binding local address");
            check(b != null && b.peerSans().size() > 0, "peer SANs " + (b == null ? null : b.peerSans()));
            check(b != null && !b.toString().contains(opt("impi")), "binding text has no IMPI");
            checkEquals(s.link.flow(), s.ue.currentFlow(), "current flow");
            check(s.ue.nextTimeoutMs() > 0, "a timer runs when registered");

            s.ue.deregister(s.link.now());
            s.link.drain(s::react);
            check(s.until(() -> s.deregistered), "de-registered");
            check(s.sawRegisterNow(RegisterReason.DEREGISTER), "REGISTER_NOW deregister");
        }
    }

    private static void registerFirst() throws IOException {
        try (SansIoStack s = new SansIoStack(config(opt("pcscf")))) {
            // Stop before answering the first REGISTER_NOW.
            ImsTlsUe ue = s.ue;
            ue.startRegistration(s.link.now(), opt("impi"), opt("impu"));
            final Event[] due = new Event[1];
            long end = System.nanoTime() / 1000000L + BOUND_MS;
            s.link.drain(e -> due[0] = e.kind() == EventKind.REGISTER_NOW ? e : due[0]);
            while (due[0] == null && System.nanoTime() / 1000000L < end) {
                s.link.step(100, e -> due[0] = e.kind() == EventKind.REGISTER_NOW ? e : due[0]);
            }
            check(due[0] != null, "REGISTER_NOW arrived");
            checkEquals(RegisterReason.INITIAL, due[0] == null ? null : due[0].registerReason(),
                    "first REGISTER_NOW reason");
            byte[] invite = ("INVITE sip:bob@ims.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5061;"
                    + "branch=z9hG4bKx\r\nMax-Forwards: 70\r\nFrom: <sip:alice@ims.test>;tag=1\r\n"
                    + "To: <sip:bob@ims.test>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
                    + "Content-Length: 0\r\n\r\n").getBytes(StandardCharsets.UTF_8);
            Failure f = expectCode(ResultCode.REGISTER_FIRST, () -> ue.sendSip(s.link.now(), invite),
                    "O.4.2: an INVITE before REGISTER");
            check(f != null && !f.message().isEmpty(), "the refusal explains itself");
            expectCode(ResultCode.BAD_SIP_MESSAGE,
                    () -> ue.sendSip(s.link.now(), "not SIP".getBytes(StandardCharsets.UTF_8)),
                    "bytes that are no SIP message");
            byte[] smuggle = ("REGISTER sip:ims.test SIP/2.0\r\nCSeq: 1 REGISTER\r\n"
                    + "Content-Length: 0\r\n\n").getBytes(StandardCharsets.UTF_8);
            byte[] smuggled = new byte[smuggle.length + invite.length];
            System.arraycopy(smuggle, 0, smuggled, 0, smuggle.length);
            System.arraycopy(invite, 0, smuggled, smuggle.length, invite.length);
            Failure lf = expectCode(ResultCode.BAD_SIP_MESSAGE, () -> ue.sendSip(s.link.now(), smuggled),
                    "a bare LF cannot hide an INVITE behind a REGISTER");
            check(lf != null && lf.message().contains("bare LF"), "the refusal names the bare LF");
            s.ua.newRegistration();
            ue.sendSip(s.link.now(), s.ua.register(false));
            s.link.drain(s::react);
            check(s.until(() -> s.registered), "the REGISTER then goes and registers");
        }
    }

    private static void sansIoRecovers() throws IOException {
        try (SansIoStack s = new SansIoStack(config(opt("pcscf")))) {
            s.start();
            check(s.until(() -> s.registered), "registered");
            long firstFlow = s.ue.currentFlow();
            // A flow proves healthy with its first pong (RFC 5626 section 4.5): only then is
            // its loss retried at once rather than after a back-off.
            check(s.until(() -> s.count(EventKind.PONG_RECEIVED) > 0), "the first pong");

            killConnections();
            check(s.until(() -> s.count(EventKind.CONNECTION_LOST) > 0), "the loss is seen");
            Event lost = s.first(EventKind.CONNECTION_LOST);
            check(lost != null && lost.wasRegistered(), "lost while registered");
            check(lost != null && lost.failure() != null
                    && lost.failure().result() == ResultCode.CONNECTION_LOST, "loss failure");
            check(s.until(() -> s.registered), "re-registered (O.4.1)");
            check(s.sawRegisterNow(RegisterReason.RECOVERY), "REGISTER_NOW recovery");
            check(s.ue.currentFlow() > firstFlow, "on a new flow");

            s.ue.networkChanged(s.link.now());
            s.registered = false;
            s.link.drain(s::react);
            check(s.until(() -> s.registered), "re-registered after a network change");
            check(s.sawRegisterNow(RegisterReason.NETWORK_CHANGED), "REGISTER_NOW network_changed");

            // Doze: the app sleeps through its deadlines. When woken it first reads what the
            // socket holds, then fires the timers (SansIoLink.step does both, in that order),
            // and the engine catches up -- here the refresh due 600 s before expiry.
            int pongs = s.count(EventKind.PONG_RECEIVED);
            check(s.until(() -> s.count(EventKind.PONG_RECEIVED) > pongs), "the first pong");
            long refreshesBefore = countRefreshes(s);
            s.link.skipClock(3300 * 1000L);
            s.link.step(0, s::react);
            check(s.until(() -> countRefreshes(s) > refreshesBefore && s.registered),
                    "a late wake-up refreshes the registration");
            check(s.sawRegisterNow(RegisterReason.REFRESH), "REGISTER_NOW refresh");
            checkEquals(State.REGISTERED, s.ue.state(), "still registered after catching up");

            // A P-CSCF that stops reading: the app's cap on its own write buffer fails the
            // flow, and recovery backs off (an overloaded flow never counts as proven).
            long flow = s.ue.currentFlow();
            int losses = s.count(EventKind.CONNECTION_LOST);
            s.ue.peerNotReading(s.link.now(), flow, 2L << 20);
            s.link.drain(s::react);
            Event overload = null;
            for (Event e : s.events) {
                overload = e.kind() == EventKind.CONNECTION_LOST ? e : overload;
            }
            checkEquals(losses + 1, s.count(EventKind.CONNECTION_LOST), "the flow is lost");
            checkEquals("peer_not_reading", overload == null ? null : overload.reason(),
                    "loss reason");
            checkEquals(State.BACKING_OFF, s.ue.state(), "an overload backs off");
            expectCode(ResultCode.UNKNOWN_FLOW, () -> s.ue.peerNotReading(s.link.now(), flow, 1),
                    "the lost flow takes no more input");
        }
    }

    private static long countRefreshes(Stack s) {
        long n = 0;
        for (Event e : s.events) {
            n += e.kind() == EventKind.REGISTER_NOW && e.registerReason() == RegisterReason.REFRESH
                    ? 1 : 0;
        }
        return n;
    }

    private static void sansIoExpiredCertificate() throws IOException {
        try (SansIoStack s = new SansIoStack(config(opt("expired")))) {
            s.start();
            check(s.until(() -> s.stopped), "the registration failed for good");
            Event rejected = s.first(EventKind.CERTIFICATE_REJECTED);
            check(rejected != null, "a certificate_rejected event");
            if (rejected != null) {
                checkEquals("expired", rejected.reason(), "event reason");
                Failure f = rejected.failure();
                check(f != null, "the event carries the failure");
                if (f != null) {
                    checkEquals("CERTIFICATE_REJECTED", ResultCode.name(f.result()), "result");
                    checkEquals("expired", f.certificateFailure(), "certificate reason");
                    checkEquals(45, f.alertSent(), "alert number sent");
                    checkEquals("certificate_expired", f.alertSentName(), "alert sent");
                    checkEquals("certificate", f.tlsFailure(), "TLS failure kind");
                }
            }
            Event failedEvent = s.first(EventKind.REGISTRATION_FAILED);
            checkEquals("certificate", failedEvent == null ? null : failedEvent.reason(),
                    "registration_failed reason");
            checkEquals(State.CLOSED, s.ue.state(), "no automatic retry (O.3.1.2)");
            Failure last = s.ue.lastError();
            checkEquals("expired", last == null ? null : last.certificateFailure(),
                    "lastError keeps the certificate detail");
            check(s.count(EventKind.REGISTERED) == 0, "never registered");
        }
    }

    private static void sansIoFailover() throws IOException {
        String refused = "127.0.0.1:1";
        Config config = Config.builder().addPcscf(refused).addPcscf(opt("expired"))
                .serverName(opt("server-name")).addTrustAnchorsFile(opt("ca")).randomSeed(7)
                .build();
        try (SansIoStack s = new SansIoStack(config)) {
            s.start();
            check(s.until(() -> s.stopped), "the registration failed for good");
            checkEquals(2, s.count(EventKind.CONNECTING), "both candidates tried");
            Event failedEvent = s.first(EventKind.REGISTRATION_FAILED);
            check(failedEvent != null, "a registration_failed event");
            if (failedEvent != null) {
                List<CandidateFailure> list = failedEvent.failedCandidates();
                checkEquals(2, list.size(), "one entry per candidate");
                if (list.size() == 2) {
                    checkEquals(0L, list.get(0).candidate(), "first index");
                    checkEquals(refused, list.get(0).target(), "first target");
                    checkEquals("connect_refused", list.get(0).reason(), "first reason");
                    checkEquals(1L, list.get(1).candidate(), "second index");
                    checkEquals(opt("expired"), list.get(1).target(), "second target");
                    checkEquals("expired", list.get(1).reason(), "second reason");
                    check(list.get(1).detail().contains("certificate_expired"),
                            "the detail names the alert: " + list.get(1).detail());
                    check(list.get(0).flow() != list.get(1).flow(), "one flow each");
                }
            }
            Event connecting = s.first(EventKind.CONNECTING);
            check(connecting != null && connecting.failedCandidates().isEmpty(),
                    "other events list none");
        }
    }

    private static void driverExternalSocket() throws IOException {
        try (DriverStack s = new DriverStack(config(opt("pcscf")), true)) {
            final boolean[] probed = new boolean[1];
            s.beforeAdopt = () -> {
                if (probed[0]) {
                    return;
                }
                probed[0] = true;
                Event connecting = s.first(EventKind.CONNECTING);
                long flow = connecting.flow();
                expectCode(ResultCode.UNKNOWN_FLOW, () -> s.driver.adoptFd(flow + 100, 0,
                        ImsTlsDriver.FdOwnership.BORROW), "a flow that waits for no socket");
                expectCode(ResultCode.INVALID_ARGUMENT, () -> s.driver.adoptFd(flow, -1,
                        ImsTlsDriver.FdOwnership.BORROW), "a descriptor that is no socket");
            };
            s.driver.startRegistration(opt("impi"), opt("impu"));
            check(s.until(() -> s.registered), "registered on our socket");
            Event connecting = s.first(EventKind.CONNECTING);
            checkEquals(opt("pcscf"), connecting == null ? null
                    : connecting.host() + ":" + connecting.port(), "CONNECTING names the P-CSCF");
            checkEquals(1, s.channels.size(), "one socket created by Java");
            check(s.driver.fd() >= 0, "the driver has a descriptor");
            check(s.driver.fd() != DesktopSockets.fdOf(s.channels.get(0)),
                    "BORROW: the driver works on a duplicate");
            check(s.until(() -> s.count(EventKind.PONG_RECEIVED) > 0), "the first pong");
            Binding b = s.driver.binding();
            // A JDK SocketChannel is dual-stack: the peer reads as ::ffff:127.0.0.1.
            String remote = b == null ? "" : b.remoteAddr();
            check(remote.equals(opt("pcscf")) || remote.equals("[::ffff:" + opt("pcscf")
                    .replace(":", "]:")), "binding remote address " + remote);

            killConnections();
            check(s.until(() -> s.count(EventKind.CONNECTION_LOST) > 0), "the loss is seen");
            check(s.until(() -> s.registered), "re-registered on a second socket");
            checkEquals(2, s.channels.size(), "a second socket handed in");
            check(s.channels.get(0).isOpen(), "BORROW: the first socket is still ours to close");

            s.driver.deregister();
            check(s.until(() -> s.deregistered), "de-registered");
        }
    }

    /** {@code .invalid} never resolves (RFC 6761 §6.4): its own reason, not "unreachable". */
    private static void unresolvedNames() throws IOException {
        String unresolvable = "nonexistent.invalid:5061";
        try (SansIoStack s = new SansIoStack(config(unresolvable))) {
            s.start();
            check(s.until(() -> s.count(EventKind.BACKING_OFF) >= 1), "sans-IO backs off");
            checkUnresolved(s.first(EventKind.BACKING_OFF), "sans-IO (SansIoLink)");
        }
        try (DriverStack s = new DriverStack(config(unresolvable), false)) {
            s.driver.setConnectionAttemptDelayMs(250);
            s.driver.startRegistration(opt("impi"), opt("impu"));
            check(s.driver.fd() >= 0, "a descriptor to wait on while the name resolves");
            check(s.until(() -> s.count(EventKind.BACKING_OFF) >= 1), "the driver backs off");
            checkUnresolved(s.first(EventKind.BACKING_OFF), "managed driver");
        }
    }

    private static void checkUnresolved(Event backoff, String who) {
        check(backoff != null, who + ": a backing_off event");
        if (backoff == null) {
            return;
        }
        List<CandidateFailure> list = backoff.failedCandidates();
        checkEquals(1, list.size(), who + ": one failed candidate");
        if (list.size() == 1) {
            checkEquals("connect_unresolved", list.get(0).reason(), who + ": its reason");
        }
    }

    private static void driverManaged() throws IOException {
        try (DriverStack s = new DriverStack(config(opt("pcscf")), false)) {
            expectCode(ResultCode.WRONG_MODE,
                    () -> s.driver.adoptFd(1, 0, ImsTlsDriver.FdOwnership.BORROW),
                    "adoptFd in managed mode");
            expectCode(ResultCode.WRONG_STATE, () -> s.driver.sendSip(s.ua.register(false)),
                    "a REGISTER before any flow");
            checkEquals(-1, s.driver.fd(), "no descriptor when idle");
            checkEquals(-1L, s.driver.timeoutMs(), "no timer when idle");
            s.driver.startRegistration(opt("impi"), opt("impu"));
            check(s.until(() -> s.registered), "registered");
            check(s.driver.fd() >= 0, "a descriptor once connected");
            check((s.driver.interest() & ImsTlsDriver.INTEREST_READABLE) != 0, "reads wanted");
            check(s.driver.timeoutMs() >= 0, "a timer runs");
            s.driver.process(); // harmless at any time
            checkEquals(State.REGISTERED, s.driver.state(), "state");
            s.driver.rekey(); // TLS 1.3: a KeyUpdate
            check(s.until(() -> s.count(EventKind.REKEYED) > 0), "rekeyed");
            checkEquals("key_update", s.first(EventKind.REKEYED).reason(), "TLS 1.3 KeyUpdate");
        }
    }

    /**
     * O.4.1 (issue 12 section 3): the old flow's 401, and a 200 or 403 claimed for it, reported
     * after a new procedure started, are refused (false) and change nothing; the new flow's
     * own answer completes the registration.
     */
    private static void staleAnswerChecks(Stack s, java.util.function.Supplier<State> state) {
        check(s.heldFlows.size() == 2 && !s.heldFlows.get(0).equals(s.heldFlows.get(1)),
                "two answers on two flows: " + s.heldFlows);
        checkEquals(State.REGISTERING, state.get(), "the new procedure waits for its answer");
        long old = s.heldFlows.get(0);
        check(!s.report(old, s.heldAnswers.get(0)), "the old flow's 401 is refused as stale");
        check(!s.inputs.succeeded(old, 600), "a 200 for the old flow is refused as stale");
        check(!s.inputs.failed(old, 403, 0), "a 403 for the old flow is refused as stale");
        checkEquals(State.REGISTERING, state.get(), "nothing was applied");
        checkEquals("STALE_REPORT", ResultCode.name(ResultCode.STALE_REPORT), "the code's name");
        s.holdAnswers = false;
        check(s.report(s.heldFlows.get(1), s.heldAnswers.get(1)), "the new flow's 401 applies");
    }

    private static void sansIoStaleAnswer() throws IOException {
        try (SansIoStack s = new SansIoStack(config(opt("pcscf")))) {
            s.holdAnswers = true;
            s.start();
            check(s.until(() -> s.heldAnswers.size() >= 1), "the first flow's answer arrived");
            s.start();
            check(s.until(() -> s.heldAnswers.size() >= 2), "the second flow's answer arrived");
            staleAnswerChecks(s, s.ue::state);
            check(s.until(() -> s.registered), "registered on the new flow");
        }
    }

    private static void driverStaleAnswer() throws IOException {
        try (DriverStack s = new DriverStack(config(opt("pcscf")), false)) {
            s.holdAnswers = true;
            s.driver.startRegistration(opt("impi"), opt("impu"));
            check(s.until(() -> s.heldAnswers.size() >= 1), "the first flow's answer arrived");
            s.driver.startRegistration(opt("impi"), opt("impu"));
            check(s.until(() -> s.heldAnswers.size() >= 2), "the second flow's answer arrived");
            staleAnswerChecks(s, s.driver::state);
            check(s.until(() -> s.registered), "registered on the new flow");
        }
    }

    private static void driverWrongName() throws IOException {
        try (DriverStack s = new DriverStack(config(opt("wrong-name")), false)) {
            s.driver.startRegistration(opt("impi"), opt("impu"));
            check(s.until(() -> s.stopped), "the registration failed for good");
            Event rejected = s.first(EventKind.CERTIFICATE_REJECTED);
            Failure f = rejected == null ? null : rejected.failure();
            checkEquals("name_mismatch", rejected == null ? null : rejected.reason(), "reason");
            checkEquals(opt("server-name"), f == null ? null : f.expectedName(), "expected name");
            check(f != null && !f.presentedNames().isEmpty()
                    && !f.presentedNames().contains(opt("server-name")),
                    "presented names " + (f == null ? null : f.presentedNames()));
            checkEquals("bad_certificate", f == null ? null : f.alertSentName(), "alert sent");
            Failure last = s.driver.lastError();
            checkEquals("name_mismatch", last == null ? null : last.certificateFailure(),
                    "driver lastError");
            checkEquals(State.CLOSED, s.driver.state(), "stopped");
        }
    }

    private static void logSinkThreads() throws IOException {
        try (SansIoStack s = new SansIoStack(config(opt("pcscf")))) {
            final Thread caller = Thread.currentThread();
            final List<String> records = new ArrayList<String>();
            final AtomicInteger foreign = new AtomicInteger();
            final AtomicReference<String> reentry = new AtomicReference<String>();
            s.ue.setLogSink((level, target, message) -> {
                if (Thread.currentThread() != caller) {
                    foreign.incrementAndGet();
                }
                records.add(LogLevel.of(level) + " " + target + ": " + message);
                if (reentry.get() == null) {
                    try {
                        s.ue.state();
                        reentry.set("no exception");
                    } catch (ImsTlsException e) {
                        reentry.set(ResultCode.name(e.result()));
                    }
                }
            }, LogLevel.TRACE);
            s.start();
            check(s.until(() -> s.registered), "registered with a log sink");
            check(!records.isEmpty(), "records arrived");
            checkEquals(0, foreign.get(), "records on other threads");
            checkEquals("BUSY", reentry.get(), "a call back into the UE from its sink");
            String secret = opt("password");
            String user = opt("impi").split("@")[0];
            boolean clean = true;
            for (String r : records) {
                clean &= !r.contains(secret) && !r.contains(user);
            }
            check(clean, "no password or identity in " + records.size() + " records");
            int before = records.size();
            s.ue.setLogSink(null, LogLevel.OFF);
            s.ue.handleTimeout(s.link.now());
            s.link.drain(s::react);
            checkEquals(before, records.size(), "no records after the sink is removed");
        }
    }

    private static void throwingLogSink() throws IOException {
        try (SansIoStack s = new SansIoStack(config(opt("pcscf")))) {
            final AtomicInteger calls = new AtomicInteger();
            s.ue.setLogSink((level, target, message) -> {
                calls.incrementAndGet();
                throw new IllegalStateException("a sink bug");
            }, LogLevel.DEBUG);
            s.start();
            check(s.until(() -> s.registered), "registered despite the sink throwing");
            check(calls.get() > 0, "the sink was called");
        }
    }

    private static void useAfterClose() throws IOException {
        ImsTlsUe ue = ImsTlsUe.create(config(opt("pcscf")), 0);
        ue.close();
        ue.close();
        check(ue.isClosed(), "closed");
        List<Body> ueCalls = Arrays.<Body>asList(
                () -> ue.startRegistration(1, opt("impi"), opt("impu")),
                () -> ue.sendSip(1, new byte[1]),
                () -> ue.registrationChallenged(1, 1, false),
                () -> ue.registrationSucceeded(1, 1, 60, 0),
                () -> ue.registrationFailed(1, 1, 403, 0),
                () -> ue.deregister(1),
                () -> ue.networkChanged(1),
                () -> ue.rekey(1),
                () -> ue.connected(1, 1, null, null),
                () -> ue.connectFailed(1, 1, ConnectError.REFUSED, null),
                () -> ue.receive(1, 1, new byte[1], 0, 1),
                () -> ue.transportClosed(1, 1, TransportClosure.EOF, null),
                () -> ue.peerNotReading(1, 1, 0),
                () -> ue.handleTimeout(1),
                () -> ue.pollOutput(),
                () -> ue.nextTimeoutMs(),
                () -> ue.state(),
                () -> ue.currentFlow(),
                () -> ue.binding(),
                () -> ue.lastError(),
                () -> ue.setLogSink(null, LogLevel.OFF));
        for (int i = 0; i < ueCalls.size(); i++) {
            expect(IllegalStateException.class, ueCalls.get(i), "UE call #" + i + " after close");
        }
        ImsTlsDriver d = ImsTlsDriver.create(config(opt("pcscf")));
        d.setConnectionAttemptDelayMs(100);
        expectCode(ResultCode.INVALID_ARGUMENT, () -> d.setConnectionAttemptDelayMs(9),
                "a Connection Attempt Delay under RFC 8305's 10 ms");
        expectCode(ResultCode.INVALID_ARGUMENT, () -> d.setConnectionAttemptDelayMs(-1),
                "a negative Connection Attempt Delay");
        d.close();
        d.close();
        List<Body> driverCalls = Arrays.<Body>asList(
                () -> d.setConnectMode(ImsTlsDriver.ConnectMode.EXTERNAL),
                () -> d.setConnectionAttemptDelayMs(250),
                () -> d.startRegistration(opt("impi"), opt("impu")),
                () -> d.sendSip(new byte[1]),
                () -> d.registrationChallenged(1, false),
                () -> d.registrationSucceeded(1, 60, 0),
                () -> d.registrationFailed(1, 403, 0),
                () -> d.deregister(),
                () -> d.networkChanged(),
                () -> d.rekey(),
                () -> d.adoptFd(1, 0, ImsTlsDriver.FdOwnership.BORROW),
                () -> d.connectFailed(1, ConnectError.REFUSED, null),
                () -> d.process(),
                () -> d.run(0),
                () -> d.stop(),
                () -> d.pollEvent(),
                () -> d.fd(),
                () -> d.interest(),
                () -> d.timeoutMs(),
                () -> d.state(),
                () -> d.binding(),
                () -> d.lastError(),
                () -> d.setLogSink(null, LogLevel.OFF));
        for (int i = 0; i < driverCalls.size(); i++) {
            expect(IllegalStateException.class, driverCalls.get(i),
                    "driver call #" + i + " after close");
        }
    }

    private static void closeInsideLogSink() throws IOException {
        final ImsTlsUe ue = ImsTlsUe.create(config(opt("pcscf")), 0);
        final AtomicInteger closes = new AtomicInteger();
        ue.setLogSink((level, target, message) -> {
            if (closes.getAndIncrement() == 0) {
                ue.close(); // inside a running call: deferred to its end
                check(ue.isClosed(), "closed at once for later calls");
            }
        }, LogLevel.TRACE);
        ue.startRegistration(1, opt("impi"), opt("impu"));
        try {
            while (ue.pollOutput() != null) {
                // drain until the sink's close takes effect
            }
        } catch (IllegalStateException e) {
            // the close the sink asked for, effective once its call ended
        }
        check(closes.get() > 0, "the sink ran and closed the UE");
        check(ue.isClosed(), "the UE is closed");
        expect(IllegalStateException.class, ue::state, "a call after the deferred close");
    }

    private static void closeRacingRun() throws Exception {
        final ImsTlsDriver d = ImsTlsDriver.create(config(opt("pcscf")));
        final CountDownLatch started = new CountDownLatch(1);
        final AtomicReference<Throwable> outcome = new AtomicReference<Throwable>();
        Thread runner = new Thread(() -> {
            try {
                started.countDown();
                d.run(1000); // idle: waits the whole second unless woken
            } catch (Throwable t) {
                outcome.set(t);
            }
        });
        runner.start();
        started.await();
        Thread.sleep(50); // most likely inside run(); either way the outcome must be clean
        d.close();
        runner.join();
        Throwable t = outcome.get();
        check(t == null || t instanceof IllegalStateException,
                "run racing close ends cleanly: " + t);
        check(d.isClosed(), "closed");
        expect(IllegalStateException.class, () -> d.run(0), "run after close");
    }

    /** close() stops a run waiting on another thread first (imstls_driver_stop), then frees. */
    private static void closeStopsBlockedRun() throws Exception {
        final ImsTlsDriver d = ImsTlsDriver.create(config(opt("pcscf")));
        final CountDownLatch started = new CountDownLatch(1);
        final AtomicReference<Throwable> outcome = new AtomicReference<Throwable>();
        final AtomicLong endedAt = new AtomicLong();
        final AtomicReference<Boolean> ran = new AtomicReference<Boolean>();
        Thread runner = new Thread(() -> {
            try {
                started.countDown();
                ran.set(d.run(20000)); // idle: waits 20 s unless stopped
            } catch (Throwable t) {
                outcome.set(t);
            } finally {
                endedAt.set(System.nanoTime());
            }
        });
        runner.start();
        started.await();
        Thread.sleep(300); // inside run's wait by now
        long closing = System.nanoTime();
        d.close();
        long closeMs = (System.nanoTime() - closing) / 1_000_000;
        runner.join();
        long runEndedMs = (endedAt.get() - closing) / 1_000_000;
        System.out.println("    close took " + closeMs + " ms; the blocked run ended "
                + runEndedMs + " ms after close began; outcome " + outcome.get());
        check(closeMs < 3000, "close waited " + closeMs + " ms for a run of 20 s");
        check(runEndedMs < 3000, "the blocked run ended " + runEndedMs + " ms after close");
        check(outcome.get() == null, "the stopped run returned normally: " + outcome.get());
        checkEquals(Boolean.FALSE, ran.get(), "run's answer once stopped (leave the loop)");
        check(d.isClosed(), "closed");
        expect(IllegalStateException.class, () -> d.run(0), "run after close");

        // stop() alone: final for run, everything else keeps working; close after it.
        final ImsTlsDriver e = ImsTlsDriver.create(config(opt("pcscf")));
        check(e.run(0), "run before stop");
        e.stop();
        e.stop();
        check(!e.run(1000), "run after stop returns false at once");
        checkEquals(State.IDLE, e.state(), "state after stop");
        e.close();
        e.close();
        check(e.isClosed(), "closed after stop");
    }

    private static void closeRacingCallers() throws Exception {
        for (int round = 0; round < 20; round++) {
            final ImsTlsUe ue = ImsTlsUe.create(config(opt("pcscf")), 0);
            final AtomicReference<Throwable> unexpected = new AtomicReference<Throwable>();
            final AtomicInteger busy = new AtomicInteger();
            final CountDownLatch go = new CountDownLatch(1);
            List<Thread> threads = new ArrayList<Thread>();
            for (int t = 0; t < 4; t++) {
                Thread thread = new Thread(() -> {
                    try {
                        go.await();
                        while (true) {
                            try {
                                ue.state();
                                ue.nextTimeoutMs();
                                ue.handleTimeout(5);
                            } catch (ImsTlsException e) {
                                if (e.result() != ResultCode.BUSY) {
                                    throw e;
                                }
                                busy.incrementAndGet();
                            }
                        }
                    } catch (IllegalStateException e) {
                        // closed: the expected end
                    } catch (Throwable e) {
                        unexpected.set(e);
                    }
                });
                thread.start();
                threads.add(thread);
            }
            go.countDown();
            Thread.yield();
            ue.close();
            for (Thread thread : threads) {
                thread.join();
            }
            check(unexpected.get() == null, "round " + round + ": " + unexpected.get());
        }
    }
}
