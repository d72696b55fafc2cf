package org.dit4j.cuda;

import org.dit4j.core.tensor.DType;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Typed bindings of NCCL (libnccl.so.2). Communicators are {@code long} handles; buffers are device pointers; every
 * collective is queued on the given CUstream. All-to-all is built from grouped send/recv, as NCCL has no primitive
 * for it. Every {@code ncclResult_t} is checked; errors carry NCCL's last-error text.
 * Keep {@code NCCL_NVLS_ENABLE=0} in the environment on shared machines (NVLink multicast is never used by dit4j).
 */
public final class Nccl {
    // ncclDataType_t
    public static final int INT8 = 0, UINT8 = 1, INT32 = 2, UINT32 = 3, INT64 = 4, UINT64 = 5, FLOAT16 = 6, FLOAT32 = 7,
            FLOAT64 = 8, BFLOAT16 = 9, FLOAT8_E4M3 = 10, FLOAT8_E5M2 = 11;
    // ncclRedOp_t
    public static final int SUM = 0, PROD = 1, MAX = 2, MIN = 3, AVG = 4;
    /** sizeof(ncclUniqueId). */
    public static final int UNIQUE_ID_BYTES = 128;
    /** ncclUniqueId, passed by value to ncclCommInitRank. */
    public static final StructLayout UNIQUE_ID = MemoryLayout.structLayout(MemoryLayout.sequenceLayout(UNIQUE_ID_BYTES, JAVA_BYTE));

    private static volatile Nccl instance;

    private final MethodHandle getVersion, getUniqueId, commInitRank, commInitAll, commSplit, commDestroy, commAbort,
            commCount, commUserRank, commCuDevice, getErrorString, getLastError, allReduce, allGather, reduceScatter,
            broadcast, send, recv, groupStart, groupEnd;

    private Nccl() {
        CudaDriver.Binder b = new CudaDriver.Binder(java.lang.foreign.Linker.nativeLinker(), CudaLibraries.load(CudaLibraries.Lib.NCCL));
        getVersion = b.fn("ncclGetVersion", ADDRESS);
        getUniqueId = b.fn("ncclGetUniqueId", ADDRESS);
        commInitRank = b.fn("ncclCommInitRank", ADDRESS, JAVA_INT, UNIQUE_ID, JAVA_INT);
        commInitAll = b.fn("ncclCommInitAll", ADDRESS, JAVA_INT, ADDRESS);
        commSplit = b.fn("ncclCommSplit", JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS);
        commDestroy = b.fn("ncclCommDestroy", JAVA_LONG);
        commAbort = b.fn("ncclCommAbort", JAVA_LONG);
        commCount = b.fn("ncclCommCount", JAVA_LONG, ADDRESS);
        commUserRank = b.fn("ncclCommUserRank", JAVA_LONG, ADDRESS);
        commCuDevice = b.fn("ncclCommCuDevice", JAVA_LONG, ADDRESS);
        getErrorString = b.fnRet("ncclGetErrorString", ADDRESS, JAVA_INT);
        getLastError = b.fnRet("ncclGetLastError", ADDRESS, JAVA_LONG);
        allReduce = b.fn("ncclAllReduce", JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG);
        allGather = b.fn("ncclAllGather", JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG);
        reduceScatter = b.fn("ncclReduceScatter", JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG);
        broadcast = b.fn("ncclBroadcast", JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG);
        send = b.fn("ncclSend", JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG);
        recv = b.fn("ncclRecv", JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG);
        groupStart = b.fn("ncclGroupStart");
        groupEnd = b.fn("ncclGroupEnd");
    }

    public static Nccl get() {
        Nccl n = instance;
        if (n == null) {
            synchronized (Nccl.class) {
                n = instance;
                if (n == null) instance = n = new Nccl();
            }
        }
        return n;
    }

    /** The NCCL data type of a dit4j dtype. */
    public static int dataType(DType t) {
        return switch (t) {
            case F32 -> FLOAT32;
            case BF16 -> BFLOAT16;
            case F16 -> FLOAT16;
            case F8_E4M3 -> FLOAT8_E4M3;
            case F8_E5M2 -> FLOAT8_E5M2;
            case I32 -> INT32;
            case I64 -> INT64;
            case BOOL -> UINT8;
        };
    }

    /** Version as NCCL encodes it (e.g. 22805 for 2.28.5). */
    public int version() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_INT);
            check((int) getVersion.invokeExact(v), "ncclGetVersion", 0);
            return v.get(JAVA_INT, 0);
        } catch (Throwable t) { throw rethrow(t); }
    }

    /** A new unique id (128 bytes) for {@link #commInitRank}; rank 0 makes it and sends it to the others. */
    public byte[] uniqueId() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment id = a.allocate(UNIQUE_ID);
            check((int) getUniqueId.invokeExact(id), "ncclGetUniqueId", 0);
            return id.toArray(JAVA_BYTE);
        } catch (Throwable t) { throw rethrow(t); }
    }

    /** Joins communicator {@code id} as {@code rank} of {@code nranks}; the calling thread's current device is used. */
    public long commInitRank(int nranks, byte[] id, int rank) {
        if (id.length != UNIQUE_ID_BYTES) throw new IllegalArgumentException("an NCCL unique id has " + UNIQUE_ID_BYTES + " bytes, got " + id.length);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment comm = a.allocate(ADDRESS);
            MemorySegment idSeg = a.allocate(UNIQUE_ID);
            idSeg.copyFrom(MemorySegment.ofArray(id));
            check((int) commInitRank.invokeExact(comm, nranks, idSeg, rank), "ncclCommInitRank(rank " + rank + " of " + nranks + ")", 0);
            return comm.get(JAVA_LONG, 0);
        } catch (Throwable t) { throw rethrow(t); }
    }

    /** One communicator per listed device, in one process (single-host convenience). */
    public long[] commInitAll(int... devices) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment comms = a.allocate(JAVA_LONG, devices.length);
            MemorySegment list = a.allocateFrom(JAVA_INT, devices);
            check((int) commInitAll.invokeExact(comms, devices.length, list), "ncclCommInitAll(" + devices.length + " devices)", 0);
            return comms.toArray(JAVA_LONG);
        } catch (Throwable t) { throw rethrow(t); }
    }

    /** Splits {@code comm} by color (ranks with equal color share a new communicator, ordered by key). */
    public long commSplit(long comm, int color, int key) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ADDRESS);
            check((int) commSplit.invokeExact(comm, color, key, out, MemorySegment.NULL), "ncclCommSplit(color " + color + ")", comm);
            return out.get(JAVA_LONG, 0);
        } catch (Throwable t) { throw rethrow(t); }
    }

    public void commDestroy(long comm) {
        try { check((int) commDestroy.invokeExact(comm), "ncclCommDestroy", 0); } catch (Throwable t) { throw rethrow(t); }
    }

    public void commAbort(long comm) {
        try { check((int) commAbort.invokeExact(comm), "ncclCommAbort", 0); } catch (Throwable t) { throw rethrow(t); }
    }

    public int commCount(long comm) { return intQuery(commCount, comm, "ncclCommCount"); }

    public int commUserRank(long comm) { return intQuery(commUserRank, comm, "ncclCommUserRank"); }

    public int commCuDevice(long comm) { return intQuery(commCuDevice, comm, "ncclCommCuDevice"); }

    // ------------------------------------------------------------------ collectives (asynchronous on `stream`)

    public void allReduce(long send, long recv, long count, int dtype, int op, long comm, long stream) {
        try { check((int) allReduce.invokeExact(send, recv, count, dtype, op, comm, stream), "ncclAllReduce", comm); }
        catch (Throwable t) { throw rethrow(t); }
    }

    /** recv holds nranks × sendCount elements, rank r's contribution at offset r·sendCount. */
    public void allGather(long send, long recv, long sendCount, int dtype, long comm, long stream) {
        try { check((int) allGather.invokeExact(send, recv, sendCount, dtype, comm, stream), "ncclAllGather", comm); }
        catch (Throwable t) { throw rethrow(t); }
    }

    public void reduceScatter(long send, long recv, long recvCount, int dtype, int op, long comm, long stream) {
        try { check((int) reduceScatter.invokeExact(send, recv, recvCount, dtype, op, comm, stream), "ncclReduceScatter", comm); }
        catch (Throwable t) { throw rethrow(t); }
    }

    public void broadcast(long send, long recv, long count, int dtype, int root, long comm, long stream) {
        try { check((int) broadcast.invokeExact(send, recv, count, dtype, root, comm, stream), "ncclBroadcast", comm); }
        catch (Throwable t) { throw rethrow(t); }
    }

    public void send(long buf, long count, int dtype, int peer, long comm, long stream) {
        try { check((int) send.invokeExact(buf, count, dtype, peer, comm, stream), "ncclSend(to " + peer + ")", comm); }
        catch (Throwable t) { throw rethrow(t); }
    }

    public void recv(long buf, long count, int dtype, int peer, long comm, long stream) {
        try { check((int) recv.invokeExact(buf, count, dtype, peer, comm, stream), "ncclRecv(from " + peer + ")", comm); }
        catch (Throwable t) { throw rethrow(t); }
    }

    /**
     * All-to-all of equal blocks: send holds nranks blocks of {@code blockCount} elements (block p goes to rank p),
     * recv receives block r from rank r at offset r·blockCount. Built from one group of send/recv pairs.
     */
    public void allToAll(long send, long recv, long blockCount, int dtype, int elemBytes, long comm, long stream) {
        int n = commCount(comm);
        long blockBytes = blockCount * elemBytes;
        groupStart();
        try {
            for (int p = 0; p < n; p++) {
                this.send(send + p * blockBytes, blockCount, dtype, p, comm, stream);
                this.recv(recv + p * blockBytes, blockCount, dtype, p, comm, stream);
            }
        } finally {
            groupEnd();
        }
    }

    public void groupStart() {
        try { check((int) groupStart.invokeExact(), "ncclGroupStart", 0); } catch (Throwable t) { throw rethrow(t); }
    }

    public void groupEnd() {
        try { check((int) groupEnd.invokeExact(), "ncclGroupEnd", 0); } catch (Throwable t) { throw rethrow(t); }
    }

    // ------------------------------------------------------------------ errors

    private int intQuery(MethodHandle h, long comm, String call) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_INT);
            check((int) h.invokeExact(comm, v), call, comm);
            return v.get(JAVA_INT, 0);
        } catch (Throwable t) { throw rethrow(t); }
    }

    public String errorString(int result) {
        try {
            MemorySegment p = (MemorySegment) getErrorString.invokeExact(result);
            return p.reinterpret(512).getString(0);
        } catch (Throwable t) {
            return "unknown NCCL result " + result;
        }
    }

    private void check(int result, String call, long comm) {
        if (result == 0) return;
        String last = "";
        try {
            MemorySegment p = (MemorySegment) getLastError.invokeExact(comm);
            if (!p.equals(MemorySegment.NULL)) last = p.reinterpret(1024).getString(0);
        } catch (Throwable ignored) {
            // the error string is a courtesy; the result code is what matters
        }
        throw new CudaException(call + " failed: NCCL result " + result + " (" + errorString(result) + ")"
                + (last.isEmpty() ? "" : ": " + last), result);
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new CudaException("NCCL call failed: " + t, -1);
    }
}
