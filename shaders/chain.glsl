// Chained dispatches: a kernel that depends on the dispatch recorded just before it, ordered by a counter in memory
// instead of a pipeline barrier (CommandStream.cs, docs/backends.md "Chained dispatches"). With no barrier between
// them, the device may start this dispatch's workgroups while the previous one is still running: each workgroup issues
// the loads that do not depend on the previous dispatch (its weights, its state), then waits until every workgroup of
// the previous dispatch has counted itself done, then reads the previous dispatch's output. What a barrier would cost
// (the previous dispatch drains, then this one starts and waits for its first loads, 6-9 µs per dependency on the H200)
// overlaps with the previous dispatch's last workgroups.
// Correctness rests on three rules, kept by the host and here:
//   1. every op since the last barrier is a link of one chain, each waiting for the one before, so a dispatch that has
//      passed its wait finds every earlier op of the chain complete (no read-after-write, write-after-read or
//      write-after-write hazard can remain);
//   2. a workgroup writes nothing before its wait, and counts itself done after all its writes (memoryBarrierBuffer
//      by every invocation, then a workgroup barrier, then one atomic add: the usual release pattern);
//   3. data written by an earlier link is read through `coherent` buffers (no stale per-SM cache line: without a
//      barrier the driver does not invalidate those caches between the dispatches).
// The includer declares the push fields chainWait (counter index or CHAIN_NONE), chainCount (workgroups of the
// previous dispatch) and chainSignal (this dispatch's counter or CHAIN_NONE), and the binding CHAIN_BINDING.
#define CHAIN_NONE 0xFFFFFFFFu
// Polls before a waiting workgroup gives up (far longer than any dispatch: a broken chain then shows up as wrong
// results in the conformance check instead of a hung device).
#define CHAIN_MAX_POLLS (1u << 26)

layout(std430, binding = CHAIN_BINDING) volatile coherent buffer ChainB { uint CH[]; };

// Wait until the previous link is complete. Uniform control flow only (a workgroup barrier inside).
void chain_wait()
{
    if (pc.chainWait == CHAIN_NONE) return;
    if (gl_LocalInvocationIndex == 0u)
        for (uint i = 0u; i < CHAIN_MAX_POLLS && CH[pc.chainWait] < pc.chainCount; i++) { }
    memoryBarrierBuffer();
    barrier();
}

// Count this workgroup done (after all of its writes). Uniform control flow only.
void chain_signal()
{
    if (pc.chainSignal == CHAIN_NONE) return;
    memoryBarrierBuffer();
    barrier();
    if (gl_LocalInvocationIndex == 0u) atomicAdd(CH[pc.chainSignal], 1u);
}
