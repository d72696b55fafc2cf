package org.dit4j.engine.wan;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.Json;
import org.dit4j.models.sampling.FlowShiftSchedule;

/**
 * Which σ schedule and flow shift a Wan run uses (models.md §2.9).
 * <ul>
 *   <li>{@link #WAN_REFERENCE} (checkpoint files): the Wan repository's {@code generate.py} for T2V — UniPC, σ from
 *       0.999, shift 5.0 at every size;</li>
 *   <li>a diffusers folder: its {@code scheduler/scheduler_config.json} ({@code UniPCMultistepScheduler} with
 *       {@code use_flow_sigmas}: σ from 1, its {@code flow_shift}; diffusers documents 3.0 for Wan at 480p and 5.0 at 720p — the
 *       value in the published repositories is read, not assumed).</li>
 * </ul>
 *
 * @param variant "wan" (the reference's schedule) or "diffusers"
 * @param shift   the flow shift
 */
public record WanScheduler(String variant, double shift) {
    /** The Wan reference's text-to-video default. */
    public static final WanScheduler WAN_REFERENCE = new WanScheduler("wan", FlowShiftSchedule.WAN_T2V_SHIFT);

    public WanScheduler {
        if (!variant.equals("wan") && !variant.equals("diffusers"))
            throw new IllegalArgumentException("Wan schedule variant must be 'wan' or 'diffusers', got '" + variant + "'");
        if (!(shift > 0)) throw new IllegalArgumentException("the flow shift must be positive, got " + shift);
    }

    public WanScheduler withShift(double s) { return new WanScheduler(variant, s); }

    /** The σ schedule of {@code steps} steps. */
    public FlowShiftSchedule schedule(int steps) {
        return variant.equals("wan") ? FlowShiftSchedule.wanOriginal(steps, shift) : FlowShiftSchedule.diffusers(steps, shift);
    }

    /**
     * A diffusers {@code scheduler_config.json}: a {@code UniPCMultistepScheduler} with flow sigmas and flow prediction
     * (what the Wan2.1 diffusers repositories ship). Other schedulers are refused with the file named.
     */
    public static WanScheduler read(Path json) {
        Map<?, ?> m;
        try {
            Object o = Json.parse(Files.readString(json, StandardCharsets.UTF_8));
            if (!(o instanceof Map<?, ?> map)) throw new CheckpointException(json + " is not a JSON object");
            m = map;
        } catch (IOException e) {
            throw new CheckpointException("cannot read " + json + ": " + e.getMessage(), e);
        } catch (Json.SyntaxException e) {
            throw new CheckpointException(json + " is not valid JSON: " + e.getMessage(), e);
        }
        Object cls = m.get("_class_name");
        if (!"UniPCMultistepScheduler".equals(cls))
            throw new CheckpointException(json + " configures a " + cls + "; dit4j's Wan pipeline runs UniPCMultistepScheduler "
                    + "(flow sigmas); pass --shift to set the shift and remove or fix the scheduler config");
        if (m.get("use_flow_sigmas") instanceof Boolean b && !b || m.get("prediction_type") instanceof String p
                && !p.equals("flow_prediction"))
            throw new CheckpointException(json + ": expected use_flow_sigmas true and prediction_type 'flow_prediction' (Wan2.1), got "
                    + m.get("use_flow_sigmas") + " and " + m.get("prediction_type"));
        Object order = m.get("solver_order");
        if (order instanceof Number n && n.intValue() != 2)
            throw new CheckpointException(json + ": solver_order " + n + " is not supported (Wan2.1 uses 2)");
        Object shift = m.get("flow_shift");
        double s = shift instanceof Number n ? n.doubleValue() : 1.0;
        return new WanScheduler("diffusers", s);
    }

    @Override public String toString() {
        return String.format(Locale.ROOT, "UniPC (%s schedule, shift %s)", variant.equals("wan") ? "Wan reference" : "diffusers",
                shift == Math.rint(shift) ? String.valueOf((long) shift) + ".0" : String.valueOf(shift));
    }
}
