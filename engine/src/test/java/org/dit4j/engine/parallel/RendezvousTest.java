package org.dit4j.engine.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The TCP rendezvous of a multi-node mesh: nodes are threads of this JVM on a free port of 127.0.0.1. */
class RendezvousTest {
    static final Duration T = Duration.ofSeconds(20);
    final ExecutorService pool = Executors.newCachedThreadPool();

    @AfterEach void stop() { pool.shutdownNow(); }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    static String job(int steps) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("mesh", "dp1×cfg1×ring1×ulysses4");
        m.put("size", "1024×1024");
        m.put("steps", steps);
        return Rendezvous.fingerprint(m);
    }

    Future<Rendezvous.Result> node(Rendezvous.Address a, Rendezvous.Node n, Supplier<byte[]> id, Duration timeout, long delayMs) {
        return pool.submit(() -> {
            Thread.sleep(delayMs);
            return Rendezvous.join(a, n, id, timeout);
        });
    }

    static String failure(Future<?> f) throws InterruptedException {
        try {
            f.get(60, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            return e.getCause().getMessage();
        } catch (java.util.concurrent.TimeoutException e) {
            throw new AssertionError("the node neither joined nor failed within 60 s");
        }
        throw new AssertionError("the node joined, but it should have failed");
    }

    @Test void threeNodesGetTheSameIdAndConsecutiveRanks() throws Exception {
        var a = new Rendezvous.Address("127.0.0.1", freePort());
        byte[] id = new byte[128];
        for (int i = 0; i < id.length; i++) id[i] = (byte) (i * 7 + 3);
        AtomicInteger made = new AtomicInteger();
        Supplier<byte[]> supplier = () -> {
            made.incrementAndGet();
            return id.clone();
        };
        // the followers start first (they retry until node 0 listens); local rank counts differ: 2 + 1 + 1 = 4
        var n2 = node(a, new Rendezvous.Node(3, 2, 1, 4, job(28)), () -> { throw new AssertionError("only node 0 makes the id"); }, T, 0);
        var n1 = node(a, new Rendezvous.Node(3, 1, 1, 4, job(28)), () -> { throw new AssertionError("only node 0 makes the id"); }, T, 0);
        var n0 = node(a, new Rendezvous.Node(3, 0, 2, 4, job(28)), supplier, T, 400);
        List<Rendezvous.Result> rs = List.of(n0.get(60, TimeUnit.SECONDS), n1.get(60, TimeUnit.SECONDS), n2.get(60, TimeUnit.SECONDS));
        assertEquals(1, made.get(), "node 0 makes the id once");
        int[] first = {0, 2, 3}, local = {2, 1, 1};
        for (int n = 0; n < 3; n++) {
            Rendezvous.Result r = rs.get(n);
            assertArrayEquals(id, r.uniqueId(), "node " + n + " id");
            assertEquals(n, r.nodeRank());
            assertEquals(3, r.nnodes());
            assertEquals(4, r.worldSize());
            assertEquals(first[n], r.firstRank(), "node " + n + " first rank");
            assertEquals(local[n], r.localRanks());
        }
    }

    List<Rendezvous.Result> joinThree(Rendezvous.Address a) throws Exception {
        var n1 = node(a, new Rendezvous.Node(3, 1, 1, 3, job(28)), () -> { throw new AssertionError("node 0 makes the id"); }, T, 0);
        var n2 = node(a, new Rendezvous.Node(3, 2, 1, 3, job(28)), () -> { throw new AssertionError("node 0 makes the id"); }, T, 0);
        var n0 = node(a, new Rendezvous.Node(3, 0, 1, 3, job(28)), () -> new byte[128], T, 200);
        return List.of(n0.get(60, TimeUnit.SECONDS), n1.get(60, TimeUnit.SECONDS), n2.get(60, TimeUnit.SECONDS));
    }

    /** A node that dies after the hand-out (connections dropped without a goodbye) stops the others, naming it. */
    @Test void aLostNodeStopsEveryOtherNode() throws Exception {
        List<Rendezvous.Result> rs = joinThree(new Rendezvous.Address("127.0.0.1", freePort()));
        assertEquals(List.of(1, 2), rs.get(0).link().peers());
        assertEquals(List.of(0), rs.get(1).link().peers());
        List<java.util.concurrent.CompletableFuture<String>> told = new ArrayList<>();
        for (Rendezvous.Result r : rs) {
            var f = new java.util.concurrent.CompletableFuture<String>();
            r.link().watch(f::complete);
            told.add(f);
        }
        rs.get(1).link().sever();   // node 1 crashes
        String at0 = told.get(0).get(20, TimeUnit.SECONDS), at2 = told.get(2).get(20, TimeUnit.SECONDS);
        assertTrue(at0.startsWith("node 1 ") && at0.contains("to node 0"), at0);
        assertTrue(at2.startsWith("node 0 ") && at2.contains("to node 2"), "node 0 passes the loss on: " + at2);
        Thread.sleep(200);
        assertTrue(!told.get(1).isDone(), "the node that severed is not told about itself: " + told.get(1).getNow(null));
        rs.forEach(r -> r.link().close());
    }

    /** Nodes that finish normally say goodbye: nobody is told of a loss, in whatever order they close. */
    @Test void nodesThatFinishSayGoodbye() throws Exception {
        List<Rendezvous.Result> rs = joinThree(new Rendezvous.Address("127.0.0.1", freePort()));
        AtomicInteger losses = new AtomicInteger();
        List<String> messages = java.util.Collections.synchronizedList(new ArrayList<>());
        for (Rendezvous.Result r : rs) r.link().watch(m -> { losses.incrementAndGet(); messages.add(m); });
        rs.get(2).link().close();
        rs.get(1).link().close();
        Thread.sleep(300);
        rs.get(0).link().close();
        Thread.sleep(300);
        assertEquals(0, losses.get(), "no loss expected: " + messages);
    }

    @Test void aDifferentJobFailsEveryNodeNamingTheOptionAndBothValues() throws Exception {
        var a = new Rendezvous.Address("127.0.0.1", freePort());
        Supplier<byte[]> id = () -> new byte[128];
        var n0 = node(a, new Rendezvous.Node(3, 0, 1, 3, job(28)), id, T, 0);
        var n1 = node(a, new Rendezvous.Node(3, 1, 1, 3, job(28)), id, T, 0);
        var n2 = node(a, new Rendezvous.Node(3, 2, 1, 3, job(20)), id, T, 0);
        for (var f : List.of(n0, n1, n2)) {
            String m = failure(f);
            assertTrue(m.contains("node 2 runs a different job than node 0: steps: node 0 '28', node 2 '20'"), m);
            assertTrue(m.contains("start every node with the same options"), m);
        }
    }

    @Test void aDuplicateNodeRankFailsEveryNode() throws Exception {
        var a = new Rendezvous.Address("127.0.0.1", freePort());
        Supplier<byte[]> id = () -> new byte[128];
        var n0 = node(a, new Rendezvous.Node(3, 0, 1, 3, job(4)), id, T, 0);
        var n1 = node(a, new Rendezvous.Node(3, 1, 1, 3, job(4)), id, T, 0);
        var n1b = node(a, new Rendezvous.Node(3, 1, 1, 3, job(4)), id, T, 100);
        for (var f : List.of(n0, n1, n1b)) {
            String m = failure(f);
            assertTrue(m.contains("two nodes were started with --node-rank 1"), m);
        }
    }

    @Test void aDifferentNodeCountFailsBothNodes() throws Exception {
        var a = new Rendezvous.Address("127.0.0.1", freePort());
        Supplier<byte[]> id = () -> new byte[128];
        var n0 = node(a, new Rendezvous.Node(2, 0, 1, 3, job(4)), id, T, 0);
        var n1 = node(a, new Rendezvous.Node(3, 1, 1, 3, job(4)), id, T, 0);
        for (var f : List.of(n0, n1)) {
            String m = failure(f);
            assertTrue(m.contains("node 1 was started with --nnodes 3 but node 0 with --nnodes 2"), m);
        }
    }

    @Test void localRankCountsMustAddUpToTheWorld() throws Exception {
        var a = new Rendezvous.Address("127.0.0.1", freePort());
        Supplier<byte[]> id = () -> new byte[128];
        var n0 = node(a, new Rendezvous.Node(2, 0, 1, 4, job(4)), id, T, 0);
        var n1 = node(a, new Rendezvous.Node(2, 1, 2, 4, job(4)), id, T, 0);
        for (var f : List.of(n0, n1)) {
            String m = failure(f);
            assertTrue(m.contains("add up to 3, but the mesh has 4 ranks"), m);
        }
    }

    @Test void timeoutsNameWhatIsMissing() throws Exception {
        var a = new Rendezvous.Address("127.0.0.1", freePort());
        Supplier<byte[]> id = () -> new byte[128];
        String lead = failure(node(a, new Rendezvous.Node(3, 0, 1, 3, job(4)), id, Duration.ofMillis(600), 0));
        assertTrue(lead.contains("node 0 waited 600 ms but only 0 of the 2 other nodes joined; missing node ranks [1, 2]"), lead);
        String follower = failure(node(a, new Rendezvous.Node(3, 1, 1, 3, job(4)), id, Duration.ofMillis(600), 0));
        assertTrue(follower.contains("node 1 could not reach node 0 at 127.0.0.1:" + a.port() + " within 600 ms"), follower);
        assertTrue(follower.contains("--node-rank 0"), follower);
    }

    @Test void aPortInUseIsNamed() throws Exception {
        try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            var a = new Rendezvous.Address("127.0.0.1", taken.getLocalPort());
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> Rendezvous.join(a, new Rendezvous.Node(2, 0, 1, 2, job(4)), () -> new byte[128], T));
            assertTrue(e.getMessage().contains("cannot listen on port " + a.port()) && e.getMessage().contains("in use"), e.getMessage());
        }
    }

    @Test void nodeZeroClosingEarlyIsReported() throws Exception {
        try (ServerSocket fake = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            pool.submit(() -> {
                try (Socket s = fake.accept()) {
                    new DataInputStream(s.getInputStream()).readInt();   // take the greeting, then hang up
                }
                return null;
            });
            var a = new Rendezvous.Address("127.0.0.1", fake.getLocalPort());
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> Rendezvous.join(a, new Rendezvous.Node(2, 1, 1, 2, job(4)), () -> new byte[128], T));
            assertTrue(e.getMessage().contains("node 0 closed the connection before answering node 1"), e.getMessage());
        }
    }

    @Test void anotherProtocolVersionIsRefusedOnBothSides() throws Exception {
        var a = new Rendezvous.Address("127.0.0.1", freePort());
        var n0 = node(a, new Rendezvous.Node(2, 0, 1, 2, job(4)), () -> new byte[128], T, 0);
        String answer = null;
        for (int attempt = 0; attempt < 200 && answer == null; attempt++) {
            try (Socket s = new Socket(a.host(), a.port())) {
                DataOutputStream out = new DataOutputStream(s.getOutputStream());
                out.writeInt(0x44344A52);
                out.writeInt(Rendezvous.PROTOCOL + 1);
                out.flush();
                DataInputStream in = new DataInputStream(s.getInputStream());
                assertEquals(0x44344A52, in.readInt());
                assertEquals(Rendezvous.PROTOCOL, in.readInt());
                assertEquals(1, in.readByte(), "an error answer");
                answer = in.readUTF();
            } catch (java.net.ConnectException notYet) {
                Thread.sleep(50);
            }
        }
        String m = failure(n0);
        assertTrue(m.contains("speaks rendezvous protocol " + (Rendezvous.PROTOCOL + 1) + " but node 0 speaks " + Rendezvous.PROTOCOL), m);
        assertTrue(answer != null && answer.contains("run the same dit4j version on every node"), answer);
    }

    @Test void oneNodeNeedsNoNetwork() {
        Rendezvous.Result r = Rendezvous.join(new Rendezvous.Address("127.0.0.1", 1), new Rendezvous.Node(1, 0, 2, 2, "x"),
                () -> new byte[] {5}, T);
        assertEquals(0, r.firstRank());
        assertArrayEquals(new byte[] {5}, r.uniqueId());
    }

    @Test void addressesAndNodesAreChecked() {
        assertEquals(new Rendezvous.Address("10.0.0.1", 29500), Rendezvous.Address.parse("10.0.0.1:29500"));
        assertEquals(new Rendezvous.Address("fe80::1", 29500), Rendezvous.Address.parse("[fe80::1]:29500"));
        assertEquals("[fe80::1]:29500", Rendezvous.Address.parse("[fe80::1]:29500").toString());
        List<String> bad = new ArrayList<>();
        for (String s : new String[] {"10.0.0.1", "10.0.0.1:", ":29500", "host:port", "host:70000", "fe80::1:29500"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Rendezvous.Address.parse(s), s);
            bad.add(e.getMessage());
            assertTrue(e.getMessage().contains("--master-addr"), e.getMessage());
        }
        assertTrue(bad.get(3).contains("the port must be a number"), bad.get(3));
        assertTrue(bad.get(4).contains("outside 1..65535"), bad.get(4));
        IllegalArgumentException rank = assertThrows(IllegalArgumentException.class, () -> new Rendezvous.Node(2, 2, 1, 2, "x"));
        assertTrue(rank.getMessage().contains("--node-rank must be in [0, 2) for --nnodes 2, got 2"), rank.getMessage());
        IllegalArgumentException world = assertThrows(IllegalArgumentException.class, () -> new Rendezvous.Node(4, 0, 1, 2, "x"));
        assertTrue(world.getMessage().contains("cannot span 4 nodes"), world.getMessage());
    }
}
