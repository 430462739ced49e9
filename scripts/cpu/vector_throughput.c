// Throughput of the 256-bit instructions the CPU kernels are made of, on one core (issue 16 evidence: how many vector
// operations per second a core of this machine retires, whatever their kind). Independent chains, so latency does not
// limit; rates are instructions (for the pair line: pairs) per second. Build: cc -O2 scripts/cpu/vector_throughput.c -o /tmp/vt && /tmp/vt
#include <stdio.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
#define N 200000000L

#define RUN(name, per, body)                                                                  \
    do {                                                                                      \
        double best = 0;                                                                      \
        for (int rep = 0; rep < 5; rep++) {                                                   \
            double t0 = now();                                                                \
            __asm__ volatile("vpcmpeqb %%ymm15,%%ymm15,%%ymm15\n mov %0, %%rcx\n 1:\n" body   \
                             "dec %%rcx\n jnz 1b\n" ::"r"(N / (per))                          \
                             : "rcx", "r8", "r9", "memory");                                  \
            double r = N / (now() - t0) / 1e9;                                                \
            if (r > best) best = r;                                                           \
        }                                                                                     \
        printf("%-44s %5.2f G/s\n", name, best);                                              \
    } while (0)

int main(void) {
    RUN("scalar add, dependent (≈ clock)", 4, "add $1,%%r8\n add $1,%%r8\n add $1,%%r8\n add $1,%%r8\n");
    RUN("vpaddw", 8, "vpaddw %%ymm15,%%ymm1,%%ymm1\n vpaddw %%ymm15,%%ymm2,%%ymm2\n vpaddw %%ymm15,%%ymm3,%%ymm3\n vpaddw %%ymm15,%%ymm4,%%ymm4\n"
                     "vpaddw %%ymm15,%%ymm5,%%ymm5\n vpaddw %%ymm15,%%ymm6,%%ymm6\n vpaddw %%ymm15,%%ymm7,%%ymm7\n vpaddw %%ymm15,%%ymm8,%%ymm8\n");
    RUN("vpmaddubsw", 8, "vpmaddubsw %%ymm15,%%ymm1,%%ymm1\n vpmaddubsw %%ymm15,%%ymm2,%%ymm2\n vpmaddubsw %%ymm15,%%ymm3,%%ymm3\n vpmaddubsw %%ymm15,%%ymm4,%%ymm4\n"
                         "vpmaddubsw %%ymm15,%%ymm5,%%ymm5\n vpmaddubsw %%ymm15,%%ymm6,%%ymm6\n vpmaddubsw %%ymm15,%%ymm7,%%ymm7\n vpmaddubsw %%ymm15,%%ymm8,%%ymm8\n");
    RUN("vpmaddubsw + dependent vpaddw (pairs)", 4,
        "vpmaddubsw %%ymm15,%%ymm1,%%ymm9\n vpaddw %%ymm9,%%ymm2,%%ymm2\n vpmaddubsw %%ymm15,%%ymm3,%%ymm10\n vpaddw %%ymm10,%%ymm4,%%ymm4\n"
        "vpmaddubsw %%ymm15,%%ymm5,%%ymm11\n vpaddw %%ymm11,%%ymm6,%%ymm6\n vpmaddubsw %%ymm15,%%ymm7,%%ymm12\n vpaddw %%ymm12,%%ymm8,%%ymm8\n");
    RUN("vfmadd231ps", 8, "vfmadd231ps %%ymm15,%%ymm14,%%ymm1\n vfmadd231ps %%ymm15,%%ymm14,%%ymm2\n vfmadd231ps %%ymm15,%%ymm14,%%ymm3\n vfmadd231ps %%ymm15,%%ymm14,%%ymm4\n"
                          "vfmadd231ps %%ymm15,%%ymm14,%%ymm5\n vfmadd231ps %%ymm15,%%ymm14,%%ymm6\n vfmadd231ps %%ymm15,%%ymm14,%%ymm7\n vfmadd231ps %%ymm15,%%ymm14,%%ymm8\n");
    RUN("vpmaddubsw with a scalar add each", 8,
        "vpmaddubsw %%ymm15,%%ymm1,%%ymm1\n add $1,%%r8\n vpmaddubsw %%ymm15,%%ymm2,%%ymm2\n add $1,%%r9\n"
        "vpmaddubsw %%ymm15,%%ymm3,%%ymm3\n add $1,%%r8\n vpmaddubsw %%ymm15,%%ymm4,%%ymm4\n add $1,%%r9\n"
        "vpmaddubsw %%ymm15,%%ymm5,%%ymm5\n add $1,%%r8\n vpmaddubsw %%ymm15,%%ymm6,%%ymm6\n add $1,%%r9\n"
        "vpmaddubsw %%ymm15,%%ymm7,%%ymm7\n add $1,%%r8\n vpmaddubsw %%ymm15,%%ymm8,%%ymm8\n add $1,%%r9\n");
    return 0;
}
