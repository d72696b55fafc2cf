package org.dit4j.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.dit4j.engine.flux.TinyFluxAccess;
import org.dit4j.engine.image.Images;
import org.dit4j.engine.image.RgbImage;
import org.dit4j.engine.parallel.ParallelConfig;
import org.dit4j.engine.parallel.Rendezvous;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code generate --nnodes/--node-rank/--master-addr}: validation, and two CPU nodes in one JVM over a real TCP rendezvous. */
class GenerateMultiNodeTest {
    @TempDir Path tmp;
    static final ParallelConfig U2 = ParallelConfig.ulysses(2);

    @Test void nodeOptionsAreChecked() {
        assertNull(GenerateCommand.multiNode(null, null, null, 300, U2, false, 1L));
        assertNull(GenerateCommand.multiNode(1, 0, null, 300, null, false, null));
        GenerateCommand.MultiNode n = GenerateCommand.multiNode(2, 1, "10.0.0.1:29500", 60, new ParallelConfig(1, 1, 2, 2), false, 7L);
        assertEquals(new GenerateCommand.MultiNode(2, 1, new Rendezvous.Address("10.0.0.1", 29500), Duration.ofSeconds(60),
                new ParallelConfig(1, 1, 2, 2)), n);
        String[][] bad = {
                // nnodes, nodeRank, master, mesh (ulysses degree or 0 for none), verify, seed → expected message part
                {"", "1", "h:1", "2", "", "1", "give --nnodes N"},
                {"1", "", "h:1", "2", "", "1", "give --nnodes N"},
                {"2", "", "h:1", "2", "", "1", "--nnodes 2 needs --node-rank R"},
                {"2", "2", "h:1", "2", "", "1", "--node-rank must be in [0, 2) for --nnodes 2, got 2"},
                {"2", "-1", "h:1", "2", "", "1", "--node-rank must be in [0, 2)"},
                {"0", "0", "h:1", "2", "", "1", "--nnodes must be at least 1, got 0"},
                {"2", "0", "", "2", "", "1", "needs --master-addr HOST:PORT"},
                {"2", "0", "host", "2", "", "1", "--master-addr must be host:port"},
                {"2", "0", "h:1", "0", "", "1", "give the WHOLE mesh"},
                {"3", "0", "h:1", "2", "", "1", "--nnodes 3 does not divide"},
                {"2", "0", "h:1", "2", "v", "1", "--verify-parallel runs the request on one device and on every rank"},
                {"2", "0", "h:1", "2", "", "", "--nnodes 2 needs --seed"},
        };
        for (String[] b : bad) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> GenerateCommand.multiNode(
                    b[0].isEmpty() ? null : Integer.valueOf(b[0]), b[1].isEmpty() ? null : Integer.valueOf(b[1]), b[2].isEmpty() ? null : b[2],
                    300, b[3].equals("0") ? null : ParallelConfig.ulysses(Integer.parseInt(b[3])), !b[4].isEmpty(),
                    b[5].isEmpty() ? null : Long.valueOf(b[5])), String.join(" ", b));
            assertTrue(e.getMessage().contains(b[6]), String.join(" ", b) + " → " + e.getMessage());
        }
    }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    record Run(int code, String err) {}

    static Run generate(String... args) {
        StringWriter err = new StringWriter();
        CommandLine cl = new CommandLine(new GenerateCommand()).setExecutionExceptionHandler((ex, cmd, parsed) -> {
            cmd.getErr().println("dit4j: " + ex.getMessage());
            return 1;
        });
        cl.setErr(new PrintWriter(err, true));
        int code = cl.execute(args);
        return new Run(code, err.toString());
    }

    List<String> common(Path model, String... more) {
        List<String> a = new ArrayList<>(List.of("--model", model.toString(), "-p", "a photo of a cat", "-W", "96", "-H", "64", "--steps", "2",
                "--t5-length", "32", "--seed", "7", "--backend", "cpu"));
        a.addAll(List.of(more));
        return a;
    }

    /** Runs the nodes' command lines concurrently, as separate launches would. */
    static List<Run> nodes(List<List<String>> argLists) throws Exception {
        ExecutorService pool = Executors.newCachedThreadPool();
        try {
            List<Future<Run>> fs = new ArrayList<>();
            for (List<String> args : argLists) fs.add(pool.submit(() -> generate(args.toArray(String[]::new))));
            List<Run> out = new ArrayList<>();
            for (Future<Run> f : fs) out.add(f.get(300, TimeUnit.SECONDS));
            return out;
        } finally {
            pool.shutdownNow();
        }
    }

    @Test void twoCpuNodesOverTcpWriteTheOneProcessImageOnNodeZeroOnly() throws Exception {
        Path model = TinyFluxAccess.writeDiffusers(tmp.resolve("tiny"));
        Path one = tmp.resolve("one.png"), out0 = tmp.resolve("node0.png"), out1 = tmp.resolve("node1.png");
        Run single = generate(common(model, "--ulysses", "2", "-o", one.toString()).toArray(String[]::new));
        assertEquals(0, single.code(), single.err());
        String master = "127.0.0.1:" + freePort();
        java.io.ByteArrayOutputStream log = new java.io.ByteArrayOutputStream();
        java.io.PrintStream old = System.err;
        List<Run> runs;
        System.setErr(new java.io.PrintStream(log, true, java.nio.charset.StandardCharsets.UTF_8));   // both nodes' progress
        try {
            runs = nodes(List.of(
                    common(model, "--ulysses", "2", "--nnodes", "2", "--node-rank", "1", "--master-addr", master, "-o", out1.toString()),
                    common(model, "--ulysses", "2", "--nnodes", "2", "--node-rank", "0", "--master-addr", master, "-o", out0.toString())));
        } finally {
            System.setErr(old);
        }
        String text = log.toString(java.nio.charset.StandardCharsets.UTF_8);
        for (Run r : runs) assertEquals(0, r.code(), r.err() + text);
        assertTrue(Files.exists(out0), "node 0 writes the image");
        assertTrue(!Files.exists(out1), "node 1 writes nothing");
        assertTrue(text.contains("node 1 of 2: done; node 0 writes the image(s)"), text);
        assertTrue(text.contains("this is node 0 of 2: ranks 0..0 of 2") && text.contains("this is node 1 of 2: ranks 1..1 of 2"), text);
        RgbImage a = Images.read(one), b = Images.read(out0);
        assertEquals(a.width(), b.width());
        assertArrayEquals(a.rgb(), b.rgb(), "node 0's image equals the one-process mesh's image");
    }

    @Test void nodesWithDifferentOptionsFailTogetherNamingTheOption() throws Exception {
        Path model = TinyFluxAccess.writeDiffusers(tmp.resolve("tiny"));
        String master = "127.0.0.1:" + freePort();
        List<String> n1 = common(model, "--ulysses", "2", "--nnodes", "2", "--node-rank", "1", "--master-addr", master,
                "--rendezvous-timeout", "60", "-o", tmp.resolve("b.png").toString());
        n1.set(n1.indexOf("--steps") + 1, "3");
        List<Run> runs = nodes(List.of(n1, common(model, "--ulysses", "2", "--nnodes", "2", "--node-rank", "0", "--master-addr", master,
                "--rendezvous-timeout", "60", "-o", tmp.resolve("a.png").toString())));
        for (Run r : runs) {
            assertEquals(1, r.code(), r.err());
            assertTrue(r.err().contains("node 1 runs a different job than node 0: steps: node 0 '2', node 1 '3'"), r.err());
        }
    }
}
