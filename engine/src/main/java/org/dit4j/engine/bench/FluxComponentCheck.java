package org.dit4j.engine.bench;

import org.dit4j.core.io.SafeTensorsFile;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.engine.Backends;
import org.dit4j.models.text.ClipTextConfig;
import org.dit4j.models.text.ClipTextModel;
import org.dit4j.models.text.T5Config;
import org.dit4j.models.text.T5Encoder;
import org.dit4j.models.vae.AutoencoderKL;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * Exactness check of Flux's other components against their references, on the same random weights: T5-XXL
 * (transformers {@code T5EncoderModel}), CLIP-L ({@code CLIPTextModel}, last hidden state and pooled output) and the
 * Flux VAE (diffusers {@code AutoencoderKL}, decode and encode). Reads the folder written by
 * {@code bench/flux_components_reference.py} ({@code t5.safetensors}, {@code clip.safetensors}, {@code vae/},
 * {@code io.safetensors}), loads each model through dit4j's normal loaders, runs it on the chosen backend in each
 * activation dtype and compares with the reference's float32 output.
 *
 * <p>Tolerances (rel-L2 = ‖a − ref‖ / ‖ref‖ against the reference's fp32 output):
 * <ul>
 *   <li>F32 (weights cast to F32): rel-L2 ≤ {@value #F32_LIMIT}; both sides compute in true fp32 (no TF32), so only
 *       summation order differs.</li>
 *   <li>BF16 (weights as stored, BF16): rel-L2 ≤ max({@value #BF16_LIMIT}, {@value #BF16_REF_FACTOR} × the reference's
 *       own bf16 rel-L2), i.e. 2e-2, or no more than 25% worse than the reference run in bf16 when that alone is
 *       already above 2e-2 (deep stacks such as T5-XXL's 24 blocks and the VAE's 1024² convolutions lose more than 2e-2
 *       to bf16 rounding in any implementation); and for decoded images PSNR ≥ {@value #PSNR_MIN} dB.</li>
 * </ul>
 * PSNR is over the images as the pipeline writes them: clamp(x/2 + 1/2, 0, 1), peak 1.
 * <pre>java -cp dit4j.jar org.dit4j.engine.bench.FluxComponentCheck DIR [backend=auto] [dtypes=F32,BF16]
 *      [parts=t5,clip,vae-decode,vae-encode] [json-file]</pre>
 * Exit status 1 when any comparison fails, 2 on bad arguments.
 */
public final class FluxComponentCheck {
    private FluxComponentCheck() {}

    public static final double F32_LIMIT = 1e-4;
    public static final double BF16_LIMIT = 2e-2;
    public static final double BF16_REF_FACTOR = 1.25;
    public static final double PSNR_MIN = 35;

    static final List<String> PARTS = List.of("t5", "clip", "vae-decode", "vae-encode");

    /** One compared output. psnr is NaN for non-image outputs; refBf16 is the reference's own bf16 rel-L2 (NaN if absent). */
    public record Result(String output, DType dtype, double relL2, double maxAbs, double psnr, double refBf16, double refBf16Psnr,
                         double limit, boolean pass, double loadSeconds, double runSeconds) {}

    public static void main(String[] args) {
        if (args.length < 1) {
            System.err.println("usage: FluxComponentCheck DIR [backend=auto] [dtypes=F32,BF16] [parts=" + String.join(",", PARTS)
                    + "] [json-file]");
            System.exit(2);
        }
        Path dir = Path.of(args[0]);
        String backend = args.length > 1 ? args[1] : "auto";
        List<DType> dtypes = new ArrayList<>();
        for (String d : (args.length > 2 ? args[2] : "F32,BF16").split(",")) dtypes.add(DType.valueOf(d.trim().toUpperCase(Locale.ROOT)));
        Set<String> parts = new LinkedHashSet<>();
        for (String p : (args.length > 3 ? args[3] : String.join(",", PARTS)).split(",")) {
            String q = p.trim().toLowerCase(Locale.ROOT);
            if (q.equals("vae")) {
                parts.add("vae-decode");
                parts.add("vae-encode");
            } else if (PARTS.contains(q)) {
                parts.add(q);
            } else {
                System.err.println("unknown part '" + p + "': expected some of " + PARTS + " (or vae for both VAE parts)");
                System.exit(2);
            }
        }
        List<Result> results = check(dir, backend, dtypes, parts);
        boolean pass = results.stream().allMatch(Result::pass);
        System.out.printf(Locale.ROOT, "%n%-12s %-5s %10s %10s %9s %12s %9s  %s%n", "output", "dtype", "rel-L2", "max|Δ|", "PSNR",
                "ref bf16", "limit", "result");
        for (Result r : results)
            System.out.printf(Locale.ROOT, "%-12s %-5s %10.3e %10.3e %9s %12s %9.1e  %s%n", r.output(), r.dtype(), r.relL2(), r.maxAbs(),
                    Double.isNaN(r.psnr()) ? "-" : String.format(Locale.ROOT, "%.1f dB", r.psnr()),
                    Double.isNaN(r.refBf16()) ? "-" : String.format(Locale.ROOT, "%.3e", r.refBf16()), r.limit(),
                    r.pass() ? "PASS" : "FAIL");
        System.out.println(pass ? "=> PASS: every component matches its reference" : "=> FAIL: see the rows marked FAIL");
        if (args.length > 4) writeJson(Path.of(args[4]), results);
        System.exit(pass ? 0 : 1);
    }

    /** Runs the given parts in the given activation dtypes on {@code backend}; one result per compared output. */
    public static List<Result> check(Path dir, String backend, List<DType> dtypes, Set<String> parts) {
        List<Result> out = new ArrayList<>();
        try (Ops ops = Backends.open(backend); SafeTensorsFile io = SafeTensorsFile.open(dir.resolve("io.safetensors"))) {
            System.out.println("backend " + ops.name() + ", reference " + dir);
            for (DType dt : dtypes) {
                if (dt != DType.F32 && dt != DType.BF16)
                    throw new IllegalArgumentException("dtype " + dt + ": the check runs F32 and/or BF16");
                if (parts.contains("t5")) out.add(t5(ops, dir, io, dt));
                if (parts.contains("clip")) out.addAll(clip(ops, dir, io, dt));
                if (parts.contains("vae-decode") || parts.contains("vae-encode"))
                    out.addAll(vae(ops, dir, io, dt, parts.contains("vae-decode"), parts.contains("vae-encode")));
            }
        }
        return out;
    }

    private static Result t5(Ops ops, Path dir, SafeTensorsFile io, DType dt) {
        try (WeightSource w = WeightSource.open(dir.resolve("t5.safetensors"))) {
            long t0 = System.nanoTime();
            String prefix = T5Config.findPrefix(w);
            T5Config cfg = T5Config.detect(w, prefix);
            try (T5Encoder enc = T5Encoder.load(ops, w, prefix, cfg, dt, dt)) {
                ops.synchronize();
                double load = secs(t0);
                System.out.printf(Locale.ROOT, "T5 %s loaded as %s in %.1f s%n", cfg, dt, load);
                int[][] ids = ints(io, "t5.ids");
                long t1 = System.nanoTime();
                float[] y;
                try (Scope s = Scope.open()) {
                    y = host(ops, enc.encode(ids, null));
                }
                return compare("t5.hidden", dt, y, io, "t5.hidden", false, load, secs(t1));
            }
        }
    }

    private static List<Result> clip(Ops ops, Path dir, SafeTensorsFile io, DType dt) {
        try (WeightSource w = WeightSource.open(dir.resolve("clip.safetensors"))) {
            long t0 = System.nanoTime();
            String prefix = ClipTextConfig.findPrefix(w);
            ClipTextConfig cfg = ClipTextConfig.detect(w, prefix);
            try (ClipTextModel m = ClipTextModel.load(ops, w, prefix, cfg, dt, dt)) {
                ops.synchronize();
                double load = secs(t0);
                System.out.printf(Locale.ROOT, "CLIP %s loaded as %s in %.1f s%n", cfg, dt, load);
                int[][] ids = ints(io, "clip.ids");
                long t1 = System.nanoTime();
                float[] hidden, pooled;
                try (Scope s = Scope.open(); ClipTextModel.Output o = m.encode(ids, null)) {
                    hidden = host(ops, o.hidden());
                    pooled = host(ops, o.pooled());
                }
                double run = secs(t1);
                return List.of(compare("clip.hidden", dt, hidden, io, "clip.hidden", false, load, run),
                        compare("clip.pooled", dt, pooled, io, "clip.pooled", false, load, run));
            }
        }
    }

    private static List<Result> vae(Ops ops, Path dir, SafeTensorsFile io, DType dt, boolean decode, boolean encode) {
        List<Result> out = new ArrayList<>();
        long t0 = System.nanoTime();
        try (AutoencoderKL vae = AutoencoderKL.load(ops, dir.resolve("vae"), dt)) {
            ops.synchronize();
            double load = secs(t0);
            System.out.printf(Locale.ROOT, "VAE %s loaded as %s in %.1f s%n", vae.config(), dt, load);
            if (decode) {
                long t1 = System.nanoTime();
                float[] img;
                try (Scope s = Scope.open()) {
                    img = host(ops, vae.decode(device(ops, io.tensor("vae.z"), dt)));
                }
                out.add(compare("vae.decode", dt, img, io, "vae.dec", true, load, secs(t1)));
            }
            if (encode) {
                long t1 = System.nanoTime();
                float[] mean;
                try (Scope s = Scope.open()) {
                    mean = host(ops, vae.encodeRaw(device(ops, io.tensor("vae.x"), dt)));
                }
                out.add(compare("vae.encode", dt, mean, io, "vae.mean", false, load, secs(t1)));
            }
        }
        return out;
    }

    /** Compares {@code a} with io's {@code key} (fp32 reference) and {@code key_bf16} (the reference's bf16 run). */
    static Result compare(String output, DType dt, float[] a, SafeTensorsFile io, String key, boolean image, double load, double run) {
        float[] ref = io.tensor(key).toFloatArray();
        float[] refBf16 = io.contains(key + "_bf16") ? io.tensor(key + "_bf16").toFloatArray() : null;
        double rel = relL2(a, ref, output), maxAbs = maxAbs(a, ref);
        double own = refBf16 == null ? Double.NaN : relL2(refBf16, ref, key + "_bf16");
        double psnr = image ? psnr(a, ref) : Double.NaN, ownPsnr = image && refBf16 != null ? psnr(refBf16, ref) : Double.NaN;
        double limit = dt == DType.F32 ? F32_LIMIT : Double.isNaN(own) ? BF16_LIMIT : Math.max(BF16_LIMIT, BF16_REF_FACTOR * own);
        boolean pass = rel <= limit && Double.isFinite(rel) && (!image || dt == DType.F32 || psnr >= PSNR_MIN);
        System.out.printf(Locale.ROOT, "  %-11s %-4s rel-L2 %.3e, max|Δ| %.3e%s (reference bf16 vs fp32: %s%s), limit %.1e%s: %s, %.2f s%n",
                output, dt, rel, maxAbs, image ? String.format(Locale.ROOT, ", PSNR %.1f dB", psnr) : "",
                Double.isNaN(own) ? "-" : String.format(Locale.ROOT, "%.3e", own),
                Double.isNaN(ownPsnr) ? "" : String.format(Locale.ROOT, ", %.1f dB", ownPsnr), limit,
                image && dt != DType.F32 ? String.format(Locale.ROOT, " and PSNR ≥ %.0f dB", PSNR_MIN) : "", pass ? "PASS" : "FAIL", run);
        return new Result(output, dt, rel, maxAbs, psnr, own, ownPsnr, limit, pass, load, run);
    }

    static double relL2(float[] a, float[] ref, String what) {
        if (a.length != ref.length)
            throw new IllegalStateException(what + ": dit4j's output has " + a.length + " values, the reference " + ref.length);
        double num = 0, den = 0;
        for (int i = 0; i < a.length; i++) {
            double d = (double) a[i] - ref[i];
            num += d * d;
            den += (double) ref[i] * ref[i];
        }
        return Math.sqrt(num / Math.max(den, 1e-300));
    }

    static double maxAbs(float[] a, float[] ref) {
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            double d = Math.abs((double) a[i] - ref[i]);
            if (!(d <= m)) m = d;   // NaN propagates
        }
        return m;
    }

    /** PSNR (dB, peak 1) of two [−1, 1] images mapped as the pipeline does: clamp(x/2 + 1/2, 0, 1). */
    static double psnr(float[] a, float[] ref) {
        double se = 0;
        for (int i = 0; i < a.length; i++) {
            double d = unit(a[i]) - unit(ref[i]);
            se += d * d;
        }
        double mse = se / a.length;
        return mse == 0 ? Double.POSITIVE_INFINITY : 10 * Math.log10(1 / mse);
    }

    private static double unit(float x) {
        if (Float.isNaN(x)) return Double.NaN;
        return Math.min(1, Math.max(0, x * 0.5 + 0.5));
    }

    private static int[][] ints(SafeTensorsFile io, String name) {
        Tensor t = io.tensor(name);
        if (t.rank() != 2)
            throw new IllegalStateException("io tensor '" + name + "' must be [B, L] token ids, got " + t.shape());
        int b = t.shape().dimInt(0), l = t.shape().dimInt(1);
        int[][] out = new int[b][l];
        for (int i = 0; i < b; i++) for (int j = 0; j < l; j++) out[i][j] = (int) t.getFloat((long) i * l + j);
        return out;
    }

    private static Tensor device(Ops ops, Tensor host, DType dt) {
        Tensor d = ops.upload(host);
        return d.dtype() == dt ? d : ops.cast(d, dt);
    }

    private static float[] host(Ops ops, Tensor t) {
        Tensor h = ops.toHost(t);
        return h.toFloatArray();
    }

    private static double secs(long t0) { return (System.nanoTime() - t0) / 1e9; }

    private static void writeJson(Path file, List<Result> results) {
        StringBuilder sb = new StringBuilder("[\n");
        for (int i = 0; i < results.size(); i++) {
            Result r = results.get(i);
            sb.append(String.format(Locale.ROOT,
                    "  {\"output\": \"%s\", \"dtype\": \"%s\", \"rel_l2\": %s, \"max_abs\": %s, \"psnr_db\": %s, \"ref_bf16_rel_l2\": %s, "
                            + "\"ref_bf16_psnr_db\": %s, \"limit\": %s, \"pass\": %b, \"load_s\": %.3f, \"run_s\": %.3f}%s%n",
                    r.output(), r.dtype(), num(r.relL2()), num(r.maxAbs()), num(r.psnr()), num(r.refBf16()), num(r.refBf16Psnr()),
                    num(r.limit()), r.pass(), r.loadSeconds(), r.runSeconds(), i + 1 < results.size() ? "," : ""));
        }
        sb.append("]\n");
        try {
            Files.writeString(file, sb, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException("cannot write the JSON results to " + file + ": " + e, e);
        }
    }

    private static String num(double v) { return Double.isFinite(v) ? String.format(Locale.ROOT, "%.6g", v) : "null"; }
}
