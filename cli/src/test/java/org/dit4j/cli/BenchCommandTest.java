package org.dit4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code dit4j bench --model wan-*} on the CPU backend: the reduced configuration runs and its JSON is written. */
class BenchCommandTest {

    @Test void wanBenchRunsOnTheCpuAndWritesJson(@TempDir Path dir) throws Exception {
        Path json = dir.resolve("wan.json");
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        int code;
        try {
            System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
            code = new CommandLine(new BenchCommand()).execute("--model", "wan-1.3b", "--backend", "cpu", "--warmup", "0",
                    "--iters", "1", "--frames", "9", "--width", "48", "--height", "32", "--json", json.toString());
        } finally {
            System.setOut(old);
        }
        String log = buf.toString(StandardCharsets.UTF_8);
        assertEquals(0, code, log);
        String j = Files.readString(json);
        // the CPU runs the reduced configuration at most 5 frames and 64 px: 5 frames → 2 latent frames, 48×32 px → 6×4
        // latent → 3×2 patches: 12 tokens
        assertTrue(j.contains("\"model\": \"wan-1.3b-reduced\"") && j.contains("\"size\": \"48x32x5\"")
                && j.contains("\"video_tokens\": 12"), j);
        assertTrue(log.contains("reduced Wan configuration"), log);
    }

    @Test void fluxRefusesTheWanSizeOptions() {
        StringWriter err = new StringWriter();
        CommandLine cl = new CommandLine(new BenchCommand());
        cl.setErr(new PrintWriter(err));
        int code = cl.execute("--model", "flux-dev", "--backend", "cpu", "--frames", "81");
        assertNotEquals(0, code);
    }
}
