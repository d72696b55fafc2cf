package org.dit4j.server;

import org.dit4j.server.engine.Checkpoint;
import org.dit4j.server.engine.DeviceInfo;
import org.dit4j.server.engine.DiffusionModel;
import org.dit4j.server.engine.LoraWeights;
import org.dit4j.server.engine.ModelProvider;
import org.dit4j.server.engine.SampleJob;
import org.dit4j.server.engine.SampleResult;
import org.dit4j.server.engine.Sampling;
import org.dit4j.server.engine.StepObserver;
import org.dit4j.server.engine.TextEncoder;
import org.dit4j.server.engine.Vae;

import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.List;

/**
 * The engine the server uses when no inference backend can be opened (see {@code dit4j serve}; the normal engine is
 * {@link org.dit4j.server.flux.FluxEngine}): the API, validation and queue work, and every loader fails with a message
 * that says why (reported as the node's execution_error). Also useful for API-only tests.
 */
public final class UnavailableEngine implements ModelProvider, Sampling {

    private final String reason;

    public UnavailableEngine(String reason) { this.reason = reason; }

    private UnsupportedOperationException fail(Path p) {
        return new UnsupportedOperationException("cannot load " + p.getFileName() + ": " + reason);
    }

    @Override public DiffusionModel loadDiffusionModel(Path file, String weightDtype) { throw fail(file); }

    @Override public TextEncoder loadTextEncoder(List<Path> files, String type, String device) { throw fail(files.getFirst()); }

    @Override public Vae loadVae(Path file) { throw fail(file); }

    @Override public Checkpoint loadCheckpoint(Path file) { throw fail(file); }

    @Override public LoraWeights loadLora(Path file) { throw fail(file); }

    @Override public List<DeviceInfo> devices() {
        var mem = HostMemory.read();
        return List.of(new DeviceInfo("cpu", "cpu", 0, mem.total(), mem.free()));
    }

    @Override public List<String> samplerNames() { return List.of("euler"); }

    @Override public SampleResult sample(SampleJob job, StepObserver observer) { throw new UnsupportedOperationException(reason); }
}
