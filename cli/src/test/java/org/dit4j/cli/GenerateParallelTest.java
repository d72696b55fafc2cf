package org.dit4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.dit4j.engine.flux.TinyFluxAccess;
import org.dit4j.engine.parallel.ParallelConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code generate --gpus/--ulysses/--ring/--cfg-parallel/--dp} validation and {@code --verify-parallel} on CPU ranks. */
class GenerateParallelTest {
    @TempDir Path tmp;

    @Test void degreesFromTheOptions() {
        assertNull(GenerateCommand.parallelConfig(null, null, null, null, null, 24));
        assertNull(GenerateCommand.parallelConfig(1, null, null, null, null, 24));
        assertEquals(new ParallelConfig(1, 1, 1, 4), GenerateCommand.parallelConfig(4, null, null, null, null, 24));
        assertEquals(new ParallelConfig(1, 1, 2, 2), GenerateCommand.parallelConfig(4, null, null, null, null, 2));
        assertEquals(new ParallelConfig(2, 2, 1, 2), GenerateCommand.parallelConfig(8, 2, null, 2, 2, 24));
        assertEquals(new ParallelConfig(1, 1, 2, 1), GenerateCommand.parallelConfig(null, null, 2, null, null, 24));
    }

    @Test void invalidDegreesNameTheOptionAndTheFix() {
        IllegalArgumentException product = assertThrows(IllegalArgumentException.class,
                () -> GenerateCommand.parallelConfig(4, 2, null, null, null, 24));
        assertTrue(product.getMessage().contains("--gpus") && product.getMessage().contains("needs 2 ranks")
                && product.getMessage().contains("4 are given"), product.getMessage());
        IllegalArgumentException heads = assertThrows(IllegalArgumentException.class,
                () -> GenerateCommand.parallelConfig(null, 5, null, null, null, 24));
        assertTrue(heads.getMessage().contains("24 attention heads") && heads.getMessage().contains("Ulysses degree 5"), heads.getMessage());
        IllegalArgumentException cfg = assertThrows(IllegalArgumentException.class,
                () -> GenerateCommand.parallelConfig(null, null, null, 3, null, 24));
        assertTrue(cfg.getMessage().contains("cfg parallel degree must be 1 or 2"), cfg.getMessage());
        IllegalArgumentException zero = assertThrows(IllegalArgumentException.class,
                () -> GenerateCommand.parallelConfig(0, null, null, null, null, 24));
        assertTrue(zero.getMessage().contains("--gpus must be at least 1"), zero.getMessage());
    }

    @Test void verifyParallelPrintsEveryRankAndPasses() throws Exception {
        Path model = TinyFluxAccess.writeDiffusers(tmp.resolve("tiny"));
        Path out = tmp.resolve("out.png");
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        PrintStream old = System.out;
        int code;
        System.setOut(new PrintStream(bytes, true, StandardCharsets.UTF_8));
        try {
            code = new CommandLine(new GenerateCommand()).execute("--model", model.toString(), "-p", "a photo of a cat", "-W", "96",
                    "-H", "64", "--steps", "2", "--t5-length", "32", "--seed", "7", "--backend", "cpu", "--gpus", "2", "--ring", "2",
                    "--verify-parallel", "-o", out.toString());
        } finally {
            System.setOut(old);
        }
        String text = bytes.toString(StandardCharsets.UTF_8);
        assertEquals(0, code, text);
        assertTrue(text.contains("verify-parallel: OK (tolerance rel-L2 1e-05 for F32)"), text);
        for (int r = 0; r < 2; r++) {
            Matcher m = Pattern.compile("rank " + r + ": max \\|Δ\\| (\\S+), rel-L2 (\\S+) ").matcher(text);
            assertTrue(m.find(), "no line for rank " + r + " in:\n" + text);
            assertTrue(Double.parseDouble(m.group(2)) <= 1e-5, "rank " + r + " rel-L2 " + m.group(2));
        }
        assertTrue(!Files.exists(out), "--verify-parallel writes no image");
    }

    /** --prompts FILE: one image per line, spread over --dp groups, each PNG naming its own prompt; wrong combinations refused. */
    @Test void aPromptsFileDrawsOneImagePerLineOverTheDataParallelGroups() throws Exception {
        Path model = TinyFluxAccess.writeDiffusers(tmp.resolve("tiny"));
        Path list = Files.writeString(tmp.resolve("prompts.txt"), "a photo of a cat\n\n  a lighthouse at dawn  \n");
        Path out = tmp.resolve("many.png");
        int code = new CommandLine(new GenerateCommand()).execute("--model", model.toString(), "--prompts", list.toString(), "-W", "96",
                "-H", "64", "--steps", "1", "--t5-length", "32", "--seed", "7", "--backend", "cpu", "--dp", "2", "-o", out.toString());
        assertEquals(0, code);
        String first = Files.readString(tmp.resolve("many-1.png"), StandardCharsets.ISO_8859_1);
        String second = Files.readString(tmp.resolve("many-2.png"), StandardCharsets.ISO_8859_1);
        assertTrue(first.contains("a photo of a cat") && !first.contains("lighthouse"), "image 1 names its prompt");
        assertTrue(second.contains("a lighthouse at dawn") && !second.contains("a photo of a cat"), "image 2 names its prompt");
        CommandLine cl = new CommandLine(new GenerateCommand());
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        cl.setErr(new java.io.PrintWriter(err, true, StandardCharsets.UTF_8));
        cl.setExecutionExceptionHandler((e, c, p) -> { c.getErr().println(e.getMessage()); return 2; });
        assertEquals(2, cl.execute("--model", model.toString(), "--prompts", list.toString(), "-p", "a cat", "--backend", "cpu"));
        assertEquals(2, cl.execute("--model", model.toString(), "--prompts", list.toString(), "--batch", "2", "--backend", "cpu"));
        assertEquals(2, cl.execute("--model", model.toString(), "--backend", "cpu"));
        String msgs = err.toString(StandardCharsets.UTF_8);
        assertTrue(msgs.contains("either --prompt or --prompts") && msgs.contains("leave --batch out") && msgs.contains("--prompt TEXT"), msgs);
    }

    @Test void verifyParallelNeedsAMesh() throws Exception {
        Path model = TinyFluxAccess.writeDiffusers(tmp.resolve("tiny"));
        CommandLine cl = new CommandLine(new GenerateCommand())
                .setExecutionExceptionHandler((ex, cmd, parsed) -> {
                    cmd.getErr().println("dit4j: " + ex.getMessage());
                    return 1;
                });
        java.io.StringWriter err = new java.io.StringWriter();
        cl.setErr(new java.io.PrintWriter(err, true));
        int code = cl.execute("--model", model.toString(), "-p", "a cat", "-W", "96", "-H", "64", "--steps", "1", "--t5-length", "32",
                "--backend", "cpu", "--verify-parallel");
        assertEquals(1, code);
        assertTrue(err.toString().contains("--verify-parallel compares one device with a mesh"), err.toString());
    }

    @Test void aStepCacheRunsOnASequenceMeshAndPrintsItsPattern() throws Exception {
        Path model = TinyFluxAccess.writeDiffusers(tmp.resolve("tiny"));
        Path out = tmp.resolve("cached.png");
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        PrintStream old = System.err;
        int code;
        System.setErr(new PrintStream(bytes, true, StandardCharsets.UTF_8));
        try {
            code = new CommandLine(new GenerateCommand()).execute("--model", model.toString(), "-p", "a photo of a cat", "-W", "96",
                    "-H", "64", "--steps", "8", "--t5-length", "32", "--seed", "42", "--backend", "cpu", "--ring", "2",
                    "--cache", "fbcache:0.5", "-o", out.toString());
        } finally {
            System.setErr(old);
        }
        String text = bytes.toString(StandardCharsets.UTF_8);
        assertEquals(0, code, text);
        assertTrue(text.contains("mesh:    dp1×cfg1×ring2×ulysses1"), text);
        assertTrue(Pattern.compile("cond\\s+[#.]{8} computed \\d/8, skipped [1-9]").matcher(text).find(), "no cache pattern with skips in:\n" + text);
        assertTrue(Files.exists(out));
    }

    @Test void aStepCacheOnACfgParallelMeshIsRefused() throws Exception {
        Path model = TinyFluxAccess.writeDiffusers(tmp.resolve("tiny"));
        CommandLine cl = new CommandLine(new GenerateCommand())
                .setExecutionExceptionHandler((ex, cmd, parsed) -> {
                    cmd.getErr().println("dit4j: " + ex.getMessage());
                    return 1;
                });
        java.io.StringWriter err = new java.io.StringWriter();
        cl.setErr(new java.io.PrintWriter(err, true));
        int code = cl.execute("--model", model.toString(), "-p", "a cat", "--negative-prompt", "a dog", "--true-cfg", "3", "-W", "96",
                "-H", "64", "--steps", "2", "--t5-length", "32", "--backend", "cpu", "--cfg-parallel", "2", "--cache", "teacache");
        assertEquals(1, code);
        assertTrue(err.toString().contains("--cfg-parallel 1 --dp 1 with --cache"), err.toString());
    }
}
