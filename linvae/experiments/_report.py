"""The text of ``REPORT.md``: a header naming the data and the run mode, one section per
experiment with its training budget, seeds and architecture, and every claim row once, counted
per category (paper claims, package checks, theory-only rows, questions beyond the paper)."""
import json
import os

from ._common import (BASIS_DEPENDENT, CATEGORIES, CONFIRMED, CONTRADICTED, INCONCLUSIVE, MEASURED, NOT_CONFIRMED,
                      NOT_RUN)
from ._verdict import GREATER_RULE, NOISE_RULE, RULES, TREND_RULE

__all__ = ["build_report"]

_CATEGORY_TITLE = {"paper": "claims of the paper", "check": "checks of this package",
                   "theory": "theory only (closed forms, nothing trained; not counted as confirmations)",
                   "beyond": "beyond the paper (measurements, no verdict)"}


def _budget(meta):
    if "steps" not in meta:
        return ""
    ratio = (" (the paper gives no training length)" if meta.get("paper_steps", 0) is None
             else f" = {meta.get('step_ratio', 0):.3g} × the paper's {meta.get('paper_steps', 0):,}")
    parts = [f"{meta['steps']:,} optimizer steps ({meta.get('epochs', '?')} epochs, "
             f"batch {meta.get('batch_size', '?')}){ratio}"]
    if "seeds" in meta:
        parts.append(f"seeds {meta['seeds']}")
    if "n_train" in meta:
        parts.append(f"N train {meta['n_train']:,}, test {meta.get('n_test', '?'):,}"
                     if isinstance(meta.get("n_test"), int) else f"N train {meta['n_train']:,}")
    return "; ".join(parts)


def _architecture(meta):
    arch = meta.get("architecture")
    if not arch:
        return ""
    if isinstance(arch, dict):
        return "; ".join(f"{k}: {v}" for k, v in arch.items())
    return str(arch)


#: every measure a row of the report shows, defined once in its header
MEASURES = (
    "**(ε, δ)-collapsed count** (the paper's measure, Lucas et al. 2019): latent dim i is collapsed at ε when "
    "P_x[KL_i(x) < ε] ≥ 1 − δ, with KL_i(x) the per-example KL of dim i on the held-out split (CVAE: q(z|x,y) "
    "against p(z|x); MHVAE: q(z₂|z₁) against p(z₂)). The paper reads it off curves over ε; the nonlinear claims "
    "of Figs 2–3 are decided at ε = 0.01, δ = 0.05, Fig 5's at ε = 1e-3, δ = 0.01.",
    "**collapse score** (this package's measure, not the paper's): the mean (ε, δ = 0.05)-collapsed count over "
    "51 log-spaced ε from 1e-4 to 10 — the area under the paper's curve on its log axis, so no single ε is "
    "picked. Shown beside the count and judged by the same rule; it never decides a row.",
    "**KL-fraction AU** (the authors' scripts; the measure of Tables 2–5): the fraction of (example, dim) pairs "
    "with KL_i(x) ≥ 0.01.",
    "**variance AU** (Burda et al. 2016): the number of dims with Cov_x(E_q[z_i]) > 0.01.",
    "**KL**: the mean per-example total KL, in nats. **LL**: the importance-sampled log-likelihood with the "
    "encoder as proposal and S samples (per experiment below).",
)

#: the outcomes a report counts, in the order it lists them
_OUTCOMES = (CONFIRMED, CONTRADICTED, INCONCLUSIVE, NOT_CONFIRMED, BASIS_DEPENDENT, NOT_RUN, MEASURED)


def _provenance(meta):
    """The report's lines on where a run's numbers come from: the commit it ran at, and (for the
    torch experiments) the models it trained and loaded and what they cost (issues #33, #34)."""
    lines = []
    prov = meta.get("provenance") or {}
    if prov.get("commit"):
        lines.append(f"ran at commit {prov['commit'][:10]}" + ("" if prov.get("clean") else
                                                                 " with uncommitted changes in linvae/"))
    else:
        lines.append("no commit recorded (run before meta.json kept its provenance)")
    training, cost = meta.get("training"), meta.get("cost")
    if training:
        line = (f"models trained {training.get('models_trained', training.get('models'))}, loaded from the model "
                f"store {training.get('models_loaded', 0)} (trained by another experiment, counted there)")
        if cost:
            line += (f"; cost {cost['seconds_all_sessions']:.0f} s (training "
                     f"{training.get('train_seconds_all_sessions', 0):.0f} + evaluation "
                     f"{training.get('eval_seconds_all_sessions', 0):.0f}, every session)")
        lines.append(line)
    return lines


def build_report(out, registry, part_of=None):
    """Markdown text of the report over the experiments of ``registry`` found under ``out``."""
    metas = {}
    for exp_id in registry:
        path = os.path.join(out, exp_id, "meta.json")
        if os.path.exists(path):
            with open(path) as f:
                metas[exp_id] = json.load(f)
    modes = sorted({"quick" if m.get("quick") else "full" for m in metas.values()})
    datas = sorted({m.get("data", "?") for m in metas.values()})
    counts = {c: dict.fromkeys(_OUTCOMES, 0) for c in CATEGORIES}
    sections = []
    not_run, stale = [], []
    reasons = {}
    reasons_path = os.path.join(out, "not_run.json")       # optional: why an experiment has no results here
    if os.path.exists(reasons_path):
        with open(reasons_path) as f:
            reasons = json.load(f)
    for exp_id, entry in registry.items():
        title = entry[2]
        meta = metas.get(exp_id)
        if meta is None:
            why = reasons.get(exp_id, f"no results in this directory (run `linvae reproduce {exp_id}`)")
            not_run.append(f"- `{exp_id}` ({title}): not run — {why}.")
            continue
        mode = "quick" if meta.get("quick") else "full"
        fig = f"[figure]({exp_id}/figure.png)" if os.path.exists(os.path.join(out, exp_id, "figure.png")) else ""
        lines = [f"### {exp_id} ({mode}): {title} {fig}".rstrip(), ""]
        details = [d for d in (_budget(meta), _architecture(meta)) if d]
        if meta.get("wall_time_s") is not None:
            details.append(f"wall time {meta['wall_time_s']:.0f} s")
        details.extend(_provenance(meta))
        if meta.get("tables"):
            details.append(meta["tables"])
        if meta.get("reduced"):
            r = meta["reduced"]
            details.append(f"**reduced run** ({len(r.get('cells', []))} cells: {', '.join(r.get('cells', []))}): "
                           f"{r.get('why', '')}")
        judged_before = (meta.get("verdict_rules") is not None and meta["verdict_rules"] != RULES) or any(
            c.get("verdict") == NOT_CONFIRMED for c in meta.get("claims") or [])
        if judged_before:
            stale.append(exp_id)
            details.append("**judged under earlier rules** (two outcomes, 'not confirmed'; recorded in its "
                           f"meta.json): re-run `linvae reproduce {exp_id}` to judge it by the rules above")
        lines += [f"- {d}" for d in details]
        claims = meta.get("claims") or []
        if claims:
            lines += ["", "| category | claim | theory predicts | measured | explanation | verdict |",
                      "|---|---|---|---|---|---|"]
        for c in claims:
            category = c.get("category", "paper")
            v = c["verdict"]
            shown = v if category != "theory" else f"{v} (theory)"
            lines.append(f"| {category} | ({mode}) {c['claim']} | {c['prediction']} | {c['measured']} | "
                         f"{c.get('note', '')} | **{shown}** |")
            if v in counts[category]:
                counts[category][v] += 1
        sections += lines + [""]
    for table, parent in (part_of or {}).items():
        sections.append(f"- Table `{table}` of the paper is trained and scored inside `{parent}` "
                        f"(`{parent}/{table}.csv`); its claims are counted once, there.")
    header = ["# linvae reproduction report", "",
              "Claims of Dang et al. (ICLR 2024) against this package's measurements. Each row: the claim, what "
              "the linear theory predicts for this data, what was measured, and the verdict. Regenerate with "
              "`linvae reproduce report`.", "",
              f"- **Data:** {', '.join(datas) or '—'} (N train / test per experiment below).",
              f"- **Run mode:** {', '.join(modes) or '—'}" + (
                  " — quick runs train a few hundred steps and test little." if "quick" in modes else ""),
              "- **Measures:**", *[f"  - {m}" for m in MEASURES],
              "- **Verdicts, three outcomes:** *confirmed* (the claimed direction beyond seed noise), *contradicted* "
              "(the opposite direction beyond seed noise), *inconclusive* (within noise, the measure cannot "
              "separate the settings, or one seed). Each claim is decided on the paper's own measure (the count, "
              "or the KL-fraction AU where the paper uses AU); deterministic checks (linear, closed form) are "
              "confirmed or contradicted.",
              f"  - {NOISE_RULE}.", f"  - {TREND_RULE}.", f"  - {GREATER_RULE}.", "", "## Summary", ""]
    for category in CATEGORIES:
        c = counts[category]
        total = sum(c.values())
        if not total:
            continue
        parts = [f"{n} {k}" for k, n in c.items() if n]
        header.append(f"- {_CATEGORY_TITLE[category]}: " + ", ".join(parts))
    if stale:
        header.append(f"- experiments judged under earlier rules, to be re-run: {len(stale)} ("
                      + ", ".join(f"`{e}`" for e in stale) + ")")
    header.append(f"- experiments not run: {len(not_run)}")
    return "\n".join(header + [""] + not_run + ["", "## Experiments", ""] + sections) + "\n"
