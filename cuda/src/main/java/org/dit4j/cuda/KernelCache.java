package org.dit4j.cuda;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/**
 * Compiles the kernel sources under {@code org/dit4j/cuda/kernels/} with NVRTC for the device's exact architecture,
 * keeps the CUBINs on disk and the loaded modules and functions in memory. A source file is compiled with
 * {@code common.cuh} prepended. The disk key is sha256(source, options, arch, driver version, NVRTC version); the
 * folder is {@code $DIT4J_KERNEL_CACHE}, else {@code ~/.cache/dit4j/kernels}. Not thread-safe: one per backend.
 */
final class KernelCache implements AutoCloseable {
    private static final String RESOURCE_DIR = "/org/dit4j/cuda/kernels/";

    private final CudaDriver drv;
    private final String arch;
    private final int driverVersion;
    private final Path dir;
    private final List<String> options;
    private final Map<String, Long> modules = new HashMap<>();
    private final Map<String, Long> functions = new HashMap<>();

    KernelCache(CudaDriver drv, int ccMajor, int ccMinor, int driverVersion) {
        this.drv = drv;
        this.arch = archName(ccMajor, ccMinor);
        this.driverVersion = driverVersion;
        this.options = List.of("--gpu-architecture=" + arch, "-std=c++17", "-default-device");
        String env = System.getenv("DIT4J_KERNEL_CACHE");
        this.dir = env != null && !env.isBlank() ? Path.of(env)
                : Path.of(System.getProperty("user.home"), ".cache", "dit4j", "kernels");
    }

    /** sm_XY, with the 'a' suffix (architecture-specific features such as wgmma) on 9.0 and 10.x. */
    static String archName(int major, int minor) {
        String s = "sm_" + major + minor;
        return (major == 9 && minor == 0) || major == 10 ? s + "a" : s;
    }

    String arch() { return arch; }

    /** The CUfunction {@code name} from kernel file {@code file} (without ".cu"); compiles/loads on first use. */
    long function(String file, String name) {
        Long f = functions.get(name);
        if (f != null) return f;
        long module = module(file);
        long fn = drv.moduleGetFunction(module, name);
        functions.put(name, fn);
        return fn;
    }

    private long module(String file) {
        Long m = modules.get(file);
        if (m != null) return m;
        String source = resource("common.cuh") + "\n#line 1 \"" + file + ".cu\"\n" + resource(file + ".cu");
        byte[] cubin = cubin(file, source);
        long mod;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment img = a.allocate(cubin.length + 1L, 16);
            MemorySegment.copy(cubin, 0, img, ValueLayout.JAVA_BYTE, 0, cubin.length);
            mod = drv.moduleLoadData(img);
        }
        modules.put(file, mod);
        return mod;
    }

    private byte[] cubin(String file, String source) {
        String key = sha256(source + "\u0000" + options + "\u0000" + arch + "\u0000" + driverVersion + "\u0000"
                + String.join(".", java.util.Arrays.stream(Nvrtc.get().version()).mapToObj(Integer::toString).toList()));
        Path cached = dir.resolve(file + "-" + key.substring(0, 32) + ".cubin");
        try {
            if (Files.isRegularFile(cached)) return Files.readAllBytes(cached);
        } catch (IOException e) {
            // unreadable cache entry: compile again
        }
        Nvrtc.Compiled c = Nvrtc.get().compile(source, file + ".cu", options);
        try {
            Files.createDirectories(dir);
            Path tmp = Files.createTempFile(dir, file, ".tmp");
            Files.write(tmp, c.cubin());
            Files.move(tmp, cached, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException | UnsupportedOperationException e) {
            System.err.println("dit4j: cannot write the kernel cache " + cached + " (" + e.getMessage()
                    + "); kernels will be compiled again next run");
        }
        return c.cubin();
    }

    static String resource(String name) {
        try (InputStream in = KernelCache.class.getResourceAsStream(RESOURCE_DIR + name)) {
            if (in == null) throw new IllegalStateException("kernel source " + RESOURCE_DIR + name + " is missing from the dit4j-cuda jar");
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static String sha256(String s) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override public void close() {
        for (long m : modules.values()) {
            try { drv.moduleUnload(m); } catch (CudaException e) { /* context going away */ }
        }
        modules.clear();
        functions.clear();
    }
}
