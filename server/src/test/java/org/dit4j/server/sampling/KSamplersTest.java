package org.dit4j.server.sampling;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * ComfyUI's euler / uni_pc / uni_pc_bh2 against scripts/reference/comfy_unipc_reference.py, an independent
 * re-derivation of the method in PyTorch float32 on the CPU with the toy denoiser D(x, s) = (0.7x − (0.2s)x) + c·s.
 * Cases: 2 steps (UniPC order 1), 3 (order 2), 4 and 7 (order 3, lower order at the end), and a cut schedule ending
 * at σ = 0.1 (no 0.001 substitution). Outputs must agree within 2e-6 absolute (values are O(1); float32 log/exp and
 * the 3×3 solve may differ by an ulp or two between Java and PyTorch); the sigmas the model is called at exactly.
 */
class KSamplersTest {

    static final float[] S2_UNI_PC_X = {0.6674468517303467f, -0.6870142221450806f, 0.531746506690979f, 0.9755168557167053f, -0.6845489740371704f, 0.1894720047712326f, -0.2738659083843231f, 0.2432822734117508f};
    static final float[] S2_UNI_PC_DEN = {0.6672000885009766f, -0.6864000558853149f, 0.5320000648498535f, 0.9743998646736145f, -0.6848000288009644f, 0.18960000574588776f, -0.2720000445842743f, 0.24240005016326904f};
    static final float S2_UNI_PC_LAST = 0.0010000000474974513f;
    static final float[] S2_UNI_PC_BH2_X = {0.6674543023109436f, -0.687019944190979f, 0.5317549109458923f, 0.9755236506462097f, -0.6845594048500061f, 0.1894751936197281f, -0.2738594114780426f, 0.24328070878982544f};
    static final float[] S2_UNI_PC_BH2_DEN = {0.6672000885009766f, -0.6864000558853149f, 0.5320000648498535f, 0.9743998646736145f, -0.6848000288009644f, 0.18960000574588776f, -0.2720000445842743f, 0.24240005016326904f};
    static final float S2_UNI_PC_BH2_LAST = 0.0010000000474974513f;
    static final float[] S2_EULER_X = {0.667199969291687f, -0.6863999366760254f, 0.531999945640564f, 0.974399983882904f, -0.6848000288009644f, 0.18959999084472656f, -0.2720000743865967f, 0.2423999309539795f};
    static final float[] S2_EULER_DEN = {0.667199969291687f, -0.6863999366760254f, 0.531999945640564f, 0.974399983882904f, -0.6848000288009644f, 0.18959999084472656f, -0.2720000147819519f, 0.2423999309539795f};
    static final float S2_EULER_LAST = 0.0f;
    static final float[] S3_UNI_PC_X = {0.5819318294525146f, -0.6144319176673889f, 0.4443182945251465f, 0.8829549551010132f, -0.5752274394035339f, 0.15670457482337952f, -0.314432293176651f, 0.24607990682125092f};
    static final float[] S3_UNI_PC_DEN = {0.5815153121948242f, -0.6136696338653564f, 0.44440340995788574f, 0.881645679473877f, -0.5752672553062439f, 0.156769797205925f, -0.3126269280910492f, 0.2451942414045334f};
    static final float S3_UNI_PC_LAST = 0.0010000000474974513f;
    static final float[] S3_UNI_PC_BH2_X = {0.5895390510559082f, -0.6196168661117554f, 0.45368507504463196f, 0.8885182738304138f, -0.5867325663566589f, 0.16031886637210846f, -0.3045923113822937f, 0.24303318560123444f};
    static final float[] S3_UNI_PC_BH2_DEN = {0.58913654088974f, -0.618864119052887f, 0.4537874758243561f, 0.8872193098068237f, -0.5867935419082642f, 0.16039074957370758f, -0.3027688264846802f, 0.24214190244674683f};
    static final float S3_UNI_PC_BH2_LAST = 0.0010000000474974513f;
    static final float[] S3_EULER_X = {0.6097379326820374f, -0.6329059600830078f, 0.4791550040245056f, 0.9022859334945679f, -0.6179519891738892f, 0.17017900943756104f, -0.27612006664276123f, 0.23389101028442383f};
    static final float[] S3_EULER_DEN = {0.6097379326820374f, -0.6329059600830078f, 0.4791550040245056f, 0.9022859334945679f, -0.6179519891738892f, 0.17017900943756104f, -0.27612003684043884f, 0.23389099538326263f};
    static final float S3_EULER_LAST = 0.0f;
    static final float[] S4_UNI_PC_X = {0.5330732464790344f, -0.5662240982055664f, 0.40278908610343933f, 0.8159191608428955f, -0.522200345993042f, 0.1416890174150467f, -0.304592102766037f, 0.23285382986068726f};
    static final float[] S4_UNI_PC_DEN = {0.5325207114219666f, -0.5653272867202759f, 0.4027588963508606f, 0.8144226670265198f, -0.5220928192138672f, 0.14171256124973297f, -0.30275803804397583f, 0.23193076252937317f};
    static final float S4_UNI_PC_LAST = 0.0010000000474974513f;
    static final float[] S4_UNI_PC_BH2_X = {0.5421417355537415f, -0.573144793510437f, 0.4130309820175171f, 0.8241044878959656f, -0.5348803400993347f, 0.1455908864736557f, -0.29648566246032715f, 0.23084907233715057f};
    static final float[] S4_UNI_PC_BH2_DEN = {0.5416097044944763f, -0.5722639560699463f, 0.4130236506462097f, 0.8226271867752075f, -0.534801185131073f, 0.145623117685318f, -0.2946346402168274f, 0.2299221009016037f};
    static final float S4_UNI_PC_BH2_LAST = 0.0010000000474974513f;
    static final float[] S4_EULER_X = {0.5689671039581299f, -0.593124508857727f, 0.4439423978328705f, 0.8472844958305359f, -0.5730777978897095f, 0.15740351378917694f, -0.2700960636138916f, 0.22383642196655273f};
    static final float[] S4_EULER_DEN = {0.5689671039581299f, -0.593124508857727f, 0.4439423978328705f, 0.8472844958305359f, -0.5730777978897095f, 0.15740351378917694f, -0.2700960338115692f, 0.22383643686771393f};
    static final float S4_EULER_LAST = 0.0f;
    static final float[] S7_UNI_PC_X = {0.37028273940086365f, -0.3938332200050354f, 0.27913105487823486f, 0.5678515434265137f, -0.361998051404953f, 0.0981321856379509f, -0.21413849294185638f, 0.16289545595645905f};
    static final float[] S7_UNI_PC_DEN = {0.3687329590320587f, -0.39190673828125f, 0.27831050753593445f, 0.5648907423019409f, -0.36087238788604736f, 0.0978744626045227f, -0.21187925338745117f, 0.161601722240448f};
    static final float S7_UNI_PC_LAST = 0.0010000000474974513f;
    static final float[] S7_UNI_PC_BH2_X = {0.396150141954422f, -0.41943177580833435f, 0.3010232150554657f, 0.6035014986991882f, -0.3899659812450409f, 0.10604021698236465f, -0.21971960365772247f, 0.17006443440914154f};
    static final float[] S7_UNI_PC_BH2_DEN = {0.3947736322879791f, -0.417676717042923f, 0.30034926533699036f, 0.6007794737815857f, -0.3890276551246643f, 0.1058354526758194f, -0.21749770641326904f, 0.16881871223449707f};
    static final float S7_UNI_PC_BH2_LAST = 0.0010000000474974513f;
    static final float[] S7_EULER_X = {0.44999536871910095f, -0.4718518555164337f, 0.34767550230026245f, 0.675892174243927f, -0.44939592480659485f, 0.12297752499580383f, -0.22709573805332184f, 0.1830829679965973f};
    static final float[] S7_EULER_DEN = {0.44999536871910095f, -0.4718518555164337f, 0.34767550230026245f, 0.675892174243927f, -0.44939592480659485f, 0.12297752499580383f, -0.22709575295448303f, 0.1830829679965973f};
    static final float S7_EULER_LAST = 0.0f;
    static final float[] CUT_UNI_PC_X = {0.5721291899681091f, -0.6744672656059265f, 0.3488514721393585f, 1.0158909559249878f, -0.46699756383895874f, 0.11535272002220154f, -0.6540248394012451f, 0.39678269624710083f};
    static final float[] CUT_UNI_PC_DEN = {0.48659026622772217f, -0.5447907447814941f, 0.3327410817146301f, 0.8034474849700928f, -0.43754875659942627f, 0.11396674811840057f, -0.4149401783943176f, 0.274018257856369f};
    static final float CUT_UNI_PC_LAST = 0.10000000149011612f;
    static final float[] CUT_UNI_PC_BH2_X = {0.5785935521125793f, -0.6806167364120483f, 0.35463234782218933f, 1.0242795944213867f, -0.47433406114578247f, 0.11746532469987869f, -0.6542052030563354f, 0.39802902936935425f};
    static final float[] CUT_UNI_PC_BH2_DEN = {0.4961926341056824f, -0.5539962649345398f, 0.3412393033504486f, 0.8160572648048401f, -0.4483471214771271f, 0.11706580221652985f, -0.4155558943748474f, 0.2760257422924042f};
    static final float CUT_UNI_PC_BH2_LAST = 0.10000000149011612f;
    static final float[] CUT_EULER_X = {0.6153474450111389f, -0.7168033123016357f, 0.38596969842910767f, 1.0745437145233154f, -0.5143323540687561f, 0.12880349159240723f, -0.6612263917922974f, 0.4078071415424347f};
    static final float[] CUT_EULER_DEN = {0.5254570245742798f, -0.5820363163948059f, 0.36715662479400635f, 0.8544564843177795f, -0.48127633333206177f, 0.12651844322681427f, -0.41736072301864624f, 0.2821117043495178f};
    static final float CUT_EULER_LAST = 0.10000000149011612f;

    static final float[] X0 = {0.9f, -1.3f, 0.25f, 2.1f, -0.4f, 0.05f, -2.2f, 1.15f};
    static final float[] C = {0.3f, -0.1f, 0.5f, 0.0f, -0.6f, 0.2f, 0.9f, -0.35f};

    static float[] toy(float[] x, float s) {
        float[] d = new float[x.length];
        for (int j = 0; j < x.length; j++) d[j] = ((0.7f * x[j]) - ((0.2f * s) * x[j])) + C[j] * s;
        return d;
    }

    static void check(String sampler, float[] sigmas, float[] x, float[] den, float last, float[] calls) {
        List<Float> seen = new ArrayList<>();
        List<Integer> steps = new ArrayList<>();
        KSamplers.Result r = KSamplers.sample(sampler, (xi, step, s) -> {
            seen.add(s);
            steps.add(step);
            return toy(xi, s);
        }, X0, sigmas, (i, n, d) -> { });
        String what = sampler + " over " + sigmas.length + " sigmas";
        for (int j = 0; j < x.length; j++) {
            assertEquals(x[j], r.x()[j], 2e-6, what + ": x[" + j + "]");
            assertEquals(den[j], r.denoised()[j], 2e-6, what + ": denoised[" + j + "]");
        }
        assertEquals(last, r.finalSigma(), 0f, what + ": final sigma");
        assertEquals(sigmas.length - 1, seen.size(), what + ": one model call per step");
        for (int i = 0; i < seen.size(); i++) {
            assertEquals(i, steps.get(i), what + ": call " + i + " step index");
            if (calls != null) assertEquals(calls[i], seen.get(i), 0f, what + ": call " + i + " sigma");
        }
    }

    @Test void samplersMatchTheFloat32Reference() {
        check("uni_pc", new float[] {1.0f, 0.6f, 0.0f}, S2_UNI_PC_X, S2_UNI_PC_DEN, S2_UNI_PC_LAST, new float[] {1.0f, 0.6000000238418579f});
        check("uni_pc_bh2", new float[] {1.0f, 0.6f, 0.0f}, S2_UNI_PC_BH2_X, S2_UNI_PC_BH2_DEN, S2_UNI_PC_BH2_LAST, new float[] {1.0f, 0.6000000238418579f});
        check("euler", new float[] {1.0f, 0.6f, 0.0f}, S2_EULER_X, S2_EULER_DEN, S2_EULER_LAST, null);
        check("uni_pc", new float[] {1.0f, 0.8f, 0.4f, 0.0f}, S3_UNI_PC_X, S3_UNI_PC_DEN, S3_UNI_PC_LAST, new float[] {1.0f, 0.800000011920929f, 0.4000000059604645f});
        check("uni_pc_bh2", new float[] {1.0f, 0.8f, 0.4f, 0.0f}, S3_UNI_PC_BH2_X, S3_UNI_PC_BH2_DEN, S3_UNI_PC_BH2_LAST, new float[] {1.0f, 0.800000011920929f, 0.4000000059604645f});
        check("euler", new float[] {1.0f, 0.8f, 0.4f, 0.0f}, S3_EULER_X, S3_EULER_DEN, S3_EULER_LAST, null);
        check("uni_pc", new float[] {1.0f, 0.9f, 0.6f, 0.3f, 0.0f}, S4_UNI_PC_X, S4_UNI_PC_DEN, S4_UNI_PC_LAST, new float[] {1.0f, 0.8999999761581421f, 0.6000000238418579f, 0.30000001192092896f});
        check("uni_pc_bh2", new float[] {1.0f, 0.9f, 0.6f, 0.3f, 0.0f}, S4_UNI_PC_BH2_X, S4_UNI_PC_BH2_DEN, S4_UNI_PC_BH2_LAST, new float[] {1.0f, 0.8999999761581421f, 0.6000000238418579f, 0.30000001192092896f});
        check("euler", new float[] {1.0f, 0.9f, 0.6f, 0.3f, 0.0f}, S4_EULER_X, S4_EULER_DEN, S4_EULER_LAST, null);
        check("uni_pc", new float[] {1.0f, 0.95f, 0.85f, 0.7f, 0.5f, 0.3f, 0.1f, 0.0f}, S7_UNI_PC_X, S7_UNI_PC_DEN, S7_UNI_PC_LAST, new float[] {1.0f, 0.949999988079071f, 0.8500000238418579f, 0.699999988079071f, 0.5f, 0.30000001192092896f, 0.10000000149011612f});
        check("uni_pc_bh2", new float[] {1.0f, 0.95f, 0.85f, 0.7f, 0.5f, 0.3f, 0.1f, 0.0f}, S7_UNI_PC_BH2_X, S7_UNI_PC_BH2_DEN, S7_UNI_PC_BH2_LAST, new float[] {1.0f, 0.949999988079071f, 0.8500000238418579f, 0.699999988079071f, 0.5f, 0.30000001192092896f, 0.10000000149011612f});
        check("euler", new float[] {1.0f, 0.95f, 0.85f, 0.7f, 0.5f, 0.3f, 0.1f, 0.0f}, S7_EULER_X, S7_EULER_DEN, S7_EULER_LAST, null);
        check("uni_pc", new float[] {0.8f, 0.6f, 0.4f, 0.2f, 0.1f}, CUT_UNI_PC_X, CUT_UNI_PC_DEN, CUT_UNI_PC_LAST, new float[] {0.800000011920929f, 0.6000000238418579f, 0.4000000059604645f, 0.20000000298023224f});
        check("uni_pc_bh2", new float[] {0.8f, 0.6f, 0.4f, 0.2f, 0.1f}, CUT_UNI_PC_BH2_X, CUT_UNI_PC_BH2_DEN, CUT_UNI_PC_BH2_LAST, new float[] {0.800000011920929f, 0.6000000238418579f, 0.4000000059604645f, 0.20000000298023224f});
        check("euler", new float[] {0.8f, 0.6f, 0.4f, 0.2f, 0.1f}, CUT_EULER_X, CUT_EULER_DEN, CUT_EULER_LAST, null);
    }

    @Test void xIsNotModifiedAndUnknownSamplersAreRefused() {
        float[] x = X0.clone();
        KSamplers.sample("uni_pc", (xi, step, s) -> toy(xi, s), x, new float[] {1f, 0.5f, 0f}, (i, n, d) -> { });
        for (int j = 0; j < x.length; j++) assertEquals(X0[j], x[j], 0f);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> KSamplers.sample("dpmpp_2m", (xi, step, s) -> xi, x, new float[] {1f, 0f}, (i, n, d) -> { }));
        assertEquals(true, e.getMessage().contains("dpmpp_2m") && e.getMessage().contains("uni_pc"), e.getMessage());
    }

    @Test void smallSolveMatchesExactSolution() {
        // [[1,1,1],[-1,-2,1],[1,4,1]] · [1,2,3] = [6, -2, 12]
        float[] y = KSamplers.solve(new float[][] {{1, 1, 1}, {-1, -2, 1}, {1, 4, 1}}, new float[] {6, -2, 12}, 3);
        assertEquals(1f, y[0], 1e-6);
        assertEquals(2f, y[1], 1e-6);
        assertEquals(3f, y[2], 1e-6);
    }
}
