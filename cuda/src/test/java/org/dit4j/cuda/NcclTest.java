package org.dit4j.cuda;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** NCCL binding on the GPUs present (one is enough: every collective is then a copy or identity). */
class NcclTest {
    @BeforeAll static void gpu() { CudaTestSupport.requireCuda(); }

    @Test void collectivesOnAllLocalDevices() {
        Nccl nccl = Nccl.get();
        assertTrue(nccl.version() >= 21800, "NCCL version " + nccl.version());
        int n = Cuda.deviceCount();
        CudaBackend[] b = new CudaBackend[n];
        for (int i = 0; i < n; i++) b[i] = new CudaBackend(i);
        int[] devs = new int[n];
        for (int i = 0; i < n; i++) devs[i] = i;
        long[] comms = nccl.commInitAll(devs);
        try (Scope s = Scope.open()) {
            assertEquals(n, nccl.commCount(comms[0]));
            int len = 1000;
            Tensor[] x = new Tensor[n], sum = new Tensor[n], gathered = new Tensor[n], a2a = new Tensor[n];
            float[][] data = new float[n][len];
            for (int r = 0; r < n; r++) {
                for (int i = 0; i < len; i++) data[r][i] = r * 1000 + i;
                x[r] = b[r].upload(Tensor.of(data[r], len));
                sum[r] = b[r].zeros(DType.F32, x[r].shape());
                gathered[r] = b[r].zeros(DType.F32, org.dit4j.core.tensor.Shape.of((long) n * len));
                a2a[r] = b[r].zeros(DType.F32, x[r].shape());
            }
            nccl.groupStart();
            for (int r = 0; r < n; r++) {
                b[r].makeCurrent();
                nccl.allReduce(x[r].address(), sum[r].address(), len, Nccl.FLOAT32, Nccl.SUM, comms[r], b[r].stream());
            }
            nccl.groupEnd();
            nccl.groupStart();
            for (int r = 0; r < n; r++) {
                b[r].makeCurrent();
                nccl.allGather(x[r].address(), gathered[r].address(), len, Nccl.FLOAT32, comms[r], b[r].stream());
            }
            nccl.groupEnd();
            if (len % n == 0) {
                // one thread drives every rank: the ranks' calls must be one group (else the first one waits for its peers)
                nccl.groupStart();
                for (int r = 0; r < n; r++) {
                    b[r].makeCurrent();
                    nccl.allToAll(x[r].address(), a2a[r].address(), len / n, Nccl.FLOAT32, 4, comms[r], b[r].stream());
                }
                nccl.groupEnd();
            }
            for (int r = 0; r < n; r++) {
                float[] expect = new float[len];
                for (int q = 0; q < n; q++) for (int i = 0; i < len; i++) expect[i] += data[q][i];
                assertArrayEquals(expect, b[r].toHost(sum[r]).toFloatArray(), "allReduce on rank " + r);
                float[] g = b[r].toHost(gathered[r]).toFloatArray();
                for (int q = 0; q < n; q++)
                    for (int i = 0; i < len; i++) assertEquals(data[q][i], g[q * len + i], "allGather rank " + r);
                if (len % n == 0) {
                    float[] got = b[r].toHost(a2a[r]).toFloatArray();
                    int blk = len / n;
                    for (int q = 0; q < n; q++)
                        for (int i = 0; i < blk; i++) assertEquals(data[q][r * blk + i], got[q * blk + i], "allToAll rank " + r);
                }
            }
        } finally {
            for (long c : comms) nccl.commDestroy(c);
            for (CudaBackend x : b) x.close();
        }
    }

    @Test void uniqueIdRendezvousWithOneRank() throws Exception {
        Nccl nccl = Nccl.get();
        byte[] id = nccl.uniqueId();
        assertEquals(Nccl.UNIQUE_ID_BYTES, id.length);
        try (CudaBackend b = new CudaBackend(0)) {
            long comm = nccl.commInitRank(1, id, 0);
            assertEquals(0, nccl.commUserRank(comm));
            assertEquals(0, nccl.commCuDevice(comm));
            nccl.commDestroy(comm);
        }
    }

    /** One process's GPUs joined through a unique id in one NCCL group, as one node of a multi-node mesh does. */
    @Test void initRanksJoinsEveryLocalGpuInOneGroup() {
        int n = Cuda.deviceCount();
        java.util.List<CudaBackend> b = new java.util.ArrayList<>();
        for (int i = 0; i < n; i++) b.add(new CudaBackend(i));
        java.util.List<org.dit4j.core.parallel.Communicator> comms = NcclCommunicator.initRanks(b, n, Nccl.get().uniqueId(), 0);
        try {
            assertEquals(n, comms.size());
            float[][] got = new float[n][];
            Thread[] threads = new Thread[n];
            for (int r = 0; r < n; r++) {
                int rank = r;
                assertEquals(r, comms.get(r).rank());
                assertEquals(n, comms.get(r).size());
                threads[r] = Thread.ofPlatform().start(() -> {
                    try (Scope s = Scope.open()) {
                        Tensor x = b.get(rank).upload(Tensor.of(new float[] {rank + 1, 10 * (rank + 1)}, 2));
                        got[rank] = b.get(rank).toHost(comms.get(rank).allReduce(x)).toFloatArray();
                    }
                });
            }
            for (Thread t : threads) t.join();
            float sum = n * (n + 1) / 2f;
            for (int r = 0; r < n; r++) assertArrayEquals(new float[] {sum, 10 * sum}, got[r], "allReduce on rank " + r);
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        } finally {
            comms.forEach(org.dit4j.core.parallel.Communicator::close);
            b.forEach(CudaBackend::close);
        }
    }
}
