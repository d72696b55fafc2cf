package org.dit4j.engine.hub;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import org.dit4j.engine.flux.FluxModelFiles;
import org.dit4j.engine.flux.FluxModelResolver;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Hugging Face cache layout, offline errors, and downloads against a local HTTP server that behaves like the hub
 * (API listing, resolve URLs, LFS files redirected to a second host with X-Linked-Etag).
 */
class HfHubTest {
    @TempDir Path tmp;

    static final String COMMIT = "0123456789abcdef0123456789abcdef01234567";

    @Test void cacheFolderAndTokenFromTheEnvironment() throws IOException {
        Path home = Path.of(System.getProperty("user.home"));
        assertEquals(home.resolve(".cache/huggingface/hub"), HfHub.fromEnvironment(Map.of()).cacheDir());
        assertEquals(Path.of("/x/hub"), HfHub.fromEnvironment(Map.of("HF_HOME", "/x")).cacheDir());
        assertEquals(Path.of("/y/huggingface/hub"), HfHub.fromEnvironment(Map.of("XDG_CACHE_HOME", "/y")).cacheDir());
        assertEquals(Path.of("/z"), HfHub.fromEnvironment(Map.of("HF_HOME", "/x", "HF_HUB_CACHE", "/z")).cacheDir());
        assertTrue(HfHub.fromEnvironment(Map.of("HF_HUB_OFFLINE", "1")).offline());
        assertTrue(HfHub.fromEnvironment(Map.of("HF_HUB_OFFLINE", "true")).offline());
        assertFalse(HfHub.fromEnvironment(Map.of("HF_HUB_OFFLINE", "0")).offline());
        Files.writeString(tmp.resolve("token"), "hf_abc\n");
        assertTrue(HfHub.fromEnvironment(Map.of("HF_HOME", tmp.toString())).hasToken(), "token file under HF_HOME");
        assertTrue(HfHub.fromEnvironment(Map.of("HF_TOKEN", "hf_x")).hasToken());
        assertFalse(HfHub.fromEnvironment(Map.of("HF_HOME", tmp.resolve("none").toString())).hasToken());
        assertTrue(HfHub.looksLikeRepoId("black-forest-labs/FLUX.1-dev"));
        assertFalse(HfHub.looksLikeRepoId("/abs/path"));
        assertFalse(HfHub.looksLikeRepoId("a/b/c"));
        assertEquals(Path.of("/z/models--black-forest-labs--FLUX.1-dev"),
                new HfHub(Path.of("/z"), null, true, null).repoFolder("black-forest-labs/FLUX.1-dev"));
    }

    @Test void resolvesACachedSnapshotOffline() throws IOException {
        Path cache = tmp.resolve("hub");
        Path snap = fakeCache(cache, "org/tiny");
        HfHub hub = new HfHub(cache, null, true, null);
        assertEquals(snap, hub.cachedSnapshot("org/tiny", "main"));
        assertEquals(snap, hub.cachedSnapshot("org/tiny", COMMIT));
        assertNull(hub.cachedSnapshot("org/tiny", "dev-branch"));
        FluxModelResolver r = new FluxModelResolver(hub, null, null);
        FluxModelFiles f = r.resolve(List.of("org/tiny"));
        assertEquals(snap.resolve("transformer"), f.transformer());
        assertEquals(snap.resolve("tokenizer_2"), f.t5Tokenizer());
        assertTrue(f.description().contains("org/tiny@main"), f.description());
        assertEquals(snap.resolve("vae"), r.resolve(List.of("org/tiny@" + COMMIT)).vae());
    }

    @Test void offlineErrorsListWhatIsMissing() throws IOException {
        Path cache = tmp.resolve("hub");
        Path snap = fakeCache(cache, "org/tiny");
        Files.delete(snap.resolve("vae/config.json"));
        Files.delete(snap.resolve("text_encoder_2/model-00002-of-00002.safetensors"));
        FluxModelResolver r = new FluxModelResolver(new HfHub(cache, null, true, null), null, null);
        HubException e = assertThrows(HubException.class, () -> r.resolve(List.of("org/tiny")));
        assertTrue(e.getMessage().contains("HF_HUB_OFFLINE"), e.getMessage());
        assertTrue(e.getMessage().contains("vae/config.json"), e.getMessage());
        assertTrue(e.getMessage().contains("text_encoder_2/model-00002-of-00002.safetensors"), e.getMessage());
        assertFalse(e.getMessage().contains("transformer/"), "complete parts are not listed: " + e.getMessage());
        HubException none = assertThrows(HubException.class, () -> r.resolve(List.of("org/other")));
        assertTrue(none.getMessage().contains("nothing of it is in the cache"), none.getMessage());
        // the default model is FLUX.1-schnell
        HubException dflt = assertThrows(HubException.class, () -> r.resolve(List.of()));
        assertTrue(dflt.getMessage().contains("black-forest-labs/FLUX.1-schnell"), dflt.getMessage());
        // a network failure reads like offline: the message says what the cache lacks
        FluxModelResolver unreachable = new FluxModelResolver(new HfHub(cache, null, false, URI.create("http://127.0.0.1:1")), null, null);
        HubException net = assertThrows(HubException.class, () -> unreachable.resolve(List.of("org/tiny")));
        assertTrue(net.getMessage().contains("cannot reach") && net.getMessage().contains("vae/config.json"), net.getMessage());
    }

    @Test void downloadsMissingFilesIntoTheCacheLayout() throws Exception {
        Path source = tmp.resolve("source");
        writeTinyRepo(source);
        List<String> files = list(source);
        AtomicInteger hubRequests = new AtomicInteger(), cdnRequests = new AtomicInteger();
        List<String> cdnAuth = new ArrayList<>(), hubAuth = new ArrayList<>();
        HttpServer cdn = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        cdn.createContext("/", ex -> {
            cdnRequests.incrementAndGet();
            cdnAuth.add(String.valueOf(ex.getRequestHeaders().getFirst("Authorization")));
            send(ex, 200, Files.readAllBytes(source.resolve(ex.getRequestURI().getPath().substring("/lfs/".length()))), Map.of());
        });
        HttpServer hub = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        String cdnBase = "http://127.0.0.1:" + cdn.getAddress().getPort();
        hub.createContext("/", ex -> {
            hubRequests.incrementAndGet();
            hubAuth.add(String.valueOf(ex.getRequestHeaders().getFirst("Authorization")));
            String path = ex.getRequestURI().getPath();
            if (path.equals("/api/models/org/tiny/revision/main")) {
                StringBuilder sb = new StringBuilder("{\"sha\": \"" + COMMIT + "\", \"siblings\": [");
                for (int i = 0; i < files.size(); i++) sb.append(i > 0 ? ", " : "").append("{\"rfilename\": \"").append(files.get(i)).append("\"}");
                sb.append(", {\"rfilename\": \"flux1-tiny.safetensors\"}, {\"rfilename\": \"README.md\"}]}");
                send(ex, 200, sb.toString().getBytes(StandardCharsets.UTF_8), Map.of());
            } else if (path.equals("/api/models/org/gated/revision/main")) {
                send(ex, 401, new byte[0], Map.of());
            } else if (path.startsWith("/org/tiny/resolve/" + COMMIT + "/")) {
                String f = path.substring(("/org/tiny/resolve/" + COMMIT + "/").length());
                byte[] bytes = Files.readAllBytes(source.resolve(f));
                if (f.endsWith(".safetensors")) {
                    send(ex, 302, new byte[0], Map.of("Location", cdnBase + "/lfs/" + f, "X-Linked-Etag", "\"" + sha256(bytes) + "\"",
                            "X-Repo-Commit", COMMIT));
                } else {
                    send(ex, 200, bytes, Map.of("ETag", "\"" + sha256(bytes).substring(0, 40) + "\""));
                }
            } else {
                send(ex, 404, new byte[0], Map.of());
            }
        });
        hub.start();
        cdn.start();
        try {
            Path cache = tmp.resolve("hub");
            HfHub h = new HfHub(cache, "hf_secret", false, URI.create("http://127.0.0.1:" + hub.getAddress().getPort()));
            List<String> progress = new ArrayList<>();
            FluxModelResolver r = new FluxModelResolver(h, null, (repo, f, done, total) -> progress.add(f + ":" + done + "/" + total));
            FluxModelFiles resolved = r.resolve(List.of("org/tiny"));
            Path snap = cache.resolve("models--org--tiny/snapshots/" + COMMIT);
            assertEquals(snap.resolve("transformer"), resolved.transformer());
            assertEquals(COMMIT, Files.readString(cache.resolve("models--org--tiny/refs/main")).strip());
            for (String f : files) {
                Path p = snap.resolve(f);
                assertTrue(Files.isSymbolicLink(p), f + " is a link into blobs/");
                assertArrayEquals(Files.readAllBytes(source.resolve(f)), Files.readAllBytes(p), f);
            }
            Path lfs = snap.resolve("transformer/diffusion_pytorch_model.safetensors");
            assertEquals("../../../blobs/" + sha256(Files.readAllBytes(lfs)), Files.readSymbolicLink(lfs).toString(),
                    "LFS blobs are named by their X-Linked-Etag");
            assertFalse(Files.exists(snap.resolve("flux1-tiny.safetensors")), "the BFL single file of the repo is not fetched");
            assertFalse(Files.exists(snap.resolve("README.md")));
            assertTrue(cdnAuth.stream().allMatch(a -> a.equals("null")), "the token never goes to the CDN: " + cdnAuth);
            assertTrue(hubAuth.stream().allMatch(a -> a.equals("Bearer hf_secret")), "the hub gets the token");
            assertTrue(progress.stream().anyMatch(p -> p.startsWith("transformer/diffusion_pytorch_model.safetensors:")), progress.toString());
            // complete now: resolving again needs no network
            int before = hubRequests.get() + cdnRequests.get();
            r.resolve(List.of("org/tiny"));
            assertEquals(before, hubRequests.get() + cdnRequests.get());
            // a snapshot entry that was deleted is linked again (its blob is still there)
            Files.delete(snap.resolve("vae/config.json"));
            r.resolve(List.of("org/tiny"));
            assertTrue(Files.exists(snap.resolve("vae/config.json")));
            // refusals are not offline errors: they say what to do
            HubException gated = assertThrows(HubException.class, () -> r.resolve(List.of("org/gated")));
            assertTrue(gated.getMessage().contains("accept the licence"), gated.getMessage());
            assertFalse(gated.offlineLike());
            HubException missing = assertThrows(HubException.class, () -> r.resolve(List.of("org/none")));
            assertTrue(missing.getMessage().contains("404"), missing.getMessage());
        } finally {
            hub.stop(0);
            cdn.stop(0);
        }
    }

    @Test void refusesFileNamesOutsideTheSnapshot() {
        Path base = tmp.resolve("snap");
        assertThrows(HubException.class, () -> HfHub.resolveInside(base, "../../etc/passwd"));
        assertThrows(HubException.class, () -> HfHub.resolveInside(base, "/etc/passwd"));
        assertEquals(base.resolve("a/b.json"), HfHub.resolveInside(base, "a/b.json"));
    }

    // ------------------------------------------------------------------------------------------------ helpers

    /** A tiny diffusers pipeline whose T5 is sharded (an index and two shards), as the real repositories are. */
    static void writeTinyRepo(Path dir) throws IOException {
        org.dit4j.engine.flux.TinyFluxAccess.writeDiffusers(dir);
        // shard text_encoder_2 into two files with an index
        Path te = dir.resolve("text_encoder_2");
        try (var w = org.dit4j.core.io.WeightSource.open(te.resolve("model.safetensors"))) {
            Map<String, org.dit4j.core.tensor.Tensor> a = new TreeMap<>(), b = new TreeMap<>();
            StringBuilder idx = new StringBuilder("{\"metadata\": {}, \"weight_map\": {");
            int i = 0;
            for (String n : w.names()) {
                boolean first = n.startsWith("shared") || n.contains("block.0.");
                org.dit4j.core.tensor.Tensor t = w.tensor(n);
                org.dit4j.core.tensor.Tensor copy = org.dit4j.core.tensor.Tensor.of(t.toFloatArray(), t.shape().dims());
                (first ? a : b).put(n, copy);
                idx.append(i++ > 0 ? ", " : "").append('"').append(n).append("\": \"model-0000").append(first ? 1 : 2).append("-of-00002.safetensors\"");
            }
            org.dit4j.core.io.SafeTensorsWriter.write(te.resolve("model-00001-of-00002.safetensors"), a, Map.of("format", "pt"));
            org.dit4j.core.io.SafeTensorsWriter.write(te.resolve("model-00002-of-00002.safetensors"), b, Map.of("format", "pt"));
            Files.writeString(te.resolve("model.safetensors.index.json"), idx.append("}}").toString());
        }
        Files.delete(te.resolve("model.safetensors"));
    }

    /** models--org--name/{refs/main, snapshots/COMMIT/…} holding a tiny pipeline (plain files, no blobs). */
    Path fakeCache(Path cache, String repo) throws IOException {
        Path r = cache.resolve("models--" + repo.replace("/", "--"));
        Path snap = r.resolve("snapshots").resolve(COMMIT);
        writeTinyRepo(snap);
        Files.createDirectories(r.resolve("refs"));
        Files.writeString(r.resolve("refs/main"), COMMIT);
        return snap;
    }

    static List<String> list(Path dir) throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            return s.filter(Files::isRegularFile).map(p -> dir.relativize(p).toString().replace('\\', '/')).sorted().toList();
        }
    }

    static void send(HttpExchange ex, int code, byte[] body, Map<String, String> headers) throws IOException {
        headers.forEach((k, v) -> ex.getResponseHeaders().add(k, v));
        ex.sendResponseHeaders(code, body.length == 0 ? -1 : body.length);
        try (OutputStream o = ex.getResponseBody()) {
            o.write(body);
        }
    }

    static String sha256(byte[] b) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
