package org.dit4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.dit4j.engine.wan.TinyWanAccess;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code generate} of a Wan2.1 model on a mesh of CPU ranks: --verify-parallel, a video written, and the refusals. */
class GenerateWanParallelTest {
    @TempDir static Path tmp;
    static Path model;

    @BeforeAll static void setUp() throws Exception { model = TinyWanAccess.writeDiffusers4Heads(tmp.resolve("tiny-wan"), 13); }

    @Test void verifyParallelOnCfgTimesUlyssesPrintsEveryRankAndPasses() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        PrintStream old = System.out;
        int code;
        System.setOut(new PrintStream(bytes, true, StandardCharsets.UTF_8));
        try {
            code = new CommandLine(new GenerateCommand()).execute("--model", model.toString(), "-p", "a red fox", "-W", "64", "-H", "64",
                    "--frames", "9", "--steps", "2", "--seed", "3", "--backend", "cpu", "--gpus", "4", "--cfg-parallel", "2",
                    "--ulysses", "2", "--verify-parallel", "-o", tmp.resolve("v.mp4").toString());
        } finally {
            System.setOut(old);
        }
        String text = bytes.toString(StandardCharsets.UTF_8);
        assertEquals(0, code, text);
        assertTrue(text.contains("verify-parallel wan dp1×cfg2×ring1×ulysses2"), text);
        assertTrue(text.contains("verify-parallel: OK (tolerance rel-L2 1e-05 for F32)"), text);
        for (int r = 0; r < 4; r++) {
            Matcher m = Pattern.compile("rank " + r + ": max \\|Δ\\| (\\S+), rel-L2 (\\S+) ").matcher(text);
            assertTrue(m.find(), "no line for rank " + r + " in:\n" + text);
            assertTrue(Double.parseDouble(m.group(2)) <= 1e-5, "rank " + r + " rel-L2 " + m.group(2));
        }
        assertTrue(!Files.exists(tmp.resolve("v.mp4")), "--verify-parallel writes no video");
    }

    @Test void aRingMeshWritesTheVideo() throws Exception {
        Path out = tmp.resolve("ring.mp4");
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream old = System.err;
        int code;
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        try {
            code = new CommandLine(new GenerateCommand()).execute("--model", model.toString(), "-p", "a red fox", "-W", "64", "-H", "64",
                    "--frames", "9", "--steps", "2", "--seed", "3", "--backend", "cpu", "--ring", "2", "-o", out.toString());
        } finally {
            System.setErr(old);
        }
        String text = err.toString(StandardCharsets.UTF_8);
        assertEquals(0, code, text);
        assertTrue(text.contains("mesh:    dp1×cfg1×ring2×ulysses1 (2 CPU ranks; umT5 and VAE on rank 0)"), text);
        assertTrue(Files.size(out) > 1000, "a video in " + out);
    }

    /** --cache with --ulysses/--ring: the mesh runs the step cache (TACO's ParallelTeaCache), prints its pattern, writes the video. */
    @Test void aStepCacheRunsOnASequenceMeshAndPrintsItsPattern() throws Exception {
        Path out = tmp.resolve("cached.mp4");
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream old = System.err;
        int code;
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        try {
            code = new CommandLine(new GenerateCommand()).execute("--model", model.toString(), "-p", "a red fox", "-W", "64", "-H", "64",
                    "--frames", "9", "--steps", "8", "--seed", "3", "--backend", "cpu", "--ring", "2", "--ulysses", "2",
                    "--cache", "fbcache:0.3", "-o", out.toString());
        } finally {
            System.setErr(old);
        }
        String text = err.toString(StandardCharsets.UTF_8);
        assertEquals(0, code, text);
        assertTrue(text.contains("mesh:    dp1×cfg1×ring2×ulysses2"), text);
        assertTrue(text.contains("cache:   fbcache"), text);
        assertTrue(Pattern.compile("cond\\s+[#.]{8} computed \\d/8, skipped [1-9]").matcher(text).find(), "no cache pattern with skips in:\n" + text);
        assertTrue(Files.size(out) > 1000, "a video in " + out);
    }

    @Test void meshOptionsThatDoNotFitAreRefusedWithTheFix() {
        assertRefused("the Wan2.1 dim 128, 2 layers transformer has 4 attention heads", "-W", "64", "-H", "64", "--ulysses", "8");
        assertRefused("27 tokens", "-W", "48", "-H", "48", "--ring", "2");
        assertRefused("--guidance > 1", "-W", "64", "-H", "64", "--cfg-parallel", "2", "--guidance", "1");
        assertRefused("--cfg-parallel 1 --dp 1 with --cache", "-W", "64", "-H", "64", "--cfg-parallel", "2", "--cache", "teacache");
        assertRefused("--cfg-parallel 1 --dp 1 with --cache", "-W", "64", "-H", "64", "--dp", "2", "--batch", "2", "--cache", "fbcache:0.1");
        assertRefused("--cache magcache-calibrate runs on one device", "-W", "64", "-H", "64", "--ring", "2", "--cache", "magcache-calibrate");
        assertRefused("--verify-parallel compares one device with a mesh", "-W", "64", "-H", "64", "--verify-parallel");
    }

    private static void assertRefused(String expected, String... extra) {
        CommandLine cl = new CommandLine(new GenerateCommand()).setExecutionExceptionHandler((ex, cmd, parsed) -> {
            cmd.getErr().println("dit4j: " + ex.getMessage());
            return 1;
        });
        StringWriter err = new StringWriter();
        cl.setErr(new PrintWriter(err, true));
        String[] base = {"--model", model.toString(), "-p", "a red fox", "--frames", "9", "--steps", "1", "--backend", "cpu"};
        String[] args = java.util.Arrays.copyOf(base, base.length + extra.length);
        System.arraycopy(extra, 0, args, base.length, extra.length);
        assertEquals(1, cl.execute(args), err.toString());
        assertTrue(err.toString().contains(expected), "expected '" + expected + "' in: " + err);
    }
}
