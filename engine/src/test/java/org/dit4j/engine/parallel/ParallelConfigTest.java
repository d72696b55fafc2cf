package org.dit4j.engine.parallel;

import org.junit.jupiter.api.Test;

import java.util.HashSet;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ParallelConfigTest {

    @Test void parsesDegreesInAnyOrderAndSpelling() {
        assertEquals(new ParallelConfig(1, 1, 1, 4), ParallelConfig.parse("ulysses=4"));
        assertEquals(new ParallelConfig(1, 1, 2, 2), ParallelConfig.parse("ring=2,ulysses=2"));
        assertEquals(new ParallelConfig(2, 2, 1, 1), ParallelConfig.parse("cfg=2 dp=2"));
        assertEquals(new ParallelConfig(1, 2, 1, 4), ParallelConfig.parse("cfg=2xulysses=4"));
        assertEquals(ParallelConfig.single(), ParallelConfig.parse(""));
        assertEquals(8, ParallelConfig.parse("dp=2,ring=2,ulysses=2").worldSize());
        var e = assertThrows(IllegalArgumentException.class, () -> ParallelConfig.parse("tensor=2"));
        assertTrue(e.getMessage().contains("unknown degree 'tensor'"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ParallelConfig.parse("ring=two"));
    }

    @Test void invalidDegreesAndMismatchesAreExplained() {
        var zero = assertThrows(IllegalArgumentException.class, () -> new ParallelConfig(1, 1, 0, 1));
        assertTrue(zero.getMessage().contains("ring must be >= 1"), zero.getMessage());
        var cfg3 = assertThrows(IllegalArgumentException.class, () -> new ParallelConfig(1, 3, 1, 1));
        assertTrue(cfg3.getMessage().contains("1 or 2"), cfg3.getMessage());
        var world = assertThrows(IllegalArgumentException.class, () -> ParallelConfig.ulysses(4).checkWorldSize(2));
        assertTrue(world.getMessage().contains("needs 4 ranks") && world.getMessage().contains("2 are given"), world.getMessage());
        var heads = assertThrows(IllegalArgumentException.class, () -> new ParallelConfig(1, 1, 1, 16).checkHeads("Flux.1-dev", 24));
        assertTrue(heads.getMessage().contains("24 attention heads") && heads.getMessage().contains("ring=2,ulysses=8"), heads.getMessage());
        new ParallelConfig(1, 1, 2, 4).checkHeads("Flux.1-dev", 24);
        var seq = assertThrows(IllegalArgumentException.class, () -> new ParallelConfig(1, 1, 2, 2).checkSequence("the text", 77));
        assertTrue(seq.getMessage().contains("77 tokens") && seq.getMessage().contains("multiple of 4"), seq.getMessage());
    }

    @Test void meshCoordinatesAndGroupsCoverEveryRankOnce() {
        Mesh mesh = new Mesh(new ParallelConfig(2, 2, 2, 2));
        for (int r = 0; r < 16; r++) assertEquals(r, mesh.rank(mesh.coord(r)), "rank ↔ coordinates");
        assertEquals(new Mesh.Coord(1, 0, 1, 1), mesh.coord(11));
        assertArrayEquals(new int[] {10, 11}, mesh.group(Mesh.Axis.ULYSSES, 11));
        assertArrayEquals(new int[] {9, 11}, mesh.group(Mesh.Axis.RING, 11));
        assertArrayEquals(new int[] {11, 15}, mesh.group(Mesh.Axis.CFG, 11));
        assertArrayEquals(new int[] {3, 11}, mesh.group(Mesh.Axis.DP, 11));
        assertArrayEquals(new int[] {8, 9, 10, 11}, mesh.group(Mesh.Axis.SEQUENCE, 11));
        assertEquals(3, mesh.sequenceIndex(11));
        for (Mesh.Axis axis : Mesh.Axis.values()) {
            Set<Integer> seen = new HashSet<>();
            for (int r = 0; r < 16; r++) {
                int[] g = mesh.group(axis, r);
                assertEquals(r, g[mesh.key(axis, r)], axis + ": a rank sits at its key in its group");
                if (g[0] == r) for (int x : g) assertTrue(seen.add(x), axis + ": rank " + x + " in two groups");
            }
            assertEquals(16, seen.size(), axis + ": groups cover the mesh");
        }
        assertTrue(mesh.describe().contains("rank 11"));
    }
}
