package org.dit4j.server;

import java.lang.management.ManagementFactory;

/**
 * Total and free physical memory of this machine, for /system_stats. Read through {@code com.sun.management} when the
 * runtime has the {@code jdk.management} module; a trimmed runtime without it (a jlinked JRE) reports the JVM's
 * maximum heap as total and its unused part as free instead of failing the route.
 */
public record HostMemory(long total, long free) {

    public static HostMemory read() {
        try {
            if (ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os)
                return new HostMemory(os.getTotalMemorySize(), os.getFreeMemorySize());
        } catch (LinkageError e) {
            // no jdk.management in this runtime: fall through
        }
        Runtime rt = Runtime.getRuntime();
        return new HostMemory(rt.maxMemory(), rt.maxMemory() - (rt.totalMemory() - rt.freeMemory()));
    }
}
