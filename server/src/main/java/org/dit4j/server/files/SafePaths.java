package org.dit4j.server.files;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.Optional;

/**
 * Resolution of user-supplied relative names inside a base directory, rejecting what ComfyUI's path-traversal
 * CVEs abused: absolute names, {@code ..} segments, NUL bytes, and symbolic links that lead out of the base.
 */
public final class SafePaths {

    private SafePaths() {}

    /**
     * {@code base/relative} when it stays inside {@code base} after normalisation and after resolving symbolic
     * links of the existing part of the path; empty otherwise.
     */
    public static Optional<Path> inside(Path base, String relative) {
        if (relative == null || relative.indexOf('\0') >= 0) return Optional.empty();
        String r = relative.replace('\\', '/');
        if (r.startsWith("/") || r.matches("^[A-Za-z]:.*")) return Optional.empty();
        for (String seg : r.split("/")) if (seg.equals("..")) return Optional.empty();
        Path b = base.toAbsolutePath().normalize();
        Path p;
        try {
            p = b.resolve(r).normalize();
        } catch (InvalidPathException e) {
            return Optional.empty();
        }
        if (!p.startsWith(b)) return Optional.empty();
        return realInside(b, p) ? Optional.of(p) : Optional.empty();
    }

    /** True when the deepest existing ancestor of {@code p} (links resolved) lies inside the real {@code base}. */
    public static boolean realInside(Path base, Path p) {
        try {
            Path realBase = Files.exists(base) ? base.toRealPath() : base.toAbsolutePath().normalize();
            Path existing = p;
            while (existing != null && !Files.exists(existing, LinkOption.NOFOLLOW_LINKS)) existing = existing.getParent();
            if (existing == null) return false;
            if (Files.isSymbolicLink(existing) && !Files.exists(existing)) return false;  // dangling link
            Path real = existing.toRealPath();
            return real.startsWith(realBase);
        } catch (IOException e) {
            return false;
        }
    }
}
