/* Compares the shim's hs_expm1 and hs_log (CShim/base/exp_log.h) with libm's
 * over the arguments the sampler gives them, and prints the largest error
 * of each in units in the last place of libm's result:
 *   expm1 N_ULP over COUNT
 *   log N_ULP over COUNT
 * libm is opened with dlopen so that nothing of it is linked in by name
 * (the tests compile programs without -lm). */
#include "../../CShim/base/exp_log.h"

#include <dlfcn.h>
#include <stdio.h>

/* How many doubles lie between the two (of one sign: the ordering of their bits). */
static double ulps(double mine, double ref)
{
    int64_t a, b;
    memcpy(&a, &mine, sizeof a);
    memcpy(&b, &ref, sizeof b);
    if ((a < 0) != (b < 0))
        return mine == ref ? 0 : 1e300;
    return (double)(a > b ? a - b : b - a);
}

int main(void)
{
    void *libm = dlopen("libm.so.6", RTLD_NOW);
    double (*ref_expm1)(double) = libm ? (double (*)(double))dlsym(libm, "expm1") : NULL;
    double (*ref_log)(double) = libm ? (double (*)(double))dlsym(libm, "log") : NULL;
    double (*ref_exp)(double) = libm ? (double (*)(double))dlsym(libm, "exp") : NULL;
    if (!ref_expm1 || !ref_log || !ref_exp) {
        fprintf(stderr, "cannot load libm: %s\n", dlerror());
        return 1;
    }
    uint64_t r = 0x9E3779B97F4A7C15ull;
    const long n = 5000000;
    double worst_expm1 = 0, worst_log = 0;
    for (long i = 0; i < n; i++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        /* -s/R: log-uniform magnitudes from 1e-15 to 45, and a few exact ones. */
        double t = (double)(r >> 11) * 0x1.0p-53;
        double x = i < 64 ? -(double)i : -ref_exp(-34.5 + t * (34.5 + 3.81));
        double e = ulps(hs_expm1(x), ref_expm1(x));
        if (e > worst_expm1)
            worst_expm1 = e;
        /* (k + 1) 2^-53, as the countdown draws u; every binade by the shift. */
        uint64_t k = (r >> 11) >> (i % 53);
        double u = ((double)k + 1.0) * 0x1.0p-53;
        double l = ulps(hs_log(u), ref_log(u));
        if (l > worst_log)
            worst_log = l;
    }
    printf("expm1 %.2f over %ld\nlog %.2f over %ld\n", worst_expm1, n, worst_log, n);
    return 0;
}
