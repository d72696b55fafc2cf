package org.dit4j.engine.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;

import java.util.List;

import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.parallel.LocalCommunicator;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The axis groups of a mesh: an axis whose group is the whole world in world-rank order reuses the world communicator
 * (no split: one NCCL communicator's buffers fewer per GPU), other axes are split; every group has the mesh's members in
 * key order; closing the groups leaves the world usable.
 */
class MeshCommsTest {

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = ';', value = {
            "ulysses=2;ULYSSES SEQUENCE", "ring=2;RING SEQUENCE", "ring=2,ulysses=2;SEQUENCE", "cfg=2;CFG", "dp=2;DP",
            "cfg=2,ulysses=2;''", "ulysses=4;ULYSSES SEQUENCE"})
    void groupsThatAreTheWorldReuseIt(String spec, String worldAxes) {
        ParallelConfig config = ParallelConfig.parse(spec);
        Mesh mesh = new Mesh(config);
        List<? extends Communicator> worlds = LocalCommunicator.group(config.worldSize());
        List<MeshComms> all = MeshRunner.open(config, worlds);
        for (MeshComms c : all) {
            int r = c.rank();
            for (Mesh.Axis axis : Mesh.Axis.values()) {
                Communicator g = switch (axis) {
                    case DP -> c.dp(); case CFG -> c.cfg(); case RING -> c.ring(); case ULYSSES -> c.ulysses(); case SEQUENCE -> c.sequence();
                };
                int[] members = mesh.group(axis, r);
                assertEquals(members.length, g.size(), spec + " " + axis + " size on rank " + r);
                assertEquals(mesh.key(axis, r), g.rank(), spec + " " + axis + " rank on rank " + r);
                if (worldAxes.contains(axis.name())) assertSame(c.world(), g, spec + " " + axis + " should reuse the world on rank " + r);
                else assertNotSame(c.world(), g, spec + " " + axis + " should be split on rank " + r);
            }
        }
        all.forEach(MeshComms::close);
        // the world still works after the groups are closed (a reused world is not closed with them)
        List<float[]> sums = MeshRunner.run(all, c -> c.world().allReduce(Tensor.of(new float[] {c.rank() + 1f}, 1)).toFloatArray());
        float want = config.worldSize() * (config.worldSize() + 1) / 2f;
        for (float[] s : sums) assertArrayEquals(new float[] {want}, s, spec + ": world all-reduce after closing the groups");
    }
}
