// Plain C read-bandwidth reference for `xlstm-run bench`'s host probe (issue 16).
// Sums a buffer of distinct floats (default 1 GiB) with AVX2 loads on every OpenMP thread, each thread its own
// contiguous share, best of N timed passes after one warm-up pass. Build: cc -O3 -march=native -fopenmp.
// Usage: read_probe [MiB] [passes] [thp|pf DIST]   (threads: OMP_NUM_THREADS, default all cores; thp: ask for
//        2 MB pages; pf DIST: software prefetch DIST bytes ahead of every 128-byte step)
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

int main(int argc, char **argv) {
    long mib = argc > 1 ? atol(argv[1]) : 1024;
    int passes = argc > 2 ? atoi(argv[2]) : 8;
    if (mib <= 0 || passes <= 0) { fprintf(stderr, "usage: read_probe [MiB > 0] [passes > 0]\n"); return 2; }
    size_t bytes = (size_t)mib << 20, n = bytes / 4;
    int thp = argc > 3 && strcmp(argv[3], "thp") == 0;
    long pf = argc > 4 && strcmp(argv[3], "pf") == 0 ? atol(argv[4]) / 4 : 0;   // in floats
    float *a = aligned_alloc(2 << 20, bytes);
    if (!a) { fprintf(stderr, "error: cannot allocate %ld MiB\n", mib); return 1; }
    if (thp) madvise(a, bytes, MADV_HUGEPAGE);
    // distinct contents in every page (identical pages may be merged by the host), first touch by the reading thread
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        uint32_t x = (uint32_t)(i * 2654435761u) ^ 0x9E3779B9u;
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        uint32_t bits = (x & 0x007FFFFFu) | 0x3F800000u;
        memcpy(&a[i], &bits, 4);
    }
    double best = 0, sink = 0;
    int threads = omp_get_max_threads();
    for (int p = 0; p <= passes; p++) {
        double t0 = now(), total = 0;
        #pragma omp parallel reduction(+:total)
        {
            int t = omp_get_thread_num(), nt = omp_get_num_threads();
            size_t per = n / nt / 64 * 64, i0 = (size_t)t * per, i1 = t == nt - 1 ? n : i0 + per;
            __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
            if (pf > 0)
                for (size_t i = i0; i + 32 <= i1; i += 32) {
                    _mm_prefetch((const char *)(a + i + pf), _MM_HINT_T0);
                    _mm_prefetch((const char *)(a + i + pf + 16), _MM_HINT_T0);
                    s0 = _mm256_add_ps(s0, _mm256_load_ps(a + i));
                    s1 = _mm256_add_ps(s1, _mm256_load_ps(a + i + 8));
                    s2 = _mm256_add_ps(s2, _mm256_load_ps(a + i + 16));
                    s3 = _mm256_add_ps(s3, _mm256_load_ps(a + i + 24));
                }
            else
            for (size_t i = i0; i + 32 <= i1; i += 32) {
                s0 = _mm256_add_ps(s0, _mm256_load_ps(a + i));
                s1 = _mm256_add_ps(s1, _mm256_load_ps(a + i + 8));
                s2 = _mm256_add_ps(s2, _mm256_load_ps(a + i + 16));
                s3 = _mm256_add_ps(s3, _mm256_load_ps(a + i + 24));
            }
            __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
            float v[8]; _mm256_storeu_ps(v, s);
            for (int k = 0; k < 8; k++) total += v[k];
        }
        double dt = now() - t0;
        sink += total;
        double gbs = bytes / dt / 1e9;
        if (p > 0 && gbs > best) best = gbs;
    }
    printf("read_probe: %d threads, %ld MiB%s%s, best of %d passes: %.1f GB/s (checksum %.3g)\n", threads, mib,
           thp ? " (2 MB pages)" : "", pf ? " (software prefetch)" : "", passes, best, sink);
    free(a);
    return 0;
}
