package org.dit4j.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code dit4j} command line. */
@Command(name = "dit4j", mixinStandardHelpOptions = true, version = "dit4j 0.1.0-SNAPSHOT",
        description = "Diffusion-Transformer inference engine for NVIDIA GPUs.",
        subcommands = {GenerateCommand.class, InspectCommand.class, BenchCommand.class, ServeCommand.class})
public final class Main implements Runnable {

    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Override public void run() {
        spec.commandLine().usage(System.out);
    }

    public static void main(String[] args) {
        int code = new CommandLine(new Main())
                .setExecutionExceptionHandler((ex, cmd, parsed) -> {
                    cmd.getErr().println("dit4j: " + ex.getMessage());
                    if (System.getenv("DIT4J_DEBUG") != null) ex.printStackTrace(cmd.getErr());
                    return 1;
                })
                .execute(args);
        System.exit(code);
    }
}
