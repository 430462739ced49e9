#!/usr/bin/env python3
"""Train the small default xLSTM model (exact xLSTM-7B architecture, tiny sizes) with Hugging Face transformers.

Two sub-commands:

  prepare   (standard library only; runs on a Debian machine with apt-get and network access to Debian's archive)
            Downloads the Debian packages `bible-kjv-text` (the compressed King James Bible, public domain) and
            `bible-kjv` (its reader program), dumps the whole text with `bible -f -p DATADIR Gen1:1-Rev22:21`
            (one verse per line, each prefixed by its reference, e.g. "Ge1:1 In the beginning ..."), strips the
            reference, collapses runs of whitespace to one space, and writes one verse per line ("\\n"-terminated):
              .scratch/corpus/train.txt    books whose 0-based index (Genesis = 0 ... Revelation = 65) % 20 not in {7, 13}
              .scratch/corpus/valid.txt    books with index % 20 == 13 (2 Chronicles, Nahum, 1 Timothy): used only to
                                           pick the best checkpoint during training
              .scratch/corpus/heldout.txt  books with index % 20 == 7 (Ruth, Hosea, Galatians): never seen in training
              .scratch/corpus/corpus.json  provenance: package versions, sha256 and sizes
            and models/default/heldout-excerpt.txt = the first <= 4096 bytes of heldout.txt, cut after a "\\n".

  train     (on the GPU machine: PyTorch + transformers 5.17 + tokenizers 0.23; no network)
            1. Trains a byte-level BPE tokenizer on train.txt (tokenizers library): NFC normalizer, ByteLevel
               pre-tokenizer (add_prefix_space=False, GPT-2 regex), BPE model, ByteLevel decoder, vocabulary 4096
               including the special tokens <|endoftext|> (id 0: BOS and end of document, GPT-NeoX convention) and
               <|padding|> (id 1), initial alphabet = the 256 ByteLevel bytes. tokenizer.json is written in the same
               layout as GPT-NeoX-20B's (merges as "a b" strings).
            2. Builds transformers' own xLSTMForCausalLM with the xLSTM-7B structure (weight_mode "single", gate soft
               cap 15, logit soft cap 30, norm eps 1e-6, cell eps 1e-6, no biases except the i/f gates, qk_dim_factor
               0.5, v_dim_factor 1, FFN factor 2.667 rounded up to 64, untied lm_head, chunk size 64, native kernels)
               and small sizes (default hidden 256, 6 blocks, 4 heads).
            3. Trains with AdamW under bf16 autocast on random 256-token windows of the training token stream; each
               sequence is [0] + window[:-1] -> window (BOS id 0 prepended, exactly like the evaluation below).
               Linear warm-up then cosine decay; the number of steps is fixed up front (epochs x steps per epoch)
               and only shortened if the measured step time would overrun the wall-clock budget (logged).
               The checkpoint with the lowest valid.txt loss (evaluated every half epoch) is kept.
            4. Saves the model in float32 with save_pretrained(OUT/model, max_shard_size="16MB") plus tokenizer.json.
            5. Reloads the saved model in float32 (native kernels, float32 state, chunk 64, TF32 off) and evaluates
               held-out perplexity with the protocol below, then writes OUT/metrics.json.

Held-out perplexity protocol (reproduced exactly by the C# `perplexity` command):
  * tokenize the whole text file with the trained tokenizer (one call on the whole text, no BOS, no special tokens);
  * split the ids into consecutive windows of N = 256 tokens (the last window may be shorter);
  * for each window w: start from a fresh (zero) recurrent state, feed input ids [0] + w[:-1] (id 0 = <|endoftext|>
    as BOS), take the logits (after the output soft cap) at every position, and add up the negative log-likelihood
    -log softmax(logits_t)[w_t] of every target token w_t, t = 0 .. len(w)-1 (log-softmax in float64 from the
    float32 logits; sum in float64);
  * perplexity = exp(total NLL / total number of target tokens).
  This is done on heldout.txt and on models/default/heldout-excerpt.txt alone.

Also recorded: the first 64 greedy tokens after the prompt "In the beginning" (BOS id 0 prepended), generated with
the recurrent state carried (prefill, then one token at a time).

Usage (see scripts/train_default_model.sh):
  python3 scripts/train_default_model.py prepare
  python3 scripts/train_default_model.py train --corpus .scratch/corpus --out OUT_DIR
"""
import argparse
import glob
import hashlib
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELDOUT_MOD, HELDOUT_REM, VALID_REM = 20, 7, 13
EXCERPT_BYTES = 4096


# ----------------------------------------------------------------------------------------------------------------
# prepare (standard library only)
# ----------------------------------------------------------------------------------------------------------------
def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cmd_prepare(args):
    out_dir = os.path.join(REPO, args.corpus)
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", "bible-kjv-text", "bible-kjv"], cwd=tmp, check=True)
        debs = sorted(glob.glob(os.path.join(tmp, "*.deb")))
        pkgs = {}
        for deb in debs:
            name = subprocess.run(["dpkg-deb", "-f", deb, "Package"], check=True, capture_output=True,
                                  text=True).stdout.strip()
            ver = subprocess.run(["dpkg-deb", "-f", deb, "Version"], check=True, capture_output=True,
                                 text=True).stdout.strip()
            pkgs[name] = {"version": ver, "deb": os.path.basename(deb), "sha256": sha256_file(deb)}
            subprocess.run(["dpkg", "-x", deb, os.path.join(tmp, "root")], check=True)
        root = os.path.join(tmp, "root")
        raw = subprocess.run([os.path.join(root, "usr/bin/bible"), "-f", "-p", os.path.join(root, "usr/lib"),
                              "Gen1:1-Rev22:21"], check=True, capture_output=True).stdout.decode("ascii")
    lines = raw.splitlines()
    ref = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$")
    books, parts = [], {"train": [], "valid": [], "heldout": []}
    for line in lines:
        m = ref.match(line)
        if not m:
            raise SystemExit(f"unexpected line: {line!r}")
        book = m.group(1)
        if not books or books[-1] != book:
            books.append(book)
        text = " ".join(m.group(4).split())
        if not text:
            continue
        idx = (len(books) - 1) % HELDOUT_MOD
        part = "heldout" if idx == HELDOUT_REM else "valid" if idx == VALID_REM else "train"
        parts[part].append(text)
    if len(books) != 66 or len(lines) != 31102:
        raise SystemExit(f"unexpected dump: {len(books)} books, {len(lines)} verses")
    info = {"source": "Debian packages bible-kjv-text + bible-kjv (reader), King James Version (1611), public domain",
            "packages": pkgs, "dump_command": "bible -f -p <bible-kjv-text>/usr/lib Gen1:1-Rev22:21",
            "cleaning": "reference prefix removed, whitespace runs collapsed to one space, one verse per line",
            "split": {"rule": "0-based book index % 20: == 7 -> heldout, == 13 -> valid, else train",
                      "heldout_books": [b for i, b in enumerate(books) if i % HELDOUT_MOD == HELDOUT_REM],
                      "valid_books": [b for i, b in enumerate(books) if i % HELDOUT_MOD == VALID_REM]},
            "files": {}}
    for part, texts in parts.items():
        path = os.path.join(out_dir, f"{part}.txt")
        with open(path, "w", encoding="ascii", newline="\n") as f:
            f.write("".join(t + "\n" for t in texts))
        info["files"][f"{part}.txt"] = {"verses": len(texts), "bytes": os.path.getsize(path),
                                        "sha256": sha256_file(path)}
    heldout = open(os.path.join(out_dir, "heldout.txt"), "rb").read()
    cut = heldout[:EXCERPT_BYTES].rfind(b"\n") + 1
    excerpt_path = os.path.join(REPO, args.excerpt)
    os.makedirs(os.path.dirname(excerpt_path), exist_ok=True)
    with open(excerpt_path, "wb") as f:
        f.write(heldout[:cut])
    info["excerpt"] = {"path": args.excerpt, "bytes": cut, "sha256": sha256_file(excerpt_path)}
    with open(os.path.join(out_dir, "corpus.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps(info, indent=1))


# ----------------------------------------------------------------------------------------------------------------
# train (GPU machine)
# ----------------------------------------------------------------------------------------------------------------
def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def train_tokenizer(train_text_lines, vocab_size, out_path):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    try:
        tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=True)
    except TypeError:
        tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  special_tokens=["<|endoftext|>", "<|padding|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(train_text_lines, trainer=trainer, length=len(train_text_lines))
    assert tok.token_to_id("<|endoftext|>") == 0 and tok.token_to_id("<|padding|>") == 1, "special token ids"
    # Write merges as "a b" strings, like GPT-NeoX-20B's tokenizer.json (ByteLevel tokens never contain a space).
    d = json.loads(tok.to_str())
    merges = d["model"]["merges"]
    legacy = False
    if merges and isinstance(merges[0], list):
        assert all(" " not in a and " " not in b for a, b in merges)
        d2 = json.loads(json.dumps(d))
        d2["model"]["merges"] = [f"{a} {b}" for a, b in merges]
        tok2 = Tokenizer.from_str(json.dumps(d2, ensure_ascii=False))
        probe = "".join(train_text_lines[:3000]) + " naïve 1611 <|endoftext|> \t x  y\n\n"
        if tok2.encode(probe).ids == tok.encode(probe).ids and tok2.get_vocab() == tok.get_vocab():
            d, legacy = d2, True
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(d, f, ensure_ascii=False, indent=1)
    tok = Tokenizer.from_file(out_path)
    legacy = bool(d["model"]["merges"]) and isinstance(d["model"]["merges"][0], str)
    return tok, {"vocab_size": tok.get_vocab_size(), "merges": len(merges), "merges_as_strings": legacy,
                 "special_tokens": {"<|endoftext|>": 0, "<|padding|>": 1}}


def init_weights(model, cfg, torch):
    """xLSTM-large initialisation (as in transformers' single-mode _init_weights / NX-AI xlstm_large), done by hand
    because transformers 5.17's _init_weights is patched out (its fused branch is broken)."""
    H, L = cfg.hidden_size, cfg.num_hidden_layers
    small = (2.0 / (5.0 * H)) ** 0.5
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("igate_preact.weight") or name.endswith("fgate_preact.weight"):
                p.zero_()
            elif name.endswith("igate_preact.bias"):
                p.fill_(-10.0)
            elif name.endswith("fgate_preact.bias"):
                p.copy_(torch.linspace(3.0, 6.0, p.numel()))
            elif p.ndim == 1:  # RMSNorm / multi-head LayerNorm weights
                p.fill_(1.0)
            elif name.endswith("ffn.proj_down.weight"):
                p.normal_(0.0, 2.0 / L / p.shape[1] ** 0.5)
            elif name.endswith("mlstm_layer.out_proj.weight"):
                p.normal_(0.0, 2.0 / L / H ** 0.5)
            else:  # embeddings, q, k, v, ogate, proj_up_gate, proj_up, lm_head
                p.normal_(0.0, small)


def make_fixed_parallel_fw_h(torch):
    """transformers' native mlstm_chunkwise_parallel_fw_H with the upstream fix for more than one chunk (only used
    if the installed version fails the preflight)."""
    def mlstm_chunkwise_parallel_fw_H(matQ, matK, matV, matC_states, vecN_states, scaMinter_states, vecI, vecB,
                                      qk_scale, chunk_size=64, num_chunks=1, eps=1e-6):
        nc = num_chunks
        batch_size, nh, dqk, dhv = matC_states.shape
        dhqk = dqk // nc
        matC_k_states = matC_states.view(batch_size, nh, nc, dhqk, dhv)
        vecN_k_states = vecN_states.view(batch_size, nh, nc, dhqk)
        matQ = matQ.view(batch_size, nh, nc, chunk_size, dhqk)
        matK = matK.view(batch_size, nh, nc, chunk_size, dhqk)
        matV = matV.view(batch_size, nh, nc, chunk_size, dhv)
        ltr = torch.tril(torch.ones((chunk_size, chunk_size), dtype=torch.bool, device=matQ.device))
        matF = vecB[:, :, :, :, None] - vecB[:, :, :, None, :]
        matLogD = torch.where(ltr, matF, -float("inf")) + vecI[:, :, :, None, :]
        vecMintra = torch.max(matLogD, dim=-1, keepdim=False).values
        vecM_b_inter = vecB + scaMinter_states[:, :, :, None]
        vecM = torch.maximum(vecM_b_inter, vecMintra)[:, :, :, :, None]
        vecM_b_inter = vecM_b_inter[:, :, :, :, None]
        matD = torch.exp(matLogD - vecM)
        matM = (matQ @ matK.transpose(-2, -1)) * qk_scale * matD
        matQ_gated = matQ * torch.exp(vecM_b_inter - vecM) * qk_scale
        num = matQ_gated @ matC_k_states + matM @ matV
        den = matQ_gated @ vecN_k_states.unsqueeze(-1) + matM.sum(dim=-1, keepdim=True)
        den = torch.maximum(torch.abs(den), torch.exp(-vecM))
        matH = (num / (den + eps)).view(batch_size, nh, nc * chunk_size, dhv)
        return matH, den.reshape(batch_size, nh, nc * chunk_size), vecM.reshape(batch_size, nh, nc * chunk_size)
    return mlstm_chunkwise_parallel_fw_H


def cmd_train(args):
    t_start = time.time()
    import numpy as np
    import torch
    import torch.nn.functional as F
    import transformers
    import importlib.util
    from transformers import xLSTMConfig, xLSTMForCausalLM
    import transformers.models.xlstm.modeling_xlstm as M

    # Same two patches as tests/data/fixtures/make_fixtures.py: the cache must size qk like the layers do, and the
    # (fused-mode-broken) built-in init is replaced by init_weights() above.
    xLSTMConfig.qk_dim = property(lambda self: int(self.hidden_size * self.qk_dim_factor))
    xLSTMConfig.v_dim = property(lambda self: int(self.hidden_size * self.v_dim_factor))
    M.xLSTMPreTrainedModel._init_weights = lambda self, module: None

    os.makedirs(args.out, exist_ok=True)
    model_dir = os.path.join(args.out, "model")
    os.makedirs(model_dir, exist_ok=True)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.cuda.manual_seed_all(args.seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    if args.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    dev = torch.device("cuda")
    env = {"torch": torch.__version__, "transformers": transformers.__version__,
           "tokenizers": __import__("tokenizers").__version__, "python": sys.version.split()[0],
           "gpu": torch.cuda.get_device_name(0), "cuda": torch.version.cuda,
           "xlstm_importable": importlib.util.find_spec("xlstm") is not None,
           "mlstm_kernels_importable": importlib.util.find_spec("mlstm_kernels") is not None,
           "transformers_uses_external_xlstm": bool(getattr(M, "external_xlstm", False))}
    log(f"env {json.dumps(env)}")
    metrics = {"env": env, "args": vars(args)}

    def write_metrics():
        with open(os.path.join(args.out, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=1)

    # ---- data + tokenizer ----
    def read(name):
        with open(os.path.join(args.corpus, name), encoding="utf-8") as f:
            return f.read()
    train_text, valid_text, heldout_text = read("train.txt"), read("valid.txt"), read("heldout.txt")
    with open(args.excerpt, encoding="utf-8") as f:
        excerpt_text = f.read()
    train_lines = train_text.splitlines(keepends=True)
    tok_path = os.path.join(model_dir, "tokenizer.json")
    tok, tok_info = train_tokenizer(train_lines, args.vocab, tok_path)
    log(f"tokenizer {tok_info}")
    train_ids = tok.encode(train_text).ids
    valid_ids = tok.encode(valid_text).ids
    heldout_ids = tok.encode(heldout_text).ids
    excerpt_ids = tok.encode(excerpt_text).ids
    assert tok.decode(heldout_ids) == heldout_text, "tokenizer round trip"
    tok_info.update({"train_tokens": len(train_ids), "valid_tokens": len(valid_ids),
                     "heldout_tokens": len(heldout_ids), "excerpt_tokens": len(excerpt_ids),
                     "train_bytes_per_token": len(train_text.encode()) / len(train_ids)})
    metrics["tokenizer"] = tok_info
    log(f"tokens train {len(train_ids)} valid {len(valid_ids)} heldout {len(heldout_ids)} excerpt {len(excerpt_ids)}")

    # ---- model ----
    V = ((tok.get_vocab_size() + 63) // 64) * 64
    cfg = xLSTMConfig(
        vocab_size=V, hidden_size=args.hidden, embedding_dim=args.hidden, num_hidden_layers=args.blocks,
        num_blocks=args.blocks, num_heads=args.heads, use_bias=False, norm_reduction_force_float32=True,
        tie_word_embeddings=False, add_out_norm=True, norm_eps=1e-6, qk_dim_factor=0.5, v_dim_factor=1.0,
        chunkwise_kernel="chunkwise--native_autograd", sequence_kernel="native_sequence__native",
        step_kernel="native", mode="inference", chunk_size=64, return_last_states=True,
        autocast_kernel_dtype="bfloat16", eps=1e-6, inference_state_dtype="float32", ffn_proj_factor=2.667,
        ffn_round_up_to_multiple_of=64, gate_soft_cap=15.0, output_logit_soft_cap=30.0, weight_mode="single",
        use_cache=True, pad_token_id=1, bos_token_id=0, eos_token_id=0, max_inference_chunksize=16384)
    torch.manual_seed(args.seed)
    model = xLSTMForCausalLM(cfg)
    init_weights(model, cfg, torch)
    model.to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    qk, vd = int(args.hidden * 0.5), args.hidden
    ffn = getattr(model.backbone.blocks[0].ffn, "up_proj_dim", None)
    metrics["model"] = {"hidden": args.hidden, "blocks": args.blocks, "heads": args.heads, "qk_dim": qk,
                        "v_dim": vd, "qk_head_dim": qk // args.heads, "v_head_dim": vd // args.heads,
                        "ffn_dim": ffn, "vocab_size": V, "params": n_params,
                        "f16_bytes_estimate": 2 * n_params, "weight_mode": "single", "gate_soft_cap": 15.0,
                        "output_logit_soft_cap": 30.0, "norm_eps": 1e-6, "eps": 1e-6, "chunk_size": 64,
                        "tie_word_embeddings": False, "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 1}
    log(f"model {json.dumps(metrics['model'])}")
    write_metrics()

    # ---- preflight: one tiny forward/backward through transformers' chunkwise + sequence kernels ----
    def preflight():
        x = torch.randint(0, V, (2, 200), device=dev)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            lg = model(input_ids=x, use_cache=False).logits
        F.cross_entropy(lg.float().reshape(-1, V), x.reshape(-1)).backward()
        model.zero_grad(set_to_none=True)
    metrics["patched_chunkwise_parallel_fw_H"] = False
    try:
        preflight()
    except Exception as e:  # older native chunkwise code had shape bugs for >1 chunk; use the fixed upstream form
        import traceback
        traceback.print_exc()
        log(f"preflight failed ({e!r}); patching mlstm_chunkwise_parallel_fw_H and retrying")
        M.mlstm_chunkwise_parallel_fw_H = make_fixed_parallel_fw_h(torch)
        metrics["patched_chunkwise_parallel_fw_H"] = True
        preflight()
    log("preflight forward/backward ok")

    # ---- training ----
    seq, B = args.seq, args.batch
    train_t = torch.tensor(train_ids, dtype=torch.long, device=dev)
    n_win = (len(train_ids) - 1) // seq  # windows per epoch (random offset in [0, seq))
    spe = n_win // B
    total_steps = args.total_steps or int(args.epochs * spe)
    gen = torch.Generator().manual_seed(args.seed)
    ar = torch.arange(seq, device=dev)

    def batches():
        epoch = 0
        while True:
            off = int(torch.randint(0, seq, (1,), generator=gen))
            n = (len(train_ids) - off) // seq
            starts = off + seq * torch.randperm(n, generator=gen)
            for i in range(0, n - B + 1, B):
                yield epoch, starts[i:i + B].to(dev)
            epoch += 1

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 else no_decay).append(p)
    opt_kw = dict(lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    try:
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                                 {"params": no_decay, "weight_decay": 0.0}], fused=True, **opt_kw)
    except Exception:
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                                 {"params": no_decay, "weight_decay": 0.0}], **opt_kw)
    sched_total = [total_steps]

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        prog = min(1.0, (step - args.warmup) / max(1, sched_total[0] - args.warmup))
        return args.lr * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * prog)))

    def window_nll(m, ids, N=256, bs=32, amp=False, per_window=False):
        """Sum of NLL (float64) over consecutive windows of N tokens, each from a fresh state with BOS prepended."""
        wins = [ids[i:i + N] for i in range(0, len(ids), N)]
        total, count, per = 0.0, 0, []
        m.eval()
        full = [w for w in wins if len(w) == N]
        groups = [full[i:i + bs] for i in range(0, len(full), bs)] + [[w] for w in wins if len(w) != N]
        with torch.no_grad():
            for g in groups:
                tgt = torch.tensor(g, dtype=torch.long, device=dev)
                inp = torch.cat([torch.zeros_like(tgt[:, :1]), tgt[:, :-1]], dim=1)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                    logits = m(input_ids=inp, use_cache=False).logits
                lp = torch.log_softmax(logits.double(), dim=-1).gather(-1, tgt[..., None])[..., 0]
                nll = -lp.sum(dim=1)
                total += float(nll.sum())
                count += tgt.numel()
                per.extend(float(v) for v in nll)
        return (total, count, per) if per_window else (total, count)

    log(f"train windows/epoch {n_win}, steps/epoch {spe}, planned steps {total_steps} "
        f"({total_steps / max(1, spe):.1f} epochs), batch {B}x{seq}")
    model.train()
    it = batches()
    t0 = time.time()
    best = {"val_loss": float("inf"), "step": -1, "state": None}
    history = []
    eval_every = max(1, spe // 2)
    loss_acc, loss_n = torch.zeros((), device=dev), 0
    last_loss = float("nan")
    stop_reason = "planned steps done"
    step = 0
    epoch = 0
    tokens = 0

    def validate(step):
        tot, cnt = window_nll(model, valid_ids, N=seq, amp=True)
        vl = tot / cnt
        if vl < best["val_loss"]:
            best.update(val_loss=vl, step=step,
                        state={k: v.detach().clone() for k, v in model.state_dict().items()})
        model.train()
        return vl

    while step < sched_total[0]:
        epoch, starts = next(it)
        w = train_t[starts[:, None] + ar]
        inp = torch.cat([torch.zeros_like(w[:, :1]), w[:, :-1]], dim=1)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.amp == "bf16"):
            logits = model(input_ids=inp, use_cache=False).logits
        loss = F.cross_entropy(logits.float().reshape(-1, V), w.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss_acc += loss.detach()
        loss_n += 1
        step += 1
        tokens += w.numel()
        if step == 30:
            torch.cuda.synchronize()
            t30 = time.time()
        if step == 80:
            torch.cuda.synchronize()
            per_step = (time.time() - t30) / 50
            budget_steps = int((args.time_budget - (time.time() - t0)) / (per_step * 1.08)) + step
            metrics["step_time_s"] = per_step
            if budget_steps < sched_total[0]:
                log(f"step time {per_step * 1000:.1f} ms: shortening schedule {sched_total[0]} -> {budget_steps}")
                sched_total[0] = budget_steps
                stop_reason = "schedule shortened to fit the wall-clock budget"
            else:
                log(f"step time {per_step * 1000:.1f} ms: planned {sched_total[0]} steps fit the budget")
        if step % args.log_every == 0 or step == sched_total[0]:
            last_loss = float(loss_acc) / loss_n
            loss_acc.zero_()
            loss_n = 0
            el = time.time() - t0
            log(f"step {step}/{sched_total[0]} epoch {epoch} loss {last_loss:.4f} lr {lr_at(step - 1):.2e} "
                f"tok/s {tokens / el:,.0f} elapsed {el:.0f}s")
        if step % eval_every == 0 or step == sched_total[0]:
            vl = validate(step)
            history.append({"step": step, "epoch": round(step / spe, 2), "train_loss": last_loss, "valid_loss": vl})
            log(f"  valid loss {vl:.4f} (best {best['val_loss']:.4f} @ {best['step']})")
        if time.time() - t0 > args.time_budget:
            stop_reason = "wall-clock budget reached"
            log("wall-clock budget reached, stopping")
            break
    if loss_n:
        last_loss = float(loss_acc) / loss_n
    if not history or history[-1]["step"] != step:
        vl = validate(step)
        history.append({"step": step, "epoch": round(step / spe, 2), "train_loss": last_loss, "valid_loss": vl})
        log(f"  valid loss {vl:.4f} (best {best['val_loss']:.4f} @ {best['step']})")
    torch.cuda.synchronize()
    train_time = time.time() - t0
    final_valid = history[-1]["valid_loss"]
    if best["state"] is not None and best["step"] != step:
        model.load_state_dict(best["state"])
    metrics["training"] = {
        "steps": step, "planned_steps": total_steps, "final_schedule_steps": sched_total[0],
        "stop_reason": stop_reason, "steps_per_epoch": spe, "epochs": round(step / spe, 2),
        "tokens_seen": tokens, "train_time_s": round(train_time, 1), "final_train_loss": last_loss,
        "final_valid_loss": final_valid, "kept_step": best["step"], "kept_valid_loss": best["val_loss"],
        "optimizer": f"AdamW betas (0.9, 0.95) eps 1e-8 wd {args.wd} (matrices only), grad clip 1.0",
        "lr": f"peak {args.lr}, linear warm-up {args.warmup} steps, cosine to {args.min_lr_frac} x peak",
        "precision": "bf16 autocast, float32 master weights" if args.amp == "bf16" else "float32",
        "sequence": f"{seq} tokens, [0] + window[:-1] -> window", "batch": B, "seed": args.seed,
        "history": history}
    log(f"training done: {json.dumps({k: v for k, v in metrics['training'].items() if k != 'history'})}")
    write_metrics()

    # ---- save float32 checkpoint ----
    model.eval()
    model.to(torch.float32)
    model.save_pretrained(model_dir, max_shard_size=args.max_shard_size)
    if len(os.listdir(model_dir)) > 6 and os.path.exists(os.path.join(model_dir, "generation_config.json")):
        os.remove(os.path.join(model_dir, "generation_config.json"))  # at most 8 files come back from the device
    files = sorted(os.listdir(model_dir))
    metrics["saved_files"] = {f: os.path.getsize(os.path.join(model_dir, f)) for f in files}
    log(f"saved {metrics['saved_files']}")
    write_metrics()

    # ---- float32 evaluation of the saved checkpoint ----
    try:
        try:
            ev = xLSTMForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        except TypeError:
            ev = xLSTMForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
        ev.to(dev).eval()
        sd_a, sd_b = model.state_dict(), ev.state_dict()
        metrics["reload_identical"] = sorted(sd_a) == sorted(sd_b) and all(
            torch.equal(sd_a[k].to(dev), sd_b[k]) for k in sd_a)
        metrics["evaluated"] = "reloaded checkpoint"
    except Exception as e:  # evaluate the in-memory model rather than lose the run
        log(f"reload failed: {e!r}")
        ev, metrics["evaluated"] = model, f"in-memory model (reload failed: {e!r})"
    be = getattr(ev.backbone.blocks[0].mlstm_layer, "mlstm_backend", None)
    metrics["eval_kernels"] = {k: getattr(getattr(be, f"{k}_kernel_fn", None), "__name__", None)
                               for k in ("chunkwise", "sequence", "step")}
    metrics["eval_kernels"].update(dtype="float32", state_dtype=cfg.inference_state_dtype, chunk_size=64, tf32=False)
    N = args.eval_window
    tot, cnt = window_nll(ev, heldout_ids, N=N)
    etot, ecnt, eper = window_nll(ev, excerpt_ids, N=N, per_window=True)
    vtot, vcnt = window_nll(ev, valid_ids, N=N)
    metrics["eval"] = {
        "protocol": f"windows of N={N} tokens of the whole tokenized file, fresh state per window, input [0]+w[:-1], "
                    "targets w, NLL summed in float64, ppl = exp(total NLL / targets)",
        "N": N,
        "heldout": {"file": "heldout.txt", "tokens": cnt, "windows": math.ceil(cnt / N), "total_nll": tot,
                    "mean_nll": tot / cnt, "ppl": math.exp(tot / cnt)},
        "excerpt": {"file": "models/default/heldout-excerpt.txt", "tokens": ecnt, "windows": len(eper),
                    "total_nll": etot, "mean_nll": etot / ecnt, "ppl": math.exp(etot / ecnt), "window_nll": eper},
        "valid": {"file": "valid.txt", "tokens": vcnt, "total_nll": vtot, "ppl": math.exp(vtot / vcnt)},
    }
    log(f"eval {json.dumps({k: metrics['eval'][k] for k in ('heldout',)})} excerpt ppl "
        f"{metrics['eval']['excerpt']['ppl']:.4f}")
    write_metrics()

    # ---- greedy sample ----
    prompt = "In the beginning"
    ids = [0] + tok.encode(prompt).ids
    with torch.no_grad():
        out = ev(input_ids=torch.tensor([ids], device=dev), use_cache=True)
        cache, last = out.cache_params, out.logits[0, -1]
        gen_ids = []
        for _ in range(args.greedy_tokens):
            t = int(torch.argmax(last))
            gen_ids.append(t)
            if len(gen_ids) == args.greedy_tokens:
                break
            o = ev(input_ids=torch.tensor([[t]], device=dev), cache_params=cache, use_cache=True)
            cache, last = o.cache_params, o.logits[0, -1]
        full = ev(input_ids=torch.tensor([ids + gen_ids[:-1]], device=dev), use_cache=False).logits[0]
        full_greedy = full[len(ids) - 1:].argmax(-1).tolist()
    metrics["greedy"] = {"prompt": prompt, "prompt_ids": ids, "ids": gen_ids,
                         "text": tok.decode(gen_ids, skip_special_tokens=False),
                         "full_text": tok.decode(ids[1:] + gen_ids, skip_special_tokens=False),
                         "matches_full_forward_argmax": full_greedy == gen_ids}
    log(f"greedy: {metrics['greedy']['full_text']!r} (consistent with full forward: "
        f"{metrics['greedy']['matches_full_forward_argmax']})")
    metrics["total_wall_s"] = round(time.time() - t_start, 1)
    write_metrics()
    n_files = sum(len(fs) for _, _, fs in os.walk(args.out))
    log(f"done in {metrics['total_wall_s']} s; {n_files} files under {args.out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--corpus", default=".scratch/corpus")
    p.add_argument("--excerpt", default="models/default/heldout-excerpt.txt")
    t = sub.add_parser("train")
    t.add_argument("--corpus", default=".scratch/corpus")
    t.add_argument("--excerpt", default="models/default/heldout-excerpt.txt")
    t.add_argument("--out", required=True)
    t.add_argument("--seed", type=int, default=1611)
    t.add_argument("--vocab", type=int, default=4096)
    t.add_argument("--hidden", type=int, default=256)
    t.add_argument("--blocks", type=int, default=6)
    t.add_argument("--heads", type=int, default=4)
    t.add_argument("--seq", type=int, default=256)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--min-lr-frac", type=float, default=0.1)
    t.add_argument("--warmup", type=int, default=200)
    t.add_argument("--wd", type=float, default=0.1)
    t.add_argument("--epochs", type=float, default=7.0)
    t.add_argument("--total-steps", type=int, default=0, help="override epochs x steps per epoch")
    t.add_argument("--time-budget", type=float, default=360.0, help="wall-clock seconds for the training loop")
    t.add_argument("--amp", choices=["bf16", "none"], default="bf16")
    t.add_argument("--deterministic", type=int, default=1)
    t.add_argument("--log-every", type=int, default=50)
    t.add_argument("--eval-window", type=int, default=256)
    t.add_argument("--greedy-tokens", type=int, default=64)
    t.add_argument("--max-shard-size", default="16MB")
    args = ap.parse_args()
    os.chdir(REPO)
    (cmd_prepare if args.cmd == "prepare" else cmd_train)(args)


if __name__ == "__main__":
    main()
