package org.dit4j.core.io;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Shape;

/**
 * Where one tensor lives in a safetensors file.
 *
 * @param name       the tensor's name in the header
 * @param dtype      its element type
 * @param shape      its shape (row-major, contiguous)
 * @param dataOffset absolute byte offset of its first byte in the file (8 + header length + data_offsets[0])
 * @param byteSize   its size in bytes (numel × dtype size)
 */
public record TensorInfo(String name, DType dtype, Shape shape, long dataOffset, long byteSize) {}
