// Small per-feature vectors that feed cuBLASLt epilogues (CudaBackend.linearGatedResidual).
// alpha[i] = gate[i] as f32 (the per-row alpha vector), and, when bias is given, sbias[i] = gate[i]·bias[i] rounded to
// the activation type (the bias pre-scaled by the gate). One launch for both; n is small (the feature count).
extern "C" __global__ void gate_bias_prep(float* alpha, void* sbias, const void* gate, int gdt, const void* bias, int bdt,
                                          int sdt, i64 n) {
    GRID_LOOP(i, n) {
        const float g = ldf(gate, i, gdt);
        alpha[i] = g;
        if (bias != 0) stf(sbias, i, sdt, g * ldf(bias, i, bdt));
    }
}
