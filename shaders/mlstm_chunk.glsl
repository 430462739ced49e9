// Chunkwise-parallel mLSTM over a whole batch of tokens (xlstm7b-spec.md §3), parallel across chunks: four dispatches
// per block, whatever the number of chunks nc = ceil(T / L), L <= 64:
//   mlstm_chunk_prep  (chunk, head)                gate soft-cap, cumulative log-forget b, a_j, the chunk's total log
//                                                   forget g and local stabilizer mloc = max_j a_j, weights
//                                                   w_j = exp(a_j − mloc), and the raw scores S = q kᵀ of the chunk
//   mlstm_chunk_kv    (dv tile, dqk tile, chunk·head) ΔC_c = Σ_j w_j k_j v_jᵀ and Δn_c = Σ_j w_j k_j
//   mlstm_chunk_scan  (element tile, head)          the inter-chunk recurrence, sequential over chunks but parallel
//                                                   over the state's elements: m_{c+1} = max(g_c + m_c, mloc_c),
//                                                   C_{c+1} = e^{g_c + m_c − m_{c+1}} C_c + e^{mloc_c − m_{c+1}} ΔC_c
//                                                   (same for n); each ΔC_c slot is overwritten with the state
//                                                   entering chunk c, the final state goes back to the state buffer
//   mlstm_chunk_out   (dv tile, chunk, head)        h_i = (q̄_i C_c + Σ_{j<=i} M_ij v_j) / max(|q̄_i n_c + Σ_j M_ij|,
//                                                   e^{−m_i}) + eps, M_ij = S_ij·scale·e^{b_i − b_j + i_j − m_i}
// This is the same arithmetic as the step form (the spec's proof of prefill → step equality); a short last chunk is
// handled by the same code (the references loop the step form there: mathematically identical).
//
// Scratch (floats), per (chunk c, head h), index ch = c·NH + h:
//   REC  [ch·320 ...]      b[0..63], ig[64..127], w[128..191], g @192, mloc @193, mEnter @194, b_lo[256..319] (b is a
//                          compensated pair b + b_lo: it reaches hundreds when forget gates close and the weights need
//                          b_i − b_j); record nc·NH + h holds the final m (written by the scan, copied to the state by
//                          the out kernel)
//   S    [ch·4096 ...]     raw scores q_i · k_j (unscaled), 64 × 64 row-major
//   N    [ch·dqk ...]      Δn_c, then (after the scan) n entering chunk c
//   C    [ch·dqk·dv ...]   ΔC_c, then (after the scan) C entering chunk c
#define CL 64u
#define REC_SIZE 320u
#define REC_B 0u
#define REC_IG 64u
#define REC_W 128u
#define REC_G 192u
#define REC_MLOC 193u
#define REC_MENTER 194u
#define REC_BLO 256u
