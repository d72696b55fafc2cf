package org.dit4j.server.engine;

/** One accelerator (or the CPU) as /system_stats reports it; byte counts, -1 when unknown. */
public record DeviceInfo(String name, String type, int index, long vramTotal, long vramFree) {}
