package org.dit4j.engine.bench;

import org.dit4j.core.io.SafeTensorsFile;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.engine.Backends;
import org.dit4j.models.wan.WanConfig;
import org.dit4j.models.wan.WanTransformer;
import org.dit4j.models.wan.WanWeights;

import java.nio.file.Path;
import java.util.Locale;

/**
 * Full-size exactness check against diffusers: loads a Wan transformer checkpoint written by
 * {@code bench/wan_torch_baseline.py --save-dir} (diffusers layout, with its config.json) through dit4j's loader, and
 * the "io" file beside it (diffusers' inputs, its bf16 output and its float32 output on the same weights); runs
 * dit4j's forward on the same inputs in each requested dtype and prints the relative L2 errors. The verdict is taken
 * against diffusers' float32 output; exit status 1 when any dtype exceeds the limit.
 * <pre>java -cp dit4j.jar org.dit4j.engine.bench.WanReferenceCheck WEIGHTS IO [limit=2e-2] [backend=auto] [dtypes=BF16]</pre>
 */
public final class WanReferenceCheck {
    private WanReferenceCheck() {}

    public static void main(String[] args) {
        if (args.length < 2) {
            System.err.println("usage: WanReferenceCheck WEIGHTS IO [limit] [backend] [dtypes, e.g. BF16,F32]");
            System.exit(2);
        }
        double limit = args.length > 2 ? Double.parseDouble(args[2]) : 2e-2;
        String backend = args.length > 3 ? args[3] : "auto";
        boolean pass = true;
        for (String dt : (args.length > 4 ? args[4] : "BF16").split(",")) {
            FluxReferenceCheck.Errors e = check(Path.of(args[0]), Path.of(args[1]), backend, DType.valueOf(dt.trim()));
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

    /** rel-L2 of dit4j's output in {@code dtype} against diffusers' bf16 output, its fp32 output (NaN if absent), and theirs. */
    public static FluxReferenceCheck.Errors check(Path weights, Path io, String backend, DType dtype) {
        try (Ops ops = Backends.open(backend); WeightSource w = WeightSource.open(weights); SafeTensorsFile f = SafeTensorsFile.open(io);
             Scope scope = Scope.open()) {
            WanConfig cfg = WanConfig.detect(w);
            long t0 = System.nanoTime();
            WanWeights ww = WanWeights.load(ops, w, cfg, dtype);
            ops.synchronize();
            double s = (System.nanoTime() - t0) / 1e9;
            System.out.printf(Locale.ROOT, "loaded %s (%s) as %s in %.1f s on %s%n", weights, cfg, dtype, s, ops.name());
            try (ww) {
                WanTransformer model = new WanTransformer(ops, ww);
                Tensor latent = in(ops, f.tensor("hidden_states"), dtype);
                Tensor context = in(ops, f.tensor("encoder_hidden_states"), dtype);
                Tensor t = f.tensor("timestep");
                long t1 = System.nanoTime();
                Tensor outDev = model.forward(latent, t, context);
                float[] a = ops.toHost(outDev).toFloatArray();
                System.out.printf(Locale.ROOT, "dit4j %s forward (latent %s, context %s) in %.2f s (first call, incl. kernel builds)%n",
                        dtype, latent.shape(), context.shape(), (System.nanoTime() - t1) / 1e9);
                float[] ref = f.tensor("output").toFloatArray();
                float[] ref32 = f.contains("output_f32") ? f.tensor("output_f32").toFloatArray() : null;
                return new FluxReferenceCheck.Errors(FluxReferenceCheck.relL2(a, ref),
                        ref32 == null ? Double.NaN : FluxReferenceCheck.relL2(a, ref32),
                        ref32 == null ? Double.NaN : FluxReferenceCheck.relL2(ref, ref32));
            }
        }
    }

    private static Tensor in(Ops ops, Tensor host, DType dtype) {
        Tensor d = ops.upload(host);
        return d.dtype() == dtype ? d : ops.cast(d, dtype);
    }
}
