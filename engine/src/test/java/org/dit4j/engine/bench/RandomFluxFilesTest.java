package org.dit4j.engine.bench;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.tensor.DType;
import org.dit4j.models.text.ClipTextConfig;
import org.dit4j.models.text.ClipTextModel;
import org.dit4j.models.text.T5Config;
import org.dit4j.models.text.T5Encoder;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The name/shape tables of the random model writer are what the text-encoder loaders read (checked at a tiny size). */
class RandomFluxFilesTest {
    @Test void textEncoderTablesLoad(@TempDir Path dir) {
        ClipTextConfig clip = new ClipTextConfig(120, 128, 2, 64, 2, 16, 1e-5f, ClipTextConfig.Activation.QUICK_GELU, 119);
        T5Config t5 = new T5Config(100, 32, 8, 4, 48, 2, 32, 128, false, 1e-6f);
        RandomFluxFiles.file(dir.resolve("clip.safetensors"), RandomFluxFiles.clipShapes(clip), 1);
        RandomFluxFiles.file(dir.resolve("t5.safetensors"), RandomFluxFiles.t5Shapes(t5), 2);
        try (CpuBackend ops = new CpuBackend(1)) {
            try (WeightSource w = WeightSource.open(dir.resolve("clip.safetensors"))) {
                assertEquals(clip.hidden(), ClipTextConfig.detect(w).hidden());
                ClipTextModel.load(ops, w, DType.F32).close();
            }
            try (WeightSource w = WeightSource.open(dir.resolve("t5.safetensors"))) {
                T5Config found = T5Config.detect(w);
                assertEquals(t5.dModel(), found.dModel());
                assertEquals(t5.numLayers(), found.numLayers());
                T5Encoder.load(ops, w, DType.F32).close();
            }
        }
    }
}
