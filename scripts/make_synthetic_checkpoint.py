#!/usr/bin/env python3
"""Write a synthetic Hugging Face xLSTM checkpoint (config.json + sharded F32 safetensors) of any shape, using only the
standard library. The values repeat a 1 MiB block of random floats: meant for memory/throughput measurements of the
converter (e.g. peak RSS while converting), not for accuracy.

usage: make_synthetic_checkpoint.py OUT_DIR --hidden 1024 --blocks 16 --heads 4 --vocab 50304 [--shard-mb 1024]
"""
import argparse, json, math, os, random, struct

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--blocks", type=int, default=16)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=50304)
    ap.add_argument("--shard-mb", type=int, default=1024)
    a = ap.parse_args()
    D, NH = a.hidden, a.heads
    qk, v = int(D * 0.5), D
    F = int(((D * 2.667 + 63) // 64) * 64)
    tensors = [("backbone.embeddings.weight", [a.vocab, D])]
    for b in range(a.blocks):
        p = f"backbone.blocks.{b}."
        m = p + "mlstm_layer."
        tensors += [(p + "norm_mlstm.weight", [D]), (m + "q.weight", [qk, D]), (m + "k.weight", [qk, D]), (m + "v.weight", [v, D]),
                    (m + "ogate_preact.weight", [v, D]), (m + "igate_preact.weight", [NH, D]), (m + "igate_preact.bias", [NH]),
                    (m + "fgate_preact.weight", [NH, D]), (m + "fgate_preact.bias", [NH]), (m + "multihead_norm.weight", [v]),
                    (m + "out_proj.weight", [D, v]), (p + "norm_ffn.weight", [D]), (p + "ffn.proj_up_gate.weight", [F, D]),
                    (p + "ffn.proj_up.weight", [F, D]), (p + "ffn.proj_down.weight", [D, F])]
    tensors += [("backbone.out_norm.weight", [D]), ("lm_head.weight", [a.vocab, D])]
    os.makedirs(a.out, exist_ok=True)
    rnd = random.Random(1)
    block = struct.pack("<%df" % (1 << 18), *[rnd.gauss(0, 0.02) for _ in range(1 << 18)])
    shards, cur, size = [], [], 0
    for name, shape in tensors:
        n = math.prod(shape) * 4
        if cur and size + n > a.shard_mb << 20:
            shards.append(cur); cur, size = [], 0
        cur.append((name, shape)); size += n
    shards.append(cur)
    weight_map, total = {}, 0
    for i, sh in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        header, off = {}, 0
        for name, shape in sh:
            n = math.prod(shape) * 4
            header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + n]}
            off += n; weight_map[name] = fname
        h = json.dumps(header).encode()
        h += b" " * ((8 - len(h) % 8) % 8)
        with open(os.path.join(a.out, fname), "wb") as f:
            f.write(struct.pack("<Q", len(h))); f.write(h)
            left = off
            while left > 0:
                k = min(left, len(block)); f.write(block[:k]); left -= k
        total += off
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, open(os.path.join(a.out, "model.safetensors.index.json"), "w"))
    cfg = {"model_type": "xlstm", "hidden_size": D, "embedding_dim": D, "num_blocks": a.blocks, "num_heads": NH, "vocab_size": a.vocab,
           "qk_dim_factor": 0.5, "v_dim_factor": 1.0, "ffn_proj_factor": 2.667, "ffn_round_up_to_multiple_of": 64,
           "gate_soft_cap": 15.0, "output_logit_soft_cap": 30.0, "norm_eps": 1e-6, "eps": 1e-6, "use_bias": False,
           "tie_word_embeddings": False, "weight_mode": "single", "chunk_size": 64, "add_out_norm": True}
    json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=1)
    print(f"wrote {a.out}: {len(tensors)} tensors, {total / 2**30:.2f} GiB in {len(shards)} shards")

main()
