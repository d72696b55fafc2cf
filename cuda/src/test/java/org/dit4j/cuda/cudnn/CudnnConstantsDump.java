package org.dit4j.cuda.cudnn;

/**
 * Prints "C_NAME value" for every constant {@link Cudnn} mirrors, so a script on a machine with the cuDNN
 * headers can compile the same names and diff (bench/cudnn-check-constants.sh).
 */
public final class CudnnConstantsDump {
    public static void main(String[] args) {
        for (var e : Cudnn.DescriptorType.values()) System.out.println(e.cName() + " " + e.value);
        for (var e : Cudnn.AttrType.values()) System.out.println(e.cName() + " " + e.value);
        for (var e : Cudnn.Attr.values()) System.out.println(e.cName() + " " + e.value);
        for (var e : Cudnn.DataType.values()) System.out.println(e.cName() + " " + e.value);
        for (var e : Cudnn.PointwiseMode.values()) System.out.println(e.cName() + " " + e.value);
        for (var e : Cudnn.ReduceOp.values()) System.out.println(e.cName() + " " + e.value);
        for (var e : Cudnn.HeurMode.values()) System.out.println(e.cName() + " " + e.value);
        for (var e : Cudnn.KnobType.values()) System.out.println(e.cName() + " " + e.value);
        for (var e : Cudnn.BehaviorNote.values()) System.out.println(e.cName() + " " + e.value);
        for (var e : Cudnn.NumericalNote.values()) System.out.println(e.cName() + " " + e.value);
    }
}
