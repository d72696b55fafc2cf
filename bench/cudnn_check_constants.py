"""Compare the enum values dit4j's Cudnn.java mirrors with the installed cudnn_graph.h.

usage: python3 cudnn_check_constants.py path/to/cudnn_graph.h java_dump.txt
java_dump.txt: lines "C_NAME value" printed by org.dit4j.cuda.cudnn.CudnnConstantsDump.
Exit status 1 if any value differs or a name is missing from the header.
"""
import re
import sys


def parse_enums(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    values = {}
    for body in re.findall(r"typedef\s+enum\s*\w*\s*\{(.*?)\}", text, flags=re.S):
        nxt = 0
        for entry in body.split(","):
            entry = entry.replace("CUDNN_DEPRECATED_ENUM", "").strip()
            if not entry:
                continue
            if "=" in entry:
                name, expr = (s.strip() for s in entry.split("=", 1))
                expr = expr.strip()
                if re.fullmatch(r"-?(0x[0-9a-fA-F]+|\d+)", expr):
                    val = int(expr, 0)
                elif expr in values:
                    val = values[expr]
                else:
                    try:
                        val = eval(expr, {}, dict(values))
                    except Exception:
                        continue
            else:
                name, val = entry, nxt
            values[name] = val
            nxt = val + 1
    return values


def main():
    header, dump = sys.argv[1], sys.argv[2]
    values = parse_enums(open(header).read())
    bad = 0
    for line in open(dump):
        name, val = line.split()
        if name not in values:
            print(f"MISSING in header: {name} (dit4j uses {val})")
            bad += 1
        elif values[name] != int(val):
            print(f"MISMATCH {name}: header {values[name]}, dit4j {val}")
            bad += 1
    print(f"checked {sum(1 for _ in open(dump))} constants against {header}: {bad} problems")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
