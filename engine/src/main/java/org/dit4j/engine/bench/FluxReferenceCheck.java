package org.dit4j.engine.bench;

import org.dit4j.core.io.SafeTensorsFile;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.engine.Backends;
import org.dit4j.models.flux.FluxConfig;
import org.dit4j.models.flux.FluxTransformer;
import org.dit4j.models.flux.FluxWeights;

import java.nio.file.Path;
import java.util.Locale;

/**
 * Full-size exactness check against diffusers: loads a Flux transformer checkpoint and an "io" file written by
 * {@code bench/flux_torch_baseline.py --save-dir} (diffusers' inputs and its output), runs dit4j's forward on the
 * same inputs and prints the relative L2 error. Exit status 1 when it exceeds the limit.
 * When the io file also holds diffusers' float32 output ({@code output_f32}), the errors against it are printed too, so
 * dit4j's bf16 error can be compared with diffusers' own bf16 error on the same weights.
 * <pre>java -cp dit4j.jar org.dit4j.engine.bench.FluxReferenceCheck WEIGHTS IO [limit=2e-2] [backend=auto] [dtypes=BF16]</pre>
 */
public final class FluxReferenceCheck {
    private FluxReferenceCheck() {}

    public static void main(String[] args) {
        if (args.length < 2) {
            System.err.println("usage: FluxReferenceCheck WEIGHTS IO [limit] [backend] [dtypes, e.g. BF16,F32]");
            System.exit(2);
        }
        double limit = args.length > 2 ? Double.parseDouble(args[2]) : 2e-2;
        String backend = args.length > 3 ? args[3] : "auto";
        boolean pass = true;
        for (String dt : (args.length > 4 ? args[4] : "BF16").split(",")) {
            Errors e = check(Path.of(args[0]), Path.of(args[1]), backend, DType.valueOf(dt.trim()));
            // diffusers' own bf16 output can be far from the exact answer (9e-2 at full Flux size with random weights):
            // when its fp32 output is there, that is the yardstick; otherwise the bf16 output is.
            double judged = Double.isNaN(e.vsF32()) ? e.vsBf16() : e.vsF32();
            boolean ok = judged <= limit;
            pass &= ok;
            System.out.printf(Locale.ROOT, "dit4j %s vs diffusers bf16 output: rel-L2 %.3e%n", dt, e.vsBf16());
            if (!Double.isNaN(e.vsF32()))
                System.out.printf(Locale.ROOT, "dit4j %s vs diffusers fp32 output: rel-L2 %.3e (diffusers bf16 vs its fp32: %.3e)%n", dt,
                        e.vsF32(), e.refBf16VsF32());
            System.out.printf(Locale.ROOT, "=> %s: rel-L2 %.3e vs the %s reference, limit %.0e%n", ok ? "PASS" : "FAIL", judged,
                    Double.isNaN(e.vsF32()) ? "bf16" : "fp32", limit);
        }
        System.exit(pass ? 0 : 1);
    }

    /** rel-L2 of dit4j's output against diffusers' bf16 output, its fp32 output (NaN if absent), and theirs against each other. */
    public record Errors(double vsBf16, double vsF32, double refBf16VsF32) {}

    public static Errors check(Path weights, Path io, String backend, DType dtype) {
        try (Ops ops = Backends.open(backend); WeightSource w = WeightSource.open(weights); SafeTensorsFile f = SafeTensorsFile.open(io);
             Scope scope = Scope.open()) {
            FluxConfig cfg = FluxConfig.detect(w);
            long t0 = System.nanoTime();
            FluxWeights fw = FluxWeights.load(ops, w, cfg, dtype);
            ops.synchronize();
            double s = (System.nanoTime() - t0) / 1e9;
            long bytes = 0;
            for (String n : w.names()) bytes += w.info(n).byteSize();
            System.out.printf(Locale.ROOT, "loaded %s (%.1f GB on disk) as %s in %.1f s: %.2f GB/s read, on %s%n", weights, bytes / 1e9,
                    dtype, s, bytes / 1e9 / s, ops.name());
            FluxTransformer model = new FluxTransformer(ops, fw);
            Tensor img = in(ops, f.tensor("hidden_states"), dtype);
            Tensor txt = in(ops, f.tensor("encoder_hidden_states"), dtype);
            Tensor y = in(ops, f.tensor("pooled_projections"), dtype);
            float[] t = f.tensor("timestep").toFloatArray();
            float[] g = f.contains("guidance") ? f.tensor("guidance").toFloatArray() : null;
            FluxTransformer.Conditioning c = model.prepare(t, cfg.guidanceEmbed() ? g : null, f.tensor("img_ids"), f.tensor("txt_ids"), dtype);
            float[] a = ops.toHost(model.forward(img, txt, y, c)).toFloatArray();
            float[] ref = f.tensor("output").toFloatArray();
            float[] ref32 = f.contains("output_f32") ? f.tensor("output_f32").toFloatArray() : null;
            fw.close();
            return new Errors(relL2(a, ref), ref32 == null ? Double.NaN : relL2(a, ref32), ref32 == null ? Double.NaN : relL2(ref, ref32));
        }
    }

    static double relL2(float[] a, float[] ref) {
        if (a.length != ref.length) throw new IllegalStateException("output has " + a.length + " values, reference " + ref.length);
        double num = 0, den = 0;
        for (int i = 0; i < a.length; i++) {
            double d = (double) a[i] - ref[i];
            num += d * d;
            den += (double) ref[i] * ref[i];
        }
        return Math.sqrt(num / Math.max(den, 1e-300));
    }

    private static Tensor in(Ops ops, Tensor host, DType dtype) {
        Tensor d = ops.upload(host);
        return d.dtype() == dtype ? d : ops.cast(d, dtype);
    }
}
