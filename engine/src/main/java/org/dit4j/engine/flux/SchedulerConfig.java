package org.dit4j.engine.flux;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.Json;
import org.dit4j.models.sampling.FlowMatchSchedule;

/**
 * The sigma-shift settings of a Flux model: diffusers' {@code scheduler/scheduler_config.json}
 * ({@code FlowMatchEulerDiscreteScheduler}), or the defaults of the model kind when there is no such file
 * (dev/Kontext: dynamic shift 0.5 → 1.15 over 256 → 4096 image tokens; schnell: static shift 1, i.e. none).
 */
public record SchedulerConfig(boolean dynamicShift, double shift, int baseSeqLen, int maxSeqLen, double baseShift, double maxShift) {

    /** FLUX.1-dev / Kontext-dev. */
    public static final SchedulerConfig DEV = new SchedulerConfig(true, 3.0, FlowMatchSchedule.BASE_SEQ_LEN,
            FlowMatchSchedule.MAX_SEQ_LEN, FlowMatchSchedule.BASE_SHIFT, FlowMatchSchedule.MAX_SHIFT);
    /** FLUX.1-schnell. */
    public static final SchedulerConfig SCHNELL = new SchedulerConfig(false, 1.0, FlowMatchSchedule.BASE_SEQ_LEN,
            FlowMatchSchedule.MAX_SEQ_LEN, FlowMatchSchedule.BASE_SHIFT, FlowMatchSchedule.MAX_SHIFT);

    /** The defaults of a model with ({@code guidanceEmbed}: dev, Kontext) or without (schnell) a guidance embedder. */
    public static SchedulerConfig forModel(boolean guidanceEmbed) { return guidanceEmbed ? DEV : SCHNELL; }

    /** The schedule of {@code steps} steps for {@code imageTokens} target tokens. */
    public FlowMatchSchedule schedule(int steps, long imageTokens) {
        if (!dynamicShift) return FlowMatchSchedule.staticShift(steps, shift);
        return FlowMatchSchedule.dynamic(steps, FlowMatchSchedule.mu(imageTokens, baseSeqLen, maxSeqLen, baseShift, maxShift));
    }

    /**
     * Reads a diffusers scheduler config; keys it lacks take diffusers' constructor defaults (num_train_timesteps
     * 1000, shift 1.0, use_dynamic_shifting false, base 0.5 / max 1.15, 256 / 4096). Schedulers other than
     * FlowMatchEulerDiscreteScheduler, and options dit4j does not implement (karras/exponential/beta sigmas,
     * shift_terminal, linear time shift, stochastic sampling, invert_sigmas), are refused.
     */
    public static SchedulerConfig read(Path json) {
        Map<?, ?> m;
        try {
            Object o = Json.parse(Files.readString(json, StandardCharsets.UTF_8));
            if (!(o instanceof Map<?, ?> map)) throw new CheckpointException("scheduler config " + json + " is not a JSON object");
            m = map;
        } catch (IOException e) {
            throw new CheckpointException("cannot read scheduler config " + json + ": " + e.getMessage(), e);
        } catch (Json.SyntaxException e) {
            throw new CheckpointException("scheduler config " + json + " is not valid JSON: " + e.getMessage(), e);
        }
        Object cls = m.get("_class_name");
        if (cls != null && !"FlowMatchEulerDiscreteScheduler".equals(cls))
            throw new CheckpointException("scheduler config " + json + " is for " + cls + "; dit4j's Flux pipeline implements "
                    + "FlowMatchEulerDiscreteScheduler only");
        for (String unsupported : new String[] {"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas",
                "stochastic_sampling", "invert_sigmas"}) {
            if (Boolean.TRUE.equals(m.get(unsupported)))
                throw new CheckpointException("scheduler config " + json + " sets " + unsupported + ", which dit4j does not implement");
        }
        if (m.get("shift_terminal") instanceof Number n && n.doubleValue() != 0)
            throw new CheckpointException("scheduler config " + json + " sets shift_terminal, which dit4j does not implement");
        if (m.get("time_shift_type") instanceof String t && !t.equals("exponential"))
            throw new CheckpointException("scheduler config " + json + " sets time_shift_type " + t + "; dit4j implements \"exponential\"");
        if (m.get("num_train_timesteps") instanceof Number n && n.intValue() != FlowMatchSchedule.TRAIN_TIMESTEPS)
            throw new CheckpointException("scheduler config " + json + " has num_train_timesteps " + n + "; Flux uses 1000");
        return new SchedulerConfig(Boolean.TRUE.equals(m.get("use_dynamic_shifting")), num(m, "shift", 1.0),
                (int) num(m, "base_image_seq_len", 256), (int) num(m, "max_image_seq_len", 4096),
                num(m, "base_shift", 0.5), num(m, "max_shift", 1.15));
    }

    private static double num(Map<?, ?> m, String key, double dflt) {
        return m.get(key) instanceof Number n ? n.doubleValue() : dflt;
    }
}
