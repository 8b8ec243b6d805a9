"""Cosine mean / min and top-1 agreement vs the torch reference of outputs.py files (see build_candidates.py)."""
import sys, json, numpy as np
def unit(a): a=a.astype(np.float64); return a/np.linalg.norm(a,axis=1,keepdims=True)
for f in sys.argv[1:]:
    d=np.load(f); rep=json.loads(str(d["report"]))
    te=unit(d["torch_embedding"]); tl=d["torch_logits"]
    print(f, rep["machine"])
    for k in rep["files"]:
        if f"{k}/embedding" not in d: print(" ",k,"ERR"); continue
        c=np.sum(unit(d[f"{k}/embedding"])*te,1); ag=np.mean(d[f"{k}/logits"].argmax(1)==tl.argmax(1))
        print(f"  {k:22s} cos mean {c.mean():.4f} min {c.min():.4f} top1 {ag:.3f}")
