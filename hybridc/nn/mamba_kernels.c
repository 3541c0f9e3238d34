/* Mamba's CPU kernels, built and loaded by hybridc.nn.kernels: the selective scan, one fused pass per
 * direction (hybridc.nn.fused_scan: the math and the layouts), and the causal depthwise conv1d with its
 * SiLU (hybridc.nn.fused_conv, at the end of this file).
 *
 *   h_t = exp(dt_t * A) * h_{t-1} + dt_t * u_t * B_t      (per channel c and state n)
 *   y_t = sum_n C_t[n] * h_t[n]
 *
 * Layouts (all contiguous): per-token tensors are token-major, u/dt/y/g_u/g_dt (b, T, d) and
 * B/C (b, T, N); A2 = A^T * log2(e) and At = A^T are (N, d); states are (b, N, d).
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

#define DEFINE_SCAN(T_, SUFFIX, EXP2)                                                                   \
int scan_fwd_##SUFFIX(int64_t b, int64_t T, int64_t d, int64_t N, int64_t L,                             \
                       const T_ *u, const T_ *dt, const T_ *A2, const T_ *Bm, const T_ *Cm,               \
                       const T_ *h0, T_ *y, T_ *hs, T_ *last, int nthreads) {                            \
    const int64_t groups = (d + W - 1) / W, K = (T + L - 1) / L;                                          \
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
            const T_ *dt_t = dt + (bi * T + t) * d + c0, *u_t = u + (bi * T + t) * d + c0;               \
            const T_ *B_t = Bm + (bi * T + t) * N, *C_t = Cm + (bi * T + t) * N;                         \
            T_ dtu[W], acc[W];                                                                            \
            for (int64_t c = 0; c < cw; c++) { dtu[c] = dt_t[c] * u_t[c]; acc[c] = 0; }                   \
            for (int64_t n = 0; n < N; n++) {                                                             \
                const T_ bn = B_t[n], cn = C_t[n], *a2 = A2 + n * d + c0;                                 \
                T_ *hn = h + n * W;                                                                       \
                for (int64_t c = 0; c < cw; c++) {                                                        \
                    hn[c] = EXP2(dt_t[c] * a2[c]) * hn[c] + dtu[c] * bn;                                  \
                    acc[c] += cn * hn[c];                                                                 \
                }                                                                                         \
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
int scan_bwd_##SUFFIX(int64_t b, int64_t T, int64_t d, int64_t N, int64_t L,                             \
                       const T_ *u, const T_ *dt, const T_ *A2, const T_ *At, const T_ *Bm,               \
                       const T_ *Cm, const T_ *hs, const T_ *gy, T_ *g_u, T_ *g_dt, T_ *g_A,              \
                       T_ *g_B, T_ *g_C, T_ *g_h0, int nthreads) {                                        \
    /* g_A (b, N, d); g_B, g_C (groups, b, T, N); g_h0 (b, N, d) */                                      \
    const int64_t groups = (d + W - 1) / W, K = (T + L - 1) / L;                                          \
    int failed = 0;                                                                                       \
    _Pragma("omp parallel for schedule(static) num_threads(nthreads) reduction(|:failed)")                \
    for (int64_t item = 0; item < b * groups; item++) {                                                   \
        const int64_t bi = item / groups, gi = item % groups, c0 = gi * W;                                \
        const int64_t cw = d - c0 < W ? d - c0 : W;                                                       \
        const int64_t NW = N * W;                                                                         \
        T_ *buf = (T_ *)calloc((size_t)(NW * (2 * L + 3)), sizeof(T_));                                   \
        if (!buf) { failed = 1; continue; }                                                               \
        T_ *a = buf, *hh = buf + L * NW, *h_start = buf + 2 * L * NW;                                     \
        T_ *g = h_start + NW, *gA = g + NW;                                                               \
        T_ *gB = g_B + (gi * b + bi) * T * N, *gC = g_C + (gi * b + bi) * T * N;                          \
        for (int64_t k = K - 1; k >= 0; k--) {                                                            \
            const int64_t t0 = k * L, len = T - t0 < L ? T - t0 : L;                                      \
            for (int64_t n = 0; n < N; n++)                                                               \
                memcpy(h_start + n * W, hs + ((bi * K + k) * N + n) * d + c0, (size_t)cw * sizeof(T_));   \
            /* the chunk's decays and states again */                                                    \
            for (int64_t l = 0; l < len; l++) {                                                           \
                const int64_t t = t0 + l;                                                                 \
                const T_ *dt_t = dt + (bi * T + t) * d + c0, *u_t = u + (bi * T + t) * d + c0;           \
                const T_ *B_t = Bm + (bi * T + t) * N;                                                    \
                const T_ *hp = l > 0 ? hh + (l - 1) * NW : h_start;                                       \
                for (int64_t n = 0; n < N; n++) {                                                         \
                    const T_ bn = B_t[n], *a2 = A2 + n * d + c0, *hpn = hp + n * W;                       \
                    T_ *an = a + l * NW + n * W, *hn = hh + l * NW + n * W;                               \
                    for (int64_t c = 0; c < cw; c++) {                                                    \
                        an[c] = EXP2(dt_t[c] * a2[c]);                                                    \
                        hn[c] = an[c] * hpn[c] + dt_t[c] * u_t[c] * bn;                                   \
                    }                                                                                     \
                }                                                                                         \
            }                                                                                             \
            /* backwards through the chunk; g = dL/dh_t */                                               \
            for (int64_t l = len - 1; l >= 0; l--) {                                                      \
                const int64_t t = t0 + l;                                                                 \
                const T_ *dt_t = dt + (bi * T + t) * d + c0, *u_t = u + (bi * T + t) * d + c0;           \
                const T_ *gy_t = gy + (bi * T + t) * d + c0;                                              \
                const T_ *B_t = Bm + (bi * T + t) * N, *C_t = Cm + (bi * T + t) * N;                     \
                const T_ *hp = l > 0 ? hh + (l - 1) * NW : h_start;                                       \
                T_ dtu[W], g_dtu[W], g_dd[W];                                                             \
                for (int64_t c = 0; c < cw; c++) { dtu[c] = dt_t[c] * u_t[c]; g_dtu[c] = 0; g_dd[c] = 0; }\
                for (int64_t n = 0; n < N; n++) {                                                         \
                    const T_ bn = B_t[n], cn = C_t[n], *an = a + l * NW + n * W;                          \
                    const T_ *hn = hh + l * NW + n * W, *hpn = hp + n * W, *atn = At + n * d + c0;        \
                    T_ *gn = g + n * W, *gAn = gA + n * W;                                                \
                    T_ sC = 0, sB = 0;                                                                    \
                    _Pragma("omp simd reduction(+:sC, sB)")                                               \
                    for (int64_t c = 0; c < cw; c++) {                                                    \
                        const T_ gc = gn[c] + cn * gy_t[c];                                               \
                        sC += hn[c] * gy_t[c];                                                            \
                        sB += gc * dtu[c];                                                                \
                        g_dtu[c] += bn * gc;                                                              \
                        const T_ gw = gc * an[c] * hpn[c]; /* dL/d(dt A) */                               \
                        g_dd[c] += gw * atn[c];                                                           \
                        gAn[c] += gw * dt_t[c];                                                           \
                        gn[c] = gc * an[c];                                                               \
                    }                                                                                     \
                    gC[t * N + n] = sC;                                                                   \
                    gB[t * N + n] = sB;                                                                   \
                }                                                                                         \
                T_ *gu_t = g_u + (bi * T + t) * d + c0, *gdt_t = g_dt + (bi * T + t) * d + c0;            \
                for (int64_t c = 0; c < cw; c++) {                                                        \
                    gu_t[c] = g_dtu[c] * dt_t[c];                                                         \
                    gdt_t[c] = g_dd[c] + g_dtu[c] * u_t[c];                                               \
                }                                                                                         \
            }                                                                                             \
        }                                                                                                 \
        for (int64_t n = 0; n < N; n++) {                                                                 \
            memcpy(g_A + (bi * N + n) * d + c0, gA + n * W, (size_t)cw * sizeof(T_));                     \
            memcpy(g_h0 + (bi * N + n) * d + c0, g + n * W, (size_t)cw * sizeof(T_));                     \
        }                                                                                                 \
        free(buf);                                                                                        \
    }                                                                                                     \
    return failed;                                                                                        \
}

DEFINE_SCAN(float, f32, exp2_f32)
DEFINE_SCAN(double, f64, exp2_f64)

/* Mamba's causal depthwise conv1d and its SiLU, token-major (hybridc.nn.fused_conv):
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

static inline float expneg_f32(float x) { return exp2_f32(-x * 1.4426950408889634f); }
static inline double expneg_f64(double x) { return exp(-x); }

DEFINE_CONV(float, f32, expneg_f32)
DEFINE_CONV(double, f64, expneg_f64)
