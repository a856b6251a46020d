/*
 * exp_log.h - the two functions of libm the shim needs, so that loading it
 * does not map libm into every process (a program that does not link libm
 * itself, /bin/true or a shell, paid ~0.1 ms more per start for it).
 *
 * Base layer: no state, no includes of the shim's own.
 *
 * Both are within 2 units in the last place of libm's over the ranges the
 * sampler uses (ShimTests "exp_log", Tests/Programs/exp_log_check.c, on
 * millions of arguments): e^x - 1 for the probability a block of s bytes is
 * sampled, 1 - e^(-s/R), whose precision for s << R is the reason for
 * expm1; ln u for the exponential countdown.
 */
#ifndef HS_EXP_LOG_H
#define HS_EXP_LOG_H

#include <stdint.h>
#include <string.h>

#define HS_LN2_HI 6.93147180369123816490e-01   /* ln 2 in two parts (Cody-Waite): k * HI is exact */
#define HS_LN2_LO 1.90821492927058770002e-10
#define HS_INV_LN2 1.44269504088896338700e+00

/* e^x - 1 for finite x <= 709. x = k ln 2 + r with |r| <= ln2/2; the
 * Taylor series of e^r - 1 has converged to double precision by r^14/14!
 * (0.347^15 / 15! < 2^-60 r), and 2^k is made from its bits. */
static inline double hs_expm1(double x)
{
    if (x < -40.0)
        return -1.0;                    /* e^-40 < 2^-57 */
    double kf = x * HS_INV_LN2;
    int k = (int)(kf < 0 ? kf - 0.5 : kf + 0.5);
    double r = (x - k * HS_LN2_HI) - k * HS_LN2_LO;
    static const double inv_factorial[] = {     /* 1/2!, 1/3!, ..., 1/14! */
        1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320, 1.0 / 362880,
        1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800.0, 1.0 / 87178291200.0,
    };
    double sum = 0.0;                   /* e^r - 1 = r + r^2/2! + ... + r^14/14! (Horner) */
    for (int n = 12; n >= 0; n--)
        sum = (sum + inv_factorial[n]) * r;
    double em1 = r + r * sum;
    if (k == 0)
        return em1;
    uint64_t bits = (uint64_t)(1023 + k) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return scale * (em1 + 1.0) - 1.0;
}

/* ln x for finite x > 0 (normal). x = m 2^e with m in [sqrt(1/2), sqrt(2));
 * ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.1716, whose odd series
 * has converged to double precision by s^23 (0.1716^24 / 25 < 2^-64). */
static inline double hs_log(double x)
{
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    int e = (int)((bits >> 52) & 0x7FF) - 1023;
    bits = (bits & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull;     /* m in [1, 2) */
    double m;
    memcpy(&m, &bits, sizeof m);
    if (m > 1.4142135623730951) {
        m *= 0.5;
        e++;
    }
    static const double inv_odd[] = {   /* 1/3, 1/5, ..., 1/23 */
        1.0 / 3, 1.0 / 5, 1.0 / 7, 1.0 / 9, 1.0 / 11, 1.0 / 13, 1.0 / 15, 1.0 / 17, 1.0 / 19, 1.0 / 21, 1.0 / 23,
    };
    double s = (m - 1.0) / (m + 1.0), s2 = s * s, sum = 0.0;
    for (int n = 10; n >= 0; n--)
        sum = (sum + inv_odd[n]) * s2;
    return 2.0 * s * (1.0 + sum) + e * HS_LN2_HI + e * HS_LN2_LO;
}

#endif
