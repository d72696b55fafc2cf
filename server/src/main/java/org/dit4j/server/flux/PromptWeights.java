package org.dit4j.server.flux;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Pattern;

/**
 * ComfyUI's prompt-weight syntax ({@code comfy/sd1_clip.py}: escape_important, parse_parentheses, token_weights):
 * {@code (text)} multiplies the weight by 1.1, {@code (text:w)} sets it to w, parentheses nest, {@code \(} and
 * {@code \)} are literal parentheses. The result is the list of (text, weight) segments ComfyUI tokenizes one by one.
 */
public final class PromptWeights {

    private PromptWeights() {}

    /** One piece of the prompt with its weight. */
    public record Segment(String text, double weight) {}

    private static final String ESC_CLOSE = "\0\1", ESC_OPEN = "\0\2";

    /** The weighted segments of a prompt, in order, empty ones left out (as ComfyUI skips them before tokenizing). */
    public static List<Segment> parse(String text) {
        String escaped = text.replace("\\)", ESC_CLOSE).replace("\\(", ESC_OPEN);
        List<Segment> out = new ArrayList<>();
        for (Segment s : tokenWeights(escaped, 1.0)) {
            String t = s.text().replace(ESC_CLOSE, ")").replace(ESC_OPEN, "(");
            if (!t.isEmpty()) out.add(new Segment(t, s.weight()));
        }
        return out;
    }

    /** parse_parentheses: top-level pieces, each a plain run or one balanced "( … )" group (unbalanced ")" stay text). */
    static List<String> parseParentheses(String s) {
        List<String> result = new ArrayList<>();
        StringBuilder current = new StringBuilder();
        int nesting = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '(') {
                if (nesting == 0) {
                    if (!current.isEmpty()) result.add(current.toString());
                    current.setLength(0);
                    current.append('(');
                } else {
                    current.append(c);
                }
                nesting++;
            } else if (c == ')') {
                nesting--;
                if (nesting == 0) {
                    result.add(current.append(')').toString());
                    current.setLength(0);
                } else {
                    current.append(c);
                }
            } else {
                current.append(c);
            }
        }
        if (!current.isEmpty()) result.add(current.toString());
        return result;
    }

    private static List<Segment> tokenWeights(String s, double current) {
        List<Segment> out = new ArrayList<>();
        for (String x : parseParentheses(s)) {
            double weight = current;
            if (x.length() >= 2 && x.charAt(x.length() - 1) == ')' && x.charAt(0) == '(') {
                x = x.substring(1, x.length() - 1);
                int colon = x.lastIndexOf(':');
                weight *= 1.1;
                if (colon > 0) {
                    Double w = pythonFloat(x.substring(colon + 1));
                    if (w != null) {
                        weight = w;
                        x = x.substring(0, colon);
                    }
                }
                out.addAll(tokenWeights(x, weight));
            } else {
                out.add(new Segment(x, current));
            }
        }
        return out;
    }

    private static final Pattern DIGITS = "\\d(?:_?\\d)*".transform(d -> Pattern.compile(
            "[+-]?(?:(?:" + d + ")?\\.(?:" + d + ")|(?:" + d + ")\\.?)(?:[eE][+-]?(?:" + d + "))?"));

    /** Python's float(str): surrounding whitespace, underscores between digits, inf/infinity/nan; null when not a float. */
    static Double pythonFloat(String s) {
        String t = s.strip();
        String lower = t.toLowerCase(Locale.ROOT);
        String unsigned = lower.startsWith("+") || lower.startsWith("-") ? lower.substring(1) : lower;
        if (unsigned.equals("inf") || unsigned.equals("infinity"))
            return lower.startsWith("-") ? Double.NEGATIVE_INFINITY : Double.POSITIVE_INFINITY;
        if (unsigned.equals("nan")) return Double.NaN;
        if (!DIGITS.matcher(t).matches()) return null;
        return Double.parseDouble(t.replace("_", ""));
    }
}
