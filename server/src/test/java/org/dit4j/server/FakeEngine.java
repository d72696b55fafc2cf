package org.dit4j.server;

import org.dit4j.server.engine.Checkpoint;
import org.dit4j.server.engine.Conditioning;
import org.dit4j.server.engine.DeviceInfo;
import org.dit4j.server.engine.DiffusionModel;
import org.dit4j.server.engine.ImageBatch;
import org.dit4j.server.engine.Latent;
import org.dit4j.server.engine.LoraWeights;
import org.dit4j.server.engine.ModelProvider;
import org.dit4j.server.engine.SampleJob;
import org.dit4j.server.engine.SampleResult;
import org.dit4j.server.engine.Sampling;
import org.dit4j.server.engine.StepObserver;
import org.dit4j.server.preview.LatentFormat;
import org.dit4j.server.engine.TextEmbedding;
import org.dit4j.server.engine.TextEncoder;
import org.dit4j.server.engine.Vae;
import org.dit4j.server.sampling.ModelSampling;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A tiny deterministic engine for the server tests. The "transformer" predicts x₀ = a pattern derived from the
 * prompt text and the Flux guidance; the sampler is flow-matching Euler on the given sigmas with noise
 * {@code java.util.Random(seed).nextGaussian()}; the "VAE" maps latent channels 0..2 through a sigmoid and
 * upsamples 8×. Files named {@code broken*} fail to load. It counts loads so tests can check caching.
 */
final class FakeEngine implements ModelProvider, Sampling {

    final AtomicInteger unetLoads = new AtomicInteger(), clipLoads = new AtomicInteger(), vaeLoads = new AtomicInteger(),
            loraLoads = new AtomicInteger(), samples = new AtomicInteger(), closed = new AtomicInteger(), unloads = new AtomicInteger();
    final List<SampleJob> jobs = java.util.Collections.synchronizedList(new ArrayList<>());
    volatile long stepDelayMillis;

    private static void check(Path p) throws IOException {
        if (!Files.isRegularFile(p)) throw new IOException(p + " does not exist");
        if (p.getFileName().toString().startsWith("broken"))
            throw new IOException(p.getFileName() + ": not a safetensors file (header length exceeds the file size)");
    }

    record Embedding(float[] values) implements TextEmbedding {
        @Override public TextEmbedding zeroed() { return new Embedding(new float[values.length]); }
    }

    final class Model implements DiffusionModel {
        final String name;
        Model(String name) { this.name = name; }
        @Override public String name() { return name; }
        @Override public String family() { return name.contains("schnell") ? "flux-schnell" : "flux-dev"; }
        @Override public ModelSampling defaultSampling() { return name.contains("schnell") ? ModelSampling.flow(1, 1) : ModelSampling.flux(1.15); }
        @Override public int latentChannels() { return 16; }
        @Override public void close() { closed.incrementAndGet(); }
        @Override public String toString() { return "<FakeModel " + name + ">"; }
    }

    final class Clip implements TextEncoder {
        @Override public TextEmbedding encode(String text) {
            float[] v = new float[4];
            int h = text.hashCode();
            for (int i = 0; i < 4; i++) v[i] = ((h >>> (8 * i)) & 0xff) / 255f * 2 - 1;
            return new Embedding(v);
        }
        @Override public void close() { closed.incrementAndGet(); }
    }

    final class FakeVae implements Vae {
        @Override public int latentChannels() { return 16; }
        @Override public int downscale() { return 8; }

        @Override public ImageBatch decode(Latent l) {
            int b = l.batch(), h = l.height() * 8, w = l.width() * 8, lh = l.height(), lw = l.width(), c = l.channels();
            float[] px = new float[b * h * w * 3];
            for (int n = 0; n < b; n++)
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                        for (int k = 0; k < 3; k++) {
                            float v = l.samples()[((n * c + k) * lh + y / 8) * lw + x / 8];
                            px[((n * h + y) * w + x) * 3 + k] = (float) (1 / (1 + Math.exp(-v)));
                        }
            return new ImageBatch(b, h, w, 3, px);
        }

        @Override public ImageBatch decodeTiled(Latent latent, int tileSize, int overlap) { return decode(latent); }

        @Override public Latent encode(ImageBatch img) {
            int b = img.batch(), lh = img.height() / 8, lw = img.width() / 8;
            float[] s = new float[b * 16 * lh * lw];
            for (int n = 0; n < b; n++)
                for (int k = 0; k < 3; k++)
                    for (int y = 0; y < lh; y++)
                        for (int x = 0; x < lw; x++) {
                            double acc = 0;
                            for (int dy = 0; dy < 8; dy++) for (int dx = 0; dx < 8; dx++) acc += img.pixels()[img.index(n, y * 8 + dy, x * 8 + dx, k)];
                            double p = Math.min(0.999, Math.max(0.001, acc / 64));
                            s[((n * 16 + k) * lh + y) * lw + x] = (float) Math.log(p / (1 - p));
                        }
            return new Latent(new long[]{b, 16, lh, lw}, s);
        }

        @Override public void close() { closed.incrementAndGet(); }
    }

    @Override public DiffusionModel loadDiffusionModel(Path file, String weightDtype) throws IOException {
        check(file);
        unetLoads.incrementAndGet();
        return new Model(file.getFileName().toString());
    }

    @Override public TextEncoder loadTextEncoder(List<Path> files, String type, String device) throws IOException {
        for (Path f : files) check(f);
        clipLoads.incrementAndGet();
        return new Clip();
    }

    @Override public Vae loadVae(Path file) throws IOException {
        check(file);
        vaeLoads.incrementAndGet();
        return new FakeVae();
    }

    @Override public Checkpoint loadCheckpoint(Path file) throws IOException {
        check(file);
        unetLoads.incrementAndGet();
        return new Checkpoint(new Model(file.getFileName().toString()), new Clip(), new FakeVae());
    }

    @Override public LoraWeights loadLora(Path file) throws IOException {
        check(file);
        loraLoads.incrementAndGet();
        String name = file.getFileName().toString();
        return () -> name;
    }

    @Override public void unloadModels() { unloads.incrementAndGet(); }

    @Override public List<DeviceInfo> devices() { return List.of(new DeviceInfo("Fake GPU", "cuda", 0, 80L << 30, 79L << 30)); }

    @Override public List<String> samplerNames() { return List.of("euler", "uni_pc"); }

    /** x₀ the fake transformer predicts for a conditioning: channel k holds embedding[k % 4] · guidance/3.5. */
    static float[] target(Conditioning c, Latent shape) {
        Conditioning.Entry e = c.entries().getFirst();
        float[] emb = ((Embedding) e.embedding()).values();
        double g = e.guidance() == null ? 3.5 : e.guidance();
        float[] out = new float[shape.samples().length];
        int plane = shape.height() * shape.width();
        for (int i = 0; i < out.length; i++) out[i] = (float) (emb[(i / plane) % 4] * 3 * g / 3.5);
        return out;
    }

    @Override public SampleResult sample(SampleJob job, StepObserver observer) {
        samples.incrementAndGet();
        jobs.add(job);
        Latent in = job.latent();
        float[] s = job.sigmas();
        float[] x = in.samples().clone();
        if (job.addNoise()) {
            Random r = new Random(job.noiseSeed());
            for (int i = 0; i < x.length; i++) x[i] = (float) (s[0] * r.nextGaussian() + (1 - s[0]) * x[i]);
        }
        float[] x0 = target(job.positive(), in);
        for (int i = 0; i + 1 < s.length; i++) {
            if (stepDelayMillis > 0) {
                try {
                    Thread.sleep(stepDelayMillis);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            for (int k = 0; k < x.length; k++) {
                float d = (x[k] - x0[k]) / s[i];
                x[k] = x[k] + (s[i + 1] - s[i]) * d;
            }
            if (in.channels() == 16) observer.stepDone(i, s.length - 1, LatentFormat.FLUX, x0, in.shape());     // previews, as Flux
            else observer.stepDone(i, s.length - 1);
        }
        return new SampleResult(new Latent(in.shape(), x), new Latent(in.shape(), Arrays.copyOf(x0, x0.length)));
    }
}
