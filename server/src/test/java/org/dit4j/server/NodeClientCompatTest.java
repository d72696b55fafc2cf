package org.dit4j.server;

import org.dit4j.server.json.Json;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Compatibility with a real third-party ComfyUI client: runs server/src/test/node/client-check.mjs, which drives
 * {@code @saintno/comfyui-sdk} (installed from the npm registry with {@code npm ci} into the git-ignored
 * node_modules on first use) through both Flux workflows. Skipped when {@code node}/{@code npm} are not installed.
 */
class NodeClientCompatTest {

    @TempDir Path dir;

    private static final Path NODE_DIR = Path.of("src/test/node").toAbsolutePath();

    private static boolean onPath(String exe) {
        for (String p : System.getenv().getOrDefault("PATH", "").split(java.io.File.pathSeparator))
            if (Files.isExecutable(Path.of(p, exe))) return true;
        return false;
    }

    private static String run(List<String> cmd, long timeoutSeconds, int[] exit) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).directory(NODE_DIR.toFile()).redirectErrorStream(true).start();
        byte[][] out = new byte[1][];
        Thread reader = Thread.ofPlatform().start(() -> {
            try {
                out[0] = p.getInputStream().readAllBytes();
            } catch (IOException e) {
                out[0] = ("reading output failed: " + e).getBytes();
            }
        });
        if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            reader.join(2000);
            throw new AssertionError(String.join(" ", cmd) + " did not finish within " + timeoutSeconds + " s");
        }
        reader.join(5000);
        exit[0] = p.exitValue();
        return out[0] == null ? "" : new String(out[0]);
    }

    @Test void thirdPartyClientRunsBothFluxWorkflows() throws Exception {
        Assumptions.assumeTrue(onPath("node") && onPath("npm"), "node/npm not installed: the third-party client check is skipped");
        int[] exit = new int[1];
        if (!Files.isDirectory(NODE_DIR.resolve("node_modules/@saintno/comfyui-sdk"))) {
            String log = run(List.of("npm", "ci", "--no-audit", "--no-fund"), 300, exit);
            assertEquals(0, exit[0], "npm ci in " + NODE_DIR + " failed:\n" + log);
        }
        try (Harness h = new Harness(dir)) {
            // The SDK subscribes to a prompt's events only after POST /prompt has answered; a prompt that finishes in
            // that gap leaves it waiting forever (against ComfyUI too). Real sampling takes seconds; so do these steps.
            h.engine.stepDelayMillis = 150;
            Path flux = dir.resolve("flux.json"), custom = dir.resolve("custom.json");
            Files.writeString(flux, Json.write(Harness.fluxWorkflow(1, 64, "placeholder")));
            Files.writeString(custom, Json.write(Harness.customWorkflow(1)));
            String out = run(List.of("node", "client-check.mjs", h.url, flux.toString(), custom.toString()), 120, exit);
            assertEquals(0, exit[0], "client-check.mjs failed:\n" + out);
            assertTrue(out.contains("CLIENT CHECK OK"), out);
            assertTrue(h.engine.jobs.stream().anyMatch(j -> j.noiseSeed() == 31337), "the client's seed did not reach the sampler");
            assertTrue(h.engine.jobs.stream().anyMatch(j -> j.noiseSeed() == 4711), "the client's noise_seed did not reach the sampler");
        }
    }
}
