package org.dit4j.cuda;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Finds and loads the NVIDIA shared libraries. Each library is looked for, in this order:
 * <ol>
 *   <li>{@code DIT4J_CUDA_LIBS}: a {@code :}-separated list of folders or library files;</li>
 *   <li>the system loader path (LD_LIBRARY_PATH, the ldconfig cache) by soname;</li>
 *   <li>{@code $CUDA_HOME/lib64}, {@code $CUDA_HOME/lib}, {@code $CUDA_HOME/targets/x86_64-linux/lib};</li>
 *   <li>{@code /usr/local/cuda*}/{lib64, targets/x86_64-linux/lib};</li>
 *   <li>Python wheel folders {@code site-packages/nvidia/*}/lib (and {@code nvidia/cu*}/lib) of the virtual
 *       environment, PYTHONPATH, {@code /usr/lib/python3*}, {@code /usr/local/lib/python3*},
 *       {@code ~/.local/lib/python3*} and {@code /opt/*}/.venv.</li>
 * </ol>
 * Libraries stay loaded for the life of the JVM (global arena).
 */
public final class CudaLibraries {

    /** A CUDA library and the sonames it may have, newest first. */
    public enum Lib {
        DRIVER("libcuda.so.1", "libcuda.so"),
        NVRTC("libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"),
        CUBLASLT("libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"),
        CUDNN("libcudnn.so.9", "libcudnn.so"),
        NCCL("libnccl.so.2", "libnccl.so");

        final String[] sonames;

        Lib(String... sonames) { this.sonames = sonames; }

        public List<String> sonames() { return List.of(sonames); }
    }

    private static final Map<Lib, SymbolLookup> LOADED = new ConcurrentHashMap<>();

    private CudaLibraries() {}

    /** Loads {@code lib} (once) or throws a {@link CudaException} listing every place that was searched. */
    public static SymbolLookup load(Lib lib) {
        SymbolLookup l = LOADED.get(lib);
        if (l != null) return l;
        synchronized (CudaLibraries.class) {
            l = LOADED.get(lib);
            if (l == null) {
                l = find(lib);
                LOADED.put(lib, l);
            }
            return l;
        }
    }

    private static SymbolLookup find(Lib lib) {
        return find(lib.name(), lib.sonames);
    }

    /** Searches for a library known by {@code sonames} (newest first); package-private for tests. */
    static SymbolLookup find(String label, String... sonames) {
        List<String> tried = new ArrayList<>();
        List<String> errors = new ArrayList<>();
        // 1. explicit override
        String override = System.getenv("DIT4J_CUDA_LIBS");
        if (override != null && !override.isBlank()) {
            for (String part : override.split(":")) {
                if (part.isBlank()) continue;
                Path p = Path.of(part);
                if (Files.isRegularFile(p)) {
                    String fn = p.getFileName().toString();
                    for (String so : sonames) {
                        if (fn.startsWith(so.replaceAll("\\.so.*$", ".so"))) {
                            SymbolLookup s = tryPath(p, tried, errors);
                            if (s != null) return s;
                        }
                    }
                } else {
                    SymbolLookup s = tryDir(p, sonames, tried, errors);
                    if (s != null) return s;
                }
            }
        }
        // 2. the loader path
        for (String so : sonames) {
            tried.add(so + " (system loader path)");
            try {
                return SymbolLookup.libraryLookup(so, Arena.global());
            } catch (IllegalArgumentException e) {
                // not found by the loader; keep looking
            }
        }
        // 3.-5. well-known folders
        for (Path dir : candidateDirs()) {
            SymbolLookup s = tryDir(dir, sonames, tried, errors);
            if (s != null) return s;
        }
        StringBuilder msg = new StringBuilder("cannot load the CUDA library ").append(sonames[0])
                .append(" (").append(label).append("). Searched:\n");
        for (String t : tried) msg.append("  ").append(t).append('\n');
        for (String e : errors) msg.append("  error: ").append(e).append('\n');
        msg.append("Install the NVIDIA driver / CUDA toolkit (or the pip wheels nvidia-*), set CUDA_HOME, or point "
                + "DIT4J_CUDA_LIBS at the folder holding ").append(sonames[0]).append('.');
        throw new CudaException(msg.toString());
    }

    private static SymbolLookup tryDir(Path dir, String[] sonames, List<String> tried, List<String> errors) {
        for (String so : sonames) {
            Path p = dir.resolve(so);
            SymbolLookup s = tryPath(p, tried, errors);
            if (s != null) return s;
        }
        return null;
    }

    private static SymbolLookup tryPath(Path p, List<String> tried, List<String> errors) {
        tried.add(p.toString());
        if (!Files.exists(p)) return null;
        try {
            return SymbolLookup.libraryLookup(p, Arena.global());
        } catch (IllegalArgumentException e) {
            errors.add(p + ": " + e.getMessage());
            return null;
        }
    }

    /** Folders searched after the loader path, in order, existing ones only. */
    static List<Path> candidateDirs() {
        Set<Path> dirs = new LinkedHashSet<>();
        String cudaHome = System.getenv("CUDA_HOME");
        if (cudaHome == null) cudaHome = System.getenv("CUDA_PATH");
        if (cudaHome != null) {
            Path h = Path.of(cudaHome);
            dirs.add(h.resolve("lib64"));
            dirs.add(h.resolve("lib"));
            dirs.add(h.resolve("targets/x86_64-linux/lib"));
        }
        dirs.add(Path.of("/usr/local/cuda/lib64"));
        dirs.add(Path.of("/usr/local/cuda/targets/x86_64-linux/lib"));
        for (Path p : glob(Path.of("/usr/local"), "cuda-*")) {
            dirs.add(p.resolve("lib64"));
            dirs.add(p.resolve("targets/x86_64-linux/lib"));
        }
        dirs.add(Path.of("/usr/lib/x86_64-linux-gnu"));
        for (Path sp : sitePackages()) {
            Path nv = sp.resolve("nvidia");
            for (Path pkg : glob(nv, "*")) {
                dirs.add(pkg.resolve("lib"));
                for (Path sub : glob(pkg, "*")) if (Files.isDirectory(sub.resolve("lib"))) dirs.add(sub.resolve("lib"));
            }
        }
        List<Path> out = new ArrayList<>();
        for (Path d : dirs) if (Files.isDirectory(d)) out.add(d);
        return out;
    }

    private static List<Path> sitePackages() {
        List<Path> roots = new ArrayList<>();
        String venv = System.getenv("VIRTUAL_ENV");
        if (venv != null) roots.add(Path.of(venv));
        String pythonPath = System.getenv("PYTHONPATH");
        List<Path> out = new ArrayList<>();
        if (pythonPath != null) for (String p : pythonPath.split(":")) if (!p.isBlank()) out.add(Path.of(p));
        for (Path opt : glob(Path.of("/opt"), "*")) roots.add(opt.resolve(".venv"));
        roots.add(Path.of("/usr"));
        roots.add(Path.of("/usr/local"));
        String home = System.getProperty("user.home");
        if (home != null) roots.add(Path.of(home, ".local"));
        for (Path r : roots) {
            for (Path py : glob(r.resolve("lib"), "python3*")) {
                out.add(py.resolve("site-packages"));
                out.add(py.resolve("dist-packages"));
            }
        }
        return out;
    }

    private static List<Path> glob(Path dir, String pattern) {
        List<Path> out = new ArrayList<>();
        if (!Files.isDirectory(dir)) return out;
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, pattern)) {
            for (Path p : ds) out.add(p);
        } catch (IOException | SecurityException e) {
            // unreadable folder: nothing to find there
        }
        out.sort(null);
        return out;
    }
}
