package org.dit4j.models.text;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Tensor;

/** Small helpers shared by the text encoders. */
final class TextModels {
    private TextModels() {}

    /** A host tensor on the backend's device: itself on the CPU, else an uploaded copy (the host tensor is closed). */
    static Tensor toDevice(Ops ops, Tensor host) {
        if (ops.device().isCpu()) return host;
        Tensor d = ops.upload(host);
        host.close();
        return d;
    }
}
