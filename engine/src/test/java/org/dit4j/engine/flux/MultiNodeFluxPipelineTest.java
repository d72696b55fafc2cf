package org.dit4j.engine.flux;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.engine.parallel.ParallelConfig;
import org.dit4j.engine.parallel.ParallelVerification;
import org.dit4j.engine.parallel.Rendezvous;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A multi-node mesh on the CPU: two "nodes" (each its own FluxPipeline on its own CpuBackend, as two processes would
 * have) share one in-process communicator group and each run their share of the ranks from their own thread. Node 0's
 * latent must equal the one-process mesh's latent (rel-L2 ≤ 1e-6) and the one-device latent (≤ 1e-5), and both nodes
 * must end with the same latent. Tiny random Flux dev (2 heads, 96×64, T5 length 32), f32.
 */
class MultiNodeFluxPipelineTest {
    @TempDir static Path tmp;
    static final List<Ops> backends = new ArrayList<>();
    static final List<FluxPipeline> pipes = new ArrayList<>();
    static final ExecutorService pool = Executors.newCachedThreadPool();

    @BeforeAll static void setUp() throws Exception {
        Path dev = TinyFlux.writeDiffusers(tmp.resolve("dev"), true, 11);
        for (int n = 0; n < 2; n++) {
            Ops ops = new CpuBackend();
            backends.add(ops);
            pipes.add(new FluxPipeline(ops, FluxModelResolver.fromDiffusersFolder(dev), FluxPipeline.Settings.defaults(ops)));
        }
    }

    @AfterAll static void tearDown() {
        pool.shutdownNow();
        pipes.forEach(FluxPipeline::close);
        backends.forEach(Ops::close);
    }

    static FluxRequest request(ParallelConfig c) {
        FluxRequest r = FluxRequest.of("a photo of a cat", 42).withSize(96, 64).withSteps(3).withT5Length(32);
        if (c.cfg() == 2) r = r.withNegative("a dog", 3f);
        if (c.dp() > 1) r = r.withBatch(c.dp());
        return r;
    }

    /** Runs every node's generate from its own thread, as the nodes' processes would. */
    static List<FluxPipeline.Result> runNodes(List<ParallelFluxPipeline> nodes, FluxRequest r) throws Exception {
        List<Future<FluxPipeline.Result>> fs = new ArrayList<>();
        for (ParallelFluxPipeline p : nodes) fs.add(pool.submit(() -> p.generate(r, FluxProgress.NONE)));
        List<FluxPipeline.Result> out = new ArrayList<>();
        for (Future<FluxPipeline.Result> f : fs) out.add(f.get(300, TimeUnit.SECONDS));
        return out;
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {"ulysses=2", "ring=2,ulysses=2", "cfg=2,ulysses=2", "dp=2,ring=2"})
    void twoNodesEqualOneProcessAndOneDevice(String spec) throws Exception {
        ParallelConfig c = ParallelConfig.parse(spec);
        FluxRequest r = request(c);
        float[] oneDevice = pipes.getFirst().generate(r, FluxProgress.NONE).latents();
        float[] oneProcess;
        try (ParallelFluxPipeline par = ParallelFluxPipeline.local(pipes.getFirst(), c)) {
            oneProcess = par.generate(r, FluxProgress.NONE).latents();
        }
        List<ParallelFluxPipeline> nodes = ParallelFluxPipeline.localNodes(pipes, c);
        try {
            int k = c.worldSize() / 2;
            assertArrayEquals(new int[] {0, k - 1}, new int[] {nodes.get(0).localRanks()[0], nodes.get(0).localRanks()[k - 1]});
            assertEquals(k, nodes.get(1).localRanks()[0]);
            assertTrue(!nodes.get(0).wholeMesh());
            List<FluxPipeline.Result> res = runNodes(nodes, r);
            float[] node0 = res.get(0).latents(), node1 = res.get(1).latents();
            assertEquals(oneDevice.length, node0.length);
            assertEquals(r.batch(), res.get(0).images().size());
            double vsProcess = ParallelVerification.compare(spec, oneProcess, node0).relL2();
            assertTrue(vsProcess <= 1e-6, spec + ": node 0 latent rel-L2 " + vsProcess + " vs the one-process mesh > 1e-6");
            double vsDevice = ParallelVerification.compare(spec, oneDevice, node0).relL2();
            assertTrue(vsDevice <= 1e-5, spec + ": node 0 latent rel-L2 " + vsDevice + " vs one device > 1e-5");
            assertArrayEquals(node0, node1, spec + ": both nodes end with the same latent");
        } finally {
            nodes.forEach(ParallelFluxPipeline::close);
        }
    }

    /** The whole path of a launch: a TCP rendezvous gives each node its ranks and the id naming the shared group. */
    @Test void nodesJoinedThroughTheRendezvousGenerateTogether() throws Exception {
        ParallelConfig c = ParallelConfig.parse("ring=2,ulysses=2");
        FluxRequest r = request(c);
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = s.getLocalPort();
        }
        Rendezvous.Address master = new Rendezvous.Address("127.0.0.1", port);
        String job = Rendezvous.fingerprint(java.util.Map.of("mesh", c, "process", ParallelFluxPipeline.cpuProcess()));
        List<Future<FluxPipeline.Result>> fs = new ArrayList<>();
        for (int n = 1; n >= 0; n--) {
            int node = n;
            fs.add(pool.submit(() -> {
                Rendezvous.Result rv = Rendezvous.join(master, new Rendezvous.Node(2, node, 2, 4, job), ParallelFluxPipeline::cpuNodeId,
                        Duration.ofSeconds(60));
                assertEquals(2 * node, rv.firstRank());
                try (ParallelFluxPipeline p = ParallelFluxPipeline.cpuNode(pipes.get(node), c, rv)) {
                    return p.generate(r, FluxProgress.NONE);
                }
            }));
        }
        float[] node1 = fs.get(0).get(300, TimeUnit.SECONDS).latents(), node0 = fs.get(1).get(300, TimeUnit.SECONDS).latents();
        float[] oneDevice = pipes.getFirst().generate(r, FluxProgress.NONE).latents();
        double e = ParallelVerification.compare("rendezvous", oneDevice, node0).relL2();
        assertTrue(e <= 1e-5, "node 0 latent rel-L2 " + e + " vs one device > 1e-5");
        assertArrayEquals(node0, node1);
    }

    /**
     * A node that dies after the rendezvous (its connection dropped without a goodbye) stops the other node's generate
     * within seconds, naming it, instead of leaving its ranks waiting in a collective (here: the in-process
     * communicator's 5-minute timeout).
     */
    @Test void aNodeLostMidJobStopsTheOtherNode() throws Exception {
        ParallelConfig c = ParallelConfig.parse("ulysses=2");
        FluxRequest r = request(c);
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = s.getLocalPort();
        }
        Rendezvous.Address master = new Rendezvous.Address("127.0.0.1", port);
        String job = Rendezvous.fingerprint(java.util.Map.of("mesh", c, "process", ParallelFluxPipeline.cpuProcess()));
        Future<Rendezvous.Result> one = pool.submit(() -> Rendezvous.join(master, new Rendezvous.Node(2, 1, 1, 2, job),
                ParallelFluxPipeline::cpuNodeId, Duration.ofSeconds(60)));
        Rendezvous.Result rv0 = Rendezvous.join(master, new Rendezvous.Node(2, 0, 1, 2, job), ParallelFluxPipeline::cpuNodeId,
                Duration.ofSeconds(60));
        Rendezvous.Result rv1 = one.get(60, TimeUnit.SECONDS);
        try (ParallelFluxPipeline p0 = ParallelFluxPipeline.cpuNode(pipes.get(0), c, rv0);
             ParallelFluxPipeline p1 = ParallelFluxPipeline.cpuNode(pipes.get(1), c, rv1)) {
            long t0 = System.nanoTime();
            Future<FluxPipeline.Result> gen = pool.submit(() -> p0.generate(r, FluxProgress.NONE));   // node 1 never joins in
            Thread.sleep(500);
            rv1.link().sever();                                                                      // … and crashes
            ExecutionException e = assertThrows(ExecutionException.class, () -> gen.get(60, TimeUnit.SECONDS));
            double s = (System.nanoTime() - t0) / 1e9;
            String msg = String.valueOf(e.getCause().getMessage()) + " / " + e.getCause().getCause();
            assertTrue(msg.contains("node 1"), "the failure names the lost node: " + msg);
            assertTrue(s < 30, "node 0 stopped after " + s + " s");
        }
    }

    @Test void aNodeCannotVerifyAndNodeRanksMustFitTheMesh() throws Exception {
        ParallelConfig c = ParallelConfig.parse("ulysses=2");
        List<ParallelFluxPipeline> nodes = ParallelFluxPipeline.localNodes(pipes, c);
        try {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> nodes.get(1).verify(request(c), FluxProgress.NONE));
            assertTrue(e.getMessage().contains("runs only ranks [1] of 2") && e.getMessage().contains("without --nnodes"), e.getMessage());
        } finally {
            nodes.forEach(ParallelFluxPipeline::close);
        }
        IllegalArgumentException world = assertThrows(IllegalArgumentException.class, () -> ParallelFluxPipeline.cpuNode(pipes.getFirst(), c,
                new Rendezvous.Result(2, 0, 4, 0, 2, ParallelFluxPipeline.cpuNodeId())));
        assertTrue(world.getMessage().contains("needs 2 ranks"), world.getMessage());
        IllegalArgumentException split = assertThrows(IllegalArgumentException.class,
                () -> ParallelFluxPipeline.localNodes(pipes, ParallelConfig.parse("ring=3")));
        assertTrue(split.getMessage().contains("does not split over 2 nodes"), split.getMessage());
    }
}
