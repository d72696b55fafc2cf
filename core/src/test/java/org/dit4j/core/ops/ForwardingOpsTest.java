package org.dit4j.core.ops;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ForwardingOpsTest {

    /** A decorator must forward default methods too, or it would replace a backend's fused kernel by the default. */
    @Test void forwardsEveryOpsMethodIncludingDefaults() {
        List<String> missing = new ArrayList<>();
        for (Method m : Ops.class.getMethods()) {
            if (Modifier.isStatic(m.getModifiers())) continue;
            try {
                Method f = ForwardingOps.class.getDeclaredMethod(m.getName(), m.getParameterTypes());
                if (Modifier.isAbstract(f.getModifiers())) missing.add(m.getName());
            } catch (NoSuchMethodException e) {
                missing.add(m.getName() + " (not declared)");
            }
        }
        assertEquals(List.of(), missing, "ForwardingOps must override every Ops method; add the new ones");
    }

    @Test void decoratorResultsAreTheDelegates() {
        try (CpuBackend cpu = new CpuBackend(1); Scope s = Scope.open()) {
            Ops wrapped = new ForwardingOps(cpu) {};
            Tensor x = Tensor.of(new float[] {1, -2, 3, -4}, 2, 2);
            assertArrayEquals(cpu.silu(x).toFloatArray(), wrapped.silu(x).toFloatArray());
            assertEquals(cpu.device(), wrapped.device());
            assertTrue(wrapped.name().startsWith("cpu"));
        }
    }
}
