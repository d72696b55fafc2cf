package org.dit4j.engine.flux;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.dit4j.core.io.Json;
import org.dit4j.engine.image.RgbImage;
import org.dit4j.models.sampling.FlowMatchSchedule;
import org.junit.jupiter.api.Test;

/** PNG metadata: Python-compatible JSON and the ComfyUI API graph. */
class GenerationMetadataTest {

    @Test void jsonMatchesPythonJsonDumps() {
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("prompt", "a \"red\" fox\nin snow \u2014 caf\u00e9 \u6771\u4eac \uD83E\uDD8A");
        d.put("seed", 42L);
        d.put("cfg", 1.0);
        d.put("g", 3.5f);
        d.put("g2", 2.2f);
        d.put("x", Arrays.asList(1, "a", null, true, false));
        Map<String, Object> n = new LinkedHashMap<>();
        n.put("k", 0.1159);
        n.put("big", 1e20);
        n.put("small", 1e-07);
        d.put("n", n);
        // python3 -c 'import json; print(json.dumps({...}))' with the same values (Python 3.12)
        assertEquals("{\"prompt\": \"a \\\"red\\\" fox\\nin snow \\u2014 caf\\u00e9 \\u6771\\u4eac \\ud83e\\udd8a\", \"seed\": 42, "
                + "\"cfg\": 1.0, \"g\": 3.5, \"g2\": 2.2, \"x\": [1, \"a\", null, true, false], "
                + "\"n\": {\"k\": 0.1159, \"big\": 1e+20, \"small\": 1e-07}}", PythonJson.dumps(d));
        // repr(float) for: 1e16 1e15 1.2345678901234568e17 0.0001 1e-05 1.5e-05 -2.25 100.0 1234.5678
        double[] v = {1e16, 1e15, 123456789012345678.0, 0.0001, 0.00001, 1.5e-5, -2.25, 100.0, 1234.5678};
        String[] py = {"1e+16", "1000000000000000.0", "1.2345678901234568e+17", "0.0001", "1e-05", "1.5e-05", "-2.25", "100.0", "1234.5678"};
        for (int i = 0; i < v.length; i++) assertEquals(py[i], PythonJson.dumps(v[i]));
    }

    @Test void comfyPromptDescribesTheRun() {
        FluxModelFiles files = new FluxModelFiles("files", FluxModelFiles.Layout.FILES, Path.of("m/flux1-dev.safetensors"),
                Path.of("m/ae.safetensors"), Path.of("m/clip_l.safetensors"), Path.of("m/t5xxl_fp16.safetensors"), null, null, null);
        RgbImage ref = new RgbImage(16, 16, new byte[768]);
        FluxRequest r = new FluxRequest("make it winter", "blurry", 4f, 1024, 768, 28, 2.5f, 7, 2, ref, 512);
        FluxPipeline.Result res = new FluxPipeline.Result(List.of(), r, FlowMatchSchedule.forImageTokens(28, 3072), Map.of(), -1, false,
                new float[0]);
        Map<String, String> chunks = GenerationMetadata.chunks(files, res, "flux1-dev.safetensors", "input.png", true);
        assertEquals(List.of("parameters", "prompt", "dit4j"), new ArrayList<>(chunks.keySet()));
        assertTrue(chunks.get("parameters").startsWith("make it winter\nNegative prompt: blurry\nSteps: 28, "), chunks.get("parameters"));
        assertTrue(chunks.get("parameters").contains("Seed: 7, Size: 1024x768, Guidance: 2.5, True CFG scale: 4.0"), chunks.get("parameters"));
        Map<?, ?> g = (Map<?, ?>) Json.parse(chunks.get("prompt"));
        Map<String, String> classes = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : g.entrySet()) classes.put((String) e.getKey(), (String) ((Map<?, ?>) e.getValue()).get("class_type"));
        assertEquals("UNETLoader", classes.get("1"));
        assertEquals("DualCLIPLoader", classes.get("2"));
        assertEquals("FluxKontextImageScale", classes.get("11"));
        assertEquals("ReferenceLatent", classes.get("13"));
        assertEquals("CLIPTextEncode", classes.get("6"), "true CFG: a negative CLIPTextEncode, not ConditioningZeroOut");
        Map<?, ?> ks = (Map<?, ?>) ((Map<?, ?>) g.get("9")).get("inputs");
        assertEquals(7L, ks.get("seed"));
        assertEquals(4.0, ks.get("cfg"));
        assertEquals(List.of("8", 0L), ks.get("model"), "dev samples through ModelSamplingFlux");
        assertEquals(List.of("5", 0L), ks.get("positive"), "FluxGuidance after ReferenceLatent");
        Map<?, ?> latent = (Map<?, ?>) ((Map<?, ?>) g.get("7")).get("inputs");
        assertEquals(2L, latent.get("batch_size"));
        Map<?, ?> dclip = (Map<?, ?>) ((Map<?, ?>) g.get("2")).get("inputs");
        assertEquals("t5xxl_fp16.safetensors", dclip.get("clip_name1"));
        assertEquals("flux", dclip.get("type"));
        Map<?, ?> dit4j = (Map<?, ?>) Json.parse(chunks.get("dit4j"));
        assertEquals(29, ((List<?>) dit4j.get("sigmas")).size());
    }
}
