package org.dit4j.server.sampling;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Schedules against ComfyUI's formulas. The arrays come from scripts/reference/comfy_sigmas.py, which re-derives
 * ModelSamplingFlux / ModelSamplingDiscreteFlow tables and the simple, normal, sgm_uniform and beta schedulers of
 * comfy/samplers.py in numpy float32 (beta with SciPy's beta.ppf). Table lookups (simple, beta) must match
 * exactly; the linspace-based ones (normal, sgm_uniform) within 2e-7 absolute (one float32 ulp near 1), the
 * difference PyTorch's vectorised linspace can make. A second check compares with the formulas in double
 * precision (1e-6, float32 rounding of the table).
 */
class SchedulersTest {

    static final float[] FLUX_115_SIMPLE_20 = {1.0f, 0.983608067035675f, 0.9660138487815857f, 0.9470800161361694f, 0.9266473650932312f, 0.9045307636260986f, 0.880513072013855f, 0.8543381690979004f, 0.8257015943527222f, 0.7942392230033875f, 0.7595109343528748f, 0.7209802865982056f, 0.677986741065979f, 0.6297070980072021f, 0.5751029849052429f, 0.5128440856933594f, 0.44119977951049805f, 0.3578745722770691f, 0.2597584128379822f, 0.14252935349941254f, 0.0f};
    static final float[] FLUX_115_NORMAL_20 = {1.0f, 0.982718825340271f, 0.9640986919403076f, 0.9439776539802551f, 0.9221667051315308f, 0.8984434604644775f, 0.8725451231002808f, 0.844157874584198f, 0.8129051923751831f, 0.7783299684524536f, 0.7398725748062134f, 0.696840226650238f, 0.6483650803565979f, 0.5933447480201721f, 0.5303576588630676f, 0.45753830671310425f, 0.3723898231983185f, 0.2714911699295044f, 0.1500270962715149f, 0.0009965240024030209f, 0.0f};
    static final float[] FLUX_115_SGM_20 = {1.0f, 0.9836134314537048f, 0.9660253524780273f, 0.9470985531806946f, 0.9266740679740906f, 0.9045671224594116f, 0.8805605173110962f, 0.8543985486030579f, 0.8257773518562317f, 0.7943331003189087f, 0.7596262693405151f, 0.7211214303970337f, 0.6781590580940247f, 0.6299175024032593f, 0.575360119342804f, 0.5131595730781555f, 0.441588819026947f, 0.35835811495780945f, 0.26036524772644043f, 0.14330068230628967f, 0.0f};
    static final float[] FLUX_115_BETA_20 = {1.0f, 0.9959757328033447f, 0.9871124029159546f, 0.9742648005485535f, 0.9575174450874329f, 0.9367757439613342f, 0.9118037223815918f, 0.8821616768836975f, 0.8473109602928162f, 0.8066811561584473f, 0.7595839500427246f, 0.7051241993904114f, 0.642623245716095f, 0.571363627910614f, 0.49117511510849f, 0.4024982750415802f, 0.30697011947631836f, 0.20875975489616394f, 0.11548543721437454f, 0.03903902694582939f, 0.0f};
    static final float[] FLUX_115_SIMPLE_4 = {1.0f, 0.9045307636260986f, 0.7595109343528748f, 0.5128440856933594f, 0.0f};
    static final float[] FLUX_115_BETA_7 = {1.0f, 0.9763374924659729f, 0.9194141030311584f, 0.8248609900474548f, 0.6793488264083862f, 0.4665938913822174f, 0.19491243362426758f, 0.0f};
    static final float[] FLUX_512x768_SIMPLE_20 = {1.0f, 0.9749400615692139f, 0.9485288262367249f, 0.9206541180610657f, 0.8911906480789185f, 0.8599985837936401f, 0.8269215226173401f, 0.7917828559875488f, 0.7543839812278748f, 0.7144992351531982f, 0.671872615814209f, 0.6262109875679016f, 0.5771785378456116f, 0.5243874788284302f, 0.4673885405063629f, 0.40565770864486694f, 0.3385802209377289f, 0.26542994379997253f, 0.1853431761264801f, 0.09728410094976425f, 0.0f};
    static final float[] FLUX_512x768_NORMAL_20 = {1.0f, 0.9735902547836304f, 0.9456775188446045f, 0.9161297082901001f, 0.8847989439964294f, 0.8515188097953796f, 0.816101610660553f, 0.7783345580101013f, 0.7379757761955261f, 0.6947489976882935f, 0.6483372449874878f, 0.5983750224113464f, 0.544438898563385f, 0.4860348701477051f, 0.42258399724960327f, 0.35340237617492676f, 0.2776770293712616f, 0.19443340599536896f, 0.10249342024326324f, 0.0004191313055343926f, 0.0f};
    static final float[] FLUX_512x768_SGM_20 = {1.0f, 0.9749452471733093f, 0.9485399127006531f, 0.9206717014312744f, 0.8912153840065002f, 0.8600314855575562f, 0.8269633650779724f, 0.7918347716331482f, 0.7544472217559814f, 0.7145751714706421f, 0.6719627976417542f, 0.6263175010681152f, 0.577303409576416f, 0.5245333313941956f, 0.4675584137439728f, 0.40585511922836304f, 0.33880946040153503f, 0.26569604873657227f, 0.1856522560119629f, 0.09764363616704941f, 0.0f};
    static final float[] FLUX_512x768_BETA_20 = {1.0f, 0.9938066005706787f, 0.9802603125572205f, 0.9608527421951294f, 0.9359510540962219f, 0.9057167768478394f, 0.8701773285865784f, 0.8291661143302917f, 0.7825061082839966f, 0.7301245331764221f, 0.6719607710838318f, 0.6078982949256897f, 0.53828364610672f, 0.4635854959487915f, 0.3849389851093292f, 0.30398353934288025f, 0.22310617566108704f, 0.14607153832912445f, 0.07804377377033234f, 0.025663040578365326f, 0.0f};
    static final float[] FLUX_512x768_SIMPLE_4 = {1.0f, 0.8599985837936401f, 0.671872615814209f, 0.40565770864486694f, 0.0f};
    static final float[] FLUX_512x768_BETA_7 = {1.0f, 0.9639655351638794f, 0.8809103965759277f, 0.7533020973205566f, 0.5787020325660706f, 0.36189302802085876f, 0.13566942512989044f, 0.0f};
    static final float[] SCHNELL_SIMPLE_20 = {1.0f, 0.949999988079071f, 0.8999999761581421f, 0.8500000238418579f, 0.800000011920929f, 0.75f, 0.699999988079071f, 0.6499999761581421f, 0.6000000238418579f, 0.550000011920929f, 0.5f, 0.44999998807907104f, 0.4000000059604645f, 0.3499999940395355f, 0.30000001192092896f, 0.25f, 0.20000000298023224f, 0.15000000596046448f, 0.10000000149011612f, 0.05000000074505806f, 0.0f};
    static final float[] SCHNELL_NORMAL_20 = {1.0f, 0.9474210739135742f, 0.8948420882225037f, 0.8422631621360779f, 0.7896841764450073f, 0.7371052503585815f, 0.6845263242721558f, 0.63194739818573f, 0.5793684124946594f, 0.5267894268035889f, 0.4742105305194855f, 0.4216315746307373f, 0.36905261874198914f, 0.31647366285324097f, 0.2638947367668152f, 0.2113157957792282f, 0.15873683989048004f, 0.10615789890289307f, 0.053578946739435196f, 0.0010000000474974513f, 0.0f};
    static final float[] SCHNELL_SGM_20 = {1.0f, 0.9500499963760376f, 0.9000999927520752f, 0.8501499891281128f, 0.8001999855041504f, 0.750249981880188f, 0.7002999782562256f, 0.6503499746322632f, 0.6003999710083008f, 0.5504499673843384f, 0.5005000233650208f, 0.45054998993873596f, 0.40059998631477356f, 0.35064998269081116f, 0.30069997906684875f, 0.25075000524520874f, 0.20080000162124634f, 0.15084999799728394f, 0.10090000182390213f, 0.05094999819993973f, 0.0f};
    static final float[] SCHNELL_BETA_20 = {1.0f, 0.9869999885559082f, 0.9599999785423279f, 0.9229999780654907f, 0.8769999742507935f, 0.8240000009536743f, 0.765999972820282f, 0.7039999961853027f, 0.6380000114440918f, 0.5699999928474426f, 0.5009999871253967f, 0.4309999942779541f, 0.3630000054836273f, 0.296999990940094f, 0.23499999940395355f, 0.1770000010728836f, 0.12399999797344208f, 0.07800000160932541f, 0.04100000113248825f, 0.014000000432133675f, 0.0f};
    static final float[] SCHNELL_SIMPLE_4 = {1.0f, 0.75f, 0.5f, 0.25f, 0.0f};
    static final float[] SCHNELL_BETA_7 = {1.0f, 0.9290000200271606f, 0.7829999923706055f, 0.5989999771118164f, 0.4020000100135803f, 0.21799999475479126f, 0.07199999690055847f, 0.0f};
    static final float[] SD3_3_SIMPLE_20 = {1.0f, 0.9827585816383362f, 0.964285671710968f, 0.944444477558136f, 0.9230769872665405f, 0.8999999761581421f, 0.8749999403953552f, 0.8478260636329651f, 0.8181818127632141f, 0.7857143878936768f, 0.75f, 0.7105262875556946f, 0.6666666865348816f, 0.6176469922065735f, 0.5625f, 0.5f, 0.4285714626312256f, 0.3461538851261139f, 0.25f, 0.13636364042758942f, 0.0f};
    static final float[] SD3_3_NORMAL_20 = {1.0f, 0.9818745851516724f, 0.9623857140541077f, 0.9413732886314392f, 0.9186515808105469f, 0.8940030932426453f, 0.8671719431877136f, 0.8378546833992004f, 0.8056892156600952f, 0.7702391147613525f, 0.7309743165969849f, 0.6872438192367554f, 0.6382400989532471f, 0.5829479694366455f, 0.5200740694999695f, 0.4479442834854126f, 0.3643522262573242f, 0.26632970571517944f, 0.14978723227977753f, 0.008928571827709675f, 0.0f};
    static final float[] SD3_3_SGM_20 = {1.0f, 0.9828119874000549f, 0.9644002914428711f, 0.9446291923522949f, 0.9233424663543701f, 0.900359034538269f, 0.8754674196243286f, 0.848419725894928f, 0.81892329454422f, 0.7866297364234924f, 0.7511211037635803f, 0.7118924260139465f, 0.6683266758918762f, 0.6196626424789429f, 0.564949631690979f, 0.5029850602149963f, 0.4322250783443451f, 0.35065382719039917f, 0.2555886507034302f, 0.14337937533855438f, 0.0f};
    static final float[] SD3_3_BETA_20 = {1.0f, 0.9956287741661072f, 0.9863013029098511f, 0.9729444980621338f, 0.9553377032279968f, 0.9335348010063171f, 0.9075828790664673f, 0.8770763874053955f, 0.8409490585327148f, 0.7990654706954956f, 0.7507492899894714f, 0.6944146156311035f, 0.6309385299682617f, 0.558971107006073f, 0.47959181666374207f, 0.39217135310173035f, 0.29807689785957336f, 0.2024221420288086f, 0.11367837339639664f, 0.04085603356361389f, 0.0f};
    static final float[] SD3_3_SIMPLE_4 = {1.0f, 0.8999999761581421f, 0.75f, 0.5f, 0.0f};
    static final float[] SD3_3_BETA_7 = {1.0f, 0.9751574993133545f, 0.9154325723648071f, 0.8175613880157471f, 0.6685144305229187f, 0.4554317593574524f, 0.18881116807460785f, 0.0f};

    private static final double SHIFT_512x768 = 0.7166666666666666;

    private static void close(float[] expected, float[] actual, double tol, String what) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++)
            assertEquals(expected[i], actual[i], tol, what + ": sigma[" + i + "]");
    }

    @Test void fluxNodeShiftIsComfyUIsLine() {
        assertEquals(1.15, ModelSampling.fluxShift(1.15, 0.5, 1024, 1024), 1e-15);
        assertEquals(SHIFT_512x768, ModelSampling.fluxShift(1.15, 0.5, 512, 768), 0.0);
        assertEquals(0.5, ModelSampling.fluxShift(1.15, 0.5, 256, 256), 1e-15);
    }

    @Test void simpleAndBetaAreExactTableLookups() {
        ModelSampling flux = ModelSampling.flux(1.15), flux2 = ModelSampling.flux(SHIFT_512x768);
        ModelSampling schnell = ModelSampling.flow(1.0, 1.0), sd3 = ModelSampling.flow(3.0, 1000);
        assertArrayEquals(FLUX_115_SIMPLE_20, Schedulers.calculate(flux, "simple", 20));
        assertArrayEquals(FLUX_115_SIMPLE_4, Schedulers.calculate(flux, "simple", 4));
        assertArrayEquals(FLUX_512x768_SIMPLE_20, Schedulers.calculate(flux2, "simple", 20));
        assertArrayEquals(SCHNELL_SIMPLE_4, Schedulers.calculate(schnell, "simple", 4));
        assertArrayEquals(SCHNELL_SIMPLE_20, Schedulers.calculate(schnell, "simple", 20));
        assertArrayEquals(SD3_3_SIMPLE_20, Schedulers.calculate(sd3, "simple", 20));
        assertArrayEquals(FLUX_115_BETA_20, Schedulers.calculate(flux, "beta", 20));
        assertArrayEquals(FLUX_115_BETA_7, Schedulers.calculate(flux, "beta", 7));
        assertArrayEquals(FLUX_512x768_BETA_20, Schedulers.calculate(flux2, "beta", 20));
        assertArrayEquals(SCHNELL_BETA_20, Schedulers.calculate(schnell, "beta", 20));
        assertArrayEquals(SD3_3_BETA_20, Schedulers.calculate(sd3, "beta", 20));
    }

    @Test void normalAndSgmUniformMatchWithinOneUlp() {
        ModelSampling flux = ModelSampling.flux(1.15), flux2 = ModelSampling.flux(SHIFT_512x768);
        ModelSampling schnell = ModelSampling.flow(1.0, 1.0), sd3 = ModelSampling.flow(3.0, 1000);
        close(FLUX_115_NORMAL_20, Schedulers.calculate(flux, "normal", 20), 2e-7, "flux normal");
        close(FLUX_115_SGM_20, Schedulers.calculate(flux, "sgm_uniform", 20), 2e-7, "flux sgm_uniform");
        close(FLUX_512x768_NORMAL_20, Schedulers.calculate(flux2, "normal", 20), 2e-7, "flux 512x768 normal");
        close(FLUX_512x768_SGM_20, Schedulers.calculate(flux2, "sgm_uniform", 20), 2e-7, "flux 512x768 sgm");
        close(SCHNELL_NORMAL_20, Schedulers.calculate(schnell, "normal", 20), 2e-7, "schnell normal");
        close(SCHNELL_SGM_20, Schedulers.calculate(schnell, "sgm_uniform", 20), 2e-7, "schnell sgm");
        close(SD3_3_NORMAL_20, Schedulers.calculate(sd3, "normal", 20), 2e-7, "sd3 normal");
        close(SD3_3_SGM_20, Schedulers.calculate(sd3, "sgm_uniform", 20), 2e-7, "sd3 sgm");
    }

    @Test void fluxTableFollowsTheFormulaInDoublePrecision() {
        ModelSampling ms = ModelSampling.flux(1.15);
        float[] t = ms.sigmaTable();
        assertEquals(10000, t.length);
        for (int k = 1; k <= 10000; k += 97) {
            double tt = k / 10000.0, e = Math.exp(1.15);
            assertEquals(e / (e + (1 / tt - 1)), t[k - 1], 1e-6, "sigma table entry " + k);
        }
        // simple at 20 steps picks t = 1 − i/20 exactly (10000 is a multiple of 20)
        float[] s = Schedulers.simple(ms, 20);
        for (int i = 0; i < 20; i++) {
            double tt = 1 - i / 20.0, e = Math.exp(1.15);
            assertEquals(e / (e + (1 / tt - 1)), s[i], 1e-6);
        }
    }

    @Test void ksamplerDenoiseAndDiscardPenultimate() {
        ModelSampling ms = ModelSampling.flux(1.15);
        float[] full = Schedulers.calculate(ms, "simple", 40);
        float[] half = Schedulers.ksampler(ms, "simple", "euler", 20, 0.5);       // int(20/0.5) = 40 steps, last 21 kept
        assertEquals(21, half.length);
        for (int i = 0; i < 21; i++) assertEquals(full[20 + i], half[i], 0.0);
        assertEquals(0, Schedulers.ksampler(ms, "simple", "euler", 20, 0.0).length);
        float[] uni = Schedulers.ksampler(ms, "simple", "uni_pc", 20, 1.0);      // 21 steps computed, penultimate dropped
        float[] s21 = Schedulers.calculate(ms, "simple", 21);
        assertEquals(21, uni.length);
        for (int i = 0; i < 20; i++) assertEquals(s21[i], uni[i], 0.0);
        assertEquals(0f, uni[20], 0.0);
        float[] basic = Schedulers.basic(ms, "simple", 20, 0.5);
        assertArrayEquals(half, basic);
    }

    @Test void advancedRangeCutsAsKSamplerSample() {
        float[] s = {1f, 0.8f, 0.6f, 0.4f, 0.2f, 0f};
        assertArrayEquals(new float[]{0.6f, 0f}, Schedulers.advancedRange(s, 2, 3, true));      // s[:4], last set to 0, then s[2:]
        assertArrayEquals(new float[]{0.6f, 0.4f}, Schedulers.advancedRange(s, 2, 3, false));
        assertArrayEquals(s, Schedulers.advancedRange(s, 0, 10000, true));
        assertEquals(null, Schedulers.advancedRange(s, 5, 10000, true));
    }

    @Test void everySchedulerIsDescendingAndEndsAtZero() {
        ModelSampling ms = ModelSampling.flux(1.15);
        for (String name : Schedulers.NAMES) {
            float[] s = Schedulers.calculate(ms, name, 10);
            assertTrue(s.length >= 2, name);
            assertEquals(0f, s[s.length - 1], 1e-6, name + " ends at 0");
            for (int i = 1; i < s.length; i++) assertTrue(s[i] <= s[i - 1] + 1e-6, name + " descends at " + i + ": " + java.util.Arrays.toString(s));
        }
    }

    @Test void betaQuantileAgreesWithKnownValues() {
        assertEquals(0.5, BetaDistribution.ppf(0.5, 0.6, 0.6), 1e-14);
        assertEquals(0.25, BetaDistribution.ppf(0.25, 1, 1), 1e-14);                 // uniform
        assertEquals(Math.sqrt(0.3), BetaDistribution.ppf(0.3, 2, 1), 1e-13);          // I_x(2,1) = x²
        assertEquals(0.3, BetaDistribution.cdf(BetaDistribution.ppf(0.3, 0.6, 0.6), 0.6, 0.6), 1e-14);
    }
}
