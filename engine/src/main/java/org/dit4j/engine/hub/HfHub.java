package org.dit4j.engine.hub;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.UnknownHostException;
import java.net.http.HttpClient;
import java.net.http.HttpConnectTimeoutException;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

import org.dit4j.core.io.Json;

/**
 * Hugging Face model repositories through the standard local cache, with downloads over {@link HttpClient}.
 *
 * <p>Cache layout (shared with huggingface_hub, diffusers, transformers): {@code <cache>/models--<org>--<name>/}
 * holds {@code refs/<branch>} (a text file with the commit hash), {@code blobs/<etag>} (file contents) and
 * {@code snapshots/<commit>/<path>} (symbolic links into blobs, or plain files where links are not possible).
 * The cache folder is {@code HF_HUB_CACHE}, else {@code $HF_HOME/hub}, else {@code $XDG_CACHE_HOME/huggingface/hub},
 * else {@code ~/.cache/huggingface/hub}.
 *
 * <p>Network: {@code HF_ENDPOINT} (default https://huggingface.co); the token is {@code HF_TOKEN}, else the file
 * {@code $HF_HOME/token} written by {@code huggingface-cli login}; it is sent to the endpoint's host only, never to
 * the CDN a download is redirected to. {@code HF_HUB_OFFLINE=1} turns every download off. A download goes to
 * {@code blobs/<etag>.incomplete} first (resumed with an HTTP range when one is left over) and is renamed when complete.
 */
public final class HfHub {
    private static final Pattern REPO_ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*");
    private static final Pattern COMMIT = Pattern.compile("[0-9a-f]{40}");
    private static final int MAX_REDIRECTS = 8;

    private final Path cacheDir;
    private final String token;
    private final boolean offline;
    private final URI endpoint;
    private HttpClient client;

    /** Reports download progress: bytes of {@code file} done so far and its total (−1 when unknown). */
    public interface Listener {
        void progress(String repoId, String file, long done, long total);

        Listener NONE = (r, f, d, t) -> {};
    }

    /** The commit a revision points to and the repository's file paths at that commit. */
    public record Listing(String commit, Set<String> files) {}

    public HfHub(Path cacheDir, String token, boolean offline, URI endpoint) {
        this.cacheDir = cacheDir;
        this.token = token == null || token.isBlank() ? null : token.strip();
        this.offline = offline;
        this.endpoint = endpoint == null ? URI.create("https://huggingface.co") : endpoint;
    }

    /** Settings from the process environment (see the class comment). */
    public static HfHub fromEnvironment() { return fromEnvironment(System.getenv()); }

    /** Settings from {@code env} (for tests). */
    public static HfHub fromEnvironment(Map<String, String> env) {
        Path home = Path.of(System.getProperty("user.home"));
        Path hfHome = env.get("HF_HOME") != null ? Path.of(env.get("HF_HOME"))
                : (env.get("XDG_CACHE_HOME") != null ? Path.of(env.get("XDG_CACHE_HOME")) : home.resolve(".cache")).resolve("huggingface");
        Path cache = env.get("HF_HUB_CACHE") != null ? Path.of(env.get("HF_HUB_CACHE"))
                : env.get("HUGGINGFACE_HUB_CACHE") != null ? Path.of(env.get("HUGGINGFACE_HUB_CACHE")) : hfHome.resolve("hub");
        String token = env.get("HF_TOKEN");
        if (token == null) {
            Path tokenFile = env.get("HF_TOKEN_PATH") != null ? Path.of(env.get("HF_TOKEN_PATH")) : hfHome.resolve("token");
            try {
                if (Files.isRegularFile(tokenFile)) token = Files.readString(tokenFile, StandardCharsets.UTF_8).strip();
            } catch (IOException ignored) {
                // an unreadable token file is the same as none: public repositories still work
            }
        }
        boolean offline = truthy(env.get("HF_HUB_OFFLINE"));
        URI endpoint = env.get("HF_ENDPOINT") != null ? URI.create(env.get("HF_ENDPOINT").replaceAll("/+$", "")) : null;
        return new HfHub(cache, token, offline, endpoint);
    }

    private static boolean truthy(String v) {
        return v != null && Set.of("1", "true", "yes", "on").contains(v.strip().toLowerCase(Locale.ROOT));
    }

    public Path cacheDir() { return cacheDir; }

    public boolean offline() { return offline; }

    public boolean hasToken() { return token != null; }

    /** True for strings shaped like a repository id ({@code org/name}); the caller checks that no such path exists. */
    public static boolean looksLikeRepoId(String s) { return s != null && REPO_ID.matcher(s).matches() && !s.contains(".."); }

    /** {@code <cache>/models--org--name}. */
    public Path repoFolder(String repoId) {
        requireRepoId(repoId);
        return cacheDir.resolve("models--" + repoId.replace("/", "--"));
    }

    /** The cached snapshot folder of {@code revision} (a branch/tag through refs/, or a commit hash), or null. */
    public Path cachedSnapshot(String repoId, String revision) {
        Path repo = repoFolder(repoId);
        String commit = COMMIT.matcher(revision).matches() ? revision : readRef(repo, revision);
        if (commit == null) return null;
        Path snap = repo.resolve("snapshots").resolve(commit);
        return Files.isDirectory(snap) ? snap : null;
    }

    private static String readRef(Path repo, String revision) {
        Path ref = repo.resolve("refs").resolve(revision);
        try {
            if (!Files.isRegularFile(ref)) return null;
            String c = Files.readString(ref, StandardCharsets.UTF_8).strip();
            return COMMIT.matcher(c).matches() ? c : null;
        } catch (IOException e) {
            return null;
        }
    }

    /** The commit of {@code revision} and the repository's files there (one API call). */
    public Listing list(String repoId, String revision) {
        requireOnline(repoId, "list the files of");
        URI uri = endpoint.resolve("/api/models/" + repoId + "/revision/" + encode(revision));
        HttpResponse<String> r = send(repoId, uri, HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8), null, null);
        Object root;
        try {
            root = Json.parse(r.body());
        } catch (Json.SyntaxException e) {
            throw new HubException("the Hugging Face API answered " + uri + " with something that is not JSON: " + e.getMessage());
        }
        if (!(root instanceof Map<?, ?> m) || !(m.get("sha") instanceof String sha) || !(m.get("siblings") instanceof List<?> sib))
            throw new HubException("the Hugging Face API answer for " + repoId + "@" + revision + " has no \"sha\" and \"siblings\"");
        Set<String> files = new LinkedHashSet<>();
        for (Object o : sib) if (o instanceof Map<?, ?> f && f.get("rfilename") instanceof String n) files.add(n);
        return new Listing(sha, files);
    }

    /**
     * Makes sure {@code files} of {@code repoId} at {@code commit} are in the cache, downloading the missing ones;
     * records {@code revision} → commit under refs/ when the revision is a name. Returns the snapshot folder.
     */
    public Path ensure(String repoId, String revision, String commit, List<String> files, Listener listener) {
        if (!COMMIT.matcher(commit).matches()) throw new IllegalArgumentException("not a commit hash: " + commit);
        Path repo = repoFolder(repoId), snap = repo.resolve("snapshots").resolve(commit);
        try {
            for (String f : files) {
                Path target = resolveInside(snap, f);
                if (Files.exists(target)) continue;
                requireOnline(repoId, "download " + f + " of");
                download(repoId, commit, f, repo, snap, target, listener);
            }
            if (!COMMIT.matcher(revision).matches()) {
                Path ref = repo.resolve("refs").resolve(revision);
                Files.createDirectories(ref.getParent());
                Files.writeString(ref, commit, StandardCharsets.UTF_8);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write to the Hugging Face cache " + repo + ": " + e.getMessage(), e);
        }
        return snap;
    }

    private void download(String repoId, String commit, String file, Path repo, Path snap, Path target, Listener listener)
            throws IOException {
        URI uri = endpoint.resolve("/" + repoId + "/resolve/" + commit + "/" + encodePath(file));
        Path blobs = repo.resolve("blobs");
        Files.createDirectories(blobs);
        Files.createDirectories(target.getParent());
        String[] linked = new String[1];
        HttpResponse<InputStream> first = send(repoId, uri, HttpResponse.BodyHandlers.ofInputStream(), null, linked);
        String etag = linked[0] != null ? linked[0] : first.headers().firstValue("etag").orElse(null);
        etag = etag == null ? null : etag.replaceFirst("^W/", "").replace("\"", "").strip();
        if (etag != null && (etag.isEmpty() || !etag.matches("[A-Za-z0-9._-]+"))) etag = null;
        String blobName = etag != null ? etag : "download-" + Long.toHexString(System.nanoTime());
        Path blob = blobs.resolve(blobName), partial = blobs.resolve(blobName + ".incomplete");
        if (!Files.exists(blob)) {
            HttpResponse<InputStream> body = first;
            long offset = 0;
            if (etag != null && Files.isRegularFile(partial) && Files.size(partial) > 0) {
                first.body().close();
                offset = Files.size(partial);
                body = send(repoId, uri, HttpResponse.BodyHandlers.ofInputStream(), "bytes=" + offset + "-", null);
                if (body.statusCode() != 206) offset = 0;
            }
            long total = body.headers().firstValueAsLong("content-length").orElse(-1);
            if (total >= 0 && body.statusCode() == 206) total += offset;
            MessageDigest sha = sha256();
            try (InputStream in = body.body();
                 OutputStream out = Files.newOutputStream(partial, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                         offset > 0 ? StandardOpenOption.APPEND : StandardOpenOption.TRUNCATE_EXISTING)) {
                byte[] buf = new byte[1 << 20];
                long done = offset, lastReport = 0;
                int n;
                listener.progress(repoId, file, done, total);
                while ((n = in.read(buf)) > 0) {
                    out.write(buf, 0, n);
                    if (etag == null) sha.update(buf, 0, n);
                    done += n;
                    if (done - lastReport >= (64 << 20)) {
                        listener.progress(repoId, file, done, total);
                        lastReport = done;
                    }
                }
                if (total >= 0 && done != total)
                    throw new HubException("download of " + file + " from " + repoId + " stopped after " + done + " of " + total
                            + " bytes; run again to resume");
                listener.progress(repoId, file, done, total);
            }
            if (etag == null) {
                blob = blobs.resolve(HexFormat.of().formatHex(sha.digest()));
            }
            move(partial, blob);
        } else {
            first.body().close();
        }
        link(target, blob);
    }

    private static void move(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /** snapshots/commit/path → ../../blobs/etag (relative, as huggingface_hub), or a copy where links fail. */
    private static void link(Path target, Path blob) throws IOException {
        Path rel = target.getParent().relativize(blob);
        try {
            Files.createSymbolicLink(target, rel);
        } catch (UnsupportedOperationException | FileSystemException e) {
            Files.copy(blob, target, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /**
     * One HTTP GET; follows redirects itself so that the token goes to the endpoint's host only. The first
     * {@code X-Linked-Etag} seen on the way (LFS files announce it on the redirect to the CDN) is stored in
     * {@code linkedEtag[0]} when that array is given.
     */
    private <T> HttpResponse<T> send(String repoId, URI uri, HttpResponse.BodyHandler<T> handler, String range, String[] linkedEtag) {
        URI current = uri;
        for (int hop = 0; hop <= MAX_REDIRECTS; hop++) {
            HttpRequest.Builder b = HttpRequest.newBuilder(current).timeout(Duration.ofMinutes(10)).GET()
                    .header("User-Agent", "dit4j/0.1 (java.net.http)");
            if (token != null && sameHost(current, endpoint)) b.header("Authorization", "Bearer " + token);
            if (range != null) b.header("Range", range);
            HttpResponse<T> r;
            try {
                r = client().send(b.build(), handler);
            } catch (ConnectException | UnknownHostException | HttpConnectTimeoutException e) {
                throw new HubException("cannot reach " + endpoint + " (" + e + "); check the network, or set HF_HUB_OFFLINE=1 "
                        + "to use only what is in the cache " + cacheDir, true);
            } catch (IOException e) {
                throw new HubException("request to " + current + " failed: " + e, true);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new HubException("interrupted while fetching " + current);
            }
            if (linkedEtag != null && linkedEtag[0] == null) linkedEtag[0] = r.headers().firstValue("x-linked-etag").orElse(null);
            int code = r.statusCode();
            if (code >= 300 && code < 400 && r.headers().firstValue("location").isPresent()) {
                closeQuietly(r);
                current = current.resolve(r.headers().firstValue("location").get());
                continue;
            }
            if (code == 200 || code == 206) return r;
            closeQuietly(r);
            throw statusError(repoId, current, code);
        }
        throw new HubException("too many redirects fetching " + uri);
    }

    private HubException statusError(String repoId, URI uri, int code) {
        URI page = endpoint.resolve("/" + repoId);
        return switch (code) {
            case 401, 403 -> new HubException("access to " + repoId + " was refused (HTTP " + code + "): "
                    + (token == null ? "the repository is gated or private; accept its licence on " + page
                       + " and set HF_TOKEN to an access token of that account"
                       : "the token in HF_TOKEN has no access; accept the licence on " + page + " with that account"));
            case 404 -> new HubException("not found on the Hugging Face hub (HTTP 404): " + uri
                    + "; check the repository id '" + repoId + "' and the revision");
            default -> new HubException("the Hugging Face hub answered HTTP " + code + " for " + uri, code >= 500);
        };
    }

    private static void closeQuietly(HttpResponse<?> r) {
        if (r.body() instanceof InputStream in) {
            try {
                in.close();
            } catch (IOException ignored) {
                // nothing to do: the response is discarded
            }
        }
    }

    private static boolean sameHost(URI a, URI b) {
        return a.getHost() != null && a.getHost().equalsIgnoreCase(b.getHost()) && a.getPort() == b.getPort();
    }

    private synchronized HttpClient client() {
        if (client == null)
            client = HttpClient.newBuilder().followRedirects(HttpClient.Redirect.NEVER).connectTimeout(Duration.ofSeconds(20)).build();
        return client;
    }

    private void requireOnline(String repoId, String what) {
        if (offline)
            throw new HubException("HF_HUB_OFFLINE is set, so dit4j cannot " + what + " " + repoId + " from " + endpoint, true);
    }

    private static void requireRepoId(String repoId) {
        if (!looksLikeRepoId(repoId))
            throw new IllegalArgumentException("'" + repoId + "' is not a Hugging Face repository id (expected org/name)");
    }

    /** {@code base/relative} with a check that a file name from a remote listing cannot leave the folder. */
    static Path resolveInside(Path base, String relative) {
        Path p = base.resolve(relative).normalize();
        if (!p.startsWith(base.normalize()) || relative.startsWith("/") || relative.contains("\\"))
            throw new HubException("refusing the repository file name '" + relative + "': it points outside " + base);
        return p;
    }

    private static String encode(String s) { return URLEncoder.encode(s, StandardCharsets.UTF_8).replace("+", "%20"); }

    private static String encodePath(String path) {
        List<String> parts = new ArrayList<>();
        for (String p : path.split("/", -1)) parts.add(encode(p));
        return String.join("/", parts);
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
