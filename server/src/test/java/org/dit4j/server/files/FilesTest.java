package org.dit4j.server.files;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class FilesTest {

    @TempDir Path dir;

    @Test void extraModelPathsAddDirectoriesAsComfyUIReadsThem() throws Exception {
        Path other = dir.resolve("ComfyUI");
        Files.createDirectories(other.resolve("models/unet/sub"));
        Files.write(other.resolve("models/unet/sub/wan.safetensors"), new byte[1]);
        Files.createDirectories(other.resolve("models/clip"));
        Files.write(other.resolve("models/clip/t5.safetensors"), new byte[1]);
        Files.write(other.resolve("models/clip/readme.txt"), new byte[1]);
        Files.createDirectories(dir.resolve("models/diffusion_models"));
        Files.write(dir.resolve("models/diffusion_models/flux.safetensors"), new byte[1]);
        Path yaml = dir.resolve("extra_model_paths.yaml");
        Files.writeString(yaml, """
                comfyui:
                    base_path: ComfyUI/
                    is_default: true
                    unet: models/unet
                    clip: |
                        models/clip
                        models/missing
                empty_section:
                """);
        List<ExtraModelPaths.Entry> entries = ExtraModelPaths.read(yaml);
        assertEquals(3, entries.size());
        assertEquals(new ExtraModelPaths.Entry("unet", other.resolve("models/unet").normalize(), true), entries.getFirst());
        ModelFolders f = ModelFolders.standard(dir.resolve("models"));
        ExtraModelPaths.apply(yaml, f);
        assertEquals(List.of("flux.safetensors", "sub/wan.safetensors"), f.list("diffusion_models"));
        assertEquals(List.of("t5.safetensors"), f.list("text_encoders"), "extension filter drops readme.txt");
        assertEquals(other.resolve("models/unet").normalize(), f.dirs("unet").getFirst(), "is_default puts the directory first");
        assertTrue(f.fullPath("diffusion_models", "sub/wan.safetensors").isPresent());
        assertFalse(f.fullPath("diffusion_models", "../../etc/passwd").isPresent());
    }

    @Test void safePathsRejectTraversalAndEscapingLinks() throws Exception {
        Path base = Files.createDirectories(dir.resolve("base"));
        Files.writeString(dir.resolve("outside.txt"), "x");
        Files.createSymbolicLink(base.resolve("link"), dir.resolve("outside.txt"));
        Files.createDirectories(base.resolve("a"));
        assertTrue(SafePaths.inside(base, "a/new.png").isPresent());
        assertTrue(SafePaths.inside(base, "a/./b/../c.png").isEmpty(), "'..' segments are refused outright");
        assertTrue(SafePaths.inside(base, "/etc/passwd").isEmpty());
        assertTrue(SafePaths.inside(base, "C:\\x").isEmpty());
        assertTrue(SafePaths.inside(base, "a\0b").isEmpty());
        assertTrue(SafePaths.inside(base, "link").isEmpty(), "symbolic link out of the base");
    }
}
