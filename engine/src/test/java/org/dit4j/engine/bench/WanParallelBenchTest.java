package org.dit4j.engine.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

import org.dit4j.cuda.Cuda;
import org.junit.jupiter.api.Test;

/**
 * WanParallelBench's code path without a GPU: the reduced Wan configuration on in-process CPU ranks, every mesh's
 * velocity within f32 rounding of one rank (rel-L2 ≤ 1e-5), the table and the JSON rows.
 */
class WanParallelBenchTest {
    @Test void cpuRanksRunEveryMeshAndMatchOneRank() throws Exception {
        assumeTrue(Cuda.deviceCount() == 0, "the CPU path runs only without a GPU");
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        WanParallelBench.Run run = WanParallelBench.run("wan-1.3b", 1, new String[] {"ulysses=2", "ring=2", "cfg=2"},
                new int[] {832, 480, 81}, new PrintStream(bytes, true, StandardCharsets.UTF_8));
        String text = bytes.toString(StandardCharsets.UTF_8);
        assertEquals("wan-1.3b-reduced", run.model());
        assertEquals(5, run.rows().size(), "1 GPU, 1 GPU CFG and the three 2-rank meshes:\n" + text);
        for (WanParallelBench.Timing t : run.rows().subList(2, 5)) {
            assertEquals(2, t.gpus());
            assertTrue(t.relL2() <= 1e-5, t.config() + ": rel-L2 vs one rank " + t.relL2() + " > 1e-5");
            assertTrue(t.eagerMs() > 0, t.config());
        }
        String json = WanParallelBench.json(run.model(), run.size(), run.rows());
        assertTrue(json.contains("\"size\": \"64x64x5\", \"config\": \"dp1×cfg2×ring1×ulysses1\", \"gpus\": 2"), json);
    }
}
