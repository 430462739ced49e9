#!/usr/bin/env python3
"""What the card does for our prefill GEMM shapes through cuBLAS (torch.matmul, f16 and bf16 in, f32 accumulate):
the ceiling our Vulkan GEMM is compared with (h200.sh phase `anchor`). Prints one markdown row per shape."""
import sys, time
import torch

def bench(m, n, k, dtype, reps=20):
    a = torch.randn(m, k, device="cuda", dtype=dtype)
    b = torch.randn(n, k, device="cuda", dtype=dtype)
    for _ in range(3):
        torch.matmul(a, b.t())
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.matmul(a, b.t())
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps

print("| shape (tokens x rows x K) | dtype | µs | TFLOP/s |")
print("|---|---|---|---|")
for (m, n, k) in [(2048, 4096, 4096), (2048, 21888, 4096), (2048, 4096, 10944), (512, 4096, 4096)]:
    for dt in (torch.float16, torch.bfloat16):
        s = bench(m, n, k, dt)
        print(f"| {m} x {n} x {k} | {str(dt).split('.')[-1]} | {s * 1e6:.0f} | {2 * m * n * k / s / 1e12:.0f} |")
sys.stdout.flush()
