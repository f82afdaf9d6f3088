package org.imstls;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * Owns one native handle ({@code imstls_ue} or {@code imstls_driver}) and its log-sink
 * reference, so that {@code close()} can never free it under a running call.
 *
 * <p>Calls hold the read lock (so they may run concurrently: imstls itself answers a
 * concurrent call with {@code BUSY}); freeing needs the write lock. {@code close()} marks the
 * handle closed at once -- later calls throw {@link IllegalStateException} -- then frees it as
 * soon as no call runs: it waits for calls on other threads, and when called from inside a call
 * on its own thread (e.g. from the log sink) it leaves the free to that call's end.
 */
final class NativeHandle {
    /** Frees the native object. */
    interface Free {
        void free(long pointer);
    }

    /** Installs a log callback; returns the result code. */
    interface SetLog {
        int set(long pointer, long sinkRef, int level);
    }

    private final String what;
    private final Free free;
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private final AtomicBoolean closed = new AtomicBoolean();
    private final Object sinkLock = new Object();
    private long pointer; // written under the write lock
    private long sinkRef; // guarded by sinkLock; freed with the handle

    NativeHandle(String what, long pointer, Free free) {
        this.what = what;
        this.pointer = pointer;
        this.free = free;
    }

    /** Starts a call: the pointer, valid until {@link #release()}. */
    long acquire() {
        lock.readLock().lock();
        if (closed.get() || pointer == 0) {
            lock.readLock().unlock();
            tryFree();
            throw new IllegalStateException(what + " is closed");
        }
        return pointer;
    }

    /** Ends a call; the last call to end after a {@code close()} frees the handle. */
    void release() {
        lock.readLock().unlock();
        if (closed.get()) {
            tryFree();
        }
    }

    boolean isClosed() {
        return closed.get();
    }

    void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        if (lock.getReadHoldCount() > 0) {
            return; // inside a call on this thread: freed when it ends
        }
        lock.writeLock().lock();
        try {
            freeNow();
        } finally {
            lock.writeLock().unlock();
        }
    }

    private void tryFree() {
        if (lock.getReadHoldCount() > 0 || !lock.writeLock().tryLock()) {
            return; // a call still runs: whoever ends last frees
        }
        try {
            freeNow();
        } finally {
            lock.writeLock().unlock();
        }
    }

    /** Under the write lock. */
    private void freeNow() {
        if (pointer != 0) {
            free.free(pointer);
            pointer = 0;
        }
        synchronized (sinkLock) {
            if (sinkRef != 0) {
                Native.logSinkFree(sinkRef);
                sinkRef = 0;
            }
        }
    }

    /** Replaces the log sink; the previous one is released once imstls no longer holds it. */
    void setLogSink(LogSink sink, LogLevel level, SetLog setLog) {
        if (level == null) {
            throw new NullPointerException("level");
        }
        long p = acquire();
        try {
            synchronized (sinkLock) {
                long fresh = sink == null || level == LogLevel.OFF ? 0 : Native.logSinkNew(sink);
                int rc = setLog.set(p, fresh, fresh == 0 ? LogLevel.OFF.code : level.code);
                if (rc != ResultCode.OK) {
                    if (fresh != 0) {
                        Native.logSinkFree(fresh);
                    }
                    throw new ImsTlsException(Failure.ofCode(rc));
                }
                if (sinkRef != 0) {
                    Native.logSinkFree(sinkRef);
                }
                sinkRef = fresh;
            }
        } finally {
            release();
        }
    }
}
