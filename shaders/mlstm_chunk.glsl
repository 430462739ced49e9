// Chunkwise-parallel mLSTM (xlstm7b-spec.md §3): a chunk of len <= 64 tokens is done by three dispatches per block:
//   mlstm_chunk_gates  (one workgroup per head)  gate soft-cap, cumulative log-forget b, stabilizers m_i, the masked
//                      decay-weighted score matrix M, denominators, the inter-chunk weights; updates n and m in place;
//   mlstm_chunk_out    h = (q̄ C_prev + M V) / den                (the intra-chunk parallel part + inter-chunk input)
//   mlstm_chunk_state  C = decay · C + Σ_j w_j k_j v_jᵀ           (the inter-chunk state recurrence)
// Per-head scratch (floats): M [64 x 64] row-major, then qs[64], invden[64], w[64], decay.
#define CL 64u
#define SCR_HEAD (CL * CL + 256u)
#define SCR_QS (CL * CL)
#define SCR_INVDEN (CL * CL + 64u)
#define SCR_W (CL * CL + 128u)
#define SCR_DECAY (CL * CL + 192u)
