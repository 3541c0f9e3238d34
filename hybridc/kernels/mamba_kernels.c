/* Mamba's CPU kernels, built and loaded by hybridc.kernels.library: the selective scan, one fused pass per
 * direction (hybridc.kernels.fused_scan: the math and the layouts), and the causal depthwise conv1d with its
 * SiLU (hybridc.kernels.fused_conv, at the end of this file).
 *
 *   dt_t = softplus(delta_t + bias)                         (each step only when asked)
 *   h_t = exp(dt_t * A) * h_{t-1} + dt_t * u_t * B_t      (per channel c and state n)
 *   y_t = (sum_n C_t[n] * h_t[n] + D * u_t) * silu(z_t)   (each term only when given)
 *
 * Layouts (all contiguous but z): per-token tensors are token-major, u/delta/y/g_u/g_delta (b, T, d) and
 * B/C (b, T, N); A2 = A^T * log2(e) and At = A^T are (N, d); states are (b, N, d).
 *
 * Built with -fno-trapping-math (no effect on results: nothing here reads the floating-point exception
 * flags), which lets GCC turn the clamps and selects below into vector blends, so that the loops over a
 * group's channels vectorize (2^x included).
 *
 * Work is split into items (batch row, group of W channels), run in parallel with OpenMP (the
 * caller passes the thread count; the process's OpenMP runtime is torch's). Results do not depend
 * on the thread count: every item writes its own outputs, and sums across channel groups (dB, dC)
 * are written per group and added by the caller in a fixed order. Both functions return 0, or 1 when
 * a work buffer could not be allocated.
 *
 * The forward keeps the state before every chunk of L tokens (hs, (b, K, N, d), K = ceil(T / L));
 * the backward recomputes each chunk's decays and states from it, then runs backwards through it.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define W 64 /* channels per work item */

/* 2^x for float32: exact-rounding range reduction and a degree-6 polynomial (relative error about
 * 2e-7, like expf's rounding); 0 below -126 (where 2^x is a subnormal of at most 1.2e-38), NaN stays
 * NaN. Written to vectorize. */
static inline float exp2_f32(float x) {
    x = x > 128.0f ? 128.0f : x;
    float r = (x + 12582912.0f) - 12582912.0f; /* round to nearest */
    float f = x - r;                           /* [-0.5, 0.5] */
    float p = 1.535336188319500e-4f;
    p = p * f + 1.339887440266574e-3f;
    p = p * f + 9.618437357674640e-3f;
    p = p * f + 5.550332471162809e-2f;
    p = p * f + 2.402264791363012e-1f;
    p = p * f + 6.931472028550421e-1f;
    p = p * f + 1.0f;
    int32_t e = (int32_t)r;
    e = e < -126 ? -126 : e;
    union { int32_t i; float v; } s;
    s.i = (e + 127) << 23;
    float out = p * s.v;
    return x < -126.0f ? 0.0f : out;
}

static inline double exp2_f64(double x) { return exp2(x); }

int scan_group_width(void) { return W; }

static inline float expneg_f32(float x) { return exp2_f32(-x * 1.4426950408889634f); }
static inline double expneg_f64(double x) { return exp(-x); }

/* log(1 + e) for e in [0, 1], float32: 2 atanh(s), s = e / (2 + e) in [0, 1/3], by its odd series to s^13
 * (truncation below 1e-8 relative); written to vectorize. */
static inline float log1p_unit_f32(float e) {
    const float s = e / (2.0f + e), s2 = s * s;
    float p = 1.0f / 13.0f;
    p = p * s2 + 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return 2.0f * s * p;
}

/* softplus(x) = log(1 + e^x) = max(x, 0) + log(1 + e^-|x|) (torch's threshold of 20 changes nothing in
 * float32: there log(1 + e^-x) < 2.1e-9) */
static inline float softplus_f32(float x) {
    const float ax = x < 0 ? -x : x;
    return (x > 0 ? x : 0.0f) + log1p_unit_f32(expneg_f32(ax));
}
static inline double softplus_f64(double x) { return x > 20.0 ? x : log1p(exp(x)); }
static inline float sigmoid_f32(float x) { return 1.0f / (1.0f + expneg_f32(x)); }
static inline double sigmoid_f64(double x) { return 1.0 / (1.0 + exp(-x)); }

/* The scan with the mixer's element-wise steps around it (each only when given / flagged):
 *
 *   dt  = softplus(delta + bias)                   (flags & 1: softplus; bias (d) or NULL)
 *   out = (y + D * u) * silu(z)                    (D (d) or NULL; z or NULL)
 *
 * delta is the raw time step (b, T, d); z (b, T, .) has rows zs elements apart (a slice of the mixer's
 * in_proj output). The backward recomputes dt and y from the saved chunk states and writes the gradients
 * of delta, z (b, T, d), and per batch row those of D and bias, g_D and g_bias (b, d), for the caller
 * to add. */
/* v = delta_t + bias over the item's channels (delta_t alone without a bias); the branches stay outside the
 * loops so that they vectorize */
#define PLUS_BIAS(v, delta_t)                                                                             \
    do {                                                                                                  \
        if (bias) for (int64_t c = 0; c < cw; c++) (v)[c] = (delta_t)[c] + bias[c0 + c];                 \
        else for (int64_t c = 0; c < cw; c++) (v)[c] = (delta_t)[c];                                      \
    } while (0)
/* dt = softplus(delta_t + bias), or delta_t + bias without softplus */
#define TIME_STEPS(dt, delta_t, SOFTPLUS)                                                                 \
    do {                                                                                                  \
        PLUS_BIAS(dt, delta_t);                                                                           \
        if (softplus) for (int64_t c = 0; c < cw; c++) (dt)[c] = SOFTPLUS((dt)[c]);                       \
    } while (0)

#define DEFINE_SCAN(T_, SUFFIX, EXP2, SOFTPLUS, SIGMOID)                                                 \
int scan_fwd_##SUFFIX(int64_t b, int64_t T, int64_t d, int64_t N, int64_t L, int64_t zs, int64_t flags,  \
                       const T_ *u, const T_ *delta, const T_ *A2, const T_ *Bm, const T_ *Cm,            \
                       const T_ *h0, const T_ *bias, const T_ *Dv, const T_ *z,                           \
                       T_ *y, T_ *hs, T_ *last, int nthreads) {                                           \
    const int64_t groups = (d + W - 1) / W, K = (T + L - 1) / L;                                          \
    const int softplus = (int)(flags & 1);                                                                \
    int failed = 0;                                                                                       \
    _Pragma("omp parallel for schedule(static) num_threads(nthreads) reduction(|:failed)")                \
    for (int64_t item = 0; item < b * groups; item++) {                                                   \
        const int64_t bi = item / groups, c0 = (item % groups) * W;                                       \
        const int64_t cw = d - c0 < W ? d - c0 : W;                                                       \
        T_ *h = (T_ *)calloc((size_t)(N * W), sizeof(T_));                                                \
        if (!h) { failed = 1; continue; }                                                                 \
        if (h0)                                                                                           \
            for (int64_t n = 0; n < N; n++)                                                               \
                memcpy(h + n * W, h0 + (bi * N + n) * d + c0, (size_t)cw * sizeof(T_));                   \
        for (int64_t t = 0; t < T; t++) {                                                                 \
            if (hs && t % L == 0)                                                                         \
                for (int64_t n = 0; n < N; n++)                                                           \
                    memcpy(hs + ((bi * K + t / L) * N + n) * d + c0, h + n * W, (size_t)cw * sizeof(T_)); \
            const T_ *delta_t = delta + (bi * T + t) * d + c0, *u_t = u + (bi * T + t) * d + c0;         \
            const T_ *B_t = Bm + (bi * T + t) * N, *C_t = Cm + (bi * T + t) * N;                         \
            T_ dt[W], dtu[W], acc[W];                                                                     \
            TIME_STEPS(dt, delta_t, SOFTPLUS);                                                            \
            for (int64_t c = 0; c < cw; c++) { dtu[c] = dt[c] * u_t[c]; acc[c] = 0; }                     \
            for (int64_t n = 0; n < N; n++) {                                                             \
                const T_ bn = B_t[n], cn = C_t[n], *a2 = A2 + n * d + c0;                                 \
                T_ *hn = h + n * W;                                                                       \
                for (int64_t c = 0; c < cw; c++) {                                                        \
                    hn[c] = EXP2(dt[c] * a2[c]) * hn[c] + dtu[c] * bn;                                    \
                    acc[c] += cn * hn[c];                                                                 \
                }                                                                                         \
            }                                                                                             \
            if (Dv)                                                                                       \
                for (int64_t c = 0; c < cw; c++) acc[c] += Dv[c0 + c] * u_t[c];                           \
            if (z) {                                                                                      \
                const T_ *z_t = z + (bi * T + t) * zs + c0;                                               \
                for (int64_t c = 0; c < cw; c++) acc[c] *= z_t[c] * SIGMOID(z_t[c]);                      \
            }                                                                                             \
            memcpy(y + (bi * T + t) * d + c0, acc, (size_t)cw * sizeof(T_));                              \
        }                                                                                                 \
        for (int64_t n = 0; n < N; n++)                                                                   \
            memcpy(last + (bi * N + n) * d + c0, h + n * W, (size_t)cw * sizeof(T_));                     \
        free(h);                                                                                          \
    }                                                                                                     \
    return failed;                                                                                        \
}                                                                                                         \
                                                                                                          \
int scan_bwd_##SUFFIX(int64_t b, int64_t T, int64_t d, int64_t N, int64_t L, int64_t zs, int64_t flags,  \
                       const T_ *u, const T_ *delta, const T_ *A2, const T_ *At, const T_ *Bm,            \
                       const T_ *Cm, const T_ *hs, const T_ *bias, const T_ *Dv, const T_ *z,             \
                       const T_ *gy, T_ *g_u, T_ *g_delta, T_ *g_A, T_ *g_B, T_ *g_C, T_ *g_h0,           \
                       T_ *g_D, T_ *g_bias, T_ *g_z, int nthreads) {                                      \
    /* g_A (b, N, d); g_B, g_C (groups, b, T, N); g_h0 (b, N, d); g_D, g_bias (b, d); g_z (b, T, d) */   \
    const int64_t groups = (d + W - 1) / W, K = (T + L - 1) / L;                                          \
    const int softplus = (int)(flags & 1);                                                                \
    int failed = 0;                                                                                       \
    _Pragma("omp parallel for schedule(static) num_threads(nthreads) reduction(|:failed)")                \
    for (int64_t item = 0; item < b * groups; item++) {                                                   \
        const int64_t bi = item / groups, gi = item % groups, c0 = gi * W;                                \
        const int64_t cw = d - c0 < W ? d - c0 : W;                                                       \
        const int64_t NW = N * W;                                                                         \
        T_ *buf = (T_ *)calloc((size_t)(NW * (2 * L + 3) + W * (2 * L + 2)), sizeof(T_));                 \
        if (!buf) { failed = 1; continue; }                                                               \
        T_ *a = buf, *hh = buf + L * NW, *h_start = buf + 2 * L * NW;                                     \
        T_ *g = h_start + NW, *gA = g + NW;                                                               \
        T_ *dts = gA + NW, *ys = dts + L * W, *gD = ys + L * W, *gbias = gD + W;                          \
        T_ *gB = g_B + (gi * b + bi) * T * N, *gC = g_C + (gi * b + bi) * T * N;                          \
        for (int64_t k = K - 1; k >= 0; k--) {                                                            \
            const int64_t t0 = k * L, len = T - t0 < L ? T - t0 : L;                                      \
            for (int64_t n = 0; n < N; n++)                                                               \
                memcpy(h_start + n * W, hs + ((bi * K + k) * N + n) * d + c0, (size_t)cw * sizeof(T_));   \
            /* the chunk's time steps, decays, states and scan outputs again */                          \
            for (int64_t l = 0; l < len; l++) {                                                           \
                const int64_t t = t0 + l;                                                                 \
                const T_ *delta_t = delta + (bi * T + t) * d + c0, *u_t = u + (bi * T + t) * d + c0;     \
                const T_ *B_t = Bm + (bi * T + t) * N, *C_t = Cm + (bi * T + t) * N;                     \
                const T_ *hp = l > 0 ? hh + (l - 1) * NW : h_start;                                       \
                T_ *dt = dts + l * W, *yl = ys + l * W, dtu[W];                                           \
                TIME_STEPS(dt, delta_t, SOFTPLUS);                                                        \
                for (int64_t c = 0; c < cw; c++) { dtu[c] = dt[c] * u_t[c]; yl[c] = 0; }                  \
                for (int64_t n = 0; n < N; n++) {                                                         \
                    const T_ bn = B_t[n], *a2 = A2 + n * d + c0, *hpn = hp + n * W;                       \
                    T_ *an = a + l * NW + n * W, *hn = hh + l * NW + n * W;                               \
                    for (int64_t c = 0; c < cw; c++) {                                                    \
                        an[c] = EXP2(dt[c] * a2[c]);                                                      \
                        hn[c] = an[c] * hpn[c] + dtu[c] * bn;                                             \
                    }                                                                                     \
                    if (z) { /* the scan's output, for the gate's gradient */                             \
                        const T_ cn = C_t[n];                                                             \
                        for (int64_t c = 0; c < cw; c++) yl[c] += cn * hn[c];                             \
                    }                                                                                     \
                }                                                                                         \
            }                                                                                             \
            /* backwards through the chunk; g = dL/dh_t */                                               \
            for (int64_t l = len - 1; l >= 0; l--) {                                                      \
                const int64_t t = t0 + l;                                                                 \
                const T_ *delta_t = delta + (bi * T + t) * d + c0, *u_t = u + (bi * T + t) * d + c0;     \
                const T_ *gy_t = gy + (bi * T + t) * d + c0;                                              \
                const T_ *B_t = Bm + (bi * T + t) * N, *C_t = Cm + (bi * T + t) * N;                     \
                const T_ *hp = l > 0 ? hh + (l - 1) * NW : h_start;                                       \
                const T_ *dt = dts + l * W, *yl = ys + l * W;                                             \
                T_ dtu[W], g_dtu[W], g_dd[W], gs[W]; /* gs: dL/d(the scan's y) */                        \
                for (int64_t c = 0; c < cw; c++) {                                                        \
                    dtu[c] = dt[c] * u_t[c]; g_dtu[c] = 0; g_dd[c] = 0; gs[c] = gy_t[c];                  \
                }                                                                                         \
                if (z) {                                                                                  \
                    const T_ *z_t = z + (bi * T + t) * zs + c0;                                           \
                    T_ *gz_t = g_z + (bi * T + t) * d + c0;                                               \
                    T_ pre[W];                                                                            \
                    if (Dv)                                                                               \
                        for (int64_t c = 0; c < cw; c++) pre[c] = yl[c] + Dv[c0 + c] * u_t[c];            \
                    else                                                                                  \
                        for (int64_t c = 0; c < cw; c++) pre[c] = yl[c];                                  \
                    for (int64_t c = 0; c < cw; c++) {                                                    \
                        const T_ zc = z_t[c], s = SIGMOID(zc);                                            \
                        gz_t[c] = gs[c] * pre[c] * (s * (1 + zc * (1 - s)));                              \
                        gs[c] = gs[c] * (zc * s);                                                         \
                    }                                                                                     \
                }                                                                                         \
                if (Dv)                                                                                   \
                    for (int64_t c = 0; c < cw; c++) gD[c] += gs[c] * u_t[c];                             \
                for (int64_t n = 0; n < N; n++) {                                                         \
                    const T_ bn = B_t[n], cn = C_t[n], *an = a + l * NW + n * W;                          \
                    const T_ *hn = hh + l * NW + n * W, *hpn = hp + n * W, *atn = At + n * d + c0;        \
                    T_ *gn = g + n * W, *gAn = gA + n * W;                                                \
                    T_ sC = 0, sB = 0;                                                                    \
                    _Pragma("omp simd reduction(+:sC, sB)")                                               \
                    for (int64_t c = 0; c < cw; c++) {                                                    \
                        const T_ gc = gn[c] + cn * gs[c];                                                 \
                        sC += hn[c] * gs[c];                                                              \
                        sB += gc * dtu[c];                                                                \
                        g_dtu[c] += bn * gc;                                                              \
                        const T_ gw = gc * an[c] * hpn[c]; /* dL/d(dt A) */                               \
                        g_dd[c] += gw * atn[c];                                                           \
                        gAn[c] += gw * dt[c];                                                             \
                        gn[c] = gc * an[c];                                                               \
                    }                                                                                     \
                    gC[t * N + n] = sC;                                                                   \
                    gB[t * N + n] = sB;                                                                   \
                }                                                                                         \
                T_ *gu_t = g_u + (bi * T + t) * d + c0, *gdl_t = g_delta + (bi * T + t) * d + c0;         \
                for (int64_t c = 0; c < cw; c++) {                                                        \
                    gu_t[c] = g_dtu[c] * dt[c];                                                           \
                    gdl_t[c] = g_dd[c] + g_dtu[c] * u_t[c];                                               \
                }                                                                                         \
                if (Dv)                                                                                   \
                    for (int64_t c = 0; c < cw; c++) gu_t[c] += gs[c] * Dv[c0 + c];                       \
                if (softplus) { /* softplus'(v) = sigmoid(v) */                                           \
                    T_ v[W];                                                                              \
                    PLUS_BIAS(v, delta_t);                                                                \
                    for (int64_t c = 0; c < cw; c++) gdl_t[c] *= SIGMOID(v[c]);                           \
                }                                                                                         \
                for (int64_t c = 0; c < cw; c++) gbias[c] += gdl_t[c];                                    \
            }                                                                                             \
        }                                                                                                 \
        for (int64_t n = 0; n < N; n++) {                                                                 \
            memcpy(g_A + (bi * N + n) * d + c0, gA + n * W, (size_t)cw * sizeof(T_));                     \
            memcpy(g_h0 + (bi * N + n) * d + c0, g + n * W, (size_t)cw * sizeof(T_));                     \
        }                                                                                                 \
        if (g_D) memcpy(g_D + bi * d + c0, gD, (size_t)cw * sizeof(T_));                                  \
        if (g_bias) memcpy(g_bias + bi * d + c0, gbias, (size_t)cw * sizeof(T_));                         \
        free(buf);                                                                                        \
    }                                                                                                     \
    return failed;                                                                                        \
}

DEFINE_SCAN(float, f32, exp2_f32, softplus_f32, sigmoid_f32)
DEFINE_SCAN(double, f64, exp2_f64, softplus_f64, sigmoid_f64)

/* Mamba's causal depthwise conv1d and its SiLU, token-major (hybridc.kernels.fused_conv):
 *
 *   pre[b, t, c] = bias[c] + sum_k wt[k, c] * x[b, t - K + 1 + k, c]   (x = 0 before the first token)
 *   y = silu(pre) = pre / (1 + exp(-pre))
 *
 * x (b, T, .) has rows xs elements apart (a slice of a wider tensor: the mixer's in_proj output), wt is
 * the (K, d) transposed kernel; y, gy, g_x are (b, T, d). The backward recomputes pre and writes the
 * kernel's and bias's gradients per batch row, g_wt (b, K, d) and g_bias (b, d), for the caller to add.
 * K is at most MAX_CONV_KERNEL (the backward returns 2 otherwise; Mamba's is 4).
 */
#define MAX_CONV_KERNEL 16
int conv_max_kernel(void) { return MAX_CONV_KERNEL; }

#define DEFINE_CONV(T_, SUFFIX, EXPNEG)                                                                   \
int conv_fwd_##SUFFIX(int64_t b, int64_t T, int64_t d, int64_t K, int64_t xs, const T_ *x,               \
                      const T_ *wt, const T_ *bias, T_ *y, int nthreads) {                               \
    const int64_t groups = (d + W - 1) / W;                                                               \
    _Pragma("omp parallel for schedule(static) num_threads(nthreads)")                                    \
    for (int64_t item = 0; item < b * groups; item++) {                                                   \
        const int64_t bi = item / groups, c0 = (item % groups) * W;                                       \
        const int64_t cw = d - c0 < W ? d - c0 : W;                                                       \
        for (int64_t t = 0; t < T; t++) {                                                                 \
            T_ acc[W];                                                                                    \
            for (int64_t c = 0; c < cw; c++) acc[c] = bias ? bias[c0 + c] : 0;                            \
            for (int64_t k = 0; k < K; k++) {                                                             \
                const int64_t tt = t - K + 1 + k;                                                         \
                if (tt < 0) continue;                                                                     \
                const T_ *xr = x + (bi * T + tt) * xs + c0, *wk = wt + k * d + c0;                        \
                for (int64_t c = 0; c < cw; c++) acc[c] += wk[c] * xr[c];                                 \
            }                                                                                             \
            T_ *yr = y + (bi * T + t) * d + c0;                                                           \
            for (int64_t c = 0; c < cw; c++) yr[c] = acc[c] / (1 + EXPNEG(acc[c]));                       \
        }                                                                                                 \
    }                                                                                                     \
    return 0;                                                                                             \
}                                                                                                         \
                                                                                                          \
int conv_bwd_##SUFFIX(int64_t b, int64_t T, int64_t d, int64_t K, int64_t xs, const T_ *x,               \
                      const T_ *wt, const T_ *bias, const T_ *gy, T_ *g_x, T_ *g_wt, T_ *g_bias,         \
                      int nthreads) {                                                                     \
    const int64_t groups = (d + W - 1) / W;                                                               \
    if (K > MAX_CONV_KERNEL) return 2;                                                                    \
    _Pragma("omp parallel for schedule(static) num_threads(nthreads)")                                    \
    for (int64_t item = 0; item < b * groups; item++) {                                                   \
        const int64_t bi = item / groups, c0 = (item % groups) * W;                                       \
        const int64_t cw = d - c0 < W ? d - c0 : W;                                                       \
        T_ gw[MAX_CONV_KERNEL * W], gb[W];                                                                \
        for (int64_t i = 0; i < K * W; i++) gw[i] = 0;                                                    \
        for (int64_t c = 0; c < W; c++) gb[c] = 0;                                                        \
        for (int64_t t = 0; t < T; t++)                                                                   \
            memset(g_x + (bi * T + t) * d + c0, 0, (size_t)cw * sizeof(T_));                              \
        for (int64_t t = T - 1; t >= 0; t--) {                                                            \
            T_ pre[W], g[W];                                                                              \
            for (int64_t c = 0; c < cw; c++) pre[c] = bias ? bias[c0 + c] : 0;                            \
            for (int64_t k = 0; k < K; k++) {                                                             \
                const int64_t tt = t - K + 1 + k;                                                         \
                if (tt < 0) continue;                                                                     \
                const T_ *xr = x + (bi * T + tt) * xs + c0, *wk = wt + k * d + c0;                        \
                for (int64_t c = 0; c < cw; c++) pre[c] += wk[c] * xr[c];                                 \
            }                                                                                             \
            const T_ *gyr = gy + (bi * T + t) * d + c0;                                                   \
            for (int64_t c = 0; c < cw; c++) {                                                            \
                const T_ s = 1 / (1 + EXPNEG(pre[c]));                                                    \
                g[c] = gyr[c] * s * (1 + pre[c] * (1 - s));                                               \
                gb[c] += g[c];                                                                            \
            }                                                                                             \
            for (int64_t k = 0; k < K; k++) {                                                             \
                const int64_t tt = t - K + 1 + k;                                                         \
                if (tt < 0) continue;                                                                     \
                const T_ *xr = x + (bi * T + tt) * xs + c0, *wk = wt + k * d + c0;                        \
                T_ *gxr = g_x + (bi * T + tt) * d + c0, *gwk = gw + k * W;                                \
                for (int64_t c = 0; c < cw; c++) {                                                        \
                    gxr[c] += wk[c] * g[c];                                                               \
                    gwk[c] += xr[c] * g[c];                                                               \
                }                                                                                         \
            }                                                                                             \
        }                                                                                                 \
        for (int64_t k = 0; k < K; k++)                                                                   \
            memcpy(g_wt + (bi * K + k) * d + c0, gw + k * W, (size_t)cw * sizeof(T_));                    \
        memcpy(g_bias + bi * d + c0, gb, (size_t)cw * sizeof(T_));                                        \
    }                                                                                                     \
    return 0;                                                                                             \
}

DEFINE_CONV(float, f32, expneg_f32)
DEFINE_CONV(double, f64, expneg_f64)

/* ---- Decoding: one token per sequence (hybridc.kernels.mamba_step) ------------------------------------
 *
 * step_fwd: Mamba's single-token update of one layer, after its in_proj and before its out_proj, in one
 * call: the conv state shifts by one and takes the new input, the causal conv + bias + SiLU, the padding
 * mask, x_proj, dt_proj + bias + softplus, the SSM state update, C, D and the SiLU gate:
 *
 *   s_conv <- [s_conv[1:], x]          xc = silu(bias + sum_k w[k] s_conv[S - K + k]) * mask
 *   (ts, B, C) = W_x xc                dt = softplus(W_dt ts + dt_bias)
 *   h <- exp(dt A) h + dt B xc         y = (sum_n C[n] h[n] + D xc) * silu(z),    A = -exp(A_log)
 *
 * what transformers' MambaMixer computes for one token with a cache (causal_conv1d_update, then
 * mamba_selective_state_update), the same operations in the same order up to the order of the sums (and,
 * in float32, exp, softplus and sigmoid by the vectorized functions above, within about 2e-7 relative).
 * xz (b, 2d): x then z, rows xzs elements apart (in_proj's output); conv_state (b, d, S), S >= K, and
 * ssm_state (b, d, N) are updated in place; A_log (d, N); w (d, K); W_x (R + 2N, d); W_dt (d, R);
 * conv_bias, dt_bias, D and mask (b) may be NULL. y (b, d). Work: phase 1 per (row, channel), phase 2 per
 * row of W_x, phase 3 per channel: every output is written by one thread, so the result does not depend on
 * the thread count. Returns 0, or 1 when its work buffer could not be allocated.
 *
 * linear_fwd: y = x W^T + bias for a few rows x (b, k) (decoding's batch): each row of W (n, k) is read
 * once, from memory, and used for every row of x while it is in cache (a GEMM library's small-M path reads
 * it b times or packs it first). y (b, n); bias (n) or NULL. Its rows go to the threads in small chunks, on
 * demand: a thread the OS has descheduled (a shared machine) holds up one chunk, not a static half.
 *
 * Both run on one thread below PARALLEL_WORK multiply-adds (a batch-1 step: one core reads memory about as fast
 * as two on a small machine, and waking a second thread, whom the OS may have descheduled on a shared machine,
 * can cost milliseconds at each parallel region). */
#define PARALLEL_WORK (1 << 20)
#define DEFINE_STEP(T_, SUFFIX, EXPV, SOFTPLUS, SIGMOID)                                                  \
int step_fwd_##SUFFIX(int64_t b, int64_t d, int64_t N, int64_t R, int64_t K, int64_t S, int64_t xzs,     \
                      const T_ *xz, const T_ *mask, T_ *conv_state, T_ *ssm_state, const T_ *w,           \
                      const T_ *conv_bias, const T_ *Wx, const T_ *Wdt, const T_ *dt_bias, const T_ *A_log,\
                      const T_ *D, T_ *y, int nthreads) {                                                  \
    const int64_t P = R + 2 * N;                                                                          \
    T_ *xc = malloc((size_t)(2 * b * d + b * P) * sizeof(T_));                                            \
    if (!xc) return 1;                                                                                    \
    T_ *dt = xc + b * d, *dbc = dt + b * d;                                                               \
    _Pragma("omp parallel if(b * d * (N + P) >= PARALLEL_WORK) num_threads(nthreads)")                    \
    {                                                                                                     \
        _Pragma("omp for schedule(static)")                                                               \
        for (int64_t i = 0; i < b * d; i++) {                                                             \
            const int64_t bi = i / d, c = i % d;                                                          \
            T_ *s = conv_state + i * S;                                                                   \
            for (int64_t j = 0; j + 1 < S; j++) s[j] = s[j + 1];                                          \
            s[S - 1] = xz[bi * xzs + c];                                                                  \
            T_ pre = conv_bias ? conv_bias[c] : 0;                                                        \
            for (int64_t k = 0; k < K; k++) pre += w[c * K + k] * s[S - K + k];                           \
            xc[i] = pre;                                                                                  \
        }                                                                                                 \
        _Pragma("omp for schedule(static)")                                                               \
        for (int64_t bi = 0; bi < b; bi++) {                                                              \
            T_ *xr = xc + bi * d;                                                                         \
            const T_ m = mask ? mask[bi] : 1;                                                             \
            _Pragma("omp simd")                                                                           \
            for (int64_t c = 0; c < d; c++) xr[c] = xr[c] * SIGMOID(xr[c]) * m;                           \
        }                                                                                                 \
        _Pragma("omp for schedule(static)")                                                               \
        for (int64_t j = 0; j < P; j++) {                                                                 \
            const T_ *row = Wx + j * d;                                                                   \
            for (int64_t bi = 0; bi < b; bi++) {                                                          \
                const T_ *xr = xc + bi * d;                                                               \
                T_ acc = 0;                                                                               \
                _Pragma("omp simd reduction(+:acc)")                                                      \
                for (int64_t c = 0; c < d; c++) acc += row[c] * xr[c];                                    \
                dbc[bi * P + j] = acc;                                                                    \
            }                                                                                             \
        }                                                                                                 \
        _Pragma("omp for schedule(static)")                                                               \
        for (int64_t i = 0; i < b * d; i++) {                                                             \
            const int64_t bi = i / d, c = i % d;                                                          \
            const T_ *ts = dbc + bi * P, *wr = Wdt + c * R;                                               \
            T_ delta = 0;                                                                                 \
            _Pragma("omp simd reduction(+:delta)")                                                        \
            for (int64_t r = 0; r < R; r++) delta += wr[r] * ts[r];                                       \
            dt[i] = dt_bias ? delta + dt_bias[c] : delta;                                                 \
        }                                                                                                 \
        _Pragma("omp for schedule(static)")                                                               \
        for (int64_t bi = 0; bi < b; bi++) {                                                              \
            T_ *dr = dt + bi * d;                                                                         \
            _Pragma("omp simd")                                                                           \
            for (int64_t c = 0; c < d; c++) dr[c] = SOFTPLUS(dr[c]);                                      \
        }                                                                                                 \
        _Pragma("omp for schedule(static)")                                                               \
        for (int64_t i = 0; i < b * d; i++) {                                                             \
            const int64_t bi = i / d, c = i % d;                                                          \
            const T_ *Bv = dbc + bi * P + R, *Cv = Bv + N, *a = A_log + c * N;                            \
            const T_ step = dt[i], u = xc[i];                                                             \
            T_ *h = ssm_state + i * N;                                                                    \
            T_ out = 0;                                                                                   \
            _Pragma("omp simd reduction(+:out)")                                                          \
            for (int64_t n = 0; n < N; n++) {                                                             \
                h[n] = EXPV(-step * EXPV(a[n])) * h[n] + step * Bv[n] * u;                                \
                out += h[n] * Cv[n];                                                                      \
            }                                                                                             \
            if (D) out += u * D[c];                                                                       \
            const T_ z = xz[bi * xzs + d + c];                                                            \
            y[i] = out * (z * SIGMOID(z));                                                                \
        }                                                                                                 \
    }                                                                                                     \
    free(xc);                                                                                             \
    return 0;                                                                                             \
}

static inline float exp_f32(float x) { return exp2_f32(x * 1.4426950408889634f); }

DEFINE_STEP(float, f32, exp_f32, softplus_f32, sigmoid_f32)
DEFINE_STEP(double, f64, exp, softplus_f64, sigmoid_f64)

/* linear_fwd, float32: for several rows of x, tiles of 4 rows of W x 2 rows of x, 16-lane vectors, 8 independent
 * accumulators (one accumulator would wait on its own additions: the loop would be latency-bound, not
 * memory-bound); for one row, matvec_f32. */
typedef float v16f __attribute__((vector_size(64)));
static inline v16f load16(const float *p) { v16f v; memcpy(&v, p, sizeof v); return v; }
static inline float hsum16(v16f v) {
    float s = 0;
    for (int i = 0; i < 16; i++) s += v[i];
    return s;
}
/* one row of x: the rows of W one after the other (a single stream from memory, which the prefetcher follows
 * better than four interleaved ones), four accumulators across each row */
static void matvec_f32(int64_t n, int64_t k, const float *x, const float *Wm, const float *bias, float *y,
                       int nthreads) {
    const int64_t kv = k - k % 64;
    _Pragma("omp parallel for schedule(dynamic, 64) if(n * k >= PARALLEL_WORK) num_threads(nthreads)")
    for (int64_t o = 0; o < n; o++) {
        const float *w = Wm + o * k;
        v16f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (int64_t i = 0; i < kv; i += 64) {
            a0 += load16(w + i) * load16(x + i);
            a1 += load16(w + i + 16) * load16(x + i + 16);
            a2 += load16(w + i + 32) * load16(x + i + 32);
            a3 += load16(w + i + 48) * load16(x + i + 48);
        }
        float acc = hsum16((a0 + a1) + (a2 + a3));
        for (int64_t i = kv; i < k; i++) acc += w[i] * x[i];
        y[o] = bias ? acc + bias[o] : acc;
    }
}

int linear_fwd_f32(int64_t b, int64_t n, int64_t k, const float *x, const float *Wm, const float *bias, float *y,
                   int nthreads) {
    if (b == 1) {
        matvec_f32(n, k, x, Wm, bias, y, nthreads);
        return 0;
    }
    const int64_t kv = k - k % 16, tiles = (n + 3) / 4;
    _Pragma("omp parallel for schedule(dynamic, 16) if(b * n * k >= PARALLEL_WORK) num_threads(nthreads)")
    for (int64_t t = 0; t < tiles; t++) {
        const int64_t o0 = t * 4, rows = n - o0 < 4 ? n - o0 : 4;
        const float *w[4];
        for (int r = 0; r < 4; r++) w[r] = Wm + (o0 + (r < rows ? r : 0)) * k;
        for (int64_t b0 = 0; b0 < b; b0 += 2) {
            const int two = b - b0 > 1;
            const float *x0 = x + b0 * k, *x1 = x + (b0 + two) * k;
            v16f a[4][2] = {{{0}}};
            for (int64_t i = 0; i < kv; i += 16) {
                const v16f u0 = load16(x0 + i), u1 = load16(x1 + i);
                for (int r = 0; r < 4; r++) {
                    const v16f wv = load16(w[r] + i);
                    a[r][0] += wv * u0;
                    a[r][1] += wv * u1;
                }
            }
            for (int r = 0; r < rows; r++) {
                for (int j = 0; j <= two; j++) {
                    const float *xr = j ? x1 : x0;
                    float acc = hsum16(a[r][j]);
                    for (int64_t i = kv; i < k; i++) acc += w[r][i] * xr[i];
                    y[(b0 + j) * n + o0 + r] = bias ? acc + bias[o0 + r] : acc;
                }
            }
        }
    }
    return 0;
}

int linear_fwd_f64(int64_t b, int64_t n, int64_t k, const double *x, const double *Wm, const double *bias, double *y,
                   int nthreads) {
    _Pragma("omp parallel for schedule(dynamic, 64) if(b * n * k >= PARALLEL_WORK) num_threads(nthreads)")
    for (int64_t o = 0; o < n; o++) {
        const double *row = Wm + o * k;
        for (int64_t bi = 0; bi < b; bi++) {
            const double *xr = x + bi * k;
            double acc = 0;
            _Pragma("omp simd reduction(+:acc)")
            for (int64_t i = 0; i < k; i++) acc += row[i] * xr[i];
            y[bi * n + o] = bias ? acc + bias[o] : acc;
        }
    }
    return 0;
}
